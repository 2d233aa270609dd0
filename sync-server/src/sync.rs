//! WebSocket `GET /sync`: the automerge-repo v1 protocol, with the server's checks between
//! decoding and applying. Every incoming message first passes the wire's limits (what its
//! changes may cost, before Automerge expands them); its changes must come from a device
//! bound to the signed-in user; they are applied to a copy of the document on the apply
//! threads, judged by the rule book (`anjian_core::rules`) against the case as the server
//! has it, committed, and only then shown to anyone: in the reply's heads, to other
//! peers, in the catalog.
//!
//! A connection lives while its token does: revoking the user, device or token, or the
//! token expiring, closes it; it is pinged, and closed when silent for too long.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anjian_core::rules::{self, Author, CaseState, Ops, Refusal};
use anjian_core::sync::DocumentId;
use anjian_core::sync::intake::{self, IntakeError};
use anjian_core::sync::wire::{PROTOCOL_VERSION, PeerMetadata, WireError, WireMessage};
use anjian_core::{CaseId, case_doc};
use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::error::{AppError, AppResult};
use crate::hub::SlotDoc;
use crate::live::{self, Registration};
use crate::policy;
use crate::state::AppState;
use crate::storage::{Commit, Projection, Receipt, Storage};
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
    loop {
        let (replies, close) = tokio::select! {
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Binary(bytes))) => {
                        conn.pace().await;
                        if conn.revoked() {
                            (vec![error(&conn.closed_reason())], true)
                        } else {
                            conn.on_frame(&bytes).await
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
            Some(case) = notified.recv() => (conn.on_doc_changed(case).await, false),
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
    conn.forget_all();
    app.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(connection = id, "sync connection closed");
}

/// How long a connection being turned away is given to read why.
const TURN_AWAY: Duration = Duration::from_secs(5);

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

struct Peer {
    id: String,
    metadata: PeerMetadata,
}

/// A document this connection syncs: the sync state with the peer, and when it was last
/// used (for forgetting the least recently used beyond the limit).
struct Synced {
    state: sync::State,
    used: u64,
}

struct Connection {
    app: Arc<AppState>,
    user: User,
    author: Author,
    id: u64,
    notify: mpsc::UnboundedSender<CaseId>,
    registration: Registration,
    peer: Option<Peer>,
    synced: HashMap<CaseId, Synced>,
    /// Documents this peer is sending that the server does not have (or that this user
    /// may not see), gathered across messages until their changes arrive.
    incoming: HashMap<CaseId, (AutoCommit, sync::State)>,
    /// Documents the peer asked for that the server does not have: it is told when they
    /// appear. Oldest first.
    unknown: VecDeque<CaseId>,
    /// Documents subscribed to in the hub.
    subscribed: HashSet<CaseId>,
    uses: u64,
    /// Frames the connection may still send before it is read more slowly.
    allowance: f64,
    refilled: Instant,
}

fn error(message: &str) -> WireMessage {
    WireMessage::Error {
        message: message.to_owned(),
    }
}

/// What handling one sync message came to.
enum Received {
    /// Nothing new: the sync state moved on. `rewind`: changes waited (see `Candidate`).
    Nothing { state: sync::State, rewind: bool },
    /// Changes to commit.
    Commit(Box<Candidate>),
    /// Refused, with why.
    Refused {
        refusal: Refusal,
        hashes: Vec<String>,
        state: Option<sync::State>,
    },
    /// The server does not have the document (or the user may not see it), and the peer
    /// only asked for it.
    Unavailable,
    /// The peer is sending a document the server does not have: keep gathering.
    Gathering {
        doc: Box<AutoCommit>,
        state: sync::State,
        reply: Option<sync::Message>,
    },
}

/// New changes the rule book allowed, before they are committed.
struct Candidate {
    doc: AutoCommit,
    case: CaseState,
    /// Blob hashes the changes name.
    blob_refs: Vec<String>,
    state: sync::State,
    /// What storage appends (the whole document when it is new on the server).
    bytes: Vec<u8>,
    new: bool,
    receipts: Vec<Receipt>,
    conflicts: usize,
    /// Changes of the message waited for ones it did not carry: the answer asks the peer
    /// for every change again (`intake::rewind`).
    rewind: bool,
}

/// What the apply threads need to handle a message.
#[derive(Clone)]
struct Context {
    storage: Arc<Storage>,
    author: Author,
    user_id: i64,
    case_id: CaseId,
    wire: intake::Limits,
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
        Connection {
            author: policy::author(&session.user),
            user: session.user.clone(),
            app,
            id,
            notify,
            registration,
            peer: None,
            synced: HashMap::new(),
            incoming: HashMap::new(),
            unknown: VecDeque::new(),
            subscribed: HashSet::new(),
            uses: 0,
            allowance,
            refilled: Instant::now(),
        }
    }

    /// Waits until the connection may send another frame (a token bucket refilled at
    /// `frames_per_second`): a peer sending faster is read more slowly.
    async fn pace(&mut self) {
        let rate = f64::from(self.app.settings.limits.frames_per_second.max(1));
        let now = Instant::now();
        self.allowance =
            (self.allowance + now.duration_since(self.refilled).as_secs_f64() * rate).min(rate);
        self.refilled = now;
        if self.allowance < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.allowance) / rate);
            tokio::time::sleep(wait).await;
            self.allowance = 1.0;
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
        let message = match WireMessage::decode(bytes) {
            Ok(message) => message,
            Err(e @ WireError::Malformed(_)) => return (vec![error(&e.to_string())], true),
            Err(e) => return (vec![error(&e.to_string())], false),
        };
        match message {
            WireMessage::Join {
                sender_id,
                metadata,
                supported_versions,
            } => {
                if !supported_versions.iter().any(|v| v == PROTOCOL_VERSION) {
                    return (
                        vec![error(
                            "unsupported protocol version; this server speaks version 1",
                        )],
                        true,
                    );
                }
                let reply = WireMessage::Peer {
                    sender_id: self.app.peer_id.clone(),
                    target_id: sender_id.clone(),
                    selected_version: PROTOCOL_VERSION.to_owned(),
                    metadata: PeerMetadata {
                        storage_id: Some(self.app.storage.storage_id().to_owned()),
                        is_ephemeral: false,
                        extensions: Vec::new(),
                    },
                };
                self.peer = Some(Peer {
                    id: sender_id,
                    metadata,
                });
                (vec![reply], false)
            }
            _ if self.peer.is_none() => (vec![error("send join first")], true),
            WireMessage::Request {
                document_id, data, ..
            }
            | WireMessage::Sync {
                document_id, data, ..
            } => match self.on_sync(document_id, &data).await {
                Ok(replies) => (replies, false),
                Err(e) => (vec![error(&format!("document {document_id}: {e}"))], false),
            },
            WireMessage::Error { message } => {
                tracing::info!(connection = self.id, message, "peer reported an error");
                (Vec::new(), false)
            }
            _ => (Vec::new(), false),
        }
    }

    async fn on_sync(
        &mut self,
        document_id: DocumentId,
        data: &[u8],
    ) -> AppResult<Vec<WireMessage>> {
        let message = sync::Message::decode(data)
            .map_err(|e| AppError::BadRequest(format!("not an Automerge sync message: {e}")))?;
        let case_id = document_id.case_id();
        let slot = self.app.hub.slot(case_id);
        let result = async {
            let mut guard = slot.doc.lock().await;
            let state = self.synced.remove(&case_id).map(|s| s.state);
            let incoming = self.incoming.remove(&case_id);
            let context = self.context(case_id);
            let received = with_doc(&self.app, &mut guard, move |doc| {
                receive(doc, state, incoming, message, &context)
            })
            .await??;
            self.settle(&mut guard, document_id, received).await
        }
        .await;
        drop(slot);
        self.app.hub.touched(case_id);
        self.app.hub.release(case_id);
        result
    }

    fn context(&self, case_id: CaseId) -> Context {
        Context {
            storage: self.app.storage.clone(),
            author: self.author.clone(),
            user_id: self.user.id,
            case_id,
            wire: self.app.settings.limits.wire(),
        }
    }

    /// Carries out what handling a message came to: a refusal or an answer goes back;
    /// admitted changes are committed, become the document everyone syncs, and its other
    /// peers are told.
    async fn settle(
        &mut self,
        guard: &mut SlotDoc,
        document_id: DocumentId,
        received: Received,
    ) -> AppResult<Vec<WireMessage>> {
        let case_id = document_id.case_id();
        let (state, rewind) = match received {
            Received::Unavailable => {
                self.remember_unknown(case_id);
                return Ok(vec![WireMessage::DocUnavailable {
                    sender_id: self.app.peer_id.clone(),
                    target_id: self.peer_id(),
                    document_id,
                }]);
            }
            Received::Gathering { doc, state, reply } => {
                self.keep_incoming(case_id, *doc, state);
                return Ok(reply
                    .map(|m| vec![self.sync_frame(document_id, m)])
                    .unwrap_or_default());
            }
            Received::Refused {
                refusal,
                hashes,
                state,
            } => {
                if let Some(state) = state {
                    self.keep_synced(case_id, state);
                }
                return Ok(vec![self.refusal(document_id, refusal, hashes)]);
            }
            Received::Nothing { state, rewind } => (state, rewind),
            Received::Commit(candidate) => {
                let candidate = *candidate;
                let answer = (candidate.state.clone(), candidate.rewind);
                persist(&self.app, &self.user, case_id, guard, candidate).await?;
                self.app.hub.announce(case_id, Some(self.id));
                answer
            }
        };
        if rewind {
            self.keep_synced(case_id, state);
            return Ok(vec![self.sync_frame(document_id, intake::rewind())]);
        }
        // Reply with what the server now has (its heads show only committed changes).
        let reply = with_doc(&self.app, guard, move |doc| {
            let mut state = state;
            let reply = doc.doc.as_mut().and_then(|d| generate(d, &mut state));
            (state, reply)
        })
        .await?;
        let (state, reply) = reply;
        self.keep_synced(case_id, state);
        Ok(reply
            .map(|m| vec![self.sync_frame(document_id, m)])
            .unwrap_or_default())
    }

    /// Another connection changed a document this one syncs (or asked for while the
    /// server did not have it): send what is new, if this user may see it.
    async fn on_doc_changed(&mut self, case_id: CaseId) -> Vec<WireMessage> {
        let state = match self.synced.remove(&case_id) {
            Some(synced) => synced.state,
            None if self.unknown.contains(&case_id) => {
                self.unknown.retain(|c| *c != case_id);
                sync::State::new()
            }
            None => return Vec::new(),
        };
        let slot = self.app.hub.slot(case_id);
        let author = self.author.clone();
        let storage = self.app.storage.clone();
        let outcome = {
            let mut guard = slot.doc.lock().await;
            with_doc(&self.app, &mut guard, move |doc| {
                let mut state = state;
                doc.load(&storage, case_id)?;
                let visible = doc
                    .state
                    .as_ref()
                    .is_some_and(|s| rules::may_read(&author, s.case()));
                let reply = match doc.doc.as_mut() {
                    Some(d) if visible => generate(d, &mut state),
                    _ => None,
                };
                AppResult::Ok((state, reply))
            })
            .await
        };
        drop(slot);
        self.app.hub.touched(case_id);
        self.app.hub.release(case_id);
        match outcome {
            Ok(Ok((state, reply))) => {
                self.keep_synced(case_id, state);
                reply
                    .map(|m| vec![self.sync_frame(DocumentId::of(case_id), m)])
                    .unwrap_or_default()
            }
            Ok(Err(e)) | Err(e) => {
                tracing::error!(case.id = %case_id, error = %e, "cannot answer a changed document");
                Vec::new()
            }
        }
    }

    fn sync_frame(&self, document_id: DocumentId, message: sync::Message) -> WireMessage {
        WireMessage::Sync {
            sender_id: self.app.peer_id.clone(),
            target_id: self.peer_id(),
            document_id,
            data: message.encode(),
        }
    }

    fn refusal(
        &self,
        document_id: DocumentId,
        refusal: Refusal,
        hashes: Vec<String>,
    ) -> WireMessage {
        self.app
            .metrics
            .changes_refused
            .fetch_add(hashes.len() as u64, Ordering::Relaxed);
        tracing::warn!(document = %document_id, user = %self.user.username, rule = refusal.rule.code(), reason = %refusal.reason, "changes refused");
        match &self.peer {
            Some(peer) if peer.metadata.understands_refusals() => WireMessage::Refused {
                sender_id: self.app.peer_id.clone(),
                target_id: peer.id.clone(),
                document_id,
                reason: refusal.reason,
                rule: refusal.rule.code().to_owned(),
                changes: hashes,
            },
            _ => error(&refusal.reason),
        }
    }

    fn peer_id(&self) -> String {
        self.peer.as_ref().map(|p| p.id.clone()).unwrap_or_default()
    }

    fn subscribe(&mut self, case_id: CaseId) {
        if self.subscribed.insert(case_id) {
            self.app.hub.subscribe(case_id, self.id, &self.notify);
        }
    }

    fn unsubscribe(&mut self, case_id: CaseId) {
        if self.subscribed.remove(&case_id) {
            self.app.hub.unsubscribe(case_id, self.id);
        }
    }

    /// Keeps the sync state of a document this connection syncs, forgetting the least
    /// recently used one beyond the limit.
    fn keep_synced(&mut self, case_id: CaseId, state: sync::State) {
        self.uses += 1;
        self.unknown.retain(|c| *c != case_id);
        self.synced.insert(
            case_id,
            Synced {
                state,
                used: self.uses,
            },
        );
        self.subscribe(case_id);
        if self.synced.len() > self.app.settings.limits.documents_per_connection
            && let Some(oldest) = self
                .synced
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(case, _)| *case)
        {
            self.synced.remove(&oldest);
            self.unsubscribe(oldest);
        }
    }

    /// Remembers that the peer asked for a document the server does not have, so that it
    /// is told when the document appears; beyond the limit the oldest is forgotten.
    fn remember_unknown(&mut self, case_id: CaseId) {
        if !self.unknown.contains(&case_id) {
            self.unknown.push_back(case_id);
            self.subscribe(case_id);
        }
        while self.unknown.len() > self.app.settings.limits.unknown_documents_per_connection {
            if let Some(oldest) = self.unknown.pop_front()
                && !self.synced.contains_key(&oldest)
            {
                self.unsubscribe(oldest);
            }
        }
    }

    /// Keeps a document the peer is sending that the server does not have, within the
    /// same limit as unknown ids.
    fn keep_incoming(&mut self, case_id: CaseId, doc: AutoCommit, state: sync::State) {
        if self.incoming.len() >= self.app.settings.limits.unknown_documents_per_connection
            && let Some(any) = self.incoming.keys().next().copied()
        {
            self.incoming.remove(&any);
        }
        self.incoming.insert(case_id, (doc, state));
    }

    fn forget_all(&mut self) {
        for case_id in std::mem::take(&mut self.subscribed) {
            self.app.hub.unsubscribe(case_id, self.id);
        }
        self.synced.clear();
        self.incoming.clear();
        self.unknown.clear();
    }
}

