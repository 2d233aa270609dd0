//! Blobs over HTTP (`/api/v1/blobs/{sha256}`): photo originals and thumbnails, and the
//! PDFs of issued enforcement documents, addressed by the SHA-256 of their bytes. Uploads
//! resume: `HEAD` tells how many bytes the server holds (`Upload-Offset`), `PATCH` appends
//! at that offset (with `Upload-Length`, the whole size), `PUT` sends a blob whole. The
//! parts of an unfinished upload are kept in the database, so that any server process may
//! take the next one. A blob counts as stored only once its hash matches, it is an image
//! within the same limits as the apps' (or a whole PDF: `anjian_core::pdf::check`), and
//! the blob store (`blob_store.rs`) has it durably. Only blobs that a case the user may
//! see mentions are accepted or served; any other is answered as one that does not exist.

use std::sync::Arc;

use crate::db::params;
use anjian_core::photo::{self, PhotoLimits};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::auth::AuthUser;
use crate::blob_store::ByteStream;
use crate::error::{AppError, AppResult, ErrorBody, SignedOut};
use crate::extract::{self, Path};
use crate::schemas;
use crate::state::AppState;
use crate::storage::Staged;
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
    let (readable, mut values) = crate::policy::readable(user, "r.case_id");
    values.insert(0, crate::db::value(sha256));
    let visible = app.storage.read(|conn| {
        Ok(conn
            .query_opt(
                &format!("SELECT 1 FROM blob_refs r WHERE r.sha256 = ? AND {readable} LIMIT 1"),
                &values,
                |_| Ok(()),
            )?
            .is_some())
    })?;
    if visible { Ok(()) } else { Err(not_found()) }
}

/// Refuses an upload of a blob the server does not hold yet once `user`'s uploads stored
/// `limits.blob_bytes_per_user_per_day` within the last 24 hours (`429`, before the body
/// is read). Checked before, not with, the storing: uploads of one account running at once
/// may pass the bound by a blob each.
fn within_day(app: &AppState, user: &User, sha256: &str) -> AppResult<()> {
    if stored_size(app, sha256)?.is_some() {
        return Ok(());
    }
    let since = (Utc::now() - chrono::Duration::hours(24)).to_rfc3339();
    let stored: i64 = app.storage.read(|conn| {
        conn.query_row(
            "SELECT coalesce(sum(size), 0) FROM blobs WHERE uploaded_by = ?1 AND stored_at > ?2",
            params![user.id, since],
            |r| r.get(0),
        )
    })?;
    let bound = app.settings.limits.blob_bytes_per_user_per_day;
    if (stored.max(0) as u64) < bound {
        return Ok(());
    }
    Err(AppError::TooMany {
        message: format!(
            "今日上传已达上限，请稍后再传 (your uploads stored {stored} bytes within 24 hours, the limit is {bound})"
        ),
        retry_after: 3600,
    })
}

