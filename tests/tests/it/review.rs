//! Review across the real server: a supervisor's return, approval and reopening reach the
//! inspector's device on its next sync; an approved case is locked against inspectors'
//! edits (refused with a reason the app shows); only supervisors may approve or return.

use anjian_core::Role;
use anjian_core::{FindingEdit, ReviewAction, ReviewState, sample};
use anjian_tests::{Inspector, TestServer, add_user, get_json, login_token};
use serde_json::{Value, json};

async fn review(
    url: &str,
    token: &str,
    case: anjian_core::CaseId,
    action: &str,
    text: &str,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v1/cases/{case}/review"))
        .bearer_auth(token)
        .json(&json!({ "action": action, "text": text }))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisors_review_reaches_the_device_and_approval_locks_the_case() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let chief = login_token(&url, "chief").await;

    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let case = zhang.open_sample_case(7);
    let finding = zhang
        .store
        .add_finding(case, &sample::finding("安全出口被成品货物堵塞"))
        .expect("finding");
    zhang
        .store
        .review(case, ReviewAction::Submit, "")
        .expect("submit");
    assert_eq!(zhang.store.last_synced_at(&url).expect("read"), None);
    zhang.sync().await.expect("sync");
    assert!(zhang.store.last_synced_at(&url).expect("read").is_some());

    // Returned with a comment: the inspector's store shows both after its next sync.
    let (status, body) = review(&url, &chief, case, "return", "请补充整改期限").await;
    assert_eq!(status, 200, "{body}");
    zhang.sync().await.expect("sync");
    let read = zhang.store.case(case).expect("case");
    assert_eq!(read.state, ReviewState::Returned);
    let last = read.review_events.last().expect("event");
    assert_eq!(
        (last.kind.as_str(), last.by.as_str(), last.text.as_str()),
        ("return", "chief", "请补充整改期限")
    );

    // The app does not approve: that is the supervisor's, on the server.
    assert!(matches!(
        zhang.store.review(case, ReviewAction::Approve, ""),
        Err(anjian_core::Error::NotAllowed(_))
    ));
    zhang
        .store
        .review(case, ReviewAction::Submit, "已补充")
        .expect("submit");
    zhang.sync().await.expect("sync");

    // Offline, the inspector edits the case while the supervisor approves it on the
    // server: the server judges the late edit against the case as it now is (approved,
    // locked) and refuses it, and the app can show why.
    let relocate = FindingEdit {
        place: Some("二号仓库".into()),
        ..FindingEdit::default()
    };
    zhang
        .store
        .edit_finding(case, finding, &relocate)
        .expect("edit offline");
    let (status, body) = review(&url, &chief, case, "approve", "").await;
    assert_eq!(status, 200, "{body}");
    let report = zhang.sync().await.expect("sync runs");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    let refusals = zhang.store.refusals().expect("refusals");
    assert!(
        refusals
            .iter()
            .any(|r| r.case_id == case && r.reason.contains("已审核通过并锁定")),
        "the app can show why: {refusals:?}"
    );
    assert_eq!(
        zhang.store.case(case).expect("case").state,
        ReviewState::Approved
    );
    // Now that the device knows, its rule book refuses the same edit before recording.
    let again = zhang.store.edit_finding(case, finding, &relocate);
    assert!(
        matches!(&again, Err(anjian_core::Error::NotAllowed(m)) if m.contains("已审核通过并锁定")),
        "{again:?}"
    );
    let (_, body) = review(&url, &chief, case, "comment", "已锁定").await;
    assert_eq!(body["state"], "approved");

    // A correction found later is a new case that amends the locked one.
    let mut amendment = sample::new_case(&sample::enterprise(7));
    amendment.amends = Some(case);
    let amending = zhang.store.open_case(&amendment).expect("amending case");
    zhang
        .store
        .add_finding(amending, &sample::finding("补充：二号仓库安全出口同样堵塞"))
        .expect("finding");
    let report = zhang.sync().await.expect("sync runs");
    assert!(report.refused.is_empty(), "{report:?}");
    let original = get_json(&format!("{url}/api/v1/cases/{case}"), &chief).await;
    assert_eq!(
        original["amendments"][0]["id"],
        amending.to_string(),
        "{original}"
    );
    let amends = |url: String, chief: String| async move {
        get_json(&format!("{url}/api/v1/cases/{amending}"), &chief).await["amends_confirmed"]
            .clone()
    };
    assert_eq!(
        amends(url.clone(), chief.clone()).await,
        true,
        "the server finds the approved case of the same enterprise"
    );

    // Reopened: the inspector may amend again.
    let (status, body) = review(&url, &chief, case, "reopen", "企业提交了新的整改材料").await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("returned")),
        "{body}"
    );
    assert_eq!(
        amends(url.clone(), chief.clone()).await,
        false,
        "the case it amends is no longer approved"
    );
    zhang.sync().await.expect("sync");
    zhang
        .store
        .edit_finding(
            case,
            finding,
            &FindingEdit {
                place: Some("二号仓库".into()),
                ..FindingEdit::default()
            },
        )
        .expect("edit");
    let report = zhang.sync().await.expect("sync runs");
    assert!(report.refused.is_empty(), "{report:?}");
    let (_, body) = reqwest::Client::new()
        .get(format!("{url}/api/v1/cases/{case}"))
        .bearer_auth(&chief)
        .send()
        .await
        .map(|r| (r.status(), r))
        .expect("request");
    let body: Value = body.json().await.expect("json");
    assert_eq!(body["findings"][0]["place"], "二号仓库");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_recorded_in_another_users_name_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    // A store whose identity claims to be the supervisor, signed in as zhang: its
    // changes would show "chief" as their author.
    let mut forged = anjian_core::Store::open(
        dir.path().join("forged.db"),
        anjian_core::sample::inspector("chief"),
    )
    .expect("store");
    let token = forged
        .login(&url, "zhang", anjian_tests::PASSWORD, "手机")
        .await
        .expect("login");
    let enterprise = anjian_core::sample::enterprise(3);
    forged.register_enterprise(&enterprise).expect("register");
    forged
        .open_case(&anjian_core::sample::new_case(&enterprise))
        .expect("case");
    let report = forged.sync(&url, &token, |_| {}).await.expect("sync runs");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(report.refused[0].1.contains("与登录账号不符"), "{report:?}");
    let chief = login_token(&url, "chief").await;
    let cases: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/cases"))
        .bearer_auth(&chief)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(cases["total"], 0, "nothing reached the server: {cases}");
    server.stop().await;
}
