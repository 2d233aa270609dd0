//! Sync with the server from an app: sign in, sync now with a listener and a handle that
//! cancels (also when dropped), or `await` a sync from Kotlin coroutines, Swift
//! concurrency or Python asyncio; fetch photo originals on demand.
//!
//! Every sync runs as a task on the library's runtime (`crate::runtime`). It reaches the
//! store through `StoreAccess`, one local step at a time, so other calls on the store
//! proceed while the sync waits for the network.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use anjian_core as core;
use anjian_core::sync::client::{self, StoreAccess};
use futures_util::FutureExt;
use tokio::sync::{Mutex, oneshot};

use crate::error::AnjianError;
use crate::records::SyncResult;
use crate::runtime;
use crate::store::InspectorStore;

/// How far a sync has come; reported after every frame from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// Case documents finished in this round.
    pub documents_done: u64,
    /// Case documents to exchange in this round.
    pub documents_total: u64,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Bytes received so far.
    pub bytes_received: u64,
}

/// What an app implements to follow a sync started with `sync_now`. Methods are called on
/// a library thread: keep them short and hand over to the UI thread; never call the store
/// from them. After progress reports, exactly one of `on_finished` and `on_failed` is called.
#[uniffi::export(foreign)]
pub trait SyncListener: Send + Sync {
    /// Progress, after every frame from the server.
    fn on_progress(&self, progress: SyncProgress);
    /// The sync finished.
    fn on_finished(&self, result: SyncResult);
    /// The sync failed (`Network`, `Auth`, …) or was cancelled (`Cancelled`).
    fn on_failed(&self, error: AnjianError);
}

/// What an app implements to follow the progress of an awaited `sync`; called on a
/// library thread like `SyncListener`.
#[uniffi::export(foreign)]
pub trait SyncProgressListener: Send + Sync {
    /// Progress, after every frame from the server.
    fn on_progress(&self, progress: SyncProgress);
}

/// A sync in progress. `cancel()` stops it; so does dropping the handle (Kotlin `close()`,
/// Swift releasing it, Python losing the last reference): keep it until the listener hears
/// the end.
#[derive(uniffi::Object)]
pub struct SyncHandle {
    cancel: StdMutex<Option<oneshot::Sender<()>>>,
    finished: Arc<AtomicBool>,
}

#[uniffi::export]
impl SyncHandle {
    /// Stops the sync; the listener gets `on_failed(Cancelled)` unless it already ended.
    /// What was already exchanged stays, and the next sync continues from there.
    pub fn cancel(&self) {
        let sender = match self.cancel.lock() {
            Ok(mut sender) => sender.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(sender) = sender {
            // The task may have ended already; then there is nothing to stop.
            let _ = sender.send(());
        }
    }

    /// Whether the sync has ended (finished, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[uniffi::export]
impl InspectorStore {
    /// Signs in to the server (`http://host:port`) and binds this device to the user;
    /// returns the token to sync with (keep it in the platform's secure storage). Wrong
    /// credentials are `Auth`, an unreachable server `Network`. Blocks: call it off the
    /// UI thread.
    pub fn login(
        &self,
        server: String,
        username: String,
        password: String,
        device_name: String,
    ) -> Result<String, AnjianError> {
        let runtime = runtime()?;
        let (actor, key, timeout) =
            self.with_store(|s| Ok((s.device_id(), s.public_key(), s.network_timeout())))?;
        // The store is not held while the server answers.
        let signed_in = runtime.block_on(client::login(
            &server,
            &username,
            &password,
            &device_name,
            &actor,
            &key,
            timeout,
        ))?;
        let server = server.trim_end_matches('/');
        self.with_store(|s| {
            Ok(s.keep_sign_in(
                server,
                &signed_in.server_key,
                signed_in.certificate.as_deref(),
            )?)
        })?;
        Ok(signed_in.token)
    }

    /// Forgets the server key this device trusts (the certificates it vouched for, and what
    /// the device learned of revoked devices):
    /// the next `login` trusts the key its server answers with. A device trusts one
    /// server key, and a sign-in answered with another is `Auth`: call this only once an
    /// administrator has confirmed that the server's key was changed on purpose.
    pub fn forget_server_keys(&self) -> Result<(), AnjianError> {
        self.with_store(|s| Ok(s.forget_server_keys()?))
    }

    /// Starts a sync on a library thread and returns at once: pushes this device's changes
    /// and photos, pulls every case the inspector may see that changed. The listener hears
    /// progress and the end; the handle cancels.
    pub fn sync_now(
        self: Arc<Self>,
        server: String,
        token: String,
        listener: Arc<dyn SyncListener>,
    ) -> Result<Arc<SyncHandle>, AnjianError> {
        self.check_usable()?;
        let runtime = runtime()?;
        let (cancel, cancelled) = oneshot::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(SyncHandle {
            cancel: StdMutex::new(Some(cancel)),
            finished: finished.clone(),
        });
        let progress_listener = listener.clone();
        runtime.spawn(async move {
            let outcome = self
                .run_sync(server, token, cancelled, move |progress| {
                    tell(|| progress_listener.on_progress(progress));
                })
                .await;
            finished.store(true, Ordering::SeqCst);
            match outcome {
                Ok(result) => tell(|| listener.on_finished(result)),
                Err(error) => tell(|| listener.on_failed(error)),
            }
        });
        Ok(handle)
    }

    /// Syncs and returns what it did: the same as `sync_now`, as a `suspend`/`async`
    /// function. Cancelling the awaiting coroutine or task cancels the sync.
    pub async fn sync(
        self: Arc<Self>,
        server: String,
        token: String,
        progress: Option<Arc<dyn SyncProgressListener>>,
    ) -> Result<SyncResult, AnjianError> {
        self.check_usable()?;
        let runtime = runtime()?;
        // The sender lives as long as this future: when the app cancels the await, UniFFI
        // drops the future, the sender goes with it, and the task sees the cancellation.
        let (_cancel_on_drop, cancelled) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            self.run_sync(server, token, cancelled, move |p| {
                if let Some(listener) = &progress {
                    tell(|| listener.on_progress(p));
                }
            })
            .await
        });
        task.await.map_err(|e| AnjianError::Internal {
            reason: format!("the sync task ended abnormally: {e}"),
        })?
    }

