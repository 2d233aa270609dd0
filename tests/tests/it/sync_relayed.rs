//! A joint team merges on site without signal and one phone carries everyone's work to the
//! server: every change is signed by the device that wrote it, so the server accepts what
//! another inspector wrote as that inspector's, and refuses exactly the changes whose
//! signature is forged or missing, or whose device was revoked, keeping the rest.

use std::collections::BTreeMap;
use std::path::Path;

use anjian_core::{CaseId, Role, sample};
use anjian_sync_server::Storage;
use anjian_tests::{Inspector, TestServer, add_user};

/// A server with two inspectors of a joint team (two districts) signed in.
async fn team(dir: &Path) -> (TestServer, Inspector, Inspector) {
    let data = dir.join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "li", Role::Inspector, "310104", "消防");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let zhang = Inspector::sign_in(dir, &url, "zhang", "应急管理", "310101").await;
    let li = Inspector::sign_in(dir, &url, "li", "消防", "310104").await;
    (server, zhang, li)
}

/// Zhang opens a joint case with Li on the team.
fn joint_case(zhang: &mut Inspector) -> CaseId {
    zhang.open_joint_case(7, &[("li", "310104", "消防")])
}

/// Who the server says wrote each change of the case, and who carried it there.
fn receipts(data: &Path, case: CaseId) -> BTreeMap<String, (String, Option<String>)> {
    let storage =
        Storage::open(&anjian_sync_server::testing::database(data)).expect("server database");
    storage
        .read(|conn| {
            let rows = conn.query_map(
                "SELECT r.change_hash, u.username, relayer.username FROM receipts r
                 JOIN users u ON u.id = r.user_id
                 LEFT JOIN users relayer ON relayer.id = r.relayed_by
                 WHERE r.case_id = ?1",
                anjian_sync_server::params![case.to_string()],
                |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))),
            )?;
            Ok(rows.into_iter().collect())
        })
        .expect("receipts")
}

/// Rewrites the signature a store keeps of a change, as a hostile device could.
fn tamper_signature(store: &Path, hash: &str, signature: Option<[u8; 64]>) {
    let conn = rusqlite::Connection::open(store).expect("the store's file");
    let changed = match signature {
        Some(forged) => conn.execute(
            "UPDATE change_signatures SET signature = ?2 WHERE change_hash = ?1",
            rusqlite::params![hash, forged.as_slice()],
        ),
        None => conn.execute(
            "DELETE FROM change_signatures WHERE change_hash = ?1",
            [hash],
        ),
    }
    .expect("tamper");
    assert_eq!(changed, 1, "the store kept a signature of {hash}");
}

