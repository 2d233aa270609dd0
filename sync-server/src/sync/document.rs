//! One sync message (or one server-side change) for one document, without I/O: checked
//! against the wire's limits, its senders checked, applied on a copy through the rule
//! book's `apply`, judged, and handed back as a `Candidate` to commit. The drivers (the
//! WebSocket's on the apply threads, the simulation's on its own) run these functions on
//! the document under its lock and commit what they return.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anjian_core::injected::{Bug, injected};
use anjian_core::rules::{self, Author, CaseState, Ops, Refusal};
use anjian_core::signing::{ChangeSignature, KeyId};
use anjian_core::sync::intake::{self, IntakeError};
use anjian_core::sync::next_message;
use anjian_core::{CaseId, case_doc};
use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};

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
    /// Every new change refused, with why.
    Refused {
        /// The refusals, each with the changes it refused.
        refused: Vec<RefusedChanges>,
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

/// Signatures a peer sent, by the hash of the change each signs.
pub type Signatures = HashMap<ChangeHash, ChangeSignature>;

/// Changes refused for one reason: the refusal, and the changes (hex hashes).
pub type RefusedChanges = (Refusal, Vec<String>);

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
}

/// Handles one sync message for one document: `state` is the peer's sync state, `incoming`
/// what it sent so far of a document the server does not have, `signatures` what it sent
/// of its changes' signatures.
pub fn receive(
    slot: &mut SlotDoc,
    state: Option<sync::State>,
    incoming: Option<(AutoCommit, sync::State)>,
    message: sync::Message,
    signatures: &Signatures,
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
    let received = if visible {
        let state = state.unwrap_or_default();
        receive_visible(slot, state, checked, signatures, context)?
    } else {
        receive_unknown(slot, incoming, checked, asks_only, signatures, context)?
    };
    keep_refusals(context, &received)?;
    Ok(received)
}

