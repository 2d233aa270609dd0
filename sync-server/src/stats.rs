//! Law-enforcement bulletins (执法通报, measure 13): counts and trends of cases and
//! findings over a period, by district, industry and type; the enterprises with the most
//! and the most serious hazards; three-violation frequency by post. One function computes
//! a `Bulletin` from the projections; the page, the JSON and the exports all show it.

use std::collections::BTreeMap;

use crate::db::{self, Conn};
use anjian_core::{
    CaseType, HazardAction, Industry, Level, RectificationState, ViolationKind, WritKind,
    district_label, district_name,
};
use chrono::{Datelike, Days, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, AppResult};
use crate::labels::label_of;
use crate::policy::{self, Scope};
use crate::queries::{self, Conditions};
use crate::state::AppState;
use crate::storage::FOUND;
use crate::users::User;

/// The default period: this many days, up to and including today.
pub const DEFAULT_DAYS: u64 = 30;
/// The longest period a bulletin covers: three years, both ends included, whatever leap
/// days fall in them.
pub const MAX_DAYS: i64 = 3 * 366;
/// Periods longer than this many days trend by ISO week instead of by day.
pub const DAILY_UP_TO_DAYS: i64 = 62;
/// How many enterprises the top lists hold.
pub const TOP_ENTERPRISES: usize = 10;
/// How many posts the three violations are counted by; the rest are summed under
/// [`OTHER_POSTS`], so that posts recorded as free text cannot make a bulletin of any size.
pub const TOP_POSTS: usize = 50;
/// The row that sums the posts past [`TOP_POSTS`].
pub const OTHER_POSTS: &str = "（其他岗位）";
/// Characters of a post a bulletin shows (a post is free text, up to 64 KiB), as the
/// tallies keep it.
pub use crate::storage::TALLIED_POST_CHARS as POST_CHARS;

/// `?from=&to=` as sent (empty means the default).
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// First day (`YYYY-MM-DD`); by default the 30 days up to `to`.
    #[param(format = Date)]
    pub from: String,
    /// Last day (`YYYY-MM-DD`), included; by default today in China.
    #[param(format = Date)]
    pub to: String,
}

/// The days a bulletin covers, both ends included, in China time. A case belongs to the
/// period by the day its visit began (`opened_at`, the inspector's local date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Period {
    /// First day.
    pub from: NaiveDate,
    /// Last day (included).
    pub to: NaiveDate,
}

impl Period {
    /// Parses `query`; a missing `to` is `today`, a missing `from` is the
    /// `DEFAULT_DAYS` days up to `to`, but not before 0000-01-01 (the first day written
    /// `YYYY-MM-DD`).
    pub fn parse(query: &PeriodQuery, today: NaiveDate) -> AppResult<Period> {
        let to = day(&query.to, "to")?.unwrap_or(today);
        let from = match day(&query.from, "from")? {
            Some(from) => from,
            None => {
                let first = NaiveDate::from_ymd_opt(0, 1, 1).expect("0000-01-01 is a day");
                to.checked_sub_days(Days::new(DEFAULT_DAYS - 1))
                    .map_or(first, |from| from.max(first))
            }
        };
        Period::new(from, to)
    }

    /// A period from `from` to `to`, refused when reversed or longer than `MAX_DAYS`.
    pub fn new(from: NaiveDate, to: NaiveDate) -> AppResult<Period> {
        if from > to {
            return Err(AppError::BadRequest(format!(
                "开始日期 {from} 晚于结束日期 {to} (from is after to)"
            )));
        }
        let period = Period { from, to };
        if period.days() > MAX_DAYS {
            return Err(AppError::BadRequest(format!(
                "统计期间为 {} 天，最长 {MAX_DAYS} 天（三年）(the period is {} days, at most {MAX_DAYS})",
                period.days(),
                period.days()
            )));
        }
        Ok(period)
    }

    /// How many days it covers.
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// Whether the trend is by ISO week (long periods) rather than by day.
    pub fn weekly(&self) -> bool {
        self.days() > DAILY_UP_TO_DAYS
    }

