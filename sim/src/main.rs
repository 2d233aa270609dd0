//! Runs simulated schedules: `--seed N --trace` replays one with its trace; `--seeds N`
//! runs seeds 0..N and reports failures with the command that replays each.

use std::time::Instant;

use anjian_sim::{Options, describe, parse_bug, replay_command, run};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let bug = value("--bug").map(|b| parse_bug(&b).unwrap_or_else(|| panic!("no bug {b}")));
    let verbose = args.iter().any(|a| a == "--trace");
    let field_work = !args.iter().any(|a| a == "--no-field-work");
    let by_hand = !args.iter().any(|a| a == "--no-by-hand");
    let (first, count) = match (value("--seed"), value("--seeds")) {
        (Some(seed), _) => (seed.parse().expect("a seed"), 1),
        (None, Some(count)) => (
            value("--from").map_or(0, |f| f.parse().expect("a seed")),
            count.parse().expect("a count"),
        ),
        (None, None) => (0, 100),
    };
    let started = Instant::now();
    let mut failures = 0;
    // How often the schedules reached entering again by hand (a path few schedules take).
    let mut entered_by_hand = 0;
    for seed in first..first + count {
        let outcome = run(Options {
            bug,
            verbose,
            field_work,
            by_hand,
            ..Options::seed(seed)
        });
        entered_by_hand += outcome
            .trace
            .iter()
            .filter(|line| line.contains("again by hand as"))
            .count();
        if let Some(failure) = outcome.failure {
            failures += 1;
            println!(
                "seed {seed} failed: {failure}\n  replay: {}",
                replay_command(seed, bug)
            );
        }
    }
    println!(
        "{count} seeds from {first} ({}) in {:.1} s: {failures} failed; {entered_by_hand} changes entered again by hand",
        describe(bug),
        started.elapsed().as_secs_f64()
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
