//! Judging received changes: who wrote each one (its signature, its device, the sender),
//! and whether the rule book lets that author make it. The server runs this on every sync
//! message and a phone on every message of a peer session, so a phone never accepts from a
//! teammate what the server will refuse.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::{AutoCommit, Change, ChangeHash, ExpandedChange};

use super::{Author, CaseState, Ops, Refusal, Rule, Trust, bytes_of, decides, judge, written};
use crate::signing::{ChangeSignature, PublicKey};
use crate::sync::intake;

/// What a verifier knows about the key a signature names.
#[derive(Debug, Clone)]
pub struct KeyHolder {
    /// The device (actor id, hex) the key belongs to.
    pub actor: String,
    /// The key.
    pub key: PublicKey,
    /// Its account, as the rule book knows it; `None` when the account is disabled.
    pub author: Option<Author>,
    /// Whether the device was revoked.
    pub revoked: bool,
}

/// The sender of a message, and what the verifier knows of the keys and devices behind
/// its changes.
pub trait Verifier {
    /// The holder of the key `signature.key` for the device `actor` (the change's), if the
    /// verifier knows the key.
    fn key(
        &mut self,
        signature: &ChangeSignature,
        actor: &str,
    ) -> Result<Option<KeyHolder>, Refusal>;
    /// Whether the verifier knows the device `actor` at all (a device it never heard of
    /// may still sign in; a known one signs only with the keys it registered).
    fn device_known(&mut self, actor: &str) -> Result<bool, Refusal>;
    /// The sender's account, when `actor` is the sender's own device and the verifier
    /// accepts unsigned changes from it (the server, from a device bound to the account
    /// signed in; never a phone from a peer, which proves nothing about who it is).
    fn own_device(&mut self, actor: &str) -> Result<Option<Author>, Refusal>;
    /// Whether a server this verifier trusts took `change` before its device was revoked
    /// (a phone holds the server's receipt of it). The server, which holds every change it
    /// ever took, never judges one of them again, so it answers no.
    fn taken_before_revocation(&mut self, _change: &ChangeHash) -> bool {
        false
    }
}

/// The author of `change`, or why it is accepted from no one:
///
/// - a change whose signature verifies against a key its own device holds is that
///   device's account's, whoever carries it, unless the device was revoked or the account
///   disabled (and the change not taken by the server before);
/// - a change signed with a key the verifier does not know waits (`held_back`) if its
///   device is unknown too, and is refused (`relay`) if the device is known;
/// - an unsigned change is accepted only from the sender's own device, as the sender's.
///
/// Either way the change's note names that author. Also says whether the signature
/// verified (an own device's change may come with a signature of a key not known yet).
pub fn author_of(
    change: &Change,
    signature: Option<&ChangeSignature>,
    verifier: &mut dyn Verifier,
) -> Result<(Author, bool), Refusal> {
    let actor = change.actor_id().to_hex_string();
    let note_by = crate::case_doc::author(change);
    if let Some(signature) = signature
        && let Some(holder) = verifier.key(signature, &actor)?
    {
        if holder.actor != actor || signature.verify(&holder.key).is_err() {
            return Err(Refusal::new(
                Rule::Relay,
                "修改的签名与其设备的密钥不符，未被接受 (the change's signature does not verify against its device's key)",
            ));
        }
        if holder.revoked && !verifier.taken_before_revocation(&change.hash()) {
            return Err(Refusal::new(
                Rule::Signature,
                format!(
                    "签名设备 {actor} 已被吊销，其修改未被接受 (the signing device was revoked)"
                ),
            ));
        }
        let Some(mut author) = holder.author else {
            return Err(Refusal::new(
                Rule::Signature,
                "签名设备的账号已停用，其修改未被接受 (the signer's account is disabled)",
            ));
        };
        super::note_names_author(&note_by, &author)?;
        author.key = Some(signature.key);
        return Ok((author, true));
    }
    match verifier.own_device(&actor)? {
        Some(sender) => {
            super::note_names_author(&note_by, &sender)?;
            Ok((sender, false))
        }
        None if signature.is_some() => {
            // Signed with a key the verifier never saw: by a device it does not know, it
            // waits for it; by a known device, it is not that device's key.
            if !verifier.device_known(&actor)? {
                return Err(held_back(&format!(
                    "签名设备 {actor} 的证书尚未核验，其修改待核验后再同步 (the signing device's key is not known yet; sync again once it is)"
                )));
            }
            Err(Refusal::new(
                Rule::Relay,
                format!(
                    "修改来自未绑定到您账号的设备 {actor}，其签名与该设备登记的密钥不符，未被接受 (the signature is not by a key of the change's device)"
                ),
            ))
        }
        None => Err(Refusal::new(
            Rule::Relay,
            format!(
                "修改来自未绑定到您账号的设备 {actor}，且没有可核验的签名，未被接受 (an unsigned change from a device not bound to your account)"
            ),
        )),
    }
}

