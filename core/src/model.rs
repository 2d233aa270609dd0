//! The records an inspector's app reads and writes. Their coded fields and identifiers
//! are the values of `codes`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::checklist::{TemplateItem, TemplateKind};
use crate::codes::{
    AnswerResult, CaseId, CaseType, ChecklistId, CreditCode, DistrictCode, FindingId, GeoPoint,
    HazardAction, Industry, Level, OnsiteMeasure, RectificationState, ReinspectionResult,
    ReviewState, RiskGrade, Role, SignerRole, ViolationKind, WritId, WritKind, WritState,
};

/// Who is using this store: the inspector signed in on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The inspector's user id on the server.
    pub user_id: String,
    /// Full name, as shown to others.
    pub name: String,
    /// Department (应急管理, 住建, 消防, 市场监管, 燃气 …).
    pub department: String,
    /// The inspector's own district.
    pub district: DistrictCode,
    /// The account's role (what the rule book lets the device record).
    pub role: Role,
}

/// An enterprise (生产经营单位) as registered in this store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enterprise {
    /// 统一社会信用代码; also the enterprise's id.
    pub credit_code: CreditCode,
    /// Registered name.
    pub name: String,
    /// The district the enterprise is supervised by.
    pub district: DistrictCode,
    /// Its key industry.
    pub industry: Industry,
    /// Its risk grade.
    pub risk_grade: RiskGrade,
}

/// A member of the inspection team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    /// User id.
    pub user_id: String,
    /// Full name.
    pub name: String,
    /// Department.
    pub department: String,
    /// The member's district.
    pub district: DistrictCode,
}

impl From<&Identity> for TeamMember {
    fn from(identity: &Identity) -> Self {
        TeamMember {
            user_id: identity.user_id.clone(),
            name: identity.name.clone(),
            department: identity.department.clone(),
            district: identity.district.clone(),
        }
    }
}

/// What an inspector enters to open a case.
#[derive(Debug, Clone)]
pub struct NewCase {
    /// The enterprise inspected (registered in this store).
    pub enterprise: CreditCode,
    /// Kind of inspection.
    pub case_type: CaseType,
    /// Owning district; by default the enterprise's.
    pub district: Option<DistrictCode>,
    /// Further districts that may see the case (joint and cross-district work).
    pub visible_to: Vec<DistrictCode>,
    /// Team members besides the inspector opening the case (who is always a member).
    pub team: Vec<TeamMember>,
    /// When the visit started, in local time with its offset.
    pub opened_at: DateTime<FixedOffset>,
    /// Where, if the phone knew.
    pub location: Option<GeoPoint>,
    /// The case this one amends (更正): an approved case is locked, so a correction
    /// found later is recorded as a new case linked to it.
    pub amends: Option<CaseId>,
}

/// What an inspector enters to record a finding.
#[derive(Debug, Clone, Default)]
pub struct NewFinding {
    /// What is wrong (must not be empty).
    pub description: String,
    /// 一般 or 重大.
    pub level: Option<Level>,
    /// Category (e.g. 设备设施, 作业许可, 安全管理).
    pub category: String,
    /// 依据条款.
    pub legal_basis: String,
    /// Where on site.
    pub place: String,
    /// Set when the finding is a three-violations record.
    pub violation: Option<Violation>,
}

/// A three-violations record: what kind, against which post and person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// 违章指挥, 违章作业 or 违反劳动纪律.
    pub kind: ViolationKind,
    /// The post (岗位).
    pub post: String,
    /// The person, as named on site.
    pub person: String,
}

/// Changes to a finding's fields; `None` leaves a field as it is. Apps pass only the
/// fields the inspector changed: every field given is recorded as a new judgement.
#[derive(Debug, Clone, Default)]
pub struct FindingEdit {
    /// New description (merged as text edits, not replaced).
    pub description: Option<String>,
    /// New level.
    pub level: Option<Level>,
    /// New category.
    pub category: Option<String>,
    /// New legal basis.
    pub legal_basis: Option<String>,
    /// New place.
    pub place: Option<String>,
    /// New three-violations record.
    pub violation: Option<Violation>,
}

