//! One sync message (or one server-side change) for one document, without I/O: checked
//! against the wire's limits, its senders checked, applied on a copy through the rule
//! book's `apply`, judged, and handed back as a `Candidate` to commit. The drivers (the
//! WebSocket's on the apply threads, the simulation's on its own) run these functions on
//! the document under its lock and commit what they return.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anjian_core::injected::{Bug, injected};
use anjian_core::rules::{self, Author, CaseState, Ops, Refusal};
use anjian_core::signing::{ChangeSignature, KeyId, Signer};
use anjian_core::sync::intake::{self, IntakeError};
use anjian_core::sync::next_message;
use anjian_core::{CaseId, case_doc};
use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};

use crate::error::{AppError, AppResult};
use crate::hub::SlotDoc;
use crate::storage::{Commit, Documents, Projection, Receipt, Refused};

/// What handling one sync message came to.
pub enum Received {
    /// Nothing new: the sync state moved on.
    Nothing {
        /// The peer's sync state.
        state: sync::State,
        /// Changes waited for ones the message skipped (see `Candidate`).
        rewind: bool,
    },
    /// Changes to commit.
    Commit(Box<Candidate>),
    /// Every new change refused, with why.
    Refused {
        /// The refusals, each with the changes it refused.
        refused: Vec<RefusedChanges>,
        /// The peer's sync state, when the server has the document.
        state: Option<sync::State>,
        /// Whether the rule book judged each change as its author's, so that its refusal
        /// stands whoever carries it again. A refusal of the message as a whole (over a
        /// limit of the wire, another case's changes, a case the sender may not see) says
        /// nothing of the changes' authors: any device can carry another's changes inside
        /// such a message, and the author's own device may still deliver them.
        judged: bool,
    },
    /// The server does not have the document (or the user may not see it), and the peer
    /// only asked for it.
    Unavailable,
    /// Answered from the stored document without reading it into memory
    /// (`from_storage`): send `reply`, keep `state`.
    Served {
        /// The peer's sync state.
        state: sync::State,
        /// The whole document, for a peer that has nothing of it.
        reply: Box<sync::Message>,
    },
    /// The peer is sending a document the server does not have: keep gathering.
    Gathering {
        /// The peer's sync state with it (nothing of it arrived yet).
        state: sync::State,
        /// What to ask the peer for next.
        reply: Option<sync::Message>,
    },
}

/// Signatures a peer sent, by the hash of the change each signs.
pub type Signatures = HashMap<ChangeHash, ChangeSignature>;

pub use rules::RefusedChanges;

