//! A hazard's follow-up in the case document: `findings/<id>/events`, an append-only list
//! of the steps taken after it was found — on-site measures, extensions, re-inspections,
//! closing, listing for supervision — each with who took it and when (docs/schema.md).
//! Writing a step also moves the rectification's state and deadline as the step does;
//! whether the step may be taken is the rule book's (`rules::follow_up`).

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, ScalarValueRef, Value, ValueRef};
use chrono::{DateTime, FixedOffset};

use super::{Fields, live_finding, map, parse_field, photos, string};
use crate::codes::{
    FindingId, HazardAction, OnsiteMeasure, RectificationState, ReinspectionResult,
};
use crate::error::{Error, Result};
use crate::model::{HazardEvent, HazardStep};

/// The key of the follow-up list in a finding.
pub(crate) const EVENTS: &str = "events";

/// Records `step` on finding `id` as taken by `by` at `at`: appends its event and moves
/// the rectification (a 合格 re-inspection to 已复查, a 不合格 one back to 整改中 with its
/// new deadline, an extension's deadline, closing to 已销号); returns the rectification's
/// state after it.
pub(crate) fn record(
    doc: &mut AutoCommit,
    id: FindingId,
    step: &HazardStep,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<RectificationState> {
    let obj = live_finding(doc, id)?;
    let rect = map(doc, &obj, "rectification")?;
    let previous = string(doc, &rect, "deadline");
    let evidence: Vec<String> = photos::read_at(doc, &rect, "evidence")
        .into_iter()
        .map(|p| p.sha256)
        .collect();
    let events = match doc.get(&obj, EVENTS)? {
        Some((Value::Object(ObjType::List), events)) => events,
        // A finding recorded before follow-ups were kept gets its list with its first step.
        None => doc.put_object(&obj, EVENTS, ObjType::List)?,
        Some(_) => return Err(Error::InvalidDocument(format!("finding {id}: events"))),
    };
    let event = doc.insert_object(&events, doc.length(&events), ObjType::Map)?;
    doc.put(&event, "kind", step.action().code())?;
    doc.put(&event, "by", by)?;
    doc.put(&event, "at", at.to_rfc3339())?;
    let text = |doc: &mut AutoCommit, key: &str, value: &str| doc.put(&event, key, value);
    match step {
        HazardStep::Onsite { measure, note } => {
            text(doc, "measure", measure.code())?;
            text(doc, "basis", measure.basis())?;
            text(doc, "note", note)?;
        }
        HazardStep::Extend { reason, .. } => text(doc, "reason", reason)?,
        HazardStep::Reinspect {
            result,
            note,
            escalation,
            ..
        } => {
            text(doc, "result", result.code())?;
            text(doc, "note", note)?;
            text(doc, "escalation", escalation)?;
            let list = doc.put_object(&event, "evidence", ObjType::List)?;
            for (i, hash) in evidence.iter().enumerate() {
                doc.insert(&list, i, hash.as_str())?;
            }
        }
        HazardStep::Close { note } | HazardStep::Delist { note } => text(doc, "note", note)?,
        HazardStep::List {
            authority,
            number,
            deadline,
        } => {
            text(doc, "authority", authority)?;
            text(doc, "number", number)?;
            text(doc, "deadline", &deadline.to_string())?;
        }
        HazardStep::Plan {
            measures,
            funds,
            responsible,
            interim,
        } => {
            text(doc, "measures", measures)?;
            text(doc, "funds", funds)?;
            text(doc, "responsible", responsible)?;
            text(doc, "interim", interim)?;
        }
        HazardStep::Progress { text: report } => text(doc, "text", report)?,
    }
    if let Some(deadline) = step.new_deadline() {
        if let Some(previous) = &previous {
            doc.put(&event, "previous_deadline", previous.as_str())?;
        }
        doc.put(&event, "deadline", deadline.to_string())?;
        doc.put(&rect, "deadline", deadline.to_string())?;
    }
    let next = match step {
        HazardStep::Reinspect {
            result: ReinspectionResult::Pass,
            ..
        } => Some(RectificationState::Reinspected),
        HazardStep::Reinspect { .. } => Some(RectificationState::InProgress),
        HazardStep::Close { .. } => Some(RectificationState::Closed),
        _ => None,
    };
    match next {
        Some(next) => {
            doc.put(&rect, "state", next.code())?;
            Ok(next)
        }
        None => parse_field(doc, &rect, "state"),
    }
}

/// The follow-up of the finding at `obj`, in the order written: the order the rule book
/// judged its steps in (a step's time is its device's clock, which may be wrong, and
/// orders nothing). Two devices that each gave an old finding its list at once leave two
/// lists under one key: both are read, one after the other.
pub(crate) fn read(doc: &AutoCommit, obj: &ObjId, id: FindingId) -> Result<Vec<HazardEvent>> {
    let mut events = Vec::new();
    for (value, list) in doc.get_all(obj, EVENTS)? {
        if !matches!(value, Value::Object(ObjType::List)) {
            continue;
        }
        for item in doc.list_range(&list, ..) {
            if matches!(item.value, ValueRef::Object(ObjType::Map)) {
                events.push(read_event(&Fields::of(doc, &item.id())).map_err(|e| {
                    Error::InvalidDocument(format!("finding {id}: follow-up {}: {e}", item.index))
                })?);
            }
        }
    }
    Ok(events)
}

fn read_event(entry: &Fields) -> Result<HazardEvent> {
    let text = |key: &str| entry.string(key).unwrap_or_default();
    let date = |key: &str| entry.date(key);
    let action: HazardAction = entry.parse("kind")?;
    let step = match action {
        HazardAction::Onsite => HazardStep::Onsite {
            measure: entry.parse::<OnsiteMeasure>("measure")?,
            note: text("note"),
        },
        HazardAction::Extend => HazardStep::Extend {
            deadline: date("deadline")?,
            reason: text("reason"),
        },
        HazardAction::Reinspect => HazardStep::Reinspect {
            result: entry.parse("result")?,
            note: text("note"),
            deadline: date("deadline").ok(),
            escalation: text("escalation"),
        },
        HazardAction::Close => HazardStep::Close { note: text("note") },
        HazardAction::List => HazardStep::List {
            authority: text("authority"),
            number: text("number"),
            deadline: date("deadline")?,
        },
        HazardAction::Plan => HazardStep::Plan {
            measures: text("measures"),
            funds: text("funds"),
            responsible: text("responsible"),
            interim: text("interim"),
        },
        HazardAction::Progress => HazardStep::Progress { text: text("text") },
        HazardAction::Delist => HazardStep::Delist { note: text("note") },
    };
    let evidence = match entry.object("evidence", ObjType::List) {
        Some(list) => entry
            .doc()
            .list_range(&list, ..)
            .filter_map(|item| match item.value {
                ValueRef::Scalar(ScalarValueRef::Str(s)) => Some(s.into_owned()),
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(HazardEvent {
        step,
        by: text("by"),
        at: entry.time("at")?,
        previous_deadline: date("previous_deadline").ok(),
        evidence,
    })
}