/// Held back: the message needed more tries than one message may have (many refused
/// changes, or many runs).
fn too_many_trials() -> Refusal {
    held_back(
        "本次同步中需逐一核验的修改过多，其余修改将在下次同步时核验 (too many changes to judge one by one in one message; the rest are judged at the next sync)",
    )
}

/// A change left out for now, not refused: it waits for what would let it be verified
/// (its signer's key), and the device carrying it keeps it and sends it again.
pub fn held_back(reason: &str) -> Refusal {
    Refusal::new(Rule::HeldBack, reason)
}

/// How many times one call of [`judge_changes`] may apply changes to a copy of the
/// document to judge them. Each try copies the whole document: a message of thousands of
/// changes that are each refused, and so each tried alone, would otherwise copy it as
/// many times. Changes left when the tries run out are held back: the device carrying
/// them sends them again at its next sync, and each message judges as many more.
pub const TRIALS: usize = 64;

/// Refused changes grouped by their refusal, in the order first refused.
pub type RefusedChanges = (Refusal, Vec<String>);

/// What judging changes one author at a time came to.
pub struct Judged<S> {
    /// The document with the admitted changes.
    pub doc: AutoCommit,
    /// The case after them, when any were admitted.
    pub case: Option<CaseState>,
    /// The admitted changes, in causal order, with who wrote each.
    pub admitted: Vec<(Change, S)>,
    /// The refused ones (and those held back), by reason.
    pub refused: Vec<RefusedChanges>,
    /// Blob hashes the admitted changes name.
    pub blob_refs: BTreeSet<String>,
    /// Whether they wrote into a field in conflict (changes built one on another on
    /// everything the case held make no conflict, and are not asked: with none before,
    /// there is none after).
    pub touched_conflict: bool,
}

/// Who wrote a change, as the judge needs to know it.
pub trait Authored: Clone {
    /// The author, as the rule book knows them.
    fn author(&self) -> &Author;
}

impl Authored for Author {
    fn author(&self) -> &Author {
        self
    }
}