/// Keeps every refusal before the peer hears of it: a refusal is final. Not kept: what is
/// only held back, and a relay the carrier could not vouch for (the author's own device
/// may still deliver the change).
fn keep_refusals(context: &Context, received: &Received) -> AppResult<()> {
    let groups = match received {
        Received::Refused { refused, .. } => refused.as_slice(),
        Received::Commit(candidate) => candidate.refused.as_slice(),
        _ => return Ok(()),
    };
    let refused: Vec<(String, Refusal)> = groups
        .iter()
        .filter(|(refusal, _)| !matches!(refusal.rule, rules::Rule::HeldBack | rules::Rule::Relay))
        .flat_map(|(refusal, hashes)| hashes.iter().map(|h| (h.clone(), refusal.clone())))
        .collect();
    context.storage.record_refusals(context.case_id, &refused)
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
    if let Err(e) = intake::check_depth(doc, &fresh, context.wire.depth) {
        return Ok(refused(limit(e), &fresh, Some(state)));
    }
    let authors = authors(context, &fresh, signatures);
    let judged = judge_changes(doc, Some(before), fresh, authors, &context.wire);
    let Some(after) = judged.case else {
        return Ok(Received::Refused {
            refused: judged.refused,
            state: Some(state),
        });
    };
    let before_heads = doc.get_heads();
    let Judged {
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
        candidate
            .sync()
            .receive_sync_message(&mut moved, admitted.message)
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
        &applied,
        (blob_refs, touched_conflict),
        slot.conflicts,
    );
    commit.rewind = rewind;
    commit.refused = refusals;
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
    signatures: &Signatures,
    context: &Context,
) -> AppResult<Received> {
    let (mut gathered, mut gathered_state) =
        incoming.unwrap_or_else(|| (AutoCommit::new(), sync::State::new()));
    let admitted = intake::admit(&gathered, checked);
    let fresh = admitted.changes;
    if let Err(e) = intake::check_depth(&gathered, &fresh, context.wire.depth) {
        return Ok(refused(limit(e), &fresh, None));
    }
    if let Err(refusal) =
        rules::apply(&mut gathered, &fresh).and_then(|()| within_size(&gathered, &context.wire))
    {
        return Ok(refused(refusal, &fresh, None));
    }
    gathered
        .sync()
        .receive_sync_message(&mut gathered_state, admitted.message)
        .map_err(unreadable)?;
    if gathered.get_heads().is_empty() {
        if asks_only {
            return Ok(Received::Unavailable);
        }
        let reply = next_message(&mut gathered, &mut gathered_state);
        return Ok(Received::Gathering {
            doc: Box::new(gathered),
            state: gathered_state,
            reply,
        });
    }
    // Everything gathered so far is judged as one new case, each change as its author's.
    let applied = gathered.get_changes(&[]);
    if slot.doc.is_some() {
        // It exists but is not this user's to see: refuse as if it were a new case
        // outside the jurisdiction, which is what the sender's copy claims to be.
        return Ok(refused(rules::jurisdiction(), &applied, None));
    }
    let authors = authors(context, &applied, signatures);
    let judged = judge_changes(&AutoCommit::new(), None, applied, authors, &context.wire);
    let Some(after) = judged.case else {
        return Ok(Received::Refused {
            refused: judged.refused,
            state: None,
        });
    };
    let Judged {
        doc: mut candidate,
        admitted: applied,
        refused: refusals,
        blob_refs,
        touched_conflict,
        ..
    } = judged;
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
        &applied,
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

/// The author of each change, or why the server accepts it from no one:
///
/// - a change the server refused before is refused again, for the same reason, whoever
///   carries it and whenever (a refusal is final: the device that made it dropped it, and
///   may reuse its number);
/// - a change whose signature verifies against a key its own device registered is that
///   device's user's, whichever connection carries it, unless the device was revoked or
///   its account disabled;
/// - a change signed with a key the server never saw waits (held back) if its device never
///   signed in, and is refused (`relay`) if the device is known;
/// - an unsigned change is accepted only from the sender's own bound device, as the
///   sender's.
///
/// Either way the change's note names that author.
fn authors(
    context: &Context,
    changes: &[Change],
    signatures: &Signatures,
) -> Vec<Result<Signed, Refusal>> {
    let mut keys: HashMap<KeyId, Option<crate::storage::DeviceKey>> = HashMap::new();
    let mut accounts: HashMap<i64, Option<Author>> = HashMap::new();
    let mut owners: HashMap<String, Option<i64>> = HashMap::new();
    // A storage error holds the change back: the device sends it again.
    let unverifiable = |e: AppError| awaiting(&format!("服务器暂时无法核验设备 ({e})"));
    changes
        .iter()
        .map(|change| {
            if let Some(refusal) = context
                .storage
                .refused_before(&change.hash())
                .map_err(unverifiable)?
            {
                return Err(refusal);
            }
            let actor = change.actor_id().to_hex_string();
            let note_by = case_doc::author(change);
            let signature = signatures.get(&change.hash());
            if let Some(signature) = signature {
                let key = match keys.get(&signature.key) {
                    Some(key) => key.clone(),
                    None => {
                        let key = context
                            .storage
                            .device_key(&signature.key)
                            .map_err(unverifiable)?;
                        keys.insert(signature.key, key.clone());
                        key
                    }
                };
                if let Some(key) = key {
                    if key.actor != actor || signature.verify(&key.key).is_err() {
                        return Err(Refusal::new(
                            rules::Rule::Relay,
                            "修改的签名与其设备的密钥不符，未被接受 (the change's signature does not verify against its device's key)",
                        ));
                    }
                    if key.revoked {
                        return Err(Refusal::new(
                            rules::Rule::Signature,
                            format!(
                                "签名设备 {actor} 已被吊销，其修改未被接受 (the signing device was revoked)"
                            ),
                        ));
                    }
                    let author = if key.user_id == context.user_id {
                        Some(context.author.clone())
                    } else {
                        match accounts.get(&key.user_id) {
                            Some(author) => author.clone(),
                            None => {
                                let author =
                                    context.storage.author(key.user_id).map_err(unverifiable)?;
                                accounts.insert(key.user_id, author.clone());
                                author
                            }
                        }
                    };
                    let Some(author) = author else {
                        return Err(Refusal::new(
                            rules::Rule::Signature,
                            "签名设备的账号已停用，其修改未被接受 (the signer's account is disabled)",
                        ));
                    };
                    rules::note_names_author(&note_by, &author)?;
                    return Ok(Signed {
                        author,
                        user_id: key.user_id,
                        signature: Some(signature.clone()),
                    });
                }
            }
            let owner = match owners.get(&actor) {
                Some(owner) => *owner,
                None => {
                    let owner = context.storage.actor_owner(&actor).map_err(unverifiable)?;
                    owners.insert(actor.clone(), owner);
                    owner
                }
            };
            if owner != Some(context.user_id) && signature.is_some() {
                // Signed with a key the server never saw: by a device that never signed
                // in, it waits for it; by a known device, it is not that device's key.
                if !context.storage.device_known(&actor).map_err(unverifiable)? {
                    return Err(awaiting(&format!(
                        "签名设备 {actor} 尚未登录过服务器，其修改待该设备登录后再同步 (the signing device has not signed in yet; sync again after it has)"
                    )));
                }
                return Err(Refusal::new(
                    rules::Rule::Relay,
                    format!(
                        "修改来自未绑定到您账号的设备 {actor}，其签名与该设备登记的密钥不符，未被接受 (the signature is not by a key of the change's device)"
                    ),
                ));
            }
            if owner != Some(context.user_id) {
                return Err(Refusal::new(
                    rules::Rule::Relay,
                    format!(
                        "修改来自未绑定到您账号的设备 {actor}，且没有可核验的签名，未被接受 (an unsigned change from a device not bound to your account)"
                    ),
                ));
            }
            rules::note_names_author(&note_by, &context.author)?;
            Ok(Signed {
                author: context.author.clone(),
                user_id: context.user_id,
                signature: None,
            })
        })
        .collect()
}

/// What judging a message's changes one author at a time came to.
struct Judged {
    /// The document with the admitted changes.
    doc: AutoCommit,
    /// The case after them, when any were admitted.
    case: Option<CaseState>,
    /// The admitted changes, in causal order, with their authors.
    admitted: Vec<(Change, Signed)>,
    /// The refused ones, by reason.
    refused: Vec<RefusedChanges>,
    /// Blob hashes the admitted changes name.
    blob_refs: BTreeSet<String>,
    /// Whether they wrote into a field in conflict.
    touched_conflict: bool,
}

/// Judges `fresh` (in causal order) against `doc` (whose case is `before`, `None` for a
/// case new to the server), each run of consecutive changes by one author as that
/// author's: a run the rule book allows is applied whole; in a run it refuses, each change
/// is judged alone. A refused change, and every change built on it, is left out; the rest
/// are admitted.
fn judge_changes(
    doc: &AutoCommit,
    before: Option<&CaseState>,
    fresh: Vec<Change>,
    authors: Vec<Result<Signed, Refusal>>,
    limits: &intake::Limits,
) -> Judged {
    let mut judging = Judging {
        doc: doc.clone(),
        case: before.cloned(),
        admitted: Vec::new(),
        refused: Vec::new(),
        dropped: HashMap::new(),
        blob_refs: BTreeSet::new(),
        touched_conflict: false,
        limits,
    };
    let mut run: Vec<(Change, Signed)> = Vec::new();
    for (change, author) in fresh.into_iter().zip(authors) {
        let continues = matches!(
            (&author, run.first()),
            (Ok(signed), Some((_, first))) if signed.user_id == first.user_id
        );
        if !continues && !run.is_empty() {
            judging.run(std::mem::take(&mut run));
        }
        if judging.depends_on_dropped(&change) {
            judging.drop_dependent(&change);
            continue;
        }
        match author {
            Ok(signed) => run.push((change, signed)),
            Err(refusal) => judging.drop(&change, refusal),
        }
    }
    judging.run(run);
    Judged {
        doc: judging.doc,
        // Nothing admitted leaves the case as it was.
        case: judging.case.filter(|_| !judging.admitted.is_empty()),
        admitted: judging.admitted,
        refused: group(judging.refused),
        blob_refs: judging.blob_refs,
        touched_conflict: judging.touched_conflict,
    }
}

struct Judging<'a> {
    doc: AutoCommit,
    case: Option<CaseState>,
    admitted: Vec<(Change, Signed)>,
    refused: Vec<(Refusal, ChangeHash)>,
    /// Changes left out, and whether each only waits.
    dropped: HashMap<ChangeHash, bool>,
    blob_refs: BTreeSet<String>,
    touched_conflict: bool,
    limits: &'a intake::Limits,
}

