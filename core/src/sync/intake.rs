//! What an incoming sync message may cost, checked before Automerge expands anything of it.
//!
//! `automerge::sync::Message::decode` only splits a message into its parts: the chunks in
//! `changes` are inflated and their operations materialised later, inside
//! `receive_sync_message`, without bound. A 1 MB DEFLATE chunk can inflate to gigabytes,
//! and a run-length-encoded column of a few bytes can declare billions of operations. So
//! every incoming message first passes [`check`]:
//!
//! 1. its heads, needs and summaries are bounded (each needed change named once), and each
//!    summary's bloom filter asks a sane number of probes per lookup;
//! 2. the bytes of all its change entries are joined and walked chunk by chunk (a chunk
//!    may span entries), reading only chunk headers;
//! 3. whole-document and bundle chunks are refused (peers send changes; the server never
//!    advertises the message format that carries whole documents);
//! 4. a compressed change is inflated under a cap and passed on uncompressed; every
//!    change's checksum must match its content;
//! 5. each change's operations, and the predecessors they name, are counted from its
//!    run-length-encoded columns, under a cap, before Automerge parses it;
//! 6. only then are the changes parsed, and each must be encoded exactly as Automerge
//!    encodes it (Automerge rebuilds stored changes from its operations: a change encoded
//!    otherwise would sit under a hash the document cannot reproduce). Their decoded
//!    operations are kept for every reader after ([`Decoded`]), within the same limits;
//!    [`check_depth`] bounds how deep the objects they create would nest in the document.
//!
//! [`admit`] then picks the changes a document may take now, each after its dependencies;
//! the rule book checks how each is written before it is applied (`rules::apply`).
//!
//! What the wire accepts, and what it costs in bytes, is written in docs/protocol.md §3.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::Read;

use automerge::sync::{Message, SyncDoc};
use automerge::{AutoCommit, AutomergeError, Change, ChangeHash, ExpandedChange, ReadDoc};
use sha2::{Digest, Sha256};

/// The four bytes every Automerge chunk starts with.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED: u8 = 2;
const CHUNK_BUNDLE: u8 = 3;
/// The column spec of a change's action column: id 4, type integer (RLE), not deflated.
const ACTION_COLUMN: u64 = (4 << 4) | 2;
/// The column spec of a change's predecessor counts: id 7, type group (RLE), not deflated.
const PRED_COUNT_COLUMN: u64 = 7 << 4;

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
    /// Operations one document may hold.
    pub case_ops: u64,
    /// Bytes of all the changes one document may hold, each counted as encoded alone and
    /// uncompressed (a case keeps every value ever written, and every reader loads it).
    pub case_bytes: u64,
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
            case_ops: 1_000_000,
            case_bytes: 64 * 1024 * 1024,
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
    /// Their operations.
    pub decoded: Decoded,
}

/// The operations of changes, decoded once (as the limits were checked) for every reader
/// after: the depth check, the check of how each change is written, the rule book.
#[derive(Debug, Default)]
pub struct Decoded(HashMap<ChangeHash, ExpandedChange>);

impl Decoded {
    /// The operations of `change`: as decoded before, or decoded now for a change that
    /// came another way.
    pub fn of(&self, change: &Change) -> Cow<'_, ExpandedChange> {
        match self.0.get(&change.hash()) {
            Some(expanded) => Cow::Borrowed(expanded),
            None => Cow::Owned(change.decode()),
        }
    }
}

