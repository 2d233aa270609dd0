//! The query tables derived from each case document (visibility, cases, team, findings,
//! blob references), written in the same transaction as the document's changes, and the
//! tallies counted from them.

use crate::db::{self, Conn, Value, params, row};
use anjian_core::rules::CaseState;
use anjian_core::{
    Case, Finding, HazardStep, RectificationState, ReinspectionResult, day_in_china, in_china,
};
use automerge::AutoCommit;
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::error::AppResult;

/// What the server's query tables hold of one case, derived from its document.
pub struct Projection {
    /// The case as it reads.
    pub case: Case,
    /// How many fields are in conflict.
    pub conflicts: usize,
    /// Blob hashes the case mentions: every one when `all_blob_refs`, otherwise those a
    /// commit's changes add (a blob a case once named stays accessible with it).
    pub blob_refs: Vec<String>,
    /// Whether `blob_refs` lists every hash the case mentions.
    pub all_blob_refs: bool,
}

impl Projection {
    /// The projection of a document the rule book has read as `state`.
    pub fn of(doc: &AutoCommit, state: &CaseState) -> AppResult<Projection> {
        Ok(Projection {
            case: state.case().clone(),
            conflicts: anjian_core::case_doc::conflicts(doc)?.len(),
            blob_refs: anjian_core::case_doc::blob_refs(doc).into_iter().collect(),
            all_blob_refs: true,
        })
    }
}

