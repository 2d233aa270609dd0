//! Reviewing a case on the server, shared by the pages and the API: reading it in full
//! for a user (within their scope), and the supervisors' actions, which are changes
//! written by the supervisor's own server-side actor through `sync::change_on_server`.

use std::collections::HashMap;
use std::sync::Arc;

use anjian_core::{
    Case, CaseId, Conflict, FieldValue, FindingId, HazardAction, HazardStep, RectificationState,
    Resolution, ReviewAction, ReviewState, case_doc,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::{self, params};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::users::User;
use crate::{policy, queries, sync};
use anjian_core::china;

/// A case as a reviewer reads it.
pub struct CaseDetail {
    /// The case.
    pub case: Case,
    /// Fields in conflict, with who wrote each value.
    pub conflicts: Vec<Conflict>,
    /// Every change, oldest first.
    pub history: Vec<HistoryRow>,
    /// Cases in the user's scope that amend this one (更正) and are of the same enterprise,
    /// oldest first: (id, visit).
    pub amendments: Vec<(String, String)>,
    /// Whether the case this one says it amends is on the server, of the same enterprise
    /// and approved (the phone checks this when the amendment is opened; the server
    /// checks it again, since a device may write any case id there).
    pub amends_confirmed: bool,
}

/// One change of a case's history: device time and server receipt time side by side.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryRow {
    /// Change hash (hex).
    pub hash: String,
    /// User id recorded with the change.
    pub author: String,
    /// The author's name, when the server knows the account.
    pub author_name: Option<String>,
    /// The device (actor id, hex).
    pub device: String,
    /// The device's clock (RFC 3339, China time; empty when that clock was out of range).
    pub device_time: String,
    /// What the change did.
    pub action: String,
    /// The change (hash, hex) this one enters again: its device's earlier change, dropped
    /// when the server refused a change it built on.
    pub entered_again_for: Option<String>,
    /// When the server received it (RFC 3339); `None` for changes it has not received
    /// itself (relayed in another change's document, before receipts existed).
    pub received_at: Option<String>,
    /// The account that sent it.
    pub received_from: Option<String>,
}

/// What a change says it did, as its history shows it: the note is the device's to write,
/// so only a code of ours (lower-case letters, digits, `_` and `:`) is shown, and a
/// supervisor's decision (审核通过, 退回, 重新打开) only from a supervisor's or an
/// administrator's account; anything else reads `other` (其他修改). What the change
/// really did is in the case itself, judged by the rule book.
fn shown_action(action: String, author_supervises: bool) -> String {
    let ours = !action.is_empty()
        && action
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b':');
    let decision = action
        .strip_prefix("review:")
        .and_then(|a| a.parse::<ReviewAction>().ok())
        .is_some_and(|a| {
            matches!(
                a,
                ReviewAction::Approve | ReviewAction::Return | ReviewAction::Reopen
            )
        });
    if ours && (author_supervises || !decision) {
        action
    } else {
        OTHER_ACTION.to_owned()
    }
}

/// What the history shows for a change whose note it does not show.
pub const OTHER_ACTION: &str = "other";

/// Reads case `id` for `user`; a case they may not read is answered as absent.
pub fn load(app: &AppState, user: &User, id: &str) -> AppResult<CaseDetail> {
    Ok(load_with_document(app, user, id)?.0)
}

