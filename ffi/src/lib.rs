//! anjian-ffi: the Anjian core inside Kotlin, Swift and Python apps, through UniFFI.
//!
//! A thin crate over `anjian-core`: one object, [`InspectorStore`], with coarse calls that
//! take and return plain owned records ([`records`]), one error enum ([`AnjianError`]) of
//! the cases an app branches on, sync as a listener plus a cancelling handle (or an
//! `async` call), and [`init_library`] to set up logging and the runtime. `ffi/README.md` shows the
//! API from Kotlin and Python and how to build for Android and iOS.

uniffi::setup_scaffolding!("anjian");

mod enums;
mod error;
mod peer;
mod records;
mod store;
mod sync;
mod writs;

use std::sync::OnceLock;

pub use enums::{
    AnswerResult, CaseType, Industry, Level, Operation, RectificationState, ReviewState, RiskGrade,
    TemplateKind, ViolationKind,
};
pub use error::AnjianError;
pub use peer::{DeviceSigner, PeerRefusal, PeerResult, PeerSession, ServerReceipt};
pub use records::*;
pub use store::InspectorStore;
pub use sync::{SyncHandle, SyncListener, SyncProgress, SyncProgressListener};

/// Threads of the runtime that runs syncs: a phone has few cores and sync is I/O-bound.
const RUNTIME_THREADS: usize = 2;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The library's tokio runtime, created on first use (by `init_library` or the first sync).
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, AnjianError> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_THREADS)
        .thread_name("anjian-sync")
        .enable_all()
        .build()
        .map_err(|e| AnjianError::Internal {
            reason: format!("cannot start the sync runtime: {e}"),
        })?;
    // Two threads may race to create it; the loser's runtime is dropped unused, outside
    // any runtime context, which is allowed.
    Ok(RUNTIME.get_or_init(|| built))
}

/// Sets up the library once per process: logging to standard error with a `tracing`
/// filter (`"info"`, `"anjian_core=debug,info"`, …) and the runtime that runs syncs.
/// Call it at app start; calling it again changes nothing. Everything also works without
/// it (the runtime starts on first use, logging stays off).
#[uniffi::export]
pub fn init_library(log_filter: String) -> Result<(), AnjianError> {
    error::guard(|| {
        let filter = tracing_subscriber::EnvFilter::try_new(&log_filter).map_err(|e| {
            AnjianError::Validation {
                field: "log_filter".to_owned(),
                reason: format!("{log_filter:?} is not a log filter: {e}"),
            }
        })?;
        // A second call finds a subscriber installed (by us or the host) and keeps it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
        runtime()?;
        Ok(())
    })
}

/// The library's version, and the store and document schema versions it reads and writes
/// (`anjian-ffi 0.1.0 (store 6, schema 1)`), for an app's about page and bug reports.
#[uniffi::export]
pub fn library_version() -> String {
    format!(
        "anjian-ffi {} (store {}, schema {})",
        env!("CARGO_PKG_VERSION"),
        anjian_core::STORE_VERSION,
        anjian_core::SCHEMA_VERSION
    )
}