/// A rectification order (整改通知).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RectificationOrder {
    /// 整改措施.
    pub measures: String,
    /// 整改期限: the last day, not before the visit.
    pub deadline: NaiveDate,
    /// The enterprise's responsible person.
    pub responsible: String,
}

/// A case as listed (from the projections, without loading its document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseSummary {
    /// Case id.
    pub id: CaseId,
    /// Enterprise's credit code.
    pub enterprise: CreditCode,
    /// Enterprise's name.
    pub enterprise_name: String,
    /// Owning district.
    pub district: DistrictCode,
    /// Kind of inspection.
    pub case_type: CaseType,
    /// Review state.
    pub state: ReviewState,
    /// When the visit started (device time).
    pub opened_at: DateTime<FixedOffset>,
    /// Findings not removed.
    pub findings: u32,
    /// Major findings among them.
    pub major_findings: u32,
    /// Whether any value in the case is in conflict.
    pub has_conflicts: bool,
}

/// A finding as listed (from the projections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingSummary {
    /// Case id.
    pub case_id: CaseId,
    /// Finding id.
    pub id: FindingId,
    /// Enterprise's name.
    pub enterprise_name: String,
    /// First line of the description.
    pub title: String,
    /// Level.
    pub level: Level,
    /// Rectification state.
    pub rectification: RectificationState,
    /// Deadline, when rectification was ordered.
    pub deadline: Option<NaiveDate>,
    /// Three-violations kind, when it is one.
    pub violation: Option<ViolationKind>,
}

/// A case read in full from its document.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Case id.
    pub id: CaseId,
    /// The enterprise as recorded when the case was opened.
    pub enterprise: Enterprise,
    /// Kind of inspection.
    pub case_type: CaseType,
    /// Owning district.
    pub district: DistrictCode,
    /// Other districts that may see it.
    pub visible_to: Vec<DistrictCode>,
    /// Team members.
    pub team: Vec<TeamMember>,
    /// When the visit started (device time).
    pub opened_at: DateTime<FixedOffset>,
    /// Who opened it.
    pub opened_by: String,
    /// Where.
    pub location: Option<GeoPoint>,
    /// Review state.
    pub state: ReviewState,
    /// Findings not removed, ordered by the time they were recorded.
    pub findings: Vec<Finding>,
    /// Checklists attached, in the order they were attached.
    pub checklists: Vec<CaseChecklist>,
    /// Review events (comments, returns, approvals), in the order recorded.
    pub review_events: Vec<ReviewEvent>,
    /// The case this one amends (更正), if it is an amendment.
    pub amends: Option<CaseId>,
    /// Its enforcement documents (执法文书), oldest first.
    pub writs: Vec<Writ>,
}

impl Case {
    /// Every photo of the case: of its findings, their rectification evidence, and
    /// checklist answers.
    pub fn photos(&self) -> impl Iterator<Item = &PhotoRef> {
        let findings = self.findings.iter().flat_map(|f| {
            f.photos
                .iter()
                .chain(f.rectification.iter().flat_map(|r| r.evidence.iter()))
        });
        let answers = self
            .checklists
            .iter()
            .flat_map(|c| c.entries.iter())
            .filter_map(|e| e.answer.as_ref())
            .flat_map(|a| a.photos.iter());
        findings.chain(answers)
    }
}

/// One entry of a case's review trail: a comment, or a review action with its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewEvent {
    /// `comment`, `submit`, `return` or `approve`.
    pub kind: String,
    /// User id of who recorded it.
    pub by: String,
    /// When, as recorded (RFC 3339, device or server clock).
    pub at: String,
    /// The comment.
    pub text: String,
}

/// A finding read in full from its case document.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Finding id.
    pub id: FindingId,
    /// Description.
    pub description: String,
    /// Level.
    pub level: Level,
    /// Category.
    pub category: String,
    /// 依据条款.
    pub legal_basis: String,
    /// Where on site.
    pub place: String,
    /// User id of the inspector who recorded it.
    pub recorded_by: String,
    /// When it was recorded (device time).
    pub recorded_at: DateTime<FixedOffset>,
    /// Rectification, once ordered.
    pub rectification: Option<Rectification>,
    /// Three-violations record.
    pub violation: Option<Violation>,
    /// The checklist item whose 不符合 answer created it, if one did.
    pub source: Option<ChecklistSource>,
    /// Photos of the hazard, in the order attached.
    pub photos: Vec<PhotoRef>,
    /// The hazard's follow-up (on-site measures, extensions, re-inspections, closing,
    /// supervision), in the order written.
    pub events: Vec<HazardEvent>,
}