    /// The first day after the period (`YYYY-MM-DD`): an RFC 3339 time written in China's
    /// offset whose day is in the period compares at least `from` and less than this as
    /// text.
    pub fn end(&self) -> String {
        self.to
            .checked_add_days(Days::new(1))
            .unwrap_or(NaiveDate::MAX)
            .to_string()
    }

    /// `from=…&to=…`, for links to the same period.
    pub fn query(&self) -> String {
        format!("from={}&to={}", self.from, self.to)
    }
}

fn day(value: &str, field: &str) -> AppResult<Option<NaiveDate>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    anjian_core::parse_day(value).map(Some).ok_or_else(|| {
        AppError::BadRequest(format!(
            "{field} 日期 {value:?} 格式有误，应为 YYYY-MM-DD ({field} is not a date, use YYYY-MM-DD)"
        ))
    })
}

/// A bulletin: every number the page, the JSON and the exports show.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bulletin {
    /// The days covered.
    pub period: Period,
    /// `day` or `week`: the trend's buckets.
    #[schema(schema_with = granularity)]
    pub granularity: &'static str,
    /// The day it was computed (China time); overdue is judged on this day.
    pub computed_on: NaiveDate,
    /// The totals.
    pub totals: Totals,
    /// What the hazards' closed loop did in the period, by the day of each step.
    pub hazard_loop: LoopCounts,
    /// Enforcement documents (执法文书) issued in the period, by kind (every kind, zeros
    /// included), by the day they were issued.
    pub writs_by_kind: Vec<CountRow>,
    /// Cases and findings by owning district.
    pub by_district: Vec<GroupRow>,
    /// Cases and findings by the enterprise's industry.
    pub by_industry: Vec<GroupRow>,
    /// Cases and findings by case type.
    pub by_case_type: Vec<GroupRow>,
    /// Findings by level (every level, zeros included).
    pub findings_by_level: Vec<CountRow>,
    /// Cases and findings per day or ISO week (every bucket, zeros included).
    pub trend: Vec<TrendRow>,
    /// The enterprises with the most findings.
    pub top_enterprises: Vec<EnterpriseRow>,
    /// The enterprises with the most major hazards.
    pub top_major_enterprises: Vec<EnterpriseRow>,
    /// Three-violation findings by post, the most first: at most [`TOP_POSTS`] rows, the
    /// last summing the rest when there are more.
    pub violations_by_post: Vec<PostRow>,
    /// Three-violation findings by kind (every kind, zeros included).
    pub violations_by_kind: Vec<CountRow>,
}

/// The totals of a bulletin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Totals {
    /// Cases opened in the period.
    pub cases: i64,
    /// Their findings.
    pub findings: i64,
    /// Their major findings (重大事故隐患).
    pub major_findings: i64,
    /// Their three-violation findings.
    pub violations: i64,
    /// Findings whose rectification is ordered and not yet closed (销号).
    pub rectifications_open: i64,
    /// Findings whose rectification is closed.
    pub rectifications_closed: i64,
    /// Open rectifications that are overdue on `computed_on` (marked overdue, or past the
    /// deadline and not yet re-inspected), as on the rectification board.
    pub rectifications_overdue: i64,
}

/// The closed loop in a period: hazards counted by the day each step was taken (the
/// day in China), whenever their case was opened, so that a past
/// period's counts do not change with the day the bulletin is read. A hazard counts once
/// per line however many such steps it had in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct LoopCounts {
    /// Hazards found (recorded) in the period.
    pub found: i64,
    /// Hazards that passed a re-inspection (复查合格) in the period, on or before the
    /// rectification deadline in force then (extensions count).
    pub rectified_on_time: i64,
    /// Hazards that passed a re-inspection in the period after the deadline in force then.
    pub rectified_late: i64,
    /// Hazards re-inspected 不合格 in the period.
    pub reinspections_failed: i64,
    /// Hazards whose deadline was extended (延期) in the period.
    pub extended: i64,
    /// Hazards closed (销号) in the period.
    pub closed: i64,
    /// Hazards listed for supervision (挂牌督办) in the period.
    pub listed: i64,
    /// Hazards delisted (摘牌) in the period.
    pub delisted: i64,
}

