//! Access to case documents for code outside a `Store`: the sync server reads every case
//! it receives with the same rules as the apps, and writes supervisors' review actions
//! and conflict resolutions with the same code the apps use.

use automerge::AutoCommit;
use chrono::{DateTime, FixedOffset};

use crate::codes::{CaseId, DistrictCode, FindingId, WritId};
use crate::codes::{RectificationState, ReviewAction, ReviewState};
use crate::document;
use crate::error::Result;
use crate::model::{Case, Conflict, HazardStep, HistoryEntry, Numbering, Resolution};

/// The case id a document holds, if it is a case this build can read.
pub fn case_id(doc: &AutoCommit) -> Result<CaseId> {
    document::check_case(doc)
}

/// The whole case.
pub fn read(doc: &AutoCommit) -> Result<Case> {
    document::read_case(doc)
}

/// The case without its findings and checklists (a few keys): who owns it and who may
/// read it, its state. Far cheaper than `read` on a large case.
pub fn read_header(doc: &AutoCommit) -> Result<Case> {
    document::read_header(doc)
}

/// Every field written concurrently with different values.
pub fn conflicts(doc: &AutoCommit) -> Result<Vec<Conflict>> {
    document::conflicts(doc)
}

/// The user id a change records as its author (empty for changes made by clients that
/// record none, such as a stock automerge-repo client).
pub fn author(change: &automerge::Change) -> String {
    document::ChangeNote::parse(change.message()).by
}

/// Every change, oldest first.
pub fn history(doc: &mut AutoCommit) -> Vec<HistoryEntry> {
    document::history(doc)
}

/// The document's heads as sorted hex strings (how stores and the server record them).
pub fn sorted_heads(doc: &mut AutoCommit) -> Vec<String> {
    let mut heads: Vec<String> = doc.get_heads().iter().map(ToString::to_string).collect();
    heads.sort();
    heads
}

/// Drops what Automerge recorded of the changes applied to `doc` as patches, which nobody
/// here reads: automerge 0.12 records them in the document's own log whether or not the
/// log is on (applying a batch of changes does not ask), keeps them for as long as the
/// document lives, and copies them with every clone. Call it after applying or loading
/// changes into a document that is kept or cloned.
pub fn forget_patches(doc: &mut AutoCommit) {
    doc.reset_diff_cursor();
}

/// Every blob hash the document mentions.
pub fn blob_refs(doc: &AutoCommit) -> std::collections::BTreeSet<String> {
    document::blob_refs(doc)
}

/// Records a review action by `by` (a supervisor acting on the server) as one change
/// stamped with `at`; returns the case's new review state. Nothing is written on error.
pub fn review(
    doc: &mut AutoCommit,
    by: &str,
    action: ReviewAction,
    text: &str,
    at: DateTime<FixedOffset>,
) -> Result<ReviewState> {
    change(doc, by, &format!("review:{}", action.code()), at, |doc| {
        document::review(doc, action, by, at, text)
    })
}

/// Resolves the conflict at `path` as one change by `by`, stamped with `at`. Nothing is
/// written on error.
pub fn resolve_conflict(
    doc: &mut AutoCommit,
    by: &str,
    path: &[String],
    resolution: &Resolution,
    at: DateTime<FixedOffset>,
) -> Result<()> {
    change(doc, by, "resolve_conflict", at, |doc| {
        document::resolve_conflict(doc, path, resolution).map(drop)
    })
}

/// Records a step of a hazard's follow-up as one change by `by` (a supervisor closing
/// a re-inspected hazard: 销号; listing it for supervision: 挂牌督办; …); returns the
/// rectification's state after it. Nothing is written on error.
pub fn follow_up(
    doc: &mut AutoCommit,
    by: &str,
    finding: FindingId,
    step: &HazardStep,
    at: DateTime<FixedOffset>,
) -> Result<RectificationState> {
    let action = format!("follow_up:{}", step.action().code());
    change(doc, by, &action, at, |doc| {
        document::follow_up(doc, finding, step, by, at)
    })
}

/// Gives the document `writ`, sealed with a provisional number, its number from a block
/// the server allocated itself (`numbering`), as one change in the name of who sealed it.
pub fn number_writ(doc: &mut AutoCommit, writ: WritId, numbering: &Numbering) -> Result<()> {
    let at = numbering.at;
    change(doc, &numbering.by, "writ:number", at, |doc| {
        document::number_writ(doc, writ, numbering)
    })
}

/// Shares the case with `districts` besides its owner (replacing the districts it was
/// shared with) as one change by `by`; returns the districts as written. Nothing is
/// written on error.
pub fn share(
    doc: &mut AutoCommit,
    by: &str,
    districts: &[DistrictCode],
    at: DateTime<FixedOffset>,
) -> Result<Vec<DistrictCode>> {
    change(doc, by, "share", at, |doc| document::share(doc, districts))
}

/// Runs `edit` and commits it as one change with the same note the apps write; rolls
/// back on error.
fn change<T>(
    doc: &mut AutoCommit,
    by: &str,
    action: &str,
    at: DateTime<FixedOffset>,
    edit: impl FnOnce(&mut AutoCommit) -> Result<T>,
) -> Result<T> {
    match edit(doc) {
        Ok(value) => {
            let note = document::ChangeNote {
                by: by.to_owned(),
                action: action.to_owned(),
                again: None,
            };
            document::commit(doc, &note, at.timestamp());
            Ok(value)
        }
        Err(e) => {
            doc.rollback();
            Err(e)
        }
    }
}
