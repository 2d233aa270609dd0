//! The documents being synced or changed right now, shared by every connection: one slot
//! per document with its lock, the document when loaded, and the connections to tell when
//! it changes. A slot lives only while someone holds it (a connection subscribed to the
//! document, or a request working on it); the most recently used documents stay loaded
//! while their slots live.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anjian_core::rules::{self, Author, CaseState};
use anjian_core::{Case, CaseId};
use automerge::AutoCommit;
use tokio::sync::mpsc;

use crate::error::{AppError, AppResult};
use crate::storage::Documents;

/// How many documents stay loaded between messages; others are read from storage when a
/// message for them arrives.
const LOADED_DOCUMENTS: usize = 64;

/// The documents in use.
#[derive(Default)]
pub struct Hub {
    slots: std::sync::Mutex<HashMap<CaseId, Arc<Slot>>>,
    /// Documents held in memory, least recently used first.
    loaded: std::sync::Mutex<VecDeque<CaseId>>,
    next_connection: AtomicU64,
}

/// One document: loaded lazily, locked while a message for it is handled, and the
/// connections to tell when it changes.
#[derive(Default)]
pub struct Slot {
    /// The document, locked while one message (or one server-side change) is handled.
    pub doc: tokio::sync::Mutex<SlotDoc>,
    subscribers: std::sync::Mutex<HashMap<u64, mpsc::UnboundedSender<CaseId>>>,
}

/// A document as the hub holds it. What is read from it is read when first needed: a
/// peer that only reads the case costs the document and its header, not the whole case.
#[derive(Default)]
pub struct SlotDoc {
    loaded: bool,
    /// The document, if the server has it.
    pub doc: Option<AutoCommit>,
    /// The case's header (no findings or checklists): who may read it.
    header: Option<Case>,
    /// The case as the rule book judged it, and how many fields of the document are in
    /// conflict: what judging changes needs.
    judged: Option<(CaseState, usize)>,
    /// The document's heads as stored (hex, sorted; empty while the server has none).
    heads: Vec<String>,
}

impl SlotDoc {
    /// Reads the document from storage unless it is loaded and, where other server
    /// processes commit to the same database, still the stored one.
    pub fn load(&mut self, storage: &dyn Documents, case: CaseId) -> AppResult<()> {
        if self.loaded && storage.shared() {
            let stored = storage.stored_heads(case)?.unwrap_or_default();
            if stored != self.heads {
                self.loaded = false;
            }
        }
        if !self.loaded {
            self.doc = storage.load_document(case)?;
            self.heads = self
                .doc
                .as_mut()
                .map(anjian_core::case_doc::sorted_heads)
                .unwrap_or_default();
            self.header = None;
            self.judged = None;
            self.loaded = true;
        }
        Ok(())
    }

    /// Whether `author` may read the case (not when the server has none).
    pub fn may_read(&mut self, author: &Author) -> AppResult<bool> {
        if let Some((state, _)) = &self.judged {
            return Ok(rules::may_read(author, state.case()));
        }
        let Some(doc) = &self.doc else {
            return Ok(false);
        };
        let header = match self.header.take() {
            Some(header) => header,
            None => anjian_core::case_doc::read_header(doc).map_err(damaged)?,
        };
        let may = rules::may_read(author, &header);
        self.header = Some(header);
        Ok(may)
    }

    /// The document with the case as the rule book judged it and its number of fields in
    /// conflict (read from the document when first needed), if the server has it.
    pub fn judged(&mut self) -> AppResult<Option<(&mut AutoCommit, &CaseState, usize)>> {
        let Some(doc) = self.doc.as_mut() else {
            return Ok(None);
        };
        if self.judged.is_none() {
            let state = CaseState::of_stored(doc).map_err(damaged)?;
            let conflicts = anjian_core::case_doc::conflicts(doc)
                .map_err(damaged)?
                .len();
            self.judged = Some((state, conflicts));
        }
        let (state, conflicts) = self.judged.as_ref().expect("read above");
        Ok(Some((doc, state, *conflicts)))
    }

