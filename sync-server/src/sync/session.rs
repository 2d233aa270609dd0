//! One sync connection's side of the automerge-repo protocol, without I/O: frames in;
//! replies, the documents to work on and the subscriptions to keep out. It holds what the
//! connection knows of its peer (its id, what it understands), the sync state of every
//! document it syncs, documents the peer is sending that the server does not have yet,
//! and documents the peer asked for that the server does not have. The drivers (the
//! WebSocket's, the simulation's) move frames, lock documents, run `document`'s steps and
//! commit.

use std::collections::{HashMap, HashSet, VecDeque};

use anjian_core::CaseId;
use anjian_core::rules::Refusal;
use anjian_core::signing::ChangeSignature;
use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::{
    PROTOCOL_VERSION, PeerMetadata, REFUSAL_EXTENSION, SIGNATURES_EXTENSION, WireError, WireMessage,
};
use automerge::sync;

use super::document::{Candidate, Received, RefusedChanges, Signatures};
use crate::error::AppError;

/// What the session knows of the server it speaks for, and its limits.
#[derive(Clone)]
pub struct Server {
    /// The server's automerge-repo peer id.
    pub peer_id: String,
    /// The server's storage id, told to peers.
    pub storage_id: String,
    /// Documents one connection syncs at once (the least recently used is forgotten).
    pub documents: usize,
    /// Unknown documents (asked for, or being sent) one connection remembers.
    pub unknown_documents: usize,
}

/// What a frame came to.
pub enum Step {
    /// Send these; `close`: then close the connection.
    Reply {
        /// Messages to send.
        messages: Vec<WireMessage>,
        /// Whether the connection closes after them.
        close: bool,
    },
    /// A sync message for a document: the driver handles it on the document
    /// (`document::receive` with what `take` gives) and hands the outcome to `settle`.
    Document {
        /// The document.
        document_id: DocumentId,
        /// The decoded message.
        message: sync::Message,
        /// The signatures of its changes the peer sent with it.
        signatures: Signatures,
    },
}

/// What the driver does with a handled message.
pub struct Settle {
    /// Changes to commit (durably) before the reply is sent.
    pub commit: Option<Box<Candidate>>,
    /// The reply.
    pub reply: Reply,
}

/// The reply to a handled message.
pub enum Reply {
    /// Send these.
    Send(Vec<WireMessage>),
    /// Answer from the document once the commit (if any) is durable
    /// (`document::answer`), then hand the answer to `answered`.
    Answer {
        /// The peer's sync state.
        state: sync::State,
        /// Whether changes waited for ones the message skipped.
        rewind: bool,
    },
}

/// The peer's sync state with a document the server does not have, while it asks for its
/// changes (what is gathered stays empty until changes arrive that apply, and those are
/// judged at once: `document::receive`).
pub type Incoming = sync::State;

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

/// One connection's protocol state.
pub struct Session {
    server: Server,
    peer: Option<Peer>,
    synced: HashMap<CaseId, Synced>,
    /// The peer's sync states with documents it is sending that the server does not have;
    /// boxed, since the table is empty almost always and keeps room for what it once held.
    incoming: HashMap<CaseId, Box<Incoming>>,
    /// Documents the peer asked for that the server does not have: it is told when they
    /// appear. Oldest first.
    unknown: VecDeque<CaseId>,
    subscribed: HashSet<CaseId>,
    /// Subscriptions changed since the driver last took them: `true` to subscribe.
    subscriptions: Vec<(CaseId, bool)>,
    uses: u64,
    refused: u64,
}

/// An error frame.
pub fn error(message: &str) -> WireMessage {
    WireMessage::Error {
        message: message.to_owned(),
    }
}

impl Session {
    /// A new connection's session.
    pub fn new(server: Server) -> Session {
        Session {
            server,
            peer: None,
            synced: HashMap::new(),
            incoming: HashMap::new(),
            unknown: VecDeque::new(),
            subscribed: HashSet::new(),
            subscriptions: Vec::new(),
            uses: 0,
            refused: 0,
        }
    }