/// Runs `f` on the document on an apply thread (its lock held meanwhile); a job that
/// fails unexpectedly leaves the document to be read again from storage.
async fn with_doc<T: Send + 'static>(
    app: &AppState,
    guard: &mut SlotDoc,
    f: impl FnOnce(&mut SlotDoc) -> T + Send + 'static,
) -> AppResult<T> {
    let mut doc = std::mem::take(guard);
    let (doc, value) = app
        .apply
        .run(move || {
            let value = f(&mut doc);
            (doc, value)
        })
        .await?;
    *guard = doc;
    Ok(value)
}

/// The next message to the peer, without the capability flags: a peer that does not
/// hear that the server reads whole-document messages never sends one.
fn generate(doc: &mut AutoCommit, state: &mut sync::State) -> Option<sync::Message> {
    let mut message = doc.sync().generate_sync_message(state)?;
    message.flags = None;
    Some(message)
}

/// Handles one sync message for one document, on an apply thread.
fn receive(
    slot: &mut SlotDoc,
    state: Option<sync::State>,
    incoming: Option<(AutoCommit, sync::State)>,
    message: sync::Message,
    context: &Context,
) -> AppResult<Received> {
    slot.load(&context.storage, context.case_id)?;
    let asks_only = message.heads.is_empty();
    let checked = match intake::check(message, &context.wire) {
        Ok(checked) => checked,
        Err(e) => return Err(AppError::BadRequest(e.to_string())),
    };
    let visible = slot
        .state
        .as_ref()
        .is_some_and(|s| rules::may_read(&context.author, s.case()));
    if visible {
        let state = state.unwrap_or_default();
        receive_visible(slot, state, checked, context)
    } else {
        receive_unknown(slot, incoming, checked, asks_only, context)
    }
}