/// Cases and findings of one district, industry or case type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GroupRow {
    /// The stable code (district code, industry code, case type code).
    pub code: String,
    /// The Chinese label (for districts, the name, e.g. 黄浦区, or the code when the
    /// server's table of districts does not know it).
    pub label: String,
    /// Cases.
    pub cases: i64,
    /// Findings.
    pub findings: i64,
    /// Major findings.
    pub major_findings: i64,
}

/// A count of one coded value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CountRow {
    /// The stable code.
    pub code: String,
    /// The Chinese label.
    pub label: String,
    /// How many.
    pub count: i64,
}

/// One day or ISO week of the trend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TrendRow {
    /// First day of the bucket within the period.
    pub from: NaiveDate,
    /// Last day of the bucket within the period.
    pub to: NaiveDate,
    /// The day (`2026-11-02`) or ISO week (`2026-W45`).
    pub label: String,
    /// Cases opened.
    pub cases: i64,
    /// Their findings.
    pub findings: i64,
    /// Their major findings.
    pub major_findings: i64,
}

/// An enterprise with its counts in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = BulletinEnterprise)]
pub struct EnterpriseRow {
    /// 统一社会信用代码.
    pub credit_code: String,
    /// Name, as on its latest case in the period.
    pub name: String,
    /// Owning district of that case.
    pub district: String,
    /// The district's name (黄浦区), or `null` when the server's table of districts does
    /// not know the code.
    pub district_name: Option<&'static str>,
    /// Industry code.
    pub industry: String,
    /// Industry label.
    pub industry_label: String,
    /// Cases.
    pub cases: i64,
    /// Findings.
    pub findings: i64,
    /// Major findings.
    pub major_findings: i64,
}

/// Three-violation findings recorded against one post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PostRow {
    /// The post (岗位) as recorded; `（未填岗位）` when none was.
    pub post: String,
    /// 违章指挥.
    pub illegal_command: i64,
    /// 违章作业.
    pub illegal_operation: i64,
    /// 违反劳动纪律.
    pub labour_discipline: i64,
    /// All three.
    pub total: i64,
}

/// Schema of `Bulletin::granularity`.
fn granularity() -> utoipa::openapi::schema::Object {
    crate::schemas::codes(["day", "week"])
}

/// The post shown for three-violation findings recorded without one.
pub const NO_POST: &str = "（未填岗位）";

/// The bulletin `user` asked for: supervisors and admins only, over their scope, for the
/// period of `query` (China time).
pub fn for_user(app: &AppState, user: &User, query: &PeriodQuery) -> AppResult<Bulletin> {
    policy::require_supervisor(user)?;
    let today = queries::today();
    let period = Period::parse(query, today)?;
    app.storage
        .read(|conn| bulletin(conn, policy::scope(user), period, today))
}

/// One case of the period with what the bulletin reads of it.
struct CaseFacts {
    credit_code: String,
    name: String,
    industry: String,
    district: String,
    case_type: String,
    opened_at: String,
    day: NaiveDate,
    findings: i64,
    major_findings: i64,
}

/// Computes the bulletin of `period` over the cases in `scope`, judging overdue
/// rectifications on `today`. Every number comes from one snapshot of the projections,
/// even while syncs commit.
pub fn bulletin(
    conn: &mut dyn Conn,
    scope: Scope<'_>,
    period: Period,
    today: NaiveDate,
) -> AppResult<Bulletin> {
    conn.consistent(|conn| read_bulletin(conn, scope, period, today))
}

