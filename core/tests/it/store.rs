//! What an inspector's app does with a store, offline.

use anjian_core::{
    CaseQuery, CaseType, FieldValue, FindingEdit, FindingQuery, GeoPoint, HazardStep, Level,
    RectificationOrder, RectificationState, Resolution, ReviewAction, ReviewState, Store,
    TeamMember, Violation, ViolationKind,
};
use std::collections::BTreeSet;

use chrono::NaiveDate;

use crate::support::*;

fn date(s: &str) -> NaiveDate {
    s.parse().expect("valid date")
}

#[test]
fn a_recorded_finding_survives_reopening_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let device = store.device_id();
    let id = store
        .add_finding(case, &finding("储罐区可燃气体报警器故障"))
        .expect("finding");
    drop(store);

    let mut store = Store::open(&path, inspector("u1")).expect("reopens");
    assert_eq!(
        store.device_id(),
        device,
        "the device actor id is kept in the file"
    );
    let read = store.case(case).expect("case");
    assert_eq!(read.findings.len(), 1);
    assert_eq!(read.findings[0].id, id);
    assert_eq!(read.findings[0].description, "储罐区可燃气体报警器故障");
    assert_eq!(read.findings[0].recorded_by, "u1");
    assert_eq!(read.team[0].user_id, "u1");
}

#[test]
fn a_case_records_team_districts_place_and_type() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path().join("s.db"), inspector("u1")).expect("store");
    let ent = enterprise(7);
    store.register_enterprise(&ent).expect("register");
    let mut new = new_case(&ent);
    new.case_type = CaseType::Joint;
    new.location = Some(GeoPoint::new(31.2304, 121.4737).expect("valid point"));
    new.team.push(TeamMember {
        user_id: "u2".into(),
        name: "李四".into(),
        department: "消防".into(),
        district: "310104".parse().expect("district"),
    });
    new.visible_to.push("310105".parse().expect("district"));
    let id = store.open_case(&new).expect("open");
    let case = store.case(id).expect("read");
    assert_eq!(case.case_type, CaseType::Joint);
    assert_eq!(case.district.as_str(), "310101");
    let visible: Vec<&str> = case.visible_to.iter().map(|d| d.as_str()).collect();
    assert_eq!(
        visible,
        ["310104", "310105"],
        "team districts join visible_to"
    );
    assert_eq!(case.team.len(), 2);
    assert_eq!(case.location.map(|p| p.latitude), Some(31.2304));
    assert_eq!(case.state, ReviewState::Draft);
    assert_eq!(case.enterprise, ent);
}

#[test]
fn editing_a_finding_changes_only_what_was_edited() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let id = store
        .add_finding(case, &finding("安全阀未校验"))
        .expect("finding");
    store
        .edit_finding(
            case,
            id,
            &FindingEdit {
                level: Some(Level::Major),
                description: Some("安全阀未校验，超期一年".into()),
                ..FindingEdit::default()
            },
        )
        .expect("edit");
    let f = &store.case(case).expect("case").findings[0];
    assert_eq!(f.level, Level::Major);
    assert_eq!(f.description, "安全阀未校验，超期一年");
    assert_eq!(f.place, "罐区");
    let majors = store
        .findings(&FindingQuery {
            level: Some(Level::Major),
            ..FindingQuery::default()
        })
        .expect("query");
    assert_eq!(majors.len(), 1);
    assert_eq!(majors[0].title, "安全阀未校验，超期一年");
}

