//! The case document: one Automerge document per case, its schema (docs/schema.md), and
//! every read and write of it. Nothing here touches SQLite.

mod checklists;
mod follow_up;
mod photos;
pub(crate) use photos::BLOB_KEYS;
mod writs;

pub(crate) use checklists::{
    answer as answer_item, attach as attach_checklist, attached_item, link_finding, put_source,
};
pub(crate) use follow_up::record as follow_up;
pub(crate) use photos::{
    attach as attach_photo, blob_refs, detach as detach_photo, list_of as photo_list,
};
pub(crate) use writs::{
    create as create_writ, edit as edit_writ, issue as issue_writ, number as number_writ,
    print as print_writ, refuse as refuse_writ, seal as seal_writ, sign as sign_writ,
    void as void_writ,
};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::codes::{CaseId, CreditCode, DistrictCode, FindingId};
use crate::codes::{
    CaseType, GeoPoint, Industry, Level, RectificationState, ReinspectionResult, ReviewAction,
    ReviewState, RiskGrade, ViolationKind,
};
use crate::error::{Error, Result};
use crate::model::{
    Case, ChecklistSource, Conflict, ConflictValue, Enterprise, FieldValue, Finding, FindingEdit,
    HazardEvent, HazardStep, HistoryEntry, Identity, NewFinding, Rectification, RectificationOrder,
    Reinspection, Resolution, ReviewEvent, TeamMember, Violation,
};

/// The document schema this build writes and the newest it reads.
pub const SCHEMA_VERSION: i64 = 1;

/// What every change records besides Automerge's own metadata: who made it and why.
/// Stored as the change message, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChangeNote {
    /// User id of the author.
    pub by: String,
    /// What the change did.
    pub action: String,
    /// The change this one enters again (hex hash), when the server refused a change the
    /// other one built on (`store::reenter`): the same device's earlier change, whose
    /// records this one holds now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub again: Option<String>,
}

impl ChangeNote {
    pub fn new(identity: &Identity, action: &str) -> Self {
        ChangeNote {
            by: identity.user_id.clone(),
            action: action.to_owned(),
            again: None,
        }
    }

    pub(crate) fn parse(message: Option<&str>) -> ChangeNote {
        message
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_else(|| ChangeNote {
                by: String::new(),
                action: message.unwrap_or_default().to_owned(),
                again: None,
            })
    }
}

/// The note of a change entering again the change `old` whose message was `message`: the
/// same note, naming `old` (a message that is no note of ours stays as it was).
pub(crate) fn note_entering_again(message: Option<&str>, old: ChangeHash) -> Option<String> {
    let note = message.and_then(|m| serde_json::from_str::<ChangeNote>(m).ok());
    match note {
        Some(note) => Some(
            serde_json::to_string(&ChangeNote {
                again: Some(old.to_string()),
                ..note
            })
            .expect("a note of strings always serialises"),
        ),
        None => message.map(str::to_owned),
    }
}

/// Commits the open transaction of `doc` with `note` and `time` (device seconds).
pub(crate) fn commit(doc: &mut AutoCommit, note: &ChangeNote, time: i64) -> Option<ChangeHash> {
    let message = serde_json::to_string(note).expect("a note of strings always serialises");
    doc.commit_with(
        CommitOptions::default()
            .with_message(message)
            .with_time(time),
    )
}

/// Everything needed to create a case document.
pub(crate) struct CaseInit<'a> {
    pub id: CaseId,
    pub enterprise: &'a Enterprise,
    pub case_type: CaseType,
    pub district: &'a DistrictCode,
    pub visible_to: &'a [DistrictCode],
    pub team: &'a [TeamMember],
    pub opened_at: DateTime<FixedOffset>,
    pub opened_by: &'a str,
    pub location: Option<GeoPoint>,
    pub amends: Option<CaseId>,
}

/// Writes the whole skeleton of a new case into an empty document.
///
/// Every nested map a later edit writes into is created here, once, by one device: two
/// devices creating the same map concurrently would make one of them invisible.
pub(crate) fn init_case(doc: &mut AutoCommit, init: &CaseInit<'_>) -> Result<()> {
    doc.put(ROOT, "schema", SCHEMA_VERSION)?;
    doc.put(ROOT, "kind", "case")?;
    doc.put(ROOT, "case_id", init.id.to_string())?;
    let enterprise = doc.put_object(ROOT, "enterprise", ObjType::Map)?;
    doc.put(&enterprise, "name", init.enterprise.name.as_str())?;
    doc.put(
        &enterprise,
        "credit_code",
        init.enterprise.credit_code.as_str(),
    )?;
    doc.put(&enterprise, "district", init.enterprise.district.as_str())?;
    doc.put(&enterprise, "industry", init.enterprise.industry.code())?;
    doc.put(&enterprise, "risk_grade", init.enterprise.risk_grade.code())?;
    doc.put(ROOT, "district", init.district.as_str())?;
    let visible = doc.put_object(ROOT, "visible_to", ObjType::List)?;
    for (i, district) in init.visible_to.iter().enumerate() {
        doc.insert(&visible, i, district.as_str())?;
    }
    doc.put(ROOT, "type", init.case_type.code())?;
    let team = doc.put_object(ROOT, "team", ObjType::Map)?;
    for member in init.team {
        put_team_member(doc, &team, member)?;
    }
    doc.put(ROOT, "opened_at", init.opened_at.to_rfc3339())?;
    doc.put(ROOT, "opened_by", init.opened_by)?;
    if let Some(amended) = init.amends {
        doc.put(ROOT, "amends", amended.to_string())?;
    }
    if let Some(point) = init.location {
        let location = doc.put_object(ROOT, "location", ObjType::Map)?;
        doc.put(&location, "latitude", point.latitude)?;
        doc.put(&location, "longitude", point.longitude)?;
    }
    doc.put_object(ROOT, "findings", ObjType::Map)?;
    doc.put_object(ROOT, "checklists", ObjType::Map)?;
    doc.put_object(ROOT, writs::WRITS, ObjType::Map)?;
    let review = doc.put_object(ROOT, "review", ObjType::Map)?;
    doc.put(&review, "state", ReviewState::Draft.code())?;
    doc.put_object(&review, "events", ObjType::List)?;
    Ok(())
}

