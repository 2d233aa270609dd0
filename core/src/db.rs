//! Persistence of case documents and their query projections in SQLite.
//!
//! A document is stored as a snapshot plus the incremental chunks appended after it; once
//! enough chunks pile up they are folded into a new snapshot (compaction rewrites storage,
//! never history). Projections are written in the same transaction as the chunk.

use automerge::{AutoCommit, ChangeHash};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::codes::CaseId;
use crate::error::{Error, Result};
use crate::signing::ChangeSignature;

/// Fold chunks into a new snapshot once this many have been appended …
const COMPACT_AFTER_CHUNKS: i64 = 64;
/// … or once they hold more bytes than this.
const COMPACT_AFTER_BYTES: i64 = 256 * 1024;

/// A case document as loaded, with the heads that are durable in storage, and the case as
/// the rule book last judged it (kept to judge the next local write against).
pub(crate) struct LoadedDoc {
    pub doc: AutoCommit,
    pub saved_heads: Vec<ChangeHash>,
    pub judged: Option<(Vec<ChangeHash>, crate::rules::CaseState)>,
}

impl LoadedDoc {
    /// A document just loaded or created.
    pub fn new(mut doc: AutoCommit) -> LoadedDoc {
        let saved_heads = doc.get_heads();
        LoadedDoc {
            doc,
            saved_heads,
            judged: None,
        }
    }
}

/// Loads a case document from its snapshot and chunks; `None` if the case is unknown.
pub(crate) fn load_document(conn: &Connection, id: CaseId) -> Result<Option<LoadedDoc>> {
    let key = id.to_string();
    let stored: Option<(Vec<u8>, String)> = conn
        .query_row(
            "SELECT snapshot, heads FROM documents WHERE case_id = ?1",
            [&key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((snapshot, heads)) = stored else {
        return Ok(None);
    };
    let damaged = |e: automerge::AutomergeError| Error::Corrupt(format!("case {id}: {e}"));
    let mut doc = AutoCommit::load(&snapshot).map_err(damaged)?;
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM chunks WHERE case_id = ?1 ORDER BY seq")?;
    let mut rows = stmt.query([&key])?;
    while let Some(row) = rows.next()? {
        let bytes: Vec<u8> = row.get(0)?;
        doc.load_incremental(&bytes).map_err(damaged)?;
    }
    // Automerge loads what it can of a damaged chunk and says nothing; the heads written
    // with the document say whether everything came back (empty only before migration 006
    // filled them). A case that loads short is never saved again short of what it held.
    if !heads.is_empty() && heads_text(&mut doc) != heads {
        return Err(Error::Corrupt(format!(
            "case {id}: its stored changes no longer make the case last written (damaged on disk)"
        )));
    }
    crate::case_doc::forget_patches(&mut doc);
    Ok(Some(LoadedDoc::new(doc)))
}

/// A document's heads as stored: hex, sorted, comma-separated.
pub(crate) fn heads_text(doc: &mut AutoCommit) -> String {
    let mut heads: Vec<String> = doc.get_heads().iter().map(ToString::to_string).collect();
    heads.sort();
    heads.join(",")
}

/// Records a document's current heads.
pub(crate) fn set_heads(tx: &Transaction<'_>, id: CaseId, doc: &mut AutoCommit) -> Result<()> {
    tx.prepare_cached("UPDATE documents SET heads = ?2 WHERE case_id = ?1")?
        .execute(params![id.to_string(), heads_text(doc)])?;
    Ok(())
}

/// Stores a new case document as its first snapshot.
pub(crate) fn insert_document(tx: &Transaction<'_>, id: CaseId, snapshot: &[u8]) -> Result<()> {
    tx.execute(
        "INSERT INTO documents (case_id, snapshot) VALUES (?1, ?2)",
        params![id.to_string(), snapshot],
    )?;
    Ok(())
}

/// Appends the changes made since the last save; compacts when chunks pile up.
pub(crate) fn append_changes(
    tx: &Transaction<'_>,
    id: CaseId,
    doc: &mut AutoCommit,
    bytes: &[u8],
) -> Result<()> {
    set_heads(tx, id, doc)?;
    let key = id.to_string();
    let (count, total, last): (i64, i64, i64) = tx
        .prepare_cached(
            "SELECT count(*), coalesce(sum(length(bytes)), 0), coalesce(max(seq), 0)
             FROM chunks WHERE case_id = ?1",
        )?
        .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if count + 1 >= COMPACT_AFTER_CHUNKS || total + bytes.len() as i64 >= COMPACT_AFTER_BYTES {
        return write_snapshot(tx, id, &doc.save());
    }
    tx.prepare_cached("INSERT INTO chunks (case_id, seq, bytes) VALUES (?1, ?2, ?3)")?
        .execute(params![key, last + 1, bytes])?;
    Ok(())
}

/// Replaces a document's snapshot and chunks with one snapshot.
pub(crate) fn write_snapshot(tx: &Transaction<'_>, id: CaseId, snapshot: &[u8]) -> Result<()> {
    let key = id.to_string();
    tx.execute(
        "UPDATE documents SET snapshot = ?2 WHERE case_id = ?1",
        params![key, snapshot],
    )?;
    tx.execute("DELETE FROM chunks WHERE case_id = ?1", [&key])?;
    Ok(())
}

/// Keeps signatures of a case's changes (a signature already kept stays as it is).
pub(crate) fn keep_signatures(
    tx: &Transaction<'_>,
    id: CaseId,
    signatures: &[ChangeSignature],
) -> Result<()> {
    let key = id.to_string();
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO change_signatures (change_hash, case_id, key_id, signature)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for signature in signatures {
        insert.execute(params![
            signature.hash.to_string(),
            key,
            signature.key.as_slice(),
            signature.signature.as_slice()
        ])?;
    }
    Ok(())
}

/// The signatures kept of the changes `hashes` (those without one are left out).
pub(crate) fn signatures_of(
    conn: &Connection,
    hashes: impl IntoIterator<Item = ChangeHash>,
) -> Result<Vec<ChangeSignature>> {
    let mut select = conn
        .prepare_cached("SELECT key_id, signature FROM change_signatures WHERE change_hash = ?1")?;
    let mut found = Vec::new();
    for hash in hashes {
        let row: Option<(Vec<u8>, Vec<u8>)> = select
            .query_row([hash.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((key, signature)) = row {
            found.push(
                ChangeSignature::from_stored(hash, &key, &signature)
                    .ok_or_else(|| Error::Corrupt(format!("signature of change {hash}")))?,
            );
        }
    }
    Ok(found)
}
