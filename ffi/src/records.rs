//! The plain, owned data that crosses the boundary, and every conversion between it and the
//! core's types (this is the one place that knows both).
//!
//! Conventions, the same in every record:
//! - ids (cases, findings, checklists) are UUID strings; codes (credit code, district) are
//!   strings validated by the core when they come in;
//! - a moment is an RFC 3339 string with its UTC offset (`2026-11-20T09:30:00+08:00`), so
//!   the inspector's local time survives; a day is `YYYY-MM-DD`;
//! - the device clock of a change (history, conflicts) is whole seconds since the Unix
//!   epoch, as the core records it;
//! - photo hashes are lower-case hex SHA-256.

use anjian_core as core;
use chrono::{DateTime, FixedOffset, NaiveDate};

use crate::enums::{
    AnswerResult, CaseType, Industry, Level, OnsiteMeasure, Operation, RectificationState,
    ReinspectionResult, ReviewState, RiskGrade, TemplateKind, ViolationKind,
};

type CoreResult<T> = core::Result<T>;

// ---------------------------------------------------------------------------------------
// People and enterprises

/// Who is using the store: the inspector signed in on the device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Identity {
    /// The inspector's user id on the server (the sign-in name).
    pub user_id: String,
    /// Full name, as shown to others.
    pub name: String,
    /// Department (应急管理, 住建, 消防, 市场监管, 燃气 …).
    pub department: String,
    /// The inspector's own district (6 digits).
    pub district: String,
    /// The account's role as the server reports it at sign-in (`inspector`,
    /// `supervisor`, `admin`): what the rule book lets this device record.
    #[uniffi(default = "inspector")]
    pub role: String,
}

/// An enterprise (生产经营单位).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Enterprise {
    /// 统一社会信用代码 (18 characters with a check character); also its id.
    pub credit_code: String,
    /// Registered name.
    pub name: String,
    /// The district that supervises it (6 digits).
    pub district: String,
    /// Its key industry.
    pub industry: Industry,
    /// Its risk grade.
    pub risk_grade: RiskGrade,
}

/// A member of an inspection team.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TeamMember {
    /// User id.
    pub user_id: String,
    /// Full name.
    pub name: String,
    /// Department.
    pub department: String,
    /// The member's district (6 digits).
    pub district: String,
}

/// A point on the earth (WGS-84).
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct GeoPoint {
    /// Latitude in degrees, -90 to 90.
    pub latitude: f64,
    /// Longitude in degrees, -180 to 180.
    pub longitude: f64,
}

// ---------------------------------------------------------------------------------------
// Cases and findings

/// What an inspector enters to open a case.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NewCase {
    /// Credit code of the enterprise inspected (registered in this store).
    pub enterprise: String,
    /// Kind of inspection.
    pub case_type: CaseType,
    /// When the visit started: RFC 3339 with the local offset.
    pub opened_at: String,
    /// Owning district; by default the enterprise's.
    #[uniffi(default)]
    pub district: Option<String>,
    /// Further districts that may see the case (joint and cross-district work).
    #[uniffi(default)]
    pub visible_to: Vec<String>,
    /// Team members besides the inspector opening the case.
    #[uniffi(default)]
    pub team: Vec<TeamMember>,
    /// Where, if the phone knew.
    #[uniffi(default)]
    pub location: Option<GeoPoint>,
    /// The case this one amends (更正): an approved case is locked, so a correction
    /// found later is a new case linked to it.
    #[uniffi(default)]
    pub amends: Option<String>,
}

/// A three-violations record (三违): what kind, against which post and person.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Violation {
    /// 违章指挥, 违章作业 or 违反劳动纪律.
    pub kind: ViolationKind,
    /// The post (岗位); required.
    pub post: String,
    /// The person, as named on site.
    pub person: String,
}

/// What an inspector enters to record a finding (隐患).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NewFinding {
    /// What is wrong (must not be empty).
    pub description: String,
    /// 一般 or 重大; general when not given.
    #[uniffi(default)]
    pub level: Option<Level>,
    /// Category (设备设施, 作业许可, 安全管理, …).
    #[uniffi(default)]
    pub category: String,
    /// 依据条款.
    #[uniffi(default)]
    pub legal_basis: String,
    /// Where on site.
    #[uniffi(default)]
    pub place: String,
    /// Set when the finding is a three-violations record.
    #[uniffi(default)]
    pub violation: Option<Violation>,
}

/// Changes to a finding; a field left `null`/`None` stays as it is. Pass only what the
/// inspector changed: every field given is recorded as a new judgement.
#[derive(Debug, Clone, PartialEq, Default, uniffi::Record)]
pub struct FindingEdit {
    /// New description (merged as text edits with concurrent ones).
    #[uniffi(default)]
    pub description: Option<String>,
    /// New level.
    #[uniffi(default)]
    pub level: Option<Level>,
    /// New category.
    #[uniffi(default)]
    pub category: Option<String>,
    /// New legal basis.
    #[uniffi(default)]
    pub legal_basis: Option<String>,
    /// New place.
    #[uniffi(default)]
    pub place: Option<String>,
    /// New three-violations record.
    #[uniffi(default)]
    pub violation: Option<Violation>,
}

/// A rectification order (整改通知).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RectificationOrder {
    /// 整改措施.
    pub measures: String,
    /// 整改期限, the last day (`YYYY-MM-DD`), not before the visit.
    pub deadline: String,
    /// The enterprise's responsible person.
    pub responsible: String,
}

