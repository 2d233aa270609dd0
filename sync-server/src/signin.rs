//! Who may try to sign in, and when: failed sign-ins slow down further attempts per
//! (name, address), per address and per name, with delays that grow with every failure,
//! so that guessing passwords is slow and a flood of wrong passwords cannot keep an
//! account's owner out. An address that signed in as a name before is that name's known
//! address: a flood against the name from elsewhere does not slow it down, and its
//! attempts go ahead of the queue for the password threads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Limits;

/// Failures are forgotten after this long without another.
const QUIET: Duration = Duration::from_secs(15 * 60);
/// The longest wait a run of failures earns.
const LONGEST_WAIT: Duration = Duration::from_secs(5 * 60);
/// A known address stays known this long after its last sign-in.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Entries kept per table; beyond this the oldest are dropped.
const MAX_ENTRIES: usize = 100_000;

/// Sign-in attempts, remembered for their delays.
pub struct SignIn {
    limits: Limits,
    tables: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    by_pair: HashMap<(String, IpAddr), Failures>,
    by_address: HashMap<IpAddr, Failures>,
    by_name: HashMap<String, Failures>,
    known: HashMap<(String, IpAddr), Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// Attempts let through whose outcome is not known yet: they count as failures until
    /// it is, so that a burst cannot slip past before the first failures are recorded.
    pending: u32,
    last: Instant,
}

/// How an attempt that was let through ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The password was right.
    Success,
    /// The name or the password was wrong.
    Failure,
    /// It ended without a password check (the server was busy, or failed).
    Unchecked,
}

/// What may happen to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check the password now; `known` says the address signed in as the name before.
    Go {
        /// Whether the attempt comes from a known address of the name.
        known: bool,
    },
    /// Try again after this long.
    Wait(Duration),
}

impl SignIn {
    /// Attempts held to `limits`.
    pub fn new(limits: Limits) -> SignIn {
        SignIn {
            limits,
            tables: Mutex::new(Tables::default()),
        }
    }

    /// Whether an attempt to sign in as `name` from `address` may go ahead now; one that
    /// may is counted as pending until `record` says how it ended.
    pub fn admit(&self, name: &str, address: IpAddr) -> Admission {
        let now = Instant::now();
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let pair = (name.to_owned(), address);
        let known = tables
            .known
            .get(&pair)
            .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR);
        let mut wait = Duration::ZERO;
        let mut consider = |failures: Option<&Failures>, allowed: u32| {
            if let Some(f) = failures {
                wait = wait.max(remaining(f, allowed, now));
            }
        };
        consider(
            tables.by_pair.get(&pair),
            self.limits.sign_in_failures_per_name_and_address,
        );
        consider(
            tables.by_address.get(&address),
            self.limits.sign_in_failures_per_address,
        );
        if !known {
            consider(
                tables.by_name.get(name),
                self.limits.sign_in_failures_per_name,
            );
        }
        if !wait.is_zero() {
            return Admission::Wait(wait);
        }
        pend(&mut tables.by_pair, pair, now);
        pend(&mut tables.by_address, address, now);
        pend(&mut tables.by_name, name.to_owned(), now);
        Admission::Go { known }
    }

    /// An attempt `admit` let through, to be recorded: one dropped unrecorded (its request
    /// was cancelled) is recorded as unchecked, so that it does not stay pending forever.
    pub fn attempt(&self, name: &str, address: IpAddr) -> Attempt<'_> {
        Attempt {
            signin: self,
            name: name.to_owned(),
            address,
            recorded: false,
        }
    }

    /// Records how an attempt that `admit` let through ended.
    pub fn record(&self, name: &str, address: IpAddr, outcome: Outcome) {
        let now = Instant::now();
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let pair = (name.to_owned(), address);
        let failed = outcome == Outcome::Failure;
        settle(&mut tables.by_pair, &pair, failed, now);
        settle(&mut tables.by_address, &address, failed, now);
        settle(&mut tables.by_name, name, failed, now);
        if outcome == Outcome::Success {
            tables.by_pair.remove(&pair);
            tables.known.insert(pair, now);
            prune(
                &mut tables.known,
                |at| now.duration_since(*at) < KNOWN_FOR,
                |at| (0, *at),
            );
        }
    }
}

/// An attempt let through (see [`SignIn::attempt`]).
pub struct Attempt<'a> {
    signin: &'a SignIn,
    name: String,
    address: IpAddr,
    recorded: bool,
}

impl Attempt<'_> {
    /// Records how the attempt ended.
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.signin.record(&self.name, self.address, outcome);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.signin
                .record(&self.name, self.address, Outcome::Unchecked);
        }
    }
}

/// How long an attempt must wait after `f` failures (pending attempts counted as such),
/// when `allowed` are free: a second after the first failure past them, doubling with each
/// further one.
fn remaining(f: &Failures, allowed: u32, now: Instant) -> Duration {
    let count = if now.duration_since(f.last) >= QUIET {
        f.pending
    } else {
        f.count + f.pending
    };
    if count < allowed {
        return Duration::ZERO;
    }
    let doublings = (count - allowed).min(16);
    let wait = Duration::from_secs(1u64 << doublings).min(LONGEST_WAIT);
    let left = wait.saturating_sub(now.duration_since(f.last));
    if f.pending >= allowed {
        // As many attempts in flight as failures allowed: the next waits for their
        // outcome, however long ago the last one began.
        left.max(Duration::from_secs(1))
    } else {
        left
    }
}

