//! Who may try to sign in, and when: failed sign-ins slow down further attempts per
//! (name, address), per address and per name, with delays that grow with every failure,
//! so that guessing passwords is slow and a flood of wrong passwords cannot keep an
//! account's owner out. An address that signed in as a name before is that name's known
//! address: a flood against the name from elsewhere does not slow it down, and its
//! attempts go ahead of the queue for the password threads. Successful sign-ins of a name
//! are counted too, and past their allowance slow further attempts alike: an account's
//! owner cannot keep the password threads busy by signing in again and again from a known
//! address (ahead of everyone else's sign-ins). The counts are kept in the
//! database, so that every server process sharing it holds an attempt to the same delays
//! (a balancer spreading a guesser's attempts over the nodes gains nothing).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Limits;
use crate::db::{Conn, params};
use crate::error::AppResult;
use crate::storage::Storage;

/// Failures are forgotten after this long without another.
const QUIET: Duration = Duration::from_secs(15 * 60);
/// The longest wait a run of failures earns.
const LONGEST_WAIT: Duration = Duration::from_secs(5 * 60);
/// A known address stays known this long after its last sign-in.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// An attempt let through and never recorded (its server process stopped meanwhile) stops
/// counting as pending after this long: no password check takes nearly as long.
const PENDING_FOR: Duration = Duration::from_secs(2 * 60);

/// Sign-in attempts, remembered for their delays.
pub struct SignIn {
    limits: Limits,
    storage: Arc<Storage>,
}

/// The failures of one scope and key, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failures {
    count: u32,
    /// Attempts let through whose outcome is not known yet: they count as failures until
    /// it is, so that a burst cannot slip past before the first failures are recorded.
    pending: u32,
    /// When the last attempt began or failed, in Unix milliseconds.
    last: i64,
}

/// How an attempt that was let through ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The password was right.
    Success,
    /// The password was right and the sign-in refused for something else (the device or
    /// its key): it cost a password check, and counts as a sign-in of the name.
    Refused,
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
    /// Try again after this long: too many failures.
    Wait(Duration),
    /// Try again after this long: the name signed in too often.
    TooOften(Duration),
}

/// The four counts an attempt is weighed against: (scope, key). The first three count
/// failures, the last successes.
fn scopes(name: &str, address: IpAddr) -> [(&'static str, String); 4] {
    [
        ("pair", format!("{name}\n{address}")),
        ("address", address.to_string()),
        ("name", name.to_owned()),
        (SIGNED_IN, name.to_owned()),
    ]
}

/// The scope counting a name's successful sign-ins.
const SIGNED_IN: &str = "signed_in";

impl SignIn {
    /// Attempts held to `limits`, counted in `storage`.
    pub fn new(limits: Limits, storage: Arc<Storage>) -> SignIn {
        SignIn { limits, storage }
    }

    /// Whether an attempt to sign in as `name` from `address` may go ahead now; one that
    /// may is counted as pending until `record` says how it ended.
    pub fn admit(&self, name: &str, address: IpAddr) -> AppResult<Admission> {
        let now = now_millis();
        let keys = scopes(name, address);
        self.storage.write(|conn| {
            conn.transaction(|tx| {
                let known: bool = tx
                    .query_opt(
                        "SELECT 1 FROM sign_in_known WHERE username = ?1 AND address = ?2 AND at > ?3",
                        params![name, address.to_string(), now - millis(KNOWN_FOR)],
                        |_| Ok(()),
                    )?
                    .is_some();
                let allowed = [
                    self.limits.sign_in_failures_per_name_and_address,
                    self.limits.sign_in_failures_per_address,
                    self.limits.sign_in_failures_per_name,
                    self.limits.sign_ins_per_name,
                ];
                let mut stored = Vec::with_capacity(keys.len());
                let (mut wait, mut too_often) = (Duration::ZERO, Duration::ZERO);
                for ((scope, key), allowed) in keys.iter().zip(allowed) {
                    let counts = load(tx, scope, key)?;
                    // A known address is not held up by the name's failures elsewhere.
                    let weighed = !(known && *scope == "name");
                    if let Some(f) = counts.filter(|_| weighed) {
                        let left = remaining(&f, allowed, now);
                        if *scope == SIGNED_IN {
                            too_often = left;
                        } else {
                            wait = wait.max(left);
                        }
                    }
                    stored.push(counts);
                }
                if !wait.is_zero() {
                    return Ok(Admission::Wait(wait));
                }
                if !too_often.is_zero() {
                    return Ok(Admission::TooOften(too_often));
                }
                for ((scope, key), failures) in keys.iter().zip(stored) {
                    save(tx, scope, key, pend(failures, now))?;
                }
                Ok(Admission::Go { known })
            })
        })
    }

    /// An attempt `admit` let through, to be recorded: one dropped unrecorded (its request
    /// was cancelled) is recorded as unchecked, so that it does not stay pending.
    pub fn attempt(&self, name: &str, address: IpAddr) -> Attempt<'_> {
        Attempt {
            signin: self,
            name: name.to_owned(),
            address,
            recorded: false,
        }
    }

    /// Records how an attempt that `admit` let through ended.
    pub fn record(&self, name: &str, address: IpAddr, outcome: Outcome) -> AppResult<()> {
        let now = now_millis();
        let failed = outcome == Outcome::Failure;
        let keys = scopes(name, address);
        self.storage.write(|conn| {
            conn.transaction(|tx| {
                for (scope, key) in &keys {
                    let counted = if *scope == SIGNED_IN {
                        matches!(outcome, Outcome::Success | Outcome::Refused)
                    } else {
                        failed
                    };
                    if let Some(counts) = load(tx, scope, key)? {
                        save(tx, scope, key, settle(counts, counted, now))?;
                    }
                }
                if outcome == Outcome::Success {
                    let (scope, key) = &keys[0];
                    tx.execute(
                        "DELETE FROM sign_in_failures WHERE scope = ?1 AND key = ?2",
                        params![scope, key],
                    )?;
                    tx.execute(
                        "INSERT INTO sign_in_known (username, address, at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (username, address) DO UPDATE SET at = excluded.at",
                        params![name, address.to_string(), now],
                    )?;
                    tx.execute(
                        "DELETE FROM sign_in_known WHERE at <= ?1",
                        params![now - millis(KNOWN_FOR)],
                    )?;
                }
                // What no longer counts goes: failures quiet for long enough, with no
                // attempt in flight (or none that can still be).
                tx.execute(
                    "DELETE FROM sign_in_failures WHERE last_at <= ?1",
                    params![now - millis(QUIET.max(PENDING_FOR))],
                )?;
                Ok(())
            })
        })
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
        self.save(outcome);
    }

    fn save(&self, outcome: Outcome) {
        if let Err(e) = self.signin.record(&self.name, self.address, outcome) {
            // The attempt then counts as pending until `PENDING_FOR` passes.
            tracing::warn!(error = %e, "cannot record a sign-in attempt");
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.save(Outcome::Unchecked);
        }
    }
}

