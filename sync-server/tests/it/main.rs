//! Handler tests of the sync server: the router driven with `oneshot`, real SQLite.

mod api;
mod bulletins;
mod commits;
#[cfg(feature = "demo")]
mod demo;
mod migrations;
mod reads;
mod support;
mod web;
