//! The rule book, row by row: real case documents changed as a hostile device could change
//! them (with Automerge directly, past every check of the store), each judged for an
//! author, with the verdict written by hand in the table.

use anjian_core::rules::{self, Author, CaseState, Ops, Rule};
use anjian_core::signing::{ChangeSignature, KeyAlgorithm, SignedCase, SoftwareKey};
use anjian_core::{
    CaseId, ChecklistId, DistrictCode, FindingEdit, FindingId, HazardStep, Level, NewCase,
    OnsiteMeasure, RectificationOrder, ReinspectionResult, ReviewAction, Role, Store, case_doc,
};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc};
use chrono::NaiveDate;

use crate::support::*;

const OWNER: &str = "310101";
const SHARED: &str = "310104";
const OTHER: &str = "310105";

fn author(user: &str, role: Role, district: &str) -> Author {
    Author {
        user_id: user.to_owned(),
        role,
        district: district.parse().expect("district"),
        department: "应急管理".to_owned(),
        key: None,
    }
}

/// The case every row starts from: opened by `insp` of 310101, shared with 310104, with a
/// major finding (rectification ordered), a general one (re-inspected by `insp`), a
/// checklist answered in part, and last a finding with no rectification.
struct Fixture {
    doc: AutoCommit,
    case: CaseId,
    major: FindingId,
    general: FindingId,
    /// A finding with no rectification ordered.
    plain: FindingId,
    /// A hot-work checklist attached by `insp`, its item `hw-001` answered.
    checklist: ChecklistId,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path().join("s.db"), inspector("insp")).expect("store");
    let ent = enterprise(1);
    store.register_enterprise(&ent).expect("enterprise");
    let case = store
        .open_case(&NewCase {
            visible_to: vec![SHARED.parse().expect("district")],
            ..new_case(&ent)
        })
        .expect("case");
    let order = RectificationOrder {
        measures: "立即整改".into(),
        deadline: NaiveDate::from_ymd_opt(2026, 12, 31).expect("date"),
        responsible: "安全总监".into(),
    };
    let major = store
        .add_finding(
            case,
            &anjian_core::NewFinding {
                level: Some(Level::Major),
                ..finding("液氯储罐区可燃有毒气体检测报警装置未投入使用")
            },
        )
        .expect("finding");
    store
        .order_rectification(case, major, &order)
        .expect("order");
    let general = store
        .add_finding(case, &finding("安全出口堵塞"))
        .expect("finding");
    store
        .order_rectification(case, general, &order)
        .expect("order");
    store
        .follow_up(case, general, &HazardStep::pass("已清理"))
        .expect("reinspect");
    let checklist = store.attach_checklist(case, "hot-work").expect("attach");
    let compliant = anjian_core::AnswerInput {
        result: anjian_core::AnswerResult::Compliant,
        note: String::new(),
        post: None,
        person: None,
    };
    store
        .answer_item(case, checklist, "hw-001", &compliant)
        .expect("answer");
    let plain = store
        .add_finding(case, &finding("临时堆放的纸箱"))
        .expect("finding");
    let doc = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    Fixture {
        doc,
        case,
        major,
        general,
        plain,
        checklist,
    }
}

/// `before` changed by `edit` as a device of its own would (a fork with its own actor).
fn changed(before: &AutoCommit, edit: impl FnOnce(&mut AutoCommit)) -> AutoCommit {
    let mut after = before.clone();
    after.set_actor(automerge::ActorId::random());
    edit(&mut after);
    after.commit();
    after
}

fn map(doc: &AutoCommit, obj: &ObjId, key: &str) -> ObjId {
    match doc.get(obj, key).expect("read") {
        Some((automerge::Value::Object(_), id)) => id,
        other => panic!("{key} is not an object: {other:?}"),
    }
}

fn finding_obj(doc: &AutoCommit, id: FindingId) -> ObjId {
    let findings = map(doc, &ROOT, "findings");
    map(doc, &findings, &id.to_string())
}

fn at() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00+08:00").expect("time")
}

fn review(by: &str, action: ReviewAction) -> impl Fn(&mut AutoCommit) {
    let by = by.to_owned();
    move |doc| {
        case_doc::review(doc, &by, action, "意见", at()).expect("a step of the review");
    }
}

/// `insp` re-inspects finding `id` (合格) and closes it, past the store's own checks,
/// first setting its level to `level` if given; the rows judge the changes as one.
fn close_by_hand(doc: &mut AutoCommit, id: FindingId, level: Option<Level>) {
    case_doc::follow_up(doc, "insp", id, &HazardStep::pass("已整改"), at()).expect("step");
    if let Some(level) = level {
        let obj = finding_obj(doc, id);
        doc.put(&obj, "level", level.code()).expect("put");
    }
    case_doc::follow_up(doc, "insp", id, &HazardStep::close(), at()).expect("step");
}

/// Orders rectification of finding `id` past the store's own checks, recording the
/// hazard's level at the order as `level` (or not at all).
fn order_by_hand(doc: &mut AutoCommit, id: FindingId, level: Option<&str>) {
    let obj = finding_obj(doc, id);
    let rect = map(doc, &obj, "rectification");
    doc.put(&rect, "measures", "整改").expect("put");
    doc.put(&rect, "deadline", "2027-01-31").expect("put");
    doc.put(&rect, "responsible", "王五").expect("put");
    if let Some(level) = level {
        doc.put(&rect, "ordered_level", level).expect("put");
    }
    doc.put(&rect, "state", "ordered").expect("put");
}

/// The map at `path` under the attached checklist `id` (`path` empty: the checklist).
fn checklist_map(doc: &AutoCommit, id: ChecklistId, path: &[&str]) -> ObjId {
    let checklists = map(doc, &ROOT, "checklists");
    path.iter()
        .fold(map(doc, &checklists, &id.to_string()), |obj, key| {
            map(doc, &obj, key)
        })
}

/// Sets finding `id`'s level, past the store's own checks.
fn level_put(id: FindingId, level: Level) -> impl Fn(&mut AutoCommit) {
    move |doc| {
        let obj = finding_obj(doc, id);
        doc.put(&obj, "level", level.code()).expect("put");
    }
}

/// `by` records `step` on finding `id`, past the store's own checks.
fn step(by: &'static str, id: FindingId, step: HazardStep) -> impl Fn(&mut AutoCommit) {
    move |doc| {
        case_doc::follow_up(doc, by, id, &step, at()).expect("recorded");
    }
}

fn listing() -> HazardStep {
    HazardStep::List {
        authority: "区安全生产委员会办公室".into(),
        number: "黄安委办督〔2026〕3号".into(),
        deadline: day("2027-02-28"),
    }
}

/// A photo's hash, and one of no photo the case has.
const PHOTO: &str = "5f0c8a3e1b7d4c2a9e6f8b1d3a5c7e9f0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a";
const OTHER_PHOTO: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// Appends a photo record of `sha256` to the list `photos`, as `insp` attaches one.
fn attach(doc: &mut AutoCommit, photos: &ObjId, sha256: &str) {
    let photo = doc
        .insert_object(photos, doc.length(photos), ObjType::Map)
        .expect("insert");
    doc.put(&photo, "sha256", sha256).expect("put");
    doc.put(&photo, "thumbnail", sha256).expect("put");
    doc.put(&photo, "mime", "image/jpeg").expect("put");
    doc.put(&photo, "added_by", "insp").expect("put");
    doc.put(&photo, "added_at", "2026-11-29T10:00:00+08:00")
        .expect("put");
}

/// The first photo record of the list `photos`.
fn first_photo(doc: &AutoCommit, photos: &ObjId) -> ObjId {
    match doc.get(photos, 0).expect("get") {
        Some((_, photo)) => photo,
        None => panic!("the photo is attached"),
    }
}

/// The list `key` of finding `id`'s rectification.
fn rect_list(doc: &AutoCommit, id: FindingId, key: &str) -> ObjId {
    let obj = finding_obj(doc, id);
    let rect = map(doc, &obj, "rectification");
    map(doc, &rect, key)
}

/// Writes `value` at `key` of finding `id`'s rectification.
fn rect_put(doc: &mut AutoCommit, id: FindingId, key: &str, value: &str) {
    let obj = finding_obj(doc, id);
    let rect = map(doc, &obj, "rectification");
    doc.put(&rect, key, value).expect("put");
}

/// Appends a step written by hand to finding `id`'s follow-up: `fields` (with `at` unless
/// given, and `by` as `insp` unless given), and `evidence` as its list of hashes.
fn hand_step(doc: &mut AutoCommit, id: FindingId, fields: &[(&str, &str)], evidence: &[&str]) {
    let obj = finding_obj(doc, id);
    let events = map(doc, &obj, "events");
    let step = doc
        .insert_object(&events, doc.length(&events), ObjType::Map)
        .expect("insert");
    let given = |key: &str| fields.iter().any(|(k, _)| *k == key);
    if !given("by") {
        doc.put(&step, "by", "insp").expect("put");
    }
    if !given("at") {
        doc.put(&step, "at", "2026-11-29T10:00:00+08:00")
            .expect("put");
    }
    for (key, value) in fields {
        doc.put(&step, *key, *value).expect("put");
    }
    if !evidence.is_empty() {
        let list = doc
            .put_object(&step, "evidence", ObjType::List)
            .expect("put");
        for (i, hash) in evidence.iter().enumerate() {
            doc.insert(&list, i, *hash).expect("insert");
        }
    }
}

fn day(text: &str) -> NaiveDate {
    text.parse().expect("date")
}

fn verdict(who: &Author, before: &AutoCommit, after: &AutoCommit) -> Result<(), Rule> {
    let mut checked = after.clone();
    let changes = checked.get_changes(&before.clone().get_heads());
    for change in &changes {
        rules::check(&mut checked, change).map_err(|r| r.rule)?;
    }
    verdict_of(who, before, after, &changes)
}

/// The verdict on `changes`, which turned `before` into `after`.
fn verdict_of(
    who: &Author,
    before: &AutoCommit,
    after: &AutoCommit,
    changes: &[automerge::Change],
) -> Result<(), Rule> {
    let state = CaseState::of(before).expect("before reads");
    let ops = Ops::of(after, changes).map_err(|r| r.rule)?;
    let Ok(after_state) = state.after(after, &ops) else {
        return Err(Rule::Shape);
    };
    rules::judge(
        who,
        Some(&state),
        &after_state,
        &ops,
        &rules::Trust::default(),
    )
    .map_err(|r| r.rule)
}