impl Judging<'_> {
    /// Applies a run of one author's changes whole if the rule book allows it, or else
    /// each change alone.
    fn run(&mut self, run: Vec<(Change, Signed)>) {
        if run.is_empty() {
            return;
        }
        match self.try_apply(&run) {
            Ok(()) => {}
            Err(refusal) if run.len() == 1 => {
                let (change, _) = &run[0];
                self.drop(change, refusal);
            }
            Err(_) => {
                for (change, signed) in run {
                    if self.depends_on_dropped(&change) {
                        self.drop_dependent(&change);
                        continue;
                    }
                    if let Err(refusal) = self.try_apply(&[(change.clone(), signed)]) {
                        self.drop(&change, refusal);
                    }
                }
            }
        }
    }

    /// Applies changes of one author on a copy, judges them, and keeps the copy if the
    /// rule book allows them.
    fn try_apply(&mut self, run: &[(Change, Signed)]) -> Result<(), Refusal> {
        let changes: Vec<Change> = run.iter().map(|(c, _)| c.clone()).collect();
        let author = &run[0].1.author;
        let mut trial = self.doc.clone();
        rules::apply(&mut trial, &changes).and_then(|()| within_size(&trial, self.limits))?;
        let ops = Ops::of(&trial, &changes)?;
        let after = match &self.case {
            Some(before) => before.after(&trial, &ops),
            None => CaseState::of_stored(&trial),
        }
        .map_err(invalid)?;
        rules::judge(author, self.case.as_ref(), &after, &ops)?;
        self.touched_conflict |= ops.touch_a_conflict(&trial);
        self.blob_refs.extend(ops.blob_refs());
        self.doc = trial;
        self.case = Some(after);
        self.admitted.extend(run.iter().cloned());
        Ok(())
    }

    fn depends_on_dropped(&self, change: &Change) -> bool {
        change.deps().iter().any(|d| self.dropped.contains_key(d))
    }

    /// Leaves a change out: refused, or waiting for its signer (`Rule::HeldBack`).
    fn drop(&mut self, change: &Change, refusal: Refusal) {
        let waits = refusal.rule == rules::Rule::HeldBack;
        self.dropped.insert(change.hash(), waits);
        self.refused.push((refusal, change.hash()));
    }

    /// Leaves out a change built on one left out: it waits if everything it builds on that
    /// was left out waits, and is refused otherwise.
    fn drop_dependent(&mut self, change: &Change) {
        let waits = change
            .deps()
            .iter()
            .all(|d| self.dropped.get(d).is_none_or(|waits| *waits));
        let refusal = if waits {
            awaiting(
                "依赖尚待核验签名的修改，暂未接受 (builds on a change whose signer has not signed in yet)",
            )
        } else {
            Refusal::new(
                rules::Rule::Dependency,
                "依赖被拒绝的修改，未被接受 (builds on a refused change)",
            )
        };
        self.drop(change, refusal);
    }
}

