//! Sync with the server: the automerge-repo wire messages, document ids, and (behind the
//! `client` feature) the client that pushes and pulls cases. The protocol is written down
//! in `docs/protocol.md`.

pub mod docid;
pub mod intake;
pub mod session;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;

pub use docid::DocumentId;
pub use session::{CatalogEntry, CatalogPage, SyncProgress, SyncReport, SyncSession};
pub use wire::{PeerMetadata, WireError, WireMessage};