fn put_team_member(doc: &mut AutoCommit, team: &ObjId, member: &TeamMember) -> Result<()> {
    let entry = doc.put_object(team, member.user_id.as_str(), ObjType::Map)?;
    doc.put(&entry, "name", member.name.as_str())?;
    doc.put(&entry, "department", member.department.as_str())?;
    doc.put(&entry, "district", member.district.as_str())?;
    Ok(())
}

/// Adds the inspector to the case's team if they are not in it yet (a joint-team member
/// recording on a case another member opened).
pub(crate) fn ensure_team_member(doc: &mut AutoCommit, identity: &Identity) -> Result<()> {
    let team = map(doc, &ROOT, "team")?;
    if doc.get(&team, identity.user_id.as_str())?.is_none() {
        put_team_member(doc, &team, &TeamMember::from(identity))?;
    }
    Ok(())
}

/// Shares the case with `districts` besides its owner, replacing the districts it was
/// shared with; returns them as written (sorted, without duplicates or the owner).
pub(crate) fn share(doc: &mut AutoCommit, districts: &[DistrictCode]) -> Result<Vec<DistrictCode>> {
    let owner: DistrictCode = parse_field(doc, &ROOT, "district")?;
    let mut shared: Vec<DistrictCode> =
        districts.iter().filter(|d| **d != owner).cloned().collect();
    shared.sort();
    shared.dedup();
    let list = match doc.get(ROOT, "visible_to")? {
        Some((Value::Object(ObjType::List), list)) => list,
        _ => return Err(Error::InvalidDocument("visible_to is not a list".into())),
    };
    for i in (0..doc.length(&list)).rev() {
        doc.delete(&list, i)?;
    }
    for (i, district) in shared.iter().enumerate() {
        doc.insert(&list, i, district.as_str())?;
    }
    Ok(shared)
}

impl crate::rules::CaseState {
    /// Reads a whole case for the rule book, refusing a document nested too deep or too
    /// large before reading anything else of it (a case from elsewhere: a peer's new case,
    /// bytes to merge).
    pub fn of(doc: &AutoCommit) -> Result<crate::rules::CaseState> {
        crate::paths::check_bounds(doc)?;
        Self::of_stored(doc)
    }

    /// Reads a whole case already judged when it was stored (its depth and size were
    /// bounded then).
    pub fn of_stored(doc: &AutoCommit) -> Result<crate::rules::CaseState> {
        Ok(crate::rules::CaseState::new(read_case(doc)?))
    }

    /// The case after `ops` changed this one into `doc`: only what they touched is read
    /// again (the case's header only when they wrote outside findings and checklists; the
    /// findings they touched; the checklists if they touched any).
    pub fn after(
        &self,
        doc: &AutoCommit,
        ops: &crate::rules::Ops,
    ) -> Result<crate::rules::CaseState> {
        let mut case = self.case().clone();
        if ops.touches_other_than(&["findings", "checklists"]) {
            let header = read_header(doc)?;
            case = Case {
                findings: std::mem::take(&mut case.findings),
                checklists: std::mem::take(&mut case.checklists),
                ..header
            };
        }
        // The findings touched, read again (one pass to take them out: one for each cost
        // findings touched × findings).
        let touched = ops.findings();
        case.findings.retain(|f| !touched.contains(&f.id));
        for id in touched {
            if let Some(finding) = read_finding(doc, id)? {
                case.findings.push(finding);
            }
        }
        sort_findings(&mut case.findings);
        if ops.touches("checklists") {
            case.checklists = checklists::read_all(doc)?;
        }
        Ok(crate::rules::CaseState::new(case))
    }
}

/// Checks that `doc` is a case document this build can read, and returns its case id.
pub(crate) fn check_case(doc: &AutoCommit) -> Result<CaseId> {
    let schema = match doc.get(ROOT, "schema")? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Int(v) => *v,
            ScalarValue::Uint(v) => *v as i64,
            other => {
                return Err(Error::InvalidDocument(format!(
                    "schema is {other}, not a number"
                )));
            }
        },
        _ => return Err(Error::InvalidDocument("it has no schema version".into())),
    };
    if schema > SCHEMA_VERSION {
        return Err(Error::NewerDocument {
            found: schema,
            supported: SCHEMA_VERSION,
        });
    }
    if string(doc, &ROOT, "kind").as_deref() != Some("case") {
        return Err(Error::InvalidDocument("its kind is not \"case\"".into()));
    }
    let id = string(doc, &ROOT, "case_id")
        .ok_or_else(|| Error::InvalidDocument("it has no case_id".into()))?;
    id.parse()
        .map_err(|_| Error::InvalidDocument(format!("case_id {id:?} is not a UUID")))
}

/// Reads a whole case.
pub(crate) fn read_case(doc: &AutoCommit) -> Result<Case> {
    let mut case = read_header(doc)?;
    case.findings = read_findings(doc)?;
    case.checklists = checklists::read_all(doc)?;
    Ok(case)
}