/// New changes the rule book allowed, before they are committed.
pub struct Candidate {
    doc: AutoCommit,
    case: CaseState,
    /// Blob hashes the changes name.
    blob_refs: Vec<String>,
    /// Changes of the same message that were refused (the others are committed).
    refused: Vec<RefusedChanges>,
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

/// Who sends a message for which document, and what the wire allows.
#[derive(Clone)]
pub struct Context {
    /// Where documents and devices are stored.
    pub storage: Arc<dyn Documents>,
    /// The sender, as the rule book knows them.
    pub author: Author,
    /// The sender's account.
    pub user_id: i64,
    /// The document's case.
    pub case_id: CaseId,
    /// What one message may cost.
    pub wire: intake::Limits,
    /// Refusals the server keeps of one account's changes (`Limits::refusals_per_user`).
    pub refusals_per_user: u64,
}

/// Handles one sync message for one document: `state` is the peer's sync state, `incoming`
/// its sync state with a document the server does not have, `signatures` what it sent
/// of its changes' signatures.
pub fn receive(
    slot: &mut SlotDoc,
    state: Option<sync::State>,
    incoming: Option<sync::State>,
    message: sync::Message,
    signatures: &Signatures,
    context: &Context,
) -> AppResult<Received> {
    let asks_only = message.heads.is_empty();
    let checked = match intake::check(message, &context.wire) {
        Ok(checked) => checked,
        Err(e) => return Err(AppError::BadRequest(e.to_string())),
    };
    if !slot.is_loaded()
        && incoming.is_none()
        && let Some(served) = from_storage(state.as_ref(), &checked.message, context)?
    {
        return Ok(served);
    }
    slot.load(context.storage.as_ref(), context.case_id)?;
    let visible = slot.may_read(&context.author)?;
    // Who made each change, for the refusals kept (`keep_refusals`).
    let makers: Vec<(ChangeHash, automerge::ActorId)> = checked
        .changes
        .iter()
        .map(|c| (c.hash(), c.actor_id().clone()))
        .collect();
    let received = if visible {
        let state = state.unwrap_or_default();
        receive_visible(slot, state, checked, signatures, context)?
    } else {
        receive_unknown(slot, incoming, checked, asks_only, signatures, context)?
    };
    // A case the sender may not see is answered as one the server does not have, its
    // refusals as a new case's would be (`kept` among them); but none of them is kept: the
    // changes were judged against a case that is not the one the server holds, and their
    // authors' own devices (who may see it) may still deliver them.
    if visible || slot.doc.is_none() {
        keep_refusals(context, &received, &makers)?;
    }
    Ok(received)
}

/// The two messages of a peer reading a case it has nothing of that need nothing of the
/// document but its stored bytes and heads.
enum Reading {
    /// It has nothing and asks for everything: empty heads, no summary of what it has
    /// beyond an empty one.
    Asks,
    /// It has what it was sent: the stored heads, a summary from them.
    Has,
}

/// A peer reading a case it has nothing of (a supervisor's new device, a reinstalled
/// app), answered from the stored document without reading it into memory (`message` has
/// passed the wire's limits, its summaries among them): its first
/// message with the stored bytes (which Automerge loads as one, as it does the whole
/// document `generate_sync_message` would send such a peer), and its acknowledgement with
/// nothing. `None` for every other message, and when the document is not stored or not
/// the sender's to read: those are handled from the document.
///
/// The sync state moves as `receive_sync_message` and `generate_sync_message` move it on
/// the document, but for what they would read of its change graph: the summary sent is
/// the stored heads with nothing since (what the server has is everything they reach),
/// and the hashes sent are not listed in the state (they only spare resending changes
/// before the peer acknowledges them, and the whole document is sent again then anyway).
fn from_storage(
    state: Option<&sync::State>,
    message: &sync::Message,
    context: &Context,
) -> AppResult<Option<Received>> {
    let plain = message.changes.is_empty()
        && message.need.is_empty()
        && message.flags.is_some()
        && state.is_none_or(|s| !s.read_only && !s.needs_reset);
    if !plain {
        return Ok(None);
    }
    let reading = if message.heads.is_empty() {
        if !message.have.iter().all(|have| have.last_sync.is_empty()) {
            return Ok(None);
        }
        Reading::Asks
    } else if state.is_some_and(|s| s.have_responded) {
        Reading::Has
    } else {
        return Ok(None);
    };
    let with_bytes = matches!(reading, Reading::Asks);
    let Some(stored) = context
        .storage
        .stored_document(context.case_id, with_bytes)?
    else {
        return Ok(None);
    };
    if stored.heads.is_empty()
        || !rules::may_read_in(&context.author, &stored.owner, &stored.shared)
    {
        return Ok(None);
    }
    let heads = stored.heads;
    let summarised = |have: &sync::Have| {
        let mut last_sync = have.last_sync.clone();
        last_sync.sort();
        last_sync == heads
    };
    if matches!(reading, Reading::Has)
        && (message.heads != heads
            || state.is_none_or(|s| s.last_sent_heads != heads)
            || !message.have.iter().all(summarised))
    {
        return Ok(None);
    }
    // What receiving reads of the document: for empty heads, nothing (the peer starts
    // afresh); for the stored heads, that the document has them, all it has.
    let mut state = state.cloned().unwrap_or_default();
    AutoCommit::new()
        .sync()
        .receive_sync_message(&mut state, message.clone())
        .map_err(unreadable)?;
    if state.peer_read_only
        || !state
            .their_capabilities
            .as_ref()
            .is_some_and(|c| c.contains(&sync::Capability::MessageV2))
    {
        return Ok(None);
    }
    match reading {
        Reading::Has => {
            state.last_sent_heads.clone_from(&heads);
            state.shared_heads.clone_from(&heads);
            state.sent_hashes.clear();
            // Nothing to send: the peer has the stored heads, and was told them.
            Ok(Some(Received::Nothing {
                state,
                rewind: false,
            }))
        }
        Reading::Asks => {
            let reply = sync::Message {
                heads: heads.clone(),
                need: Vec::new(),
                have: vec![sync::Have {
                    last_sync: heads.clone(),
                    bloom: sync::BloomFilter::default(),
                }],
                changes: vec![stored.bytes].into(),
                // As `next_message` sends every message.
                flags: None,
                version: sync::MessageVersion::V2,
            };
            state.have_responded = true;
            state.last_sent_heads = heads;
            state.in_flight = true;
            Ok(Some(Received::Served {
                state,
                reply: Box::new(reply),
            }))
        }
    }
}

/// Keeps every final refusal (`Rule::is_final`) before the peer hears of it, each
/// counted against the account of the device that made the change, up to
/// `Context::refusals_per_user` an account (beyond, the change is refused all the same and
/// not kept: `Storage::record_refusals`). Not kept either: a message refused as a whole
/// (the author's own device may still deliver its changes).
fn keep_refusals(
    context: &Context,
    received: &Received,
    makers: &[(ChangeHash, automerge::ActorId)],
) -> AppResult<()> {
    let groups = match received {
        Received::Refused {
            refused,
            judged: true,
            ..
        } => refused.as_slice(),
        Received::Commit(candidate) => candidate.refused.as_slice(),
        _ => return Ok(()),
    };
    if groups.is_empty() {
        return Ok(());
    }
    let makers: HashMap<&ChangeHash, &automerge::ActorId> =
        makers.iter().map(|(hash, actor)| (hash, actor)).collect();
    let maker = |hash: &str| {
        hash.parse::<ChangeHash>()
            .ok()
            .and_then(|hash| makers.get(&hash).map(|actor| actor.to_hex_string()))
            .unwrap_or_default()
    };
    let refused: Vec<Refused> = groups
        .iter()
        .filter(|(refusal, _)| refusal.rule.is_final())
        .flat_map(|(refusal, hashes)| {
            hashes.iter().map(|hash| Refused {
                hash: hash.clone(),
                actor: maker(hash),
                refusal: refusal.clone(),
            })
        })
        .collect();
    let not_kept = context.storage.record_refusals(
        context.case_id,
        context.user_id,
        &refused,
        context.refusals_per_user,
    )?;
    if not_kept > 0 {
        tracing::warn!(case = %context.case_id, changes = not_kept, "refusals not kept: their authors' accounts have as many kept as they may");
    }
    Ok(())
}

/// A document this user may see: apply on a copy, judge each change as its author's, and
/// hand back to commit what the rule book allows.
fn receive_visible(
    slot: &mut SlotDoc,
    mut state: sync::State,
    checked: intake::Checked,
    signatures: &Signatures,
    context: &Context,
) -> AppResult<Received> {
    let loaded = || AppError::Internal("a visible document is loaded".into());
    let doc = slot.doc.as_mut().ok_or_else(loaded)?;
    let admitted = intake::admit(doc, checked);
    let rewind = admitted.waiting > 0;
    if admitted.changes.is_empty() {
        // Nothing new to apply: only the sync state moves (and the case is not read).
        doc.sync()
            .receive_sync_message(&mut state, admitted.message)
            .map_err(unreadable)?;
        return Ok(Received::Nothing { state, rewind });
    }
    let (doc, before, conflicts_before) = slot.judged()?.ok_or_else(loaded)?;
    let fresh = admitted.changes;
    if let Err(e) = intake::check_depth(doc, &fresh, &admitted.decoded, context.wire.depth) {
        return Ok(refused(limit(e), &fresh, Some(state)));
    }
    let authors = authors(context, &fresh, signatures);
    let judged = rules::judge_changes(
        doc,
        Some(before),
        fresh,
        &admitted.decoded,
        authors,
        &context.wire,
        &trust(&OnRecord(context.storage.as_ref())),
    );
    let Some(after) = judged.case else {
        return Ok(Received::Refused {
            refused: judged.refused,
            state: Some(state),
            judged: true,
        });
    };
    let before_heads = doc.get_heads();
    let rules::Judged {
        doc: mut candidate,
        admitted: applied,
        refused: refusals,
        blob_refs,
        touched_conflict,
        ..
    } = judged;
    let candidate_state = if refusals.is_empty() {
        // The changes are in the copy already: receiving the message only moves the
        // state.
        let mut moved = state;
        intake::receive_applied(&mut candidate, &mut moved, admitted.message)
            .map_err(unreadable)?;
        moved
    } else {
        // The peer drops what was refused and starts the document afresh.
        sync::State::new()
    };
    let mut bytes = candidate.save_after(&before_heads);
    if injected(Bug::DropChange) && applied.len() > 1 {
        bytes = applied[..applied.len() - 1]
            .iter()
            .flat_map(|(c, _)| c.raw_bytes().to_vec())
            .collect();
    }
    let mut commit = commit_of(
        candidate,
        after,
        candidate_state,
        bytes,
        false,
        receipts(context.storage.as_ref(), &applied)?,
        (blob_refs, touched_conflict),
        conflicts_before,
    );
    commit.rewind = rewind;
    commit.refused = refusals;
    Ok(Received::Commit(Box::new(commit)))
}

/// A document the server does not have, or this user may not see: both get the same
/// answers. Asking for it (empty heads) gets `doc-unavailable`; a peer that has it is
/// asked for its changes as by a server without the document, and then the case is
/// created if the rule book allows it, and refused otherwise.
///
/// Nothing of such a document is kept between messages but the peer's sync state: the
/// first changes that apply are judged at once, as one new case, each change as its
/// author's.
fn receive_unknown(
    slot: &SlotDoc,
    incoming: Option<sync::State>,
    checked: intake::Checked,
    asks_only: bool,
    signatures: &Signatures,
    context: &Context,
) -> AppResult<Received> {
    let mut gathered = AutoCommit::new();
    let mut gathered_state = incoming.unwrap_or_default();
    let admitted = intake::admit(&gathered, checked);
    let fresh = admitted.changes;
    if fresh.is_empty() {
        gathered
            .sync()
            .receive_sync_message(&mut gathered_state, admitted.message)
            .map_err(unreadable)?;
        if asks_only {
            return Ok(Received::Unavailable);
        }
        let reply = next_message(&mut gathered, &mut gathered_state);
        return Ok(Received::Gathering {
            state: gathered_state,
            reply,
        });
    }
    if let Err(e) = intake::check_depth(&gathered, &fresh, &admitted.decoded, context.wire.depth) {
        return Ok(refused(limit(e), &fresh, None));
    }
    let authors = authors(context, &fresh, signatures);
    let judged = rules::judge_changes(
        &gathered,
        None,
        fresh,
        &admitted.decoded,
        authors,
        &context.wire,
        &trust(&OnRecord(context.storage.as_ref())),
    );
    let Some(after) = judged.case else {
        return Ok(Received::Refused {
            refused: judged.refused,
            state: None,
            judged: true,
        });
    };
    let rules::Judged {
        doc: mut candidate,
        admitted: applied,
        refused: mut refusals,
        blob_refs,
        touched_conflict,
        ..
    } = judged;
    if slot.doc.is_some() {
        // It exists but is not this user's to see: what the rule book would admit as a
        // new case is refused as outside the jurisdiction, which is what the sender's
        // copy claims to be (the rest as it would be refused for a new case).
        let jurisdiction = rules::jurisdiction();
        let hashes = applied.iter().map(|(c, _)| c.hash().to_string());
        match refusals.iter_mut().find(|(r, _)| *r == jurisdiction) {
            Some((_, refused)) => refused.extend(hashes),
            None => refusals.push((jurisdiction, hashes.collect())),
        }
        return Ok(Received::Refused {
            refused: refusals,
            state: None,
            judged: false,
        });
    }
    if case_doc::case_id(&candidate).ok() != Some(context.case_id) {
        let all: Vec<Change> = applied.into_iter().map(|(c, _)| c).collect();
        return Ok(refused(
            invalid(anjian_core::Error::InvalidDocument(format!(
                "document {} holds another case",
                context.case_id
            ))),
            &all,
            None,
        ));
    }
    let state = if refusals.is_empty() {
        // The changes are in the candidate: receiving the message only moves the state.
        intake::receive_applied(&mut candidate, &mut gathered_state, admitted.message)
            .map_err(unreadable)?;
        gathered_state
    } else {
        sync::State::new()
    };
    let bytes = candidate.save();
    let mut commit = commit_of(
        candidate,
        after,
        state,
        bytes,
        true,
        receipts(context.storage.as_ref(), &applied)?,
        (blob_refs, touched_conflict),
        0,
    );
    commit.refused = refusals;
    Ok(Received::Commit(Box::new(commit)))
}

/// Who wrote a change, as the server accepts it.
#[derive(Clone)]
pub struct Signed {
    author: Author,
    user_id: i64,
    signature: Option<ChangeSignature>,
}

impl rules::Authored for Signed {
    fn author(&self) -> &Author {
        &self.author
    }
}

/// The author of each change (`rules::author_of`, with what storage knows of keys,
/// devices and accounts), or why the server accepts it from no one. A change the server
/// refused before is refused again first, for the same reason, whoever carries it and
/// whenever: a refusal is final (the device that made it dropped it, and may reuse its
/// number).
fn authors(
    context: &Context,
    changes: &[Change],
    signatures: &Signatures,
) -> Vec<Result<Signed, Refusal>> {
    let mut registry = Registry {
        context,
        keys: HashMap::new(),
        accounts: HashMap::new(),
        user_ids: HashMap::new(),
        owners: HashMap::new(),
    };
    let hashes: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
    let mut refused_before = match context.storage.refused_before(&hashes) {
        Ok(refused) => refused,
        Err(e) => {
            let refusal = unverifiable(e);
            return changes.iter().map(|_| Err(refusal.clone())).collect();
        }
    };
    changes
        .iter()
        .map(|change| {
            if let Some(refusal) = refused_before.remove(&change.hash()) {
                return Err(refusal);
            }
            let signature = signatures.get(&change.hash());
            let (author, verified) = rules::author_of(change, signature, &mut registry)?;
            let user_id = if author.user_id == context.author.user_id {
                context.user_id
            } else {
                registry.user_ids[&author.user_id]
            };
            Ok(Signed {
                author,
                user_id,
                signature: signature.filter(|_| verified).cloned(),
            })
        })
        .collect()
}

/// A storage error holds the change back: the device sends it again.
fn unverifiable(e: AppError) -> Refusal {
    rules::held_back(&format!("服务器暂时无法核验设备 ({e})"))
}

/// What storage knows of keys, devices and accounts, read once per message.
struct Registry<'a> {
    context: &'a Context,
    keys: HashMap<KeyId, Option<rules::KeyHolder>>,
    accounts: HashMap<i64, Option<Author>>,
    /// The account id of each author met, by user id (username).
    user_ids: HashMap<String, i64>,
    owners: HashMap<String, Option<i64>>,
}

