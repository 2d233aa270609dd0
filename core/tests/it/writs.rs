//! Enforcement documents on the device: drawn up from the case, sealed, signed by two
//! inspectors and the enterprise (or its refusal), issued, voided and corrected; and
//! what the rule book refuses whoever sends it.

use anjian_core::rules::{self, Author, CaseState, Ops, Rule};
use anjian_core::{
    CaseId, Level, NewCase, NewFinding, RectificationOrder, ReviewAction, Role, SignatureInput,
    SignerRole, Store, TeamMember, WritId, WritKind, WritState, case_doc,
};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ROOT, ReadDoc};

use crate::support::*;

struct Visit {
    _dir: tempfile::TempDir,
    store: Store,
    case: CaseId,
    /// A signature image on the device.
    image: String,
}

/// `u1` and `u2` of 310101 on one visit: one major hazard ordered to be rectified.
fn visit() -> Visit {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path().join("s.db"), inspector("u1")).expect("store");
    let ent = enterprise(1);
    store.register_enterprise(&ent).expect("enterprise");
    let teammate = inspector("u2");
    let case = store
        .open_case(&NewCase {
            team: vec![TeamMember::from(&teammate)],
            ..new_case(&ent)
        })
        .expect("case");
    let finding = store
        .add_finding(
            case,
            &NewFinding {
                level: Some(Level::Major),
                legal_basis: "《危险化学品企业重大危险源安全管理规定》第十三条".into(),
                ..anjian_core::sample::finding("液氯储罐区可燃有毒气体检测报警装置未投入使用")
            },
        )
        .expect("finding");
    store
        .order_rectification(
            case,
            finding,
            &RectificationOrder {
                measures: "恢复报警装置并联调".into(),
                deadline: "2026-12-15".parse().expect("day"),
                responsible: "安全总监".into(),
            },
        )
        .expect("order");
    let image = store
        .ingest_photo(&anjian_core::sample::jpeg(64, 32))
        .expect("signature image")
        .sha256;
    Visit {
        _dir: dir,
        store,
        case,
        image,
    }
}

fn inspector_signs(user: &str, certificate_no: &str, image: &str) -> SignatureInput {
    SignatureInput {
        role: SignerRole::Inspector,
        user: user.to_owned(),
        name: format!("检查员{user}"),
        certificate_no: certificate_no.to_owned(),
        image: image.to_owned(),
    }
}

#[test]
fn an_order_is_filled_sealed_signed_issued_and_corrected_offline() {
    let Visit {
        mut store,
        case,
        image,
        ..
    } = visit();
    let order = store
        .create_writ(case, WritKind::RectificationOrder, None)
        .expect("drawn up");
    let draft = store.writ(case, order).expect("read");
    assert_eq!(draft.state(), WritState::Draft);
    assert!(draft.fields["hazards"].contains("报警装置未投入使用"));
    assert!(draft.fields["hazards"].contains("第十三条"));
    assert_eq!(draft.fields["deadline"], "2026年12月15日前");
    store
        .edit_writ(case, order, "requirement", "1. 立即恢复报警装置并联调联试")
        .expect("edited as a draft");
    assert!(store.edit_writ(case, order, "nonsense", "x").is_err());

    let seal = store.seal_writ(case, order).expect("sealed");
    assert!(seal.provisional && seal.number.starts_with("（临时）责改〔2026〕"));
    let refused = store.edit_writ(case, order, "requirement", "改写");
    assert!(
        matches!(&refused, Err(anjian_core::Error::NotAllowed(m)) if m.contains("已定稿")),
        "{refused:?}"
    );
    let err = store
        .sign_writ(case, order, &inspector_signs("u3", "31000000001", &image))
        .expect_err("u3 is not on the team");
    assert!(err.to_string().contains("执法证号"), "{err}");
    let err = store
        .sign_writ(case, order, &inspector_signs("u2", " ", &image))
        .expect_err("no 执法证号");
    assert!(err.to_string().contains("执法证号"), "{err}");
    store
        .sign_writ(case, order, &inspector_signs("u1", "31000000001", &image))
        .expect("first inspector");
    let err = store.issue_writ(case, order).expect_err("one inspector");
    assert!(err.to_string().contains("两名"), "{err}");
    store
        .sign_writ(case, order, &inspector_signs("u2", "31000000002", &image))
        .expect("second inspector");
    assert!(
        store.issue_writ(case, order).is_err(),
        "the enterprise has not answered"
    );
    assert!(
        store
            .refuse_writ(case, order, "拒绝签字", " ", None)
            .is_err(),
        "no witness"
    );
    store
        .refuse_writ(
            case,
            order,
            "负责人拒绝签字",
            "村委会主任 李某",
            Some(&image),
        )
        .expect("refusal recorded");
    store.issue_writ(case, order).expect("issued");
    let issued = store.writ(case, order).expect("read");
    assert_eq!(issued.state(), WritState::Issued);
    assert_eq!(issued.inspectors_signed().len(), 2);

    // A correction is a new document naming the one it replaces; the old one is voided.
    assert!(
        store.void_writ(case, order, " ").is_err(),
        "a reason is needed"
    );
    let correction = store
        .create_writ(case, WritKind::RectificationOrder, Some(order))
        .expect("correction");
    store
        .void_writ(case, order, "整改期限填写错误，以新文书为准")
        .expect("voided");
    let all = store.case(case).expect("case").writs;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].state(), WritState::Voided);
    assert_eq!(all[1].replaces, Some(order));
    let err = store
        .void_writ(case, order, "再次作废")
        .expect_err("voided once");
    assert!(err.to_string().contains("作废"), "{err}");
    assert_eq!(
        store.writ(case, correction).expect("read").state(),
        WritState::Draft
    );
}

