//! The rules of a hazard's closed loop (发现 → 责令整改 → 整改 → 复查 → 销号, with 延期
//! and 挂牌督办): the follow-up list only grows; each new step is taken where the loop
//! allows it, by whom the rule book allows; the rectification's state and deadline move
//! only as the steps (or the free moves of `rectification_step`) move them.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

use super::{Author, ReviewState};
use super::{CaseState, OpAt, Ops, Refusal, Rule, decides, may_close, rectification_step, title};
use crate::codes::{HazardAction, Level, RectificationState, ReinspectionResult};
use crate::model::{Finding, HazardEvent, HazardStep, PhotoRef};
use crate::numbering::MAX_NUMBER_CHARS;
use crate::paths::{Leaf, Seg};

/// Whether `op` writes into a finding's follow-up list (or makes it).
pub(super) fn in_follow_up(op: &OpAt) -> bool {
    matches!(op.path.as_slice(), [Seg::Key(f), _, Seg::Key(e), ..] if f == "findings" && e == "events")
}

/// The follow-up list only grows: a change makes the list of a finding that has none (a
/// list made beside another, or in its place, competes with it or replaces it: it
/// `overwrites`), appends new steps at its end, and writes fields only into steps it makes.
/// So the steps read in the order they were written and judged in (a step's time is its
/// device's clock, and orders nothing).
pub(super) fn list_grows(ops: &Ops) -> Result<(), Refusal> {
    for op in ops.iter().filter(|op| in_follow_up(op)) {
        let fine = match op.path.len() {
            3 => op.value == Some(Leaf::List) && !op.overwrites,
            4 => op.value == Some(Leaf::Map) && !op.overwrites && op.appended,
            _ => op.in_new_object,
        };
        if !fine {
            return Err(Refusal::new(
                Rule::Evidence,
                "隐患的处理记录（现场措施、延期、复查、销号、督办）只能追加，不能修改或删除 (a hazard's follow-up can only be added to)",
            ));
        }
    }
    fields_of_its_kind(ops)
}

/// The key an operation writes in a step of a follow-up list, if it writes one.
fn step_field(op: &OpAt) -> Option<&str> {
    match op.path.as_slice() {
        [_, _, _, Seg::Index(_), Seg::Key(key)] if in_follow_up(op) => Some(key.as_str()),
        _ => None,
    }
}

/// The fields of a new step are those of its kind (docs/schema.md, Step).
fn fields_of_its_kind(ops: &Ops) -> Result<(), Refusal> {
    let kinds: HashMap<&automerge::ObjId, HazardAction> = ops
        .iter()
        .filter(|op| step_field(op) == Some("kind") && !op.superseded)
        .filter_map(|op| Some((&op.obj, op.value.as_ref()?.as_str()?.parse().ok()?)))
        .collect();
    for op in ops.iter() {
        let (Some(key), Some(kind)) = (step_field(op), kinds.get(&op.obj)) else {
            continue;
        };
        let fits = matches!(key, "kind" | "by" | "at")
            || match kind {
                HazardAction::Onsite => matches!(key, "measure" | "basis" | "note"),
                HazardAction::Extend => matches!(key, "deadline" | "previous_deadline" | "reason"),
                HazardAction::Reinspect => matches!(
                    key,
                    "result"
                        | "note"
                        | "evidence"
                        | "escalation"
                        | "deadline"
                        | "previous_deadline"
                ),
                HazardAction::Close | HazardAction::Delist => key == "note",
                HazardAction::List => matches!(key, "authority" | "number" | "deadline"),
                HazardAction::Plan => {
                    matches!(key, "measures" | "funds" | "responsible" | "interim")
                }
                HazardAction::Progress => key == "text",
            };
        if !fits {
            return Err(Refusal::new(
                Rule::Shape,
                format!(
                    "{}记录中不应有“{key}” (a step carries only the fields of its kind)",
                    kind.label()
                ),
            ));
        }
    }
    Ok(())
}

/// Steps one hazard's follow-up may hold: far more than any hazard needs, and few enough
/// that judging a step inserted among them (which finds the new steps by search, not as
/// the list's end) stays cheap.
pub const MAX_STEPS: usize = 1_000;

/// Where a finding's loop stands, as the steps of one change are judged one by one.
struct Loop {
    state: RectificationState,
    deadline: Option<NaiveDate>,
    listed: bool,
}

