//! anjian-sync-server: merges what every inspector's device recorded (the automerge-repo
//! protocol over WebSocket, with the server's policy between decoding and applying),
//! enforces who may see and change what, and serves supervisors' queries.

pub mod api;
pub mod blobs;
pub mod bulletin_api;
pub mod config;
pub mod demo;
pub mod error;
pub mod export;
pub mod labels;
pub mod metrics;
pub mod policy;
pub mod queries;
pub mod review;
pub mod stats;
pub mod storage;
pub mod sync;
pub mod users;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Settings;
pub use error::{AppError, AppResult};
pub use storage::Storage;

/// What every handler shares.
pub struct AppState {
    /// Settings in force.
    pub settings: Settings,
    /// The database.
    pub storage: Arc<Storage>,
    /// The thread that writes (and group-commits) incoming changes.
    pub writer: storage::Writer,
    /// The thread that hashes and checks passwords.
    pub passwords: users::PasswordThread,
    /// One lock per blob being written.
    pub blob_locks: blobs::BlobLocks,
    /// Documents being synced.
    pub hub: sync::Hub,
    /// Counters.
    pub metrics: metrics::Metrics,
    /// The server's automerge-repo peer id.
    pub peer_id: String,
    /// Flips to `true` when the server shuts down (sync connections then close).
    pub shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// Opens the data folder and builds the shared state.
    pub fn open(settings: Settings, shutdown: watch::Receiver<bool>) -> AppResult<Arc<AppState>> {
        std::fs::create_dir_all(&settings.data).map_err(|e| {
            AppError::Internal(format!("data folder {}: {e}", settings.data.display()))
        })?;
        let storage = Arc::new(Storage::open(&settings.data.join("server.db"))?);
        let peer_id = format!("anjian-sync-server-{}", &storage.storage_id()[..8]);
        Ok(Arc::new(AppState {
            settings,
            writer: storage::Writer::start(storage.clone()),
            passwords: users::PasswordThread::start(),
            blob_locks: blobs::BlobLocks::default(),
            storage,
            hub: sync::Hub::default(),
            metrics: metrics::Metrics::default(),
            peer_id,
            shutdown,
        }))
    }
}

/// Every route of the server.
pub fn router(state: Arc<AppState>) -> Router {
    // Blobs are photos (up to the apps' 40 MB limit), sent whole or in parts.
    let body_limit = anjian_core::photo::PhotoLimits::default().max_bytes as usize + 1024;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(app): State<Arc<AppState>>| async move { app.metrics.render() }),
        )
        .route("/sync", get(sync_upgrade))
        .route("/api/v1/login", post(api::login))
        .route("/api/v1/catalog", get(api::catalog))
        .route("/api/v1/cases", get(api::cases))
        .route("/api/v1/cases/{id}", get(api::case))
        .route("/api/v1/cases/{id}/review", post(api::review_case))
        .route("/api/v1/cases/{id}/resolve", post(api::resolve_conflict))
        .route(
            "/api/v1/cases/{id}/findings/{finding}/close",
            post(api::close_rectification),
        )
        .route("/api/v1/rectifications", get(api::rectifications))
        .route("/api/v1/bulletins", get(bulletin_api::json))
        .route("/api/v1/bulletins.xlsx", get(bulletin_api::xlsx))
        .route("/api/v1/bulletins.csv", get(bulletin_api::csv))
        .route(
            "/api/v1/blobs/{sha256}",
            get(blobs::get)
                .head(blobs::head)
                .put(blobs::put)
                .patch(blobs::patch),
        )
        .merge(web::routes())
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn sync_upgrade(
    State(app): State<Arc<AppState>>,
    parts: Parts,
    ws: WebSocketUpgrade,
) -> Response {
    let user = api::token_from(&parts).and_then(|t| {
        app.storage
            .user_for_token(&users::token_hash(&t))
            .ok()
            .flatten()
    });
    let limit = app.settings.max_message_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| sync::serve_socket(app, user, socket))
        .into_response()
}

/// Serves on `listener` until `shutdown` resolves, then closes sync connections and stops
/// gracefully.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> AppResult<()> {
    let (stop, stopped) = watch::channel(false);
    let state = AppState::open(settings, stopped)?;
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await
        .map_err(|e| AppError::Internal(format!("server: {e}")))
}
