//! The client's side of one sync round, without any I/O: given the server's catalog it
//! decides which cases to exchange, turns incoming frames into store updates and outgoing
//! frames, and knows when every case is done. The transport (`client.rs`) only moves
//! frames.

use std::collections::{BTreeMap, BTreeSet};

use automerge::sync;
use serde::{Deserialize, Serialize};

use super::docid::DocumentId;
use super::wire::{
    PROTOCOL_VERSION, PeerMetadata, REFUSAL_EXTENSION, SIGNATURES_EXTENSION, WireMessage,
};
use crate::codes::CaseId;
use crate::error::{Error, Result};
use crate::signing::ChangeSignature;
use crate::store::Store;

/// One document in the server's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogEntry {
    /// The automerge-repo document id.
    pub document_id: String,
    /// The document's heads on the server (hex change hashes, sorted).
    pub heads: Vec<String>,
}

/// `GET /api/v1/catalog?since=CURSOR`: the documents this user may see that changed
/// since the cursor, and the cursor to pass next time; a page at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogPage {
    /// Pass as `since` next time.
    pub cursor: i64,
    /// Documents changed since the cursor, oldest change first.
    pub documents: Vec<CatalogEntry>,
    /// The page was cut short: more documents changed after `cursor` (read them next).
    /// Absent from servers before the catalog was paged.
    #[serde(default)]
    pub more: bool,
    /// Devices revoked, or of disabled accounts, whose certificates may still be within
    /// their validity: the phone refuses their changes on site from then on
    /// (`Store::learn_revocations`). Absent when there are none, and from servers before
    /// this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<RevokedDevice>,
}

/// A device whose certificates issued up to `issued_before` vouch for nothing any more:
/// it was revoked, or its account disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedDevice {
    /// The device's actor id (hex).
    pub actor: String,
    /// The newest certificate the server issued the device, Unix seconds.
    pub issued_before: i64,
}

/// How far a sync round has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncProgress {
    /// Documents finished.
    pub documents_done: usize,
    /// Documents to exchange in this round.
    pub documents_total: usize,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Bytes received so far.
    pub bytes_received: u64,
}

/// What a sync round did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// Documents exchanged, each counted once however many rounds and pages it took.
    pub documents: usize,
    /// Documents the server now holds exactly as this device does.
    pub acknowledged: usize,
    /// Documents whose changes the server refused, with its reason.
    pub refused: Vec<(CaseId, String)>,
    /// Documents with changes the server holds back, not refused, with its reason:
    /// changes signed by a device that has not signed in yet (carried here from an on-site
    /// merge), and those built on them. They stay, and go again next sync.
    pub waiting: Vec<(CaseId, String)>,
    /// Documents the server does not have or this user may not see.
    pub unavailable: Vec<CaseId>,
    /// Documents this device holds damaged (they do not load: `Error::Corrupt`), with why:
    /// left out of the sync, which goes on with the others.
    pub damaged: Vec<(CaseId, String)>,
    /// WebSocket frames sent and received, and HTTP round trips.
    pub frames_sent: usize,
    /// Frames received.
    pub frames_received: usize,
    /// HTTP requests made (the catalog).
    pub http_requests: usize,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Blobs the server now holds whole (uploaded, or found there).
    pub blobs_uploaded: usize,
    /// Blob bytes sent.
    pub blob_bytes_sent: u64,
    /// Why the server put off the uploads left (its bound of what one account stores in a
    /// day): they stay, and go at a later sync.
    pub uploads_deferred: Option<String>,
    /// Thumbnails downloaded.
    pub thumbnails_downloaded: usize,
    /// The server's signed receipts of changes newly kept (`Store::receipts`).
    pub receipts: usize,
    /// Blocks of document numbers the server newly allocated this device.
    pub number_blocks: usize,
    /// The cases exchanged.
    pub cases: Vec<CaseId>,
}

