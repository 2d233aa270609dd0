//! Paths and values in a case document, as the rule book reads them, and the bounded walk
//! over a document from elsewhere: iterative, refusing documents nested deeper than
//! [`MAX_DEPTH`] or holding more than [`MAX_ENTRIES`] values, so that a hostile document
//! cannot exhaust the stack or the memory of whoever reads it next.

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

/// Checks that `doc` is nested no deeper than [`MAX_DEPTH`] and holds no more than
/// [`MAX_ENTRIES`] values (those that lost a conflict included), without recursion.
pub fn check_bounds(doc: &AutoCommit) -> Result<()> {
    let mut values = 0usize;
    let mut stack: Vec<(ObjId, usize)> = vec![(ROOT, 0)];
    while let Some((obj, depth)) = stack.pop() {
        let children: Vec<Vec<(Value<'_>, ObjId)>> = match doc.object_type(&obj)? {
            ObjType::Map | ObjType::Table => doc
                .keys(&obj)
                .map(|key| Ok(doc.get_all(&obj, key.as_str())?))
                .collect::<Result<_>>()?,
            ObjType::List => (0..doc.length(&obj))
                .map(|i| Ok(doc.get_all(&obj, i)?))
                .collect::<Result<_>>()?,
            ObjType::Text => Vec::new(),
        };
        for (value, id) in children.into_iter().flatten() {
            values += 1;
            if values > MAX_ENTRIES {
                return Err(Error::InvalidDocument(format!(
                    "it holds more than {MAX_ENTRIES} values"
                )));
            }
            if let Value::Object(ObjType::Map | ObjType::List | ObjType::Table) = value {
                if depth + 1 >= MAX_DEPTH {
                    return Err(Error::InvalidDocument(format!(
                        "it is nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                stack.push((id, depth + 1));
            }
        }
    }
    Ok(())
}

/// A scalar as a leaf.
pub(crate) fn scalar(value: &ScalarValue) -> Leaf {
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
        let error = check_bounds(&doc).expect_err("too deep");
        assert!(error.to_string().contains("nested deeper"), "{error}");
        let mut shallow = AutoCommit::new();
        let mut obj = ROOT;
        for _ in 0..MAX_DEPTH - 1 {
            obj = shallow.put_object(&obj, "x", ObjType::Map).expect("put");
        }
        check_bounds(&shallow).expect("within the limit");
    }
}
