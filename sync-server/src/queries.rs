//! The supervisors' queries over the projections, shared by the pages and `/api/v1/`:
//! the case list with its filters and the rectification board. Every query is limited to
//! the caller's scope (`policy::scope`).

use crate::db::{self, Conn, Value};
use anjian_core::{Level, RectificationState, district_name, in_china};
use chrono::{FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, AppResult};
use crate::policy::Scope;
use crate::schemas;

/// Now in China.
pub fn china_now() -> chrono::DateTime<FixedOffset> {
    in_china(&Utc::now())
}

/// Today in China: deadlines are calendar days in China, whatever the server's zone.
pub fn today() -> NaiveDate {
    anjian_core::day_in_china(&Utc::now())
}

/// A WHERE clause under construction, with its parameters.
#[derive(Default, Clone)]
pub struct Conditions {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Conditions {
    /// Adds a clause whose `?` placeholders take `params` in order (SQLite numbers plain
    /// `?` placeholders from left to right across the whole statement).
    pub fn push(&mut self, clause: &str, params: Vec<Value>) {
        debug_assert_eq!(clause.matches('?').count(), params.len());
        self.clauses.push(clause.to_owned());
        self.params.extend(params);
    }

    /// Limits the cases (alias `c`) to `scope`.
    pub fn scope(&mut self, scope: Scope<'_>) {
        self.scope_on(scope, "c.case_id");
    }

    /// Limits the rows whose case id is the column `case_id` to the cases in `scope`. A
    /// district's cases are a list the database makes once (from `visibility`'s key),
    /// not a lookup for each row: a year's follow-up steps are hundreds of thousands.
    pub fn scope_on(&mut self, scope: Scope<'_>, case_id: &str) {
        match scope {
            Scope::All => {}
            Scope::District(district) => self.push(
                &format!("{case_id} IN (SELECT v.case_id FROM visibility v WHERE v.district = ?)"),
                vec![db::value(district.to_owned())],
            ),
            Scope::Own {
                district,
                username,
                user_id,
            } => self.push(
                &format!(
                    "EXISTS (SELECT 1 FROM visibility v WHERE v.case_id = {case_id} AND v.district = ?)
                     AND (EXISTS (SELECT 1 FROM case_team t WHERE t.case_id = {case_id} AND t.user_id = ?)
                          OR EXISTS (SELECT 1 FROM receipts r WHERE r.case_id = {case_id} AND r.user_id = ?))"
                ),
                vec![
                    db::value(district.to_owned()),
                    db::value(username.to_owned()),
                    db::value(user_id),
                ],
            ),
        }
    }

    /// `WHERE …` (or nothing).
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The parameters, in placeholder order.
    pub fn params(&self) -> &[Value] {
        &self.params
    }
}

/// Filters of the case list (`/cases` and `/api/v1/cases`); empty values mean "any".
#[derive(Debug, Default, Clone, Deserialize, Serialize, IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct CaseFilter {
    /// Owning district code.
    #[param(value_type = schemas::DistrictCode)]
    pub district: String,
    /// Part of the enterprise's name, or its credit code.
    pub enterprise: String,
    /// Industry code.
    #[param(value_type = schemas::Industry)]
    pub industry: String,
    /// Case type code.
    #[serde(rename = "type")]
    #[param(value_type = schemas::CaseType)]
    pub case_type: String,
    /// Review state code.
    #[param(value_type = schemas::ReviewState)]
    pub state: String,
    /// `major`: only cases with a major hazard; `general`: with a general one.
    #[param(value_type = schemas::Level)]
    pub level: String,
    /// An inspector on the team (username or name).
    pub inspector: String,
    /// Opened on or after this day (`YYYY-MM-DD`).
    #[param(format = Date)]
    pub from: String,
    /// Opened on or before this day (`YYYY-MM-DD`).
    #[param(format = Date)]
    pub to: String,
    /// Only cases with conflicts (`true`; anything else means any).
    pub conflicts: String,
    /// Page size (1 to 500; 50 by default; values outside are taken as the nearest end).
    pub limit: Option<i64>,
    /// Rows to skip (0 by default; below 0 is taken as 0).
    pub offset: Option<i64>,
}

