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
use automerge::{AutoCommit, ReadDoc};
use tokio::sync::mpsc;

use crate::error::{AppError, AppResult};
use crate::storage::Documents;

/// How many operations the documents that stay loaded between messages hold in all;
/// others are read from storage when a message for them arrives. Automerge keeps about
/// 120 bytes per operation, so this is about 64 MB of documents (and about as much again
/// of the cases read from them to judge changes): some 1,000 cases of twenty findings
/// (each about 500 operations), or many more small ones.
const LOADED_OPERATIONS: usize = 512 * 1024;

/// The documents in use.
pub struct Hub {
    slots: std::sync::Mutex<HashMap<CaseId, Arc<Slot>>>,
    /// Documents held in memory, least recently used first.
    loaded: std::sync::Mutex<Loaded>,
    /// How many operations the loaded documents may hold in all.
    loaded_limit: usize,
    next_connection: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::holding(LOADED_OPERATIONS)
    }
}

/// The documents held in memory, least recently used first, each with its operations as
/// last counted, and their sum.
#[derive(Default)]
struct Loaded {
    order: VecDeque<(CaseId, usize)>,
    operations: usize,
}

impl Loaded {
    /// Takes `case` out; returns its operations as counted.
    fn remove(&mut self, case: CaseId) -> Option<usize> {
        let position = self.order.iter().position(|(c, _)| *c == case)?;
        let (_, operations) = self.order.remove(position)?;
        self.operations -= operations;
        Some(operations)
    }

    fn push(&mut self, case: CaseId, operations: usize) {
        self.order.push_back((case, operations));
        self.operations += operations;
    }
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

    /// Whether the document is in memory (read from storage, or committed here).
    pub fn is_loaded(&self) -> bool {
        self.loaded
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
        mut doc: AutoCommit,
        state: CaseState,
        conflicts: usize,
        heads: Vec<String>,
    ) {
        anjian_core::case_doc::forget_patches(&mut doc);
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
    /// A hub whose loaded documents hold at most `operations` operations in all.
    fn holding(operations: usize) -> Self {
        Hub {
            slots: Default::default(),
            loaded: Default::default(),
            loaded_limit: operations,
            next_connection: AtomicU64::new(0),
        }
    }

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
            loaded.remove(case);
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
        let slot = |case: &CaseId| {
            self.slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(case)
                .cloned()
        };
        // Counted when no one is working on it (else as counted before). A document not
        // in memory (answered from storage, or not stored) is not listed: the list stays
        // as short as what memory holds.
        enum Held {
            Operations(usize),
            Nothing,
            Busy,
        }
        let held = match slot(&case) {
            None => Held::Nothing,
            Some(slot) => match slot.doc.try_lock() {
                Ok(doc) => doc.doc.as_ref().map_or(Held::Nothing, |d| {
                    Held::Operations(d.stats().num_ops as usize + 1)
                }),
                Err(_) => Held::Busy,
            },
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let before = loaded.remove(case);
        match held {
            Held::Operations(operations) => loaded.push(case, operations),
            Held::Busy => loaded.push(case, before.unwrap_or(1)),
            Held::Nothing => return,
        }
        let mut attempts = loaded.order.len();
        while loaded.operations > self.loaded_limit && attempts > 0 {
            attempts -= 1;
            let Some((oldest, operations)) = loaded.order.pop_front() else {
                break;
            };
            loaded.operations -= operations;
            let unloaded = oldest != case
                && slot(&oldest).is_none_or(|slot| match slot.doc.try_lock() {
                    Ok(mut doc) => {
                        *doc = SlotDoc::default();
                        true
                    }
                    Err(_) => false,
                });
            if !unloaded {
                loaded.push(oldest, operations);
            }
        }
    }

    /// Slots alive (documents someone holds or is subscribed to).
    pub fn slots(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Documents loaded in memory.
    pub fn loaded(&self) -> usize {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .order
            .len()
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;

    use super::*;

    /// A loaded document of `n` operations in `case`'s slot, which a connection holds.
    fn load(hub: &Hub, case: CaseId, n: usize, notify: &mpsc::UnboundedSender<CaseId>) {
        hub.subscribe(case, 1, notify);
        let slot = hub.slot(case);
        {
            let mut held = slot.doc.try_lock().expect("free");
            let mut doc = AutoCommit::new();
            for i in 0..n {
                doc.put(automerge::ROOT, format!("k{i}"), "v").expect("put");
            }
            held.loaded = true;
            held.doc = Some(doc);
        }
        hub.done_with(case, slot);
    }

    fn is_loaded(hub: &Hub, case: CaseId) -> bool {
        hub.slot(case).doc.try_lock().expect("free").doc.is_some()
    }

    #[test]
    fn documents_stay_loaded_by_the_operations_they_hold_the_least_recently_used_going_first() {
        let hub = Hub::holding(100);
        let (notify, _) = mpsc::unbounded_channel();
        let cases: Vec<CaseId> = (0..4).map(|_| CaseId::new()).collect();
        load(&hub, cases[0], 10, &notify);
        load(&hub, cases[1], 10, &notify);
        load(&hub, cases[2], 10, &notify);
        assert_eq!(
            hub.loaded(),
            3,
            "small documents: more than a count would keep"
        );
        // Using the first again makes the second the least recently used.
        hub.touched(cases[0]);
        load(&hub, cases[3], 80, &notify);
        assert!(
            !is_loaded(&hub, cases[1]),
            "the least recently used is unloaded"
        );
        assert!(is_loaded(&hub, cases[0]));
        assert!(
            !is_loaded(&hub, cases[2]),
            "and the next, until the rest fit"
        );
        assert!(is_loaded(&hub, cases[3]));
        assert_eq!(hub.loaded(), 2);
        // A document larger than the whole limit stays while it is the one just used.
        load(&hub, cases[1], 150, &notify);
        assert!(is_loaded(&hub, cases[1]));
        assert_eq!(hub.loaded(), 1);
    }

    #[test]
    fn a_document_not_in_memory_is_not_listed() {
        let hub = Hub::holding(100);
        let (notify, _) = mpsc::unbounded_channel();
        let (kept, served) = (CaseId::new(), CaseId::new());
        load(&hub, kept, 10, &notify);
        hub.subscribe(served, 1, &notify);
        let slot = hub.slot(served);
        hub.done_with(served, slot);
        assert_eq!(hub.loaded(), 1, "only the document in memory");
        load(&hub, served, 10, &notify);
        assert_eq!(hub.loaded(), 2);
        hub.slot(served).doc.try_lock().expect("free").forget();
        hub.touched(served);
        assert_eq!(hub.loaded(), 1, "forgotten, it leaves the list");
    }
}
