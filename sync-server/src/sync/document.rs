//! One sync message (or one server-side change) for one document, without I/O: checked
//! against the wire's limits, its senders checked, applied on a copy through the rule
//! book's `apply`, judged, and handed back as a `Candidate` to commit. The drivers (the
//! WebSocket's on the apply threads, the simulation's on its own) run these functions on
//! the document under its lock and commit what they return.

use anjian_core::injected::{Bug, injected};
use anjian_core::rules::{self, Author, CaseState, Ops, Refusal};
use anjian_core::sync::intake::{self, IntakeError};
use anjian_core::sync::next_message;
use anjian_core::{CaseId, case_doc};
use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};
use std::sync::Arc;

use crate::error::{AppError, AppResult};
use crate::hub::SlotDoc;
use crate::storage::{Commit, Documents, Projection, Receipt};

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
    /// Refused, with why.
    Refused {
        /// The rule and the reason.
        refusal: Refusal,
        /// The changes refused (hex hashes).
        hashes: Vec<String>,
        /// The peer's sync state, when the server has the document.
        state: Option<sync::State>,
    },
    /// The server does not have the document (or the user may not see it), and the peer
    /// only asked for it.
    Unavailable,
    /// The peer is sending a document the server does not have: keep gathering.
    Gathering {
        /// What arrived so far.
        doc: Box<AutoCommit>,
        /// The peer's sync state with it.
        state: sync::State,
        /// What to ask the peer for next.
        reply: Option<sync::Message>,
    },
}

/// New changes the rule book allowed, before they are committed.
pub struct Candidate {
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
}

/// Handles one sync message for one document: `state` is the peer's sync state, `incoming`
/// what it sent so far of a document the server does not have.
pub fn receive(
    slot: &mut SlotDoc,
    state: Option<sync::State>,
    incoming: Option<(AutoCommit, sync::State)>,
    message: sync::Message,
    context: &Context,
) -> AppResult<Received> {
    slot.load(context.storage.as_ref(), context.case_id)?;
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
    let mut bytes = candidate.save_after(&before_heads);
    if injected(Bug::DropChange) && fresh.len() > 1 {
        bytes = fresh[..fresh.len() - 1]
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
    }
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
        let reply = next_message(&mut candidate, &mut candidate_state);
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

/// The change `edit` makes, judged; `None` when the user may not see the case.
pub type Edited<T> = Option<(T, Option<Box<Candidate>>)>;

/// Makes the change `edit` makes on a copy of the document, with `actor` (the user's
/// server-side actor), and judges it like any change arriving over sync.
pub fn change_in<T>(
    slot: &mut SlotDoc,
    storage: &dyn Documents,
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

/// The answer to a message once what it brought is committed: the server's next sync
/// message from the document as it now is, or, when changes had to wait for ones the
/// message skipped, the message that asks the peer for every change again.
pub fn answer(
    slot: &mut SlotDoc,
    mut state: sync::State,
    rewind: bool,
) -> (sync::State, Option<sync::Message>) {
    if rewind {
        return (state, Some(intake::rewind()));
    }
    let reply = slot.doc.as_mut().and_then(|d| next_message(d, &mut state));
    (state, reply)
}

/// What a peer syncing `case` is sent after someone else changed it: what is new, if
/// `author` may see the case.
pub fn changed(
    slot: &mut SlotDoc,
    storage: &dyn Documents,
    case: CaseId,
    author: &Author,
    mut state: sync::State,
) -> AppResult<(sync::State, Option<sync::Message>)> {
    slot.load(storage, case)?;
    let visible = slot
        .state
        .as_ref()
        .is_some_and(|s| rules::may_read(author, s.case()));
    let reply = match slot.doc.as_mut() {
        Some(d) if visible => next_message(d, &mut state),
        _ => None,
    };
    Ok((state, reply))
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
    /// The sync state with the peer once the candidate is committed, and whether the
    /// answer asks for every change again.
    pub fn answer_state(&self) -> (sync::State, bool) {
        (self.state.clone(), self.rewind)
    }

    /// Changes the candidate holds.
    pub fn changes(&self) -> usize {
        self.receipts.len()
    }

    /// What committing the candidate as `user_id` writes.
    pub fn committing(self, user_id: i64, case_id: CaseId) -> Committing {
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
                projection: Projection {
                    case: case.case().clone(),
                    conflicts,
                    blob_refs,
                    all_blob_refs: false,
                },
                user_id,
                receipts,
            },
            doc,
            case,
            conflicts,
        }
    }
}
