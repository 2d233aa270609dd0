//! The stock JavaScript client (`@automerge/automerge-repo` 2.x with its WebSocket
//! adapter, installed by `npm ci` in tests/js) as a peer of Anjian's server.

use anjian_core::Role;
use anjian_core::sample;
use anjian_core::sync::DocumentId;
use anjian_tests::{Inspector, PASSWORD, TestServer, add_user, metric, run_js};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_javascript_client_reads_findings_and_its_comment_reaches_the_inspector() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    add_user(&data, "outsider", Role::Supervisor, "310105", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let enterprise = sample::enterprise(9);
    zhang
        .store
        .register_enterprise(&enterprise)
        .expect("register");
    let case = zhang
        .store
        .open_case(&sample::new_case(&enterprise))
        .expect("case");
    for text in ["液氨储罐区无喷淋装置", "安全出口堵塞"] {
        zhang
            .store
            .add_finding(case, &sample::finding(text))
            .expect("finding");
    }
    zhang.sync().await.expect("inspector syncs");

    let seen = run_js(
        "interop.mjs",
        vec![
            url.clone(),
            DocumentId::of(case).to_string(),
            "chief".into(),
            PASSWORD.into(),
            "outsider".into(),
        ],
    )
    .await;
    assert_eq!(
        seen["findings"],
        serde_json::json!(["安全出口堵塞", "液氨储罐区无喷淋装置"])
    );
    assert_eq!(seen["enterprise"], enterprise.name.as_str());
    assert!(
        seen["without_token"].is_null() && seen["other_district"].is_null(),
        "{seen}"
    );
    // The stock client reads whole documents: it was sent the stored case, and its
    // comment below went on from the sync state that answer left.
    assert_eq!(
        metric(&url, "anjian_documents_served_stored_total").await,
        1
    );

    zhang.sync().await.expect("inspector syncs again");
    let events = zhang.store.case(case).expect("case").review_events;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].kind.as_str(), events[0].by.as_str()),
        ("comment", "chief")
    );
    assert_eq!(events[0].text, seen["commented"].as_str().expect("text"));
    server.stop().await;
}
