//! The automerge-repo v1 protocol, with the server's checks between decoding and
//! applying. Every incoming message first passes the wire's limits (what its changes may
//! cost, before Automerge expands them); its changes must come from a device bound to
//! the signed-in user; they are applied to a copy of the document, judged by the rule
//! book (`anjian_core::rules`) against the case as the server has it, committed, and only
//! then shown to anyone: in the reply's heads, to other peers, in the catalog.
//!
//! The protocol is written without I/O, so that the simulation runs the same code as the
//! server: `session` is one connection's state (frames in, replies and document work
//! out), `document` one message or server-side change on one document. `socket` drives
//! them over a WebSocket with tokio, the apply threads and the writer thread; this module
//! holds what both the socket and the pages' and API's actions drive them with.

pub mod document;
pub mod session;
mod socket;

pub use socket::serve_socket;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anjian_core::{CaseId, Numbering, WritId, WritKind, case_doc, rules};
use automerge::AutoCommit;
use tracing::Instrument;

use self::document::{Candidate, Committing};
use crate::error::{AppError, AppResult};
use crate::hub::SlotDoc;
use crate::policy;
use crate::state::AppState;
use crate::storage::Storage;
use crate::users::User;

/// Runs `f` on the document on an apply thread (its lock held meanwhile); a job that
/// fails unexpectedly leaves the document to be read again from storage.
async fn with_doc<T: Send + 'static>(
    app: &AppState,
    guard: &mut SlotDoc,
    f: impl FnOnce(&mut SlotDoc) -> T + Send + 'static,
) -> AppResult<T> {
    let mut doc = std::mem::take(guard);
    let (doc, value) = app
        .apply
        .run(move || {
            let value = f(&mut doc);
            (doc, value)
        })
        .await?;
    *guard = doc;
    Ok(value)
}

/// As `with_doc`, with the time `f` takes on its apply thread charged to `user`'s bucket
/// (`apply_time`): what a sync connection does on the apply threads for its account (in
/// one of the account's turns, taken before the document's lock).
async fn with_doc_for<T: Send + 'static>(
    app: &AppState,
    user: i64,
    guard: &mut SlotDoc,
    f: impl FnOnce(&mut SlotDoc) -> T + Send + 'static,
) -> AppResult<T> {
    let (value, spent) = with_doc(app, guard, move |doc| {
        let started = std::time::Instant::now();
        let value = f(doc);
        (value, started.elapsed())
    })
    .await?;
    app.apply_time.charge(user, spent);
    Ok(value)
}

/// Commits a candidate and makes it the document everyone syncs. `token_hash`: the token
/// the changes came with over sync, which must still be good when they commit
/// (`Commit::token_hash`).
async fn persist(
    app: &AppState,
    user: &User,
    case_id: CaseId,
    guard: &mut SlotDoc,
    candidate: Candidate,
    token_hash: Option<&str>,
) -> AppResult<()> {
    let accepted = candidate.changes() as u64;
    let Committing {
        mut commit,
        doc,
        case,
        conflicts,
    } = candidate.committing(user.id, case_id, guard.stored_heads());
    commit.token_hash = token_hash.map(str::to_owned);
    let heads = commit.heads.clone();
    // Until the commit answers, the document in memory may no longer be the stored one:
    // should this future be dropped while it waits (a request whose client went away),
    // the commit still happens, and the next use must read the case as stored. If the
    // commit fails, the stored case is still the one read next.
    guard.forget();
    let chunks = app.writer.commit(commit).await?;
    guard.replace(doc, case, conflicts, heads);
    if Storage::should_compact(chunks) {
        // The changes are committed: a compaction that fails leaves more chunks to read,
        // and is tried again after the next commit.
        let storage = app.storage.clone();
        let compacted = with_doc(app, guard, move |slot| match slot.doc.as_mut() {
            Some(doc) => {
                let snapshot = loading_snapshot(doc)?;
                storage.compact(case_id, &snapshot, &slot.stored_heads())
            }
            None => Ok(()),
        })
        .await;
        if let Err(e) = compacted.and_then(|done| done) {
            tracing::warn!(case.id = %case_id, error = %e, "compaction failed; the case is stored as chunks");
        }
    }
    app.metrics
        .changes_accepted
        .fetch_add(accepted, Ordering::Relaxed);
    tracing::info!(case.id = %case_id, changes = accepted, user = %user.username, "changes committed");
    Ok(())
}