/// Every finding not removed, ordered by the time they were recorded.
fn read_findings(doc: &AutoCommit) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let findings_obj = map(doc, &ROOT, "findings")?;
    for item in doc.map_range(&findings_obj, ..) {
        let Ok(finding_id) = item.key.parse::<FindingId>() else {
            continue;
        };
        if !matches!(item.value, automerge::ValueRef::Object(ObjType::Map)) {
            continue;
        }
        if let Some(finding) = read_finding_at(doc, finding_id, &item.id())? {
            findings.push(finding);
        }
    }
    sort_findings(&mut findings);
    Ok(findings)
}

fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| a.recorded_at.cmp(&b.recorded_at).then(a.id.cmp(&b.id)));
}

/// Reads a case without its findings and checklists (a few keys: what every change may
/// need to be judged).
pub(crate) fn read_header(doc: &AutoCommit) -> Result<Case> {
    let id = check_case(doc)?;
    let bad = |what: &str| Error::InvalidDocument(format!("case {id}: {what}"));
    let root = Fields::of(doc, &ROOT);
    let ent = Fields::of(doc, &root.map("enterprise")?);
    let enterprise = Enterprise {
        credit_code: ent
            .parse::<CreditCode>("credit_code")
            .map_err(|_| bad("enterprise.credit_code"))?,
        name: ent.string("name").unwrap_or_default(),
        district: ent
            .parse("district")
            .map_err(|_| bad("enterprise.district"))?,
        industry: ent
            .parse::<Industry>("industry")
            .map_err(|_| bad("enterprise.industry"))?,
        risk_grade: ent
            .parse::<RiskGrade>("risk_grade")
            .map_err(|_| bad("enterprise.risk_grade"))?,
    };
    let visible_to = match root.object("visible_to", ObjType::List) {
        Some(list) => {
            let mut districts: Vec<DistrictCode> = doc
                .values(&list)
                .filter_map(|(v, _)| v.as_str().and_then(|s| s.parse().ok()))
                .collect();
            // Two devices may add the same district concurrently: it is a set.
            districts.sort();
            districts.dedup();
            districts
        }
        None => Vec::new(),
    };
    let team = doc
        .map_range(&root.map("team")?, ..)
        .filter(|item| matches!(item.value, automerge::ValueRef::Object(ObjType::Map)))
        .filter_map(|item| {
            let member = Fields::of(doc, &item.id());
            Some(TeamMember {
                name: member.string("name").unwrap_or_default(),
                department: member.string("department").unwrap_or_default(),
                district: member.parse("district").ok()?,
                user_id: item.key.into_owned(),
            })
        })
        .collect();
    let location = root.object("location", ObjType::Map).and_then(|loc| {
        let loc = Fields::of(doc, &loc);
        GeoPoint::new(loc.float("latitude")?, loc.float("longitude")?).ok()
    });
    let review = root.map("review")?;
    Ok(Case {
        id,
        enterprise,
        case_type: root.parse("type").map_err(|_| bad("type"))?,
        district: root.parse("district").map_err(|_| bad("district"))?,
        visible_to,
        team,
        opened_at: root.time("opened_at").map_err(|_| bad("opened_at"))?,
        opened_by: root.string("opened_by").unwrap_or_default(),
        location,
        state: parse_field(doc, &review, "state").map_err(|_| bad("review.state"))?,
        findings: Vec::new(),
        checklists: Vec::new(),
        review_events: read_review_events(doc, &review),
        amends: root.string("amends").and_then(|id| id.parse().ok()),
        writs: writs::read_all(doc)?,
    })
}

/// The review trail: every well-formed event in `review.events`, in list order.
fn read_review_events(doc: &AutoCommit, review: &ObjId) -> Vec<ReviewEvent> {
    let Ok(Some((Value::Object(ObjType::List), events))) = doc.get(review, "events") else {
        return Vec::new();
    };
    (0..doc.length(&events))
        .filter_map(|i| match doc.get(&events, i) {
            Ok(Some((Value::Object(ObjType::Map), event))) => Some(ReviewEvent {
                kind: string(doc, &event, "kind")?,
                by: string(doc, &event, "by").unwrap_or_default(),
                at: string(doc, &event, "at").unwrap_or_default(),
                text: string(doc, &event, "text").unwrap_or_default(),
            }),
            _ => None,
        })
        .collect()
}

/// Reads one finding; `None` when it does not exist or was removed.
pub(crate) fn read_finding(doc: &AutoCommit, id: FindingId) -> Result<Option<Finding>> {
    match finding_obj(doc, id)? {
        Some(obj) => read_finding_at(doc, id, &obj),
        None => Ok(None),
    }
}