/// Checks every change of `message` against `limits`, inflating compressed ones under the
/// cap, before anything of it is applied.
pub fn check(mut message: Message, limits: &Limits) -> Result<Checked, IntakeError> {
    check_summary(&message, limits)?;
    // Automerge builds a change for each hash the peer needs, as often as it is named, and
    // panics building a small change twice: each is named once.
    let mut named = HashSet::new();
    message.need.retain(|hash| named.insert(*hash));
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
            CHUNK_COMPRESSED => change_chunk(&inflate(data, limits.change_bytes)?),
            CHUNK_DOCUMENT => return Err(IntakeError::Unsupported("whole-document")),
            CHUNK_BUNDLE => return Err(IntakeError::Unsupported("bundle")),
            other => {
                return Err(IntakeError::Malformed(format!(
                    "unknown chunk type {other}"
                )));
            }
        };
        if chunk[4..8] != checksum {
            return Err(IntakeError::Malformed(
                "a change's checksum does not match its content".into(),
            ));
        }
        total_bytes += chunk.len();
        if total_bytes > limits.message_bytes {
            return Err(IntakeError::TooLarge {
                what: "the message's changes",
                size: total_bytes,
                limit: limits.message_bytes,
            });
        }
        let ops = count_ops(&chunk[chunk_header_len(&chunk)..], limits.change_ops)?;
        total_ops += ops.operations + ops.predecessors;
        if total_ops > limits.message_ops {
            return Err(IntakeError::TooMany {
                what: "operations in one message",
                limit: limits.message_ops,
            });
        }
        chunks.push(chunk);
    }
    let mut decoded = HashMap::new();
    let changes = chunks
        .iter()
        .map(|bytes| {
            let change = Change::try_from(bytes.as_slice())
                .map_err(|e| IntakeError::Malformed(format!("a change does not parse: {e}")))?;
            // Automerge rebuilds changes from its operations as it encodes them: one encoded
            // otherwise would be stored under a hash the document cannot reproduce.
            let expanded = change.decode();
            if Change::from(expanded.clone()).hash() != change.hash() {
                return Err(IntakeError::Malformed(
                    "a change is not encoded as Automerge encodes it".into(),
                ));
            }
            decoded.insert(change.hash(), expanded);
            Ok(change)
        })
        .collect::<Result<Vec<_>, _>>()?;
    message.changes = chunks.into();
    Ok(Checked {
        message,
        changes,
        decoded: Decoded(decoded),
    })
}

/// How many hashes a message may list in its heads, its needs, and each summary of what
/// its sender has; and how many such summaries it may carry (a peer sends one).
const HAVES: usize = 4;

/// Checks the parts of a message besides its changes: their lengths, and that each bloom
/// filter asks for a sane number of probes per lookup (each probe of each lookup is
/// allocated: a filter asking billions of them exhausts memory).
fn check_summary(message: &Message, limits: &Limits) -> Result<(), IntakeError> {
    let too_many = |what| IntakeError::TooMany {
        what,
        limit: limits.changes as u64,
    };
    if message.heads.len() > limits.changes {
        return Err(too_many("heads in one message"));
    }
    if message.need.len() > limits.changes {
        return Err(too_many("needed changes in one message"));
    }
    if message.have.len() > HAVES {
        return Err(IntakeError::TooMany {
            what: "summaries in one message",
            limit: HAVES as u64,
        });
    }
    for have in &message.have {
        if have.last_sync.len() > limits.changes {
            return Err(too_many("heads of one summary"));
        }
        let bloom = have.bloom.to_bytes();
        let mut r = Reader(&bloom);
        if r.0.is_empty() {
            continue;
        }
        let sane = (|| {
            let _entries = r.uleb()?;
            let bits = r.uleb()?;
            let probes = r.uleb()?;
            Some((1..=64).contains(&bits) && (1..=32).contains(&probes))
        })();
        if sane != Some(true) {
            return Err(IntakeError::Malformed(
                "a summary's bloom filter is not one a peer makes".into(),
            ));
        }
    }
    Ok(())
}

/// The changes of a checked message that may be applied to a document now, and the
/// message that carries them.
#[derive(Debug)]
pub struct Admitted {
    /// The changes the document does not have whose dependencies it has (or that come
    /// earlier in this list), each after its dependencies.
    pub changes: Vec<Change>,
    /// The message, carrying the changes the document already had and those admitted:
    /// changes that wait for dependencies neither the document nor the message holds are
    /// left out (never queued inside the document; the peer is asked for what is missing
    /// and sends them again).
    pub message: Message,
    /// How many changes wait. A peer does not send a change twice in one session, so the
    /// answer to a message whose changes waited is [`rewind`].
    pub waiting: usize,
    /// The operations of the message's changes.
    pub decoded: Decoded,
}

