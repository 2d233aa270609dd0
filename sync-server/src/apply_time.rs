//! The time each account's sync messages take on the apply threads, against what it may
//! take (`limits.apply_ms_per_user_per_minute`). The wire's limits bound what one message
//! may carry, not what judging it costs: a message of the largest size making objects
//! costs seconds of a thread, and one account sending such messages on every connection it
//! may open would hold every apply thread, with everyone else's changes queued behind.
//! Each account has a bucket holding a minute's allowance, refilled as time passes; a
//! message's time on the apply thread is taken from it after it ran, and while the bucket
//! is below empty the account's connections read nothing more until it has refilled to
//! empty. Honest devices spend far less (a case of twenty findings costs a few
//! milliseconds), and a first sync of thousands of cases fits in the minute's allowance.
//!
//! The buckets are each server process's own: its apply threads are what they protect.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Each account's bucket of apply time.
pub struct ApplyTime {
    /// What an account may spend within a minute: the bucket's size, in seconds, and what
    /// refills it each minute.
    per_minute: f64,
    accounts: Mutex<HashMap<i64, Bucket>>,
}

/// What is left of an account's allowance, in seconds (below zero: owed), as of `at`.
#[derive(Clone, Copy)]
struct Bucket {
    left: f64,
    at: Instant,
}

/// Accounts kept before the full buckets among them are forgotten (a full bucket is what
/// an account not kept starts with).
const KEPT: usize = 1_024;

impl ApplyTime {
    /// Buckets of `per_minute` (at least a millisecond).
    pub fn new(per_minute: Duration) -> ApplyTime {
        ApplyTime {
            per_minute: per_minute.as_secs_f64().max(0.001),
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `spent` from `user`'s bucket.
    pub fn charge(&self, user: i64, spent: Duration) {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().expect("apply time");
        let left = self.refilled(accounts.get(&user).copied(), now) - spent.as_secs_f64();
        accounts.insert(user, Bucket { left, at: now });
        if accounts.len() > KEPT {
            accounts.retain(|_, bucket| self.refilled(Some(*bucket), now) < self.per_minute);
        }
    }

    /// How long `user`'s connections must wait before their next message is read: until
    /// the bucket has refilled to empty.
    pub fn wait(&self, user: i64) -> Duration {
        let accounts = self.accounts.lock().expect("apply time");
        let left = self.refilled(accounts.get(&user).copied(), Instant::now());
        if left >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-left * 60.0 / self.per_minute)
    }

    /// What `bucket` holds at `now`, refilled since it was last charged.
    fn refilled(&self, bucket: Option<Bucket>, now: Instant) -> f64 {
        match bucket {
            None => self.per_minute,
            Some(b) => {
                let refill = now.duration_since(b.at).as_secs_f64() * self.per_minute / 60.0;
                (b.left + refill).min(self.per_minute)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_past_its_minute_waits_until_it_has_refilled_what_it_owes() {
        let time = ApplyTime::new(Duration::from_secs(6));
        time.charge(1, Duration::from_secs(5));
        assert_eq!(
            time.wait(1),
            Duration::ZERO,
            "within the minute's allowance"
        );
        time.charge(1, Duration::from_secs(3));
        // Two seconds owed, refilled at six seconds a minute: about twenty seconds.
        let wait = time.wait(1).as_secs_f64();
        assert!((19.0..=20.0).contains(&wait), "{wait}");
        assert_eq!(time.wait(2), Duration::ZERO, "another account's own bucket");
    }

    #[test]
    fn full_buckets_are_forgotten_and_owing_ones_kept() {
        let time = ApplyTime::new(Duration::from_secs(60));
        time.charge(0, Duration::from_secs(61));
        for user in 1..=KEPT as i64 {
            time.charge(user, Duration::ZERO);
        }
        assert!(time.accounts.lock().expect("lock").len() <= 2);
        assert!(
            time.wait(0) > Duration::ZERO,
            "what is owed is not forgotten"
        );
    }
}