/// Reads finding `id` from its map `obj`; `None` when it was removed.
fn read_finding_at(doc: &AutoCommit, id: FindingId, obj: &ObjId) -> Result<Option<Finding>> {
    let fields = Fields::of(doc, obj);
    if fields.has("removed") {
        return Ok(None);
    }
    let bad = |what: &str| Error::InvalidDocument(format!("finding {id}: {what}"));
    let events = follow_up::read(doc, obj, id)?;
    let rect = Fields::of(doc, &fields.map("rectification")?);
    let state: RectificationState = rect
        .parse("state")
        .map_err(|_| bad("rectification.state"))?;
    let rectification = if state == RectificationState::None {
        None
    } else {
        Some(Rectification {
            measures: rect.string("measures").unwrap_or_default(),
            deadline: rect
                .date("deadline")
                .map_err(|_| bad("rectification.deadline"))?,
            responsible: rect.string("responsible").unwrap_or_default(),
            state,
            evidence: photos::read_field(&rect, "evidence"),
            reinspection: latest_reinspection(&rect, &events)
                .map_err(|_| bad("rectification.reinspected_at"))?,
            ordered_level: rect
                .has("ordered_level")
                .then(|| rect.parse("ordered_level"))
                .transpose()
                .map_err(|_| bad("rectification.ordered_level"))?,
        })
    };
    let source = fields.object("source", ObjType::Map).and_then(|source| {
        let source = Fields::of(doc, &source);
        Some(ChecklistSource {
            checklist: source.string("checklist")?.parse().ok()?,
            item: source.string("item")?,
        })
    });
    let violation = Fields::of(doc, &fields.map("violation")?);
    let violation = match violation.parse::<ViolationKind>("kind") {
        Ok(kind) => Some(Violation {
            kind,
            post: violation.string("post").unwrap_or_default(),
            person: violation.string("person").unwrap_or_default(),
        }),
        Err(_) => None,
    };
    Ok(Some(Finding {
        id,
        description: fields.string("description").unwrap_or_default(),
        level: fields.parse("level").map_err(|_| bad("level"))?,
        category: fields.string("category").unwrap_or_default(),
        legal_basis: fields.string("legal_basis").unwrap_or_default(),
        place: fields.string("place").unwrap_or_default(),
        recorded_by: fields.string("recorded_by").unwrap_or_default(),
        recorded_at: fields.time("recorded_at").map_err(|_| bad("recorded_at"))?,
        rectification,
        violation,
        source,
        photos: photos::read_field(&fields, "photos"),
        events,
    }))
}

/// The latest re-inspection: the last one in the follow-up, or for a finding re-inspected
/// before re-inspections had results, the one recorded in its rectification (合格: it
/// moved the hazard to 已复查).
fn latest_reinspection(rect: &Fields, events: &[HazardEvent]) -> Result<Option<Reinspection>> {
    let last = events.iter().rev().find_map(|e| match &e.step {
        HazardStep::Reinspect { result, note, .. } => Some(Reinspection {
            result: *result,
            note: note.clone(),
            by: e.by.clone(),
            at: e.at,
        }),
        _ => None,
    });
    if last.is_some() {
        return Ok(last);
    }
    match rect.string("reinspection_note") {
        Some(note) => Ok(Some(Reinspection {
            result: ReinspectionResult::Pass,
            note,
            by: rect.string("reinspected_by").unwrap_or_default(),
            at: rect.time("reinspected_at")?,
        })),
        None => Ok(None),
    }
}

/// Writes a new finding.
pub(crate) fn add_finding(
    doc: &mut AutoCommit,
    id: FindingId,
    finding: &NewFinding,
    recorded_by: &str,
    recorded_at: DateTime<FixedOffset>,
) -> Result<ObjId> {
    let findings = map(doc, &ROOT, "findings")?;
    let obj = doc.put_object(&findings, id.to_string(), ObjType::Map)?;
    let text = doc.put_object(&obj, "description", ObjType::Text)?;
    doc.splice_text(&text, 0, 0, &finding.description)?;
    doc.put(
        &obj,
        "level",
        finding.level.unwrap_or(Level::General).code(),
    )?;
    doc.put(&obj, "category", finding.category.as_str())?;
    doc.put(&obj, "legal_basis", finding.legal_basis.as_str())?;
    doc.put(&obj, "place", finding.place.as_str())?;
    doc.put_object(&obj, "photos", ObjType::List)?;
    doc.put(&obj, "recorded_by", recorded_by)?;
    doc.put(&obj, "recorded_at", recorded_at.to_rfc3339())?;
    let rect = doc.put_object(&obj, "rectification", ObjType::Map)?;
    doc.put(&rect, "state", RectificationState::None.code())?;
    doc.put_object(&rect, "evidence", ObjType::List)?;
    doc.put_object(&obj, follow_up::EVENTS, ObjType::List)?;
    let violation = doc.put_object(&obj, "violation", ObjType::Map)?;
    if let Some(v) = &finding.violation {
        put_violation(doc, &violation, v)?;
    }
    Ok(obj)
}

/// The projection of a finding `add_finding` writes, without reading it back.
pub(crate) fn new_finding_projection(
    id: FindingId,
    finding: &NewFinding,
    recorded_by: &str,
    recorded_at: DateTime<FixedOffset>,
) -> FindingProjection {
    FindingProjection {
        id,
        finding: Some(Finding {
            id,
            description: finding.description.clone(),
            level: finding.level.unwrap_or(Level::General),
            category: finding.category.clone(),
            legal_basis: finding.legal_basis.clone(),
            place: finding.place.clone(),
            recorded_by: recorded_by.to_owned(),
            recorded_at,
            rectification: None,
            violation: finding.violation.clone(),
            source: None,
            photos: Vec::new(),
            events: Vec::new(),
        }),
        conflicts: 0,
    }
}

fn put_violation(doc: &mut AutoCommit, obj: &ObjId, violation: &Violation) -> Result<()> {
    put_judgement(doc, obj, "kind", violation.kind.code())?;
    put_judgement(doc, obj, "post", violation.post.as_str())?;
    put_judgement(doc, obj, "person", violation.person.as_str())?;
    Ok(())
}

/// Applies an edit to an existing finding. Every field given is written, even with the
/// value it already has: it is the inspector's judgement, and a concurrent different
/// judgement on another device must surface as a conflict.
pub(crate) fn edit_finding(doc: &mut AutoCommit, id: FindingId, edit: &FindingEdit) -> Result<()> {
    let obj = live_finding(doc, id)?;
    if let Some(description) = &edit.description {
        match doc.get(&obj, "description")? {
            Some((Value::Object(ObjType::Text), text)) => doc.update_text(&text, description)?,
            _ => {
                let text = doc.put_object(&obj, "description", ObjType::Text)?;
                doc.splice_text(&text, 0, 0, description)?;
            }
        }
    }
    if let Some(level) = edit.level {
        put_judgement(doc, &obj, "level", level.code())?;
    }
    for (key, value) in [
        ("category", &edit.category),
        ("legal_basis", &edit.legal_basis),
        ("place", &edit.place),
    ] {
        if let Some(value) = value {
            put_judgement(doc, &obj, key, value)?;
        }
    }
    if let Some(violation) = &edit.violation {
        let v = map(doc, &obj, "violation")?;
        put_violation(doc, &v, violation)?;
    }
    Ok(())
}

