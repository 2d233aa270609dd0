//! Blobs over HTTP (`/api/v1/blobs/{sha256}`): photo originals and thumbnails, and the
//! PDFs of issued enforcement documents, addressed by the SHA-256 of their bytes. Uploads resume: `HEAD` tells how many bytes the server holds
//! (`Upload-Offset`), `PATCH` appends at that offset (with `Upload-Length`, the whole size),
//! `PUT` sends a blob whole. A blob counts as stored only once its hash matches and it is an
//! image within the same limits as the apps' (or a whole PDF: `anjian_core::pdf::check`). Only blobs that a case the user may see
//! mentions are accepted or served; any other is answered as one that does not exist.

use std::sync::Arc;

use crate::db::params;
use anjian_core::Role;
use anjian_core::photo::{self, PhotoLimits};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorBody, SignedOut};
use crate::extract::{self, Path};
use crate::schemas;
use crate::state::AppState;
use crate::users::User;

/// Header: bytes of the blob the server holds, or where a `PATCH` starts.
pub const UPLOAD_OFFSET: &str = "upload-offset";
/// Header: the whole blob's size, on `PATCH`.
pub const UPLOAD_LENGTH: &str = "upload-length";
/// Header: `true` once the blob is stored whole and verified.
pub const UPLOAD_COMPLETE: &str = "upload-complete";

/// The stored size of a complete blob.
fn stored_size(app: &AppState, sha256: &str) -> AppResult<Option<u64>> {
    app.storage.read(|conn| {
        Ok(conn
            .query_opt(
                "SELECT size FROM blobs WHERE sha256 = ?1",
                params![sha256],
                |r| r.get::<i64>(0),
            )?
            .map(|s| s as u64))
    })
}

/// Refuses a malformed hash, and a blob no case visible to `user` mentions (as not found).
fn check(app: &AppState, user: &User, sha256: &str) -> AppResult<()> {
    let not_found = || AppError::NotFound(format!("no blob {sha256}"));
    if !anjian_core::is_sha256(sha256) {
        return Err(not_found());
    }
    let visible = app.storage.read(|conn| {
        Ok(conn
            .query_opt(
                "SELECT 1 FROM blob_refs r WHERE r.sha256 = ?1
                   AND (?2 OR EXISTS (SELECT 1 FROM visibility v WHERE v.case_id = r.case_id AND v.district = ?3))
                 LIMIT 1",
                params![sha256, user.role == Role::Admin, user.district.as_str()],
                |_| Ok(()),
            )?
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

/// How much of a blob the server holds
///
/// The size once stored, the part received while uploading, 0 before.
#[utoipa::path(
    head,
    operation_id = "blob_offset",
    path = "/api/v1/blobs/{sha256}",
    tag = "blobs",
    params(("sha256" = schemas::Sha256, Path, description = "SHA-256 of the blob's bytes, hex")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What the server holds",
            headers(
                ("Upload-Offset" = u64, description = "Bytes held"),
                ("Upload-Complete" = bool, description = "`true` once the blob is stored whole and verified"),
            )),
        (status = 400, description = "The name is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 404, description = "No case this user may see mentions the blob (or the name is not a SHA-256)", body = ErrorBody),
    ),
)]
pub async fn head(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
) -> AppResult<Response> {
    check(&app, &user, &sha256)?;
    Ok(match stored_size(&app, &sha256)? {
        Some(size) => offset_response(StatusCode::OK, size, true),
        None => offset_response(StatusCode::OK, app.blobs.partial_len(&sha256).await, false),
    })
}

/// Upload a blob whole
///
/// Stored once its bytes hash to its name and it is a JPEG or PNG within the apps' limits;
/// otherwise nothing is kept.
#[utoipa::path(
    put,
    operation_id = "put_blob",
    path = "/api/v1/blobs/{sha256}",
    tag = "blobs",
    params(("sha256" = schemas::Sha256, Path, description = "SHA-256 of the blob's bytes, hex")),
    request_body(content = schemas::Binary, content_type = "application/octet-stream", description = "The whole blob"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Already stored (nothing was written)",
            headers(
                ("Upload-Offset" = u64, description = "The blob's size"),
                ("Upload-Complete" = bool, description = "`true`"),
            )),
        (status = 201, description = "Stored and verified",
            headers(
                ("Upload-Offset" = u64, description = "The blob's size"),
                ("Upload-Complete" = bool, description = "`true`"),
            )),
        (status = 400, description = "The bytes do not hash to the name or are not an accepted image (nothing was kept), or the name is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 403, description = "A cookie session sent no CSRF token", body = ErrorBody),
        (status = 404, description = "No case this user may see mentions the blob (or the name is not a SHA-256)", body = ErrorBody),
        (status = 413, description = "The body is larger than a photo may be", body = ErrorBody),
    ),
)]
pub async fn put(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
    extract::Body(body): extract::Body,
) -> AppResult<Response> {
    check(&app, &user, &sha256)?;
    let lock = app.blobs.lock_for(&sha256);
    let result = async {
        let _held = lock.lock().await;
        if let Some(size) = stored_size(&app, &sha256)? {
            return Ok(offset_response(StatusCode::OK, size, true));
        }
        app.blobs.write_partial(&sha256, 0, &body, true).await?;
        finish(&app, &sha256).await
    }
    .await;
    drop(lock);
    app.blobs.unlock(&sha256);
    result
}