/// Zhang's phone hands Li's the case on site, and Li's takes none of it: every change it
/// had not taken is refused for its signer.
fn refused_on_site(li: &mut Inspector, zhang: &mut Inspector, case: CaseId, what: &str) {
    let merged = li
        .store
        .merge_case(&zhang.store.export_case(case).expect("export"))
        .expect("li is handed the case");
    assert_eq!(merged.received.accepted, 0, "{what}: {merged:?}");
    assert!(
        merged
            .received
            .refused
            .iter()
            .any(|(refusal, _)| refusal.rule == anjian_core::rules::Rule::Signature),
        "{what}: {merged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_phone_carries_the_whole_team_s_work_each_change_as_its_author_s() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mut zhang, mut li) = team(dir.path()).await;
    let case = joint_case(&mut zhang);
    zhang
        .store
        .add_finding(case, &sample::finding("储罐区可燃气体报警器故障"))
        .expect("zhang's finding");
    let zhang_changes = zhang.store.history(case).expect("history").len();

    // On site, without signal: Li receives the case from Zhang's phone and records too.
    let exported = zhang.store.export_case(case).expect("export");
    li.store.merge_case(&exported).expect("li merges");
    li.store
        .add_finding(case, &sample::finding("消防水池无水"))
        .expect("li's finding");
    let expected = vec![
        "储罐区可燃气体报警器故障".to_owned(),
        "消防水池无水".to_owned(),
    ];

    // Li reaches the network first and carries everything.
    let report = li.sync().await.expect("li syncs");
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(li.descriptions(case), expected, "Li's own finding stays");
    assert!(li.store.refusals().expect("refusals").is_empty());

    let receipts = receipts(&server.data, case);
    let by = |user: &str, relayer: Option<&str>| {
        receipts
            .values()
            .filter(|(u, r)| u == user && r.as_deref() == relayer)
            .count()
    };
    assert_eq!(
        by("zhang", Some("li")),
        zhang_changes,
        "Zhang's changes are Zhang's, carried by Li: {receipts:?}"
    );
    assert_eq!(by("li", None), 1, "{receipts:?}");
    assert_eq!(receipts.len(), zhang_changes + 1);

    // Zhang's phone learns of Li's finding; the server acknowledged Zhang's own changes.
    let report = zhang.sync().await.expect("zhang syncs");
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(zhang.descriptions(case), expected);
    assert_eq!(
        zhang.store.heads(case).expect("heads"),
        li.store.heads(case).expect("heads")
    );
    let upload = zhang.store.upload_state(case).expect("upload state");
    assert_eq!(upload.acknowledged, upload.changes);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_changes_with_a_forged_or_missing_signature_or_a_revoked_signer_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mut zhang, mut li) = team(dir.path()).await;
    let case = joint_case(&mut zhang);
    zhang.sync().await.expect("zhang syncs the case");
    li.sync().await.expect("li receives it");
    let li_path = dir.path().join("li.db");

    for (round, tamper) in ["forged", "missing", "revoked"].into_iter().enumerate() {
        // Offline: each records a finding; Li then merges Zhang's.
        let theirs = format!("张的隐患 {round}");
        let ours = format!("李的隐患 {round}");
        zhang
            .store
            .add_finding(case, &sample::finding(&theirs))
            .expect("zhang's finding");
        let hash = zhang.store.heads(case).expect("heads").remove(0);
        li.store
            .add_finding(case, &sample::finding(&ours))
            .expect("li's finding");
        li.store
            .merge_case(&zhang.store.export_case(case).expect("export"))
            .expect("li merges");
        let reason = match tamper {
            "forged" => {
                tamper_signature(&li_path, &hash, Some([7; 64]));
                "签名"
            }
            "missing" => {
                tamper_signature(&li_path, &hash, None);
                "没有可核验的签名"
            }
            _ => {
                let storage = Storage::open(&anjian_sync_server::testing::database(&server.data))
                    .expect("server database");
                storage
                    .revoke_device(&zhang.store.device_id())
                    .expect("revoke");
                "吊销"
            }
        };

        let report = li.sync().await.expect("li syncs");
        assert_eq!(report.refused.len(), 1, "{tamper}: {report:?}");
        assert!(report.refused[0].1.contains(reason), "{tamper}: {report:?}");
        let refused: Vec<String> = li
            .store
            .refusals()
            .expect("refusals")
            .into_iter()
            .map(|r| r.change_hash)
            .collect();
        assert!(refused.contains(&hash), "{tamper}: {refused:?}");
        let shown = li.descriptions(case);
        assert!(shown.contains(&ours), "{tamper}: Li's own finding stays");
        let accepted = receipts(&server.data, case);
        assert!(
            !accepted.contains_key(&hash),
            "{tamper}: the server holds no change refused"
        );
        assert_eq!(
            accepted.values().filter(|(u, _)| u == "li").count(),
            round + 1,
            "{tamper}: Li's finding reached the server"
        );

        if tamper == "revoked" {
            // The server keeps the refusal against Zhang's account, whose device made the
            // change, not Li's, whose phone carried it.
            let storage = Storage::open(&anjian_sync_server::testing::database(&server.data))
                .expect("server database");
            let charged: Option<i64> = storage
                .read(|c| {
                    c.query_opt(
                        "SELECT user_id FROM refused_changes WHERE change_hash = ?1",
                        anjian_sync_server::params![hash.as_str()],
                        |r| r.get(0),
                    )
                })
                .expect("read");
            assert_eq!(charged, Some(storage.user("zhang").expect("zhang").id));
            // Zhang's phone, which still holds the finding, hands the case over again:
            // Li's phone refuses it as the server did, for the same reason, though the
            // certificate that came with it still verifies.
            let merged = li
                .store
                .merge_case(&zhang.store.export_case(case).expect("export"))
                .expect("li merges again");
            let again: Vec<_> = merged
                .received
                .refused
                .iter()
                .filter(|(_, hashes)| hashes.contains(&hash))
                .map(|(refusal, _)| refusal.rule)
                .collect();
            assert_eq!(again, [anjian_core::rules::Rule::Signature], "{merged:?}");
            assert!(!li.descriptions(case).contains(&theirs));
            // Nor does it take what the revoked phone records in another case since, with
            // the certificate that still verifies: Li's phone learned of the revocation from
            // the server's refusal (before, it took them until the certificate expired).
            let other = joint_case(&mut zhang);
            refused_on_site(&mut li, &mut zhang, other, "the other case");
            // Zhang's revoked phone cannot sync its finding either.
            assert!(
                zhang.sync().await.is_err(),
                "a revoked device is signed out"
            );
        } else {
            // Zhang's own phone delivers the finding honestly; Li receives it from there.
            let report = zhang.sync().await.expect("zhang syncs");
            assert!(report.refused.is_empty(), "{tamper}: {report:?}");
            li.sync().await.expect("li syncs again");
            assert!(li.descriptions(case).contains(&theirs), "{tamper}");
            assert_eq!(
                zhang.store.heads(case).expect("heads"),
                li.store.heads(case).expect("heads"),
                "{tamper}"
            );
        }
    }
    server.stop().await;
}

