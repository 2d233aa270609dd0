//! Case review pages: the list with its filters, one case in full (findings with photos,
//! checklists, conflicts with who wrote each value, the review trail and the history with
//! device and server times side by side), and the review actions.

use std::collections::HashMap;
use std::sync::Arc;

use anjian_core::{
    Case, CaseId, CaseType, Conflict, FieldValue, Finding, Industry, Level, PhotoRef,
    RectificationState, ReviewAction, ReviewState,
};
use axum::extract::{Form, Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, FixedOffset, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::encode_query;
use super::{WebError, page};
use crate::auth::Viewer;
use crate::error::AppError;
use crate::evidence::{self, ChangeCheck, Verdict};
use crate::labels::label_of;
use crate::policy;
use crate::queries::{self, CaseFilter, CaseRow};
use crate::review::{self, HistoryRow};
use crate::state::AppState;
use anjian_core::china;
use anjian_core::rules;

/// `GET /cases`: the cases in the viewer's scope, filtered.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Query(filter): Query<CaseFilter>,
) -> Result<Markup, WebError> {
    let (user, asked) = (viewer.user.clone(), filter.clone());
    let (rows, total) = app
        .reading(user.id, move |app| {
            app.storage
                .read(|conn| queries::cases(conn, policy::scope(&user), &asked))
        })
        .await?;
    let body = html! {
        h1 { "案件审核" }
        form.filters method="get" action="/cases" {
            label { "辖区" input name="district" list="districts" value=(filter.district) placeholder="行政区划代码"; (super::district_choices()) }
            label { "企业" input name="enterprise" value=(filter.enterprise) placeholder="名称或信用代码"; }
            label { "行业" (select("industry", &filter.industry, Industry::ALL.iter().map(|i| (i.code(), i.label())))) }
            label { "类型" (select("type", &filter.case_type, CaseType::ALL.iter().map(|t| (t.code(), t.label())))) }
            label { "状态" (select("state", &filter.state, ReviewState::ALL.iter().map(|s| (s.code(), s.label())))) }
            label { "隐患级别" (select("level", &filter.level, Level::ALL.iter().map(|l| (l.code(), l.label())))) }
            label { "检查人员" input name="inspector" value=(filter.inspector); }
            label { "自" input name="from" type="date" value=(filter.from); }
            label { "至" input name="to" type="date" value=(filter.to); }
            label.check { input type="checkbox" name="conflicts" value="true" checked[filter.conflicts == "true"]; "仅看有冲突的" }
            button type="submit" { "筛选" }
            a href="/cases" { "清除" }
        }
        p.count { "共 " span #case-count { (total) } " 件" @if total > rows.len() as i64 { "，显示前 " (rows.len()) " 件" } }
        table.cases {
            thead { tr { th { "企业" } th { "行业" } th { "辖区" } th { "类型" } th { "检查日期" } th { "检查组" } th { "隐患" } th { "状态" } } }
            tbody {
                @for row in &rows { (case_row(row)) }
                @if rows.is_empty() { tr { td colspan="8" { "没有符合条件的案件" } } }
            }
        }
    };
    Ok(page("案件审核", Some(&viewer), body))
}

fn case_row(row: &CaseRow) -> Markup {
    html! {
        tr.conflicted[row.conflicts > 0] data-case=(row.id) {
            td { a href={ "/cases/" (row.id) } { (row.enterprise.name) } br; small { (row.enterprise.credit_code) } }
            td { (label_of::<Industry>(&row.enterprise.industry)) }
            td title=(row.district) { (row.district_name.unwrap_or(&row.district)) }
            td { (label_of::<CaseType>(&row.case_type)) }
            td { (row.opened_at.get(..10).unwrap_or(&row.opened_at)) }
            td { (row.team.join("、")) }
            td {
                (row.findings)
                @if row.major_findings > 0 { " " span.badge.major { "重大 " (row.major_findings) } }
                @if row.conflicts > 0 { " " span.badge.conflict { "冲突 " (row.conflicts) } }
            }
            td { span class={ "state " (row.state) } { (label_of::<ReviewState>(&row.state)) } }
        }
    }
}

fn select<'a>(
    name: &str,
    current: &str,
    options: impl Iterator<Item = (&'a str, &'a str)>,
) -> Markup {
    html! {
        select name=(name) {
            option value="" { "全部" }
            @for (code, label) in options {
                option value=(code) selected[code == current] { (label) }
            }
        }
    }
}