    /// Handles one binary frame.
    pub fn on_frame(&mut self, bytes: &[u8]) -> Step {
        let reply = |messages, close| Step::Reply { messages, close };
        let message = match WireMessage::decode(bytes) {
            Ok(message) => message,
            Err(e @ WireError::Malformed(_)) => return reply(vec![error(&e.to_string())], true),
            Err(e) => return reply(vec![error(&e.to_string())], false),
        };
        match message {
            WireMessage::Join {
                sender_id,
                metadata,
                supported_versions,
            } => {
                if !supported_versions.iter().any(|v| v == PROTOCOL_VERSION) {
                    return reply(
                        vec![error(
                            "unsupported protocol version; this server speaks version 1",
                        )],
                        true,
                    );
                }
                let answer = WireMessage::Peer {
                    sender_id: self.server.peer_id.clone(),
                    target_id: sender_id.clone(),
                    selected_version: PROTOCOL_VERSION.to_owned(),
                    metadata: PeerMetadata {
                        storage_id: Some(self.server.storage_id.clone()),
                        is_ephemeral: false,
                        extensions: vec![
                            REFUSAL_EXTENSION.to_owned(),
                            SIGNATURES_EXTENSION.to_owned(),
                        ],
                    },
                };
                self.peer = Some(Peer {
                    id: sender_id,
                    metadata,
                });
                reply(vec![answer], false)
            }
            _ if self.peer.is_none() => reply(vec![error("send join first")], true),
            WireMessage::Request {
                document_id,
                data,
                signatures,
                ..
            }
            | WireMessage::Sync {
                document_id,
                data,
                signatures,
                ..
            } => {
                let signatures = match ChangeSignature::from_records(&signatures) {
                    Ok(records) => records.into_iter().map(|s| (s.hash, s)).collect(),
                    Err(e) => {
                        return reply(vec![error(&format!("document {document_id}: {e}"))], false);
                    }
                };
                match sync::Message::decode(&data) {
                    Ok(message) => Step::Document {
                        document_id,
                        message,
                        signatures,
                    },
                    Err(e) => reply(
                        vec![error(&format!(
                            "document {document_id}: not an Automerge sync message: {e}"
                        ))],
                        false,
                    ),
                }
            }
            WireMessage::Error { message } => {
                tracing::info!(message, "peer reported an error");
                reply(Vec::new(), false)
            }
            _ => reply(Vec::new(), false),
        }
    }

    /// What `document::receive` needs of this session for `case`: the peer's sync state
    /// and what it sent so far of a document the server does not have (both taken: the
    /// outcome given to `settle` puts back what lives on).
    pub fn take(&mut self, case: CaseId) -> (Option<sync::State>, Option<Incoming>) {
        let state = self.synced.remove(&case).map(|s| s.state);
        (state, self.incoming.remove(&case).map(|incoming| *incoming))
    }

    /// Puts back what `take` took, as it was, to handle the same message again (after
    /// another server process committed changes of the case first).
    pub fn put_back(
        &mut self,
        case: CaseId,
        state: Option<sync::State>,
        incoming: Option<Incoming>,
    ) {
        self.synced.remove(&case);
        self.incoming.remove(&case);
        if let Some(state) = state {
            self.uses += 1;
            self.synced.insert(
                case,
                Synced {
                    state,
                    used: self.uses,
                },
            );
        }
        if let Some(incoming) = incoming {
            self.incoming.insert(case, Box::new(incoming));
        }
    }

    /// Whether the peer reads `anjian-signatures` (the driver then looks up the
    /// signatures of what it sends, `document::answer`).
    pub fn wants_signatures(&self) -> bool {
        self.peer
            .as_ref()
            .is_some_and(|p| p.metadata.understands_signatures())
    }

    /// What handling a message for `document_id` came to: the reply, and changes to
    /// commit first.
    pub fn settle(
        &mut self,
        document_id: DocumentId,
        received: Result<Received, AppError>,
    ) -> Settle {
        let case = document_id.case_id();
        let send = |messages| Settle {
            commit: None,
            reply: Reply::Send(messages),
        };
        match received {
            Err(e) => send(vec![self.failed(document_id, &e)]),
            Ok(Received::Unavailable) => {
                self.remember_unknown(case);
                send(vec![WireMessage::DocUnavailable {
                    sender_id: self.server.peer_id.clone(),
                    target_id: self.peer_id(),
                    document_id,
                }])
            }
            Ok(Received::Gathering { state, reply }) => {
                self.keep_incoming(case, state);
                send(
                    reply
                        .map(|m| vec![self.sync_frame(document_id, m, Vec::new())])
                        .unwrap_or_default(),
                )
            }
            Ok(Received::Refused { refused, state, .. }) => {
                if let Some(state) = state {
                    self.keep_synced(case, state);
                }
                send(self.refusals(document_id, refused))
            }
            Ok(Received::Served { state, reply }) => {
                send(self.answered(document_id, state, Some(*reply), Vec::new()))
            }
            Ok(Received::Nothing { state, rewind }) => Settle {
                commit: None,
                reply: Reply::Answer { state, rewind },
            },
            Ok(Received::Commit(mut candidate)) => {
                let refused = candidate.take_refused();
                let (state, rewind) = candidate.answer_state();
                if refused.is_empty() {
                    return Settle {
                        commit: Some(candidate),
                        reply: Reply::Answer { state, rewind },
                    };
                }
                // Some changes were refused: the rest are committed, and the peer, told
                // which, drops them and syncs the document afresh.
                self.keep_synced(case, state);
                Settle {
                    commit: Some(candidate),
                    reply: Reply::Send(self.refusals(document_id, refused)),
                }
            }
        }
    }

