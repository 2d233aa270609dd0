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
    /// Bytes the sync states one connection keeps may hold (`weight`); beyond them the
    /// least recently used are forgotten, whatever their number.
    pub state_bytes: usize,
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

/// A document this connection syncs: the sync state with the peer, its `weight`, and
/// when it was last used (for forgetting the least recently used beyond the limits).
struct Synced {
    state: sync::State,
    bytes: usize,
    used: u64,
}

/// A document the peer is sending that the server does not have: the peer's sync state,
/// boxed (the table is empty almost always and keeps room for what it once held), and its
/// `weight`.
struct Gathered {
    state: Box<Incoming>,
    bytes: usize,
}

/// Bytes a sync state holds besides its hashes and the peer's summaries.
const STATE_OVERHEAD: usize = 256;

/// Roughly the bytes a kept sync state holds: its hashes and the summaries (bloom filters)
/// the peer last sent, which a message may make as large as its frame.
fn weight(state: &sync::State) -> usize {
    let hashes = state.shared_heads.len()
        + state.last_sent_heads.len()
        + state.their_heads.as_ref().map_or(0, Vec::len)
        + state.their_need.as_ref().map_or(0, Vec::len)
        + state.sent_hashes.len();
    let summaries: usize = state
        .their_have
        .iter()
        .flatten()
        .map(|have| have.last_sync.len() * 32 + have.bloom.to_bytes().len())
        .sum();
    STATE_OVERHEAD + hashes * 32 + summaries
}

