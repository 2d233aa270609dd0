//! The rule book: every rule about who may read, comment on, decide and change what in a
//! case, written once. The device checks a write with it before recording it (so an app
//! never records what the server will refuse); the server's sync path, its pages and its
//! API call the same functions. Rules are functions over typed values: the author (user,
//! role, district, department) and the case before and after a change.
//!
//! - How a change is written, before Automerge applies it (`apply`, in `written`): every
//!   operation names exactly what it replaces or follows.
//! - Reading, commenting and recording: the owning district and the districts the case is
//!   shared with (`visible_to`), and admins. Deciding (return, approve, reopen, close a
//!   major hazard, share, remove a finding ordered to be rectified): the owning district's
//!   supervisors, and admins.
//! - The review state machine, the rectification closed loop and its evidence (each step of
//!   a hazard's follow-up judged where the loop stands, `follow_up`), who may close (销号),
//!   list and delist which hazard, and the approved-case lock (the visit's record, not the
//!   follow-up).
//! - The structure: fields fixed after creation, sharing only by those who decide, team
//!   entries only for oneself, every attribution field naming the change's author, and
//!   the schema's shape.

mod follow_up;
mod judging;
mod ops;
mod shape;
mod writs;
pub(crate) mod written;

pub use follow_up::MAX_STEPS;
pub use judging::{
    Authored, Judged, KeyHolder, RefusedChanges, Room, TRIALS, Verifier, author_of, held_back,
    judge_changes, not_a_case, within_limits,
};
use ops::OpAt;
pub use ops::Ops;
pub use shape::MAX_VALUE_BYTES;
pub use writs::{MAX_SIGNATURES, MAX_WRITS};
pub use written::{apply, check};

use automerge::ObjId;
use foldhash::{HashMap, HashMapExt, HashSet};

use crate::codes::{
    CaseId, DistrictCode, FindingId, Level, RectificationState, ReviewAction, ReviewState, Role,
};
use crate::error::{Error, Result};
use crate::model::{Case, Finding, Identity};
use crate::paths::{Leaf, Seg};
use crate::signing::{KeyId, PublicKey};

coded_enum!(
    /// Which rule refused a change (carried with every refusal, on the wire and in API
    /// errors, so that apps and tests can tell refusals apart).
    Rule, "rule" {
        /// The case is outside the author's jurisdiction.
        Jurisdiction = "jurisdiction" / "辖区",
        /// Only the owning district's supervisors (or an admin) decide.
        Decide = "decide" / "审核权限",
        /// The review state moves only by review actions.
        ReviewState = "review_state" / "审核状态",
        /// The review trail is only added to, each event in its author's name.
        ReviewTrail = "review_trail" / "审核记录",
        /// An approved case is locked.
        ApprovedLock = "approved_lock" / "审核锁定",
        /// Rectifications move only along the closed loop.
        RectificationLoop = "rectification_loop" / "整改闭环",
        /// Re-inspection and closing need evidence, and evidence (and removals) stay.
        Evidence = "evidence" / "佐证",
        /// Who may close (销号) which level of hazard.
        Close = "close" / "销号权限",
        /// Fields fixed when the case was opened.
        Fixed = "fixed" / "不可更改字段",
        /// Sharing a case with other districts.
        Sharing = "sharing" / "共享辖区",
        /// The inspection team.
        Team = "team" / "检查组",
        /// Who a record says did something.
        Attribution = "attribution" / "记录人",
        /// The shape of the case document.
        Shape = "shape" / "记录结构",
        /// Whose change it is: its signing device was revoked, or its account disabled.
        Signature = "signature" / "签名",
        /// The connection carrying a change cannot show it is its author's: it is unsigned
        /// and not from the sender's own device, or its signature does not verify. Not
        /// final: the author's own device may still deliver it.
        Relay = "relay" / "转交核验",
        /// A change built on one that was refused.
        Dependency = "dependency" / "依赖",
        /// Enforcement documents (执法文书): sealed content never edited, two inspectors
        /// and the enterprise sign before issuing, voided with a reason.
        Writ = "writ" / "执法文书",
        /// Not refused, held back: a change signed by a device that has not signed in to
        /// the server yet (or built on one), or one the server could not check just now;
        /// the device that carries it keeps it and sends it again at its next sync.
        HeldBack = "held_back" / "暂缓接受",
    }
);

