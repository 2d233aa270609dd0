//! The query projections of the case documents (cases, findings, checklist answers) in
//! SQLite: written in the same transaction as the document's changes, rebuilt from the
//! documents when a migration adds one, and read by the store's lists without loading any
//! document.

use chrono::{DateTime, NaiveDate};
use rusqlite::{Connection, Transaction, params};

use crate::codes::{
    AnswerResult, CaseId, CreditCode, DistrictCode, FindingId, Level, RectificationState,
    ReviewState,
};
use crate::db;
use crate::document::{self, CaseProjection, FindingProjection};
use crate::error::{Error, Result};
use crate::model::{CaseSummary, FindingSummary, ItemStat};

/// Filters for listing cases; every field narrows the list.
#[derive(Debug, Clone)]
pub struct CaseQuery {
    /// Only this enterprise's cases.
    pub enterprise: Option<CreditCode>,
    /// Only cases owned by this district.
    pub district: Option<DistrictCode>,
    /// Only cases in this review state.
    pub state: Option<ReviewState>,
    /// Only cases opened on or after this day.
    pub from: Option<NaiveDate>,
    /// Only cases opened on or before this day.
    pub to: Option<NaiveDate>,
    /// Page size.
    pub limit: u32,
    /// Cases to skip (page × size).
    pub offset: u32,
}

impl Default for CaseQuery {
    fn default() -> Self {
        CaseQuery {
            enterprise: None,
            district: None,
            state: None,
            from: None,
            to: None,
            limit: 50,
            offset: 0,
        }
    }
}

/// Filters for listing findings.
#[derive(Debug, Clone)]
pub struct FindingQuery {
    /// Only this case's findings.
    pub case: Option<CaseId>,
    /// Only findings of this level.
    pub level: Option<Level>,
    /// Only findings whose rectification is in this state.
    pub rectification: Option<RectificationState>,
    /// Page size.
    pub limit: u32,
    /// Findings to skip.
    pub offset: u32,
}

impl Default for FindingQuery {
    fn default() -> Self {
        FindingQuery {
            case: None,
            level: None,
            rectification: None,
            limit: 100,
            offset: 0,
        }
    }
}

/// Lists cases from the projections, newest first, without loading any document.
pub(crate) fn cases(conn: &Connection, query: &CaseQuery) -> Result<Vec<CaseSummary>> {
    let mut sql = format!(
        "SELECT case_id, enterprise_code, enterprise_name, district, case_type, state, opened_at,
                (SELECT count(*) FROM findings f WHERE f.case_id = c.case_id),
                (SELECT count(*) FROM findings f WHERE f.case_id = c.case_id AND f.level = '{}'),
                conflicts + (SELECT coalesce(sum(conflicts), 0) FROM findings f WHERE f.case_id = c.case_id)
         FROM cases c WHERE 1 = 1",
        Level::Major.code()
    );
    let mut args: Vec<String> = Vec::new();
    let mut filter = |clause: &str, value: Option<String>| {
        if let Some(value) = value {
            args.push(value);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        }
    };
    filter(
        "enterprise_code =",
        query.enterprise.as_ref().map(ToString::to_string),
    );
    filter(
        "district =",
        query.district.as_ref().map(ToString::to_string),
    );
    filter("state =", query.state.map(|s| s.code().to_owned()));
    filter("opened_on >=", query.from.map(|d| d.to_string()));
    filter("opened_on <=", query.to.map(|d| d.to_string()));
    sql.push_str(&format!(
        " ORDER BY opened_ts DESC, case_id LIMIT {} OFFSET {}",
        query.limit, query.offset
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, i64>(8)?,
            r.get::<_, i64>(9)?,
        ))
    })?;
    rows.map(|row| {
        let (id, code, name, district, case_type, state, opened_at, findings, major, conflicts) =
            row?;
        Ok(CaseSummary {
            id: id.parse().map_err(|_| corrupt_projection("case_id", &id))?,
            enterprise: code
                .parse()
                .map_err(|_| corrupt_projection("enterprise_code", &code))?,
            enterprise_name: name,
            district: district
                .parse()
                .map_err(|_| corrupt_projection("district", &district))?,
            case_type: case_type
                .parse()
                .map_err(|_| corrupt_projection("case_type", &case_type))?,
            state: state
                .parse()
                .map_err(|_| corrupt_projection("state", &state))?,
            opened_at: DateTime::parse_from_rfc3339(&opened_at)
                .map_err(|_| corrupt_projection("opened_at", &opened_at))?,
            findings: findings as u32,
            major_findings: major as u32,
            has_conflicts: conflicts > 0,
        })
    })
    .collect()
}

