//! The operations of some changes, each with where it lands in the document after them:
//! what the rule book judges. Reading a change's operations costs as much as the change,
//! not as much as the document, so judging a finding recorded in a case of a thousand
//! findings costs what judging it in an empty case costs.
//! The changes were found well formed before they were applied (`written`): every
//! operation names exactly what it replaces. A change may still name nothing where a value
//! is (built on heads from before that value was written): Automerge then keeps both as a
//! conflict, and either may win. Such an operation competes with what was there and reads
//! as overwriting it, since it may hide it from every reader.

use std::borrow::Borrow;
use std::collections::BTreeSet;

// Operation ids hashed fast, seeded at random per process (see `written`).
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use automerge::legacy::{ElementId, Key, OpType};
use automerge::{AutoCommit, Change, ChangeHash, ExpandedChange, ObjId, ObjType, Prop, ReadDoc};

use super::written::{id_of, kind_of, nth_op, object_of};

use super::{Refusal, Rule};
use crate::codes::{FindingId, Level};
use crate::paths::{Leaf, MAX_DEPTH, Seg, scalar};

/// One operation (or, for edits inside a collaborative text, the text as they left it),
/// where it lands.
#[derive(Debug, Clone)]
pub(crate) struct OpAt {
    /// The path of what it writes: its object's path and its key (list positions all read
    /// as index 0: the schema does not tell list elements apart).
    pub path: Vec<Seg>,
    /// What it writes: an object it makes (a text with its content after the changes) or a
    /// scalar; `None` for a deletion.
    pub value: Option<Leaf>,
    /// It replaces or deletes an earlier value (one that existed before these changes), or
    /// competes with one at the same key without naming it (a conflict it may win).
    pub overwrites: bool,
    /// Its own id.
    pub id: ObjId,
    /// The id of the object it writes into.
    pub obj: ObjId,
    /// The object it writes into is in the document after the changes.
    pub obj_present: bool,
    /// The object it writes into was made by these same changes.
    pub in_new_object: bool,
    /// A later operation of these same changes replaced it (it is in no reader's view).
    pub superseded: bool,
    /// For an element inserted into a list: it went at the end of the list as its change
    /// saw it (after the last element there at the change's dependencies, or after the
    /// change's own last insertion into it). Other operations read as appended.
    pub appended: bool,
}

/// The operations of some changes.
#[derive(Debug, Clone, Default)]
pub struct Ops {
    ops: Vec<OpAt>,
    /// For each operation recording the level an order was given at: the level its finding
    /// read in the view of the operation's change (`levels_seen_by_order`).
    levels_seen: HashMap<ObjId, Level>,
}

/// An object the operations write into: its path, type, and the object that holds it.
#[derive(Debug, Clone)]
struct Place {
    path: Vec<Seg>,
    kind: ObjType,
    parent: ObjId,
}

impl Ops {
    /// The operations of `changes`, found in `doc` (which holds them).
    pub fn of(doc: &AutoCommit, changes: &[Change]) -> Result<Ops, Refusal> {
        let expanded: Vec<ExpandedChange> = changes.iter().map(Change::decode).collect();
        Ops::of_expanded(doc, &expanded)
    }