impl Rule {
    /// Whether the rule refuses a change for who made it rather than for what it writes:
    /// every later change of the author's to the case is refused for the same reason.
    pub fn refuses_the_author(self) -> bool {
        matches!(self, Rule::Jurisdiction | Rule::Signature)
    }

    /// Whether a refusal by the rule stands whoever carries the change again, and
    /// whenever: the server keeps it, and phones refuse the change again when a teammate
    /// hands it over. Not final: what is only held back, a relay the carrier could not
    /// vouch for (the author's own device may still deliver it), and a change refused only
    /// for building on a refused one (its root's refusal refuses it again; a root refused
    /// only for its carrier must not take it along for good).
    pub fn is_final(self) -> bool {
        !matches!(self, Rule::HeldBack | Rule::Relay | Rule::Dependency)
    }
}

/// Why the rule book refused something: the rule, and a reason to show a person
/// (Chinese first, English in brackets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// The rule that refused.
    pub rule: Rule,
    /// What to show.
    pub reason: String,
}

impl Refusal {
    /// A refusal by `rule`.
    pub fn new(rule: Rule, reason: impl Into<String>) -> Refusal {
        Refusal {
            rule,
            reason: reason.into(),
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Error {
        Error::NotAllowed(refusal.reason)
    }
}

/// Who makes a change: an account's user id, role, district and department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// The user id (username) records name.
    pub user_id: String,
    /// The account's role.
    pub role: Role,
    /// The account's district.
    pub district: DistrictCode,
    /// The account's department.
    pub department: String,
    /// The key that signed the change judged, when its signature verified (a seal's
    /// number must come from a block allocated to that key).
    pub key: Option<KeyId>,
}

/// What the judge knows besides the change itself: the server keys that allocate
/// document numbers (`numbering`): the server's own, or on a phone the keys of the
/// servers it signed in to; and, on the server, what it has on record across cases (the
/// enforcement certificates (执法证) an inspector's signature is checked against, and the
/// numbers of documents in other cases). A phone holds neither and leaves those checks to
/// the server.
#[derive(Clone, Default)]
pub struct Trust<'a> {
    /// The server keys.
    pub servers: Vec<PublicKey>,
    /// What is on record, where the judge holds it.
    pub records: Option<&'a dyn Records>,
}

/// An inspector's enforcement certificate (执法证) as the server records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforcementCertificate {
    /// Its number (执法证号).
    pub number: String,
    /// The last day it is valid.
    pub valid_until: chrono::NaiveDate,
}

/// What the server has on record beyond the case judged. Either answer may be a refusal
/// (held back) when it cannot be read just now.
pub trait Records: Send + Sync {
    /// The certificate on record for the account `user` (user id), `None` when it has
    /// none.
    fn certificate(&self, user: &str) -> Result<Option<EnforcementCertificate>, Refusal>;
    /// Whether a document of another case than `case` carries `number`.
    fn number_elsewhere(&self, number: &str, case: CaseId) -> Result<bool, Refusal>;
}

impl From<&Identity> for Author {
    fn from(identity: &Identity) -> Author {
        Author {
            user_id: identity.user_id.clone(),
            role: identity.role,
            district: identity.district.clone(),
            department: identity.department.clone(),
            key: None,
        }
    }
}

/// Whether `author` may read `case` (and so comment on it and record in it): its owning
/// district, the districts it is shared with, and admins.
pub fn may_read(author: &Author, case: &Case) -> bool {
    may_read_in(author, &case.district, &case.visible_to)
}

/// Whether `author` may read a case owned by `owner` and shared with `shared`.
pub fn may_read_in(author: &Author, owner: &DistrictCode, shared: &[DistrictCode]) -> bool {
    author.role == Role::Admin || *owner == author.district || shared.contains(&author.district)
}