#[test]
fn a_removed_finding_leaves_lists_but_stays_in_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let keep = store
        .add_finding(case, &finding("消防通道堵塞"))
        .expect("finding");
    let gone = store.add_finding(case, &finding("误录")).expect("finding");
    store.remove_finding(case, gone).expect("remove");
    let ids: Vec<_> = store
        .case(case)
        .expect("case")
        .findings
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, [keep]);
    assert_eq!(
        store.cases(&CaseQuery::default()).expect("cases")[0].findings,
        1
    );
    let actions: Vec<String> = store
        .history(case)
        .expect("history")
        .into_iter()
        .map(|h| h.action)
        .collect();
    assert_eq!(
        actions,
        ["open_case", "add_finding", "add_finding", "remove_finding"]
    );
    let err = store
        .remove_finding(case, gone)
        .expect_err("already removed");
    assert!(
        matches!(
            err,
            anjian_core::Error::NotFound {
                what: "finding",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rectification_follows_the_closed_loop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let id = store
        .add_finding(case, &finding("配电箱未接地"))
        .expect("finding");
    let err = store
        .move_rectification(case, id, RectificationState::InProgress)
        .expect_err("nothing ordered yet");
    assert!(err.to_string().contains("未下达整改"), "{err}");
    store
        .order_rectification(
            case,
            id,
            &RectificationOrder {
                measures: "立即整改，加装接地线".into(),
                deadline: date("2026-11-30"),
                responsible: "王五".into(),
            },
        )
        .expect("order");
    store
        .move_rectification(case, id, RectificationState::InProgress)
        .expect("allowed step");
    let err = store
        .move_rectification(case, id, RectificationState::Reinspected)
        .expect_err("re-inspecting is a step with a result");
    assert!(err.to_string().contains("复查"), "{err}");
    let err = store
        .follow_up(case, id, &HazardStep::pass("  "))
        .expect_err("a re-inspection needs evidence: a note or a photo");
    assert!(err.to_string().contains("复查佐证"), "{err}");
    store
        .follow_up(case, id, &HazardStep::pass("已加装接地线，复查合格"))
        .expect("re-inspect");
    store
        .follow_up(case, id, &HazardStep::close())
        .expect("close with the re-inspection note as evidence");
    let err = store
        .move_rectification(case, id, RectificationState::InProgress)
        .expect_err("closed is final");
    assert!(matches!(err, anjian_core::Error::NotAllowed(_)), "{err}");
    let f = &store.case(case).expect("case").findings[0];
    let rect = f.rectification.as_ref().expect("rectification");
    assert_eq!(rect.state, RectificationState::Closed);
    let reinspection = rect.reinspection.as_ref().expect("re-inspection kept");
    assert_eq!(reinspection.note, "已加装接地线，复查合格");
    assert_eq!(reinspection.by, "u1");
}

#[test]
fn review_actions_move_the_state_and_keep_the_trail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    // On the device: submit and comment; deciding is the supervisors' (on the server).
    let err = store
        .review(case, ReviewAction::Approve, "")
        .expect_err("an inspector's store does not approve");
    assert!(matches!(err, anjian_core::Error::NotAllowed(_)), "{err}");
    store
        .review(case, ReviewAction::Submit, "")
        .expect("submit");
    store
        .review(case, ReviewAction::Comment, "已补拍照片")
        .expect("comment");
    let err = store
        .review(case, ReviewAction::Submit, "")
        .expect_err("a submitted case is not submitted again");
    assert!(matches!(err, anjian_core::Error::NotAllowed(_)), "{err}");

    // The same document as the server's supervisors change it.
    let mut doc =
        automerge::AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let at = anjian_core::sample::visit_time();
    let review = |doc: &mut automerge::AutoCommit, action, text| {
        anjian_core::case_doc::review(doc, "chief", action, text, at)
    };
    let err = review(&mut doc, ReviewAction::Reopen, "更正").expect_err("not approved");
    assert!(matches!(err, anjian_core::Error::NotAllowed(_)), "{err}");
    let err = review(&mut doc, ReviewAction::Return, " ").expect_err("needs a reason");
    assert!(matches!(err, anjian_core::Error::Invalid { .. }), "{err}");
    assert_eq!(
        review(&mut doc, ReviewAction::Return, "照片不清晰，请补拍").expect("return"),
        ReviewState::Returned
    );
    assert_eq!(
        review(&mut doc, ReviewAction::Approve, "").expect("approve"),
        ReviewState::Approved
    );
    assert_eq!(
        review(&mut doc, ReviewAction::Reopen, "企业补充材料").expect("reopen"),
        ReviewState::Returned
    );
    let read = anjian_core::case_doc::read(&doc).expect("read");
    let trail: Vec<_> = read
        .review_events
        .iter()
        .map(|e| (e.kind.as_str(), e.by.as_str()))
        .collect();
    assert_eq!(
        trail,
        [
            ("submit", "u1"),
            ("comment", "u1"),
            ("return", "chief"),
            ("approve", "chief"),
            ("reopen", "chief")
        ]
    );
    assert_eq!(read.review_events[2].text, "照片不清晰，请补拍");
    // The review state is never resolved by hand.
    let err = anjian_core::case_doc::resolve_conflict(
        &mut doc,
        "chief",
        &["review".into(), "state".into()],
        &Resolution::Write(FieldValue::Text("approved".into())),
        at,
    )
    .expect_err("review actions only");
    assert!(matches!(err, anjian_core::Error::NotAllowed(_)), "{err}");
}

#[test]
fn due_and_overdue_rectifications_are_listed_for_a_day() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let mut ids = Vec::new();
    for (text, deadline) in [
        ("A", "2026-11-25"),
        ("B", "2026-11-28"),
        ("C", "2026-12-10"),
    ] {
        let id = store.add_finding(case, &finding(text)).expect("finding");
        store
            .order_rectification(
                case,
                id,
                &RectificationOrder {
                    measures: "整改".into(),
                    deadline: date(deadline),
                    responsible: "王五".into(),
                },
            )
            .expect("order");
        ids.push(id);
    }
    store
        .follow_up(case, ids[0], &HazardStep::pass("复查合格"))
        .expect("re-inspect");
    store
        .follow_up(case, ids[0], &HazardStep::close())
        .expect("close");
    let due: Vec<_> = store
        .rectifications_due(date("2026-11-28"))
        .expect("due")
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(due, [ids[1]], "closed A and later C are not due");
    let due: Vec<_> = store
        .rectifications_due(date("2026-12-31"))
        .expect("due")
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(due, [ids[1], ids[2]]);
}

