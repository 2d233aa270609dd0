//! The law-enforcement bulletin page (执法通报): a period, then each count as a chart with
//! the same numbers in a table beneath it, and links to export the same bulletin.

use std::sync::Arc;

use anjian_core::district_with_code;
use axum::extract::{Query, State};
use maud::{Markup, html};

use super::charts::{self, Bar, Column};
use super::{WebError, page};
use crate::auth::Viewer;
use crate::state::AppState;
use crate::stats::{self, Bulletin, EnterpriseRow, GroupRow, LoopCounts, PeriodQuery};

/// `GET /bulletins?from=&to=`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Query(query): Query<PeriodQuery>,
) -> Result<Markup, WebError> {
    let user = viewer.user.clone();
    let b = app
        .reading(user.id, move |app| stats::for_user(app, &user, &query))
        .await?;
    Ok(page("执法通报", Some(&viewer), body(&b)))
}

/// The closed loop in the period, by the day of each step.
fn loop_section(l: &LoopCounts) -> Markup {
    html! {
        section.totals #hazard-loop {
            h2 { "隐患闭环（按各环节发生日期）" }
            p { "以下按隐患计数，统计期间内发生的各环节，不论案件何时检查；往期数字不随查看日期变化。" }
            dl.totals {
                dt { "发现隐患" } dd #loop-found { (l.found) }
                dt { "按期整改" } dd #loop-on-time { (l.rectified_on_time) }
                dt { "逾期整改" } dd.overdue #loop-late { (l.rectified_late) }
                dt { "复查不合格" } dd #loop-failed { (l.reinspections_failed) }
                dt { "延期" } dd #loop-extended { (l.extended) }
                dt { "销号" } dd #loop-closed { (l.closed) }
                dt { "挂牌督办" } dd.major #loop-listed { (l.listed) }
                dt { "摘牌" } dd #loop-delisted { (l.delisted) }
            }
        }
    }
}

/// Enforcement documents issued in the period, by kind.
fn writs_section(rows: &[crate::stats::CountRow]) -> Markup {
    html! {
        section.totals #writs-issued {
            h2 { "执法文书签发情况" }
            table.counts {
                thead { tr { th { "文书" } th { "签发数" } } }
                tbody { @for r in rows { tr { td { (r.label) } td { (r.count) } } } }
            }
        }
    }
}

