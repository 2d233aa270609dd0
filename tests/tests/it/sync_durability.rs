//! Scenario 4: the server is killed (SIGKILL) in the middle of a sync of many documents
//! and restarted; every change the client saw acknowledged is on the server, and a second
//! sync completes the rest. Then the same many times over, at random moments, while three
//! devices edit and sync (`anjian_tests::kills`; 200 kills in the `sync_kills` benchmark).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anjian_core::Role;
use anjian_core::sample;
use anjian_sync_server::Storage;
use anjian_tests::{Inspector, acknowledged_changes, add_user, kills, process};

/// Starts the server as a child process on `addr` (or a free port) and returns it with
/// its address.
fn spawn_server(data: &Path, addr: &str) -> (Child, String) {
    process::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_test_server"))
            .arg(data)
            .arg(addr)
            .stderr(Stdio::null()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_a_killed_server_and_the_next_sync_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "field", Role::Inspector, "310101", "应急管理");
    let (mut child, addr) = spawn_server(&data, "127.0.0.1:0");
    let url = format!("http://{addr}");
    let mut inspector = Inspector::sign_in(dir.path(), &url, "field", "应急管理", "310101").await;
    let cases = inspector.record_cases(8, 300);

    // Kill the server once a third of the documents are done.
    let mut killed = false;
    let outcome = inspector
        .store
        .sync(&url, &inspector.token, |p| {
            if !killed && p.documents_done >= p.documents_total / 3 {
                child.kill().expect("SIGKILL");
                killed = true;
            }
        })
        .await;
    assert!(killed, "the kill happened mid-sync");
    assert!(
        outcome.is_err(),
        "the cut round reports a network error: {outcome:?}"
    );
    let _ = child.wait();

    // What the device recorded as acknowledged, per change.
    let acked = acknowledged_changes(&dir.path().join("field.db"));
    assert!(
        !acked.is_empty(),
        "some documents were acknowledged before the kill"
    );
    assert!(acked.len() < cases.len() * 2, "the kill left work undone");
    let storage = Storage::open(&anjian_sync_server::testing::database(&data))
        .expect("server database after the kill");
    for (case, hash) in &acked {
        let mut doc = storage
            .load_document(case.parse().expect("case id"))
            .expect("loads")
            .expect("the case is on the server");
        let hash: automerge::ChangeHash = hash.parse().expect("hash");
        assert!(
            doc.get_change_by_hash(&hash).is_some(),
            "acknowledged change {hash} of {case} survived"
        );
    }
    drop(storage);

    // Restart on the same address and data and sync again: everything arrives, nothing twice.
    let (mut child, _) = spawn_server(&data, &addr);
    let report = inspector
        .store
        .sync(&url, &inspector.token, |_| {})
        .await
        .expect("second sync");
    assert!(report.refused.is_empty(), "{report:?}");
    for case in &cases {
        let state = inspector.store.upload_state(*case).expect("state");
        assert_eq!(
            state.acknowledged, state.changes,
            "case {case} fully acknowledged"
        );
    }
    let storage =
        Storage::open(&anjian_sync_server::testing::database(&data)).expect("server database");
    let count: i64 = storage
        .read(|c| c.query_row("SELECT count(*) FROM documents", &[], |r| r.get(0)))
        .expect("count");
    assert_eq!(count, cases.len() as i64, "each case stored once");
    child.kill().expect("stop");
    let _ = child.wait();
}

/// Kills in CI (`ANJIAN_KILLS` sets another number; `ANJIAN_KILL_SEED` the seed).
const KILLS: usize = 20;

#[test]
fn acknowledged_changes_survive_repeated_kills_and_every_device_syncs_again() {
    let options = kills::Options::from_env(env!("CARGO_BIN_EXE_test_server"), KILLS);
    let counts = kills::run(&options);
    println!("{counts}");
    assert!(
        counts.missing.is_empty(),
        "seed {}: acknowledged but lost:\n{}",
        counts.seed,
        counts.missing.join("\n")
    );
    assert_eq!(counts.kills, options.kills);
    assert!(
        counts.syncs_interrupted > 0,
        "seed {}: no kill landed during a sync: {counts}",
        counts.seed
    );
    assert!(counts.acknowledgements_checked > 0, "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_accepts_and_never_answers_is_a_network_error_not_a_hang() {
    // A listener the kernel accepts connections for, but that never reads or writes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("address"));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = anjian_core::Store::open(dir.path().join("a.db"), sample::inspector("zhang"))
        .expect("store");
    store.set_network_timeout(std::time::Duration::from_millis(500));
    // Without the timeout these calls wait for ever; the outer limit turns that into a
    // failure instead of a stuck test run.
    let limit = std::time::Duration::from_secs(120);
    let err = tokio::time::timeout(limit, store.sync(&url, "token", |_| {}))
        .await
        .expect("sync gave up by itself")
        .expect_err("nothing answers");
    assert!(matches!(err, anjian_core::Error::Network(_)), "{err}");
    let err = tokio::time::timeout(limit, store.login(&url, "zhang", "password", "手机"))
        .await
        .expect("login gave up by itself")
        .expect_err("nothing answers");
    assert!(matches!(err, anjian_core::Error::Network(_)), "{err}");
    drop(silent);
}

/// A case damaged on the phone's disk (a flipped byte in a stored change) does not keep
/// the others from the server: the sync leaves it out, says so, and goes on without
/// trying it again in every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_damaged_on_the_phone_does_not_keep_the_others_from_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "field", Role::Inspector, "310101", "应急管理");
    let server = anjian_tests::TestServer::start(&data).await;
    let mut phone =
        Inspector::sign_in(dir.path(), &server.url(), "field", "应急管理", "310101").await;
    let damaged = phone.open_sample_case(1);
    let healthy = phone.open_sample_case(2);
    for case in [damaged, healthy] {
        phone
            .store
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
    }
    let path = dir.path().join("field.db");
    let identity = phone.store.identity().clone();
    phone.store = anjian_core::Store::open(dir.path().join("other.db"), identity.clone())
        .expect("another store, while the phone's is damaged");
    let conn = rusqlite::Connection::open(&path).expect("open");
    let mut bytes: Vec<u8> = conn
        .query_row(
            "SELECT bytes FROM chunks WHERE case_id = ?1 ORDER BY seq DESC LIMIT 1",
            [damaged.to_string()],
            |r| r.get(0),
        )
        .expect("a stored change");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    conn.execute(
        "UPDATE chunks SET bytes = ?2 WHERE case_id = ?1",
        rusqlite::params![damaged.to_string(), bytes],
    )
    .expect("damage");
    phone.store = anjian_core::Store::open(&path, identity).expect("the phone's store");

    let report = phone.sync().await.expect("the sync goes on");
    assert_eq!(
        report
            .damaged
            .iter()
            .map(|(case, _)| *case)
            .collect::<Vec<_>>(),
        [damaged],
        "{report:?}"
    );
    // Left out for the rest of the sync, not tried again in every round: two catalog reads
    // (the second finds nothing more), then the number blocks and the proofs.
    assert_eq!(report.documents, 2, "{report:?}");
    assert_eq!(report.http_requests, 2 + 2, "{report:?}");
    let stored = Storage::open(&anjian_sync_server::testing::database(&data)).expect("db");
    assert!(stored.load_document(healthy).expect("load").is_some());
    assert!(stored.load_document(damaged).expect("load").is_none());
    server.stop().await;
}