    /// The original of a photo, from this device if it holds it, else fetched from the
    /// server (originals are not downloaded by sync), checked against its hash and kept.
    /// Blocks: call it off the UI thread.
    pub fn fetch_original(
        &self,
        server: String,
        token: String,
        sha256: String,
    ) -> Result<Vec<u8>, AnjianError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(AnjianError::Internal {
                reason: "fetch_original was called from inside the sync runtime; call it from an app thread".to_owned(),
            });
        }
        self.check_usable()?;
        let runtime = runtime()?;
        let mut access = self.access();
        let fetched = catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(client::fetch_blob(
                &mut access,
                &server,
                &token,
                &sha256,
                "original",
            ))
        }));
        match fetched {
            Ok(result) => Ok(result?),
            Err(panic) => {
                self.broken.store(true, Ordering::SeqCst);
                Err(AnjianError::from_panic(panic))
            }
        }
    }
}

impl InspectorStore {
    /// One sync, on the runtime: waits for the store, runs the core's sync unless
    /// cancelled first, remembers the result. A panic becomes `Internal` and stops the
    /// store, as in `with_store`.
    async fn run_sync(
        &self,
        server: String,
        token: String,
        cancelled: oneshot::Receiver<()>,
        mut progress: impl FnMut(SyncProgress) + Send,
    ) -> Result<SyncResult, AnjianError> {
        self.check_usable()?;
        let work = async {
            let _one_sync_at_a_time = self.syncing.lock().await;
            let mut access = self.access();
            let report = client::sync(&mut access, &server, &token, |p| progress(p.into())).await?;
            Ok::<_, AnjianError>(SyncResult::new(&server, report))
        };
        // Cancelling drops the core's sync future at an `.await`, which the core handles
        // like a connection cut there: what was committed stays, the next sync resumes.
        // A dropped sender (handle dropped, await cancelled) counts as a cancel too.
        let result = tokio::select! {
            biased;
            _ = cancelled => Err(AnjianError::Cancelled),
            outcome = AssertUnwindSafe(work).catch_unwind() => match outcome {
                Ok(result) => result,
                Err(panic) => {
                    self.broken.store(true, Ordering::SeqCst);
                    Err(AnjianError::from_panic(panic))
                }
            },
        };
        match &result {
            Ok(done) => {
                tracing::info!(server = %done.server, documents = done.documents, "sync finished");
                let mut last = self.last_sync.lock().unwrap_or_else(|p| p.into_inner());
                *last = Some(done.clone());
            }
            Err(error) => tracing::warn!(%error, "sync failed"),
        }
        result
    }
}

/// The store as the sync client reaches it: locked for one local step at a time.
pub(crate) struct Access {
    inner: Arc<Mutex<Option<core::Store>>>,
}

impl InspectorStore {
    pub(crate) fn access(&self) -> Access {
        Access {
            inner: self.inner.clone(),
        }
    }
}

impl StoreAccess for Access {
    fn with<R: Send>(
        &mut self,
        step: impl FnOnce(&mut core::Store) -> core::Result<R> + Send,
    ) -> impl Future<Output = core::Result<R>> + Send {
        let inner = self.inner.clone();
        async move {
            let mut guard = inner.lock().await;
            let store = guard.as_mut().ok_or_else(|| {
                core::Error::NotAllowed("the store was closed during the sync".to_owned())
            })?;
            step(store)
        }
    }
}

/// Calls the app's listener; an exception thrown there is the app's bug, logged, and must
/// neither stop the sync nor mark the store broken.
fn tell(call: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(call)).is_err() {
        tracing::warn!("a sync listener method failed; the sync goes on");
    }
}

impl From<core::sync::SyncProgress> for SyncProgress {
    fn from(value: core::sync::SyncProgress) -> Self {
        SyncProgress {
            documents_done: value.documents_done as u64,
            documents_total: value.documents_total as u64,
            bytes_sent: value.bytes_sent,
            bytes_received: value.bytes_received,
        }
    }
}