#[test]
fn three_violation_findings_record_post_and_person() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let mut f = finding("动火作业未办理作业票");
    f.violation = Some(Violation {
        kind: ViolationKind::IllegalOperation,
        post: "电焊工".into(),
        person: "赵六".into(),
    });
    store.add_finding(case, &f).expect("finding");
    let listed = store.findings(&FindingQuery::default()).expect("list");
    assert_eq!(listed[0].violation, Some(ViolationKind::IllegalOperation));
    let read = &store.case(case).expect("case").findings[0];
    assert_eq!(
        read.violation.as_ref().map(|v| v.post.as_str()),
        Some("电焊工")
    );
}

#[test]
fn cases_are_queried_by_enterprise_district_state_and_date() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path().join("s.db"), inspector("u1")).expect("store");
    let a = enterprise(1);
    let mut b = enterprise(2);
    b.district = "310104".parse().expect("district");
    store.register_enterprise(&a).expect("a");
    store.register_enterprise(&b).expect("b");
    let mut ids = Vec::new();
    for (ent, day) in [(&a, 1), (&b, 2), (&a, 3)] {
        let mut new = new_case(ent);
        new.opened_at =
            chrono::DateTime::parse_from_rfc3339(&format!("2026-11-0{day}T10:00:00+08:00"))
                .expect("time");
        ids.push(store.open_case(&new).expect("open"));
    }
    let list = |q: CaseQuery| -> Vec<_> {
        store
            .cases(&q)
            .expect("query")
            .iter()
            .map(|c| c.id)
            .collect()
    };
    assert_eq!(
        list(CaseQuery::default()),
        [ids[2], ids[1], ids[0]],
        "newest first"
    );
    assert_eq!(
        list(CaseQuery {
            enterprise: Some(a.credit_code.clone()),
            ..CaseQuery::default()
        }),
        [ids[2], ids[0]]
    );
    assert_eq!(
        list(CaseQuery {
            district: Some("310104".parse().expect("d")),
            ..CaseQuery::default()
        }),
        [ids[1]]
    );
    assert_eq!(
        list(CaseQuery {
            from: Some(date("2026-11-02")),
            to: Some(date("2026-11-02")),
            ..CaseQuery::default()
        }),
        [ids[1]]
    );
    assert_eq!(
        list(CaseQuery {
            state: Some(ReviewState::Approved),
            ..CaseQuery::default()
        }),
        []
    );
    assert_eq!(
        list(CaseQuery {
            limit: 1,
            offset: 1,
            ..CaseQuery::default()
        }),
        [ids[1]]
    );
}