/// The case `id` in full, as `viewer` may see it, read on the read threads.
async fn load(
    app: &Arc<AppState>,
    viewer: &Viewer,
    id: &str,
) -> crate::error::AppResult<review::CaseDetail> {
    let (user, id) = (viewer.user.clone(), id.to_owned());
    app.reading(user.id, move |app| review::load(app, &user, &id))
        .await
}

/// `GET /cases/{id}`: one case in full.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Markup, WebError> {
    // The case, and the check of every change's signature and receipt: both walk the
    // whole case, on the read threads.
    let (user, asked) = (viewer.user.clone(), id.clone());
    let (detail, checks) = app
        .reading(user.id, move |app| {
            let (detail, mut doc) = review::load_with_document(app, &user, &asked)?;
            let checks = evidence::check(&app.storage, detail.case.id, &mut doc)?;
            Ok((detail, checks))
        })
        .await?;
    let case = &detail.case;
    let author = policy::author(&viewer.user);
    let reviewer = rules::supervises(&author);
    // Deciding belongs to the owning district; a district the case is shared with
    // comments (the rule book decides both).
    let decides = rules::decides(&author, &case.district);
    let body = html! {
        header.case-head {
            h1 { (case.enterprise.name) }
            span class={ "state " (case.state.code()) } #review-state { (case.state.label()) }
        }
        @if let Some(amended) = case.amends {
            @if detail.amends_confirmed {
                p.amends { "本案是对案件 " a href={ "/cases/" (amended) } { (amended) } " 的更正（原案件已审核锁定）。" }
            } @else {
                p.amends.unconfirmed { "本案声称更正案件 " (amended) "，但服务器上没有该企业经审核锁定的这一案件，请核实。" }
            }
        }
        @if !detail.amendments.is_empty() {
            p.amends {
                "更正案件："
                @for (id, opened) in &detail.amendments {
                    a href={ "/cases/" (id) } { (opened.get(..10).unwrap_or(opened)) } " "
                }
            }
        }
        dl.facts {
            dt { "统一社会信用代码" } dd { (case.enterprise.credit_code.as_str()) }
            dt { "行业" } dd { (case.enterprise.industry.label()) }
            dt { "风险等级" } dd { (case.enterprise.risk_grade.label()) }
            dt { "辖区" } dd #district { (case.district.name_with_code()) @for d in &case.visible_to { "，共享给 " (d.name_with_code()) } }
            dt { "检查类型" } dd { (case.case_type.label()) }
            dt { "检查时间" } dd { (time(&case.opened_at)) }
            dt { "检查组" } dd {
                @for (i, m) in case.team.iter().enumerate() {
                    @if i > 0 { "；" }
                    (m.name) "（" (m.department) "，" (m.district.label()) "）"
                }
            }
        }
        @if !detail.conflicts.is_empty() {
            section.conflicts #conflicts {
                h2 { "待处理的冲突 (" (detail.conflicts.len()) ")" }
                p { "多名检查人员离线时对同一字段写入了不同的值。请确认后选择一个值或填写新值；处理结果会同步到所有检查人员的设备。" }
                @for conflict in &detail.conflicts { (conflict_form(case, conflict, &viewer, decides)) }
            }
        }
        section.findings {
            h2 { "隐患 (" (case.findings.len()) ")" }
            @for finding in &case.findings { (finding_card(case, finding, &detail.conflicts, decides.then_some(&viewer))) }
            @if case.findings.is_empty() { p { "未记录隐患" } }
        }
        (writs(case))
        @if !case.checklists.is_empty() {
            section.checklists {
                h2 { "检查表" }
                @for list in &case.checklists {
                    details open {
                        summary { (list.title) " · " (list.entries.iter().filter(|e| e.answer.is_some()).count()) "/" (list.entries.len()) " 已答" }
                        table {
                            thead { tr { th { "检查项" } th { "结论" } th { "岗位 / 人员" } th { "说明" } } }
                            tbody {
                                @for entry in &list.entries {
                                    tr {
                                        td { (entry.item.text) }
                                        @if let Some(a) = &entry.answer {
                                            td class={ "answer " (a.result.code()) } { (a.result.label()) }
                                            td { (a.post) @if !a.person.is_empty() { " / " (a.person) } }
                                            td { (a.note) }
                                        } @else {
                                            td.unanswered colspan="3" { "未答" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.review {
            h2 { "审核记录" }
            ol.events {
                @for e in &case.review_events {
                    li { span.kind { (label_of_action(&e.kind)) } " · " (e.by) " · " (stamp(&e.at)) @if !e.text.is_empty() { p { (e.text) } } }
                }
                @if case.review_events.is_empty() { li { "暂无" } }
            }
            @if reviewer { (review_forms(case, &viewer, decides)) }
        }
        (signatures(case, &checks, &detail.history, reviewer))
        section.history {
            h2 { "修改历史" }
            p.note { "时间均为北京时间。设备时间取自检查人员手机的时钟（可能不准），服务器接收时间由服务器记录。" }
            table {
                thead { tr { th { "操作" } th { "修改人" } th { "设备" } th { "设备时间" } th { "服务器接收时间" } } }
                tbody { @for h in rows_shown(&detail.history, |_| false) { (history_row(h)) } }
            }
            (more_than_shown(detail.history.len(), "最近的"))
        }
    };
    Ok(page(&case.enterprise.name, Some(&viewer), body))
}

fn label_of_action(kind: &str) -> &str {
    kind.parse::<ReviewAction>().map_or(kind, |a| a.label())
}

/// A time as supervisors read it: in China time, whatever zone the device was set to.
fn time(t: &DateTime<FixedOffset>) -> String {
    t.with_timezone(&china())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// An RFC 3339 time from the history, to the second, in China time.
fn stamp(text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|t| {
            t.with_timezone(&china())
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| text.to_owned())
}

/// What a change did, in words (the action recorded with every change).
fn action_label(action: &str) -> &str {
    if let Some(review) = action.strip_prefix("review:") {
        return label_of_action(review);
    }
    match action {
        "open_case" => "开始检查",
        "add_finding" => "记录隐患",
        "edit_finding" => "修改隐患",
        "remove_finding" => "作废隐患",
        "order_rectification" => "下达整改",
        "move_rectification" => "整改状态变更",
        "reinspect" => "复查",
        "attach_checklist" => "添加检查表",
        "answer_item" => "填写检查项",
        "attach_photo" => "添加照片",
        "detach_photo" => "移除照片",
        "resolve_conflict" => "处理冲突",
        crate::review::OTHER_ACTION => "其他修改",
        other => other,
    }
}

/// The 签名核验 section: every change with who signed it, from which device, whether its
/// device signature and the server's receipt verify, and one line saying whether all do;
/// with the evidence package's downloads for those who supervise.
fn signatures(
    case: &Case,
    checks: &[ChangeCheck],
    history: &[HistoryRow],
    reviewer: bool,
) -> Markup {
    let verified = checks
        .iter()
        .filter(|c| c.signature == Verdict::Verified)
        .count();
    let unsigned = checks
        .iter()
        .filter(|c| c.signature == Verdict::Missing)
        .count();
    let failed = checks.len() - verified - unsigned;
    let receipts_failed = checks
        .iter()
        .filter(|c| matches!(c.receipt, Verdict::Failed(_)))
        .count();
    let all = failed == 0 && unsigned == 0 && receipts_failed == 0;
    let actions: HashMap<&str, &str> = history
        .iter()
        .map(|h| (h.hash.as_str(), action_label(&h.action)))
        .collect();
    let action = |hash: &str| actions.get(hash).copied().unwrap_or("—");
    let failing = |c: &ChangeCheck| {
        matches!(c.signature, Verdict::Failed(_)) || matches!(c.receipt, Verdict::Failed(_))
    };
    html! {
        section.signatures #signatures {
            h2 { "签名核验" }
            p.summary.verified[all].failed[failed + receipts_failed > 0] #signature-summary data-verified=(all) {
                @if all {
                    "全部 " (checks.len()) " 项修改的设备签名均核验通过，服务器回执均有效。"
                } @else {
                    "共 " (checks.len()) " 项修改：" (verified) " 项设备签名核验通过"
                    @if unsigned > 0 { "，" (unsigned) " 项无设备签名" }
                    @if failed > 0 { "，" strong { (failed) " 项设备签名核验未通过" } }
                    @if receipts_failed > 0 { "，" strong { (receipts_failed) " 项服务器回执核验未通过" } }
                    "。"
                }
            }
            p.note {
                "每项修改由记录它的设备用设备密钥签名；服务器用该设备登录时登记的公钥核验签名，并对收到的每项修改签发回执。"
                "监管人员的审核、销号与冲突处理由服务器代其写入，用服务器密钥签名；服务器为该人员的网页端签发了证书，证明签名者是服务器、代表的是该人员。"
                "无签名的修改来自不签名的客户端，或服务器开始签名之前的监管操作（由服务器回执证明接收时间）。"
                "证据包包含全部修改、签名、公钥与回执，任何人都可以按公开的格式说明独立核验。"
            }
            @if reviewer {
                p.downloads {
                    a.download href={ "/cases/" (case.id) "/evidence" } download { "下载证据包" }
                    " · "
                    a.download href={ "/cases/" (case.id) "/evidence?photos=true" } download { "下载证据包（含照片）" }
                }
            }
            table {
                thead { tr { th { "操作" } th { "作者账号" } th { "设备" } th { "密钥" } th { "设备签名" } th { "服务器回执" } th { "转交人" } th { "服务器接收时间" } } }
                tbody {
                    @for c in rows_shown(checks, failing) {
                        tr.failed[failing(c)] data-change=(c.hash) {
                            td { (action(&c.hash)) }
                            td { @if let Some((username, name)) = &c.author { (name) "（" (username) "）" } @else { "—" } }
                            td { (c.device.as_deref().unwrap_or("未登记的设备")) br; small { code { (c.actor.get(..8).unwrap_or(&c.actor)) } } }
                            td {
                                @if let Some(key) = &c.key_id { code { (key) } } @else { "—" }
                                @if c.server_signed { br; small { "服务器密钥" } }
                            }
                            td.verdict { (verdict(&c.signature, "无签名")) }
                            td.verdict { (verdict(&c.receipt, "无回执")) }
                            td { (c.relayed_by.as_deref().unwrap_or("—")) }
                            td { (c.received_at.as_deref().map_or("—".into(), stamp)) }
                        }
                    }
                }
            }
            (more_than_shown(checks.len(), "核验未通过的与最近的"))
        }
    }
}

/// Rows of a case's changes one page shows at most: a case may hold hundreds of
/// thousands of changes, and the evidence package has them all.
const SHOWN_CHANGES: usize = 500;

/// The rows of `rows` a page shows, in their order: those `first` picks (failed checks),
/// then the latest others, `SHOWN_CHANGES` in all.
fn rows_shown<T>(rows: &[T], first: impl Fn(&T) -> bool) -> Vec<&T> {
    if rows.len() <= SHOWN_CHANGES {
        return rows.iter().collect();
    }
    let mut keep = vec![false; rows.len()];
    let mut left = SHOWN_CHANGES;
    for (i, row) in rows.iter().enumerate() {
        if left > 0 && first(row) {
            keep[i] = true;
            left -= 1;
        }
    }
    for i in (0..rows.len()).rev() {
        if left > 0 && !keep[i] {
            keep[i] = true;
            left -= 1;
        }
    }
    rows.iter()
        .zip(keep)
        .filter_map(|(row, kept)| kept.then_some(row))
        .collect()
}

/// The note under a table of `total` changes that shows only `which` of them.
fn more_than_shown(total: usize, which: &str) -> Markup {
    html! {
        @if total > SHOWN_CHANGES {
            p.note.more { "共 " (total) " 项修改，此处显示其中" (which) " " (SHOWN_CHANGES) " 项；全部修改见证据包。" }
        }
    }
}

fn verdict(verdict: &Verdict, missing: &str) -> Markup {
    html! {
        @match verdict {
            Verdict::Verified => span.verified { "✓ 核验通过" },
            Verdict::Missing => span.missing { (missing) },
            Verdict::Failed(reason) => span.failed title=(reason) { "✗ 核验未通过" },
        }
    }
}

fn history_row(h: &HistoryRow) -> Markup {
    html! {
        tr {
            td {
                (action_label(&h.action))
                @if let Some(old) = &h.entered_again_for {
                    " "
                    span.note title=(format!("原修改所依赖的修改被服务器拒绝，由同一设备重新录入；原修改 {old}")) {
                        "（重新录入，原修改 " code { (old.get(..8).unwrap_or(old)) } "）"
                    }
                }
            }
            td {
                @if let Some(name) = &h.author_name { (name) "（" (h.author) "）" }
                @else if h.author.is_empty() { (h.received_from.as_deref().unwrap_or("—")) }
                @else { (h.author) }
            }
            td { code { (h.device.get(..8).unwrap_or(&h.device)) } }
            td { (stamp(&h.device_time)) }
            td { (h.received_at.as_deref().map_or("—".into(), stamp)) }
        }
    }
}

fn finding_card(
    case: &Case,
    f: &Finding,
    conflicts: &[Conflict],
    reviewer: Option<&Viewer>,
) -> Markup {
    let id = f.id.to_string();
    let conflicted = conflicts
        .iter()
        .any(|c| c.path.get(1).is_some_and(|p| *p == id));
    html! {
        article.finding.major[f.level == Level::Major].conflicted[conflicted] id={ "finding-" (id) } {
            header {
                span class={ "badge " (f.level.code()) } { (f.level.label()) }
                @if !f.category.is_empty() { " " span.category { (f.category) } }
                @if conflicted { " " a.badge.conflict href="#conflicts" { "有冲突" } }
            }
            p.description { (f.description) }
            dl {
                @if !f.place.is_empty() { dt { "部位" } dd { (f.place) } }
                @if !f.legal_basis.is_empty() { dt { "依据" } dd { (f.legal_basis) } }
                dt { "记录" } dd { (f.recorded_by) " · " (time(&f.recorded_at)) }
                @if let Some(v) = &f.violation {
                    dt { "三违" } dd { (v.kind.label()) " · 岗位：" (v.post) " · 人员：" (v.person) }
                }
                @if let Some(r) = &f.rectification {
                    dt { "整改" } dd {
                        (r.measures) " · 期限 " (r.deadline) " · 责任人 " (r.responsible) " · "
                        span class={ "rect " (r.state.code()) } { (r.state.label()) }
                        @if let Some(level) = r.ordered_level.filter(|l| *l != f.level) {
                            " · " span.ordered-level { "按" (level.label()) "下达整改" }
                        }
                        @if let Some(re) = &r.reinspection { br; "复查" (re.result.label()) "：" (re.note) "（" (re.by) "，" (time(&re.at)) "）" }
                    }
                }
            }
            (photos(case, &f.photos))
            @if let Some(r) = &f.rectification {
                @if !r.evidence.is_empty() { h4 { "整改佐证" } (photos(case, &r.evidence)) }
            }
            (super::follow_up::section(case, f, reviewer))
        }
    }
}

/// The case's enforcement documents: number, kind, state, signers, when.
fn writs(case: &Case) -> Markup {
    html! {
        @if !case.writs.is_empty() {
            section.writs #writs {
                h2 { "执法文书 (" (case.writs.len()) ")" }
                table {
                    thead { tr { th { "文书" } th { "编号" } th { "状态" } th { "签名" } th { "制作" } } }
                    tbody {
                        @for w in &case.writs {
                            tr data-writ=(w.id) {
                                td { (w.kind.label()) }
                                td {
                                    @if let Some(seal) = &w.seal {
                                        (w.number().unwrap_or_default()) @if w.provisional() { " " span.badge { "临时编号" } }
                                        @if w.numbered.is_some() { br; small { "原临时编号 " (seal.number) } }
                                        br; small { code title="内容摘要 SHA-256" { (seal.sha256.get(..16).unwrap_or(&seal.sha256)) "…" } }
                                    } @else { "（草稿，未编号）" }
                                }
                                td {
                                    (w.state().label())
                                    @if let Some(v) = &w.voided { "：" (v.reason) }
                                    @if let Some(r) = w.replaces { br; small { "更正 " (r) } }
                                }
                                td {
                                    @for s in &w.signatures {
                                        (s.name) @if !s.certificate_no.is_empty() { "（执法证号 " (s.certificate_no) "）" } br;
                                    }
                                    @if let Some(r) = &w.refusal { "拒签：" (r.reason) "（见证人 " (r.witness) "）" }
                                }
                                td {
                                    (w.created_by) " · " (time(&w.created_at))
                                    @if let Some(p) = &w.printed {
                                        br; a.pdf href={ "/api/v1/blobs/" (p.sha256) } download={ (w.kind.label()) ".pdf" } { "交付文书 PDF" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn photos(case: &Case, photos: &[PhotoRef]) -> Markup {
    html! {
        @if !photos.is_empty() {
            ul.photos {
                @for p in photos.iter().filter(|p| anjian_core::is_sha256(&p.sha256) && anjian_core::is_sha256(&p.thumbnail)) {
                    li {
                        a href={ "/cases/" (case.id) "/photos/" (p.sha256) } {
                            img src={ "/api/v1/blobs/" (p.thumbnail) } alt=(p.caption) width="160" loading="lazy";
                        }
                        @if !p.caption.is_empty() { span { (p.caption) } }
                    }
                }
            }
        }
    }
}

/// A conflict's path as supervisors read it.
fn conflict_label(case: &Case, path: &[String]) -> String {
    let field = |key: &str| match key {
        "level" => "隐患级别",
        "description" => "隐患描述",
        "category" => "类别",
        "place" => "部位",
        "legal_basis" => "依据",
        "deadline" => "整改期限",
        "measures" => "整改措施",
        "responsible" => "责任人",
        "state" => "状态",
        "result" => "检查结论",
        "note" => "说明",
        "type" => "检查类型",
        _ => "字段",
    };
    let key = path.last().map(String::as_str).unwrap_or_default();
    match path {
        [findings, id, ..] if findings == "findings" => {
            let title = case
                .findings
                .iter()
                .find(|f| f.id.to_string() == *id)
                .map(|f| f.description.lines().next().unwrap_or_default().to_owned())
                .unwrap_or_default();
            format!("隐患“{title}”的{}（{key}）", field(key))
        }
        _ => format!("{}（{}）", field(key), path.join(".")),
    }
}

fn shown(value: &FieldValue, key: &str) -> String {
    match (value, key) {
        (FieldValue::Text(t), "level") => label_of::<Level>(t),
        (FieldValue::Text(t), "state") => t
            .parse::<RectificationState>()
            .map(|s| s.label().to_owned())
            .unwrap_or_else(|_| label_of::<ReviewState>(t)),
        (FieldValue::Text(t), "type") => label_of::<CaseType>(t),
        (value, _) => value.to_string(),
    }
}

/// The values a conflict's form shows, as its `shown` field carries them (a JSON array).
fn shown_values(conflict: &Conflict) -> String {
    let values: Vec<String> = conflict
        .values
        .iter()
        .map(|v| v.value.to_string())
        .collect();
    serde_json::to_string(&values).unwrap_or_default()
}

fn conflict_form(case: &Case, conflict: &Conflict, viewer: &Viewer, reviewer: bool) -> Markup {
    let path = conflict.path.join("/");
    let key = conflict.path.last().map(String::as_str).unwrap_or_default();
    html! {
        form.conflict method="post" action={ "/cases/" (case.id) "/resolve" } data-path=(path) {
            h3 { (conflict_label(case, &conflict.path)) }
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="path" value=(path);
            input type="hidden" name="shown" value=(shown_values(conflict));
            ul {
                @for v in &conflict.values {
                    li {
                        label {
                            input type="radio" name="choice" value={ "keep:" (v.value) } required disabled[!reviewer];
                            strong { (shown(&v.value, key)) }
                            " — " (v.written_by) "，设备 " code { (v.device.get(..8).unwrap_or(&v.device)) }
                            "，设备时间 " (device_time(v.device_time))
                        }
                    }
                }
                li { label { input type="radio" name="choice" value="custom" disabled[!reviewer]; "填写新值：" input name="value" disabled[!reviewer]; } }
            }
            @if reviewer { button type="submit" { "确认处理" } }
        }
    }
}

fn device_time(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map(|t| {
            t.with_timezone(&china())
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "—".into())
}

fn review_forms(case: &Case, viewer: &Viewer, decides: bool) -> Markup {
    let action = |a: ReviewAction| decides && rules::review_step(a, case.state).is_ok();
    html! {
        div.actions {
            @if action(ReviewAction::Approve) {
                form method="post" action={ "/cases/" (case.id) "/review" } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="action" value="approve";
                    input name="text" placeholder="审核意见（可选）";
                    button.approve type="submit" { "审核通过" }
                }
            }
            @if action(ReviewAction::Return) {
                form method="post" action={ "/cases/" (case.id) "/review" } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="action" value="return";
                    textarea name="text" required placeholder="退回原因（必填），检查人员同步后可见" {}
                    button.return type="submit" { "退回" }
                }
            }
            @if action(ReviewAction::Reopen) {
                form method="post" action={ "/cases/" (case.id) "/review" } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="action" value="reopen";
                    textarea name="text" required placeholder="重新打开的原因（必填）" {}
                    button type="submit" { "重新打开" }
                }
            }
            form method="post" action={ "/cases/" (case.id) "/review" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="comment";
                textarea name="text" required placeholder="批注" {}
                button type="submit" { "添加批注" }
            }
        }
    }
}

/// Which evidence package the case page's download asks for.
#[derive(Deserialize)]
pub struct EvidenceQuery {
    /// Whether the photos' bytes go in the package.
    #[serde(default)]
    photos: bool,
}

/// `GET /cases/{id}/evidence`: the case's evidence package (docs/EVIDENCE.md), the same
/// bytes `anjian-sync-server evidence export` writes; for those who supervise and may read
/// the case (the case page's own check).
pub async fn evidence(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<EvidenceQuery>,
) -> Result<Response, WebError> {
    policy::require_supervisor(&viewer.user)?;
    let case = load(&app, &viewer, &id).await?.case.id;
    let photos = if query.photos {
        evidence::Photos::Included {
            limit: Some(evidence::PAGE_PHOTO_BYTES),
        }
    } else {
        evidence::Photos::Hashes
    };
    // A package is built in memory: a few at a time, and one account's one at a time.
    let _mine = app.package_turns.take(viewer.user.id).await;
    let _turn = app
        .packages
        .acquire()
        .await
        .map_err(|_| AppError::Internal("the evidence packages' turns were closed".into()))?;
    // Reading photos and encoding them is blocking work: off the async workers.
    let state = app.clone();
    let package = tokio::task::spawn_blocking(move || {
        evidence::export(&state.storage, &state.blobs, case, photos)
    })
    .await
    .map_err(|e| AppError::Internal(format!("the evidence package: {e}")))??;
    tracing::info!(case.id = %case, user = %viewer.user.username, photos = query.photos, bytes = package.len(), "evidence package downloaded");
    Ok((
        [
            (CONTENT_TYPE, "application/json".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"anjian-evidence-{case}.json\""),
            ),
        ],
        package,
    )
        .into_response())
}

/// A review action form.
#[derive(Deserialize)]
pub struct ReviewForm {
    csrf: String,
    action: String,
    #[serde(default)]
    text: String,
}

/// `POST /cases/{id}/review`: return, approve, reopen or comment.
pub async fn review(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let action: ReviewAction = form.action.parse()?;
    review::act(&app, &viewer.user, &id, action, &form.text).await?;
    Ok(Redirect::to(&format!("/cases/{}", encode_query(&id))).into_response())
}

/// `POST /cases/{id}/findings/{finding}/close`: 销号 of a re-inspected hazard.
pub async fn close(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Path((id, finding)): Path<(String, String)>,
    Form(form): Form<super::session::CsrfForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    review::follow_up(
        &app,
        &viewer.user,
        &id,
        &finding,
        anjian_core::HazardStep::close(),
    )
    .await?;
    Ok(Redirect::to(&format!(
        "/cases/{}#finding-{}",
        encode_query(&id),
        encode_query(&finding)
    ))
    .into_response())
}

/// A conflict resolution form.
#[derive(Deserialize)]
pub struct ResolveForm {
    csrf: String,
    path: String,
    /// The values the page showed, as a JSON array of text.
    shown: String,
    choice: String,
    #[serde(default)]
    value: String,
}

/// `POST /cases/{id}/resolve`: keep one of the values, or write a new one.
pub async fn resolve(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ResolveForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let decision = match form.choice.strip_prefix("keep:") {
        Some(shown) => review::Decision::Keep(shown.to_owned()),
        None if form.choice == "custom" => review::Decision::Write(form.value.trim().to_owned()),
        None => {
            return Err(WebError(AppError::BadRequest(
                "请选择一个值或填写新值 (choose a value or write a new one)".into(),
            )));
        }
    };
    let path: Vec<String> = form.path.split('/').map(str::to_owned).collect();
    let shown: Vec<String> = serde_json::from_str(&form.shown).map_err(|_| {
        AppError::BadRequest(
            "表单缺少页面所示的值，请刷新页面 (the form lacks the values shown)".into(),
        )
    })?;
    review::resolve(&app, &viewer.user, &id, &path, Some(shown), decision).await?;
    Ok(Redirect::to(&format!("/cases/{}", encode_query(&id))).into_response())
}

/// `GET /cases/{id}/photos/{sha256}`: a photo in full with what proves it: capture time,
/// GPS position and hash.
pub async fn photo(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Path((id, sha256)): Path<(String, String)>,
) -> Result<Markup, WebError> {
    let detail = load(&app, &viewer, &id).await?;
    let case = &detail.case;
    // Only a hash names a blob: a value written before the rule book checked photo
    // hashes could otherwise make the page's image a request for another page.
    let photo = case
        .photos()
        .find(|p| p.sha256 == sha256 && anjian_core::is_sha256(&p.sha256))
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "照片 {sha256} 不属于该案件 (no such photo in this case)"
            ))
        })?;
    let case_id: CaseId = case.id;
    let body = html! {
        p { a href={ "/cases/" (case_id) } { "← 返回 " (case.enterprise.name) } }
        figure.photo {
            img src={ "/api/v1/blobs/" (photo.sha256) } alt=(photo.caption);
            figcaption { (photo.caption) }
        }
        dl.facts {
            dt { "拍摄时间（EXIF）" } dd { (photo.captured_at.as_ref().map_or("无".into(), time)) }
            dt { "GPS 位置（EXIF）" } dd {
                @if let Some(g) = &photo.gps { (format!("{:.6}, {:.6}", g.latitude, g.longitude)) } @else { "无" }
            }
            dt { "SHA-256" } dd { code #photo-hash { (photo.sha256) } }
            dt { "尺寸" } dd { (photo.width) " × " (photo.height) " · " (photo.size / 1024) " KB · " (photo.mime) }
            dt { "上传人" } dd { (photo.added_by) " · " (time(&photo.added_at)) }
        }
    };
    Ok(page("照片", Some(&viewer), body))
}

#[cfg(test)]
mod tests {
    use super::{SHOWN_CHANGES, rows_shown};

    #[test]
    fn a_long_table_shows_the_failed_rows_then_the_latest() {
        let rows: Vec<usize> = (0..SHOWN_CHANGES * 3).collect();
        let failed = |r: &usize| [3, 700, 1_200].contains(r);
        let shown: Vec<usize> = rows_shown(&rows, failed).into_iter().copied().collect();
        assert_eq!(shown.len(), SHOWN_CHANGES);
        assert_eq!(&shown[..2], [3, 700]);
        assert!(shown.contains(&1_200));
        assert_eq!(shown.last(), Some(&(SHOWN_CHANGES * 3 - 1)));
        assert!(shown.windows(2).all(|w| w[0] < w[1]), "in their order");
        let short: Vec<usize> = (0..10).collect();
        assert_eq!(rows_shown(&short, |_| false).len(), 10);
    }
}
