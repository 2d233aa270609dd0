//! What an incoming sync message may cost, checked before Automerge expands anything of it.
//!
//! `automerge::sync::Message::decode` only splits a message into its parts: the chunks in
//! `changes` are inflated and their operations materialised later, inside
//! `receive_sync_message`, without bound. A 1 MB DEFLATE chunk can inflate to gigabytes,
//! and a run-length-encoded column of a few bytes can declare billions of operations. So
//! every incoming message first passes [`check`]:
//!
//! 1. the bytes of all its change entries are joined and walked chunk by chunk (a chunk
//!    may span entries), reading only chunk headers;
//! 2. whole-document and bundle chunks are refused (peers send changes; the server never
//!    advertises the message format that carries whole documents);
//! 3. a compressed change is inflated under a cap and passed on uncompressed;
//! 4. each change's operations are counted from its run-length-encoded action column,
//!    under a cap, before Automerge parses it;
//! 5. only then are the changes parsed, and [`check_depth`] bounds how deep the objects
//!    they create would nest in the document, from their decoded operations.
//!
//! What the wire accepts, and what it costs in bytes, is written in docs/protocol.md §3.

use std::collections::HashMap;
use std::io::Read;

use automerge::sync::Message;
use automerge::{AutoCommit, Change, ReadDoc};
use sha2::{Digest, Sha256};

/// The four bytes every Automerge chunk starts with.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED: u8 = 2;
const CHUNK_BUNDLE: u8 = 3;
/// The column spec of a change's action column: id 4, type integer (RLE), not deflated.
const ACTION_COLUMN: u64 = (4 << 4) | 2;

/// The limits an incoming message is held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one change, uncompressed.
    pub change_bytes: usize,
    /// Bytes of all changes of one message, uncompressed.
    pub message_bytes: usize,
    /// Changes in one message.
    pub changes: usize,
    /// Operations in one change.
    pub change_ops: u64,
    /// Operations in all changes of one message.
    pub message_ops: u64,
    /// How deep objects may nest in a document.
    pub depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            change_bytes: 4 * 1024 * 1024,
            message_bytes: 16 * 1024 * 1024,
            changes: 20_000,
            change_ops: 100_000,
            message_ops: 400_000,
            depth: crate::paths::MAX_DEPTH,
        }
    }
}