fn author(user: &str, role: Role) -> Author {
    Author {
        user_id: user.to_owned(),
        role,
        district: "310101".parse().expect("district"),
        department: "应急管理".to_owned(),
    }
}

fn verdict(who: &Author, before: &AutoCommit, after: &AutoCommit) -> Result<(), Rule> {
    let changes = after.clone().get_changes(&before.clone().get_heads());
    for change in &changes {
        rules::check(after, change).map_err(|r| r.rule)?;
    }
    let state = CaseState::of(before).expect("before reads");
    let ops = Ops::of(after, &changes).map_err(|r| r.rule)?;
    let Ok(after_state) = state.after(after, &ops) else {
        return Err(Rule::Shape);
    };
    rules::judge(who, Some(&state), &after_state, &ops).map_err(|r| r.rule)
}

fn changed(doc: &AutoCommit, edit: impl Fn(&mut AutoCommit)) -> AutoCommit {
    let mut doc = doc.clone();
    edit(&mut doc);
    doc.commit();
    doc
}

fn obj(doc: &AutoCommit, parent: &ObjId, key: &str) -> ObjId {
    match doc.get(parent, key).expect("get") {
        Some((automerge::Value::Object(_), id)) => id,
        other => panic!("{key}: {other:?}"),
    }
}

fn writ_obj(doc: &AutoCommit, id: WritId) -> ObjId {
    let writs = obj(doc, &ROOT, "writs");
    obj(doc, &writs, &id.to_string())
}

