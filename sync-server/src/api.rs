//! The HTTP API under `/api/v1/`: login, the catalog, supervisors' case queries, review
//! actions and the rectification board. Each handler's `#[utoipa::path]` is its part of
//! the OpenAPI description (`openapi.rs`).

use std::sync::Arc;

use anjian_core::signing::{KeyAlgorithm, PublicKey, Signer};
use anjian_core::sync::CatalogPage;
use anjian_core::{DistrictCode, HazardStep, RectificationState, ReviewAction};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{self, AuthDevice, AuthUser, ClientAddr};
use crate::case_view::CaseView;
use crate::error::{AppError, AppResult, ErrorBody, JsonBodyRefused, SignedOut};
use crate::extract::{Json, Path, Query};
use crate::queries::{self, BoardFilter, BoardRow, CaseFilter, CaseRow};
use crate::schemas;
use crate::state::AppState;
use crate::users::User;
use crate::{policy, review};

/// `POST /api/v1/login` body.
#[derive(Deserialize, ToSchema)]
pub struct Login {
    /// Sign-in name.
    username: String,
    /// Password.
    password: String,
    /// The name the app gives the device (shown to administrators and beside its changes):
    /// at most 64 characters, none a control character or a direction override, and not
    /// the server's own name for its actors.
    #[schema(max_length = 64)]
    device_name: String,
    /// The device's Automerge actor id (16 bytes in hex), kept in its store for ever.
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    actor_id: String,
    /// The algorithm of the key the device signs its changes with: `ed25519` or `p256`.
    /// Devices that sign nothing (the stock automerge-repo client) send neither this nor
    /// `public_key`.
    #[serde(default)]
    key_algorithm: Option<String>,
    /// The public key, in hex: 32 bytes for Ed25519, a compressed or uncompressed point
    /// for P-256.
    #[serde(default)]
    #[schema(pattern = "^([0-9a-fA-F]{2})+$")]
    public_key: Option<String>,
}

impl Login {
    /// The public key the device sent, checked.
    fn key(&self) -> AppResult<Option<PublicKey>> {
        let (algorithm, bytes) = match (&self.key_algorithm, &self.public_key) {
            (None, None) => return Ok(None),
            (Some(algorithm), Some(bytes)) => (algorithm, bytes),
            _ => {
                return Err(AppError::BadRequest(
                    "key_algorithm and public_key come together".into(),
                ));
            }
        };
        let algorithm: KeyAlgorithm = algorithm
            .parse()
            .map_err(|e: anjian_core::Error| AppError::BadRequest(e.to_string()))?;
        let bytes = hex::decode(bytes)
            .map_err(|_| AppError::BadRequest("public_key must be hex".into()))?;
        PublicKey::new(algorithm, bytes)
            .map(Some)
            .map_err(|e| AppError::BadRequest(e.to_string()))
    }
}

/// `POST /api/v1/login` answer.
#[derive(Serialize, ToSchema)]
pub struct LoginAnswer {
    /// The token (64 hex digits) to send as `Authorization: Bearer TOKEN`.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    token: String,
    /// The account signed in.
    user: User,
    /// For a device that sent its public key: the certificate the server issued it (hex
    /// of its CBOR, docs/EVIDENCE.md), which the device shows its peers on site.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^([0-9a-f]{2})+$")]
    certificate: Option<String>,
    /// The server's public key (Ed25519, hex), with which devices verify each other's
    /// certificates and their receipts.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    server_key: String,
}