/// Writes one case's projections (visibility, cases, team, findings, blob references),
/// replacing what they held of it. `received` says a change has just arrived (it moves
/// `updated_at`; a rebuild keeps it). `first` says the case's document is being stored
/// for the first time in this transaction: every projection row is of a stored document,
/// so there is nothing of it to take out of the tallies or delete.
pub(super) fn write_projections(
    tx: &mut dyn Conn,
    key: &str,
    projection: &Projection,
    received: bool,
    first: bool,
) -> AppResult<()> {
    let case = &projection.case;
    let mut districts: Vec<&str> = case.visible_to.iter().map(|d| d.as_str()).collect();
    districts.push(case.district.as_str());
    let findings: Vec<(&Finding, Facts<'_>, Vec<StepRow<'_>>)> = case
        .findings
        .iter()
        .map(|f| (f, Facts::of(f), StepRow::of(f)))
        .collect();
    // What the tallies count of the case, as its rows will hold it: when it is what they
    // counted last time, they are left as they are (most commits change no such column).
    let counted = tally_inputs(case, &districts, &findings);
    let retally = first || {
        let before: Option<String> = tx
            .query_opt(
                "SELECT tallied FROM cases WHERE case_id = ?1",
                params![key],
                |r| r.get::<Option<String>>(0),
            )?
            .flatten();
        before.as_deref() != Some(counted.as_str())
    };
    if !first {
        // What the rows held of the case before: out of the tallies, then deleted.
        if retally {
            tally(tx, Some(key), -1)?;
        }
        for table in [
            "visibility",
            "case_team",
            "findings",
            "hazard_steps",
            "writs",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE case_id = ?1"),
                params![key],
            )?;
        }
        if projection.all_blob_refs {
            tx.execute("DELETE FROM blob_refs WHERE case_id = ?1", params![key])?;
        }
    }
    let rows: Vec<Vec<Value>> = districts
        .iter()
        .map(|district| row![district, key])
        .collect();
    tx.insert_rows(
        "INSERT INTO visibility (district, case_id)",
        "ON CONFLICT DO NOTHING",
        rows,
    )?;
    let majors = case
        .findings
        .iter()
        .filter(|f| f.level == anjian_core::Level::Major)
        .count();
    tx.execute(
        "INSERT INTO cases (case_id, enterprise_name, credit_code, industry, district, case_type, state, opened_at,
                            opened_by, findings, major_findings, conflicts, updated_at, amends, tallied)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15, ?16)
         ON CONFLICT (case_id) DO UPDATE SET enterprise_name = excluded.enterprise_name,
            credit_code = excluded.credit_code, industry = excluded.industry, district = excluded.district,
            case_type = excluded.case_type, state = excluded.state, opened_at = excluded.opened_at,
            opened_by = excluded.opened_by, findings = excluded.findings,
            major_findings = excluded.major_findings, conflicts = excluded.conflicts,
            updated_at = CASE WHEN ?14 THEN excluded.updated_at ELSE cases.updated_at END,
            amends = excluded.amends, tallied = excluded.tallied",
        params![
            key,
            case.enterprise.name,
            case.enterprise.credit_code.as_str(),
            case.enterprise.industry.code(),
            case.district.as_str(),
            case.case_type.code(),
            case.state.code(),
            in_china(&case.opened_at).to_rfc3339(),
            case.opened_by,
            case.findings.len() as i64,
            majors as i64,
            projection.conflicts as i64,
            Utc::now().to_rfc3339(),
            received,
            case.amends.map(|id| id.to_string()),
            counted,
        ],
    )?;
    let team: Vec<Vec<Value>> = case
        .team
        .iter()
        .map(|member| {
            row![
                key,
                member.user_id,
                member.name,
                member.department,
                member.district.as_str()
            ]
        })
        .collect();
    tx.insert_rows(
        "INSERT INTO case_team (case_id, user_id, name, department, district)",
        "ON CONFLICT DO NOTHING",
        team,
    )?;
    let blob_refs: Vec<Vec<Value>> = projection
        .blob_refs
        .iter()
        .map(|sha256| row![key, sha256])
        .collect();
    tx.insert_rows(
        "INSERT INTO blob_refs (case_id, sha256)",
        "ON CONFLICT DO NOTHING",
        blob_refs,
    )?;
    let writs: Vec<Vec<Value>> = case
        .writs
        .iter()
        .map(|w| {
            let department = case
                .team
                .iter()
                .find(|m| m.user_id == w.created_by)
                .map_or("", |m| m.department.as_str());
            row![
                key,
                w.id.to_string(),
                w.kind.code(),
                w.state().code(),
                w.number(),
                w.provisional(),
                department,
                w.created_by,
                w.seal.as_ref().map(|s| in_china(&s.at).to_rfc3339()),
                w.issued.as_ref().map(|i| in_china(&i.at).to_rfc3339()),
                w.voided.as_ref().map(|v| v.reason.as_str()),
                w.numbered
                    .as_ref()
                    .and(w.seal.as_ref())
                    .map(|s| s.number.as_str()),
            ]
        })
        .collect();
    tx.insert_rows(
        "INSERT INTO writs (case_id, writ_id, kind, state, number, provisional, department,
                            created_by, sealed_at, issued_at, voided, provisional_number)",
        "",
        writs,
    )?;
    let (mut finding_rows, mut step_rows) = (Vec::new(), Vec::new());
    for (f, facts, steps) in &findings {
        let rect = f.rectification.as_ref();
        let violation = f.violation.as_ref();
        let listing = f.listing().and_then(|e| match &e.step {
            HazardStep::List {
                authority,
                number,
                deadline,
            } => Some((authority, number, deadline.to_string())),
            _ => None,
        });
        let onsite: Vec<&str> = f.onsite_measures().map(|(_, m)| m.label()).collect();
        finding_rows.push(row![
            key,
            f.id.to_string(),
            f.description.lines().next().unwrap_or_default(),
            facts.level,
            facts.rectification,
            facts.deadline,
            facts.violation,
            f.category,
            f.place,
            f.recorded_by,
            facts.recorded_at,
            rect.map(|r| r.measures.as_str()),
            rect.map(|r| r.responsible.as_str()),
            rect.map_or(0, |r| r.evidence.len() as i64
                + i64::from(r.reinspection.is_some())),
            facts.post,
            violation.map(|v| v.person.as_str()),
            listing.as_ref().map(|l| l.0.as_str()),
            listing.as_ref().map(|l| l.1.as_str()),
            listing.as_ref().map(|l| l.2.as_str()),
            onsite.join("；"),
        ]);
        for (seq, step) in steps.iter().enumerate() {
            step_rows.push(row![
                key,
                f.id.to_string(),
                seq as i64,
                step.kind,
                step.day,
                step.by,
                step.result,
                step.on_time,
                step.previous,
            ]);
        }
    }
    tx.insert_rows(
        "INSERT INTO findings (case_id, finding_id, title, level, rectification, deadline, violation,
                               category, place, recorded_by, recorded_at, measures, responsible, evidence,
                               violation_post, violation_person, listed_authority, listed_number,
                               listed_deadline, onsite)",
        "",
        finding_rows,
    )?;
    tx.insert_rows(
        "INSERT INTO hazard_steps (case_id, finding_id, seq, kind, day, by_user, result, on_time, prev_day)",
        "",
        step_rows,
    )?;
    if retally {
        tally(tx, Some(key), 1)?;
    }
    Ok(())
}

