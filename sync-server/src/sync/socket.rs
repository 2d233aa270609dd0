//! The WebSocket driver of a sync connection: frames between the socket and the
//! connection's `Session`, documents locked in the hub and handled on the apply threads,
//! commits through the writer thread, other connections told through the hub; pacing,
//! pings, idle connections, expiry and revocation.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anjian_core::CaseId;
use anjian_core::rules::Author;
use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::WireMessage;
use automerge::sync;
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::document::{self, Context, Received, Signatures};
use super::session::{Reply, Server, Session, Step, error};
use super::{number_provisional, persist, with_doc_for};
use crate::error::AppError;
use crate::hub::SlotDoc;
use crate::live::{self, Registration};
use crate::policy;
use crate::state::AppState;
use crate::users::{TokenSession, User};

/// Serves one WebSocket until it closes, its token stops being valid, or the server
/// shuts down.
pub async fn serve_socket(app: Arc<AppState>, session: Option<TokenSession>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let Some(session) = session else {
        // Accept, say why, and close: an HTTP 401 on the upgrade crashes some clients.
        turn_away(
            &mut sink,
            "invalid, expired or revoked token; sign in again (令牌无效、过期或已吊销)",
        )
        .await;
        return;
    };
    let id = app.hub.connection_id();
    let limits = app.settings.limits.clone();
    let registration = match app.live.register(
        id,
        session.user.id,
        &session.token_hash,
        limits.sync_connections_per_user,
    ) {
        Ok(registration) => registration,
        Err(_) => {
            let message = format!(
                "too many sync connections of this account (at most {}); close another first (同一账号的同步连接过多)",
                limits.sync_connections_per_user
            );
            turn_away(&mut sink, &message).await;
            return;
        }
    };
    // A revocation between the token's check at the upgrade and the registration found
    // nothing to close: check the token once more now that it is registered.
    let storage = app.storage.clone();
    let token_hash = session.token_hash.clone();
    let still_valid = tokio::task::spawn_blocking(move || storage.token_session(&token_hash))
        .await
        .is_ok_and(|session| matches!(session, Ok(Some(_))));
    if !still_valid {
        turn_away(&mut sink, live::REVOKED).await;
        return;
    }
    let (notify, mut notified) = mpsc::unbounded_channel();
    app.metrics.connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(connection = id, user = %session.user.username, "sync connection opened");
    let mut conn = Connection::new(app.clone(), &session, id, notify, registration);
    let mut shutdown = app.shutdown.clone();
    let idle = Duration::from_secs(limits.sync_idle_seconds.max(3));
    let mut ping = tokio::time::interval(idle / 3);
    ping.tick().await;
    let expires = tokio::time::Instant::now()
        + Duration::from_secs(
            u64::try_from(session.expires_at - chrono::Utc::now().timestamp()).unwrap_or(0),
        );
    let mut last_heard = Instant::now();
    'serving: loop {
        let (replies, close) = tokio::select! {
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Binary(bytes))) => {
                        conn.pace().await;
                        let owed = app.apply_time.wait(conn.user.id);
                        if !owed.is_zero() {
                            // The account spent its allowance of the apply threads: nothing
                            // more is read until it is made up. The peer is pinged
                            // meanwhile, so that neither side takes the wait for a dead link.
                            app.metrics.apply_time_waits.fetch_add(1, Ordering::Relaxed);
                            let until = tokio::time::Instant::now() + owed;
                            loop {
                                let next = until.min(tokio::time::Instant::now() + HELD_PING);
                                tokio::select! {
                                    _ = tokio::time::sleep_until(next) => {}
                                    _ = conn.registration.closed.changed() => break,
                                    _ = shutdown.changed() => break 'serving,
                                }
                                if next >= until {
                                    break;
                                }
                                let ping = Message::Ping(Vec::new().into());
                                if !send_within(&mut sink, ping, idle).await {
                                    break 'serving;
                                }
                            }
                            last_heard = Instant::now();
                        }
                        if conn.revoked() {
                            (vec![error(&conn.closed_reason())], true)
                        } else {
                            // Boxed, as below: handling a frame is a large future, and
                            // only while it runs should the connection hold its memory.
                            Box::pin(conn.on_frame(&bytes)).await
                        }
                    }
                    Some(Ok(Message::Text(_))) => (vec![error("frames must be binary CBOR")], false),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        // Over the size limit, or a broken connection.
                        tracing::info!(connection = id, error = %e, "sync connection failed");
                        (vec![error(&format!("connection error: {e}"))], true)
                    }
                }
            }
            Some(case) = notified.recv() => (Box::pin(conn.on_doc_changed(case)).await, false),
            _ = conn.registration.closed.changed() => (vec![error(&conn.closed_reason())], true),
            _ = tokio::time::sleep_until(expires) => {
                (vec![error("登录已过期，请重新登录 (the token expired; sign in again)")], true)
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > idle {
                    tracing::info!(connection = id, "sync connection idle; closing");
                    break;
                }
                if !send_within(&mut sink, Message::Ping(Vec::new().into()), idle).await {
                    break;
                }
                continue;
            }
            _ = shutdown.changed() => break,
        };
        conn.report_kept_bytes();
        let mut broken = false;
        for reply in replies {
            app.metrics.frames_sent.fetch_add(1, Ordering::Relaxed);
            if !send_within(&mut sink, Message::Binary(reply.encode().into()), idle).await {
                broken = true;
                break;
            }
        }
        if close || broken {
            break;
        }
    }
    let _ = tokio::time::timeout(idle, sink.close()).await;
    conn.close();
    app.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(connection = id, "sync connection closed");
}

