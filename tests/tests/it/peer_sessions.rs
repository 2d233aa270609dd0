//! A joint team merges on site with no server at all: phones run peer sessions in pairs
//! (`Store::peer_session`, messages carried as an app would over Bluetooth or QR codes),
//! each verifying every change against the signer's certificate and judging it with the
//! rule book; then one phone reaches the network and carries everyone's work.

use std::collections::BTreeMap;
use std::path::Path;

use anjian_core::rules::Rule;
use anjian_core::{CaseId, FindingEdit, Level, PeerReceived, Role, sample};
use anjian_sync_server::Storage;
use anjian_tests::{Inspector, TestServer, add_user};

const TEAM: [(&str, &str, &str); 3] = [
    ("zhang", "310101", "应急管理"),
    ("li", "310104", "消防"),
    ("wang", "310105", "住建"),
];

/// A server with the three inspectors of a joint team, each signed in once (which gives
/// each phone its certificate and the server's key), and the server's data folder.
async fn team(dir: &Path) -> (TestServer, Vec<Inspector>) {
    let data = dir.join("server");
    for (user, district, department) in TEAM {
        add_user(&data, user, Role::Inspector, district, department);
    }
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut phones = Vec::new();
    for (user, district, department) in TEAM {
        phones.push(Inspector::sign_in(dir, &url, user, department, district).await);
    }
    (server, phones)
}

/// Zhang opens a joint case with the other two on the team.
fn joint_case(zhang: &mut Inspector) -> CaseId {
    zhang.open_joint_case(3, &TEAM[1..])
}

/// Runs a peer session for `case` between two phones until neither has anything to say;
/// what each side's messages came to.
fn meet(a: &mut Inspector, b: &mut Inspector, case: CaseId) -> (PeerReceived, PeerReceived) {
    let mut at_a = a.store.peer_session(case);
    let mut at_b = b.store.peer_session(case);
    let (mut got_a, mut got_b) = (PeerReceived::default(), PeerReceived::default());
    for _ in 0..20 {
        let from_a = a.store.peer_message(&mut at_a).expect("a's message");
        if let Some(message) = &from_a {
            absorb(
                &mut got_b,
                b.store
                    .peer_receive(&mut at_b, message)
                    .expect("b takes it"),
            );
        }
        let from_b = b.store.peer_message(&mut at_b).expect("b's message");
        if let Some(message) = &from_b {
            absorb(
                &mut got_a,
                a.store
                    .peer_receive(&mut at_a, message)
                    .expect("a takes it"),
            );
        }
        if from_a.is_none() && from_b.is_none() {
            return (got_a, got_b);
        }
    }
    panic!("the peer session did not finish in 20 rounds");
}

fn absorb(total: &mut PeerReceived, one: PeerReceived) {
    total.accepted += one.accepted;
    total.refused.extend(one.refused);
}