impl Registry<'_> {
    fn account(&mut self, user_id: i64) -> Result<Option<Author>, Refusal> {
        if user_id == self.context.user_id {
            return Ok(Some(self.context.author.clone()));
        }
        if let Some(author) = self.accounts.get(&user_id) {
            return Ok(author.clone());
        }
        let author = self.context.storage.author(user_id).map_err(unverifiable)?;
        self.accounts.insert(user_id, author.clone());
        Ok(author)
    }
}

impl rules::Verifier for Registry<'_> {
    fn key(
        &mut self,
        signature: &ChangeSignature,
        _actor: &str,
    ) -> Result<Option<rules::KeyHolder>, Refusal> {
        if let Some(holder) = self.keys.get(&signature.key) {
            return Ok(holder.clone());
        }
        let holder = match self
            .context
            .storage
            .device_key(&signature.key)
            .map_err(unverifiable)?
        {
            Some(key) => {
                let author = self.account(key.user_id)?;
                if let Some(author) = &author {
                    self.user_ids.insert(author.user_id.clone(), key.user_id);
                }
                Some(rules::KeyHolder {
                    actor: key.actor,
                    key: key.key,
                    author,
                    revoked: key.revoked,
                })
            }
            None => None,
        };
        self.keys.insert(signature.key, holder.clone());
        Ok(holder)
    }

    fn device_known(&mut self, actor: &str) -> Result<bool, Refusal> {
        self.context
            .storage
            .device_known(actor)
            .map_err(unverifiable)
    }

    fn own_device(&mut self, actor: &str) -> Result<Option<Author>, Refusal> {
        let owner = match self.owners.get(actor) {
            Some(owner) => *owner,
            None => {
                let owner = self
                    .context
                    .storage
                    .actor_owner(actor)
                    .map_err(unverifiable)?;
                self.owners.insert(actor.to_owned(), owner);
                owner
            }
        };
        Ok((owner == Some(self.context.user_id)).then(|| self.context.author.clone()))
    }
}

