//! Enforcement documents on the device: drawn up from the case, sealed, signed by two
//! inspectors and the enterprise (or its refusal), issued, voided and corrected; and
//! what the rule book refuses whoever sends it.

use anjian_core::numbering::{MAX_NUMBER_CHARS, NumberBlock, SignedBlock};
use anjian_core::rules::{self, Author, CaseState, Ops, Rule};
use anjian_core::signing::{KeyAlgorithm, KeyId, Signer, SoftwareKey};
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
    let now = anjian_core::sample::visit_time();
    store.set_clock(std::sync::Arc::new(move || now));
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
    assert!(draft.fields["deadline"].contains("于2026年12月15日前整改完毕"));
    assert!(draft.fields["appeal"].contains("60日内"));
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
    let font = cjk_font();
    let early = store.print_writ(case, order, &font);
    assert!(
        matches!(&early, Err(anjian_core::Error::NotAllowed(m)) if m.contains("签发后")),
        "only the issued document's PDF is kept: {:?}",
        early.map(|(sha256, _)| sha256)
    );
    store.issue_writ(case, order).expect("issued");
    let issued = store.writ(case, order).expect("read");
    assert_eq!(issued.state(), WritState::Issued);
    assert_eq!(issued.inspectors_signed().len(), 2);
    // A re-inspection opinion drawn up now names the order it follows.
    let opinion = store
        .create_writ(case, WritKind::ReinspectionOpinion, None)
        .expect("drawn up");
    let opinion = store.writ(case, opinion).expect("read").fields;
    assert!(
        opinion["order"].contains(&format!("［{}］", seal.number)),
        "{}",
        opinion["order"]
    );

    // Printed: the PDF kept as a blob to sync, named in the document as the copy handed
    // over; printing again gives back the copy of record.
    let (sha256, pdf) = store.print_writ(case, order, &font).expect("printed");
    assert!(pdf.starts_with(b"%PDF-"));
    anjian_core::pdf::check(&pdf).expect("a whole PDF");
    assert_eq!(store.blob(&sha256).expect("kept"), pdf);
    assert_eq!(
        store
            .writ(case, order)
            .expect("read")
            .printed
            .map(|p| p.sha256),
        Some(sha256.clone())
    );
    assert!(
        store
            .pending_uploads()
            .expect("pending")
            .iter()
            .any(|b| b.sha256 == sha256 && b.kind == "document")
    );
    let (again, _) = store.print_writ(case, order, &font).expect("printed again");
    assert_eq!(again, sha256);
    store.collect_garbage().expect("garbage collected");
    assert!(store.has_blob(&sha256).expect("read"), "the case names it");
    for cut in [
        &pdf[..pdf.len() / 2],
        b"%PDF-1.7 not a document".as_slice(),
        b"GIF89a",
    ] {
        assert!(anjian_core::pdf::check(cut).is_err());
    }

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
    assert_eq!(
        all.len(),
        3,
        "the order, the opinion drafted and the correction"
    );
    let of = |id| all.iter().find(|w| w.id == id).expect("kept");
    assert_eq!(of(order).state(), WritState::Voided);
    assert_eq!(of(correction).replaces, Some(order));
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
        key: None,
    }
}

fn verdict(who: &Author, before: &AutoCommit, after: &AutoCommit) -> Result<(), Rule> {
    verdict_trusting(who, &rules::Trust::default(), before, after)
}

fn verdict_trusting(
    who: &Author,
    trust: &rules::Trust,
    before: &AutoCommit,
    after: &AutoCommit,
) -> Result<(), Rule> {
    let mut checked = after.clone();
    let changes = checked.get_changes(&before.clone().get_heads());
    for change in &changes {
        rules::check(&mut checked, change).map_err(|r| r.rule)?;
    }
    let state = CaseState::of(before).expect("before reads");
    let ops = Ops::of(after, &changes).map_err(|r| r.rule)?;
    let Ok(after_state) = state.after(after, &ops) else {
        return Err(Rule::Shape);
    };
    rules::judge(who, Some(&state), &after_state, &ops, trust).map_err(|r| r.rule)
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

/// A block of numbers `first..=last` of `kind` for 2026, allocated by `server` to the
/// device `actor` for its key `key`.
fn block(
    server: &SoftwareKey,
    kind: WritKind,
    (first, last): (u32, u32),
    actor: &str,
    key: KeyId,
) -> SignedBlock {
    SignedBlock::issue(
        server,
        NumberBlock {
            prefix: "（沪黄）应急".into(),
            kind,
            year: 2026,
            first,
            last,
            actor: actor.to_owned(),
            key,
            issued_at: 1_790_000_000,
            issuer: server.public_key().id(),
        },
    )
    .expect("signed")
}

#[test]
fn a_device_issues_numbers_from_its_blocks_then_provisional_ones_and_a_restored_store_none() {
    let Visit {
        _dir: dir,
        mut store,
        case,
        ..
    } = visit();
    let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [9; 32]);
    let stranger = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [8; 32]);
    store
        .keep_sign_in("https://server", &server.public_key(), None)
        .expect("server key kept");
    let (actor, key) = (store.device_id(), store.public_key().id());
    let order = WritKind::RectificationOrder;
    let kept = store
        .keep_number_blocks(&[
            block(&server, order, (3, 4), &actor, key).encode(),
            block(&server, order, (1, 1), &actor, key).encode(),
            // Not this device's key, not this device, not a trusted server: ignored.
            block(&server, order, (5, 9), &actor, [0; 8]).encode(),
            block(&server, order, (5, 9), &"00".repeat(16), key).encode(),
            block(&stranger, order, (5, 9), &actor, key).encode(),
            "（沪黄）应急责改〔2026〕0005号".into(),
        ])
        .expect("kept");
    assert_eq!(kept, 2);
    assert!(store.numbers_left().expect("left").contains(&(order, 3)));
    let mut numbers = Vec::new();
    for _ in 0..4 {
        let writ = store.create_writ(case, order, None).expect("drawn up");
        let seal = store.seal_writ(case, writ).expect("sealed");
        numbers.push((seal.number, seal.provisional));
    }
    let issued: Vec<&str> = numbers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        issued[..3],
        [
            "（沪黄）应急责改〔2026〕0001号",
            "（沪黄）应急责改〔2026〕0003号",
            "（沪黄）应急责改〔2026〕0004号"
        ],
        "the earliest block first, each number once"
    );
    assert!(numbers[3].1 && numbers[3].0.starts_with("（临时）责改〔2026〕"));
    assert!(store.numbers_left().expect("left").contains(&(order, 0)));

    // Restored from a backup: the database without its key file.
    let blocks: Vec<String> = vec![block(&server, order, (10, 20), &actor, key).encode()];
    drop(store);
    let restored = dir.path().join("restored.db");
    std::fs::copy(dir.path().join("s.db"), &restored).expect("backup restored");
    let mut store = Store::open(&restored, inspector("u1")).expect("restored store");
    assert_ne!(
        store.public_key().id(),
        key,
        "a restored store makes a new key"
    );
    assert_ne!(store.device_id(), actor, "and is a new device");
    assert_eq!(
        store.keep_number_blocks(&blocks).expect("kept"),
        0,
        "blocks for the old key are not the restored store's"
    );
    let writ = store.create_writ(case, order, None).expect("drawn up");
    let seal = store.seal_writ(case, writ).expect("sealed");
    assert!(seal.provisional, "{}", seal.number);
    let fresh = block(
        &server,
        order,
        (21, 40),
        &store.device_id(),
        store.public_key().id(),
    )
    .encode();
    assert_eq!(store.keep_number_blocks(&[fresh]).expect("kept"), 1);
    let writ = store.create_writ(case, order, None).expect("drawn up");
    let seal = store.seal_writ(case, writ).expect("sealed");
    assert_eq!(seal.number, "（沪黄）应急责改〔2026〕0021号");
}

