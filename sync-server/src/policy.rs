//! Who may see and change which case: jurisdiction by district, role, and review state.

use anjian_core::{Case, RectificationState, ReviewState};

use crate::users::{Role, User};

/// Whether `user` may see `case`: an admin sees everything; anyone else sees the cases of
/// their own district, as owner or as one of the `visible_to` districts.
pub fn can_see(user: &User, case: &Case) -> bool {
    user.role == Role::Admin
        || case.district == user.district
        || case.visible_to.contains(&user.district)
}

/// Why `user` may not change `before` into `after`, or `None` when the change may stand.
/// `before` is `None` for a case new on the server. Reasons are shown to the inspector.
pub fn refuse_change(user: &User, before: Option<&Case>, after: &Case) -> Option<String> {
    if let Some(before) = before {
        if !can_see(user, before) {
            return Some(jurisdiction());
        }
        // A supervisor may reopen an approved case, or comment on it; nothing else.
        let reopened = after.state != ReviewState::Approved;
        let only_comments = Case {
            review_events: before.review_events.clone(),
            ..after.clone()
        } == *before;
        if before.state == ReviewState::Approved
            && user.role != Role::Admin
            && !(user.role == Role::Supervisor && (reopened || only_comments))
        {
            return Some("该案件已审核通过并锁定，不能再修改；如需更正，请联系监管负责人重新打开或新建关联案件 (the case is approved and locked)".into());
        }
    }
    if !can_see(user, after) {
        return Some(jurisdiction());
    }
    let state_before = before.map_or(ReviewState::Draft, |b| b.state);
    if after.state != state_before
        && matches!(after.state, ReviewState::Returned | ReviewState::Approved)
        && user.role == Role::Inspector
    {
        return Some(format!(
            "只有监管负责人可以将案件设为“{}” (only a supervisor may return or approve a case)",
            after.state.label()
        ));
    }
    for finding in &after.findings {
        let Some(rect) = &finding.rectification else {
            continue;
        };
        let moved = before
            .and_then(|b| b.findings.iter().find(|f| f.id == finding.id))
            .and_then(|f| f.rectification.as_ref())
            .is_none_or(|r| r.state != rect.state);
        if moved
            && matches!(
                rect.state,
                RectificationState::Reinspected | RectificationState::Closed
            )
            && !rect.has_reinspection_evidence()
        {
            return Some(format!(
                "隐患“{}”复查或销号需要复查佐证（整改照片或复查意见）(closing needs re-inspection evidence)",
                finding.description.lines().next().unwrap_or_default()
            ));
        }
    }
    None
}

/// The reason given for changes to a case outside the user's jurisdiction.
pub fn jurisdiction_reason() -> String {
    jurisdiction()
}

fn jurisdiction() -> String {
    "该案件不在您的辖区内，修改未被接受 (the case is outside your jurisdiction)".into()
}

/// Which cases a user's pages and supervisors' endpoints cover: supervisors their
/// jurisdiction (cases owned by or shared with their district), admins everything, and
/// inspectors only the cases they worked on (on the team, or sent changes to), read-only.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every case.
    All,
    /// Cases visible to this district.
    District(&'a str),
    /// An inspector's own cases within their district's visibility.
    Own {
        /// The inspector's district.
        district: &'a str,
        /// Their username (the user id on case teams).
        username: &'a str,
        /// Their account id (on receipts).
        user_id: i64,
    },
}

/// The scope of `user`.
pub fn scope(user: &User) -> Scope<'_> {
    match user.role {
        Role::Admin => Scope::All,
        Role::Supervisor => Scope::District(user.district.as_str()),
        Role::Inspector => Scope::Own {
            district: user.district.as_str(),
            username: &user.username,
            user_id: user.id,
        },
    }
}

/// Whether `user` may take review actions (return, approve, reopen, resolve conflicts,
/// close rectifications) on cases they can see.
pub fn may_review(user: &User) -> bool {
    matches!(user.role, Role::Supervisor | Role::Admin)
}

/// Refuses review actions to users who may not take them.
pub fn require_reviewer(user: &User) -> crate::error::AppResult<()> {
    if may_review(user) {
        Ok(())
    } else {
        Err(crate::error::AppError::Forbidden(
            "只有监管负责人可以审核案件 (only supervisors may review cases)".into(),
        ))
    }
}

/// Refuses the supervisors' overviews (rectification board, bulletins) to inspectors.
pub fn require_supervisor_pages(user: &User) -> crate::error::AppResult<()> {
    if may_review(user) {
        Ok(())
    } else {
        Err(crate::error::AppError::Forbidden(
            "该页面仅供监管负责人查看 (supervisors only)".into(),
        ))
    }
}
