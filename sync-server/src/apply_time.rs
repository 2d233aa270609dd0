//! The time each account's sync connections take on the apply threads, against what it
//! may take (`limits.apply_ms_per_user_per_minute`). The wire's limits bound what one
//! message may carry, not what judging it costs: a message of the largest size making
//! objects costs seconds of a thread, and one account sending such messages on every
//! connection it may open would hold every apply thread, with everyone else's changes
//! queued behind. Each account has a bucket holding ten seconds' worth of its allowance,
//! refilled as time passes; what a connection's work on the apply threads took (receiving
//! a message, answering it, sending what others changed) is taken from it after it ran,
//! and while the bucket is below empty the account's connections read nothing more until
//! it has refilled to empty. A connection handles one message at a time, so one device
//! alone never spends more than the time that passes: the default allowance, a minute a
//! minute, holds back only an account busy on several connections at once.
//!
//! However full its bucket, an account's sync connections handle at most as many
//! messages at once as there are apply threads but one (one, with a single thread): they
//! take turns, so that a burst of its costliest messages leaves a thread for everyone
//! else. A turn is taken before the document's lock and held until the message is handled,
//! its commit included: an account's messages beyond its turns wait, one account's only.
//!
//! The buckets are each server process's own: its apply threads are what they protect.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use crate::turns::Turns;

/// Each account's bucket of apply time.
pub struct ApplyTime {
    /// What refills an account's bucket each minute, in seconds.
    per_minute: f64,
    /// What a full bucket holds, in seconds: `BUCKET`'s worth of the allowance.
    full: f64,
    accounts: Mutex<HashMap<i64, Bucket>>,
    /// The jobs each account may have on the apply threads at once.
    turns: Turns,
}

/// What is left of an account's allowance, in seconds (below zero: owed), as of `at`.
#[derive(Clone, Copy)]
struct Bucket {
    left: f64,
    at: Instant,
}

/// A full bucket holds this long's worth of the allowance.
const BUCKET: Duration = Duration::from_secs(10);

/// Accounts kept before the full buckets among them are forgotten (a full bucket is what
/// an account not kept starts with).
const KEPT: usize = 1_024;

impl ApplyTime {
    /// Buckets refilled by `per_minute` a minute (at least a millisecond), for `threads`
    /// apply threads.
    pub fn new(per_minute: Duration, threads: usize) -> ApplyTime {
        let per_minute = per_minute.as_secs_f64().max(0.001);
        ApplyTime {
            per_minute,
            full: per_minute * BUCKET.as_secs_f64() / 60.0,
            accounts: Mutex::new(HashMap::new()),
            turns: Turns::new(threads),
        }
    }

    /// Waits for `user`'s turn on the apply threads: one of the jobs the account may have
    /// there at once, held until the permit is dropped.
    pub async fn turn(&self, user: i64) -> OwnedSemaphorePermit {
        self.turns.take(user).await
    }

    /// Takes `spent` from `user`'s bucket.
    pub fn charge(&self, user: i64, spent: Duration) {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().expect("apply time");
        let left = self.refilled(accounts.get(&user).copied(), now) - spent.as_secs_f64();
        accounts.insert(user, Bucket { left, at: now });
        if accounts.len() > KEPT {
            accounts.retain(|_, bucket| self.refilled(Some(*bucket), now) < self.full);
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
            None => self.full,
            Some(b) => {
                let refill = now.duration_since(b.at).as_secs_f64() * self.per_minute / 60.0;
                (b.left + refill).min(self.full)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_past_its_bucket_waits_until_it_has_refilled_what_it_owes() {
        // Refilled by 60 s a minute, so holding 10 s.
        let time = ApplyTime::new(Duration::from_secs(60), 2);
        time.charge(1, Duration::from_secs(9));
        assert_eq!(time.wait(1), Duration::ZERO, "within what the bucket holds");
        time.charge(1, Duration::from_secs(3));
        // Two seconds owed, refilled at a second a second.
        let wait = time.wait(1).as_secs_f64();
        assert!((1.9..=2.0).contains(&wait), "{wait}");
        assert_eq!(time.wait(2), Duration::ZERO, "another account's own bucket");
        // A bucket holds ten seconds of its allowance: 100 ms of 600 ms a minute.
        let slow = ApplyTime::new(Duration::from_millis(600), 2);
        slow.charge(1, Duration::from_millis(150));
        let wait = slow.wait(1).as_secs_f64();
        assert!(
            (4.9..=5.0).contains(&wait),
            "50 ms owed at 10 ms a second: {wait}"
        );
    }

    #[test]
    fn full_buckets_are_forgotten_and_owing_ones_kept() {
        let time = ApplyTime::new(Duration::from_secs(60), 2);
        time.charge(0, Duration::from_secs(11));
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
