//! automerge-repo document ids: the bs58check encoding (Bitcoin alphabet, 4-byte double
//! SHA-256 checksum, no version byte) of the 16 bytes of a case's UUID.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::codes::CaseId;
use crate::error::{Error, Result};

/// A document id as automerge-repo writes it, e.g. `4NMNnkMhL8jXrdJ9jamS58PAVdXu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId(Uuid);

impl DocumentId {
    /// The case this document holds.
    pub fn case_id(self) -> CaseId {
        CaseId::from_uuid(self.0)
    }

    /// The document of a case.
    pub fn of(case: CaseId) -> Self {
        DocumentId(case.uuid())
    }
}

impl FromStr for DocumentId {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let bytes = bs58::decode(input)
            .with_check(None)
            .into_vec()
            .map_err(|e| {
                Error::invalid(
                    "document_id",
                    format!("{input:?} is not a document id: {e}"),
                )
            })?;
        let bytes: [u8; 16] = bytes.try_into().map_err(|_| {
            Error::invalid("document_id", format!("{input:?} does not hold 16 bytes"))
        })?;
        Ok(DocumentId(Uuid::from_bytes(bytes)))
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0.as_bytes()).with_check().into_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_automerge_repo_test_vector() {
        let uuid: Uuid = "f1c29c84-74c8-4ade-b800-be47627d33bf"
            .parse()
            .expect("uuid");
        let id = DocumentId::of(CaseId::from_uuid(uuid));
        assert_eq!(id.to_string(), "4NMNnkMhL8jXrdJ9jamS58PAVdXu");
        assert_eq!(
            "4NMNnkMhL8jXrdJ9jamS58PAVdXu"
                .parse::<DocumentId>()
                .expect("parses"),
            id
        );
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            "",
            "not base58 0OIl",
            "4NMNnkMhL8jXrdJ9jamS58PAVdXv",
            "3yZe7d",
        ] {
            assert!(bad.parse::<DocumentId>().is_err(), "{bad}");
        }
    }
}
