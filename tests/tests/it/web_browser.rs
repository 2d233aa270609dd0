//! The supervisors' pages in a real browser (headless Chromium driven by playwright-core,
//! tests/js/web-e2e.mjs) against a real server holding a joint case with a conflict made
//! by two inspectors' devices: the supervisor resolves the conflict and returns the case
//! with a comment, and the inspector's store sees both after its next sync. Screenshots
//! of the case page and the bulletin are kept in `target/artefacts/web/`.

use std::path::Path;

use anjian_core::Role;
use anjian_core::{CaseType, FindingEdit, Level, ReviewState, TeamMember, sample};
use anjian_tests::{Inspector, PASSWORD, TestServer, add_user, run_js};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_resolves_a_conflict_and_returns_the_case_in_a_browser() {
    assert!(
        Path::new(&std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()))
            .exists(),
        "the browser tests need Debian's chromium: run scripts/install-browser (the CI script does)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "li", Role::Inspector, "310101", "住建");
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();

    // A joint inspection: both inspectors hold the case, and judge one hazard's level
    // differently while offline.
    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let mut li = Inspector::sign_in(dir.path(), &url, "li", "住建", "310101").await;
    let enterprise = sample::enterprise(21);
    zhang
        .store
        .register_enterprise(&enterprise)
        .expect("register");
    let mut new = sample::new_case(&enterprise);
    new.case_type = CaseType::Joint;
    new.team.push(TeamMember {
        user_id: "li".into(),
        name: "li的姓名".into(),
        department: "住建".into(),
        district: "310101".parse().expect("district"),
    });
    let case = zhang.store.open_case(&new).expect("case");
    let finding = zhang
        .store
        .add_finding(case, &sample::finding("脚手架连墙件缺失"))
        .expect("finding");
    zhang
        .store
        .add_finding(case, &sample::finding("安全出口被成品货物堵塞"))
        .expect("finding");
    zhang.sync().await.expect("zhang syncs");
    li.sync().await.expect("li receives the case");
    zhang
        .store
        .edit_finding(
            case,
            finding,
            &FindingEdit {
                level: Some(Level::General),
                ..FindingEdit::default()
            },
        )
        .expect("zhang judges");
    li.store
        .edit_finding(
            case,
            finding,
            &FindingEdit {
                level: Some(Level::Major),
                ..FindingEdit::default()
            },
        )
        .expect("li judges");
    zhang.sync().await.expect("zhang syncs");
    li.sync().await.expect("li syncs");

    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artefacts/web");
    let comment = "连墙件缺失定为重大隐患，请补充整改期限后重新提交";
    let seen = run_js(
        "web-e2e.mjs",
        vec![
            url.clone(),
            "chief".into(),
            PASSWORD.into(),
            case.to_string(),
            comment.into(),
            artefacts.display().to_string(),
        ],
    )
    .await;
    assert_eq!(seen["all"], 1, "{seen}");
    assert_eq!(seen["filtered"], 1, "{seen}");
    let writers = seen["conflict_writers"].to_string();
    assert!(
        writers.contains("zhang") && writers.contains("li"),
        "who wrote each value: {seen}"
    );
    assert_eq!(seen["conflicts_after"], 0, "{seen}");
    assert_eq!(seen["state"], "退回", "{seen}");
    assert!(seen["trail"].to_string().contains(comment), "{seen}");
    assert!(
        seen["bulletin_charts"].as_u64().is_some_and(|n| n > 0),
        "{seen}"
    );
    for shot in ["case.png", "case-returned.png", "bulletin.png"] {
        let bytes = std::fs::read(artefacts.join(shot)).expect("screenshot");
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{shot}"
        );
    }

    // The inspector's device sees the resolution and the comment after its next sync.
    zhang.sync().await.expect("zhang syncs");
    let read = zhang.store.case(case).expect("case");
    assert_eq!(read.state, ReviewState::Returned);
    let last = read.review_events.last().expect("event");
    assert_eq!(
        (last.kind.as_str(), last.by.as_str(), last.text.as_str()),
        ("return", "chief", comment)
    );
    assert!(zhang.store.conflicts(case).expect("conflicts").is_empty());
    let level = read
        .findings
        .iter()
        .find(|f| f.id == finding)
        .map(|f| f.level);
    assert_eq!(level, Some(Level::Major));
    server.stop().await;
}