/// A document this user may see: apply on a copy, judge, and hand back to commit.
fn receive_visible(
    slot: &mut SlotDoc,
    mut state: sync::State,
    checked: intake::Checked,
    context: &Context,
) -> AppResult<Received> {
    let (Some(doc), Some(before)) = (slot.doc.as_mut(), slot.state.as_ref()) else {
        return Err(AppError::Internal("a visible document is loaded".into()));
    };
    let admitted = intake::admit(doc, checked);
    let rewind = admitted.waiting > 0;
    if admitted.changes.is_empty() {
        // Nothing new to apply: only the sync state moves.
        doc.sync()
            .receive_sync_message(&mut state, admitted.message)
            .map_err(unreadable)?;
        return Ok(Received::Nothing { state, rewind });
    }
    let fresh = admitted.changes;
    if let Err(refusal) = check_senders(context, doc, &fresh) {
        return Ok(refused(refusal, &fresh, Some(state)));
    }
    let before_heads = doc.get_heads();
    let mut candidate = doc.clone();
    if let Err(refusal) =
        rules::apply(&mut candidate, &fresh).and_then(|()| within_size(&candidate, &context.wire))
    {
        return Ok(refused(refusal, &fresh, Some(state)));
    }
    let ops = match Ops::of(&candidate, &fresh) {
        Ok(ops) => ops,
        Err(refusal) => return Ok(refused(refusal, &fresh, Some(state))),
    };
    let after = match before.after(&candidate, &ops) {
        Ok(after) => after,
        Err(e) => return Ok(refused(invalid(e), &fresh, Some(state))),
    };
    if let Err(refusal) = rules::judge(&context.author, Some(before), &after, &ops) {
        return Ok(refused(refusal, &fresh, Some(state)));
    }
    // The changes are in the copy already: receiving the message only moves the state.
    let mut candidate_state = state;
    candidate
        .sync()
        .receive_sync_message(&mut candidate_state, admitted.message)
        .map_err(unreadable)?;
    let bytes = candidate.save_after(&before_heads);
    let mut commit = commit_of(
        candidate,
        after,
        candidate_state,
        bytes,
        false,
        &fresh,
        &ops,
        slot.conflicts,
    );
    commit.rewind = rewind;
    Ok(Received::Commit(Box::new(commit)))
}

