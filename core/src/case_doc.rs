//! Read-only access to case documents for code outside a `Store` (the sync server reads
//! every case it receives with the same rules as the apps).

use automerge::AutoCommit;

use crate::codes::CaseId;
use crate::document;
use crate::error::Result;
use crate::model::{Case, Conflict, HistoryEntry};

/// The case id a document holds, if it is a case this build can read.
pub fn case_id(doc: &AutoCommit) -> Result<CaseId> {
    document::check_case(doc)
}

/// The whole case.
pub fn read(doc: &AutoCommit) -> Result<Case> {
    document::read_case(doc)
}

/// Every field written concurrently with different values.
pub fn conflicts(doc: &AutoCommit) -> Result<Vec<Conflict>> {
    document::conflicts(doc)
}

/// Every change, oldest first.
pub fn history(doc: &mut AutoCommit) -> Vec<HistoryEntry> {
    document::history(doc)
}

/// Every blob hash the document mentions.
pub fn blob_refs(doc: &AutoCommit) -> std::collections::BTreeSet<String> {
    document::blob_refs(doc)
}