#[test]
fn a_number_is_one_its_signing_key_was_allocated() {
    let Visit {
        mut store, case, ..
    } = visit();
    let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [9; 32]);
    let other_server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [8; 32]);
    let device = [1; 8];
    let actor = store.device_id();
    let order = WritKind::RectificationOrder;
    let sealed = store.create_writ(case, order, None).expect("drawn up");
    let provisional = store.create_writ(case, order, None).expect("drawn up");
    store
        .seal_writ(case, provisional)
        .expect("sealed provisional");
    let draft = store.create_writ(case, order, None).expect("drawn up");
    let mut base = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let fields = store.writ(case, draft).expect("draft").fields;
    let own = block(&server, order, (1, 20), &actor, device).encode();
    let seal = move |doc: &mut AutoCommit, writ: WritId, number: &str, block: Option<&str>| {
        let obj = writ_obj(doc, writ);
        let seal = doc
            .put_object(&obj, "seal", automerge::ObjType::Map)
            .expect("put");
        doc.put(&seal, "number", number).expect("put");
        doc.put(&seal, "provisional", i64::from(block.is_none()))
            .expect("put");
        if let Some(block) = block {
            doc.put(&seal, "block", block).expect("put");
        }
        let sha256 = anjian_core::writs::content_sha256(case, order, number, &fields);
        doc.put(&seal, "sha256", sha256).expect("put");
        doc.put(&seal, "by", "u1").expect("put");
        doc.put(&seal, "at", "2026-11-20T10:00:00+08:00")
            .expect("put");
    };
    base = changed(&base, |doc| {
        seal(doc, sealed, "（沪黄）应急责改〔2026〕0001号", Some(&own));
    });
    let number = |doc: &mut AutoCommit, number: &str, block: &str| {
        let obj = writ_obj(doc, provisional);
        let entry = doc
            .put_object(&obj, "numbered", automerge::ObjType::Map)
            .expect("put");
        doc.put(&entry, "number", number).expect("put");
        doc.put(&entry, "block", block).expect("put");
        doc.put(&entry, "by", "u1").expect("put");
        doc.put(&entry, "at", "2026-11-20T10:00:00+08:00")
            .expect("put");
    };
    let others = block(&server, order, (1, 20), &actor, [2; 8]).encode();
    let forged = block(&other_server, order, (1, 20), &actor, device).encode();
    let inspection = block(&server, WritKind::InspectionRecord, (1, 20), &actor, device).encode();
    type Row<'a> = (&'a str, Box<dyn Fn(&mut AutoCommit) + 'a>, Result<(), Rule>);
    let rows: Vec<Row<'_>> = vec![
        (
            "from its own block",
            Box::new(|doc| seal(doc, draft, "（沪黄）应急责改〔2026〕0002号", Some(&own))),
            Ok(()),
        ),
        (
            "provisional, marked so",
            Box::new(|doc| seal(doc, draft, "（临时）责改〔2026〕0a1b2c3d号", None)),
            Ok(()),
        ),
        (
            "provisional, longer than any number (a register indexes it)",
            Box::new(|doc| {
                let long = format!("（临时）{}号", "责".repeat(MAX_NUMBER_CHARS));
                seal(doc, draft, &long, None);
            }),
            Err(Rule::Writ),
        ),
        (
            "from another key's block",
            Box::new(|doc| seal(doc, draft, "（沪黄）应急责改〔2026〕0002号", Some(&others))),
            Err(Rule::Writ),
        ),
        (
            "from a block no trusted server signed",
            Box::new(|doc| seal(doc, draft, "（沪黄）应急责改〔2026〕0002号", Some(&forged))),
            Err(Rule::Writ),
        ),
        (
            "from a block of another kind",
            Box::new(|doc| {
                seal(
                    doc,
                    draft,
                    "（沪黄）应急责改〔2026〕0002号",
                    Some(&inspection),
                );
            }),
            Err(Rule::Writ),
        ),
        (
            "outside its block",
            Box::new(|doc| seal(doc, draft, "（沪黄）应急责改〔2026〕0021号", Some(&own))),
            Err(Rule::Writ),
        ),
        (
            "a number with no block",
            Box::new(|doc| {
                seal(doc, draft, "（沪黄）应急责改〔2026〕0002号", None);
                let obj = obj(doc, &writ_obj(doc, draft), "seal");
                doc.put(&obj, "provisional", 0).expect("put");
            }),
            Err(Rule::Writ),
        ),
        (
            "provisional, not marked so",
            Box::new(|doc| seal(doc, draft, "责改〔2026〕0a1b2c3d号", None)),
            Err(Rule::Writ),
        ),
        (
            "a number the case already has",
            Box::new(|doc| seal(doc, draft, "（沪黄）应急责改〔2026〕0001号", Some(&own))),
            Err(Rule::Writ),
        ),
        (
            "a provisional number replaced from a block",
            Box::new(|doc| number(doc, "（沪黄）应急责改〔2026〕0003号", &own)),
            Ok(()),
        ),
        (
            "a provisional number replaced from another key's block",
            Box::new(|doc| number(doc, "（沪黄）应急责改〔2026〕0003号", &others)),
            Err(Rule::Writ),
        ),
        (
            "a provisional number replaced by one the case has",
            Box::new(|doc| number(doc, "（沪黄）应急责改〔2026〕0001号", &own)),
            Err(Rule::Writ),
        ),
        (
            "a real number replaced",
            Box::new(|doc| {
                let obj = writ_obj(doc, sealed);
                let entry = doc
                    .put_object(&obj, "numbered", automerge::ObjType::Map)
                    .expect("put");
                doc.put(&entry, "number", "（沪黄）应急责改〔2026〕0005号")
                    .expect("put");
                doc.put(&entry, "block", own.as_str()).expect("put");
                doc.put(&entry, "by", "u1").expect("put");
                doc.put(&entry, "at", "2026-11-20T10:00:00+08:00")
                    .expect("put");
            }),
            Err(Rule::Writ),
        ),
    ];
    let u1 = Author {
        key: Some(device),
        ..author("u1", Role::Inspector)
    };
    let trust = rules::Trust {
        servers: vec![server.public_key()],
        records: None,
    };
    let mut wrong = Vec::new();
    for (row, edit, expected) in &rows {
        let after = changed(&base, edit);
        let got = verdict_trusting(&u1, &trust, &base, &after);
        if got != *expected {
            wrong.push(format!("{row}: expected {expected:?}, got {got:?}"));
        }
    }
    // Where the judge holds the register (the server), a number another case carries.
    let with_register = rules::Trust {
        records: Some(&OnRecord),
        ..trust.clone()
    };
    for (number, expected) in [
        ("（沪黄）应急责改〔2026〕0002号", Err(Rule::Writ)),
        ("（沪黄）应急责改〔2026〕0003号", Ok(())),
    ] {
        let after = changed(&base, |doc| seal(doc, draft, number, Some(&own)));
        let got = verdict_trusting(&u1, &with_register, &base, &after);
        if got != expected {
            wrong.push(format!(
                "{number} with the register: expected {expected:?}, got {got:?}"
            ));
        }
    }
    let unsigned = Author {
        key: None,
        ..u1.clone()
    };
    let after = changed(&base, |doc| {
        seal(doc, draft, "（沪黄）应急责改〔2026〕0002号", Some(&own));
    });
    if verdict_trusting(&unsigned, &trust, &base, &after) != Err(Rule::Writ) {
        wrong.push("an unsigned change sealed with a number".into());
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_document_is_issued_by_an_inspector_who_signed_it_for_what_the_case_records() {
    let Visit {
        mut store,
        case,
        image,
        ..
    } = visit();
    let sign_all = |store: &mut Store, writ: WritId| {
        for (user, number) in [("u1", "31000000001"), ("u2", "31000000002")] {
            store
                .sign_writ(case, writ, &inspector_signs(user, number, &image))
                .expect("signed");
        }
        store
            .refuse_writ(case, writ, "拒绝签字", "见证人 王某", None)
            .expect("refusal recorded");
    };
    // A decision on on-site measures, before any measure was taken on site.
    let decision = store
        .create_writ(case, WritKind::OnsiteDecision, None)
        .expect("drawn up");
    store.seal_writ(case, decision).expect("sealed");
    sign_all(&mut store, decision);
    let err = store
        .issue_writ(case, decision)
        .expect_err("no measure yet");
    assert!(err.to_string().contains("现场处理措施"), "{err}");
    let finding = store.case(case).expect("case").findings[0].id;
    store
        .follow_up(
            case,
            finding,
            &anjian_core::HazardStep::Onsite {
                measure: anjian_core::OnsiteMeasure::Suspend,
                note: "液氯储罐区停止使用".into(),
            },
        )
        .expect("measure taken");
    store.issue_writ(case, decision).expect("issued");
    // A re-inspection opinion, before any re-inspection.
    let opinion = store
        .create_writ(case, WritKind::ReinspectionOpinion, None)
        .expect("drawn up");
    store.seal_writ(case, opinion).expect("sealed");
    sign_all(&mut store, opinion);
    let err = store
        .issue_writ(case, opinion)
        .expect_err("no re-inspection yet");
    assert!(err.to_string().contains("复查结果"), "{err}");

    // Issued by whom: an inspector who signed it, not a supervisor of the district.
    let order = store
        .create_writ(case, WritKind::RectificationOrder, None)
        .expect("drawn up");
    store.seal_writ(case, order).expect("sealed");
    sign_all(&mut store, order);
    let base = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let issue = |by: &'static str| {
        move |doc: &mut AutoCommit| {
            let writ = writ_obj(doc, order);
            let issued = doc
                .put_object(&writ, "issued", automerge::ObjType::Map)
                .expect("put");
            doc.put(&issued, "by", by).expect("put");
            doc.put(&issued, "at", "2026-11-20T10:00:00+08:00")
                .expect("put");
        }
    };
    assert_eq!(
        verdict(
            &author("u2", Role::Inspector),
            &base,
            &changed(&base, issue("u2"))
        ),
        Ok(())
    );
    assert_eq!(
        verdict(
            &author("chief", Role::Supervisor),
            &base,
            &changed(&base, issue("chief"))
        ),
        Err(Rule::Decide)
    );

    // The PDF handed over is kept by an inspector who signed it, not by anyone else who
    // may read the case (the record is written once: the first would stand for good).
    let issued = changed(&base, issue("u2"));
    let print = |by: &'static str| {
        move |doc: &mut AutoCommit| {
            let writ = writ_obj(doc, order);
            let printed = doc
                .put_object(&writ, "printed", automerge::ObjType::Map)
                .expect("put");
            doc.put(&printed, "sha256", "ab".repeat(32)).expect("put");
            doc.put(&printed, "by", by).expect("put");
            doc.put(&printed, "at", "2026-11-20T10:05:00+08:00")
                .expect("put");
        }
    };
    for (by, role, expected) in [
        ("u1", Role::Inspector, Ok(())),
        ("u3", Role::Inspector, Err(Rule::Decide)),
        ("chief", Role::Supervisor, Err(Rule::Decide)),
    ] {
        assert_eq!(
            verdict(&author(by, role), &issued, &changed(&issued, print(by))),
            expected,
            "{by}"
        );
    }
}

