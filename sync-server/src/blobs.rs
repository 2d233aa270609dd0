//! Blobs over HTTP (`/api/v1/blobs/{sha256}`): photo originals and thumbnails, addressed by
//! the SHA-256 of their bytes. Uploads resume: `HEAD` tells how many bytes the server holds
//! (`Upload-Offset`), `PATCH` appends at that offset (with `Upload-Length`, the whole size),
//! `PUT` sends a blob whole. A blob counts as stored only once its hash matches and it is an
//! image within the same limits as the apps'. Only blobs that a case the user may see
//! mentions are accepted or served; any other is answered as one that does not exist.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anjian_core::photo::{self, PhotoLimits};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rusqlite::{OptionalExtension, params};

use crate::AppState;
use crate::api::AuthUser;
use crate::error::{AppError, AppResult};
use crate::users::{Role, User};

/// Header: bytes of the blob the server holds, or where a `PATCH` starts.
pub const UPLOAD_OFFSET: &str = "upload-offset";
/// Header: the whole blob's size, on `PATCH`.
pub const UPLOAD_LENGTH: &str = "upload-length";
/// Header: `true` once the blob is stored whole and verified.
pub const UPLOAD_COMPLETE: &str = "upload-complete";

/// One lock per blob being written, so that concurrent uploads of the same photo (twenty
/// devices of a joint team) are stored once.
#[derive(Default)]
pub struct BlobLocks {
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl BlobLocks {
    fn lock_for(&self, sha256: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(sha256.to_owned()).or_default().clone()
    }
}

fn folder(app: &AppState) -> PathBuf {
    app.settings.data.join("blobs")
}

fn final_path(app: &AppState, sha256: &str) -> PathBuf {
    folder(app).join(&sha256[..2]).join(sha256)
}

fn partial_path(app: &AppState, sha256: &str) -> PathBuf {
    folder(app).join("partial").join(format!("{sha256}.part"))
}

/// The stored size of a complete blob.
fn stored_size(app: &AppState, sha256: &str) -> AppResult<Option<u64>> {
    app.storage.read(|conn| {
        Ok(conn
            .query_row("SELECT size FROM blobs WHERE sha256 = ?1", [sha256], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .map(|s| s as u64))
    })
}

/// Refuses a malformed hash, and a blob no case visible to `user` mentions (as not found).
fn check(app: &AppState, user: &User, sha256: &str) -> AppResult<()> {
    let not_found = || AppError::NotFound(format!("no blob {sha256}"));
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(not_found());
    }
    let visible = app.storage.read(|conn| {
        Ok(conn
            .query_row(
                "SELECT 1 FROM blob_refs r WHERE r.sha256 = ?1
                   AND (?2 OR EXISTS (SELECT 1 FROM visibility v WHERE v.case_id = r.case_id AND v.district = ?3))
                 LIMIT 1",
                params![sha256, user.role == Role::Admin, user.district.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    })?;
    if visible { Ok(()) } else { Err(not_found()) }
}

fn offset_response(status: StatusCode, offset: u64, complete: bool) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    headers.insert(
        UPLOAD_COMPLETE,
        HeaderValue::from_static(if complete { "true" } else { "false" }),
    );
    response
}

async fn partial_len(app: &AppState, sha256: &str) -> u64 {
    tokio::fs::metadata(partial_path(app, sha256))
        .await
        .map(|m| m.len())
        .unwrap_or(0)
}

/// `HEAD`: how many bytes of the blob the server holds.
pub async fn head(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
) -> AppResult<Response> {
    check(&app, &user, &sha256)?;
    Ok(match stored_size(&app, &sha256)? {
        Some(size) => offset_response(StatusCode::OK, size, true),
        None => offset_response(StatusCode::OK, partial_len(&app, &sha256).await, false),
    })
}

/// `PUT`: the whole blob.
pub async fn put(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    check(&app, &user, &sha256)?;
    let lock = app.blob_locks.lock_for(&sha256);
    let _held = lock.lock().await;
    if let Some(size) = stored_size(&app, &sha256)? {
        return Ok(offset_response(StatusCode::OK, size, true));
    }
    write_partial(&app, &sha256, 0, &body, true).await?;
    finish(&app, &sha256).await
}

/// `PATCH`: appends at `Upload-Offset`, towards `Upload-Length` bytes in all.
pub async fn patch(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    check(&app, &user, &sha256)?;
    let number = |name: &str| -> AppResult<u64> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                AppError::BadRequest(format!("the {name} header is required (a number of bytes)"))
            })
    };
    let (offset, length) = (number(UPLOAD_OFFSET)?, number(UPLOAD_LENGTH)?);
    let limit = PhotoLimits::default().max_bytes;
    if length > limit {
        return Err(AppError::BadRequest(format!(
            "the blob is {length} bytes, the limit is {limit} bytes"
        )));
    }
    let lock = app.blob_locks.lock_for(&sha256);
    let _held = lock.lock().await;
    if let Some(size) = stored_size(&app, &sha256)? {
        return Ok(offset_response(StatusCode::OK, size, true));
    }
    let held = partial_len(&app, &sha256).await;
    if offset != held {
        return Ok(offset_response(StatusCode::CONFLICT, held, false));
    }
    let total = held + body.len() as u64;
    if total > length {
        let _ = tokio::fs::remove_file(partial_path(&app, &sha256)).await;
        return Err(AppError::BadRequest(format!(
            "the upload went past Upload-Length ({total} > {length}); start again"
        )));
    }
    write_partial(&app, &sha256, offset, &body, offset == 0).await?;
    if total < length {
        return Ok(offset_response(StatusCode::NO_CONTENT, total, false));
    }
    finish(&app, &sha256).await
}