/// A document the server does not have, or this user may not see: both get the same
/// answers. Asking for it (empty heads) gets `doc-unavailable`; a peer that has it is
/// asked for its changes as by a server without the document, and then the case is
/// created if the rule book allows it, and refused otherwise.
fn receive_unknown(
    slot: &SlotDoc,
    incoming: Option<(AutoCommit, sync::State)>,
    checked: intake::Checked,
    asks_only: bool,
    context: &Context,
) -> AppResult<Received> {
    let (mut candidate, mut candidate_state) =
        incoming.unwrap_or_else(|| (AutoCommit::new(), sync::State::new()));
    let admitted = intake::admit(&candidate, checked);
    let fresh = admitted.changes;
    if let Err(refusal) = check_senders(context, &candidate, &fresh) {
        return Ok(refused(refusal, &fresh, None));
    }
    if let Err(refusal) =
        rules::apply(&mut candidate, &fresh).and_then(|()| within_size(&candidate, &context.wire))
    {
        return Ok(refused(refusal, &fresh, None));
    }
    candidate
        .sync()
        .receive_sync_message(&mut candidate_state, admitted.message)
        .map_err(unreadable)?;
    if candidate.get_heads().is_empty() {
        if asks_only {
            return Ok(Received::Unavailable);
        }
        let reply = generate(&mut candidate, &mut candidate_state);
        return Ok(Received::Gathering {
            doc: Box::new(candidate),
            state: candidate_state,
            reply,
        });
    }
    // Everything gathered so far is judged as one new case.
    let applied = candidate.get_changes(&[]);
    if slot.doc.is_some() {
        // It exists but is not this user's to see: refuse as if it were a new case
        // outside the jurisdiction, which is what the sender's copy claims to be.
        return Ok(refused(rules::jurisdiction(), &applied, None));
    }
    // The wire's limits bounded the depth and size of everything these changes make.
    let after = match CaseState::of_stored(&candidate) {
        Ok(after) => after,
        Err(e) => return Ok(refused(invalid(e), &applied, None)),
    };
    let ops = match Ops::of(&candidate, &applied) {
        Ok(ops) => ops,
        Err(refusal) => return Ok(refused(refusal, &applied, None)),
    };
    if let Err(refusal) = rules::judge(&context.author, None, &after, &ops) {
        return Ok(refused(refusal, &applied, None));
    }
    if case_doc::case_id(&candidate).ok() != Some(context.case_id) {
        return Ok(refused(
            invalid(anjian_core::Error::InvalidDocument(format!(
                "document {} holds another case",
                context.case_id
            ))),
            &applied,
            None,
        ));
    }
    let bytes = candidate.save();
    Ok(Received::Commit(Box::new(commit_of(
        candidate,
        after,
        candidate_state,
        bytes,
        true,
        &applied,
        &ops,
        0,
    ))))
}

