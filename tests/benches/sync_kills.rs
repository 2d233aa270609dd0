//! The sync server SIGKILLed 200 times at random moments while three inspectors' devices
//! edit and sync (docs/BENCHMARKS.md): the durability test's code (`anjian_tests::kills`)
//! with more kills, and its counts printed. Fails (exit status 1) when anything
//! acknowledged was missing after a kill; panics, naming the seed, on any other failure.
//!
//! Run: `cargo bench -p anjian-tests --bench sync_kills [-- KILLS]`
//! (`ANJIAN_KILL_SEED` gives the seed).

use anjian_tests::kills;

fn main() {
    let kills: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let options = kills::Options {
        kills,
        ..kills::Options::from_env(env!("CARGO_BIN_EXE_test_server"), kills)
    };
    let counts = kills::run(&options);
    println!("{counts}");
    for missing in &counts.missing {
        println!("{missing}");
    }
    if !counts.missing.is_empty() {
        std::process::exit(1);
    }
}
