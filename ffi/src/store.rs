//! `InspectorStore`: the core `Store` as one thread-safe object for apps, with every
//! capability of the store except sync (in `sync.rs`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use anjian_core as core;
use tokio::sync::Mutex;

use crate::enums::{Level, RectificationState, ReviewAction};
use crate::error::{AnjianError, guard};
use crate::records::{
    self, AnswerInput, Case, CaseQuery, CaseSummary, Conflict, Enterprise, FindingEdit,
    FindingQuery, FindingSummary, GarbageReport, HazardStep, HistoryEntry, Identity, ItemStat,
    NewCase, NewFinding, PendingBlob, PhotoInfo, PhotoLimits, PhotoTarget, RectificationOrder,
    Refusal, Resolution, SyncResult, Template, UploadState, Violation, list,
};

/// An inspector's offline store: one SQLite file on the device holding the inspector's
/// enterprises, cases (findings, rectifications, checklists, photos) and sync state.
///
/// Thread-safe: any thread may call any method; calls on one store run one at a time.
/// A sync takes the store only for its local steps, never while it waits for the
/// network, so the app keeps reading and recording during a sync; syncs of one store run
/// one at a time. Call from a background thread (Kotlin: `Dispatchers.IO`), never from
/// the sync listener.
#[derive(uniffi::Object)]
pub struct InspectorStore {
    /// The core store, `None` once closed.
    ///
    /// A `tokio` mutex rather than `std::sync::Mutex`: a sync on the runtime waits for
    /// it asynchronously between its network steps (a std lock would block a runtime
    /// worker while waiting). Blocking calls from app threads use `blocking_lock`.
    pub(crate) inner: Arc<Mutex<Option<core::Store>>>,
    /// Held for the whole of a sync, so that two syncs of one store do not interleave.
    pub(crate) syncing: Arc<Mutex<()>>,
    /// Set when a call panicked while holding the store: the in-memory state may then be
    /// ahead of the file, so the store refuses further calls until it is opened again.
    pub(crate) broken: Arc<AtomicBool>,
    /// The result of the last successful sync since the store was opened.
    pub(crate) last_sync: Arc<StdMutex<Option<SyncResult>>>,
}

impl InspectorStore {
    fn wrap(store: core::Store) -> Arc<Self> {
        Arc::new(InspectorStore {
            inner: Arc::new(Mutex::new(Some(store))),
            syncing: Arc::new(Mutex::new(())),
            broken: Arc::new(AtomicBool::new(false)),
            last_sync: Arc::new(StdMutex::new(None)),
        })
    }