/// A case holds at most the operations the limits allow (a hostile device could
/// otherwise grow one change at a time what every reader of the case loads).
fn within_size(doc: &AutoCommit, limits: &intake::Limits) -> Result<(), Refusal> {
    let ops = automerge::ReadDoc::stats(doc).num_ops;
    if ops > limits.case_ops {
        return Err(Refusal::new(
            rules::Rule::Shape,
            format!(
                "案件记录过大（{ops} 项操作，上限 {}），请新建关联案件 (the case would hold more operations than allowed)",
                limits.case_ops
            ),
        ));
    }
    Ok(())
}

fn unreadable(e: automerge::AutomergeError) -> AppError {
    AppError::BadRequest(format!("the sync message does not apply: {e}"))
}

/// Every new change must come from a device bound to the sender (and not revoked), name
/// the sender as its author, and nest objects no deeper than the wire allows: checked
/// before anything is applied.
fn check_senders(context: &Context, doc: &AutoCommit, changes: &[Change]) -> Result<(), Refusal> {
    for change in changes {
        let actor = change.actor_id().to_hex_string();
        match context.storage.actor_owner(&actor) {
            Ok(Some(owner)) if owner == context.user_id => {}
            Ok(_) => {
                return Err(Refusal::new(
                    rules::Rule::Attribution,
                    format!(
                        "修改来自未绑定到您账号的设备 {actor}，未被接受 (changes from a device not bound to your account)"
                    ),
                ));
            }
            Err(e) => {
                return Err(Refusal::new(
                    rules::Rule::Attribution,
                    format!("服务器暂时无法核验设备 ({e})"),
                ));
            }
        }
        rules::note_names_author(&case_doc::author(change), &context.author)?;
    }
    intake::check_depth(doc, changes, context.wire.depth).map_err(limit)
}