/// The certificates on record, as the server holds them.
struct OnRecord;

impl rules::Records for OnRecord {
    fn number_elsewhere(&self, number: &str, _: CaseId) -> Result<bool, rules::Refusal> {
        Ok(number == "（沪黄）应急责改〔2026〕0002号")
    }

    fn certificate(
        &self,
        user: &str,
    ) -> Result<Option<rules::EnforcementCertificate>, rules::Refusal> {
        let valid = |number: &str, until: &str| rules::EnforcementCertificate {
            number: number.into(),
            valid_until: until.parse().expect("day"),
        };
        Ok(match user {
            "u1" => Some(valid("31000000001", "2030-12-31")),
            "u2" => Some(valid("31000000002", "2026-01-31")),
            _ => None,
        })
    }
}

/// Inserts at `index` of `writ`'s signatures an inspector's signature of its sealed
/// content: `[user (and name), 执法证号, image, by, at]`.
fn put_signature(doc: &mut AutoCommit, writ: WritId, index: usize, fields: [&str; 5]) {
    let [user, number, image, by, at] = fields;
    let writ_map = writ_obj(doc, writ);
    let sha256 = match doc.get(obj(doc, &writ_map, "seal"), "sha256").expect("get") {
        Some((value, _)) => value.as_str().expect("text").to_owned(),
        None => panic!("sealed"),
    };
    let list = obj(doc, &writ_map, "signatures");
    let entry = doc
        .insert_object(&list, index, automerge::ObjType::Map)
        .expect("insert");
    for (key, value) in [
        ("role", "inspector"),
        ("user", user),
        ("name", user),
        ("certificate_no", number),
        ("image", image),
        ("sha256", sha256.as_str()),
        ("by", by),
        ("at", at),
    ] {
        doc.put(&entry, key, value).expect("put");
    }
}

