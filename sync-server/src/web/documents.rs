//! The register of enforcement documents (执法文书台账): every numbered document in the
//! viewer's scope, issued, awaiting signatures or voided (a voided number stays on record).

use std::sync::Arc;

use axum::extract::{Query, State};
use maud::{Markup, html};

use super::{WebError, page};
use crate::auth::Viewer;
use crate::labels::label_of;
use crate::policy;
use crate::queries::{self, RegisterFilter};
use crate::state::AppState;
use anjian_core::{WritKind, WritState};

/// `GET /documents`.
pub async fn register(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Query(filter): Query<RegisterFilter>,
) -> Result<Markup, WebError> {
    policy::require_supervisor(&viewer.user)?;
    let (user, asked) = (viewer.user.clone(), filter.clone());
    let (total, rows) = app
        .reading(user.id, move |app| {
            app.storage
                .read(|conn| queries::register(conn, policy::scope(&user), &asked))
        })
        .await?;
    let (limit, offset) = queries::page_bounds(filter.limit, filter.offset);
    let first = if rows.is_empty() { offset } else { offset + 1 };
    let last = offset + rows.len() as i64;
    let body = html! {
        h1 { "执法文书台账" }
        form.filters method="get" action="/documents" {
            label { "文书" select name="kind" {
                option value="" { "全部" }
                @for k in WritKind::ALL { option value=(k.code()) selected[filter.kind == k.code()] { (k.label()) } }
            } }
            label { "年度" input name="year" value=(filter.year) placeholder="2026"; }
            button type="submit" { "筛选" }
        }
        p.count { "第 " (first) "–" (last) " 份，共 " (total) " 份（最近定稿的在前）" }
        table.register {
            thead { tr { th { "编号" } th { "文书" } th { "状态" } th { "部门" } th { "定稿" } th { "签发" } th { "案件" } } }
            tbody {
                @for r in &rows {
                    tr data-writ=(r.writ_id) {
                        td {
                            (r.number.as_deref().unwrap_or("")) @if r.provisional { " " span.badge { "临时编号" } }
                            @if let Some(p) = &r.provisional_number { br; small { "原临时编号 " (p) } }
                        }
                        td { (r.title) }
                        td { (label_of::<WritState>(&r.state)) @if let Some(v) = &r.voided { "：" (v) } }
                        td { (r.department) }
                        td { (r.sealed_at.as_deref().map_or("", |t| t.get(..10).unwrap_or(t))) }
                        td { (r.issued_at.as_deref().map_or("—", |t| t.get(..10).unwrap_or(t))) }
                        td { a href={ "/cases/" (r.case_id) "#writs" } { "查看" } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="7" { "没有已编号的执法文书" } } }
            }
        }
        nav.pages {
            @if offset > 0 { a rel="prev" href=(page_link(&filter, (offset - limit).max(0))) { "上一页" } " " }
            @if last < total { a rel="next" href=(page_link(&filter, last)) { "下一页" } }
        }
    };
    Ok(page("执法文书台账", Some(&viewer), body))
}

/// The register's address with `filter`, from row `offset`.
fn page_link(filter: &RegisterFilter, offset: i64) -> String {
    let pairs = [
        ("kind", filter.kind.as_str()),
        ("year", &filter.year),
        ("district", &filter.district),
    ];
    super::paged("/documents", &pairs, filter.limit, offset)
}