/// Sign in and bind the device
///
/// Checks the password, binds the device's actor id to the user (a device belongs to one
/// user for ever) and issues a token, valid for `token_days` (30 by default), after which
/// the app signs in again. Failed sign-ins slow further ones down, per name and address,
/// per address and per name.
#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "sync",
    request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = LoginAnswer),
        (status = 400, description = "The body is not valid JSON, `actor_id` is not 32 hex digits, the device name is too long, has a control character or is the server's own, or the public key is not one of its algorithm", body = ErrorBody),
        (status = 401, description = "Wrong name or password (the same answer for both)", body = ErrorBody),
        (status = 403, description = "The account is disabled, the device revoked, or a new device would pass the account's `devices_per_user`", body = ErrorBody),
        (status = 409, description = "The device is bound to another user, the actor id is the server's, or the public key is another device's", body = ErrorBody),
        JsonBodyRefused,
        (status = 429, description = "Too many failed sign-ins, or the account signed in too often: try again after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The server is busy checking other sign-ins: try again after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
pub async fn login(
    State(app): State<Arc<AppState>>,
    ClientAddr(address): ClientAddr,
    Json(body): Json<Login>,
) -> AppResult<Json<LoginAnswer>> {
    let storage = app.storage.clone();
    let days = app.settings.token_days;
    let devices = app.settings.limits.devices_per_user;
    let name = body.username.trim().to_owned();
    let key = body.key()?;
    let server_key = hex::encode(app.storage.server_key().public_key().bytes());
    let (token, user, certificate) = auth::sign_in(&app, &name, address, move || {
        storage.login(
            &body.username,
            &body.password,
            &body.device_name,
            &body.actor_id,
            key.as_ref(),
            days,
            devices,
        )
    })
    .await?;
    Ok(Json(LoginAnswer {
        token,
        user,
        certificate: certificate.map(|c| hex::encode(c.encode())),
        server_key,
    }))
}

/// `?since=&limit=` of the catalog.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Since {
    /// The cursor of the previous page (0, or absent, for everything).
    #[serde(default)]
    since: i64,
    /// The most documents wanted in this page; the server's `limits.catalog_page` (1,000)
    /// when absent or larger.
    limit: Option<usize>,
}

/// The documents to sync
///
/// The documents this user may see that changed after `since`, oldest change first, with
/// their heads (hex change hashes, sorted), and the cursor to pass next time. At most
/// `limits.catalog_page` (1,000) documents a page: a page cut short says `more`, and its
/// cursor is that of its last document.
#[utoipa::path(
    get,
    path = "/api/v1/catalog",
    tag = "sync",
    params(Since),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The documents changed since the cursor", body = CatalogPage),
        (status = 400, description = "`since` or `limit` is not a whole number, or is given twice", body = ErrorBody),
        SignedOut,
    ),
)]
pub async fn catalog(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(q): Query<Since>,
) -> AppResult<Json<CatalogPage>> {
    let most = app.settings.limits.catalog_page;
    let limit = q.limit.map_or(most, |limit| limit.min(most));
    let page = app
        .reading(user.id, move |app| {
            app.storage.catalog(&user, q.since, limit)
        })
        .await?;
    Ok(Json(page))
}

/// A page of the case list.
#[derive(Serialize, ToSchema)]
pub struct CaseList {
    /// How many cases match in all.
    total: i64,
    /// This page of them, newest visit first.
    cases: Vec<CaseRow>,
}

/// The case list
///
/// The cases this user's scope covers (supervisors: their district's jurisdiction;
/// admins: everything; inspectors: their own cases), filtered, newest visit first.
#[utoipa::path(
    get,
    path = "/api/v1/cases",
    tag = "cases",
    params(CaseFilter),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the matching cases", body = CaseList),
        (status = 400, description = "`from` or `to` is not a date, `limit` or `offset` not a whole number, or a parameter is given twice", body = ErrorBody),
        SignedOut,
    ),
)]
pub async fn cases(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(filter): Query<CaseFilter>,
) -> AppResult<Json<CaseList>> {
    let (cases, total) = app
        .reading(user.id, move |app| {
            app.storage
                .read(|conn| queries::cases(conn, policy::scope(&user), &filter))
        })
        .await?;
    Ok(Json(CaseList { total, cases }))
}

