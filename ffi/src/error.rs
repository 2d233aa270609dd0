//! The one public error of the FFI, converted from the core's rich error in one place, and
//! the guard that turns a panic inside the library into an error instead of a crash.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What went wrong, in the cases an app branches on. Every case carries `reason`: a sentence
/// in English that says what was wrong and what to do, fit for logs and support.
///
/// (Kotlin exceptions already have a `message`, so the text is called `reason`.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum AnjianError {
    /// An input was refused before anything changed: `field` names it (`credit_code`,
    /// `deadline`, `photo`, …) so the app can mark it in its form.
    #[error("invalid {field}: {reason}")]
    Validation {
        /// The input that was wrong.
        field: String,
        /// What was wrong and what would be right.
        reason: String,
    },
    /// The record asked for is not in this store.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of record (`enterprise`, `case`, `finding`, `photo`, …).
        what: String,
        /// The id that was asked for.
        id: String,
    },
    /// The operation conflicts with the record's current state (a rectification cannot
    /// move that way, a field is not in conflict, the case is approved, …).
    #[error("not allowed: {reason}")]
    Conflict {
        /// Why.
        reason: String,
    },
    /// The server refused the credentials or the token: sign in again.
    #[error("not signed in: {reason}")]
    Auth {
        /// The server's reason.
        reason: String,
    },
    /// The server could not be reached, broke the connection or the protocol: sync again later.
    #[error("network: {reason}")]
    Network {
        /// What failed.
        reason: String,
    },
    /// The store file is not an Anjian store, is damaged, or the disk failed.
    #[error("storage: {reason}")]
    Storage {
        /// What failed and what to do.
        reason: String,
    },
    /// The store file or a case was written by a newer version of the app: update the app.
    #[error("update required: {reason}")]
    UpdateRequired {
        /// What is newer than this build.
        reason: String,
    },
    /// The operation was cancelled (a sync whose handle was cancelled or dropped).
    #[error("cancelled")]
    Cancelled,
    /// A bug inside the library (a panic) or a failure of its runtime. The store that was
    /// in use refuses further calls; close it and open it again.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened, for the bug report.
        reason: String,
    },
}

/// The one conversion from the core's error: which public case each core error is. The
/// match is exhaustive on purpose: a kind the core adds must be placed here by a person.
impl From<anjian_core::Error> for AnjianError {
    fn from(error: anjian_core::Error) -> Self {
        use anjian_core::Error as Core;
        let reason = error.to_string();
        match error {
            Core::Invalid { field, message } => AnjianError::Validation {
                field: field.to_owned(),
                reason: message,
            },
            Core::Photo(photo) => AnjianError::Validation {
                field: "photo".to_owned(),
                reason: photo.to_string(),
            },
            Core::InvalidDocument(message) => AnjianError::Validation {
                field: "document".to_owned(),
                reason: message,
            },
            Core::NotFound { what, id } => AnjianError::NotFound {
                what: what.to_owned(),
                id,
            },
            Core::NotAllowed(message) => AnjianError::Conflict { reason: message },
            Core::Auth(message) => AnjianError::Auth { reason: message },
            Core::Network(_) | Core::Sync(_) => AnjianError::Network { reason },
            Core::NewerStore { .. } | Core::NewerDocument { .. } => {
                AnjianError::UpdateRequired { reason }
            }
            Core::NotAStore { .. }
            | Core::Corrupt(_)
            | Core::BlobDamaged { .. }
            | Core::Storage(_) => AnjianError::Storage { reason },
        }
    }
}

impl AnjianError {
    /// A template folder the store was asked to load is invalid.
    pub(crate) fn templates(error: anjian_core::TemplateError) -> Self {
        AnjianError::Validation {
            field: "templates".to_owned(),
            reason: error.to_string(),
        }
    }

    /// The error a caught panic becomes, with the panic's message.
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        tracing::error!(panic = %message, "panic inside anjian-ffi turned into an error");
        AnjianError::Internal {
            reason: format!("panic inside the library: {message}"),
        }
    }
}

/// Runs one exported call, turning a panic into `AnjianError::Internal`: a panic must never
/// unwind into the app (UniFFI would raise its own generic error, which apps do not expect).
pub(crate) fn guard<T>(call: impl FnOnce() -> Result<T, AnjianError>) -> Result<T, AnjianError> {
    catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|payload| Err(AnjianError::from_panic(payload)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anjian_core::Error as Core;

    #[test]
    fn each_core_error_becomes_the_case_an_app_branches_on() {
        let check = |core: Core, expected: &str| {
            let public = AnjianError::from(core);
            let kind = format!("{public:?}");
            assert!(kind.starts_with(expected), "{kind} is not {expected}");
        };
        check(Core::invalid("deadline", "before the visit"), "Validation");
        check(Core::Photo(anjian_core::PhotoError::Empty), "Validation");
        check(Core::InvalidDocument("x".into()), "Validation");
        check(Core::not_found("case", "1"), "NotFound");
        check(Core::NotAllowed("approved".into()), "Conflict");
        check(Core::Auth("bad token".into()), "Auth");
        check(Core::Network("refused".into()), "Network");
        check(Core::Sync("bad frame".into()), "Network");
        check(Core::Corrupt("bad page".into()), "Storage");
        check(
            Core::NewerDocument {
                found: 9,
                supported: 1,
            },
            "UpdateRequired",
        );
    }

    #[test]
    fn validation_keeps_the_field_and_the_core_message() {
        let public = AnjianError::from(Core::invalid(
            "deadline",
            "the deadline is before the visit",
        ));
        assert_eq!(
            public,
            AnjianError::Validation {
                field: "deadline".to_owned(),
                reason: "the deadline is before the visit".to_owned()
            }
        );
    }

    #[test]
    fn a_panic_in_a_guarded_call_is_an_internal_error() {
        let result: Result<(), AnjianError> = guard(|| panic!("boom"));
        assert_eq!(
            result,
            Err(AnjianError::Internal {
                reason: "panic inside the library: boom".to_owned()
            })
        );
    }
}