fn unreadable(e: automerge::AutomergeError) -> AppError {
    AppError::BadRequest(format!("the sync message does not apply: {e}"))
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
    receipts: Vec<Receipt>,
    (blob_refs, touched_conflict): (BTreeSet<String>, bool),
    conflicts_before: usize,
) -> Candidate {
    let conflicts = if conflicts_before == 0 && !touched_conflict {
        0
    } else {
        case_doc::conflicts(&doc)
            .map(|c| c.len())
            .unwrap_or_default()
    };
    Candidate {
        blob_refs: blob_refs.into_iter().collect(),
        receipts,
        doc,
        case,
        state,
        bytes,
        new,
        conflicts,
        rewind: false,
        refused: Vec::new(),
    }
}

/// The receipts of changes judged now, each signed by the server (on the thread that
/// judged them, not on the one writer thread).
fn receipts(storage: &dyn Documents, applied: &[(Change, Signed)]) -> AppResult<Vec<Receipt>> {
    let received_at = chrono::Utc::now().to_rfc3339();
    applied
        .iter()
        .map(|(change, signed)| {
            Ok(Receipt {
                signed: anjian_core::certificate::Receipt::sign(
                    storage.server_key(),
                    change.hash(),
                    change.actor_id().to_hex_string(),
                    received_at.clone(),
                )?,
                device_time: change.timestamp(),
                author: signed.user_id,
                signature: signed.signature.clone(),
            })
        })
        .collect()
}

