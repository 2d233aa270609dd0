//! The server's policy on what a change may do, checked on cases read from real
//! documents: review states by role, the approved-case lock, and closing rectifications.

use anjian_core::{Case, RectificationState, Reinspection, ReviewState, sample};
use anjian_sync_server::policy::refuse_change;
use anjian_sync_server::users::{Role, User};

use crate::support::record_case;

fn user(role: Role) -> User {
    User {
        id: 1,
        username: "someone".into(),
        name: "某人".into(),
        role,
        district: "310101".parse().expect("district"),
        department: "应急管理".into(),
        disabled: false,
    }
}

/// A case with one finding whose rectification was ordered.
fn case() -> Case {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = record_case(dir.path(), "u1", "310101", 1);
    store.case(case).expect("read")
}

fn with_state(case: &Case, state: ReviewState) -> Case {
    Case {
        state,
        ..case.clone()
    }
}

fn with_rectification(case: &Case, state: RectificationState, note: bool) -> Case {
    let mut after = case.clone();
    let rect = after.findings[0].rectification.as_mut().expect("ordered");
    rect.state = state;
    rect.reinspection = note.then(|| Reinspection {
        note: "复查合格".into(),
        by: "u1".into(),
        at: sample::visit_time(),
    });
    after
}

fn with_event(case: &Case, kind: &str, by: &str) -> Case {
    let mut after = case.clone();
    after.review_events.push(anjian_core::ReviewEvent {
        kind: kind.into(),
        by: by.into(),
        at: "2026-11-29T10:00:00+08:00".into(),
        text: "已阅".into(),
    });
    after
}

fn with_note(case: &Case, state: RectificationState, note: &str) -> Case {
    let mut after = with_rectification(case, state, true);
    let rect = after.findings[0].rectification.as_mut().expect("ordered");
    if let Some(r) = rect.reinspection.as_mut() {
        r.note = note.into();
    }
    after
}

#[test]
fn changes_are_refused_or_allowed_by_role_state_and_evidence() {
    let draft = case();
    let submitted = with_state(&draft, ReviewState::Submitted);
    let approved = with_event(
        &with_state(&draft, ReviewState::Approved),
        "approve",
        "chief",
    );
    let commented = with_event(&approved, "comment", "someone");
    let forged = with_event(&approved, "comment", "chief");
    let erased = with_state(&draft, ReviewState::Approved);
    let self_approved = with_event(&submitted, "approve", "someone");
    let reinspected_bare = with_rectification(&draft, RectificationState::Reinspected, false);
    let reinspected = with_rectification(&draft, RectificationState::Reinspected, true);
    let closed = with_rectification(&draft, RectificationState::Closed, true);
    let closed_blank = with_note(&draft, RectificationState::Closed, "  ");
    let closed_stripped = with_rectification(&draft, RectificationState::Closed, false);
    let reordered = with_rectification(&closed, RectificationState::Ordered, true);
    let edited = {
        let mut c = approved.clone();
        c.findings[0].place = "三号车间".into();
        c
    };
    let reopened = with_state(&approved, ReviewState::Returned);
    let reopened_and_edited = with_state(&edited, ReviewState::Returned);
    use Role::*;
    // (who, before, after, refused with a reason containing …)
    let cases: &[(Role, Option<&Case>, &Case, Option<&str>)] = &[
        // Review states move as the review actions do; only supervisors decide.
        (Inspector, Some(&draft), &submitted, None),
        (Inspector, None, &submitted, None),
        (
            Inspector,
            Some(&submitted),
            &with_state(&submitted, ReviewState::Approved),
            Some("只有监管负责人"),
        ),
        (
            Inspector,
            Some(&submitted),
            &with_state(&draft, ReviewState::Returned),
            Some("只有监管负责人"),
        ),
        (
            Inspector,
            None,
            &with_state(&draft, ReviewState::Approved),
            Some("只有监管负责人"),
        ),
        (
            Supervisor,
            Some(&submitted),
            &with_state(&submitted, ReviewState::Approved),
            None,
        ),
        (
            Supervisor,
            Some(&draft),
            &with_state(&draft, ReviewState::Approved),
            None,
        ),
        // The trail only grows, each event in its sender's name; inspectors only submit
        // and comment.
        (
            Inspector,
            Some(&submitted),
            &self_approved,
            Some("只有监管负责人"),
        ),
        (Supervisor, Some(&approved), &forged, Some("本人的名义")),
        (Supervisor, Some(&approved), &erased, Some("不能修改或删除")),
        (
            Inspector,
            Some(&draft),
            &with_event(&draft, "comment", "someone"),
            None,
        ),
        // An approved case is locked but for a comment or a supervisor reopening it.
        (
            Inspector,
            Some(&approved),
            &edited,
            Some("已审核通过并锁定"),
        ),
        (
            Supervisor,
            Some(&approved),
            &edited,
            Some("已审核通过并锁定"),
        ),
        (Admin, Some(&approved), &edited, Some("已审核通过并锁定")),
        (Inspector, Some(&approved), &commented, None),
        (Supervisor, Some(&approved), &commented, None),
        (Supervisor, Some(&approved), &reopened, None),
        (
            Inspector,
            Some(&approved),
            &reopened,
            Some("已审核通过并锁定"),
        ),
        (
            Supervisor,
            Some(&approved),
            &reopened_and_edited,
            Some("已审核通过并锁定"),
        ),
        // Rectifications go forward only, and need evidence that then stays.
        (Inspector, Some(&draft), &reinspected_bare, Some("复查佐证")),
        (
            Supervisor,
            Some(&draft),
            &reinspected_bare,
            Some("复查佐证"),
        ),
        (Inspector, Some(&draft), &reinspected, None),
        (Inspector, Some(&draft), &closed, None),
        (Inspector, Some(&draft), &closed_blank, Some("复查佐证")),
        (Inspector, Some(&closed), &closed_stripped, Some("复查佐证")),
        (Inspector, Some(&closed), &reordered, Some("不能从")),
    ];
    for (i, (role, before, after, expected)) in cases.iter().enumerate() {
        let got = refuse_change(&user(*role), *before, after);
        match (expected, &got) {
            (None, None) => {}
            (Some(part), Some(reason)) if reason.contains(part) => {}
            _ => panic!("case {i} ({role:?}): expected {expected:?}, got {got:?}"),
        }
    }
}