/// A message carrying `changes` (change chunks one after another) and nothing else, for
/// changes that came another way than a sync message (a case file from another device):
/// they pass the same `check`.
pub fn carrying(changes: Vec<u8>) -> Message {
    Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: vec![changes].into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
}

/// A message that makes the peer send every change of the document again: it reads as
/// from a peer that lost the document (no heads, an empty summary), on which Automerge
/// forgets which changes it sent. The answer to a message whose changes had to wait for
/// dependencies it did not carry (as when a bloom filter's false positive made the peer
/// skip one): the peer's next message carries them all, in order.
pub fn rewind() -> Message {
    Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: vec![automerge::sync::Have::default()],
        changes: Vec::<Vec<u8>>::new().into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
}

/// Which changes of `checked` may be applied to `doc` now. Automerge is never asked to
/// rebuild a change to tell whether the document has it: only its change graph is read.
pub fn admit(doc: &AutoCommit, checked: Checked) -> Admitted {
    let Checked {
        mut message,
        changes,
        decoded,
    } = checked;
    let mut carried: Vec<Vec<u8>> = changes
        .iter()
        .filter(|change| has(doc, &change.hash()))
        .map(|change| change.raw_bytes().to_vec())
        .collect();
    let (admitted, waiting) = in_causal_order(doc, &changes);
    carried.extend(admitted.iter().map(|c| c.raw_bytes().to_vec()));
    message.changes = carried.into();
    Admitted {
        changes: admitted,
        message,
        waiting,
        decoded,
    }
}

/// Receives `message` (as `admit` left it) on `doc` when `doc` already holds every change
/// the message carries (the judge applied them), moving `state` exactly as receiving the
/// whole message would, without Automerge parsing and verifying each change again only
/// to find that the document has it.
///
/// Receiving changes a document already has leaves its heads as they were, so Automerge
/// keeps of the shared heads only those still among them, and, because the message
/// carried changes, does not take its heads as the ones last sent. Both are done here
/// around receiving the message without its changes. This follows what Automerge's
/// receiving does; the tests below compare the two on real sync rounds, and are what
/// would say if a new Automerge changed it.
pub fn receive_applied(
    doc: &mut AutoCommit,
    state: &mut automerge::sync::State,
    mut message: Message,
) -> Result<(), AutomergeError> {
    if message.changes.is_empty() || state.read_only {
        return doc.sync().receive_sync_message(state, message);
    }
    let heads = doc.get_heads();
    state.shared_heads.retain(|head| heads.contains(head));
    state.shared_heads.sort();
    state.shared_heads.dedup();
    let last_sent = state.last_sent_heads.clone();
    message.changes = Vec::<Vec<u8>>::new().into();
    doc.sync().receive_sync_message(state, message)?;
    state.last_sent_heads = last_sent;
    Ok(())
}

/// Whether `doc` has the change `hash` (read from its change graph alone).
fn has(doc: &AutoCommit, hash: &ChangeHash) -> bool {
    !ReadDoc::get_missing_deps(doc, &[*hash]).contains(hash)
}

