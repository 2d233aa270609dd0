//! The networked sync client: signs in over HTTP, reads the catalog, and exchanges the
//! documents that differ over one WebSocket, driving a `SyncSession`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::session::{CatalogPage, SyncProgress, SyncReport, SyncSession};
use crate::error::{Error, Result};
use crate::store::Store;

/// Sync rounds in one `sync` call, at most.
const MAX_ROUNDS: usize = 4;
/// How long to wait for the server's next frame before giving up on a round.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Serialize)]
struct LoginRequest<'a> {
    username: &'a str,
    password: &'a str,
    device_name: &'a str,
    actor_id: &'a str,
}

#[derive(Deserialize)]
struct LoginResponse {
    token: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

impl Store {
    /// Signs in to `server` (`http://host:port`) and binds this device's actor id to the
    /// user; returns the token to sync with.
    pub async fn login(
        &self,
        server: &str,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<String> {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/login", server.trim_end_matches('/')))
            .json(&LoginRequest {
                username,
                password,
                device_name,
                actor_id: &self.device_id(),
            })
            .send()
            .await
            .map_err(network)?;
        if !response.status().is_success() {
            return Err(http_error(response).await);
        }
        Ok(response
            .json::<LoginResponse>()
            .await
            .map_err(network)?
            .token)
    }

    /// Pushes local changes and pulls every visible case that changed, using the catalog:
    /// an idle resync is one HTTP round trip. Rounds repeat until the catalog shows nothing
    /// new (which also moves the cursor past this device's own pushes), at most a few
    /// times. Resumable: a round cut anywhere converges on the next. `progress` is called
    /// after every frame.
    pub async fn sync(
        &mut self,
        server: &str,
        token: &str,
        mut progress: impl FnMut(SyncProgress),
    ) -> Result<SyncReport> {
        let mut total = SyncReport::default();
        for _ in 0..MAX_ROUNDS {
            let (report, idle) = self.sync_round(server, token, &mut progress).await?;
            total.absorb(report);
            if idle {
                break;
            }
        }
        Ok(total)
    }

    async fn sync_round(
        &mut self,
        server: &str,
        token: &str,
        progress: &mut impl FnMut(SyncProgress),
    ) -> Result<(SyncReport, bool)> {
        let server = server.trim_end_matches('/');
        let since = self.sync_cursor(server)?;
        let response = reqwest::Client::new()
            .get(format!("{server}/api/v1/catalog?since={since}"))
            .bearer_auth(token)
            .send()
            .await
            .map_err(network)?;
        if !response.status().is_success() {
            return Err(http_error(response).await);
        }
        let body = response.bytes().await.map_err(network)?;
        let catalog: CatalogPage =
            serde_json::from_slice(&body).map_err(|e| Error::Sync(format!("catalog: {e}")))?;
        let mut session = SyncSession::plan(self, server, &catalog)?;
        session.count_http(body.len() as u64);
        if session.is_idle() {
            return Ok((session.finish(self, catalog.cursor)?, true));
        }

        let ws_url = format!("{}/sync?token={token}", server.replacen("http", "ws", 1));
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .map_err(network)?;
        socket
            .send(Message::Binary(session.join().into()))
            .await
            .map_err(network)?;
        while !session.is_done() {
            let frame = match tokio::time::timeout(FRAME_TIMEOUT, socket.next()).await {
                Err(_) => return Err(Error::Network("the server stopped answering".into())),
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
            for reply in session.on_frame(self, &bytes)? {
                socket
                    .send(Message::Binary(reply.into()))
                    .await
                    .map_err(network)?;
            }
            progress(session.progress());
        }
        // The round is complete whether or not the close handshake finishes.
        let _ = socket.close(None).await;
        Ok((session.finish(self, catalog.cursor)?, false))
    }
}

fn network(e: impl std::fmt::Display) -> Error {
    Error::Network(e.to_string())
}

async fn http_error(response: reqwest::Response) -> Error {
    let status = response.status();
    let message = response
        .json::<ErrorBody>()
        .await
        .map(|b| b.message)
        .unwrap_or_else(|_| status.to_string());
    match status.as_u16() {
        401 | 403 => Error::Auth(message),
        _ => Error::Network(format!("{status}: {message}")),
    }
}
