//! End-to-end scenarios and benchmarks across the Anjian crates.
