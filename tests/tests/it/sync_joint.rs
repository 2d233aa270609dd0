//! Scenario 1: a joint enforcement team of three departments works on one case offline;
//! after syncing in any order every store and the server hold the same document, every
//! finding is there, and the level disagreement is a conflict naming both inspectors.

use anjian_core::Role;
use anjian_core::{FindingEdit, Level, sample};
use anjian_tests::{Inspector, TestServer, add_user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joint_team_records_merge_with_every_finding_and_the_level_conflict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    for (user, district, department) in [
        ("zhang", "310101", "应急管理"),
        ("li", "310104", "消防"),
        ("wang", "310105", "市场监管"),
    ] {
        add_user(&data, user, Role::Inspector, district, department);
    }
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let mut li = Inspector::sign_in(dir.path(), &url, "li", "消防", "310104").await;
    let mut wang = Inspector::sign_in(dir.path(), &url, "wang", "市场监管", "310105").await;

    // Zhang opens the joint case with the team and syncs; the others receive it.
    let case = zhang.open_joint_case(
        1,
        &[("li", "310104", "消防"), ("wang", "310105", "市场监管")],
    );
    let shared = zhang
        .store
        .add_finding(case, &sample::finding("储罐区可燃气体报警器故障"))
        .expect("finding");
    zhang.sync().await.expect("zhang syncs");
    li.sync().await.expect("li receives");
    wang.sync().await.expect("wang receives");
    assert_eq!(li.store.case(case).expect("li has it").findings.len(), 1);

    // Offline: each records findings, all edit the shared description, two judge the level.
    let mut recorded = vec![shared];
    for (inspector, text) in [
        (&mut zhang, "安全出口堵塞"),
        (&mut li, "消防水池无水"),
        (&mut wang, "气瓶未检验"),
    ] {
        recorded.push(
            inspector
                .store
                .add_finding(case, &sample::finding(text))
                .expect("finding"),
        );
    }
    let describe = |text: &str| FindingEdit {
        description: Some(text.into()),
        ..FindingEdit::default()
    };
    zhang
        .store
        .edit_finding(case, shared, &describe("一号储罐区可燃气体报警器故障"))
        .expect("edit");
    li.store
        .edit_finding(
            case,
            shared,
            &describe("储罐区可燃气体报警器故障，已停用三天"),
        )
        .expect("edit");
    let level = |level| FindingEdit {
        level: Some(level),
        ..FindingEdit::default()
    };
    zhang
        .store
        .edit_finding(case, shared, &level(Level::Major))
        .expect("zhang: major");
    li.store
        .edit_finding(case, shared, &level(Level::General))
        .expect("li: general");

    // Sync in an unhelpful order, twice round so everyone sees everyone.
    for _ in 0..2 {
        wang.sync().await.expect("wang");
        li.sync().await.expect("li");
        zhang.sync().await.expect("zhang");
    }
    let heads = zhang.store.heads(case).expect("heads");
    for inspector in [&mut li, &mut wang] {
        assert_eq!(
            inspector.store.heads(case).expect("heads"),
            heads,
            "identical documents"
        );
    }
    let read = zhang.store.case(case).expect("case");
    let mut ids: Vec<_> = read.findings.iter().map(|f| f.id).collect();
    ids.sort();
    recorded.sort();
    assert_eq!(ids, recorded, "every finding of every inspector");
    let description = &read
        .findings
        .iter()
        .find(|f| f.id == shared)
        .expect("shared")
        .description;
    assert_eq!(
        description, "一号储罐区可燃气体报警器故障，已停用三天",
        "description edits merged"
    );

    let conflicts = wang.store.conflicts(case).expect("conflicts");
    let level_conflict = conflicts
        .iter()
        .find(|c| c.path.last().map(String::as_str) == Some("level"))
        .expect("level conflict");
    let mut writers: Vec<(&str, String)> = level_conflict
        .values
        .iter()
        .map(|v| (v.written_by.as_str(), v.value.to_string()))
        .collect();
    writers.sort();
    assert_eq!(
        writers,
        [("li", "general".to_owned()), ("zhang", "major".to_owned())]
    );

    // The server holds the same document: its catalog heads, and the supervisor's view.
    let token = anjian_tests::login_token(&url, "chief").await;
    let body = anjian_tests::get_json(&format!("{url}/api/v1/cases/{case}"), &token).await;
    assert_eq!(body["findings"].as_array().map(Vec::len), Some(4));
    assert!(
        body["conflicts"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["path"][2] == "level")),
        "{body}"
    );
    let history = body["history"].as_array().expect("history");
    assert!(
        history.iter().all(|h| h["received_at"].is_string()),
        "every change has its receipt time"
    );
    let upload = zhang.store.upload_state(case).expect("upload state");
    assert_eq!(
        upload.acknowledged, upload.changes,
        "zhang's device knows everything reached the server"
    );
    server.stop().await;
}

/// A joint team: one inspector raises a hazard to major and syncs, while another, offline
/// and unaware, orders it rectified as the general hazard he sees. Both stand on the server:
/// the order records general (what its inspector saw), the hazard reads major, and its
/// closing is the supervisors', on his phone as on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_given_offline_stands_beside_a_teammate_s_raise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "li", Role::Inspector, "310104", "消防");
    add_user(&data, "chief", Role::Supervisor, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let mut li = Inspector::sign_in(dir.path(), &url, "li", "消防", "310104").await;
    let case = zhang.open_joint_case(1, &[("li", "310104", "消防")]);
    let hazard = zhang
        .store
        .add_finding(case, &sample::finding("消防通道堆放杂物"))
        .expect("finding");
    zhang.sync().await.expect("zhang syncs");
    li.sync().await.expect("li receives");

    let major = FindingEdit {
        level: Some(Level::Major),
        ..FindingEdit::default()
    };
    zhang
        .store
        .edit_finding(case, hazard, &major)
        .expect("raised");
    let raised = zhang.sync().await.expect("zhang syncs the raise");
    assert!(raised.refused.is_empty(), "{raised:?}");
    let order = anjian_core::RectificationOrder {
        measures: "清理消防通道".into(),
        deadline: chrono::NaiveDate::from_ymd_opt(2026, 12, 31).expect("date"),
        responsible: "安全主管".into(),
    };
    li.store
        .order_rectification(case, hazard, &order)
        .expect("ordered offline");
    let ordered = li.sync().await.expect("li syncs the order");
    assert!(ordered.refused.is_empty(), "{ordered:?}");
    li.sync().await.expect("li receives the raise");

    let token = anjian_tests::login_token(&url, "chief").await;
    let body = anjian_tests::get_json(&format!("{url}/api/v1/cases/{case}"), &token).await;
    let finding = body["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["id"] == hazard.to_string()))
        .expect("the finding");
    assert_eq!(finding["level"], "major", "{finding}");
    assert_eq!(finding["rectification"]["state"], "ordered", "{finding}");
    assert_eq!(
        finding["rectification"]["ordered_level"], "general",
        "{finding}"
    );

    li.store
        .follow_up(case, hazard, &anjian_core::HazardStep::pass("已清理"))
        .expect("re-inspected");
    let closed = li
        .store
        .follow_up(case, hazard, &anjian_core::HazardStep::close());
    assert!(
        matches!(&closed, Err(anjian_core::Error::NotAllowed(m)) if m.contains("重大隐患")),
        "{closed:?}"
    );
    server.stop().await;
}
