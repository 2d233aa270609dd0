//! A hostile but signed-in client against a real server: every way of breaking the server
//! that was found by trying (issue "trust boundary"), each as a test. Decisions of shared
//! districts over sync, and district rewrites, are rows of the rule book's table
//! (`rulebook.rs`); a case that cannot be taken is here too, end to end.

use std::time::{Duration, Instant};

use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::WireMessage;
use anjian_core::{CaseId, FindingId, Role, sample};
use anjian_sync_server::Settings;
use anjian_sync_server::config::Limits;
use anjian_tests::hostile::{
    comment, compressed_bomb, copy_into, name_photo, png, png_rows, sync_message,
};
use anjian_tests::peer::{Next, RawPeer};
use anjian_tests::{Inspector, PASSWORD, TestServer, add_user, login_device, login_token, metric};
use automerge::AutoCommit;
use automerge::transaction::Transactable;
use serde_json::{Value, json};

/// A server with an inspector who has synced one case with one finding.
struct World {
    dir: tempfile::TempDir,
    server: TestServer,
    insp: Inspector,
    case: CaseId,
    finding: FindingId,
}

async fn world(users: &[(&str, Role, &str)], limits: Limits) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "insp", Role::Inspector, "310101", "应急管理");
    for (user, role, district) in users {
        add_user(&data, user, *role, district, "应急管理");
    }
    let server = TestServer::start_with(Settings {
        data,
        limits,
        ..Settings::default()
    })
    .await;
    let mut insp =
        Inspector::sign_in(dir.path(), &server.url(), "insp", "应急管理", "310101").await;
    let case = insp.open_sample_case(3);
    let finding = insp
        .store
        .add_finding(case, &sample::finding("配电室门口堆放杂物"))
        .expect("finding");
    let report = insp.sync().await.expect("sync");
    assert_eq!(report.refused.len(), 0, "{report:?}");
    World {
        dir,
        server,
        insp,
        case,
        finding,
    }
}

impl World {
    fn addr(&self) -> String {
        self.server.addr.to_string()
    }

    /// A raw device of `user`, bound at sign-in: its token, and the case's document with
    /// the device's actor.
    async fn device(&mut self, user: &str) -> (String, AutoCommit) {
        let actor = automerge::ActorId::random();
        let token = login_device(&self.server.url(), user, &actor.to_hex_string()).await;
        let bytes = self.insp.store.export_document(self.case).expect("export");
        let doc = AutoCommit::load(&bytes).expect("load").with_actor(actor);
        (token, doc)
    }

    /// Pushes `doc` as the case from a raw device signed in with `token`; the push must be
    /// refused by the rule `shape`: its reason.
    async fn refused_as_shape(&self, token: &str, doc: &mut AutoCommit) -> String {
        let mut peer = RawPeer::joined(&self.addr(), token).await;
        let pushed = peer.push(DocumentId::of(self.case), doc).await;
        let (rule, reason) = pushed.refused.expect("refused");
        assert_eq!(rule, "shape", "{reason}");
        reason
    }

    /// Writes the finding's place again and again from a raw device of the inspector, a
    /// value of `bytes` digits `i % 10` for the `i`-th of at most `most` changes, each
    /// pushed alone and acknowledged until one is refused: its index and refusal.
    async fn fill_place(&mut self, bytes: usize, most: usize) -> Option<(usize, (String, String))> {
        let (token, mut doc) = self.device("insp").await;
        let mut peer = RawPeer::joined(&self.addr(), &token).await;
        let ours = DocumentId::of(self.case);
        let finding = at_path(&doc, &["findings", &self.finding.to_string()]);
        for i in 0..most {
            doc.put(&finding, "place", (i % 10).to_string().repeat(bytes))
                .expect("put");
            doc.commit();
            let pushed = peer.push(ours, &mut doc).await;
            if let Some(refusal) = pushed.refused {
                return Some((i, refusal));
            }
            assert!(pushed.acknowledged, "{pushed:?}");
        }
        None
    }

    /// `count` distinct PNGs of `side` × `side` that a new raw device of the inspector's
    /// names as photos of the finding, synced: the device's token, the PNGs and their
    /// hashes.
    async fn named_pngs(&mut self, side: u32, count: u32) -> (String, Vec<Vec<u8>>, Vec<String>) {
        let (token, mut doc) = self.device("insp").await;
        let rows = png_rows(side, side);
        let pngs: Vec<Vec<u8>> = (0..count)
            .map(|seed| png(side, side, &rows, seed))
            .collect();
        let hashes: Vec<String> = pngs
            .iter()
            .map(|p| anjian_core::photo::sha256_hex(p))
            .collect();
        for sha256 in &hashes {
            name_photo(&mut doc, self.finding, sha256, "insp");
        }
        doc.commit();
        let mut peer = RawPeer::joined(&self.addr(), &token).await;
        assert!(
            peer.push(DocumentId::of(self.case), &mut doc)
                .await
                .acknowledged
        );
        (token, pngs, hashes)
    }

    /// Whether the server still serves: `/healthz`, and an honest inspector's sync.
    async fn still_serves(&mut self) {
        let health = reqwest::get(format!("{}/healthz", self.server.url()))
            .await
            .expect("healthz");
        assert!(health.status().is_success());
        self.insp
            .store
            .add_finding(self.case, &sample::finding("消防通道被占用"))
            .expect("finding");
        let report = self.insp.sync().await.expect("sync still works");
        assert!(
            report.refused.is_empty() && report.acknowledged >= 1,
            "{report:?}"
        );
    }
}

/// The value (an object, or the id of a scalar) at `path` from the root.
fn at_path(doc: &AutoCommit, path: &[&str]) -> automerge::ObjId {
    path.iter().fold(automerge::ROOT, |obj, key| {
        let (_, at) = automerge::ReadDoc::get(doc, &obj, *key)
            .expect("read")
            .expect("present");
        at
    })
}