    /// The operations of changes already decoded, found in `doc` (which holds them).
    pub(crate) fn of_expanded<E: Borrow<ExpandedChange>>(
        doc: &AutoCommit,
        changes: &[E],
    ) -> Result<Ops, Refusal> {
        let mut places: HashMap<ObjId, Place> = HashMap::new();
        let mut made = HashSet::new();
        // Every operation of the changes, by id.
        let mut written: HashSet<ObjId> = HashSet::new();
        let mut preds = HashSet::new();
        let mut texts: Vec<ObjId> = Vec::new();
        let mut ops = Vec::new();
        let mut levels_seen = HashMap::new();
        // The last element of each list the changes insert into, as they go on; and the
        // lists whose last element that still is (nothing inserted elsewhere in them or
        // deleted from them since it was read).
        let mut ends: HashMap<ObjId, Option<ObjId>> = HashMap::new();
        let mut exact: HashSet<ObjId> = HashSet::new();
        let mut previous: Option<ChangeHash> = None;
        for expanded in changes {
            let expanded: &ExpandedChange = expanded.borrow();
            // A change built on the one before alone (a device's chain) goes on from where
            // that one left each list it kept exact; any other reads the list again at its
            // own dependencies. (Reading it again for every change of a chain walked the
            // whole list once for each: a chain of comments cost comments × events.)
            if previous.is_some() && expanded.deps == previous.as_slice() {
                ends.retain(|obj, _| exact.contains(obj));
            } else {
                ends.clear();
                exact.clear();
            }
            previous = expanded.hash;
            for (i, op) in expanded.operations.iter().enumerate() {
                let id = nth_op(expanded, i);
                written.insert(id.clone());
                let obj = object_of(&op.obj);
                let place = resolve(doc, &mut places, &obj)?;
                preds.extend(op.pred.iter().map(id_of));
                if place.kind == ObjType::Text {
                    if !made.contains(&obj) && !texts.contains(&obj) {
                        texts.push(obj.clone());
                    }
                    continue;
                }
                let appended = match &op.key {
                    Key::Seq(after) if op.insert => {
                        let end = ends.entry(obj.clone()).or_insert_with(|| {
                            exact.insert(obj.clone());
                            if made.contains(&obj) {
                                None
                            } else {
                                last_at(doc, &obj, &expanded.deps)
                            }
                        });
                        let after = match after {
                            ElementId::Head => None,
                            ElementId::Id(e) => Some(id_of(e)),
                        };
                        let at_end = after == *end;
                        *end = Some(id.clone());
                        if !at_end {
                            exact.remove(&obj);
                        }
                        at_end
                    }
                    Key::Seq(_) => {
                        exact.remove(&obj);
                        true
                    }
                    _ => true,
                };
                let mut path = place.path.clone();
                path.push(match &op.key {
                    Key::Map(key) => Seg::Key(key.to_string()),
                    Key::Seq(_) => Seg::Index(0),
                });
                if path.len() > MAX_DEPTH {
                    return Err(Refusal::new(
                        Rule::Shape,
                        format!(
                            "修改嵌套超过 {MAX_DEPTH} 层 (an operation nests deeper than {MAX_DEPTH} levels)"
                        ),
                    ));
                }
                let value = match &op.action {
                    OpType::Make(kind) => {
                        places.insert(
                            id.clone(),
                            Place {
                                path: path.clone(),
                                kind: *kind,
                                parent: obj.clone(),
                            },
                        );
                        made.insert(id.clone());
                        Some(match kind {
                            ObjType::Map => Leaf::Map,
                            ObjType::List => Leaf::List,
                            ObjType::Text => Leaf::Text(String::new()),
                            ObjType::Table => Leaf::Other("table"),
                        })
                    }
                    OpType::Put(value) => Some(scalar(value)),
                    OpType::Delete => None,
                    _ => Some(Leaf::Other("counter or mark")),
                };
                if recorded_level_of(&path).is_some()
                    && let Some(level) = level_seen(doc, &place.parent, expanded)
                {
                    levels_seen.insert(id.clone(), level);
                }
                ops.push(OpAt {
                    obj_present: false,
                    in_new_object: made.contains(&obj),
                    overwrites: op.pred.iter().any(|p| !written.contains(&id_of(p))),
                    path,
                    value,
                    id,
                    obj,
                    superseded: false,
                    appended,
                });
            }
        }
        // An edit inside a text that was there before writes the whole text anew: it is
        // judged as the text it leaves, where the text is.
        for text in texts {
            let place = resolve(doc, &mut places, &text)?;
            let content = doc.text(&text).unwrap_or_default();
            ops.push(OpAt {
                obj_present: false,
                in_new_object: made.contains(&place.parent),
                overwrites: true,
                path: place.path,
                value: Some(Leaf::Text(content)),
                id: text,
                obj: place.parent,
                superseded: false,
                appended: true,
            });
        }
        let mut present: HashMap<ObjId, bool> = HashMap::new();
        for op in &mut ops {
            op.superseded = preds.contains(&op.id);
            op.overwrites |= competes(doc, op, &written);
            op.obj_present = *present
                .entry(op.obj.clone())
                .or_insert_with(|| kind_of(doc, &op.obj).is_some());
            // A text made by these changes reads as its content after them (the stock
            // JavaScript client writes every string as a text).
            if matches!(&op.value, Some(Leaf::Text(t)) if t.is_empty())
                && made.contains(&op.id)
                && !op.superseded
            {
                op.value = Some(Leaf::Text(doc.text(&op.id).unwrap_or_default()));
            }
        }
        Ok(Ops { ops, levels_seen })
    }

