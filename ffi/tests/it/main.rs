//! The exported API called from Rust the way the generated bindings call it: owned records
//! in, owned records out, errors as `AnjianError`, from several threads at once.

use std::sync::Arc;
use std::thread;

use anjian_ffi::{
    AnjianError, CaseQuery, CaseType, Enterprise, FieldValue, FindingEdit, FindingQuery, Identity,
    Industry, InspectorStore, Level, NewCase, NewFinding, PhotoTarget, Resolution, RiskGrade,
    SyncHandle,
};

const CREDIT_CODE: &str = "91310101MA0000001M";
const VISIT: &str = "2026-11-20T09:30:00+08:00";

fn identity(user: &str) -> Identity {
    Identity {
        user_id: user.to_owned(),
        name: format!("检查员{user}"),
        department: "应急管理".to_owned(),
        district: "310101".to_owned(),
        role: "inspector".to_owned(),
    }
}

fn enterprise(credit_code: &str) -> Enterprise {
    Enterprise {
        credit_code: credit_code.to_owned(),
        name: "上海滨江化工有限公司".to_owned(),
        district: "310101".to_owned(),
        industry: Industry::HazardousChemicals,
        risk_grade: RiskGrade::Significant,
    }
}

fn finding(description: &str) -> NewFinding {
    NewFinding {
        description: description.to_owned(),
        level: None,
        category: String::new(),
        legal_basis: String::new(),
        place: String::new(),
        violation: None,
    }
}

/// `user`'s store with a case; its key certified first (by the sample server all such
/// stores trust, as a sign-in would), so that stores hand each other case files.
fn store_with_case(dir: &std::path::Path, user: &str) -> (Arc<InspectorStore>, String) {
    let path = dir.join(format!("{user}.db"));
    {
        let mut core =
            anjian_core::Store::open(&path, anjian_core::sample::inspector(user)).expect("open");
        anjian_core::sample::certify(&mut [&mut core]).expect("certified");
    }
    let store = InspectorStore::open(path.display().to_string(), identity(user)).expect("open");
    store
        .register_enterprise(enterprise(CREDIT_CODE))
        .expect("register");
    let case = store
        .open_case(NewCase {
            enterprise: CREDIT_CODE.to_owned(),
            case_type: CaseType::Routine,
            opened_at: VISIT.to_owned(),
            district: None,
            visible_to: Vec::new(),
            team: Vec::new(),
            location: None,
            amends: None,
        })
        .expect("open case");
    (store, case)
}

#[test]
fn exported_objects_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<InspectorStore>();
    assert_send_sync::<SyncHandle>();
    assert_send_sync::<AnjianError>();
}

#[test]
fn a_bad_credit_code_is_a_validation_error_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = store_with_case(dir.path(), "zhang");
    let error = store
        .register_enterprise(enterprise("91310101MA00000010"))
        .expect_err("wrong check character");
    assert!(
        matches!(&error, AnjianError::Validation { field, .. } if field == "credit_code"),
        "{error:?}"
    );
    assert_eq!(store.enterprises().expect("list").len(), 1);
}

#[test]
fn bad_times_ids_and_unknown_records_are_typed_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, case) = store_with_case(dir.path(), "zhang");
    let error = store
        .open_case(NewCase {
            enterprise: CREDIT_CODE.to_owned(),
            case_type: CaseType::Routine,
            opened_at: "2026-11-20 09:30".to_owned(),
            district: None,
            visible_to: Vec::new(),
            team: Vec::new(),
            location: None,
            amends: None,
        })
        .expect_err("not RFC 3339");
    assert!(matches!(&error, AnjianError::Validation { field, .. } if field == "opened_at"));
    let error = store.case("not-a-uuid".to_owned()).expect_err("bad id");
    assert!(matches!(&error, AnjianError::Validation { field, .. } if field == "case_id"));
    let error = store
        .edit_finding(
            case,
            "00000000-0000-4000-8000-000000000000".to_owned(),
            FindingEdit::default(),
        )
        .expect_err("no such finding");
    assert!(
        matches!(&error, AnjianError::NotFound { what, .. } if what == "finding"),
        "{error:?}"
    );
}

