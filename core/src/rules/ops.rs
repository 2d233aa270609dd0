//! The operations of some changes, each with where it lands in the document after them:
//! what the rule book judges. Reading a change's operations costs as much as the change,
//! not as much as the document, so judging a finding recorded in a case of a thousand
//! findings costs what judging it in an empty case costs.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::{AutoCommit, Change, ObjType, Prop, ReadDoc};

use super::{Refusal, Rule};
use crate::codes::FindingId;
use crate::paths::{Leaf, Seg, scalar};

/// One operation, where it lands.
#[derive(Debug, Clone)]
pub(crate) struct OpAt {
    /// The path of what it writes: its object's path and its key (list positions all read
    /// as index 0: the schema does not tell list elements apart).
    pub path: Vec<Seg>,
    /// What it writes: an object it makes (a text with its content after the changes) or a
    /// scalar; `None` for a deletion.
    pub value: Option<Leaf>,
    /// An increment or a mark: nothing the case schema uses.
    pub foreign: bool,
    /// It overwrites or deletes an earlier value (it has predecessors).
    pub overwrites: bool,
    /// It writes inside a collaborative text (a character).
    pub in_text: bool,
    /// Its own id (`counter@actor`).
    pub id: String,
    /// The id of the object it writes into.
    pub obj: String,
    /// The object it writes into, in the document after the changes.
    pub obj_id: Option<automerge::ObjId>,
    /// The object it writes into was made by these same changes.
    pub in_new_object: bool,
    /// A later operation of these same changes overwrote it (it is in no reader's view).
    pub superseded: bool,
}

/// The operations of some changes.
#[derive(Debug, Clone, Default)]
pub struct Ops {
    ops: Vec<OpAt>,
}

impl Ops {
    /// The operations of `changes`, found in `doc` (which holds them).
    pub fn of(doc: &AutoCommit, changes: &[Change]) -> Result<Ops, Refusal> {
        let mut objects: HashMap<String, (Vec<Seg>, ObjType)> = HashMap::new();
        objects.insert("_root".into(), (Vec::new(), ObjType::Map));
        let mut made = HashSet::new();
        let mut preds = HashSet::new();
        let mut ops = Vec::new();
        for change in changes {
            let expanded = change.decode();
            let actor = expanded.actor_id.to_hex_string();
            for (i, op) in expanded.operations.iter().enumerate() {
                let id = format!("{}@{actor}", expanded.start_op.get() + i as u64);
                let obj = match &op.obj {
                    ObjectId::Root => "_root".to_owned(),
                    ObjectId::Id(o) => format!("{}@{}", o.0, o.1.to_hex_string()),
                };
                let (mut path, obj_type) = resolve(doc, &mut objects, &obj)?;
                path.push(match &op.key {
                    Key::Map(key) => Seg::Key(key.to_string()),
                    Key::Seq(_) => Seg::Index(0),
                });
                for pred in op.pred.iter() {
                    preds.insert(format!("{}@{}", pred.0, pred.1.to_hex_string()));
                }
                let (value, foreign) = match &op.action {
                    OpType::Make(made_type) => {
                        objects.insert(id.clone(), (path.clone(), *made_type));
                        made.insert(id.clone());
                        let leaf = match made_type {
                            ObjType::Map => Leaf::Map,
                            ObjType::List => Leaf::List,
                            ObjType::Text => Leaf::Text(String::new()),
                            ObjType::Table => Leaf::Other("table"),
                        };
                        (Some(leaf), false)
                    }
                    OpType::Put(value) => (Some(scalar(value)), false),
                    OpType::Delete => (None, false),
                    _ => (None, true),
                };
                ops.push(OpAt {
                    obj_id: None,
                    in_new_object: made.contains(&obj),
                    in_text: obj_type == ObjType::Text,
                    overwrites: !op.pred.is_empty(),
                    path,
                    value,
                    foreign,
                    id,
                    obj,
                    superseded: false,
                });
            }
        }
        let mut ids: HashMap<String, Option<automerge::ObjId>> = HashMap::new();
        for op in &mut ops {
            op.superseded = preds.contains(&op.id);
            op.obj_id = ids
                .entry(op.obj.clone())
                .or_insert_with(|| match op.obj.as_str() {
                    "_root" => Some(automerge::ROOT),
                    id => doc.import(id).ok().map(|(obj, _)| obj),
                })
                .clone();
            // A text made by these changes reads as its content after them (the stock
            // JavaScript client writes every string as a text).
            if matches!(op.value, Some(Leaf::Text(_)))
                && !op.superseded
                && let Ok((text, _)) = doc.import(&op.id)
            {
                op.value = Some(Leaf::Text(doc.text(&text).unwrap_or_default()));
            }
        }
        Ok(Ops { ops })
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

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The blob hashes (photo originals and thumbnails) the operations name.
    pub fn blob_refs(&self) -> BTreeSet<String> {
        self.ops
            .iter()
            .filter(|op| !op.superseded && !op.in_text)
            .filter(|op| {
                matches!(
                    op.path.last().and_then(Seg::key),
                    Some("sha256" | "thumbnail")
                )
            })
            .filter_map(|op| op.value.as_ref()?.as_str())
            .filter(|hash| crate::codes::is_sha256(hash))
            .map(str::to_owned)
            .collect()
    }

    /// Whether any map field the operations write holds more than one value in `doc` (the
    /// document after them): only there can they have made or ended a conflict.
    pub fn touch_a_conflict(&self, doc: &AutoCommit) -> bool {
        self.ops.iter().filter(|op| !op.in_text).any(|op| {
            match (&op.obj_id, op.path.last().and_then(Seg::key)) {
                (Some(obj), Some(key)) => {
                    doc.get_all(obj, key).is_ok_and(|values| values.len() > 1)
                }
                _ => false,
            }
        })
    }
}

/// The path and type of the object `id`, from these changes or from `doc`.
fn resolve(
    doc: &AutoCommit,
    objects: &mut HashMap<String, (Vec<Seg>, ObjType)>,
    id: &str,
) -> Result<(Vec<Seg>, ObjType), Refusal> {
    if let Some(known) = objects.get(id) {
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
    let (obj, obj_type) = doc.import(id).map_err(|_| unknown())?;
    let path: Vec<Seg> = doc
        .parents(&obj)
        .map_err(|_| unknown())?
        .path()
        .into_iter()
        .map(|(_, prop)| match prop {
            Prop::Map(key) => Seg::Key(key),
            Prop::Seq(i) => Seg::Index(i),
        })
        .collect();
    if path.len() > crate::paths::MAX_DEPTH {
        return Err(unknown());
    }
    objects.insert(id.to_owned(), (path.clone(), obj_type));
    Ok((path, obj_type))
}