/// Why an incoming message was refused before anything of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The change bytes are not a sequence of Automerge chunks.
    #[error("the changes are not Automerge change chunks: {0}")]
    Malformed(String),
    /// A whole document or a bundle where changes are expected.
    #[error("a {0} chunk is not accepted from a peer; send changes")]
    Unsupported(&'static str),
    /// Too many bytes once inflated.
    #[error("{what} is {size} bytes uncompressed, the limit is {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size (or how far it was read before giving up).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Too many changes or operations.
    #[error("{what}: more than {limit}")]
    TooMany {
        /// What there were too many of.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// Objects nested deeper than the limit.
    #[error("the changes nest objects {depth} levels deep, the limit is {limit}")]
    TooDeep {
        /// The depth reached.
        depth: usize,
        /// The limit.
        limit: usize,
    },
}

/// A message that passed the limits: the same message with its changes as uncompressed
/// change chunks, one per entry, and those changes parsed.
#[derive(Debug)]
pub struct Checked {
    /// The message to apply.
    pub message: Message,
    /// Its changes.
    pub changes: Vec<Change>,
}

/// Checks every change of `message` against `limits`, inflating compressed ones under the
/// cap, before anything of it is applied.
pub fn check(mut message: Message, limits: &Limits) -> Result<Checked, IntakeError> {
    let joined: Vec<u8> = message.changes.iter().flatten().copied().collect();
    let mut rest = joined.as_slice();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut total_bytes = 0usize;
    let mut total_ops = 0u64;
    while !rest.is_empty() {
        if chunks.len() >= limits.changes {
            return Err(IntakeError::TooMany {
                what: "changes in one message",
                limit: limits.changes as u64,
            });
        }
        let Chunk {
            kind,
            checksum,
            data,
            rest: after,
        } = split_chunk(rest)?;
        rest = after;
        let chunk = match kind {
            CHUNK_CHANGE => {
                if data.len() > limits.change_bytes {
                    return Err(IntakeError::TooLarge {
                        what: "a change",
                        size: data.len(),
                        limit: limits.change_bytes,
                    });
                }
                change_chunk(data)
            }
            CHUNK_COMPRESSED => {
                let inflated = inflate(data, limits.change_bytes)?;
                let chunk = change_chunk(&inflated);
                if chunk[4..8] != checksum {
                    return Err(IntakeError::Malformed(
                        "a compressed change's checksum does not match its content".into(),
                    ));
                }
                chunk
            }
            CHUNK_DOCUMENT => return Err(IntakeError::Unsupported("whole-document")),
            CHUNK_BUNDLE => return Err(IntakeError::Unsupported("bundle")),
            other => {
                return Err(IntakeError::Malformed(format!(
                    "unknown chunk type {other}"
                )));
            }
        };
        total_bytes += chunk.len();
        if total_bytes > limits.message_bytes {
            return Err(IntakeError::TooLarge {
                what: "the message's changes",
                size: total_bytes,
                limit: limits.message_bytes,
            });
        }
        let ops = count_ops(&chunk[chunk_header_len(&chunk)..], limits.change_ops)?;
        total_ops += ops;
        if total_ops > limits.message_ops {
            return Err(IntakeError::TooMany {
                what: "operations in one message",
                limit: limits.message_ops,
            });
        }
        chunks.push(chunk);
    }
    let changes = chunks
        .iter()
        .map(|bytes| {
            Change::try_from(bytes.as_slice())
                .map_err(|e| IntakeError::Malformed(format!("a change does not parse: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    message.changes = chunks.into();
    Ok(Checked { message, changes })
}

/// Checks how deep the objects `changes` create would nest once applied to `doc`: an
/// object made inside the root is at depth 1, one made inside that at depth 2, and so on.
/// Operations on objects neither in `doc` nor made by these changes are skipped (their
/// changes wait for dependencies the server does not keep).
pub fn check_depth(doc: &AutoCommit, changes: &[Change], limit: usize) -> Result<(), IntakeError> {
    // Depth of objects by their id ("counter@actor"), the root at 0.
    let mut depths: HashMap<String, usize> = HashMap::new();
    for change in changes {
        let expanded = change.decode();
        let actor = expanded.actor_id.to_hex_string();
        for (i, op) in expanded.operations.iter().enumerate() {
            let automerge::legacy::OpType::Make(_) = op.action else {
                continue;
            };
            let parent = match &op.obj {
                automerge::legacy::ObjectId::Root => Some(0),
                automerge::legacy::ObjectId::Id(id) => {
                    let key = format!("{}@{}", id.0, id.1.to_hex_string());
                    match depths.get(&key) {
                        Some(depth) => Some(*depth),
                        None => existing_depth(doc, &key),
                    }
                }
            };
            let Some(parent) = parent else {
                continue;
            };
            let depth = parent + 1;
            if depth > limit {
                return Err(IntakeError::TooDeep { depth, limit });
            }
            let counter = expanded.start_op.get() + i as u64;
            depths.insert(format!("{counter}@{actor}"), depth);
        }
    }
    Ok(())
}

/// The depth of an object already in `doc`, if it is there.
fn existing_depth(doc: &AutoCommit, id: &str) -> Option<usize> {
    let (obj, _) = doc.import(id).ok()?;
    Some(doc.parents(&obj).ok()?.count())
}

/// One chunk as its header describes it.
struct Chunk<'a> {
    kind: u8,
    /// The checksum the header states.
    checksum: [u8; 4],
    data: &'a [u8],
    /// What follows the chunk.
    rest: &'a [u8],
}

/// Splits the first chunk off `bytes`.
fn split_chunk(bytes: &[u8]) -> Result<Chunk<'_>, IntakeError> {
    let malformed = |why: &str| IntakeError::Malformed(why.to_owned());
    if bytes.len() < 9 || bytes[..4] != MAGIC {
        return Err(malformed(
            "a chunk does not start with Automerge's magic bytes",
        ));
    }
    let checksum = [bytes[4], bytes[5], bytes[6], bytes[7]];
    let kind = bytes[8];
    let (len, used) = uleb(&bytes[9..]).ok_or_else(|| malformed("a chunk length is damaged"))?;
    let start = 9 + used;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| malformed("a chunk is longer than the message"))?;
    Ok(Chunk {
        kind,
        checksum,
        data: &bytes[start..end],
        rest: &bytes[end..],
    })
}

/// An uncompressed change chunk around `data`, with its checksum.
fn change_chunk(data: &[u8]) -> Vec<u8> {
    let mut header = vec![CHUNK_CHANGE];
    put_uleb(&mut header, data.len() as u64);
    let hash = Sha256::new()
        .chain_update(&header)
        .chain_update(data)
        .finalize();
    let mut chunk = Vec::with_capacity(8 + header.len() + data.len());
    chunk.extend(MAGIC);
    chunk.extend(&hash[..4]);
    chunk.extend(header);
    chunk.extend(data);
    chunk
}

fn chunk_header_len(chunk: &[u8]) -> usize {
    9 + uleb(&chunk[9..]).map_or(0, |(_, used)| used)
}

/// Inflates DEFLATE `data`, refusing to produce more than `limit` bytes.
fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, IntakeError> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            IntakeError::Malformed(format!("a compressed change does not inflate: {e}"))
        })?;
    if out.len() > limit {
        return Err(IntakeError::TooLarge {
            what: "a compressed change",
            size: out.len(),
            limit,
        });
    }
    Ok(out)
}

