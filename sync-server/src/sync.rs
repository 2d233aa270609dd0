//! WebSocket `GET /sync`: the automerge-repo v1 protocol, with the server's policy between
//! decoding and applying. Every incoming change is checked (the device is bound to the
//! signed-in user; the case is in the user's jurisdiction before and after; an approved
//! case is locked) on a copy of the document, committed to storage, and only then shown
//! to anyone: in the reply's heads, to other peers, in the catalog.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::{PROTOCOL_VERSION, PeerMetadata, WireError, WireMessage};
use anjian_core::{Case, CaseId, case_doc};
use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, Change};
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::policy;
use crate::storage::{Commit, Projection, Receipt, Storage};
use crate::users::User;

/// The documents connections are syncing, shared by all connections.
#[derive(Default)]
pub struct Hub {
    slots: std::sync::Mutex<HashMap<CaseId, Arc<Slot>>>,
    /// Documents held in memory, least recently used first.
    loaded: std::sync::Mutex<VecDeque<CaseId>>,
    next_connection: std::sync::atomic::AtomicU64,
}

/// How many documents stay in memory between messages; others are read from storage
/// when a message for them arrives.
const LOADED_DOCUMENTS: usize = 64;

/// One document: loaded lazily, locked while a message for it is handled, and the
/// connections to tell when it changes.
#[derive(Default)]
pub struct Slot {
    doc: tokio::sync::Mutex<SlotDoc>,
    subscribers: std::sync::Mutex<HashMap<u64, mpsc::UnboundedSender<CaseId>>>,
}

#[derive(Default)]
struct SlotDoc {
    loaded: bool,
    doc: Option<AutoCommit>,
    case: Option<Case>,
}

impl Hub {
    fn slot(&self, case: CaseId) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(case).or_default().clone()
    }

    /// Records that `case` was just used, and unloads the least recently used documents
    /// beyond the limit (skipping any that a connection is working on right now).
    fn touched(&self, case: CaseId) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(position) = loaded.iter().position(|c| *c == case) {
            loaded.remove(position);
        }
        loaded.push_back(case);
        let mut attempts = loaded.len();
        while loaded.len() > LOADED_DOCUMENTS && attempts > 0 {
            attempts -= 1;
            let Some(oldest) = loaded.pop_front() else {
                break;
            };
            let slot = self
                .slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&oldest)
                .cloned();
            let unloaded = oldest != case
                && slot.is_some_and(|slot| match slot.doc.try_lock() {
                    Ok(mut doc) => {
                        *doc = SlotDoc::default();
                        true
                    }
                    Err(_) => false,
                });
            if !unloaded {
                loaded.push_back(oldest);
            }
        }
    }
}

impl SlotDoc {
    fn load(&mut self, storage: &Storage, case: CaseId) -> AppResult<()> {
        if !self.loaded {
            self.doc = storage.load_document(case)?;
            self.case = self.doc.as_ref().map(case_doc::read).transpose()?;
            self.loaded = true;
        }
        Ok(())
    }
}

