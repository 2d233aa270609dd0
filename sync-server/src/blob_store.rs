//! Blob files under the data folder: stored blobs by hash, unfinished uploads beside
//! them, one lock per blob being written, and the durability steps (fsync the bytes,
//! rename, fsync the folder) that come before anyone is told a blob is stored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{AppError, AppResult};

/// The blob files.
pub struct BlobStore {
    root: PathBuf,
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl BlobStore {
    /// The blobs under `root`.
    pub fn new(root: PathBuf) -> BlobStore {
        BlobStore {
            root,
            locks: std::sync::Mutex::default(),
        }
    }

    /// The lock of one blob (by its hash), so that concurrent uploads of the same photo
    /// (twenty devices of a joint team) are stored once; or of one user's parked uploads
    /// (`user:ID`). Give it back with `unlock`.
    pub fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.to_owned()).or_default().clone()
    }

    /// Gives back a lock taken with `lock_for` (drop your `Arc` first): it is freed once no
    /// one else holds it.
    pub fn unlock(&self, key: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks
            .get(key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(key);
        }
    }

    /// Where a stored blob lives.
    pub fn final_path(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }

    /// Where an unfinished upload lives.
    pub fn partial_path(&self, sha256: &str) -> PathBuf {
        self.partial_folder().join(format!("{sha256}.part"))
    }

    fn partial_folder(&self) -> PathBuf {
        self.root.join("partial")
    }

    /// Bytes of an unfinished upload held.
    pub async fn partial_len(&self, sha256: &str) -> u64 {
        tokio::fs::metadata(self.partial_path(sha256))
            .await
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Writes `bytes` at `offset` of an unfinished upload and makes them durable.
    pub async fn write_partial(
        &self,
        sha256: &str,
        offset: u64,
        bytes: &[u8],
        truncate: bool,
    ) -> AppResult<()> {
        use tokio::io::{AsyncSeekExt, AsyncWriteExt};
        let path = self.partial_path(sha256);
        tokio::fs::create_dir_all(self.partial_folder())
            .await
            .map_err(io)?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(truncate)
            .open(&path)
            .await
            .map_err(io)?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io)?;
        file.write_all(bytes).await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        Ok(())
    }

    /// Moves a verified upload to its final place durably: the file was synced as it was
    /// written; the rename is made durable by syncing both folders.
    pub async fn store(&self, sha256: &str) -> AppResult<()> {
        let target = self.final_path(sha256);
        let folder = target
            .parent()
            .expect("a blob path has a folder")
            .to_owned();
        tokio::fs::create_dir_all(&folder).await.map_err(io)?;
        tokio::fs::rename(self.partial_path(sha256), &target)
            .await
            .map_err(io)?;
        sync_folder(&folder).await?;
        sync_folder(&self.partial_folder()).await
    }

    /// Removes an unfinished upload.
    pub async fn discard(&self, sha256: &str) {
        let _ = tokio::fs::remove_file(self.partial_path(sha256)).await;
    }

    /// Unfinished uploads untouched for longer than `age`, by hash.
    pub async fn stale(&self, age: Duration) -> Vec<String> {
        let Ok(mut entries) = tokio::fs::read_dir(self.partial_folder()).await else {
            return Vec::new();
        };
        let mut stale = Vec::new();
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(sha256) = name.strip_suffix(".part")
                && self
                    .untouched_for(sha256)
                    .await
                    .is_some_and(|idle| idle > age)
            {
                stale.push(sha256.to_owned());
            }
        }
        stale
    }

    /// How long the unfinished upload of `sha256` has been untouched, if there is one.
    pub async fn untouched_for(&self, sha256: &str) -> Option<Duration> {
        let modified = tokio::fs::metadata(self.partial_path(sha256))
            .await
            .and_then(|m| m.modified())
            .ok()?;
        SystemTime::now().duration_since(modified).ok()
    }
}

fn io(e: std::io::Error) -> AppError {
    AppError::Internal(format!("blob storage: {e}"))
}

/// Makes the entries of `folder` (a rename into or out of it) durable.
async fn sync_folder(folder: &Path) -> AppResult<()> {
    let folder = folder.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&folder)?.sync_all())
        .await
        .map_err(|e| AppError::Internal(format!("blob storage: {e}")))?
        .map_err(io)
}