impl Finding {
    /// The measures taken on site, oldest first.
    pub fn onsite_measures(&self) -> impl Iterator<Item = (&HazardEvent, OnsiteMeasure)> {
        self.events.iter().filter_map(|e| match e.step {
            HazardStep::Onsite { measure, .. } => Some((e, measure)),
            _ => None,
        })
    }

    /// The hazard's listing for supervision (挂牌督办), while it is listed: the latest
    /// listing not followed by a delisting.
    pub fn listing(&self) -> Option<&HazardEvent> {
        let last = self
            .events
            .iter()
            .rev()
            .find(|e| matches!(e.step, HazardStep::List { .. } | HazardStep::Delist { .. }))?;
        matches!(last.step, HazardStep::List { .. }).then_some(last)
    }

    /// Each step with the rectification deadline in force when it was taken (before any
    /// move it made itself): a 合格 re-inspection on or before it rectified the hazard on
    /// time, one after it late.
    pub fn steps_with_deadlines(&self) -> Vec<(&HazardEvent, Option<NaiveDate>)> {
        let mut deadline = self.first_deadline();
        self.events
            .iter()
            .map(|e| {
                let then = deadline;
                if let Some(moved) = e.step.new_deadline() {
                    deadline = Some(moved);
                }
                (e, then)
            })
            .collect()
    }

    /// The deadline the rectification was ordered with, before any step moved it: the one
    /// the first step that moved it replaced, or the deadline now if none did.
    pub fn first_deadline(&self) -> Option<NaiveDate> {
        self.events
            .iter()
            .find(|e| e.step.new_deadline().is_some())
            .map_or_else(
                || self.rectification.as_ref().map(|r| r.deadline),
                |e| e.previous_deadline,
            )
    }

    /// The last step recorded of `action`.
    pub fn last(&self, action: HazardAction) -> Option<&HazardEvent> {
        self.events.iter().rev().find(|e| e.step.action() == action)
    }
}

/// One step of a hazard's follow-up, as a person records it (`Store::follow_up`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HazardStep {
    /// 现场处理措施: a measure taken on the spot (during the visit only).
    Onsite {
        /// Which measure.
        measure: OnsiteMeasure,
        /// What was ordered, where, to whom.
        note: String,
    },
    /// 延期: the rectification deadline moves later.
    Extend {
        /// The new deadline.
        deadline: NaiveDate,
        /// Why (the enterprise's application, the reason it was granted).
        reason: String,
    },
    /// 复查: the rectification re-inspected, with its result.
    Reinspect {
        /// 合格 or 不合格.
        result: ReinspectionResult,
        /// What the inspector found.
        note: String,
        /// After 不合格: the new deadline, unless the hazard is escalated.
        deadline: Option<NaiveDate>,
        /// After 不合格: what the hazard is escalated to (立案处罚, 挂牌督办 …), when no new
        /// deadline is given.
        escalation: String,
    },
    /// 销号: the hazard closed after a 合格 re-inspection.
    Close {
        /// A note (may be empty).
        note: String,
    },
    /// 挂牌督办: a major hazard listed for supervision.
    List {
        /// The supervising authority.
        authority: String,
        /// The listing document's number.
        number: String,
        /// The deadline set by the listing.
        deadline: NaiveDate,
    },
    /// 治理方案: the enterprise's plan for a listed hazard (the latest one stands).
    Plan {
        /// 治理措施.
        measures: String,
        /// 资金.
        funds: String,
        /// 责任人.
        responsible: String,
        /// 临时安全措施 while the hazard is being removed.
        interim: String,
    },
    /// 进展报告 on a listed hazard.
    Progress {
        /// What was reported.
        text: String,
    },
    /// 摘牌: a closed hazard delisted.
    Delist {
        /// A note (may be empty).
        note: String,
    },
}