/// Three phones of a joint team merge in pairs on site, edit further, and only one syncs:
/// the server holds every finding as its author's, the others receive everything on their
/// next sync, and the level they disagree on is a conflict naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phones_merge_in_pairs_and_one_carries_it_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mut zhang, mut li) = team(dir.path()).await;
    add_user(&server.data, "wang", Role::Inspector, "310101", "住建");
    let mut wang = Inspector::sign_in(dir.path(), &server.url(), "wang", "住建", "310101").await;
    let case = joint_case(&mut zhang);
    let shared = zhang
        .store
        .add_finding(case, &sample::finding("脚手架未设置连墙件"))
        .expect("finding");
    let merge = |from: &mut Inspector, to: &mut Inspector| {
        let bytes = from.store.export_case(case).expect("export");
        to.store.merge_case(&bytes).expect("merge");
    };
    merge(&mut zhang, &mut li);
    merge(&mut li, &mut wang);
    let level = |level| anjian_core::FindingEdit {
        level: Some(level),
        ..anjian_core::FindingEdit::default()
    };
    for (inspector, text) in [
        (&mut zhang, "塔吊司机无证上岗"),
        (&mut li, "消防通道堵塞"),
        (&mut wang, "基坑临边无防护"),
    ] {
        inspector
            .store
            .add_finding(case, &sample::finding(text))
            .expect("finding");
    }
    li.store
        .edit_finding(case, shared, &level(anjian_core::Level::Major))
        .expect("li: major");
    wang.store
        .edit_finding(case, shared, &level(anjian_core::Level::General))
        .expect("wang: general");
    merge(&mut wang, &mut zhang);
    merge(&mut li, &mut zhang);

    // Only Zhang reaches the network.
    let report = zhang.sync().await.expect("zhang syncs");
    assert!(report.refused.is_empty(), "{report:?}");
    let every = zhang.descriptions(case);
    assert_eq!(every.len(), 4, "{every:?}");
    let receipts = receipts(&server.data, case);
    for (user, relayer) in [
        ("li", Some("zhang")),
        ("wang", Some("zhang")),
        ("zhang", None),
    ] {
        assert!(
            receipts
                .values()
                .any(|(u, r)| u == user && r.as_deref() == relayer),
            "{user}'s changes are {user}'s: {receipts:?}"
        );
    }
    assert!(
        receipts
            .values()
            .all(|(u, r)| r.is_none() == (u == "zhang"))
    );

    for inspector in [&mut li, &mut wang] {
        let report = inspector.sync().await.expect("sync");
        assert!(report.refused.is_empty(), "{report:?}");
        assert_eq!(inspector.descriptions(case), every);
        assert_eq!(
            inspector.store.heads(case).expect("heads"),
            zhang.store.heads(case).expect("heads")
        );
    }
    let conflicts = zhang.store.conflicts(case).expect("conflicts");
    let level = conflicts
        .iter()
        .find(|c| c.path.last().map(String::as_str) == Some("level"))
        .expect("the level disagreement is a conflict");
    let mut writers: Vec<&str> = level.values.iter().map(|v| v.written_by.as_str()).collect();
    writers.sort();
    assert_eq!(writers, ["li", "wang"]);
    server.stop().await;
}