    /// The document and the case, once committed changes made them the server's; `heads`
    /// are those the commit stored (`Commit::heads`).
    pub fn replace(
        &mut self,
        doc: AutoCommit,
        state: CaseState,
        conflicts: usize,
        heads: Vec<String>,
    ) {
        self.heads = heads;
        self.doc = Some(doc);
        self.header = None;
        self.judged = Some((state, conflicts));
        self.loaded = true;
    }

    /// The heads the document had when it was read from storage or last committed: what
    /// a commit of changes judged against it expects to find stored.
    pub fn stored_heads(&self) -> Vec<String> {
        self.heads.clone()
    }

    /// Forgets the document, so that the next use reads it from storage again.
    pub fn forget(&mut self) {
        *self = SlotDoc::default();
    }
}

fn damaged(e: anjian_core::Error) -> AppError {
    AppError::Internal(format!("a stored case: {e}"))
}

impl Hub {
    /// A new connection's id.
    pub fn connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// The slot of `case`, created if no one holds it. Give it back with `release`.
    pub fn slot(&self, case: CaseId) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(case).or_default().clone()
    }

    /// Gives back a slot taken with `slot` (drop your `Arc` first): the slot and its
    /// document are freed when no connection is subscribed and no one else holds it.
    pub fn release(&self, case: CaseId) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let unused = slots.get(&case).is_some_and(|slot| {
            // Every other holder took its clone under this lock, so a count of one
            // cannot grow while the lock is held.
            Arc::strong_count(slot) == 1
                && slot
                    .subscribers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty()
        });
        if unused {
            slots.remove(&case);
            drop(slots);
            let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            loaded.retain(|c| *c != case);
        }
    }

    /// Gives back a slot whose document was just used: it counts as recently used, and
    /// is freed if no one else holds it.
    pub fn done_with(&self, case: CaseId, slot: Arc<Slot>) {
        drop(slot);
        self.touched(case);
        self.release(case);
    }

    /// Subscribes connection `id` to changes of `case` (the connection holds the slot
    /// until it unsubscribes).
    pub fn subscribe(&self, case: CaseId, id: u64, notify: &mpsc::UnboundedSender<CaseId>) {
        let slot = self.slot(case);
        slot.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, notify.clone());
    }

    /// Ends connection `id`'s subscription to `case`, freeing the slot if it was the last.
    pub fn unsubscribe(&self, case: CaseId, id: u64) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&case)
            .cloned();
        if let Some(slot) = slot {
            slot.subscribers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
        self.release(case);
    }

    /// Tells every connection subscribed to `case` (but `except`, the one that made the
    /// change) that it changed.
    pub fn announce(&self, case: CaseId, except: Option<u64>) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&case)
            .cloned();
        let Some(slot) = slot else {
            return;
        };
        let subscribers = slot.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for (id, sender) in subscribers.iter() {
            if Some(*id) != except {
                let _ = sender.send(case);
            }
        }
    }

    /// Records that `case` was just used, and unloads the least recently used documents
    /// beyond the limit (skipping any that a connection is working on right now).
    pub fn touched(&self, case: CaseId) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(position) = loaded.iter().position(|c| *c == case) {
            loaded.remove(position);
        }
        loaded.push_back(case);
        let mut attempts = loaded.len();
        while loaded.len() > LOADED_DOCUMENTS && attempts > 0 {
            attempts -= 1;
            let Some(oldest) = loaded.pop_front() else {
                break;
            };
            let slot = self
                .slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&oldest)
                .cloned();
            let unloaded = oldest != case
                && slot.is_none_or(|slot| match slot.doc.try_lock() {
                    Ok(mut doc) => {
                        *doc = SlotDoc::default();
                        true
                    }
                    Err(_) => false,
                });
            if !unloaded {
                loaded.push_back(oldest);
            }
        }
    }

    /// Slots alive (documents someone holds or is subscribed to).
    pub fn slots(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Documents loaded in memory.
    pub fn loaded(&self) -> usize {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