impl HazardStep {
    /// A 合格 re-inspection with the inspector's note.
    pub fn pass(note: impl Into<String>) -> HazardStep {
        HazardStep::Reinspect {
            result: ReinspectionResult::Pass,
            note: note.into(),
            deadline: None,
            escalation: String::new(),
        }
    }

    /// Closing (销号) with no note.
    pub fn close() -> HazardStep {
        HazardStep::Close {
            note: String::new(),
        }
    }

    /// What kind of step it is.
    pub fn action(&self) -> HazardAction {
        match self {
            HazardStep::Onsite { .. } => HazardAction::Onsite,
            HazardStep::Extend { .. } => HazardAction::Extend,
            HazardStep::Reinspect { .. } => HazardAction::Reinspect,
            HazardStep::Close { .. } => HazardAction::Close,
            HazardStep::List { .. } => HazardAction::List,
            HazardStep::Plan { .. } => HazardAction::Plan,
            HazardStep::Progress { .. } => HazardAction::Progress,
            HazardStep::Delist { .. } => HazardAction::Delist,
        }
    }

    /// The rectification deadline the step sets, if it moves it.
    pub fn new_deadline(&self) -> Option<NaiveDate> {
        match self {
            HazardStep::Extend { deadline, .. } => Some(*deadline),
            HazardStep::Reinspect { deadline, .. } => *deadline,
            _ => None,
        }
    }
}

/// A step of a hazard's follow-up as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HazardEvent {
    /// The step.
    pub step: HazardStep,
    /// User id of who recorded it (for 延期, who granted it).
    pub by: String,
    /// When (device or server clock).
    pub at: DateTime<FixedOffset>,
    /// The deadline the step replaced, when it moved the deadline.
    pub previous_deadline: Option<NaiveDate>,
    /// For a re-inspection: the rectification evidence it saw (photo hashes).
    pub evidence: Vec<String>,
}

/// A photo as a case document records it: hashes and metadata, never the bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoRef {
    /// SHA-256 of the original, hex.
    pub sha256: String,
    /// SHA-256 of the thumbnail, hex.
    pub thumbnail: String,
    /// What the photo shows, in the inspector's words.
    pub caption: String,
    /// `image/jpeg` or `image/png`.
    pub mime: String,
    /// Size of the original in bytes.
    pub size: u64,
    /// Width as displayed.
    pub width: u32,
    /// Height as displayed.
    pub height: u32,
    /// Capture time from EXIF.
    pub captured_at: Option<DateTime<FixedOffset>>,
    /// GPS position from EXIF.
    pub gps: Option<GeoPoint>,
    /// User id of who attached it.
    pub added_by: String,
    /// When it was attached (device time).
    pub added_at: DateTime<FixedOffset>,
}

/// What a photo is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhotoTarget {
    /// A finding, as evidence of the hazard.
    Finding(FindingId),
    /// A finding's rectification, as evidence that it was put right (整改佐证).
    Rectification(FindingId),
    /// An answer to a checklist item.
    Answer {
        /// The checklist attached to the case.
        checklist: ChecklistId,
        /// The item.
        item: String,
    },
}

/// A blob this device holds that the server has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBlob {
    /// SHA-256, hex.
    pub sha256: String,
    /// `original` or `thumbnail`.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GarbageReport {
    /// Blobs removed.
    pub blobs: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// Where a finding created from a checklist answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecklistSource {
    /// The checklist attached to the case.
    pub checklist: ChecklistId,
    /// The item answered 不符合.
    pub item: String,
}

/// A checklist attached to a case, with the questions of the version it was attached
/// with (kept in the case, so an old case still shows what it asked).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseChecklist {
    /// This attachment's id.
    pub id: ChecklistId,
    /// The template's id.
    pub template_id: String,
    /// The template's version (content hash) the case was answered against.
    pub version: String,
    /// The template's title.
    pub title: String,
    /// The template's kind.
    pub kind: TemplateKind,
    /// User id of who attached it.
    pub attached_by: String,
    /// When (device time).
    pub attached_at: DateTime<FixedOffset>,
    /// Every item in template order, with its answer once given.
    pub entries: Vec<ChecklistEntry>,
}