/// One case
///
/// The case in full, with its conflicts (every value with who wrote it) and its history
/// (device time and server receipt time side by side). Any case the user may read (as sync
/// serves it: an inspector's district colleagues' cases too); another is answered as one
/// that does not exist.
#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}",
    tag = "cases",
    params(("id" = String, Path, format = Uuid, description = "Case id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The case", body = CaseView, links(
            ("CloseFirstFinding" = (operation_id = "close_rectification", parameters(
                ("id" = "$response.body#/id"),
                ("finding" = "$response.body#/findings/0/id"),
            ), description = "Close the rectification of the case's first finding")),
            ("FirstPhoto" = (operation_id = "get_blob", parameters(
                ("sha256" = "$response.body#/findings/0/photos/0/sha256"),
            ), description = "The first photo of the case's first finding")),
            ("FirstPhotoHeld" = (operation_id = "blob_offset", parameters(
                ("sha256" = "$response.body#/findings/0/photos/0/sha256"),
            ), description = "How much of that photo the server holds")),
            ("FirstThumbnail" = (operation_id = "get_blob", parameters(
                ("sha256" = "$response.body#/findings/0/photos/0/thumbnail"),
            ), description = "Its thumbnail")),
        )),
        (status = 400, description = "The id is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 404, description = "No such case, or not one this user may see", body = ErrorBody),
    ),
)]
pub async fn case(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Json<CaseView>> {
    let detail = app
        .reading(user.id, move |app| review::load(app, &user, &id))
        .await?;
    Ok(Json(CaseView::of(detail)))
}

/// `POST /api/v1/proofs` body.
#[derive(Deserialize, ToSchema)]
pub struct ProofsRequest {
    /// The cases (ids), at most `MAX_PROOF_CASES` (100).
    #[schema(max_items = 100)]
    cases: Vec<String>,
    /// By case id, where to go on in a case an earlier answer cut short (`more`): the
    /// last receipt it gave of the case.
    #[serde(default)]
    after: std::collections::BTreeMap<String, ReceiptCursor>,
}

/// A receipt's place in its case's receipts, which are ordered by `received_at`, then
/// `change_hash`.
#[derive(Deserialize, ToSchema)]
pub struct ReceiptCursor {
    received_at: String,
    change_hash: String,
}

/// Cases asked about in one `POST /api/v1/proofs`, at most.
pub const MAX_PROOF_CASES: usize = 100;

/// What the server signed about cases' changes, for a device to keep.
#[derive(Serialize, ToSchema)]
pub struct Proofs {
    /// The server's public key (Ed25519, hex).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    server_key: String,
    /// The certificates the server issued the devices (and the server-side actors) that
    /// wrote the cases' changes, each once: hex of their CBOR (docs/EVIDENCE.md).
    certificates: Vec<String>,
    /// Per case the user may sync, the server's signed receipt of every change it
    /// committed (the other cases asked about are left out).
    cases: Vec<CaseProofs>,
}

/// The receipts of one case's changes.
#[derive(Serialize, ToSchema)]
pub struct CaseProofs {
    /// The case id.
    #[schema(format = Uuid)]
    case: String,
    /// The server's signed receipt of each change of it, in order, from after the cursor
    /// asked with.
    receipts: Vec<ReceiptProof>,
    /// Whether there are more, past the last of these: ask again with it in `after`.
    more: bool,
}

/// The server's signed receipt of one change.
#[derive(Serialize, ToSchema)]
pub struct ReceiptProof {
    /// The change (hex hash).
    change_hash: String,
    /// The actor that wrote it (hex).
    actor: String,
    /// When the server first received it (RFC 3339, server time).
    received_at: String,
    /// The key id of the server key that signed the receipt (hex).
    issuer: String,
    /// The signature (hex) of `anjian receipt v1\n` + hash + actor + `\n` + received_at.
    signature: String,
}

/// Cases' certificates and receipts
///
/// The server's signed receipts of the cases' changes (proof of when each reached the
/// server) and the certificates of the devices that wrote them: a device keeps them, to
/// show them as evidence and to verify its teammates' changes on site without signal.
/// Answered for the cases the user may sync; others, and unknown ids, are left out. At
/// most `limits.receipts_per_proofs_answer` (5,000) receipts an answer, with the
/// certificates of their writers: a case cut short says `more`, and is asked again from
/// its last receipt.
#[utoipa::path(
    post,
    path = "/api/v1/proofs",
    tag = "sync",
    request_body = ProofsRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cases' receipts and their writers' certificates", body = Proofs),
        (status = 400, description = "The body is not valid JSON, or asks about more than 100 cases", body = ErrorBody),
        SignedOut,
        JsonBodyRefused,
    ),
)]
pub async fn proofs(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Json(body): Json<ProofsRequest>,
) -> AppResult<Json<Proofs>> {
    if body.cases.len() > MAX_PROOF_CASES {
        return Err(AppError::BadRequest(format!(
            "at most {MAX_PROOF_CASES} cases per request"
        )));
    }
    // An id that is not a case id names no case the user may sync; a case asked twice is
    // answered once.
    let mut seen = std::collections::HashSet::new();
    let asked: Vec<(anjian_core::CaseId, Option<(String, String)>)> = body
        .cases
        .iter()
        .filter_map(|id| Some((id.parse().ok()?, id)))
        .filter(|(case, _)| seen.insert(*case))
        .map(|(case, id)| {
            let after = body
                .after
                .get(id)
                .map(|c| (c.received_at.clone(), c.change_hash.clone()));
            (case, after)
        })
        .collect();
    let proofs = app
        .reading(user.id, move |app| {
            let most = app.settings.limits.receipts_per_proofs_answer;
            app.storage.proofs(&user, &asked, most)
        })
        .await?;
    Ok(Json(Proofs {
        server_key: hex::encode(app.storage.server_key().public_key().bytes()),
        certificates: proofs.certificates.iter().map(hex::encode).collect(),
        cases: proofs
            .receipts
            .into_iter()
            .map(|(case, receipts, more)| CaseProofs {
                case: case.to_string(),
                more,
                receipts: receipts
                    .into_iter()
                    .map(|r| ReceiptProof {
                        change_hash: r.hash.to_string(),
                        actor: r.actor,
                        received_at: r.received_at,
                        issuer: hex::encode(r.issuer),
                        signature: hex::encode(r.signature),
                    })
                    .collect(),
            })
            .collect(),
    }))
}