    /// Runs `call` with the store, from an app thread: waits for calls in progress (a
    /// sync included), converts the core's error, and turns a panic into
    /// `AnjianError::Internal` that also stops the store.
    pub(crate) fn with_store<T>(
        &self,
        call: impl FnOnce(&mut core::Store) -> Result<T, AnjianError>,
    ) -> Result<T, AnjianError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Blocking here would stall the runtime that drives sync (and deadlock when
            // called from a sync listener while that sync holds the store).
            return Err(AnjianError::Internal {
                reason: "InspectorStore was called from inside the sync runtime (a sync \
                         listener?); call it from an app thread instead"
                    .to_owned(),
            });
        }
        self.check_usable()?;
        let mut store = self.inner.blocking_lock();
        let store = store.as_mut().ok_or_else(closed)?;
        catch_unwind(AssertUnwindSafe(|| call(store))).unwrap_or_else(|panic| {
            self.broken.store(true, Ordering::SeqCst);
            Err(AnjianError::from_panic(panic))
        })
    }

    /// Like `with_store`, for calls whose only error is the core's.
    pub(crate) fn core<T>(
        &self,
        call: impl FnOnce(&mut core::Store) -> core::Result<T>,
    ) -> Result<T, AnjianError> {
        self.with_store(|store| call(store).map_err(AnjianError::from))
    }

    pub(crate) fn check_usable(&self) -> Result<(), AnjianError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(AnjianError::Internal {
                reason: "an earlier call failed inside the library; close this store and \
                         open it again"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// The error for a call on a closed store.
pub(crate) fn closed() -> AnjianError {
    AnjianError::Storage {
        reason: "the store is closed; open it again".to_owned(),
    }
}

#[uniffi::export]
impl InspectorStore {
    /// Opens the store at `path` (created if missing) for the signed-in inspector, with the
    /// checklist templates built into the library.
    #[uniffi::constructor]
    pub fn open(path: String, identity: Identity) -> Result<Arc<Self>, AnjianError> {
        guard(|| {
            let identity = core::Identity::try_from(identity)?;
            Ok(Self::wrap(core::Store::open(&path, identity)?))
        })
    }

    /// Opens the store with the checklist templates in `template_dir` (TOML files
    /// distributed after the app was built) instead of the built-in ones.
    #[uniffi::constructor]
    pub fn open_with_templates(
        path: String,
        identity: Identity,
        template_dir: String,
    ) -> Result<Arc<Self>, AnjianError> {
        guard(|| {
            let identity = core::Identity::try_from(identity)?;
            let catalog = core::Catalog::load_dir(Path::new(&template_dir))
                .map_err(AnjianError::templates)?;
            Ok(Self::wrap(core::Store::open_with_catalog(
                &path,
                identity,
                Arc::new(catalog),
            )?))
        })
    }

    /// Closes the store, releasing the file; later calls fail with `Storage`. Waits for a
    /// sync in progress. Releasing the object (Kotlin `close()`, Swift's last reference)
    /// closes it too once no sync uses it; this name avoids clashing with Kotlin's
    /// `AutoCloseable.close`, which only releases the object.
    pub fn close_store(&self) {
        // Closing must work even on a broken store, so it bypasses `with_store`; from
        // inside the runtime (a sync listener) it cannot wait, and does nothing.
        if tokio::runtime::Handle::try_current().is_err() {
            self.inner.blocking_lock().take();
        }
    }

    /// Whether `close_store` was called (a store busy with a call or a sync is open).
    pub fn is_closed(&self) -> bool {
        self.inner.try_lock().is_ok_and(|store| store.is_none())
    }

    /// The inspector using this store.
    pub fn identity(&self) -> Result<Identity, AnjianError> {
        self.core(|s| Ok(Identity::from(s.identity())))
    }

    /// This device's id (its Automerge actor id, hex), stable for the life of the file.
    pub fn device_id(&self) -> Result<String, AnjianError> {
        self.core(|s| Ok(s.device_id()))
    }

    /// The file this store lives in.
    pub fn path(&self) -> Result<String, AnjianError> {
        self.core(|s| Ok(s.path().display().to_string()))
    }

    // -- enterprises ------------------------------------------------------------------

    /// Registers an enterprise, or updates the one with the same credit code. A credit
    /// code with a wrong check character is `Validation` on `credit_code`.
    pub fn register_enterprise(&self, enterprise: Enterprise) -> Result<(), AnjianError> {
        self.core(|s| s.register_enterprise(&enterprise.try_into()?))
    }

    /// The enterprise with this credit code.
    pub fn enterprise(&self, credit_code: String) -> Result<Enterprise, AnjianError> {
        self.core(|s| Ok(s.enterprise(&records::credit_code(&credit_code)?)?.into()))
    }

    /// Every registered enterprise, by name.
    pub fn enterprises(&self) -> Result<Vec<Enterprise>, AnjianError> {
        self.core(|s| Ok(list(s.enterprises()?)))
    }

    // -- cases ------------------------------------------------------------------------

    /// Opens a case for a registered enterprise and returns its id; the inspector is
    /// always on its team.
    pub fn open_case(&self, new_case: NewCase) -> Result<String, AnjianError> {
        self.core(|s| Ok(s.open_case(&new_case.try_into()?)?.to_string()))
    }

    /// A whole case: findings, rectifications, checklists, photos, review trail.
    pub fn case(&self, case_id: String) -> Result<Case, AnjianError> {
        self.core(|s| Ok(s.case(records::case_id(&case_id)?)?.into()))
    }

    /// Cases matching the query, newest first (read from the projections, fast).
    pub fn cases(&self, query: CaseQuery) -> Result<Vec<CaseSummary>, AnjianError> {
        self.core(|s| Ok(list(s.cases(&query.try_into()?)?)))
    }

    // -- findings ---------------------------------------------------------------------

    /// Records a finding in a case and returns its id.
    pub fn add_finding(&self, case_id: String, finding: NewFinding) -> Result<String, AnjianError> {
        self.core(|s| {
            Ok(s.add_finding(records::case_id(&case_id)?, &finding.into())?
                .to_string())
        })
    }

    /// Edits a finding; concurrent edits of one field on other devices become conflicts.
    pub fn edit_finding(
        &self,
        case_id: String,
        finding_id: String,
        edit: FindingEdit,
    ) -> Result<(), AnjianError> {
        self.core(|s| {
            s.edit_finding(
                records::case_id(&case_id)?,
                records::finding_id(&finding_id)?,
                &edit.into(),
            )
        })
    }

    /// Judges a finding's level (一般/重大); recorded even when unchanged, as a judgement.
    pub fn set_finding_level(
        &self,
        case_id: String,
        finding_id: String,
        level: Level,
    ) -> Result<(), AnjianError> {
        self.edit_finding(
            case_id,
            finding_id,
            FindingEdit {
                level: Some(level),
                ..FindingEdit::default()
            },
        )
    }

    /// Records a finding as a three-violations record (违章指挥/违章作业/违反劳动纪律),
    /// with the post and the person.
    pub fn set_violation(
        &self,
        case_id: String,
        finding_id: String,
        violation: Violation,
    ) -> Result<(), AnjianError> {
        self.edit_finding(
            case_id,
            finding_id,
            FindingEdit {
                violation: Some(violation),
                ..FindingEdit::default()
            },
        )
    }

    /// Removes a finding from the lists; the document keeps it, marked with who and when.
    pub fn remove_finding(&self, case_id: String, finding_id: String) -> Result<(), AnjianError> {
        self.core(|s| {
            s.remove_finding(
                records::case_id(&case_id)?,
                records::finding_id(&finding_id)?,
            )
        })
    }

    /// Findings matching the query.
    pub fn findings(&self, query: FindingQuery) -> Result<Vec<FindingSummary>, AnjianError> {
        self.core(|s| Ok(list(s.findings(&query.try_into()?)?)))
    }

    // -- rectification ----------------------------------------------------------------

    /// Orders rectification (整改) of a finding: measures, deadline, responsible person.
    pub fn order_rectification(
        &self,
        case_id: String,
        finding_id: String,
        order: RectificationOrder,
    ) -> Result<(), AnjianError> {
        self.core(|s| {
            s.order_rectification(
                records::case_id(&case_id)?,
                records::finding_id(&finding_id)?,
                &order.try_into()?,
            )
        })
    }

    /// Moves a rectification where no step of its follow-up is needed (to in progress or
    /// overdue); re-inspecting and closing are `follow_up` steps.
    pub fn move_rectification(
        &self,
        case_id: String,
        finding_id: String,
        next: RectificationState,
    ) -> Result<(), AnjianError> {
        self.core(|s| {
            s.move_rectification(
                records::case_id(&case_id)?,
                records::finding_id(&finding_id)?,
                next.into(),
            )
        })
    }

    /// Records a step of a hazard's follow-up by this store's user: on-site measures
    /// during the visit; 延期, 复查 (合格/不合格), 销号, and supervision after it, also on an
    /// approved case. A step the rule book does not allow (closing before a 合格
    /// re-inspection, a major hazard closed by an inspector, …) is `NotAllowed`.
    pub fn follow_up(
        &self,
        case_id: String,
        finding_id: String,
        step: HazardStep,
    ) -> Result<(), AnjianError> {
        self.core(|s| {
            s.follow_up(
                records::case_id(&case_id)?,
                records::finding_id(&finding_id)?,
                &step.try_into()?,
            )
        })
    }

    /// Records a review action by this store's user: inspectors submit (提交审核) or
    /// comment; the server refuses actions the user's role may not take (the refusal's
    /// reason arrives in `refusals()` after the next sync).
    pub fn review(
        &self,
        case_id: String,
        action: ReviewAction,
        text: String,
    ) -> Result<(), AnjianError> {
        self.core(|s| s.review(records::case_id(&case_id)?, action.into(), &text))
    }

    /// Open rectifications whose deadline is `on` (`YYYY-MM-DD`) or earlier, earliest first.
    pub fn rectifications_due(&self, on: String) -> Result<Vec<FindingSummary>, AnjianError> {
        self.core(|s| Ok(list(s.rectifications_due(records::date_in("on", &on)?)?)))
    }

    // -- checklists -------------------------------------------------------------------

    /// The checklist templates this store can attach.
    pub fn templates(&self) -> Result<Vec<Template>, AnjianError> {
        self.core(|s| Ok(list(s.templates())))
    }

    /// Attaches a checklist template to a case; returns the attached checklist's id.
    pub fn attach_checklist(
        &self,
        case_id: String,
        template_id: String,
    ) -> Result<String, AnjianError> {
        self.core(|s| {
            Ok(
                s.attach_checklist(records::case_id(&case_id)?, &template_id)?
                    .to_string(),
            )
        })
    }

    /// Answers an item of an attached checklist. A 不符合 answer creates a finding
    /// pre-filled from the item; its id is returned.
    pub fn answer_item(
        &self,
        case_id: String,
        checklist_id: String,
        item_id: String,
        answer: AnswerInput,
    ) -> Result<Option<String>, AnjianError> {
        self.core(|s| {
            Ok(s.answer_item(
                records::case_id(&case_id)?,
                records::checklist_id(&checklist_id)?,
                &item_id,
                &answer.into(),
            )?
            .map(|id| id.to_string()))
        })
    }

    /// How often each checklist item was answered and found 不符合, by post, over every
    /// case in the store (one template, or all).
    pub fn checklist_stats(
        &self,
        template_id: Option<String>,
    ) -> Result<Vec<ItemStat>, AnjianError> {
        self.core(|s| Ok(list(s.checklist_stats(template_id.as_deref())?)))
    }

    // -- photos -----------------------------------------------------------------------

    /// Sets the limits photos are checked against.
    pub fn set_photo_limits(&self, limits: PhotoLimits) -> Result<(), AnjianError> {
        self.core(|s| {
            s.set_photo_limits(limits.into());
            Ok(())
        })
    }

    /// Checks a photo (JPEG or PNG; convert HEIC first), stores the original byte-exact
    /// with a thumbnail, and returns what it learned; attach it with `attach_photo`.
    pub fn ingest_photo(&self, bytes: Vec<u8>) -> Result<PhotoInfo, AnjianError> {
        self.core(|s| Ok(s.ingest_photo(&bytes)?.into()))
    }

    /// Like `ingest_photo`, reading the photo from a file (e.g. the camera's output).
    pub fn ingest_photo_file(&self, path: String) -> Result<PhotoInfo, AnjianError> {
        self.core(|s| Ok(s.ingest_photo_file(&path)?.into()))
    }

    /// What ingesting the photo with this hash learned.
    pub fn photo(&self, sha256: String) -> Result<PhotoInfo, AnjianError> {
        self.core(|s| Ok(s.photo(&sha256)?.into()))
    }

    /// Attaches an ingested photo to a finding, a rectification or a checklist answer.
    pub fn attach_photo(
        &self,
        case_id: String,
        target: PhotoTarget,
        sha256: String,
        caption: String,
    ) -> Result<(), AnjianError> {
        self.core(|s| {
            s.attach_photo(
                records::case_id(&case_id)?,
                &target.try_into()?,
                &sha256,
                &caption,
            )
        })
    }

    /// Detaches a photo from one place (its bytes stay until `collect_garbage`).
    pub fn detach_photo(
        &self,
        case_id: String,
        target: PhotoTarget,
        sha256: String,
    ) -> Result<(), AnjianError> {
        self.core(|s| s.detach_photo(records::case_id(&case_id)?, &target.try_into()?, &sha256))
    }

    /// The thumbnail (JPEG, 320 px on the long edge) of a photo ingested on this device,
    /// by the photo's hash. For a photo received by sync, read `photo_bytes` of the
    /// `PhotoRef.thumbnail` hash: sync brings thumbnails, not what ingesting learned.
    pub fn photo_thumbnail(&self, sha256: String) -> Result<Vec<u8>, AnjianError> {
        self.core(|s| s.photo_thumbnail(&sha256))
    }

    /// The bytes of a blob this device holds (an original byte-exact, or a thumbnail),
    /// checked against its hash; `NotFound` for an original not fetched yet
    /// (`fetch_original` brings it from the server).
    pub fn photo_bytes(&self, sha256: String) -> Result<Vec<u8>, AnjianError> {
        self.core(|s| s.blob(&sha256))
    }

    /// Whether this device holds the blob with this hash.
    pub fn has_photo_bytes(&self, sha256: String) -> Result<bool, AnjianError> {
        self.core(|s| s.has_blob(&sha256))
    }

    /// Photo blobs the server has not acknowledged yet (thumbnails first).
    pub fn pending_uploads(&self) -> Result<Vec<PendingBlob>, AnjianError> {
        self.core(|s| Ok(list(s.pending_uploads()?)))
    }

    /// Fixes the device time the store stamps records and changes with (RFC 3339), for
    /// training and demonstrations that replay a visit; `None` returns to the phone's
    /// clock. The server records its own receipt time beside it regardless.
    pub fn set_device_time(&self, at: Option<String>) -> Result<(), AnjianError> {
        self.core(|s| {
            let clock = match at {
                Some(text) => {
                    let at = records::time_in("at", &text)?;
                    std::sync::Arc::new(move || at) as core::Clock
                }
                None => core::system_clock(),
            };
            s.set_clock(clock);
            Ok(())
        })
    }

    /// How many seconds sync waits for the server to connect or answer before it fails
    /// with `Network` (default 30; raise it on poor signal).
    pub fn set_network_timeout_secs(&self, seconds: u32) -> Result<(), AnjianError> {
        self.core(|s| {
            s.set_network_timeout(std::time::Duration::from_secs(u64::from(seconds.max(1))));
            Ok(())
        })
    }

    /// Whether sync uploads originals (thumbnails always go): hold them back off Wi-Fi.
    pub fn set_upload_originals(&self, upload: bool) -> Result<(), AnjianError> {
        self.core(|s| {
            s.set_upload_originals(upload);
            Ok(())
        })
    }

    /// Whether sync uploads originals.
    pub fn upload_originals(&self) -> Result<bool, AnjianError> {
        self.core(|s| Ok(s.upload_originals()))
    }

    /// Deletes every blob no case mentions any more and none has for a day since it was
    /// stored (a photo just taken is kept while it waits to be attached), but for those a
    /// change the server refused names; nothing else deletes evidence.
    pub fn collect_garbage(&self) -> Result<GarbageReport, AnjianError> {
        self.core(|s| Ok(s.collect_garbage()?.into()))
    }

    // -- conflicts and history --------------------------------------------------------

    /// Every field of the case that devices wrote concurrently with different values.
    pub fn conflicts(&self, case_id: String) -> Result<Vec<Conflict>, AnjianError> {
        self.core(|s| Ok(list(s.conflicts(records::case_id(&case_id)?)?)))
    }

    /// Resolves the conflict at `path` by keeping one value or writing a new one.
    pub fn resolve_conflict(
        &self,
        case_id: String,
        path: Vec<String>,
        resolution: Resolution,
    ) -> Result<(), AnjianError> {
        self.core(|s| s.resolve_conflict(records::case_id(&case_id)?, &path, &resolution.into()))
    }

    /// Every change of the case: author, device, device time, action.
    pub fn history(&self, case_id: String) -> Result<Vec<HistoryEntry>, AnjianError> {
        self.core(|s| Ok(list(s.history(records::case_id(&case_id)?)?)))
    }

    /// The heads of the case document (sorted hex hashes): equal heads, equal documents.
    pub fn heads(&self, case_id: String) -> Result<Vec<String>, AnjianError> {
        self.core(|s| s.heads(records::case_id(&case_id)?))
    }

    /// The case document's full bytes, to hand to another store (`merge_case`).
    pub fn export_case(&self, case_id: String) -> Result<Vec<u8>, AnjianError> {
        self.core(|s| s.export_case(records::case_id(&case_id)?))
    }

    /// Merges a case file from another phone (`export_case`), creating the case if it is
    /// new here: each new change is verified against its signer's certificate and judged
    /// by the rule book, as in a peer session; what is left out is reported. Invalid bytes
    /// change nothing.
    pub fn merge_case(&self, bytes: Vec<u8>) -> Result<crate::peer::MergedCase, AnjianError> {
        self.core(|s| {
            let merged = s.merge_case(&bytes)?;
            Ok(crate::peer::MergedCase {
                case_id: merged.case.to_string(),
                result: merged.received.into(),
            })
        })
    }

    /// Folds a case's stored chunks into one snapshot now.
    pub fn compact(&self, case_id: String) -> Result<(), AnjianError> {
        self.core(|s| s.compact(records::case_id(&case_id)?))
    }

    // -- sync state -------------------------------------------------------------------

    /// Changes the server refused, newest first, with its reasons: each refused change,
    /// and each dropped because it built on one (with the change that holds it again, if
    /// the device entered it again); each with what it was.
    pub fn refusals(&self) -> Result<Vec<Refusal>, AnjianError> {
        self.core(|s| Ok(list(s.refusals()?)))
    }

    /// Enters again, by hand, a change of this device that a refusal dropped and that was
    /// not entered again then, or only in part (once the rule book allows it: the case
    /// reopened, say); returns the new change's hash. What it wrote into records of
    /// dropped changes goes into them where they were entered again since, and is left
    /// out where they were not.
    pub fn enter_again(&self, case_id: String, change_hash: String) -> Result<String, AnjianError> {
        self.core(|s| s.enter_again(records::case_id(&case_id)?, &change_hash))
    }

    /// How many of the case's changes the server has acknowledged.
    pub fn upload_state(&self, case_id: String) -> Result<UploadState, AnjianError> {
        self.core(|s| Ok(s.upload_state(records::case_id(&case_id)?)?.into()))
    }

    /// Where this store last read the server's catalog up to (0 before the first sync).
    pub fn sync_cursor(&self, server: String) -> Result<i64, AnjianError> {
        self.core(|s| s.sync_cursor(server.trim_end_matches('/')))
    }

    /// When this store last completed a sync with `server` (RFC 3339; kept across
    /// restarts, for a "last synced" line), or `None` before the first.
    pub fn last_synced_at(&self, server: String) -> Result<Option<String>, AnjianError> {
        self.core(|s| Ok(s.last_synced_at(&server)?.map(|t| t.to_rfc3339())))
    }

    /// The result of the last successful sync since the store was opened, if any.
    pub fn last_sync_result(&self) -> Option<SyncResult> {
        self.last_sync
            .lock()
            .map(|last| last.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

#[cfg(feature = "test-hooks")]
#[uniffi::export]
impl InspectorStore {
    /// Test hook (feature `test-hooks`): panics inside the library while holding the
    /// store, so that binding tests can check that the app gets `AnjianError.Internal`
    /// and not a crash, and that the store then refuses further calls.
    pub fn debug_panic(&self, message: String) -> Result<(), AnjianError> {
        self.core(|_| panic!("{message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Arc<InspectorStore> {
        InspectorStore::open(
            dir.join("store.db").display().to_string(),
            Identity {
                user_id: "zhang".to_owned(),
                name: "张伟".to_owned(),
                department: "应急管理".to_owned(),
                district: "310101".to_owned(),
                role: "inspector".to_owned(),
            },
        )
        .expect("open")
    }

    #[test]
    fn a_panic_inside_a_store_call_is_internal_and_stops_the_store_until_reopened() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        let error = store
            .core(|_| -> core::Result<()> { panic!("模拟的内部错误") })
            .expect_err("the panic comes back as an error");
        assert!(
            matches!(&error, AnjianError::Internal { reason } if reason.contains("模拟的内部错误")),
            "{error:?}"
        );
        assert!(matches!(
            store.templates(),
            Err(AnjianError::Internal { .. })
        ));
        store.close_store();
        assert!(!open(dir.path()).templates().expect("reopened").is_empty());
    }

    #[test]
    fn a_call_from_inside_the_runtime_is_refused_instead_of_blocking_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        let runtime = crate::runtime().expect("runtime");
        let inside = runtime.block_on(async { store.templates() });
        assert!(matches!(inside, Err(AnjianError::Internal { .. })));
        assert!(store.templates().is_ok(), "the store itself is fine");
    }
}
