//! End-to-end tests across crates: one binary, one module per scenario.

mod blobs;
mod cluster;
mod crash;
mod evidence;
mod hostile;
mod interop_js;
mod openapi;
mod peer_sessions;
mod review;
mod rulebook;
mod serving;
mod sync_access;
mod sync_durability;
mod sync_joint;
mod sync_relayed;
mod sync_wire;
mod web_browser;
mod writs;