/// `POST /api/v1/number-blocks` body.
#[derive(Deserialize, ToSchema)]
pub struct NumberBlocksRequest {
    /// The key id (hex, 8 bytes) of the device key the numbers are bound to: one the
    /// device registered at sign-in.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    key: String,
    /// The kinds of document to allocate a block for, each once:
    /// `inspection_record`, `rectification_order`, `onsite_decision`,
    /// `reinspection_opinion`.
    #[schema(max_items = 4)]
    kinds: Vec<String>,
}

/// Blocks of document numbers for a device.
#[derive(Serialize, ToSchema)]
pub struct NumberBlocks {
    /// One block per kind asked for: the lines of `anjian-numbers/1` (format, prefix,
    /// kind, year, first, last, actor, key id, issued at, issuer) and the server's
    /// signature in hex, joined by newlines (docs/protocol.md).
    blocks: Vec<String>,
}

/// Blocks of document numbers
///
/// Allocates the signed-in device, for one of its registered keys, a block of numbers
/// for this year per kind of enforcement document asked for, in its department's format
/// (（沪黄）应急责改〔2026〕0012号). The device issues from them offline; every seal carries
/// its block, and the server and teammates' phones check the number against it.
#[utoipa::path(
    post,
    path = "/api/v1/number-blocks",
    tag = "sync",
    request_body = NumberBlocksRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The blocks allocated, signed", body = NumberBlocks),
        (status = 400, description = "The key id is not hex of 8 bytes, or a kind is asked for twice", body = ErrorBody),
        SignedOut,
        (status = 403, description = "The key is not one this device registered", body = ErrorBody),
        (status = 409, description = "The account holds the most blocks of a kind a year allows", body = ErrorBody),
        JsonBodyRefused,
    ),
)]
pub async fn number_blocks(
    State(app): State<Arc<AppState>>,
    AuthDevice(session): AuthDevice,
    Json(body): Json<NumberBlocksRequest>,
) -> AppResult<Json<NumberBlocks>> {
    let key: anjian_core::signing::KeyId = hex::decode(&body.key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AppError::BadRequest("key: the hex of an 8-byte key id".into()))?;
    let mut kinds: Vec<anjian_core::WritKind> = Vec::new();
    for code in &body.kinds {
        let kind = code
            .parse()
            .map_err(|e: anjian_core::Error| AppError::BadRequest(format!("kinds: {e}")))?;
        if kinds.contains(&kind) {
            return Err(AppError::BadRequest("kinds: each kind once".into()));
        }
        kinds.push(kind);
    }
    let blocks = app
        .writing(move |storage| {
            storage.allocate_number_blocks(&session.user, &session.actor_id, &key, &kinds)
        })
        .await?;
    Ok(Json(NumberBlocks { blocks }))
}

