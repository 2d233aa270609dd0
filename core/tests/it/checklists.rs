//! Checklist templates: every shipped one loads, broken ones are refused precisely, and
//! answering them inside a case works, merges and is counted.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anjian_core::checklist::Standards;
use anjian_core::{
    AnswerInput, AnswerResult, Catalog, Error, Level, Store, TemplateError, TemplateKind,
    ViolationKind,
};

use crate::support::*;

fn checklists_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../checklists")
}

const CATEGORIES: &str = include_str!("../../../checklists/categories.toml");

#[test]
fn every_shipped_template_loads_and_is_built_in() {
    let from_dir = Catalog::load_dir(&checklists_dir()).unwrap_or_else(|e| panic!("{e}"));
    let builtin = Catalog::builtin();
    let ids = |c: &Catalog| {
        c.templates()
            .map(|t| (t.id.clone(), t.version.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&from_dir),
        ids(&builtin),
        "every file in checklists/ is built in, at the same version"
    );
    let kinds: BTreeSet<TemplateKind> = builtin.templates().map(|t| t.kind).collect();
    assert_eq!(
        kinds.len(),
        4,
        "three violations, special operations, major hazards and routine lists"
    );
    assert!(builtin.templates().count() >= 17);
    let criteria = builtin
        .get("hazchem-major-hazard-criteria")
        .expect("major-hazard criteria");
    assert_eq!(criteria.items.len(), 20);
    assert!(criteria.items.iter().all(|i| i.level == Level::Major));
    // Every shipped template is in the lock, so no released item can silently change.
    assert_eq!(
        from_dir.released(),
        toml_lock(),
        "checklists/released.lock is up to date"
    );
}

#[test]
fn templates_drawn_from_one_document_hold_the_clauses_read_and_no_other() {
    // Each template ships only the clauses read in its source; a clause added or dropped
    // without reading the text shows up here as a changed count or a foreign citation.
    let catalog = Catalog::builtin();
    for (id, kind, items, cited) in [
        (
            "work-safety-law-basics",
            TemplateKind::Routine,
            18,
            "《中华人民共和国安全生产法》第",
        ),
        (
            "construction-major-hazard",
            TemplateKind::MajorHazard,
            16,
            "《房屋市政工程生产安全重大事故隐患判定标准（2022版）》（建质规〔2022〕2号）第",
        ),
        (
            "building-materials-major-hazard",
            TemplateKind::MajorHazard,
            8,
            "《工贸企业重大事故隐患判定标准》（应急管理部令第10号）第六条（",
        ),
        (
            "dust-explosion-major-hazard",
            TemplateKind::MajorHazard,
            8,
            "《工贸企业重大事故隐患判定标准》（应急管理部令第10号）第十一条（",
        ),
    ] {
        let template = catalog
            .get(id)
            .unwrap_or_else(|| panic!("{id} is built in"));
        assert_eq!(template.kind, kind, "{id}");
        assert_eq!(template.items.len(), items, "{id}");
        for item in &template.items {
            assert!(
                item.basis.starts_with(cited),
                "{id}: {} cites {}",
                item.id,
                item.basis
            );
            let level = if kind == TemplateKind::MajorHazard {
                Level::Major
            } else {
                Level::General
            };
            assert_eq!(item.level, level, "{id}: {}", item.id);
        }
    }
}

#[test]
fn every_item_has_a_basis_and_a_level_and_an_id_of_its_own_across_the_catalog() {
    let catalog = Catalog::builtin();
    let mut owners = std::collections::BTreeMap::new();
    for template in catalog.templates() {
        assert!(
            !template.source.trim().is_empty(),
            "{} names its source",
            template.id
        );
        for item in &template.items {
            assert!(
                !item.basis.trim().is_empty(),
                "{}: {} has a basis",
                template.id,
                item.id
            );
            assert!(
                matches!(item.level, Level::General | Level::Major),
                "{}: {} has a level",
                template.id,
                item.id
            );
            // Answers are stored per template, but the prefixes keep ids unique across the
            // catalog, so a finding's item id alone names its question.
            if let Some(other) = owners.insert(item.id.clone(), template.id.clone()) {
                panic!("item id {} is used by {other} and {}", item.id, template.id);
            }
        }
    }
}

#[test]
fn every_shipped_citation_is_to_a_standard_in_force() {
    let standards = Standards::builtin().unwrap_or_else(|e| panic!("{e}"));
    let errors = standards.check_catalog(&Catalog::builtin());
    assert!(
        errors.is_empty(),
        "citations not on the current list of checklists/standards.toml:\n{}",
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn citing_a_superseded_standard_fails_naming_its_successor() {
    let standards = Standards::builtin().unwrap_or_else(|e| panic!("{e}"));
    for (basis, successor) in [
        (
            "TSG N0001-2017《场（厂）内专用机动车辆安全技术监察规程》",
            "TSG 81-2022",
        ),
        ("TSG N0001", "TSG 81-2022"),
        (
            "《施工现场临时用电安全技术规范》JGJ 46-2005",
            "JGJ/T 46-2024",
        ),
        ("GB 30871-2014 动火作业要求", "GB 30871-2022"),
        ("《粉尘防爆安全规程》GB 15577-2007", "GB 15577-2018"),
    ] {
        let catalog = load(&GOOD.replace("GB 30871-2022 5.2.1", basis), "").expect("loads");
        let errors = standards.check_catalog(&catalog);
        assert!(!errors.is_empty(), "{basis} is refused");
        for error in &errors {
            assert_eq!(error.item.as_deref(), Some("s-001"), "{error}");
            assert!(
                error
                    .problem
                    .contains(&format!("superseded by {successor}")),
                "{basis}: {error}"
            );
        }
    }
    let unknown = load(&GOOD.replace("GB 30871-2022 5.2.1", "GB 99999-2099"), "").expect("loads");
    let errors = standards.check_catalog(&unknown);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].problem.contains("not on the current list"),
        "{}",
        errors[0]
    );
    assert!(
        standards
            .check_catalog(&load(GOOD, "").expect("loads"))
            .is_empty()
    );
}

fn toml_lock() -> anjian_core::checklist::Released {
    let text = std::fs::read_to_string(checklists_dir().join("released.lock")).expect("lock");
    toml::from_str(&text).expect("lock parses")
}

const GOOD: &str = r#"
id = "sample"
title = "示例检查表"
kind = "special_operation"
operation = "hot_work"
description = "用于测试。"
source = "GB 30871-2022《危险化学品企业特殊作业安全规范》（2022-10-01实施）"

[[items]]
id = "s-001"
text = "动火作业已办理动火安全作业票"
category = "作业许可"
basis = "GB 30871-2022 5.2.1"
level = "major"

[[items]]
id = "s-002"
text = "动火点周围可燃物已清理"
category = "现场管理"
basis = "GB 30871-2022 动火作业要求"
level = "general"
"#;

fn load(text: &str, released: &str) -> Result<Catalog, TemplateError> {
    Catalog::from_sources(&[("sample.toml", text)], CATEGORIES, released)
}

#[test]
fn broken_templates_are_refused_with_file_item_and_reason() {
    assert!(load(GOOD, "").is_ok());
    let check = |text: String, released: &str, item: Option<&str>, needle: &str| {
        let err = load(&text, released).expect_err(needle);
        assert_eq!(err.file, "sample.toml");
        assert_eq!(err.item.as_deref(), item, "{err}");
        assert!(
            err.to_string().contains(needle),
            "expected {needle:?} in: {err}"
        );
    };
    check(
        GOOD.replace("id = \"s-002\"", "id = \"s-001\""),
        "",
        Some("s-001"),
        "duplicate item id",
    );
    check(
        GOOD.replace("\"现场管理\"", "\"随便写的\""),
        "",
        Some("s-002"),
        "unknown category \"随便写的\"",
    );
    check(
        GOOD.replace("text = \"动火点周围可燃物已清理\"", "text = \"  \""),
        "",
        Some("s-002"),
        "text is empty",
    );
    check(
        GOOD.replace("basis = \"GB 30871-2022 动火作业要求\"", "basis = \"\""),
        "",
        Some("s-002"),
        "basis is empty",
    );
    check(
        GOOD.replace("basis = \"GB 30871-2022 动火作业要求\"\n", ""),
        "",
        None,
        "missing field `basis`",
    );
    check(
        GOOD.replace("level = \"general\"", "level = \"medium\""),
        "",
        None,
        "\"medium\" is not one of",
    );
    check(
        GOOD.replace("title = \"示例检查表\"", "title = \"示例检查表"),
        "",
        None,
        "invalid TOML",
    );
    check(
        GOOD.replace("description", "descripton"),
        "",
        None,
        "unknown field `descripton`",
    );
    check(
        GOOD.replace("id = \"sample\"", "id = \"other\""),
        "",
        None,
        "must equal the file name",
    );
    check(
        GOOD.replace("source = ", "# source = "),
        "",
        None,
        "missing field `source`",
    );
    check(
        GOOD.replace("（2022-10-01实施）", "")
            .replace("GB 30871-2022", "GB 30871"),
        "",
        None,
        "names no date",
    );
    check(
        GOOD.replace("operation = \"hot_work\"\n", ""),
        "",
        None,
        "operation is required",
    );
    check(
        GOOD.replace(
            "kind = \"special_operation\"\noperation = \"hot_work\"",
            "kind = \"three_violations\"",
        ),
        "",
        Some("s-001"),
        "unknown category \"作业许可\"",
    );
    // An item id that was released for one question and now asks another.
    let released = "[sample]\ns-002 = \"动火点周围可燃物已清理\"\n";
    assert!(load(GOOD, released).is_ok());
    check(
        GOOD.replace("动火点周围可燃物已清理", "动火作业人员持有特种作业操作证"),
        released,
        Some("s-002"),
        "the id was released for",
    );
}

#[test]
fn the_version_is_a_hash_of_the_content() {
    let a = load(GOOD, "").expect("loads");
    let reformatted = load(&GOOD.replace("\n\n", "\n\n\n"), "").expect("loads");
    let changed = load(
        &GOOD.replace("GB 30871-2022 5.2.1", "GB 30871-2022 5.2.2"),
        "",
    )
    .expect("loads");
    let version = |c: &Catalog| c.get("sample").expect("sample").version.clone();
    assert_eq!(version(&a).len(), 64);
    assert_eq!(
        version(&a),
        version(&reformatted),
        "layout does not change the version"
    );
    assert_ne!(version(&a), version(&changed), "content does");
}

#[test]
fn a_non_compliant_three_violation_answer_becomes_a_prefilled_finding() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let checklist = store
        .attach_checklist(case, "hazchem-three-violations")
        .expect("attach");
    let template = Catalog::builtin()
        .get("hazchem-three-violations")
        .expect("template")
        .clone();
    let item = template
        .items
        .iter()
        .find(|i| i.posts.len() > 1)
        .expect("an item for several posts");
    let post = item.posts[1].clone();
    let finding = store
        .answer_item(
            case,
            checklist,
            &item.id,
            &AnswerInput {
                result: AnswerResult::NonCompliant,
                note: "现场发现".into(),
                post: Some(post.clone()),
                person: Some("王某".into()),
            },
        )
        .expect("answer")
        .expect("a finding is created");
    let read = store.case(case).expect("case");
    let f = read
        .findings
        .iter()
        .find(|f| f.id == finding)
        .expect("finding in case");
    assert_eq!(f.level, item.level);
    assert_eq!(f.legal_basis, item.basis);
    assert_eq!(f.category, item.category);
    assert!(f.description.contains(&item.text) && f.description.contains("现场发现"));
    let violation = f.violation.as_ref().expect("a three-violations record");
    assert_eq!(
        violation.kind,
        item.category
            .parse::<ViolationKind>()
            .expect("category is a violation kind")
    );
    assert_eq!(
        (violation.post.as_str(), violation.person.as_str()),
        (post.as_str(), "王某")
    );
    assert_eq!(
        f.source.as_ref().map(|s| (s.checklist, s.item.as_str())),
        Some((checklist, item.id.as_str()))
    );

    let attached = &read.checklists[0];
    assert_eq!(attached.version, template.version);
    assert_eq!(attached.entries.len(), template.items.len());
    let entry = attached
        .entries
        .iter()
        .find(|e| e.item.id == item.id)
        .expect("entry");
    let answer = entry.answer.as_ref().expect("answered");
    assert_eq!(
        (answer.result, answer.finding, answer.answered_by.as_str()),
        (AnswerResult::NonCompliant, Some(finding), "u1")
    );

    // Answering again does not duplicate the finding.
    let again = store
        .answer_item(
            case,
            checklist,
            &item.id,
            &AnswerInput {
                result: AnswerResult::NonCompliant,
                note: String::new(),
                post: None,
                person: None,
            },
        )
        .expect("answer again");
    assert_eq!(again, Some(finding));
    assert_eq!(store.case(case).expect("case").findings.len(), 1);
}