#[test]
fn every_rule_refuses_and_allows_what_the_table_says() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let other_insp = author("wang", Role::Inspector, OWNER);
    let far = author("far", Role::Inspector, OTHER);
    let chief = author("chief", Role::Supervisor, OWNER);
    let shared_chief = author("shared_chief", Role::Supervisor, SHARED);
    let shared_insp = author("shared_insp", Role::Inspector, SHARED);
    let admin = author("admin", Role::Admin, OTHER);
    let base = &f.doc;
    let approved = changed(base, review("chief", ReviewAction::Approve));
    let (major, general) = (f.major, f.general);
    // Both rectifications with an evidence photo (the general one re-inspected).
    let with_photo = changed(base, |doc| {
        for id in [major, general] {
            let evidence = rect_list(doc, id, "evidence");
            attach(doc, &evidence, PHOTO);
        }
    });
    let with_hazard_photo = changed(base, |doc| {
        let photos = map(doc, &finding_obj(doc, major), "photos");
        attach(doc, &photos, PHOTO);
    });
    let listed = changed(base, step("chief", major, listing()));
    let lowered = changed(base, level_put(major, Level::General));
    let raised = changed(base, level_put(f.plain, Level::Major));
    let plain = f.plain;
    let checklist = f.checklist;
    let listed_closed = changed(&listed, |doc| {
        step("chief", major, HazardStep::pass("已整改"))(doc);
        step("chief", major, HazardStep::close())(doc);
    });
    let place = |doc: &mut AutoCommit| {
        let obj = finding_obj(doc, major);
        doc.put(&obj, "place", "三号车间").expect("put");
    };
    let place_of = |bytes: usize| {
        move |doc: &mut AutoCommit| {
            let obj = finding_obj(doc, major);
            doc.put(&obj, "place", "a".repeat(bytes)).expect("put");
        }
    };
    let close = |id: FindingId, by: &'static str| step(by, id, HazardStep::close());
    let put_root = |key: &'static str, value: &'static str| {
        move |doc: &mut AutoCommit| {
            doc.put(ROOT, key, value).expect("put");
        }
    };
    type Edit<'a> = Box<dyn Fn(&mut AutoCommit) + 'a>;
    /// (row, author, before, edit, verdict)
    type Row<'a> = (
        &'a str,
        &'a Author,
        &'a AutoCommit,
        Edit<'a>,
        Result<(), Rule>,
    );
    let rows: Vec<Row<'_>> = vec![
        // Who reads and comments: the owning district, shared districts, admins.
        (
            "owner comments",
            &insp,
            base,
            Box::new(review("insp", ReviewAction::Comment)),
            Ok(()),
        ),
        (
            "shared district comments",
            &shared_chief,
            base,
            Box::new(review("shared_chief", ReviewAction::Comment)),
            Ok(()),
        ),
        (
            "shared inspector records",
            &shared_insp,
            base,
            Box::new(place),
            Ok(()),
        ),
        (
            "other district is outside",
            &far,
            base,
            Box::new(review("far", ReviewAction::Comment)),
            Err(Rule::Jurisdiction),
        ),
        // Who decides: the owning district's supervisors and admins.
        (
            "owner supervisor approves",
            &chief,
            base,
            Box::new(review("chief", ReviewAction::Approve)),
            Ok(()),
        ),
        (
            "admin approves",
            &admin,
            base,
            Box::new(review("admin", ReviewAction::Approve)),
            Ok(()),
        ),
        (
            "shared supervisor approves",
            &shared_chief,
            base,
            Box::new(review("shared_chief", ReviewAction::Approve)),
            Err(Rule::Decide),
        ),
        (
            "shared supervisor returns",
            &shared_chief,
            base,
            Box::new(review("shared_chief", ReviewAction::Return)),
            Err(Rule::Decide),
        ),
        (
            "inspector approves",
            &insp,
            base,
            Box::new(review("insp", ReviewAction::Approve)),
            Err(Rule::Decide),
        ),
        (
            "inspector submits",
            &insp,
            base,
            Box::new(review("insp", ReviewAction::Submit)),
            Ok(()),
        ),
        (
            "state without an action",
            &chief,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let review = map(doc, &ROOT, "review");
                doc.put(&review, "state", "submitted").expect("put");
            }),
            Err(Rule::ReviewState),
        ),
        (
            "approved to draft",
            &chief,
            &approved,
            Box::new(|doc: &mut AutoCommit| {
                let review = map(doc, &ROOT, "review");
                doc.put(&review, "state", "draft").expect("put");
            }),
            Err(Rule::ReviewState),
        ),
        // The trail only grows, each event in its author's name.
        (
            "event erased",
            &chief,
            &approved,
            Box::new(|doc: &mut AutoCommit| {
                let review = map(doc, &ROOT, "review");
                let events = map(doc, &review, "events");
                doc.delete(&events, 0).expect("delete");
            }),
            Err(Rule::ReviewTrail),
        ),
        (
            "event in another's name",
            &insp,
            base,
            Box::new(review("chief", ReviewAction::Comment)),
            Err(Rule::Attribution),
        ),
        (
            "event of no known kind",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let review = map(doc, &ROOT, "review");
                let events = map(doc, &review, "events");
                let event = doc.insert_object(&events, 0, ObjType::Map).expect("insert");
                doc.put(&event, "kind", "bless").expect("put");
                doc.put(&event, "by", "insp").expect("put");
            }),
            Err(Rule::Shape),
        ),
        // The approved lock compares the whole document.
        (
            "approved case edited",
            &chief,
            &approved,
            Box::new(place),
            Err(Rule::ApprovedLock),
        ),
        (
            "approved case edited by admin",
            &admin,
            &approved,
            Box::new(place),
            Err(Rule::ApprovedLock),
        ),
        (
            "approved case commented",
            &insp,
            &approved,
            Box::new(review("insp", ReviewAction::Comment)),
            Ok(()),
        ),
        (
            "approved case reopened",
            &chief,
            &approved,
            Box::new(review("chief", ReviewAction::Reopen)),
            Ok(()),
        ),
        (
            "approved case returned in the trail alone",
            &chief,
            &approved,
            Box::new(|doc: &mut AutoCommit| {
                let review = map(doc, &ROOT, "review");
                let events = map(doc, &review, "events");
                let event = doc
                    .insert_object(&events, doc.length(&events), ObjType::Map)
                    .expect("insert");
                doc.put(&event, "kind", ReviewAction::Return.code())
                    .expect("put");
                doc.put(&event, "by", "chief").expect("put");
                doc.put(&event, "at", "2026-11-29T10:00:00+08:00")
                    .expect("put");
                doc.put(&event, "text", "退回").expect("put");
            }),
            Err(Rule::ApprovedLock),
        ),
        (
            "approved case reopened by inspector",
            &insp,
            &approved,
            Box::new(review("insp", ReviewAction::Reopen)),
            Err(Rule::Decide),
        ),
        (
            "approved case given a hidden key",
            &chief,
            &approved,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                let violation = map(doc, &obj, "violation");
                doc.put(&violation, "post", "操作工").expect("put");
            }),
            Err(Rule::ApprovedLock),
        ),
        // Fields fixed at creation.
        (
            "district rewritten",
            &chief,
            base,
            Box::new(put_root("district", OTHER)),
            Err(Rule::Fixed),
        ),
        (
            "opened_by rewritten",
            &insp,
            base,
            Box::new(put_root("opened_by", "wang")),
            Err(Rule::Fixed),
        ),
        (
            "type rewritten",
            &chief,
            base,
            Box::new(put_root("type", "joint")),
            Err(Rule::Fixed),
        ),
        (
            "enterprise renamed",
            &admin,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let ent = map(doc, &ROOT, "enterprise");
                doc.put(&ent, "name", "别的公司").expect("put");
            }),
            Err(Rule::Fixed),
        ),
        // Sharing only by those who decide.
        (
            "owner supervisor shares",
            &chief,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let districts: Vec<DistrictCode> =
                    vec![SHARED.parse().expect("d"), OTHER.parse().expect("d")];
                case_doc::share(doc, "chief", &districts, at()).expect("share");
            }),
            Ok(()),
        ),
        (
            "inspector shares",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let list = map(doc, &ROOT, "visible_to");
                doc.insert(&list, 0, OTHER).expect("insert");
            }),
            Err(Rule::Sharing),
        ),
        (
            "shared supervisor unshares",
            &shared_chief,
            base,
            Box::new(|doc: &mut AutoCommit| {
                case_doc::share(doc, "shared_chief", &[], at()).expect("share");
            }),
            Err(Rule::Sharing),
        ),
        // Team entries: only oneself, in one's own district.
        (
            "joins the team",
            &other_insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let team = map(doc, &ROOT, "team");
                let me = doc.put_object(&team, "wang", ObjType::Map).expect("put");
                doc.put(&me, "district", OWNER).expect("put");
            }),
            Ok(()),
        ),
        (
            "adds someone else",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let team = map(doc, &ROOT, "team");
                doc.put_object(&team, "wang", ObjType::Map).expect("put");
            }),
            Err(Rule::Team),
        ),
        // Attribution fields name the change's author.
        (
            "finding in another's name",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                doc.put(&obj, "recorded_by", "wang").expect("put");
            }),
            Err(Rule::Attribution),
        ),
        (
            "removed in another's name",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = finding_obj(doc, f.plain);
                let removed = doc.put_object(&obj, "removed", ObjType::Map).expect("put");
                doc.put(&removed, "by", "wang").expect("put");
            }),
            Err(Rule::Attribution),
        ),
        // The schema's shape.
        (
            "unknown root key",
            &chief,
            base,
            Box::new(put_root("note", "x")),
            Err(Rule::Shape),
        ),
        (
            "wrong type",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                doc.put(&obj, "place", 5).expect("put");
            }),
            Err(Rule::Shape),
        ),
        (
            "not a level",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                doc.put(&obj, "level", "catastrophic").expect("put");
            }),
            Err(Rule::Shape),
        ),
        (
            "a place as long as a value may be",
            &insp,
            base,
            Box::new(place_of(rules::MAX_VALUE_BYTES)),
            Ok(()),
        ),
        (
            "a place longer than a value may be",
            &insp,
            base,
            Box::new(place_of(rules::MAX_VALUE_BYTES + 1)),
            Err(Rule::Shape),
        ),
        (
            "extra nesting",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                let deep = doc.put_object(&obj, "category", ObjType::Map).expect("put");
                doc.put_object(&deep, "x", ObjType::Map).expect("put");
            }),
            Err(Rule::Shape),
        ),
        // The closed loop, its evidence, and who closes which level.
        (
            "major closed by inspector",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| close_by_hand(doc, major, None)),
            Err(Rule::Close),
        ),
        (
            "major lowered to general and closed by inspector in one change",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                close_by_hand(doc, major, Some(Level::General));
            }),
            Err(Rule::Close),
        ),
        // The level an order was given at is recorded with it and closing is judged at
        // it: a major hazard lowered since is still the supervisors' to close.
        (
            "major lowered to general, then closed by inspector in another change",
            &insp,
            &lowered,
            Box::new(move |doc: &mut AutoCommit| close_by_hand(doc, major, None)),
            Err(Rule::Close),
        ),
        (
            "major lowered to general, re-inspected and closed by the supervisor",
            &chief,
            &lowered,
            Box::new(move |doc: &mut AutoCommit| {
                step("chief", major, HazardStep::pass("已整改"))(doc);
                step("chief", major, HazardStep::close())(doc);
            }),
            Ok(()),
        ),
        (
            "another inspector lowers an ordered major hazard",
            &other_insp,
            base,
            Box::new(level_put(major, Level::General)),
            Ok(()),
        ),
        (
            "the level recorded with an order rewritten",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| rect_put(doc, major, "ordered_level", "general")),
            Err(Rule::RectificationLoop),
        ),
        (
            "a general hazard ordered with its level",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| order_by_hand(doc, plain, Some("general"))),
            Ok(()),
        ),
        (
            "an order without the hazard's level",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| order_by_hand(doc, plain, None)),
            Err(Rule::RectificationLoop),
        ),
        (
            "a major hazard ordered as general",
            &insp,
            &raised,
            Box::new(move |doc: &mut AutoCommit| order_by_hand(doc, plain, Some("general"))),
            Err(Rule::RectificationLoop),
        ),
        (
            "a major hazard lowered and ordered as general in one change",
            &insp,
            &raised,
            Box::new(move |doc: &mut AutoCommit| {
                level_put(plain, Level::General)(doc);
                order_by_hand(doc, plain, Some("general"));
            }),
            Ok(()),
        ),
        (
            "a major hazard ordered as major",
            &insp,
            &raised,
            Box::new(move |doc: &mut AutoCommit| order_by_hand(doc, plain, Some("major"))),
            Ok(()),
        ),
        (
            "a colleague deletes an attached checklist",
            &other_insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let checklists = map(doc, &ROOT, "checklists");
                doc.delete(&checklists, checklist.to_string())
                    .expect("delete");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a colleague replaces an attached checklist with one of their own",
            &other_insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let checklists = map(doc, &ROOT, "checklists");
                let obj = doc
                    .put_object(&checklists, checklist.to_string(), ObjType::Map)
                    .expect("put");
                for (key, value) in [
                    ("template", "hot-work"),
                    ("version", "0"),
                    ("title", "动火作业"),
                    ("kind", "special_operation"),
                    ("attached_by", "wang"),
                    ("attached_at", "2026-11-29T11:00:00+08:00"),
                ] {
                    doc.put(&obj, key, value).expect("put");
                }
                doc.put_object(&obj, "items", ObjType::Map).expect("put");
                doc.put_object(&obj, "answers", ObjType::Map).expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "an attached checklist's answers replaced",
            &other_insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = checklist_map(doc, checklist, &[]);
                doc.put_object(&obj, "answers", ObjType::Map).expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "an attached checklist's template rewritten",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = checklist_map(doc, checklist, &[]);
                doc.put(&obj, "template", "confined-space").expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a question of an attached checklist rewritten",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let item = checklist_map(doc, checklist, &["items", "hw-001"]);
                doc.put(&item, "text", "动火作业已审批").expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a question added to an attached checklist",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let items = checklist_map(doc, checklist, &["items"]);
                let item = doc.put_object(&items, "hw-999", ObjType::Map).expect("put");
                doc.put(&item, "order", 99_i64).expect("put");
                for (key, value) in [
                    ("text", "动火作业已审批"),
                    ("category", "作业许可"),
                    ("basis", "GB 30871"),
                    ("level", "general"),
                ] {
                    doc.put(&item, key, value).expect("put");
                }
                doc.put_object(&item, "posts", ObjType::List).expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "an item's answer record replaced",
            &other_insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let answers = checklist_map(doc, checklist, &["answers"]);
                doc.put_object(&answers, "hw-001", ObjType::Map)
                    .expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "an item's photo list replaced",
            &other_insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let answer = checklist_map(doc, checklist, &["answers", "hw-001"]);
                doc.put_object(&answer, "photos", ObjType::List)
                    .expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a colleague answers an item again",
            &other_insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let answer = checklist_map(doc, checklist, &["answers", "hw-001"]);
                doc.put(&answer, "result", "non_compliant").expect("put");
                doc.put(&answer, "note", "未设监护人").expect("put");
                doc.put(&answer, "answered_by", "wang").expect("put");
                doc.put(&answer, "answered_at", "2026-11-29T11:00:00+08:00")
                    .expect("put");
            }),
            Ok(()),
        ),
        (
            "general closed by its re-inspector",
            &insp,
            base,
            Box::new(close(general, "insp")),
            Ok(()),
        ),
        (
            "general closed by another inspector",
            &other_insp,
            base,
            Box::new(close(general, "wang")),
            Err(Rule::Close),
        ),
        (
            "general closed by the supervisor",
            &chief,
            base,
            Box::new(close(general, "chief")),
            Ok(()),
        ),
        (
            "closed without a closing step",
            &chief,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, general);
                let rect = map(doc, &obj, "rectification");
                doc.put(&rect, "state", "closed").expect("put");
            }),
            Err(Rule::RectificationLoop),
        ),
        (
            "closed before a passed re-inspection",
            &chief,
            base,
            Box::new(close(major, "chief")),
            Err(Rule::RectificationLoop),
        ),
        (
            "re-inspected without a result",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                let rect = map(doc, &obj, "rectification");
                doc.put(&rect, "state", "reinspected").expect("put");
            }),
            Err(Rule::RectificationLoop),
        ),
        (
            "re-inspection passed without evidence",
            &insp,
            base,
            Box::new(step("insp", major, HazardStep::pass(""))),
            Err(Rule::Evidence),
        ),
        (
            "re-inspection failed with neither a new deadline nor escalation",
            &insp,
            base,
            Box::new(step(
                "insp",
                major,
                HazardStep::Reinspect {
                    result: ReinspectionResult::Fail,
                    note: "报警装置仍未投用".into(),
                    deadline: None,
                    escalation: " ".into(),
                },
            )),
            Err(Rule::RectificationLoop),
        ),
        (
            "re-inspection failed with a new deadline",
            &insp,
            base,
            Box::new(step(
                "insp",
                major,
                HazardStep::Reinspect {
                    result: ReinspectionResult::Fail,
                    note: "报警装置仍未投用".into(),
                    deadline: Some(day("2027-01-15")),
                    escalation: String::new(),
                },
            )),
            Ok(()),
        ),
        (
            "deadline moved without an extension",
            &chief,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                let rect = map(doc, &obj, "rectification");
                doc.put(&rect, "deadline", "2027-03-01").expect("put");
            }),
            Err(Rule::RectificationLoop),
        ),
        (
            "extension without a reason",
            &insp,
            base,
            Box::new(step(
                "insp",
                major,
                HazardStep::Extend {
                    deadline: day("2027-01-31"),
                    reason: String::new(),
                },
            )),
            Err(Rule::Evidence),
        ),
        (
            "extension to an earlier day",
            &insp,
            base,
            Box::new(step(
                "insp",
                major,
                HazardStep::Extend {
                    deadline: day("2026-12-01"),
                    reason: "企业申请".into(),
                },
            )),
            Err(Rule::RectificationLoop),
        ),
        (
            "extension with a reason",
            &insp,
            base,
            Box::new(step(
                "insp",
                major,
                HazardStep::Extend {
                    deadline: day("2027-01-31"),
                    reason: "设备采购周期长，企业书面申请".into(),
                },
            )),
            Ok(()),
        ),
        (
            "a recorded step taken away",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, general);
                let events = map(doc, &obj, "events");
                doc.delete(&events, 0).expect("delete");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a recorded step rewritten",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, general);
                let events = map(doc, &obj, "events");
                let first = match doc.get(&events, 0).expect("get") {
                    Some((_, first)) => first,
                    None => panic!("the re-inspection is recorded"),
                };
                doc.put(&first, "result", "fail").expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a general hazard listed",
            &chief,
            base,
            Box::new(step("chief", general, listing())),
            Err(Rule::RectificationLoop),
        ),
        (
            "a major hazard listed by an inspector",
            &insp,
            base,
            Box::new(step("insp", major, listing())),
            Err(Rule::Decide),
        ),
        (
            "a major hazard listed by the supervisor",
            &chief,
            base,
            Box::new(step("chief", major, listing())),
            Ok(()),
        ),
        (
            "a listing whose 文号 is longer than any number",
            &chief,
            base,
            Box::new(step(
                "chief",
                major,
                HazardStep::List {
                    authority: "区安全生产委员会办公室".into(),
                    number: "督".repeat(anjian_core::numbering::MAX_NUMBER_CHARS + 1),
                    deadline: day("2027-02-28"),
                },
            )),
            Err(Rule::Evidence),
        ),
        (
            "a hazard not listed delisted",
            &chief,
            base,
            Box::new(step(
                "chief",
                major,
                HazardStep::Delist {
                    note: String::new(),
                },
            )),
            Err(Rule::RectificationLoop),
        ),
        (
            "a progress report on a hazard not listed",
            &insp,
            base,
            Box::new(step(
                "insp",
                major,
                HazardStep::Progress {
                    text: "已采购".into(),
                },
            )),
            Err(Rule::RectificationLoop),
        ),
        (
            "re-inspected on an approved case",
            &insp,
            &approved,
            Box::new(step("insp", major, HazardStep::pass("报警装置已投用"))),
            Ok(()),
        ),
        (
            "extended on an approved case",
            &insp,
            &approved,
            Box::new(step(
                "insp",
                major,
                HazardStep::Extend {
                    deadline: day("2027-01-31"),
                    reason: "企业书面申请".into(),
                },
            )),
            Ok(()),
        ),
        (
            "general closed by its re-inspector on an approved case",
            &insp,
            &approved,
            Box::new(close(general, "insp")),
            Ok(()),
        ),
        (
            "on-site measure added to an approved case",
            &insp,
            &approved,
            Box::new(step(
                "insp",
                major,
                HazardStep::Onsite {
                    measure: OnsiteMeasure::Evacuate,
                    note: "撤出罐区作业人员".into(),
                },
            )),
            Err(Rule::ApprovedLock),
        ),
        (
            "rectification ordered on an approved case",
            &insp,
            &approved,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = finding_obj(doc, f.plain);
                let rect = map(doc, &obj, "rectification");
                doc.put(&rect, "measures", "整改").expect("put");
                doc.put(&rect, "deadline", "2027-01-31").expect("put");
                doc.put(&rect, "responsible", "王五").expect("put");
                doc.put(&rect, "state", "ordered").expect("put");
            }),
            Err(Rule::ApprovedLock),
        ),
        // A step is judged as it reads: its fields are its kind's, in its author's name,
        // and the evidence it names is the rectification's.
        (
            "a passed re-inspection naming a photo the rectification does not have",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                hand_step(
                    doc,
                    major,
                    &[("kind", "reinspect"), ("result", "pass")],
                    &[OTHER_PHOTO],
                );
                rect_put(doc, major, "state", "reinspected");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a passed re-inspection naming the rectification's photo",
            &insp,
            &with_photo,
            Box::new(move |doc: &mut AutoCommit| {
                hand_step(
                    doc,
                    major,
                    &[("kind", "reinspect"), ("result", "pass")],
                    &[PHOTO],
                );
                rect_put(doc, major, "state", "reinspected");
            }),
            Ok(()),
        ),
        (
            "a passed re-inspection carrying a deadline",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                hand_step(
                    doc,
                    major,
                    &[
                        ("kind", "reinspect"),
                        ("result", "pass"),
                        ("note", "已整改"),
                        ("deadline", "2099-12-31"),
                        ("previous_deadline", "2099-12-31"),
                    ],
                    &[],
                );
                rect_put(doc, major, "state", "reinspected");
            }),
            Err(Rule::Shape),
        ),
        (
            "a progress report naming a deadline it replaced",
            &chief,
            &listed,
            Box::new(move |doc: &mut AutoCommit| {
                hand_step(
                    doc,
                    major,
                    &[
                        ("kind", "progress"),
                        ("by", "chief"),
                        ("text", "已采购"),
                        ("previous_deadline", "2099-12-31"),
                    ],
                    &[],
                );
            }),
            Err(Rule::Shape),
        ),
        (
            "a progress report carrying a listing's authority",
            &chief,
            &listed,
            Box::new(move |doc: &mut AutoCommit| {
                hand_step(
                    doc,
                    major,
                    &[
                        ("kind", "progress"),
                        ("by", "chief"),
                        ("text", "已采购"),
                        ("authority", "市安委办"),
                    ],
                    &[],
                );
            }),
            Err(Rule::Shape),
        ),
        (
            "a step in no one's name",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                let events = map(doc, &obj, "events");
                let step = doc
                    .insert_object(&events, doc.length(&events), ObjType::Map)
                    .expect("insert");
                doc.put(&step, "kind", "extend").expect("put");
                doc.put(&step, "at", "2026-11-29T10:00:00+08:00")
                    .expect("put");
                doc.put(&step, "reason", "企业申请").expect("put");
                doc.put(&step, "deadline", "2027-01-31").expect("put");
                doc.put(&step, "previous_deadline", "2026-12-31")
                    .expect("put");
                rect_put(doc, major, "deadline", "2027-01-31");
            }),
            Err(Rule::Attribution),
        ),
        (
            "a field added to a recorded step",
            &insp,
            base,
            Box::new(|doc: &mut AutoCommit| {
                let obj = finding_obj(doc, general);
                let events = map(doc, &obj, "events");
                let first = match doc.get(&events, 0).expect("get") {
                    Some((_, first)) => first,
                    None => panic!("the re-inspection is recorded"),
                };
                doc.put(&first, "escalation", "立案处罚").expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a step inserted before the recorded ones",
            &chief,
            &listed,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                let events = map(doc, &obj, "events");
                let step = doc.insert_object(&events, 0, ObjType::Map).expect("insert");
                doc.put(&step, "kind", "progress").expect("put");
                doc.put(&step, "by", "chief").expect("put");
                doc.put(&step, "at", "2026-11-29T10:00:00+08:00")
                    .expect("put");
                doc.put(&step, "text", "已采购").expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a re-inspection written into the old fields",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                rect_put(doc, major, "reinspection_note", "已整改");
                rect_put(doc, major, "reinspected_by", "insp");
                rect_put(doc, major, "reinspected_at", "2026-11-29T10:00:00+08:00");
            }),
            Err(Rule::Evidence),
        ),
        // Re-inspection evidence stays, however it would be taken away.
        (
            "re-inspection evidence detached",
            &insp,
            &with_photo,
            Box::new(move |doc: &mut AutoCommit| {
                let evidence = rect_list(doc, general, "evidence");
                doc.delete(&evidence, 0).expect("delete");
            }),
            Err(Rule::Evidence),
        ),
        (
            "re-inspection evidence replaced by an empty list",
            &insp,
            &with_photo,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = finding_obj(doc, general);
                let rect = map(doc, &obj, "rectification");
                doc.put_object(&rect, "evidence", ObjType::List)
                    .expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "re-inspection evidence photo rewritten",
            &insp,
            &with_photo,
            Box::new(move |doc: &mut AutoCommit| {
                let evidence = rect_list(doc, general, "evidence");
                let photo = first_photo(doc, &evidence);
                doc.put(&photo, "sha256", OTHER_PHOTO).expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "re-inspection evidence photo made unreadable",
            &insp,
            &with_photo,
            Box::new(move |doc: &mut AutoCommit| {
                let evidence = rect_list(doc, general, "evidence");
                let photo = first_photo(doc, &evidence);
                doc.put(&photo, "added_at", "昨天").expect("put");
            }),
            Err(Rule::Evidence),
        ),
        // A photo record stays as attached, re-inspected or not.
        (
            "re-inspection evidence attached again with its hash and another time",
            &insp,
            &with_photo,
            Box::new(move |doc: &mut AutoCommit| {
                let evidence = rect_list(doc, general, "evidence");
                doc.delete(&evidence, 0).expect("delete");
                attach(doc, &evidence, PHOTO);
                let photo = first_photo(doc, &evidence);
                doc.put(&photo, "captured_at", "2026-11-20T09:00:00+08:00")
                    .expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "the time a rectification photo was taken rewritten",
            &insp,
            &with_photo,
            Box::new(move |doc: &mut AutoCommit| {
                let evidence = rect_list(doc, major, "evidence");
                let photo = first_photo(doc, &evidence);
                doc.put(&photo, "captured_at", "2026-11-20T09:00:00+08:00")
                    .expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "where a hazard photo was taken rewritten",
            &insp,
            &with_hazard_photo,
            Box::new(move |doc: &mut AutoCommit| {
                let photos = map(doc, &finding_obj(doc, major), "photos");
                let photo = first_photo(doc, &photos);
                doc.put(&photo, "latitude", 31.2).expect("put");
            }),
            Err(Rule::Evidence),
        ),
        (
            "a second hazard photo attached",
            &insp,
            &with_hazard_photo,
            Box::new(move |doc: &mut AutoCommit| {
                let photos = map(doc, &finding_obj(doc, major), "photos");
                attach(doc, &photos, OTHER_PHOTO);
            }),
            Ok(()),
        ),
        (
            "a re-inspected rectification written anew without its evidence",
            &insp,
            &with_photo,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = finding_obj(doc, general);
                let rect = doc
                    .put_object(&obj, "rectification", ObjType::Map)
                    .expect("put");
                doc.put(&rect, "state", "reinspected").expect("put");
                doc.put(&rect, "deadline", "2026-12-31").expect("put");
                doc.put(&rect, "measures", "立即整改").expect("put");
                doc.put(&rect, "responsible", "安全总监").expect("put");
            }),
            Err(Rule::Evidence),
        ),
        // The state and deadline move only as the steps move them.
        (
            "a passed re-inspection with the state written to closed",
            &chief,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                step("chief", major, HazardStep::pass("已整改"))(doc);
                rect_put(doc, major, "state", "closed");
            }),
            Err(Rule::RectificationLoop),
        ),
        (
            "a failed re-inspection with an earlier deadline",
            &insp,
            base,
            Box::new(step(
                "insp",
                major,
                HazardStep::Reinspect {
                    result: ReinspectionResult::Fail,
                    note: "报警装置仍未投用".into(),
                    deadline: Some(day("2026-12-15")),
                    escalation: String::new(),
                },
            )),
            Err(Rule::RectificationLoop),
        ),
        (
            "an extension naming a deadline that was not in force",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                hand_step(
                    doc,
                    major,
                    &[
                        ("kind", "extend"),
                        ("by", "insp"),
                        ("reason", "企业申请"),
                        ("deadline", "2027-01-31"),
                        ("previous_deadline", "2027-01-15"),
                    ],
                    &[],
                );
                rect_put(doc, major, "deadline", "2027-01-31");
            }),
            Err(Rule::RectificationLoop),
        ),
        (
            "a description edited with a step on an approved case",
            &insp,
            &approved,
            Box::new(move |doc: &mut AutoCommit| {
                step("insp", major, HazardStep::pass("报警装置已投用"))(doc);
                let obj = finding_obj(doc, major);
                doc.put(&obj, "description", "已整改的隐患").expect("put");
            }),
            Err(Rule::ApprovedLock),
        ),
        (
            "a photo of the hazard attached",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                let photos = map(doc, &obj, "photos");
                attach(doc, &photos, OTHER_PHOTO);
            }),
            Ok(()),
        ),
        (
            "a photo whose thumbnail names a page, not a hash",
            &insp,
            base,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                let photos = map(doc, &obj, "photos");
                attach(doc, &photos, OTHER_PHOTO);
                let photo = first_photo(doc, &photos);
                doc.put(&photo, "thumbnail", "../../cases/x/evidence?photos=true")
                    .expect("put");
            }),
            Err(Rule::Shape),
        ),
        (
            "a photo of the hazard attached on an approved case",
            &insp,
            &approved,
            Box::new(move |doc: &mut AutoCommit| {
                let obj = finding_obj(doc, major);
                let photos = map(doc, &obj, "photos");
                attach(doc, &photos, OTHER_PHOTO);
            }),
            Err(Rule::ApprovedLock),
        ),
        (
            "a listed hazard delisted by an inspector",
            &insp,
            &listed_closed,
            Box::new(step(
                "insp",
                major,
                HazardStep::Delist {
                    note: String::new(),
                },
            )),
            Err(Rule::Decide),
        ),
        (
            "a listed hazard delisted by the supervisor",
            &chief,
            &listed_closed,
            Box::new(step(
                "chief",
                major,
                HazardStep::Delist {
                    note: String::new(),
                },
            )),
            Ok(()),
        ),
    ];
    let mut wrong = Vec::new();
    for (row, who, before, edit, expected) in &rows {
        let after = changed(before, edit);
        let got = verdict(who, before, &after);
        if got != *expected {
            wrong.push(format!("{row}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(f.case, case_doc::case_id(base).expect("a case"));
}

/// Two inspectors of a joint team, one offline: a teammate raises a hazard to major while
/// the other, who has not seen it, orders it rectified as general. The order records the
/// level its inspector saw, and stands; the hazard still reads major, and its inspector may
/// not close it. An inspector who had seen the raise may not record general.
#[test]
fn an_order_given_unaware_of_a_teammate_s_raise_records_the_level_its_inspector_saw() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let plain = f.plain;
    let base = &f.doc;
    let raised = changed(base, level_put(plain, Level::Major));
    let unaware = changed(base, |doc| order_by_hand(doc, plain, Some("general")));
    let order = unaware.clone().get_changes(&base.clone().get_heads());
    let mut merged = raised.clone();
    merged.merge(&mut unaware.clone()).expect("merge");
    assert_eq!(verdict_of(&insp, &raised, &merged, &order), Ok(()));

    let read = CaseState::of(&merged).expect("reads");
    let finding = read
        .case()
        .findings
        .iter()
        .find(|x| x.id == plain)
        .expect("the finding");
    assert_eq!(finding.level, Level::Major);
    let rectification = finding.rectification.as_ref().expect("ordered");
    assert_eq!(rectification.ordered_level, Some(Level::General));
    let closed = changed(&merged, |doc| close_by_hand(doc, plain, None));
    assert_eq!(verdict(&insp, &merged, &closed), Err(Rule::Close));

    let aware = changed(&raised, |doc| order_by_hand(doc, plain, Some("general")));
    assert_eq!(
        verdict(&insp, &raised, &aware),
        Err(Rule::RectificationLoop)
    );
}

#[test]
fn a_hazard_s_history_reads_in_the_order_it_was_written() {
    // Phones' clocks are wrong at times: a step reads after the steps it was taken after,
    // whatever time it carries, as the rule book judged it.
    let f = fixture();
    let chief = author("chief", Role::Supervisor, OWNER);
    let insp = author("insp", Role::Inspector, OWNER);
    let time = |text: &str| chrono::DateTime::parse_from_rfc3339(text).expect("time");
    let ahead = time("2027-06-01T09:00:00+08:00");
    let behind = time("2026-11-01T09:00:00+08:00");
    let taken = |by: &'static str, step: HazardStep, at| {
        move |doc: &mut AutoCommit| {
            case_doc::follow_up(doc, by, f.major, &step, at).expect("recorded");
        }
    };
    let major = |doc: &AutoCommit| {
        CaseState::of(doc)
            .expect("reads")
            .case()
            .findings
            .iter()
            .find(|x| x.id == f.major)
            .cloned()
            .expect("the major finding")
    };
    // Extended twice, the second time from a phone whose clock is behind: each extension
    // reads with the deadline it replaced.
    let first = HazardStep::Extend {
        deadline: day("2027-01-31"),
        reason: "设备采购周期长".into(),
    };
    let second = HazardStep::Extend {
        deadline: day("2027-02-28"),
        reason: "设备到货延迟".into(),
    };
    let extended = changed(&f.doc, taken("insp", first, at()));
    let twice = changed(&extended, taken("insp", second, behind));
    assert_eq!(verdict(&insp, &extended, &twice), Ok(()));
    let deadlines: Vec<Option<NaiveDate>> = major(&twice)
        .steps_with_deadlines()
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        deadlines,
        vec![Some(day("2026-12-31")), Some(day("2027-01-31"))]
    );
    // Listed from a phone whose clock is ahead, closed, then delisted: the listing ends.
    let listed = changed(&f.doc, taken("chief", listing(), ahead));
    let closed = changed(&listed, |doc| {
        taken("chief", HazardStep::pass("已整改"), at())(doc);
        taken("chief", HazardStep::close(), at())(doc);
    });
    let delist = || HazardStep::Delist {
        note: String::new(),
    };
    let delisted = changed(&closed, taken("chief", delist(), at()));
    assert_eq!(verdict(&chief, &closed, &delisted), Ok(()));
    assert_eq!(major(&delisted).listing(), None, "delisted");
    let again = changed(&delisted, taken("chief", delist(), at()));
    assert_eq!(
        verdict(&chief, &delisted, &again),
        Err(Rule::RectificationLoop)
    );
    // Two phones offline each append a step: the later to arrive is appended too, though
    // it may read before the other.
    let report = HazardStep::Progress {
        text: "已采购".into(),
    };
    let plan = HazardStep::Plan {
        measures: "更换报警装置".into(),
        funds: "5万元".into(),
        responsible: "安全总监".into(),
        interim: "人工巡检".into(),
    };
    let first = changed(&listed, taken("chief", report, at()));
    let mut second = changed(&listed, taken("insp", plan, at()));
    let merged = {
        let mut both = first.clone();
        both.merge(&mut second).expect("merge");
        both
    };
    assert_eq!(verdict(&insp, &first, &merged), Ok(()));
    assert_eq!(major(&merged).events.len(), 3);
}