/// What committing judged changes writes. The fields in conflict are counted again only
/// when the document had some, or the changes wrote into one: otherwise none are.
#[expect(
    clippy::too_many_arguments,
    reason = "one value of each kind a commit carries"
)]
fn commit_of(
    doc: AutoCommit,
    case: CaseState,
    state: sync::State,
    bytes: Vec<u8>,
    new: bool,
    applied: &[Change],
    ops: &Ops,
    conflicts_before: usize,
) -> Candidate {
    let conflicts = if conflicts_before == 0 && !ops.touch_a_conflict(&doc) {
        0
    } else {
        case_doc::conflicts(&doc)
            .map(|c| c.len())
            .unwrap_or_default()
    };
    Candidate {
        blob_refs: ops.blob_refs().into_iter().collect(),
        receipts: applied
            .iter()
            .map(|change| Receipt {
                hash: change.hash().to_string(),
                actor: change.actor_id().to_hex_string(),
                device_time: change.timestamp(),
            })
            .collect(),
        doc,
        case,
        state,
        bytes,
        new,
        conflicts,
        rewind: false,
    }
}

fn refused<C: std::borrow::Borrow<Change>>(
    refusal: Refusal,
    changes: &[C],
    state: Option<sync::State>,
) -> Received {
    Received::Refused {
        refusal,
        hashes: changes
            .iter()
            .map(|c| c.borrow().hash().to_string())
            .collect(),
        state,
    }
}

fn invalid(e: anjian_core::Error) -> Refusal {
    Refusal::new(
        rules::Rule::Shape,
        format!("不是有效的检查记录 (not a valid case document): {e}"),
    )
}

fn limit(e: IntakeError) -> Refusal {
    Refusal::new(
        rules::Rule::Shape,
        format!("超出同步限制 (over a limit of the wire): {e}"),
    )
}