/// One question of an attached checklist and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChecklistEntry {
    /// The question as attached.
    pub item: TemplateItem,
    /// The answer, once given.
    pub answer: Option<Answer>,
}

/// An answer to a checklist item.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// 符合, 不符合 or 不适用.
    pub result: AnswerResult,
    /// The inspector's note.
    pub note: String,
    /// User id of who answered.
    pub answered_by: String,
    /// When (device time).
    pub answered_at: DateTime<FixedOffset>,
    /// The post (岗位) observed, for three-violation items.
    pub post: String,
    /// The person observed, for three-violation items.
    pub person: String,
    /// The finding a 不符合 answer created.
    pub finding: Option<FindingId>,
    /// Photos taken for this answer.
    pub photos: Vec<PhotoRef>,
}

/// What an inspector enters to answer a checklist item.
#[derive(Debug, Clone)]
pub struct AnswerInput {
    /// 符合, 不符合 or 不适用.
    pub result: AnswerResult,
    /// A note (may be empty).
    pub note: String,
    /// The post observed; for three-violation items one of the item's posts (the first
    /// is used when none is given).
    pub post: Option<String>,
    /// The person observed.
    pub person: Option<String>,
}

/// How often a checklist item was answered, and found 不符合, for one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemStat {
    /// Template id.
    pub template_id: String,
    /// Item id.
    pub item_id: String,
    /// Item text.
    pub text: String,
    /// Item category (for three-violation lists: the kind of violation).
    pub category: String,
    /// The post recorded with the answers (empty when none).
    pub post: String,
    /// Answers given.
    pub answered: u32,
    /// Answers 不符合.
    pub non_compliant: u32,
}

/// A finding's rectification.
#[derive(Debug, Clone, PartialEq)]
pub struct Rectification {
    /// 整改措施.
    pub measures: String,
    /// 整改期限.
    pub deadline: NaiveDate,
    /// Responsible person.
    pub responsible: String,
    /// State in the closed loop.
    pub state: RectificationState,
    /// Photos proving the rectification (整改佐证).
    pub evidence: Vec<PhotoRef>,
    /// The re-inspection (复查), once recorded.
    pub reinspection: Option<Reinspection>,
    /// The hazard's level when rectification was ordered, as the orderer read it; `None`
    /// for a rectification ordered before the level was recorded with the order. A hazard
    /// ordered as major is closed by the supervisors even if its level is lowered later.
    pub ordered_level: Option<Level>,
}

impl Rectification {
    /// Whether there is re-inspection evidence (a photo or an inspector's note), without
    /// which the rectification can be neither re-inspected nor closed.
    pub fn has_reinspection_evidence(&self) -> bool {
        !self.evidence.is_empty()
            || self
                .reinspection
                .as_ref()
                .is_some_and(|r| !r.note.trim().is_empty())
    }
}

/// An inspector's re-inspection of a rectification (复查): the latest one recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Reinspection {
    /// 合格 or 不合格.
    pub result: ReinspectionResult,
    /// What the inspector found on re-inspection.
    pub note: String,
    /// User id of the inspector.
    pub by: String,
    /// When (device time).
    pub at: DateTime<FixedOffset>,
}

/// A value in a case document, as shown to a person.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Text.
    Text(String),
    /// Whole number.
    Int(i64),
    /// Decimal number.
    Float(f64),
    /// Yes/no.
    Bool(bool),
    /// Nothing.
    Null,
    /// A nested record (two devices created the same record concurrently).
    Object,
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Text(s) => f.write_str(s),
            FieldValue::Int(i) => write!(f, "{i}"),
            FieldValue::Float(x) => write!(f, "{x}"),
            FieldValue::Bool(b) => write!(f, "{b}"),
            FieldValue::Null => f.write_str("null"),
            FieldValue::Object => f.write_str("{…}"),
        }
    }
}

/// One value written concurrently with others.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictValue {
    /// The value.
    pub value: FieldValue,
    /// User id of who wrote it, from the change's record.
    pub written_by: String,
    /// The device (Automerge actor id, hex) that wrote it.
    pub device: String,
    /// When, by that device's clock (seconds since the Unix epoch).
    pub device_time: i64,
}

