//! Several server processes on one PostgreSQL database. Each commit is announced on the
//! database's `LISTEN`/`NOTIFY` channel (`storage::COMMITS_CHANNEL`, sent inside the
//! commit's transaction, so heard only once it is durable); every process follows the
//! channel and tells its own sync connections of cases another process changed, which then
//! read the case as stored and send what is new. A process that lost the channel for a
//! while (the database restarted, the network broke) listens again and catches up from
//! the catalog's sequence: nothing committed elsewhere goes unannounced. A SQLite database
//! has one process and nothing to follow.

use std::sync::Arc;
use std::time::Duration;

use anjian_core::CaseId;
use tokio::sync::watch;

use crate::db::postgres;
use crate::state::AppState;
use crate::storage::{COMMITS_CHANNEL, Database};

/// How long to wait before listening again after the channel was lost.
const RETRY: Duration = Duration::from_secs(1);

/// Follows the commits of the other server processes until the server stops.
pub async fn follow(app: Arc<AppState>, mut stopped: watch::Receiver<bool>) {
    let Database::Postgres(url) = app.settings.database() else {
        return;
    };
    let mut seen = match app.storage.last_commit() {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the catalog; following from the start");
            0
        }
    };
    loop {
        match postgres::listen(&url, COMMITS_CHANNEL) {
            Ok(mut notes) => {
                // What was committed while nobody listened.
                seen = catch_up(&app, seen);
                loop {
                    tokio::select! {
                        note = notes.recv() => match note {
                            Some(payload) => heard(&app, &payload, &mut seen),
                            None => break,
                        },
                        _ = stopped.changed() => return,
                    }
                }
                tracing::warn!("the database's announcements of commits stopped; listening again");
            }
            Err(e) => tracing::warn!(error = %e, "cannot follow the database's commits"),
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// One announcement: `NODE SEQ CASE`.
fn heard(app: &AppState, payload: &str, seen: &mut i64) {
    let mut parts = payload.split(' ');
    let (Some(node), Some(Ok(seq)), Some(Ok(case))) = (
        parts.next(),
        parts.next().map(str::parse::<i64>),
        parts.next().map(str::parse::<CaseId>),
    ) else {
        tracing::warn!(payload, "an announcement of a commit that does not read");
        return;
    };
    *seen = (*seen).max(seq);
    // This process told its own connections when it committed.
    if node != app.storage.node() {
        app.hub.announce(case, None);
    }
}

/// Announces every case committed after `seen`; the last sequence number seen.
fn catch_up(app: &AppState, seen: i64) -> i64 {
    match app.storage.committed_since(seen) {
        Ok(committed) => committed.iter().fold(seen, |last, (seq, case)| {
            app.hub.announce(*case, None);
            last.max(*seq)
        }),
        Err(e) => {
            tracing::error!(error = %e, "cannot catch up on commits");
            seen
        }
    }
}