/// Whether `author` decides the cases owned by district `owner` (returns, approves,
/// reopens, closes major hazards, shares): its supervisors, and
/// admins. Districts a case is shared with read and comment.
pub fn decides(author: &Author, owner: &DistrictCode) -> bool {
    if crate::injected::injected(crate::injected::Bug::SharedDistrictDecides) {
        return matches!(author.role, Role::Admin | Role::Supervisor);
    }
    author.role == Role::Admin || (author.role == Role::Supervisor && *owner == author.district)
}

/// Whether `author` may take supervisors' actions anywhere (the rectification board and
/// the bulletins are theirs): supervisors and admins.
pub fn supervises(author: &Author) -> bool {
    role_supervises(author.role)
}

/// Whether accounts of `role` take supervisors' actions (`supervises`).
pub fn role_supervises(role: Role) -> bool {
    matches!(role, Role::Supervisor | Role::Admin)
}

/// The state a review action leads to from `current`, or why it cannot be taken there.
pub fn review_step(action: ReviewAction, current: ReviewState) -> Result<ReviewState, Refusal> {
    use ReviewState::*;
    let next = match (action, current) {
        (ReviewAction::Comment, state) => Some(state),
        (ReviewAction::Submit, Draft | Returned) => Some(Submitted),
        (ReviewAction::Return, Draft | Submitted) => Some(Returned),
        (ReviewAction::Approve, Draft | Submitted | Returned) => Some(Approved),
        (ReviewAction::Reopen, Approved) => Some(Returned),
        _ => None,
    };
    next.ok_or_else(|| {
        Refusal::new(
            Rule::ReviewState,
            format!(
                "{}状态的案件不能{} (a case that is {} cannot be {})",
                current.label(),
                action.label(),
                current.code(),
                action.code()
            ),
        )
    })
}

/// Whether the action decides the case (return, approve, reopen) rather than hands it in
/// or comments on it.
pub fn is_decision(action: ReviewAction) -> bool {
    matches!(
        action,
        ReviewAction::Return | ReviewAction::Approve | ReviewAction::Reopen
    )
}

/// Whether `author` may take `action` on `case`, and the state it leads to.
pub fn may_review(
    author: &Author,
    case: &Case,
    action: ReviewAction,
) -> Result<ReviewState, Refusal> {
    if !may_read(author, case) {
        return Err(jurisdiction());
    }
    if is_decision(action) && !decides(author, &case.district) {
        return Err(only_deciders(&case.district));
    }
    review_step(action, case.state)
}

/// Whether the closed loop allows a move from `from` to `to` that needs no step of the
/// follow-up: the enterprise at work (ordered or overdue → in progress) and overdue
/// (ordered or in progress → overdue). Re-inspecting (→ re-inspected, or back to in
/// progress when it fails), extending and closing are steps (`HazardStep`), judged with
/// the step recorded in the same change; ordering (none → ordered) is its own action.
pub fn rectification_step(from: RectificationState, to: RectificationState) -> bool {
    use RectificationState::*;
    matches!(
        (from, to),
        (Ordered, InProgress | Overdue) | (InProgress, Overdue) | (Overdue, InProgress)
    )
}

/// Whether `author` may close (销号) `finding` of `case` (re-inspected 合格): a major
/// hazard (重大隐患), or one ordered to be rectified as major and lowered since, only by
/// those who decide the case; a general one also by the inspector who re-inspected it.
pub fn may_close(author: &Author, case: &Case, finding: &Finding) -> Result<(), Refusal> {
    if decides(author, &case.district) {
        return Ok(());
    }
    let reinspector = finding
        .rectification
        .as_ref()
        .and_then(|r| r.reinspection.as_ref())
        .map(|r| r.by.as_str());
    let ordered_as_major = finding
        .rectification
        .as_ref()
        .is_some_and(|r| r.ordered_level == Some(Level::Major));
    let level = if ordered_as_major {
        Level::Major
    } else {
        finding.level
    };
    match level {
        Level::Major => Err(Refusal::new(
            Rule::Close,
            format!(
                "重大隐患“{}”的销号由辖区 {} 的监管负责人办理 (a major hazard is closed by the owning district's supervisors)",
                title(finding),
                case.district
            ),
        )),
        Level::General if reinspector == Some(author.user_id.as_str()) => Ok(()),
        Level::General => Err(Refusal::new(
            Rule::Close,
            format!(
                "一般隐患“{}”由复查人或监管负责人销号 (a general hazard is closed by whoever re-inspected it, or a supervisor)",
                title(finding)
            ),
        )),
    }
}

