//! Which changes Automerge may be given at all.
//!
//! Automerge trusts what a change says about the document it was written against. An
//! operation's predecessors hide every value they name, wherever it is; a list operation
//! is placed after the element it names, whichever list that element is in. A change that
//! names the wrong ones still applies, but the document no longer matches its own changes:
//! the changes Automerge rebuilds from it hash differently, a saved copy no longer loads,
//! and some such changes make Automerge panic while applying or rebuilding them. So a
//! change from elsewhere is given to Automerge only once every operation in it is one a
//! well-behaved writer makes, read against the document at the change's dependencies:
//!
//! - it writes into an object that exists there (or that the change made earlier): a map
//!   by key, a list or text by element;
//! - a map write names as predecessors exactly the values the key held (as the change's
//!   own earlier operations left them), each once; a deletion names some of them (all,
//!   or the losers of a conflict Automerge resolves in favour of the value it keeps);
//! - a list or text element is inserted after an element of the same object (or at its
//!   head), naming no predecessor, and deleted naming itself; it is never replaced in
//!   place; a text holds characters only;
//! - every object and element it names was made by a change in its history: Automerge
//!   panics on a device that takes the change without the one that made what it names;
//! - it makes, writes or deletes: counters and marks are nothing the case uses;
//! - it is its actor's next change: Automerge numbers each actor's changes 1, 2, 3, … and
//!   panics on a change whose number skips ahead (or that carries an author and is not
//!   its actor's first); and it builds on its actor's last change (a document holding an
//!   actor's change that does not saves bytes that no longer load).
//!
//! Each change is checked against the document with the changes before it applied, then
//! applied: [`apply`]. The local store checks its own changes the same way, so a device
//! never records what the server refuses here.

use std::borrow::Borrow;
use std::collections::BTreeSet;

// The rule book hashes every operation id of every change it judges: a fast hasher,
// seeded at random per process, so that a sender cannot choose ids that collide.
use foldhash::{HashMap, HashMapExt, HashSet};

use automerge::legacy::{ElementId, Key, ObjectId, OpId, OpType};
use automerge::{
    AutoCommit, Change, ChangeHash, ExpandedChange, ObjId, ObjType, ReadDoc, ScalarValue,
};

use super::{Refusal, Rule};

/// Applies `changes` to `doc` in their order, each only once [`check`] found it well
/// formed. On a refusal, the changes before the refused one may stay applied: apply to a
/// copy.
///
/// The changes are taken chain by chain (a chain: each change built on the one before it
/// and on nothing the chain had not seen, the way a device records). A chain is checked
/// whole against the document at its start (the first change's dependencies) and then
/// applied at once: what each change sees is what the document held there and what the
/// changes before it in the chain wrote, which is what checking it after applying them one
/// by one reads. Automerge applies many changes at once for little more than one, and each
/// call costs about as much as the document is large: applied one by one, a history of
/// thousands of changes costs thousands of times the document. A change built on work
/// the chain had not seen (a device's first change after it took a teammate's) starts a
/// chain of its own.
pub fn apply(doc: &mut AutoCommit, changes: &[Change]) -> Result<(), Refusal> {
    let expanded: Vec<ExpandedChange> = changes.iter().map(Change::decode).collect();
    apply_expanded(doc, changes, &expanded)
}

/// [`apply`], with each change's operations already decoded (`expanded`, in the same
/// order).
pub(crate) fn apply_expanded<E: Borrow<ExpandedChange>>(
    doc: &mut AutoCommit,
    changes: &[Change],
    expanded: &[E],
) -> Result<(), Refusal> {
    let mut numbered = Numbered::default();
    let mut inserted = Inserted::default();
    let mut from = 0;
    while let Some(first) = changes.get(from) {
        let start = first.deps();
        present(doc, start)?;
        let mut seen = Seen::at(start);
        numbered.chained.clear();
        let mut to = from;
        while let Some(change) = changes.get(to) {
            if to > from && !numbered.continues(doc, &mut seen.start, &changes[to - 1], change) {
                break;
            }
            seen.check(doc, expanded[to].borrow(), &mut inserted)?;
            numbered.check(doc, change, &mut seen.start)?;
            to += 1;
        }
        doc.apply_changes(changes[from..to].iter().cloned())
            .map_err(unapplied)?;
        from = to;
    }
    crate::case_doc::forget_patches(doc);
    Ok(())
}

/// Whether each of `changes` after the first depends on the one before it and nothing
/// else.
pub(crate) fn is_chain(changes: &[Change]) -> bool {
    changes
        .windows(2)
        .all(|pair| pair[1].deps() == [pair[0].hash()])
}