/// The document saved as one snapshot, once that snapshot is seen to load to the same
/// heads: the chunks it replaces are kept otherwise (a change stored before the rule book
/// refused changes built beside their device's last one leaves a document whose saved
/// bytes do not load, though its chunks do).
fn loading_snapshot(doc: &mut AutoCommit) -> AppResult<Vec<u8>> {
    let snapshot = doc.save();
    let loads = AutoCommit::load(&snapshot)
        .is_ok_and(|mut copy| case_doc::sorted_heads(&mut copy) == case_doc::sorted_heads(doc));
    if loads {
        Ok(snapshot)
    } else {
        Err(AppError::Internal(
            "the case saved as one snapshot does not load back; it stays stored as chunks".into(),
        ))
    }
}

/// Makes a change on the server as `user` (a supervisor's review action, sharing or
/// conflict resolution from the web pages or the API): `edit` runs on a copy of the
/// document, under its lock, with the user's own server-side actor; the new change is
/// then judged by the same rule book as changes arriving over sync, committed, and
/// announced to every connection syncing the case, so inspectors' devices receive it on
/// their next sync. A case the user may not see is answered as absent.
///
/// Once begun, the change runs to its end on a task of its own: a request that goes
/// away while it commits (the browser closed, the network gone) still leaves it
/// committed, announced, and the case's slot given back.
pub async fn change_on_server<T: Send + 'static>(
    app: &Arc<AppState>,
    user: &User,
    case_id: CaseId,
    edit: impl FnOnce(&mut AutoCommit) -> anjian_core::Result<T> + Send + 'static,
) -> AppResult<T> {
    // An account past its time on the apply threads is told to wait, as its sync
    // connections are held; otherwise its action takes one of its turns, before the lock,
    // and is told to wait if the actions before it in its turns spent the time meanwhile.
    within_apply_time(app, user.id)?;
    let app = app.clone();
    let user = user.clone();
    let change = async move {
        // A case out of the account's reach is answered from its visibility (one indexed
        // read, as a token's check is): its document is not read, decoded and judged for
        // an outsider who names it.
        if !app.storage.may_read(&user, case_id)? {
            return Err(AppError::NotFound(format!("no case {case_id}")));
        }
        let _turn = app.apply_time.turn(user.id).await;
        within_apply_time(&app, user.id)?;
        let slot = app.hub.slot(case_id);
        let result = async {
            let mut guard = slot.doc.lock().await;
            change_locked(&app, &user, case_id, &mut guard, None, edit).await
        }
        .await;
        app.hub.done_with(case_id, slot);
        result
    };
    tokio::spawn(change.in_current_span())
        .await
        .map_err(|e| AppError::Internal(format!("a change on the server stopped: {e}")))?
}

/// `TooMany` while account `user` owes time on the apply threads.
fn within_apply_time(app: &AppState, user: i64) -> AppResult<()> {
    let wait = app.apply_time.wait(user);
    if wait.is_zero() {
        return Ok(());
    }
    Err(AppError::TooMany {
        message: format!(
            "操作过于频繁，请稍后再试 (this account took its time on the apply threads; wait {} s)",
            wait.as_secs() + 1
        ),
        retry_after: wait.as_secs() + 1,
    })
}

/// `change_on_server` with the document's lock already held (`guard`), in `room` when
/// given (`document::change_in`).
async fn change_locked<T: Send + 'static>(
    app: &AppState,
    user: &User,
    case_id: CaseId,
    guard: &mut SlotDoc,
    room: Option<rules::Room>,
    edit: impl FnOnce(&mut AutoCommit) -> anjian_core::Result<T> + Send + 'static,
) -> AppResult<T> {
    let actor = app.storage.server_actor(user)?;
    let storage = app.storage.clone();
    let author = policy::author(user);
    let user_id = user.id;
    let limits = app.settings.limits.wire();
    let outcome = with_doc_for(app, user_id, guard, move |slot| {
        document::change_in(
            slot,
            storage.as_ref(),
            case_id,
            &author,
            user_id,
            actor,
            &limits,
            room,
            edit,
        )
    })
    .await??;
    let Some((value, candidate)) = outcome else {
        return Err(AppError::NotFound(format!("no case {case_id}")));
    };
    if let Some(candidate) = candidate {
        persist(app, user, case_id, guard, *candidate, None).await?;
        app.hub.announce(case_id, None);
    }
    Ok(value)
}

