//! A peer that has nothing of a case and reads whole documents (a stock Automerge client,
//! an integration) is sent the stored document without the server reading it into
//! memory: what it gets is the case as recorded, its acknowledgement is answered with
//! nothing, and syncing goes on from there as from any other answer.

use std::time::Duration;

use anjian_core::Role;
use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::WireMessage;
use anjian_tests::hostile::bloom_asking;
use anjian_tests::peer::{Next, RawPeer};
use anjian_tests::{Inspector, TestServer, add_user, login_device, metric};
use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};

/// The next sync message for `document`, skipping nothing else.
async fn next_sync(peer: &mut RawPeer, wait: Duration) -> Option<sync::Message> {
    match peer.next(wait).await {
        Next::Message(WireMessage::Sync { data, .. }) => {
            Some(sync::Message::decode(&data).expect("a sync message"))
        }
        Next::Silence => None,
        other => panic!("expected a sync message: {other:?}"),
    }
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

/// The heads of `case` on the inspector's phone, sorted.
fn heads_of(insp: &mut Inspector, case: anjian_core::CaseId) -> Vec<ChangeHash> {
    let heads = insp.store.heads(case).expect("heads");
    sorted(heads.iter().map(|h| h.parse().expect("hash")).collect())
}

const SERVED: &str = "anjian_documents_served_stored_total";
const LOADED: &str = "anjian_loaded_documents";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_nothing_is_sent_the_stored_case_and_syncs_on_from_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    add_user(dir.path(), "insp", Role::Inspector, "310101", "应急管理");
    add_user(dir.path(), "chief", Role::Supervisor, "310101", "应急管理");
    add_user(
        dir.path(),
        "stranger",
        Role::Supervisor,
        "310104",
        "应急管理",
    );
    let server = TestServer::start(dir.path()).await;
    let url = server.url();
    let addr = server.addr.to_string();

    // An inspector records a case over two syncs (a snapshot and a chunk after it).
    let mut insp = Inspector::sign_in(dir.path(), &url, "insp", "应急管理", "310101").await;
    let case = insp.record_cases(1, 1)[0];
    insp.sync().await.expect("first sync");
    insp.store
        .add_finding(case, &anjian_core::sample::finding("第二处隐患"))
        .expect("finding");
    insp.sync().await.expect("second sync");
    let recorded = heads_of(&mut insp, case);
    let document = DocumentId::of(case);

    // The district's supervisor, on a new device that reads whole documents.
    let token = login_device(&url, "chief", &"c1".repeat(16)).await;
    let mut chief = RawPeer::joined(&addr, &token).await;
    // An ask whose summary's bloom filter asks billions of probes per lookup is held to
    // the wire's limits first, as every message is, and sent nothing.
    let mut hostile = AutoCommit::new()
        .sync()
        .generate_sync_message(&mut sync::State::new())
        .expect("asks");
    hostile.have = vec![bloom_asking(4_000_000_000)];
    chief.send_sync(document, hostile.encode()).await;
    match chief.next(Duration::from_secs(10)).await {
        Next::Message(WireMessage::Error { message }) => {
            assert!(message.contains("bloom"), "{message}")
        }
        other => panic!("expected an error: {other:?}"),
    }
    assert_eq!(metric(&url, SERVED).await, 0);
    let (mut doc, mut state) = (AutoCommit::new(), sync::State::new());
    let ask = doc.sync().generate_sync_message(&mut state).expect("asks");
    assert!(
        ask.flags.is_some(),
        "a peer that reads whole documents says so"
    );
    chief.send_sync(document, ask.encode()).await;
    let whole = next_sync(&mut chief, Duration::from_secs(10))
        .await
        .expect("the case is sent");
    assert_eq!(sorted(whole.heads.clone()), recorded);
    assert_eq!(whole.changes.len(), 1, "one piece: the stored bytes");
    doc.sync()
        .receive_sync_message(&mut state, whole)
        .expect("the stored bytes load");
    assert_eq!(sorted(doc.get_heads()), recorded);
    let read = anjian_core::case_doc::read(&doc).expect("a case");
    let mut findings: Vec<String> = read
        .findings
        .iter()
        .map(|f| f.description.clone())
        .collect();
    findings.sort();
    assert_eq!(findings, insp.descriptions(case));
    assert_eq!(metric(&url, SERVED).await, 1);

    // Its acknowledgement is answered with nothing, as Automerge answers it.
    let ack = doc
        .sync()
        .generate_sync_message(&mut state)
        .expect("acknowledges");
    chief.send_sync(document, ack.encode()).await;
    assert!(
        next_sync(&mut chief, Duration::from_millis(500))
            .await
            .is_none(),
        "nothing more to send"
    );
    assert!(doc.sync().generate_sync_message(&mut state).is_none());
    // Neither the ask nor the acknowledgement read the case into memory: once the
    // inspector's connection has let go of it, no document is loaded, though the
    // supervisor's connection still syncs it.
    let mut loaded = metric(&url, LOADED).await;
    for _ in 0..100 {
        if loaded == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        loaded = metric(&url, LOADED).await;
    }
    assert_eq!(
        loaded, 0,
        "a document read into memory to serve a peer with nothing"
    );

    // The inspector records more: the supervisor's peer is sent only what is new, from
    // the sync state the stored answer left.
    insp.store
        .add_finding(case, &anjian_core::sample::finding("第三处隐患"))
        .expect("finding");
    insp.sync().await.expect("third sync");
    let now = heads_of(&mut insp, case);
    let news = next_sync(&mut chief, Duration::from_secs(10))
        .await
        .expect("the change is announced");
    assert_eq!(sorted(news.heads.clone()), now);
    let raw: usize = news.changes.iter().map(|c| c.len()).sum();
    doc.sync()
        .receive_sync_message(&mut state, news)
        .expect("applies");
    assert_eq!(sorted(doc.get_heads()), now);
    assert!(
        doc.get_changes(&recorded).len() == 1 && raw < 2_000,
        "only the new change ({raw} bytes)"
    );
    assert_eq!(metric(&url, SERVED).await, 1);

    // A supervisor of another district is told the case is unavailable, as before.
    let token = login_device(&url, "stranger", &"d2".repeat(16)).await;
    let mut stranger = RawPeer::joined(&addr, &token).await;
    let (mut empty, mut theirs) = (AutoCommit::new(), sync::State::new());
    let ask = empty
        .sync()
        .generate_sync_message(&mut theirs)
        .expect("asks");
    stranger.send_sync(document, ask.encode()).await;
    match stranger.next(Duration::from_secs(10)).await {
        Next::Message(WireMessage::DocUnavailable { .. }) => {}
        other => panic!("expected doc-unavailable: {other:?}"),
    }
    assert_eq!(metric(&url, SERVED).await, 1);
    server.stop().await;
}