/// The answer for a change that waits for its signer to sign in (not a refusal: the
/// device carrying it keeps it and sends it again).
fn awaiting(reason: &str) -> Refusal {
    Refusal::new(rules::Rule::HeldBack, reason)
}

/// Refused changes grouped by their refusal, in the order first refused.
fn group(refused: Vec<(Refusal, ChangeHash)>) -> Vec<RefusedChanges> {
    let mut groups: Vec<RefusedChanges> = Vec::new();
    for (refusal, hash) in refused {
        match groups.iter_mut().find(|(r, _)| *r == refusal) {
            Some((_, hashes)) => hashes.push(hash.to_string()),
            None => groups.push((refusal, vec![hash.to_string()])),
        }
    }
    groups
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
    applied: &[(Change, Signed)],
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
        receipts: applied
            .iter()
            .map(|(change, signed)| Receipt {
                hash: change.hash().to_string(),
                actor: change.actor_id().to_hex_string(),
                device_time: change.timestamp(),
                author: signed.user_id,
                signature: signed.signature.clone(),
            })
            .collect(),
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

fn refused(refusal: Refusal, changes: &[Change], state: Option<sync::State>) -> Received {
    Received::Refused {
        refused: vec![(
            refusal,
            changes.iter().map(|c| c.hash().to_string()).collect(),
        )],
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

/// Makes the change `edit` makes on a copy of the document as the account `user_id`, with
/// `actor` (the user's server-side actor), and judges it like any change arriving over
/// sync.
pub fn change_in<T>(
    slot: &mut SlotDoc,
    storage: &dyn Documents,
    case_id: CaseId,
    author: &Author,
    user_id: i64,
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
    let touched = (ops.blob_refs(), ops.touch_a_conflict(&candidate));
    let signed = Signed {
        author: author.clone(),
        user_id,
        signature: None,
    };
    let applied: Vec<(Change, Signed)> = applied.into_iter().map(|c| (c, signed.clone())).collect();
    let commit = commit_of(
        candidate,
        after,
        sync::State::new(),
        bytes,
        false,
        &applied,
        touched,
        slot.conflicts,
    );
    Ok(Some((value, Some(Box::new(commit)))))
}

/// A sync message to send, with the signatures of its changes (when the peer reads them).
pub type Outgoing = (sync::State, Option<sync::Message>, Vec<ChangeSignature>);

/// The answer to a message once what it brought is committed: the server's next sync
/// message from the document as it now is, or, when changes had to wait for ones the
/// message skipped, the message that asks the peer for every change again.
pub fn answer(
    slot: &mut SlotDoc,
    storage: &dyn Documents,
    mut state: sync::State,
    rewind: bool,
    with_signatures: bool,
) -> AppResult<Outgoing> {
    if rewind {
        return Ok((state, Some(intake::rewind()), Vec::new()));
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
    let visible = slot
        .state
        .as_ref()
        .is_some_and(|s| rules::may_read(author, s.case()));
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
