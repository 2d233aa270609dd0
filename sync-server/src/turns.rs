//! Turns: how many jobs one account may have on a pool of threads at once, all but one of
//! the threads (one, with a single thread), so that a burst of one account's costliest
//! jobs (sync messages on the apply threads, a case in full or a bulletin on the read
//! threads) leaves a thread for everyone else. An account's jobs beyond its turns wait,
//! one account's only. Each server process keeps its own: its threads are what they
//! protect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Accounts with turns kept before those with no job running or waiting are forgotten.
const KEPT: usize = 1_024;

/// The turns of each account on one pool.
pub struct Turns {
    /// Jobs one account may have on the pool at once.
    per_account: usize,
    /// The turns of each account with jobs running or waiting.
    running: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

impl Turns {
    /// Turns on a pool of `threads` threads.
    pub fn new(threads: usize) -> Turns {
        Turns {
            per_account: threads.saturating_sub(1).max(1),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for one of `user`'s turns, held until the permit is dropped.
    pub async fn take(&self, user: i64) -> OwnedSemaphorePermit {
        let turns = {
            let mut running = self.running.lock().expect("turns");
            if running.len() > KEPT {
                // Each permit, and each job waiting for one, holds its account's turns.
                running.retain(|_, turns| Arc::strong_count(turns) > 1);
            }
            running
                .entry(user)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_account)))
                .clone()
        };
        turns.acquire_owned().await.expect("turns are never closed")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_account_takes_all_but_one_of_the_threads_at_once() {
        let turns = Arc::new(Turns::new(3));
        let first = turns.take(1).await;
        let _second = turns.take(1).await;
        let now = |turn| tokio::time::timeout(Duration::ZERO, turn);
        assert!(
            now(turns.take(2)).await.is_ok(),
            "another account's turn at once"
        );
        let third = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take(1).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "a third job of the account waits");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), third).await;
        assert!(
            third.is_ok(),
            "the third job's turn, once the first is done"
        );
        let single = Turns::new(1);
        let _only = single.take(1).await;
        assert!(
            now(single.take(1)).await.is_err(),
            "one thread, one job an account"
        );
        assert!(
            now(single.take(2)).await.is_ok(),
            "and one of another account"
        );
    }
}