#[test]
fn concurrent_levels_become_a_conflict_naming_both_inspectors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, case) = store_with_case(&dir, "a.db", "zhang");
    let id = a
        .add_finding(case, &finding("液氨储罐区无喷淋"))
        .expect("finding");
    let mut b = certified(
        Store::open(dir.path().join("b.db"), identity("li", "消防", "310101")).expect("b"),
    );
    b.merge_case(&a.export_case(case).expect("export"))
        .expect("b receives");

    let set = |store: &mut Store, level| {
        store
            .edit_finding(
                case,
                id,
                &FindingEdit {
                    level: Some(level),
                    ..FindingEdit::default()
                },
            )
            .expect("edit")
    };
    set(&mut a, Level::Major);
    set(&mut b, Level::General);
    a.merge_case(&b.export_case(case).expect("export"))
        .expect("merge");

    let conflicts = a.conflicts(case).expect("conflicts");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let conflict = &conflicts[0];
    assert_eq!(
        conflict.path,
        ["findings".to_owned(), id.to_string(), "level".to_owned()]
    );
    let mut writers: Vec<(&str, String)> = conflict
        .values
        .iter()
        .map(|v| (v.written_by.as_str(), v.value.to_string()))
        .collect();
    writers.sort();
    assert_eq!(
        writers,
        [("li", "general".into()), ("zhang", "major".into())]
    );
    assert!(
        conflict
            .values
            .iter()
            .all(|v| v.device_time > 0 && v.device.len() == 32)
    );
    assert!(a.cases(&CaseQuery::default()).expect("cases")[0].has_conflicts);

    a.resolve_conflict(
        case,
        &conflict.path,
        &Resolution::Write(FieldValue::Text("major".into())),
    )
    .expect("resolve");
    assert!(a.conflicts(case).expect("conflicts").is_empty());
    assert!(!a.cases(&CaseQuery::default()).expect("cases")[0].has_conflicts);
    assert_eq!(a.case(case).expect("case").findings[0].level, Level::Major);

    // The resolution reaches the other inspector like any edit.
    b.merge_case(&a.export_case(case).expect("export"))
        .expect("merge");
    assert!(b.conflicts(case).expect("conflicts").is_empty());
    assert_eq!(b.case(case).expect("case").findings[0].level, Level::Major);
    // Li recorded on the case, so Li joined its team.
    let team: Vec<String> = b
        .case(case)
        .expect("case")
        .team
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(team, ["li", "zhang"]);
}

#[test]
fn concurrent_description_edits_merge_as_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, case) = store_with_case(&dir, "a.db", "zhang");
    let id = a
        .add_finding(case, &finding("仓库内堆放杂物"))
        .expect("finding");
    let mut b = receiving(&dir, "b.db", "li", &mut a, case);
    let edit = |text: &str| FindingEdit {
        description: Some(text.into()),
        ..FindingEdit::default()
    };
    a.edit_finding(case, id, &edit("一号仓库内堆放杂物"))
        .expect("a edits");
    b.edit_finding(case, id, &edit("仓库内堆放杂物，堵塞安全出口"))
        .expect("b edits");
    a.merge_case(&b.export_case(case).expect("export"))
        .expect("merge");
    let text = a.case(case).expect("case").findings[0].description.clone();
    assert_eq!(text, "一号仓库内堆放杂物，堵塞安全出口");
    assert!(a.conflicts(case).expect("conflicts").is_empty());
}

#[test]
fn choosing_a_value_resolves_a_conflict_and_bad_resolutions_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, mut b, case, id) = two_stores_with_a_finding(&dir);
    let place = |p: &str| FindingEdit {
        place: Some(p.into()),
        level: Some(Level::Major),
        ..FindingEdit::default()
    };
    a.edit_finding(case, id, &place("一号罐")).expect("a");
    b.edit_finding(
        case,
        id,
        &FindingEdit {
            place: Some("二号罐".into()),
            level: Some(Level::General),
            ..FindingEdit::default()
        },
    )
    .expect("b");
    a.merge_case(&b.export_case(case).expect("export"))
        .expect("merge");
    let conflicts = a.conflicts(case).expect("conflicts");
    assert_eq!(conflicts.len(), 2);
    let level = conflicts
        .iter()
        .find(|c| c.path.last().map(String::as_str) == Some("level"))
        .expect("level");
    let err = a
        .resolve_conflict(
            case,
            &level.path,
            &Resolution::Write(FieldValue::Text("serious".into())),
        )
        .expect_err("not a level");
    assert!(err.to_string().contains("not one of"), "{err}");
    let err = a
        .resolve_conflict(case, &level.path, &Resolution::Choose(5))
        .expect_err("no such value");
    assert!(
        matches!(
            err,
            anjian_core::Error::Invalid {
                field: "resolution",
                ..
            }
        ),
        "{err}"
    );
    let chosen = level.values[1].value.clone();
    a.resolve_conflict(case, &level.path, &Resolution::Choose(1))
        .expect("choose");
    let remaining = a.conflicts(case).expect("conflicts");
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].path.last().map(String::as_str), Some("place"));
    assert_eq!(
        FieldValue::Text(a.case(case).expect("case").findings[0].level.code().into()),
        chosen
    );
}