/// `bulletin`, inside one snapshot.
fn read_bulletin(
    conn: &mut dyn Conn,
    scope: Scope<'_>,
    period: Period,
    today: NaiveDate,
) -> AppResult<Bulletin> {
    let mut w = Conditions::default();
    // `opened_at` is RFC 3339 in China's offset (the projection writes it so), so its first
    // ten characters are the day in China, and comparing whole strings against day bounds
    // selects the same cases while using the index on `opened_at`.
    w.push(
        "c.opened_at >= ? AND c.opened_at < ?",
        vec![db::value(period.from.to_string()), db::value(period.end())],
    );
    w.scope(scope);
    // The period's cases, each with the counts of its findings the projection keeps.
    let rows = conn.query(
        &format!(
            "SELECT c.case_id, c.enterprise_name, c.credit_code, c.industry, c.district, c.case_type, c.opened_at,
                    c.findings, c.major_findings
             FROM cases c {}",
            w.sql()
        ),
        w.params(),
    )?;
    let mut cases = Vec::with_capacity(rows.len());
    for r in &rows {
        let case_id: String = r.get(0)?;
        let opened_at: String = r.get(6)?;
        let day = opened_at
            .get(..10)
            .and_then(|d| d.parse::<NaiveDate>().ok())
            .ok_or_else(|| {
                AppError::Internal(format!(
                    "case {case_id}: stored opened_at {opened_at:?} has no date"
                ))
            })?;
        cases.push(CaseFacts {
            name: r.get(1)?,
            credit_code: r.get(2)?,
            industry: r.get(3)?,
            district: r.get(4)?,
            case_type: r.get(5)?,
            opened_at,
            day,
            findings: r.get(7)?,
            major_findings: r.get(8)?,
        });
    }
    // Their findings, from the tallies of the period's days (a few thousand rows for a
    // city's year, where its findings are hundreds of thousands).
    let tallies = conn.query(
        "SELECT level, rectification, deadline, violation, post, CAST(sum(n) AS BIGINT)
         FROM finding_tallies WHERE district = ?1 AND day >= ?2 AND day <= ?3
         GROUP BY level, rectification, deadline, violation, post",
        &tally_params(scope, period)?,
    )?;
    let today_text = today.to_string();
    let mut totals = Totals::default();
    let mut by_level: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_post: BTreeMap<String, PostRow> = BTreeMap::new();
    for r in &tallies {
        let level: String = r.get(0)?;
        let rectification: String = r.get(1)?;
        let deadline: String = r.get(2)?;
        let past_deadline = !deadline.is_empty() && deadline < today_text;
        let violation: String = r.get(3)?;
        let post: String = r.get(4)?;
        let n: i64 = r.get(5)?;
        totals.findings += n;
        if level == Level::Major.code() {
            totals.major_findings += n;
        }
        *by_level.entry(level).or_default() += n;
        match rectification.parse::<RectificationState>() {
            Ok(RectificationState::Closed) => totals.rectifications_closed += n,
            Ok(state) if state.is_open() => {
                totals.rectifications_open += n;
                if state.is_overdue(past_deadline) {
                    totals.rectifications_overdue += n;
                }
            }
            _ => {}
        }
        if !violation.is_empty() {
            totals.violations += n;
            let post = match post.trim() {
                "" => NO_POST.to_owned(),
                post if post.chars().count() > POST_CHARS => {
                    format!("{}…", post.chars().take(POST_CHARS).collect::<String>())
                }
                post => post.to_owned(),
            };
            let row = by_post.entry(post.clone()).or_insert_with(|| PostRow {
                post,
                illegal_command: 0,
                illegal_operation: 0,
                labour_discipline: 0,
                total: 0,
            });
            row.total += n;
            match violation.parse::<ViolationKind>() {
                Ok(ViolationKind::IllegalCommand) => row.illegal_command += n,
                Ok(ViolationKind::IllegalOperation) => row.illegal_operation += n,
                Ok(ViolationKind::LabourDiscipline) => row.labour_discipline += n,
                // A kind this build does not know still counts in the post's total.
                Err(_) => {}
            }
            *by_kind.entry(violation).or_default() += n;
        }
    }
    totals.cases = cases.len() as i64;

    let group = |key: fn(&CaseFacts) -> &str, label: fn(&str) -> String| {
        let mut groups: BTreeMap<&str, GroupRow> = BTreeMap::new();
        for case in &cases {
            let code = key(case);
            let row = groups.entry(code).or_insert_with(|| GroupRow {
                code: code.to_owned(),
                label: label(code),
                cases: 0,
                findings: 0,
                major_findings: 0,
            });
            row.cases += 1;
            row.findings += case.findings;
            row.major_findings += case.major_findings;
        }
        let mut rows: Vec<GroupRow> = groups.into_values().collect();
        rows.sort_by(|a, b| {
            (b.findings, b.cases)
                .cmp(&(a.findings, a.cases))
                .then_with(|| a.code.cmp(&b.code))
        });
        rows
    };
    let by_district = group(|c| &c.district, |code| district_label(code).to_owned());
    let by_industry = group(|c| &c.industry, label_of::<Industry>);
    let by_case_type = group(|c| &c.case_type, label_of::<CaseType>);

    let findings_by_level = Level::ALL
        .iter()
        .map(|l| CountRow {
            code: l.code().to_owned(),
            label: l.label().to_owned(),
            count: by_level.get(l.code()).copied().unwrap_or(0),
        })
        .collect();
    let mut violations_by_kind: Vec<CountRow> = ViolationKind::ALL
        .iter()
        .map(|k| CountRow {
            code: k.code().to_owned(),
            label: k.label().to_owned(),
            count: by_kind.remove(k.code()).unwrap_or(0),
        })
        .collect();
    // Kinds this build does not know are still shown, under their code.
    violations_by_kind.extend(by_kind.into_iter().map(|(code, count)| CountRow {
        label: code.clone(),
        code,
        count,
    }));

    let mut violations_by_post: Vec<PostRow> = by_post.into_values().collect();
    violations_by_post.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.post.cmp(&b.post)));
    if violations_by_post.len() > TOP_POSTS {
        let rest = violations_by_post.split_off(TOP_POSTS - 1);
        violations_by_post.push(rest.into_iter().fold(
            PostRow {
                post: OTHER_POSTS.to_owned(),
                illegal_command: 0,
                illegal_operation: 0,
                labour_discipline: 0,
                total: 0,
            },
            |sum, row| PostRow {
                illegal_command: sum.illegal_command + row.illegal_command,
                illegal_operation: sum.illegal_operation + row.illegal_operation,
                labour_discipline: sum.labour_discipline + row.labour_discipline,
                total: sum.total + row.total,
                ..sum
            },
        ));
    }

    let (top_enterprises, top_major_enterprises) = top_enterprises(&cases);
    let hazard_loop = hazard_loop(conn, scope, period)?;
    let writs_by_kind = writs_issued(conn, scope, period)?;
    Ok(Bulletin {
        hazard_loop,
        writs_by_kind,
        period,
        granularity: if period.weekly() { "week" } else { "day" },
        computed_on: today,
        trend: trend(period, cases.iter()),
        totals,
        by_district,
        by_industry,
        by_case_type,
        findings_by_level,
        top_enterprises,
        top_major_enterprises,
        violations_by_post,
        violations_by_kind,
    })
}