fn error_of(next: Next) -> String {
    match next {
        Next::Message(WireMessage::Error { message }) => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bombs_and_whole_documents_are_refused_before_anything_expands() {
    let mut w = world(&[], Limits::default()).await;
    let (token, mut doc) = w.device("insp").await;
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    let ours = DocumentId::of(w.case);
    let unknown = DocumentId::of(CaseId::new());
    let wait = Duration::from_secs(20);

    // 256 MB of zeros in 256 KB: refused at the cap, for a document the sender may see
    // and for one the server does not have.
    let bomb = compressed_bomb(256 << 20);
    assert!(bomb.len() < 1 << 20, "a small frame: {}", bomb.len());
    for document in [ours, unknown] {
        peer.send_sync(document, sync_message(vec![bomb.clone()]))
            .await;
        let message = error_of(peer.next(wait).await);
        assert!(message.contains("uncompressed"), "{message}");
    }
    // The same bomb split across two entries of the message.
    let (a, b) = bomb.split_at(bomb.len() / 2);
    peer.send_sync(ours, sync_message(vec![a.to_vec(), b.to_vec()]))
        .await;
    assert!(error_of(peer.next(wait).await).contains("uncompressed"));
    // A whole document, and a bundle, where changes are expected.
    let saved = doc.save();
    peer.send_sync(ours, sync_message(vec![saved.clone()]))
        .await;
    assert!(error_of(peer.next(wait).await).contains("whole-document"));
    let mut bundle = saved;
    bundle[8] = 3;
    peer.send_sync(ours, sync_message(vec![bundle])).await;
    assert!(error_of(peer.next(wait).await).contains("bundle"));

    // A legitimate change still goes through on the same connection.
    comment(&mut doc, "insp", "现场照片已补充");
    let pushed = peer.push(ours, &mut doc).await;
    assert!(pushed.acknowledged, "{pushed:?}");
    w.still_serves().await;
    w.server.stop().await;
}

/// A device writing values of the largest size again and again into its own case is
/// stopped at the case's bytes (`case_bytes`): the change that would pass them is refused
/// for good, with its reason (open a linked case), and what was accepted before stays and
/// is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_grown_by_large_values_again_and_again_stops_at_its_bytes() {
    let limits = Limits {
        case_bytes: 512 * 1024,
        ..Limits::default()
    };
    let mut w = world(&[], limits).await;
    let (at, (rule, reason)) = w
        .fill_place(anjian_core::rules::MAX_VALUE_BYTES, 16)
        .await
        .expect("refused before 16 values of 64 KiB");
    assert_eq!(rule, "shape", "{reason}");
    assert!(reason.contains("案件记录过大"), "{reason}");
    assert!((5..8).contains(&at), "refused at value {at}");
    // What was accepted is served.
    let token = login_token(&w.server.url(), "insp").await;
    let case = anjian_tests::get_json(
        &format!("{}/api/v1/cases/{}", w.server.url(), w.case),
        &token,
    )
    .await;
    let place = case["findings"][0]["place"].as_str().unwrap_or_default();
    assert_eq!(
        place,
        ((at - 1) % 10)
            .to_string()
            .repeat(anjian_core::rules::MAX_VALUE_BYTES)
    );
    // The room left takes an inspector's finding still.
    w.still_serves().await;
    w.server.stop().await;
}

/// A case's writers fill it only to all but a sixteenth of its bytes: an inspector pushing
/// large values is refused there, and the case's supervisor still comments (and so
/// approves and closes) in the room kept for those who decide it. The server's own changes
/// are held to the same rooms: an inspector's comment through the API past the writers'
/// room is refused, and so is a supervisor's past the whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_filled_by_its_writers_still_takes_its_supervisor_s_decisions() {
    let case_bytes = 256 * 1024;
    let limits = Limits {
        case_bytes,
        ..Limits::default()
    };
    let mut w = world(&[("chief", Role::Supervisor, "310101")], limits).await;
    let (at, (rule, reason)) = w
        .fill_place(48 * 1024, 8)
        .await
        .expect("refused before 8 values of 48 KiB");
    assert_eq!(rule, "shape", "{reason}");
    assert!(
        reason.contains(&format!("上限 {} 字节", case_bytes - case_bytes / 16)),
        "{reason}"
    );
    assert_eq!(
        at, 4,
        "four values and the case fit the writers' room, five do not"
    );

    let url = w.server.url();
    let comment = |user: &'static str, text: String| {
        let url = url.clone();
        let case = w.case;
        async move {
            let token = login_token(&url, user).await;
            let response = reqwest::Client::new()
                .post(format!("{url}/api/v1/cases/{case}/review"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "action": "comment", "text": text }))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body)
        }
    };
    let (status, body) = comment("chief", "意".repeat(3 * 1024)).await;
    assert_eq!(
        status, 200,
        "the supervisor comments in the room kept: {body}"
    );
    for user in ["insp", "chief"] {
        let (status, body) = comment(user, "意".repeat(20 * 1024)).await;
        assert_eq!(status, 403, "{user}: {body}");
        assert!(body.to_string().contains("案件记录过大"), "{user}: {body}");
    }
    let chief = login_token(&url, "chief").await;
    let case = anjian_tests::get_json(&format!("{url}/api/v1/cases/{}", w.case), &chief).await;
    let comments = case["review_events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "comment")
        .count();
    assert_eq!(comments, 1, "only the comment that fit was written");
    w.server.stop().await;
}

/// An attached checklist is evidence: a colleague's device deleting it is refused, and
/// the inspector who attached it keeps it after syncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_s_device_cannot_delete_an_attached_checklist() {
    let mut w = world(&[("mate", Role::Inspector, "310101")], Limits::default()).await;
    let checklist = w
        .insp
        .store
        .attach_checklist(w.case, "hot-work")
        .expect("attach");
    let report = w.insp.sync().await.expect("sync");
    assert!(report.refused.is_empty(), "{report:?}");
    let (token, mut doc) = w.device("mate").await;
    let checklists = at_path(&doc, &["checklists"]);
    doc.delete(&checklists, checklist.to_string())
        .expect("delete");
    doc.commit();
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    let pushed = peer.push(DocumentId::of(w.case), &mut doc).await;
    let (rule, reason) = pushed.refused.expect("refused");
    assert_eq!(rule, "evidence", "{reason}");
    assert!(reason.contains("检查表"), "{reason}");
    w.insp.sync().await.expect("sync");
    let case = w.insp.store.case(w.case).expect("case");
    assert_eq!(
        case.checklists.iter().map(|c| c.id).collect::<Vec<_>>(),
        [checklist]
    );
    w.still_serves().await;
    w.server.stop().await;
}

