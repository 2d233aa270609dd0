//! Bounded pools of threads for the work that must not run on the async workers:
//! applying and saving Automerge documents, decoding photos, hashing passwords. Each pool
//! has a fixed number of threads and a bounded queue: `run` waits for room (back-pressure
//! on whoever sends the work), `try_run` refuses at once when the queue is full (the
//! caller answers 503), and urgent work goes ahead of the rest.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AppError, AppResult};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queues {
    urgent: VecDeque<Job>,
    normal: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

/// A pool of threads with a bounded queue.
pub struct Pool {
    name: &'static str,
    shared: Arc<Shared>,
    /// Room: threads + queue length; a job holds a permit until it has run.
    room: Arc<Semaphore>,
    /// Room of its own for urgent work, so that a queue full of other work never turns it
    /// away.
    urgent_room: Arc<Semaphore>,
}

/// The pool's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Pool {
    /// Starts `threads` threads named `name`, with room for `queue` waiting jobs.
    pub fn start(name: &'static str, threads: usize, queue: usize) -> Pool {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("anjian-{name}-{i}"))
                .spawn(move || worker(&shared))
                .expect("a pool thread starts");
        }
        Pool {
            name,
            shared,
            room: Arc::new(Semaphore::new(threads.max(1) + queue)),
            urgent_room: Arc::new(Semaphore::new(queue.max(1))),
        }
    }

    /// Runs `f` on the pool, waiting for room first.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let permit = self
            .room
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| self.stopped())?;
        self.submit(permit, false, f).await
    }

    /// Runs `f` on the pool, or answers `Busy` at once when its queue is full. Urgent
    /// work has room of its own and runs before the rest of the queue.
    pub async fn try_run<T: Send + 'static>(
        &self,
        urgent: bool,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<AppResult<T>, Busy> {
        let room = if urgent {
            &self.urgent_room
        } else {
            &self.room
        };
        let permit = room.clone().try_acquire_owned().map_err(|_| Busy)?;
        Ok(self.submit(permit, urgent, f).await)
    }

    /// Jobs waiting or running.
    pub fn in_use(&self, capacity: usize) -> usize {
        capacity.saturating_sub(self.room.available_permits())
    }

    async fn submit<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        urgent: bool,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(f));
            drop(permit);
            let _ = reply.send(outcome);
        });
        {
            let mut queues = self.shared.queues.lock().unwrap_or_else(|p| p.into_inner());
            if urgent {
                queues.urgent.push_back(job);
            } else {
                queues.normal.push_back(job);
            }
        }
        self.shared.ready.notify_one();
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(AppError::Internal(format!(
                "a {} job failed unexpectedly",
                self.name
            ))),
            Err(_) => Err(self.stopped()),
        }
    }

    fn stopped(&self) -> AppError {
        AppError::Internal(format!("the {} pool has stopped", self.name))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = true;
        self.shared.ready.notify_all();
    }
}

fn worker(shared: &Shared) {
    loop {
        let job = {
            let mut queues = shared.queues.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(job) = queues
                    .urgent
                    .pop_front()
                    .or_else(|| queues.normal.pop_front())
                {
                    break job;
                }
                if queues.closed {
                    return;
                }
                queues = shared.ready.wait(queues).unwrap_or_else(|p| p.into_inner());
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_busy_and_urgent_work_has_room_and_goes_first() {
        let pool = Arc::new(Pool::start("test", 1, 2));
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let order = Arc::new(Mutex::new(Vec::new()));
        // Occupies the only thread until released.
        let p0 = pool.clone();
        let blocker = tokio::spawn(async move { p0.run(move || held.recv().ok()).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut queued = Vec::new();
        for name in ["first", "second"] {
            let (p, o) = (pool.clone(), order.clone());
            queued.push(tokio::spawn(async move {
                p.try_run(false, move || o.lock().expect("order").push(name))
                    .await
            }));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(pool.try_run(false, || ()).await.err(), Some(Busy));
        let (p, o) = (pool.clone(), order.clone());
        let urgent = tokio::spawn(async move {
            p.try_run(true, move || o.lock().expect("order").push("urgent"))
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        hold.send(()).expect("release");
        blocker.await.expect("join").expect("ran");
        urgent.await.expect("join").expect("room").expect("ran");
        for job in queued {
            job.await.expect("join").expect("room").expect("ran");
        }
        assert_eq!(*order.lock().expect("order"), ["urgent", "first", "second"]);
    }
}