/// Serves one WebSocket until it closes or the server shuts down.
pub async fn serve_socket(app: Arc<AppState>, user: Option<User>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let Some(user) = user else {
        // Accept, say why, and close: an HTTP 401 on the upgrade crashes some clients.
        let frame = WireMessage::Error {
            message: "invalid or revoked token; sign in again (令牌无效或已吊销)".into(),
        };
        let _ = sink.send(Message::Binary(frame.encode().into())).await;
        let _ = sink.close().await;
        return;
    };
    let (notify, mut notified) = mpsc::unbounded_channel();
    let id = app.hub.next_connection.fetch_add(1, Ordering::Relaxed);
    app.metrics.connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(connection = id, user = %user.username, "sync connection opened");
    let mut conn = Connection {
        app: app.clone(),
        user,
        id,
        notify,
        peer: None,
        states: HashMap::new(),
        incoming: HashMap::new(),
        subscribed: HashSet::new(),
    };
    let mut shutdown = app.shutdown.clone();
    loop {
        let (replies, close) = tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => conn.on_frame(&bytes).await,
                Some(Ok(Message::Text(_))) => (vec![error("frames must be binary CBOR")], false),
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    // Over the size limit, or a broken connection.
                    tracing::info!(connection = id, error = %e, "sync connection failed");
                    (vec![error(&format!("connection error: {e}"))], true)
                }
            },
            Some(case) = notified.recv() => (conn.on_doc_changed(case).await, false),
            _ = shutdown.changed() => break,
        };
        for reply in replies {
            app.metrics.frames_sent.fetch_add(1, Ordering::Relaxed);
            if sink
                .send(Message::Binary(reply.encode().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        if close {
            break;
        }
    }
    let _ = sink.close().await;
    conn.unsubscribe_all();
    app.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(connection = id, "sync connection closed");
}

struct Peer {
    id: String,
    metadata: PeerMetadata,
}

struct Connection {
    app: Arc<AppState>,
    user: User,
    id: u64,
    notify: mpsc::UnboundedSender<CaseId>,
    peer: Option<Peer>,
    states: HashMap<CaseId, sync::State>,
    /// Documents this peer is sending that the server does not have (or that this user may
    /// not see), gathered across messages until their changes arrive.
    incoming: HashMap<CaseId, (AutoCommit, sync::State)>,
    subscribed: HashSet<CaseId>,
}

/// A document with new changes, before the policy has decided about them.
struct Candidate {
    doc: AutoCommit,
    state: sync::State,
    /// What storage appends (the whole document when it is new on the server).
    bytes: Vec<u8>,
    new: bool,
}

/// What the policy decided about new changes.
enum Decision {
    Admit {
        case: Box<Case>,
        conflicts: usize,
        receipts: Vec<Receipt>,
    },
    Refuse {
        reason: String,
        hashes: Vec<String>,
    },
}

fn error(message: &str) -> WireMessage {
    WireMessage::Error {
        message: message.to_owned(),
    }
}

impl Connection {
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
        self.subscribe(case_id, &slot);
        let mut guard = slot.doc.lock().await;
        guard.load(&self.app.storage, case_id)?;
        let visible = guard
            .case
            .as_ref()
            .is_some_and(|c| policy::can_see(&self.user, c));
        let mut state = self.states.remove(&case_id).unwrap_or_default();
        let result = if visible {
            self.sync_visible(&mut guard, case_id, &mut state, message)
                .await
        } else {
            self.sync_unknown(&mut guard, case_id, &mut state, message)
                .await
        };
        self.states.insert(case_id, state);
        let mut replies = result?;
        // A refusal or doc-unavailable is the whole answer; otherwise reply with what the
        // server now has (its heads show only committed changes).
        let answered = !replies.is_empty();
        let may_see = guard
            .case
            .as_ref()
            .is_some_and(|c| policy::can_see(&self.user, c));
        if let (false, true, Some(doc)) = (answered, may_see, guard.doc.as_mut()) {
            let state = self.states.get_mut(&case_id).expect("inserted above");
            if let Some(reply) = doc.sync().generate_sync_message(state) {
                replies.push(self.sync_frame(document_id, reply));
            }
        }
        drop(guard);
        self.app.hub.touched(case_id);
        Ok(replies)
    }

    /// A document this user may see: apply on a copy, check, commit, then swap in.
    async fn sync_visible(
        &self,
        guard: &mut SlotDoc,
        case_id: CaseId,
        state: &mut sync::State,
        message: sync::Message,
    ) -> AppResult<Vec<WireMessage>> {
        let doc = guard.doc.as_mut().expect("visible means present");
        let before = doc.get_heads();
        let mut candidate = doc.clone();
        let mut candidate_state = state.clone();
        candidate
            .sync()
            .receive_sync_message(&mut candidate_state, message)
            .map_err(|e| AppError::BadRequest(format!("the sync message does not apply: {e}")))?;
        let changes = candidate.get_changes(&before);
        if changes.is_empty() {
            *state = candidate_state;
            return Ok(Vec::new());
        }
        let decision = decide(
            &self.app,
            &self.user,
            guard.case.as_ref(),
            &candidate,
            case_id,
            &changes,
        );
        let bytes = candidate.save_after(&before);
        let candidate = Candidate {
            doc: candidate,
            state: candidate_state,
            bytes,
            new: false,
        };
        self.settle(guard, case_id, state, candidate, decision)
            .await
    }

    /// A document the server does not have, or this user may not see: both get the same
    /// answers. Asking for it (empty heads) gets `doc-unavailable`; a peer that has it is
    /// asked for its changes as by a server without the document, and then the case is
    /// created if the policy allows it, and refused otherwise.
    async fn sync_unknown(
        &mut self,
        guard: &mut SlotDoc,
        case_id: CaseId,
        state: &mut sync::State,
        message: sync::Message,
    ) -> AppResult<Vec<WireMessage>> {
        let document_id = DocumentId::of(case_id);
        let asks_only = message.heads.is_empty();
        let (mut candidate, mut candidate_state) = self
            .incoming
            .remove(&case_id)
            .unwrap_or_else(|| (AutoCommit::new(), sync::State::new()));
        candidate
            .sync()
            .receive_sync_message(&mut candidate_state, message)
            .map_err(|e| AppError::BadRequest(format!("the sync message does not apply: {e}")))?;
        let changes = candidate.get_changes(&[]);
        if changes.is_empty() {
            if asks_only {
                return Ok(vec![WireMessage::DocUnavailable {
                    sender_id: self.app.peer_id.clone(),
                    target_id: self.peer_id(),
                    document_id,
                }]);
            }
            let reply = candidate.sync().generate_sync_message(&mut candidate_state);
            self.incoming.insert(case_id, (candidate, candidate_state));
            return Ok(reply
                .map(|m| vec![self.sync_frame(document_id, m)])
                .unwrap_or_default());
        }
        let decision = if guard.doc.is_some() {
            // It exists but is not this user's to see: refuse as if it were a new case
            // outside the jurisdiction, which is what the sender's copy claims to be.
            Decision::Refuse {
                reason: policy::jurisdiction(),
                hashes: changes.iter().map(|c| c.hash().to_string()).collect(),
            }
        } else {
            decide(&self.app, &self.user, None, &candidate, case_id, &changes)
        };
        let bytes = candidate.save();
        let candidate = Candidate {
            doc: candidate,
            state: candidate_state,
            bytes,
            new: true,
        };
        self.settle(guard, case_id, state, candidate, decision)
            .await
    }

    /// Carries out the policy's decision: a refusal is the answer; admitted changes are
    /// committed, then become the document everyone syncs, and its other peers are told.
    async fn settle(
        &self,
        guard: &mut SlotDoc,
        case_id: CaseId,
        state: &mut sync::State,
        mut candidate: Candidate,
        decision: Decision,
    ) -> AppResult<Vec<WireMessage>> {
        match decision {
            Decision::Refuse { reason, hashes } => {
                Ok(vec![self.refusal(DocumentId::of(case_id), reason, hashes)])
            }
            Decision::Admit {
                case,
                conflicts,
                receipts,
            } => {
                let case = *case;
                persist(
                    &self.app,
                    &self.user,
                    case_id,
                    &mut candidate,
                    case.clone(),
                    conflicts,
                    receipts,
                )
                .await?;
                guard.doc = Some(candidate.doc);
                guard.case = Some(case);
                *state = candidate.state;
                announce(&self.app, case_id, Some(self.id));
                Ok(Vec::new())
            }
        }
    }

    /// Another connection changed a document this one syncs: send what is new, if this
    /// user may see it.
    async fn on_doc_changed(&mut self, case_id: CaseId) -> Vec<WireMessage> {
        if !self.states.contains_key(&case_id) {
            return Vec::new();
        }
        let slot = self.app.hub.slot(case_id);
        let mut guard = slot.doc.lock().await;
        if let Err(e) = guard.load(&self.app.storage, case_id) {
            tracing::error!(case.id = %case_id, error = %e, "cannot load a changed document");
            return Vec::new();
        }
        let visible = guard
            .case
            .as_ref()
            .is_some_and(|c| policy::can_see(&self.user, c));
        let state = self.states.get_mut(&case_id).expect("checked above");
        let replies = match guard.doc.as_mut() {
            Some(doc) if visible => doc
                .sync()
                .generate_sync_message(state)
                .map(|m| vec![self.sync_frame(DocumentId::of(case_id), m)])
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        drop(guard);
        self.app.hub.touched(case_id);
        replies
    }

    fn sync_frame(&self, document_id: DocumentId, message: sync::Message) -> WireMessage {
        WireMessage::Sync {
            sender_id: self.app.peer_id.clone(),
            target_id: self.peer_id(),
            document_id,
            data: message.encode(),
        }
    }

    fn refusal(&self, document_id: DocumentId, reason: String, hashes: Vec<String>) -> WireMessage {
        self.app
            .metrics
            .changes_refused
            .fetch_add(hashes.len() as u64, Ordering::Relaxed);
        tracing::warn!(document = %document_id, user = %self.user.username, reason, "changes refused");
        match &self.peer {
            Some(peer) if peer.metadata.understands_refusals() => WireMessage::Refused {
                sender_id: self.app.peer_id.clone(),
                target_id: peer.id.clone(),
                document_id,
                reason,
                changes: hashes,
            },
            _ => error(&reason),
        }
    }

    fn peer_id(&self) -> String {
        self.peer.as_ref().map(|p| p.id.clone()).unwrap_or_default()
    }

    fn subscribe(&mut self, case_id: CaseId, slot: &Slot) {
        if self.subscribed.insert(case_id) {
            slot.subscribers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.id, self.notify.clone());
        }
    }

    fn unsubscribe_all(&mut self) {
        for case_id in self.subscribed.drain() {
            let slot = self.app.hub.slot(case_id);
            slot.subscribers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.id);
        }
    }
}