/// `changes` refused as a whole message, not as each author's (never kept: see
/// `Received::Refused`).
fn refused(refusal: Refusal, changes: &[Change], state: Option<sync::State>) -> Received {
    Received::Refused {
        refused: vec![(
            refusal,
            changes.iter().map(|c| c.hash().to_string()).collect(),
        )],
        state,
        judged: false,
    }
}

/// What the server has on record, as the rule book looks it up.
struct OnRecord<'a>(&'a dyn Documents);

fn unreadable_record(e: AppError) -> Refusal {
    rules::held_back(&format!(
        "暂时无法核对登记记录，稍后再同步 (the server's records could not be read: {e})"
    ))
}

impl rules::Records for OnRecord<'_> {
    fn certificate(&self, user: &str) -> Result<Option<rules::EnforcementCertificate>, Refusal> {
        self.0
            .enforcement_certificate(user)
            .map_err(unreadable_record)
    }

    fn number_elsewhere(&self, number: &str, case: CaseId) -> Result<bool, Refusal> {
        self.0
            .number_elsewhere(number, case)
            .map_err(unreadable_record)
    }
}

/// What the server's judge knows: its own key, which allocates document numbers, and what
/// it has on record (enforcement certificates, the register of numbers).
fn trust<'a>(on_record: &'a OnRecord<'a>) -> rules::Trust<'a> {
    rules::Trust {
        servers: vec![on_record.0.server_key().public_key()],
        records: Some(on_record),
    }
}