/// One row of the case list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseRow {
    /// Case id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Enterprise.
    pub enterprise: EnterpriseRow,
    /// Owning district.
    #[schema(value_type = schemas::DistrictCode)]
    pub district: String,
    /// The owning district's name (黄浦区), or `null` when the server's table of districts
    /// does not know the code.
    pub district_name: Option<&'static str>,
    /// Case type code.
    #[serde(rename = "type")]
    #[schema(value_type = schemas::CaseType)]
    pub case_type: String,
    /// Review state code.
    #[schema(value_type = schemas::ReviewState)]
    pub state: String,
    /// When the visit began, by the device clock, written in China's offset (RFC 3339, +08:00).
    #[schema(format = DateTime)]
    pub opened_at: String,
    /// Who opened it.
    pub opened_by: String,
    /// The team's names.
    pub team: Vec<String>,
    /// Findings.
    pub findings: i64,
    /// Major findings.
    pub major_findings: i64,
    /// Fields in conflict.
    pub conflicts: i64,
    /// When the server last received a change (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The enterprise of a case row.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CaseRowEnterprise)]
pub struct EnterpriseRow {
    /// Name.
    pub name: String,
    /// Credit code.
    pub credit_code: String,
    /// Industry code.
    #[schema(value_type = schemas::Industry)]
    pub industry: String,
}

fn some(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn date(value: &str, field: &str) -> AppResult<Option<NaiveDate>> {
    some(value)
        .map(|v| {
            anjian_core::parse_day(&v).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "{field} {v:?} 不是日期 (not a date, use YYYY-MM-DD)"
                ))
            })
        })
        .transpose()
}