/// The bytes of `changes`, each as encoded alone and uncompressed: what
/// `intake::Limits::case_bytes` bounds, the same for every holder of the same changes
/// (whereas a saved document's size depends on how it was compressed).
pub(crate) fn bytes_of(changes: &[automerge::Change]) -> u64 {
    changes.iter().map(|c| c.raw_bytes().len() as u64).sum()
}

/// A case as the rule book judges it (see `CaseState::of` and `CaseState::after`, which
/// read it from a document).
#[derive(Debug, Clone)]
pub struct CaseState {
    case: Case,
    /// The bytes of every change the case holds, once the judge has counted them.
    history: Option<u64>,
}

impl CaseState {
    /// The case as read.
    pub(crate) fn new(case: Case) -> CaseState {
        CaseState {
            case,
            history: None,
        }
    }

    /// This case (read after `changes` changed `before` into it) holding the bytes of
    /// `changes` more than `before`, if `before`'s bytes were counted (see
    /// `intake::Limits::case_bytes`).
    pub fn grown_by(self, before: &CaseState, changes: &[automerge::Change]) -> CaseState {
        CaseState {
            history: before.history.map(|bytes| bytes + bytes_of(changes)),
            ..self
        }
    }

    /// The case.
    pub fn case(&self) -> &Case {
        &self.case
    }
}

/// Root keys written when a case is opened and never after.
const FIXED: &[&str] = &[
    "schema",
    "kind",
    "case_id",
    "district",
    "opened_by",
    "opened_at",
    "enterprise",
    "type",
    "amends",
    "location",
];

/// Judges the operations `ops` of a change by `author` that turn `before` (`None` for a
/// case new to the judge) into `after`.
pub fn judge(
    author: &Author,
    before: Option<&CaseState>,
    after: &CaseState,
    ops: &Ops,
    trust: &Trust<'_>,
) -> Result<(), Refusal> {
    for op in ops.iter() {
        if let (Some(value), false) = (&op.value, op.superseded) {
            shape::check(&op.path, value)?;
        }
    }
    if before.is_some_and(|b| !may_read(author, &b.case)) {
        return Err(jurisdiction());
    }
    if let Some(before) = before {
        structure(author, before, ops)?;
    }
    if !may_read(author, &after.case) {
        return Err(jurisdiction());
    }
    let actions = trail(author, before.is_some(), after, ops)?;
    if let Some(before) = before {
        team(author, before, ops)?;
        approved_lock(before, ops, &actions)?;
        evidence_stays(author, before, ops)?;
        checklists_stay(ops)?;
        photo_records_stay(ops)?;
    }
    attribution(author, ops)?;
    records_made_by_their_devices(ops)?;
    review_state(before, after, &actions)?;
    rectifications(author, before, after, ops)?;
    writs::judge(author, before, after, ops, trust)
}

/// Whether a change's recorded author (its note's `by`, empty for clients that record
/// none) is `author`.
pub fn note_names_author(note_by: &str, author: &Author) -> Result<(), Refusal> {
    if note_by.is_empty() || note_by == author.user_id {
        Ok(())
    } else {
        Err(Refusal::new(
            Rule::Attribution,
            format!(
                "修改记录的作者“{note_by}”与登录账号不符，未被接受 (a change must be recorded in the sender's own name)"
            ),
        ))
    }
}

/// The refusal for a case outside the author's jurisdiction.
pub fn jurisdiction() -> Refusal {
    Refusal::new(
        Rule::Jurisdiction,
        "该案件不在您的辖区内，修改未被接受 (the case is outside your jurisdiction)",
    )
}

fn only_deciders(owner: &DistrictCode) -> Refusal {
    Refusal::new(
        Rule::Decide,
        format!(
            "该案件属于辖区 {owner}，由其监管负责人退回、审核通过或重新打开；共享辖区可以查看和批注 (only the owning district's supervisors decide)"
        ),
    )
}