/// The changes of `changes` that `doc` does not have and can take now, each after its
/// dependencies, and how many wait for dependencies neither holds.
pub fn in_causal_order(doc: &AutoCommit, changes: &[Change]) -> (Vec<Change>, usize) {
    let mut fresh: Vec<&Change> = Vec::new();
    let mut index: HashMap<ChangeHash, usize> = HashMap::new();
    for change in changes {
        let hash = change.hash();
        if has(doc, &hash) {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(hash) {
            slot.insert(fresh.len());
            fresh.push(change);
        }
    }
    // Each change after its dependencies; one whose dependencies are missing, and every
    // change after it, waits.
    let mut waiting_on = vec![0usize; fresh.len()];
    let mut blocked = vec![false; fresh.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); fresh.len()];
    for (i, change) in fresh.iter().enumerate() {
        for dep in change.deps() {
            match index.get(dep) {
                Some(&j) => {
                    waiting_on[i] += 1;
                    dependents[j].push(i);
                }
                None if !has(doc, dep) => blocked[i] = true,
                None => {}
            }
        }
    }
    let mut ready = Ready::default();
    for i in (0..fresh.len()).filter(|&i| waiting_on[i] == 0 && !blocked[i]) {
        ready.push(fresh[i].actor_id(), i);
    }
    let mut admitted = Vec::new();
    while let Some(i) = ready.next() {
        admitted.push(fresh[i].clone());
        for &k in &dependents[i] {
            waiting_on[k] -= 1;
            if waiting_on[k] == 0 && !blocked[k] {
                ready.push(fresh[k].actor_id(), k);
            }
        }
    }
    let waiting = fresh.len() - admitted.len();
    (admitted, waiting)
}

/// Changes whose dependencies are all taken, by actor. The next is the last actor's while
/// it has one ready, then the first of the actor that has waited longest: each actor's
/// changes come one after another as far as their dependencies allow. Concurrent work of
/// two phones carried in one message would otherwise alternate, and the rule book judges
/// one author's run of changes at a time, with a copy of the document for each run
/// (`rules::judging::TRIALS`).
#[derive(Default)]
struct Ready<'a> {
    by_actor: HashMap<&'a automerge::ActorId, std::collections::VecDeque<usize>>,
    /// Actors in the order a change of theirs became ready when none was (one may be
    /// named again after its changes were taken).
    actors: std::collections::VecDeque<&'a automerge::ActorId>,
    last: Option<&'a automerge::ActorId>,
}

impl<'a> Ready<'a> {
    fn push(&mut self, actor: &'a automerge::ActorId, change: usize) {
        let queue = self.by_actor.entry(actor).or_default();
        if queue.is_empty() {
            self.actors.push_back(actor);
        }
        queue.push_back(change);
    }

    fn next(&mut self) -> Option<usize> {
        let has_one = |by_actor: &HashMap<_, std::collections::VecDeque<usize>>, actor| {
            by_actor.get(actor).is_some_and(|q| !q.is_empty())
        };
        let actor = match self.last.filter(|a| has_one(&self.by_actor, *a)) {
            Some(actor) => actor,
            None => loop {
                let actor = self.actors.pop_front()?;
                if has_one(&self.by_actor, actor) {
                    break actor;
                }
            },
        };
        self.last = Some(actor);
        self.by_actor.get_mut(actor)?.pop_front()
    }
}

/// Checks how deep the objects `changes` create would nest once applied to `doc`: an
/// object made inside the root is at depth 1, one made inside that at depth 2, and so on.
/// Operations on objects neither in `doc` nor made by these changes are skipped (their
/// changes wait for dependencies the server does not keep).
pub fn check_depth(
    doc: &AutoCommit,
    changes: &[Change],
    decoded: &Decoded,
    limit: usize,
) -> Result<(), IntakeError> {
    use crate::rules::written::{nth_op, object_of};
    // Depth of objects the changes make, by id.
    let mut depths: HashMap<automerge::ObjId, usize> = HashMap::new();
    for change in changes {
        let expanded = decoded.of(change);
        for (i, op) in expanded.operations.iter().enumerate() {
            let automerge::legacy::OpType::Make(_) = op.action else {
                continue;
            };
            let obj = object_of(&op.obj);
            let parent = match depths.get(&obj) {
                Some(depth) => Some(*depth),
                None if obj == automerge::ROOT => Some(0),
                None => existing_depth(doc, &obj),
            };
            let Some(parent) = parent else {
                continue;
            };
            let depth = parent + 1;
            if depth > limit {
                return Err(IntakeError::TooDeep { depth, limit });
            }
            depths.insert(nth_op(&expanded, i), depth);
        }
    }
    Ok(())
}

