//! Commits written together: each commit of a batch gets its own result.

use anjian_core::{CaseId, ReviewAction, Role, Store, WritKind, sample};
use anjian_sync_server::AppState;
use anjian_sync_server::db::params;
use anjian_sync_server::error::AppError;
use anjian_sync_server::review;
use anjian_sync_server::storage::Commit;

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

/// The numbers of the documents the register holds of `case`.
fn register(state: &AppState, case: CaseId) -> Vec<String> {
    state
        .storage
        .read(|conn| {
            conn.query_map(
                "SELECT number FROM writs WHERE case_id = ?1",
                params![case.to_string()],
                |r| r.get(0),
            )
        })
        .expect("register")
}

/// A commit whose case seals a document under `number`: sealed on the phone with a
/// provisional number, read by the commit as a number from a block (as a change the rule
/// book let through reads).
fn sealed_as(state: &AppState, store: &mut Store, case: CaseId, number: &str) -> Commit {
    let writ = store
        .create_writ(case, WritKind::RectificationOrder, None)
        .expect("drawn up");
    store.seal_writ(case, writ).expect("sealed");
    let mut commit = commit_of(state, store, case, "insp");
    let seal = commit.projection.case.writs[0]
        .seal
        .as_mut()
        .expect("sealed");
    seal.number = number.to_owned();
    seal.provisional = false;
    commit
}

/// Two connections sending one document number in two cases at once both pass the rule
/// book, which reads the register as last committed. The commits run one at a time: the
/// second finds the number taken, fails as stale (judged again, the rule book refuses the
/// number) and writes nothing, in a batch of its own or in the first one's. A case
/// committing again with its own number is not held up by it.
#[test]
fn a_number_another_case_took_meanwhile_fails_the_commit() {
    const NUMBER: &str = "（沪浦）应急责改〔2026〕0007号";
    let dir = tempfile::tempdir().expect("dir");
    let (_app, state) = server(dir.path(), &[("insp", Role::Inspector, "310115")]);
    let (mut first, first_case) = record_case(dir.path(), "insp", "310115", 1);
    let (mut second, second_case) = record_case(dir.path(), "insp", "310115", 2);
    let (mut third, third_case) = record_case(dir.path(), "insp", "310115", 3);

    let batch = [
        sealed_as(&state, &mut first, first_case, NUMBER),
        sealed_as(&state, &mut second, second_case, NUMBER),
    ];
    let results = state.storage.commit_batch(&batch);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(&results[1], Err(AppError::Stale(m)) if m.contains(NUMBER)),
        "{:?}",
        results[1]
    );
    assert_eq!(
        state.storage.stored_heads(second_case).expect("heads"),
        None
    );
    assert_eq!(register(&state, first_case), [NUMBER]);
    assert!(register(&state, second_case).is_empty());

    let alone = state
        .storage
        .commit_batch(&[sealed_as(&state, &mut third, third_case, NUMBER)]);
    assert!(matches!(alone[0], Err(AppError::Stale(_))), "{alone:?}");
    assert_eq!(state.storage.stored_heads(third_case).expect("heads"), None);

    first
        .add_finding(first_case, &sample::finding("消防通道堆放杂物"))
        .expect("finding");
    let mut again = commit_of(&state, &mut first, first_case, "insp");
    again.projection.case.writs = batch[0].projection.case.writs.clone();
    let results = state.storage.commit_batch(&[again]);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_eq!(findings(&state, first_case), 2);
}