/// The cases in `scope` matching `filter`, newest visit first, and how many match in all.
pub fn cases(
    conn: &mut dyn Conn,
    scope: Scope<'_>,
    filter: &CaseFilter,
) -> AppResult<(Vec<CaseRow>, i64)> {
    let mut w = Conditions::default();
    w.scope(scope);
    if let Some(d) = some(&filter.district) {
        w.push("c.district = ?", vec![db::value(d)]);
    }
    if let Some(e) = some(&filter.enterprise) {
        w.push(
            &format!(
                "({} OR c.credit_code = upper(?))",
                conn.dialect().contains("c.enterprise_name", "?")
            ),
            vec![db::value(e.clone()), db::value(e)],
        );
    }
    if let Some(i) = some(&filter.industry) {
        w.push("c.industry = ?", vec![db::value(i)]);
    }
    if let Some(t) = some(&filter.case_type) {
        w.push("c.case_type = ?", vec![db::value(t)]);
    }
    if let Some(s) = some(&filter.state) {
        w.push("c.state = ?", vec![db::value(s)]);
    }
    if let Some(l) = some(&filter.level) {
        // From the counts each case keeps, not its findings' rows.
        match l.parse::<Level>() {
            Ok(Level::Major) => w.push("c.major_findings > 0", vec![]),
            Ok(Level::General) => w.push("c.findings > c.major_findings", vec![]),
            Err(_) => w.push("1 = 0", vec![]),
        }
    }
    if let Some(i) = some(&filter.inspector) {
        w.push(
            "EXISTS (SELECT 1 FROM case_team t WHERE t.case_id = c.case_id AND (t.user_id = ? OR t.name = ?))",
            vec![db::value(i.clone()), db::value(i)],
        );
    }
    // `opened_at` is RFC 3339 in China's offset (the projection writes it so): its first
    // ten characters are the day in China, so whole strings compare against day bounds,
    // using the index.
    if let Some(from) = date(&filter.from, "from")? {
        w.push("c.opened_at >= ?", vec![db::value(from.to_string())]);
    }
    if let Some(to) = date(&filter.to, "to")? {
        let after = to
            .checked_add_days(chrono::Days::new(1))
            .unwrap_or(NaiveDate::MAX);
        w.push("c.opened_at < ?", vec![db::value(after.to_string())]);
    }
    if filter.conflicts == "true" {
        w.push("c.conflicts > 0", vec![]);
    }
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM cases c {}", w.sql()),
        w.params(),
        |r| r.get(0),
    )?;
    let (limit, offset) = page_bounds(filter.limit, filter.offset);
    let team = conn.dialect().group_concat("t.name", "、");
    let sql = format!(
        "SELECT c.case_id, c.enterprise_name, c.credit_code, c.industry, c.district, c.case_type, c.state,
                c.opened_at, c.opened_by, c.findings, c.major_findings, c.conflicts, c.updated_at,
                (SELECT {team} FROM case_team t WHERE t.case_id = c.case_id)
         FROM cases c {} ORDER BY c.opened_at DESC, c.case_id LIMIT ? OFFSET ?",
        w.sql()
    );
    // The page is a parameter too: one statement serves every page.
    let mut params = w.params().to_vec();
    params.extend([db::value(limit), db::value(offset)]);
    let rows = conn.query_map(&sql, &params, |r| {
        let district: String = r.get(4)?;
        Ok(CaseRow {
            id: r.get(0)?,
            enterprise: EnterpriseRow {
                name: r.get(1)?,
                credit_code: r.get(2)?,
                industry: r.get(3)?,
            },
            district_name: district_name(&district),
            district,
            case_type: r.get(5)?,
            state: r.get(6)?,
            opened_at: r.get(7)?,
            opened_by: r.get(8)?,
            findings: r.get(9)?,
            major_findings: r.get(10)?,
            conflicts: r.get(11)?,
            updated_at: r.get(12)?,
            team: r
                .get::<Option<String>>(13)?
                .map(|t| t.split('、').map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    })?;
    Ok((rows, total))
}

/// Filters of the rectification board; empty values mean "any".
#[derive(Debug, Default, Clone, Deserialize, Serialize, IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct BoardFilter {
    /// Only overdue rectifications (`true`; anything else means any).
    pub overdue: String,
    /// Owning district code.
    #[param(value_type = schemas::DistrictCode)]
    pub district: String,
    /// `major` or `general`.
    #[param(value_type = schemas::Level)]
    pub level: String,
    /// Page size (1 to 500; 50 by default; values outside are taken as the nearest end).
    pub limit: Option<i64>,
    /// Rows to skip (0 by default; below 0 is taken as 0).
    pub offset: Option<i64>,
}

/// A page's size and the rows before it, from what was asked (`limit`, `offset`).
pub fn page_bounds(limit: Option<i64>, offset: Option<i64>) -> (i64, i64) {
    (
        limit.unwrap_or(50).clamp(1, 500),
        offset.unwrap_or(0).max(0),
    )
}

/// One open rectification on the board.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoardRow {
    /// Case id.
    #[schema(format = Uuid)]
    pub case_id: String,
    /// Finding id.
    #[schema(format = Uuid)]
    pub finding_id: String,
    /// First line of the finding.
    pub title: String,
    /// `general` or `major`.
    #[schema(value_type = schemas::Level)]
    pub level: String,
    /// Rectification state code.
    #[schema(value_type = schemas::RectificationState)]
    pub state: String,
    /// Deadline (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub deadline: String,
    /// Days until the deadline (negative: overdue by that many days).
    pub days_left: i64,
    /// Overdue: past the deadline and not yet re-inspected.
    pub overdue: bool,
    /// Listed for supervision (挂牌督办), until delisted (摘牌).
    pub listed: bool,
    /// While listed: the supervising authority, the listing's number and its deadline.
    pub listing: Option<Listing>,
    /// The measures taken on site (现场处理措施), by their labels; empty when none.
    pub onsite: Vec<String>,
    /// Measures ordered.
    pub measures: String,
    /// Who is responsible at the enterprise.
    pub responsible: String,
    /// Evidence photos plus the re-inspection note, if any.
    pub evidence: i64,
    /// Enterprise name.
    pub enterprise: String,
    /// Owning district.
    #[schema(value_type = schemas::DistrictCode)]
    pub district: String,
    /// The owning district's name (黄浦区), or `null` when the server's table of districts
    /// does not know the code.
    pub district_name: Option<&'static str>,
}