/// Commits a candidate and makes it the document everyone syncs.
async fn persist(
    app: &AppState,
    user: &User,
    case_id: CaseId,
    guard: &mut SlotDoc,
    candidate: Candidate,
) -> AppResult<()> {
    let Candidate {
        mut doc,
        case,
        blob_refs,
        bytes,
        new,
        receipts,
        conflicts,
        ..
    } = candidate;
    let accepted = receipts.len() as u64;
    let heads = case_doc::sorted_heads(&mut doc);
    let commit = Commit {
        case_id,
        bytes,
        new,
        heads,
        projection: Projection {
            case: case.case().clone(),
            conflicts,
            blob_refs,
            all_blob_refs: false,
        },
        user_id: user.id,
        receipts,
    };
    let chunks = app.writer.commit(commit).await?;
    guard.replace(doc, case, conflicts);
    if Storage::should_compact(chunks) {
        // The changes are committed: a compaction that fails leaves more chunks to read,
        // and is tried again after the next commit.
        let storage = app.storage.clone();
        let compacted = with_doc(app, guard, move |slot| match slot.doc.as_mut() {
            Some(doc) => storage.compact(case_id, &doc.save()),
            None => Ok(()),
        })
        .await;
        if let Err(e) = compacted.and_then(|done| done) {
            tracing::warn!(case.id = %case_id, error = %e, "compaction failed; the case is stored as chunks");
        }
    }
    app.metrics
        .changes_accepted
        .fetch_add(accepted, Ordering::Relaxed);
    tracing::info!(case.id = %case_id, changes = accepted, user = %user.username, "changes committed");
    Ok(())
}

/// Makes a change on the server as `user` (a supervisor's review action, sharing or
/// conflict resolution from the web pages or the API): `edit` runs on a copy of the
/// document, under its lock, with the user's own server-side actor; the new change is
/// then judged by the same rule book as changes arriving over sync, committed, and
/// announced to every connection syncing the case, so inspectors' devices receive it on
/// their next sync. A case the user may not see is answered as absent.
pub async fn change_on_server<T: Send + 'static>(
    app: &AppState,
    user: &User,
    case_id: CaseId,
    edit: impl FnOnce(&mut AutoCommit) -> anjian_core::Result<T> + Send + 'static,
) -> AppResult<T> {
    let actor = app.storage.server_actor(user)?;
    let slot = app.hub.slot(case_id);
    let result = async {
        let mut guard = slot.doc.lock().await;
        let storage = app.storage.clone();
        let author = policy::author(user);
        let outcome = with_doc(app, &mut guard, move |slot| {
            change_in(slot, &storage, case_id, &author, actor, edit)
        })
        .await??;
        let Some((value, candidate)) = outcome else {
            return Err(AppError::NotFound(format!("no case {case_id}")));
        };
        if let Some(candidate) = candidate {
            persist(app, user, case_id, &mut guard, *candidate).await?;
            app.hub.announce(case_id, None);
        }
        Ok(value)
    }
    .await;
    drop(slot);
    app.hub.touched(case_id);
    app.hub.release(case_id);
    result
}

/// The change `edit` makes, judged (on an apply thread); `None` when the user may not see
/// the case.
type Edited<T> = Option<(T, Option<Box<Candidate>>)>;

fn change_in<T>(
    slot: &mut SlotDoc,
    storage: &Storage,
    case_id: CaseId,
    author: &Author,
    actor: automerge::ActorId,
    edit: impl FnOnce(&mut AutoCommit) -> anjian_core::Result<T>,
) -> AppResult<Edited<T>> {
    slot.load(storage, case_id)?;
    let (Some(doc), Some(before)) = (slot.doc.as_mut(), slot.state.as_ref()) else {
        return Ok(None);
    };
    if !rules::may_read(author, before.case()) {
        return Ok(None);
    }
    let mut candidate = doc.clone();
    let before_heads: Vec<ChangeHash> = candidate.get_heads();
    candidate.set_actor(actor);
    let value = edit(&mut candidate)?;
    let applied = candidate.get_changes(&before_heads);
    if applied.is_empty() {
        return Ok(Some((value, None)));
    }
    let ops = Ops::of(&candidate, &applied).map_err(AppError::Refused)?;
    let after = before.after(&candidate, &ops)?;
    rules::judge(author, Some(before), &after, &ops).map_err(AppError::Refused)?;
    let bytes = candidate.save_after(&before_heads);
    let commit = commit_of(
        candidate,
        after,
        sync::State::new(),
        bytes,
        false,
        &applied,
        &ops,
        slot.conflicts,
    );
    Ok(Some((value, Some(Box::new(commit)))))
}
