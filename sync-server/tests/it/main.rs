//! Handler tests of the sync server: the router driven with `oneshot`, real SQLite.

mod api;
mod demo;