/// `POST /api/v1/cases/{id}/review` body.
#[derive(Deserialize, ToSchema)]
pub struct ReviewBody {
    /// The action (its code; its Chinese label is accepted too).
    #[schema(value_type = schemas::ReviewAction)]
    action: String,
    /// The comment (needed by `return`, `reopen` and `comment`).
    #[serde(default)]
    text: String,
}

/// The state a case is in after an action.
#[derive(Serialize, ToSchema)]
pub struct StateAnswer {
    /// Review state code.
    #[schema(value_type = schemas::ReviewState)]
    state: &'static str,
}

/// A review action
///
/// `submit`, `return`, `approve`, `reopen` or `comment`, written into the case by the
/// caller's server-side actor and judged by the rule book like any change.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/review",
    tag = "cases",
    params(("id" = String, Path, format = Uuid, description = "Case id")),
    request_body = ReviewBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Done: the case's new state", body = StateAnswer),
        (status = 400, description = "The body is not valid JSON, the action is not one of the actions, it needs a comment, or the id is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 403, description = "The rule book refuses the action to the caller (`refused`, with its `rule`), or a cookie session sent no CSRF token", body = ErrorBody),
        (status = 404, description = "No such case, or not one this user may see", body = ErrorBody),
        (status = 409, description = "The action is not possible in the case's state", body = ErrorBody),
        JsonBodyRefused,
    ),
)]
pub async fn review_case(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> AppResult<Json<StateAnswer>> {
    let action: ReviewAction = body.action.parse()?;
    let state = review::act(&app, &user, &id, action, &body.text).await?;
    Ok(Json(StateAnswer {
        state: state.code(),
    }))
}

/// `POST /api/v1/cases/{id}/resolve` body: the conflict's path, and either the value to
/// keep, as shown in the case's `conflicts` (`keep`), or a new text value (`value`).
#[derive(Deserialize, ToSchema)]
pub struct ResolveBody {
    /// The conflict's path, as in the case's `conflicts`.
    path: Vec<String>,
    /// The values the caller saw, as in the case's `conflicts`: if given, the field's
    /// values must still be these (`409` otherwise), so that a value written since is
    /// never overwritten unseen.
    #[serde(default)]
    shown: Option<Vec<String>>,
    /// The value to keep, as shown in the case's `conflicts`.
    keep: Option<String>,
    /// A new text value.
    value: Option<String>,
}

/// The conflict resolved.
#[derive(Serialize, ToSchema)]
pub struct Resolved {
    /// Its path.
    resolved: Vec<String>,
}

/// Resolve a conflict
///
/// Keeps the value shown as `keep` (refused if it is no longer one of the values, so that
/// nothing is picked quietly), or writes a new text value: an edit of the field, judged by
/// the rule book. With `shown`, refused unless the field's values are still those.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/resolve",
    tag = "cases",
    params(("id" = String, Path, format = Uuid, description = "Case id")),
    request_body = ResolveBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Resolved", body = Resolved),
        (status = 400, description = "The body is not valid JSON, gives both or neither of `keep` and `value` or a value the field cannot hold, or the id is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 403, description = "The rule book refuses the edit to the caller (`refused`, with its `rule`), or a cookie session sent no CSRF token", body = ErrorBody),
        (status = 404, description = "No such case or field, or not one this user may see", body = ErrorBody),
        (status = 409, description = "The field is no longer in conflict, `keep` is no longer one of its values, or its values are not the `shown` ones", body = ErrorBody),
        JsonBodyRefused,
    ),
)]
pub async fn resolve_conflict(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(body): Json<ResolveBody>,
) -> AppResult<Json<Resolved>> {
    let decision = match (body.keep, body.value) {
        (Some(shown), None) => review::Decision::Keep(shown),
        (None, Some(value)) => review::Decision::Write(value),
        _ => {
            return Err(AppError::BadRequest(
                "give either keep (one of the values, as shown) or value (a new value)".into(),
            ));
        }
    };
    review::resolve(&app, &user, &id, &body.path, body.shown, decision).await?;
    Ok(Json(Resolved {
        resolved: body.path,
    }))
}