#[test]
fn a_removal_stays_recorded() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let chief = author("chief", Role::Supervisor, OWNER);
    let remove = |id: FindingId, by: &'static str| {
        move |doc: &mut AutoCommit| {
            let obj = finding_obj(doc, id);
            let removed = doc.put_object(&obj, "removed", ObjType::Map).expect("put");
            doc.put(&removed, "by", by).expect("put");
            doc.put(&removed, "at", "2026-11-29T10:00:00+08:00")
                .expect("put");
        }
    };
    // A finding ordered to be rectified leaves the loop only by those who decide.
    assert_eq!(
        verdict(&insp, &f.doc, &changed(&f.doc, remove(f.major, "insp"))),
        Err(Rule::Close)
    );
    let removed = changed(&f.doc, remove(f.major, "chief"));
    assert_eq!(verdict(&chief, &f.doc, &removed), Ok(()));
    let restored = changed(&removed, |doc| {
        let obj = finding_obj(doc, f.major);
        doc.delete(&obj, "removed").expect("delete");
    });
    assert_eq!(verdict(&chief, &removed, &restored), Err(Rule::Evidence));
    // A finding with no rectification ordered is removed by an inspector.
    assert_eq!(
        verdict(&insp, &f.doc, &changed(&f.doc, remove(f.plain, "insp"))),
        Ok(())
    );
}