/// Judges the new steps of a finding (`finding` as the change leaves it, `old` as it was
/// before, if it was), in order, then the state and deadline the change leaves; `seen` is
/// the level the finding read where its order's level was recorded
/// (`Ops::levels_seen_by_order`).
pub(super) fn judge(
    author: &Author,
    before: Option<&CaseState>,
    after: &CaseState,
    finding: &Finding,
    old: Option<&Finding>,
    seen: Option<Level>,
) -> Result<(), Refusal> {
    let approved = before.is_some_and(|b| b.case.state == ReviewState::Approved);
    let mut at = Loop {
        state: state_of(old),
        deadline: old
            .as_ref()
            .and_then(|f| f.rectification.as_ref())
            .map(|r| r.deadline),
        listed: old.is_some_and(|f| f.listing().is_some()),
    };
    let ordered_before = at.state != RectificationState::None;
    // Closing and listing are judged at the stricter of the levels before and after: a
    // hazard is not lowered to general and closed in one change.
    let mut judged = finding.clone();
    if old.is_some_and(|f| f.level == Level::Major) {
        judged.level = Level::Major;
    }
    let grown = finding.events.len() > old.map_or(0, |f| f.events.len());
    if grown && finding.events.len() > MAX_STEPS {
        return Err(Refusal::new(
            Rule::RectificationLoop,
            format!(
                "隐患“{}”的整改记录已达 {MAX_STEPS} 条上限 (a hazard's follow-up holds at most {MAX_STEPS} steps)",
                title(finding)
            ),
        ));
    }
    let new = new_events(old, finding);
    // A re-inspection reads only from a step: the fields re-inspections were kept in before
    // steps are neither written anew nor taken away.
    let reinspection = |f: Option<&Finding>| {
        f.and_then(|f| f.rectification.as_ref())
            .and_then(|r| r.reinspection.clone())
    };
    let reinspects = new
        .iter()
        .any(|e| matches!(e.step, HazardStep::Reinspect { .. }));
    if !reinspects && reinspection(old) != reinspection(Some(finding)) {
        return Err(Refusal::new(
            Rule::Evidence,
            format!(
                "隐患“{}”的复查只能以复查记录办理，已有的复查记录不能修改 (a re-inspection is recorded as a step; one recorded stays)",
                title(finding)
            ),
        ));
    }
    for event in new {
        if approved && !event.step.action().is_follow_up() {
            return Err(Refusal::new(
                Rule::ApprovedLock,
                "案件已审核通过：现场处理措施属于检查时的记录，不能再追加 (on-site measures belong to the visit; the case is approved)",
            ));
        }
        step(author, after, &judged, event, &mut at)?;
    }
    // Judged where the loop stands, the steps must read the same where they landed (a step
    // wrong wherever it lands is refused above, for what is wrong with it).
    if !reads_in_order(old, finding) {
        return Err(Refusal::new(
            Rule::RectificationLoop,
            format!(
                "隐患“{}”已有他人在此期间记录的复查、延期、销号或督办，本条记录排在其前，未被接受；请同步后按最新情况重新记录 (a step of the hazard's loop was recorded meanwhile and this one lands before it: sync, then record it again)",
                title(finding)
            ),
        ));
    }
    let to = state_of(Some(finding));
    if to != at.state {
        let ordering = at.state == RectificationState::None && to == RectificationState::Ordered;
        if approved && ordering {
            return Err(Refusal::new(
                Rule::ApprovedLock,
                "案件已审核通过，不能再下达整改；如需更正，请新建关联的更正案件 (the case is approved; order in an amending case)",
            ));
        }
        if !ordering && !rectification_step(at.state, to) {
            return Err(Refusal::new(
                Rule::RectificationLoop,
                format!(
                    "隐患“{}”的整改状态不能从“{}”变为“{}”：复查须记录结果，销号须记录销号 (not a step of the closed loop)",
                    title(finding),
                    at.state.label(),
                    to.label()
                ),
            ));
        }
    }
    let deadline = finding.rectification.as_ref().map(|r| r.deadline);
    if ordered_before && deadline != at.deadline {
        return Err(Refusal::new(
            Rule::RectificationLoop,
            format!(
                "隐患“{}”的整改期限只能通过延期或复查不合格变更，并留有记录 (a deadline moves only by a recorded extension or failed re-inspection)",
                title(finding)
            ),
        ));
    }
    evidence_stays(old, finding)?;
    ordered_level_stays(old, finding, seen)
}