/// The enforcement documents in `scope` issued in `period`, by kind.
fn writs_issued(conn: &mut dyn Conn, scope: Scope<'_>, period: Period) -> AppResult<Vec<CountRow>> {
    let mut w = Conditions::default();
    // `issued_at` is RFC 3339 in China's offset: its first ten characters are the day in
    // China (compared as `opened_at` is, using its index).
    w.push(
        "wr.issued_at >= ? AND wr.issued_at < ?",
        vec![db::value(period.from.to_string()), db::value(period.end())],
    );
    w.scope(scope);
    let sql = format!(
        "SELECT wr.kind, count(*) FROM writs wr JOIN cases c ON c.case_id = wr.case_id {} GROUP BY wr.kind",
        w.sql()
    );
    let mut counts: BTreeMap<String, i64> = conn
        .query_map(&sql, w.params(), |r| Ok((r.get(0)?, r.get(1)?)))?
        .into_iter()
        .collect();
    Ok(WritKind::ALL
        .iter()
        .map(|k| CountRow {
            code: k.code().to_owned(),
            label: k.label().to_owned(),
            count: counts.remove(k.code()).unwrap_or(0),
        })
        .collect())
}

/// The parameters of a tallies' query over `period` in `scope`: the district ('' for
/// every case), the first day and the last.
fn tally_params(scope: Scope<'_>, period: Period) -> AppResult<Vec<db::Value>> {
    let district = match scope {
        Scope::All => "",
        Scope::District(district) => district,
        // Tallies count districts, not persons; bulletins are for supervisors.
        Scope::Own { .. } => {
            return Err(AppError::Internal(
                "a bulletin was asked over an inspector's own cases".into(),
            ));
        }
    };
    Ok(vec![
        db::value(district),
        db::value(period.from.to_string()),
        db::value(period.to.to_string()),
    ])
}

