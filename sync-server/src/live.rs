//! The sync connections open right now, by user and token, so that revocation reaches
//! them: disabling a user, resetting a password, revoking a device or a token (from this
//! process or from the CLI in another) bumps a counter in the database; a watcher notices
//! within a quarter of a second, checks every open connection's token again, and closes
//! those no longer valid. Token expiry closes a connection by itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::storage::Storage;

/// What a connection whose token was revoked is told before it closes.
pub const REVOKED: &str = "登录已失效（账号停用、密码重置或设备吊销），请重新登录 (signed out: the account, device or token was revoked)";

/// How often the watcher looks for revocations.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);

/// The open sync connections.
#[derive(Default)]
pub struct Live {
    connections: Mutex<HashMap<u64, Connection>>,
}

struct Connection {
    user_id: i64,
    token_hash: String,
    close: watch::Sender<Option<String>>,
}

/// A connection's place in the registry; dropping it takes the connection out.
pub struct Registration {
    live: Arc<Live>,
    id: u64,
    /// Becomes `Some(reason)` when the connection must close.
    pub closed: watch::Receiver<Option<String>>,
}

/// The user already has as many sync connections open as allowed.
#[derive(Debug)]
pub struct TooMany;

impl Live {
    /// Registers connection `id` of `user_id` signed in with the token `token_hash`,
    /// unless the user already has `limit` connections open.
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        user_id: i64,
        token_hash: &str,
        limit: usize,
    ) -> Result<Registration, TooMany> {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if connections
            .values()
            .filter(|c| c.user_id == user_id)
            .count()
            >= limit
        {
            return Err(TooMany);
        }
        let (close, closed) = watch::channel(None);
        connections.insert(
            id,
            Connection {
                user_id,
                token_hash: token_hash.to_owned(),
                close,
            },
        );
        Ok(Registration {
            live: self.clone(),
            id,
            closed,
        })
    }

    /// Closes every connection whose token is no longer valid; whether every token could
    /// be checked.
    pub fn recheck(&self, storage: &Storage) -> bool {
        let tokens: Vec<(u64, String)> = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, c)| (*id, c.token_hash.clone()))
            .collect();
        let mut complete = true;
        for (id, token) in tokens {
            let valid = match storage.token_session(&token) {
                Ok(session) => session.is_some(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot recheck a sync connection's token");
                    complete = false;
                    continue;
                }
            };
            if !valid {
                self.close(id, REVOKED);
            }
        }
        complete
    }

    fn close(&self, id: u64, reason: &str) {
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(connection) = connections.get(&id) {
            tracing::info!(
                connection = id,
                user = connection.user_id,
                "closing a revoked sync connection"
            );
            let _ = connection.close.send(Some(reason.to_owned()));
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.live
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Watches the database's revocation counter and rechecks open connections whenever it
/// moves, until `stop` flips.
pub async fn watch_revocations(
    live: Arc<Live>,
    storage: Arc<Storage>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = storage.revocations().unwrap_or_default();
    let mut every = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let (live, storage) = (live.clone(), storage.clone());
        let rechecked = tokio::task::spawn_blocking(move || {
            let now = storage.revocations()?;
            // The counter is taken as seen only once every open connection was checked
            // against it: a check that failed is tried again on the next tick.
            if now != seen && !live.recheck(&storage) {
                return crate::error::AppResult::Ok(seen);
            }
            crate::error::AppResult::Ok(now)
        })
        .await;
        match rechecked {
            Ok(Ok(now)) => seen = now,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the revocation counter"),
            Err(e) => tracing::warn!(error = %e, "the revocation check failed"),
        }
    }
}
