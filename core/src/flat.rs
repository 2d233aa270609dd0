//! A case document flattened: every value at every path, concurrent values included,
//! each with the operation that wrote it. The rule book compares two of these (the case
//! before and after a change); nothing else in a document escapes it, not even a value
//! that lost a conflict.
//!
//! The walk is iterative and refuses documents nested deeper than [`MAX_DEPTH`] or
//! holding more than [`MAX_ENTRIES`] values, so a hostile document cannot exhaust the
//! stack or the memory of whoever reads it.

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use crate::error::{Error, Result};

/// The deepest nesting a case document may have: the schema needs 7 levels
/// (`checklists/<id>/answers/<item>/photos/<n>/sha256`), the rest is headroom.
pub const MAX_DEPTH: usize = 16;

/// The most values a case document may hold (a visit with a thousand findings, each with
/// photos and a checklist of a few hundred items, stays far below this).
pub const MAX_ENTRIES: usize = 500_000;

/// One step of a path: a map key or a list position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A key of a map.
    Key(String),
    /// A position in a list.
    Index(usize),
}

impl Seg {
    /// The key, if this step is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Seg::Key(k) => Some(k),
            Seg::Index(_) => None,
        }
    }
}

/// What a value is: an object (its content follows as entries of its own) or a scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    /// A map.
    Map,
    /// A list.
    List,
    /// A collaborative text, as its current string.
    Text(String),
    /// A string.
    Str(String),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// Null.
    Null,
    /// Anything else Automerge can hold (counters, timestamps, bytes, tables, unknown
    /// types); the case schema uses none of them.
    Other(&'static str),
}

impl Leaf {
    /// The string, if this is a string or a text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Leaf::Str(s) | Leaf::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// One value of the document: where it is, which operation wrote it, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Path from the root.
    pub path: Vec<Seg>,
    /// The operation that wrote the value (stable across devices and saves).
    pub op: automerge::ObjId,
    /// The value.
    pub value: Leaf,
}

/// Every value of a document, in walk order (parents before their children).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flat {
    /// The entries.
    pub entries: Vec<Entry>,
}

impl Flat {
    /// The entries under the root key `key` (the key's own values included).
    pub fn under<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.path.first().and_then(Seg::key) == Some(key))
    }
}

/// Flattens `doc`, refusing one nested deeper than [`MAX_DEPTH`] or larger than
/// [`MAX_ENTRIES`] values.
pub fn flatten(doc: &AutoCommit) -> Result<Flat> {
    let mut entries = Vec::new();
    let mut stack: Vec<(ObjId, Vec<Seg>)> = vec![(ROOT, Vec::new())];
    while let Some((obj, path)) = stack.pop() {
        let children: Vec<(Seg, Vec<(Value<'_>, ObjId)>)> = match doc.object_type(&obj)? {
            ObjType::Map | ObjType::Table => doc
                .keys(&obj)
                .map(|key| {
                    let values = doc.get_all(&obj, key.as_str())?;
                    Ok((Seg::Key(key), values))
                })
                .collect::<Result<_>>()?,
            ObjType::List => (0..doc.length(&obj))
                .map(|i| Ok((Seg::Index(i), doc.get_all(&obj, i)?)))
                .collect::<Result<_>>()?,
            ObjType::Text => Vec::new(),
        };
        // Pushed in reverse so that the walk visits children in document order.
        let mut nested = Vec::new();
        for (seg, values) in children {
            for (value, op) in values {
                let mut child = path.clone();
                child.push(seg.clone());
                if child.len() > MAX_DEPTH {
                    return Err(Error::InvalidDocument(format!(
                        "it is nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                let leaf = match value {
                    Value::Object(ObjType::Map) => Leaf::Map,
                    Value::Object(ObjType::List) => Leaf::List,
                    Value::Object(ObjType::Text) => Leaf::Text(doc.text(&op)?),
                    Value::Object(ObjType::Table) => Leaf::Other("table"),
                    Value::Scalar(s) => scalar(s.as_ref()),
                };
                if matches!(leaf, Leaf::Map | Leaf::List | Leaf::Other("table")) {
                    nested.push((op.clone(), child.clone()));
                }
                entries.push(Entry {
                    path: child,
                    op,
                    value: leaf,
                });
                if entries.len() > MAX_ENTRIES {
                    return Err(Error::InvalidDocument(format!(
                        "it holds more than {MAX_ENTRIES} values"
                    )));
                }
            }
        }
        stack.extend(nested.into_iter().rev());
    }
    Ok(Flat { entries })
}

fn scalar(value: &ScalarValue) -> Leaf {
    match value {
        ScalarValue::Str(s) => Leaf::Str(s.to_string()),
        ScalarValue::Int(i) => Leaf::Int(*i),
        ScalarValue::Uint(u) => Leaf::Uint(*u),
        ScalarValue::F64(f) => Leaf::F64(*f),
        ScalarValue::Boolean(b) => Leaf::Bool(*b),
        ScalarValue::Null => Leaf::Null,
        ScalarValue::Counter(_) => Leaf::Other("counter"),
        ScalarValue::Timestamp(_) => Leaf::Other("timestamp"),
        ScalarValue::Bytes(_) => Leaf::Other("bytes"),
        ScalarValue::Unknown { .. } => Leaf::Other("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;

    use super::*;

    #[test]
    fn a_document_nested_past_the_limit_is_refused_without_recursion() {
        let mut doc = AutoCommit::new();
        let mut obj = ROOT;
        for _ in 0..10_000 {
            obj = doc.put_object(&obj, "x", ObjType::Map).expect("put");
        }
        let error = flatten(&doc).expect_err("too deep");
        assert!(error.to_string().contains("nested deeper"), "{error}");
    }

    #[test]
    fn concurrent_values_are_all_kept_with_their_operations() {
        let mut a = AutoCommit::new();
        a.put(ROOT, "level", "general").expect("put");
        let mut b = a.fork();
        a.put(ROOT, "level", "major").expect("put");
        b.put(ROOT, "level", "minor").expect("put");
        a.merge(&mut b).expect("merge");
        let flat = flatten(&a).expect("flat");
        let values: Vec<_> = flat.entries.iter().map(|e| e.value.clone()).collect();
        assert_eq!(values.len(), 2);
        assert!(values.contains(&Leaf::Str("major".into())));
        assert!(values.contains(&Leaf::Str("minor".into())));
        assert_ne!(flat.entries[0].op, flat.entries[1].op);
    }
}