/// An inspection record of `case`, drawn up and sealed.
fn sealed_record(store: &mut Store, case: CaseId) -> WritId {
    let writ = store
        .create_writ(case, WritKind::InspectionRecord, None)
        .expect("drawn up");
    store.seal_writ(case, writ).expect("sealed");
    writ
}

/// The enterprise's signer is a person on site: a signature in its name that names an
/// account or a 执法证号 would read as an inspector's to whoever trusts those fields.
#[test]
fn the_enterprise_s_signature_names_a_person_and_no_account() {
    let Visit {
        mut store,
        case,
        image,
        ..
    } = visit();
    let writ = sealed_record(&mut store, case);
    let enterprise = |user: &str, name: &str, certificate_no: &str| SignatureInput {
        role: SignerRole::Enterprise,
        user: user.to_owned(),
        name: name.to_owned(),
        certificate_no: certificate_no.to_owned(),
        image: image.clone(),
    };
    for (row, input) in [
        ("an account", enterprise("u2", "王建国", "")),
        ("a 执法证号", enterprise("", "王建国", "31000000002")),
        ("no name", enterprise("", " ", "")),
    ] {
        let refused = store.sign_writ(case, writ, &input);
        assert!(
            matches!(&refused, Err(anjian_core::Error::NotAllowed(m)) if m.contains("不填账号")),
            "{row}: {refused:?}"
        );
    }
    assert!(store.writ(case, writ).expect("writ").signatures.is_empty());
    store
        .sign_writ(case, writ, &enterprise("", "王建国", ""))
        .expect("the enterprise's signer signs");
    assert_eq!(store.writ(case, writ).expect("writ").signatures.len(), 1);
}