/// A supervisor's action on the server through the API.
async fn supervise(url: &str, case: CaseId, path: &str, body: serde_json::Value) {
    let token = anjian_tests::login_token(url, "chief").await;
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v1/cases/{case}/{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200, "{path}");
}

/// A relayed (or late) change is judged against the case as the server holds it when the
/// change arrives: an offline finding carried in after the case was approved, or after its
/// author's district lost access, is refused with that reason, and only it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_relayed_change_is_judged_against_the_case_as_the_server_holds_it() {
    for (step, reason) in [("approve", "审核通过"), ("share", "辖区")] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, mut zhang, mut li) = team(dir.path()).await;
        add_user(
            &server.data,
            "chief",
            Role::Supervisor,
            "310101",
            "应急管理",
        );
        let url = server.url();
        let case = joint_case(&mut zhang);
        zhang.sync().await.expect("zhang syncs");
        li.sync().await.expect("li receives");

        // Offline, Li records a finding and hands the case to Zhang's phone.
        li.store
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("li's finding");
        let late = li.store.heads(case).expect("heads").remove(0);
        zhang
            .store
            .merge_case(&li.store.export_case(case).expect("export"))
            .expect("zhang merges");

        // Meanwhile the supervisor approves the case, or takes it from Li's district.
        match step {
            "approve" => {
                supervise(
                    &url,
                    case,
                    "review",
                    serde_json::json!({"action": "approve"}),
                )
                .await
            }
            _ => supervise(&url, case, "share", serde_json::json!({"districts": []})).await,
        }

        let report = zhang.sync().await.expect("zhang syncs");
        assert_eq!(report.refused.len(), 1, "{step}: {report:?}");
        assert!(report.refused[0].1.contains(reason), "{step}: {report:?}");
        let refused: Vec<String> = zhang
            .store
            .refusals()
            .expect("refusals")
            .into_iter()
            .map(|r| r.change_hash)
            .collect();
        assert_eq!(
            refused,
            std::slice::from_ref(&late),
            "{step}: only Li's late change"
        );
        assert!(
            !receipts(&server.data, case).contains_key(&late),
            "{step}: the server does not hold it"
        );
        assert!(
            zhang.descriptions(case).is_empty(),
            "{step}: the refused finding left Zhang's case, kept among the refusals"
        );
        server.stop().await;
    }
}

