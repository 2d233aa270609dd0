//! Serving: the accept loop (a limit of open connections per address), HTTP/1.1 with a
//! deadline for each request's headers (which also closes idle keep-alive connections) and
//! for its body, `Connection: close` on an answer given before its request's body was
//! read, the background tasks (revocation watch, expired uploads), and a graceful
//! shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
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
    let trusted: Arc<[IpAddr]> = state.settings.trusted_proxies.clone().into();
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
        // A load balancer's connections carry many clients: the cap on one address's
        // connections is its to keep, and each request names its client.
        let proxied = trusted.contains(&address.ip());
        let held = if proxied {
            None
        } else {
            let Some(held) = Held::take(&per_address, address.ip(), limits.connections_per_address)
            else {
                tracing::warn!(%address, "too many connections from one address; refused");
                drop(stream);
                continue;
            };
            Some(held)
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let trusted = trusted.clone();
        let counted = state.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let client = match proxied {
                true => forwarded_for(request.headers(), &trusted)
                    .map_or(address, |ip| SocketAddr::new(ip, 0)),
                false => address,
            };
            request.extensions_mut().insert(ConnectInfo(client));
            counted.metrics.requests.fetch_add(1, Ordering::Relaxed);
            let app = app.clone();
            let read = Arc::new(AtomicBool::new(request.body().is_end_stream()));
            let request = request.map(|inner| {
                axum::body::Body::new(Watched {
                    inner,
                    read: read.clone(),
                })
            });
            async move {
                let mut response = app.oneshot(request).await?;
                if !read.load(Ordering::Relaxed) {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
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

/// The client a trusted proxy names in `X-Forwarded-For`: the last address in it that is
/// not itself a trusted proxy (what stands to its left was written by the client, and may
/// be anything). `None` when the header names no address.
pub fn forwarded_for(headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .or(hops.first())
        .copied()
}

/// A request's body, noting when it has been read to its end. A request answered before
/// its body was read (refused by its token, its account's bound, its size) leaves the
/// rest of the body on the connection, which the server then closes: its answer says so
/// (`Connection: close`), or the client would send its next request on a connection being
/// closed under it, and fail with a network error.
struct Watched {
    inner: Incoming,
    read: Arc<AtomicBool>,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).expect("ascii"),
            );
        }
        headers
    }

    #[test]
    fn the_client_is_the_last_address_a_trusted_proxy_did_not_write() {
        let proxy: IpAddr = [10, 0, 0, 2].into();
        let client: IpAddr = [203, 0, 113, 7].into();
        // The client's own header (anything), then what the proxy appended.
        let forged = headers(&["198.51.100.1, not-an-address", "203.0.113.7"]);
        assert_eq!(forwarded_for(&forged, &[proxy]), Some(client));
        // Two proxies in a row: the one nearer the client wrote the client.
        let chained = headers(&["203.0.113.7, 10.0.0.2"]);
        assert_eq!(forwarded_for(&chained, &[proxy]), Some(client));
        assert_eq!(forwarded_for(&headers(&["garbage"]), &[proxy]), None);
        assert_eq!(forwarded_for(&HeaderMap::new(), &[proxy]), None);
    }
}