/// A hazard's listing for supervision (挂牌督办), as the board shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Listing {
    /// The supervising authority.
    pub authority: String,
    /// The listing document's number.
    pub number: String,
    /// The listing's deadline (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub deadline: String,
    /// Days until it (negative: past it by that many days).
    pub days_left: i64,
}

/// One page of the board, and the counts over all of it.
#[derive(Debug, Clone)]
pub struct BoardPage {
    /// The page's rows.
    pub rows: Vec<BoardRow>,
    /// Rectifications on the board, over every page.
    pub total: i64,
    /// Of which listed for supervision.
    pub listed: i64,
    /// Of which overdue.
    pub overdue: i64,
}

/// The open rectifications in `scope`, and every hazard listed for supervision until it
/// is delisted (a closed one awaits 摘牌): listed hazards first, then overdue ones, then by
/// deadline; one page of them, and how many there are.
pub fn board(conn: &mut dyn Conn, scope: Scope<'_>, filter: &BoardFilter) -> AppResult<BoardPage> {
    let today = today();
    // The deadline in force: the rectification's, else the listing's.
    let deadline = "coalesce(f.deadline, f.listed_deadline)";
    let overdue = RectificationState::overdue_sql("f.rectification", deadline, today);
    // Which cases: asked of each finding on the board, after the index found it (a
    // district's cases hold far more findings than are open).
    let mut cases = Conditions::default();
    cases.scope_on(scope, "f.case_id");
    if let Some(d) = some(&filter.district) {
        cases.push(
            "f.case_id IN (SELECT c.case_id FROM cases c WHERE c.district = ?)",
            vec![db::value(d)],
        );
    }
    let mut w = Conditions::default();
    if let Some(l) = some(&filter.level) {
        w.push("f.level = ?", vec![db::value(l)]);
    }
    if filter.overdue == "true" {
        // As a value, so that the database does not take its `OR` for a reason to read
        // each finding's row.
        w.push(
            &format!("(CASE WHEN {overdue} THEN 1 ELSE 0 END) = 1"),
            vec![],
        );
    }
    // The board's findings: the open rectifications, then the hazards listed and no
    // longer open (awaiting 摘牌). Everything it filters, counts and sorts by is in the
    // index `findings_open` (with each finding's key), so that the database reads no
    // finding's row but those of the page shown; the few listed ones come by
    // `findings_listed` (`listed_number >= ''` holds for every listed hazard).
    let open_codes = RectificationState::open_codes_sql();
    let (mut open, mut listed) = (w.clone(), w);
    open.push(&format!("f.rectification IN ({open_codes})"), vec![]);
    listed.push(
        &format!("f.listed_number >= '' AND f.rectification NOT IN ({open_codes})"),
        vec![],
    );
    // Made whole before the cases are asked about (`MATERIALIZED`), so that the database
    // does not push that question into each part and start from the cases.
    let board = format!(
        "WITH board AS MATERIALIZED (
             SELECT f.case_id, f.finding_id, f.rectification, f.deadline, f.listed_number, f.listed_deadline
             FROM findings f {}
             UNION ALL
             SELECT f.case_id, f.finding_id, f.rectification, f.deadline, f.listed_number, f.listed_deadline
             FROM findings f {})",
        open.sql(),
        listed.sql()
    );
    let on_board = format!("board f {}", cases.sql());
    let mut params = open.params().to_vec();
    params.extend_from_slice(listed.params());
    params.extend_from_slice(cases.params());
    let (total, listed_count, overdue_count) = conn.query_row(
        &format!(
            "{board} SELECT count(*), coalesce(sum(CASE WHEN f.listed_number IS NOT NULL THEN 1 ELSE 0 END), 0),
                    coalesce(sum(CASE WHEN {overdue} THEN 1 ELSE 0 END), 0)
             FROM {on_board}"
        ),
        &params,
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (limit, offset) = page_bounds(filter.limit, filter.offset);
    // Listed first, then overdue, then by deadline; a case's findings together.
    let order = format!(
        "CASE WHEN f.listed_number IS NOT NULL THEN 0 ELSE 1 END, CASE WHEN {overdue} THEN 0 ELSE 1 END,
         {deadline}, f.case_id, f.finding_id"
    );
    let sql = format!(
        "{board} SELECT f.case_id, f.finding_id, f.title, f.level, f.rectification, {deadline},
                coalesce(f.measures, ''), coalesce(f.responsible, ''), f.evidence, c.enterprise_name, c.district,
                f.listed_authority, f.listed_number, f.listed_deadline, f.onsite
         FROM (SELECT f.case_id, f.finding_id FROM {on_board} ORDER BY {order} LIMIT ? OFFSET ?) page
         JOIN findings f ON f.case_id = page.case_id AND f.finding_id = page.finding_id
         JOIN cases c ON c.case_id = f.case_id
         ORDER BY {order}"
    );
    params.extend([db::value(limit), db::value(offset)]);
    let rows = conn.query_map(&sql, &params, |r| {
        let district: String = r.get(10)?;
        let listing = match (r.get(11)?, r.get(12)?, r.get(13)?) {
            (Some(authority), Some(number), Some(deadline)) => Some(Listing {
                authority,
                number,
                deadline,
                days_left: 0,
            }),
            _ => None,
        };
        let onsite: String = r.get(14)?;
        Ok(BoardRow {
            case_id: r.get(0)?,
            finding_id: r.get(1)?,
            title: r.get(2)?,
            listed: listing.is_some(),
            listing,
            onsite: onsite
                .split('；')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect(),
            level: r.get(3)?,
            state: r.get(4)?,
            deadline: r.get(5)?,
            measures: r.get(6)?,
            responsible: r.get(7)?,
            evidence: r.get(8)?,
            enterprise: r.get(9)?,
            district_name: district_name(&district),
            district,
            days_left: 0,
            overdue: false,
        })
    })?;
    let days_left = |deadline: &str| {
        deadline
            .parse::<NaiveDate>()
            .map(|d| (d - today).num_days())
            .map_err(|_| AppError::Internal(format!("stored deadline {deadline:?} is not a date")))
    };
    let mut page = Vec::with_capacity(rows.len());
    for mut row in rows {
        row.days_left = days_left(&row.deadline)?;
        if let Some(listing) = &mut row.listing {
            listing.days_left = days_left(&listing.deadline)?;
        }
        row.overdue = row
            .state
            .parse::<RectificationState>()
            .is_ok_and(|s| s.is_overdue(row.days_left < 0));
        page.push(row);
    }
    Ok(BoardPage {
        rows: page,
        total,
        listed: listed_count,
        overdue: overdue_count,
    })
}