/// How many operations a change declares: the length of its run-length-encoded action
/// column, summed under `limit` without expanding it.
fn count_ops(data: &[u8], limit: u64) -> Result<u64, IntakeError> {
    let malformed = |why: &str| IntakeError::Malformed(format!("a change's header: {why}"));
    let mut r = Reader(data);
    let deps = r.uleb().ok_or_else(|| malformed("dependencies"))?;
    for _ in 0..deps {
        r.take(32).ok_or_else(|| malformed("dependencies"))?;
    }
    let actor = r.uleb().ok_or_else(|| malformed("actor"))?;
    r.take_len(actor).ok_or_else(|| malformed("actor"))?;
    r.uleb().ok_or_else(|| malformed("seq"))?;
    r.uleb().ok_or_else(|| malformed("start op"))?;
    r.uleb().ok_or_else(|| malformed("time"))?;
    let message = r.uleb().ok_or_else(|| malformed("message"))?;
    r.take_len(message).ok_or_else(|| malformed("message"))?;
    let others = r.uleb().ok_or_else(|| malformed("actors"))?;
    for _ in 0..others {
        let len = r.uleb().ok_or_else(|| malformed("actors"))?;
        r.take_len(len).ok_or_else(|| malformed("actors"))?;
    }
    let columns = r.uleb().ok_or_else(|| malformed("columns"))?;
    let mut offset = 0u64;
    let mut action = None;
    for _ in 0..columns {
        let spec = r.uleb().ok_or_else(|| malformed("columns"))?;
        let len = r.uleb().ok_or_else(|| malformed("columns"))?;
        if spec == ACTION_COLUMN {
            action = Some((offset, len));
        }
        offset = offset
            .checked_add(len)
            .ok_or_else(|| malformed("columns"))?;
    }
    let Some((start, len)) = action else {
        return Ok(0);
    };
    let column = usize::try_from(start)
        .ok()
        .zip(usize::try_from(len).ok())
        .and_then(|(start, len)| r.0.get(start..start.checked_add(len)?))
        .ok_or_else(|| malformed("the action column is outside the change"))?;
    let mut column = Reader(column);
    let mut ops = 0u64;
    while !column.0.is_empty() {
        let count = column.sleb().ok_or_else(|| malformed("action column"))?;
        let run = match count {
            0 => column.uleb().ok_or_else(|| malformed("action column"))?,
            n if n > 0 => {
                column.uleb().ok_or_else(|| malformed("action column"))?;
                n.unsigned_abs()
            }
            n => {
                let literals = n.unsigned_abs();
                for _ in 0..literals {
                    column.uleb().ok_or_else(|| malformed("action column"))?;
                }
                literals
            }
        };
        ops = ops.saturating_add(run);
        if ops > limit {
            return Err(IntakeError::TooMany {
                what: "operations in one change",
                limit,
            });
        }
    }
    Ok(ops)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let taken = self.0.get(..n)?;
        self.0 = &self.0[n..];
        Some(taken)
    }

    fn take_len(&mut self, n: u64) -> Option<&'a [u8]> {
        self.take(usize::try_from(n).ok()?)
    }

    fn uleb(&mut self) -> Option<u64> {
        let (value, used) = uleb(self.0)?;
        self.0 = &self.0[used..];
        Some(value)
    }

    fn sleb(&mut self) -> Option<i64> {
        let mut result: i64 = 0;
        let mut shift = 0;
        for (i, byte) in self.0.iter().enumerate() {
            if shift >= 64 {
                return None;
            }
            result |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    result |= -1i64 << shift;
                }
                self.0 = &self.0[i + 1..];
                return Some(result);
            }
        }
        None
    }
}