/// Writes `value` at `key` as this inspector's judgement, even when it equals the value
/// the field holds.
///
/// Automerge drops a put of the value a field already has, and turns a put of the value
/// that wins a conflict into a deletion of the other values; either way an inspector who
/// keeps a finding "general" while another raises it to "major" offline would leave no
/// value of their own, and the other judgement would win silently. Writing null and then
/// the value in the same change makes the judgement an operation of its own, which a
/// concurrent different value then meets as a conflict. A conflict's resolution is written
/// the same way (`put_field`).
fn put_judgement(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: impl Into<ScalarValue>,
) -> Result<()> {
    let value = value.into();
    let current = doc.get_all(obj, key)?;
    if current.iter().any(|(v, _)| v.as_scalar() == Some(&value)) {
        doc.put(obj, key, ScalarValue::Null)?;
    }
    doc.put(obj, key, value)?;
    Ok(())
}

/// Marks a finding removed. Findings are evidence: the record stays in the document with
/// who removed it and when, and an edit made concurrently on another device is kept.
pub(crate) fn remove_finding(
    doc: &mut AutoCommit,
    id: FindingId,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<()> {
    let obj = live_finding(doc, id)?;
    let removed = doc.put_object(&obj, "removed", ObjType::Map)?;
    doc.put(&removed, "by", by)?;
    doc.put(&removed, "at", at.to_rfc3339())?;
    Ok(())
}

/// Orders rectification of a finding (or amends its measures and responsible person while
/// it is open; the deadline then moves only by an extension).
pub(crate) fn order_rectification(
    doc: &mut AutoCommit,
    id: FindingId,
    order: &RectificationOrder,
) -> Result<()> {
    let obj = live_finding(doc, id)?;
    let rect = map(doc, &obj, "rectification")?;
    let state: RectificationState = parse_field(doc, &rect, "state")?;
    if state == RectificationState::Closed {
        return Err(Error::NotAllowed(format!(
            "the rectification of finding {id} is closed (已销号); record a new finding instead"
        )));
    }
    doc.put(&rect, "measures", order.measures.as_str())?;
    doc.put(&rect, "deadline", order.deadline.to_string())?;
    doc.put(&rect, "responsible", order.responsible.as_str())?;
    if state == RectificationState::None {
        let level: Level = parse_field(doc, &obj, "level")?;
        doc.put(&rect, "ordered_level", level.code())?;
        doc.put(&rect, "state", RectificationState::Ordered.code())?;
    }
    Ok(())
}

/// Moves a finding's rectification to `next` where no step of its follow-up is needed
/// (the enterprise at work, 整改中; or 逾期), if the closed loop allows it. Re-inspecting
/// and closing are steps of the follow-up (`follow_up`).
pub(crate) fn move_rectification(
    doc: &mut AutoCommit,
    id: FindingId,
    next: RectificationState,
) -> Result<()> {
    let obj = live_finding(doc, id)?;
    let rect = map(doc, &obj, "rectification")?;
    let state: RectificationState = parse_field(doc, &rect, "state")?;
    if !crate::rules::rectification_step(state, next) {
        return Err(Error::NotAllowed(format!(
            "隐患整改状态不能从“{}”直接变为“{}”：复查和销号请记录复查结果或销号 (rectification of finding {id} cannot go from {} to {} by itself)",
            state.label(),
            next.label(),
            state.code(),
            next.code()
        )));
    }
    doc.put(&rect, "state", next.code())?;
    Ok(())
}

/// Records a review action: appends the event to `review.events` and moves
/// `review.state`, if the action is possible in the current state.
pub(crate) fn review(
    doc: &mut AutoCommit,
    action: ReviewAction,
    by: &str,
    at: DateTime<FixedOffset>,
    text: &str,
) -> Result<ReviewState> {
    if action.needs_text() && text.trim().is_empty() {
        return Err(Error::invalid(
            "text",
            format!("{} needs a comment (请填写意见)", action.label()),
        ));
    }
    let review = map(doc, &ROOT, "review")?;
    let current: ReviewState = parse_field(doc, &review, "state")?;
    let next = crate::rules::review_step(action, current)?;
    let events = match doc.get(&review, "events")? {
        Some((Value::Object(ObjType::List), events)) => events,
        _ => return Err(Error::InvalidDocument("review.events is not a list".into())),
    };
    let event = doc.insert_object(&events, doc.length(&events), ObjType::Map)?;
    doc.put(&event, "kind", action.code())?;
    doc.put(&event, "by", by)?;
    doc.put(&event, "at", at.to_rfc3339())?;
    doc.put(&event, "text", text)?;
    if next != current {
        doc.put(&review, "state", next.code())?;
    }
    Ok(next)
}

/// Resolves the conflict at `path` by keeping one of its values or writing a new one;
/// returns the finding it touched, if any.
pub(crate) fn resolve_conflict(
    doc: &mut AutoCommit,
    path: &[String],
    resolution: &Resolution,
) -> Result<Option<FindingId>> {
    if path == ["review", "state"] {
        return Err(Error::NotAllowed(
            "the review state changes only by review actions (submit, return, approve, reopen)"
                .into(),
        ));
    }
    let (obj, key) =
        resolve_path(doc, path)?.ok_or_else(|| Error::not_found("field", path.join("/")))?;
    let values = values_at(doc, &obj, &key)?;
    if values.len() < 2 {
        return Err(Error::NotAllowed(format!(
            "{} is not in conflict",
            path.join("/")
        )));
    }
    let value = match resolution {
        Resolution::Choose(index) => values.get(*index).cloned().ok_or_else(|| {
            Error::invalid(
                "resolution",
                format!("there are {} values, not {}", values.len(), index + 1),
            )
        })?,
        Resolution::Write(value) => value.clone(),
    };
    validate_field(&key, &value)?;
    put_field(doc, &obj, &key, &value)?;
    Ok(match path {
        [findings, id, ..] if findings == "findings" => id.parse().ok(),
        _ => None,
    })
}

/// Checks a value written by hand (a conflict resolution) against the field's rules.
fn validate_field(key: &str, value: &FieldValue) -> Result<()> {
    let FieldValue::Text(text) = value else {
        return match key {
            "level" | "state" | "deadline" | "type" | "district" => Err(Error::invalid(
                "value",
                format!("{key} must be text, not {value}"),
            )),
            _ => Ok(()),
        };
    };
    match key {
        "level" => text.parse::<Level>().map(drop),
        // The only other `state` is the review's, which is not resolved by hand.
        "state" => text.parse::<RectificationState>().map(drop),
        "deadline" => crate::codes::parse_day(text).map(drop).ok_or_else(|| {
            Error::invalid("deadline", format!("{text:?} is not a date (YYYY-MM-DD)"))
        }),
        "type" => text.parse::<CaseType>().map(drop),
        "result" => text.parse::<crate::codes::AnswerResult>().map(drop),
        "district" => text.parse::<DistrictCode>().map(drop),
        _ => Ok(()),
    }
}

/// Finds the finding's map, if the finding exists (removed or not).
fn finding_obj(doc: &AutoCommit, id: FindingId) -> Result<Option<ObjId>> {
    let findings = map(doc, &ROOT, "findings")?;
    Ok(match doc.get(&findings, id.to_string())? {
        Some((Value::Object(ObjType::Map), obj)) => Some(obj),
        _ => None,
    })
}

/// The finding's map, or `NotFound` when it does not exist or was removed.
fn live_finding(doc: &AutoCommit, id: FindingId) -> Result<ObjId> {
    match finding_obj(doc, id)? {
        Some(obj) if doc.get(&obj, "removed")?.is_none() => Ok(obj),
        _ => Err(Error::not_found("finding", id)),
    }
}

/// Every field that devices wrote concurrently with different values.
pub(crate) fn conflicts(doc: &AutoCommit) -> Result<Vec<Conflict>> {
    let mut found = Vec::new();
    collect_conflicts(doc, &ROOT, &[], &mut found)?;
    Ok(found)
}

fn collect_conflicts(
    doc: &AutoCommit,
    obj: &ObjId,
    path: &[String],
    found: &mut Vec<Conflict>,
) -> Result<()> {
    collect_conflicts_except(doc, obj, path, found, None)
}

/// Collects conflicts under `obj`, not descending into the child `skip` of `obj` (its
/// key's own conflict is still reported). Iterative: a hostile document may nest far
/// deeper than the stack allows.
fn collect_conflicts_except(
    doc: &AutoCommit,
    obj: &ObjId,
    path: &[String],
    found: &mut Vec<Conflict>,
    skip: Option<&str>,
) -> Result<()> {
    let mut stack = vec![(obj.clone(), path.to_vec(), skip)];
    while let Some((obj, path, skip)) = stack.pop() {
        let keys: Vec<String> = doc.keys(&obj).collect();
        let mut children = Vec::new();
        for key in keys {
            let all = doc.get_all(&obj, key.as_str())?;
            let mut here = path.clone();
            here.push(key.clone());
            if all.len() > 1 {
                let values: Vec<ConflictValue> = all
                    .iter()
                    .map(|(value, id)| conflict_value(doc, value, id))
                    .collect();
                let distinct = values
                    .iter()
                    .any(|v| v.value != values[0].value || v.value == FieldValue::Object);
                if distinct {
                    found.push(Conflict {
                        path: here.clone(),
                        values,
                    });
                }
            }
            // Descend into the winning value only: its siblings are reported above.
            if let Some((Value::Object(ObjType::Map), child)) = all.first()
                && skip != Some(key.as_str())
            {
                children.push((child.clone(), here, None));
            }
        }
        // Reversed, so that conflicts are reported in document order.
        stack.extend(children.into_iter().rev());
    }
    Ok(())
}

fn conflict_value(doc: &AutoCommit, value: &Value<'_>, id: &ObjId) -> ConflictValue {
    let (written_by, device, device_time) = doc
        .hash_for_opid(id)
        .and_then(|hash| doc.get_change_by_hash(&hash))
        .map(|change| {
            let note = ChangeNote::parse(change.message());
            (
                note.by,
                change.actor_id().to_hex_string(),
                change.timestamp(),
            )
        })
        .unwrap_or_default();
    ConflictValue {
        value: field_value(value),
        written_by,
        device,
        device_time,
    }
}

/// A document value as a `FieldValue`.
pub(crate) fn field_value(value: &Value<'_>) -> FieldValue {
    match value {
        Value::Object(_) => FieldValue::Object,
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => FieldValue::Text(s.to_string()),
            ScalarValue::Int(i) => FieldValue::Int(*i),
            ScalarValue::Uint(u) => i64::try_from(*u)
                .map(FieldValue::Int)
                .unwrap_or(FieldValue::Float(*u as f64)),
            ScalarValue::F64(f) => FieldValue::Float(*f),
            ScalarValue::Boolean(b) => FieldValue::Bool(*b),
            ScalarValue::Timestamp(t) => FieldValue::Int(*t),
            ScalarValue::Counter(c) => FieldValue::Int(i64::from(c)),
            ScalarValue::Null | ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => {
                FieldValue::Null
            }
        },
    }
}