fn unapplied(e: automerge::AutomergeError) -> Refusal {
    Refusal::new(
        Rule::Shape,
        format!("修改无法应用 (the change does not apply: {e})"),
    )
}

/// The last change of each actor in a document (its number, its last operation counter
/// and its hash), read once when first needed and kept up as changes are checked.
#[derive(Default)]
struct Numbered {
    last: Option<HashMap<automerge::ActorId, (u64, u64, ChangeHash)>>,
    /// Changes of the chain being checked, not yet applied.
    chained: HashSet<ChangeHash>,
}

impl Numbered {
    /// Whether `change` goes on the chain whose last change is `before`: it builds on
    /// `before`, and whatever else it builds on is already in the chain's history (in the
    /// chain, or before its `start`), so that it saw exactly what the chain left.
    fn continues(
        &self,
        doc: &mut AutoCommit,
        start: &mut Start<'_>,
        before: &Change,
        change: &Change,
    ) -> bool {
        change.deps().contains(&before.hash())
            && change
                .deps()
                .iter()
                .all(|dep| self.chained.contains(dep) || start.holds(doc, dep))
    }

    /// Whether `change` is its actor's next change in `doc`, built on its actor's last
    /// one, with at least one operation and operation counters after its actor's last; it
    /// counts as applied after. `start` is where the chain `change` belongs to starts.
    /// (A change that breaks these makes Automerge panic, or leaves a document whose saved
    /// bytes no longer load: an actor's change that its next one does not build on, say.)
    fn check(
        &mut self,
        doc: &mut AutoCommit,
        change: &Change,
        start: &mut Start<'_>,
    ) -> Result<(), Refusal> {
        let seq = change.seq();
        let refuse = |why: &str| Err(Refusal::new(Rule::Shape, why.to_owned()));
        if change.is_empty() {
            return refuse("修改不含任何操作 (a change must hold at least one operation)");
        }
        if change.author().is_some() && seq != 1 {
            return refuse(
                "修改的作者标记只能出现在设备的第一条修改中 (an author mark belongs on an actor's first change)",
            );
        }
        let last = self.last.get_or_insert_with(|| {
            let mut last: HashMap<automerge::ActorId, (u64, u64, ChangeHash)> = HashMap::new();
            for meta in doc.get_changes_meta(&[]) {
                let entry = last
                    .entry(meta.actor.into_owned())
                    .or_insert((0, 0, meta.hash));
                if meta.seq >= entry.0 {
                    *entry = (meta.seq, entry.1.max(meta.max_op), meta.hash);
                } else {
                    entry.1 = entry.1.max(meta.max_op);
                }
            }
            last
        });
        let previous = last.get(change.actor_id()).copied();
        let (last_seq, last_op) = previous.map_or((0, 0), |(seq, op, _)| (seq, op));
        if seq != last_seq + 1 {
            return refuse(&format!(
                "修改的序号 {seq} 不是其设备的下一条（应为 {}） (a change must be its actor's next)",
                last_seq + 1
            ));
        }
        if change.start_op().get() <= last_op {
            return refuse(
                "修改的操作编号与其设备之前的修改重叠 (a change's operations must come after its actor's earlier ones)",
            );
        }
        if let Some((_, _, before)) = previous {
            // An earlier change of the chain is in every later one's history; a change
            // the document holds is in it if it is in the chain's start's.
            let builds_on = change.deps().contains(&before)
                || self.chained.contains(&before)
                || start.holds(doc, &before);
            if !builds_on {
                return refuse(
                    "修改未建立在其设备的上一条修改之上 (a change must build on its actor's last change)",
                );
            }
        }
        last.insert(
            change.actor_id().clone(),
            (seq, change.max_op(), change.hash()),
        );
        self.chained.insert(change.hash());
        Ok(())
    }
}

/// Checks that every operation of `change` is one a well-behaved writer makes, against
/// `doc` (which holds the change's dependencies, and may hold the change itself).
pub fn check(doc: &mut AutoCommit, change: &Change) -> Result<(), Refusal> {
    present(doc, change.deps())?;
    Seen::at(change.deps()).check(doc, &change.decode(), &mut Inserted::default())
}

/// Refuses a change whose dependencies `doc` does not hold.
fn present(doc: &AutoCommit, deps: &[ChangeHash]) -> Result<(), Refusal> {
    if !ReadDoc::get_missing_deps(doc, deps).is_empty() {
        return Err(Refusal::new(
            Rule::Shape,
            "修改所依赖的记录不在此处 (the change depends on changes not here)",
        ));
    }
    Ok(())
}

/// Where a chain of changes starts (its first change's dependencies): which changes of
/// the document were written before it, read from the document's change graph once and
/// only when asked.
struct Start<'a> {
    heads: &'a [ChangeHash],
    /// The changes of the document outside the start's history.
    outside: Option<HashSet<ChangeHash>>,
}