/// `load`, and the case's document as read for it (the case page checks its changes'
/// signatures and receipts on it).
pub fn load_with_document(
    app: &AppState,
    user: &User,
    id: &str,
) -> AppResult<(CaseDetail, automerge::AutoCommit)> {
    let not_found = || AppError::NotFound(format!("没有该案件 (no case {id})"));
    let case_id: CaseId = id.parse().map_err(|_| not_found())?;
    // The projection answers first, so a case out of reach is not read and decoded.
    if !app.storage.may_read(user, case_id)? {
        return Err(not_found());
    }
    let mut doc = app.storage.load_document(case_id)?.ok_or_else(not_found)?;
    let case = case_doc::read(&doc)?;
    // Who may read a case is the rule book's `may_read`, as sync serves it; lists
    // narrow an inspector's to the cases they worked on, a case in full does not.
    if !policy::can_see(user, &case) {
        return Err(not_found());
    }
    let conflicts = case_doc::conflicts(&doc)?;
    let changes = case_doc::history(&mut doc);
    let history = app.storage.read(|conn| {
        // The case's receipts in one statement, and each author's account once: a case
        // of many changes read them change by change.
        let mut receipts: HashMap<String, (String, String)> = conn
            .query_map(
                "SELECT r.change_hash, r.received_at, u.username FROM receipts r JOIN users u ON u.id = r.user_id WHERE r.case_id = ?1",
                params![case_id.to_string()],
                |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))),
            )?
            .into_iter()
            .collect();
        let mut accounts: HashMap<String, Option<(String, String)>> = HashMap::new();
        let mut rows = Vec::with_capacity(changes.len());
        for change in changes {
            let (received_at, received_from) = receipts.remove(&change.hash).unzip();
            let account = match accounts.get(&change.author) {
                Some(account) => account.clone(),
                None => {
                    let account: Option<(String, String)> = conn.query_opt("SELECT name, role FROM users WHERE username = ?1", params![&change.author], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    accounts.insert(change.author.clone(), account.clone());
                    account
                }
            };
            let supervises = account.as_ref().is_some_and(|(_, role)| {
                role.parse().is_ok_and(anjian_core::rules::role_supervises)
            });
            let author_name = account.map(|(name, _)| name);
            rows.push(HistoryRow {
                device_time: DateTime::<Utc>::from_timestamp(change.device_time, 0)
                    .map(|t| t.with_timezone(&china()).to_rfc3339())
                    .unwrap_or_default(),
                hash: change.hash,
                author: change.author,
                author_name,
                device: change.device,
                action: shown_action(change.action, supervises),
                entered_again_for: change.entered_again_for,
                received_at: received_at.map(|t| {
                    DateTime::parse_from_rfc3339(&t)
                        .map(|t| t.with_timezone(&china()).to_rfc3339())
                        .unwrap_or(t)
                }),
                received_from,
            });
        }
        Ok(rows)
    })?;
    let credit_code = case.enterprise.credit_code.as_str().to_owned();
    let amendments = app.storage.read(|conn| {
        let mut w = queries::Conditions::default();
        w.push("c.amends = ?", vec![db::value(id.to_owned())]);
        w.push("c.credit_code = ?", vec![db::value(credit_code.clone())]);
        w.scope(policy::scope(user));
        let rows = conn.query_map(
            &format!(
                "SELECT c.case_id, c.opened_at FROM cases c {} ORDER BY c.opened_at",
                w.sql()
            ),
            w.params(),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(rows)
    })?;
    let amends_confirmed = match case.amends {
        Some(amended) => app.storage.read(|conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM cases WHERE case_id = ?1 AND credit_code = ?2 AND state = ?3)",
                params![amended.to_string(), &credit_code, ReviewState::Approved.code()],
                |r| r.get(0),
            )
        })?,
        None => false,
    };
    Ok((
        CaseDetail {
            case,
            conflicts,
            history,
            amendments,
            amends_confirmed,
        },
        doc,
    ))
}

/// A review action on case `id` (the rule book decides who may take which); returns the
/// case's new state.
pub async fn act(
    app: &Arc<AppState>,
    user: &User,
    id: &str,
    action: ReviewAction,
    text: &str,
) -> AppResult<ReviewState> {
    let case_id = case_id(id)?;
    let at = Utc::now().with_timezone(&china());
    let by = user.username.clone();
    let text = text.trim().to_owned();
    let state = sync::change_on_server(app, user, case_id, move |doc| {
        case_doc::review(doc, &by, action, &text, at)
    })
    .await?;
    tracing::info!(case.id = %case_id, user = %user.username, action = action.code(), "review action");
    Ok(state)
}

/// What a supervisor decides about a conflict.
pub enum Decision {
    /// Keep the value shown as this text; refused if it is no longer one of the values
    /// (another device's value arrived since the page was drawn), so that nothing is
    /// picked quietly.
    Keep(String),
    /// Write this text instead.
    Write(String),
}