/// Who the server says wrote each change of the case.
fn authors(data: &Path, case: CaseId) -> BTreeMap<String, String> {
    let storage =
        Storage::open(&anjian_sync_server::testing::database(data)).expect("server database");
    storage
        .read(|conn| {
            let rows = conn.query_map(
                "SELECT r.change_hash, u.username FROM receipts r JOIN users u ON u.id = r.user_id
                 WHERE r.case_id = ?1",
                anjian_sync_server::params![case.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(rows.into_iter().collect())
        })
        .expect("receipts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phones_merge_in_pairs_without_a_server_and_one_carries_it_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mut phones) = team(dir.path()).await;
    let [mut zhang, mut li, mut wang] = [phones.remove(0), phones.remove(0), phones.remove(0)];
    let case = joint_case(&mut zhang);
    let shared = zhang
        .store
        .add_finding(case, &sample::finding("储罐区可燃气体报警器故障"))
        .expect("zhang's finding");

    // In the plant, no signal: Zhang meets Li, Li meets Wang (who never met Zhang).
    let (_, li_got) = meet(&mut zhang, &mut li, case);
    assert!(li_got.refused.is_empty(), "{li_got:?}");
    assert!(li_got.accepted >= 2, "{li_got:?}");
    let (_, wang_got) = meet(&mut li, &mut wang, case);
    assert!(wang_got.refused.is_empty(), "{wang_got:?}");
    assert_eq!(wang.descriptions(case), ["储罐区可燃气体报警器故障"]);

    // Each records more; Zhang and Wang judge the shared finding's level differently.
    let texts = [
        (&mut zhang, "安全出口堵塞"),
        (&mut li, "消防水池无水"),
        (&mut wang, "脚手架未设防护网"),
    ];
    for (phone, text) in texts {
        phone
            .store
            .add_finding(case, &sample::finding(text))
            .expect("finding");
    }
    let level = |level| FindingEdit {
        level: Some(level),
        ..FindingEdit::default()
    };
    zhang
        .store
        .edit_finding(case, shared, &level(Level::Major))
        .expect("zhang: major");
    wang.store
        .edit_finding(case, shared, &level(Level::General))
        .expect("wang: general");

    // Wang meets Zhang, Zhang meets Li: Zhang holds everything.
    meet(&mut wang, &mut zhang, case);
    meet(&mut zhang, &mut li, case);
    let everything = [
        "储罐区可燃气体报警器故障",
        "安全出口堵塞",
        "消防水池无水",
        "脚手架未设防护网",
    ];
    let mut expected: Vec<String> = everything.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(zhang.descriptions(case), expected);
    assert_eq!(li.descriptions(case), expected);

    // Only Li reaches the network.
    let report = li.sync().await.expect("li syncs");
    assert!(report.refused.is_empty(), "{report:?}");
    assert!(report.waiting.is_empty(), "{report:?}");
    let written = authors(&server.data, case);
    let heads_history = li.store.history(case).expect("history");
    assert_eq!(
        written.len(),
        heads_history.len(),
        "the server holds every change"
    );
    for entry in &heads_history {
        assert_eq!(
            written.get(&entry.hash).map(String::as_str),
            Some(entry.author.as_str()),
            "the server names each change's real author: {entry:?}"
        );
    }

    // The other two get it all on their next sync; the level disagreement is a conflict.
    for phone in [&mut zhang, &mut wang] {
        let report = phone.sync().await.expect("sync");
        assert!(report.refused.is_empty(), "{report:?}");
        assert_eq!(phone.descriptions(case), expected);
    }
    let conflicts = wang.store.conflicts(case).expect("conflicts");
    let level_conflict = conflicts
        .iter()
        .find(|c| c.path.last().map(String::as_str) == Some("level"))
        .expect("the level disagreement is a conflict");
    let mut writers: Vec<&str> = level_conflict
        .values
        .iter()
        .map(|v| v.written_by.as_str())
        .collect();
    writers.sort();
    assert_eq!(writers, ["wang", "zhang"]);
}

/// A day's work of two inspectors, recorded apart (each finding its own change), carried
/// by one of them to the third in one meeting: the third phone takes every change. The
/// two chains are concurrent, and judged one author's run at a time; taken in the order
/// they arrived they alternated, every change a run and a try of its own, and the tries
/// ran out after 64: the rest were held back and the meeting ended without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_carries_two_teammates_long_days_to_a_third_in_one_meeting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, mut phones) = team(dir.path()).await;
    let [mut zhang, mut li, mut wang] = [phones.remove(0), phones.remove(0), phones.remove(0)];
    let case = joint_case(&mut zhang);
    meet(&mut zhang, &mut li, case);
    meet(&mut li, &mut wang, case);
    let mut expected = Vec::new();
    for n in 0..45 {
        for (phone, who) in [(&mut zhang, "张"), (&mut wang, "王")] {
            let text = format!("{who}记录的第{n}处隐患");
            phone
                .store
                .add_finding(case, &sample::finding(&text))
                .expect("finding");
            expected.push(text);
        }
    }
    expected.sort();
    let (_, zhang_got) = meet(&mut wang, &mut zhang, case);
    assert!(zhang_got.refused.is_empty(), "{zhang_got:?}");
    assert_eq!(zhang.descriptions(case), expected);

    let (_, li_got) = meet(&mut zhang, &mut li, case);
    assert!(li_got.refused.is_empty(), "{:?}", li_got.refused);
    assert_eq!(li.descriptions(case), expected);
    assert_eq!(
        li.store.history(case).expect("li's").len(),
        zhang.store.history(case).expect("zhang's").len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_refuses_exactly_the_relayed_change_whose_signature_was_forged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, mut phones) = team(dir.path()).await;
    let [mut zhang, mut li, mut wang] = [phones.remove(0), phones.remove(0), phones.remove(0)];
    let case = joint_case(&mut zhang);
    zhang
        .store
        .add_finding(case, &sample::finding("储罐区可燃气体报警器故障"))
        .expect("finding");
    meet(&mut zhang, &mut li, case);
    li.store
        .add_finding(case, &sample::finding("消防水池无水"))
        .expect("li's finding");
    // Zhang records once more after they parted, and they meet again: Li holds a change
    // of Zhang's that nothing of Li's builds on.
    zhang
        .store
        .add_finding(case, &sample::finding("配电箱未接地"))
        .expect("finding");
    let heads = zhang.store.heads(case).expect("heads");
    assert_eq!(heads.len(), 1);
    let forged = heads[0].clone();
    meet(&mut zhang, &mut li, case);

    // Li's phone is hostile: it rewrites the signature it keeps of that change.
    let conn = rusqlite::Connection::open(dir.path().join("li.db")).expect("li's store");
    let changed = conn
        .execute(
            "UPDATE change_signatures SET signature = ?2 WHERE change_hash = ?1",
            rusqlite::params![forged, [7u8; 64].as_slice()],
        )
        .expect("tamper");
    assert_eq!(changed, 1);
    drop(conn);

    let (_, wang_got) = meet(&mut li, &mut wang, case);
    assert_eq!(
        wang_got.refused.len(),
        1,
        "one refusal, of one change: {wang_got:?}"
    );
    let (refusal, hashes) = &wang_got.refused[0];
    assert_eq!(refusal.rule, Rule::Relay, "{refusal:?}");
    assert_eq!(hashes, &[forged]);
    assert_eq!(
        wang.descriptions(case),
        ["储罐区可燃气体报警器故障", "消防水池无水"],
        "everything but the forged change is taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_holds_back_changes_whose_signer_it_cannot_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let mut zhang =
        Inspector::sign_in(dir.path(), &server.url(), "zhang", "应急管理", "310101").await;
    // Li's phone never signed in to any server: it trusts no certificate.
    let identity = anjian_core::Identity {
        user_id: "li".into(),
        name: "li的姓名".into(),
        department: "消防".into(),
        district: "310104".parse().expect("district"),
        role: Role::Inspector,
    };
    let mut li = anjian_core::Store::open(dir.path().join("li.db"), identity).expect("store");
    let case = joint_case(&mut zhang);
    let mut at_zhang = zhang.store.peer_session(case);
    let mut at_li = li.peer_session(case);
    let mut held = 0;
    for _ in 0..6 {
        if let Some(m) = zhang.store.peer_message(&mut at_zhang).expect("message") {
            let got = li.peer_receive(&mut at_li, &m).expect("receive");
            assert_eq!(got.accepted, 0, "{got:?}");
            held += got.waiting();
        }
        if let Some(m) = li.peer_message(&mut at_li).expect("message") {
            zhang
                .store
                .peer_receive(&mut at_zhang, &m)
                .expect("receive");
        }
    }
    assert!(held > 0, "the changes wait for a verifiable certificate");
    assert!(li.case(case).is_err(), "nothing of the case was taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_s_decision_signed_by_the_server_is_verified_on_site_and_every_change_has_a_receipt()
 {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    add_user(&data, "outsider", Role::Inspector, "310109", "应急管理");
    let (server, mut phones) = team(dir.path()).await;
    let [mut zhang, mut li] = [phones.remove(0), phones.remove(0)];
    let url = server.url();
    let case = joint_case(&mut zhang);
    zhang
        .store
        .review(case, anjian_core::ReviewAction::Submit, "")
        .expect("submit");
    zhang.sync().await.expect("zhang syncs");

    // The supervisor returns the case on the server; Zhang's phone receives the decision,
    // the server's receipts of every change and the certificates of their writers.
    let chief = anjian_tests::login_token(&url, "chief").await;
    let answer = reqwest::Client::new()
        .post(format!("{url}/api/v1/cases/{case}/review"))
        .bearer_auth(&chief)
        .json(&serde_json::json!({"action": "return", "text": "请补充整改期限"}))
        .send()
        .await
        .expect("review");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
    let report = zhang.sync().await.expect("zhang syncs again");
    assert!(report.receipts > 0, "{report:?}");

    let storage = Storage::open(&anjian_sync_server::testing::database(&server.data))
        .expect("server database");
    let server_key = anjian_core::signing::Signer::public_key(storage.server_key());
    let history = zhang.store.history(case).expect("history");
    let receipts = zhang.store.receipts(case).expect("receipts");
    assert_eq!(
        receipts.len(),
        history.len(),
        "a receipt of every change, the supervisor's included"
    );
    for receipt in &receipts {
        receipt.verify(&server_key).expect("the server signed it");
        assert!(history.iter().any(|h| h.hash == receipt.hash.to_string()));
    }

    // The proofs of a case are answered only to those who may sync it.
    let proofs = |token: String| {
        let url = url.clone();
        async move {
            let body = serde_json::json!({"cases": [case.to_string(), "不是案件"]});
            let answer = post_proofs(&url, &token, &body).await;
            answer["cases"].as_array().map(Vec::len)
        }
    };
    assert_eq!(proofs(zhang.token.clone()).await, Some(1));
    assert_eq!(
        proofs(anjian_tests::login_token(&url, "outsider").await).await,
        Some(0)
    );

    // On site Li, who never synced the case, receives it from Zhang: the supervisor's
    // decision verifies against the certificate of the supervisor's server-side actor.
    let (_, li_got) = meet(&mut zhang, &mut li, case);
    assert!(li_got.refused.is_empty(), "{li_got:?}");
    assert_eq!(
        li.store.case(case).expect("case").state,
        anjian_core::ReviewState::Returned
    );
    assert_eq!(
        li.store.heads(case).expect("heads"),
        zhang.store.heads(case).expect("heads")
    );
}

/// `POST /api/v1/proofs` with `body`, as `token`: the answer.
async fn post_proofs(url: &str, token: &str, body: &serde_json::Value) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{url}/api/v1/proofs"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("proofs")
        .json()
        .await
        .expect("json")
}

/// The server answers a case's receipts a page at a time (`receipts_per_proofs_answer`),
/// each from the last receipt given, a case asked twice once: the phone follows the pages
/// and keeps a receipt of every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_s_receipts_come_a_page_at_a_time_and_all_reach_the_phone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    let page = 1;
    let server = TestServer::start_with(anjian_sync_server::Settings {
        data,
        limits: anjian_sync_server::config::Limits {
            receipts_per_proofs_answer: page,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let url = server.url();
    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    // Two cases: the second waits for room in the answers the first fills.
    let cases = [zhang.open_sample_case(9), zhang.open_sample_case(10)];
    for case in cases {
        for title in ["配电箱无防护", "安全出口堵塞", "灭火器过期"] {
            zhang
                .store
                .add_finding(case, &sample::finding(title))
                .expect("finding");
        }
    }
    zhang.sync().await.expect("sync");
    for case in cases {
        let history = zhang.store.history(case).expect("history");
        assert!(history.len() > 2 * page, "{}", history.len());
        let receipts = zhang.store.receipts(case).expect("receipts");
        assert_eq!(receipts.len(), history.len(), "a receipt of every change");
    }
    let case = cases[0];
    let history = zhang.store.history(case).expect("history");

    // Page by page, as the phone asked.
    let mut after = serde_json::json!({});
    let mut hashes = Vec::new();
    loop {
        let body = serde_json::json!({
            "cases": [case.to_string(), case.to_string()],
            "after": after,
        });
        let answer = post_proofs(&url, &zhang.token, &body).await;
        let cases = answer["cases"].as_array().expect("cases");
        assert_eq!(cases.len(), 1, "a case asked twice is answered once");
        let got = cases[0]["receipts"].as_array().expect("receipts");
        assert!(got.len() <= page && !got.is_empty(), "{answer}");
        assert!(
            !answer["certificates"]
                .as_array()
                .expect("certificates")
                .is_empty()
        );
        hashes.extend(got.iter().map(|r| r["change_hash"].clone()));
        if cases[0]["more"] == false {
            break;
        }
        let last = got.last().expect("a receipt");
        after = serde_json::json!({ case.to_string(): {
            "received_at": last["received_at"], "change_hash": last["change_hash"],
        }});
    }
    let distinct: std::collections::BTreeSet<String> = hashes
        .iter()
        .map(|h| h.as_str().expect("hex").to_owned())
        .collect();
    assert_eq!(hashes.len(), history.len(), "each once");
    assert_eq!(
        distinct,
        history.iter().map(|h| h.hash.clone()).collect(),
        "every change's"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_device_signs_in_with_the_server_s_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, phones) = team(dir.path()).await;
    // A phone signs in again at once (a second certificate the same second) and keeps its
    // certificate.
    for _ in 0..2 {
        phones[0]
            .store
            .login(&server.url(), "zhang", anjian_tests::PASSWORD, "测试手机")
            .await
            .expect("signs in again");
    }
    let login = |public_key: Option<String>| {
        let mut body = serde_json::json!({
            "username": "zhang", "password": anjian_tests::PASSWORD,
            "device_name": "仿冒设备", "actor_id": uuid::Uuid::new_v4().simple().to_string(),
        });
        if let Some(key) = public_key {
            body["key_algorithm"] = "ed25519".into();
            body["public_key"] = key.into();
        }
        reqwest::Client::new()
            .post(format!("{}/api/v1/login", server.url()))
            .json(&body)
            .send()
    };
    let answer: serde_json::Value = login(None)
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let server_key = answer["server_key"].as_str().expect("the server's key");
    assert!(
        answer.get("certificate").is_none(),
        "no key, no certificate"
    );
    let taken = login(Some(server_key.to_owned())).await.expect("login");
    assert_eq!(taken.status().as_u16(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_takes_no_case_its_inspector_may_not_read_and_no_oversized_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "outsider", Role::Inspector, "310109", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let mut outsider = Inspector::sign_in(dir.path(), &url, "outsider", "应急管理", "310109").await;
    // A routine case of 黄浦区, not shared with 虹口区: both phones hold valid certificates.
    let case = zhang.open_sample_case(4);
    let mut at_zhang = zhang.store.peer_session(case);
    let mut at_outsider = outsider.store.peer_session(case);
    let mut refused = 0;
    for _ in 0..6 {
        if let Some(message) = zhang.store.peer_message(&mut at_zhang).expect("message") {
            match outsider.store.peer_receive(&mut at_outsider, &message) {
                Err(anjian_core::Error::NotAllowed(reason)) => {
                    assert!(reason.contains("辖区"), "{reason}");
                    refused += 1;
                }
                other => assert!(matches!(&other, Ok(got) if got.accepted == 0), "{other:?}"),
            }
        }
        if let Some(message) = outsider
            .store
            .peer_message(&mut at_outsider)
            .expect("message")
        {
            zhang
                .store
                .peer_receive(&mut at_zhang, &message)
                .expect("zhang takes the answer");
        }
    }
    assert!(refused > 0, "the case was offered and refused");
    assert!(outsider.store.case(case).is_err(), "nothing of it was kept");

    // A message whose certificate is oversized is refused before anything of it is read.
    let mut huge = Vec::new();
    let mut e = minicbor::Encoder::new(&mut huge);
    e.map(5).expect("cbor");
    e.str("format")
        .expect("cbor")
        .str(anjian_core::PEER_FORMAT)
        .expect("cbor");
    e.str("case")
        .expect("cbor")
        .str(&case.to_string())
        .expect("cbor");
    e.str("sync").expect("cbor").bytes(&[]).expect("cbor");
    e.str("signatures").expect("cbor").bytes(&[]).expect("cbor");
    e.str("certificates").expect("cbor").array(1).expect("cbor");
    e.bytes(&vec![0u8; 1 << 20]).expect("cbor");
    let answer = zhang
        .store
        .peer_receive(&mut zhang.store.peer_session(case), &huge);
    assert!(
        matches!(&answer, Err(anjian_core::Error::InvalidDocument(why)) if why.contains("certificate of")),
        "{answer:?}"
    );

    // A message past the bound is refused before any of it is read, and so is one with
    // anything after it.
    let mut past = huge.clone();
    past.resize(anjian_core::PEER_MESSAGE_BYTES + 1, 0);
    let answer = zhang
        .store
        .peer_receive(&mut zhang.store.peer_session(case), &past);
    assert!(
        matches!(&answer, Err(anjian_core::Error::InvalidDocument(why)) if why.contains("bytes, over")),
        "{answer:?}"
    );
    let mut trailing = zhang
        .store
        .peer_message(&mut zhang.store.peer_session(case))
        .expect("zhang's message")
        .expect("zhang has the case to offer");
    trailing.push(0);
    let answer = outsider
        .store
        .peer_receive(&mut outsider.store.peer_session(case), &trailing);
    assert!(
        matches!(&answer, Err(anjian_core::Error::InvalidDocument(why)) if why.contains("bytes after")),
        "{answer:?}"
    );
}
