//! The server in the simulation: the same sync session and document steps the WebSocket
//! driver runs, over storage on real SQLite files, driven on the simulation's thread.
//! Commits wait in a queue for the writer, as in the server, and are made durable together
//! when the scheduler says; a crash drops the queue with everything in memory.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use anjian_core::injected::{Bug, injected};
use anjian_core::rules::Author;
use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::WireMessage;
use anjian_core::{CaseId, ReviewAction, case_doc};
use anjian_sync_server::hub::SlotDoc;
use anjian_sync_server::storage::{Database, Storage};
use anjian_sync_server::sync::document::{self, Candidate, Committing, Context, Signatures};
use anjian_sync_server::sync::session::{Reply, Server, Session, Step};
use anjian_sync_server::users::User;
use anjian_sync_server::{AppError, AppResult, Settings, policy};
use automerge::sync;
use chrono::{DateTime, FixedOffset};

/// Documents in one page of the catalog: few, so that the district's phones read theirs
/// over several pages, each a round, under every fault the schedule brings.
const CATALOG_PAGE: usize = 3;

/// A connection id.
pub type ConnId = u64;

struct Conn {
    user: User,
    author: Author,
    session: Session,
}

/// A sync message waiting for its document's commit: the connection, the document, the
/// message and the signatures of its changes.
type Waiting = (ConnId, DocumentId, sync::Message, Signatures);

/// A commit waiting for the writer, with the answer that follows it.
struct Queued {
    committing: Committing,
    /// The connection that sent the changes, and what it is answered.
    answer: Option<(ConnId, DocumentId, Reply)>,
}

/// The server, as it lives between two crashes.
pub struct SimServer {
    storage: Arc<Storage>,
    docs: BTreeMap<CaseId, SlotDoc>,
    conns: BTreeMap<ConnId, Conn>,
    subscribers: BTreeMap<CaseId, BTreeSet<ConnId>>,
    queue: Vec<Queued>,
    /// Cases with a commit in the queue: their messages wait for it, as behind the
    /// document's lock in the server.
    busy: BTreeSet<CaseId>,
    waiting: VecDeque<Waiting>,
    server: Server,
    wire: anjian_core::sync::intake::Limits,
    refusals_per_user: u64,
}

/// Frames to send: to which connection, what.
pub type Out = Vec<(ConnId, WireMessage)>;

impl SimServer {
    /// Opens the server's storage in `data`.
    pub fn open(data: &Path) -> AppResult<SimServer> {
        let storage = Arc::new(Storage::open(&Database::Sqlite(data.join("server.db")))?);
        let limits = Settings::default().limits;
        Ok(SimServer {
            server: Server {
                peer_id: "anjian-server".into(),
                storage_id: storage.storage_id().to_owned(),
                documents: limits.documents_per_connection,
                unknown_documents: limits.unknown_documents_per_connection,
                state_bytes: limits.sync_state_bytes_per_connection,
            },
            wire: limits.wire(),
            refusals_per_user: limits.refusals_per_user,
            storage,
            docs: BTreeMap::new(),
            conns: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            queue: Vec::new(),
            busy: BTreeSet::new(),
            waiting: VecDeque::new(),
        })
    }

    /// The storage (for the checks).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Commits waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// A device opens a sync connection as `username`.
    pub fn connect(&mut self, id: ConnId, username: &str) -> AppResult<()> {
        let user = self.storage.user(username)?;
        self.conns.insert(
            id,
            Conn {
                author: policy::author(&user),
                user,
                session: Session::new(self.server.clone()),
            },
        );
        Ok(())
    }

    /// A connection closed.
    pub fn disconnect(&mut self, id: ConnId) {
        if let Some(mut conn) = self.conns.remove(&id) {
            for case in conn.session.close() {
                self.unsubscribe(case, id);
            }
        }
        self.waiting.retain(|(c, ..)| *c != id);
    }

    /// `GET /api/v1/catalog` for `username`, in pages of `CATALOG_PAGE` documents.
    pub fn catalog(&self, username: &str, since: i64) -> AppResult<anjian_core::sync::CatalogPage> {
        let user = self.storage.user(username)?;
        self.storage.catalog(&user, since, CATALOG_PAGE)
    }