#[test]
fn a_value_hidden_in_a_conflict_is_judged_too() {
    // A device writes the district concurrently with an earlier state of the case: its
    // value may lose the conflict and stay unseen by readers, but it is there.
    let f = fixture();
    let chief = author("chief", Role::Supervisor, OWNER);
    let mut forked = f.doc.clone();
    forked.set_actor(automerge::ActorId::random());
    forked.put(ROOT, "district", OTHER).expect("put");
    forked.commit();
    let mut ours = f.doc.clone();
    ours.set_actor(automerge::ActorId::random());
    // The owner's value, written again as an operation of its own (null, then the value),
    // with a later counter: it wins the conflict, and readers see the district unchanged.
    ours.put(ROOT, "district", automerge::ScalarValue::Null)
        .expect("put");
    ours.put(ROOT, "district", OWNER).expect("put");
    ours.commit();
    let mut after = ours.clone();
    after.merge(&mut forked).expect("merge");
    let values = after.get_all(ROOT, "district").expect("read");
    assert_eq!(values.len(), 2, "{values:?}");
    assert_eq!(
        CaseState::of(&after)
            .expect("reads")
            .case()
            .district
            .as_str(),
        OWNER,
        "the hostile value is hidden from readers"
    );
    assert_eq!(verdict(&chief, &f.doc, &after), Err(Rule::Fixed));
}