/// The object holding the field at `path`, and the field's key, if the path exists.
pub(crate) fn resolve_path(doc: &AutoCommit, path: &[String]) -> Result<Option<(ObjId, String)>> {
    let Some((key, parents)) = path.split_last() else {
        return Ok(None);
    };
    let mut obj = ROOT;
    for segment in parents {
        match doc.get(&obj, segment.as_str())? {
            Some((Value::Object(ObjType::Map), child)) => obj = child,
            _ => return Ok(None),
        }
    }
    Ok(Some((obj, key.clone())))
}

/// The values at `path` (several when in conflict).
pub(crate) fn values_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<Vec<FieldValue>> {
    Ok(doc
        .get_all(obj, key)?
        .iter()
        .map(|(v, _)| field_value(v))
        .collect())
}

/// Writes a scalar `value` at `key` of `obj`, superseding every concurrent value, as a
/// person's judgement (`put_judgement`): an operation of its own even when it keeps a
/// value the field holds, so that a different resolution or edit made meanwhile on another
/// device meets it as a conflict instead of one of the two winning silently.
pub(crate) fn put_field(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: &FieldValue,
) -> Result<()> {
    let scalar = match value {
        FieldValue::Text(s) => ScalarValue::Str(s.as_str().into()),
        FieldValue::Int(i) => ScalarValue::Int(*i),
        FieldValue::Float(f) => ScalarValue::F64(*f),
        FieldValue::Bool(b) => ScalarValue::Boolean(*b),
        FieldValue::Null => ScalarValue::Null,
        FieldValue::Object => {
            return Err(Error::invalid(
                "value",
                "a nested record cannot be written as a resolution; choose one of the values",
            ));
        }
    };
    put_judgement(doc, obj, key, scalar)
}