/// Judges `fresh` (in causal order) against `doc` (whose case is `before`, `None` for a
/// case new to the judge), each run of consecutive changes by one author, each built on
/// the one before alone, as that author's: a run the rule book allows is applied whole;
/// in a run it refuses, each change is judged alone. (A run is a chain, checked against
/// the document once at its start: a message of changes each built on more than the one
/// before makes as many runs, and the tries, [`TRIALS`], bound what it costs.) A refused
/// change, and every change built on it, is left out (a change built only on changes held
/// back is held back too); the rest are admitted.
pub fn judge_changes<S: Authored>(
    doc: &AutoCommit,
    before: Option<&CaseState>,
    fresh: Vec<Change>,
    decoded: &intake::Decoded,
    authors: Vec<Result<S, Refusal>>,
    limits: &intake::Limits,
    trust: &Trust<'_>,
) -> Judged<S> {
    let mut judging = Judging {
        doc: Cow::Borrowed(doc),
        case: before.cloned(),
        admitted: Vec::new(),
        refused: Vec::new(),
        dropped: HashMap::new(),
        blob_refs: BTreeSet::new(),
        touched_conflict: false,
        decoded,
        limits,
        trust,
        trials: TRIALS,
    };
    let mut run: Vec<(Change, S)> = Vec::new();
    for (change, author) in fresh.into_iter().zip(authors) {
        let continues = matches!(
            (&author, run.first(), run.last()),
            (Ok(signed), Some((_, first)), Some((last, _)))
                if signed.author() == first.author() && change.deps() == [last.hash()]
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
        doc: judging.doc.into_owned(),
        // Nothing admitted leaves the case as it was.
        case: judging.case.filter(|_| !judging.admitted.is_empty()),
        admitted: judging.admitted,
        refused: group(judging.refused),
        blob_refs: judging.blob_refs,
        touched_conflict: judging.touched_conflict,
    }
}

struct Judging<'a, S> {
    /// The document as judged so far: the one given, until a change is admitted (each try
    /// applies to a copy, so the given one is never copied twice).
    doc: Cow<'a, AutoCommit>,
    case: Option<CaseState>,
    admitted: Vec<(Change, S)>,
    refused: Vec<(Refusal, ChangeHash)>,
    /// Changes left out, and whether each only waits.
    dropped: HashMap<ChangeHash, bool>,
    blob_refs: BTreeSet<String>,
    touched_conflict: bool,
    decoded: &'a intake::Decoded,
    limits: &'a intake::Limits,
    trust: &'a Trust<'a>,
    /// Tries left (`TRIALS`).
    trials: usize,
}

impl<S: Authored> Judging<'_, S> {
    /// Applies a run of one author's changes whole if the rule book allows it, or else
    /// each change alone.
    fn run(&mut self, run: Vec<(Change, S)>) {
        if run.is_empty() {
            return;
        }
        if self.trials == 0 {
            for (change, _) in &run {
                self.drop(change, too_many_trials());
            }
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
                    if self.trials == 0 {
                        self.drop(&change, too_many_trials());
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
    fn try_apply(&mut self, run: &[(Change, S)]) -> Result<(), Refusal> {
        self.trials -= 1;
        let changes: Vec<Change> = run.iter().map(|(c, _)| c.clone()).collect();
        let expanded: Vec<Cow<'_, ExpandedChange>> =
            changes.iter().map(|c| self.decoded.of(c)).collect();
        let author = run[0].1.author();
        let mut trial = self.doc.as_ref().clone();
        let heads = trial.get_heads();
        let room = Room::of(author, self.case.as_ref(), self.limits);
        // Counted once per case read (a refused try keeps the count too).
        let history = match self.case.as_mut() {
            Some(case) => *case
                .history
                .get_or_insert_with(|| history_bytes(&mut trial)),
            None => history_bytes(&mut trial),
        } + bytes_of(&changes);
        within_bytes(history, room)?;
        written::apply_expanded(&mut trial, &changes, &expanded)
            .and_then(|()| within_size(&trial, room))?;
        let ops = Ops::of_expanded(&trial, &expanded)?;
        let after = match &self.case {
            Some(before) => before.after(&trial, &ops),
            None => CaseState::of_stored(&trial),
        }
        .map_err(not_a_case)?;
        judge(author, self.case.as_ref(), &after, &ops, self.trust)?;
        // Changes built one on another on everything the case held write over every
        // value they find: they can end a conflict but make none.
        let builds_on_all = changes[0].deps().iter().collect::<HashSet<_>>()
            == heads.iter().collect()
            && written::is_chain(&changes);
        self.touched_conflict |= !builds_on_all && ops.touch_a_conflict(&trial);
        self.blob_refs.extend(ops.blob_refs());
        self.doc = Cow::Owned(trial);
        self.case = Some(CaseState {
            history: Some(history),
            ..after
        });
        self.admitted.extend(run.iter().cloned());
        Ok(())
    }

    fn depends_on_dropped(&self, change: &Change) -> bool {
        change.deps().iter().any(|d| self.dropped.contains_key(d))
    }

    /// Leaves a change out: refused, or waiting (`Rule::HeldBack`).
    fn drop(&mut self, change: &Change, refusal: Refusal) {
        let waits = refusal.rule == Rule::HeldBack;
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
            held_back(
                "依赖尚待核验签名的修改，暂未接受 (builds on a change whose signer is not verified yet)",
            )
        } else {
            Refusal::new(
                Rule::Dependency,
                "依赖被拒绝的修改，未被接受 (builds on a refused change)",
            )
        };
        self.drop(change, refusal);
    }
}

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

/// What a change may leave a case holding: the operations and bytes of the limits, the
/// whole of them for a change by one who decides the case (and for the server's own acts),
/// all but a sixteenth for everyone else. A case its writers fill to the brim still takes
/// its review, the closing of its hazards and its documents' numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    ops: u64,
    bytes: u64,
}