#[test]
fn a_case_carries_several_checklists_and_compliant_answers_create_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let hot = store.attach_checklist(case, "hot-work").expect("hot work");
    let confined = store
        .attach_checklist(case, "confined-space")
        .expect("confined space");
    let ok = AnswerInput {
        result: AnswerResult::Compliant,
        note: String::new(),
        post: None,
        person: None,
    };
    assert_eq!(
        store.answer_item(case, hot, "hw-001", &ok).expect("answer"),
        None
    );
    let na = AnswerInput {
        result: AnswerResult::NotApplicable,
        ..ok.clone()
    };
    assert_eq!(
        store
            .answer_item(case, confined, "cs-001", &na)
            .expect("answer"),
        None
    );
    let read = store.case(case).expect("case");
    let ids: Vec<&str> = read
        .checklists
        .iter()
        .map(|c| c.template_id.as_str())
        .collect();
    assert_eq!(ids, ["hot-work", "confined-space"]);
    assert!(read.findings.is_empty());
}

#[test]
fn answering_what_is_not_attached_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let err = store
        .attach_checklist(case, "no-such-template")
        .expect_err("unknown template");
    assert!(
        matches!(
            err,
            Error::NotFound {
                what: "checklist template",
                ..
            }
        ),
        "{err}"
    );
    let checklist = store
        .attach_checklist(case, "hazchem-three-violations")
        .expect("attach");
    let input = AnswerInput {
        result: AnswerResult::NonCompliant,
        note: String::new(),
        post: None,
        person: None,
    };
    let err = store
        .answer_item(case, checklist, "hw-001", &input)
        .expect_err("item of another template");
    assert!(matches!(err, Error::Invalid { field: "item", .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not in template hazchem-three-violations"),
        "{err}"
    );
    let err = store
        .answer_item(case, anjian_core::ChecklistId::new(), "hc-tv-001", &input)
        .expect_err("unknown checklist");
    assert!(
        matches!(
            err,
            Error::NotFound {
                what: "checklist",
                ..
            }
        ),
        "{err}"
    );
    let wrong_post = AnswerInput {
        post: Some("厨师".into()),
        ..input
    };
    let err = store
        .answer_item(case, checklist, "hc-tv-001", &wrong_post)
        .expect_err("post not in item");
    assert!(matches!(err, Error::Invalid { field: "post", .. }), "{err}");
    assert!(
        store.case(case).expect("case").findings.is_empty(),
        "nothing was recorded"
    );
}

#[test]
fn concurrent_answers_to_one_item_are_a_conflict_and_answers_merge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, case) = store_with_case(&dir, "a.db", "zhang");
    let checklist = a.attach_checklist(case, "hot-work").expect("attach");
    let mut b = certified(Store::open(dir.path().join("b.db"), inspector("li")).expect("b"));
    b.merge_case(&a.export_case(case).expect("export"))
        .expect("receive");
    let answer = |result| AnswerInput {
        result,
        note: String::new(),
        post: None,
        person: None,
    };
    a.answer_item(case, checklist, "hw-001", &answer(AnswerResult::Compliant))
        .expect("a");
    let finding = b
        .answer_item(
            case,
            checklist,
            "hw-001",
            &answer(AnswerResult::NonCompliant),
        )
        .expect("b");
    b.answer_item(case, checklist, "hw-002", &answer(AnswerResult::Compliant))
        .expect("b");
    a.merge_case(&b.export_case(case).expect("export"))
        .expect("merge");

    let conflicts = a.conflicts(case).expect("conflicts");
    let result = conflicts
        .iter()
        .find(|c| c.path.last().map(String::as_str) == Some("result"))
        .expect("the two answers to hw-001 conflict");
    assert_eq!(
        result.path[..4],
        [
            "checklists".to_owned(),
            checklist.to_string(),
            "answers".into(),
            "hw-001".into()
        ]
    );
    let writers: BTreeSet<&str> = result
        .values
        .iter()
        .map(|v| v.written_by.as_str())
        .collect();
    assert_eq!(writers, BTreeSet::from(["li", "zhang"]));
    let read = a.case(case).expect("case");
    assert!(
        read.findings.iter().any(|f| Some(f.id) == finding),
        "li's finding arrived"
    );
    let answered = read.checklists[0]
        .entries
        .iter()
        .filter(|e| e.answer.is_some())
        .count();
    assert_eq!(answered, 2);
    assert!(a.cases(&anjian_core::CaseQuery::default()).expect("cases")[0].has_conflicts);
}