/// A case as listed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CaseSummary {
    /// Case id.
    pub id: String,
    /// Enterprise's credit code.
    pub enterprise: String,
    /// Enterprise's name.
    pub enterprise_name: String,
    /// Owning district.
    pub district: String,
    /// Kind of inspection.
    pub case_type: CaseType,
    /// Review state.
    pub state: ReviewState,
    /// When the visit started (RFC 3339, device time).
    pub opened_at: String,
    /// Findings not removed.
    pub findings: u32,
    /// Major findings among them.
    pub major_findings: u32,
    /// Whether any value in the case is in conflict.
    pub has_conflicts: bool,
}

/// A finding as listed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FindingSummary {
    /// Case id.
    pub case_id: String,
    /// Finding id.
    pub id: String,
    /// Enterprise's name.
    pub enterprise_name: String,
    /// First line of the description.
    pub title: String,
    /// Level.
    pub level: Level,
    /// Rectification state.
    pub rectification: RectificationState,
    /// Deadline (`YYYY-MM-DD`), when rectification was ordered.
    pub deadline: Option<String>,
    /// Three-violations kind, when it is one.
    pub violation: Option<ViolationKind>,
}

/// Filters for listing cases; every field given narrows the list. Newest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CaseQuery {
    /// Only this enterprise's cases (credit code).
    #[uniffi(default)]
    pub enterprise: Option<String>,
    /// Only cases owned by this district.
    #[uniffi(default)]
    pub district: Option<String>,
    /// Only cases in this review state.
    #[uniffi(default)]
    pub state: Option<ReviewState>,
    /// Only cases opened on or after this day (`YYYY-MM-DD`).
    #[uniffi(default)]
    pub from: Option<String>,
    /// Only cases opened on or before this day (`YYYY-MM-DD`).
    #[uniffi(default)]
    pub to: Option<String>,
    /// Page size.
    #[uniffi(default = 50)]
    pub limit: u32,
    /// Cases to skip.
    #[uniffi(default = 0)]
    pub offset: u32,
}

/// Filters for listing findings; every field given narrows the list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FindingQuery {
    /// Only this case's findings.
    #[uniffi(default)]
    pub case_id: Option<String>,
    /// Only findings of this level.
    #[uniffi(default)]
    pub level: Option<Level>,
    /// Only findings whose rectification is in this state.
    #[uniffi(default)]
    pub rectification: Option<RectificationState>,
    /// Page size.
    #[uniffi(default = 100)]
    pub limit: u32,
    /// Findings to skip.
    #[uniffi(default = 0)]
    pub offset: u32,
}

/// A case read in full.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Case {
    /// Case id.
    pub id: String,
    /// The enterprise as recorded when the case was opened.
    pub enterprise: Enterprise,
    /// Kind of inspection.
    pub case_type: CaseType,
    /// Owning district.
    pub district: String,
    /// Other districts that may see it.
    pub visible_to: Vec<String>,
    /// Team members.
    pub team: Vec<TeamMember>,
    /// When the visit started (RFC 3339, device time).
    pub opened_at: String,
    /// User id of who opened it.
    pub opened_by: String,
    /// Where.
    pub location: Option<GeoPoint>,
    /// Review state.
    pub state: ReviewState,
    /// Findings not removed, in the order recorded.
    pub findings: Vec<Finding>,
    /// Checklists attached, in the order attached.
    pub checklists: Vec<CaseChecklist>,
    /// Review events (comments, returns, approvals), in the order recorded.
    pub review_events: Vec<ReviewEvent>,
    /// The case this one amends (更正), if it is an amendment.
    pub amends: Option<String>,
}

/// One entry of a case's review trail.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReviewEvent {
    /// `comment`, `submit`, `return` or `approve`.
    pub kind: String,
    /// User id of who recorded it.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// The comment.
    pub text: String,
}

/// A finding read in full.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Finding {
    /// Finding id.
    pub id: String,
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
    /// When it was recorded (RFC 3339, device time).
    pub recorded_at: String,
    /// Rectification, once ordered.
    pub rectification: Option<Rectification>,
    /// Three-violations record.
    pub violation: Option<Violation>,
    /// The checklist item whose 不符合 answer created it.
    pub source: Option<ChecklistSource>,
    /// Photos of the hazard, in the order attached.
    pub photos: Vec<PhotoRef>,
    /// The hazard's follow-up (on-site measures, extensions, re-inspections, closing,
    /// supervision), in the order written.
    pub events: Vec<HazardEvent>,
}

/// One step of a hazard's follow-up, as a person records it (`Store.follow_up`). Dates
/// are `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
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
        deadline: String,
        /// Why.
        reason: String,
    },
    /// 复查, 合格 or 不合格.
    Reinspect {
        /// The result.
        result: ReinspectionResult,
        /// What the re-inspection found.
        note: String,
        /// After 不合格: the new deadline, unless escalated.
        deadline: Option<String>,
        /// After 不合格 without a new deadline: what the hazard is escalated to.
        escalation: String,
    },
    /// 销号 after a 合格 re-inspection.
    Close {
        /// A note (may be empty).
        note: String,
    },
    /// 挂牌督办 of a major hazard (supervisors).
    List {
        /// The supervising authority.
        authority: String,
        /// The listing document's number.
        number: String,
        /// The listing's deadline.
        deadline: String,
    },
    /// 治理方案 of a listed hazard.
    Plan {
        /// 治理措施.
        measures: String,
        /// 资金.
        funds: String,
        /// 责任人.
        responsible: String,
        /// 临时安全措施.
        interim: String,
    },
    /// 进展报告 on a listed hazard.
    Progress {
        /// What was reported.
        text: String,
    },
    /// 摘牌 of a closed, listed hazard (supervisors).
    Delist {
        /// A note (may be empty).
        note: String,
    },
}