    /// The answer to a message, or to another peer's change (`changed`), computed from the
    /// document: the sync state lives on, the message goes out, with the signatures of its
    /// changes for a peer that reads them.
    pub fn answered(
        &mut self,
        document_id: DocumentId,
        state: sync::State,
        message: Option<sync::Message>,
        signatures: Vec<ChangeSignature>,
    ) -> Vec<WireMessage> {
        self.keep_synced(document_id.case_id(), state);
        let Some(message) = message else {
            return Vec::new();
        };
        let signatures = if self.wants_signatures() {
            ChangeSignature::records(&signatures)
        } else {
            Vec::new()
        };
        vec![self.sync_frame(document_id, message, signatures)]
    }

    /// The error frame for a message whose handling failed (its sync state is forgotten:
    /// the next message starts afresh).
    pub fn failed(&self, document_id: DocumentId, e: &AppError) -> WireMessage {
        error(&format!("document {document_id}: {e}"))
    }

    /// Another connection changed `case`: the sync state to answer from if this
    /// connection syncs it, or asked for it while the server did not have it.
    pub fn changed(&mut self, case: CaseId) -> Option<sync::State> {
        match self.synced.remove(&case) {
            Some(synced) => Some(synced.state),
            None if self.unknown.contains(&case) => {
                self.unknown.retain(|c| *c != case);
                Some(sync::State::new())
            }
            None => None,
        }
    }

    /// Subscriptions to change since last asked: `(case, true)` to subscribe, `false` to
    /// unsubscribe. Take them while the document is still held, so that no change is
    /// announced between.
    pub fn subscriptions(&mut self) -> Vec<(CaseId, bool)> {
        std::mem::take(&mut self.subscriptions)
    }

    /// Changes refused on this connection so far, and forgets the count.
    pub fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }

    /// Forgets everything at the end of the connection; returns every subscribed case.
    pub fn close(&mut self) -> Vec<CaseId> {
        self.synced.clear();
        self.incoming.clear();
        self.unknown.clear();
        self.subscriptions.clear();
        let mut cases: Vec<CaseId> = self.subscribed.drain().collect();
        cases.sort();
        cases
    }

    /// A sync frame, with the signatures of its changes (records) when the peer reads them.
    fn sync_frame(
        &self,
        document_id: DocumentId,
        message: sync::Message,
        signatures: Vec<u8>,
    ) -> WireMessage {
        WireMessage::Sync {
            sender_id: self.server.peer_id.clone(),
            target_id: self.peer_id(),
            document_id,
            data: message.encode(),
            signatures,
        }
    }

    fn refusals(
        &mut self,
        document_id: DocumentId,
        refused: Vec<RefusedChanges>,
    ) -> Vec<WireMessage> {
        refused
            .into_iter()
            .map(|(refusal, hashes)| self.refusal(document_id, refusal, hashes))
            .collect()
    }

    fn refusal(
        &mut self,
        document_id: DocumentId,
        refusal: Refusal,
        hashes: Vec<String>,
    ) -> WireMessage {
        self.refused += hashes.len() as u64;
        tracing::warn!(document = %document_id, rule = refusal.rule.code(), reason = %refusal.reason, "changes refused");
        match &self.peer {
            Some(peer) if peer.metadata.understands_refusals() => WireMessage::Refused {
                sender_id: self.server.peer_id.clone(),
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

    fn subscribe(&mut self, case: CaseId) {
        if self.subscribed.insert(case) {
            self.subscriptions.push((case, true));
        }
    }

    fn unsubscribe(&mut self, case: CaseId) {
        if self.subscribed.remove(&case) {
            self.subscriptions.push((case, false));
        }
    }

    /// Keeps the sync state of a document this connection syncs, forgetting the least
    /// recently used one beyond the limit.
    fn keep_synced(&mut self, case: CaseId, state: sync::State) {
        self.uses += 1;
        self.unknown.retain(|c| *c != case);
        self.synced.insert(
            case,
            Synced {
                state,
                used: self.uses,
            },
        );
        self.subscribe(case);
        if self.synced.len() > self.server.documents
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
    fn remember_unknown(&mut self, case: CaseId) {
        if !self.unknown.contains(&case) {
            self.unknown.push_back(case);
            self.subscribe(case);
        }
        while self.unknown.len() > self.server.unknown_documents {
            if let Some(oldest) = self.unknown.pop_front()
                && !self.synced.contains_key(&oldest)
            {
                self.unsubscribe(oldest);
            }
        }
    }

    /// Keeps a document the peer is sending that the server does not have, within the
    /// same limit as unknown ids (the smallest id goes first).
    fn keep_incoming(&mut self, case: CaseId, state: sync::State) {
        if self.incoming.len() >= self.server.unknown_documents
            && let Some(any) = self.incoming.keys().min().copied()
        {
            self.incoming.remove(&any);
        }
        self.incoming.insert(case, Box::new(state));
    }
}