/// Filters of the register of enforcement documents; empty values mean "any".
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct RegisterFilter {
    /// The kind's code (`rectification_order` …).
    pub kind: String,
    /// The year the documents were sealed (`2026`).
    pub year: String,
    /// Owning district code.
    #[param(value_type = schemas::DistrictCode)]
    pub district: String,
    /// Page size (1 to 500; 50 by default; values outside are taken as the nearest end).
    pub limit: Option<i64>,
    /// Rows to skip (0 by default; below 0 is taken as 0).
    pub offset: Option<i64>,
}

/// One enforcement document in the register.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegisterRow {
    /// Case id.
    #[schema(format = Uuid)]
    pub case_id: String,
    /// Document id.
    #[schema(format = Uuid)]
    pub writ_id: String,
    /// The kind's code.
    pub kind: String,
    /// The kind's name (责令限期整改指令书 …).
    pub title: String,
    /// `draft`, `sealed`, `issued` or `voided`.
    pub state: String,
    /// The number, once sealed.
    pub number: Option<String>,
    /// Whether the number is provisional (issued offline with no number left on the
    /// device; the server gives the real one when the document reaches it).
    pub provisional: bool,
    /// The provisional number it was issued with, once the server gave it its number
    /// (the printed copy the enterprise holds bears this one).
    pub provisional_number: Option<String>,
    /// The department of who drew it up.
    pub department: String,
    /// The enterprise inspected.
    pub enterprise: String,
    /// Owning district of its case.
    #[schema(value_type = schemas::DistrictCode)]
    pub district: String,
    /// When it was sealed (RFC 3339).
    pub sealed_at: Option<String>,
    /// When it was issued (RFC 3339).
    pub issued_at: Option<String>,
    /// Why it was voided, if it was: its number stays on record.
    pub voided: Option<String>,
}

