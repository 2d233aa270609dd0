//! anjian-sync-server: merges what every inspector's device recorded (the automerge-repo
//! protocol over WebSocket, with the rule book between decoding and applying), enforces
//! who may see and change what, and serves supervisors' queries.
//!
//! Modules, from the bottom of the dependency order up: `memory`, `schemas`, `error`,
//! `config`, `users`, `storage`, `metrics`, `pool`, `turns`, `apply_time`, `hub`, `live`, `signin`, `blob_store`; then
//! `state` (what handlers share), `auth` (who is signed in) and `extract` (the API's
//! extractors); then `policy`, the handlers (`sync`, `api`, `blobs`, `review`, `queries`,
//! `stats`, `web`, …), `openapi` (their description) and `serve`.

pub mod api;
pub mod apply_time;
pub mod auth;
pub mod blob_store;
pub mod blobs;
pub mod bulletin_api;
pub mod case_view;
pub mod cluster;
pub mod config;
pub mod db;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod evidence;
pub mod export;
pub mod extract;
pub mod hub;
pub mod labels;
pub mod live;
pub mod memory;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub mod pool;
pub mod queries;
pub mod review;
pub mod schemas;
pub mod serve;
pub mod signin;
pub mod state;
pub mod stats;
pub mod storage;
pub mod sync;
pub mod testing;
pub mod turns;
pub mod users;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use config::Settings;
pub use error::{AppError, AppResult};
pub use serve::serve;
pub use state::AppState;
pub use storage::Storage;

/// Bodies of sign-in and form requests, at most.
pub const FORM_BODY_BYTES: usize = 8 * 1024;
/// Bodies of JSON actions, at most.
pub const ACTION_BODY_BYTES: usize = 64 * 1024;
/// Blob transfers (uploads and downloads) served at once; more wait their turn: each may
/// hold up to a photo's bytes in memory.
pub const BLOB_TRANSFERS: usize = 32;
/// What a sync socket reads at a time. Each connection keeps this much memory for as long
/// as it is open (the WebSocket library's default, 128 KiB, made an idle connection cost
/// more than everything else it holds); a larger frame is still read whole, in steps.
const SYNC_READ_BUFFER: usize = 8 * 1024;

/// Every route of the server, each with the body it may carry.
pub fn router(state: Arc<AppState>) -> Router {
    // Blobs are photos (up to the apps' 40 MB limit), sent whole or in parts.
    let blob_body = anjian_core::photo::PhotoLimits::default().max_bytes as usize + 1024;
    let action = || DefaultBodyLimit::max(ACTION_BODY_BYTES);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/sync", get(sync_upgrade))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route(
            "/api/v1/login",
            post(api::login).layer(DefaultBodyLimit::max(FORM_BODY_BYTES)),
        )
        .route("/api/v1/catalog", get(api::catalog))
        .route("/api/v1/cases", get(api::cases))
        .route("/api/v1/cases/{id}", get(api::case))
        .route("/api/v1/proofs", post(api::proofs).layer(action()))
        .route(
            "/api/v1/number-blocks",
            post(api::number_blocks).layer(action()),
        )
        .route(
            "/api/v1/cases/{id}/review",
            post(api::review_case).layer(action()),
        )
        .route(
            "/api/v1/cases/{id}/resolve",
            post(api::resolve_conflict).layer(action()),
        )
        .route(
            "/api/v1/cases/{id}/share",
            post(api::share_case).layer(action()),
        )
        .route(
            "/api/v1/cases/{id}/findings/{finding}/close",
            post(api::close_rectification).layer(action()),
        )
        .route(
            "/api/v1/cases/{id}/findings/{finding}/steps",
            post(api::follow_up).layer(action()),
        )
        .route("/api/v1/rectifications", get(api::rectifications))
        .route("/api/v1/documents", get(api::documents))
        .route("/api/v1/bulletins", get(bulletin_api::json))
        .route("/api/v1/bulletins.xlsx", get(bulletin_api::xlsx))
        .route("/api/v1/bulletins.csv", get(bulletin_api::csv))
        .route(
            "/api/v1/blobs/{sha256}",
            get(blobs::get)
                .head(blobs::head)
                .put(blobs::put)
                .patch(blobs::patch)
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(blob_body))
                // Each transfer may hold a photo's bytes in memory: a bounded number at once.
                .layer::<_, std::convert::Infallible>(
                    tower::limit::GlobalConcurrencyLimitLayer::new(BLOB_TRANSFERS),
                )
                // An account's transfers beyond a few wait outside them (on the routed
                // methods only: any other is answered 405 without a token).
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    blobs::one_turn_per_transfer,
                )),
        )
        .layer(axum::middleware::map_response(api_headers))
        .merge(web::routes())
        .layer(DefaultBodyLimit::max(ACTION_BODY_BYTES))
        .with_state(state)
}

/// Headers every answer of the API carries (the pages carry their own): what it answers
/// (a case in full, a photo, a document's PDF) is evidence and personal data, kept by no
/// cache on the way or on a shared office computer, and read as the type it says it is.
async fn api_headers(mut response: Response) -> Response {
    use axum::http::HeaderValue;
    use axum::http::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The counters, for this machine's own requests and the addresses `metrics_from` names;
/// 404 for anyone else. A request through a trusted proxy is its client's; one a proxy on
/// this machine forwarded (it names a client) is not this machine's own.
async fn metrics(State(app): State<Arc<AppState>>, parts: Parts) -> Response {
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_canonical());
    let forwarded = ["x-forwarded-for", "forwarded"]
        .iter()
        .any(|name| parts.headers.contains_key(*name));
    // A trusted proxy that names no client leaves its own address: its request is not
    // this machine's own either.
    let own = |ip: std::net::IpAddr| {
        ip.is_loopback() && !forwarded && !app.settings.trusted_proxies.contains(&ip)
    };
    let allowed = client.is_some_and(|ip| own(ip) || app.settings.metrics_from.contains(&ip));
    if !allowed {
        return AppError::NotFound("no such page".into()).into_response();
    }
    app.metrics
        .render(&[
            (
                "anjian_hub_documents",
                "Documents held in memory for connections and requests.",
                app.hub.slots() as u64,
            ),
            (
                "anjian_loaded_documents",
                "Documents loaded in memory.",
                app.hub.loaded() as u64,
            ),
            (
                "anjian_live_connections",
                "Sync connections registered for revocation.",
                app.live.len() as u64,
            ),
        ])
        .into_response()
}

async fn sync_upgrade(
    State(app): State<Arc<AppState>>,
    parts: Parts,
    ws: WebSocketUpgrade,
) -> Response {
    let session = auth::socket_token_from(&parts).and_then(|t| {
        app.storage
            .token_session(&users::token_hash(&t))
            .ok()
            .flatten()
    });
    let limit = app.settings.max_message_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(SYNC_READ_BUFFER)
        .on_upgrade(move |socket| sync::serve_socket(app, session, socket))
        .into_response()
}