/// Copies the map `from` of `source` into the map `to` of `target`, objects made anew.
fn copy_map(source: &AutoCommit, from: &ObjId, target: &mut AutoCommit, to: &ObjId) {
    for key in source.keys(from).collect::<Vec<_>>() {
        match source.get(from, &key).expect("get").expect("value") {
            (automerge::Value::Object(automerge::ObjType::Map), child) => {
                let made = target
                    .put_object(to, &key, automerge::ObjType::Map)
                    .expect("map");
                copy_map(source, &child, target, &made);
            }
            (automerge::Value::Object(automerge::ObjType::Text), child) => {
                let made = target
                    .put_object(to, &key, automerge::ObjType::Text)
                    .expect("text");
                let text = source.text(&child).expect("text");
                target.splice_text(&made, 0, 0, &text).expect("splice");
            }
            (automerge::Value::Object(kind), _) => {
                // Lists start empty (a new finding's photos and steps).
                target.put_object(to, &key, kind).expect("object");
            }
            (automerge::Value::Scalar(value), _) => {
                target.put(to, &key, value.into_owned()).expect("put");
            }
        }
    }
}

#[test]
fn a_finding_made_again_on_old_heads_cannot_win_a_conflict_over_the_finding() {
    // A change built on the heads from before a finding was recorded makes a finding of
    // the same id: Automerge keeps both maps as a conflict and the newcomer wins (by its
    // actor's id), hiding the recorded finding without naming it.
    let f = fixture();
    let mut doc = f.doc.clone();
    // The finding was the last thing recorded: its change's dependencies are the heads
    // from just before it.
    let deps = doc
        .get_changes(&[])
        .last()
        .expect("changes")
        .deps()
        .to_vec();
    let mut forger = doc
        .fork_at(&deps)
        .expect("fork")
        .with_actor(automerge::ActorId::from([0xff; 16].as_slice()));
    assert!(
        !forger
            .keys(
                forger
                    .get(ROOT, "findings")
                    .expect("get")
                    .expect("findings")
                    .1
            )
            .any(|k| k == f.plain.to_string()),
        "forked before the finding was recorded"
    );
    let findings = forger
        .get(ROOT, "findings")
        .expect("get")
        .expect("findings")
        .1;
    let forged = forger
        .put_object(&findings, f.plain.to_string(), automerge::ObjType::Map)
        .expect("finding");
    let original = f
        .doc
        .get(
            f.doc
                .get(ROOT, "findings")
                .expect("get")
                .expect("findings")
                .1,
            f.plain.to_string(),
        )
        .expect("get")
        .expect("finding")
        .1;
    copy_map(&f.doc, &original, &mut forger, &forged);
    forger
        .put(&forged, "description", "已整改完毕")
        .expect("put");
    forger.commit();
    let mut after = f.doc.clone();
    after.merge(&mut forger).expect("merge");
    let values = after
        .get_all(
            after
                .get(ROOT, "findings")
                .expect("get")
                .expect("findings")
                .1,
            f.plain.to_string(),
        )
        .expect("read");
    assert_eq!(values.len(), 2, "{values:?}");
    let read = CaseState::of(&after).expect("reads");
    let plain = read.case().findings.iter().find(|x| x.id == f.plain);
    assert_eq!(
        plain.map(|x| x.description.as_str()),
        Some("已整改完毕"),
        "the forged finding wins the conflict"
    );
    assert_eq!(
        verdict(&author("insp", Role::Inspector, OWNER), &f.doc, &after),
        Err(Rule::Evidence)
    );
}

#[test]
fn the_store_refuses_locally_what_the_server_would() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case) = store_with_case(&dir, "s.db", "insp");
    let id = store
        .add_finding(
            case,
            &anjian_core::NewFinding {
                level: Some(Level::Major),
                ..finding("隐患")
            },
        )
        .expect("finding");
    let order = RectificationOrder {
        measures: "立即整改".into(),
        deadline: NaiveDate::from_ymd_opt(2026, 12, 31).expect("date"),
        responsible: "安全总监".into(),
    };
    store.order_rectification(case, id, &order).expect("order");
    store
        .follow_up(case, id, &HazardStep::pass("已整改"))
        .expect("reinspect");
    let heads = store.heads(case).expect("heads");
    let refused = store.follow_up(case, id, &HazardStep::close());
    assert!(
        matches!(&refused, Err(anjian_core::Error::NotAllowed(m)) if m.contains("重大隐患")),
        "{refused:?}"
    );
    assert_eq!(
        store.heads(case).expect("heads"),
        heads,
        "nothing was recorded"
    );
    // The store goes on: the next allowed edit is recorded.
    store
        .edit_finding(
            case,
            id,
            &FindingEdit {
                place: Some("罐区".into()),
                ..FindingEdit::default()
            },
        )
        .expect("edit");
    assert_ne!(store.heads(case).expect("heads"), heads);
}

/// `before` changed by `edit`, then its change rewritten by `tamper` (as a hostile writer
/// builds one by hand).
fn tampered(
    before: &AutoCommit,
    edit: impl FnOnce(&mut AutoCommit),
    tamper: impl FnOnce(&mut automerge::ExpandedChange),
) -> automerge::Change {
    let mut honest = changed(before, edit);
    let change = honest
        .get_changes(&before.clone().get_heads())
        .pop()
        .expect("a change");
    let mut expanded = change.decode();
    tamper(&mut expanded);
    automerge::Change::from(expanded)
}

/// What the rule book makes of `change` arriving at `before`: it is applied only if it is
/// written as a well-behaved writer writes, then judged.
fn verdict_on(who: &Author, before: &AutoCommit, change: automerge::Change) -> Result<(), Rule> {
    let mut after = before.clone();
    rules::apply(&mut after, std::slice::from_ref(&change)).map_err(|r| r.rule)?;
    verdict_of(who, before, &after, &[change])
}

/// The id of the value `key` of `obj` holds, as a change names it.
fn value_id(doc: &AutoCommit, obj: &ObjId, key: &str) -> automerge::legacy::OpId {
    let (_, id) = doc.get(obj, key).expect("read").expect("a value");
    id.to_string().parse().expect("an operation id")
}

#[test]
fn an_operation_must_replace_exactly_the_values_it_saw() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let place = |doc: &mut AutoCommit| {
        let obj = finding_obj(doc, f.general);
        doc.put(&obj, "place", "二号罐区东侧").expect("put");
    };
    assert_eq!(
        verdict(&insp, &f.doc, &changed(&f.doc, place)),
        Ok(()),
        "the honest edit is allowed"
    );

    // The edit also names the major finding's description as replaced: a reader that trusts
    // predecessors would hide that evidence.
    let major = finding_obj(&f.doc, f.major);
    let hidden = value_id(&f.doc, &major, "description");
    let forged = tampered(&f.doc, place, |change| {
        let mut pred: Vec<_> = change.operations[0].pred.iter().cloned().collect();
        pred.push(hidden.clone());
        change.operations[0].pred = pred.into();
    });
    assert_eq!(verdict_on(&insp, &f.doc, forged), Err(Rule::Shape));

    // A write that names nothing where a value is: it would stand beside the value as a
    // conflict nobody made.
    let general = finding_obj(&f.doc, f.general);
    let description = |doc: &mut AutoCommit| {
        let obj = finding_obj(doc, f.general);
        doc.put(&obj, "description", "安全出口被货物堵塞")
            .expect("put");
    };
    let forged = tampered(&f.doc, description, |change| {
        change.operations[0].pred = Vec::new().into();
    });
    let mut after = f.doc.clone();
    after
        .apply_changes([forged.clone()])
        .expect("Automerge takes it");
    assert_eq!(
        after.get_all(&general, "description").expect("read").len(),
        2,
        "Automerge alone would keep both"
    );
    assert_eq!(verdict_on(&insp, &f.doc, forged), Err(Rule::Shape));

    // A new event in the review trail that also names the major finding's description.
    let comment = review("insp", ReviewAction::Comment);
    let forged = tampered(&f.doc, comment, |change| {
        let insert = change
            .operations
            .iter_mut()
            .find(|op| op.insert)
            .expect("the event is inserted");
        insert.pred = vec![hidden.clone()].into();
    });
    assert_eq!(verdict_on(&insp, &f.doc, forged), Err(Rule::Shape));
}

/// A list element is inserted after an element of the same list: one deleted before the
/// writer's change may still be named (its writer may have seen it), one of another list
/// may not. Each element named is looked up in the change that inserted it.
#[test]
fn an_element_is_inserted_after_one_that_was_ever_in_its_list() {
    let mut doc = AutoCommit::new();
    let list = doc.put_object(ROOT, "photos", ObjType::List).expect("list");
    let other = doc.put_object(ROOT, "other", ObjType::List).expect("list");
    for (i, value) in ["a", "b", "c"].into_iter().enumerate() {
        doc.insert(&list, i, value).expect("insert");
        doc.insert(&other, i, value).expect("insert");
    }
    doc.commit();
    let element = |doc: &AutoCommit, list: &ObjId, i: usize| -> automerge::legacy::OpId {
        let (_, id) = doc.get(list, i).expect("read").expect("an element");
        id.to_string().parse().expect("an operation id")
    };
    let deleted = element(&doc, &list, 1);
    let of_other = element(&doc, &other, 1);
    let not_an_element = value_id(&doc, &ROOT, "other");
    let mut before = changed(&doc, |doc| {
        let list = map(doc, &ROOT, "photos");
        doc.delete(&list, 1).expect("delete");
    });
    before.commit();
    let after_first = |doc: &mut AutoCommit| {
        let list = map(doc, &ROOT, "photos");
        doc.insert(&list, 1, "x").expect("insert");
    };
    let after = |named: automerge::legacy::OpId| {
        tampered(&before, after_first, move |change| {
            change.operations[0].key =
                automerge::legacy::Key::Seq(automerge::legacy::ElementId::Id(named));
        })
    };
    let mut applied = before.clone();
    rules::apply(&mut applied, &[after(deleted)]).expect("after a deleted element");
    let list = map(&applied, &ROOT, "photos");
    assert_eq!(applied.length(&list), 3);
    let mut refused = before.clone();
    assert_eq!(
        rules::apply(&mut refused, &[after(of_other)]).map_err(|r| r.rule),
        Err(Rule::Shape),
        "after an element of another list"
    );
    assert_eq!(
        rules::apply(&mut before.clone(), &[after(not_an_element)]).map_err(|r| r.rule),
        Err(Rule::Shape),
        "after the operation that made a list, not an element"
    );
}

#[test]
fn a_change_builds_on_its_actor_s_last_change() {
    let f = fixture();
    let mut device = f.doc.clone();
    device.set_actor(automerge::ActorId::random());
    let base = device.get_heads();
    let general = finding_obj(&device, f.general);
    device.put(&general, "place", "二号罐区东侧").expect("put");
    device.commit();
    device
        .put(&general, "description", "安全出口被货物堵塞")
        .expect("put");
    device.commit();
    let mut changes = device.get_changes(&base);
    let honest = changes.pop().expect("the second change");
    let first = changes.pop().expect("the first change");
    // The second change, numbered after the first but built beside it.
    let mut beside = honest.decode();
    beside.deps = base.clone();
    let beside = automerge::Change::from(beside);

    // Automerge alone takes it, and the document's saved bytes no longer load.
    let mut alone = f.doc.clone();
    alone
        .apply_changes([first.clone(), beside.clone()])
        .expect("Automerge takes it");
    assert!(AutoCommit::load(&alone.save()).is_err());

    let mut doc = f.doc.clone();
    let together = rules::apply(&mut doc, &[first.clone(), beside.clone()]);
    assert_eq!(together.map_err(|r| r.rule), Err(Rule::Shape));
    let mut doc = f.doc.clone();
    rules::apply(&mut doc, std::slice::from_ref(&first)).expect("the first change");
    let after = rules::apply(&mut doc, std::slice::from_ref(&beside));
    assert_eq!(after.map_err(|r| r.rule), Err(Rule::Shape));
    // Built on it, the same edit goes in, alone or in a chain with the first.
    rules::apply(&mut doc, std::slice::from_ref(&honest)).expect("built on the first");
    let mut doc = f.doc.clone();
    rules::apply(&mut doc, &[first, honest]).expect("a chain");
    assert!(AutoCommit::load(&doc.save()).is_ok());
}

#[test]
fn a_list_element_is_never_replaced_in_place() {
    let f = fixture();
    let chief = author("chief", Role::Supervisor, OWNER);
    let with_event = changed(&f.doc, review("chief", ReviewAction::Comment));
    let overwrite = changed(&with_event, |doc| {
        let review = map(doc, &ROOT, "review");
        let events = map(doc, &review, "events");
        doc.put(&events, 0, "已删除").expect("put");
    });
    assert_eq!(verdict(&chief, &with_event, &overwrite), Err(Rule::Shape));
}