/// A step of a hazard's follow-up as recorded.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HazardEvent {
    /// The step.
    pub step: HazardStep,
    /// User id of who recorded it.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// The deadline the step replaced, when it moved the deadline.
    pub previous_deadline: Option<String>,
    /// For a re-inspection: the rectification evidence it saw (photo hashes).
    pub evidence: Vec<String>,
}

/// A finding's rectification.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Rectification {
    /// 整改措施.
    pub measures: String,
    /// 整改期限 (`YYYY-MM-DD`).
    pub deadline: String,
    /// Responsible person.
    pub responsible: String,
    /// State in the closed loop.
    pub state: RectificationState,
    /// Photos proving the rectification (整改佐证).
    pub evidence: Vec<PhotoRef>,
    /// The re-inspection (复查), once recorded.
    pub reinspection: Option<Reinspection>,
    /// The hazard's level when rectification was ordered (none for an order recorded
    /// before the level was kept with it); a hazard ordered as major is closed by the
    /// supervisors even if lowered since.
    pub ordered_level: Option<Level>,
}

/// An inspector's re-inspection of a rectification (复查): the latest one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Reinspection {
    /// 合格 or 不合格.
    pub result: ReinspectionResult,
    /// What the re-inspection found.
    pub note: String,
    /// User id of the inspector.
    pub by: String,
    /// When (RFC 3339, device time).
    pub at: String,
}

/// Where a finding created from a checklist answer came from.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ChecklistSource {
    /// The checklist attached to the case.
    pub checklist_id: String,
    /// The item answered 不符合.
    pub item_id: String,
}

// ---------------------------------------------------------------------------------------
// Photos

/// A photo as a case records it: hashes and metadata, never the bytes.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PhotoRef {
    /// SHA-256 of the original.
    pub sha256: String,
    /// SHA-256 of the thumbnail.
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
    /// Capture time from EXIF (RFC 3339).
    pub captured_at: Option<String>,
    /// GPS position from EXIF.
    pub gps: Option<GeoPoint>,
    /// User id of who attached it.
    pub added_by: String,
    /// When it was attached (RFC 3339, device time).
    pub added_at: String,
}

/// What ingesting a photo learned about it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PhotoInfo {
    /// SHA-256 of the original bytes: the id to attach it with.
    pub sha256: String,
    /// SHA-256 of the thumbnail.
    pub thumbnail_sha256: String,
    /// `image/jpeg` or `image/png`.
    pub mime: String,
    /// Size of the original in bytes.
    pub size: u64,
    /// Width as displayed (EXIF orientation applied).
    pub width: u32,
    /// Height as displayed.
    pub height: u32,
    /// EXIF orientation (1 to 8).
    pub orientation: u8,
    /// Capture time from EXIF (RFC 3339).
    pub captured_at: Option<String>,
    /// GPS position from EXIF.
    pub gps: Option<GeoPoint>,
}

/// What a photo is attached to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PhotoTarget {
    /// A finding, as evidence of the hazard.
    Finding {
        /// The finding.
        finding_id: String,
    },
    /// A finding's rectification, as evidence that it was put right (整改佐证).
    Rectification {
        /// The finding.
        finding_id: String,
    },
    /// An answer to a checklist item.
    Answer {
        /// The checklist attached to the case.
        checklist_id: String,
        /// The item.
        item_id: String,
    },
}

/// A photo blob this device holds that the server has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingBlob {
    /// SHA-256.
    pub sha256: String,
    /// `original` or `thumbnail`.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct GarbageReport {
    /// Blobs removed.
    pub blobs: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// Limits every photo is checked against (the defaults suit phone cameras: 40 MB,
/// 16,384 px per edge, 100 megapixels, 512 MB of decoder memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct PhotoLimits {
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Largest width or height, in pixels.
    pub max_edge: u32,
    /// Largest number of pixels.
    pub max_pixels: u64,
    /// Most memory the decoder may allocate, in bytes.
    pub max_alloc: u64,
}

// ---------------------------------------------------------------------------------------
// Checklists

/// A checklist template the store can attach.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Template {
    /// Stable id.
    pub id: String,
    /// Chinese title.
    pub title: String,
    /// What it is for.
    pub kind: TemplateKind,
    /// The industry it belongs to, if one.
    pub industry: Option<Industry>,
    /// The special operation it checks, if one.
    pub operation: Option<Operation>,
    /// What it is for and what it is based on.
    pub description: String,
    /// Items in display order.
    pub items: Vec<TemplateItem>,
    /// The version (content hash) a case attaching it now records.
    pub version: String,
}

/// One question of a checklist.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TemplateItem {
    /// Stable id within the template.
    pub id: String,
    /// What the inspector checks, phrased so that 符合 means compliant.
    pub text: String,
    /// Category (for three-violation lists: the kind of violation).
    pub category: String,
    /// Posts (岗位) it applies to.
    pub posts: Vec<String>,
    /// Legal or standard basis (依据条款).
    pub basis: String,
    /// The hazard level a 不符合 answer suggests.
    pub level: Level,
}

/// A checklist attached to a case, with the questions of the version it was attached with.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CaseChecklist {
    /// This attachment's id (the `checklist_id` to answer with).
    pub id: String,
    /// The template's id.
    pub template_id: String,
    /// The template's version the case was answered against.
    pub version: String,
    /// The template's title.
    pub title: String,
    /// The template's kind.
    pub kind: TemplateKind,
    /// User id of who attached it.
    pub attached_by: String,
    /// When (RFC 3339, device time).
    pub attached_at: String,
    /// Every item in template order, with its answer once given.
    pub entries: Vec<ChecklistEntry>,
}

/// One question of an attached checklist and its answer.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChecklistEntry {
    /// The question as attached.
    pub item: TemplateItem,
    /// The answer, once given.
    pub answer: Option<Answer>,
}