fn invalid(e: anjian_core::Error) -> Refusal {
    rules::not_a_case(e)
}

fn limit(e: IntakeError) -> Refusal {
    Refusal::new(
        rules::Rule::Shape,
        format!("超出同步限制 (over a limit of the wire): {e}"),
    )
}

/// The change `edit` makes, judged; `None` when the user may not see the case.
pub type Edited<T> = Option<(T, Option<Box<Candidate>>)>;

/// Makes the change `edit` makes on a copy of the document as the account `user_id`, with
/// `actor` (the user's server-side actor), and judges it like any change arriving over
/// sync, within the same `limits`: in the room of the author's own changes, or in `room`
/// when given (the server's own acts take the whole of the limits, `rules::Room`).
#[expect(clippy::too_many_arguments)]
pub fn change_in<T>(
    slot: &mut SlotDoc,
    storage: &dyn Documents,
    case_id: CaseId,
    author: &Author,
    user_id: i64,
    actor: automerge::ActorId,
    limits: &intake::Limits,
    room: Option<rules::Room>,
    edit: impl FnOnce(&mut AutoCommit) -> anjian_core::Result<T>,
) -> AppResult<Edited<T>> {
    slot.load(storage, case_id)?;
    let Some((doc, before, conflicts_before)) = slot.judged()? else {
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
    let after = before.after(&candidate, &ops)?.grown_by(before, &applied);
    let room = room.unwrap_or_else(|| rules::Room::of(author, Some(before), limits));
    let after = rules::within_limits(&mut candidate, after, room).map_err(AppError::Refused)?;
    // The server signs the change with its own key.
    let mut author = author.clone();
    author.key = Some(storage.server_key().public_key().id());
    rules::judge(
        &author,
        Some(before),
        &after,
        &ops,
        &trust(&OnRecord(storage)),
    )
    .map_err(AppError::Refused)?;
    let bytes = candidate.save_after(&before_heads);
    let touched = (ops.blob_refs(), ops.touch_a_conflict(&candidate));
    // Signed with the server's key, certified for this actor as the user's
    // (`Storage::server_actor`).
    let applied: Vec<(Change, Signed)> = applied
        .into_iter()
        .map(|c| {
            let signature = ChangeSignature::sign(storage.server_key(), c.hash())?;
            let signed = Signed {
                author: author.clone(),
                user_id,
                signature: Some(signature),
            };
            Ok((c, signed))
        })
        .collect::<anjian_core::Result<_>>()?;
    let commit = commit_of(
        candidate,
        after,
        sync::State::new(),
        bytes,
        false,
        receipts(storage, &applied)?,
        touched,
        conflicts_before,
    );
    Ok(Some((value, Some(Box::new(commit)))))
}

/// A sync message to send, with the signatures of its changes (when the peer reads them).
pub type Outgoing = (sync::State, Option<sync::Message>, Vec<ChangeSignature>);

/// The answer to a message once what it brought is committed: the server's next sync
/// message from the document as it now is, or, when changes had to wait for ones the
/// message skipped, the message that asks the peer for every change again. `committed`
/// names the case when handling the message committed changes to it.
pub fn answer(
    slot: &mut SlotDoc,
    storage: &dyn Documents,
    committed: Option<CaseId>,
    mut state: sync::State,
    rewind: bool,
    with_signatures: bool,
) -> AppResult<Outgoing> {
    if rewind {
        return Ok((state, Some(intake::rewind()), Vec::new()));
    }
    // A commit after the message's own (a provisional number's) that failed, or a
    // compaction that did, leaves the case to be read again: the answer is from it as
    // stored, so that the peer still learns what the server holds. A message that
    // committed nothing (one answered from the stored bytes among them) leaves the case
    // unread.
    if let Some(case) = committed
        && !slot.is_loaded()
    {
        slot.load(storage, case)?;
    }
    let reply = slot.doc.as_mut().and_then(|d| next_message(d, &mut state));
    let signatures = signatures_in(storage, reply.as_ref(), with_signatures)?;
    Ok((state, reply, signatures))
}

/// The signatures the server holds of the changes `message` carries.
fn signatures_in(
    storage: &dyn Documents,
    message: Option<&sync::Message>,
    wanted: bool,
) -> AppResult<Vec<ChangeSignature>> {
    let Some(message) = message.filter(|_| wanted) else {
        return Ok(Vec::new());
    };
    let hashes: Vec<ChangeHash> = message
        .changes
        .iter()
        .filter_map(|bytes| Change::try_from(bytes).ok())
        .map(|change| change.hash())
        .collect();
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    storage.signatures_of(&hashes)
}

/// What a peer syncing `case` is sent after someone else changed it: what is new, if
/// `author` may see the case.
pub fn changed(
    slot: &mut SlotDoc,
    storage: &dyn Documents,
    case: CaseId,
    author: &Author,
    mut state: sync::State,
    with_signatures: bool,
) -> AppResult<Outgoing> {
    slot.load(storage, case)?;
    let visible = slot.may_read(author)?;
    let reply = match slot.doc.as_mut() {
        Some(d) if visible => next_message(d, &mut state),
        _ => None,
    };
    let signatures = signatures_in(storage, reply.as_ref(), with_signatures)?;
    Ok((state, reply, signatures))
}

/// A candidate taken apart into what storage commits and what the document becomes
/// once that commit is durable.
pub struct Committing {
    /// What storage writes.
    pub commit: Commit,
    /// The document after the changes.
    pub doc: AutoCommit,
    /// The case after the changes.
    pub case: CaseState,
    /// Fields in conflict after the changes.
    pub conflicts: usize,
}

impl Candidate {
    /// The changes of the message that were refused (the candidate holds the rest).
    pub fn take_refused(&mut self) -> Vec<RefusedChanges> {
        std::mem::take(&mut self.refused)
    }

    /// The sync state with the peer once the candidate is committed, and whether the
    /// answer asks for every change again.
    pub fn answer_state(&self) -> (sync::State, bool) {
        (self.state.clone(), self.rewind)
    }

    /// Changes the candidate holds.
    pub fn changes(&self) -> usize {
        self.receipts.len()
    }

    /// What committing the candidate as `user_id` writes; `base` is the heads of the
    /// stored document it was judged against (`SlotDoc::stored_heads`).
    pub fn committing(self, user_id: i64, case_id: CaseId, base: Vec<String>) -> Committing {
        let Candidate {
            mut doc,
            case,
            blob_refs,
            bytes,
            new,
            receipts,
            conflicts,
            ..
        } = self;
        let heads = case_doc::sorted_heads(&mut doc);
        Committing {
            commit: Commit {
                case_id,
                bytes,
                new,
                heads,
                base,
                projection: Projection {
                    case: case.case().clone(),
                    conflicts,
                    blob_refs,
                    all_blob_refs: false,
                },
                user_id,
                token_hash: None,
                receipts,
            },
            doc,
            case,
            conflicts,
        }
    }
}