#[test]
fn an_element_is_named_only_in_its_own_list() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let shared = map(&f.doc, &ROOT, "visible_to");
    let shared_element = {
        let (_, id) = f.doc.get(&shared, 0).expect("read").expect("a district");
        id.to_string().parse().expect("an operation id")
    };
    // A new event placed after an element of the shared districts' list: Automerge would
    // panic applying it.
    let forged = tampered(&f.doc, review("insp", ReviewAction::Comment), |change| {
        let insert = change
            .operations
            .iter_mut()
            .find(|op| op.insert)
            .expect("the event is inserted");
        insert.key = automerge::legacy::Key::Seq(automerge::legacy::ElementId::Id(shared_element));
    });
    assert_eq!(verdict_on(&insp, &f.doc, forged), Err(Rule::Shape));
}

#[test]
fn concurrent_edits_of_one_text_are_well_formed() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let text = |doc: &AutoCommit| {
        let obj = finding_obj(doc, f.general);
        let (_, text) = doc.get(&obj, "description").expect("read").expect("text");
        text
    };
    let cut = changed(&f.doc, |doc| {
        let t = text(doc);
        doc.splice_text(&t, 2, 2, "").expect("delete");
    });
    let added = changed(&f.doc, |doc| {
        let t = text(doc);
        doc.splice_text(&t, 3, 0, "通道").expect("insert");
        doc.splice_text(&t, 0, 1, "").expect("delete");
    });
    let added_change = added
        .clone()
        .get_changes(&f.doc.clone().get_heads())
        .pop()
        .expect("a change");
    let mut both = cut.clone();
    rules::apply(&mut both, std::slice::from_ref(&added_change))
        .expect("an honest edit beside a concurrent deletion is well formed");
    let mut merged = cut.clone();
    merged.merge(&mut added.clone()).expect("merge");
    assert_eq!(
        both.text(text(&both)).expect("text"),
        merged.text(text(&merged)).expect("text")
    );
    assert_eq!(verdict_on(&insp, &cut, added_change), Ok(()));
}

/// A case file from another phone is taken as a peer session takes a message: a file
/// that breaks the case's shape is refused whole; a change no certificate vouches for
/// (unsigned, or signed with a key no trusted server certified) is left out and reported,
/// never kept: it could name anyone as its author, and everything the phone built on it
/// afterwards would wait with it for ever. What a certificate vouches for is kept.
#[test]
fn a_case_file_from_another_device_is_judged_as_a_peer_s_message() {
    let f = fixture();
    // A device that replaced the shared district in place, past its own store.
    let forged = changed(&f.doc, |doc| {
        let list = map(doc, &ROOT, "visible_to");
        doc.put(&list, 0, OTHER).expect("put");
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store =
        certified(Store::open(dir.path().join("s.db"), inspector("insp2")).expect("store"));
    let err = store
        .merge_case(&SignedCase::unsigned(&forged).encode())
        .expect_err("refused");
    assert!(err.to_string().contains("列表"), "{err}");
    assert!(store.case(f.case).is_err(), "nothing of it is stored");
    // The honest case, unsigned: read and judged, and nothing of it kept.
    let merged = store
        .merge_case(&SignedCase::unsigned(&f.doc).encode())
        .expect("read and judged");
    assert_eq!(merged.received.accepted, 0);
    assert!(!merged.received.refused.is_empty(), "{merged:?}");
    assert!(store.case(f.case).is_err(), "nothing of it is kept");

    // A certified teammate's file, with one more change from a device no server certified
    // (a real signature, by a key nobody vouches for).
    let (mut teammate, case) = store_with_case(&dir, "t.db", "zhang");
    teammate
        .add_finding(case, &finding("配电箱未接地"))
        .expect("finding");
    let file = SignedCase::decode(&teammate.export_case(case).expect("export")).expect("file");
    let mut doc = AutoCommit::load(&teammate.export_document(case).expect("export"))
        .expect("load")
        .with_actor(automerge::ActorId::random());
    anjian_core::case_doc::review(
        &mut doc,
        "zhang",
        anjian_core::ReviewAction::Comment,
        "无人担保的批注",
        chrono::Utc::now().fixed_offset(),
    )
    .expect("comment");
    doc.commit();
    let stranger = doc.get_heads()[0];
    let key = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [9; 32]);
    let mut signatures = file.signatures.clone();
    signatures.push(ChangeSignature::sign(&key, stranger).expect("signed"));
    let handed = SignedCase {
        changes: doc
            .get_changes(&[])
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect(),
        signatures,
        certificates: file.certificates.clone(),
        receipts: Vec::new(),
    };
    let merged = store.merge_case(&handed.encode()).expect("merged");
    assert_eq!(merged.case, case);
    let left_out: Vec<&String> = merged
        .received
        .refused
        .iter()
        .flat_map(|(_, h)| h)
        .collect();
    assert_eq!(left_out, [&stranger.to_string()]);
    assert_eq!(
        store.heads(case).expect("heads"),
        teammate.heads(case).expect("heads"),
        "the teammate's certified changes are kept, the stranger's is not"
    );
    // What the phone records next builds on what it kept alone.
    store
        .add_finding(case, &finding("消防通道堵塞"))
        .expect("finding");
    let mine = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    assert!(mine.clone().get_change_by_hash(&stranger).is_none());
}

/// Automerge numbers each actor's changes 1, 2, 3, … and panics on a change that skips
/// ahead: such a change is refused before Automerge sees it (found by fuzzing).
#[test]
fn a_change_whose_number_skips_ahead_is_refused_not_applied() {
    let f = fixture();
    let honest = changed(&f.doc, |doc| {
        doc.put(ROOT, "note", "一条").expect("put");
    });
    let mut second = honest.clone();
    second.put(ROOT, "note", "两条").expect("put");
    second.commit();
    let heads = f.doc.clone().get_heads();
    let changes = second.clone().get_changes(&heads);
    assert_eq!(changes.len(), 2);
    let mut skipping = changes[1].decode();
    skipping.seq = 7;
    let skipping = automerge::Change::from(skipping);
    let mut doc = f.doc.clone();
    rules::apply(&mut doc, std::slice::from_ref(&changes[0])).expect("the first applies");
    let refusal = rules::apply(&mut doc, &[skipping]).expect_err("refused");
    assert_eq!(refusal.rule, Rule::Shape);
    assert!(refusal.reason.contains("序号 7"), "{}", refusal.reason);
    rules::apply(&mut doc, &changes[1..]).expect("the honest second applies");
}

#[test]
fn a_follow_up_list_claimed_from_before_its_finding_is_refused() {
    // A device claims to have written before the finding had its list: its list would
    // stand beside the first one, and its steps would read before the recorded ones. A
    // finding is made with its list, so the device claims not to have seen the finding it
    // writes into either, and how the change is written already refuses it.
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let first = f
        .doc
        .clone()
        .get_changes(&[])
        .first()
        .map(|c| c.hash())
        .expect("the case's first change");
    let second_list = |id: FindingId| {
        tampered(
            &f.doc,
            |doc| {
                let obj = finding_obj(doc, id);
                let events = doc.put_object(&obj, "events", ObjType::List).expect("put");
                let step = doc.insert_object(&events, 0, ObjType::Map).expect("insert");
                doc.put(&step, "kind", "onsite").expect("put");
                doc.put(&step, "by", "insp").expect("put");
                doc.put(&step, "at", "2026-11-29T10:00:00+08:00")
                    .expect("put");
                doc.put(&step, "measure", OnsiteMeasure::Evacuate.code())
                    .expect("put");
            },
            |change| {
                change.deps = vec![first];
                if let Some(put) = change.operations.first_mut() {
                    put.pred = Vec::new().into();
                }
            },
        )
    };
    assert_eq!(
        verdict_on(&insp, &f.doc, second_list(f.general)),
        Err(Rule::Shape)
    );
}

/// A finding made without its follow-up list (a client that makes the list with the first
/// step) can have that list made by two phones side by side, each with its first step. The
/// first to reach the server stands; the second would put a list beside it (a conflict
/// at the key, its step read before or after the recorded one by op id), and is refused.
#[test]
fn a_follow_up_list_made_beside_another_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path().join("s.db"), inspector("insp")).expect("store");
    let ent = enterprise(1);
    store.register_enterprise(&ent).expect("enterprise");
    let case = store.open_case(&new_case(&ent)).expect("case");
    let export = |store: &mut Store| {
        AutoCommit::load(&store.export_document(case).expect("export")).expect("load")
    };
    let mut opened = export(&mut store);
    let id = store
        .add_finding(case, &finding("配电箱未上锁"))
        .expect("finding");
    let listed = export(&mut store).get_changes(&opened.get_heads());
    let [made] = listed.as_slice() else {
        panic!("one change makes the finding, not {}", listed.len());
    };
    let mut without_list = made.decode();
    let before = without_list.operations.len();
    without_list
        .operations
        .retain(|op| op.key != automerge::legacy::Key::Map("events".into()));
    assert_eq!(without_list.operations.len(), before - 1);
    let insp = author("insp", Role::Inspector, OWNER);
    let bare = verdict_on(
        &insp,
        &opened,
        automerge::Change::from(without_list.clone()),
    );
    assert_eq!(bare, Ok(()), "a finding made without its list is taken");
    rules::apply(&mut opened, &[automerge::Change::from(without_list)]).expect("applies");
    assert!(
        case_doc::read(&opened).expect("read").findings[0]
            .events
            .is_empty()
    );

    let measure = |note: &str| HazardStep::Onsite {
        measure: OnsiteMeasure::Evacuate,
        note: note.into(),
    };
    let first = changed(&opened, step("insp", id, measure("一号机撤离")));
    let second = changed(&opened, step("insp", id, measure("二号机撤离")));
    let second = second
        .clone()
        .get_changes(&opened.get_heads())
        .pop()
        .expect("its step");
    assert_eq!(
        verdict_on(&insp, &opened, second.clone()),
        Ok(()),
        "alone, either phone's first step is taken"
    );
    assert_eq!(
        verdict_on(&insp, &first, second),
        Err(Rule::Evidence),
        "beside the list the first phone made"
    );
}

/// A device's chain of changes (each built on the one before) is checked whole, then
/// applied at once: each change must name what the changes before it in the chain left,
/// exactly as when the changes arrive one at a time.
#[test]
fn a_chain_of_changes_is_checked_as_each_change_arriving_alone() {
    let f = fixture();
    let base = f.doc.clone().get_heads();
    let mut device = f.doc.clone();
    device.set_actor(automerge::ActorId::random());
    let general = finding_obj(&device, f.general);
    let was = value_id(&device, &general, "place");
    let mut place_ids = Vec::new();
    for place in ["一号库房", "二号库房", "三号库房"] {
        device.put(&general, "place", place).expect("put");
        device.commit();
        place_ids.push(value_id(&device, &general, "place"));
    }
    let tags = device
        .put_object(&general, "tags", automerge::ObjType::List)
        .expect("list");
    device.insert(&tags, 0, "消防").expect("insert");
    device.commit();
    device.insert(&tags, 1, "仓储").expect("insert");
    device.delete(&tags, 0).expect("delete");
    device.commit();
    let chain = device.get_changes(&base);
    assert_eq!(chain.len(), 5);

    // Change `i` rewritten so that its first operation naming what it replaces names
    // `pred` instead (the third change's put, the fifth's deletion).
    let with_pred = |i: usize, pred: automerge::legacy::OpId| {
        let mut changes = chain.clone();
        let mut expanded = changes[i].decode();
        let op = expanded
            .operations
            .iter_mut()
            .find(|op| !op.pred.is_empty())
            .expect("an operation naming what it replaces");
        op.pred = vec![pred].into();
        changes[i] = automerge::Change::from(expanded);
        changes
    };
    let cases = [
        ("honest", chain.clone(), true),
        // A value the chain's first change already replaced.
        (
            "the value at the chain's start",
            with_pred(2, was.clone()),
            false,
        ),
        (
            "a value the second change replaced",
            with_pred(2, place_ids[0].clone()),
            false,
        ),
        (
            "the value the change saw",
            with_pred(2, place_ids[1].clone()),
            true,
        ),
        // The deletion names an element of another object (the finding's place value).
        (
            "no element of the list",
            with_pred(4, place_ids[2].clone()),
            false,
        ),
    ];
    for (what, changes, honest) in cases {
        let mut whole = f.doc.clone();
        let at_once = rules::apply(&mut whole, &changes);
        let mut alone = f.doc.clone();
        let one_by_one = changes
            .iter()
            .try_for_each(|c| rules::apply(&mut alone, std::slice::from_ref(c)));
        assert_eq!(at_once.is_ok(), honest, "{what}: {at_once:?}");
        assert_eq!(
            at_once.map_err(|r| r.rule),
            one_by_one.map_err(|r| r.rule),
            "{what}"
        );
        if honest {
            assert_eq!(whole.get_heads(), alone.get_heads(), "{what}");
            assert_eq!(
                whole.get_changes(&base).len(),
                5,
                "{what}: every change applied"
            );
        }
    }
}