/// Upload the next part of a blob
///
/// Appends the body at `Upload-Offset` (which must be what the server holds), towards
/// `Upload-Length` bytes in all; once whole, the blob is verified as a whole upload is.
/// Unfinished uploads count against their user's quota of parked bytes.
#[utoipa::path(
    patch,
    operation_id = "patch_blob",
    path = "/api/v1/blobs/{sha256}",
    tag = "blobs",
    params(
        ("sha256" = schemas::Sha256, Path, description = "SHA-256 of the blob's bytes, hex"),
        ("Upload-Offset" = u64, Header, description = "Where this part starts: the bytes the server holds"),
        ("Upload-Length" = u64, Header, description = "The whole blob's size"),
    ),
    request_body(content = schemas::Binary, content_type = "application/octet-stream", description = "The next part"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Already stored (nothing was written)",
            headers(
                ("Upload-Offset" = u64, description = "The blob's size"),
                ("Upload-Complete" = bool, description = "`true`"),
            )),
        (status = 201, description = "The last part: the blob is stored and verified",
            headers(
                ("Upload-Offset" = u64, description = "The blob's size"),
                ("Upload-Complete" = bool, description = "`true`"),
            )),
        (status = 204, description = "The part is kept",
            headers(
                ("Upload-Offset" = u64, description = "Bytes held now"),
                ("Upload-Complete" = bool, description = "`false`"),
            )),
        (status = 400, description = "A header is missing or not a number, `Upload-Length` is over the limit, the upload went past it (start again), the whole blob does not hash to its name or is not an accepted image (nothing was kept), or the name is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 403, description = "A cookie session sent no CSRF token", body = ErrorBody),
        (status = 404, description = "No case this user may see mentions the blob (or the name is not a SHA-256)", body = ErrorBody),
        (status = 409, description = "`Upload-Offset` is not what the server holds: continue from the answer's `Upload-Offset`",
            headers(
                ("Upload-Offset" = u64, description = "Bytes held"),
                ("Upload-Complete" = bool, description = "`false`"),
            )),
        (status = 413, description = "The body is larger than a photo may be, or the user's unfinished uploads would pass their quota (nothing was kept)", body = ErrorBody),
    ),
)]
pub async fn patch(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    extract::Body(body): extract::Body,
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
    let lock = app.blobs.lock_for(&sha256);
    let result = async {
        let _held = lock.lock().await;
        append(&app, &user, &sha256, offset, length, &body).await
    }
    .await;
    drop(lock);
    app.blobs.unlock(&sha256);
    result
}

/// Appends a part of an upload (under the blob's lock), within the user's quota of
/// parked bytes; verifies and stores the blob once it is whole.
async fn append(
    app: &AppState,
    user: &User,
    sha256: &str,
    offset: u64,
    length: u64,
    body: &[u8],
) -> AppResult<Response> {
    if let Some(size) = stored_size(app, sha256)? {
        return Ok(offset_response(StatusCode::OK, size, true));
    }
    let held = app.blobs.partial_len(sha256).await;
    if offset != held {
        return Ok(offset_response(StatusCode::CONFLICT, held, false));
    }
    let total = held + body.len() as u64;
    if total > length {
        app.blobs.discard(sha256).await;
        app.storage.forget_upload(sha256)?;
        return Err(AppError::BadRequest(format!(
            "the upload went past Upload-Length ({total} > {length}); start again"
        )));
    }
    if total < length {
        // The user's parts of different blobs are parked one at a time, so that parallel
        // uploads cannot each find room under the quota and together pass it.
        let key = format!("user:{}", user.id);
        let lock = app.blobs.lock_for(&key);
        let parked = async {
            let _held = lock.lock().await;
            let parked = app.storage.parked_bytes(user.id, sha256)?;
            let quota = app.settings.limits.parked_bytes_per_user;
            if parked + total > quota {
                return Err(AppError::TooLarge(format!(
                    "未完成的上传已达上限 (your unfinished uploads would hold {} bytes, the limit is {quota}; finish or abandon some first)",
                    parked + total
                )));
            }
            app.blobs.write_partial(sha256, offset, body, offset == 0).await?;
            app.storage.record_upload(sha256, user.id, total)
        }
        .await;
        drop(lock);
        app.blobs.unlock(&key);
        parked?;
        return Ok(offset_response(StatusCode::NO_CONTENT, total, false));
    }
    app.blobs
        .write_partial(sha256, offset, body, offset == 0)
        .await?;
    finish(app, sha256).await
}

