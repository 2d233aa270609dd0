//! The rectification board (隐患排查治理闭环): every open rectification in the viewer's
//! scope and every hazard listed for supervision (挂牌督办) until delisted, listed ones
//! always on top with their authority and days left, overdue ones next, a page at a time
//! with the counts over all of them; above them, the decisions on on-site measures
//! (现场处理措施决定书: evacuation, suspension) in force.

use std::sync::Arc;

use axum::extract::{Query, State};
use maud::{Markup, html};

use super::{WebError, page};
use crate::auth::Viewer;
use crate::labels::label_of;
use crate::policy;
use crate::queries::{self, BoardFilter, BoardRow};
use crate::state::AppState;
use anjian_core::{Level, RectificationState, WritKind};

/// Decisions on on-site measures the board lists (the last issued); the register has them
/// all.
const DECISIONS_SHOWN: i64 = 20;

/// `GET /rectifications`.
pub async fn board(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Query(filter): Query<BoardFilter>,
) -> Result<Markup, WebError> {
    policy::require_supervisor(&viewer.user)?;
    let (user, asked) = (viewer.user.clone(), filter.clone());
    let (board, (decisions_total, decisions)) = app
        .reading(user.id, move |app| {
            app.storage.read(|conn| {
                let scope = policy::scope(&user);
                let decisions = queries::decisions_in_force(conn, scope, DECISIONS_SHOWN)?;
                Ok((queries::board(conn, scope, &asked)?, decisions))
            })
        })
        .await?;
    let rows: Vec<&BoardRow> = board.rows.iter().collect();
    let (limit, offset) = queries::page_bounds(filter.limit, filter.offset);
    let first = if rows.is_empty() { offset } else { offset + 1 };
    let last = offset + rows.len() as i64;
    let body = html! {
        h1 { "隐患整改" }
        p.summary {
            "未销号 " strong #open-count { (board.total) } " 项，"
            "其中挂牌督办 " strong.major #listed-count { (board.listed) } " 项，"
            "逾期 " strong.overdue #overdue-count { (board.overdue) } " 项。"
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
                h2 { "现场处理措施决定 (" (decisions_total) ")" }
                @if decisions_total > decisions.len() as i64 {
                    p { "以下为最近签发的 " (decisions.len()) " 份；全部见" a href={ "/documents?kind=" (WritKind::OnsiteDecision.code()) } { "执法文书登记" } "。" }
                }
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
        @if board.overdue > 0 && filter.overdue != "true" {
            section.escalated {
                h2 { "逾期督办 (" (board.overdue) ")" }
                p {
                    (board.overdue) " 项隐患已超过整改期限仍未复查，请督促企业整改并安排复查。"
                    "它们排在挂牌督办之后、其余隐患之前；"
                    a href=(page_link(&filter, 0, true)) { "仅看逾期" }
                }
            }
        }
        section {
            h2 { @if filter.overdue == "true" { "逾期未销号隐患" } @else { "全部未销号隐患" } }
            p.count { "第 " (first) "–" (last) " 项，共 " (board.total) " 项（挂牌督办、逾期在前）" }
            (table(&rows))
            nav.pages {
                @if offset > 0 { a rel="prev" href=(page_link(&filter, (offset - limit).max(0), filter.overdue == "true")) { "上一页" } " " }
                @if last < board.total { a rel="next" href=(page_link(&filter, last, filter.overdue == "true")) { "下一页" } }
            }
        }
    };
    Ok(page("隐患整改", Some(&viewer), body))
}

/// The board's address with `filter`, from row `offset`, overdue ones only if `overdue`.
fn page_link(filter: &BoardFilter, offset: i64, overdue: bool) -> String {
    let pairs = [
        ("district", filter.district.as_str()),
        ("level", &filter.level),
        ("overdue", if overdue { "true" } else { "" }),
    ];
    super::paged("/rectifications", &pairs, filter.limit, offset)
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