/// An unsigned LEB128 number and how many bytes it took.
fn uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut result: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        result |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((result, i + 1));
        }
    }
    None
}

fn put_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use automerge::sync::SyncDoc;
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ROOT};

    use super::*;

    /// A sync message from a new peer carrying `doc`'s changes, as a stock peer sends them.
    fn message_of(doc: &mut AutoCommit) -> Message {
        let mut empty = AutoCommit::new();
        let mut ours = automerge::sync::State::new();
        let mut theirs = automerge::sync::State::new();
        // Two rounds: the first exchanges heads, the second carries the changes. The
        // first carries no capability flags, as the server's never do, so the changes
        // come one by one rather than as a whole document.
        let mut first = empty
            .sync()
            .generate_sync_message(&mut ours)
            .expect("first");
        first.flags = None;
        doc.sync()
            .receive_sync_message(&mut theirs, first)
            .expect("receive");
        doc.sync()
            .generate_sync_message(&mut theirs)
            .expect("changes")
    }

    fn sample_doc() -> AutoCommit {
        let mut doc = AutoCommit::new();
        let map = doc.put_object(ROOT, "findings", ObjType::Map).expect("put");
        doc.put(&map, "a", "一般隐患").expect("put");
        doc.commit();
        doc
    }

    #[test]
    fn ordinary_changes_pass_and_are_counted() {
        let mut doc = sample_doc();
        let checked = check(message_of(&mut doc), &Limits::default()).expect("passes");
        assert_eq!(checked.changes.len(), 1);
        assert_eq!(checked.changes[0].len(), 2);
        assert_eq!(
            count_ops(
                &checked.changes[0].raw_bytes()[chunk_header_len(checked.changes[0].raw_bytes())..],
                10
            ),
            Ok(2)
        );
    }

    #[test]
    fn a_compressed_change_is_inflated_under_the_cap() {
        let mut doc = sample_doc();
        let mut message = message_of(&mut doc);
        let raw = message.changes.iter().next().expect("a change").to_vec();
        let data = &raw[chunk_header_len(&raw)..];
        let mut deflated =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        deflated.write_all(data).expect("deflate");
        let deflated = deflated.finish().expect("deflate");
        let mut compressed = Vec::new();
        compressed.extend(MAGIC);
        compressed.extend(&raw[4..8]);
        compressed.push(CHUNK_COMPRESSED);
        put_uleb(&mut compressed, deflated.len() as u64);
        compressed.extend(&deflated);
        message.changes = vec![compressed.clone()].into();
        let checked = check(message.clone(), &Limits::default()).expect("passes");
        assert_eq!(checked.message.changes.iter().next(), Some(raw.as_slice()));

        let tight = Limits {
            change_bytes: data.len() - 1,
            ..Limits::default()
        };
        assert!(matches!(
            check(message, &tight),
            Err(IntakeError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_chunk_split_across_entries_is_read_whole() {
        let mut doc = sample_doc();
        let mut message = message_of(&mut doc);
        let raw = message.changes.iter().next().expect("a change").to_vec();
        let (a, b) = raw.split_at(5);
        message.changes = vec![a.to_vec(), b.to_vec()].into();
        let checked = check(message, &Limits::default()).expect("passes");
        assert_eq!(checked.changes.len(), 1);
    }

    #[test]
    fn documents_and_bundles_are_refused() {
        let mut doc = sample_doc();
        let mut message = message_of(&mut doc);
        message.changes = vec![doc.save()].into();
        assert_eq!(
            check(message.clone(), &Limits::default()).err(),
            Some(IntakeError::Unsupported("whole-document"))
        );
        let mut bundle = doc.save();
        bundle[8] = CHUNK_BUNDLE;
        message.changes = vec![bundle].into();
        assert_eq!(
            check(message, &Limits::default()).err(),
            Some(IntakeError::Unsupported("bundle"))
        );
    }

    #[test]
    fn a_declared_run_of_billions_of_operations_is_refused_unexpanded() {
        let mut doc = sample_doc();
        let mut message = message_of(&mut doc);
        let raw = message.changes.iter().next().expect("a change").to_vec();
        let data = raw[chunk_header_len(&raw)..].to_vec();
        // Rewrites the action column as one run of 2^40 "make map" actions.
        let mut r = Reader(&data);
        let deps = r.uleb().expect("deps");
        r.take(32 * deps as usize).expect("deps");
        let actor = r.uleb().expect("actor");
        r.take_len(actor).expect("actor");
        for _ in 0..3 {
            r.uleb().expect("field");
        }
        let message_len = r.uleb().expect("message");
        r.take_len(message_len).expect("message");
        let others = r.uleb().expect("actors");
        assert_eq!(others, 0);
        let columns_at = data.len() - r.0.len();
        let count = r.uleb().expect("columns");
        let mut specs = Vec::new();
        for _ in 0..count {
            specs.push((r.uleb().expect("spec"), r.uleb().expect("len")));
        }
        let column_data = r.0;
        let mut bomb_column = Vec::new();
        put_uleb(&mut bomb_column, 0); // placeholder, replaced below
        bomb_column.clear();
        // sleb(2^40) then the value 0.
        let mut n: i64 = 1 << 40;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 && byte & 0x40 == 0 {
                bomb_column.push(byte);
                break;
            }
            bomb_column.push(byte | 0x80);
        }
        bomb_column.push(0);
        let mut rebuilt = data[..columns_at].to_vec();
        put_uleb(&mut rebuilt, count);
        let mut offset = 0usize;
        let mut body: Vec<u8> = Vec::new();
        for (spec, len) in &specs {
            let bytes = &column_data[offset..offset + *len as usize];
            offset += *len as usize;
            let bytes = if *spec == ACTION_COLUMN {
                &bomb_column[..]
            } else {
                bytes
            };
            put_uleb(&mut rebuilt, *spec);
            put_uleb(&mut rebuilt, bytes.len() as u64);
            body.extend(bytes);
        }
        rebuilt.extend(body);
        message.changes = vec![change_chunk(&rebuilt)].into();
        assert_eq!(
            check(message, &Limits::default()).err(),
            Some(IntakeError::TooMany {
                what: "operations in one change",
                limit: Limits::default().change_ops
            })
        );
    }

    #[test]
    fn deep_nesting_is_refused_from_the_operations() {
        let mut doc = AutoCommit::new();
        let mut obj = ROOT;
        for _ in 0..40 {
            obj = doc.put_object(&obj, "x", ObjType::Map).expect("put");
        }
        doc.commit();
        let changes = doc.get_changes(&[]);
        let server = AutoCommit::new();
        assert_eq!(
            check_depth(&server, &changes, 16).err(),
            Some(IntakeError::TooDeep {
                depth: 17,
                limit: 16
            })
        );
        assert_eq!(check_depth(&server, &changes, 40), Ok(()));

        // Nesting onto objects the document already has counts their depth too.
        let mut base = AutoCommit::new();
        let mut obj = ROOT;
        for _ in 0..10 {
            obj = base.put_object(&obj, "x", ObjType::Map).expect("put");
        }
        base.commit();
        let mut more = base.fork();
        let mut inner = obj.clone();
        for _ in 0..10 {
            inner = more.put_object(&inner, "y", ObjType::Map).expect("put");
        }
        more.commit();
        let heads = base.get_heads();
        let added = more.get_changes(&heads);
        assert_eq!(
            check_depth(&base, &added, 16).err(),
            Some(IntakeError::TooDeep {
                depth: 17,
                limit: 16
            })
        );
    }
}