#[test]
fn an_old_case_keeps_the_questions_it_was_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    let v1 = Arc::new(load(GOOD, "").expect("v1"));
    let mut store = Store::open_with_catalog(&path, inspector("u1"), v1.clone()).expect("store");
    let enterprise = enterprise(1);
    store.register_enterprise(&enterprise).expect("register");
    let case = store.open_case(&new_case(&enterprise)).expect("case");
    store.attach_checklist(case, "sample").expect("attach v1");
    drop(store);

    let v2_text = GOOD.replace("动火点周围可燃物已清理", "动火点周围15m范围内可燃物已清理")
        + "\n[[items]]\nid = \"s-003\"\ntext = \"现场配备灭火器材\"\ncategory = \"消防器材\"\nbasis = \"GB 30871-2022 动火作业要求\"\nlevel = \"general\"\n";
    let v2 = Arc::new(load(&v2_text, "").expect("v2"));
    assert_ne!(
        v1.get("sample").expect("v1").version,
        v2.get("sample").expect("v2").version
    );
    let mut store =
        Store::open_with_catalog(&path, inspector("u1"), v2.clone()).expect("reopen with v2");
    store.attach_checklist(case, "sample").expect("attach v2");
    let read = store.case(case).expect("case");
    let texts = |i: usize| {
        read.checklists[i]
            .entries
            .iter()
            .map(|e| e.item.text.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        read.checklists[0].version,
        v1.get("sample").expect("v1").version
    );
    assert_eq!(
        texts(0),
        ["动火作业已办理动火安全作业票", "动火点周围可燃物已清理"]
    );
    assert_eq!(texts(1).len(), 3);
    assert_eq!(
        read.checklists[1].version,
        v2.get("sample").expect("v2").version
    );
}