    /// Every operation.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &OpAt> {
        self.ops.iter()
    }

    /// Whether any operation writes under the root key `key`.
    pub fn touches(&self, key: &str) -> bool {
        self.ops
            .iter()
            .any(|op| op.path.first().and_then(Seg::key) == Some(key))
    }

    /// Whether any operation writes under a root key other than `keys`.
    pub fn touches_other_than(&self, keys: &[&str]) -> bool {
        self.ops.iter().any(|op| {
            op.path
                .first()
                .and_then(Seg::key)
                .is_none_or(|k| !keys.contains(&k))
        })
    }

    /// The findings the operations write into (or make).
    pub fn findings(&self) -> BTreeSet<FindingId> {
        self.ops
            .iter()
            .filter(|op| op.path.first().and_then(Seg::key) == Some("findings"))
            .filter_map(|op| op.path.get(1).and_then(Seg::key)?.parse().ok())
            .collect()
    }

    /// The level each finding whose order's level the operations record read when its
    /// order was given: in the view of the change that records the order's level
    /// (everything that change was built on, and itself). An inspector ordering offline
    /// sees the level as it was before a teammate's concurrent change to it, and the order
    /// records that. One pass for every finding (a pass for each finding touched cost
    /// findings × operations).
    pub(crate) fn levels_seen_by_order(&self) -> HashMap<FindingId, Level> {
        let mut seen = HashMap::new();
        for op in self.ops.iter().filter(|op| !op.superseded) {
            if let Some(id) = recorded_level_of(&op.path)
                && let Some(level) = self.levels_seen.get(&op.id)
            {
                seen.entry(id).or_insert(*level);
            }
        }
        seen
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The blob hashes the operations name (`document::BLOB_KEYS`: photos and their
    /// thumbnails, signature images, a refusal's photo, a printed document's PDF).
    pub fn blob_refs(&self) -> BTreeSet<String> {
        self.ops
            .iter()
            .filter(|op| !op.superseded)
            .filter(|op| {
                op.path
                    .last()
                    .and_then(Seg::key)
                    .is_some_and(|key| crate::document::BLOB_KEYS.contains(&key))
            })
            .filter_map(|op| op.value.as_ref()?.as_str())
            .filter(|hash| crate::codes::is_sha256(hash))
            .map(str::to_owned)
            .collect()
    }

    /// Whether any map field the operations write holds more than one value in `doc` (the
    /// document after them): only there can they have made or ended a conflict.
    pub fn touch_a_conflict(&self, doc: &AutoCommit) -> bool {
        self.ops
            .iter()
            .any(|op| match op.path.last().and_then(Seg::key) {
                Some(key) if op.obj_present => doc
                    .get_all(&op.obj, key)
                    .is_ok_and(|values| values.len() > 1),
                _ => false,
            })
    }
}

/// Whether `op` writes a map key that also holds, after the changes, a value written
/// before them: one it did not replace, so that the two stand as a conflict.
fn competes(doc: &AutoCommit, op: &OpAt, written: &HashSet<ObjId>) -> bool {
    let Some(Seg::Key(key)) = op.path.last() else {
        return false;
    };
    if op.in_new_object || op.value.is_none() {
        return false;
    }
    doc.get_all(&op.obj, key.as_str())
        .is_ok_and(|values| values.iter().any(|(_, id)| !written.contains(id)))
}

/// The finding whose order's level `path` (`findings.<id>.rectification.ordered_level`)
/// writes, if it writes one.
fn recorded_level_of(path: &[Seg]) -> Option<FindingId> {
    match path {
        [
            Seg::Key(findings),
            Seg::Key(id),
            Seg::Key(rect),
            Seg::Key(key),
        ] if findings == "findings" && rect == "rectification" && key == "ordered_level" => {
            id.parse().ok()
        }
        _ => None,
    }
}

/// The level of the finding `finding` as `change` saw it: at the change itself, with what
/// it was built on and nothing concurrent to it.
fn level_seen(doc: &AutoCommit, finding: &ObjId, change: &ExpandedChange) -> Option<Level> {
    let heads: Vec<ChangeHash> = change.hash.into_iter().collect();
    crate::document::string_at(doc, finding, "level", &heads)?
        .parse()
        .ok()
}

/// The last element of list `obj` at `heads`.
fn last_at(doc: &AutoCommit, obj: &ObjId, heads: &[ChangeHash]) -> Option<ObjId> {
    doc.list_range_at(obj, .., heads)
        .last()
        .map(|item| item.id())
}

/// The path and type of the object `id`, from these changes or from `doc`.
fn resolve(
    doc: &AutoCommit,
    places: &mut HashMap<ObjId, Place>,
    id: &ObjId,
) -> Result<Place, Refusal> {
    if *id == automerge::ROOT {
        return Ok(Place {
            path: Vec::new(),
            kind: ObjType::Map,
            parent: automerge::ROOT,
        });
    }
    if let Some(known) = places.get(id) {
        return Ok(known.clone());
    }
    let unknown = || {
        Refusal::new(
            Rule::Shape,
            format!(
                "修改写入了检查记录中没有的对象 {id} (an operation writes into an object the case does not have)"
            ),
        )
    };
    let kind = kind_of(doc, id).ok_or_else(unknown)?;
    let chain: Vec<(ObjId, Prop)> = doc.parents(id).map_err(|_| unknown())?.path();
    if chain.len() > MAX_DEPTH {
        return Err(unknown());
    }
    let parent = chain
        .last()
        .map(|(parent, _)| parent.clone())
        .unwrap_or(automerge::ROOT);
    let path = chain
        .into_iter()
        .map(|(_, prop)| match prop {
            Prop::Map(key) => Seg::Key(key),
            Prop::Seq(i) => Seg::Index(i),
        })
        .collect();
    let place = Place { path, kind, parent };
    places.insert(id.clone(), place.clone());
    Ok(place)
}
