//! Entering again what a refusal took with it.
//!
//! Every Automerge change depends on the changes its device held when it was made, so a
//! refused change takes with it every later change of its case on the device, though
//! most of them (the next findings, the next answers) need nothing of it. When the server
//! refuses a change, the device rebuilds the case without the refused changes and what
//! builds on them, then enters each of its own dropped changes again on top of that, as a
//! new change by the same device with the same time and note:
//!
//! - its dependencies are the old ones as they stand now (a change entered again stands
//!   for itself, one that is gone for what it depended on), and the device's last change
//!   in the case, as for every change a device makes;
//! - a map write replaces exactly the values its key holds at those dependencies (what the
//!   refused change had written is gone, so what it replaced is back), so what was
//!   concurrent stays concurrent and shows as a conflict; a write into a key that holds a
//!   value the old change never saw, written since and seen by the device's last change
//!   (a change entered by hand or after waiting comes after it), is left out and said,
//!   since replacing that value would settle silently what was concurrent;
//! - a list element inserted after one the refused changes inserted goes after the
//!   element that one was inserted after;
//! - an operation in an object the refused changes made has nowhere to go and is left
//!   out, as is a deletion of something they made (nothing is left to delete).
//!
//! Each change made so is checked and judged by the rule book like any edit on the
//! device, and left out if the rule book refuses it now. Its note names the change it
//! enters again (`ChangeNote::again`), so that every device that held the old one can
//! follow its records into the new one. Changes of other devices (merged on site) are not
//! entered again here: their own devices do that when the server refuses the change to
//! them. A change of this device that wrote into records of such a change waits until
//! that change's device has entered it again, then goes into the new records
//! (`enter_one`, with what the case's notes say, `entered_again`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::num::NonZeroU64;

use automerge::legacy::{ElementId, Key, ObjectId, Op, OpId, OpType, SortedVec};
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ExpandedChange, ReadDoc};

use crate::document;
use crate::rules::{self, Author, CaseState, Refusal, Rule, Trust};

/// What became of a change dropped with a refused one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Refused itself.
    Refused,
    /// Entered again, whole, as the change given.
    Entered(ChangeHash),
    /// Entered again as the change given, without the operations that wrote into what
    /// the refused changes made.
    Partly(ChangeHash),
    /// Not entered again: another device's change, one with nothing that stands without
    /// the refused changes, or one the rule book refuses now.
    Lost,
}

/// The case after re-entry, and the fate of each dropped change (in their order).
pub(crate) struct Reentered {
    pub doc: AutoCommit,
    pub fates: Vec<(Change, Fate)>,
}