impl Room {
    /// The whole of the limits.
    pub fn whole(limits: &intake::Limits) -> Room {
        Room {
            ops: limits.case_ops,
            bytes: limits.case_bytes,
        }
    }

    /// The room a change by `author` has in `case` (`None`: a case new to the judge).
    pub fn of(author: &Author, case: Option<&CaseState>, limits: &intake::Limits) -> Room {
        let whole = Room::whole(limits);
        if case.is_some_and(|c| decides(author, &c.case.district)) {
            return whole;
        }
        Room {
            ops: whole.ops - whole.ops / DECIDERS_SHARE,
            bytes: whole.bytes - whole.bytes / DECIDERS_SHARE,
        }
    }
}

/// The share of a case's limits (one in this many) kept for those who decide it.
const DECIDERS_SHARE: u64 = 16;

/// A case holds at most the operations its room allows (a hostile device could otherwise
/// grow one change at a time what every reader of the case loads).
fn within_size(doc: &AutoCommit, room: Room) -> Result<(), Refusal> {
    let ops = automerge::ReadDoc::stats(doc).num_ops;
    if ops > room.ops {
        return Err(Refusal::new(
            Rule::Shape,
            format!(
                "案件记录过大（{ops} 项操作，上限 {}），请新建关联案件 (the case would hold more operations than allowed)",
                room.ops
            ),
        ));
    }
    Ok(())
}

/// `after`, the case `doc` holds, within `room`: for changes made outside the sync path
/// (the server's own, from the supervisors' pages and the API). The bytes are counted from
/// `doc` when `after`'s were not (`CaseState::grown_by`), and kept with it.
pub fn within_limits(
    doc: &mut AutoCommit,
    after: CaseState,
    room: Room,
) -> Result<CaseState, Refusal> {
    within_size(doc, room)?;
    let history = after.history.unwrap_or_else(|| history_bytes(doc));
    within_bytes(history, room)?;
    Ok(CaseState {
        history: Some(history),
        ..after
    })
}

/// The bytes of every change `doc` holds (`bytes_of`). Counting reads every change again,
/// so the judge keeps the count with the case (`CaseState`) and counts afresh only for a
/// case read from storage.
fn history_bytes(doc: &mut AutoCommit) -> u64 {
    bytes_of(&doc.get_changes(&[]))
}

/// A case's changes hold at most the bytes its room allows: a change of values of the
/// largest size, again and again, would otherwise grow without end what every reader of
/// the case loads.
fn within_bytes(history: u64, room: Room) -> Result<(), Refusal> {
    if history > room.bytes {
        return Err(Refusal::new(
            Rule::Shape,
            format!(
                "案件记录过大（修改共 {history} 字节，上限 {} 字节），请新建关联案件 (the case's changes would hold more bytes than allowed)",
                room.bytes
            ),
        ));
    }
    Ok(())
}

/// The refusal for changes that leave no readable case.
pub fn not_a_case(e: crate::Error) -> Refusal {
    Refusal::new(
        Rule::Shape,
        format!("不是有效的检查记录 (not a valid case document): {e}"),
    )
}