/// Zhang's store with a case holding one finding, and Li's store holding the case too.
fn two_stores_with_a_finding(
    dir: &tempfile::TempDir,
) -> (Store, Store, anjian_core::CaseId, anjian_core::FindingId) {
    let (mut a, case) = store_with_case(dir, "a.db", "zhang");
    let id = a.add_finding(case, &finding("A")).expect("finding");
    let b = receiving(dir, "b.db", "li", &mut a, case);
    (a, b, case, id)
}

/// `user`'s store in `file`, holding `case` as `from` exports it.
fn receiving(
    dir: &tempfile::TempDir,
    file: &str,
    user: &str,
    from: &mut Store,
    case: anjian_core::CaseId,
) -> Store {
    let mut store = certified(Store::open(dir.path().join(file), inspector(user)).expect("store"));
    store
        .merge_case(&from.export_case(case).expect("export"))
        .expect("receive");
    store
}

/// Two inspectors who each settle the same conflict offline, differently, or one settling
/// it while the other edits the field: their judgements meet as a new conflict. (Choosing a
/// value the field held used to delete the others instead of writing it: of two different
/// choices one was left standing, and an edit made meanwhile won, with no conflict shown.)
#[test]
fn conflicts_settled_differently_at_once_meet_as_a_conflict_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, mut b, case, id) = two_stores_with_a_finding(&dir);
    let place = |p: &str| FindingEdit {
        place: Some(p.into()),
        ..FindingEdit::default()
    };
    a.edit_finding(case, id, &place("一号罐")).expect("a");
    b.edit_finding(case, id, &place("二号罐")).expect("b");
    a.merge_case(&b.export_case(case).expect("export"))
        .expect("merge");
    b.merge_case(&a.export_case(case).expect("export"))
        .expect("merge");
    let values = |store: &mut Store| -> Vec<String> {
        let conflicts = store.conflicts(case).expect("conflicts");
        let mut values: Vec<String> = conflicts
            .iter()
            .filter(|c| c.path.last().map(String::as_str) == Some("place"))
            .flat_map(|c| c.values.iter().map(|v| v.value.to_string()))
            .collect();
        values.sort();
        values
    };
    let choose = |store: &mut Store, wanted: &str| {
        let conflict = store
            .conflicts(case)
            .expect("conflicts")
            .into_iter()
            .find(|c| c.path.last().map(String::as_str) == Some("place"))
            .expect("a conflict on place");
        let index = conflict
            .values
            .iter()
            .position(|v| v.value == FieldValue::Text(wanted.into()))
            .expect("the value");
        store
            .resolve_conflict(case, &conflict.path, &Resolution::Choose(index))
            .expect("resolve");
    };
    let mut c = receiving(&dir, "c.db", "wang", &mut a, case);

    // Each settles it differently.
    choose(&mut a, "一号罐");
    choose(&mut b, "二号罐");
    a.merge_case(&b.export_case(case).expect("export"))
        .expect("merge");
    assert_eq!(values(&mut a), ["一号罐", "二号罐"]);

    // One settles it while another, who saw both values, writes a third.
    choose(&mut c, "二号罐");
    let mut d = receiving(&dir, "d.db", "zhao", &mut b, case);
    d.edit_finding(case, id, &place("三号罐")).expect("d");
    c.merge_case(&d.export_case(case).expect("export"))
        .expect("merge");
    assert_eq!(values(&mut c), ["三号罐", "二号罐"]);
}

#[test]
fn history_lists_each_change_with_author_device_and_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, case) = store_with_case(&dir, "a.db", "zhang");
    a.add_finding(case, &finding("A")).expect("finding");
    let mut b = receiving(&dir, "b.db", "li", &mut a, case);
    b.add_finding(case, &finding("B")).expect("finding");
    let history = b.history(case).expect("history");
    let rows: Vec<(&str, &str, bool)> = history
        .iter()
        .map(|h| {
            (
                h.author.as_str(),
                h.action.as_str(),
                h.device == b.device_id(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("zhang", "open_case", false),
            ("zhang", "add_finding", false),
            ("li", "add_finding", true)
        ]
    );
    let now = chrono::Utc::now().timestamp();
    assert!(history.iter().all(|h| (now - h.device_time).abs() < 600));
}

#[test]
fn merging_the_same_bytes_twice_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, case) = store_with_case(&dir, "a.db", "zhang");
    a.add_finding(case, &finding("A")).expect("finding");
    let bytes = a.export_case(case).expect("export");
    let mut b = certified(Store::open(dir.path().join("b.db"), inspector("li")).expect("b"));
    b.merge_case(&bytes).expect("first");
    b.merge_case(&bytes).expect("second");
    a.merge_case(&bytes).expect("own bytes");
    assert_eq!(b.heads(case).expect("b"), a.heads(case).expect("a"));
    assert_eq!(b.history(case).expect("h").len(), 2);
}

