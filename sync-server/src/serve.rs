//! Serving: the accept loop (a limit of open connections per address), HTTP/1.1 with a
//! deadline for each request's headers (which also closes idle keep-alive connections) and
//! for its body, the background tasks (revocation watch, expired uploads), and a graceful
//! shutdown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::config::Settings;
use crate::error::AppResult;
use crate::state::AppState;
use crate::{blobs, cluster, live, router};

/// How long a graceful shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves on `listener` until `shutdown` resolves, then closes sync connections and stops
/// gracefully.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> AppResult<()> {
    let (stop, stopped) = watch::channel(false);
    let state = AppState::open(settings, stopped.clone())?;
    tokio::spawn(live::watch_revocations(
        state.live.clone(),
        state.storage.clone(),
        stopped.clone(),
    ));
    tokio::spawn(blobs::sweep_uploads(state.clone(), stopped.clone()));
    tokio::spawn(cluster::follow(state.clone(), stopped.clone()));
    let limits = state.settings.limits.clone();
    let body_timeout = Duration::from_secs(limits.body_seconds);
    let app = router(state.clone()).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        body_timeout,
    ));
    let per_address = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(held) = Held::take(&per_address, address.ip(), limits.connections_per_address)
        else {
            tracing::warn!(%address, "too many connections from one address; refused");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(address));
            let app = app.clone();
            async move { app.oneshot(request.map(axum::body::Body::new)).await }
        });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(limits.header_seconds));
        let connection = builder
            .http1_only()
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%address, error = %e, "connection ended with an error");
            }
            drop(held);
        });
    }
    let _ = stop.send(true);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {
            tracing::warn!("requests still in flight after {DRAIN:?}; stopping anyway");
        }
    }
    drop(state);
    Ok(())
}

/// A connection counted against its address; dropping it gives the count back.
struct Held {
    table: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl Held {
    fn take(
        table: &Arc<Mutex<HashMap<IpAddr, usize>>>,
        address: IpAddr,
        limit: usize,
    ) -> Option<Held> {
        let mut counts = table.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(address).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Held {
            table: table.clone(),
            address,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}