/// A device's `n` changes of the general finding's place, each built on the one before.
fn places_written(f: &Fixture, n: usize) -> Vec<automerge::Change> {
    let base = f.doc.clone().get_heads();
    let mut device = f.doc.clone();
    device.set_actor(automerge::ActorId::random());
    let general = finding_obj(&device, f.general);
    for i in 0..n {
        device
            .put(&general, "place", format!("{i} 号库房"))
            .expect("put");
        device.commit();
    }
    device.get_changes(&base)
}

/// A document the rule book applied changes to keeps no record of them as patches.
/// Automerge 0.12 records every change a batch applies in the document's own patch log,
/// whether or not the log is on, and copies that record with every clone: a case kept in
/// memory on the server would grow with every change it received.
#[test]
fn applied_changes_leave_no_record_of_patches_in_the_document() {
    let f = fixture();
    let chain = places_written(&f, 40);
    let recorded = |doc: &AutoCommit| format!("{doc:?}").matches("PutMap").count();

    let mut plain = f.doc.clone();
    plain.apply_changes(chain.clone()).expect("applies");
    assert!(recorded(&plain) > 0, "Automerge records them itself");

    let mut judged = f.doc.clone();
    rules::apply(&mut judged, &chain).expect("honest changes");
    assert_eq!(judged.get_heads(), plain.get_heads());
    assert_eq!(recorded(&judged), 0);
}

#[test]
fn a_message_of_refused_changes_copies_the_case_a_bounded_number_of_times() {
    // A hundred changes by one author, each on the case as it is and each refused: each is
    // a run of its own (none builds on the one before), tried on a copy of the case. After
    // `TRIALS` tries the rest are held back, to be sent again.
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let changes: Vec<automerge::Change> = (0..100)
        .map(|_| {
            let mut fork = f.doc.clone();
            fork.set_actor(automerge::ActorId::random());
            fork.put(ROOT, "district", OTHER).expect("put");
            fork.commit();
            fork.get_last_local_change().expect("change").clone()
        })
        .collect();
    let authors = changes.iter().map(|_| Ok(insp.clone())).collect();
    let judged = rules::judge_changes(
        &f.doc,
        Some(&CaseState::of(&f.doc).expect("reads")),
        changes,
        &anjian_core::sync::intake::Decoded::default(),
        authors,
        &anjian_core::sync::intake::Limits::default(),
        &rules::Trust::default(),
    );
    assert!(judged.admitted.is_empty());
    let count = |rule: Rule| {
        judged
            .refused
            .iter()
            .filter(|(refusal, _)| refusal.rule == rule)
            .map(|(_, hashes)| hashes.len())
            .sum::<usize>()
    };
    assert_eq!(count(Rule::Fixed), rules::TRIALS);
    assert_eq!(count(Rule::HeldBack), 100 - rules::TRIALS);
}

/// Asserts that Automerge alone cannot take `change` on a device holding `doc`, the
/// writer's history without the change that made what it names (it panics).
fn automerge_alone_cannot_take(doc: &AutoCommit, change: &automerge::Change) {
    let mut device = doc.clone();
    let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        device.apply_changes([change.clone()])
    }));
    assert!(
        !matches!(taken, Ok(Ok(()))),
        "Automerge alone takes a change naming what its device does not hold"
    );
}

/// An object may be written into only by a change that saw it made: a teammate's list or
/// map the server holds, written into by a change built beside the teammate's, is refused.
#[test]
fn an_object_is_written_only_by_a_change_that_saw_it_made() {
    let mut base = AutoCommit::new();
    base.put_object(ROOT, "photos", ObjType::List)
        .expect("list");
    base.commit();
    let teammate = changed(&base, |doc| {
        doc.put_object(ROOT, "events", ObjType::List).expect("list");
        doc.put_object(ROOT, "place", ObjType::Map).expect("map");
    });
    let mut server = base.clone();
    server
        .apply_changes(teammate.clone().get_changes(&base.clone().get_heads()))
        .expect("the teammate's change");
    let beside = |edit: &dyn Fn(&mut AutoCommit)| {
        let heads = base.clone().get_heads();
        tampered(&server, edit, move |change| change.deps = heads)
    };
    let at_head = beside(&|doc| {
        let list = map(doc, &ROOT, "events");
        doc.insert(&list, 0, "x").expect("insert");
    });
    let by_key = beside(&|doc| {
        let place = map(doc, &ROOT, "place");
        doc.put(&place, "building", "二号楼").expect("put");
    });
    for forged in [at_head, by_key] {
        automerge_alone_cannot_take(&base, &forged);
        assert_eq!(
            rules::apply(&mut server.clone(), std::slice::from_ref(&forged)).map_err(|r| r.rule),
            Err(Rule::Shape),
            "into an object its writer never saw made"
        );
    }
    // Written after the teammate's change, the same edit is taken.
    let honest = changed(&server, |doc| {
        let list = map(doc, &ROOT, "events");
        doc.insert(&list, 0, "x").expect("insert");
    });
    let change = honest
        .clone()
        .get_changes(&server.clone().get_heads())
        .pop()
        .expect("a change");
    rules::apply(&mut server.clone(), &[change]).expect("into an object its writer saw made");
}

/// `judge_changes` on `changes`, all by `who`, with the default limits.
fn judged_as(
    who: &Author,
    doc: &AutoCommit,
    changes: Vec<automerge::Change>,
) -> rules::Judged<Author> {
    let authors = changes.iter().map(|_| Ok(who.clone())).collect();
    rules::judge_changes(
        doc,
        Some(&CaseState::of(doc).expect("reads")),
        changes,
        &anjian_core::sync::intake::Decoded::default(),
        authors,
        &anjian_core::sync::intake::Limits::default(),
        &rules::Trust::default(),
    )
}

#[test]
fn a_message_of_changes_each_built_on_more_than_the_one_before_is_judged_in_bounded_tries() {
    // A device's hundred edits, each naming the case's start as a dependency beside its
    // last change: none is a chain with the one before, so each is a run of its own, read
    // against the document at its own start. One message judges `TRIALS` of them; the rest
    // wait for the next.
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let start = f.doc.clone().get_heads();
    let mut changes: Vec<automerge::Change> = Vec::new();
    for change in places_written(&f, 100) {
        let mut expanded = change.decode();
        if let Some(before) = changes.last() {
            expanded.deps = vec![before.hash(), start[0]];
            expanded.deps.sort();
        }
        changes.push(automerge::Change::from(expanded));
    }
    let judged = judged_as(&insp, &f.doc, changes.clone());
    assert_eq!(judged.admitted.len(), rules::TRIALS);
    let held: Vec<&String> = judged
        .refused
        .iter()
        .filter(|(refusal, _)| refusal.rule == Rule::HeldBack)
        .flat_map(|(_, hashes)| hashes)
        .collect();
    assert_eq!(held.len(), 100 - rules::TRIALS, "{:?}", judged.refused);
    let next = judged_as(&insp, &judged.doc, changes[rules::TRIALS..].to_vec());
    assert_eq!(
        next.admitted.len(),
        100 - rules::TRIALS,
        "{:?}",
        next.refused
    );
    let general = finding_obj(&next.doc, f.general);
    assert_eq!(
        next.doc
            .get(&general, "place")
            .expect("read")
            .map(|(v, _)| v.to_string()),
        Some("\"99 号库房\"".to_owned())
    );
}

#[test]
fn who_recorded_a_finding_and_when_stay_as_written() {
    // Anyone who records in the case may write only their own name in an author field:
    // rewriting a finding's would take it as theirs.
    let f = fixture();
    let colleague = author("wang", Role::Inspector, OWNER);
    let findings = |doc: &AutoCommit| doc.get(ROOT, "findings").expect("get").expect("map").1;
    let finding = |doc: &AutoCommit| {
        doc.get(findings(doc), f.plain.to_string())
            .expect("get")
            .expect("finding")
            .1
    };
    for (key, value) in [
        ("recorded_by", "wang"),
        ("recorded_at", "2026-11-20T10:00:00+08:00"),
    ] {
        let after = changed(&f.doc, |doc| {
            let obj = finding(doc);
            doc.put(&obj, key, value).expect("put");
        });
        assert_eq!(
            verdict(&colleague, &f.doc, &after),
            Err(Rule::Attribution),
            "{key}"
        );
    }
    // The colleague's own edit of the finding stands.
    let after = changed(&f.doc, |doc| {
        let obj = finding(doc);
        doc.put(&obj, "place", "二号仓库").expect("put");
    });
    assert_eq!(verdict(&colleague, &f.doc, &after), Ok(()));
}

/// The bytes of every change `doc` holds, each as encoded alone (what `case_bytes` bounds).
fn bytes_held(doc: &AutoCommit) -> u64 {
    doc.clone()
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().len() as u64)
        .sum()
}

#[test]
fn a_case_holds_at_most_its_bytes_of_changes() {
    // A device writes a place of the largest size again and again, each change on its
    // last. The judge counts the case's changes as each is encoded alone, uncompressed:
    // the change that would take them past the limit is refused for good, and those built
    // on it with it, whether they come in one message or one at a time (the count then
    // kept with the case, as the server keeps it between messages).
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let mut device = f.doc.clone();
    device.set_actor(automerge::ActorId::random());
    let base = device.get_heads();
    let finding = finding_obj(&device, f.major);
    for i in 0..6 {
        let place = i.to_string().repeat(rules::MAX_VALUE_BYTES);
        device.put(&finding, "place", place).expect("put");
        device.commit();
    }
    let changes = device.get_changes(&base);
    let stored = bytes_held(&f.doc);
    let each = changes[0].raw_bytes().len() as u64;
    let limits = anjian_core::sync::intake::Limits {
        case_bytes: stored + 3 * each + each / 2,
        ..anjian_core::sync::intake::Limits::default()
    };
    let judge = |doc: &AutoCommit, before: &CaseState, changes: Vec<automerge::Change>| {
        let authors = changes.iter().map(|_| Ok(insp.clone())).collect();
        rules::judge_changes(
            doc,
            Some(before),
            changes,
            &anjian_core::sync::intake::Decoded::default(),
            authors,
            &limits,
            &rules::Trust::default(),
        )
    };
    let rules_of = |judged: &rules::Judged<Author>| -> Vec<(Rule, usize)> {
        judged
            .refused
            .iter()
            .map(|(refusal, hashes)| (refusal.rule, hashes.len()))
            .collect()
    };
    let whole = judge(
        &f.doc,
        &CaseState::of(&f.doc).expect("reads"),
        changes.clone(),
    );
    assert_eq!(whole.admitted.len(), 3);
    assert_eq!(rules_of(&whole), [(Rule::Shape, 1), (Rule::Dependency, 2)]);

    let mut doc = f.doc.clone();
    let mut before = CaseState::of(&doc).expect("reads");
    let mut verdicts = Vec::new();
    for change in changes {
        let judged = judge(&doc, &before, vec![change]);
        verdicts.push(rules_of(&judged));
        if let Some(after) = judged.case {
            doc = judged.doc;
            before = after;
        }
    }
    let admitted = verdicts.iter().filter(|v| v.is_empty()).count();
    assert_eq!(admitted, 3, "{verdicts:?}");
    assert_eq!(verdicts[3], [(Rule::Shape, 1)], "{verdicts:?}");
    // Alone, the ones after are judged without their refused dependency (the server reads
    // its record of refusals first): they would pass the limit too.
    assert!(verdicts[4..].iter().all(|v| !v.is_empty()), "{verdicts:?}");
}