fn load(tx: &mut dyn Conn, scope: &str, key: &str) -> AppResult<Option<Failures>> {
    tx.query_opt(
        "SELECT count, pending, last_at FROM sign_in_failures WHERE scope = ?1 AND key = ?2",
        params![scope, key],
        |r| {
            Ok(Failures {
                count: r.get(0)?,
                pending: r.get(1)?,
                last: r.get(2)?,
            })
        },
    )
}

fn save(tx: &mut dyn Conn, scope: &str, key: &str, f: Failures) -> AppResult<()> {
    tx.execute(
        "INSERT INTO sign_in_failures (scope, key, count, pending, last_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (scope, key) DO UPDATE SET count = excluded.count,
            pending = excluded.pending, last_at = excluded.last_at",
        params![scope, key, f.count, f.pending, f.last],
    )?;
    Ok(())
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// How long an attempt must wait after `f` failures (pending attempts counted as such),
/// when `allowed` are free: a second after the first failure past them, doubling with each
/// further one.
fn remaining(f: &Failures, allowed: u32, now: i64) -> Duration {
    let since = Duration::from_millis((now - f.last).max(0) as u64);
    let pending = if since >= PENDING_FOR { 0 } else { f.pending };
    let count = if since >= QUIET {
        pending
    } else {
        f.count + pending
    };
    if count < allowed {
        return Duration::ZERO;
    }
    let doublings = (count - allowed).min(16);
    let wait = Duration::from_secs(1u64 << doublings).min(LONGEST_WAIT);
    let left = wait.saturating_sub(since);
    if pending >= allowed {
        // As many attempts in flight as failures allowed: the next waits for their
        // outcome, however long ago the last one began.
        left.max(Duration::from_secs(1))
    } else {
        left
    }
}

/// `f` with an attempt let through counted as pending.
fn pend(f: Option<Failures>, now: i64) -> Failures {
    let mut f = f.unwrap_or(Failures {
        count: 0,
        pending: 0,
        last: now,
    });
    let since = Duration::from_millis((now - f.last).max(0) as u64);
    if since >= QUIET {
        f.count = 0;
    }
    if since >= PENDING_FOR {
        f.pending = 0;
    }
    f.pending = f.pending.saturating_add(1);
    f.last = now;
    f
}

/// `f` with a pending attempt turned into a failure, or forgotten.
fn settle(mut f: Failures, failed: bool, now: i64) -> Failures {
    f.pending = f.pending.saturating_sub(1);
    if failed {
        if Duration::from_millis((now - f.last).max(0) as u64) >= QUIET {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Database;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// Sign-ins counted in a fresh database in `dir`.
    fn signin(dir: &tempfile::TempDir) -> SignIn {
        let storage =
            Storage::open(&Database::Sqlite(dir.path().join("server.db"))).expect("a database");
        SignIn::new(Limits::default(), Arc::new(storage))
    }

    fn admit(signin: &SignIn, name: &str, address: IpAddr) -> Admission {
        signin.admit(name, address).expect("admit")
    }

    fn record(signin: &SignIn, name: &str, address: IpAddr, outcome: Outcome) {
        signin.record(name, address, outcome).expect("record");
    }

    #[test]
    fn failures_past_the_allowance_wait_longer_each_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let signin = signin(&dir);
        let allowed = Limits::default().sign_in_failures_per_name_and_address;
        for _ in 0..allowed {
            assert_eq!(
                admit(&signin, "li", addr(2)),
                Admission::Go { known: false }
            );
            record(&signin, "li", addr(2), Outcome::Failure);
        }
        assert!(matches!(admit(&signin, "li", addr(2)), Admission::Wait(_)));
        let now = now_millis();
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
    fn a_second_server_process_on_the_database_holds_the_same_delays() {
        let dir = tempfile::tempdir().expect("temp dir");
        let one = signin(&dir);
        let other = signin(&dir);
        let allowed = Limits::default().sign_in_failures_per_name_and_address;
        for i in 0..allowed {
            // A balancer sends the guesses to either process in turn.
            let process = if i % 2 == 0 { &one } else { &other };
            assert_eq!(
                admit(process, "li", addr(2)),
                Admission::Go { known: false }
            );
            record(process, "li", addr(2), Outcome::Failure);
        }
        assert!(matches!(admit(&one, "li", addr(2)), Admission::Wait(_)));
        assert!(matches!(admit(&other, "li", addr(2)), Admission::Wait(_)));
    }

    #[test]
    fn a_flood_against_a_name_does_not_slow_its_known_address() {
        let dir = tempfile::tempdir().expect("temp dir");
        let signin = signin(&dir);
        admit(&signin, "victim", addr(1));
        record(&signin, "victim", addr(1), Outcome::Success);
        for last in 2..=201 {
            if admit(&signin, "victim", addr(last)) == (Admission::Go { known: false }) {
                record(&signin, "victim", addr(last), Outcome::Failure);
            }
        }
        assert_eq!(
            admit(&signin, "victim", addr(1)),
            Admission::Go { known: true }
        );
        assert!(matches!(
            admit(&signin, "victim", addr(250)),
            Admission::Wait(_)
        ));
        // Another name from a flooding address is not held up by the name's failures.
        assert_eq!(
            admit(&signin, "other", addr(3)),
            Admission::Go { known: false }
        );
    }

    #[test]
    fn an_owner_signing_in_again_and_again_is_held_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let signin = signin(&dir);
        let allowed = Limits::default().sign_ins_per_name;
        admit(&signin, "li", addr(1));
        record(&signin, "li", addr(1), Outcome::Success);
        for _ in 1..allowed {
            assert_eq!(admit(&signin, "li", addr(1)), Admission::Go { known: true });
            record(&signin, "li", addr(1), Outcome::Success);
        }
        // From the known address and from any other: each attempt now waits.
        assert!(matches!(
            admit(&signin, "li", addr(1)),
            Admission::TooOften(_)
        ));
        assert!(matches!(
            admit(&signin, "li", addr(9)),
            Admission::TooOften(_)
        ));
        // Other names are not held up, nor are the failures of the name changed.
        assert_eq!(
            admit(&signin, "wang", addr(1)),
            Admission::Go { known: false }
        );
        assert_eq!(load_count(&signin, "pair", "li\n127.0.0.1"), None);
    }

    /// The count stored for (scope, key), if any.
    fn load_count(signin: &SignIn, scope: &str, key: &str) -> Option<u32> {
        signin
            .storage
            .write(|conn| load(conn, scope, key))
            .expect("read")
            .map(|f| f.count)
    }

    #[test]
    fn a_cancelled_attempt_does_not_stay_pending() {
        let dir = tempfile::tempdir().expect("temp dir");
        let signin = signin(&dir);
        let allowed = Limits::default().sign_in_failures_per_name;
        for last in 0..allowed {
            assert!(matches!(
                admit(&signin, "victim", addr(last as u8)),
                Admission::Go { .. }
            ));
            // The request is cancelled while its password is checked.
            drop(signin.attempt("victim", addr(last as u8)));
        }
        assert_eq!(
            admit(&signin, "victim", addr(100)),
            Admission::Go { known: false }
        );
    }

    #[test]
    fn attempts_a_stopped_process_left_pending_stop_counting() {
        let allowed = Limits::default().sign_in_failures_per_name;
        let now = now_millis();
        let stuck = Failures {
            count: 0,
            pending: allowed,
            last: now,
        };
        assert!(remaining(&stuck, allowed, now) >= Duration::from_secs(1));
        let later = now + millis(PENDING_FOR);
        assert_eq!(remaining(&stuck, allowed, later), Duration::ZERO);
        assert_eq!(pend(Some(stuck), later).pending, 1);
    }

    #[test]
    fn a_burst_is_held_back_before_any_outcome_is_known() {
        let dir = tempfile::tempdir().expect("temp dir");
        let signin = signin(&dir);
        let allowed = Limits::default().sign_in_failures_per_name;
        let let_through = (2..=201u8)
            .filter(|last| matches!(admit(&signin, "victim", addr(*last)), Admission::Go { .. }))
            .count();
        assert_eq!(let_through as u32, allowed);
    }
}