impl SyncReport {
    /// Adds another round's report to this one; a case exchanged in both counts once.
    pub fn absorb(&mut self, other: SyncReport) {
        let seen: BTreeSet<CaseId> = self.cases.iter().copied().collect();
        let again = other.cases.iter().filter(|c| seen.contains(c)).count();
        self.documents += other.documents - again;
        self.acknowledged += other.acknowledged;
        self.refused.extend(other.refused);
        self.waiting.extend(other.waiting);
        self.unavailable.extend(other.unavailable);
        for (case, why) in other.damaged {
            if !self.damaged.iter().any(|(c, _)| *c == case) {
                self.damaged.push((case, why));
            }
        }
        self.frames_sent += other.frames_sent;
        self.frames_received += other.frames_received;
        self.http_requests += other.http_requests;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.blobs_uploaded += other.blobs_uploaded;
        self.blob_bytes_sent += other.blob_bytes_sent;
        if other.uploads_deferred.is_some() {
            self.uploads_deferred = other.uploads_deferred;
        }
        self.thumbnails_downloaded += other.thumbnails_downloaded;
        self.receipts += other.receipts;
        self.number_blocks += other.number_blocks;
        self.cases
            .extend(other.cases.into_iter().filter(|c| !seen.contains(c)));
    }

    /// The cases this device holds that go no further in this sync: the server held their
    /// changes back, or this device holds them damaged. A later round or page leaves them
    /// out (each would be planned again, as not acknowledged); the next sync tries them
    /// again. A case the server said `doc-unavailable` for is one this device asked for and
    /// does not hold: it is planned again only if a later page lists it again.
    pub fn settled_for_now(&self) -> BTreeSet<CaseId> {
        let waiting = self.waiting.iter().map(|(case, _)| *case);
        let damaged = self.damaged.iter().map(|(case, _)| *case);
        waiting.chain(damaged).collect()
    }
}

/// One sync round with one server.
pub struct SyncSession {
    server: String,
    peer_id: String,
    server_peer: Option<String>,
    states: BTreeMap<CaseId, sync::State>,
    pending: BTreeSet<CaseId>,
    planned: Vec<CaseId>,
    total: usize,
    report: SyncReport,
    /// A case left this device on a refusal: the next round reads the whole catalog.
    reread_catalog: bool,
    /// How many of the server's messages for a case brought changes that wait because a
    /// change held here has their numbers (`Store::receive_sync`).
    taken: BTreeMap<CaseId, u32>,
}

/// Messages of changes waiting under numbers a change held here has, after which the
/// case waits for the next sync: the exchange goes on so that this device sends the held
/// change for the server to refuse, but a server that never hears of it (its filter of
/// what it has says it has it) would answer with the same changes for ever.
const TAKEN_NUMBER_MESSAGES: u32 = 8;

impl SyncSession {
    /// Plans a round: every case whose heads differ from the catalog's, every case the
    /// server is missing or has not acknowledged, every catalog case this device lacks.
    pub fn plan(store: &mut Store, server: &str, catalog: &CatalogPage) -> Result<SyncSession> {
        Self::plan_without(store, server, catalog, &BTreeSet::new())
    }

    /// Plans a round as `plan` does, but leaves out `held` (cases that went no further
    /// earlier in the same sync, `SyncReport::settled_for_now`: they go again at the next
    /// sync, not at once).
    pub fn plan_without(
        store: &mut Store,
        server: &str,
        catalog: &CatalogPage,
        held: &BTreeSet<CaseId>,
    ) -> Result<SyncSession> {
        let mut pending: BTreeSet<CaseId> =
            store.unacknowledged_cases(server)?.into_iter().collect();
        for entry in &catalog.documents {
            let id: DocumentId = entry.document_id.parse()?;
            let case = id.case_id();
            let local = if store.has_case(case)? {
                store.heads(case)?
            } else {
                Vec::new()
            };
            let mut theirs = entry.heads.clone();
            theirs.sort();
            if local != theirs {
                pending.insert(case);
            }
        }
        pending.retain(|case| !held.contains(case));
        Ok(SyncSession {
            server: server.to_owned(),
            peer_id: format!("anjian-{}", store.device_id()),
            server_peer: None,
            states: BTreeMap::new(),
            taken: BTreeMap::new(),
            total: pending.len(),
            planned: pending.iter().copied().collect(),
            pending,
            report: SyncReport::default(),
            reread_catalog: false,
        })
    }