/// Enters again, on `kept` (the case without the dropped changes), each of `dropped` (in
/// causal order) that `actor` made and that is not in `refused`, as `author` with `trust`.
pub(crate) fn reenter(
    kept: AutoCommit,
    dropped: Vec<Change>,
    refused: &BTreeSet<ChangeHash>,
    actor: &ActorId,
    author: &Author,
    trust: &Trust<'_>,
) -> Reentered {
    let mut doc = kept;
    let mut fates = Vec::with_capacity(dropped.len());
    // A case that no longer reads (it cannot happen to one the device judged) takes
    // nothing back.
    let mut before = CaseState::of_stored(&doc).ok();
    let mut rebase = Rebase::of(&mut doc, actor);
    for change in dropped {
        let expanded = change.decode();
        let fate = match &mut before {
            Some(case) if change.actor_id() == actor && !refused.contains(&change.hash()) => {
                match rebase.enter(&mut doc, &expanded, &[], case, author, trust) {
                    Ok((hash, false)) => Some(Fate::Entered(hash)),
                    Ok((hash, true)) => Some(Fate::Partly(hash)),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        let fate = match fate {
            Some(fate) => fate,
            None => {
                rebase.forget(&expanded);
                if refused.contains(&change.hash()) {
                    Fate::Refused
                } else {
                    Fate::Lost
                }
            }
        };
        fates.push((change, fate));
    }
    Reentered { doc, fates }
}

/// Enters again on `doc` `change`: a change of `actor` dropped on a refusal and not
/// entered again then, or only in part (refused itself, refused by the rule book when
/// the device tried, or written into records of another device's change that was dropped
/// too). `dropped` holds every change of the case dropped on refusals (`change` among
/// them), and `again` the change this device entered each one again as (the last, when
/// in parts). A dropped change that is in the case again under new changes (this
/// device's, by `again`, in turn if that one was dropped and entered again too; or its
/// own device's, by their notes) has its records there: an operation of `change` into
/// them goes into them, the new change builds on them, and an operation of `change`
/// itself already entered again is not entered twice. What the other dropped changes
/// `change` built on made counts as gone, and an operation of `change` into it is left
/// out. Returns the case with the new change, the new change, and whether operations of
/// it were left out.
pub(crate) fn enter_one(
    mut doc: AutoCommit,
    change: &Change,
    dropped: &[Change],
    again: &HashMap<ChangeHash, ChangeHash>,
    actor: &ActorId,
    author: &Author,
    trust: &Trust<'_>,
) -> Result<(AutoCommit, ChangeHash, bool), Refusal> {
    let mut case = CaseState::of_stored(&doc).map_err(rules::not_a_case)?;
    let mut rebase = Rebase::of(&mut doc, actor);
    if rebase.graph.contains_key(&change.hash()) {
        return Err(Refusal::new(
            Rule::Dependency,
            "该修改已在案件中 (the change is in the case again)",
        ));
    }
    let by_hash: HashMap<ChangeHash, &Change> = dropped.iter().map(|c| (c.hash(), c)).collect();
    let holders = holders(&mut doc, &by_hash, again, &rebase.graph);
    // Where the operations of its history stand: those of the dropped changes it built on
    // (and its own) are where the changes that hold them again put them, or gone. Only
    // its history is read, oldest first: a change entered again takes the operation
    // numbers dropped ones had, so an id alone does not tell, but within one history each
    // id is one operation.
    let mut history = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = change.deps().to_vec();
    while let Some(hash) = stack.pop() {
        if !seen.insert(hash) || rebase.graph.contains_key(&hash) {
            continue;
        }
        if let Some(gone) = by_hash.get(&hash) {
            history.push(*gone);
            stack.extend(gone.deps().iter().copied());
        }
    }
    let mut also: Vec<ChangeHash> = Vec::new();
    for gone in in_causal_order(history).into_iter().chain([change]) {
        let news = holders.get(&gone.hash()).map_or(&[][..], Vec::as_slice);
        rebase.follow(&gone.decode(), news);
        also.extend(news.iter().map(Change::hash));
    }
    // What stands for each dropped change: the changes that hold it again, or (never
    // entered again) what it depended on, in turn; the refusals come in no order.
    let mut open: Vec<&Change> = dropped.iter().collect();
    loop {
        let before = open.len();
        let mut i = 0;
        while i < open.len() {
            let gone = open[i];
            let known = |hash: &ChangeHash| {
                rebase.graph.contains_key(hash) || rebase.stands_for.contains_key(hash)
            };
            let now = match holders.get(&gone.hash()) {
                Some(news) => {
                    let news: Vec<ChangeHash> = news.iter().map(Change::hash).collect();
                    Some(rebase.deps(&news))
                }
                None => gone
                    .deps()
                    .iter()
                    .all(known)
                    .then(|| rebase.deps(gone.deps())),
            };
            match now {
                Some(now) => {
                    rebase.stands_for.insert(gone.hash(), now);
                    open.swap_remove(i);
                }
                None => i += 1,
            }
        }
        if open.len() == before {
            break;
        }
    }
    let (hash, partly) =
        rebase.enter(&mut doc, &change.decode(), &also, &mut case, author, trust)?;
    Ok((doc, hash, partly))
}

/// The changes in `doc` (whose change graph is `graph`) that hold each of the `dropped`
/// changes again, in the order their device made them: this device's by `again`, followed
/// through changes of its own dropped and entered again in turn, and every device's own by
/// their notes.
fn holders(
    doc: &mut AutoCommit,
    dropped: &HashMap<ChangeHash, &Change>,
    again: &HashMap<ChangeHash, ChangeHash>,
    graph: &HashMap<ChangeHash, Vec<ChangeHash>>,
) -> HashMap<ChangeHash, Vec<Change>> {
    let mut holders: HashMap<ChangeHash, Vec<Change>> = HashMap::new();
    let mut hold = |old: ChangeHash, new: Change| {
        let news = holders.entry(old).or_default();
        if !news.iter().any(|n| n.hash() == new.hash()) {
            news.push(new);
        }
    };
    for (old, new) in again {
        let mut now = *new;
        // Each step is a change entered again by a later one: at most one per row.
        for _ in 0..=again.len() {
            if graph.contains_key(&now) {
                if let Some(new) = doc.get_change_by_hash(&now) {
                    hold(*old, new);
                }
                break;
            }
            match again.get(&now) {
                Some(next) => now = *next,
                None => break,
            }
        }
    }
    for (old, new) in entered_again(doc) {
        // Only a change's own device enters it again.
        if dropped
            .get(&old)
            .is_some_and(|c| c.actor_id() == new.actor_id())
        {
            hold(old, new);
        }
    }
    for news in holders.values_mut() {
        news.sort_by_key(Change::seq);
    }
    holders
}

/// `changes` in an order in which each comes after those of them it depends on.
fn in_causal_order(changes: Vec<&Change>) -> Vec<&Change> {
    let mut left: HashMap<ChangeHash, &Change> = changes.iter().map(|c| (c.hash(), *c)).collect();
    let mut ordered = Vec::with_capacity(changes.len());
    while !left.is_empty() {
        let ready: Vec<ChangeHash> = left
            .values()
            .filter(|c| c.deps().iter().all(|d| !left.contains_key(d)))
            .map(|c| c.hash())
            .collect();
        if ready.is_empty() {
            // Dependencies never go round; should they, the rest comes as it is.
            ordered.extend(left.into_values());
            break;
        }
        for hash in ready {
            ordered.extend(left.remove(&hash));
        }
    }
    ordered
}

/// Where the dropped changes' operations and dependencies stand in the rebuilt case.
struct Rebase<'a> {
    actor: &'a ActorId,
    /// The actor's last change number in the case.
    seq: u64,
    /// The actor's last change in the case: a change entered again builds on it, as
    /// Automerge's own changes build on their actor's last one (an actor's change whose
    /// last one it does not hold makes a document that no longer loads once that last one
    /// goes, on a later refusal, and that Automerge panics rebuilding).
    last: Option<ChangeHash>,
    /// The largest operation counter in the case.
    max_op: u64,
    /// Each operation entered again, and its new id.
    moved: HashMap<OpId, OpId>,
    /// Operations not in the case: of changes not entered again, or left out of one that
    /// was.
    gone: HashSet<OpId>,
    /// For each gone insertion, the element it was inserted after.
    inserted_after: HashMap<OpId, ElementId>,
    /// For each dropped change, what stands for it in the case: the changes that hold it
    /// again, or (gone) what it depended on.
    stands_for: HashMap<ChangeHash, Vec<ChangeHash>>,
    /// Each change in the case, and what it depends on.
    graph: HashMap<ChangeHash, Vec<ChangeHash>>,
}

impl<'a> Rebase<'a> {
    fn of(doc: &mut AutoCommit, actor: &'a ActorId) -> Rebase<'a> {
        let (mut seq, mut max_op, mut last) = (0, 0, None);
        let mut graph = HashMap::new();
        for meta in doc.get_changes_meta(&[]) {
            max_op = max_op.max(meta.max_op);
            if meta.actor.as_ref() == actor && meta.seq > seq {
                seq = meta.seq;
                last = Some(meta.hash);
            }
            graph.insert(meta.hash, meta.deps);
        }
        Rebase {
            actor,
            seq,
            last,
            max_op,
            moved: HashMap::new(),
            gone: HashSet::new(),
            inserted_after: HashMap::new(),
            stands_for: HashMap::new(),
            graph,
        }
    }

    /// Records a dropped change that is not entered again.
    fn forget(&mut self, change: &ExpandedChange) {
        for (i, op) in change.operations.iter().enumerate() {
            self.forget_op(nth(change, i), op);
        }
        let deps = self.deps(&change.deps);
        self.stands_for
            .insert(change.hash.expect("decoded changes are hashed"), deps);
    }

    /// Records where the operations of `old`, a dropped change, are now: in the changes
    /// that hold it again (`news`, in the order they were made), or gone. The changes it
    /// depends on must have been followed first.
    fn follow(&mut self, old: &ExpandedChange, news: &[Change]) {
        let mut held = HashMap::new();
        for new in news {
            let moved = self.held_in(old, &new.decode(), &held);
            held.extend(moved);
        }
        for (i, op) in old.operations.iter().enumerate() {
            if !held.contains_key(&nth(old, i)) {
                self.forget_op(nth(old, i), op);
            }
        }
        self.moved.extend(held);
    }

    /// Each operation of `old` that `new` enters again and that is not in `held` already,
    /// with its id in `new`: `new` holds them in the same order, each with the same action
    /// and key, in the object where the old one's object is now, and leaves out the rest
    /// (`Rebase::enter`).
    fn held_in(
        &self,
        old: &ExpandedChange,
        new: &ExpandedChange,
        held: &HashMap<OpId, OpId>,
    ) -> Vec<(OpId, OpId)> {
        let mut found: HashMap<OpId, OpId> = HashMap::new();
        let mut next = 0;
        for (j, op) in new.operations.iter().enumerate() {
            while next < old.operations.len() {
                let (i, candidate) = (next, &old.operations[next]);
                next += 1;
                let id = nth(old, i);
                if held.contains_key(&id) {
                    continue;
                }
                // Where its object (and the element it deletes) is now: made by an earlier
                // operation of the same change that a holder holds (one no holder holds is
                // gone), or elsewhere in the case.
                let now = |id: &OpId| match found.get(id).or_else(|| held.get(id)) {
                    Some(now) => Some(now.clone()),
                    None if within(old, id) => None,
                    None => self.element(id),
                };
                let obj = match &candidate.obj {
                    ObjectId::Id(made) => now(made).map(ObjectId::Id),
                    ObjectId::Root => Some(ObjectId::Root),
                };
                let same = candidate.action == op.action
                    && candidate.insert == op.insert
                    && obj.as_ref() == Some(&op.obj)
                    && match (&candidate.key, &op.key) {
                        (Key::Map(a), Key::Map(b)) => a == b,
                        (Key::Seq(ElementId::Id(a)), Key::Seq(ElementId::Id(b)))
                            if !candidate.insert =>
                        {
                            now(a).as_ref() == Some(b)
                        }
                        (Key::Seq(_), Key::Seq(_)) => true,
                        _ => false,
                    };
                if same {
                    found.insert(id, nth(new, j));
                    break;
                }
            }
        }
        found.into_iter().collect()
    }

    /// Records an operation that is not in the case (`id`, of a change dropped).
    fn forget_op(&mut self, id: OpId, op: &Op) {
        if let (true, Key::Seq(after)) = (op.insert, &op.key) {
            self.inserted_after.insert(id.clone(), after.clone());
        }
        self.gone.insert(id);
    }

    /// Enters `change` again as a new change on `doc`, building on `also` too, if anything
    /// of it stands and the rule book allows it after `case` (which then becomes the case
    /// after it): the new change, and whether operations of it were left out. An
    /// operation already entered again (`moved`) is not entered twice. A refusal leaves
    /// the case as it was; the caller takes the change's operations for gone.
    fn enter(
        &mut self,
        doc: &mut AutoCommit,
        change: &ExpandedChange,
        also: &[ChangeHash],
        case: &mut CaseState,
        author: &Author,
        trust: &Trust<'_>,
    ) -> Result<(ChangeHash, bool), Refusal> {
        // What the change saw, and what it builds on: the same but for the device's last
        // change when that one came later (a change entered by hand, or after waiting).
        let saw = self.deps(&[change.deps.as_slice(), also].concat());
        let deps = self.deps(&[saw.as_slice(), self.last.as_slice()].concat());
        // Counters of a change from elsewhere may be anything up to the largest there is.
        let exhausted = self
            .max_op
            .checked_add(1 + change.operations.len() as u64)
            .is_none();
        if exhausted {
            return Err(Refusal::new(
                Rule::Shape,
                "修改的操作编号已到上限 (the case's operation counters are exhausted)",
            ));
        }
        let start = self.max_op + 1;
        let mut ops: Vec<Op> = Vec::new();
        let mut moved = Vec::new();
        let mut partly = false;
        let mut already = false;
        // The values each map key holds after this change's earlier operations.
        let mut written: HashMap<(ObjectId, String), Vec<OpId>> = HashMap::new();
        for (i, op) in change.operations.iter().enumerate() {
            let old = nth(change, i);
            if self.moved.contains_key(&old) {
                already = true;
                continue;
            }
            let new = OpId(start + ops.len() as u64, self.actor.clone());
            let deletes = op.action == OpType::Delete;
            // What is left out is gone at once: a later operation into it must not take its
            // id for one in the case (the new change's ids may be the same numbers).
            // A deletion of something gone is left out, and counts only if another device
            // made what it deleted: that device may enter it again.
            let Some(obj) = self.object(&op.obj) else {
                partly |=
                    !deletes || matches!(&op.obj, ObjectId::Id(made) if made.1 != *self.actor);
                self.forget_op(old, op);
                continue;
            };
            let entered = match &op.key {
                Key::Map(key) => {
                    let slot = (obj.clone(), key.to_string());
                    let pred = match written.get(&slot) {
                        Some(values) => values.clone(),
                        None => values_at(doc, &obj, key, &deps),
                    };
                    // A value written since that the change never saw: replacing it would
                    // settle silently what was concurrent, and standing beside it is not
                    // how a change built on it writes. The write is left out (and said).
                    if saw != deps
                        && !written.contains_key(&slot)
                        && values_at(doc, &obj, key, &saw) != pred
                    {
                        partly = true;
                        self.forget_op(old, op);
                        continue;
                    }
                    if deletes && pred.is_empty() {
                        partly |= op.pred.iter().any(|value| value.1 != *self.actor);
                        self.forget_op(old, op);
                        continue;
                    }
                    written.insert(
                        slot,
                        if deletes {
                            Vec::new()
                        } else {
                            vec![new.clone()]
                        },
                    );
                    Op {
                        action: op.action.clone(),
                        obj,
                        key: op.key.clone(),
                        pred: SortedVec::from(pred),
                        insert: false,
                    }
                }
                Key::Seq(after) if op.insert => Op {
                    action: op.action.clone(),
                    obj,
                    key: Key::Seq(self.after(after.clone())),
                    pred: SortedVec::new(),
                    insert: true,
                },
                Key::Seq(ElementId::Id(element)) if deletes => match self.element(element) {
                    Some(element) => Op {
                        action: OpType::Delete,
                        obj,
                        key: Key::Seq(ElementId::Id(element.clone())),
                        pred: SortedVec::from(vec![element]),
                        insert: false,
                    },
                    // Inserted by a refused change: nothing to delete.
                    None => {
                        partly |= element.1 != *self.actor;
                        self.forget_op(old, op);
                        continue;
                    }
                },
                Key::Seq(_) => {
                    partly = true;
                    self.forget_op(old, op);
                    continue;
                }
            };
            self.moved.insert(old.clone(), new);
            moved.push(old);
            ops.push(entered);
        }
        let entered = if ops.is_empty() && already && !partly {
            Err(Refusal::new(
                Rule::Dependency,
                "该修改已全部重新录入 (the change is entered again already)",
            ))
        } else if ops.is_empty() {
            Err(nothing_stands())
        } else {
            let entered = Change::from(ExpandedChange {
                operations: ops,
                actor_id: self.actor.clone(),
                hash: None,
                seq: self.seq + 1,
                start_op: NonZeroU64::new(start).expect("counters start at 1"),
                time: change.time,
                message: document::note_entering_again(
                    change.message.as_deref(),
                    change.hash.expect("decoded changes are hashed"),
                ),
                deps,
                extra_bytes: change.extra_bytes.clone(),
                author: None,
            });
            admit(doc, &entered, case, author, trust).map(|()| entered)
        };
        let entered = match entered {
            Ok(entered) => entered,
            Err(refusal) => {
                for old in moved {
                    self.moved.remove(&old);
                }
                return Err(refusal);
            }
        };
        let hash = entered.hash();
        self.graph.insert(hash, entered.deps().to_vec());
        self.seq += 1;
        self.last = Some(hash);
        self.max_op = entered.max_op();
        self.stands_for
            .insert(change.hash.expect("decoded changes are hashed"), vec![hash]);
        Ok((hash, partly))
    }

    /// `deps` as they stand in the case now: the fewest changes that hold all of them.
    fn deps(&self, deps: &[ChangeHash]) -> Vec<ChangeHash> {
        let mut heads: BTreeSet<ChangeHash> = BTreeSet::new();
        for dep in deps {
            match self.stands_for.get(dep) {
                Some(now) => heads.extend(now.iter().copied()),
                None => {
                    heads.insert(*dep);
                }
            }
        }
        // A change another of them builds on is held through it.
        let mut stack: Vec<ChangeHash> = heads
            .iter()
            .filter_map(|h| self.graph.get(h))
            .flatten()
            .copied()
            .collect();
        let mut seen = HashSet::new();
        while let Some(hash) = stack.pop() {
            if !seen.insert(hash) {
                continue;
            }
            heads.remove(&hash);
            if let Some(deps) = self.graph.get(&hash) {
                stack.extend(deps.iter().copied());
            }
        }
        heads.into_iter().collect()
    }

    /// The object `obj` in the case now, if it is there.
    fn object(&self, obj: &ObjectId) -> Option<ObjectId> {
        match obj {
            ObjectId::Root => Some(ObjectId::Root),
            ObjectId::Id(id) => self.element(id).map(ObjectId::Id),
        }
    }

    /// The operation `id` in the case now (its new id if it was entered again), if it is
    /// there.
    fn element(&self, id: &OpId) -> Option<OpId> {
        match self.moved.get(id) {
            Some(new) => Some(new.clone()),
            None if self.gone.contains(id) => None,
            None => Some(id.clone()),
        }
    }

    /// Where an element inserted after `after` goes now: after the element a gone one was
    /// inserted after, in turn.
    fn after(&self, mut after: ElementId) -> ElementId {
        loop {
            let ElementId::Id(id) = &after else {
                return after;
            };
            if let Some(new) = self.moved.get(id) {
                return ElementId::Id(new.clone());
            }
            match self.inserted_after.get(id) {
                Some(before) => after = before.clone(),
                None => return after,
            }
        }
    }
}

/// The refusal of a change whose every operation wrote into what dropped changes made.
fn nothing_stands() -> Refusal {
    Refusal::new(
        Rule::Dependency,
        "其内容无可重新录入：写入的记录已随被拒绝的修改删除，或已被之后的修改改写 (nothing of it stands: what it wrote into went with the refused changes, or was written since)",
    )
}

/// Applies `change` to `doc` and judges it after `case`, as the device judges its own
/// edits; on success `case` becomes the case after it, otherwise nothing changes.
fn admit(
    doc: &mut AutoCommit,
    change: &Change,
    case: &mut CaseState,
    author: &Author,
    trust: &Trust<'_>,
) -> Result<(), Refusal> {
    let mut trial = doc.clone();
    rules::apply(&mut trial, std::slice::from_ref(change))?;
    let ops = rules::Ops::of(&trial, std::slice::from_ref(change))?;
    let after = case.after(&trial, &ops).map_err(rules::not_a_case)?;
    rules::judge(author, Some(case), &after, &ops, trust)?;
    *doc = trial;
    *case = after;
    Ok(())
}

/// Each change of `doc` that says it enters another again, with that other change's hash
/// (`ChangeNote::again`). Whose it was is for the caller to check.
pub(crate) fn entered_again(doc: &mut AutoCommit) -> Vec<(ChangeHash, Change)> {
    let news: Vec<(ChangeHash, ChangeHash)> = doc
        .get_changes_meta(&[])
        .into_iter()
        .filter_map(|meta| Some((says_again(meta.message.as_deref())?, meta.hash)))
        .collect();
    news.into_iter()
        .filter_map(|(old, new)| Some((old, doc.get_change_by_hash(&new)?.clone())))
        .collect()
}

/// The change a change's message says it enters again.
fn says_again(message: Option<&str>) -> Option<ChangeHash> {
    // Most notes say nothing of it; only those that may are parsed.
    let message = message.filter(|m| m.contains("\"again\""))?;
    document::ChangeNote::parse(Some(message))
        .again?
        .parse()
        .ok()
}

/// Whether `id` is the id of an operation of `change`.
fn within(change: &ExpandedChange, id: &OpId) -> bool {
    let start = change.start_op.get();
    id.1 == change.actor_id && (start..start + change.operations.len() as u64).contains(&id.0)
}

/// The id of the `i`th operation of `change`.
fn nth(change: &ExpandedChange, i: usize) -> OpId {
    OpId(change.start_op.get() + i as u64, change.actor_id.clone())
}

/// The values map key `key` of `obj` holds at `heads`.
fn values_at(doc: &AutoCommit, obj: &ObjectId, key: &str, heads: &[ChangeHash]) -> Vec<OpId> {
    let obj = rules::written::object_of(obj);
    doc.get_all_at(&obj, key, heads)
        .map(|values| {
            values
                .into_iter()
                .filter_map(|(_, id)| match id {
                    automerge::ObjId::Id(counter, actor, _) => Some(OpId(counter, actor)),
                    automerge::ObjId::Root => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
