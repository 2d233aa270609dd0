//! Who may see and change which case: jurisdiction by district, role, and review state.

use anjian_core::{Case, RectificationState, ReviewAction, ReviewState};

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
    if before.is_some_and(|b| !can_see(user, b)) || !can_see(user, after) {
        return Some(jurisdiction());
    }
    refuse_trail(user, before, after)
        .or_else(|| before.and_then(|b| refuse_locked(user, b, after)))
        .or_else(|| refuse_state(user, before, after))
        .or_else(|| refuse_rectifications(before, after))
}

/// The review trail is a record: events are only ever appended, each by the user who
/// sends it, and inspectors append only submissions and comments.
fn refuse_trail(user: &User, before: Option<&Case>, after: &Case) -> Option<String> {
    let old = before.map_or(&[][..], |b| &b.review_events[..]);
    if !after.review_events.starts_with(old) {
        return Some("审核记录不能修改或删除 (the review trail can only be added to)".into());
    }
    for event in &after.review_events[old.len()..] {
        if event.by != user.username {
            return Some(format!(
                "审核记录必须以您本人的名义添加，而不是“{}” (review events are recorded in the sender's own name)",
                event.by
            ));
        }
        let allowed = may_review(user)
            || matches!(
                event.kind.parse(),
                Ok(ReviewAction::Submit | ReviewAction::Comment)
            );
        if !allowed {
            return Some(only_supervisors());
        }
    }
    None
}

/// An approved case is locked: nothing changes but the review (a supervisor's comment, or
/// a supervisor reopening it).
fn refuse_locked(user: &User, before: &Case, after: &Case) -> Option<String> {
    if before.state != ReviewState::Approved {
        return None;
    }
    let only_review = Case {
        state: before.state,
        review_events: before.review_events.clone(),
        ..after.clone()
    } == *before;
    let comment = after.state == ReviewState::Approved;
    if only_review && (comment || may_review(user)) {
        return None;
    }
    Some("该案件已审核通过并锁定，不能再修改；如需更正，请新建关联的更正案件，或联系监管负责人重新打开 (the case is approved and locked; open an amending case)".into())
}

/// The review state moves only as the review actions move it, and only supervisors
/// return, approve or reopen.
fn refuse_state(user: &User, before: Option<&Case>, after: &Case) -> Option<String> {
    let from = before.map_or(ReviewState::Draft, |b| b.state);
    if after.state == from {
        return None;
    }
    let action = ReviewAction::ALL
        .iter()
        .copied()
        .find(|a| *a != ReviewAction::Comment && a.next_state(from).ok() == Some(after.state));
    match action {
        None => Some(format!(
            "案件状态不能从“{}”变为“{}” (no review action does that)",
            from.label(),
            after.state.label()
        )),
        Some(ReviewAction::Submit) => None,
        Some(_) if may_review(user) => None,
        Some(_) => Some(only_supervisors()),
    }
}

/// A rectification only moves forward along the closed loop (several steps may have been
/// taken offline between two syncs), and is re-inspected or closed only with evidence,
/// which cannot be taken away afterwards.
fn refuse_rectifications(before: Option<&Case>, after: &Case) -> Option<String> {
    for finding in &after.findings {
        let Some(rect) = &finding.rectification else {
            continue;
        };
        let old = before
            .and_then(|b| b.findings.iter().find(|f| f.id == finding.id))
            .and_then(|f| f.rectification.as_ref());
        let from = old.map_or(RectificationState::None, |r| r.state);
        let title = finding.description.lines().next().unwrap_or_default();
        if !reachable(from, rect.state) {
            return Some(format!(
                "隐患“{title}”的整改状态不能从“{}”变为“{}” (not a step of the closed loop)",
                from.label(),
                rect.state.label()
            ));
        }
        let needs_evidence = matches!(
            rect.state,
            RectificationState::Reinspected | RectificationState::Closed
        );
        let had_evidence = old.is_some_and(|r| r.has_reinspection_evidence());
        if needs_evidence
            && !rect.has_reinspection_evidence()
            && (from != rect.state || had_evidence)
        {
            return Some(format!(
                "隐患“{title}”复查或销号需要复查佐证（整改照片或复查意见），且不能删除 (re-inspection evidence is required and stays)"
            ));
        }
    }
    None
}

/// Whether the closed loop leads from `from` to `to` in any number of steps (ordering
/// leads from 未下达整改 to 已下达整改).
fn reachable(from: RectificationState, to: RectificationState) -> bool {
    let step = |a: RectificationState, b: RectificationState| {
        a.can_move_to(b) || (a == RectificationState::None && b == RectificationState::Ordered)
    };
    let mut seen = vec![from];
    let mut frontier = vec![from];
    while let Some(state) = frontier.pop() {
        for next in RectificationState::ALL {
            if step(state, *next) && !seen.contains(next) {
                seen.push(*next);
                frontier.push(*next);
            }
        }
    }
    seen.contains(&to)
}

fn only_supervisors() -> String {
    "只有监管负责人可以退回、审核通过或重新打开案件 (only a supervisor may return, approve or reopen a case)".into()
}

/// The reason given for changes to a case outside the user's jurisdiction.
pub fn jurisdiction() -> String {
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

/// Whether `user` decides `case` (returns, approves, reopens, resolves, closes): its owning
/// district's supervisors, or an admin. Districts it is shared with read and comment.
pub fn decides(user: &User, case: &Case) -> bool {
    decides_in(user, case.district.as_str())
}

/// Whether `user` decides the cases owned by district `owner` (see `decides`).
pub fn decides_in(user: &User, owner: &str) -> bool {
    user.role == Role::Admin || (user.role == Role::Supervisor && owner == user.district.as_str())
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
