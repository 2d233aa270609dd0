//! Integration tests of anjian-core: one binary, one module per behaviour.

mod checklists;
mod convergence;
mod faults;
mod photos;
mod rules;
mod store;
mod support;
mod writs;