/// Counts an attempt let through as pending.
fn pend<K: Clone + std::hash::Hash + Eq>(table: &mut HashMap<K, Failures>, key: K, now: Instant) {
    let entry = table.entry(key).or_insert(Failures {
        count: 0,
        pending: 0,
        last: now,
    });
    if now.duration_since(entry.last) >= QUIET {
        entry.count = 0;
    }
    entry.pending = entry.pending.saturating_add(1);
    entry.last = now;
    prune(
        table,
        |f| f.pending > 0 || now.duration_since(f.last) < QUIET,
        |f| (f.count.saturating_add(f.pending), f.last),
    );
}

/// Turns a pending attempt into a failure, or forgets it.
fn settle<K, Q>(table: &mut HashMap<K, Failures>, key: &Q, failed: bool, now: Instant)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(entry) = table.get_mut(key) {
        entry.pending = entry.pending.saturating_sub(1);
        if failed {
            if now.duration_since(entry.last) >= QUIET {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        }
    }
}

/// Keeps a table under `MAX_ENTRIES`: entries no longer `live` go first; if live ones
/// still fill it, those of the lowest `rank` (fewest failures, then oldest) go, so that a
/// flood of new names or addresses cannot wipe out the record of the failures that count.
fn prune<K: Clone + std::hash::Hash + Eq, V, R: Ord>(
    table: &mut HashMap<K, V>,
    live: impl Fn(&V) -> bool,
    rank: impl Fn(&V) -> R,
) {
    if table.len() <= MAX_ENTRIES {
        return;
    }
    table.retain(|_, v| live(v));
    let excess = table.len().saturating_sub(MAX_ENTRIES * 9 / 10);
    if table.len() > MAX_ENTRIES {
        let mut ranked: Vec<(R, K)> = table.iter().map(|(k, v)| (rank(v), k.clone())).collect();
        ranked.select_nth_unstable_by(excess - 1, |a, b| a.0.cmp(&b.0));
        for (_, key) in ranked.into_iter().take(excess) {
            table.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn failures_past_the_allowance_wait_longer_each_time() {
        let signin = SignIn::new(Limits::default());
        let allowed = Limits::default().sign_in_failures_per_name_and_address;
        for _ in 0..allowed {
            assert_eq!(signin.admit("li", addr(2)), Admission::Go { known: false });
            signin.record("li", addr(2), Outcome::Failure);
        }
        assert!(matches!(signin.admit("li", addr(2)), Admission::Wait(_)));
        let now = Instant::now();
        let waits: Vec<Duration> = (0..4)
            .map(|past| {
                let f = Failures {
                    count: allowed + past,
                    pending: 0,
                    last: now,
                };
                remaining(&f, allowed, now)
            })
            .collect();
        assert_eq!(
            waits,
            [1, 2, 4, 8].map(Duration::from_secs),
            "a second, doubling"
        );
    }

    #[test]
    fn a_flood_against_a_name_does_not_slow_its_known_address() {
        let signin = SignIn::new(Limits::default());
        signin.admit("victim", addr(1));
        signin.record("victim", addr(1), Outcome::Success);
        for last in 2..=201 {
            if signin.admit("victim", addr(last)) == (Admission::Go { known: false }) {
                signin.record("victim", addr(last), Outcome::Failure);
            }
        }
        assert_eq!(
            signin.admit("victim", addr(1)),
            Admission::Go { known: true }
        );
        assert!(matches!(
            signin.admit("victim", addr(250)),
            Admission::Wait(_)
        ));
        // Another name from a flooding address is not held up by the name's failures.
        assert_eq!(
            signin.admit("other", addr(3)),
            Admission::Go { known: false }
        );
    }

    #[test]
    fn a_cancelled_attempt_does_not_stay_pending() {
        let signin = SignIn::new(Limits::default());
        let allowed = Limits::default().sign_in_failures_per_name;
        for last in 0..allowed {
            assert!(matches!(
                signin.admit("victim", addr(last as u8)),
                Admission::Go { .. }
            ));
            // The request is cancelled while its password is checked.
            drop(signin.attempt("victim", addr(last as u8)));
        }
        assert_eq!(
            signin.admit("victim", addr(100)),
            Admission::Go { known: false }
        );
    }

    #[test]
    fn a_flood_of_new_names_does_not_wipe_out_a_names_failures() {
        let signin = SignIn::new(Limits::default());
        let allowed = Limits::default().sign_in_failures_per_name;
        // Failures enough for a wait of many minutes.
        for last in 0..allowed + 8 {
            signin.admit("victim", addr(last as u8));
            signin.record("victim", addr(last as u8), Outcome::Failure);
        }
        for n in 0..(MAX_ENTRIES as u32 + 10) {
            let address = IpAddr::from((10u32 << 24 | n).to_be_bytes());
            let name = format!("flood{n}");
            signin.admit(&name, address);
            signin.record(&name, address, Outcome::Failure);
        }
        assert!(matches!(
            signin.admit("victim", addr(200)),
            Admission::Wait(_)
        ));
    }

    #[test]
    fn a_burst_is_held_back_before_any_outcome_is_known() {
        let signin = SignIn::new(Limits::default());
        let allowed = Limits::default().sign_in_failures_per_name;
        let let_through = (2..=201u8)
            .filter(|last| matches!(signin.admit("victim", addr(*last)), Admission::Go { .. }))
            .count();
        assert_eq!(let_through as u32, allowed);
    }
}