async fn write_partial(
    app: &AppState,
    sha256: &str,
    offset: u64,
    bytes: &[u8],
    truncate: bool,
) -> AppResult<()> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let path = partial_path(app, sha256);
    let io = |e: std::io::Error| AppError::Internal(format!("blob storage: {e}"));
    tokio::fs::create_dir_all(path.parent().expect("a partial path has a folder"))
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

/// Verifies the whole upload (hash, then image) and stores it, or removes it.
async fn finish(app: &AppState, sha256: &str) -> AppResult<Response> {
    let partial = partial_path(app, sha256);
    let io = |e: std::io::Error| AppError::Internal(format!("blob storage: {e}"));
    let bytes = tokio::fs::read(&partial).await.map_err(io)?;
    let refuse = |message: String| async {
        let _ = tokio::fs::remove_file(&partial).await;
        Err(AppError::BadRequest(message))
    };
    if photo::sha256_hex(&bytes) != sha256 {
        return refuse(format!(
            "the bytes do not hash to {sha256}; nothing was stored"
        ))
        .await;
    }
    let mime = match photo::ingest(&bytes, &PhotoLimits::default()) {
        Ok(ingested) => ingested.info.mime,
        Err(e) => return refuse(format!("not an accepted image: {e}")).await,
    };
    let target = final_path(app, sha256);
    tokio::fs::create_dir_all(target.parent().expect("a blob path has a folder"))
        .await
        .map_err(io)?;
    tokio::fs::rename(&partial, &target).await.map_err(io)?;
    let size = bytes.len() as i64;
    let key = sha256.to_owned();
    app.storage.write(|conn| {
        conn.execute(
            "INSERT OR IGNORE INTO blobs (sha256, size, mime, stored_at) VALUES (?1, ?2, ?3, ?4)",
            params![key, size, mime, Utc::now().to_rfc3339()],
        )?;
        Ok(())
    })?;
    tracing::info!(blob = sha256, bytes = size, "blob stored");
    Ok(offset_response(StatusCode::CREATED, size as u64, true))
}

/// `GET`: the blob, verified against its hash.
pub async fn get(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
) -> AppResult<Response> {
    check(&app, &user, &sha256)?;
    let mime: String = app
        .storage
        .read(|conn| {
            Ok(conn
                .query_row("SELECT mime FROM blobs WHERE sha256 = ?1", [&sha256], |r| {
                    r.get(0)
                })
                .optional()?)
        })?
        .ok_or_else(|| AppError::NotFound(format!("no blob {sha256}")))?;
    let bytes = tokio::fs::read(final_path(&app, &sha256))
        .await
        .map_err(|e| AppError::Internal(format!("blob {sha256}: {e}")))?;
    if photo::sha256_hex(&bytes) != sha256 {
        return Err(AppError::Internal(format!(
            "blob {sha256} is damaged in storage"
        )));
    }
    Ok(([(axum::http::header::CONTENT_TYPE, mime)], bytes).into_response())
}
