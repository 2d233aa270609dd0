//! Persistence of case documents and their query projections in SQLite.
//!
//! A document is stored as a snapshot plus the incremental chunks appended after it; once
//! enough chunks pile up they are folded into a new snapshot (compaction rewrites storage,
//! never history). Projections are written in the same transaction as the chunk.

use automerge::{AutoCommit, ChangeHash};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::codes::{CaseId, FindingId};
use crate::document::{self, CaseProjection, FindingProjection};
use crate::error::{Error, Result};

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
    let snapshot: Option<Vec<u8>> = conn
        .query_row(
            "SELECT snapshot FROM documents WHERE case_id = ?1",
            [&key],
            |r| r.get(0),
        )
        .optional()?;
    let Some(snapshot) = snapshot else {
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

/// Writes the projection of a whole case, replacing what was there.
pub(crate) fn write_case_projection(
    tx: &Transaction<'_>,
    projection: &CaseProjection,
) -> Result<()> {
    let case = &projection.case;
    let key = case.id.to_string();
    tx.prepare_cached(
        "INSERT INTO cases (case_id, enterprise_code, enterprise_name, district, case_type, state,
                            opened_at, opened_ts, opened_on, conflicts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (case_id) DO UPDATE SET
            enterprise_code = excluded.enterprise_code, enterprise_name = excluded.enterprise_name,
            district = excluded.district, case_type = excluded.case_type, state = excluded.state,
            opened_at = excluded.opened_at, opened_ts = excluded.opened_ts,
            opened_on = excluded.opened_on,
            conflicts = excluded.conflicts",
    )?
    .execute(params![
        key,
        case.enterprise.credit_code.as_str(),
        case.enterprise.name,
        case.district.as_str(),
        case.case_type.code(),
        case.state.code(),
        case.opened_at.to_rfc3339(),
        case.opened_at.timestamp(),
        case.opened_at.date_naive().to_string(),
        projection.case_conflicts as i64,
    ])?;
    tx.execute("DELETE FROM findings WHERE case_id = ?1", [&key])?;
    for finding in &projection.findings {
        write_finding_projection(tx, case.id, finding)?;
    }
    tx.execute("DELETE FROM blob_refs WHERE case_id = ?1", [&key])?;
    let mut insert_ref =
        tx.prepare_cached("INSERT INTO blob_refs (case_id, sha256) VALUES (?1, ?2)")?;
    for sha256 in &projection.blob_refs {
        insert_ref.execute(params![key, sha256])?;
    }
    tx.execute("DELETE FROM answers WHERE case_id = ?1", [&key])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO answers (case_id, checklist_id, template_id, item_id, text, category, result, post)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for checklist in &case.checklists {
        for entry in &checklist.entries {
            if let Some(answer) = &entry.answer {
                insert.execute(params![
                    key,
                    checklist.id.to_string(),
                    checklist.template_id,
                    entry.item.id,
                    entry.item.text,
                    entry.item.category,
                    answer.result.code(),
                    answer.post,
                ])?;
            }
        }
    }
    Ok(())
}

/// Writes the projection of one finding (deleting its row once it is removed).
pub(crate) fn write_finding_projection(
    tx: &Transaction<'_>,
    case: CaseId,
    projection: &FindingProjection,
) -> Result<()> {
    let Some(finding) = &projection.finding else {
        tx.prepare_cached("DELETE FROM findings WHERE case_id = ?1 AND finding_id = ?2")?
            .execute(params![case.to_string(), projection.id.to_string()])?;
        return Ok(());
    };
    let rect = finding.rectification.as_ref();
    tx.prepare_cached(
        "INSERT OR REPLACE INTO findings
            (case_id, finding_id, title, level, rectification, deadline, violation, recorded_at, conflicts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        case.to_string(),
        finding.id.to_string(),
        title_of(&finding.description),
        finding.level.code(),
        rect.map_or("none", |r| r.state.code()),
        rect.map(|r| r.deadline.to_string()),
        finding.violation.as_ref().map(|v| v.kind.code()),
        finding.recorded_at.to_rfc3339(),
        projection.conflicts as i64,
    ])?;
    Ok(())
}

/// The first line of a description, cut to 80 characters, for lists.
fn title_of(description: &str) -> String {
    let line = description.lines().next().unwrap_or_default().trim();
    line.chars().take(80).collect()
}

/// Rebuilds every projection from the documents (after a migration that adds one).
pub(crate) fn rebuild_projections(conn: &mut Connection) -> Result<()> {
    let ids: Vec<String> = conn
        .prepare("SELECT case_id FROM documents")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let tx = conn.transaction()?;
    for key in ids {
        let id: CaseId = key
            .parse()
            .map_err(|_| Error::Corrupt(format!("document key {key:?} is not a case id")))?;
        let mut loaded = load_document(&tx, id)?.ok_or_else(|| Error::not_found("case", id))?;
        write_case_projection(&tx, &document::project_case(&loaded.doc)?)?;
        set_heads(&tx, id, &mut loaded.doc)?;
    }
    tx.commit()?;
    Ok(())
}

/// The case id and finding id a finding row names, for queries.
pub(crate) fn parse_ids(case: &str, finding: &str) -> Result<(CaseId, FindingId)> {
    Ok((
        case.parse()
            .map_err(|_| Error::Corrupt(format!("case id {case:?} in projections")))?,
        finding
            .parse()
            .map_err(|_| Error::Corrupt(format!("finding id {finding:?} in projections")))?,
    ))
}