#[test]
fn a_hostile_device_cannot_rewrite_a_document() {
    let Visit {
        mut store,
        case,
        image,
        ..
    } = visit();
    let sealed = store
        .create_writ(case, WritKind::RectificationOrder, None)
        .expect("drawn up");
    store.seal_writ(case, sealed).expect("sealed");
    store
        .sign_writ(case, sealed, &inspector_signs("u1", "31000000001", &image))
        .expect("signed");
    let draft = store
        .create_writ(case, WritKind::InspectionRecord, None)
        .expect("drawn up");
    let base = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let u1 = author("u1", Role::Inspector);
    type Row<'a> = (&'a str, Box<dyn Fn(&mut AutoCommit)>, Result<(), Rule>);
    let rows: Vec<Row<'_>> = vec![
        (
            "a draft edited",
            Box::new(move |doc| {
                let fields = obj(doc, &writ_obj(doc, draft), "fields");
                doc.put(&fields, "content", "改写").expect("put");
            }),
            Ok(()),
        ),
        (
            "a field the form does not have",
            Box::new(move |doc| {
                let fields = obj(doc, &writ_obj(doc, draft), "fields");
                doc.put(&fields, "secret", "x").expect("put");
            }),
            Err(Rule::Writ),
        ),
        (
            "a sealed document edited",
            Box::new(move |doc| {
                let fields = obj(doc, &writ_obj(doc, sealed), "fields");
                doc.put(&fields, "requirement", "改写").expect("put");
            }),
            Err(Rule::Writ),
        ),
        (
            "a seal over other content",
            Box::new(move |doc| {
                let writ = writ_obj(doc, draft);
                let seal = doc
                    .put_object(&writ, "seal", automerge::ObjType::Map)
                    .expect("put");
                doc.put(&seal, "number", "（沪黄）应急检记〔2026〕0001号")
                    .expect("put");
                doc.put(&seal, "provisional", 0).expect("put");
                doc.put(&seal, "sha256", "0".repeat(64)).expect("put");
                doc.put(&seal, "by", "u1").expect("put");
                doc.put(&seal, "at", "2026-11-20T10:00:00+08:00")
                    .expect("put");
            }),
            Err(Rule::Writ),
        ),
        (
            "a signature taken away",
            Box::new(move |doc| {
                let list = obj(doc, &writ_obj(doc, sealed), "signatures");
                doc.delete(&list, 0).expect("delete");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a signature's 执法证号 rewritten",
            Box::new(move |doc| {
                let list = obj(doc, &writ_obj(doc, sealed), "signatures");
                let first = match doc.get(&list, 0).expect("get") {
                    Some((_, first)) => first,
                    None => panic!("signed"),
                };
                doc.put(&first, "certificate_no", "99999").expect("put");
            }),
            Err(Rule::Writ),
        ),
        (
            "issued with one inspector's signature",
            Box::new(move |doc| {
                case_doc::review(doc, "u1", ReviewAction::Comment, "x", now()).expect("comment");
                let writ = writ_obj(doc, sealed);
                let issued = doc
                    .put_object(&writ, "issued", automerge::ObjType::Map)
                    .expect("put");
                doc.put(&issued, "by", "u1").expect("put");
                doc.put(&issued, "at", "2026-11-20T10:00:00+08:00")
                    .expect("put");
            }),
            Err(Rule::Writ),
        ),
    ];
    let mut wrong = Vec::new();
    for (row, edit, expected) in &rows {
        let after = changed(&base, edit);
        let got = verdict(&u1, &base, &after);
        if got != *expected {
            wrong.push(format!("{row}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00+08:00").expect("time")
}

#[test]
fn an_approved_case_takes_only_the_follow_up_s_documents() {
    let Visit {
        mut store, case, ..
    } = visit();
    let mut base = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let approved = changed(&base, |doc| {
        case_doc::review(doc, "chief", ReviewAction::Approve, "", now()).expect("approve");
    });
    let chief = author("chief", Role::Supervisor);
    assert_eq!(verdict(&chief, &base, &approved), Ok(()));
    // Documents drawn up on devices that had not heard of the approval yet, each
    // carried over as its one change.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut other = Store::open(dir.path().join("o.db"), inspector("u1")).expect("store");
    other
        .merge_case(&store.export_case(case).expect("export"))
        .expect("merge");
    let heads = base.get_heads();
    let drawn_up = |store: &mut Store, kind| {
        store.create_writ(case, kind, None).expect("drawn up");
        let mut doc =
            AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
        let changes = doc.get_changes(&heads);
        assert_eq!(changes.len(), 1);
        changes[0].clone()
    };
    let record = drawn_up(&mut other, WritKind::InspectionRecord);
    let opinion = drawn_up(&mut store, WritKind::ReinspectionOpinion);
    let u1 = author("u1", Role::Inspector);
    for (change, expected) in [(record, Err(Rule::ApprovedLock)), (opinion, Ok(()))] {
        let mut after = approved.clone();
        after.apply_changes([change]).expect("apply");
        assert_eq!(verdict(&u1, &approved, &after), expected);
    }
}
