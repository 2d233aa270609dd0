//! Scenarios 2 and 3: jurisdiction across districts, and changes from a device bound to
//! someone else. A case a user may not see is answered exactly as one that does not exist;
//! refused changes never reach storage or other clients.

use anjian_core::Role;
use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use anjian_core::{CaseId, sample};
use anjian_tests::hostile::{comment, copy_into};
use anjian_tests::peer::RawPeer;
use anjian_tests::{Inspector, TestServer, add_user, login_token};
use automerge::transaction::Transactable;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

async fn get(url: &str, token: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// What the server answers a bare `request` for `document` (after `join`).
async fn ask_for(server: &str, token: &str, document: DocumentId) -> Vec<WireMessage> {
    let ws = format!("{}/sync?token={token}", server.replace("http", "ws"));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws.as_str())
        .await
        .expect("connect");
    let join = WireMessage::Join {
        sender_id: "probe".into(),
        metadata: PeerMetadata::default(),
        supported_versions: vec![PROTOCOL_VERSION.into()],
    };
    socket
        .send(Message::Binary(join.encode().into()))
        .await
        .expect("join");
    let mut answers = Vec::new();
    let mut empty = automerge::AutoCommit::new();
    let request = automerge::sync::SyncDoc::generate_sync_message(
        &empty.sync(),
        &mut automerge::sync::State::new(),
    )
    .expect("a first message")
    .encode();
    socket
        .send(Message::Binary(
            WireMessage::Request {
                sender_id: "probe".into(),
                target_id: String::new(),
                document_id: document,
                data: request,
                signatures: Vec::new(),
            }
            .encode()
            .into(),
        ))
        .await
        .expect("request");
    while answers.len() < 2 {
        match socket.next().await {
            Some(Ok(Message::Binary(b))) => {
                answers.push(WireMessage::decode(&b).expect("a message"))
            }
            _ => break,
        }
    }
    answers
}

/// The answer with its document id and the server's peer id blanked out, for comparing.
fn shape(message: &WireMessage) -> String {
    match message {
        WireMessage::DocUnavailable { .. } => "doc-unavailable".into(),
        other => format!("{other:?}"),
    }
}