/// Commits a change nesting maps 1,000 deep under the root of `doc`.
fn nest_maps_deep(doc: &mut AutoCommit) {
    let mut obj = automerge::ROOT;
    for _ in 0..1_000 {
        obj = doc
            .put_object(&obj, "x", automerge::ObjType::Map)
            .expect("put");
    }
    doc.commit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_nesting_maps_deep_in_the_senders_own_case_is_refused() {
    let mut w = world(&[], Limits::default()).await;
    let (token, mut doc) = w.device("insp").await;
    nest_maps_deep(&mut doc);
    let reason = w.refused_as_shape(&token, &mut doc).await;
    assert!(reason.contains("levels deep"), "{reason}");
    w.still_serves().await;
    w.server.stop().await;
}

/// A message refused as a whole (over a limit of the wire) says nothing of who wrote the
/// changes it carried: a teammate who carries an inspector's change inside one cannot
/// have it refused for good, and the inspector's own phone delivers it after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_refused_whole_refuses_none_of_its_changes_for_good() {
    let mut w = world(&[("mate", Role::Inspector, "310101")], Limits::default()).await;
    w.insp
        .store
        .add_finding(w.case, &sample::finding("消防栓被遮挡"))
        .expect("finding");
    // The teammate got the case with that finding from the inspector's phone on site.
    let (token, mut doc) = w.device("mate").await;
    nest_maps_deep(&mut doc);
    let reason = w.refused_as_shape(&token, &mut doc).await;
    assert!(reason.contains("levels deep"), "{reason}");
    let report = w.insp.sync().await.expect("sync");
    assert!(
        report.refused.is_empty() && report.acknowledged >= 1,
        "{report:?}"
    );
    w.server.stop().await;
}

/// A teammate who carries an inspector's changes without their signatures has the first
/// refused as a relay, and those built on it for building on a refused change: neither
/// refusal is the author's, and neither stands when the inspector's own phone delivers
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_carried_unsigned_by_a_teammate_are_not_refused_for_good() {
    let mut w = world(&[("mate", Role::Inspector, "310101")], Limits::default()).await;
    for text in ["消防栓被遮挡", "灭火器过期"] {
        w.insp
            .store
            .add_finding(w.case, &sample::finding(text))
            .expect("finding");
    }
    // The teammate got both findings from the inspector's phone on site, and sends them
    // from its own socket without their signatures.
    let (token, mut doc) = w.device("mate").await;
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    let pushed = peer.push(DocumentId::of(w.case), &mut doc).await;
    assert!(pushed.refused.is_some(), "{pushed:?}");
    let report = w
        .insp
        .sync()
        .await
        .expect("the inspector's own sync goes through");
    assert!(report.refused.is_empty(), "{report:?}");
    let token = login_token(&w.server.url(), "insp").await;
    let case = anjian_tests::get_json(
        &format!("{}/api/v1/cases/{}", w.server.url(), w.case),
        &token,
    )
    .await;
    assert_eq!(case["findings"].as_array().map(Vec::len), Some(3), "{case}");
    w.server.stop().await;
}

/// From a new device of the inspector's (so that no refusal is met again) with the case as
/// the server has it, one message of two changes: the finding's place, honest, then the
/// case's district, refused.
async fn place_and_district(w: &mut World, place: &str) -> anjian_tests::peer::Pushed {
    w.insp.sync().await.expect("sync");
    let (token, mut doc) = w.device("insp").await;
    let finding = at_path(&doc, &["findings", &w.finding.to_string()]);
    doc.put(&finding, "place", place).expect("put");
    doc.commit();
    doc.put(automerge::ROOT, "district", "310104").expect("put");
    doc.commit();
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    peer.push(DocumentId::of(w.case), &mut doc).await
}

/// The finding's place, as the server's API reads it.
async fn place_of(w: &World) -> Value {
    let url = w.server.url();
    let token = login_token(&url, "insp").await;
    let case = anjian_tests::get_json(&format!("{url}/api/v1/cases/{}", w.case), &token).await;
    let findings = case["findings"].as_array().expect("findings");
    let ours = findings.iter().find(|f| f["id"] == w.finding.to_string());
    ours.expect("the finding")["place"].clone()
}

/// A device that sends change after change made to be refused has each refusal kept (so
/// that it is final) only up to its account's bound: past it, its changes are refused all
/// the same and not kept, and the rest of each message is committed; an administrator's
/// clearing lets refusals be kept again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_kept_of_one_account_stop_at_its_bound() {
    let limits = Limits {
        refusals_per_user: 2,
        ..Limits::default()
    };
    let mut w = world(&[], limits).await;
    let storage = anjian_sync_server::storage::Storage::open(
        &anjian_sync_server::testing::database(&w.server.data),
    )
    .expect("storage");
    let insp = storage.user("insp").expect("insp").id;
    let kept = || {
        storage
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM refused_changes WHERE user_id = ?1",
                    anjian_sync_server::params![insp],
                    |r| r.get::<i64>(0),
                )
            })
            .expect("count")
    };
    for (i, text) in ["一号车间", "二号车间", "三号车间"].into_iter().enumerate() {
        let pushed = place_and_district(&mut w, text).await;
        let (rule, reason) = pushed.refused.expect("refused");
        assert_eq!(rule, "fixed", "{reason}");
        assert_eq!(place_of(&w).await, text, "the honest change is committed");
        assert_eq!(kept(), (i as i64 + 1).min(2));
    }
    w.still_serves().await;

    assert_eq!(storage.clear_refusals("insp").expect("cleared"), 2);
    assert_eq!(kept(), 0);
    let pushed = place_and_district(&mut w, "四号车间").await;
    assert_eq!(pushed.refused.expect("refused").0, "fixed");
    assert_eq!(kept(), 1);
    w.server.stop().await;
}