#[test]
fn many_writes_compact_into_a_snapshot_that_reloads_identically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    for i in 0..150 {
        store
            .add_finding(case, &finding(&format!("隐患{i}")))
            .expect("finding");
    }
    let before = store.export_case(case).expect("export");
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let chunks: i64 = conn
        .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
        .expect("count");
    assert!(
        chunks < 64,
        "chunks were folded into the snapshot ({chunks} left)"
    );
    drop(conn);
    let mut store = Store::open(&path, inspector("u1")).expect("reopen");
    assert_eq!(store.export_case(case).expect("export"), before);
    assert_eq!(store.case(case).expect("case").findings.len(), 150);
}

#[test]
fn records_and_changes_carry_the_store_clock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let visit = anjian_core::sample::visit_time();
    store.set_clock(std::sync::Arc::new(move || visit));
    let id = store
        .add_finding(case, &finding("安全出口堵塞"))
        .expect("finding");
    let recorded = store.case(case).expect("case").findings;
    let f = recorded.iter().find(|f| f.id == id).expect("finding");
    assert_eq!(f.recorded_at, visit);
    let last = store
        .history(case)
        .expect("history")
        .pop()
        .expect("a change");
    assert_eq!(
        (last.action.as_str(), last.device_time),
        ("add_finding", visit.timestamp())
    );
    store.set_clock(anjian_core::system_clock());
    store
        .add_finding(case, &finding("灭火器过期"))
        .expect("finding");
    let last = store
        .history(case)
        .expect("history")
        .pop()
        .expect("a change");
    assert!(last.device_time > visit.timestamp());
}

#[test]
fn an_amendment_links_to_the_case_of_the_same_enterprise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let mut amendment = new_case(&enterprise(1));
    amendment.amends = Some(case);
    let amending = store.open_case(&amendment).expect("amendment");
    assert_eq!(store.case(amending).expect("case").amends, Some(case));
    assert_eq!(store.case(case).expect("case").amends, None);
    let other = enterprise(2);
    store.register_enterprise(&other).expect("register");
    let mut wrong = new_case(&other);
    wrong.amends = Some(case);
    let err = store.open_case(&wrong).expect_err("another enterprise");
    assert!(
        matches!(err, anjian_core::Error::Invalid { field, .. } if field == "amends"),
        "{err}"
    );
    let mut unknown = new_case(&enterprise(1));
    unknown.amends = Some(anjian_core::CaseId::new());
    assert!(matches!(
        store.open_case(&unknown),
        Err(anjian_core::Error::NotFound { .. })
    ));
}

#[test]
fn reaffirming_a_value_in_conflict_stays_a_judgement_of_its_own() {
    // Automerge turns a put of the value that wins a conflict into a deletion of the
    // other values; an inspector who reaffirms it must still leave a value of their own,
    // which a concurrent different value then meets as a conflict.
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, case) = store_with_case(&dir, "a.db", "zhang");
    let id = a
        .add_finding(case, &finding("液氨储罐区无喷淋"))
        .expect("finding");
    let mut open = |name: &str| {
        let mut store = certified(
            Store::open(dir.path().join(format!("{name}.db")), inspector(name)).expect("store"),
        );
        store
            .merge_case(&a.export_case(case).expect("export"))
            .expect("receive");
        store
    };
    let (mut b, mut c) = (open("li"), open("wang"));
    let place = |store: &mut Store, place: &str| {
        let edit = FindingEdit {
            place: Some(place.into()),
            ..FindingEdit::default()
        };
        store.edit_finding(case, id, &edit).expect("edit");
    };
    place(&mut a, "一号车间");
    place(&mut b, "罐区");
    c.merge_case(&a.export_case(case).expect("export"))
        .expect("merge");
    c.merge_case(&b.export_case(case).expect("export"))
        .expect("merge");
    let winner = c.case(case).expect("case").findings[0].place.clone();
    place(&mut c, &winner);
    place(&mut a, "配电室");
    a.merge_case(&c.export_case(case).expect("export"))
        .expect("merge");
    let conflicts = a.conflicts(case).expect("conflicts");
    let values: BTreeSet<String> = conflicts
        .iter()
        .find(|c| c.path.last().map(String::as_str) == Some("place"))
        .expect("place is in conflict")
        .values
        .iter()
        .map(|v| v.value.to_string())
        .collect();
    assert_eq!(values, BTreeSet::from([winner, "配电室".to_owned()]));
}