#[test]
fn an_inspector_s_signature_names_the_certificate_on_record_valid_that_day() {
    let Visit {
        mut store,
        case,
        image,
        ..
    } = visit();
    let writ = sealed_record(&mut store, case);
    let base = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let signs = |user: &'static str, number: &'static str, at: &'static str| {
        let image = image.clone();
        move |doc: &mut AutoCommit| {
            let list = obj(doc, &writ_obj(doc, writ), "signatures");
            let end = doc.length(&list);
            put_signature(doc, writ, end, [user, number, &image, "u1", at]);
        }
    };
    let rows = [
        (
            "the certificate on record",
            signs("u1", "31000000001", "2026-11-20T10:00:00+08:00"),
            Ok(()),
        ),
        (
            "another number",
            signs("u1", "31000000009", "2026-11-20T10:00:00+08:00"),
            Err(Rule::Writ),
        ),
        (
            "after it expired",
            signs("u2", "31000000002", "2026-11-20T10:00:00+08:00"),
            Err(Rule::Writ),
        ),
        (
            "while it was valid",
            signs("u2", "31000000002", "2026-01-31T18:00:00+08:00"),
            Ok(()),
        ),
        // The day is the day in China, whatever offset the phone's clock wrote: 16:30
        // UTC on the 31st is 00:30 on 1 February in China, a day after it expired.
        (
            "after midnight in China, written in UTC",
            signs("u2", "31000000002", "2026-01-31T16:30:00Z"),
            Err(Rule::Writ),
        ),
        (
            "before midnight in China, written in UTC",
            signs("u2", "31000000002", "2026-01-31T15:30:00Z"),
            Ok(()),
        ),
    ];
    let u1 = author("u1", Role::Inspector);
    let on_record = rules::Trust {
        servers: Vec::new(),
        records: Some(&OnRecord),
    };
    let mut wrong = Vec::new();
    for (row, edit, expected) in &rows {
        let after = changed(&base, edit);
        let got = verdict_trusting(&u1, &on_record, &base, &after);
        if got != *expected {
            wrong.push(format!("{row}: expected {expected:?}, got {got:?}"));
        }
        // A phone holds no certificates on record and leaves the check to the server.
        if verdict(&u1, &base, &after) != Ok(()) {
            wrong.push(format!("{row}: refused without certificates on record"));
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
    let mut other =
        certified(Store::open(dir.path().join("o.db"), inspector("u1")).expect("store"));
    anjian_core::sample::certify(&mut [&mut store]).expect("certified");
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

/// The CJK font the tests set documents in: Noto Serif CJK (简体中文 face) as Debian's
/// fonts-noto-cjk installs it, or the file `ANJIAN_CJK_FONT` names (with `ANJIAN_CJK_FACE`).
fn cjk_font() -> anjian_core::pdf::PdfFont {
    let path = std::env::var("ANJIAN_CJK_FONT")
        .unwrap_or_else(|_| "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc".into());
    let face = std::env::var("ANJIAN_CJK_FACE").map_or(2, |f| f.parse().expect("a face index"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("the CJK font {path}: {e}"));
    anjian_core::pdf::PdfFont::load(bytes, face).expect("a font")
}

fn run(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (poppler-utils): {e}"));
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A rectification order with `requirement`, sealed, signed by `u1` and `u2` with
/// `image`, refused by the enterprise's signer (with `refusal_photo`, if any) and issued:
/// its id and seal.
fn issued_order(
    store: &mut Store,
    case: CaseId,
    image: &str,
    requirement: &str,
    refusal_photo: Option<&str>,
) -> (WritId, anjian_core::WritSeal) {
    let order = store
        .create_writ(case, WritKind::RectificationOrder, None)
        .expect("drawn up");
    store
        .edit_writ(case, order, "requirement", requirement)
        .expect("edited");
    let seal = store.seal_writ(case, order).expect("sealed");
    for (user, cert) in [("u1", "31000000001"), ("u2", "31000000002")] {
        store
            .sign_writ(case, order, &inspector_signs(user, cert, image))
            .expect("signed");
    }
    store
        .refuse_writ(
            case,
            order,
            "负责人拒绝签字",
            "园区安全员 赵某",
            refusal_photo,
        )
        .expect("refused");
    store.issue_writ(case, order).expect("issued");
    (order, seal)
}

/// A document's signature images and the photo of the enterprise's refusal to sign are
/// evidence the case names, which the phone may hold alone: garbage collection keeps them
/// (and the server, which takes the blobs a case names, accepts their upload).
#[test]
fn signature_images_and_a_refusal_photo_outlive_garbage_collection() {
    let Visit {
        mut store,
        case,
        image,
        _dir,
    } = visit();
    let photo = store
        .ingest_photo(&anjian_core::sample::jpeg(48, 32))
        .expect("photo")
        .sha256;
    issued_order(&mut store, case, &image, "立即恢复报警装置。", Some(&photo));
    let later = store.now() + chrono::Duration::hours(anjian_core::UNATTACHED_HOURS + 1);
    store.set_clock(std::sync::Arc::new(move || later));
    store.collect_garbage().expect("collected");
    for blob in [&image, &photo] {
        assert!(store.has_blob(blob).expect("has"), "{blob}");
    }
}

/// A signature image the device holds but cannot read (damaged in storage) stops the
/// print: the copy of record is never printed without a signature it should show.
#[test]
fn a_signature_image_damaged_in_storage_stops_the_print_and_records_nothing() {
    let Visit {
        mut store,
        case,
        image,
        _dir: dir,
    } = visit();
    let (order, _) = issued_order(&mut store, case, &image, "立即恢复报警装置。", None);
    rusqlite::Connection::open(dir.path().join("s.db"))
        .expect("open")
        .execute(
            "UPDATE blobs SET bytes = zeroblob(10) WHERE sha256 = ?1",
            [&image],
        )
        .expect("damage");
    let err = store
        .print_writ(case, order, &cjk_font())
        .expect_err("damaged");
    assert!(
        matches!(err, anjian_core::Error::BlobDamaged { .. }),
        "{err}"
    );
    assert!(store.writ(case, order).expect("read").printed.is_none());
}

#[test]
fn an_issued_order_prints_as_a_pdf_with_its_font_embedded_and_every_field() {
    let Visit {
        mut store,
        case,
        image,
        _dir: dir,
    } = visit();
    let (order, seal) = issued_order(
        &mut store,
        case,
        &image,
        "1. 立即恢复报警装置并联调联试，整改完成后书面报告。",
        None,
    );
    let pdf = store
        .render_writ(case, order, &cjk_font())
        .expect("rendered");
    assert_eq!(&pdf[..5], b"%PDF-");
    assert_eq!(
        pdf,
        store.render_writ(case, order, &cjk_font()).expect("again"),
        "the same document prints to the same bytes"
    );
    let file = dir.path().join("order.pdf");
    std::fs::write(&file, &pdf).expect("write");
    let file = file.to_str().expect("a path");

    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let text = squeeze(&run("pdftotext", &["-raw", file, "-"]));
    let writ = store.writ(case, order).expect("read");
    let mut wanted = vec![
        "安全生产行政执法文书".to_owned(),
        "责令限期整改指令书".to_owned(),
        "本文书一式两份".to_owned(),
        seal.number.clone(),
        "临时编号".to_owned(),
        "证号：31000000002".to_owned(),
        "负责人拒绝签字".to_owned(),
        "园区安全员赵某".to_owned(),
        "第1页共1页".to_owned(),
        seal.sha256.clone(),
    ];
    for (key, label) in anjian_core::writs::fields(WritKind::RectificationOrder) {
        wanted.push(format!("{label}："));
        wanted.extend(writ.fields[*key].lines().map(str::to_owned));
    }
    for piece in wanted {
        assert!(
            text.contains(&squeeze(&piece)),
            "{piece:?} is not in the PDF's text: {text}"
        );
    }
    let fonts = run("pdffonts", &[file]);
    let embedded = fonts
        .lines()
        .find(|l| l.contains("NotoSerifCJK"))
        .unwrap_or_else(|| panic!("no CJK font: {fonts}"));
    assert!(
        embedded.contains(" yes yes yes ")
            && embedded.split('+').next().is_some_and(|tag| tag.len() == 6),
        "embedded as a subset with a text map: {fonts}"
    );
    // A page for a person to look at: target/artefacts/rectification-order-1.png (a copy
    // is kept in core/tests/artefacts/).
    let artefacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artefacts");
    std::fs::create_dir_all(&artefacts).expect("artefacts");
    let prefix = artefacts.join("rectification-order");
    run(
        "pdftoppm",
        &[
            "-png",
            "-r",
            "80",
            "-f",
            "1",
            "-l",
            "1",
            file,
            prefix.to_str().expect("a path"),
        ],
    );
    let page = std::fs::read(artefacts.join("rectification-order-1.png")).expect("the page");
    assert_eq!(&page[1..4], b"PNG");
    assert!(
        pdf.len() < 400_000,
        "a subset, not the whole font: {} bytes",
        pdf.len()
    );
}

/// A change built on heads from before a document was sealed, making a seal of its own
/// where the seal now is: Automerge keeps both as a conflict and the newcomer may win
/// (here by its actor's id), replacing the number every reader sees without naming the
/// seal it hides. It competes with the seal, and is refused as a rewrite.
#[test]
fn a_seal_made_on_old_heads_cannot_win_a_conflict_over_the_seal() {
    let Visit {
        mut store, case, ..
    } = visit();
    let writ = store
        .create_writ(case, WritKind::InspectionRecord, None)
        .expect("drawn up");
    let mut unsealed =
        AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    store.seal_writ(case, writ).expect("sealed");
    let sealed = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let forged_number = "（沪黄）应急检记〔2026〕9999号";
    let mut forger = unsealed
        .fork()
        .with_actor(automerge::ActorId::from([0xff; 16].as_slice()));
    let kind = CaseState::of(&unsealed).expect("reads").case().writs[0].kind;
    let fields = CaseState::of(&unsealed).expect("reads").case().writs[0]
        .fields
        .clone();
    let writ_map = writ_obj(&forger, writ);
    let seal = forger
        .put_object(&writ_map, "seal", automerge::ObjType::Map)
        .expect("seal");
    let sha256 = anjian_core::writs::content_sha256(case, kind, forged_number, &fields);
    for (key, value) in [
        ("number", forged_number),
        ("sha256", sha256.as_str()),
        ("by", "u2"),
        ("at", "2026-11-20T10:00:00+08:00"),
    ] {
        forger.put(&seal, key, value).expect("put");
    }
    forger.put(&seal, "provisional", 1_i64).expect("put");
    forger.commit();
    let mut after = sealed.clone();
    after.merge(&mut forger).expect("merge");
    let read = CaseState::of(&after).expect("reads");
    assert_eq!(
        read.case().writs[0]
            .seal
            .as_ref()
            .map(|s| s.number.as_str()),
        Some(forged_number),
        "the forged seal wins the conflict"
    );
    assert_eq!(
        verdict(&author("u2", Role::Inspector), &sealed, &after),
        Err(Rule::Writ)
    );
}

/// A signature made concurrently with one already there may be placed before it (Automerge
/// orders concurrent insertions by their ids): it is judged as the new one all the same,
/// so a forged one is refused and a teammate's own is admitted.
#[test]
fn a_signature_placed_before_those_there_is_judged_as_new() {
    let Visit {
        mut store,
        case,
        image,
        ..
    } = visit();
    let writ = sealed_record(&mut store, case);
    let mut unsigned =
        AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    store
        .sign_writ(case, writ, &inspector_signs("u1", "31000000001", &image))
        .expect("signed");
    let signed = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let mut signs_first = |user: &str, number: &str| {
        let mut other = unsigned
            .fork()
            .with_actor(automerge::ActorId::from([0xff; 16].as_slice()));
        put_signature(
            &mut other,
            writ,
            0,
            [user, number, &image, "u2", "2026-11-20T10:00:00+08:00"],
        );
        other.commit();
        let mut after = signed.clone();
        after.merge(&mut other).expect("merge");
        let read = CaseState::of(&after).expect("reads");
        let users: Vec<String> = read.case().writs[0]
            .signatures
            .iter()
            .map(|s| s.user.clone())
            .collect();
        assert_eq!(users, [user, "u1"], "the new signature reads first");
        after
    };
    let forged = signs_first("u9", "000");
    let teammate = signs_first("u2", "31000000002");
    assert_eq!(
        verdict(&author("u2", Role::Inspector), &signed, &forged),
        Err(Rule::Writ)
    );
    assert_eq!(
        verdict(&author("u2", Role::Inspector), &signed, &teammate),
        Ok(())
    );
}

/// Writes `record` (`refusal`, `voided`, `issued`) on `writ` as `fields`, by `by`.
fn put_record(doc: &mut AutoCommit, writ: WritId, record: &str, fields: &[(&str, &str)]) {
    let writ = writ_obj(doc, writ);
    let entry = doc
        .put_object(&writ, record, automerge::ObjType::Map)
        .expect("put");
    for (key, value) in fields {
        doc.put(&entry, *key, *value).expect("put");
    }
}

/// An issued document is the one handed over: nothing is signed or refused on it after,
/// and the enterprise signs or refuses, not both. Voiding is for the document's maker or
/// sealer and the district's supervisors, not for a teammate who signed it; the
/// enterprise's answer is recorded by its keeper or an inspector who had signed.
#[test]
fn an_issued_document_takes_nothing_more_and_its_keepers_void_it() {
    let Visit {
        mut store,
        case,
        image,
        ..
    } = visit();
    let at = "2026-11-20T10:00:00+08:00";
    let (u1, u2) = (author("u1", Role::Inspector), author("u2", Role::Inspector));
    let order = store
        .create_writ(case, WritKind::RectificationOrder, None)
        .expect("drawn up");
    store.seal_writ(case, order).expect("sealed");
    for (user, number) in [("u1", "31000000001"), ("u2", "31000000002")] {
        store
            .sign_writ(case, order, &inspector_signs(user, number, &image))
            .expect("signed");
    }
    let signed = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let enterprise_signs = |doc: &mut AutoCommit| {
        put_signature(doc, order, 2, ["", "", &image, "u1", at]);
        let list = obj(doc, &writ_obj(doc, order), "signatures");
        let entry = match doc.get(&list, 2).expect("get") {
            Some((_, entry)) => entry,
            None => panic!("signed"),
        };
        doc.put(&entry, "role", "enterprise").expect("put");
        doc.put(&entry, "name", "企业负责人 李某").expect("put");
    };
    assert_eq!(
        verdict(&u1, &signed, &changed(&signed, enterprise_signs)),
        Ok(())
    );
    let refuses = |doc: &mut AutoCommit| {
        put_record(
            doc,
            order,
            "refusal",
            &[
                ("reason", "拒绝签字"),
                ("witness", "见证人 王某"),
                ("by", "u1"),
                ("at", at),
            ],
        );
    };
    let refused = changed(&signed, refuses);
    assert_eq!(verdict(&u1, &signed, &refused), Ok(()));
    // Both, in one change or one after the other.
    let both = changed(&refused, enterprise_signs);
    assert_eq!(verdict(&u1, &refused, &both), Err(Rule::Writ));
    assert_eq!(verdict(&u1, &signed, &both), Err(Rule::Writ));

    let issued = changed(&refused, |doc| {
        put_record(doc, order, "issued", &[("by", "u1"), ("at", at)]);
    });
    assert_eq!(verdict(&u1, &refused, &issued), Ok(()));
    let signed_after = changed(&issued, |doc| {
        put_signature(doc, order, 2, ["u1", "31000000001", &image, "u1", at]);
    });
    assert_eq!(verdict(&u1, &issued, &signed_after), Err(Rule::Writ));

    // A record sealed by u1: u2, on the team, signs it, and voids it neither in that
    // change nor in a later one (any reader may join the team and sign); u1, who made and
    // sealed it, and the district's supervisor void it.
    let record = sealed_record(&mut store, case);
    let sealed = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let sign = |doc: &mut AutoCommit| {
        put_signature(doc, record, 0, ["u2", "31000000002", &image, "u2", at]);
    };
    let void = |by: &'static str| {
        move |doc: &mut AutoCommit| {
            put_record(
                doc,
                record,
                "voided",
                &[("reason", "内容有误"), ("by", by), ("at", at)],
            );
        }
    };
    let at_once = changed(&sealed, |doc| {
        sign(doc);
        void("u2")(doc);
    });
    assert_eq!(verdict(&u2, &sealed, &at_once), Err(Rule::Decide));
    let u2_signed = changed(&sealed, sign);
    assert_eq!(verdict(&u2, &sealed, &u2_signed), Ok(()));
    let by_u2 = changed(&u2_signed, void("u2"));
    assert_eq!(verdict(&u2, &u2_signed, &by_u2), Err(Rule::Decide));
    let chief = author("chief", Role::Supervisor);
    for (who, by) in [(&u1, "u1"), (&chief, "chief")] {
        let voided = changed(&u2_signed, void(by));
        assert_eq!(verdict(who, &u2_signed, &voided), Ok(()), "{by}");
    }

    // The enterprise's answer is recorded by whoever presents the document: not by u3,
    // who neither made nor signed it; by u2, whose signature it held before.
    let refusal_by = |by: &'static str| {
        move |doc: &mut AutoCommit| {
            put_record(
                doc,
                record,
                "refusal",
                &[
                    ("reason", "拒绝签字"),
                    ("witness", "见证人 王某"),
                    ("by", by),
                    ("at", at),
                ],
            );
        }
    };
    let u3 = author("u3", Role::Inspector);
    let by_u3 = changed(&u2_signed, refusal_by("u3"));
    assert_eq!(verdict(&u3, &u2_signed, &by_u3), Err(Rule::Decide));
    let by_u2 = changed(&u2_signed, refusal_by("u2"));
    assert_eq!(verdict(&u2, &u2_signed, &by_u2), Ok(()));

    // A draft of u1's: u2 may not seal it (the maker seals), nor seal it and void it, or
    // answer for the enterprise, in one change (a seal given with them is not the keeping).
    let draft = store
        .create_writ(case, WritKind::InspectionRecord, None)
        .expect("drawn up");
    let fields = store.writ(case, draft).expect("draft").fields;
    let drafted = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let u2_seals = move |doc: &mut AutoCommit| {
        let number = "（临时）检记〔2026〕0a1b2c3d号";
        let seal = doc
            .put_object(writ_obj(doc, draft), "seal", automerge::ObjType::Map)
            .expect("put");
        doc.put(&seal, "number", number).expect("put");
        doc.put(&seal, "provisional", 1).expect("put");
        let sha256 =
            anjian_core::writs::content_sha256(case, WritKind::InspectionRecord, number, &fields);
        doc.put(&seal, "sha256", sha256).expect("put");
        doc.put(&seal, "by", "u2").expect("put");
        doc.put(&seal, "at", at).expect("put");
    };
    assert_eq!(
        verdict(&u2, &drafted, &changed(&drafted, &u2_seals)),
        Err(Rule::Decide),
        "the maker seals"
    );
    let voided = [("reason", "内容有误"), ("by", "u2"), ("at", at)];
    let refused = [
        ("reason", "拒绝签字"),
        ("witness", "见证人 王某"),
        ("by", "u2"),
        ("at", at),
    ];
    for (what, fields) in [("voided", &voided[..]), ("refusal", &refused[..])] {
        let at_once = changed(&drafted, |doc| {
            u2_seals(doc);
            put_record(doc, draft, what, fields);
        });
        assert_eq!(
            verdict(&u2, &drafted, &at_once),
            Err(Rule::Decide),
            "{what}"
        );
    }
}

/// Makes a draft of 现场检查记录 by `u1` under `id` in the map of documents `writs`.
fn draft(doc: &mut AutoCommit, writs: &ObjId, id: &str) {
    let writ = doc
        .put_object(writs, id, automerge::ObjType::Map)
        .expect("put");
    doc.put(&writ, "kind", "inspection_record").expect("put");
    doc.put(&writ, "created_by", "u1").expect("put");
    doc.put(&writ, "created_at", "2026-11-20T10:00:00+08:00")
        .expect("put");
    doc.put_object(&writ, "fields", automerge::ObjType::Map)
        .expect("put");
    doc.put_object(&writ, "signatures", automerge::ObjType::List)
        .expect("put");
}

/// A case holds at most `MAX_WRITS` documents: judging a change on documents costs a pass
/// over them, and a change making a hundred thousand would hold the case for minutes.
#[test]
fn a_case_holds_a_bounded_number_of_documents() {
    let Visit {
        mut store, case, ..
    } = visit();
    let base = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let u1 = author("u1", Role::Inspector);
    let drawn_up = |n: usize| {
        move |doc: &mut AutoCommit| {
            let actor = doc.get_actor().to_bytes().to_vec();
            let writs = obj(doc, &ROOT, "writs");
            for _ in 0..n {
                let id = anjian_core::bound_id(uuid::Uuid::new_v4(), &actor);
                draft(doc, &writs, &id.to_string());
            }
        }
    };
    let full = changed(&base, drawn_up(rules::MAX_WRITS));
    assert_eq!(verdict(&u1, &base, &full), Ok(()));
    let over = changed(&full, drawn_up(1));
    assert_eq!(verdict(&u1, &full, &over), Err(Rule::Writ));
    // A case past the bound (from before it) still takes what its documents go through.
    let edited = changed(&over, |doc: &mut AutoCommit| {
        let writs = obj(doc, &ROOT, "writs");
        let first = doc.keys(&writs).next().expect("a document");
        let fields = obj(doc, &obj(doc, &writs, &first), "fields");
        doc.put(&fields, "content", "补充检查情况").expect("put");
    });
    assert_eq!(verdict(&u1, &over, &edited), Ok(()));
}

/// A document holds at most `MAX_SIGNATURES` signatures: a signature inserted before the
/// others is found by search, whose cost is the square of their number.
#[test]
fn a_document_holds_a_bounded_number_of_signatures() {
    let Visit {
        mut store,
        case,
        image,
        ..
    } = visit();
    let record = sealed_record(&mut store, case);
    let base = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let u1 = author("u1", Role::Inspector);
    let signed = |n: usize| {
        let image = image.clone();
        move |doc: &mut AutoCommit| {
            for _ in 0..n {
                put_signature(
                    doc,
                    record,
                    0,
                    [
                        "u1",
                        "31000000001",
                        &image,
                        "u1",
                        "2026-11-20T10:00:00+08:00",
                    ],
                );
            }
        }
    };
    let full = changed(&base, signed(rules::MAX_SIGNATURES));
    assert_eq!(verdict(&u1, &base, &full), Ok(()));
    let over = changed(&full, signed(1));
    assert_eq!(verdict(&u1, &full, &over), Err(Rule::Writ));
}

/// Two devices of one account that each give an old case its map of documents, in one
/// message, leave two maps under the key; a document under an id the other map holds too
/// would be a second document of that id, never judged, that the server's register could
/// not store.
#[test]
fn two_documents_under_one_id_are_refused() {
    let Visit {
        mut store, case, ..
    } = visit();
    let mut old_case =
        AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    old_case.delete(ROOT, "writs").expect("delete");
    old_case.commit();
    // An id from an older build: a random one, bound to no device.
    let id = uuid::Uuid::new_v4().to_string();
    let device = |n: usize| {
        let mut doc = old_case.clone();
        doc.set_actor(automerge::ActorId::random());
        let writs = doc
            .put_object(ROOT, "writs", automerge::ObjType::Map)
            .expect("put");
        let ids = [id.clone(), uuid::Uuid::new_v4().to_string()];
        draft(&mut doc, &writs, &ids[n]);
        doc.commit();
        doc
    };
    let u1 = author("u1", Role::Inspector);
    let merged = |a: usize, b: usize| {
        let mut doc = device(a);
        doc.merge(&mut device(b)).expect("merge");
        doc
    };
    assert_eq!(verdict(&u1, &old_case, &merged(0, 1)), Ok(()));
    assert_eq!(verdict(&u1, &old_case, &merged(0, 0)), Err(Rule::Writ));
    // A case holding a doubled id already (from before the rule) takes no other.
    let doubled = merged(0, 0);
    let mut again = doubled.clone();
    again.set_actor(automerge::ActorId::random());
    let another = uuid::Uuid::new_v4().to_string();
    let maps: Vec<ObjId> = again
        .get_all(ROOT, "writs")
        .expect("get")
        .into_iter()
        .map(|(_, writs)| writs)
        .collect();
    for writs in maps {
        draft(&mut again, &writs, &another);
    }
    again.commit();
    assert_eq!(verdict(&u1, &doubled, &again), Err(Rule::Writ));
}