fn title(finding: &Finding) -> &str {
    finding.description.lines().next().unwrap_or_default()
}

/// The entries of `new` that `old` does not have, in `new`'s order, each of `old` matched
/// once: what a change added to a list that only grows, wherever Automerge placed it
/// (concurrent insertions are ordered by their ids, so the new ones need not be last).
fn added<'a, T: PartialEq>(old: &[T], new: &'a [T]) -> Vec<&'a T> {
    // What a change appends at the end (nearly always): a pass over the list, where the
    // search below costs its square, and a list of many thousand steps would make every
    // later change to its finding cost seconds.
    if new.starts_with(old) {
        return new[old.len()..].iter().collect();
    }
    let mut old: Vec<&T> = old.iter().collect();
    new.iter()
        .filter(|entry| match old.iter().position(|o| o == entry) {
            Some(i) => {
                old.swap_remove(i);
                false
            }
            None => true,
        })
        .collect()
}

fn root(op: &OpAt) -> Option<&str> {
    op.path.first().and_then(Seg::key)
}

/// Who recorded a finding and when, and who attached a checklist and when: written with
/// the record and never after (an author field may only name the change's author, so
/// rewriting it would let anyone who records in the case take a record as theirs).
fn written_once(op: &OpAt) -> bool {
    let keys: Vec<Option<&str>> = op.path.iter().map(Seg::key).collect();
    matches!(
        keys.as_slice(),
        [Some("findings"), _, Some("recorded_by" | "recorded_at")]
            | [Some("checklists"), _, Some("attached_by" | "attached_at")]
    )
}

/// After creation, the fields written at creation stay as they are, the case's
/// containers are never replaced, and only those who decide share it.
fn structure(author: &Author, before: &CaseState, ops: &Ops) -> Result<(), Refusal> {
    for op in ops.iter() {
        if op.overwrites && written_once(op) {
            return Err(Refusal::new(
                Rule::Attribution,
                "记录人和记录时间写入后不能修改 (who recorded a record, and when, stay as written)",
            ));
        }
        let Some(key) = root(op) else { continue };
        // The documents' map is the one container made after opening (an old case's,
        // with its first document); `writs` judges it.
        let documents = key == "writs" && !op.overwrites;
        if FIXED.contains(&key) || (op.path.len() == 1 && !documents) {
            return Err(Refusal::new(
                Rule::Fixed,
                format!("“{key}”在开案后不能修改 ({key} is fixed once the case is opened)"),
            ));
        }
        if key == "visible_to" && !decides(author, &before.case.district) {
            return Err(Refusal::new(
                Rule::Sharing,
                format!(
                    "只有辖区 {} 的监管负责人或管理员可以共享案件 (only the owning district's supervisors share a case)",
                    before.case.district
                ),
            ));
        }
    }
    Ok(())
}

/// Team entries: only oneself is added, with one's own district; existing entries stay.
fn team(author: &Author, before: &CaseState, ops: &Ops) -> Result<(), Refusal> {
    let refuse = |why: &str| Refusal::new(Rule::Team, why.to_owned());
    for op in ops.iter().filter(|op| root(op) == Some("team")) {
        let member = op.path.get(1).and_then(Seg::key);
        let existing = before
            .case
            .team
            .iter()
            .any(|m| Some(m.user_id.as_str()) == member);
        if member != Some(author.user_id.as_str()) || existing {
            return Err(refuse(
                "只能把自己加入检查组，已有的成员记录不能修改 (only oneself can be added to the team; entries stay as they are)",
            ));
        }
        if op.path.get(2).and_then(Seg::key) == Some("district")
            && op.value.as_ref().and_then(Leaf::as_str) != Some(author.district.as_str())
        {
            return Err(refuse(
                "检查组成员的辖区必须是本人账号的辖区 (a team entry carries the member's own district)",
            ));
        }
    }
    Ok(())
}