/// A field that devices wrote concurrently with different values.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Path from the document root, e.g. `["findings", "<id>", "level"]`.
    pub path: Vec<String>,
    /// Every value, in Automerge's order (the first is what readers see until resolved).
    pub values: Vec<ConflictValue>,
}

/// One change in a case's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The change hash (hex).
    pub hash: String,
    /// User id of the author, as recorded with the change.
    pub author: String,
    /// The device (Automerge actor id, hex).
    pub device: String,
    /// The device's clock when the change was made (seconds since the Unix epoch).
    pub device_time: i64,
    /// What the change did (`open_case`, `add_finding`, …).
    pub action: String,
    /// The change (hex hash) this one enters again: the same device's earlier change,
    /// dropped when the server refused a change it built on, whose records this one holds
    /// now.
    pub entered_again_for: Option<String>,
}

/// How a person resolves a conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Keep the value at this index of `Conflict::values`.
    Choose(usize),
    /// Write a new value instead.
    Write(FieldValue),
}

/// A change the server refused, kept on the device with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The case.
    pub case_id: CaseId,
    /// The refused change (hex hash).
    pub change_hash: String,
    /// The server's reason, to show the inspector.
    pub reason: String,
    /// When the refusal arrived.
    pub refused_at: DateTime<FixedOffset>,
    /// The change (hex hash) that holds this one again on the device: set for a change
    /// of this device entered again after a refusal dropped it (the last, when it was
    /// entered in parts: what it wrote into a teammate's records waited for them).
    pub reentered_as: Option<String>,
    /// What the change was, as the case's history shows a change: who made it, on which
    /// device and when, and what it did (`add_finding`, `follow_up`, …); `None` if the
    /// bytes kept of it are damaged (the rest of the list still reads).
    pub change: Option<HistoryEntry>,
}

/// How much of a case the server has acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadState {
    /// Changes in the case.
    pub changes: u32,
    /// Changes the server has acknowledged.
    pub acknowledged: u32,
}

/// An enforcement document (执法文书) of a case: filled from the case, edited as a draft,
/// then sealed (numbered, its content frozen under a SHA-256), signed by two inspectors
/// and the enterprise (or its refusal recorded), issued; voided with a reason, never
/// edited once sealed (docs/decisions/0004).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writ {
    /// Its id.
    pub id: WritId,
    /// Which document.
    pub kind: WritKind,
    /// User id of who drew it up.
    pub created_by: String,
    /// When (device time).
    pub created_at: DateTime<FixedOffset>,
    /// The document it corrects (and which is voided for it), if any.
    pub replaces: Option<WritId>,
    /// Its content: the kind's fields (`WritKind::fields`) by key.
    pub fields: BTreeMap<String, String>,
    /// Its number and frozen content, once sealed.
    pub seal: Option<WritSeal>,
    /// Signatures, in the order recorded.
    pub signatures: Vec<WritSignature>,
    /// The enterprise's refusal to sign (拒签), if recorded.
    pub refusal: Option<SignatureRefusal>,
    /// Who issued it and when, once every signature was there.
    pub issued: Option<Stamp>,
    /// Why, by whom and when it was voided (作废).
    pub voided: Option<Voiding>,
    /// The number the server gave it in place of a provisional one.
    pub numbered: Option<Numbering>,
    /// The PDF of the issued document as handed to the enterprise.
    pub printed: Option<Printed>,
}

impl Writ {
    /// Its number in force: the one the server gave in place of a provisional one, or
    /// the seal's (`None` for a draft).
    pub fn number(&self) -> Option<&str> {
        match (&self.numbered, &self.seal) {
            (Some(numbered), _) => Some(&numbered.number),
            (None, Some(seal)) => Some(&seal.number),
            (None, None) => None,
        }
    }

    /// Whether its number in force is provisional.
    pub fn provisional(&self) -> bool {
        self.numbered.is_none() && self.seal.as_ref().is_some_and(|s| s.provisional)
    }