/// `POST /api/v1/cases/{id}/share` body: the districts the case is shared with besides
/// its owner (replacing those it was shared with).
#[derive(Deserialize, ToSchema)]
pub struct ShareBody {
    /// District codes.
    #[schema(value_type = Vec<schemas::DistrictCode>)]
    districts: Vec<String>,
}

/// The districts a case is shared with.
#[derive(Serialize, ToSchema)]
pub struct Shared {
    /// District codes, besides the owner.
    #[schema(value_type = Vec<schemas::DistrictCode>)]
    visible_to: Vec<String>,
}

/// Share a case
///
/// Shares a case with other districts besides its owner (replacing those it was shared
/// with), as a supervisor of the owning district or an admin.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/share",
    tag = "cases",
    params(("id" = String, Path, format = Uuid, description = "Case id")),
    request_body = ShareBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Shared", body = Shared),
        (status = 400, description = "The body is not valid JSON, a district is not a district code, or the id is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 403, description = "The rule book refuses sharing to the caller (`refused`, with its `rule`), or a cookie session sent no CSRF token", body = ErrorBody),
        (status = 404, description = "No such case, or not one this user may see", body = ErrorBody),
        (status = 409, description = "The case cannot be shared in its state", body = ErrorBody),
        JsonBodyRefused,
    ),
)]
pub async fn share_case(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(body): Json<ShareBody>,
) -> AppResult<Json<Shared>> {
    let districts = body
        .districts
        .iter()
        .map(|d| d.parse::<DistrictCode>())
        .collect::<Result<Vec<_>, _>>()?;
    let shared = review::share(&app, &user, &id, districts).await?;
    Ok(Json(Shared {
        visible_to: shared.iter().map(|d| d.as_str().to_owned()).collect(),
    }))
}

/// A rectification closed.
#[derive(Serialize, ToSchema)]
pub struct Closed {
    /// `closed`.
    #[schema(schema_with = closed)]
    state: &'static str,
}

/// Schema of `Closed::state`: `closed` only.
fn closed() -> utoipa::openapi::schema::Object {
    schemas::codes([RectificationState::Closed.code()])
}

/// Close a rectification (销号)
///
/// Closes a re-inspected hazard: a major one by the owning district's supervisors (and
/// admins), a general one also by the inspector who re-inspected it.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/findings/{finding}/close",
    tag = "cases",
    params(
        ("id" = String, Path, format = Uuid, description = "Case id"),
        ("finding" = String, Path, format = Uuid, description = "Finding id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Closed", body = Closed),
        (status = 400, description = "An id is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 403, description = "The rule book refuses closing (`refused`, with its `rule`: `rectification_loop` before a 合格 re-inspection, `close` to one who may not close this level), or a cookie session sent no CSRF token", body = ErrorBody),
        (status = 404, description = "No such case or finding, or not one this user may see", body = ErrorBody),
    ),
)]
pub async fn close_rectification(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path((id, finding)): Path<(String, String)>,
) -> AppResult<Json<Closed>> {
    review::follow_up(&app, &user, &id, &finding, HazardStep::close()).await?;
    Ok(Json(Closed {
        state: RectificationState::Closed.code(),
    }))
}

/// A finding's rectification after a step.
#[derive(Serialize, ToSchema)]
pub struct StepAnswer {
    /// The rectification state the step left.
    #[schema(value_type = schemas::RectificationState)]
    state: &'static str,
}