/// An approved case is locked: its record of the visit stays as approved. What goes on
/// after the visit stays possible: the hazards' follow-up (整改, 延期, 复查, 销号, 挂牌督办:
/// their steps, rectification state, deadline and evidence, judged step by step in
/// `follow_up`) and its documents (judged in `writs`), a person joining the team to take
/// one, comments and reopening.
fn approved_lock(before: &CaseState, ops: &Ops, actions: &[ReviewAction]) -> Result<(), Refusal> {
    let unlocking = |a: &ReviewAction| matches!(a, ReviewAction::Comment | ReviewAction::Reopen);
    let after_the_visit = |op: &OpAt| {
        let keys: Vec<Option<&str>> = op.path.iter().map(Seg::key).collect();
        follow_up::in_follow_up(op)
            || matches!(
                keys.as_slice(),
                [Some("review"), ..]
                    | [Some("team"), ..]
                    | [Some("writs"), ..]
                    | [
                        Some("findings"),
                        _,
                        Some("rectification"),
                        Some("state" | "deadline")
                    ]
                    | [
                        Some("findings"),
                        _,
                        Some("rectification"),
                        Some("evidence"),
                        ..
                    ]
            )
    };
    if before.case.state != ReviewState::Approved
        || (ops.iter().all(after_the_visit) && actions.iter().all(unlocking))
    {
        return Ok(());
    }
    Err(Refusal::new(
        Rule::ApprovedLock,
        "该案件已审核通过并锁定，检查记录不能再修改（隐患的整改、复查、销号和督办仍可办理）；如需更正，请新建关联的更正案件，或联系监管负责人重新打开 (the case is approved and locked; open an amending case)",
    ))
}

/// Findings are evidence: a finding is never deleted or replaced, and a removal stays
/// recorded, with who removed it and when. A finding ordered to be rectified is removed
/// only by those who decide the case: removing it would end its closed loop unclosed.
fn evidence_stays(author: &Author, before: &CaseState, ops: &Ops) -> Result<(), Refusal> {
    // The findings ordered to be rectified, gathered once when a removal needs them
    // (looking each up in the case's list cost operations × findings).
    let mut ordered_ids: Option<HashSet<FindingId>> = None;
    for op in ops.iter().filter(|op| root(op) == Some("findings")) {
        let removal = op.path.get(2).and_then(Seg::key) == Some("removed");
        if op.overwrites && (op.path.len() == 2 || removal) {
            return Err(Refusal::new(
                Rule::Evidence,
                "隐患记录及其删除记录不能撤销或修改 (a finding, and its removal, stay recorded)",
            ));
        }
        if !removal || decides(author, &before.case.district) {
            continue;
        }
        let ordered_ids = ordered_ids.get_or_insert_with(|| {
            before
                .case
                .findings
                .iter()
                .filter(|f| f.rectification.is_some())
                .map(|f| f.id)
                .collect()
        });
        let ordered = op
            .path
            .get(1)
            .and_then(Seg::key)
            .and_then(|id| id.parse::<FindingId>().ok())
            .is_some_and(|id| ordered_ids.contains(&id));
        if ordered {
            return Err(Refusal::new(
                Rule::Close,
                format!(
                    "已下达整改的隐患只能由辖区 {} 的监管负责人删除 (a finding ordered to be rectified is removed only by the owning district's supervisors)",
                    before.case.district
                ),
            ));
        }
    }
    Ok(())
}

/// Checklists are evidence too: an attached checklist is never deleted or replaced, nor
/// is anything written with it (its template, version, title and kind; its `items` and
/// `answers` maps); its questions stay as attached (`items`, written whole when it is
/// attached); and each item's answer record and photo list, made when it is attached, stay
/// the ones answers are written into. Answering again writes the answer's own fields.
fn checklists_stay(ops: &Ops) -> Result<(), Refusal> {
    for op in ops.iter().filter(|op| root(op) == Some("checklists")) {
        let keys: Vec<Option<&str>> = op.path.iter().map(Seg::key).collect();
        let replaced = op.overwrites
            && matches!(
                keys.as_slice(),
                [_, _]
                    | [_, _, _]
                    | [_, _, Some("answers"), _]
                    | [_, _, Some("answers"), _, Some("photos")]
            );
        let question = matches!(keys.as_slice(), [_, _, Some("items"), ..]) && !op.in_new_object;
        if replaced || question {
            return Err(Refusal::new(
                Rule::Evidence,
                "已附的检查表及其检查项、答题记录不能删除或替换 (an attached checklist, its questions and its answer records stay as attached)",
            ));
        }
    }
    Ok(())
}