/// A resolution of the conflict at `path` of case `id`: writing the value is an edit
/// like any other, which the rule book judges. `seen`, the values the person deciding
/// saw (as shown in the case's conflicts), must still be the field's values: a value
/// another device wrote since is never overwritten unseen.
pub async fn resolve(
    app: &Arc<AppState>,
    user: &User,
    id: &str,
    path: &[String],
    seen: Option<Vec<String>>,
    decision: Decision,
) -> AppResult<()> {
    let case_id = case_id(id)?;
    let at = Utc::now().with_timezone(&china());
    let by = user.username.clone();
    let shown = path.join("/");
    let path = path.to_vec();
    sync::change_on_server(app, user, case_id, move |doc| {
        let conflict = case_doc::conflicts(doc)?
            .into_iter()
            .find(|c| c.path == path);
        let changed = || {
            anjian_core::Error::NotAllowed(
                "冲突的值已变化，请刷新页面后重新选择 (the values changed since the page was shown)"
                    .into(),
            )
        };
        if let Some(mut seen) = seen {
            let Some(conflict) = &conflict else {
                return Err(changed());
            };
            let mut now: Vec<String> = conflict
                .values
                .iter()
                .map(|v| v.value.to_string())
                .collect();
            now.sort();
            seen.sort();
            if now != seen {
                return Err(changed());
            }
        }
        let resolution = match decision {
            Decision::Write(text) => Resolution::Write(FieldValue::Text(text)),
            Decision::Keep(shown) => {
                let conflict = conflict.ok_or_else(|| {
                    anjian_core::Error::NotAllowed(format!(
                        "{} 已不再冲突，请刷新页面 (no longer in conflict)",
                        path.join("/")
                    ))
                })?;
                let index = conflict
                    .values
                    .iter()
                    .position(|v| v.value.to_string() == shown)
                    .ok_or_else(changed)?;
                Resolution::Choose(index)
            }
        };
        case_doc::resolve_conflict(doc, &by, &path, &resolution, at)
    })
    .await?;
    tracing::info!(case.id = %case_id, user = %user.username, path = %shown, "conflict resolved");
    Ok(())
}

/// A step of a hazard's follow-up as a form or an API body gives it: the action's code
/// and the fields that action uses (the others are ignored). On-site measures are taken
/// on site, by the apps, not here.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct StepFields {
    /// `extend` 延期, `reinspect` 复查, `close` 销号, `list` 挂牌督办, `plan` 治理方案,
    /// `progress` 进展报告 or `delist` 摘牌 (the Chinese label is accepted too).
    #[schema(value_type = crate::schemas::HazardAction)]
    pub action: String,
    /// `reinspect`: `pass` 合格 or `fail` 不合格.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::ReinspectionResult>)]
    pub result: Option<String>,
    /// `extend`, `reinspect` after `fail` (new deadline), `list` (YYYY-MM-DD).
    #[serde(default)]
    #[schema(format = Date)]
    pub deadline: Option<String>,
    /// `reinspect`, `close`, `delist`: what was found, a note.
    #[serde(default)]
    pub note: String,
    /// `extend`: why.
    #[serde(default)]
    pub reason: String,
    /// `reinspect` after `fail` without a new deadline: what the hazard is escalated to.
    #[serde(default)]
    pub escalation: String,
    /// `list`: the supervising authority.
    #[serde(default)]
    pub authority: String,
    /// `list`: the listing document's number.
    #[serde(default)]
    pub number: String,
    /// `plan`: 治理措施.
    #[serde(default)]
    pub measures: String,
    /// `plan`: 资金.
    #[serde(default)]
    pub funds: String,
    /// `plan`: 责任人.
    #[serde(default)]
    pub responsible: String,
    /// `plan`: 临时安全措施.
    #[serde(default)]
    pub interim: String,
    /// `progress`: the report.
    #[serde(default)]
    pub text: String,
}

