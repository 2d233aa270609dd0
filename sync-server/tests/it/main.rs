//! Handler tests of the sync server: the router driven with `oneshot`, real SQLite.

mod api;
mod bulletins;
mod demo;
mod migrations;
mod policy;
mod support;
mod web;