/// One connection's protocol state.
pub struct Session {
    server: Server,
    peer: Option<Peer>,
    synced: HashMap<CaseId, Synced>,
    /// The peer's sync states with documents it is sending that the server does not have.
    incoming: HashMap<CaseId, Gathered>,
    /// The `weight` of every state in `synced` and `incoming`.
    kept_bytes: usize,
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
            kept_bytes: 0,
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
        (self.forget_synced(case), self.forget_incoming(case))
    }

    /// Puts back what `take` took, as it was, to handle the same message again (after
    /// another server process committed changes of the case first).
    pub fn put_back(
        &mut self,
        case: CaseId,
        state: Option<sync::State>,
        incoming: Option<Incoming>,
    ) {
        self.forget_synced(case);
        self.forget_incoming(case);
        if let Some(state) = state {
            self.keep_synced(case, state);
        }
        if let Some(incoming) = incoming {
            self.keep_incoming(case, incoming);
        }
    }

    /// The bytes the sync states this connection keeps hold (`weight`).
    pub fn kept_bytes(&self) -> usize {
        self.kept_bytes
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
            Ok(Received::Refused {
                refused,
                state,
                judged,
            }) => {
                if let Some(state) = state {
                    self.keep_synced(case, state);
                }
                send(self.refusals(document_id, refused, judged))
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
                    reply: Reply::Send(self.refusals(document_id, refused, true)),
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

    /// The error frame for a message whose handling failed (`start_afresh`).
    pub fn failed(&mut self, document_id: DocumentId, e: &AppError) -> WireMessage {
        self.start_afresh(document_id.case_id());
        error(&format!("document {document_id}: {e}"))
    }

    /// Handling a message for `case`, or answering another connection's change of it,
    /// failed, and the sync state taken for it is gone. A document the connection syncs
    /// stays synced from a new state: the next exchange starts afresh, and another
    /// connection's changes still reach the peer meanwhile.
    pub fn start_afresh(&mut self, case: CaseId) {
        if self.subscribed.contains(&case) && !self.synced.contains_key(&case) {
            self.keep_synced(case, sync::State::new());
        }
    }

    /// Another connection changed `case`: the sync state to answer from if this
    /// connection syncs it, or asked for it while the server did not have it.
    pub fn changed(&mut self, case: CaseId) -> Option<sync::State> {
        match self.forget_synced(case) {
            Some(state) => Some(state),
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
        self.kept_bytes = 0;
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

    /// The frames telling the peer of `refused`; `judged` when each change was judged as
    /// its author's, so that a final refusal was kept (`document::keep_refusals`).
    fn refusals(
        &mut self,
        document_id: DocumentId,
        refused: Vec<RefusedChanges>,
        judged: bool,
    ) -> Vec<WireMessage> {
        refused
            .into_iter()
            .map(|(refusal, hashes)| self.refusal(document_id, refusal, hashes, judged))
            .collect()
    }

    fn refusal(
        &mut self,
        document_id: DocumentId,
        refusal: Refusal,
        hashes: Vec<String>,
        judged: bool,
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
                kept: judged && refusal.rule.is_final(),
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
    /// recently used ones beyond the limits.
    fn keep_synced(&mut self, case: CaseId, state: sync::State) {
        self.uses += 1;
        self.unknown.retain(|c| *c != case);
        self.forget_synced(case);
        let bytes = weight(&state);
        self.kept_bytes += bytes;
        self.synced.insert(
            case,
            Synced {
                state,
                bytes,
                used: self.uses,
            },
        );
        self.subscribe(case);
        while self.synced.len() > self.server.documents || self.over_budget() {
            if !self.forget_least_recently_used() {
                break;
            }
        }
    }

    /// Whether the kept states hold more than the budget; documents being gathered are
    /// forgotten first (the peer sends them again).
    fn over_budget(&mut self) -> bool {
        while self.kept_bytes > self.server.state_bytes
            && let Some(any) = self.incoming.keys().min().copied()
        {
            self.forget_incoming(any);
        }
        self.kept_bytes > self.server.state_bytes
    }

    /// Forgets the least recently used synced document (its next message starts afresh);
    /// `false` if there is none.
    fn forget_least_recently_used(&mut self) -> bool {
        let Some(oldest) = self
            .synced
            .iter()
            .min_by_key(|(_, s)| s.used)
            .map(|(case, _)| *case)
        else {
            return false;
        };
        self.forget_synced(oldest);
        self.unsubscribe(oldest);
        true
    }

    fn forget_synced(&mut self, case: CaseId) -> Option<sync::State> {
        let synced = self.synced.remove(&case)?;
        self.kept_bytes -= synced.bytes;
        Some(synced.state)
    }

    fn forget_incoming(&mut self, case: CaseId) -> Option<Incoming> {
        let gathered = self.incoming.remove(&case)?;
        self.kept_bytes -= gathered.bytes;
        Some(*gathered.state)
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
    /// same limit as unknown ids (the smallest id goes first) and the connection's budget.
    fn keep_incoming(&mut self, case: CaseId, state: sync::State) {
        self.forget_incoming(case);
        if self.incoming.len() >= self.server.unknown_documents
            && let Some(any) = self.incoming.keys().min().copied()
        {
            self.forget_incoming(any);
        }
        let bytes = weight(&state);
        self.kept_bytes += bytes;
        self.incoming.insert(
            case,
            Gathered {
                state: Box::new(state),
                bytes,
            },
        );
        while self.over_budget() {
            if !self.forget_least_recently_used() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ChangeHash;
    use automerge::sync::{BloomFilter, Have};

    fn session(state_bytes: usize) -> Session {
        Session::new(Server {
            peer_id: "server".into(),
            storage_id: "storage".into(),
            documents: 20_000,
            unknown_documents: 1_024,
            state_bytes,
        })
    }

    /// A sync state holding the summary a peer claiming `changes` changes would send.
    fn summarised(changes: u32) -> sync::State {
        let hashes: Vec<ChangeHash> = (0..changes)
            .map(|i| {
                let mut bytes = [0u8; 32];
                bytes[..4].copy_from_slice(&i.to_le_bytes());
                ChangeHash(bytes)
            })
            .collect();
        let mut state = sync::State::new();
        state.their_heads = Some(vec![hashes[0]]);
        state.their_have = Some(vec![Have {
            last_sync: Vec::new(),
            bloom: BloomFilter::from_hashes(hashes.iter()),
        }]);
        state
    }

    fn gathering(session: &mut Session, case: CaseId, state: sync::State) {
        let settled = session.settle(
            DocumentId::of(case),
            Ok(Received::Gathering { state, reply: None }),
        );
        assert!(settled.commit.is_none());
    }

    #[test]
    fn the_documents_a_peer_sends_are_kept_within_the_connection_s_bytes() {
        let budget = 1024 * 1024;
        let mut session = session(budget);
        let one = weight(&summarised(80_000));
        assert!(
            one > 90_000,
            "a summary of 80,000 changes weighs {one} bytes"
        );
        let mut cases = Vec::new();
        for _ in 0..64 {
            let case = CaseId::new();
            gathering(&mut session, case, summarised(80_000));
            cases.push(case);
            assert!(session.kept_bytes() <= budget, "{}", session.kept_bytes());
        }
        let kept: Vec<CaseId> = cases
            .iter()
            .copied()
            .filter(|case| session.incoming.contains_key(case))
            .collect();
        assert_eq!(kept.len(), budget / one, "as many as fit are kept");
        let mut taken = 0;
        for case in cases {
            taken += session.take(case).1.map_or(0, |state| weight(&state));
        }
        assert_eq!(session.kept_bytes(), 0);
        assert!(taken > 0 && taken <= budget);
    }

    #[test]
    fn documents_synced_beyond_the_bytes_are_forgotten_least_recently_used_first() {
        let one = weight(&summarised(40_000));
        let mut session = session(4 * one);
        let cases: Vec<CaseId> = (0..6).map(|_| CaseId::new()).collect();
        for case in &cases[..4] {
            session.answered(DocumentId::of(*case), summarised(40_000), None, Vec::new());
        }
        assert_eq!(session.kept_bytes(), 4 * one);
        // The first is used again, so the second is the least recently used.
        let (state, _) = session.take(cases[0]);
        session.put_back(cases[0], state, None);
        session.subscriptions();
        session.answered(
            DocumentId::of(cases[4]),
            summarised(40_000),
            None,
            Vec::new(),
        );
        assert_eq!(session.kept_bytes(), 4 * one);
        assert!(session.synced.contains_key(&cases[0]));
        assert!(!session.synced.contains_key(&cases[1]));
        assert_eq!(
            session.subscriptions(),
            vec![(cases[4], true), (cases[1], false)],
            "the forgotten document is no longer followed"
        );
        // A peer's message for a document being gathered gives way to the synced ones.
        gathering(&mut session, cases[5], summarised(40_000));
        assert!(session.incoming.is_empty());
        assert_eq!(session.kept_bytes(), 4 * one);
        session.close();
        assert_eq!(session.kept_bytes(), 0);
    }
}