#[test]
fn two_stores_merge_and_resolve_a_level_conflict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (zhang, case) = store_with_case(dir.path(), "zhang");
    let (li, _) = store_with_case(dir.path(), "li");
    let finding = zhang
        .add_finding(case.clone(), finding("储罐区可燃气体报警器故障"))
        .expect("finding");
    li.merge_case(zhang.export_case(case.clone()).expect("export"))
        .expect("merge");
    zhang
        .set_finding_level(case.clone(), finding.clone(), Level::Major)
        .expect("major");
    li.set_finding_level(case.clone(), finding.clone(), Level::General)
        .expect("general");
    zhang
        .merge_case(li.export_case(case.clone()).expect("export"))
        .expect("merge");

    let conflicts = zhang.conflicts(case.clone()).expect("conflicts");
    let level = conflicts
        .iter()
        .find(|c| c.path.last().map(String::as_str) == Some("level"))
        .expect("level conflict");
    let mut writers: Vec<_> = level
        .values
        .iter()
        .map(|v| (v.written_by.clone(), v.display.clone()))
        .collect();
    writers.sort();
    assert_eq!(
        writers,
        [
            ("li".to_owned(), "general".to_owned()),
            ("zhang".to_owned(), "major".to_owned())
        ]
    );
    assert!(zhang.cases(default_query()).expect("cases")[0].has_conflicts);
    zhang
        .resolve_conflict(
            case.clone(),
            level.path.clone(),
            Resolution::Write {
                value: FieldValue::Text {
                    value: "major".to_owned(),
                },
            },
        )
        .expect("resolve");
    assert!(zhang.conflicts(case.clone()).expect("conflicts").is_empty());
    let majors = zhang
        .findings(FindingQuery {
            case_id: Some(case),
            level: Some(Level::Major),
            rectification: None,
            limit: 100,
            offset: 0,
        })
        .expect("findings");
    assert_eq!(majors.len(), 1);
}

#[test]
fn a_photo_that_is_not_an_image_is_refused_as_validation_of_the_photo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, case) = store_with_case(dir.path(), "zhang");
    let error = store
        .ingest_photo(b"not a photo at all".to_vec())
        .expect_err("not an image");
    assert!(matches!(&error, AnjianError::Validation { field, .. } if field == "photo"));
    let error = store
        .attach_photo(
            case,
            PhotoTarget::Finding {
                finding_id: "00000000-0000-4000-8000-000000000000".to_owned(),
            },
            "00".repeat(32),
            String::new(),
        )
        .expect_err("no such photo");
    assert!(matches!(error, AnjianError::NotFound { .. }), "{error:?}");
}

#[test]
fn calls_from_many_threads_at_once_all_land() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, case) = store_with_case(dir.path(), "zhang");
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let store = store.clone();
            let case = case.clone();
            thread::spawn(move || {
                for n in 0..10 {
                    store
                        .add_finding(case.clone(), finding(&format!("线程{worker}的隐患{n}")))
                        .expect("add");
                    store.cases(default_query()).expect("list");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker finished");
    }
    assert_eq!(store.case(case).expect("case").findings.len(), 80);
}

#[test]
fn a_closed_store_refuses_calls_with_a_storage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = store_with_case(dir.path(), "zhang");
    store.close_store();
    assert!(store.is_closed());
    assert!(matches!(
        store.enterprises(),
        Err(AnjianError::Storage { .. })
    ));
}

fn default_query() -> CaseQuery {
    CaseQuery {
        enterprise: None,
        district: None,
        state: None,
        from: None,
        to: None,
        limit: 50,
        offset: 0,
    }
}
