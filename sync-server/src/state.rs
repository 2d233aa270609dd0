//! What every handler shares: settings, storage, the pools that keep heavy work off the
//! async workers, the documents in use, the open connections and the sign-in limiter.
//! It depends only on the modules below it, never on handlers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::apply_time::ApplyTime;
use crate::blob_store::BlobStore;
use crate::config::Settings;
use crate::error::{AppError, AppResult};
use crate::hub::Hub;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::signin::SignIn;
use crate::storage::{self, Storage};
use crate::turns::Turns;

/// What every handler shares.
pub struct AppState {
    /// Settings in force.
    pub settings: Settings,
    /// The database.
    pub storage: Arc<Storage>,
    /// The thread that writes (and group-commits) incoming changes.
    pub writer: storage::Writer,
    /// Threads that apply, judge and save documents.
    pub apply: Pool,
    /// What each account's sync messages took of the apply threads.
    pub apply_time: ApplyTime,
    /// Threads that answer heavy reads (`reading`).
    pub reads: Pool,
    /// Each account's turns on the read threads.
    pub read_turns: Turns,
    /// Room for the writes run off the async workers (`writing`).
    writes: tokio::sync::Semaphore,
    /// Threads that decode photos.
    pub photos: Pool,
    /// Threads that hash and check passwords.
    pub passwords: Pool,
    /// Stored blobs (a folder or an object store) and the locks of blobs being written.
    pub blobs: BlobStore,
    /// Turns to build an evidence package in memory (`PACKAGES_AT_ONCE`).
    pub packages: tokio::sync::Semaphore,
    /// Each account's turns at those: all but one of them, so that one account's
    /// downloads at once never hold every turn and everyone else's wait behind them.
    pub package_turns: Turns,
    /// Documents in use.
    pub hub: Hub,
    /// Open sync connections, for revocation.
    pub live: Arc<Live>,
    /// Sign-in attempts, for their delays.
    pub signin: SignIn,
    /// Counters.
    pub metrics: Metrics,
    /// The server's automerge-repo peer id.
    pub peer_id: String,
    /// Flips to `true` when the server shuts down (sync connections then close).
    pub shutdown: watch::Receiver<bool>,
}

/// Jobs that may wait for an apply thread (more wait for room: back-pressure).
const APPLY_QUEUE: usize = 64;
/// Reads that may wait for a read thread (more wait for room).
const READ_QUEUE: usize = 64;
/// Photos that may wait for a photo thread.
const PHOTO_QUEUE: usize = 8;
/// Evidence packages built at once on the pages (each holds its photos in memory, up to
/// `evidence::PAGE_PHOTO_BYTES` and their encoding); more wait their turn.
const PACKAGES_AT_ONCE: usize = 2;

impl AppState {
    /// Opens the data folder and builds the shared state.
    pub fn open(settings: Settings, shutdown: watch::Receiver<bool>) -> AppResult<Arc<AppState>> {
        std::fs::create_dir_all(&settings.data).map_err(|e| {
            AppError::Internal(format!("data folder {}: {e}", settings.data.display()))
        })?;
        let threads = settings.limits.read_threads + settings.limits.apply_threads;
        let storage = Arc::new(Storage::open_for(&settings.database(), threads)?);
        storage::prepare_sign_in();
        let peer_id = format!("anjian-sync-server-{}", &storage.storage_id()[..8]);
        let limits = &settings.limits;
        Ok(Arc::new(AppState {
            writer: storage::Writer::start(storage.clone()),
            apply: Pool::start("apply", limits.apply_threads, APPLY_QUEUE),
            apply_time: ApplyTime::new(
                Duration::from_millis(limits.apply_ms_per_user_per_minute),
                limits.apply_threads,
            ),
            reads: Pool::start("reads", limits.read_threads, READ_QUEUE),
            read_turns: Turns::new(limits.read_threads),
            writes: tokio::sync::Semaphore::new(storage::WRITES_AT_ONCE),
            photos: Pool::start("photos", limits.photo_threads, PHOTO_QUEUE),
            passwords: Pool::start("passwords", limits.password_threads, limits.sign_in_queue),
            blobs: BlobStore::open(settings.blobs.as_deref(), &settings.data)?,
            packages: tokio::sync::Semaphore::new(PACKAGES_AT_ONCE),
            package_turns: Turns::new(PACKAGES_AT_ONCE),
            signin: SignIn::new(limits.clone(), storage.clone()),
            storage,
            hub: Hub::default(),
            live: Arc::new(Live::default()),
            metrics: Metrics::default(),
            peer_id,
            shutdown,
            settings,
        }))
    }

    /// Runs `f` for account `user` on the read threads: a read that walks many rows or a
    /// whole case (a list, a case in full, a bulletin, a register, the catalog) must not
    /// hold an async worker, which the sync connections share. An account's reads take
    /// turns (`turns`): one account's many at once leave a read thread for everyone else.
    pub async fn reading<T: Send + 'static>(
        self: &Arc<Self>,
        user: i64,
        f: impl FnOnce(&AppState) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let _turn = self.read_turns.take(user).await;
        let app = self.clone();
        self.reads.run(move || f(&app)).await?
    }

    /// Runs `f`, which writes to the database, off the async workers: a write waits for
    /// the writer connection, which a commit may hold for a while, and an async worker
    /// waiting on it would hold up every socket it serves.
    pub async fn writing<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Storage) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        // A few at once: each holds a connection, which the async workers' small reads
        // must still find (`storage::CONNECTIONS_BESIDE_THREADS`).
        let _room = self
            .writes
            .acquire()
            .await
            .map_err(|_| AppError::Internal("writes closed".into()))?;
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || f(&storage))
            .await
            .map_err(|e| AppError::Internal(format!("a write ended early: {e}")))?
    }
}
