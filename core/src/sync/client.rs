//! The networked sync client: signs in over HTTP, reads the catalog, and exchanges the
//! documents that differ over one WebSocket, driving a `SyncSession`.
//!
//! The client reaches the store through `StoreAccess`, one local step at a time and never
//! across a network wait, so that an app can keep reading and writing its store while a
//! sync waits on a slow network (`Store` itself is the simplest access: `Store::sync`).

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::session::{CatalogPage, SyncProgress, SyncReport, SyncSession};
use crate::error::{Error, Result};
use crate::signing::{KeyAlgorithm, PublicKey};
use crate::store::Store;

/// Sync rounds in one `sync` call, at most.
const MAX_ROUNDS: usize = 4;

/// Pages of the catalog read in one `sync` call, at most (a million cases at the server's
/// default page): a server that cuts every page short does not keep a phone syncing for
/// ever.
const MAX_PAGES: usize = 1_000;

/// How the sync client reaches the store: `with` runs one local step (read the cursor,
/// plan a round, apply a frame, read a blob) and returns; the client never holds the store
/// while it waits for the network. An app that shares its store between threads
/// implements it over its lock.
pub trait StoreAccess: Send {
    /// Runs `step` with the store.
    fn with<R: Send>(
        &mut self,
        step: impl FnOnce(&mut Store) -> Result<R> + Send,
    ) -> impl Future<Output = Result<R>> + Send;
}

impl StoreAccess for &mut Store {
    fn with<R: Send>(
        &mut self,
        step: impl FnOnce(&mut Store) -> Result<R> + Send,
    ) -> impl Future<Output = Result<R>> + Send {
        std::future::ready(step(self))
    }
}

#[derive(Serialize)]
struct LoginRequest<'a> {
    username: &'a str,
    password: &'a str,
    device_name: &'a str,
    actor_id: &'a str,
    key_algorithm: &'a str,
    public_key: String,
}