/// Every change a store commits carries its device's signature, whatever the write: an
/// unsigned change could not travel through another phone.
#[test]
fn every_change_the_store_commits_is_signed() {
    use anjian_core::signing::SignedCase;
    use anjian_core::{AnswerInput, AnswerResult, PhotoTarget, sample};
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "zhang");
    let finding = store.add_finding(case, &finding("A")).expect("finding");
    store
        .edit_finding(
            case,
            finding,
            &FindingEdit {
                level: Some(Level::Major),
                ..FindingEdit::default()
            },
        )
        .expect("edit");
    let list = store.attach_checklist(case, "hot-work").expect("checklist");
    let item = store.case(case).expect("case").checklists[0].entries[0]
        .item
        .id
        .clone();
    store
        .answer_item(
            case,
            list,
            &item,
            &AnswerInput {
                result: AnswerResult::NonCompliant,
                note: "无作业票".into(),
                post: None,
                person: None,
            },
        )
        .expect("answer");
    let photo = store.ingest_photo(&sample::jpeg(16, 12)).expect("photo");
    store
        .attach_photo(case, &PhotoTarget::Finding(finding), &photo.sha256, "现场")
        .expect("attach");
    store
        .review(case, ReviewAction::Submit, "请审核")
        .expect("submit");
    let exported = SignedCase::decode(&store.export_case(case).expect("export")).expect("read");
    let changes = store.history(case).expect("history").len();
    assert!(changes >= 7, "{changes}");
    assert_eq!(exported.signatures.len(), changes, "every change is signed");
    let key = store.public_key();
    for signature in &exported.signatures {
        signature.verify(&key).expect("by this device's key");
    }
}