/// One new step, judged where the loop stands; moves the loop.
fn step(
    author: &Author,
    after: &CaseState,
    finding: &Finding,
    event: &HazardEvent,
    at: &mut Loop,
) -> Result<(), Refusal> {
    use RectificationState::*;
    let name = title(finding);
    let refuse = |rule: Rule, why: String| Err(Refusal::new(rule, why));
    let open = matches!(at.state, Ordered | InProgress | Overdue);
    let district = &after.case.district;
    if event.by != author.user_id {
        return refuse(
            Rule::Attribution,
            format!(
                "隐患“{name}”的处理记录须写明记录人，且为您本人（{}） (a step names its author)",
                author.user_id
            ),
        );
    }
    fits_its_kind(name, event)?;
    match &event.step {
        HazardStep::Onsite { .. } => {}
        HazardStep::Extend { deadline, reason } => {
            if !open {
                return refuse(
                    Rule::RectificationLoop,
                    format!(
                        "隐患“{name}”未在整改中，不能延期 (only an open rectification is extended)"
                    ),
                );
            }
            if reason.trim().is_empty() {
                return refuse(
                    Rule::Evidence,
                    format!("隐患“{name}”延期须写明理由 (an extension states its reason)"),
                );
            }
            moves_deadline(name, event, *deadline, at)?;
        }
        HazardStep::Reinspect {
            result,
            note,
            deadline,
            escalation,
        } => {
            if !(open || at.state == Reinspected) {
                return refuse(
                    Rule::RectificationLoop,
                    format!(
                        "隐患“{name}”为“{}”，不能复查 (only an ordered rectification is re-inspected)",
                        at.state.label()
                    ),
                );
            }
            let attached: HashSet<&str> = finding
                .rectification
                .iter()
                .flat_map(|r| r.evidence.iter())
                .map(|p| p.sha256.as_str())
                .collect();
            if event
                .evidence
                .iter()
                .any(|hash| !attached.contains(&hash.as_str()))
            {
                return refuse(
                    Rule::Evidence,
                    format!(
                        "隐患“{name}”的复查佐证须为已附的整改照片 (a re-inspection names only the rectification's evidence photos)"
                    ),
                );
            }
            match result {
                ReinspectionResult::Pass => {
                    if note.trim().is_empty() && event.evidence.is_empty() {
                        return refuse(
                            Rule::Evidence,
                            format!(
                                "隐患“{name}”复查合格需要复查佐证（整改照片或复查意见） (a passed re-inspection needs evidence)"
                            ),
                        );
                    }
                    at.state = Reinspected;
                }
                ReinspectionResult::Fail => {
                    if note.trim().is_empty() {
                        return refuse(
                            Rule::Evidence,
                            format!(
                                "隐患“{name}”复查不合格须写明复查意见 (a failed re-inspection says what was found)"
                            ),
                        );
                    }
                    match *deadline {
                        Some(deadline) => moves_deadline(name, event, deadline, at)?,
                        Option::None if escalation.trim().is_empty() => {
                            return refuse(
                                Rule::RectificationLoop,
                                format!(
                                    "隐患“{name}”复查不合格，须重新确定整改期限或写明升级处理措施 (a failed re-inspection sets a new deadline or escalates)"
                                ),
                            );
                        }
                        Option::None => {}
                    }
                    at.state = InProgress;
                }
            }
        }
        HazardStep::Close { .. } => {
            if at.state != Reinspected {
                return refuse(
                    Rule::RectificationLoop,
                    format!(
                        "隐患“{name}”复查合格后才能销号 (a hazard is closed after a passed re-inspection)"
                    ),
                );
            }
            may_close(author, &after.case, finding)?;
            at.state = Closed;
        }
        HazardStep::List {
            authority, number, ..
        } => {
            if finding.level != Level::Major {
                return refuse(
                    Rule::RectificationLoop,
                    format!(
                        "只有重大隐患可以挂牌督办（“{name}”为一般隐患） (only a major hazard is listed)"
                    ),
                );
            }
            if !decides(author, district) {
                return refuse(
                    Rule::Decide,
                    format!(
                        "挂牌督办由辖区 {district} 的监管负责人办理 (the owning district's supervisors list a hazard)"
                    ),
                );
            }
            if at.listed {
                return refuse(
                    Rule::RectificationLoop,
                    format!("隐患“{name}”已挂牌督办 (already listed)"),
                );
            }
            if authority.trim().is_empty()
                || number.trim().is_empty()
                || number.chars().count() > MAX_NUMBER_CHARS
            {
                return refuse(
                    Rule::Evidence,
                    format!(
                        "挂牌督办须写明督办单位和文号（文号至多 {MAX_NUMBER_CHARS} 字） (a listing names its authority and document number, at most {MAX_NUMBER_CHARS} characters)"
                    ),
                );
            }
            at.listed = true;
        }
        HazardStep::Plan {
            measures,
            responsible,
            ..
        } => {
            listed(name, at)?;
            if measures.trim().is_empty() || responsible.trim().is_empty() {
                return refuse(
                    Rule::Evidence,
                    "治理方案须写明治理措施和责任人 (a plan names its measures and who is responsible)".to_owned(),
                );
            }
        }
        HazardStep::Progress { text } => {
            listed(name, at)?;
            if text.trim().is_empty() {
                return refuse(
                    Rule::Evidence,
                    "进展报告不能为空 (a progress report says something)".to_owned(),
                );
            }
        }
        HazardStep::Delist { .. } => {
            listed(name, at)?;
            if !decides(author, district) {
                return refuse(
                    Rule::Decide,
                    format!(
                        "摘牌由辖区 {district} 的监管负责人办理 (the owning district's supervisors delist a hazard)"
                    ),
                );
            }
            if at.state != Closed {
                return refuse(
                    Rule::RectificationLoop,
                    format!("隐患“{name}”销号后才能摘牌 (a hazard is delisted after it is closed)"),
                );
            }
            at.listed = false;
        }
    }
    Ok(())
}