#[test]
fn a_case_keeps_a_sixteenth_of_its_bytes_for_those_who_decide_it() {
    // A change that takes the case past all but a sixteenth of its bytes is refused from
    // an inspector and admitted from the supervisor who decides the case: a case its
    // writers fill still takes its review and closing.
    let f = fixture();
    let insp = author("insp", Role::Inspector, OWNER);
    let chief = author("chief", Role::Supervisor, OWNER);
    let mut device = f.doc.clone();
    device.set_actor(automerge::ActorId::random());
    let base = device.get_heads();
    let finding = finding_obj(&device, f.major);
    device
        .put(&finding, "place", "a".repeat(rules::MAX_VALUE_BYTES))
        .expect("put");
    device.commit();
    let changes = device.get_changes(&base);
    let stored = bytes_held(&f.doc);
    let total = stored + changes[0].raw_bytes().len() as u64;
    // The total is over 30/31 of the limit: past the writers' 15/16, within the whole.
    let limits = anjian_core::sync::intake::Limits {
        case_bytes: total * 32 / 31 + 1,
        ..anjian_core::sync::intake::Limits::default()
    };
    let judged_for = |who: &Author| {
        rules::judge_changes(
            &f.doc,
            Some(&CaseState::of(&f.doc).expect("reads")),
            changes.clone(),
            &anjian_core::sync::intake::Decoded::default(),
            vec![Ok(who.clone())],
            &limits,
            &rules::Trust::default(),
        )
    };
    let refused = judged_for(&insp);
    assert!(refused.admitted.is_empty());
    assert_eq!(refused.refused[0].0.rule, Rule::Shape);
    let admitted = judged_for(&chief);
    assert_eq!(admitted.admitted.len(), 1, "{:?}", admitted.refused);
}

/// A hazard's follow-up holds at most `MAX_STEPS` steps: judging a step a change inserted
/// among many (found by search, not as the list's end) costs the square of their number.
#[test]
fn a_hazard_s_follow_up_holds_a_bounded_number_of_steps() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, "310101");
    let measure = || HazardStep::Onsite {
        measure: OnsiteMeasure::Evacuate,
        note: "现场人员撤离".into(),
    };
    let full = changed(&f.doc, |doc| {
        for _ in 0..rules::MAX_STEPS {
            step("insp", f.plain, measure())(doc);
        }
    });
    assert_eq!(verdict(&insp, &f.doc, &full), Ok(()));
    let over = changed(&full, step("insp", f.plain, measure()));
    assert_eq!(verdict(&insp, &full, &over), Err(Rule::RectificationLoop));
}

/// One device's chain of steps on one finding, judged as one run: each step appended after
/// the one its chain wrote before stands; a step inserted before the one its own chain just
/// appended is refused (where each change's insertions land is followed along the chain).
#[test]
fn a_chain_of_steps_appends_each_after_the_last() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, "310101");
    let measure = |n: usize| HazardStep::Onsite {
        measure: OnsiteMeasure::Evacuate,
        note: format!("第{n}次现场处理：人员撤离"),
    };
    let mut device = f.doc.clone();
    device.set_actor(automerge::ActorId::random());
    for n in 0..3 {
        step("insp", f.plain, measure(n))(&mut device);
        device.commit();
    }
    assert_eq!(verdict(&insp, &f.doc, &device), Ok(()));

    let mut first = f.doc.clone();
    first.set_actor(automerge::ActorId::random());
    step("insp", f.plain, measure(0))(&mut first);
    first.commit();
    let before_it = tampered(&first, step("insp", f.plain, measure(1)), |change| {
        let insert = change
            .operations
            .iter_mut()
            .find(|op| op.insert)
            .expect("the step is inserted");
        insert.key = automerge::legacy::Key::Seq(automerge::legacy::ElementId::Head);
    });
    let mut hostile = first.clone();
    hostile
        .apply_changes([before_it])
        .expect("Automerge takes it");
    assert_eq!(verdict(&insp, &f.doc, &hostile), Err(Rule::Evidence));
}

/// `now` with `edit` by `by` merged in, made on the heads of `old` after comments enough to
/// give its operations high ids: Automerge orders concurrent insertions by their ids, so
/// what it appends lands before what `now` appended since `old`.
fn landed_from_old_heads(
    old: &AutoCommit,
    now: &AutoCommit,
    by: &str,
    edit: impl FnOnce(&mut AutoCommit),
) -> AutoCommit {
    let mut fork = old.clone();
    fork.set_actor(automerge::ActorId::random());
    for _ in 0..20 {
        review(by, ReviewAction::Comment)(&mut fork);
    }
    fork.commit();
    edit(&mut fork);
    fork.commit();
    let mut landed = now.clone();
    landed.merge(&mut fork).expect("merge");
    landed
}

/// Finding `id` as `doc` reads.
fn finding_in(doc: &AutoCommit, id: FindingId) -> anjian_core::Finding {
    case_doc::read(doc)
        .expect("read")
        .findings
        .into_iter()
        .find(|finding| finding.id == id)
        .expect("the finding")
}

/// A step moving the deadline, made on old heads so that it lands among the steps recorded
/// since (Automerge orders concurrent insertions by their ids, and a change with many
/// operations before it has high ones), is refused: it was judged against the loop as it
/// stands, and readers, who read the steps in the list's order, would read a late 合格
/// against the deadline it moved.
#[test]
fn a_deadline_moved_among_recorded_steps_is_refused() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, "310101");
    let passed = changed(&f.doc, step("insp", f.major, HazardStep::pass("已整改")));
    let failed = changed(
        &passed,
        step(
            "insp",
            f.major,
            HazardStep::Reinspect {
                result: ReinspectionResult::Fail,
                note: "报警装置仍未投用".into(),
                deadline: Some(day("2027-01-31")),
                escalation: String::new(),
            },
        ),
    );
    let extend = |doc: &mut AutoCommit| {
        let fields = [
            ("kind", "extend"),
            ("deadline", "2027-03-31"),
            ("previous_deadline", "2027-01-31"),
            ("reason", "企业申请延期"),
        ];
        hand_step(doc, f.major, &fields, &[]);
        rect_put(doc, f.major, "deadline", "2027-03-31");
    };
    // Appended after the recorded steps, the extension stands.
    let appended = changed(&failed, extend);
    assert_eq!(verdict(&insp, &failed, &appended), Ok(()));

    // Made on the heads from before the 合格.
    let landed = landed_from_old_heads(&f.doc, &failed, "insp", extend);
    let steps: Vec<_> = finding_in(&landed, f.major)
        .events
        .into_iter()
        .map(|event| event.step.action())
        .collect();
    let extended = steps
        .iter()
        .position(|a| *a == anjian_core::HazardAction::Extend);
    let passed_at = steps
        .iter()
        .position(|a| *a == anjian_core::HazardAction::Reinspect);
    assert!(
        extended < passed_at,
        "the extension lands before the 合格: {steps:?}"
    );
    assert_eq!(
        verdict(&insp, &failed, &landed),
        Err(Rule::RectificationLoop)
    );
}

/// A re-inspection made on old heads that lands before one recorded since is refused: the
/// state it moved is judged against the loop as it stands, and readers, who take the last
/// re-inspection in the list's order as the hazard's, would read 合格 on a hazard whose
/// state says it is still being rectified.
#[test]
fn a_re_inspection_among_recorded_steps_is_refused() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, "310101");
    let passed = changed(&f.doc, step("insp", f.major, HazardStep::pass("已整改")));
    // A 不合格 that escalates moves no deadline: only the order of re-inspections is at stake.
    let failed = step(
        "insp",
        f.major,
        HazardStep::Reinspect {
            result: ReinspectionResult::Fail,
            note: "报警装置仍未投用".into(),
            deadline: None,
            escalation: "移交执法".into(),
        },
    );
    let appended = changed(&passed, &failed);
    assert_eq!(verdict(&insp, &passed, &appended), Ok(()));

    // Made on the heads from before the 合格.
    let landed = landed_from_old_heads(&f.doc, &passed, "insp", failed);
    let results: Vec<_> = finding_in(&landed, f.major)
        .events
        .iter()
        .filter_map(|event| match &event.step {
            HazardStep::Reinspect { result, .. } => Some(*result),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        [ReinspectionResult::Fail, ReinspectionResult::Pass],
        "the 不合格 lands before the 合格"
    );
    assert_eq!(
        verdict(&insp, &passed, &landed),
        Err(Rule::RectificationLoop)
    );
}

/// A listing made on old heads that lands before a delisting recorded since is refused:
/// judged after the delisting, it lists the hazard again, and readers, who take the last
/// listing or delisting in the list's order, would read the hazard as not listed.
#[test]
fn a_listing_among_recorded_steps_is_refused() {
    let f = fixture();
    let chief = author("chief", Role::Supervisor, OWNER);
    let closed = changed(&f.doc, |doc| {
        step("chief", f.major, listing())(doc);
        step("chief", f.major, HazardStep::pass("已整改"))(doc);
        step("chief", f.major, HazardStep::close())(doc);
    });
    let delist = step(
        "chief",
        f.major,
        HazardStep::Delist {
            note: String::new(),
        },
    );
    let delisted = changed(&closed, &delist);
    let relisted = changed(&delisted, step("chief", f.major, listing()));
    assert_eq!(verdict(&chief, &delisted, &relisted), Ok(()));

    // Made on the heads from before the delisting.
    let relist = step("chief", f.major, listing());
    let landed = landed_from_old_heads(&closed, &delisted, "chief", relist);
    assert_eq!(
        finding_in(&landed, f.major).listing(),
        None,
        "the listing lands before the delisting"
    );
    assert_eq!(
        verdict(&chief, &delisted, &landed),
        Err(Rule::RectificationLoop)
    );
}

/// A 合格 made on old heads that lands before an extension recorded since is refused: it
/// was judged after the extension, and readers, who read each step against the deadline
/// the steps before it in the list left, would read it against the deadline the extension
/// replaced.
#[test]
fn a_re_inspection_landing_before_a_recorded_extension_is_refused() {
    let f = fixture();
    let insp = author("insp", Role::Inspector, "310101");
    let extension = HazardStep::Extend {
        deadline: day("2027-01-31"),
        reason: "设备到货延迟".into(),
    };
    let extended = changed(&f.doc, step("insp", f.major, extension));
    let passed = step("insp", f.major, HazardStep::pass("已整改"));
    let appended = changed(&extended, &passed);
    assert_eq!(verdict(&insp, &extended, &appended), Ok(()));

    let landed = landed_from_old_heads(&f.doc, &extended, "insp", passed);
    let steps: Vec<_> = finding_in(&landed, f.major)
        .events
        .iter()
        .map(|event| event.step.action())
        .collect();
    assert_eq!(
        steps.first(),
        Some(&anjian_core::HazardAction::Reinspect),
        "the 合格 lands before the extension: {steps:?}"
    );
    assert_eq!(
        verdict(&insp, &extended, &landed),
        Err(Rule::RectificationLoop)
    );
}

/// An element may be named only by a change that saw it: one inserted by a change outside
/// the writer's history (a teammate's concurrent insertion the server happens to hold) is
/// refused. A phone holding the writer's history but not the teammate's would be handed
/// an operation placed after an element it does not have.
#[test]
fn an_element_is_named_only_by_a_change_that_saw_it() {
    let mut base = AutoCommit::new();
    let list = base
        .put_object(ROOT, "photos", ObjType::List)
        .expect("list");
    base.insert(&list, 0, "a").expect("insert");
    base.commit();
    let teammate = changed(&base, |doc| {
        let list = map(doc, &ROOT, "photos");
        doc.insert(&list, 1, "b").expect("insert");
    });
    let unseen: automerge::legacy::OpId = {
        let list = map(&teammate, &ROOT, "photos");
        let (_, id) = teammate.get(&list, 1).expect("read").expect("an element");
        id.to_string().parse().expect("an operation id")
    };
    let mut server = base.clone();
    server
        .apply_changes(teammate.clone().get_changes(&base.clone().get_heads()))
        .expect("the teammate's change");
    // An insertion into the list written on `doc`, after the teammate's element.
    let after_unseen = |doc: &AutoCommit| {
        let at = doc.length(map(doc, &ROOT, "photos"));
        tampered(
            doc,
            |doc| {
                let list = map(doc, &ROOT, "photos");
                doc.insert(&list, at, "x").expect("insert");
            },
            |change| {
                change.operations[0].key =
                    automerge::legacy::Key::Seq(automerge::legacy::ElementId::Id(unseen.clone()));
            },
        )
    };
    let forged = after_unseen(&base);
    automerge_alone_cannot_take(&base, &forged);
    let mut judged = server.clone();
    assert_eq!(
        rules::apply(&mut judged, std::slice::from_ref(&forged)).map_err(|r| r.rule),
        Err(Rule::Shape),
        "after an element its writer never saw"
    );
    // The same change written after the teammate's is taken.
    let mut seen = server.clone();
    rules::apply(&mut seen, &[after_unseen(&server)]).expect("after an element its writer saw");
}