fn decide(
    app: &AppState,
    user: &User,
    before: Option<&Case>,
    candidate: &AutoCommit,
    case_id: CaseId,
    changes: &[Change],
) -> Decision {
    let hashes: Vec<String> = changes.iter().map(|c| c.hash().to_string()).collect();
    let refuse = |reason: String| Decision::Refuse {
        reason,
        hashes: hashes.clone(),
    };
    let mut receipts = Vec::new();
    for change in changes {
        let actor = change.actor_id().to_hex_string();
        match app.storage.actor_owner(&actor) {
            Ok(Some(owner)) if owner == user.id => {}
            Ok(_) => {
                return refuse(format!(
                    "修改来自未绑定到您账号的设备 {actor}，未被接受 (changes from a device not bound to your account)"
                ));
            }
            Err(e) => return refuse(format!("服务器暂时无法核验设备 ({e})")),
        }
        let author = case_doc::author(change);
        if !author.is_empty() && author != user.username {
            return refuse(format!(
                "修改记录的作者“{author}”与登录账号不符，未被接受 (a change must be recorded in the sender's own name)"
            ));
        }
        receipts.push(Receipt {
            hash: change.hash().to_string(),
            actor,
            device_time: change.timestamp(),
        });
    }
    let after = match case_doc::case_id(candidate).and_then(|id| {
        if id == case_id {
            case_doc::read(candidate)
        } else {
            Err(anjian_core::Error::InvalidDocument(format!(
                "document {case_id} holds case {id}"
            )))
        }
    }) {
        Ok(case) => case,
        Err(e) => {
            return refuse(format!(
                "不是有效的检查记录 (not a valid case document): {e}"
            ));
        }
    };
    if let Some(reason) = policy::refuse_change(user, before, &after) {
        return refuse(reason);
    }
    let conflicts = case_doc::conflicts(candidate)
        .map(|c| c.len())
        .unwrap_or_default();
    Decision::Admit {
        case: Box::new(after),
        conflicts,
        receipts,
    }
}