/// An order records the level the hazard reads with it, or major: the level it reads
/// after the change, or the level its inspector saw (`seen`: an inspector ordering offline
/// does not see a teammate's concurrent raise, and is not refused for it; one who saw a
/// major hazard does not order it as general). The level recorded stays: closing is judged
/// at the stricter of it and the level now (`may_close`), so a hazard ordered as major and
/// lowered since is still closed by the supervisors. A teammate's lowering the level,
/// before or after the order, stands as the level's own value.
fn ordered_level_stays(
    old: Option<&Finding>,
    finding: &Finding,
    seen: Option<Level>,
) -> Result<(), Refusal> {
    let recorded = |f: &Finding| f.rectification.as_ref().map(|r| r.ordered_level);
    let fine = match (old.and_then(recorded), recorded(finding)) {
        (Some(before), Some(after)) => before == after,
        (None, Some(after)) => matches!(
            after,
            Some(level) if level == finding.level || level == Level::Major || Some(level) == seen
        ),
        (_, None) => true,
    };
    if fine {
        return Ok(());
    }
    Err(Refusal::new(
        Rule::RectificationLoop,
        format!(
            "隐患“{}”下达整改时须记录其当时的隐患等级（重大隐患按重大隐患记录），记录后不能修改 (an order records the hazard's level, and keeps it)",
            title(finding)
        ),
    ))
}

/// A step carries the fields of its kind only: a deadline it replaced only when it moves
/// the deadline (a 合格 re-inspection moves none), and the evidence it saw only when it
/// is a re-inspection. Readers read what a step carries (a deadline in force, on time or
/// late), so nothing it carries goes unjudged.
fn fits_its_kind(name: &str, event: &HazardEvent) -> Result<(), Refusal> {
    let passed_with_deadline = matches!(
        event.step,
        HazardStep::Reinspect {
            result: ReinspectionResult::Pass,
            deadline: Some(_),
            ..
        }
    );
    let replaced_without_moving =
        event.step.new_deadline().is_none() && event.previous_deadline.is_some();
    let evidence_elsewhere =
        !event.evidence.is_empty() && !matches!(event.step, HazardStep::Reinspect { .. });
    if passed_with_deadline || replaced_without_moving || evidence_elsewhere {
        return Err(Refusal::new(
            Rule::Shape,
            format!(
                "隐患“{name}”的{}记录含有不属于该步骤的内容 (a step carries only the fields of its kind)",
                event.step.action().label()
            ),
        ));
    }
    Ok(())
}

fn listed(name: &str, at: &Loop) -> Result<(), Refusal> {
    if at.listed {
        Ok(())
    } else {
        Err(Refusal::new(
            Rule::RectificationLoop,
            format!("隐患“{name}”未挂牌督办 (the hazard is not listed for supervision)"),
        ))
    }
}