/// The closed loop of the hazards in `scope` over `period`, from the tallies of the
/// dated steps.
fn hazard_loop(conn: &mut dyn Conn, scope: Scope<'_>, period: Period) -> AppResult<LoopCounts> {
    let mut counts = LoopCounts::default();
    let mut params = tally_params(scope, period)?;
    params.push(db::value(period.from.to_string()));
    // A finding counts once for each class of step (kind, result, on time) it had in the
    // period: by its first step of the class in the period, the one whose previous step
    // of the class came before the period (or never: `since` is '').
    let rows = conn.query(
        "SELECT kind, result, on_time, CAST(sum(n) AS BIGINT)
         FROM step_tallies WHERE district = ?1 AND day >= ?2 AND day <= ?3 AND since < ?4
         GROUP BY kind, result, on_time",
        &params,
    )?;
    for r in &rows {
        let kind: String = r.get(0)?;
        let result: String = r.get(1)?;
        let on_time: i64 = r.get(2)?;
        let n: i64 = r.get(3)?;
        if kind == FOUND {
            counts.found += n;
            continue;
        }
        let line = match (kind.parse::<HazardAction>(), result.as_str(), on_time) {
            (Ok(HazardAction::Reinspect), "pass", 1) => &mut counts.rectified_on_time,
            (Ok(HazardAction::Reinspect), "pass", _) => &mut counts.rectified_late,
            (Ok(HazardAction::Reinspect), _, _) => &mut counts.reinspections_failed,
            (Ok(HazardAction::Extend), _, _) => &mut counts.extended,
            (Ok(HazardAction::Close), _, _) => &mut counts.closed,
            (Ok(HazardAction::List), _, _) => &mut counts.listed,
            (Ok(HazardAction::Delist), _, _) => &mut counts.delisted,
            _ => continue,
        };
        *line += n;
    }
    Ok(counts)
}

/// Every bucket of the period (days, or ISO weeks cut to the period), with the cases
/// opened in it and their findings.
fn trend<'a>(period: Period, cases: impl Iterator<Item = &'a CaseFacts>) -> Vec<TrendRow> {
    let weekly = period.weekly();
    let start_of = |day: NaiveDate| -> NaiveDate {
        if weekly {
            let monday =
                day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()));
            monday.max(period.from)
        } else {
            day
        }
    };
    let mut rows: Vec<TrendRow> = Vec::new();
    let mut day = period.from;
    while day <= period.to {
        let end = if weekly {
            let sunday =
                day + chrono::Duration::days(6 - i64::from(day.weekday().num_days_from_monday()));
            sunday.min(period.to)
        } else {
            day
        };
        let label = if weekly {
            let week = day.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        } else {
            day.to_string()
        };
        rows.push(TrendRow {
            from: day,
            to: end,
            label,
            cases: 0,
            findings: 0,
            major_findings: 0,
        });
        match end.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    for case in cases {
        let start = start_of(case.day);
        if let Ok(i) = rows.binary_search_by(|r| r.from.cmp(&start)) {
            rows[i].cases += 1;
            rows[i].findings += case.findings;
            rows[i].major_findings += case.major_findings;
        }
    }
    rows
}