impl StepFields {
    /// The step the fields describe; a missing or malformed field is `Invalid`.
    pub fn step(self) -> anjian_core::Result<HazardStep> {
        let day = |field: &'static str, value: Option<&str>| {
            let value = value.map(str::trim).filter(|v| !v.is_empty());
            value.and_then(anjian_core::parse_day).ok_or_else(|| {
                anjian_core::Error::invalid(field, "需要日期 YYYY-MM-DD (a day, YYYY-MM-DD)")
            })
        };
        let optional_day = |value: Option<&str>| match value.map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => day("deadline", Some(v)).map(Some),
        };
        Ok(match self.action.parse::<HazardAction>()? {
            HazardAction::Onsite => {
                return Err(anjian_core::Error::invalid(
                    "action",
                    "现场处理措施在现场由检查人员记录 (on-site measures are recorded on site)",
                ));
            }
            HazardAction::Extend => HazardStep::Extend {
                deadline: day("deadline", self.deadline.as_deref())?,
                reason: self.reason,
            },
            HazardAction::Reinspect => HazardStep::Reinspect {
                result: self.result.as_deref().unwrap_or_default().parse()?,
                note: self.note,
                deadline: optional_day(self.deadline.as_deref())?,
                escalation: self.escalation,
            },
            HazardAction::Close => HazardStep::Close { note: self.note },
            HazardAction::List => HazardStep::List {
                authority: self.authority,
                number: self.number,
                deadline: day("deadline", self.deadline.as_deref())?,
            },
            HazardAction::Plan => HazardStep::Plan {
                measures: self.measures,
                funds: self.funds,
                responsible: self.responsible,
                interim: self.interim,
            },
            HazardAction::Progress => HazardStep::Progress { text: self.text },
            HazardAction::Delist => HazardStep::Delist { note: self.note },
        })
    }
}

/// Records a step of the follow-up of finding `finding` of case `id` by a supervisor
/// (销号, 挂牌督办, 摘牌, 延期, 复查 …), also on an approved case; the rule book says who
/// may take which step where the loop stands. Returns the rectification's state after it.
pub async fn follow_up(
    app: &Arc<AppState>,
    user: &User,
    id: &str,
    finding: &str,
    step: HazardStep,
) -> AppResult<RectificationState> {
    let case_id = case_id(id)?;
    let finding: FindingId = finding
        .parse()
        .map_err(|_| AppError::NotFound(format!("没有该隐患 (no finding {finding})")))?;
    let at = Utc::now().with_timezone(&china());
    let by = user.username.clone();
    let action = step.action();
    let state = sync::change_on_server(app, user, case_id, move |doc| {
        case_doc::follow_up(doc, &by, finding, &step, at)
    })
    .await?;
    tracing::info!(case.id = %case_id, finding = %finding, user = %user.username, step = action.code(), "hazard follow-up");
    Ok(state)
}

/// Shares case `id` with `districts` besides its owner (replacing the
/// districts it was shared with): cross-district and joint work. Sharing belongs to the
/// owning district's supervisors (or an admin).
pub async fn share(
    app: &Arc<AppState>,
    user: &User,
    id: &str,
    districts: Vec<anjian_core::DistrictCode>,
) -> AppResult<Vec<anjian_core::DistrictCode>> {
    let case_id = case_id(id)?;
    let at = Utc::now().with_timezone(&china());
    let by = user.username.clone();
    let shared = sync::change_on_server(app, user, case_id, move |doc| {
        case_doc::share(doc, &by, &districts, at)
    })
    .await?;
    tracing::info!(case.id = %case_id, user = %user.username, "case shared");
    Ok(shared)
}

/// The case an action names; who may take it, and whether the case is theirs to see at
/// all, is the rule book's (`sync::change_on_server` answers a case they may not read as
/// absent, and refuses what the rule book refuses).
fn case_id(id: &str) -> AppResult<CaseId> {
    id.parse()
        .map_err(|_| AppError::NotFound(format!("没有该案件 (no case {id})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_shows_a_code_of_ours_and_a_decision_only_from_those_who_decide() {
        let shown = |action: &str, supervises| shown_action(action.to_owned(), supervises);
        assert_eq!(shown("writ:sign", false), "writ:sign");
        assert_eq!(shown("review:submit", false), "review:submit");
        assert_eq!(shown("review:approve", true), "review:approve");
        for (spoof, supervises) in [
            ("review:approve", false),
            ("review:return", false),
            ("review:reopen", false),
            ("review:审核通过", true),
            ("监管负责人已批准", true),
            ("Approved", true),
            ("", true),
        ] {
            assert_eq!(shown(spoof, supervises), OTHER_ACTION, "{spoof:?}");
        }
    }
}