/// What `findings` holds of a finding that the tallies count.
struct Facts<'a> {
    level: &'static str,
    rectification: &'static str,
    deadline: Option<String>,
    violation: Option<&'static str>,
    post: Option<&'a str>,
    recorded_at: String,
}

impl Facts<'_> {
    fn of(f: &Finding) -> Facts<'_> {
        let rect = f.rectification.as_ref();
        Facts {
            level: f.level.code(),
            rectification: rect.map_or("none", |r| r.state.code()),
            deadline: rect.map(|r| r.deadline.to_string()),
            violation: f.violation.as_ref().map(|v| v.kind.code()),
            post: f.violation.as_ref().map(|v| v.post.as_str()),
            recorded_at: in_china(&f.recorded_at).to_rfc3339(),
        }
    }
}

/// A follow-up step as `hazard_steps` holds it.
struct StepRow<'a> {
    kind: &'static str,
    day: String,
    by: &'a str,
    result: Option<&'static str>,
    on_time: Option<bool>,
    /// The day of the previous step of its class (kind, result, on time), by day, then
    /// by order of recording: a bulletin counts a finding once for a class in a period
    /// by counting the steps in it whose previous one is before it (or none).
    previous: Option<String>,
}

impl StepRow<'_> {
    /// A finding's steps, in the order they were recorded.
    fn of(f: &Finding) -> Vec<StepRow<'_>> {
        let steps: Vec<_> = f
            .steps_with_deadlines()
            .into_iter()
            .map(|(step, deadline)| {
                let day = day_in_china(&step.at);
                let (result, on_time) = match &step.step {
                    HazardStep::Reinspect { result, .. } => (
                        Some(result.code()),
                        (*result == ReinspectionResult::Pass)
                            .then(|| deadline.is_none_or(|d| day <= d)),
                    ),
                    _ => (None, None),
                };
                (step, day, result, on_time)
            })
            .collect();
        let mut by_day: Vec<usize> = (0..steps.len()).collect();
        by_day.sort_by_key(|&i| (steps[i].1, i));
        let mut last_of_class = std::collections::HashMap::new();
        let mut previous = vec![None; steps.len()];
        for i in by_day {
            let (step, day, result, on_time) = &steps[i];
            previous[i] = last_of_class.insert((step.step.action(), *result, *on_time), *day);
        }
        steps
            .into_iter()
            .zip(previous)
            .map(|((step, day, result, on_time), previous)| StepRow {
                kind: step.step.action().code(),
                day: day.to_string(),
                by: step.by.as_str(),
                result,
                on_time,
                previous: previous.map(|d| d.to_string()),
            })
            .collect()
    }
}