    /// Whether there is nothing to exchange (the round ends with the catalog).
    pub fn is_idle(&self) -> bool {
        self.total == 0
    }

    /// Whether every document of the round is done.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// Progress so far.
    pub fn progress(&self) -> SyncProgress {
        SyncProgress {
            documents_done: self.total - self.pending.len(),
            documents_total: self.total,
            bytes_sent: self.report.bytes_sent,
            bytes_received: self.report.bytes_received,
        }
    }

    /// The first frame: `join`, announcing the refusal and signature extensions.
    pub fn join(&mut self) -> Vec<u8> {
        self.sent(
            WireMessage::Join {
                sender_id: self.peer_id.clone(),
                metadata: PeerMetadata {
                    storage_id: None,
                    is_ephemeral: false,
                    extensions: vec![
                        REFUSAL_EXTENSION.to_owned(),
                        SIGNATURES_EXTENSION.to_owned(),
                    ],
                },
                supported_versions: vec![PROTOCOL_VERSION.to_owned()],
            }
            .encode(),
        )
    }

    /// Handles one frame from the server; returns the frames to send back.
    pub fn on_frame(&mut self, store: &mut Store, frame: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.report.frames_received += 1;
        self.report.bytes_received += frame.len() as u64;
        let message =
            WireMessage::decode(frame).map_err(|e| Error::Sync(format!("the server sent {e}")))?;
        let mut out = Vec::new();
        match message {
            WireMessage::Peer { sender_id, .. } => {
                self.server_peer = Some(sender_id);
                for case in self.pending.clone() {
                    let mut state = store.load_sync_state(&self.server, case)?;
                    let first = match store.generate_sync(case, &mut state) {
                        Ok(None) => {
                            // The kept state believes we are in step although the catalog
                            // says otherwise: start this document afresh.
                            state = sync::State::new();
                            store.generate_sync(case, &mut state)
                        }
                        generated => generated,
                    };
                    let data = match first {
                        Ok(data) => data,
                        // One damaged case does not keep the others from the server.
                        Err(Error::Corrupt(why)) => {
                            tracing::error!(case.id = %case, why, "a damaged case is left out of the sync");
                            self.pending.remove(&case);
                            self.report.damaged.push((case, why));
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let request = !store.has_case(case)?;
                    self.states.insert(case, state);
                    if let Some(data) = data {
                        out.push(self.doc_frame(store, case, data, request)?);
                    }
                }
            }
            WireMessage::Sync {
                document_id,
                data,
                signatures,
                ..
            }
            | WireMessage::Request {
                document_id,
                data,
                signatures,
                ..
            } => {
                let case = document_id.case_id();
                let signatures = ChangeSignature::from_records(&signatures)
                    .map_err(|e| Error::Sync(format!("the server sent signatures: {e}")))?;
                let mut state = self.states.remove(&case).unwrap_or_default();
                if store.receive_sync(case, &mut state, &data, &signatures)? {
                    let times = self.taken.entry(case).or_default();
                    *times += 1;
                    if *times > TAKEN_NUMBER_MESSAGES {
                        self.pending.remove(&case);
                        self.report.waiting.push((
                            case,
                            "服务器的修改与本机保存的修改编号相同，待服务器处理本机的修改后再同步 (changes wait: a change held here has their numbers)".into(),
                        ));
                        return Ok(out);
                    }
                }
                if let Some(reply) = store.generate_sync(case, &mut state)? {
                    out.push(self.doc_frame(store, case, reply, false)?);
                }
                if store.has_case(case)?
                    && store.save_sync_state(&self.server, case, &state)?
                    && self.pending.remove(&case)
                {
                    self.report.acknowledged += 1;
                }
                self.states.insert(case, state);
            }
            WireMessage::DocUnavailable { document_id, .. } => {
                let case = document_id.case_id();
                if self.pending.remove(&case) {
                    self.report.unavailable.push(case);
                }
            }
            WireMessage::Refused {
                document_id,
                reason,
                rule,
                ..
            } if rule == crate::rules::Rule::HeldBack.code() => {
                // Nothing is dropped: the changes go again once their signer signed in.
                let case = document_id.case_id();
                self.states.remove(&case);
                self.pending.remove(&case);
                self.report.waiting.push((case, reason));
            }
            WireMessage::Refused { rule, .. } if rule == crate::rules::Rule::Dependency.code() => {
                // Changes refused only for building on a refused one: the refusal of that
                // one, in the same answer (before or after this), drops them and enters
                // again those of this device that stand without it.
            }
            WireMessage::Refused {
                document_id,
                reason,
                rule,
                changes,
                kept,
                ..
            } => {
                let case = document_id.case_id();
                if store.refuse(&self.server, case, &rule, &reason, &changes, kept)? {
                    self.reread_catalog = true;
                }
                self.states.remove(&case);
                self.pending.remove(&case);
                self.report.refused.push((case, reason));
            }
            WireMessage::Error { message } => {
                return Err(Error::Sync(format!("the server reported: {message}")));
            }
            WireMessage::Join { .. } | WireMessage::Ignored { .. } => {}
        }
        Ok(out)
    }

    /// Ends the round: the next round reads the catalog from `cursor` (from the start when
    /// a case left this device on a refusal: the server may hold some of it after all, and
    /// its catalog entry may lie before `cursor`).
    pub fn finish(mut self, store: &mut Store, cursor: i64) -> Result<SyncReport> {
        let cursor = if self.reread_catalog { 0 } else { cursor };
        store.finish_sync_round(&self.server, cursor, "ok")?;
        self.report.documents = self.total;
        let damaged: BTreeSet<CaseId> = self.report.damaged.iter().map(|(c, _)| *c).collect();
        self.report.cases = self.planned;
        self.report.cases.retain(|case| !damaged.contains(case));
        Ok(self.report)
    }

    /// Counts an HTTP round trip (the catalog) in the report.
    pub fn count_http(&mut self, bytes: u64) {
        self.report.http_requests += 1;
        self.report.bytes_received += bytes;
    }

    /// The frame that carries a sync message, with the signatures of its changes (always:
    /// a frame may have to go before the server's `peer` arrives, and a server that does
    /// not read them ignores the key).
    fn doc_frame(
        &mut self,
        store: &Store,
        case: CaseId,
        data: Vec<u8>,
        request: bool,
    ) -> Result<Vec<u8>> {
        let signatures = ChangeSignature::records(&store.signatures_in(&data)?);
        let message = WireMessage::document(
            request,
            self.peer_id.clone(),
            self.server_peer.clone().unwrap_or_default(),
            DocumentId::of(case),
            data,
            signatures,
        );
        Ok(self.sent(message.encode()))
    }

    fn sent(&mut self, frame: Vec<u8>) -> Vec<u8> {
        self.report.frames_sent += 1;
        self.report.bytes_sent += frame.len() as u64;
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A case exchanged in two rounds of one sync (sent again after a refusal, or listed
    /// on two pages) is one document of the sync.
    #[test]
    fn a_case_exchanged_in_two_rounds_counts_once() {
        let (a, b) = (CaseId::new(), CaseId::new());
        let round = |cases: Vec<CaseId>| SyncReport {
            documents: cases.len(),
            cases,
            ..SyncReport::default()
        };
        let mut total = round(vec![a]);
        total.absorb(round(vec![a, b]));
        total.absorb(round(vec![b]));
        assert_eq!((total.documents, total.cases), (2, vec![a, b]));
    }
}
