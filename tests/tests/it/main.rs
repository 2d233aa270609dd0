//! End-to-end tests across crates: one binary, one module per scenario.

mod crash;