/// The enterprises with the most findings, and with the most major findings.
fn top_enterprises(cases: &[CaseFacts]) -> (Vec<EnterpriseRow>, Vec<EnterpriseRow>) {
    let mut by_code: BTreeMap<&str, (EnterpriseRow, &str)> = BTreeMap::new();
    for case in cases {
        let (row, latest) = by_code.entry(&case.credit_code).or_insert_with(|| {
            (
                EnterpriseRow {
                    credit_code: case.credit_code.clone(),
                    name: case.name.clone(),
                    district: case.district.clone(),
                    district_name: district_name(&case.district),
                    industry: case.industry.clone(),
                    industry_label: label_of::<Industry>(&case.industry),
                    cases: 0,
                    findings: 0,
                    major_findings: 0,
                },
                &case.opened_at,
            )
        });
        // An enterprise may be renamed or move: show it as on its latest case.
        if case.opened_at.as_str() > *latest {
            row.name.clone_from(&case.name);
            row.district.clone_from(&case.district);
            row.district_name = district_name(&case.district);
            row.industry.clone_from(&case.industry);
            row.industry_label = label_of::<Industry>(&case.industry);
            *latest = &case.opened_at;
        }
        row.cases += 1;
        row.findings += case.findings;
        row.major_findings += case.major_findings;
    }
    let all: Vec<EnterpriseRow> = by_code.into_values().map(|(row, _)| row).collect();
    let mut most: Vec<EnterpriseRow> = all.iter().filter(|r| r.findings > 0).cloned().collect();
    most.sort_by(|a, b| {
        (b.findings, b.major_findings)
            .cmp(&(a.findings, a.major_findings))
            .then_with(|| a.credit_code.cmp(&b.credit_code))
    });
    most.truncate(TOP_ENTERPRISES);
    let mut major: Vec<EnterpriseRow> = all.into_iter().filter(|r| r.major_findings > 0).collect();
    major.sort_by(|a, b| {
        (b.major_findings, b.findings)
            .cmp(&(a.major_findings, a.findings))
            .then_with(|| a.credit_code.cmp(&b.credit_code))
    });
    major.truncate(TOP_ENTERPRISES);
    (most, major)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("test date")
    }

    fn query(from: &str, to: &str) -> PeriodQuery {
        PeriodQuery {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn periods_default_to_the_last_thirty_days_and_refuse_bad_input() {
        let today = date("2026-11-29");
        let p = Period::parse(&query("", ""), today).expect("default");
        assert_eq!((p.from, p.to, p.days()), (date("2026-10-31"), today, 30));
        let p = Period::parse(&query("", "2026-02-10"), today).expect("only to");
        assert_eq!(p.from, date("2026-01-12"));
        for (from, to, says) in [
            ("2026-11-30", "2026-11-01", "晚于"),
            ("2020-01-01", "2026-01-01", "最长"),
            ("2026-13-01", "", "YYYY-MM-DD"),
            ("", "yesterday", "YYYY-MM-DD"),
            // Days `NaiveDate` reads but that are not written YYYY-MM-DD.
            ("-262143-01-01", "-262143-01-05", "YYYY-MM-DD"),
            ("", "+12026-01-01", "YYYY-MM-DD"),
            ("2026-1-01", "", "YYYY-MM-DD"),
        ] {
            match Period::parse(&query(from, to), today) {
                Err(AppError::BadRequest(message)) => assert!(message.contains(says), "{message}"),
                other => panic!("{from}..{to}: {other:?}"),
            }
        }
        assert!(Period::parse(&query("2023-11-29", "2026-11-29"), today).is_ok());
        let p = Period::parse(&query("", "0000-01-05"), today).expect("early");
        assert_eq!(p.from.to_string(), "0000-01-01", "still written YYYY-MM-DD");
    }

    #[test]
    fn long_periods_trend_by_iso_week_cut_to_the_period() {
        let period = Period::new(date("2026-01-01"), date("2026-03-31")).expect("period");
        let rows = trend(period, std::iter::empty());
        assert_eq!(rows[0].label, "2026-W01");
        assert_eq!(
            (rows[0].from, rows[0].to),
            (date("2026-01-01"), date("2026-01-04"))
        );
        assert_eq!(rows[1].from, date("2026-01-05"));
        let last = rows.last().expect("rows");
        assert_eq!(
            (last.from, last.to),
            (date("2026-03-30"), date("2026-03-31"))
        );
        let days: i64 = rows.iter().map(|r| (r.to - r.from).num_days() + 1).sum();
        assert_eq!(days, period.days());
        let short = Period::new(date("2026-01-01"), date("2026-01-31")).expect("period");
        assert_eq!(trend(short, std::iter::empty()).len(), 31);
    }
}