/// Lists findings from the projections.
pub(crate) fn findings(conn: &Connection, query: &FindingQuery) -> Result<Vec<FindingSummary>> {
    let mut sql = String::from(
        "SELECT f.case_id, f.finding_id, c.enterprise_name, f.title, f.level, f.rectification,
                f.deadline, f.violation
         FROM findings f JOIN cases c USING (case_id) WHERE 1 = 1",
    );
    let mut args: Vec<String> = Vec::new();
    let mut filter = |clause: &str, value: Option<String>| {
        if let Some(value) = value {
            args.push(value);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        }
    };
    filter("f.case_id =", query.case.map(|c| c.to_string()));
    filter("f.level =", query.level.map(|l| l.code().to_owned()));
    filter(
        "f.rectification =",
        query.rectification.map(|r| r.code().to_owned()),
    );
    sql.push_str(&format!(
        " ORDER BY f.recorded_at, f.finding_id LIMIT {} OFFSET {}",
        query.limit, query.offset
    ));
    finding_summaries(conn, &sql, &args)
}

/// Rectifications still open whose deadline is `on` or earlier (due that day, or
/// overdue), earliest deadline first, major hazards first within a day.
pub(crate) fn rectifications_due(conn: &Connection, on: NaiveDate) -> Result<Vec<FindingSummary>> {
    let sql =
        "SELECT f.case_id, f.finding_id, c.enterprise_name, f.title, f.level, f.rectification,
                      f.deadline, f.violation
               FROM findings f JOIN cases c USING (case_id)
               WHERE f.rectification IN ('ordered', 'in_progress', 'reinspected', 'overdue')
                 AND f.deadline <= ?1
               ORDER BY f.deadline, f.level = 'major' DESC, f.finding_id";
    finding_summaries(conn, sql, &[on.to_string()])
}

fn finding_summaries(conn: &Connection, sql: &str, args: &[String]) -> Result<Vec<FindingSummary>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, Option<String>>(7)?,
        ))
    })?;
    rows.map(|row| {
        let (case_id, finding_id, enterprise_name, title, level, rect, deadline, violation) = row?;
        let (case_id, id) = parse_ids(&case_id, &finding_id)?;
        Ok(FindingSummary {
            case_id,
            id,
            enterprise_name,
            title,
            level: level
                .parse()
                .map_err(|_| corrupt_projection("level", &level))?,
            rectification: rect
                .parse()
                .map_err(|_| corrupt_projection("rectification", &rect))?,
            deadline: deadline
                .map(|d| d.parse().map_err(|_| corrupt_projection("deadline", &d)))
                .transpose()?,
            violation: violation
                .map(|v| v.parse().map_err(|_| corrupt_projection("violation", &v)))
                .transpose()?,
        })
    })
    .collect()
}

/// How often each checklist item was answered and found 不符合, by post, across
/// every case in the store; most often found first.
pub(crate) fn checklist_stats(
    conn: &Connection,
    template_id: Option<&str>,
) -> Result<Vec<ItemStat>> {
    let sql = format!(
        "SELECT template_id, item_id, max(text), max(category), post, count(*),
                sum(result = '{non_compliant}')
         FROM answers WHERE ?1 IS NULL OR template_id = ?1
         GROUP BY template_id, item_id, post
         ORDER BY sum(result = '{non_compliant}') DESC, template_id, item_id, post",
        non_compliant = AnswerResult::NonCompliant.code()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([template_id], |r| {
        Ok(ItemStat {
            template_id: r.get(0)?,
            item_id: r.get(1)?,
            text: r.get(2)?,
            category: r.get(3)?,
            post: r.get(4)?,
            answered: r.get(5)?,
            non_compliant: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
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
        crate::codes::day_in_china(&case.opened_at).to_string(),
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
        let mut loaded = db::load_document(&tx, id)?.ok_or_else(|| Error::not_found("case", id))?;
        write_case_projection(&tx, &document::project_case(&loaded.doc)?)?;
        db::set_heads(&tx, id, &mut loaded.doc)?;
    }
    tx.execute("DELETE FROM meta WHERE key = 'projections_stale'", [])?;
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

pub(crate) fn corrupt_projection(column: &str, value: &str) -> Error {
    Error::Corrupt(format!(
        "unexpected {column} {value:?} in the store's tables"
    ))
}