/// The depth of an object already in `doc`, if it is there.
fn existing_depth(doc: &AutoCommit, obj: &automerge::ObjId) -> Option<usize> {
    Some(doc.parents(obj).ok()?.count())
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

/// What a change declares it holds, counted from its run-length-encoded columns.
struct Counted {
    operations: u64,
    predecessors: u64,
}

/// How many operations a change declares (the length of its action column), and how many
/// predecessors they name (the sum of its predecessor-count column), each under `limit`,
/// without expanding either.
fn count_ops(data: &[u8], limit: u64) -> Result<Counted, IntakeError> {
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
    let mut pred = None;
    for _ in 0..columns {
        let spec = r.uleb().ok_or_else(|| malformed("columns"))?;
        let len = r.uleb().ok_or_else(|| malformed("columns"))?;
        match spec {
            ACTION_COLUMN => action = Some((offset, len)),
            PRED_COUNT_COLUMN => pred = Some((offset, len)),
            _ => {}
        }
        offset = offset
            .checked_add(len)
            .ok_or_else(|| malformed("columns"))?;
    }
    let column = |at: Option<(u64, u64)>, what: &'static str| {
        let Some((start, len)) = at else {
            return Ok(&[][..]);
        };
        usize::try_from(start)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(start, len)| r.0.get(start..start.checked_add(len)?))
            .ok_or_else(|| malformed(what))
    };
    let operations = sum_runs(
        column(action, "the action column is outside the change")?,
        limit,
        "operations in one change",
        |_| 1,
    )?;
    let predecessors = sum_runs(
        column(pred, "the predecessor column is outside the change")?,
        limit,
        "predecessors in one change",
        |value| value.unwrap_or(0),
    )?;
    Ok(Counted {
        operations,
        predecessors,
    })
}