/// Who may read a case is one rule: an inspector's phone syncs every case of their
/// district, so the API answers a district colleague's case in full too; only the list
/// is narrowed to the cases the inspector worked on. Another district's inspector gets
/// nothing, over HTTP and the wire alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspector_reads_in_full_what_their_phone_syncs_and_lists_their_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "a_inspector", Role::Inspector, "310101", "应急管理");
    add_user(&data, "a_colleague", Role::Inspector, "310101", "应急管理");
    add_user(&data, "c_inspector", Role::Inspector, "310105", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut a = Inspector::sign_in(dir.path(), &url, "a_inspector", "应急管理", "310101").await;
    let case = a.open_sample_case(2);
    a.sync().await.expect("a syncs");

    for (user, reads) in [("a_colleague", true), ("c_inspector", false)] {
        let token = login_token(&url, user).await;
        let (_, catalog) = get(&format!("{url}/api/v1/catalog?since=0"), &token).await;
        let synced = catalog["documents"].as_array().map(Vec::len);
        assert_eq!(synced, Some(usize::from(reads)), "{user} catalog");
        let (status, body) = get(&format!("{url}/api/v1/cases/{case}"), &token).await;
        assert_eq!(status, if reads { 200 } else { 404 }, "{user}: {body}");
        let (_, cases) = get(&format!("{url}/api/v1/cases"), &token).await;
        assert_eq!(
            cases["total"], 0,
            "{user} lists only the cases they worked on"
        );
    }
    let token = login_token(&url, "a_inspector").await;
    let (_, cases) = get(&format!("{url}/api/v1/cases"), &token).await;
    assert_eq!(cases["total"], 1, "the inspector who opened it lists it");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_district_case_is_visible_to_both_districts_and_to_no_one_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "a_inspector", Role::Inspector, "310101", "应急管理");
    add_user(&data, "c_inspector", Role::Inspector, "310105", "应急管理");
    for (user, district) in [
        ("a_chief", "310101"),
        ("b_chief", "310104"),
        ("c_chief", "310105"),
    ] {
        add_user(&data, user, Role::Supervisor, district, "应急管理");
    }
    let server = TestServer::start(&data).await;
    let url = server.url();

    let mut a = Inspector::sign_in(dir.path(), &url, "a_inspector", "应急管理", "310101").await;
    let enterprise = sample::enterprise(3);
    a.store.register_enterprise(&enterprise).expect("register");
    let mut new = sample::new_case(&enterprise);
    new.case_type = anjian_core::CaseType::CrossDistrict;
    new.visible_to.push("310104".parse().expect("district"));
    let case = a.store.open_case(&new).expect("case");
    a.store
        .add_finding(case, &sample::finding("危化品仓库超量储存"))
        .expect("finding");
    a.sync().await.expect("a syncs");

    for (chief, expected) in [("a_chief", 200), ("b_chief", 200), ("c_chief", 404)] {
        let token = login_token(&url, chief).await;
        let (status, body) = get(&format!("{url}/api/v1/cases/{case}"), &token).await;
        assert_eq!(status, expected, "{chief}: {body}");
        let (_, catalog) = get(&format!("{url}/api/v1/catalog?since=0"), &token).await;
        let listed = catalog["documents"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default();
        assert_eq!(listed, usize::from(expected == 200), "{chief} catalog");
        let (_, cases) = get(&format!("{url}/api/v1/cases"), &token).await;
        assert_eq!(
            cases["cases"].as_array().map(Vec::len),
            Some(usize::from(expected == 200)),
            "{chief} list"
        );
    }
    // For C, the case answers exactly as a case that does not exist, over HTTP and the wire.
    let c_token = login_token(&url, "c_chief").await;
    let missing = CaseId::new();
    let (status_missing, body_missing) =
        get(&format!("{url}/api/v1/cases/{missing}"), &c_token).await;
    let (status_hidden, body_hidden) = get(&format!("{url}/api/v1/cases/{case}"), &c_token).await;
    assert_eq!(status_missing, status_hidden);
    assert_eq!(body_missing["error"], body_hidden["error"]);
    let hidden = ask_for(&url, &c_token, DocumentId::of(case)).await;
    let absent = ask_for(&url, &c_token, DocumentId::of(missing)).await;
    assert_eq!(
        hidden.iter().map(shape).collect::<Vec<_>>(),
        absent.iter().map(shape).collect::<Vec<_>>()
    );
    assert!(
        matches!(hidden.last(), Some(WireMessage::DocUnavailable { .. })),
        "{hidden:?}"
    );

    // C's inspector got the case's bytes some other way. C's phone holds no case outside
    // C's jurisdiction, from a teammate's file or anywhere.
    let c = Inspector::sign_in(dir.path(), &url, "c_inspector", "应急管理", "310105").await;
    let mut c_store = c.store;
    let refused = c_store.merge_case(&a.store.export_case(case).expect("export"));
    assert!(
        matches!(&refused, Err(anjian_core::Error::NotAllowed(m)) if m.contains("辖区")),
        "{refused:?}"
    );
    assert!(c_store.case(case).is_err(), "nothing of it is kept");
    // Past its app, with C's device actor, C records on the case and sends it: the server
    // refuses it, with a reason (the case is outside C's jurisdiction, and its changes come
    // from devices not bound to C: which of the two is said first does not tell C whether
    // the case exists).
    let copy = a.store.export_document(case).expect("export");
    let mut forged = automerge::AutoCommit::load(&copy)
        .expect("load")
        .with_actor(automerge::ActorId::try_from(c_store.device_id().as_str()).expect("actor id"));
    comment(&mut forged, "c_inspector", "C 区检查员的记录");
    let mut peer = RawPeer::joined(&server.addr.to_string(), &c.token).await;
    let pushed = peer.push(DocumentId::of(case), &mut forged).await;
    let (_, reason) = pushed.refused.expect("refused");
    assert!(
        reason.contains("辖区") || reason.contains("未绑定"),
        "{reason}"
    );
    // C makes a case of its own under the case's id, in A's district: refused as a new
    // case would be, and, the case being one C may not see, no refusal of it is kept (its
    // changes were judged against a case that is not the one the server holds).
    let mut own = automerge::AutoCommit::new().with_actor(forged.get_actor().clone());
    let source = automerge::AutoCommit::load(&copy).expect("load");
    copy_into(&source, &automerge::ROOT, &mut own, &automerge::ROOT);
    own.put(automerge::ROOT, "opened_by", "c_inspector")
        .expect("put");
    own.put_object(automerge::ROOT, "findings", automerge::ObjType::Map)
        .expect("put");
    own.commit();
    let mut peer = RawPeer::joined(&server.addr.to_string(), &c.token).await;
    let pushed = peer.push(DocumentId::of(case), &mut own).await;
    let (rule, reason) = pushed.refused.expect("refused");
    assert_eq!(rule, "jurisdiction", "{reason}");
    let kept: i64 =
        anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(&server.data))
            .expect("db")
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM refused_changes WHERE case_id = ?1",
                    anjian_sync_server::params![case.to_string()],
                    |r| r.get(0),
                )
            })
            .expect("count");
    assert_eq!(kept, 0);

    // Nothing of C's reached the server or A.
    a.sync().await.expect("a syncs");
    assert_eq!(a.store.case(case).expect("case").findings.len(), 1);
    let (_, body) = get(
        &format!("{url}/api/v1/cases/{case}"),
        &login_token(&url, "a_chief").await,
    )
    .await;
    assert_eq!(body["findings"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_a_device_bound_to_another_user_are_refused_and_go_nowhere() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "owner", Role::Inspector, "310101", "应急管理");
    add_user(&data, "mallory", Role::Inspector, "310101", "应急管理");
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();

    let mut owner = Inspector::sign_in(dir.path(), &url, "owner", "应急管理", "310101").await;
    let case = owner.open_sample_case(4);
    owner.sync().await.expect("owner syncs");

    // Mallory signs in on her own phone, then syncs from a copy of the owner's store file:
    // its changes carry the owner's device actor, bound to the owner, not to Mallory.
    let mallory_device =
        Inspector::sign_in(dir.path(), &url, "mallory", "应急管理", "310101").await;
    drop(owner.store);
    std::fs::copy(dir.path().join("owner.db"), dir.path().join("forged.db")).expect("copy");
    // With a key file of its own beside it (a store without one is restored from a
    // backup and becomes a new device): it keeps the owner's actor.
    drop(
        anjian_core::Store::open(dir.path().join("spare.db"), sample::inspector("x"))
            .expect("a spare store makes a key"),
    );
    std::fs::copy(
        dir.path().join("spare.db.key"),
        dir.path().join("forged.db.key"),
    )
    .expect("copy key");
    let mut forged =
        anjian_core::Store::open(dir.path().join("forged.db"), sample::inspector("owner"))
            .expect("open");
    forged
        .add_finding(case, &sample::finding("冒名记录"))
        .expect("forged finding");
    let report = forged
        .sync(&url, &mallory_device.token, |_| {})
        .await
        .expect("sync runs");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(
        report.refused[0].1.contains("未绑定到您账号的设备"),
        "{:?}",
        report.refused
    );

    let (_, body) = get(
        &format!("{url}/api/v1/cases/{case}"),
        &login_token(&url, "chief").await,
    )
    .await;
    assert_eq!(
        body["findings"].as_array().map(Vec::len),
        Some(0),
        "nothing reached storage: {body}"
    );
    let mut owner = Inspector {
        store: anjian_core::Store::open(dir.path().join("owner.db"), sample::inspector("owner"))
            .expect("reopen"),
        token: owner.token,
        server: url.clone(),
    };
    owner.sync().await.expect("owner syncs");
    assert!(
        owner.store.case(case).expect("case").findings.is_empty(),
        "nothing reached other clients"
    );
    server.stop().await;
}

