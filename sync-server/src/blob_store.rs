//! Where stored blobs live, behind one interface: a folder (the default, `DATA/blobs/`) or
//! an S3-compatible object store (`s3://bucket/prefix?endpoint=URL`), which any number of
//! server processes may share. A blob is put here whole, once verified (`blobs.rs`), and
//! counts as stored only once the store has it durably: in a folder, after the file and
//! its folder are synced; in an object store, after it answered the upload. Unfinished
//! uploads are not here but in the database (`storage/uploads.rs`), so that the next part
//! of an upload may reach any server process.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{AppError, AppResult};

/// Bytes of each part of a multipart upload to an object store but the last: S3's
/// smallest part. A blob no larger goes in one request.
pub const PART_BYTES: usize = 5 * 1024 * 1024;

/// The stored blobs, and the locks of blobs being written by this process.
pub struct BlobStore {
    place: Place,
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Each account's turns at transferring blobs (`TRANSFERS_PER_USER`).
    turns: std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Semaphore>>>,
}

/// Blob transfers one account holds at once in this process; its others wait for one of
/// these before they take one of the server's (`BLOB_TRANSFERS`), so that an account
/// opening many slow transfers (a body sent a byte at a time) holds a few, not all.
pub const TRANSFERS_PER_USER: usize = 4;

enum Place {
    Folder(PathBuf),
    Objects {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

/// The bytes of a stored blob as they are read.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

impl BlobStore {
    /// The blobs at `location`: `s3://bucket[/prefix]?endpoint=URL[&region=R]` for an
    /// S3-compatible object store (credentials from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, as every S3 client reads them; `&anonymous=true` for a
    /// store that lets anyone in), or a folder's path; without one, `blobs/` in the data
    /// folder `data`.
    pub fn open(location: Option<&str>, data: &Path) -> AppResult<BlobStore> {
        let place = match location {
            Some(url) if url.starts_with("s3://") => objects(url)?,
            Some(folder) => Place::Folder(PathBuf::from(folder)),
            None => Place::Folder(data.join("blobs")),
        };
        if let Place::Folder(root) = &place {
            // Earlier versions kept unfinished uploads here; the database holds them now.
            let _ = std::fs::remove_dir_all(root.join("partial"));
        }
        Ok(BlobStore {
            place,
            locks: std::sync::Mutex::default(),
            turns: std::sync::Mutex::default(),
        })
    }

    /// The turns at transferring blobs of the account `user_id`.
    pub fn turns_of(&self, user_id: i64) -> Arc<tokio::sync::Semaphore> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        turns
            .entry(user_id)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(TRANSFERS_PER_USER)))
            .clone()
    }

    /// The lock of one blob (by its hash) in this process, so that concurrent uploads of
    /// the same photo (twenty devices of a joint team) are verified and stored once. Give
    /// it back with `unlock`.
    pub fn lock_for(&self, sha256: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(sha256.to_owned()).or_default().clone()
    }

    /// Gives back a lock taken with `lock_for` (drop your `Arc` first): it is freed once no
    /// one else holds it.
    pub fn unlock(&self, sha256: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks
            .get(sha256)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(sha256);
        }
    }

    /// Stores a verified blob durably. Putting the same blob twice (two processes finishing
    /// one upload) stores the same bytes.
    pub async fn put(&self, sha256: &str, bytes: Bytes) -> AppResult<()> {
        match &self.place {
            Place::Folder(root) => {
                let target = final_path(root, sha256);
                tokio::task::spawn_blocking(move || write_durably(&target, &bytes))
                    .await
                    .map_err(|e| AppError::Internal(format!("blob storage: {e}")))?
                    .map_err(io)
            }
            Place::Objects { store, prefix } => {
                put_object(store.as_ref(), &object_path(prefix, sha256), bytes).await
            }
        }
    }

    /// The bytes of a stored blob as they are read, or `None` if the store has no such blob.
    pub async fn get(&self, sha256: &str) -> AppResult<Option<ByteStream>> {
        match &self.place {
            Place::Folder(root) => match tokio::fs::File::open(final_path(root, sha256)).await {
                Ok(file) => Ok(Some(file_stream(file).boxed())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(e)),
            },
            Place::Objects { store, prefix } => {
                match store.get(&object_path(prefix, sha256)).await {
                    Ok(got) => Ok(Some(
                        got.into_stream().map_err(std::io::Error::other).boxed(),
                    )),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(objects_error(e)),
                }
            }
        }
    }

    /// The whole bytes of a stored blob, or `None` if the store has no such blob.
    pub async fn read(&self, sha256: &str) -> AppResult<Option<Vec<u8>>> {
        let Some(mut stream) = self.get(sha256).await? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        while let Some(part) = stream.next().await {
            bytes.extend_from_slice(&part.map_err(io)?);
        }
        Ok(Some(bytes))
    }

    /// `read`, from a thread that may block (not an async worker) inside the runtime.
    pub fn read_blocking(&self, sha256: &str) -> AppResult<Option<Vec<u8>>> {
        tokio::runtime::Handle::current().block_on(self.read(sha256))
    }
}

/// The byte ranges a blob of `len` bytes is uploaded in: `PART_BYTES` each, the last
/// one the rest.
pub fn parts(len: usize) -> Vec<Range<usize>> {
    (0..len)
        .step_by(PART_BYTES)
        .map(|start| start..(start + PART_BYTES).min(len))
        .collect()
}