/// An answer to a checklist item.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Answer {
    /// 符合, 不符合 or 不适用.
    pub result: AnswerResult,
    /// The inspector's note.
    pub note: String,
    /// User id of who answered.
    pub answered_by: String,
    /// When (RFC 3339, device time).
    pub answered_at: String,
    /// The post observed, for three-violation items.
    pub post: String,
    /// The person observed, for three-violation items.
    pub person: String,
    /// The finding a 不符合 answer created.
    pub finding_id: Option<String>,
    /// Photos taken for this answer.
    pub photos: Vec<PhotoRef>,
}

/// What an inspector enters to answer a checklist item.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AnswerInput {
    /// 符合, 不符合 or 不适用.
    pub result: AnswerResult,
    /// A note (may be empty).
    #[uniffi(default)]
    pub note: String,
    /// The post observed; for three-violation items one of the item's posts.
    #[uniffi(default)]
    pub post: Option<String>,
    /// The person observed.
    #[uniffi(default)]
    pub person: Option<String>,
}

/// How often a checklist item was answered, and found 不符合, for one post.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ItemStat {
    /// Template id.
    pub template_id: String,
    /// Item id.
    pub item_id: String,
    /// Item text.
    pub text: String,
    /// Item category.
    pub category: String,
    /// The post recorded with the answers (empty when none).
    pub post: String,
    /// Answers given.
    pub answered: u32,
    /// Answers 不符合.
    pub non_compliant: u32,
}

// ---------------------------------------------------------------------------------------
// Conflicts, history, sync state

/// A value in a case document, as shown to a person.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum FieldValue {
    /// Text.
    Text {
        /// The text.
        value: String,
    },
    /// Whole number.
    Int {
        /// The number.
        value: i64,
    },
    /// Decimal number.
    Float {
        /// The number.
        value: f64,
    },
    /// Yes/no.
    Bool {
        /// The value.
        value: bool,
    },
    /// Nothing.
    Null,
    /// A nested record (two devices created the same record concurrently); cannot be written.
    Object,
}

/// One value written concurrently with others.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ConflictValue {
    /// The value.
    pub value: FieldValue,
    /// The value as text, to show.
    pub display: String,
    /// User id of who wrote it.
    pub written_by: String,
    /// The device (actor id, hex) that wrote it.
    pub device: String,
    /// When, by that device's clock (seconds since the Unix epoch).
    pub device_time: i64,
}

/// A field that devices wrote concurrently with different values: a judgement for a person.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Conflict {
    /// Path from the document root, e.g. `["findings", "<id>", "level"]`; pass it back to
    /// `resolve_conflict`.
    pub path: Vec<String>,
    /// Every value (the first is what readers see until it is resolved).
    pub values: Vec<ConflictValue>,
}

/// How a person resolves a conflict.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum Resolution {
    /// Keep the value at this index of `Conflict.values`.
    Choose {
        /// Index into the values.
        index: u32,
    },
    /// Write a new value instead.
    Write {
        /// The new value.
        value: FieldValue,
    },
}

/// One change in a case's history.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// The change hash (hex).
    pub hash: String,
    /// User id of the author.
    pub author: String,
    /// The device (actor id, hex).
    pub device: String,
    /// The device's clock when the change was made (seconds since the Unix epoch).
    pub device_time: i64,
    /// What the change did (`open_case`, `add_finding`, …).
    pub action: String,
    /// The change (hex hash) this one enters again: the same device's earlier change,
    /// dropped when the server refused a change it built on.
    pub entered_again_for: Option<String>,
}

/// A change the server refused, kept on the device with the reason.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Refusal {
    /// The case.
    pub case_id: String,
    /// The refused change (hex hash).
    pub change_hash: String,
    /// The server's reason, to show the inspector.
    pub reason: String,
    /// When the refusal arrived (RFC 3339).
    pub refused_at: String,
    /// The change (hex hash) that holds this one again on the device: set for a change
    /// of this device entered again after a refusal dropped it (the last, when it was
    /// entered in parts: what it wrote into a teammate's records waited for them).
    pub reentered_as: Option<String>,
    /// What the change was, as the case's history shows a change; null if the bytes kept
    /// of it are damaged.
    pub change: Option<HistoryEntry>,
}

/// How much of a case the server has acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct UploadState {
    /// Changes in the case.
    pub changes: u32,
    /// Changes the server has acknowledged.
    pub acknowledged: u32,
}

// ---------------------------------------------------------------------------------------
// Conversions: text in the records ↔ typed values in the core. Incoming text is parsed by
// the core's own types, so a bad value is the core's validation error naming the field.

fn time_out(time: DateTime<FixedOffset>) -> String {
    time.to_rfc3339()
}

pub(crate) fn time_in(field: &'static str, text: &str) -> CoreResult<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text.trim()).map_err(|e| {
        core::Error::invalid(
            field,
            format!("{text:?} is not an RFC 3339 time such as 2026-11-20T09:30:00+08:00 ({e})"),
        )
    })
}

fn date_out(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

pub(crate) fn date_in(field: &'static str, text: &str) -> CoreResult<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|e| {
        core::Error::invalid(
            field,
            format!("{text:?} is not a day such as 2026-12-31 ({e})"),
        )
    })
}

pub(crate) fn case_id(text: &str) -> CoreResult<core::CaseId> {
    text.parse()
}

pub(crate) fn finding_id(text: &str) -> CoreResult<core::FindingId> {
    text.parse()
}

pub(crate) fn checklist_id(text: &str) -> CoreResult<core::ChecklistId> {
    text.parse()
}

pub(crate) fn credit_code(text: &str) -> CoreResult<core::CreditCode> {
    text.parse()
}

fn district(text: &str) -> CoreResult<core::DistrictCode> {
    text.parse()
}