/// How long a connection being turned away is given to read why.
/// Times a message is handled again when another server process committed changes of
/// its case first (each attempt reads the case as stored).
const STALE_ATTEMPTS: u32 = 3;

const TURN_AWAY: Duration = Duration::from_secs(5);

/// How often a connection held back for its account's apply time is pinged: well within
/// the phones' network timeout (30 s), which a ping restarts.
const HELD_PING: Duration = Duration::from_secs(10);

/// Tells a connection that is not served why, and closes it.
async fn turn_away(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>, why: &str) {
    if send_within(sink, Message::Binary(error(why).encode().into()), TURN_AWAY).await {
        let _ = tokio::time::timeout(TURN_AWAY, sink.close()).await;
    }
}

/// Sends `message`, unless the peer has not read enough of what it was sent for `wait`
/// (a peer that stops reading must not hold its connection, or a revoked one, open).
async fn send_within(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    message: Message,
    wait: Duration,
) -> bool {
    matches!(
        tokio::time::timeout(wait, sink.send(message)).await,
        Ok(Ok(()))
    )
}

/// A connection: its session, and what drives it.
struct Connection {
    app: Arc<AppState>,
    session: Session,
    user: User,
    /// The hash of the token the connection signed in with (checked again at each commit).
    token_hash: String,
    author: Author,
    id: u64,
    notify: mpsc::UnboundedSender<CaseId>,
    registration: Registration,
    /// Frames the connection may still send before it is read more slowly.
    allowance: f64,
    refilled: Instant,
    /// The session's kept bytes as last added to the metrics' gauge.
    reported_bytes: u64,
}

impl Connection {
    fn new(
        app: Arc<AppState>,
        session: &TokenSession,
        id: u64,
        notify: mpsc::UnboundedSender<CaseId>,
        registration: Registration,
    ) -> Connection {
        let allowance = f64::from(app.settings.limits.frames_per_second);
        let limits = &app.settings.limits;
        let server = Server {
            peer_id: app.peer_id.clone(),
            storage_id: app.storage.storage_id().to_owned(),
            documents: limits.documents_per_connection,
            unknown_documents: limits.unknown_documents_per_connection,
            state_bytes: limits.sync_state_bytes_per_connection,
        };
        Connection {
            session: Session::new(server),
            author: policy::author(&session.user),
            user: session.user.clone(),
            token_hash: session.token_hash.clone(),
            app,
            id,
            notify,
            registration,
            allowance,
            refilled: Instant::now(),
            reported_bytes: 0,
        }
    }