/// The object store of an `s3://` location.
fn objects(url: &str) -> AppResult<Place> {
    let bad = |why: String| AppError::BadRequest(format!("blobs {url:?}: {why}"));
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let bucket = parsed
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| bad("no bucket: s3://BUCKET[/PREFIX]?endpoint=URL".into()))?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (key, value) in parsed.query_pairs() {
        builder = match key.as_ref() {
            "endpoint" => builder
                .with_allow_http(value.starts_with("http://"))
                .with_endpoint(value.as_ref()),
            "region" => builder.with_region(value.as_ref()),
            // For a store that lets anyone in (a throwaway one for tests): no credentials
            // are looked for and requests go unsigned.
            "anonymous" if value == "true" => builder.with_skip_signature(true),
            other => {
                return Err(bad(format!(
                    "unknown setting {other:?} (endpoint, region, anonymous=true)"
                )));
            }
        };
    }
    let store = builder.build().map_err(|e| bad(e.to_string()))?;
    Ok(Place::Objects {
        store: Arc::new(store),
        prefix: parsed.path().trim_matches('/').to_owned(),
    })
}

fn object_path(prefix: &str, sha256: &str) -> object_store::path::Path {
    if prefix.is_empty() {
        object_store::path::Path::from(sha256)
    } else {
        object_store::path::Path::from(format!("{prefix}/{sha256}"))
    }
}

/// Puts `bytes` at `path`: in one request when they fit in one part, else as a multipart
/// upload in `parts`, aborted if any part fails.
async fn put_object(
    store: &dyn ObjectStore,
    path: &object_store::path::Path,
    bytes: Bytes,
) -> AppResult<()> {
    if bytes.len() <= PART_BYTES {
        store
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(objects_error)?;
        return Ok(());
    }
    let mut upload = store.put_multipart(path).await.map_err(objects_error)?;
    let sent = futures_util::future::try_join_all(
        parts(bytes.len())
            .into_iter()
            .map(|range| upload.put_part(PutPayload::from(bytes.slice(range)))),
    )
    .await;
    let done = match sent {
        Ok(_) => upload.complete().await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        let _ = upload.abort().await;
        return Err(objects_error(e));
    }
    Ok(())
}

fn final_path(root: &Path, sha256: &str) -> PathBuf {
    root.join(&sha256[..2]).join(sha256)
}

/// Writes `bytes` to `target` so that it is there whole or not at all, and durably: to a
/// file beside it, synced, renamed into place, and the folder synced.
fn write_durably(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let folder = target.parent().expect("a blob path has a folder");
    std::fs::create_dir_all(folder)?;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let temporary = folder.join(format!(".{unique}.part"));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, target)?;
        std::fs::File::open(folder)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// The bytes of `file`, 64 KiB at a time.
fn file_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.truncate(n);
        Ok(Some((Bytes::from(buffer), file)))
    })
}

fn io(e: std::io::Error) -> AppError {
    AppError::Internal(format!("blob storage: {e}"))
}

fn objects_error(e: object_store::Error) -> AppError {
    AppError::Internal(format!("object storage: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_the_smallest_s3_part_but_the_last() {
        assert!(parts(0).is_empty());
        assert_eq!(parts(1).len(), 1);
        assert_eq!(parts(1)[0], 0..1);
        assert_eq!(parts(PART_BYTES).len(), 1);
        assert_eq!(
            parts(PART_BYTES + 1),
            vec![0..PART_BYTES, PART_BYTES..PART_BYTES + 1]
        );
        let len = 40 * 1024 * 1024 + 17;
        let all = parts(len);
        assert_eq!(all.len(), 9);
        assert!(all[..8].iter().all(|r| r.len() == PART_BYTES));
        assert_eq!(all.last().map(|r| r.end), Some(len));
        assert!(all.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn an_s3_location_names_a_bucket_and_only_known_settings() {
        let data = Path::new("data");
        for bad in [
            "s3://",
            "s3:///prefix",
            "s3://bucket?endpoint=http://127.0.0.1:1&colour=blue",
        ] {
            assert!(
                matches!(
                    BlobStore::open(Some(bad), data),
                    Err(AppError::BadRequest(_))
                ),
                "{bad}"
            );
        }
        assert!(
            BlobStore::open(
                Some("s3://anjian/province/shanghai?endpoint=http://127.0.0.1:1&region=us-east-1"),
                data,
            )
            .is_ok()
        );
    }

    #[tokio::test]
    async fn a_folder_keeps_a_blob_whole_and_answers_none_for_another() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::open(None, dir.path()).expect("folder");
        let sha256 = "ab".repeat(32);
        store
            .put(&sha256, Bytes::from_static(b"photo"))
            .await
            .expect("put");
        assert_eq!(
            store.read(&sha256).await.expect("read"),
            Some(b"photo".to_vec())
        );
        assert_eq!(store.read(&"cd".repeat(32)).await.expect("read"), None);
        let folder = dir.path().join("blobs").join("ab");
        let names: Vec<String> = std::fs::read_dir(&folder)
            .expect("folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![sha256], "no temporary file is left");
    }
}