impl Start<'_> {
    /// Whether `doc` has the change `hash`, in the history of the start.
    fn holds(&mut self, doc: &mut AutoCommit, hash: &ChangeHash) -> bool {
        let heads = self.heads;
        ReadDoc::get_missing_deps(doc, &[*hash]).is_empty()
            && !self
                .outside
                .get_or_insert_with(|| {
                    doc.get_changes_meta(heads)
                        .into_iter()
                        .map(|meta| meta.hash)
                        .collect()
                })
                .contains(hash)
    }
}

/// What a chain of changes saw as it went on: the document at its start and what the
/// changes checked so far wrote.
struct Seen<'a> {
    start: Start<'a>,
    /// Objects the changes made, and their types.
    made: HashMap<ObjId, ObjType>,
    /// Objects of the document the changes write into, each made by a change in the
    /// writer's history, and their types.
    found: HashMap<ObjId, ObjType>,
    /// The values each map key holds as the changes go on.
    current: HashMap<(ObjId, String), BTreeSet<ObjId>>,
    /// The elements the changes inserted, by list or text.
    elements: HashMap<ObjId, HashSet<ObjId>>,
}

impl<'a> Seen<'a> {
    fn at(heads: &'a [ChangeHash]) -> Self {
        Seen {
            start: Start {
                heads,
                outside: None,
            },
            made: HashMap::new(),
            found: HashMap::new(),
            current: HashMap::new(),
            elements: HashMap::new(),
        }
    }

    /// Checks the operations of `expanded`, the next change of the chain, and keeps what
    /// they wrote. `inserted` is what the changes of the document that these name elements
    /// of were read to hold.
    fn check(
        &mut self,
        doc: &mut AutoCommit,
        expanded: &ExpandedChange,
        inserted: &mut Inserted,
    ) -> Result<(), Refusal> {
        let Seen {
            start,
            made,
            found,
            current,
            elements,
        } = self;
        let deps: &[ChangeHash] = start.heads;
        for (i, op) in expanded.operations.iter().enumerate() {
            let id = nth_op(expanded, i);
            let obj = object_of(&op.obj);
            let kind = match made.get(&obj).or_else(|| found.get(&obj)) {
                Some(kind) => *kind,
                None => {
                    // An object of the document, made by a change the writer saw.
                    let saw = obj == automerge::ROOT
                        || doc
                            .hash_for_opid(&obj)
                            .is_some_and(|by| start.holds(doc, &by));
                    let kind = kind_of(doc, &obj)
                        .filter(|_| saw)
                        .ok_or_else(|| unknown(&id))?;
                    found.insert(obj.clone(), kind);
                    kind
                }
            };
            let named: BTreeSet<ObjId> = op.pred.iter().map(id_of).collect();
            if named.len() != op.pred.len() {
                return Err(forged(&id));
            }
            if matches!(
                op.action,
                OpType::Increment(_)
                    | OpType::MarkBegin(..)
                    | OpType::MarkEnd(_)
                    | OpType::Make(ObjType::Table)
            ) {
                return Err(Refusal::new(
                    Rule::Shape,
                    "记录中没有计数器、标记或表 (a case holds no counters, marks or tables)",
                ));
            }
            match &op.key {
                Key::Map(key) => {
                    if kind != ObjType::Map {
                        return Err(unknown(&id));
                    }
                    let slot = current
                        .entry((obj.clone(), key.to_string()))
                        .or_insert_with(|| {
                            if made.contains_key(&obj) {
                                BTreeSet::new()
                            } else {
                                values_at(doc, &obj, key, deps)
                            }
                        });
                    // A write replaces every value; a deletion removes all of them, or (as
                    // Automerge resolves a conflict in favour of the value it keeps) some.
                    let fits = match op.action {
                        OpType::Delete => !named.is_empty() && named.is_subset(slot),
                        _ => named == *slot,
                    };
                    if !fits {
                        return Err(forged(&id));
                    }
                    *slot = match op.action {
                        OpType::Delete => slot.difference(&named).cloned().collect(),
                        _ => BTreeSet::from([id.clone()]),
                    };
                }
                Key::Seq(element) => {
                    if !matches!(kind, ObjType::List | ObjType::Text) {
                        return Err(unknown(&id));
                    }
                    let deletes = matches!(op.action, OpType::Delete);
                    if !op.insert && !deletes {
                        return Err(Refusal::new(
                            Rule::Shape,
                            "列表中的元素只能插入或删除，不能原地替换 (a list element is inserted or deleted, never replaced in place)",
                        ));
                    }
                    if kind == ObjType::Text
                        && op.insert
                        && !matches!(op.action, OpType::Put(ScalarValue::Str(_)))
                    {
                        return Err(Refusal::new(
                            Rule::Shape,
                            "文本中只能有文字 (a text holds characters only)",
                        ));
                    }
                    let ours = elements.entry(obj.clone()).or_default();
                    let fits = match element {
                        ElementId::Head => op.insert,
                        ElementId::Id(e) => {
                            let e = id_of(e);
                            // Inserted there by these changes, or by a change the writer
                            // saw (and perhaps deleted since: a writer may name one).
                            let of_obj = ours.contains(&e)
                                || inserted
                                    .inserted_by(doc, &obj, &e)
                                    .is_some_and(|by| start.holds(doc, &by));
                            of_obj && (op.insert || named == BTreeSet::from([e]))
                        }
                    };
                    if !fits || (op.insert && (deletes || !named.is_empty())) {
                        return Err(forged(&id));
                    }
                    if op.insert {
                        ours.insert(id.clone());
                    }
                }
            }
            if let OpType::Make(kind) = op.action {
                made.insert(id, kind);
            }
        }
        Ok(())
    }
}