/// A step that moves the deadline names the one it replaces and moves it later.
fn moves_deadline(
    name: &str,
    event: &HazardEvent,
    deadline: NaiveDate,
    at: &mut Loop,
) -> Result<(), Refusal> {
    if event.previous_deadline != at.deadline || at.deadline.is_some_and(|d| deadline <= d) {
        return Err(Refusal::new(
            Rule::RectificationLoop,
            format!(
                "隐患“{name}”的新整改期限须晚于原期限，并记录原期限 (a new deadline is later than, and names, the one it replaces)"
            ),
        ));
    }
    at.deadline = Some(deadline);
    Ok(())
}

/// Re-inspection evidence stays: the evidence photos of a rectification re-inspected or
/// closed (before or after the change) all read after it as recorded, however a change
/// would take one away or change what it says (detached, its list or its rectification
/// written anew, its record rewritten or detached and attached again with the same hash).
fn evidence_stays(old: Option<&Finding>, finding: &Finding) -> Result<(), Refusal> {
    let done = |f: &Finding| {
        matches!(
            state_of(Some(f)),
            RectificationState::Reinspected | RectificationState::Closed
        )
    };
    let Some(old) = old else {
        return Ok(());
    };
    let records = |f: &Finding| -> Vec<PhotoRef> {
        f.rectification
            .iter()
            .flat_map(|r| r.evidence.iter().cloned())
            .collect()
    };
    let kept = records(finding);
    let lost = !super::added(&kept, &records(old)).is_empty();
    if lost && (done(old) || done(finding)) {
        return Err(Refusal::new(
            Rule::Evidence,
            format!(
                "隐患“{}”已复查，整改佐证不能删除 (re-inspection evidence stays)",
                title(finding)
            ),
        ));
    }
    Ok(())
}

fn state_of(finding: Option<&Finding>) -> RectificationState {
    finding
        .and_then(|f| f.rectification.as_ref())
        .map_or(RectificationState::None, |r| r.state)
}

/// Whether, read in the list's order as every reader reads the steps, the loop moves as
/// the rule book judged it. A change built on old heads can land its steps among the
/// recorded ones rather than after them (Automerge orders concurrent insertions by their
/// ids); the rule book judges them against the loop as it stands, so they must read the
/// same where they land: each step that moves the deadline replaces the deadline the steps
/// before it left (or a 合格 recorded late would read as on time against a deadline moved
/// before it), a new step of the loop (re-inspection, closing, extension, delisting)
/// follows every recorded one (or the latest re-inspection would read 合格 on a hazard
/// the state says is still being rectified, a 合格 would read against a deadline it was
/// not judged against, a delisting before the closing it needs), and a new listing or
/// delisting follows every recorded one (or the hazard would read as not listed).
fn reads_in_order(old: Option<&Finding>, finding: &Finding) -> bool {
    let Some(old) = old else {
        return true;
    };
    if finding.events.starts_with(&old.events) {
        return true;
    }
    let mut deadline = old.first_deadline();
    for event in &finding.events {
        if let Some(moved) = event.step.new_deadline() {
            if event.previous_deadline != deadline {
                return false;
            }
            deadline = Some(moved);
        }
    }
    // Which steps are new: the recorded ones read in the same order among them.
    let mut recorded = old.events.iter().peekable();
    let new: Vec<bool> = finding
        .events
        .iter()
        .map(|event| recorded.next_if(|r| *r == event).is_none())
        .collect();
    let lands_among_recorded = |kind: fn(&HazardStep) -> bool| {
        let of_kind = |i: &usize| kind(&finding.events[*i].step);
        let first_new = (0..new.len()).filter(of_kind).find(|&i| new[i]);
        let last_recorded = (0..new.len()).filter(of_kind).rfind(|&i| !new[i]);
        matches!((first_new, last_recorded), (Some(n), Some(r)) if n < r)
    };
    let of_the_loop = |s: &HazardStep| {
        matches!(
            s,
            HazardStep::Reinspect { .. }
                | HazardStep::Close { .. }
                | HazardStep::Extend { .. }
                | HazardStep::Delist { .. }
        )
    };
    let of_the_listing =
        |s: &HazardStep| matches!(s, HazardStep::List { .. } | HazardStep::Delist { .. });
    !lands_among_recorded(of_the_loop) && !lands_among_recorded(of_the_listing)
}

/// The steps of `after` that `before` does not have, in order (the list only grows, so
/// these are the ones the change made).
fn new_events<'a>(before: Option<&Finding>, after: &'a Finding) -> Vec<&'a HazardEvent> {
    super::added(
        before.map_or(&[][..], |f| f.events.as_slice()),
        &after.events,
    )
}
