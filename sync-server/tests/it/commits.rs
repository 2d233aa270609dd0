//! Commits written together: each commit of a batch gets its own result.

use anjian_core::{CaseId, Role, sample};
use anjian_sync_server::AppState;
use anjian_sync_server::db::params;
use anjian_sync_server::error::AppError;

use crate::support::{commit_of, record_case, server, upload};

/// The findings the projections hold of `case`.
fn findings(state: &AppState, case: CaseId) -> i64 {
    state
        .storage
        .read(|conn| {
            conn.query_row(
                "SELECT count(*) FROM findings WHERE case_id = ?1",
                params![case.to_string()],
                |r| r.get(0),
            )
        })
        .expect("findings")
}

/// A commit judged against heads that moved since (another server process committed the
/// case meanwhile) fails as stale and writes nothing; the commits beside it in its batch
/// are written all the same.
#[test]
fn a_stale_commit_fails_alone_and_the_rest_of_its_batch_is_written() {
    let dir = tempfile::tempdir().expect("dir");
    let (_app, state) = server(dir.path(), &[("insp", Role::Inspector, "310115")]);
    let (mut first, first_case) = record_case(dir.path(), "insp", "310115", 1);
    let (mut moved, moved_case) = record_case(dir.path(), "insp", "310115", 2);
    let (mut last, last_case) = record_case(dir.path(), "insp", "310115", 3);
    upload(&state, &mut moved, moved_case, "insp");
    moved
        .add_finding(moved_case, &sample::finding("消防通道堆放杂物"))
        .expect("finding");
    let stale = commit_of(&state, &mut moved, moved_case, "insp");
    // Another server process commits the case first, with one more finding.
    moved
        .add_finding(moved_case, &sample::finding("配电箱未接地"))
        .expect("finding");
    upload(&state, &mut moved, moved_case, "insp");
    let stored = state.storage.stored_heads(moved_case).expect("heads");
    assert_eq!(findings(&state, moved_case), 3);

    let batch = [
        commit_of(&state, &mut first, first_case, "insp"),
        stale,
        commit_of(&state, &mut last, last_case, "insp"),
    ];
    let results = state.storage.commit_batch(&batch);

    assert!(
        matches!(results[1], Err(AppError::Stale(_))),
        "{:?}",
        results[1]
    );
    assert_eq!(
        state.storage.stored_heads(moved_case).expect("heads"),
        stored
    );
    assert_eq!(findings(&state, moved_case), 3);
    for (i, case) in [(0, first_case), (2, last_case)] {
        assert!(results[i].is_ok(), "{:?}", results[i]);
        assert_eq!(
            state.storage.stored_heads(case).expect("heads"),
            Some(batch[i].heads.clone())
        );
        assert_eq!(findings(&state, case), 1);
    }
}