/// A step of a hazard's follow-up
///
/// 延期, 复查 (合格/不合格), 销号, 挂牌督办, 治理方案, 进展报告 or 摘牌, written into the case by
/// the caller's server-side actor and judged by the rule book like any change: also on an
/// approved case, since approval locks the record of the visit, not the hazards'
/// follow-up. Listing, delisting and closing a major hazard belong to the owning
/// district's supervisors.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/findings/{finding}/steps",
    tag = "cases",
    params(
        ("id" = String, Path, format = Uuid, description = "Case id"),
        ("finding" = String, Path, format = Uuid, description = "Finding id"),
    ),
    request_body = review::StepFields,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recorded: the rectification's state", body = StepAnswer),
        (status = 400, description = "The body is not valid JSON, the action or a field is not valid, or an id is not UTF-8 once percent-decoded", body = ErrorBody),
        SignedOut,
        (status = 403, description = "The rule book refuses the step (`refused`, with its `rule`), or a cookie session sent no CSRF token", body = ErrorBody),
        (status = 404, description = "No such case or finding, or not one this user may see", body = ErrorBody),
        JsonBodyRefused,
    ),
)]
pub async fn follow_up(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path((id, finding)): Path<(String, String)>,
    Json(body): Json<review::StepFields>,
) -> AppResult<Json<StepAnswer>> {
    let step = body.step()?;
    let state = review::follow_up(&app, &user, &id, &finding, step).await?;
    Ok(Json(StepAnswer {
        state: state.code(),
    }))
}

/// The register of enforcement documents.
#[derive(Serialize, ToSchema)]
pub struct Register {
    /// The page of numbered documents asked for (`limit`, `offset`), the last sealed first.
    documents: Vec<queries::RegisterRow>,
    /// Documents matching the filters, over every page.
    total: i64,
}

/// The register of enforcement documents (执法文书)
///
/// The numbered documents in the user's scope — awaiting signatures, issued or voided
/// (a voided number stays on record) — with their number, kind, state and dates, a page
/// at a time (the last sealed first) with the count over all; supervisors and admins
/// only.
#[utoipa::path(
    get,
    path = "/api/v1/documents",
    tag = "cases",
    params(queries::RegisterFilter),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The register", body = Register),
        (status = 400, description = "A parameter is given twice", body = ErrorBody),
        SignedOut,
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ),
)]
pub async fn documents(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(filter): Query<queries::RegisterFilter>,
) -> AppResult<Json<Register>> {
    policy::require_supervisor(&user)?;
    let (total, documents) = app
        .reading(user.id, move |app| {
            app.storage
                .read(|conn| queries::register(conn, policy::scope(&user), &filter))
        })
        .await?;
    Ok(Json(Register { documents, total }))
}

/// The rectification board.
#[derive(Serialize, ToSchema)]
pub struct Board {
    /// Today in China (`YYYY-MM-DD`), on which overdue is judged.
    #[schema(format = Date)]
    today: String,
    /// The page of open rectifications asked for (`limit`, `offset`).
    rectifications: Vec<BoardRow>,
    /// Rectifications on the board matching the filters, over every page.
    total: i64,
    /// Of which listed for supervision (挂牌督办).
    listed: i64,
    /// Of which overdue.
    overdue: i64,
}

/// The rectification board
///
/// Open rectifications in the user's scope, and hazards listed for supervision (挂牌督办)
/// until delisted: listed ones first (with their authority, number and days left), then
/// overdue ones, then by deadline, one page at a time, with the counts over all of them;
/// supervisors and admins only.
#[utoipa::path(
    get,
    path = "/api/v1/rectifications",
    tag = "cases",
    params(BoardFilter),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The board", body = Board, links(
            ("CaseOfFirst" = (operation_id = "case", parameters(
                ("id" = "$response.body#/rectifications/0/case_id"),
            ), description = "The case of the first rectification")),
            ("CloseFirst" = (operation_id = "close_rectification", parameters(
                ("id" = "$response.body#/rectifications/0/case_id"),
                ("finding" = "$response.body#/rectifications/0/finding_id"),
            ), description = "Close the first rectification")),
        )),
        (status = 400, description = "A parameter is given twice", body = ErrorBody),
        SignedOut,
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ),
)]
pub async fn rectifications(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(filter): Query<BoardFilter>,
) -> AppResult<Json<Board>> {
    policy::require_supervisor(&user)?;
    let board = app
        .reading(user.id, move |app| {
            app.storage
                .read(|conn| queries::board(conn, policy::scope(&user), &filter))
        })
        .await?;
    Ok(Json(Board {
        today: queries::today().to_string(),
        rectifications: board.rows,
        total: board.total,
        listed: board.listed,
        overdue: board.overdue,
    }))
}