/// Verifies the whole upload (hash, then image or PDF, on the photo threads) and stores it
/// durably, or removes it.
async fn finish(app: &AppState, sha256: &str) -> AppResult<Response> {
    let partial = app.blobs.partial_path(sha256);
    let bytes = tokio::fs::read(&partial)
        .await
        .map_err(|e| AppError::Internal(format!("blob storage: {e}")))?;
    let refuse = |message: String| async move {
        app.blobs.discard(sha256).await;
        app.storage.forget_upload(sha256)?;
        Err(AppError::BadRequest(message))
    };
    let size = bytes.len() as i64;
    let expected = sha256.to_owned();
    let checked = app
        .photos
        .run(move || {
            if photo::sha256_hex(&bytes) != expected {
                return Err(format!(
                    "the bytes do not hash to {expected}; nothing was stored"
                ));
            }
            if bytes.starts_with(b"%PDF-") {
                // An issued enforcement document as printed on the device.
                return anjian_core::pdf::check(&bytes)
                    .map(|()| "application/pdf")
                    .map_err(|e| format!("not an accepted document: {e}"));
            }
            photo::ingest(&bytes, &PhotoLimits::default())
                .map(|ingested| ingested.info.mime)
                .map_err(|e| format!("not an accepted image: {e}"))
        })
        .await?;
    let mime = match checked {
        Ok(mime) => mime,
        Err(message) => return refuse(message).await,
    };
    app.blobs.store(sha256).await?;
    let key = sha256.to_owned();
    app.storage.write(|conn| {
        conn.execute(
            "INSERT INTO blobs (sha256, size, mime, stored_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![key, size, mime, Utc::now().to_rfc3339()],
        )?;
        conn.execute("DELETE FROM uploads WHERE sha256 = ?1", params![&key])?;
        Ok(())
    })?;
    tracing::info!(blob = sha256, bytes = size, "blob stored");
    Ok(offset_response(StatusCode::CREATED, size as u64, true))
}

/// Download a blob
///
/// The bytes, streamed from disk and hashed on the way: a blob damaged in storage ends in
/// an error instead of a complete answer.
#[utoipa::path(
    get,
    operation_id = "get_blob",
    path = "/api/v1/blobs/{sha256}",
    tag = "blobs",
    params(("sha256" = schemas::Sha256, Path, description = "SHA-256 of the blob's bytes, hex")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The blob", content(
            (schemas::Binary = "image/jpeg"),
            (schemas::Binary = "image/png"),
            (schemas::Binary = "application/pdf"),
        )),
        (status = 400, description = "The name is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 404, description = "Not stored, or no case this user may see mentions the blob (or the name is not a SHA-256)", body = ErrorBody),
    ),
)]
pub async fn get(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
) -> AppResult<Response> {
    check(&app, &user, &sha256)?;
    let (mime, size): (String, i64) = app
        .storage
        .read(|conn| {
            conn.query_opt(
                "SELECT mime, size FROM blobs WHERE sha256 = ?1",
                params![&sha256],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })?
        .ok_or_else(|| AppError::NotFound(format!("no blob {sha256}")))?;
    let file = tokio::fs::File::open(app.blobs.final_path(&sha256))
        .await
        .map_err(|e| AppError::Internal(format!("blob {sha256}: {e}")))?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, mime),
            (axum::http::header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(verified(file, sha256)),
    )
        .into_response())
}

/// The bytes of `file` in parts, ending in an error if they do not hash to `sha256`.
fn verified(
    file: tokio::fs::File,
    sha256: String,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some((file, Sha256::new(), sha256)), |state| async move {
        let (mut file, mut hasher, sha256) = state?;
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => {
                let actual = hex::encode(hasher.finalize());
                if actual == sha256 {
                    None
                } else {
                    tracing::error!(blob = %sha256, "a stored blob no longer matches its hash");
                    Some((
                        Err(std::io::Error::other(format!(
                            "blob {sha256} is damaged in storage"
                        ))),
                        None,
                    ))
                }
            }
            Ok(n) => {
                buffer.truncate(n);
                hasher.update(&buffer);
                Some((Ok(Bytes::from(buffer)), Some((file, hasher, sha256))))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// Removes unfinished uploads untouched for longer than the settings allow, now and
/// every hour until `stop` flips.
pub async fn sweep_uploads(app: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let age = std::time::Duration::from_secs(app.settings.limits.upload_hours * 3600);
        let swept = sweep(&app, age).await;
        match swept {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "expired unfinished uploads removed"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep unfinished uploads"),
        }
    }
}

/// Removes the unfinished uploads untouched for longer than `age`, each under its blob's
/// lock (a part arriving meanwhile keeps it): the quota forgets an upload before its bytes
/// go, so that an upload seen gone is never still counted.
async fn sweep(app: &AppState, age: std::time::Duration) -> AppResult<usize> {
    let mut removed = 0;
    for sha256 in app.blobs.stale(age).await {
        let lock = app.blobs.lock_for(&sha256);
        let swept = async {
            let _held = lock.lock().await;
            if app
                .blobs
                .untouched_for(&sha256)
                .await
                .is_none_or(|idle| idle <= age)
            {
                return AppResult::Ok(false);
            }
            app.storage.forget_upload(&sha256)?;
            app.blobs.discard(&sha256).await;
            Ok(true)
        }
        .await;
        drop(lock);
        app.blobs.unlock(&sha256);
        removed += usize::from(swept?);
    }
    Ok(removed)
}