#[test]
fn a_hazard_s_follow_up_keeps_every_step_and_its_deadlines() {
    use anjian_core::{HazardAction, OnsiteMeasure, ReinspectionResult};
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut insp, case) = store_with_case(&dir, "insp.db", "u1");
    let chief_identity = anjian_core::Identity {
        role: anjian_core::Role::Supervisor,
        ..anjian_core::sample::inspector("chief")
    };
    let mut chief =
        certified(Store::open(dir.path().join("chief.db"), chief_identity).expect("store"));
    let hand_over = |from: &mut Store, to: &mut Store| {
        let bytes = from.export_case(case).expect("export");
        to.merge_case(&bytes).expect("merge");
    };
    let id = insp
        .add_finding(
            case,
            &anjian_core::NewFinding {
                level: Some(Level::Major),
                ..finding("液氨储罐区氨气泄漏报警装置失效")
            },
        )
        .expect("finding");
    insp.follow_up(
        case,
        id,
        &HazardStep::Onsite {
            measure: OnsiteMeasure::Evacuate,
            note: "责令罐区作业人员立即撤出".into(),
        },
    )
    .expect("on-site measure");
    insp.order_rectification(
        case,
        id,
        &RectificationOrder {
            measures: "更换报警探头并联锁".into(),
            deadline: date("2026-12-15"),
            responsible: "设备部经理".into(),
        },
    )
    .expect("order");
    // The deadline moves only by a recorded step.
    let err = insp
        .order_rectification(
            case,
            id,
            &RectificationOrder {
                measures: "更换报警探头并联锁".into(),
                deadline: date("2026-12-20"),
                responsible: "设备部经理".into(),
            },
        )
        .expect_err("a new deadline is an extension");
    assert!(err.to_string().contains("延期"), "{err}");
    let err = insp
        .follow_up(
            case,
            id,
            &HazardStep::Extend {
                deadline: date("2026-12-31"),
                reason: " ".into(),
            },
        )
        .expect_err("an extension has a reason");
    assert!(err.to_string().contains("理由"), "{err}");
    insp.follow_up(
        case,
        id,
        &HazardStep::Extend {
            deadline: date("2026-12-31"),
            reason: "探头到货延迟，企业书面申请".into(),
        },
    )
    .expect("extension");
    insp.follow_up(
        case,
        id,
        &HazardStep::Reinspect {
            result: ReinspectionResult::Fail,
            note: "探头已换，联锁未调试".into(),
            deadline: Some(date("2027-01-15")),
            escalation: String::new(),
        },
    )
    .expect("failed re-inspection");
    let f = &insp.case(case).expect("case").findings[0];
    let rect = f.rectification.as_ref().expect("ordered");
    assert_eq!(rect.state, RectificationState::InProgress);
    assert_eq!(rect.deadline, date("2027-01-15"));
    let moves: Vec<_> = f
        .events
        .iter()
        .filter_map(|e| Some((e.previous_deadline?, e.step.new_deadline()?)))
        .collect();
    assert_eq!(
        moves,
        [
            (date("2026-12-15"), date("2026-12-31")),
            (date("2026-12-31"), date("2027-01-15"))
        ],
        "every deadline is kept"
    );
    // The supervisor lists the hazard; the enterprise's plan and progress are recorded.
    hand_over(&mut insp, &mut chief);
    let err = insp
        .follow_up(case, id, &listing())
        .expect_err("an inspector does not list");
    assert!(err.to_string().contains("监管负责人"), "{err}");
    chief.follow_up(case, id, &listing()).expect("listing");
    chief
        .follow_up(
            case,
            id,
            &HazardStep::Plan {
                measures: "更换全部探头，增设联锁切断".into(),
                funds: "12万元".into(),
                responsible: "总经理".into(),
                interim: "每两小时人工巡检并便携式检测".into(),
            },
        )
        .expect("plan");
    hand_over(&mut chief, &mut insp);
    insp.follow_up(
        case,
        id,
        &HazardStep::Progress {
            text: "探头已全部更换".into(),
        },
    )
    .expect("progress");
    insp.follow_up(case, id, &HazardStep::pass("联锁调试完成，复查合格"))
        .expect("passed");
    let heads = insp.heads(case).expect("heads");
    let err = insp
        .follow_up(case, id, &HazardStep::close())
        .expect_err("a major hazard is closed by the district's supervisors");
    assert!(err.to_string().contains("销号"), "{err}");
    assert_eq!(insp.heads(case).expect("heads"), heads, "nothing recorded");
    hand_over(&mut insp, &mut chief);
    let early = HazardStep::Delist {
        note: "已整改".into(),
    };
    let err = chief
        .follow_up(case, id, &early)
        .expect_err("delisted only once closed");
    assert!(err.to_string().contains("摘牌"), "{err}");
    chief
        .follow_up(case, id, &HazardStep::close())
        .expect("closed");
    chief.follow_up(case, id, &early).expect("delisted");
    let f = &chief.case(case).expect("case").findings[0];
    let kinds: Vec<HazardAction> = f.events.iter().map(|e| e.step.action()).collect();
    use HazardAction::*;
    assert_eq!(
        kinds,
        [
            Onsite, Extend, Reinspect, List, Plan, Progress, Reinspect, Close, Delist
        ]
    );
    assert!(f.listing().is_none(), "delisted");
    let rect = f.rectification.as_ref().expect("ordered");
    assert_eq!(rect.state, RectificationState::Closed);
    let last = rect.reinspection.as_ref().expect("re-inspected");
    assert_eq!(
        (last.result, last.by.as_str()),
        (ReinspectionResult::Pass, "u1")
    );
    assert_eq!(f.onsite_measures().count(), 1);
}

fn listing() -> HazardStep {
    HazardStep::List {
        authority: "区安全生产委员会办公室".into(),
        number: "黄安委办督〔2026〕3号".into(),
        deadline: date("2027-02-28"),
    }
}

/// A device key file that cannot be looked at (here a symlink loop; on a phone an I/O
/// error) is an error, not a sign that the store was restored without its key: the
/// device stays the device it was once the file can be read again.
#[cfg(unix)]
#[test]
fn a_key_file_that_cannot_be_read_keeps_the_device_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    let key = dir.path().join("a.db.key");
    let device = Store::open(&path, inspector("u1"))
        .expect("store")
        .device_id();
    std::fs::rename(&key, dir.path().join("kept")).expect("move the key away");
    std::os::unix::fs::symlink(&key, &key).expect("a symlink loop");
    assert!(Store::open(&path, inspector("u1")).is_err());
    std::fs::remove_file(&key).expect("loop gone");
    std::fs::rename(dir.path().join("kept"), &key).expect("key back");
    assert_eq!(
        Store::open(&path, inspector("u1"))
            .expect("store")
            .device_id(),
        device
    );
}