/// A photo record is written whole when its photo is attached, and stays as written: what
/// it says of the photo (its hashes, when and where it was taken, who attached it and when)
/// is evidence, on a hazard, a rectification or a checklist answer alike. A photo is
/// detached whole where that is allowed, never rewritten field by field.
fn photo_records_stay(ops: &Ops) -> Result<(), Refusal> {
    for op in ops.iter().filter(|op| !op.in_new_object) {
        let keys: Vec<Option<&str>> = op.path.iter().map(Seg::key).collect();
        if matches!(
            keys.as_slice(),
            [Some("findings"), _, Some("photos"), None, Some(_)]
                | [
                    Some("findings"),
                    _,
                    Some("rectification"),
                    Some("evidence"),
                    None,
                    Some(_)
                ]
                | [
                    Some("checklists"),
                    _,
                    Some("answers"),
                    _,
                    Some("photos"),
                    None,
                    Some(_)
                ]
        ) {
            return Err(Refusal::new(
                Rule::Evidence,
                "已附照片的记录（拍摄时间、位置、添加人等）不能修改 (a photo record stays as attached)",
            ));
        }
    }
    Ok(())
}

/// Every attribution field a change writes names its author.
fn attribution(author: &Author, ops: &Ops) -> Result<(), Refusal> {
    for op in ops.iter() {
        let (Some(value), false) = (&op.value, op.superseded) else {
            continue;
        };
        if shape::is_attribution(&op.path) && value.as_str() != Some(author.user_id.as_str()) {
            let key = op.path.last().and_then(Seg::key).unwrap_or_default();
            return Err(Refusal::new(
                Rule::Attribution,
                format!(
                    "记录人“{}”必须是您本人（{}）({key} must name the change's author)",
                    value.as_str().unwrap_or_default(),
                    author.user_id
                ),
            ));
        }
    }
    Ok(())
}

/// A record under an id bound to the device that made it (`codes::bound_id`: a case, a
/// finding, a checklist, a document) is made by that device alone: a teammate given the id
/// on site, in a peer session, cannot make a record of their own under it first, which
/// would have the honest one refused as replacing it when it reaches the server.
fn records_made_by_their_devices(ops: &Ops) -> Result<(), Refusal> {
    for op in ops.iter() {
        let automerge::ObjId::Id(_, maker, _) = &op.id else {
            continue;
        };
        let id = match (op.path.as_slice(), &op.value) {
            ([Seg::Key(key)], Some(value)) if key == "case_id" => value.as_str(),
            ([Seg::Key(root), Seg::Key(id)], Some(_))
                if ["findings", "checklists", "writs"].contains(&root.as_str()) =>
            {
                Some(id.as_str())
            }
            _ => None,
        };
        let Some(id) = id else {
            continue;
        };
        // The shape admits only ids written as the apps write them; an operation it did not
        // read (one a later operation of its change replaced) is held to that too.
        let Ok(id) = id.parse::<CaseId>().map(|id| id.uuid()) else {
            return Err(Refusal::new(
                Rule::Shape,
                format!("“{id}”不是记录编号 (not a record id)"),
            ));
        };
        if !crate::codes::made_by(id, maker.to_bytes()) {
            return Err(Refusal::new(
                Rule::Attribution,
                format!(
                    "编号 {id} 属于另一台设备建立的记录，不能以此编号新建 (the id is bound to the device that made its record)"
                ),
            ));
        }
    }
    Ok(())
}

