//! Shared fixtures: the core's samples plus stores in temporary directories.

use anjian_core::{CaseId, Identity, Store};

pub use anjian_core::sample::{enterprise, finding, inspector, new_case};

pub fn identity(user: &str, department: &str, district: &str) -> Identity {
    Identity {
        user_id: user.to_owned(),
        name: format!("检查员{user}"),
        department: department.to_owned(),
        district: district.parse().expect("valid district"),
        role: anjian_core::Role::Inspector,
    }
}

/// A store in `dir` for `user`, certified (`certified`), with one enterprise registered
/// and one case opened.
pub fn store_with_case(dir: &tempfile::TempDir, file: &str, user: &str) -> (Store, CaseId) {
    let mut store =
        certified(Store::open(dir.path().join(file), inspector(user)).expect("store opens"));
    let ent = enterprise(1);
    store
        .register_enterprise(&ent)
        .expect("enterprise registers");
    let case = store.open_case(&new_case(&ent)).expect("case opens");
    (store, case)
}

/// `store`, its key certified by the sample server every certified store trusts (as a
/// sign-in would): stores that hand each other case files verify each other's changes.
pub fn certified(mut store: Store) -> Store {
    anjian_core::sample::certify(&mut [&mut store]).expect("certified");
    store
}