/// A digest of every value of a case's rows that `tally` reads (the case's opening, its
/// districts, each finding's facts and each step's class and days).
fn tally_inputs(
    case: &Case,
    districts: &[&str],
    findings: &[(&Finding, Facts<'_>, Vec<StepRow<'_>>)],
) -> String {
    let mut digest = Sha256::new();
    let mut put = |value: Option<&str>| match value {
        None => digest.update([0]),
        Some(value) => {
            digest.update([1]);
            digest.update((value.len() as u64).to_le_bytes());
            digest.update(value.as_bytes());
        }
    };
    put(Some(&in_china(&case.opened_at).to_rfc3339()));
    let mut districts = districts.to_vec();
    districts.sort_unstable();
    districts.dedup();
    for district in districts {
        put(Some(district));
    }
    for (_, facts, steps) in findings {
        put(None);
        put(Some(facts.level));
        put(Some(facts.rectification));
        put(facts.deadline.as_deref());
        put(facts.violation);
        put(facts.post);
        put(Some(&facts.recorded_at));
        for step in steps {
            put(Some(step.kind));
            put(Some(&step.day));
            put(step.result);
            put(step.on_time.map(|on_time| if on_time { "1" } else { "0" }));
            put(step.previous.as_deref());
        }
    }
    hex::encode(digest.finalize())
}

/// The kind under which `step_tallies` counts findings by the day they were recorded.
pub(crate) const FOUND: &str = "found";

/// Counts every case's projection rows into the tallies afresh.
pub(super) fn recount_tallies(tx: &mut dyn Conn) -> AppResult<()> {
    tx.execute("DELETE FROM finding_tallies", params![])?;
    tx.execute("DELETE FROM step_tallies", params![])?;
    tally(tx, None, 1)
}

/// Characters of a three-violation finding's post the tallies count it by (and a bulletin
/// shows), before `…`.
pub const TALLIED_POST_CHARS: usize = 100;

/// Adds to the tallies (`sign` 1) or takes away from them (`sign` -1) what the
/// projection rows of the case `key` count, or of every case. A case counts under each
/// district it is visible to and once under '' (every case); the one place that says
/// what the tallies count (migration 013 describes them).
fn tally(tx: &mut dyn Conn, key: Option<&str>, sign: i64) -> AppResult<()> {
    let (only, params) = match key {
        Some(key) => ("WHERE case_id = ?1", vec![db::value(key)]),
        None => ("", Vec::new()),
    };
    let districts = format!(
        "(SELECT case_id, district FROM visibility {only}
          UNION ALL SELECT case_id, '' AS district FROM cases {only}) d"
    );
    let open = RectificationState::open_codes_sql();
    // A post is free text, up to 64 KiB: kept as a bulletin shows it, and one character
    // more to tell it was cut (a database index holds no row of 64 KiB).
    let post_chars = TALLIED_POST_CHARS + 1;
    tx.execute(
        &format!(
            "INSERT INTO finding_tallies (district, day, level, rectification, deadline, violation, post, n)
             SELECT d.district, substr(c.opened_at, 1, 10), f.level, f.rectification,
                    CASE WHEN f.rectification IN ({open}) THEN coalesce(f.deadline, '') ELSE '' END,
                    coalesce(f.violation, ''), substr(coalesce(f.violation_post, ''), 1, {post_chars}),
                    {sign} * count(*)
             FROM {districts} JOIN cases c ON c.case_id = d.case_id JOIN findings f ON f.case_id = d.case_id
             GROUP BY 1, 2, 3, 4, 5, 6, 7
             ON CONFLICT (district, day, level, rectification, deadline, violation, post)
             DO UPDATE SET n = finding_tallies.n + excluded.n"
        ),
        &params,
    )?;
    tx.execute(
        &format!(
            "INSERT INTO step_tallies (district, day, kind, result, on_time, since, n)
             SELECT d.district, s.day, s.kind, s.result, s.on_time, s.since, {sign} * count(*)
             FROM {districts} JOIN (
                 SELECT case_id, day, kind, coalesce(result, '') AS result, coalesce(on_time, -1) AS on_time,
                        coalesce(prev_day, '') AS since
                 FROM hazard_steps {only}
                 UNION ALL
                 SELECT case_id, coalesce(substr(recorded_at, 1, 10), ''), '{FOUND}', '', -1, '' FROM findings {only}
             ) s ON s.case_id = d.case_id
             GROUP BY 1, 2, 3, 4, 5, 6
             ON CONFLICT (district, day, kind, result, on_time, since)
             DO UPDATE SET n = step_tallies.n + excluded.n"
        ),
        &params,
    )?;
    Ok(())
}
