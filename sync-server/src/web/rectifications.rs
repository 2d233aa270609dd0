//! The rectification board (隐患排查治理闭环): every open rectification in the viewer's
//! scope and every hazard listed for supervision (挂牌督办) until delisted, listed ones
//! always on top with their authority and days left, overdue ones escalated; above them,
//! the decisions on on-site measures (现场处理措施决定书: evacuation, suspension) in force.

use std::sync::Arc;

use axum::extract::{Query, State};
use maud::{Markup, html};

use super::{WebError, page};
use crate::auth::Viewer;
use crate::labels::label_of;
use crate::policy;
use crate::queries::{self, BoardFilter, BoardRow, RegisterFilter, RegisterRow};
use crate::state::AppState;
use anjian_core::{Level, RectificationState, WritKind, WritState};

/// `GET /rectifications`.
pub async fn board(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Query(filter): Query<BoardFilter>,
) -> Result<Markup, WebError> {
    policy::require_supervisor(&viewer.user)?;
    let (rows, decisions) = app.storage.read(|conn| {
        let scope = policy::scope(&viewer.user);
        let decisions = queries::register(
            conn,
            scope,
            &RegisterFilter {
                kind: WritKind::OnsiteDecision.code().into(),
                ..RegisterFilter::default()
            },
        )?;
        Ok((queries::board(conn, scope, &filter)?, decisions))
    })?;
    // Decisions on on-site measures in force (issued, not voided), newest first: a
    // suspension reaches the supervisors the moment its document syncs.
    let decisions: Vec<&RegisterRow> = decisions
        .iter()
        .rev()
        .filter(|d| d.state == WritState::Issued.code())
        .collect();
    let overdue: Vec<&BoardRow> = rows.iter().filter(|r| r.overdue).collect();
    let body = html! {
        h1 { "隐患整改" }
        p.summary {
            "未销号 " strong #open-count { (rows.len()) } " 项，"
            "其中挂牌督办 " strong.major #listed-count { (rows.iter().filter(|r| r.listed).count()) } " 项，"
            "逾期 " strong.overdue #overdue-count { (overdue.len()) } " 项。"
            "今天是 " (queries::today()) "（北京时间）。"
        }
        form.filters method="get" action="/rectifications" {
            label { "辖区" input name="district" list="districts" value=(filter.district) placeholder="行政区划代码"; (super::district_choices()) }
            label { "级别" select name="level" {
                option value="" { "全部" }
                @for l in Level::ALL { option value=(l.code()) selected[filter.level == l.code()] { (l.label()) } }
            } }
            label.check { input type="checkbox" name="overdue" value="true" checked[filter.overdue == "true"]; "仅看逾期" }
            button type="submit" { "筛选" }
        }
        @if !decisions.is_empty() {
            section.decisions #onsite-decisions {
                h2 { "现场处理措施决定 (" (decisions.len()) ")" }
                table {
                    thead { tr { th { "企业" } th { "文书编号" } th { "签发" } th { "部门" } } }
                    tbody {
                        @for d in &decisions {
                            tr data-writ=(d.writ_id) {
                                td { a href={ "/cases/" (d.case_id) "#writs" } { (d.enterprise) } }
                                td { (d.number.as_deref().unwrap_or_default()) @if d.provisional { " " span.badge { "临时编号" } } }
                                td { (d.issued_at.as_deref().map_or("", |t| t.get(..10).unwrap_or(t))) }
                                td { (d.department) }
                            }
                        }
                    }
                }
            }
        }
        @if !overdue.is_empty() {
            section.escalated {
                h2 { "逾期督办 (" (overdue.len()) ")" }
                p { "以下隐患已超过整改期限仍未复查，请督促企业整改并安排复查。" }
                (table(&overdue))
            }
        }
        section {
            h2 { "全部未销号隐患" }
            (table(&rows.iter().collect::<Vec<_>>()))
        }
    };
    Ok(page("隐患整改", Some(&viewer), body))
}

fn table(rows: &[&BoardRow]) -> Markup {
    html! {
        table.board {
            thead { tr { th { "隐患" } th { "企业" } th { "辖区" } th { "级别" } th { "整改期限" } th { "剩余天数" } th { "责任人" } th { "状态" } th { "佐证" } } }
            tbody {
                @for r in rows {
                    tr.listed[r.listed].overdue[r.overdue] data-finding=(r.finding_id) {
                        td {
                            a href={ "/cases/" (r.case_id) "#finding-" (r.finding_id) } { (r.title) } br; small { (r.measures) }
                            @if !r.onsite.is_empty() { br; small.onsite { "现场处理措施：" (r.onsite.join("；")) } }
                            @if let Some(l) = &r.listing {
                                br; small.listing {
                                    "督办：" (l.authority) " · " (l.number) " · 督办期限 " (l.deadline)
                                    @if l.days_left < 0 { " · 已超期 " (-l.days_left) " 天" } @else { " · 剩余 " (l.days_left) " 天" }
                                }
                            }
                        }
                        td { (r.enterprise) }
                        td title=(r.district) { (r.district_name.unwrap_or(&r.district)) }
                        td { (label_of::<Level>(&r.level)) @if r.listed { " " span.badge.major { "挂牌督办" } } }
                        td { (r.deadline) }
                        td.days {
                            @if r.days_left < 0 { span.overdue { "逾期 " (-r.days_left) " 天" } }
                            @else if r.days_left == 0 { "今天到期" }
                            @else { (r.days_left) " 天" }
                        }
                        td { (r.responsible) }
                        td { (label_of::<RectificationState>(&r.state)) }
                        td { @if r.evidence > 0 { (r.evidence) } @else { "—" } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="9" { "没有未销号的隐患" } } }
            }
        }
    }
}