#[test]
fn three_violation_findings_are_counted_by_item_and_post_across_cases() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path().join("a.db"), inspector("u1")).expect("store");
    let enterprise = enterprise(1);
    store.register_enterprise(&enterprise).expect("register");
    let template = Catalog::builtin()
        .get("hazchem-three-violations")
        .expect("template")
        .clone();
    let item = template
        .items
        .iter()
        .find(|i| i.posts.len() > 1)
        .expect("item")
        .clone();
    for (post, result) in [
        (&item.posts[0], AnswerResult::NonCompliant),
        (&item.posts[0], AnswerResult::NonCompliant),
        (&item.posts[1], AnswerResult::NonCompliant),
        (&item.posts[1], AnswerResult::Compliant),
    ] {
        let case = store.open_case(&new_case(&enterprise)).expect("case");
        let checklist = store.attach_checklist(case, &template.id).expect("attach");
        let input = AnswerInput {
            result,
            note: String::new(),
            post: Some(post.clone()),
            person: None,
        };
        store
            .answer_item(case, checklist, &item.id, &input)
            .expect("answer");
    }
    let stats = store.checklist_stats(Some(&template.id)).expect("stats");
    let rows: Vec<(&str, &str, u32, u32)> = stats
        .iter()
        .map(|s| {
            (
                s.item_id.as_str(),
                s.post.as_str(),
                s.answered,
                s.non_compliant,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (item.id.as_str(), item.posts[0].as_str(), 2, 2),
            (item.id.as_str(), item.posts[1].as_str(), 2, 1)
        ]
    );
    assert_eq!(stats[0].category, item.category);
    assert!(
        store
            .checklist_stats(Some("hot-work"))
            .expect("stats")
            .is_empty()
    );
}