    /// A frame arrives on connection `id`.
    pub fn on_frame(&mut self, id: ConnId, bytes: &[u8]) -> Out {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Vec::new();
        };
        match conn.session.on_frame(bytes) {
            Step::Reply { messages, close } => {
                let out = messages.into_iter().map(|m| (id, m)).collect();
                if close {
                    self.disconnect(id);
                }
                out
            }
            Step::Document {
                document_id,
                message,
                signatures,
            } => {
                if self.busy.contains(&document_id.case_id()) {
                    self.waiting
                        .push_back((id, document_id, message, signatures));
                    return Vec::new();
                }
                self.on_sync((id, document_id, message, signatures))
            }
        }
    }

    fn on_sync(&mut self, (id, document_id, message, signatures): Waiting) -> Out {
        let case = document_id.case_id();
        let Some(conn) = self.conns.get_mut(&id) else {
            return Vec::new();
        };
        let (state, incoming) = conn.session.take(case);
        let context = Context {
            storage: self.storage.clone(),
            author: conn.author.clone(),
            user_id: conn.user.id,
            case_id: case,
            wire: self.wire.clone(),
            refusals_per_user: self.refusals_per_user,
        };
        let slot = self.docs.entry(case).or_default();
        let received = document::receive(slot, state, incoming, message, &signatures, &context);
        let settle = conn.session.settle(document_id, received);
        let mut out = Vec::new();
        match settle.commit {
            Some(candidate) => {
                let answer = Some((id, document_id, settle.reply));
                out.extend(self.enqueue(case, conn_user(&self.conns, id), *candidate, answer));
            }
            None => out.extend(self.reply(id, document_id, settle.reply, false)),
        }
        self.subscriptions(id);
        out
    }

    /// Queues a commit for the writer (the case waits for it); with the bug
    /// `AckBeforeCommit` the document moves on and the sender is answered at once.
    fn enqueue(
        &mut self,
        case: CaseId,
        user_id: i64,
        candidate: Candidate,
        answer: Option<(ConnId, DocumentId, Reply)>,
    ) -> Out {
        let base = self
            .docs
            .get(&case)
            .map(SlotDoc::stored_heads)
            .unwrap_or_default();
        let committing = candidate.committing(user_id, case, base);
        if injected(Bug::AckBeforeCommit) {
            let slot = self.docs.entry(case).or_default();
            slot.replace(
                committing.doc.clone(),
                committing.case.clone(),
                committing.conflicts,
                committing.commit.heads.clone(),
            );
            let except = answer.as_ref().map(|(id, _, _)| *id);
            let mut out = self.announce(case, except);
            if let Some((id, document_id, reply)) = answer {
                out.extend(self.reply(id, document_id, reply, true));
                self.subscriptions(id);
            }
            self.queue.push(Queued {
                committing,
                answer: None,
            });
            return out;
        }
        self.busy.insert(case);
        self.queue.push(Queued { committing, answer });
        Vec::new()
    }

    /// The writer makes every queued commit durable in one transaction; then the
    /// documents move on, their senders are answered, their other peers told, and the
    /// messages that waited are handled.
    pub fn flush(&mut self) -> Out {
        let queued = std::mem::take(&mut self.queue);
        if queued.is_empty() {
            return Vec::new();
        }
        let mut commits = Vec::new();
        let mut after = Vec::new();
        for queued in queued {
            let Committing {
                commit,
                doc,
                case,
                conflicts,
            } = queued.committing;
            let heads = commit.heads.clone();
            after.push((commit.case_id, doc, case, conflicts, heads, queued.answer));
            commits.push(commit);
        }
        let results = self.storage.commit_batch(&commits);
        let mut out = Vec::new();
        for ((case, doc, state, conflicts, heads, answer), result) in after.into_iter().zip(results)
        {
            self.busy.remove(&case);
            match result {
                Ok(chunks) => {
                    let slot = self.docs.entry(case).or_default();
                    slot.replace(doc, state, conflicts, heads.clone());
                    if Storage::should_compact(chunks)
                        && let Some(doc) = slot.doc.as_mut()
                    {
                        let _ = self.storage.compact(case, &doc.save(), &heads);
                    }
                    let except = answer.as_ref().map(|(id, _, _)| *id);
                    out.extend(self.announce(case, except));
                    if let Some((id, document_id, reply)) = answer {
                        out.extend(self.reply(id, document_id, reply, true));
                        self.subscriptions(id);
                    }
                }
                Err(e) => {
                    if let Some((id, document_id, _)) = answer
                        && let Some(conn) = self.conns.get_mut(&id)
                    {
                        out.push((id, conn.session.failed(document_id, &e)));
                    }
                }
            }
        }
        let waiting = std::mem::take(&mut self.waiting);
        for waiting in waiting {
            if self.busy.contains(&waiting.1.case_id()) {
                self.waiting.push_back(waiting);
            } else {
                out.extend(self.on_sync(waiting));
            }
        }
        out
    }

    /// A supervisor's review action, through the same step as the pages' and API's:
    /// `Ok(false)` when refused or the case is not theirs to see.
    pub fn review(
        &mut self,
        username: &str,
        case: CaseId,
        action: ReviewAction,
        at: DateTime<FixedOffset>,
    ) -> AppResult<(bool, Out)> {
        if self.busy.contains(&case) {
            return Ok((false, Vec::new()));
        }
        let user = self.storage.user(username)?;
        let actor = self.storage.server_actor(&user)?;
        let author = policy::author(&user);
        let by = user.username.clone();
        let slot = self.docs.entry(case).or_default();
        let edited = document::change_in(
            slot,
            self.storage.as_ref(),
            case,
            &author,
            user.id,
            actor,
            &self.wire,
            None,
            |doc| case_doc::review(doc, &by, action, "模拟审核意见", at),
        );
        match edited {
            Ok(Some((_, Some(candidate)))) => {
                let out = self.enqueue(case, user.id, *candidate, None);
                Ok((true, out))
            }
            Ok(_) => Ok((false, Vec::new())),
            // Refused by the rule book, not theirs to see, or not a step the review state
            // allows now.
            Err(
                AppError::Refused(_)
                | AppError::NotFound(_)
                | AppError::Conflict(_)
                | AppError::BadRequest(_),
            ) => Ok((false, Vec::new())),
            Err(e) => Err(e),
        }
    }

    /// Sends `reply` to connection `id`; `committed` says whether handling the message
    /// committed changes to the document.
    fn reply(&mut self, id: ConnId, document_id: DocumentId, reply: Reply, committed: bool) -> Out {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Vec::new();
        };
        let messages = match reply {
            Reply::Send(messages) => messages,
            Reply::Answer { state, rewind } => {
                let slot = self.docs.entry(document_id.case_id()).or_default();
                let signed = conn.session.wants_signatures();
                let case = committed.then(|| document_id.case_id());
                match document::answer(slot, self.storage.as_ref(), case, state, rewind, signed) {
                    Ok((state, message, signatures)) => {
                        conn.session
                            .answered(document_id, state, message, signatures)
                    }
                    Err(e) => vec![conn.session.failed(document_id, &e)],
                }
            }
        };
        messages.into_iter().map(|m| (id, m)).collect()
    }

    /// Tells every connection subscribed to `case` but `except` what is new.
    fn announce(&mut self, case: CaseId, except: Option<ConnId>) -> Out {
        let ids: Vec<ConnId> = self
            .subscribers
            .get(&case)
            .map(|s| s.iter().copied().filter(|id| Some(*id) != except).collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            let Some(state) = conn.session.changed(case) else {
                continue;
            };
            let slot = self.docs.entry(case).or_default();
            let signed = conn.session.wants_signatures();
            match document::changed(
                slot,
                self.storage.as_ref(),
                case,
                &conn.author,
                state,
                signed,
            ) {
                Ok((state, message, signatures)) => {
                    let messages =
                        conn.session
                            .answered(DocumentId::of(case), state, message, signatures);
                    out.extend(messages.into_iter().map(|m| (id, m)));
                }
                Err(_) => conn.session.start_afresh(case),
            }
            self.subscriptions(id);
        }
        out
    }

    fn subscriptions(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        for (case, subscribe) in conn.session.subscriptions() {
            if subscribe {
                self.subscribers.entry(case).or_default().insert(id);
            } else {
                self.unsubscribe(case, id);
            }
        }
    }

    fn unsubscribe(&mut self, case: CaseId, id: ConnId) {
        if let Some(subscribers) = self.subscribers.get_mut(&case) {
            subscribers.remove(&id);
        }
    }
}

fn conn_user(conns: &BTreeMap<ConnId, Conn>, id: ConnId) -> i64 {
    conns.get(&id).map(|c| c.user.id).unwrap_or_default()
}