    /// Waits until the connection may send another frame (a token bucket refilled at
    /// `frames_per_second`, holding at most a second's worth): a peer sending faster is
    /// read more slowly. Once the bucket is empty the connection sleeps until 10 ms of
    /// frames have come back, not one: waking for every frame would cost more than
    /// reading it.
    async fn pace(&mut self) {
        let rate = f64::from(self.app.settings.limits.frames_per_second.max(1));
        let now = Instant::now();
        self.allowance =
            (self.allowance + now.duration_since(self.refilled).as_secs_f64() * rate).min(rate);
        self.refilled = now;
        if self.allowance < 1.0 {
            let wake_for = (rate / 100.0).max(1.0);
            let wait = Duration::from_secs_f64((wake_for - self.allowance) / rate);
            tokio::time::sleep(wait).await;
            self.allowance = wake_for;
            self.refilled = Instant::now();
        }
        self.allowance -= 1.0;
    }

    fn revoked(&self) -> bool {
        self.registration.closed.borrow().is_some()
    }

    /// Why the registry closed the connection.
    fn closed_reason(&self) -> String {
        self.registration
            .closed
            .borrow()
            .clone()
            .unwrap_or_default()
    }

    async fn on_frame(&mut self, bytes: &[u8]) -> (Vec<WireMessage>, bool) {
        self.app
            .metrics
            .frames_received
            .fetch_add(1, Ordering::Relaxed);
        match self.session.on_frame(bytes) {
            Step::Reply { messages, close } => (messages, close),
            Step::Document {
                document_id,
                message,
                signatures,
            } => (self.on_sync(document_id, message, signatures).await, false),
        }
    }

    /// Handles a sync message on its document, under the document's lock.
    async fn on_sync(
        &mut self,
        document_id: DocumentId,
        message: sync::Message,
        signatures: Signatures,
    ) -> Vec<WireMessage> {
        let case = document_id.case_id();
        // The account's turn first: no connection holds a document's lock while it waits
        // for its account's turn, so that another account's connections on the document
        // wait for no more than its work.
        let _turn = self.app.apply_time.turn(self.user.id).await;
        let slot = self.app.hub.slot(case);
        let replies = {
            let mut guard = slot.doc.lock().await;
            let replies = self
                .handle(&mut guard, document_id, message, signatures)
                .await;
            self.carry_out_subscriptions();
            replies
        };
        self.app.hub.done_with(case, slot);
        replies
    }

    /// Handles one message on its document (`guard`), committing what the rule book
    /// allows; when another server process committed changes of the case meanwhile, the
    /// message is handled again on the document as stored, up to `STALE_ATTEMPTS` times.
    async fn handle(
        &mut self,
        guard: &mut SlotDoc,
        document_id: DocumentId,
        message: sync::Message,
        signatures: Signatures,
    ) -> Vec<WireMessage> {
        let case = document_id.case_id();
        let mut attempts = 0;
        let mut pending = Some((message, signatures));
        let mut committed = None;
        let settle = loop {
            let (state, incoming) = self.session.take(case);
            // Kept to handle the message again on the document as now stored, should
            // another server process commit changes of the case before this one does.
            // (Only a shared database has other server processes.)
            let again = self
                .app
                .storage
                .shared()
                .then(|| (state.clone(), incoming.clone()));
            let context = self.context(case);
            let taken = if again.is_some() {
                pending.clone()
            } else {
                pending.take()
            };
            let Some((message, signatures)) = taken else {
                let e = AppError::Internal("a message handled twice".into());
                return vec![self.session.failed(document_id, &e)];
            };
            let received = with_doc_for(&self.app, self.user.id, guard, move |doc| {
                document::receive(doc, state, incoming, message, &signatures, &context)
            })
            .await
            .and_then(|received| received);
            if matches!(received, Ok(Received::Served { .. })) {
                self.app
                    .metrics
                    .documents_served_stored
                    .fetch_add(1, Ordering::Relaxed);
            }
            let mut settle = self.session.settle(document_id, received);
            self.count_refused();
            let Some(candidate) = settle.commit.take() else {
                break settle;
            };
            let token = Some(self.token_hash.as_str());
            match persist(&self.app, &self.user, case, guard, *candidate, token).await {
                Ok(()) => {
                    committed = Some(case);
                    self.app.hub.announce(case, Some(self.id));
                    number_provisional(&self.app, case, guard).await;
                    break settle;
                }
                Err(AppError::Stale(_)) if attempts < STALE_ATTEMPTS && again.is_some() => {
                    attempts += 1;
                    if let Some((state, incoming)) = again {
                        self.session.put_back(case, state, incoming);
                    }
                }
                Err(e) => return vec![self.session.failed(document_id, &e)],
            }
        };
        match settle.reply {
            Reply::Send(messages) => messages,
            Reply::Answer { state, rewind } => {
                // The reply shows what the server now has (only committed changes).
                let storage = self.app.storage.clone();
                let with_signatures = self.session.wants_signatures();
                match with_doc_for(&self.app, self.user.id, guard, move |doc| {
                    document::answer(
                        doc,
                        storage.as_ref(),
                        committed,
                        state,
                        rewind,
                        with_signatures,
                    )
                })
                .await
                .and_then(|outgoing| outgoing)
                {
                    Ok((state, message, signatures)) => {
                        self.session
                            .answered(document_id, state, message, signatures)
                    }
                    Err(e) => vec![self.session.failed(document_id, &e)],
                }
            }
        }
    }