/// Every change of the case, oldest first in causal order.
pub(crate) fn history(doc: &mut AutoCommit) -> Vec<HistoryEntry> {
    doc.get_changes(&[]).iter().map(history_entry).collect()
}

/// A change as the history shows it.
pub(crate) fn history_entry(change: &automerge::Change) -> HistoryEntry {
    let note = ChangeNote::parse(change.message());
    HistoryEntry {
        hash: change.hash().to_string(),
        author: note.by,
        device: change.actor_id().to_hex_string(),
        device_time: change.timestamp(),
        action: note.action,
        // A change hash, or nothing: the note is the device's to write.
        entered_again_for: note.again.filter(|h| h.parse::<ChangeHash>().is_ok()),
    }
}

/// What the query projections hold of one finding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FindingProjection {
    pub id: FindingId,
    /// `None` when the finding was removed (its row is then deleted).
    pub finding: Option<Finding>,
    pub conflicts: usize,
}

/// What the query projections hold of a case: the case, the conflicts outside its
/// findings, and each finding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CaseProjection {
    pub case: Case,
    pub case_conflicts: usize,
    pub findings: Vec<FindingProjection>,
    /// Every blob hash the document mentions.
    pub blob_refs: std::collections::BTreeSet<String>,
}

/// Projects the whole case (after a merge, or to rebuild projections).
pub(crate) fn project_case(doc: &AutoCommit) -> Result<CaseProjection> {
    let case = read_case(doc)?;
    let path = Vec::new();
    let mut case_conflicts = Vec::new();
    collect_conflicts_except(doc, &ROOT, &path, &mut case_conflicts, Some("findings"))?;
    let findings_obj = map(doc, &ROOT, "findings")?;
    let mut findings = Vec::new();
    for key in doc.keys(&findings_obj).collect::<Vec<_>>() {
        if let Ok(id) = key.parse::<FindingId>() {
            findings.push(project_finding(doc, id)?);
        }
    }
    Ok(CaseProjection {
        case,
        case_conflicts: case_conflicts.len(),
        findings,
        blob_refs: photos::blob_refs(doc),
    })
}

/// Projects one finding (after a local edit of it).
pub(crate) fn project_finding(doc: &AutoCommit, id: FindingId) -> Result<FindingProjection> {
    let finding = read_finding(doc, id)?;
    let mut conflicts = Vec::new();
    if let Some(obj) = finding_obj(doc, id)? {
        let path = vec!["findings".to_owned(), id.to_string()];
        collect_conflicts(doc, &obj, &path, &mut conflicts)?;
    }
    Ok(FindingProjection {
        id,
        finding,
        conflicts: conflicts.len(),
    })
}

fn map(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<ObjId> {
    map_of(doc.get(obj, key)?, key)
}

fn string(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    let (value, id) = doc.get(obj, key).ok()??;
    text_of(doc, &value, Some(&id))
}

/// The string at `key` of `obj` as the document read at `heads`.
pub(crate) fn string_at(
    doc: &AutoCommit,
    obj: &ObjId,
    key: &str,
    heads: &[ChangeHash],
) -> Option<String> {
    match doc.get_at(obj, key, heads).ok()?? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        (Value::Object(ObjType::Text), text) => doc.text_at(&text, heads).ok(),
        _ => None,
    }
}

fn parse_field<T: std::str::FromStr<Err = Error>>(
    doc: &AutoCommit,
    obj: &ObjId,
    key: &str,
) -> Result<T> {
    parsed(string(doc, obj, key), key)
}