async fn persist(
    app: &AppState,
    user: &User,
    case_id: CaseId,
    candidate: &mut Candidate,
    case: Case,
    conflicts: usize,
    receipts: Vec<Receipt>,
) -> AppResult<()> {
    let accepted = receipts.len() as u64;
    let heads = case_doc::sorted_heads(&mut candidate.doc);
    let commit = Commit {
        case_id,
        bytes: std::mem::take(&mut candidate.bytes),
        new: candidate.new,
        heads,
        projection: Projection {
            case,
            conflicts,
            blob_refs: case_doc::blob_refs(&candidate.doc).into_iter().collect(),
        },
        user_id: user.id,
        receipts,
    };
    let chunks = app.writer.commit(commit).await?;
    if Storage::should_compact(chunks) {
        let snapshot = candidate.doc.save();
        let storage = app.storage.clone();
        tokio::task::spawn_blocking(move || storage.compact(case_id, &snapshot))
            .await
            .map_err(|e| AppError::Internal(format!("storage task: {e}")))??;
    }
    app.metrics
        .changes_accepted
        .fetch_add(accepted, Ordering::Relaxed);
    tracing::info!(case.id = %case_id, changes = accepted, user = %user.username, "changes committed");
    Ok(())
}

/// Makes a change on the server as `user` (a supervisor's review action or conflict
/// resolution from the web pages or the API): `edit` runs on a copy of the document, under
/// its lock, with the user's own server-side actor; the new change then passes the same
/// policy as changes arriving over sync, is committed, and is announced to every
/// connection syncing the case, so inspectors' devices receive it on their next sync.
/// A case the user may not see is answered as absent.
pub async fn change_on_server<T>(
    app: &AppState,
    user: &User,
    case_id: CaseId,
    edit: impl FnOnce(&mut AutoCommit) -> anjian_core::Result<T>,
) -> AppResult<T> {
    let actor = app.storage.server_actor(user)?;
    let slot = app.hub.slot(case_id);
    let mut guard = slot.doc.lock().await;
    guard.load(&app.storage, case_id)?;
    let (Some(doc), Some(before_case)) = (guard.doc.as_ref(), guard.case.clone()) else {
        return Err(AppError::NotFound(format!("no case {case_id}")));
    };
    if !policy::can_see(user, &before_case) {
        return Err(AppError::NotFound(format!("no case {case_id}")));
    }
    let mut candidate = doc.clone();
    let before = candidate.get_heads();
    candidate.set_actor(actor);
    let value = edit(&mut candidate)?;
    let changes = candidate.get_changes(&before);
    if changes.is_empty() {
        return Ok(value);
    }
    match decide(app, user, Some(&before_case), &candidate, case_id, &changes) {
        Decision::Refuse { reason, .. } => Err(AppError::Forbidden(reason)),
        Decision::Admit {
            case,
            conflicts,
            receipts,
        } => {
            let bytes = candidate.save_after(&before);
            let mut candidate = Candidate {
                doc: candidate,
                state: sync::State::new(),
                bytes,
                new: false,
            };
            persist(
                app,
                user,
                case_id,
                &mut candidate,
                (*case).clone(),
                conflicts,
                receipts,
            )
            .await?;
            guard.doc = Some(candidate.doc);
            guard.case = Some(*case);
            drop(guard);
            app.hub.touched(case_id);
            announce(app, case_id, None);
            Ok(value)
        }
    }
}

/// Tells every connection syncing `case_id` (but `except`, the one that made the change)
/// that it changed.
fn announce(app: &AppState, case_id: CaseId, except: Option<u64>) {
    let slot = app.hub.slot(case_id);
    let subscribers = slot.subscribers.lock().unwrap_or_else(|p| p.into_inner());
    for (id, sender) in subscribers.iter() {
        if Some(*id) != except {
            let _ = sender.send(case_id);
        }
    }
}