    fn context(&self, case_id: CaseId) -> Context {
        Context {
            storage: self.app.storage.clone(),
            author: self.author.clone(),
            user_id: self.user.id,
            case_id,
            wire: self.app.settings.limits.wire(),
            refusals_per_user: self.app.settings.limits.refusals_per_user,
        }
    }

    fn count_refused(&mut self) {
        let refused = self.session.take_refused();
        if refused > 0 {
            self.app
                .metrics
                .changes_refused
                .fetch_add(refused, Ordering::Relaxed);
            tracing::warn!(user = %self.user.username, changes = refused, "changes refused");
        }
    }

    /// Another connection changed a document this one syncs (or asked for while the
    /// server did not have it): send what is new, if this user may see it.
    async fn on_doc_changed(&mut self, case: CaseId) -> Vec<WireMessage> {
        let Some(state) = self.session.changed(case) else {
            return Vec::new();
        };
        let slot = self.app.hub.slot(case);
        let author = self.author.clone();
        let storage = self.app.storage.clone();
        let with_signatures = self.session.wants_signatures();
        let replies = {
            let _turn = self.app.apply_time.turn(self.user.id).await;
            let mut guard = slot.doc.lock().await;
            let outcome = with_doc_for(&self.app, self.user.id, &mut guard, move |doc| {
                document::changed(doc, storage.as_ref(), case, &author, state, with_signatures)
            })
            .await
            .and_then(|outcome| outcome);
            let replies = match outcome {
                Ok((state, message, signatures)) => {
                    self.session
                        .answered(DocumentId::of(case), state, message, signatures)
                }
                Err(e) => {
                    tracing::error!(case.id = %case, error = %e, "cannot answer a changed document");
                    self.session.start_afresh(case);
                    Vec::new()
                }
            };
            self.carry_out_subscriptions();
            replies
        };
        self.app.hub.done_with(case, slot);
        replies
    }

    /// Subscribes to and unsubscribes from documents in the hub as the session decided.
    fn carry_out_subscriptions(&mut self) {
        for (case, subscribe) in self.session.subscriptions() {
            if subscribe {
                self.app.hub.subscribe(case, self.id, &self.notify);
            } else {
                self.app.hub.unsubscribe(case, self.id);
            }
        }
    }

    fn close(&mut self) {
        for case in self.session.close() {
            self.app.hub.unsubscribe(case, self.id);
        }
        self.report_kept_bytes();
    }

    /// Brings the metrics' gauge of sync state bytes up to date with this session's.
    fn report_kept_bytes(&mut self) {
        let kept = self.session.kept_bytes() as u64;
        let gauge = &self.app.metrics.sync_state_bytes;
        if kept >= self.reported_bytes {
            gauge.fetch_add(kept - self.reported_bytes, Ordering::Relaxed);
        } else {
            gauge.fetch_sub(self.reported_bytes - kept, Ordering::Relaxed);
        }
        self.reported_bytes = kept;
    }
}