fn parse_time(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<DateTime<FixedOffset>> {
    time_of(string(doc, obj, key), key)
}

/// How each field is read, from a map read key by key ([`string`] and the rest) or whole
/// ([`Fields`]): one reading of values in one place.
fn map_of(value: Option<(Value<'_>, ObjId)>, key: &str) -> Result<ObjId> {
    match value {
        Some((Value::Object(ObjType::Map), child)) => Ok(child),
        _ => Err(Error::InvalidDocument(format!(
            "{key} is missing or not a map"
        ))),
    }
}

/// A string field's content: a string, or a text's (`id` is the text's object).
fn text_of(doc: &AutoCommit, value: &Value<'_>, id: Option<&ObjId>) -> Option<String> {
    match (value, id) {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        (Value::Object(ObjType::Text), Some(text)) => doc.text(text).ok(),
        _ => None,
    }
}

fn float_of(value: &Value<'_>) -> Option<f64> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::F64(f) => Some(*f),
            ScalarValue::Int(i) => Some(*i as f64),
            ScalarValue::Uint(u) => Some(*u as f64),
            _ => None,
        },
        _ => None,
    }
}

fn int_of(value: &Value<'_>) -> Option<u64> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Int(i) => u64::try_from(*i).ok(),
            ScalarValue::Uint(u) => Some(*u),
            _ => None,
        },
        _ => None,
    }
}

fn parsed<T: std::str::FromStr<Err = Error>>(text: Option<String>, key: &str) -> Result<T> {
    text.ok_or_else(|| Error::InvalidDocument(format!("{key} is missing")))?
        .parse()
}

fn time_of(text: Option<String>, key: &str) -> Result<DateTime<FixedOffset>> {
    let s = text.ok_or_else(|| Error::InvalidDocument(format!("{key} is missing")))?;
    DateTime::parse_from_rfc3339(&s)
        .map_err(|e| Error::InvalidDocument(format!("{key} {s:?}: {e}")))
}

fn date_of(text: Option<String>, key: &str) -> Result<NaiveDate> {
    let s = text.ok_or_else(|| Error::InvalidDocument(format!("{key} is missing")))?;
    s.parse()
        .map_err(|e| Error::InvalidDocument(format!("{key} {s:?}: {e}")))
}

/// One map's fields, read whole: Automerge finds a key by scanning its object, so reading
/// a map of twenty fields at once costs what reading one or two of them key by key does.
/// Each field reads as the key-by-key helpers read it (the value that wins a conflict).
pub(crate) struct Fields<'a> {
    doc: &'a AutoCommit,
    /// Each key's value, with the object's id when the value is an object.
    fields: Vec<(String, Value<'static>, Option<ObjId>)>,
}

impl<'a> Fields<'a> {
    pub(crate) fn of(doc: &'a AutoCommit, obj: &ObjId) -> Self {
        let fields = doc
            .map_range(obj, ..)
            .map(|item| {
                let id = matches!(item.value, automerge::ValueRef::Object(_)).then(|| item.id());
                (item.key.into_owned(), item.value.into_value(), id)
            })
            .collect();
        Fields { doc, fields }
    }

    fn value(&self, key: &str) -> Option<(&Value<'static>, Option<&ObjId>)> {
        self.fields
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, value, id)| (value, id.as_ref()))
    }

    /// The document the map is in.
    pub(crate) fn doc(&self) -> &'a AutoCommit {
        self.doc
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.value(key).is_some()
    }

    /// The object under `key`, if it is one of type `kind`.
    pub(crate) fn object(&self, key: &str, kind: ObjType) -> Option<ObjId> {
        match self.value(key)? {
            (Value::Object(k), Some(id)) if *k == kind => Some(id.clone()),
            _ => None,
        }
    }

    pub(crate) fn map(&self, key: &str) -> Result<ObjId> {
        map_of(
            self.value(key)
                .and_then(|(v, id)| Some((v.clone(), id?.clone()))),
            key,
        )
    }

    pub(crate) fn string(&self, key: &str) -> Option<String> {
        let (value, id) = self.value(key)?;
        text_of(self.doc, value, id)
    }

    pub(crate) fn float(&self, key: &str) -> Option<f64> {
        float_of(self.value(key)?.0)
    }

    pub(crate) fn int(&self, key: &str) -> Option<u64> {
        int_of(self.value(key)?.0)
    }

    pub(crate) fn parse<T: std::str::FromStr<Err = Error>>(&self, key: &str) -> Result<T> {
        parsed(self.string(key), key)
    }

    pub(crate) fn time(&self, key: &str) -> Result<DateTime<FixedOffset>> {
        time_of(self.string(key), key)
    }

    pub(crate) fn date(&self, key: &str) -> Result<NaiveDate> {
        date_of(self.string(key), key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    #[test]
    fn the_projection_of_a_new_finding_is_what_reading_it_back_gives() {
        let mut doc = AutoCommit::new();
        let enterprise = sample::enterprise(1);
        let team = [TeamMember::from(&sample::inspector("u1"))];
        init_case(
            &mut doc,
            &CaseInit {
                id: CaseId::new(),
                enterprise: &enterprise,
                case_type: CaseType::Routine,
                district: &enterprise.district,
                visible_to: &[],
                team: &team,
                opened_at: sample::visit_time(),
                opened_by: "u1",
                location: None,
                amends: None,
            },
        )
        .expect("init");
        let mut finding = sample::finding("动火作业未办理作业票\n第二行");
        finding.level = Some(Level::Major);
        finding.violation = Some(Violation {
            kind: ViolationKind::IllegalOperation,
            post: "电焊工".into(),
            person: "赵六".into(),
        });
        let id = FindingId::new();
        let at = sample::visit_time();
        add_finding(&mut doc, id, &finding, "u1", at).expect("add");
        assert_eq!(
            new_finding_projection(id, &finding, "u1", at),
            project_finding(&doc, id).expect("read back")
        );
    }
}