/// A byte of a stored change flipped on disk: Automerge alone would load the case without
/// that change and say nothing, and the server would then serve, judge and compact the
/// shortened case. The server reports the stored case as damaged instead. A supervisor of
/// another district asking for the case, or acting on it, is told it is not there: the
/// server answers from the case's visibility before it reads the document (it used to
/// read, decode and judge it first, and its damage then told the outsider the case
/// existed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_whose_stored_changes_are_damaged_does_not_load_short() {
    let dir = tempfile::tempdir().expect("dir");
    let (_app, state) = server(
        dir.path(),
        &[
            ("insp", Role::Inspector, "310115"),
            ("chief", Role::Supervisor, "310115"),
            ("outsider", Role::Supervisor, "310101"),
        ],
    );
    let (mut store, case) = record_case(dir.path(), "insp", "310115", 1);
    upload(&state, &mut store, case, "insp");
    store
        .add_finding(case, &sample::finding("消防通道堆放杂物"))
        .expect("finding");
    upload(&state, &mut store, case, "insp");
    assert!(state.storage.load_document(case).expect("load").is_some());
    state
        .storage
        .write(|conn| {
            let (seq, mut bytes): (i64, Vec<u8>) = conn.query_row(
                "SELECT seq, bytes FROM chunks WHERE case_id = ?1 ORDER BY seq DESC LIMIT 1",
                params![case.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            conn.execute(
                "UPDATE chunks SET bytes = ?3 WHERE case_id = ?1 AND seq = ?2",
                params![case.to_string(), seq, bytes],
            )
        })
        .expect("damage");
    let err = state.storage.load_document(case).expect_err("damaged");
    assert!(matches!(err, AppError::Internal(_)), "{err}");
    let id = case.to_string();
    let chief = state.storage.user("chief").expect("chief");
    let answer = review::load(&state, &chief, &id).map(|_| ());
    assert!(matches!(answer, Err(AppError::Internal(_))), "{answer:?}");
    let outsider = state.storage.user("outsider").expect("outsider");
    let answer = review::load(&state, &outsider, &id).map(|_| ());
    assert!(matches!(answer, Err(AppError::NotFound(_))), "{answer:?}");
    let answer = review::act(&state, &chief, &id, ReviewAction::Comment, "已阅").await;
    assert!(matches!(answer, Err(AppError::Internal(_))), "{answer:?}");
    let answer = review::act(&state, &outsider, &id, ReviewAction::Comment, "已阅").await;
    assert!(matches!(answer, Err(AppError::NotFound(_))), "{answer:?}");
}

/// A server in `dir` holding an inspector's case of district 310115, and that district's
/// chief (keep the router: it holds the server's state alive).
fn a_case_and_its_chief(
    dir: &std::path::Path,
) -> (
    axum::Router,
    std::sync::Arc<AppState>,
    CaseId,
    anjian_sync_server::users::User,
) {
    let (app, state) = server(
        dir,
        &[
            ("insp", Role::Inspector, "310115"),
            ("chief", Role::Supervisor, "310115"),
        ],
    );
    let (mut store, case) = record_case(dir, "insp", "310115", 1);
    upload(&state, &mut store, case, "insp");
    let chief = state.storage.user("chief").expect("chief");
    (app, state, case, chief)
}

/// Polls `action` until its change is stored, and drops it before it is polled again:
/// it never learns that its commit went through. Whether that happened (false: the
/// action ended first).
async fn dropped_after_its_commit(
    state: &AppState,
    case: CaseId,
    action: impl std::future::Future,
) -> bool {
    let before = state.storage.stored_heads(case).expect("heads");
    let mut action = std::pin::pin!(action);
    loop {
        if state.storage.stored_heads(case).expect("heads") != before {
            return true;
        }
        if futures_util::poll!(&mut action).is_ready() {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_micros(50)).await;
    }
}

/// A supervisor's action whose request is dropped while its commit is under way (the
/// browser closed, the network gone) is still committed; the case in memory must then
/// not stay as it was before, or the next action would be judged against it and refused
/// as stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_dropped_while_it_commits_leaves_the_case_to_be_read_as_stored() {
    let dir = tempfile::tempdir().expect("dir");
    let (_app, state, case, chief) = a_case_and_its_chief(dir.path());
    let id = case.to_string();
    for attempt in 0..20 {
        let action = review::act(&state, &chief, &id, ReviewAction::Comment, "请补充照片");
        let dropped_after_its_commit = dropped_after_its_commit(&state, case, action).await;
        let next = review::act(&state, &chief, &id, ReviewAction::Comment, "已阅").await;
        assert!(next.is_ok(), "attempt {attempt}: {next:?}");
        if dropped_after_its_commit {
            return;
        }
    }
    panic!("no action was dropped after its commit");
}

/// The same action, dropped once its change is stored, is still announced to every
/// connection syncing the case: it runs to its end on a task of its own, so devices
/// syncing live receive the supervisor's change without waiting for their next round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_dropped_while_it_commits_is_still_announced_to_open_connections() {
    let dir = tempfile::tempdir().expect("dir");
    let (_app, state, case, chief) = a_case_and_its_chief(dir.path());
    let id = case.to_string();
    // A connection syncing the case.
    let (notify, mut told) = tokio::sync::mpsc::unbounded_channel();
    let connection = state.hub.connection_id();
    state.hub.subscribe(case, connection, &notify);
    for attempt in 0..20 {
        let action = review::act(&state, &chief, &id, ReviewAction::Comment, "请补充照片");
        let dropped_after_its_commit = dropped_after_its_commit(&state, case, action).await;
        let announced = tokio::time::timeout(std::time::Duration::from_secs(10), told.recv()).await;
        assert_eq!(
            announced.ok().flatten(),
            Some(case),
            "attempt {attempt}: the connection is told"
        );
        if dropped_after_its_commit {
            state.hub.unsubscribe(case, connection);
            // The task announces before it gives the slot back: wait for it, a while.
            let given_back = async {
                while state.hub.slots() != 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            };
            let waited = tokio::time::timeout(std::time::Duration::from_secs(10), given_back);
            assert!(waited.await.is_ok(), "the case's slot is given back");
            return;
        }
    }
    panic!("no action was dropped after its commit");
}