    /// Where it stands.
    pub fn state(&self) -> WritState {
        if self.voided.is_some() {
            WritState::Voided
        } else if self.issued.is_some() {
            WritState::Issued
        } else if self.seal.is_some() {
            WritState::Sealed
        } else {
            WritState::Draft
        }
    }

    /// The distinct inspectors who signed the sealed content, with their 执法证号.
    pub fn inspectors_signed(&self) -> BTreeSet<&str> {
        let sealed = self.seal.as_ref().map(|s| s.sha256.as_str());
        self.signatures
            .iter()
            .filter(|s| s.role == SignerRole::Inspector && Some(s.sha256.as_str()) == sealed)
            .filter(|s| !s.certificate_no.trim().is_empty())
            .map(|s| s.user.as_str())
            .collect()
    }

    /// Whether the enterprise signed the sealed content or its refusal is recorded.
    pub fn enterprise_answered(&self) -> bool {
        let sealed = self.seal.as_ref().map(|s| s.sha256.as_str());
        self.refusal.is_some()
            || self
                .signatures
                .iter()
                .any(|s| s.role == SignerRole::Enterprise && Some(s.sha256.as_str()) == sealed)
    }
}

/// A document's number and frozen content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritSeal {
    /// The document number (（沪黄）应急责改〔2026〕0012号), or a provisional one.
    pub number: String,
    /// Whether the number is provisional (issued offline with no number left in the
    /// device's block; the server gives the real one).
    pub provisional: bool,
    /// SHA-256 (hex) of the canonical content: case, kind, number and fields.
    pub sha256: String,
    /// The server-signed block the number comes from (`numbering::SignedBlock`, as text);
    /// `None` for a provisional number.
    pub block: Option<String>,
    /// Who sealed it.
    pub by: String,
    /// When.
    pub at: DateTime<FixedOffset>,
}

/// One signature on a sealed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritSignature {
    /// An inspector or the enterprise.
    pub role: SignerRole,
    /// The inspector's user id (empty for the enterprise).
    pub user: String,
    /// The signer's name as written.
    pub name: String,
    /// The inspector's 执法证号 (empty for the enterprise).
    pub certificate_no: String,
    /// SHA-256 of the captured signature (strokes rendered to an image), a blob.
    pub image: String,
    /// The SHA-256 of the sealed content the signature was given on.
    pub sha256: String,
    /// Who recorded it (the device's user).
    pub by: String,
    /// When.
    pub at: DateTime<FixedOffset>,
}

/// The enterprise's refusal to sign (拒签), as the forms require it recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRefusal {
    /// Why, as stated.
    pub reason: String,
    /// The witness (见证人).
    pub witness: String,
    /// SHA-256 of a photo of the refusal, if taken.
    pub photo: Option<String>,
    /// Who recorded it.
    pub by: String,
    /// When.
    pub at: DateTime<FixedOffset>,
}

/// Who did something and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// User id.
    pub by: String,
    /// When.
    pub at: DateTime<FixedOffset>,
}

/// The PDF of an issued document as handed to the enterprise: a blob, synced like a
/// photo, served with the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    /// SHA-256 (hex) of the PDF's bytes.
    pub sha256: String,
    /// Who printed it.
    pub by: String,
    /// When.
    pub at: DateTime<FixedOffset>,
}

/// The number the server gave a document sealed with a provisional one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbering {
    /// The number.
    pub number: String,
    /// The server-signed block it comes from (`numbering::SignedBlock`, as text).
    pub block: String,
    /// In whose name the server wrote it (who sealed the document).
    pub by: String,
    /// When (server time).
    pub at: DateTime<FixedOffset>,
}

/// A document voided (作废): why, by whom and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voiding {
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// When.
    pub at: DateTime<FixedOffset>,
}

/// A signature as the app captured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInput {
    /// An inspector or the enterprise.
    pub role: SignerRole,
    /// The inspector's user id (a member of the case's team; empty for the enterprise).
    pub user: String,
    /// The signer's name.
    pub name: String,
    /// The inspector's 执法证号 (empty for the enterprise).
    pub certificate_no: String,
    /// SHA-256 of the signature image, ingested as a photo blob first.
    pub image: String,
}