/// Gives every document of the case sealed offline with a provisional number (and not
/// voided) its number: one the server allocates from the sealer's district's and
/// department's sequence
/// to its own key, written as a change in the sealer's name by their server-side actor,
/// signed with the server's key (docs/decisions/0004). Run after each commit of the case,
/// under its lock, so that the device that brought the document receives its number in
/// the same sync; one that fails is tried again after the case's next commit.
pub(crate) async fn number_provisional(app: &AppState, case_id: CaseId, guard: &mut SlotDoc) {
    let state = match guard.judged() {
        Ok(Some((_, state, _))) => state,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(case.id = %case_id, error = %e, "cannot read the case to number its documents");
            return;
        }
    };
    let pending: Vec<(WritId, WritKind, String)> = state
        .case()
        .writs
        .iter()
        .filter(|w| w.provisional() && w.voided.is_none())
        .filter_map(|w| Some((w.id, w.kind, w.seal.as_ref()?.by.clone())))
        .collect();
    // A sealer whose number of a kind could not be had (the year's numbers spent, say)
    // is not tried again for that kind until the case's next commit: each try reads the
    // whole case, and a case may hold thousands of documents sealed offline.
    let mut failed: HashSet<(String, WritKind)> = HashSet::new();
    for (writ, kind, sealer) in pending {
        if failed.contains(&(sealer.clone(), kind)) {
            continue;
        }
        let numbered = async {
            let user = app.storage.user(&sealer)?;
            let actor = app.storage.server_actor(&user)?.to_hex_string();
            let storage = app.storage.clone();
            let sealer_user = user.clone();
            // A number is the server's own act: it takes the whole room, so that a case its
            // writers filled still has its documents numbered.
            let whole = rules::Room::whole(&app.settings.limits.wire());
            change_locked(app, &user, case_id, guard, Some(whole), move |doc| {
                // Checked again under the lock: a number is allocated only to be used.
                let case = anjian_core::case_doc::read(doc)?;
                if !case.writs.iter().any(|w| w.id == writ && w.provisional()) {
                    return Ok(());
                }
                let signed = storage
                    .allocate_server_number(&sealer_user, &actor, kind)
                    .map_err(|e| anjian_core::Error::Sync(format!("allocating a number: {e}")))?;
                let block = signed.block();
                let numbering = Numbering {
                    number: block.number(block.first),
                    block: signed.encode(),
                    by: sealer_user.username.clone(),
                    at: crate::queries::china_now(),
                };
                anjian_core::case_doc::number_writ(doc, writ, &numbering)
            })
            .await
        }
        .await;
        if let Err(e) = numbered {
            tracing::warn!(case.id = %case_id, writ = %writ, error = %e,
                "a provisional document number was not replaced; tried again after the case's next commit");
            app.metrics
                .numbers_not_given
                .fetch_add(1, Ordering::Relaxed);
            failed.insert((sealer, kind));
        }
    }
}

#[cfg(test)]
mod tests {
    use automerge::legacy::{Key, ObjectId, Op, OpType, SortedVec};
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, Change, ExpandedChange, ROOT, ScalarValue};

    use super::loading_snapshot;

    /// A case whose device's third change was built beside its second (as a change
    /// entered again after a refusal was, before the rule book refused such changes): its
    /// chunks load, one snapshot of it does not, and compacting it would lose the case.
    #[test]
    fn a_snapshot_that_does_not_load_back_replaces_no_chunks() {
        let actor = ActorId::from(vec![1u8; 16]);
        let mut doc = AutoCommit::new().with_actor(actor.clone());
        doc.put(ROOT, "place", "罐区").expect("put");
        doc.commit();
        let first = doc.get_heads();
        doc.put(ROOT, "level", "major").expect("put");
        doc.commit();
        loading_snapshot(&mut doc).expect("an honest case saves");
        let beside = Change::from(ExpandedChange {
            operations: vec![Op {
                action: OpType::Put(ScalarValue::Str("配电室".into())),
                obj: ObjectId::Root,
                key: Key::Map("room".into()),
                pred: SortedVec::new(),
                insert: false,
            }],
            actor_id: actor,
            hash: None,
            seq: 3,
            start_op: std::num::NonZeroU64::new(3).expect("non-zero"),
            time: 0,
            message: None,
            deps: first,
            extra_bytes: Vec::new(),
            author: None,
        });
        doc.apply_changes([beside]).expect("Automerge takes it");
        assert!(loading_snapshot(&mut doc).is_err());
    }
}
