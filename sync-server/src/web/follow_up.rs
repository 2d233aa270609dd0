//! A hazard's follow-up on the case page: the on-site measures, every step taken since
//! (延期, 复查, 销号, 挂牌督办 …) with who and when, and for those who decide the case, the
//! forms of the steps the loop allows next (the rule book judges each one on submit).

use std::sync::Arc;

use anjian_core::{
    Case, Finding, HazardEvent, HazardStep, Level, RectificationState, ReinspectionResult,
};
use axum::extract::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebError;
use super::session::encode_query;
use crate::auth::Viewer;
use crate::review::{self, StepFields};
use crate::state::AppState;
use anjian_core::china;

/// The follow-up of finding `f`: its steps, and the forms of the next ones for `decider`.
pub fn section(case: &Case, f: &Finding, decider: Option<&Viewer>) -> Markup {
    let listing = f.listing();
    html! {
        @if f.onsite_measures().next().is_some() {
            h4 { "现场处理措施" }
            ul.onsite {
                @for (e, measure) in f.onsite_measures() {
                    li {
                        strong { (measure.label()) } " · " (measure.basis())
                        @if let HazardStep::Onsite { note, .. } = &e.step { @if !note.is_empty() { " · " (note) } }
                        " · " (e.by) " · " (day_time(e))
                    }
                }
            }
        }
        @if let Some(HazardEvent { step: HazardStep::List { authority, number, deadline }, .. }) = listing {
            p.listed { span.badge.listed { "挂牌督办" } " " (authority) " · " (number) " · 督办期限 " (deadline) }
        }
        @let steps: Vec<&HazardEvent> = f.events.iter().filter(|e| e.step.action().is_follow_up()).collect();
        @if !steps.is_empty() {
            h4 { "整改跟踪" }
            ol.follow-up {
                @for e in steps { li { (step_line(e)) } }
            }
        }
        @if let (Some(viewer), Some(r)) = (decider, &f.rectification) {
            (forms(case, f, r.state, listing.is_some(), viewer))
        }
    }
}

fn day_time(e: &HazardEvent) -> String {
    e.at.with_timezone(&china())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// One step as a line of the hazard's history.
fn step_line(e: &HazardEvent) -> Markup {
    html! {
        span.kind { (e.step.action().label()) }
        @match &e.step {
            HazardStep::Extend { deadline, reason } => {
                " 期限 " (e.previous_deadline.map(|d| d.to_string()).unwrap_or_default()) " → " (deadline) " · 理由：" (reason)
            }
            HazardStep::Reinspect { result, note, deadline, escalation } => {
                " " span class={ "result " (result.code()) } { (result.label()) } " · " (note)
                @if let Some(d) = deadline { " · 重新限期至 " (d) }
                @if !escalation.is_empty() { " · 升级处理：" (escalation) }
                @if !e.evidence.is_empty() { " · 佐证照片 " (e.evidence.len()) " 张" }
            }
            HazardStep::List { authority, number, deadline } => {
                " " (authority) " · " (number) " · 督办期限 " (deadline)
            }
            HazardStep::Plan { measures, funds, responsible, interim } => {
                " 措施：" (measures) " · 资金：" (funds) " · 责任人：" (responsible) " · 临时措施：" (interim)
            }
            HazardStep::Progress { text } => { " " (text) }
            HazardStep::Close { note } | HazardStep::Delist { note } => { @if !note.is_empty() { " " (note) } }
            HazardStep::Onsite { .. } => {}
        }
        " · " (e.by) " · " (day_time(e))
    }
}

/// The forms of the steps the loop allows next.
fn forms(
    case: &Case,
    f: &Finding,
    state: RectificationState,
    listed: bool,
    viewer: &Viewer,
) -> Markup {
    use RectificationState::*;
    let open = matches!(state, Ordered | InProgress | Overdue);
    let action = format!("/cases/{}/findings/{}/steps", case.id, f.id);
    let form = |step: &str, label: &str, fields: Markup| {
        html! {
            form.step method="post" action=(action) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value=(step);
                (fields)
                button type="submit" { (label) }
            }
        }
    };
    html! {
        @if state == Reinspected {
            (form("close", "确认销号", html! { input name="note" placeholder="销号说明（可不填）"; }))
        }
        @if open || state == Reinspected {
            details.step {
                summary { "复查" }
                (form("reinspect", "记录复查结果", html! {
                    label { "结论 " select name="result" {
                        @for r in ReinspectionResult::ALL { option value=(r.code()) { (r.label()) } }
                    } }
                    label { "复查意见 " input name="note" required; }
                    label { "不合格时重新限期 " input type="date" name="deadline"; }
                    label { "或升级处理 " input name="escalation" placeholder="如：立案处罚、挂牌督办"; }
                }))
            }
        }
        @if open {
            details.step {
                summary { "延期" }
                (form("extend", "批准延期", html! {
                    label { "新期限 " input type="date" name="deadline" required; }
                    label { "理由 " input name="reason" required; }
                }))
            }
        }
        @if f.level == Level::Major && !listed && state != Closed {
            details.step {
                summary { "挂牌督办" }
                (form("list", "挂牌督办", html! {
                    label { "督办单位 " input name="authority" required; }
                    label { "督办文号 " input name="number" required; }
                    label { "督办期限 " input type="date" name="deadline" required; }
                }))
            }
        }
        @if listed {
            details.step {
                summary { "治理方案" }
                (form("plan", "记录治理方案", html! {
                    label { "治理措施 " input name="measures" required; }
                    label { "资金 " input name="funds"; }
                    label { "责任人 " input name="responsible" required; }
                    label { "临时安全措施 " input name="interim"; }
                }))
            }
            details.step {
                summary { "进展报告" }
                (form("progress", "记录进展", html! { label { "进展 " input name="text" required; } }))
            }
            @if state == Closed {
                (form("delist", "摘牌", html! { input name="note" placeholder="摘牌说明（可不填）"; }))
            }
        }
    }
}

/// A step form: the session's CSRF token and the step's fields.
#[derive(Deserialize)]
pub struct StepForm {
    csrf: String,
    #[serde(flatten)]
    fields: StepFields,
}

/// `POST /cases/{id}/findings/{finding}/steps`: a step of the hazard's follow-up.
pub async fn record(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    Path((id, finding)): Path<(String, String)>,
    Form(form): Form<StepForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let step = form.fields.step()?;
    review::follow_up(&app, &viewer.user, &id, &finding, step).await?;
    Ok(Redirect::to(&format!(
        "/cases/{}#finding-{}",
        encode_query(&id),
        encode_query(&finding)
    ))
    .into_response())
}