/// The numbered enforcement documents in `scope` the filter picks, issued or voided or
/// awaiting signatures: how many in all, and one page of them (`limit`, `offset`), the
/// last sealed first.
pub fn register(
    conn: &mut dyn Conn,
    scope: Scope<'_>,
    filter: &RegisterFilter,
) -> AppResult<(i64, Vec<RegisterRow>)> {
    let mut w = Conditions::default();
    w.scope(scope);
    w.push("wr.number IS NOT NULL", vec![]);
    if let Some(kind) = some(&filter.kind) {
        w.push("wr.kind = ?", vec![db::value(kind)]);
    }
    if let Some(year) = some(&filter.year) {
        w.push("substr(wr.sealed_at, 1, 4) = ?", vec![db::value(year)]);
    }
    if let Some(d) = some(&filter.district) {
        w.push("c.district = ?", vec![db::value(d)]);
    }
    let (limit, offset) = page_bounds(filter.limit, filter.offset);
    let total = register_count(conn, &w)?;
    let rows = register_rows(
        conn,
        &w,
        &format!("ORDER BY wr.sealed_at DESC, wr.number DESC LIMIT {limit} OFFSET {offset}"),
    )?;
    Ok((total, rows))
}

/// The decisions on on-site measures in force in `scope` (issued, not voided): how many,
/// and the `most` issued last, newest first (the board shows them above the hazards).
pub fn decisions_in_force(
    conn: &mut dyn Conn,
    scope: Scope<'_>,
    most: i64,
) -> AppResult<(i64, Vec<RegisterRow>)> {
    let mut w = Conditions::default();
    w.scope(scope);
    w.push(
        "wr.kind = ? AND wr.state = ? AND wr.number IS NOT NULL",
        vec![
            db::value(anjian_core::WritKind::OnsiteDecision.code()),
            db::value(anjian_core::WritState::Issued.code()),
        ],
    );
    let total = register_count(conn, &w)?;
    let rows = register_rows(
        conn,
        &w,
        &format!(
            "ORDER BY wr.issued_at DESC, wr.number DESC LIMIT {}",
            most.max(0)
        ),
    )?;
    Ok((total, rows))
}

/// How many documents of the register `w` picks.
fn register_count(conn: &mut dyn Conn, w: &Conditions) -> AppResult<i64> {
    conn.query_row(
        &format!(
            "SELECT count(*) FROM writs wr JOIN cases c ON c.case_id = wr.case_id {}",
            w.sql()
        ),
        w.params(),
        |r| r.get(0),
    )
}

/// The register's rows of the documents `w` picks, in the order `tail` gives.
fn register_rows(conn: &mut dyn Conn, w: &Conditions, tail: &str) -> AppResult<Vec<RegisterRow>> {
    let sql = format!(
        "SELECT wr.case_id, wr.writ_id, wr.kind, wr.state, wr.number, wr.provisional, wr.department,
                c.district, wr.sealed_at, wr.issued_at, wr.voided, wr.provisional_number,
                c.enterprise_name
         FROM writs wr JOIN cases c ON c.case_id = wr.case_id {} {tail}",
        w.sql()
    );
    let rows = conn.query_map(&sql, w.params(), |r| {
        let kind: String = r.get(2)?;
        Ok(RegisterRow {
            case_id: r.get(0)?,
            writ_id: r.get(1)?,
            title: crate::labels::label_of::<anjian_core::WritKind>(&kind),
            kind,
            state: r.get(3)?,
            number: r.get(4)?,
            provisional: r.get(5)?,
            department: r.get(6)?,
            district: r.get(7)?,
            sealed_at: r.get(8)?,
            issued_at: r.get(9)?,
            voided: r.get(10)?,
            provisional_number: r.get(11)?,
            enterprise: r.get(12)?,
        })
    })?;
    Ok(rows)
}