/// Walks a run-length-encoded column of unsigned integers and sums `weight` of each value
/// (`None` for a null), refusing to go past `limit`.
fn sum_runs(
    column: &[u8],
    limit: u64,
    what: &'static str,
    weight: impl Fn(Option<u64>) -> u64,
) -> Result<u64, IntakeError> {
    let malformed = || IntakeError::Malformed(format!("a change's column of {what}"));
    let mut column = Reader(column);
    let mut sum = 0u64;
    while !column.0.is_empty() {
        let count = column.sleb().ok_or_else(malformed)?;
        let added = match count {
            0 => {
                let nulls = column.uleb().ok_or_else(malformed)?;
                nulls.saturating_mul(weight(None))
            }
            n if n > 0 => {
                let value = column.uleb().ok_or_else(malformed)?;
                n.unsigned_abs().saturating_mul(weight(Some(value)))
            }
            n => {
                let mut literals = 0u64;
                for _ in 0..n.unsigned_abs() {
                    let value = column.uleb().ok_or_else(malformed)?;
                    literals = literals.saturating_add(weight(Some(value)));
                }
                literals
            }
        };
        sum = sum.saturating_add(added);
        if sum > limit {
            return Err(IntakeError::TooMany { what, limit });
        }
    }
    Ok(sum)
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
        // The tenth byte holds the 64th bit only.
        if i == 9 && byte & 0x7f > 1 {
            return None;
        }
        result |= u64::from(byte & 0x7f) << (7 * i);
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

    use automerge::transaction::Transactable;
    use automerge::{ObjType, ROOT};

    use super::*;
    use automerge::sync::{self, SyncDoc};

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
            )
            .map(|counted| (counted.operations, counted.predecessors)),
            Ok((2, 0))
        );
    }

    /// Automerge builds one change per hash a peer says it needs, duplicates too, and
    /// panics on the second copy of a small change: a checked message names each once.
    #[test]
    fn a_change_needed_twice_is_answered_once() {
        let mut doc = sample_doc();
        let hash = doc.get_heads()[0];
        let message = Message {
            need: vec![hash, hash, hash],
            ..carrying(Vec::new())
        };
        let checked = check(message, &Limits::default()).expect("passes");
        assert_eq!(checked.message.need, [hash]);
        let mut state = sync::State::new();
        doc.sync()
            .receive_sync_message(&mut state, checked.message)
            .expect("receive");
        let answer = crate::sync::next_message(&mut doc, &mut state).expect("answer");
        assert_eq!(answer.changes.len(), 1);
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

    /// Receives `sent` as the server does (checked, admitted, the changes applied to a
    /// copy of `server`), both whole and with `receive_applied`, and asserts that the two
    /// leave the same sync state and the same next message. Returns whether the message
    /// still carried changes after `admit`.
    fn receive_both_ways(server: &mut AutoCommit, ours: &mut sync::State, sent: Message) -> bool {
        let admitted = admit(server, check(sent, &Limits::default()).expect("passes"));
        let mut candidate = server.clone();
        candidate
            .apply_changes(admitted.changes.clone())
            .expect("applies");
        let (mut whole, mut whole_state) = (candidate.clone(), ours.clone());
        whole
            .sync()
            .receive_sync_message(&mut whole_state, admitted.message.clone())
            .expect("receives whole");
        let carried = !admitted.message.changes.is_empty();
        receive_applied(&mut candidate, ours, admitted.message).expect("receives");
        assert_eq!(*ours, whole_state, "the same sync state");
        let next = |doc: &mut AutoCommit, state: &sync::State| {
            doc.sync()
                .generate_sync_message(&mut state.clone())
                .map(|m| m.encode())
        };
        assert_eq!(next(&mut candidate, ours), next(&mut whole, &whole_state));
        *server = candidate;
        carried
    }

    /// The server's next message, without capability flags (the server's carry none, so
    /// a peer sends changes, not its whole document).
    fn server_message(server: &mut AutoCommit, ours: &mut sync::State) -> Option<Message> {
        server.sync().generate_sync_message(ours).map(|mut m| {
            m.flags = None;
            m
        })
    }

    /// Syncs `peer` into `server` until neither has more to say, receiving each of the
    /// peer's messages both ways (`receive_both_ways`). Returns how many carried changes.
    fn sync_both_ways(
        server: &mut AutoCommit,
        ours: &mut sync::State,
        peer: &mut AutoCommit,
        theirs: &mut sync::State,
    ) -> usize {
        let mut with_changes = 0;
        for _ in 0..10 {
            let asked = server_message(server, ours);
            if let Some(asked) = asked.clone() {
                peer.sync()
                    .receive_sync_message(theirs, asked)
                    .expect("peer receives");
            }
            let Some(sent) = peer.sync().generate_sync_message(theirs) else {
                if asked.is_none() {
                    break;
                }
                continue;
            };
            with_changes += usize::from(receive_both_ways(server, ours, sent));
        }
        assert_eq!(server.get_heads(), peer.get_heads(), "synced");
        with_changes
    }

    fn write(doc: &mut AutoCommit, value: &str) {
        let map = doc.put_object(ROOT, value, ObjType::Map).expect("put");
        doc.put(&map, "level", value).expect("put");
        doc.commit();
    }

    #[test]
    fn receiving_applied_changes_moves_the_state_as_receiving_them_whole() {
        let (mut ours, mut theirs) = (sync::State::new(), sync::State::new());
        // A new case pushed to a server that has nothing of it.
        let mut server = AutoCommit::new();
        let mut peer = sample_doc();
        assert!(sync_both_ways(&mut server, &mut ours, &mut peer, &mut theirs) > 0);
        // Both sides wrote since, the peer on two branches (two heads on its side).
        let mut other = peer.fork();
        write(&mut server, "重大隐患");
        write(&mut peer, "已整改");
        write(&mut other, "复查");
        peer.merge(&mut other).expect("merges");
        assert!(sync_both_ways(&mut server, &mut ours, &mut peer, &mut theirs) > 0);
        // Nothing new: only heads go back and forth.
        assert_eq!(
            sync_both_ways(&mut server, &mut ours, &mut peer, &mut theirs),
            0
        );
    }

    #[test]
    fn receiving_applied_changes_when_some_wait_moves_the_state_as_receiving_them_whole() {
        let (mut ours, mut theirs) = (sync::State::new(), sync::State::new());
        let mut server = AutoCommit::new();
        let mut peer = sample_doc();
        sync_both_ways(&mut server, &mut ours, &mut peer, &mut theirs);
        // Two branches on the peer, one of two changes; the change the second builds on
        // is left out of the message, so the peer's heads are not all known and what
        // was shared is no longer a head.
        let mut other = peer.fork();
        write(&mut peer, "已整改");
        write(&mut other, "复查");
        let left_out = other.get_heads();
        write(&mut other, "复查通过");
        peer.merge(&mut other).expect("merges");
        let mut sent = peer
            .sync()
            .generate_sync_message(&mut theirs)
            .expect("sends");
        let kept: Vec<Vec<u8>> = sent
            .changes
            .iter()
            .filter(|bytes| {
                let hash = Change::from_bytes(bytes.to_vec()).expect("a change").hash();
                !left_out.contains(&hash)
            })
            .map(|bytes| bytes.to_vec())
            .collect();
        assert_eq!(kept.len(), 2, "one of three left out");
        sent.changes = kept.into();
        assert!(receive_both_ways(&mut server, &mut ours, sent));
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

    /// `message`'s first change with the column `spec` replaced by `column`.
    fn with_column(message: &mut Message, spec: u64, column: &[u8]) {
        let raw = message.changes.iter().next().expect("a change").to_vec();
        let data = raw[chunk_header_len(&raw)..].to_vec();
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
        assert!(
            specs.iter().any(|(s, _)| *s == spec),
            "the change has the column"
        );
        let column_data = r.0;
        let mut rebuilt = data[..columns_at].to_vec();
        put_uleb(&mut rebuilt, count);
        let mut offset = 0usize;
        let mut body: Vec<u8> = Vec::new();
        for (this, len) in &specs {
            let bytes = &column_data[offset..offset + *len as usize];
            offset += *len as usize;
            let bytes = if *this == spec { column } else { bytes };
            put_uleb(&mut rebuilt, *this);
            put_uleb(&mut rebuilt, bytes.len() as u64);
            body.extend(bytes);
        }
        rebuilt.extend(body);
        message.changes = vec![change_chunk(&rebuilt)].into();
    }

    /// A run-length-encoded column of `n` repetitions of `value`.
    fn run_of(mut n: i64, value: u64) -> Vec<u8> {
        let mut column = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 && byte & 0x40 == 0 {
                column.push(byte);
                break;
            }
            column.push(byte | 0x80);
        }
        put_uleb(&mut column, value);
        column
    }

    #[test]
    fn a_declared_run_of_billions_of_operations_is_refused_unexpanded() {
        let mut doc = sample_doc();
        let mut message = message_of(&mut doc);
        // One run of 2^40 "make map" actions.
        with_column(&mut message, ACTION_COLUMN, &run_of(1 << 40, 0));
        assert_eq!(
            check(message, &Limits::default()).err(),
            Some(IntakeError::TooMany {
                what: "operations in one change",
                limit: Limits::default().change_ops
            })
        );
    }

    #[test]
    fn billions_of_declared_predecessors_are_refused_unexpanded() {
        let mut doc = sample_doc();
        doc.put(ROOT, "x", 1).expect("put");
        doc.commit();
        doc.put(ROOT, "x", 2).expect("put");
        doc.commit();
        let mut message = message_of(&mut doc);
        message.changes = vec![
            message
                .changes
                .iter()
                .last()
                .expect("the overwrite")
                .to_vec(),
        ]
        .into();
        // Two operations each naming 2^39 predecessors.
        with_column(&mut message, PRED_COUNT_COLUMN, &run_of(2, 1 << 39));
        assert_eq!(
            check(message, &Limits::default()).err(),
            Some(IntakeError::TooMany {
                what: "predecessors in one change",
                limit: Limits::default().change_ops
            })
        );
    }

    #[test]
    fn a_change_whose_checksum_is_wrong_is_refused() {
        let mut doc = sample_doc();
        let mut message = message_of(&mut doc);
        let mut raw = message.changes.iter().next().expect("a change").to_vec();
        raw[4] ^= 0xff;
        message.changes = vec![raw].into();
        assert!(matches!(
            check(message, &Limits::default()),
            Err(IntakeError::Malformed(why)) if why.contains("checksum")
        ));
    }

    #[test]
    fn a_change_encoded_otherwise_than_automerge_encodes_it_is_refused() {
        let mut doc = sample_doc();
        let mut message = message_of(&mut doc);
        // The same two actions, written as two runs of one instead of as literals.
        let mut actions = run_of(1, 0);
        actions.extend(run_of(1, 1));
        with_column(&mut message, ACTION_COLUMN, &actions);
        let reparsed = Change::try_from(message.changes.iter().next().expect("a change"))
            .expect("Automerge parses it");
        assert_eq!(reparsed.decode(), Change::from(reparsed.decode()).decode());
        assert!(matches!(
            check(message, &Limits::default()),
            Err(IntakeError::Malformed(why)) if why.contains("encodes")
        ));
    }

    #[test]
    fn a_bloom_filter_asking_billions_of_probes_is_refused() {
        let mut doc = sample_doc();
        let mut message = message_of(&mut doc);
        let mut bloom = Vec::new();
        for field in [1, 10, 4_000_000_000] {
            put_uleb(&mut bloom, field);
        }
        bloom.extend([0xff; 2]);
        message.have = vec![automerge::sync::Have {
            last_sync: Vec::new(),
            bloom: automerge::sync::BloomFilter::try_from(bloom.as_slice()).expect("bloom"),
        }];
        assert!(matches!(
            check(message, &Limits::default()),
            Err(IntakeError::Malformed(why)) if why.contains("bloom")
        ));
    }

    #[test]
    fn changes_are_admitted_after_their_dependencies_and_never_before() {
        let mut doc = sample_doc();
        let mut server = doc.clone();
        for n in 0..3 {
            doc.put(ROOT, "n", n).expect("put");
            doc.commit();
        }
        let mut changes = doc.get_changes(&server.get_heads());
        changes.reverse();
        let raw: Vec<Vec<u8>> = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
        let mut message = message_of(&mut doc);
        message.changes = raw.clone().into();
        let checked = check(message.clone(), &Limits::default()).expect("passes");
        let admitted = admit(&server, checked);
        let order: Vec<ChangeHash> = admitted.changes.iter().map(Change::hash).collect();
        let mut causal: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
        causal.reverse();
        assert_eq!(order, causal);
        // Without the first, the others wait: nothing is admitted, nothing is carried.
        message.changes = raw[..2].to_vec().into();
        let checked = check(message, &Limits::default()).expect("passes");
        let admitted = admit(&server, checked);
        assert!(admitted.changes.is_empty());
        assert_eq!(admitted.waiting, 2);
        assert_eq!(admitted.message.changes.iter().count(), 0);
        server.apply_changes(admitted.changes).expect("nothing");
    }

    #[test]
    fn deep_nesting_is_refused_from_the_operations() {
        let mut doc = AutoCommit::new();
        let mut obj = ROOT;
        for _ in 0..40 {
            obj = doc.put_object(&obj, "x", ObjType::Map).expect("put");
        }
        doc.commit();
        let bytes = doc
            .get_changes(&[])
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        // As decoded when the message was checked, and as decoded on demand.
        let checked = check(carrying(bytes), &Limits::default()).expect("within the limits");
        let server = AutoCommit::new();
        for decoded in [&checked.decoded, &Decoded::default()] {
            assert_eq!(
                check_depth(&server, &checked.changes, decoded, 16).err(),
                Some(IntakeError::TooDeep {
                    depth: 17,
                    limit: 16
                })
            );
            assert_eq!(check_depth(&server, &checked.changes, decoded, 40), Ok(()));
        }

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
            check_depth(&base, &added, &Decoded::default(), 16).err(),
            Some(IntakeError::TooDeep {
                depth: 17,
                limit: 16
            })
        );
    }
}