fn body(b: &Bulletin) -> Markup {
    let t = &b.totals;
    let q = b.period.query();
    html! {
        h1 { "执法通报" }
        form.filters method="get" action="/bulletins" {
            label { "自" input name="from" type="date" value=(b.period.from) required; }
            label { "至" input name="to" type="date" value=(b.period.to) required; }
            button type="submit" { "统计" }
            a.export href={ "/api/v1/bulletins.xlsx?" (q) } { "导出 XLSX" }
            a.export href={ "/api/v1/bulletins.csv?" (q) } { "导出 CSV" }
        }
        p.summary {
            "统计期间 " strong { (b.period.from) } " 至 " strong { (b.period.to) } "（共 " (b.period.days()) " 天，按检查开始日期计），"
            "趋势按" (if b.granularity == "week" { "周" } else { "日" }) "统计；"
            "逾期以 " (b.computed_on) "（北京时间）为准。"
        }
        section.totals {
            h2 { "总体情况" }
            dl.totals {
                dt { "检查案件" } dd #total-cases { (t.cases) }
                dt { "发现隐患" } dd #total-findings { (t.findings) }
                dt { "重大隐患" } dd.major #total-major { (t.major_findings) }
                dt { "三违" } dd #total-violations { (t.violations) }
                dt { "整改未销号" } dd #total-open { (t.rectifications_open) }
                dt { "已销号" } dd #total-closed { (t.rectifications_closed) }
                dt { "逾期未整改" } dd.overdue #total-overdue { (t.rectifications_overdue) }
            }
            table.counts {
                thead { tr { th { "隐患级别" } th { "数量" } } }
                tbody { @for r in &b.findings_by_level { tr { td { (r.label) } td { (r.count) } } } }
            }
        }
        (loop_section(&b.hazard_loop))
        (writs_section(&b.writs_by_kind))
        (group_section("by-district", "分区域（按辖区）", "辖区", &b.by_district))
        (group_section("by-industry", "分行业", "行业", &b.by_industry))
        (group_section("by-type", "分类型（按检查类型）", "检查类型", &b.by_case_type))
        section.chart #trend {
            h2 { "趋势（按" (if b.granularity == "week" { "周" } else { "日" }) "）" }
            (charts::trend("隐患与案件趋势", &b.trend.iter().map(|r| Column {
                label: r.label.clone(), findings: r.findings, major: r.major_findings, cases: r.cases,
            }).collect::<Vec<_>>()))
            details {
                summary { "数据表" }
                table.counts {
                    thead { tr { th { "时段" } th { "日期" } th { "案件" } th { "隐患" } th { "重大隐患" } } }
                    tbody {
                        @for r in &b.trend {
                            tr { td { (r.label) } td { (r.from) @if r.from != r.to { " 至 " (r.to) } } td { (r.cases) } td { (r.findings) } td { (r.major_findings) } }
                        }
                    }
                }
            }
        }
        (enterprise_section("top-enterprises", "隐患最多的企业", &b.top_enterprises, false))
        (enterprise_section("top-major-enterprises", "重大隐患最多的企业", &b.top_major_enterprises, true))
        section.chart #violations {
            h2 { "三违按岗位" }
            (charts::bars("三违按岗位", &b.violations_by_post.iter().map(|r| Bar {
                label: r.post.clone(), value: r.total, major: 0, note: r.total.to_string(),
            }).collect::<Vec<_>>()))
            table.counts {
                thead { tr { th { "岗位" } th { "违章指挥" } th { "违章作业" } th { "违反劳动纪律" } th { "合计" } } }
                tbody {
                    @for r in &b.violations_by_post {
                        tr { td { (r.post) } td { (r.illegal_command) } td { (r.illegal_operation) } td { (r.labour_discipline) } td { (r.total) } }
                    }
                    @if b.violations_by_post.is_empty() { tr { td colspan="5" { "本期没有三违记录" } } }
                }
                tfoot {
                    tr {
                        th { "合计" }
                        @for r in &b.violations_by_kind { th { (r.count) } }
                        th { (t.violations) }
                    }
                }
            }
        }
    }
}

fn group_section(id: &str, heading: &str, what: &str, rows: &[GroupRow]) -> Markup {
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            label: r.label.clone(),
            value: r.findings,
            major: r.major_findings,
            note: note(r.findings, r.major_findings, r.cases),
        })
        .collect();
    html! {
        section.chart id=(id) {
            h2 { (heading) }
            (charts::bars(&format!("{heading}：隐患数（红色为重大隐患）"), &bars))
            table.counts {
                thead { tr { th { (what) } th { "代码" } th { "案件" } th { "隐患" } th { "重大隐患" } } }
                tbody {
                    @for r in rows {
                        tr { td { (r.label) } td { (r.code) } td { (r.cases) } td { (r.findings) } td { (r.major_findings) } }
                    }
                    @if rows.is_empty() { tr { td colspan="5" { "本期没有检查案件" } } }
                }
            }
        }
    }
}

fn enterprise_section(id: &str, heading: &str, rows: &[EnterpriseRow], major: bool) -> Markup {
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            label: r.name.clone(),
            value: if major { r.major_findings } else { r.findings },
            major: r.major_findings,
            note: note(r.findings, r.major_findings, r.cases),
        })
        .collect();
    html! {
        section.chart id=(id) {
            h2 { (heading) " (前 " (stats::TOP_ENTERPRISES) " 家)" }
            (charts::bars(heading, &bars))
            table.counts {
                thead { tr { th { "排名" } th { "企业" } th { "统一社会信用代码" } th { "辖区" } th { "行业" } th { "案件" } th { "隐患" } th { "重大隐患" } } }
                tbody {
                    @for (i, r) in rows.iter().enumerate() {
                        tr { td { (i + 1) } td { (r.name) } td { (r.credit_code) } td { (district_with_code(&r.district)) } td { (r.industry_label) } td { (r.cases) } td { (r.findings) } td { (r.major_findings) } }
                    }
                    @if rows.is_empty() { tr { td colspan="8" { "本期没有" @if major { "重大" } "隐患" } } }
                }
            }
        }
    }
}

/// The numbers written beside a bar.
fn note(findings: i64, major: i64, cases: i64) -> String {
    if major > 0 {
        format!("{findings} 项（重大 {major}）· {cases} 件")
    } else {
        format!("{findings} 项 · {cases} 件")
    }
}