/// The body of an upload of `sha256`, read only once `check` allows it: a blob the user
/// may not send is refused before its bytes take memory.
async fn checked_body(
    app: &AppState,
    user: &User,
    sha256: &str,
    request: Request,
) -> AppResult<Bytes> {
    use axum::extract::FromRequest;
    check(app, user, sha256)?;
    within_day(app, user, sha256)?;
    let extract::Body(body) = extract::Body::from_request(request, &()).await?;
    Ok(body)
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
        None => offset_response(
            StatusCode::OK,
            app.storage.upload_held(&sha256, user.id)?,
            false,
        ),
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
        (status = 429, description = "The user's uploads stored as many bytes as they may within 24 hours (the body unread): try again after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
pub async fn put(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
    request: Request,
) -> AppResult<Response> {
    let body = checked_body(&app, &user, &sha256, request).await?;
    let lock = app.blobs.lock_for(&sha256);
    let result = async {
        let _held = lock.lock().await;
        if let Some(size) = stored_size(&app, &sha256)? {
            return Ok(offset_response(StatusCode::OK, size, true));
        }
        finish(&app, &sha256, body, Parts::None(user.id)).await
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
        (status = 429, description = "The user's uploads stored as many bytes as they may within 24 hours (the body unread): try again after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
pub async fn patch(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> AppResult<Response> {
    let body = checked_body(&app, &user, &sha256, request).await?;
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
        append(&app, &user, &sha256, offset, length, body).await
    }
    .await;
    drop(lock);
    app.blobs.unlock(&sha256);
    result
}

/// Appends a part of an upload (under the blob's lock in this process; the database keeps
/// two processes from both taking it), within the user's quota of parked bytes; verifies
/// and stores the blob once it is whole.
async fn append(
    app: &AppState,
    user: &User,
    sha256: &str,
    offset: u64,
    length: u64,
    body: Bytes,
) -> AppResult<Response> {
    if let Some(size) = stored_size(app, sha256)? {
        return Ok(offset_response(StatusCode::OK, size, true));
    }
    let held = app.storage.upload_held(sha256, user.id)?;
    if offset != held {
        return Ok(offset_response(StatusCode::CONFLICT, held, false));
    }
    let total = held + body.len() as u64;
    if total > length {
        forget(app, sha256, user.id).await?;
        return Err(AppError::BadRequest(format!(
            "the upload went past Upload-Length ({total} > {length}); start again"
        )));
    }
    if total < length {
        let quota = app.settings.limits.parked_bytes_per_user;
        let (key, user_id) = (sha256.to_owned(), user.id);
        let staged = app
            .writing(move |storage| storage.stage_part(&key, user_id, offset, &body, quota))
            .await?;
        return match staged {
            Staged::Kept(total) => Ok(offset_response(StatusCode::NO_CONTENT, total, false)),
            Staged::Elsewhere(held) => Ok(offset_response(StatusCode::CONFLICT, held, false)),
            Staged::OverQuota(parked) => Err(AppError::TooLarge(format!(
                "未完成的上传已达上限 (your unfinished uploads would hold {parked} bytes, the limit is {quota}; finish or abandon some first)"
            ))),
        };
    }
    // The last part: the blob is the parts held and this one, checked again as one read
    // (another process may have finished or swept the upload meanwhile).
    let mut whole = if offset == 0 {
        Vec::new()
    } else {
        app.storage.staged_bytes(sha256, user.id)?
    };
    if whole.len() as u64 != offset {
        let held = app.storage.upload_held(sha256, user.id)?;
        return Ok(offset_response(StatusCode::CONFLICT, held, false));
    }
    whole.extend_from_slice(&body);
    finish(app, sha256, Bytes::from(whole), Parts::Staged(user.id)).await
}

/// Forgets `user_id`'s unfinished upload of `sha256`, off the async workers.
async fn forget(app: &AppState, sha256: &str, user_id: i64) -> AppResult<()> {
    let key = sha256.to_owned();
    app.writing(move |storage| storage.forget_upload(&key, user_id))
        .await
}

/// Where a whole blob came from, and whose upload it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// One request: a refusal leaves anyone's unfinished upload of the blob alone.
    None(i64),
    /// The unfinished upload's parts (this user's) and a last one: a refusal forgets the
    /// upload.
    Staged(i64),
}

impl Parts {
    fn uploader(self) -> i64 {
        match self {
            Parts::None(user_id) | Parts::Staged(user_id) => user_id,
        }
    }
}

/// Verifies a whole blob (hash, then image or PDF, on the photo threads) and stores it
/// durably, or keeps nothing; once stored, the unfinished upload of it is forgotten.
async fn finish(app: &AppState, sha256: &str, bytes: Bytes, parts: Parts) -> AppResult<Response> {
    let size = bytes.len() as i64;
    let expected = sha256.to_owned();
    let checking = bytes.clone();
    let checked = app
        .photos
        .run(move || {
            let bytes = checking;
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
        Err(message) => {
            if let Parts::Staged(user_id) = parts {
                forget(app, sha256, user_id).await?;
            }
            return Err(AppError::BadRequest(message));
        }
    };
    app.blobs.put(sha256, bytes).await?;
    let key = sha256.to_owned();
    app.writing(move |storage| {
        storage.write(|conn| {
            conn.transaction(|tx| {
                tx.execute(
                    "INSERT INTO blobs (sha256, size, mime, stored_at, uploaded_by) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO NOTHING",
                    params![key, size, mime, Utc::now().to_rfc3339(), parts.uploader()],
                )?;
                tx.execute("DELETE FROM upload_parts WHERE sha256 = ?1", params![&key])?;
                tx.execute("DELETE FROM uploads WHERE sha256 = ?1", params![&key])?;
                Ok(())
            })
        })
    })
    .await?;
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
    let stream = app.blobs.get(&sha256).await?.ok_or_else(|| {
        tracing::error!(blob = %sha256, "a blob recorded as stored is missing from storage");
        AppError::Internal(format!("blob {sha256} is missing from storage"))
    })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, mime),
            (axum::http::header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(verified(stream, sha256)),
    )
        .into_response())
}

/// The bytes of `stream`, ending in an error if they do not hash to `sha256`.
fn verified(
    stream: ByteStream,
    sha256: String,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    use futures_util::StreamExt;
    futures_util::stream::unfold(Some((stream, Sha256::new(), sha256)), |state| async move {
        let (mut stream, mut hasher, sha256) = state?;
        match stream.next().await {
            None => {
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
            Some(Ok(bytes)) => {
                hasher.update(&bytes);
                Some((Ok(bytes), Some((stream, hasher, sha256))))
            }
            Some(Err(e)) => Some((Err(e), None)),
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

/// Removes the unfinished uploads untouched for longer than `age`. A part arriving for
/// one meanwhile finds it gone and is told to start again from 0.
async fn sweep(app: &AppState, age: std::time::Duration) -> AppResult<usize> {
    app.writing(move |storage| storage.forget_uploads_older_than(age))
        .await
}

/// Waits for one of the account's turns at transferring blobs before the request goes on
/// (`blob_store::TRANSFERS_PER_USER`), holding it until the handler answers.
pub async fn one_turn_per_transfer(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    request: Request,
    next: Next,
) -> Response {
    let turns = app.blobs.turns_of(user.id);
    let Ok(_turn) = turns.acquire_owned().await else {
        return AppError::Internal("the blob transfers' turns were closed".into()).into_response();
    };
    next.run(request).await
}
