//! The server's side of the rule book (`anjian_core::rules`): an account as the rule book's
//! author, and which rows of the supervisors' queries each account's pages cover. Every
//! decision about who may read, comment, decide or change what is the rule book's.

use anjian_core::rules::{self, Author};
use anjian_core::{Case, Role};

use crate::db::{self, Value};
use crate::error::{AppError, AppResult};
use crate::users::User;

/// `user` as the rule book's author of a change.
pub fn author(user: &User) -> Author {
    Author {
        user_id: user.username.clone(),
        role: user.role,
        district: user.district.clone(),
        department: user.department.clone(),
        key: None,
    }
}

/// Whether `user` may read `case` (the rule book's `may_read`).
pub fn can_see(user: &User, case: &Case) -> bool {
    rules::may_read(&author(user), case)
}

/// The rule book's `may_read` for `user` written as an SQL condition on the case id in the
/// column `case_id`, with its parameters (plain `?`): admins every case, everyone else the
/// cases whose visibility rows (the owning district and those it is shared with) name their
/// district. Looked up row by row: for one case, or rows that each name one (sync's
/// catalog, a blob's cases, proofs). The lists' wider scans take `Scope` instead.
pub fn readable(user: &User, case_id: &str) -> (String, Vec<Value>) {
    (
        format!(
            "(? OR EXISTS (SELECT 1 FROM visibility v WHERE v.case_id = {case_id} AND v.district = ?))"
        ),
        vec![
            db::value(user.role == Role::Admin),
            db::value(user.district.as_str()),
        ],
    )
}

/// Whether `user` decides the cases owned by district `owner` (the rule book's `decides`).
pub fn decides_in(user: &User, owner: &anjian_core::DistrictCode) -> bool {
    rules::decides(&author(user), owner)
}

/// Which cases the lists, the board and the bulletins cover: supervisors the cases their
/// district may read (owned by or shared with it), admins everything, and inspectors only
/// the cases they worked on (on the team, or sent changes to). It is the rule book's
/// `may_read` written as a query, narrowed for inspectors' lists;
/// `queries::Conditions::scope` turns it into SQL over the `visibility` projection. A
/// case in full is answered by `may_read` alone, as sync serves it.
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

/// Refuses the supervisors' overviews (rectification board, bulletins) and review
/// actions to those the rule book does not let supervise.
pub fn require_supervisor(user: &User) -> AppResult<()> {
    if rules::supervises(&author(user)) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "该功能仅供监管负责人使用 (supervisors only)".into(),
        ))
    }
}