/// The review trail only grows: a change appends new events (maps it makes at the end of
/// the list, and their fields) and touches no existing one; each new event is in its
/// author's name (see `attribution`), and only those who decide add returns, approvals
/// and reopenings. Returns the actions of the new events, in the order they were made.
fn trail(
    author: &Author,
    existed: bool,
    after: &CaseState,
    ops: &Ops,
) -> Result<Vec<ReviewAction>, Refusal> {
    let events = |op: &&OpAt| matches!(op.path.as_slice(), [Seg::Key(r), Seg::Key(e), ..] if r == "review" && e == "events");
    let refuse = || {
        Refusal::new(
            Rule::ReviewTrail,
            "审核记录只能追加，不能修改或删除 (the review trail can only be added to)",
        )
    };
    let mut new_events = Vec::new();
    for op in ops.iter().filter(events) {
        match op.path.len() {
            3 if !op.overwrites && op.value == Some(Leaf::Map) => new_events.push(&op.id),
            n if n >= 4 && op.in_new_object => {}
            _ if !existed => {}
            _ => return Err(refuse()),
        }
    }
    // The kinds written into each new event, in one pass (a pass for each event cost
    // events × operations).
    let mut kinds: HashMap<&ObjId, Vec<&str>> = HashMap::new();
    for event in &new_events {
        kinds.insert(*event, Vec::new());
    }
    for op in ops.iter().filter(|op| !op.superseded) {
        if op.path.last().and_then(Seg::key) == Some("kind")
            && let Some(written) = kinds.get_mut(&op.obj)
            && let Some(kind) = op.value.as_ref().and_then(Leaf::as_str)
        {
            written.push(kind);
        }
    }
    let mut actions = Vec::new();
    for event in new_events {
        let [kind] = kinds[event].as_slice() else {
            return Err(Refusal::new(
                Rule::ReviewTrail,
                "审核记录必须写明动作 (a review event needs exactly one kind)",
            ));
        };
        let action: ReviewAction = kind.parse().map_err(|_| {
            Refusal::new(
                Rule::ReviewTrail,
                format!("“{kind}”不是审核动作 (not a review action)"),
            )
        })?;
        if is_decision(action) && !decides(author, &after.case.district) {
            return Err(only_deciders(&after.case.district));
        }
        actions.push(action);
    }
    Ok(actions)
}
/// The review state moves only as the review actions recorded in the same change move it
/// (several may have been taken offline between two syncs: submitted, then commented),
/// and only those who decide return, approve or reopen (`trail` checked who recorded
/// which).
fn review_state(
    before: Option<&CaseState>,
    after: &CaseState,
    actions: &[ReviewAction],
) -> Result<(), Refusal> {
    let from = before.map_or(ReviewState::Draft, |b| b.case.state);
    let to = after.case.state;
    // A state that reads as it did is no move (an action recorded concurrently with
    // another device's may lose the conflict on the state; its event still stands).
    if from == to {
        return Ok(());
    }
    let mut state = from;
    for action in actions {
        if let Ok(next) = review_step(*action, state) {
            state = next;
        }
    }
    if state == to {
        return Ok(());
    }
    Err(Refusal::new(
        Rule::ReviewState,
        format!(
            "案件状态不能从“{}”变为“{}” (only the review actions recorded lead there)",
            from.label(),
            to.label()
        ),
    ))
}

/// The findings of `state` by id.
fn findings_by_id(state: &CaseState) -> HashMap<FindingId, &Finding> {
    state.case.findings.iter().map(|f| (f.id, f)).collect()
}

/// Each touched finding's follow-up only grows, and its new steps, state and deadline
/// keep the closed loop (`follow_up`).
fn rectifications(
    author: &Author,
    before: Option<&CaseState>,
    after: &CaseState,
    ops: &Ops,
) -> Result<(), Refusal> {
    follow_up::list_grows(ops)?;
    let touched = ops.findings();
    if touched.is_empty() {
        return Ok(());
    }
    let seen = ops.levels_seen_by_order();
    let (olds, news) = (
        before.map(findings_by_id).unwrap_or_default(),
        findings_by_id(after),
    );
    for id in touched {
        let Some(finding) = news.get(&id) else {
            continue;
        };
        let old = olds.get(&id).copied();
        follow_up::judge(author, before, after, finding, old, seen.get(&id).copied())?;
    }
    Ok(())
}