/// The catalog comes a page at a time (`limits.catalog_page`): a page cut short says
/// `more` and ends at its last document, a case changed after its page was read comes
/// again in a later one, and a new phone reads and syncs every page in one sync (more
/// pages than a sync has rounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_comes_a_page_at_a_time_and_a_new_phone_syncs_every_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "a_inspector", Role::Inspector, "310101", "应急管理");
    add_user(&data, "a_colleague", Role::Inspector, "310101", "应急管理");
    let page = 2;
    let server = TestServer::start_with(anjian_sync_server::Settings {
        data,
        limits: anjian_sync_server::config::Limits {
            catalog_page: page,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let url = server.url();
    let mut a = Inspector::sign_in(dir.path(), &url, "a_inspector", "应急管理", "310101").await;
    let ours: Vec<CaseId> = (0..9).map(|n| a.open_sample_case(20 + n)).collect();
    a.sync().await.expect("a syncs");

    // Page by page; the first case listed changes after its page.
    let token = login_token(&url, "a_colleague").await;
    let (mut since, mut listed, mut pages) = (0, Vec::new(), 0);
    loop {
        let (status, answer) = get(&format!("{url}/api/v1/catalog?since={since}"), &token).await;
        assert_eq!(status, 200, "{answer}");
        let documents = answer["documents"].as_array().expect("documents");
        assert!(documents.len() <= page, "{answer}");
        listed.extend(documents.iter().map(|d| d["document_id"].clone()));
        let cursor = answer["cursor"].as_i64().expect("cursor");
        assert!(cursor > since, "the cursor moves on: {answer}");
        since = cursor;
        pages += 1;
        if pages == 1 {
            let first: DocumentId = listed[0].as_str().expect("an id").parse().expect("id");
            a.store
                .add_finding(first.case_id(), &sample::finding("配电箱无防护"))
                .expect("finding");
            a.sync().await.expect("a syncs the change");
        }
        if answer["more"] == false {
            break;
        }
    }
    assert_eq!(
        listed.iter().filter(|d| **d == listed[0]).count(),
        2,
        "the case changed after its page comes again: {listed:?}"
    );
    let mut distinct = listed.clone();
    distinct.sort_by_key(ToString::to_string);
    distinct.dedup();
    let mut expected: Vec<serde_json::Value> = ours
        .iter()
        .map(|case| serde_json::json!(DocumentId::of(*case).to_string()))
        .collect();
    expected.sort_by_key(ToString::to_string);
    assert_eq!(
        distinct, expected,
        "every case, each once but the one changed"
    );
    assert_eq!(pages, 5, "ten listings, two a page");

    for (limit, listed) in [(0, 1), (1, 1), (50, page)] {
        let (_, answer) = get(
            &format!("{url}/api/v1/catalog?since=0&limit={limit}"),
            &token,
        )
        .await;
        assert_eq!(
            (
                answer["documents"].as_array().map(Vec::len),
                &answer["more"]
            ),
            (Some(listed), &serde_json::json!(true)),
            "a page of {limit} asked: no more than the server's"
        );
    }

    let mut colleague =
        Inspector::sign_in(dir.path(), &url, "a_colleague", "应急管理", "310101").await;
    let report = colleague.sync().await.expect("the colleague's first sync");
    for case in &ours {
        assert_eq!(
            colleague.store.heads(*case).expect("held"),
            a.store.heads(*case).expect("heads"),
            "{case}"
        );
    }
    assert_eq!(report.documents, ours.len(), "{report:?}");
    server.stop().await;
}
