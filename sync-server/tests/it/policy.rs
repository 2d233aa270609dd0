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

#[test]
fn changes_are_refused_or_allowed_by_role_state_and_evidence() {
    let draft = case();
    let submitted = with_state(&draft, ReviewState::Submitted);
    let approved = with_state(&draft, ReviewState::Approved);
    let mut commented = approved.clone();
    commented.review_events.push(anjian_core::ReviewEvent {
        kind: "comment".into(),
        by: "chief".into(),
        at: "2026-11-29T10:00:00+08:00".into(),
        text: "已阅".into(),
    });
    let closed_bare = with_rectification(&draft, RectificationState::Reinspected, false);
    let closed_noted = with_rectification(&draft, RectificationState::Reinspected, true);
    let edited = {
        let mut c = approved.clone();
        c.findings[0].place = "三号车间".into();
        c
    };
    use Role::*;
    // (who, before, after, refused with a reason containing …)
    let cases: &[(Role, Option<&Case>, &Case, Option<&str>)] = &[
        (Inspector, Some(&draft), &submitted, None),
        (
            Inspector,
            Some(&submitted),
            &approved,
            Some("只有监管负责人"),
        ),
        (
            Inspector,
            Some(&submitted),
            &with_state(&draft, ReviewState::Returned),
            Some("只有监管负责人"),
        ),
        (Inspector, None, &approved, Some("只有监管负责人")),
        (Supervisor, Some(&submitted), &approved, None),
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
        (Supervisor, Some(&approved), &commented, None),
        (
            Supervisor,
            Some(&approved),
            &with_state(&draft, ReviewState::Returned),
            None,
        ),
        (Admin, Some(&approved), &edited, None),
        (Inspector, Some(&draft), &closed_bare, Some("复查佐证")),
        (Supervisor, Some(&draft), &closed_bare, Some("复查佐证")),
        (Inspector, Some(&draft), &closed_noted, None),
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