#[derive(Deserialize)]
struct LoginResponse {
    token: String,
    /// The device's certificate (hex of its CBOR).
    #[serde(default)]
    certificate: Option<String>,
    /// The server's public key (Ed25519, hex).
    #[serde(default)]
    server_key: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

impl Store {
    /// Signs in to `server` (`http://host:port`) and binds this device's actor id and
    /// public key to the user; keeps the certificate the server issues for the key, and
    /// the server's key (to verify teammates' certificates on site); returns the token to
    /// sync with.
    pub async fn login(
        &self,
        server: &str,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<String> {
        let signed_in = login(
            server,
            username,
            password,
            device_name,
            &self.device_id(),
            &self.public_key(),
            self.network_timeout(),
        )
        .await?;
        self.keep_sign_in(
            server,
            &signed_in.server_key,
            signed_in.certificate.as_deref(),
        )?;
        Ok(signed_in.token)
    }

    /// Pushes local changes and pulls every visible case that changed (see `sync`).
    pub async fn sync(
        &mut self,
        server: &str,
        token: &str,
        progress: impl FnMut(SyncProgress) + Send,
    ) -> Result<SyncReport> {
        let mut access = self;
        sync(&mut access, server, token, progress).await
    }

    /// Fetches a photo's original from the server when the inspector opens it (originals
    /// are not downloaded eagerly), verified against its hash and kept.
    pub async fn fetch_original(
        &mut self,
        server: &str,
        token: &str,
        sha256: &str,
    ) -> Result<Vec<u8>> {
        let mut access = self;
        fetch_blob(&mut access, server, token, sha256, "original").await
    }

    /// Fetches a blob from the server, verifies it against its hash and keeps it.
    pub async fn fetch_blob(
        &mut self,
        server: &str,
        token: &str,
        sha256: &str,
        kind: &str,
    ) -> Result<Vec<u8>> {
        let mut access = self;
        fetch_blob(&mut access, server, token, sha256, kind).await
    }
}

/// An HTTP client that gives up when the server does not connect or answer within
/// `timeout`: a server that accepts and then says nothing (a dead link behind a captive
/// portal, a stuck proxy) must not hang the sync for ever.
fn http(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .build()
        .map_err(network)
}

/// What signing in gives a device.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The token to sync with.
    pub token: String,
    /// The server's key, which issues certificates and receipts.
    pub server_key: PublicKey,
    /// The certificate the server issued for the device's key.
    pub certificate: Option<Vec<u8>>,
}

/// Signs in as `username` from the device with actor id `actor_id` (hex) that signs its
/// changes with `key`: the token to sync with, the server's key and the device's
/// certificate (keep them with `Store::keep_sign_in`).
pub async fn login(
    server: &str,
    username: &str,
    password: &str,
    device_name: &str,
    actor_id: &str,
    key: &PublicKey,
    timeout: Duration,
) -> Result<SignedIn> {
    let response = http(timeout)?
        .post(format!("{}/api/v1/login", server.trim_end_matches('/')))
        .json(&LoginRequest {
            username,
            password,
            device_name,
            actor_id,
            key_algorithm: key.algorithm().code(),
            public_key: hex::encode(key.bytes()),
        })
        .send()
        .await
        .map_err(network)?;
    if !response.status().is_success() {
        return Err(http_error(response).await);
    }
    let answer: LoginResponse = read_json(response, "sign-in").await?;
    let server_key = answer
        .server_key
        .as_deref()
        .and_then(|hex_key| hex::decode(hex_key).ok())
        .and_then(|bytes| PublicKey::new(KeyAlgorithm::Ed25519, bytes).ok())
        .ok_or_else(|| Error::invalid("server_key", "the server sent no Ed25519 public key"))?;
    let certificate = answer
        .certificate
        .as_deref()
        .map(hex::decode)
        .transpose()
        .map_err(|_| Error::invalid("certificate", "not hex"))?;
    Ok(SignedIn {
        token: answer.token,
        server_key,
        certificate,
    })
}

/// Pushes local changes and pulls every visible case that changed, using the catalog: an
/// idle resync is one HTTP round trip. Rounds repeat until the catalog shows nothing new
/// (which also moves the cursor past this device's own pushes), at most a few times; a
/// catalog of more documents than a page is read and synced page by page.
/// Resumable: a round cut anywhere converges on the next. `progress` is called after
/// every frame. The store is taken only for local steps (`StoreAccess`).
pub async fn sync(
    store: &mut impl StoreAccess,
    server: &str,
    token: &str,
    mut progress: impl FnMut(SyncProgress) + Send,
) -> Result<SyncReport> {
    let server = server.trim_end_matches('/');
    let timeout = store.with(|s| Ok(s.network_timeout())).await?;
    let http = http(timeout)?;
    let mut total = SyncReport::default();
    let (mut rounds, mut pages) = (0, 0);
    while rounds < MAX_ROUNDS && pages < MAX_PAGES {
        pages += 1;
        let held = total.settled_for_now();
        let (report, ended) =
            sync_round(store, &http, timeout, server, token, held, &mut progress).await?;
        total.absorb(report);
        match ended {
            // A page of the catalog cut short: the next page is read whatever this one
            // exchanged, and is no round of its own.
            Round::Paged => {}
            Round::Idle => break,
            Round::Exchanged => rounds += 1,
        }
    }
    // Photos after the cases that mention them: the server accepts only those.
    upload_blobs(store, &http, timeout, server, token, &mut total).await?;
    download_thumbnails(store, server, token, &mut total).await?;
    // Numbers before proofs: a device short of numbers gets them even when the proofs
    // fail.
    fetch_number_blocks(store, &http, server, token, &mut total).await?;
    fetch_proofs(store, &http, server, token, &mut total).await?;
    Ok(total)
}

/// Below this many numbers left for a kind this year, a sync asks for another block.
pub const NUMBERS_LOW: u32 = 5;

/// Asks the server for blocks of document numbers for the kinds this device has fewer
/// than [`NUMBERS_LOW`] of left this year (bound to its current key), and keeps those it
/// allocates. No request when every kind has enough: an idle sync asks nothing.
async fn fetch_number_blocks(
    store: &mut impl StoreAccess,
    http: &reqwest::Client,
    server: &str,
    token: &str,
    report: &mut SyncReport,
) -> Result<()> {
    let (key, low) = store
        .with(|s| {
            let low: Vec<String> = s
                .numbers_left()?
                .into_iter()
                .filter(|(_, left)| *left < NUMBERS_LOW)
                .map(|(kind, _)| kind.code().to_owned())
                .collect();
            Ok((hex::encode(s.public_key().id()), low))
        })
        .await?;
    if low.is_empty() {
        return Ok(());
    }
    let body = serde_json::json!({ "key": key, "kinds": low });
    let url = format!("{server}/api/v1/number-blocks");
    let response = post_json(http, &url, token, &body).await?;
    report.http_requests += 1;
    if matches!(
        response.status(),
        reqwest::StatusCode::FORBIDDEN | reqwest::StatusCode::CONFLICT
    ) {
        // The key signing now is not one this device registered (a platform key set after
        // sign-in), or the account took the year's numbers of these kinds: the cases
        // synced; documents take provisional numbers until it signs in again, or for the
        // rest of the year.
        let refused = http_error(response).await;
        tracing::warn!(error = %refused, "no document numbers for now");
        return Ok(());
    }
    let answer: NumberBlocksAnswer = read_json(response, "number blocks").await?;
    report.number_blocks += store
        .with(move |s| s.keep_number_blocks(&answer.blocks))
        .await?;
    Ok(())
}

#[derive(Deserialize)]
struct NumberBlocksAnswer {
    blocks: Vec<String>,
}

#[derive(Deserialize)]
struct ProofsAnswer {
    certificates: Vec<String>,
    cases: Vec<CaseProofsAnswer>,
}

#[derive(Deserialize)]
struct CaseProofsAnswer {
    case: String,
    receipts: Vec<ReceiptAnswer>,
    /// Absent from servers before answers were cut short.
    #[serde(default)]
    more: bool,
}

#[derive(Deserialize)]
struct ReceiptAnswer {
    change_hash: String,
    actor: String,
    received_at: String,
    issuer: String,
    signature: String,
}

/// Cases asked about in one request for proofs (the server's limit).
const PROOF_CASES: usize = 100;

/// Keeps what the server signed about the cases this sync exchanged whose acknowledged
/// changes lack a receipt here: its receipts of the changes (proof of when each reached
/// the server) and the certificates of the devices that wrote them (to verify teammates'
/// changes on site). One request per hundred such cases, and more for cases whose answer
/// the server cut short (`more`), each from the last receipt given; none for an idle sync.
async fn fetch_proofs(
    store: &mut impl StoreAccess,
    http: &reqwest::Client,
    server: &str,
    token: &str,
    report: &mut SyncReport,
) -> Result<()> {
    let exchanged = report.cases.clone();
    let wanted = store
        .with(move |s| s.cases_wanting_receipts(&exchanged))
        .await?;
    for batch in wanted.chunks(PROOF_CASES) {
        let mut asked: Vec<String> = batch.iter().map(ToString::to_string).collect();
        let mut after = serde_json::Map::new();
        while !asked.is_empty() {
            let body = serde_json::json!({ "cases": asked, "after": after });
            let response =
                post_json(http, &format!("{server}/api/v1/proofs"), token, &body).await?;
            report.http_requests += 1;
            let answer: ProofsAnswer = read_json(response, "proofs").await?;
            let (certificates, cases) =
                read_proofs(answer).map_err(|why| Error::Sync(format!("proofs: {why}")))?;
            // Cases cut short are asked again from their last receipt, those the answer
            // had no room for from where they were asked; an answer that gives nothing
            // ends the asking.
            let mut sent = std::mem::take(&mut after);
            asked.clear();
            if cases.iter().any(|(_, receipts, _)| !receipts.is_empty()) {
                for (case, receipts, _) in cases.iter().filter(|(_, _, more)| *more) {
                    let key = case.to_string();
                    let cursor = match receipts.last() {
                        Some(last) => Some(serde_json::json!({
                            "received_at": last.received_at,
                            "change_hash": last.hash.to_string(),
                        })),
                        None => sent.remove(&key),
                    };
                    if let Some(cursor) = cursor {
                        after.insert(key.clone(), cursor);
                    }
                    asked.push(key);
                }
            }
            report.receipts += store
                .with(move |s| {
                    s.in_one_transaction(|| {
                        s.keep_certificates(&certificates)?;
                        let mut kept = 0;
                        for (case, receipts, _) in &cases {
                            kept += s.keep_receipts(*case, receipts)?;
                        }
                        Ok(kept)
                    })
                })
                .await?;
        }
    }
    Ok(())
}

/// Certificates, and receipts by case (and whether the case has more), as the server
/// sent them.
type ReadProofs = (
    Vec<Vec<u8>>,
    Vec<(crate::codes::CaseId, Vec<crate::certificate::Receipt>, bool)>,
);

fn read_proofs(answer: ProofsAnswer) -> std::result::Result<ReadProofs, String> {
    let unhex = |text: &str| hex::decode(text).map_err(|_| format!("{text:?} is not hex"));
    let certificates = answer
        .certificates
        .iter()
        .map(|c| unhex(c))
        .collect::<std::result::Result<_, _>>()?;
    let cases = answer
        .cases
        .into_iter()
        .map(|case| {
            let id = case
                .case
                .parse()
                .map_err(|_| format!("{:?} is not a case id", case.case))?;
            let receipts = case
                .receipts
                .into_iter()
                .map(|r| {
                    let (issuer, signature) = (unhex(&r.issuer)?, unhex(&r.signature)?);
                    crate::certificate::Receipt::from_stored(
                        &r.change_hash,
                        r.actor,
                        r.received_at,
                        &issuer,
                        signature,
                    )
                    .ok_or_else(|| format!("the receipt of {:?} is malformed", r.change_hash))
                })
                .collect::<std::result::Result<_, String>>()?;
            Ok((id, receipts, case.more))
        })
        .collect::<std::result::Result<_, String>>()?;
    Ok((certificates, cases))
}

/// Downloads the thumbnails of every photo in the cases this sync exchanged that the
/// device does not hold yet (originals come on demand, `fetch_blob`).
async fn download_thumbnails(
    store: &mut impl StoreAccess,
    server: &str,
    token: &str,
    report: &mut SyncReport,
) -> Result<()> {
    let cases = report.cases.clone();
    let wanted = store
        .with(move |s| {
            let mut wanted = std::collections::BTreeSet::new();
            for case in cases {
                if !s.has_case(case)? {
                    continue;
                }
                for photo in s.case(case)?.photos() {
                    if !photo.thumbnail.is_empty() && !s.has_blob(&photo.thumbnail)? {
                        wanted.insert(photo.thumbnail.clone());
                    }
                }
            }
            Ok(wanted)
        })
        .await?;
    for thumbnail in wanted {
        match fetch_blob(store, server, token, &thumbnail, "thumbnail").await {
            Ok(_) => report.thumbnails_downloaded += 1,
            // Not uploaded yet by the device that took it: the next sync fetches it.
            Err(Error::Network(message)) if message.starts_with("404") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Uploads every blob the server has not acknowledged, thumbnails first, originals
/// unless held back (`set_upload_originals(false)`, e.g. until Wi-Fi). An upload cut
/// anywhere continues from the server's offset on the next sync, not from zero.
async fn upload_blobs(
    store: &mut impl StoreAccess,
    http: &reqwest::Client,
    timeout: Duration,
    server: &str,
    token: &str,
    report: &mut SyncReport,
) -> Result<()> {
    let (pending, originals) = store
        .with(|s| Ok((s.pending_uploads()?, s.upload_originals())))
        .await?;
    for pending in pending {
        if pending.kind == "original" && !originals {
            continue;
        }
        let url = format!("{server}/api/v1/blobs/{}", pending.sha256);
        let head = http
            .head(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(network)?;
        if head.status().as_u16() == 404 {
            // No case the server holds mentions it yet (e.g. a photo not attached).
            continue;
        }
        if !head.status().is_success() {
            return Err(http_error(head).await);
        }
        let sha256 = pending.sha256.clone();
        let bytes = store.with(move |s| s.blob(&sha256)).await?;
        let mut offset = upload_offset(&head, bytes.len())?;
        let mut complete = header(&head, "upload-complete") == Some("true");
        // Each part once, and as many again for parts the server lost: a server that
        // never takes the rest ends the sync with an error, not an endless upload.
        let mut parts_left = 2 * bytes.len().div_ceil(UPLOAD_PART) + 2;
        while !complete {
            if parts_left == 0 {
                return Err(Error::Sync(format!(
                    "blob {}: the server does not take the rest of the upload",
                    pending.sha256
                )));
            }
            parts_left -= 1;
            let end = offset.saturating_add(UPLOAD_PART).min(bytes.len());
            // A part of 256 KiB at a few KiB/s on a poor signal takes a while; a server
            // that stops reading it must still not hang the sync.
            let response = http
                .patch(&url)
                .bearer_auth(token)
                .header("upload-offset", offset)
                .header("upload-length", bytes.len())
                .timeout(timeout * 4)
                .body(bytes[offset..end].to_vec())
                .send()
                .await
                .map_err(network)?;
            match response.status().as_u16() {
                200 | 201 => complete = true,
                204 | 409 => {}
                // The server takes no more of this account's uploads today: the rest
                // stay here, and go at a later sync.
                429 => {
                    report.uploads_deferred = Some(error_message(response).await);
                    return Ok(());
                }
                _ => return Err(http_error(response).await),
            }
            report.blob_bytes_sent += (end - offset) as u64;
            offset = upload_offset(&response, bytes.len())?;
        }
        let sha256 = pending.sha256.clone();
        store.with(move |s| s.mark_uploaded(&sha256)).await?;
        report.blobs_uploaded += 1;
    }
    Ok(())
}

/// Fetches a blob from the server, verifies it against its hash and keeps it (or reads
/// it from the store when it is there already).
pub async fn fetch_blob(
    store: &mut impl StoreAccess,
    server: &str,
    token: &str,
    sha256: &str,
    kind: &str,
) -> Result<Vec<u8>> {
    let held = sha256.to_owned();
    let (local, timeout) = store
        .with(move |s| {
            let local = if s.has_blob(&held)? {
                Some(s.blob(&held)?)
            } else {
                None
            };
            Ok((local, s.network_timeout()))
        })
        .await?;
    if let Some(bytes) = local {
        return Ok(bytes);
    }
    let url = format!("{}/api/v1/blobs/{sha256}", server.trim_end_matches('/'));
    let response = http(timeout)?
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(network)?;
    if !response.status().is_success() {
        return Err(http_error(response).await);
    }
    let mime = header(&response, "content-type")
        .unwrap_or("application/octet-stream")
        .to_owned();
    // A photo's original is the largest blob there is.
    let most = crate::photo::PhotoLimits::default().max_bytes as usize;
    let bytes = body_within(response, most, "a blob").await?;
    let (sha256, kind) = (sha256.to_owned(), kind.to_owned());
    store
        .with(move |s| {
            s.store_fetched_blob(&sha256, &kind, &mime, &bytes)?;
            Ok(bytes)
        })
        .await
}

/// How a sync round ended.
enum Round {
    /// Its page of the catalog was cut short: more follow.
    Paged,
    /// The catalog showed nothing to exchange.
    Idle,
    /// Cases were exchanged.
    Exchanged,
}

async fn sync_round(
    store: &mut impl StoreAccess,
    http: &reqwest::Client,
    timeout: Duration,
    server: &str,
    token: &str,
    held: std::collections::BTreeSet<crate::codes::CaseId>,
    progress: &mut (impl FnMut(SyncProgress) + Send),
) -> Result<(SyncReport, Round)> {
    let owned = server.to_owned();
    let since = store.with(move |s| s.sync_cursor(&owned)).await?;
    let response = http
        .get(format!("{server}/api/v1/catalog?since={since}"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(network)?;
    if !response.status().is_success() {
        return Err(http_error(response).await);
    }
    let body = body_within(response, JSON_BYTES, "the catalog").await?;
    let catalog: CatalogPage =
        serde_json::from_slice(&body).map_err(|e| Error::Sync(format!("catalog: {e}")))?;
    // A page cut short moves the cursor on, or the pages would never end.
    let paged = catalog.more && catalog.cursor > since;
    let ended = |otherwise| if paged { Round::Paged } else { otherwise };
    let owned = server.to_owned();
    let (mut session, catalog) = store
        .with(move |s| {
            s.learn_revocations(&catalog.revoked)?;
            let session = SyncSession::plan_without(s, &owned, &catalog, &held)?;
            Ok((session, catalog))
        })
        .await?;
    session.count_http(body.len() as u64);
    if session.is_idle() {
        let cursor = catalog.cursor;
        let report = store.with(move |s| session.finish(s, cursor)).await?;
        return Ok((report, ended(Round::Idle)));
    }

    let ws_url = format!("{}/sync?token={token}", server.replacen("http", "ws", 1));
    let (mut socket, _) =
        tokio::time::timeout(timeout, tokio_tungstenite::connect_async(ws_url.as_str()))
            .await
            .map_err(|_| silent())?
            .map_err(network)?;
    send(&mut socket, session.join(), timeout).await?;
    while !session.is_done() {
        let frame = match tokio::time::timeout(timeout, socket.next()).await {
            Err(_) => return Err(silent()),
            Ok(None) => return Err(Error::Network("the server closed the connection".into())),
            Ok(Some(frame)) => frame.map_err(network)?,
        };
        let bytes = match frame {
            Message::Binary(bytes) => bytes,
            Message::Close(_) => {
                return Err(Error::Network("the server closed the connection".into()));
            }
            _ => continue,
        };
        let (replies, returned) = store
            .with(move |s| {
                let replies = session.on_frame(s, &bytes)?;
                Ok((replies, session))
            })
            .await?;
        session = returned;
        for reply in replies {
            send(&mut socket, reply, timeout).await?;
        }
        progress(session.progress());
    }
    // The round is complete whether or not the close handshake finishes.
    let _ = tokio::time::timeout(timeout, socket.close(None)).await;
    let cursor = catalog.cursor;
    let report = store.with(move |s| session.finish(s, cursor)).await?;
    Ok((report, ended(Round::Exchanged)))
}

/// Bytes per `PATCH` of an upload: small enough that a cut costs little on a weak
/// network, large enough that the request overhead does not matter.
const UPLOAD_PART: usize = 256 * 1024;

/// POSTs `body` as JSON with the token.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<reqwest::Response> {
    http.post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(network)
}

/// The most bytes a JSON answer of the server may have (the catalog of every case a
/// district sees is the largest): a server or a proxy sending more is not read to the end.
const JSON_BYTES: usize = 64 << 20;

/// The most bytes of an error's answer read for its message.
const ERROR_BYTES: usize = 64 << 10;

/// The JSON answer of a successful response (`what` names it in errors).
async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T> {
    if !response.status().is_success() {
        return Err(http_error(response).await);
    }
    let body = body_within(response, JSON_BYTES, what).await?;
    serde_json::from_slice(&body).map_err(|e| Error::Sync(format!("{what}: {e}")))
}

/// The body of `response`, read only up to `limit` bytes: memory a phone cannot be made to
/// run out of by a server that sends without end (`what` names it in errors).
async fn body_within(mut response: reqwest::Response, limit: usize, what: &str) -> Result<Vec<u8>> {
    let too_large = || Error::Sync(format!("{what}: the server sent more than {limit} bytes"));
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(network)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// How much of an upload of `length` bytes the server says it holds.
fn upload_offset(response: &reqwest::Response, length: usize) -> Result<usize> {
    header(response, "upload-offset")
        .and_then(|v| v.parse().ok())
        .filter(|offset| *offset <= length)
        .ok_or_else(|| {
            Error::Sync(format!(
                "the server did not say how much of the upload of {length} bytes it holds"
            ))
        })
}

fn network(e: impl std::fmt::Display) -> Error {
    Error::Network(e.to_string())
}

async fn http_error(response: reqwest::Response) -> Error {
    let status = response.status();
    let message = error_message(response).await;
    match status.as_u16() {
        401 | 403 => Error::Auth(message),
        _ => Error::Network(format!("{status}: {message}")),
    }
}

/// The message of the server's error answer (its status when it sent none).
async fn error_message(response: reqwest::Response) -> String {
    let status = response.status();
    body_within(response, ERROR_BYTES, "an error")
        .await
        .ok()
        .and_then(|body| serde_json::from_slice::<ErrorBody>(&body).ok())
        .map_or_else(|| status.to_string(), |b| b.message)
}

/// Sends one frame, giving up when the server stops reading for `timeout`.
async fn send<S>(socket: &mut S, frame: Vec<u8>, timeout: Duration) -> Result<()>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    tokio::time::timeout(timeout, socket.send(Message::Binary(frame.into())))
        .await
        .map_err(|_| silent())?
        .map_err(network)
}

/// The error of a server that stopped answering.
fn silent() -> Error {
    Error::Network("the server stopped answering; sync again when the connection is back".into())
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::http;

    use super::{body_within, upload_offset};
    use crate::Error;

    fn answer(offset: &str) -> reqwest::Response {
        http::Response::builder()
            .header("upload-offset", offset)
            .body("")
            .expect("a response")
            .into()
    }

    #[test]
    fn an_upload_offset_past_the_blob_is_an_error_not_a_slice_out_of_range() {
        assert_eq!(upload_offset(&answer("1270"), 1270).expect("held"), 1270);
        assert_eq!(upload_offset(&answer("0"), 1270).expect("held"), 0);
        for wrong in ["1271", "999999999", "-1", "18446744073709551616", ""] {
            assert!(
                matches!(upload_offset(&answer(wrong), 1270), Err(Error::Sync(_))),
                "{wrong}"
            );
        }
    }

    #[tokio::test]
    async fn a_body_is_read_only_up_to_its_limit() {
        let sent = |body: &'static str| -> reqwest::Response {
            http::Response::builder()
                .body(body)
                .expect("a response")
                .into()
        };
        assert_eq!(
            body_within(sent("0123456789"), 10, "a test")
                .await
                .expect("within"),
            b"0123456789"
        );
        assert!(matches!(
            body_within(sent("0123456789!"), 10, "a test").await,
            Err(Error::Sync(_))
        ));
    }
}