/// A phone learns from its next sync's catalog that a teammate's device was revoked, or the
/// teammate's account disabled, and from then on refuses on site what that device hands
/// it, though the certificate it comes with still verifies and none of the device's
/// changes ever reached the server through this phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_learns_of_revocations_with_the_catalog_and_refuses_them_on_site() {
    for how in ["revoked", "disabled"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, mut zhang, mut li) = team(dir.path()).await;
        let case = joint_case(&mut zhang);
        zhang.sync().await.expect("zhang syncs the case");
        li.sync().await.expect("li receives it");
        let catalog_url = format!("{}/api/v1/catalog?since=0", li.server);
        let token = li.token.clone();
        let catalog = || anjian_tests::get_json(&catalog_url, &token);
        assert!(catalog().await.get("revoked").is_none(), "{how}: none yet");

        let storage = Storage::open(&anjian_sync_server::testing::database(&server.data))
            .expect("server database");
        // Zhang has acted on the supervisors' pages too: the server's own actor for him,
        // whose changes the server signs, is never listed.
        let zhang_account = storage.user("zhang").expect("zhang");
        storage.server_actor(&zhang_account).expect("server actor");
        match how {
            "revoked" => storage.revoke_device(&zhang.store.device_id()),
            _ => storage.set_disabled("zhang", true),
        }
        .expect(how);
        let listed = catalog().await["revoked"].clone();
        assert_eq!(
            listed.as_array().map(|a| a.len()),
            Some(1),
            "{how}: {listed}"
        );
        assert_eq!(listed[0]["actor"], zhang.store.device_id(), "{how}");
        let report = li.sync().await.expect("li syncs");
        assert!(
            report.refused.is_empty(),
            "{how}: nothing refused: {report:?}"
        );

        // On site, Zhang's phone (still holding its certificate) records and hands over.
        zhang
            .store
            .add_finding(case, &sample::finding("吊销后记录的隐患"))
            .expect("zhang's finding");
        refused_on_site(&mut li, &mut zhang, case, how);
        assert!(
            !li.descriptions(case)
                .contains(&"吊销后记录的隐患".to_owned()),
            "{how}"
        );

        if how == "disabled" {
            // Enabled again: the catalog lists the account's devices no more, and its
            // next sign-in (a second later: certificates count whole seconds) gets a new
            // certificate, never the one from before, so Li's phone takes what Zhang's
            // phone hands over, as the server now would.
            storage.set_disabled("zhang", false).expect("enable");
            assert!(catalog().await.get("revoked").is_none(), "{how}");
            tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
            zhang
                .store
                .login(&zhang.server, "zhang", anjian_tests::PASSWORD, "手机")
                .await
                .expect("zhang signs in again");
            let merged = li
                .store
                .merge_case(&zhang.store.export_case(case).expect("export"))
                .expect("li is handed the case");
            assert_eq!(merged.received.accepted, 1, "{merged:?}");
        }
        server.stop().await;
    }
}

/// Zhang's old phone worked on a case before it was replaced (the old device revoked). A
/// supervisor then shares the case with Li's district, and Wang, whose phone synced it
/// since, hands it to Li on site. Li's phone has never held the case, but knows of the
/// revocation from the catalog: the old device's changes pass with the server's receipts
/// Wang's phone fetched, and without them they are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_phone_s_work_passes_on_site_with_the_server_s_receipts() {
    use anjian_core::signing::SignedCase;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "wang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "li", Role::Inspector, "310104", "消防");
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let mut wang = Inspector::sign_in(dir.path(), &url, "wang", "应急管理", "310101").await;
    let mut li = Inspector::sign_in(dir.path(), &url, "li", "消防", "310104").await;
    let case = zhang.open_joint_case(9, &[("wang", "310101", "应急管理")]);
    zhang
        .store
        .add_finding(case, &sample::finding("旧手机记录的隐患"))
        .expect("finding");
    zhang.sync().await.expect("zhang syncs");
    Storage::open(&anjian_sync_server::testing::database(&data))
        .expect("server database")
        .revoke_device(&zhang.store.device_id())
        .expect("the old phone revoked");
    li.sync().await.expect("li syncs");

    let shared = reqwest::Client::new()
        .post(format!("{url}/api/v1/cases/{case}/share"))
        .bearer_auth(anjian_tests::login_token(&url, "chief").await)
        .json(&serde_json::json!({ "districts": ["310104"] }))
        .send()
        .await
        .expect("share");
    assert_eq!(shared.status(), 200);
    wang.sync().await.expect("wang syncs");
    let file = wang.store.export_case(case).expect("export");
    let signed = SignedCase::decode(&file).expect("read");
    assert_eq!(
        signed.receipts.len(),
        zhang.store.history(case).expect("history").len(),
        "a receipt of each of the old phone's changes"
    );

    let stripped = SignedCase {
        receipts: Vec::new(),
        ..signed
    }
    .encode();
    let merged = li.store.merge_case(&stripped).expect("merge");
    assert_eq!(merged.received.accepted, 0, "{merged:?}");
    let merged = li.store.merge_case(&file).expect("merge");
    assert!(merged.received.refused.is_empty(), "{merged:?}");
    assert_eq!(li.descriptions(case), ["旧手机记录的隐患"]);
    assert_eq!(
        li.store.heads(case).expect("li"),
        wang.store.heads(case).expect("wang")
    );
    server.stop().await;
}