fn districts(texts: &[String]) -> CoreResult<Vec<core::DistrictCode>> {
    texts.iter().map(|d| district(d)).collect()
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

impl TryFrom<Identity> for core::Identity {
    type Error = core::Error;
    fn try_from(value: Identity) -> CoreResult<Self> {
        if value.user_id.trim().is_empty() {
            return Err(core::Error::invalid("user_id", "the user id is empty"));
        }
        Ok(core::Identity {
            user_id: value.user_id,
            name: value.name,
            department: value.department,
            district: district(&value.district)?,
            role: value.role.parse()?,
        })
    }
}

impl From<&core::Identity> for Identity {
    fn from(value: &core::Identity) -> Self {
        Identity {
            user_id: value.user_id.clone(),
            name: value.name.clone(),
            department: value.department.clone(),
            district: value.district.to_string(),
            role: value.role.code().to_owned(),
        }
    }
}

impl TryFrom<Enterprise> for core::Enterprise {
    type Error = core::Error;
    fn try_from(value: Enterprise) -> CoreResult<Self> {
        Ok(core::Enterprise {
            credit_code: credit_code(&value.credit_code)?,
            name: value.name,
            district: district(&value.district)?,
            industry: value.industry.into(),
            risk_grade: value.risk_grade.into(),
        })
    }
}

impl From<core::Enterprise> for Enterprise {
    fn from(value: core::Enterprise) -> Self {
        Enterprise {
            credit_code: value.credit_code.to_string(),
            name: value.name,
            district: value.district.to_string(),
            industry: value.industry.into(),
            risk_grade: value.risk_grade.into(),
        }
    }
}

impl TryFrom<TeamMember> for core::TeamMember {
    type Error = core::Error;
    fn try_from(value: TeamMember) -> CoreResult<Self> {
        Ok(core::TeamMember {
            user_id: value.user_id,
            name: value.name,
            department: value.department,
            district: district(&value.district)?,
        })
    }
}

impl From<core::TeamMember> for TeamMember {
    fn from(value: core::TeamMember) -> Self {
        TeamMember {
            user_id: value.user_id,
            name: value.name,
            department: value.department,
            district: value.district.to_string(),
        }
    }
}

impl TryFrom<GeoPoint> for core::GeoPoint {
    type Error = core::Error;
    fn try_from(value: GeoPoint) -> CoreResult<Self> {
        core::GeoPoint::new(value.latitude, value.longitude)
    }
}

impl From<core::GeoPoint> for GeoPoint {
    fn from(value: core::GeoPoint) -> Self {
        GeoPoint {
            latitude: value.latitude,
            longitude: value.longitude,
        }
    }
}

impl TryFrom<NewCase> for core::NewCase {
    type Error = core::Error;
    fn try_from(value: NewCase) -> CoreResult<Self> {
        Ok(core::NewCase {
            enterprise: credit_code(&value.enterprise)?,
            case_type: value.case_type.into(),
            district: value.district.as_deref().map(district).transpose()?,
            visible_to: districts(&value.visible_to)?,
            team: value
                .team
                .into_iter()
                .map(TryInto::try_into)
                .collect::<CoreResult<_>>()?,
            opened_at: time_in("opened_at", &value.opened_at)?,
            location: value.location.map(TryInto::try_into).transpose()?,
            amends: value.amends.as_deref().map(case_id).transpose()?,
        })
    }
}

impl From<Violation> for core::Violation {
    fn from(value: Violation) -> Self {
        core::Violation {
            kind: value.kind.into(),
            post: value.post,
            person: value.person,
        }
    }
}

impl From<core::Violation> for Violation {
    fn from(value: core::Violation) -> Self {
        Violation {
            kind: value.kind.into(),
            post: value.post,
            person: value.person,
        }
    }
}

impl From<NewFinding> for core::NewFinding {
    fn from(value: NewFinding) -> Self {
        core::NewFinding {
            description: value.description,
            level: value.level.map(Into::into),
            category: value.category,
            legal_basis: value.legal_basis,
            place: value.place,
            violation: value.violation.map(Into::into),
        }
    }
}

impl From<FindingEdit> for core::FindingEdit {
    fn from(value: FindingEdit) -> Self {
        core::FindingEdit {
            description: value.description,
            level: value.level.map(Into::into),
            category: value.category,
            legal_basis: value.legal_basis,
            place: value.place,
            violation: value.violation.map(Into::into),
        }
    }
}

impl TryFrom<RectificationOrder> for core::RectificationOrder {
    type Error = core::Error;
    fn try_from(value: RectificationOrder) -> CoreResult<Self> {
        Ok(core::RectificationOrder {
            measures: value.measures,
            deadline: date_in("deadline", &value.deadline)?,
            responsible: value.responsible,
        })
    }
}

impl From<core::CaseSummary> for CaseSummary {
    fn from(value: core::CaseSummary) -> Self {
        CaseSummary {
            id: value.id.to_string(),
            enterprise: value.enterprise.to_string(),
            enterprise_name: value.enterprise_name,
            district: value.district.to_string(),
            case_type: value.case_type.into(),
            state: value.state.into(),
            opened_at: time_out(value.opened_at),
            findings: value.findings,
            major_findings: value.major_findings,
            has_conflicts: value.has_conflicts,
        }
    }
}

impl From<core::FindingSummary> for FindingSummary {
    fn from(value: core::FindingSummary) -> Self {
        FindingSummary {
            case_id: value.case_id.to_string(),
            id: value.id.to_string(),
            enterprise_name: value.enterprise_name,
            title: value.title,
            level: value.level.into(),
            rectification: value.rectification.into(),
            deadline: value.deadline.map(date_out),
            violation: value.violation.map(Into::into),
        }
    }
}

impl TryFrom<CaseQuery> for core::CaseQuery {
    type Error = core::Error;
    fn try_from(value: CaseQuery) -> CoreResult<Self> {
        Ok(core::CaseQuery {
            enterprise: value.enterprise.as_deref().map(credit_code).transpose()?,
            district: value.district.as_deref().map(district).transpose()?,
            state: value.state.map(Into::into),
            from: value.from.map(|d| date_in("from", &d)).transpose()?,
            to: value.to.map(|d| date_in("to", &d)).transpose()?,
            limit: value.limit,
            offset: value.offset,
        })
    }
}

impl TryFrom<FindingQuery> for core::FindingQuery {
    type Error = core::Error;
    fn try_from(value: FindingQuery) -> CoreResult<Self> {
        Ok(core::FindingQuery {
            case: value.case_id.as_deref().map(case_id).transpose()?,
            level: value.level.map(Into::into),
            rectification: value.rectification.map(Into::into),
            limit: value.limit,
            offset: value.offset,
        })
    }
}

impl From<core::Case> for Case {
    fn from(value: core::Case) -> Self {
        Case {
            id: value.id.to_string(),
            enterprise: value.enterprise.into(),
            case_type: value.case_type.into(),
            district: value.district.to_string(),
            visible_to: strings(&value.visible_to),
            team: value.team.into_iter().map(Into::into).collect(),
            opened_at: time_out(value.opened_at),
            opened_by: value.opened_by,
            location: value.location.map(Into::into),
            state: value.state.into(),
            findings: value.findings.into_iter().map(Into::into).collect(),
            checklists: value.checklists.into_iter().map(Into::into).collect(),
            review_events: value.review_events.into_iter().map(Into::into).collect(),
            amends: value.amends.map(|id| id.to_string()),
        }
    }
}

impl From<core::ReviewEvent> for ReviewEvent {
    fn from(value: core::ReviewEvent) -> Self {
        ReviewEvent {
            kind: value.kind,
            by: value.by,
            at: value.at,
            text: value.text,
        }
    }
}

impl From<core::Finding> for Finding {
    fn from(value: core::Finding) -> Self {
        Finding {
            id: value.id.to_string(),
            description: value.description,
            level: value.level.into(),
            category: value.category,
            legal_basis: value.legal_basis,
            place: value.place,
            recorded_by: value.recorded_by,
            recorded_at: time_out(value.recorded_at),
            rectification: value.rectification.map(Into::into),
            violation: value.violation.map(Into::into),
            source: value.source.map(|s| ChecklistSource {
                checklist_id: s.checklist.to_string(),
                item_id: s.item,
            }),
            photos: value.photos.into_iter().map(Into::into).collect(),
            events: value.events.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<core::HazardEvent> for HazardEvent {
    fn from(value: core::HazardEvent) -> Self {
        HazardEvent {
            step: value.step.into(),
            by: value.by,
            at: time_out(value.at),
            previous_deadline: value.previous_deadline.map(date_out),
            evidence: value.evidence,
        }
    }
}

impl From<core::HazardStep> for HazardStep {
    fn from(value: core::HazardStep) -> Self {
        use core::HazardStep as S;
        match value {
            S::Onsite { measure, note } => HazardStep::Onsite {
                measure: measure.into(),
                note,
            },
            S::Extend { deadline, reason } => HazardStep::Extend {
                deadline: date_out(deadline),
                reason,
            },
            S::Reinspect {
                result,
                note,
                deadline,
                escalation,
            } => HazardStep::Reinspect {
                result: result.into(),
                note,
                deadline: deadline.map(date_out),
                escalation,
            },
            S::Close { note } => HazardStep::Close { note },
            S::List {
                authority,
                number,
                deadline,
            } => HazardStep::List {
                authority,
                number,
                deadline: date_out(deadline),
            },
            S::Plan {
                measures,
                funds,
                responsible,
                interim,
            } => HazardStep::Plan {
                measures,
                funds,
                responsible,
                interim,
            },
            S::Progress { text } => HazardStep::Progress { text },
            S::Delist { note } => HazardStep::Delist { note },
        }
    }
}

impl TryFrom<HazardStep> for core::HazardStep {
    type Error = core::Error;
    fn try_from(value: HazardStep) -> CoreResult<Self> {
        use core::HazardStep as S;
        Ok(match value {
            HazardStep::Onsite { measure, note } => S::Onsite {
                measure: measure.into(),
                note,
            },
            HazardStep::Extend { deadline, reason } => S::Extend {
                deadline: date_in("deadline", &deadline)?,
                reason,
            },
            HazardStep::Reinspect {
                result,
                note,
                deadline,
                escalation,
            } => S::Reinspect {
                result: result.into(),
                note,
                deadline: deadline.map(|d| date_in("deadline", &d)).transpose()?,
                escalation,
            },
            HazardStep::Close { note } => S::Close { note },
            HazardStep::List {
                authority,
                number,
                deadline,
            } => S::List {
                authority,
                number,
                deadline: date_in("deadline", &deadline)?,
            },
            HazardStep::Plan {
                measures,
                funds,
                responsible,
                interim,
            } => S::Plan {
                measures,
                funds,
                responsible,
                interim,
            },
            HazardStep::Progress { text } => S::Progress { text },
            HazardStep::Delist { note } => S::Delist { note },
        })
    }
}

impl From<core::Rectification> for Rectification {
    fn from(value: core::Rectification) -> Self {
        Rectification {
            measures: value.measures,
            deadline: date_out(value.deadline),
            responsible: value.responsible,
            state: value.state.into(),
            evidence: value.evidence.into_iter().map(Into::into).collect(),
            reinspection: value.reinspection.map(|r| Reinspection {
                result: r.result.into(),
                note: r.note,
                by: r.by,
                at: time_out(r.at),
            }),
            ordered_level: value.ordered_level.map(Into::into),
        }
    }
}

impl From<core::PhotoRef> for PhotoRef {
    fn from(value: core::PhotoRef) -> Self {
        PhotoRef {
            sha256: value.sha256,
            thumbnail: value.thumbnail,
            caption: value.caption,
            mime: value.mime,
            size: value.size,
            width: value.width,
            height: value.height,
            captured_at: value.captured_at.map(time_out),
            gps: value.gps.map(Into::into),
            added_by: value.added_by,
            added_at: time_out(value.added_at),
        }
    }
}

impl From<core::PhotoInfo> for PhotoInfo {
    fn from(value: core::PhotoInfo) -> Self {
        PhotoInfo {
            sha256: value.sha256,
            thumbnail_sha256: value.thumbnail_sha256,
            mime: value.mime.to_owned(),
            size: value.size,
            width: value.width,
            height: value.height,
            orientation: value.orientation,
            captured_at: value.captured_at.map(time_out),
            gps: value.gps.map(Into::into),
        }
    }
}

impl TryFrom<PhotoTarget> for core::PhotoTarget {
    type Error = core::Error;
    fn try_from(value: PhotoTarget) -> CoreResult<Self> {
        Ok(match value {
            PhotoTarget::Finding { finding_id: id } => core::PhotoTarget::Finding(finding_id(&id)?),
            PhotoTarget::Rectification { finding_id: id } => {
                core::PhotoTarget::Rectification(finding_id(&id)?)
            }
            PhotoTarget::Answer {
                checklist_id: id,
                item_id,
            } => core::PhotoTarget::Answer {
                checklist: checklist_id(&id)?,
                item: item_id,
            },
        })
    }
}

impl From<core::PendingBlob> for PendingBlob {
    fn from(value: core::PendingBlob) -> Self {
        PendingBlob {
            sha256: value.sha256,
            kind: value.kind,
            size: value.size,
        }
    }
}

impl From<core::GarbageReport> for GarbageReport {
    fn from(value: core::GarbageReport) -> Self {
        GarbageReport {
            blobs: value.blobs,
            bytes: value.bytes,
        }
    }
}

impl From<PhotoLimits> for core::PhotoLimits {
    fn from(value: PhotoLimits) -> Self {
        core::PhotoLimits {
            max_bytes: value.max_bytes,
            max_edge: value.max_edge,
            max_pixels: value.max_pixels,
            max_alloc: value.max_alloc,
        }
    }
}

impl From<core::PhotoLimits> for PhotoLimits {
    fn from(value: core::PhotoLimits) -> Self {
        PhotoLimits {
            max_bytes: value.max_bytes,
            max_edge: value.max_edge,
            max_pixels: value.max_pixels,
            max_alloc: value.max_alloc,
        }
    }
}

impl From<core::Template> for Template {
    fn from(value: core::Template) -> Self {
        Template {
            id: value.id,
            title: value.title,
            kind: value.kind.into(),
            industry: value.industry.map(Into::into),
            operation: value.operation.map(Into::into),
            description: value.description,
            items: value.items.into_iter().map(Into::into).collect(),
            version: value.version,
        }
    }
}

impl From<core::TemplateItem> for TemplateItem {
    fn from(value: core::TemplateItem) -> Self {
        TemplateItem {
            id: value.id,
            text: value.text,
            category: value.category,
            posts: value.posts,
            basis: value.basis,
            level: value.level.into(),
        }
    }
}

impl From<core::CaseChecklist> for CaseChecklist {
    fn from(value: core::CaseChecklist) -> Self {
        CaseChecklist {
            id: value.id.to_string(),
            template_id: value.template_id,
            version: value.version,
            title: value.title,
            kind: value.kind.into(),
            attached_by: value.attached_by,
            attached_at: time_out(value.attached_at),
            entries: value
                .entries
                .into_iter()
                .map(|entry| ChecklistEntry {
                    item: entry.item.into(),
                    answer: entry.answer.map(Into::into),
                })
                .collect(),
        }
    }
}

impl From<core::Answer> for Answer {
    fn from(value: core::Answer) -> Self {
        Answer {
            result: value.result.into(),
            note: value.note,
            answered_by: value.answered_by,
            answered_at: time_out(value.answered_at),
            post: value.post,
            person: value.person,
            finding_id: value.finding.map(|f| f.to_string()),
            photos: value.photos.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<AnswerInput> for core::AnswerInput {
    fn from(value: AnswerInput) -> Self {
        core::AnswerInput {
            result: value.result.into(),
            note: value.note,
            post: value.post,
            person: value.person,
        }
    }
}

impl From<core::ItemStat> for ItemStat {
    fn from(value: core::ItemStat) -> Self {
        ItemStat {
            template_id: value.template_id,
            item_id: value.item_id,
            text: value.text,
            category: value.category,
            post: value.post,
            answered: value.answered,
            non_compliant: value.non_compliant,
        }
    }
}

impl From<FieldValue> for core::FieldValue {
    fn from(value: FieldValue) -> Self {
        match value {
            FieldValue::Text { value } => core::FieldValue::Text(value),
            FieldValue::Int { value } => core::FieldValue::Int(value),
            FieldValue::Float { value } => core::FieldValue::Float(value),
            FieldValue::Bool { value } => core::FieldValue::Bool(value),
            FieldValue::Null => core::FieldValue::Null,
            FieldValue::Object => core::FieldValue::Object,
        }
    }
}

impl From<core::FieldValue> for FieldValue {
    fn from(value: core::FieldValue) -> Self {
        match value {
            core::FieldValue::Text(value) => FieldValue::Text { value },
            core::FieldValue::Int(value) => FieldValue::Int { value },
            core::FieldValue::Float(value) => FieldValue::Float { value },
            core::FieldValue::Bool(value) => FieldValue::Bool { value },
            core::FieldValue::Null => FieldValue::Null,
            core::FieldValue::Object => FieldValue::Object,
        }
    }
}

impl From<core::Conflict> for Conflict {
    fn from(value: core::Conflict) -> Self {
        Conflict {
            path: value.path,
            values: value
                .values
                .into_iter()
                .map(|v| ConflictValue {
                    display: v.value.to_string(),
                    value: v.value.into(),
                    written_by: v.written_by,
                    device: v.device,
                    device_time: v.device_time,
                })
                .collect(),
        }
    }
}

impl From<Resolution> for core::Resolution {
    fn from(value: Resolution) -> Self {
        match value {
            Resolution::Choose { index } => {
                // u32 always fits in usize on the 32- and 64-bit targets apps run on.
                core::Resolution::Choose(usize::try_from(index).unwrap_or(usize::MAX))
            }
            Resolution::Write { value } => core::Resolution::Write(value.into()),
        }
    }
}

impl From<core::HistoryEntry> for HistoryEntry {
    fn from(value: core::HistoryEntry) -> Self {
        HistoryEntry {
            hash: value.hash,
            author: value.author,
            device: value.device,
            device_time: value.device_time,
            action: value.action,
            entered_again_for: value.entered_again_for,
        }
    }
}

impl From<core::Refusal> for Refusal {
    fn from(value: core::Refusal) -> Self {
        Refusal {
            case_id: value.case_id.to_string(),
            change_hash: value.change_hash,
            reason: value.reason,
            refused_at: time_out(value.refused_at),
            reentered_as: value.reentered_as,
            change: value.change.map(Into::into),
        }
    }
}

impl From<core::UploadState> for UploadState {
    fn from(value: core::UploadState) -> Self {
        UploadState {
            changes: value.changes,
            acknowledged: value.acknowledged,
        }
    }
}

/// Converts every item of a list from the core.
pub(crate) fn list<C, F: From<C>>(items: Vec<C>) -> Vec<F> {
    items.into_iter().map(Into::into).collect()
}

// ---------------------------------------------------------------------------------------
// Sync

/// A case whose changes the server refused, or holds back.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RefusedCase {
    /// The case.
    pub case_id: String,
    /// The server's reason, to show the inspector.
    pub reason: String,
}

/// What a finished sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncResult {
    /// The server synced with.
    pub server: String,
    /// When the sync finished (RFC 3339, device clock).
    pub finished_at: String,
    /// Case documents exchanged, each counted once however many rounds it took.
    pub documents: u64,
    /// Case documents the server now holds exactly as this device does.
    pub acknowledged: u64,
    /// Cases whose changes the server refused (see also `InspectorStore.refusals`).
    pub refused: Vec<RefusedCase>,
    /// Cases with changes the server holds back, not refused: changes another inspector's
    /// phone signed that has not signed in to the server yet (relayed after an on-site
    /// merge), and those built on them. They stay on this device and go again on the next
    /// sync.
    pub waiting: Vec<RefusedCase>,
    /// Cases the server does not have or this inspector may not see.
    pub unavailable: Vec<String>,
    /// Cases this device holds damaged (they no longer load), with why: left out of the
    /// sync, which went on with the others. Their stored bytes are kept as they are.
    pub damaged: Vec<RefusedCase>,
    /// The cases exchanged (sent, received or both).
    pub cases: Vec<String>,
    /// WebSocket frames sent.
    pub frames_sent: u64,
    /// WebSocket frames received.
    pub frames_received: u64,
    /// HTTP requests made.
    pub http_requests: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Photo blobs the server now holds whole.
    pub blobs_uploaded: u64,
    /// Photo bytes sent.
    pub blob_bytes_sent: u64,
    /// Why the server put off the photo uploads left (what one account may store in a
    /// day): they stay on the device and go at a later sync.
    pub uploads_deferred: Option<String>,
    /// Thumbnails downloaded.
    pub thumbnails_downloaded: u64,
    /// Blocks of document numbers the server newly allocated this device.
    pub number_blocks: u64,
}

fn cases_with_reasons(cases: Vec<(core::CaseId, String)>) -> Vec<RefusedCase> {
    cases
        .into_iter()
        .map(|(case, reason)| RefusedCase {
            case_id: case.to_string(),
            reason,
        })
        .collect()
}

impl SyncResult {
    pub(crate) fn new(server: &str, report: core::sync::SyncReport) -> Self {
        let count = |n: usize| n as u64;
        SyncResult {
            server: server.trim_end_matches('/').to_owned(),
            finished_at: chrono::Local::now().fixed_offset().to_rfc3339(),
            documents: count(report.documents),
            acknowledged: count(report.acknowledged),
            refused: cases_with_reasons(report.refused),
            waiting: cases_with_reasons(report.waiting),
            unavailable: report.unavailable.iter().map(ToString::to_string).collect(),
            damaged: cases_with_reasons(report.damaged),
            cases: report.cases.iter().map(ToString::to_string).collect(),
            frames_sent: count(report.frames_sent),
            frames_received: count(report.frames_received),
            http_requests: count(report.http_requests),
            bytes_sent: report.bytes_sent,
            bytes_received: report.bytes_received,
            blobs_uploaded: count(report.blobs_uploaded),
            blob_bytes_sent: report.blob_bytes_sent,
            uploads_deferred: report.uploads_deferred,
            thumbnails_downloaded: count(report.thumbnails_downloaded),
            number_blocks: count(report.number_blocks),
        }
    }
}