/// The id of operation `id` (or of the object it made), as the document's readers take
/// it. Its actor's index in the document is not known from a change: Automerge looks the
/// actor up when the index it is given does not name it, and compares and hashes ids by
/// counter and actor alone.
pub(crate) fn id_of(id: &OpId) -> ObjId {
    ObjId::Id(id.0, id.1.clone(), usize::MAX)
}

/// The id of the object `obj`.
pub(crate) fn object_of(obj: &ObjectId) -> ObjId {
    match obj {
        ObjectId::Root => automerge::ROOT,
        ObjectId::Id(id) => id_of(id),
    }
}

/// The id of the `i`th operation of `change`.
pub(crate) fn nth_op(change: &ExpandedChange, i: usize) -> ObjId {
    ObjId::Id(
        change.start_op.get() + i as u64,
        change.actor_id.clone(),
        usize::MAX,
    )
}

/// The type of the object `obj` in `doc`, if it is one there.
pub(crate) fn kind_of(doc: &AutoCommit, obj: &ObjId) -> Option<ObjType> {
    doc.object_type(obj).ok()
}

fn forged(id: &ObjId) -> Refusal {
    Refusal::new(
        Rule::Shape,
        format!(
            "修改 {id} 所替换的值与其所见不符 (an operation must name exactly what it replaces or follows)"
        ),
    )
}

fn unknown(id: &ObjId) -> Refusal {
    Refusal::new(
        Rule::Shape,
        format!("修改 {id} 写入的对象不存在或类型不符 (an operation writes into no such object)"),
    )
}

/// The values `key` of object `obj` held at `heads`.
fn values_at(doc: &AutoCommit, obj: &ObjId, key: &str, heads: &[ChangeHash]) -> BTreeSet<ObjId> {
    doc.get_all_at(obj, key, heads)
        .map(|values| values.into_iter().map(|(_, id)| id).collect())
        .unwrap_or_default()
}

/// The elements changes of a document inserted, by list or text, each change read once
/// and only when an operation names an element it inserted. A list is never read whole to
/// tell which elements a writer saw: that walked it once for every chain, and a message of
/// changes each built on more than the one before walked it once for every change.
#[derive(Default)]
pub(crate) struct Inserted(HashMap<ChangeHash, HashMap<ObjId, HashSet<u64>>>);

impl Inserted {
    /// The change that inserted `element` into list or text `obj`, if one of `doc`'s did.
    /// (Reading the object as that change left it instead walked the whole list for every
    /// element named, and a message naming each of thousands of deleted characters walked
    /// it thousands of times.)
    fn inserted_by(
        &mut self,
        doc: &AutoCommit,
        obj: &ObjId,
        element: &ObjId,
    ) -> Option<ChangeHash> {
        let ObjId::Id(counter, ..) = element else {
            return None;
        };
        let inserted_by = doc.hash_for_opid(element)?;
        let by_object = self.0.entry(inserted_by).or_insert_with(|| {
            let mut by_object: HashMap<ObjId, HashSet<u64>> = HashMap::new();
            if let Some(change) = doc.get_change_by_hash(&inserted_by) {
                let change = change.decode();
                for (i, op) in change.operations.iter().enumerate() {
                    if op.insert {
                        by_object
                            .entry(object_of(&op.obj))
                            .or_default()
                            .insert(change.start_op.get() + i as u64);
                    }
                }
            }
            by_object
        });
        by_object
            .get(obj)
            .is_some_and(|made| made.contains(counter))
            .then_some(inserted_by)
    }
}
