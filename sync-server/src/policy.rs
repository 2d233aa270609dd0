//! Who may see and change which case: jurisdiction by district, role, and review state.

use anjian_core::{Case, ReviewState};

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
        if before.state == ReviewState::Approved && user.role != Role::Admin {
            return Some("该案件已审核通过并锁定，不能再修改；如需更正，请联系监管负责人退回或新建关联案件 (the case is approved and locked)".into());
        }
        if !can_see(user, before) {
            return Some(jurisdiction());
        }
    }
    if !can_see(user, after) {
        return Some(jurisdiction());
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