/// A teammate given the ids of an inspector's new finding and new case on site cannot
/// make records of their own under them first (each would have the inspector's honest
/// record refused as replacing it): each is refused, and the inspector's records then
/// reach the server whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teammate_cannot_take_the_ids_of_an_inspector_s_records_first() {
    let mut w = world(&[("mate", Role::Inspector, "310101")], Limits::default()).await;
    // The teammate's device holds the case as synced; offline, the inspector records a
    // finding and opens a new case, and the teammate sees both on site.
    let (token, doc) = w.device("mate").await;
    let finding = w
        .insp
        .store
        .add_finding(w.case, &sample::finding("储罐区无静电接地"))
        .expect("finding");
    let opened = w.insp.open_sample_case(4);
    let [theirs, new_case] = [w.case, opened].map(|case| {
        AutoCommit::load(&w.insp.store.export_document(case).expect("export")).expect("load")
    });
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    let taken = |pushed: anjian_tests::peer::Pushed, expected: &str| {
        let (rule, reason) = pushed.refused.expect("refused");
        assert_eq!(rule, expected, "{reason}");
        if expected == "attribution" {
            assert!(reason.contains("另一台设备"), "{reason}");
        }
    };

    // A finding of the teammate's own under the inspector's finding's id, and under the
    // same id written otherwise (which every reader takes for the same id).
    let id = finding.to_string();
    for (key, rule) in [(id.clone(), "attribution"), (format!("{id} "), "shape")] {
        let mut doc = doc.clone();
        let into = at_path(&doc, &["findings"]);
        let made = doc
            .put_object(&into, &key, automerge::ObjType::Map)
            .expect("put");
        copy_into(
            &theirs,
            &at_path(&theirs, &["findings", &id]),
            &mut doc,
            &made,
        );
        doc.put(&made, "recorded_by", "mate").expect("put");
        doc.commit();
        taken(peer.push(DocumentId::of(w.case), &mut doc).await, rule);
    }

    // A case of the teammate's own under the inspector's new case's id, so written and
    // written otherwise.
    for (written, rule) in [
        (opened.to_string(), "attribution"),
        (format!(" {opened}"), "shape"),
    ] {
        let mut squat = AutoCommit::new().with_actor(doc.get_actor().clone());
        copy_into(&new_case, &automerge::ROOT, &mut squat, &automerge::ROOT);
        squat
            .put(automerge::ROOT, "opened_by", "mate")
            .expect("put");
        squat.put(automerge::ROOT, "case_id", written).expect("put");
        squat.commit();
        taken(peer.push(DocumentId::of(opened), &mut squat).await, rule);
    }

    let report = w.insp.sync().await.expect("sync");
    assert!(report.refused.is_empty(), "{report:?}");
    let url = w.server.url();
    let token = login_token(&url, "insp").await;
    let case = anjian_tests::get_json(&format!("{url}/api/v1/cases/{}", w.case), &token).await;
    let findings = case["findings"].as_array().expect("findings");
    assert!(
        findings
            .iter()
            .any(|f| f["id"] == id && f["recorded_by"] == "insp"),
        "{case}"
    );
    let case = anjian_tests::get_json(&format!("{url}/api/v1/cases/{opened}"), &token).await;
    assert_eq!(case["opened_by"], "insp", "{case}");
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_district_cannot_take_a_case() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "insp", Role::Inspector, "310101", "应急管理");
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    add_user(&data, "taker", Role::Inspector, "310104", "应急管理");
    add_user(&data, "taker_chief", Role::Supervisor, "310104", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut insp = Inspector::sign_in(dir.path(), &url, "insp", "应急管理", "310101").await;
    let enterprise = sample::enterprise(4);
    insp.store
        .register_enterprise(&enterprise)
        .expect("register");
    let case = insp
        .store
        .open_case(&anjian_core::NewCase {
            visible_to: vec!["310104".parse().expect("district")],
            ..sample::new_case(&enterprise)
        })
        .expect("case");
    insp.sync().await.expect("sync");

    // The shared district's inspector rewrites the owner and the sharing over sync.
    let actor = automerge::ActorId::random();
    let token = login_device(&url, "taker", &actor.to_hex_string()).await;
    let mut doc = AutoCommit::load(&insp.store.export_document(case).expect("export"))
        .expect("load")
        .with_actor(actor);
    doc.put(automerge::ROOT, "district", "310104").expect("put");
    let list = match automerge::ReadDoc::get(&doc, automerge::ROOT, "visible_to").expect("read") {
        Some((_, id)) => id,
        None => panic!("visible_to"),
    };
    doc.delete(&list, 0).expect("delete");
    doc.commit();
    let mut peer = RawPeer::joined(&server.addr.to_string(), &token).await;
    let pushed = peer.push(DocumentId::of(case), &mut doc).await;
    assert_eq!(
        pushed.refused.as_ref().map(|(rule, _)| rule.as_str()),
        Some("fixed"),
        "{pushed:?}"
    );

    // The owning district still has it; the taker's supervisor still does not decide it.
    let get = |user: &'static str| {
        let url = url.clone();
        async move {
            let token = login_token(&url, user).await;
            reqwest::Client::new()
                .get(format!("{url}/api/v1/cases/{case}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let owned = get("chief").await;
    assert_eq!(owned["district"], "310101", "{owned}");
    assert_eq!(owned["visible_to"], json!(["310104"]));
    let token = login_token(&url, "taker_chief").await;
    let approve = reqwest::Client::new()
        .post(format!("{url}/api/v1/cases/{case}/review"))
        .bearer_auth(token)
        .json(&json!({ "action": "approve", "text": "" }))
        .send()
        .await
        .expect("request");
    assert_eq!(approve.status().as_u16(), 403);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_closes_open_sockets_and_refuses_every_later_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    let ways = ["disable", "reset", "device", "token", "expiry"];
    for way in ways {
        add_user(&data, way, Role::Inspector, "310101", "应急管理");
    }
    let server = TestServer::start(&data).await;
    let url = server.url();
    // What the CLI does, from a connection of its own to the same database.
    let cli = anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(&data))
        .expect("database");
    for way in ways {
        let mut device = Inspector::sign_in(dir.path(), &url, way, "应急管理", "310101").await;
        let case = device.open_sample_case(5);
        device.sync().await.expect("sync");
        let actor = automerge::ActorId::random();
        let token = login_device(&url, way, &actor.to_hex_string()).await;
        let hash = anjian_sync_server::users::token_hash(&token);
        if way == "expiry" {
            let soon = chrono::Utc::now().timestamp() + 2;
            cli.write(|conn| {
                conn.execute(
                    "UPDATE tokens SET expires_at = ?1 WHERE token_hash = ?2",
                    anjian_sync_server::params![soon, hash],
                )?;
                Ok(())
            })
            .expect("expire soon");
        }
        let mut peer = RawPeer::joined(&server.addr.to_string(), &token).await;
        let mut doc = AutoCommit::load(&device.store.export_document(case).expect("export"))
            .expect("load")
            .with_actor(actor.clone());
        assert!(peer.push(DocumentId::of(case), &mut doc).await.acknowledged);
        let started = Instant::now();
        match way {
            "disable" => cli.set_disabled(way, true).expect("disable"),
            "reset" => cli
                .reset_password(way, "另一个足够长的密码")
                .expect("reset"),
            "device" => cli.revoke_device(&actor.to_hex_string()).expect("revoke"),
            "token" => {
                let id = cli
                    .tokens(Some(way))
                    .expect("tokens")
                    .into_iter()
                    .find(|t| hash.starts_with(&t.id))
                    .expect("listed")
                    .id;
                cli.revoke_token(&id).expect("revoke")
            }
            _ => {}
        }
        let reason = error_of(peer.next(Duration::from_secs(10)).await);
        assert!(
            reason.contains("重新登录"),
            "{way}: the socket is told why: {reason}"
        );
        assert!(
            matches!(peer.next(Duration::from_secs(5)).await, Next::Closed),
            "{way}"
        );
        eprintln!("{way}: closed after {:?}", started.elapsed());
        // A later connection with the same token gets nothing but an error.
        let mut again = RawPeer::connect(&server.addr.to_string(), &token).await;
        assert!(error_of(again.next(Duration::from_secs(5)).await).contains("sign in again"));
        let status = reqwest::Client::new()
            .get(format!("{url}/api/v1/catalog"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status.as_u16(), 401, "{way}");
    }
    server.stop().await;
}

/// Revocation reaches the record, not only the socket: a message that comes after an
/// account, a device or a token is revoked, before the server has noticed and closed the
/// socket (it looks every quarter of a second), commits nothing: the token is checked
/// again in the commit's own transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_reaches_the_record_once_a_revocation_has_committed() {
    for way in ["disable", "device", "token"] {
        let mut w = world(&[], Limits::default()).await;
        let (token, mut doc) = w.device("insp").await;
        let mut peer = RawPeer::joined(&w.addr(), &token).await;
        assert!(
            peer.push(DocumentId::of(w.case), &mut doc)
                .await
                .acknowledged
        );
        // What the CLI does, from a connection of its own to the same database.
        let cli = anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(
            &w.server.data,
        ))
        .expect("database");
        match way {
            "disable" => cli.set_disabled("insp", true).expect("disable"),
            "device" => cli
                .revoke_device(&doc.get_actor().to_hex_string())
                .expect("revoke"),
            _ => {
                let hash = anjian_sync_server::users::token_hash(&token);
                let id = cli
                    .tokens(Some("insp"))
                    .expect("tokens")
                    .into_iter()
                    .find(|t| hash.starts_with(&t.id))
                    .expect("listed")
                    .id;
                cli.revoke_token(&id).expect("revoke");
            }
        }
        comment(&mut doc, "insp", "吊销之后发出的批注");
        let late = doc.get_heads();
        let pushed = peer.push(DocumentId::of(w.case), &mut doc).await;
        assert!(!pushed.acknowledged, "{way}: {pushed:?}");
        let mut stored = cli.load_document(w.case).expect("load").expect("stored");
        assert!(
            late.iter().all(|h| stored.get_change_by_hash(h).is_none()),
            "{way}: a change sent after the revocation was committed"
        );
        w.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_cannot_claim_the_supervisors_server_actors() {
    let mut w = world(&[("chief", Role::Supervisor, "310101")], Limits::default()).await;
    let url = w.server.url();
    // Before, the server actor of user N was SHA-256(storage id, N): an inspector who heard
    // the storage id in the `peer` message bound those ids first.
    let (token, _) = w.device("insp").await;
    let peer = RawPeer::joined(&w.addr(), &token).await;
    let storage_id = peer.server_storage_id.clone().expect("announced");
    for user_id in 1..=5 {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("anjian-server-actor\0{storage_id}\0{user_id}"));
        login_device(&url, "insp", &hex(&digest[..16])).await;
    }
    // The supervisor's review action works all the same.
    let chief = login_token(&url, "chief").await;
    let comment = reqwest::Client::new()
        .post(format!("{url}/api/v1/cases/{}/review", w.case))
        .bearer_auth(&chief)
        .json(&json!({ "action": "comment", "text": "请补充照片" }))
        .send()
        .await
        .expect("request");
    assert_eq!(comment.status().as_u16(), 200);
    // The inspector reads the supervisor's server actor from the history, and cannot bind it.
    let case = anjian_tests::get_json(&format!("{url}/api/v1/cases/{}", w.case), &chief).await;
    let server_actor = case["history"]
        .as_array()
        .expect("history")
        .iter()
        .find(|h| h["author"] == "chief")
        .and_then(|h| h["device"].as_str())
        .expect("the supervisor's change")
        .to_owned();
    let refused = reqwest::Client::new()
        .post(format!("{url}/api/v1/login"))
        .json(&json!({
            "username": "insp", "password": PASSWORD,
            "device_name": "冒充", "actor_id": server_actor,
        }))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status().as_u16(), 409);
    w.still_serves().await;
    w.server.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `PATCH`es `bytes` at `offset` of an upload of `length` bytes.
async fn patch(
    url: &str,
    token: &str,
    sha256: &str,
    offset: u64,
    length: u64,
    bytes: Vec<u8>,
) -> u16 {
    reqwest::Client::new()
        .patch(format!("{url}/api/v1/blobs/{sha256}"))
        .bearer_auth(token)
        .header("upload-offset", offset)
        .header("upload-length", length)
        .body(bytes)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn held(url: &str, token: &str, sha256: &str) -> u64 {
    reqwest::Client::new()
        .head(format!("{url}/api/v1/blobs/{sha256}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("an offset")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_uploads_count_against_a_quota_and_expire() {
    let quota = Limits {
        parked_bytes_per_user: 1024 * 1024,
        ..Limits::default()
    };
    let mut w = world(&[], quota.clone()).await;
    let (token, mut doc) = w.device("insp").await;
    let hashes: Vec<String> = (0..3).map(|i| format!("{i:064x}")).collect();
    for sha256 in &hashes {
        name_photo(&mut doc, w.finding, sha256, "insp");
    }
    doc.commit();
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    assert!(
        peer.push(DocumentId::of(w.case), &mut doc)
            .await
            .acknowledged
    );
    let url = w.server.url();
    let part = vec![7u8; 600 * 1024];
    let whole = 30 * 1024 * 1024;
    assert_eq!(
        patch(&url, &token, &hashes[0], 0, whole, part.clone()).await,
        204
    );
    assert_eq!(
        patch(&url, &token, &hashes[1], 0, whole, part.clone()).await,
        413,
        "over the quota of parked bytes"
    );
    assert_eq!(held(&url, &token, &hashes[1]).await, 0, "nothing was kept");

    // A day later (here: a server whose uploads expire at once) the parked bytes are gone
    // and the quota is free again.
    let data = w.server.data.clone();
    w.server.stop().await;
    let server = TestServer::start_with(Settings {
        data,
        limits: Limits {
            upload_hours: 0,
            ..quota
        },
        ..Settings::default()
    })
    .await;
    let url = server.url();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held(&url, &token, &hashes[0]).await > 0 {
        assert!(Instant::now() < deadline, "the expired upload is swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(patch(&url, &token, &hashes[1], 0, whole, part).await, 204);
    let parked: Vec<String> =
        anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(&server.data))
            .expect("db")
            .read(|c| {
                c.query_map(
                    "SELECT DISTINCT sha256 FROM upload_parts ORDER BY sha256",
                    &[],
                    |r| r.get(0),
                )
            })
            .expect("parts");
    assert_eq!(
        parked,
        vec![hashes[1].clone()],
        "only the new upload is parked"
    );
    drop(w.dir);
    server.stop().await;
}

/// A device may name any blobs in its own case and upload them: what its account's
/// uploads store within 24 hours is bounded, the next upload refused before its body is
/// read (`429`, nothing kept), and taken once the day has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_one_account_stores_in_a_day_are_bounded() {
    let limits = Limits {
        blob_bytes_per_user_per_day: 1,
        ..Limits::default()
    };
    let mut w = world(&[], limits).await;
    let (token, pngs, hashes) = w.named_pngs(64, 2).await;
    let url = w.server.url();
    let put = |i: usize| {
        reqwest::Client::new()
            .put(format!("{url}/api/v1/blobs/{}", hashes[i]))
            .bearer_auth(&token)
            .body(pngs[i].clone())
            .send()
    };
    assert_eq!(put(0).await.expect("upload").status().as_u16(), 201);
    let refused = put(1).await.expect("upload");
    assert_eq!(refused.status().as_u16(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("json");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("上限")),
        "{body}"
    );
    assert_eq!(held(&url, &token, &hashes[1]).await, 0, "nothing was kept");
    assert_eq!(
        put(0).await.expect("upload").status().as_u16(),
        200,
        "a blob stored already is answered as before"
    );

    // A day later.
    anjian_tests::blobs_stored_a_day_ago(&w.server.data);
    assert_eq!(put(1).await.expect("upload").status().as_u16(), 201);
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_document_ids_leave_nothing_behind_once_the_socket_closes() {
    let limits = Limits {
        frames_per_second: 1_000_000,
        ..Limits::default()
    };
    let w = world(&[], limits.clone()).await;
    let url = w.server.url();
    let before = metric(&url, "anjian_hub_documents").await;
    let token = login_token(&url, "insp").await;
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    peer.ask_for_unknown_documents(10_000, 50).await;
    let during = metric(&url, "anjian_hub_documents").await;
    assert!(
        during <= before + limits.unknown_documents_per_connection as u64,
        "remembered at most the limit: {during}"
    );
    drop(peer);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = metric(&url, "anjian_hub_documents").await;
        if after <= before {
            break;
        }
        assert!(Instant::now() < deadline, "still held after close: {after}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.server.stop().await;
}

/// A summary (bloom filter) may be as large as a frame, and the server keeps the peer's
/// last one with every document it syncs or gathers: a peer claiming huge histories of
/// many documents the server does not have is held to the connection's byte budget, and
/// nothing is left once it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_summaries_of_many_documents_are_kept_within_the_connection_s_bytes() {
    let limits = Limits {
        frames_per_second: 1_000_000,
        ..Limits::default()
    };
    let budget = limits.sync_state_bytes_per_connection as u64;
    let w = world(&[], limits).await;
    let url = w.server.url();
    let token = login_token(&url, "insp").await;
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    // A summary of 400,000 changes: about 500 KB, so 64 documents would hold 32 MB.
    let hashes: Vec<automerge::ChangeHash> = (0u32..400_000)
        .map(|i| {
            let mut bytes = [7u8; 32];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            automerge::ChangeHash(bytes)
        })
        .collect();
    let message = automerge::sync::Message {
        heads: vec![hashes[0]],
        need: Vec::new(),
        have: vec![automerge::sync::Have {
            last_sync: Vec::new(),
            bloom: automerge::sync::BloomFilter::from_hashes(hashes.iter()),
        }],
        changes: Vec::<Vec<u8>>::new().into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode();
    let mut peak = 0;
    for _ in 0..64 {
        peer.send_sync(DocumentId::of(CaseId::new()), message.clone())
            .await;
        match peer.next(Duration::from_secs(30)).await {
            Next::Message(WireMessage::Sync { .. }) => {}
            other => panic!("expected the server to ask for the changes, got {other:?}"),
        }
        peak = peak.max(metric(&url, "anjian_sync_state_bytes").await);
    }
    assert!(
        peak > budget / 2 && peak <= budget,
        "held {peak} bytes of sync state against a budget of {budget}"
    );
    drop(peer);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&url, "anjian_sync_state_bytes").await > 0 {
        assert!(
            Instant::now() < deadline,
            "sync states still held after close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.server.stop().await;
}

/// A connection sending faster than `frames_per_second` is read at that rate once its
/// second's allowance is spent. Only a lower bound on the time is asserted: a slow
/// machine makes it longer, never shorter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flooding_frames_is_read_at_its_allowance() {
    let rate = 200;
    let limits = Limits {
        frames_per_second: rate,
        ..Limits::default()
    };
    let w = world(&[], limits).await;
    let token = login_token(&w.server.url(), "insp").await;
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    let frames = 3 * rate;
    let started = Instant::now();
    peer.ask_for_unknown_documents(frames as usize, 50).await;
    // A second's worth at once, then `rate` a second: at least 2 s for the other 400.
    let took = started.elapsed();
    let least = Duration::from_secs_f64(f64::from(frames - rate) / f64::from(rate));
    assert!(
        took >= least.mul_f64(0.9),
        "{frames} frames answered in {took:?}, under the {least:?} the allowance permits"
    );
    w.server.stop().await;
}

/// An account whose sync connections take more of the apply threads than its bucket holds
/// has its connections read nothing more until the time is made up (a device sending the
/// costliest messages on every connection it may open would otherwise hold every apply
/// thread). What the held device sends is answered once the time is made up (held back,
/// not refused), and another account is served all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_past_its_apply_time_is_held_back_then_answered() {
    const WAITS: &str = "anjian_sync_apply_time_waits_total";
    let limits = Limits {
        apply_ms_per_user_per_minute: 600,
        ..Limits::default()
    };
    let mut w = world(&[("li", Role::Inspector, "310101")], limits).await;
    let url = w.server.url();
    let (token, mut doc) = w.device("insp").await;
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    let ours = DocumentId::of(w.case);
    let finding = at_path(&doc, &["findings", &w.finding.to_string()]);
    // Each change is acknowledged, the one held back among them once its time is made up.
    let mut pushes = 0;
    while metric(&url, WAITS).await == 0 {
        assert!(pushes < 10_000, "never held back after {pushes} changes");
        doc.put(&finding, "place", format!("配电室{pushes}号门口"))
            .expect("put");
        doc.commit();
        let pushed = peer.push(ours, &mut doc).await;
        assert!(pushed.acknowledged, "change {pushes}: {pushed:?}");
        pushes += 1;
    }
    eprintln!("held back after {pushes} changes");

    let mut li = Inspector::sign_in(w.dir.path(), &url, "li", "应急管理", "310101").await;
    li.open_sample_case(7);
    let report = li.sync().await.expect("another account is served");
    assert!(
        report.refused.is_empty() && report.acknowledged >= 1,
        "{report:?}"
    );
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoding_heavy_pngs_does_not_stall_the_server() {
    let mut w = world(&[], Limits::default()).await;
    let (token, pngs, hashes) = w.named_pngs(4_000, 4).await;
    let url = w.server.url();
    let uploads: Vec<_> = pngs
        .into_iter()
        .zip(&hashes)
        .map(|(bytes, sha256)| {
            let (url, token, sha256) = (url.clone(), token.clone(), sha256.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .put(format!("{url}/api/v1/blobs/{sha256}"))
                    .bearer_auth(token)
                    .body(bytes)
                    .send()
                    .await
                    .expect("upload")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // The server answers its health check throughout.
    let mut checks = 0;
    let client = reqwest::Client::new();
    while uploads.iter().any(|u| !u.is_finished()) {
        let health = client
            .get(format!("{url}/healthz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("healthz answers during the decoding");
        assert!(health.status().is_success());
        checks += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for upload in uploads {
        assert_eq!(upload.await.expect("task"), 201, "stored after decoding");
    }
    assert!(checks > 0);
    w.still_serves().await;
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_does_not_keep_the_owner_out() {
    let w = world(&[("victim", Role::Inspector, "310101")], Limits::default()).await;
    let url = w.server.url();
    let sign_in = |from: [u8; 4], username: &'static str, password: &'static str| {
        let url = url.clone();
        async move {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from(from))
                .build()
                .expect("client")
                .post(format!("{url}/api/v1/login"))
                .json(&json!({
                    "username": username, "password": password,
                    "device_name": "手机", "actor_id": automerge::ActorId::random().to_hex_string(),
                }))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    // The owner's phone signed in from its address before.
    assert_eq!(sign_in([127, 0, 0, 1], "victim", PASSWORD).await, 200);
    // An unknown name and a wrong password are answered alike.
    assert_eq!(
        sign_in([127, 0, 0, 1], "nobody", "wrong password").await,
        401
    );
    assert_eq!(
        sign_in([127, 0, 0, 1], "victim", "wrong password").await,
        401
    );

    let flood: Vec<_> = (0..200u8)
        .map(|i| {
            tokio::spawn(sign_in(
                [127, 0, 0, 2 + i % 250],
                "victim",
                "wrong password",
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    assert_eq!(
        sign_in([127, 0, 0, 1], "victim", PASSWORD).await,
        200,
        "the owner signs in during the flood"
    );
    eprintln!(
        "the owner's sign-in took {:?} during the flood",
        started.elapsed()
    );
    let mut statuses = std::collections::BTreeMap::new();
    for attempt in flood {
        *statuses.entry(attempt.await.expect("task")).or_insert(0) += 1;
    }
    assert!(!statuses.contains_key(&200), "{statuses:?}");
    assert!(
        statuses.get(&429).copied().unwrap_or(0) > 100,
        "most attempts are held back without a password check: {statuses:?}"
    );
    w.server.stop().await;
}

/// An account's owner signing in again and again, with the right password, from the
/// address the password threads serve first: past `sign_ins_per_name` the attempts are
/// held back (`429`, with `Retry-After` and the reason), and another account still signs
/// in; so are sign-ins the password lets through and the device's key then refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_signing_in_again_and_again_is_held_back() {
    let allowance = 5;
    let limits = Limits {
        sign_ins_per_name: allowance,
        ..Limits::default()
    };
    let w = world(&[("li", Role::Inspector, "310101")], limits).await;
    let url = w.server.url();
    let sign_in = |username: &'static str| {
        let url = url.clone();
        async move {
            let response = reqwest::Client::new()
                .post(format!("{url}/api/v1/login"))
                .json(&json!({
                    "username": username, "password": PASSWORD,
                    "device_name": "手机", "actor_id": automerge::ActorId::random().to_hex_string(),
                }))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let retry = response.headers().get("retry-after").cloned();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, retry, body)
        }
    };
    // The world signed "insp" in once already.
    let mut statuses = Vec::new();
    for _ in 0..allowance + 2 {
        statuses.push(sign_in("insp").await.0);
    }
    let allowed = allowance as usize - 1;
    assert!(
        statuses[..allowed].iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    assert!(
        statuses[allowed..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
    let (status, retry, body) = sign_in("insp").await;
    assert_eq!(status, 429);
    assert!(retry.is_some(), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("登录过于频繁"),
        "{body}"
    );
    assert_eq!(sign_in("li").await.0, 200, "another account signs in");

    // Sign-ins the password lets through and the device or key then refuses cost a
    // password check too, and count the same: here the server's own key as the device's.
    let (_, _, answer) = sign_in("li").await;
    let server_key = answer["server_key"]
        .as_str()
        .expect("server key")
        .to_owned();
    let mut statuses = Vec::new();
    for _ in 0..allowance + 1 {
        let response = reqwest::Client::new()
            .post(format!("{url}/api/v1/login"))
            .json(&json!({
                "username": "li", "password": PASSWORD, "device_name": "手机",
                "actor_id": automerge::ActorId::random().to_hex_string(),
                "key_algorithm": "ed25519", "public_key": server_key,
            }))
            .send()
            .await
            .expect("request");
        statuses.push(response.status().as_u16());
    }
    // "li" signed in twice above.
    let allowed = allowance as usize - 2;
    assert!(
        statuses[..allowed].iter().all(|s| *s == 409),
        "{statuses:?}"
    );
    assert!(
        statuses[allowed..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
    w.server.stop().await;
}

/// The next refusal the server sends, skipping its sync messages.
async fn refusal_of(peer: &mut RawPeer) -> (String, String) {
    for _ in 0..8 {
        match peer.next(Duration::from_secs(20)).await {
            Next::Message(WireMessage::Refused { rule, reason, .. }) => return (rule, reason),
            Next::Message(WireMessage::Sync { .. }) => continue,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    panic!("no refusal");
}

/// The id (`counter@actor`) of the value at `path` from the root.
fn value_id(doc: &AutoCommit, path: &[&str]) -> automerge::legacy::OpId {
    at_path(doc, path)
        .to_string()
        .parse()
        .expect("an operation id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_forged_by_hand_are_refused_before_automerge_applies_them() {
    let mut w = world(&[], Limits::default()).await;
    let (token, doc) = w.device("insp").await;
    let ours = DocumentId::of(w.case);
    let finding = w.finding.to_string();
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    // An honest change of the device, rewritten by `tamper`.
    let forge = |edit: &dyn Fn(&mut AutoCommit),
                 tamper: &dyn Fn(&mut automerge::ExpandedChange)| {
        let mut honest = doc.clone();
        edit(&mut honest);
        honest.commit();
        let mut change = honest
            .get_changes(&doc.clone().get_heads())
            .pop()
            .expect("a change")
            .decode();
        tamper(&mut change);
        automerge::Change::from(change)
    };
    let described = value_id(&doc, &["findings", &finding, "description"]);
    let shared = at_path(&doc, &["visible_to"]);
    let forged = [
        // Writing a place, and naming the finding's description as replaced: Automerge
        // would hide the description, and rebuild the change under another hash.
        forge(
            &|d| {
                let f = at_path(d, &["findings", &finding]);
                d.put(&f, "place", "二号罐区").expect("put");
            },
            &|c| {
                let mut pred: Vec<_> = c.operations[0].pred.iter().cloned().collect();
                pred.push(described.clone());
                c.operations[0].pred = pred.into();
            },
        ),
        // A district added to the shared list after an element of another list: Automerge
        // panics applying it.
        forge(
            &|d| {
                d.insert(&shared, 0, "310104").expect("insert");
            },
            &|c| {
                c.operations[0].key = automerge::legacy::Key::Seq(
                    automerge::legacy::ElementId::Id(described.clone()),
                );
            },
        ),
    ];
    for change in forged {
        let message = automerge::sync::Message {
            heads: vec![change.hash()],
            need: Vec::new(),
            have: Vec::new(),
            changes: vec![change.raw_bytes().to_vec()].into(),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        };
        peer.send_sync(ours, message.encode()).await;
        let (rule, reason) = refusal_of(&mut peer).await;
        assert_eq!(rule, "shape", "{reason}");
    }
    w.still_serves().await;
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_grows_no_larger_than_the_limit() {
    let mut w = world(
        &[],
        Limits {
            case_operations: 5_000,
            ..Limits::default()
        },
    )
    .await;
    let (token, mut doc) = w.device("insp").await;
    // A long description, one change within every per-message limit.
    let finding = w.finding.to_string();
    let obj = at_path(&doc, &["findings", &finding]);
    doc.put(&obj, "place", "罐区".repeat(3_000)).expect("put");
    let text = at_path(&doc, &["findings", &finding, "description"]);
    doc.splice_text(&text, 0, 0, &"隐".repeat(6_000))
        .expect("splice");
    doc.commit();
    let reason = w.refused_as_shape(&token, &mut doc).await;
    assert!(reason.contains("过大"), "{reason}");
    w.still_serves().await;
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_fails_leaves_its_document_synced_live() {
    let mut w = world(&[], Limits::default()).await;
    let (token, mut doc) = w.device("insp").await;
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    let document = DocumentId::of(w.case);
    assert!(peer.push(document, &mut doc).await.acknowledged);
    // A message the wire's check refuses: its handling fails, and the sync state the
    // server kept for the document goes with it.
    peer.send_sync(document, sync_message(vec![b"not a change".to_vec()]))
        .await;
    assert!(
        matches!(
            peer.next(Duration::from_secs(10)).await,
            Next::Message(WireMessage::Error { .. })
        ),
        "the bad message is answered with an error"
    );
    // Another device records a finding: the peer still hears of it, unasked.
    w.still_serves().await;
    match peer.next(Duration::from_secs(10)).await {
        Next::Message(WireMessage::Sync { document_id, .. }) => assert_eq!(document_id, document),
        other => panic!("no live update after a failed message: {other:?}"),
    }
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sent_without_its_dependency_is_asked_for_again_and_arrives() {
    let mut w = world(&[], Limits::default()).await;
    let (token, mut doc) = w.device("insp").await;
    for text in ["一号库房已复查", "二号库房已复查"] {
        comment(&mut doc, "insp", text);
    }
    let mut peer = RawPeer::joined(&w.addr(), &token).await;
    // The first comment is lost on the way, from whichever message carries it (as when a
    // bloom filter's false positive made the peer skip it): the second waits, and the
    // peer, which sends no change twice in a session, must be asked for it again.
    let comments = doc.get_changes(&[]);
    let first = comments[comments.len() - 2].hash();
    let mut lost = false;
    let pushed = peer
        .push_with(DocumentId::of(w.case), &mut doc, |message| {
            if lost {
                return;
            }
            let kept: Vec<Vec<u8>> = message
                .changes
                .iter()
                .map(|c| c.to_vec())
                .filter(|c| {
                    automerge::Change::try_from(c.as_slice()).map_or(true, |c| c.hash() != first)
                })
                .collect();
            if kept.len() < message.changes.len() {
                lost = true;
                message.changes = kept.into();
            }
        })
        .await;
    assert!(lost, "the first comment was sent");
    assert!(pushed.acknowledged, "{pushed:?}");
    w.still_serves().await;
    w.server.stop().await;
}
