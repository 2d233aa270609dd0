//! The store's side of sync: Automerge sync state per server and case, applying what a
//! server sends, acknowledgements per change, and refusals. No networking here.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::sync;
use automerge::{AutoCommit, ChangeHash};
use chrono::{DateTime, FixedOffset, Utc};
use rusqlite::{OptionalExtension, params};

use super::Store;
use super::reenter::{self, Fate};
use crate::codes::CaseId;
use crate::db;
use crate::document;
use crate::error::{Error, Result};
use crate::model::{Refusal, UploadState};
use crate::rules;
use crate::signing::ChangeSignature;
use crate::sync::intake;

impl Store {
    /// How long sync waits for the server to accept a connection or send its next bytes
    /// before it gives up with `Error::Network` (default 30 s; longer on poor signal).
    pub fn set_network_timeout(&mut self, timeout: std::time::Duration) {
        self.network_timeout = timeout;
    }

    /// The network timeout in force.
    pub fn network_timeout(&self) -> std::time::Duration {
        self.network_timeout
    }

    /// Changes the server refused, newest first, with its reasons: each refused change,
    /// and each change dropped because it built on one (with the change that holds it
    /// again, if this device entered it again); each with what it was.
    pub fn refusals(&self) -> Result<Vec<Refusal>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT case_id, change_hash, reason, refused_at, reentered_as, change FROM refusals
             ORDER BY refused_at DESC, change_hash",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (case, change_hash, reason, at, reentered_as, bytes) = row?;
            let change = match automerge::Change::try_from(bytes.as_slice()) {
                Ok(change) => Some(document::history_entry(&change)),
                Err(e) => {
                    tracing::error!(change = %change_hash, error = %e, "the bytes kept of a refused change are damaged");
                    None
                }
            };
            Ok(Refusal {
                case_id: case
                    .parse()
                    .map_err(|_| Error::Corrupt(format!("case id {case:?} in refusals")))?,
                change_hash,
                reason,
                refused_at: DateTime::parse_from_rfc3339(&at)
                    .map_err(|_| Error::Corrupt(format!("time {at:?}")))?,
                reentered_as,
                change,
            })
        })
        .collect()
    }

    /// Why the server refused each of `hashes` for good (a refusal it kept, by a rule that
    /// `Rule::is_final`), of those it refused here: a teammate's phone handing one over again has it refused again, as
    /// the server would.
    pub(crate) fn refused_for_good(
        &self,
        hashes: impl Iterator<Item = ChangeHash>,
    ) -> Result<HashMap<ChangeHash, rules::Refusal>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT rule, reason FROM refusals WHERE change_hash = ?1 AND rule IS NOT NULL",
        )?;
        let mut found = HashMap::new();
        for hash in hashes {
            let row: Option<(String, String)> = stmt
                .query_row([hash.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            // A rule this build does not know is not one it can say is final.
            if let Some((rule, reason)) = row
                && let Ok(rule) = rule.parse::<rules::Rule>()
                && rule.is_final()
            {
                found.insert(hash, rules::Refusal::new(rule, reason));
            }
        }
        Ok(found)
    }

    /// Enters again, by hand, a change of this device that a refusal dropped and that was
    /// not entered again then, or only in part: one the server refused itself, one the
    /// rule book did not allow when the device tried (the case was approved, say, and has
    /// been reopened since), or one whose records were not back yet. It becomes a new
    /// change with the same time and note, judged by the rule book now and by the server
    /// at the next sync; what it wrote into records of dropped changes goes into them
    /// where they were entered again since (by this device, or by their own), and is left
    /// out where they were not. Returns the new change's hash.
    pub fn enter_again(&mut self, case: CaseId, change_hash: &str) -> Result<String> {
        let rows: Vec<(Vec<u8>, Option<String>, String)> = self
            .conn
            .prepare_cached("SELECT change, reentered_as, reason FROM refusals WHERE case_id = ?1")?
            .query_map([case.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut dropped = Vec::with_capacity(rows.len());
        let mut again = std::collections::HashMap::new();
        let mut target = None;
        for (bytes, reentered, reason) in rows {
            let change = automerge::Change::try_from(bytes.as_slice())
                .map_err(|e| Error::Corrupt(format!("a refused change of case {case}: {e}")))?;
            if let Some(new) = &reentered {
                let new: ChangeHash = new
                    .parse()
                    .map_err(|_| Error::Corrupt(format!("refusals.reentered_as {new:?}")))?;
                again.insert(change.hash(), new);
            }
            if change.hash().to_string() == change_hash {
                target = Some((change.clone(), reentered, reason));
            }
            dropped.push(change);
        }
        let Some((change, reentered, reason)) = target else {
            return Err(Error::not_found("refused change", change_hash));
        };
        if *change.actor_id() != self.actor {
            return Err(Error::NotAllowed(
                "只能重新录入本机的修改 (only this device's own changes can be entered again)"
                    .into(),
            ));
        }
        let doc = &mut self.doc(case)?.doc;
        // Entered again, and that change gone since (refused itself, say), without one
        // entering it again in turn: what it held went with it.
        if let Some(new) = &reentered {
            let mut now: Option<ChangeHash> = new.parse().ok();
            for _ in 0..=again.len() {
                match now {
                    Some(hash) if doc.get_change_by_hash(&hash).is_none() => {
                        now = again.get(&hash).copied();
                    }
                    _ => break,
                }
            }
            if now.is_none_or(|hash| doc.get_change_by_hash(&hash).is_none()) {
                return Err(Error::invalid(
                    "change_hash",
                    format!("已重新录入为 {new} (already entered again as {new})"),
                ));
            }
        }
        let doc = doc.clone();
        let (author, trust) = self.judging()?;
        let (doc, hash, partly) =
            reenter::enter_one(doc, &change, &dropped, &again, &self.actor, &author, &trust)?;
        let reason = reason_entered_again(&reason, partly);
        let signature = ChangeSignature::sign(self.signer.as_ref(), hash)?;
        let loaded = self.cache.get_mut(case).expect("loaded just above");
        loaded.doc = doc;
        loaded.judged = None;
        self.persist_merged_with(case, &[signature], |tx| {
            // Entered whole, it waits no more.
            tx.execute(
                "UPDATE refusals SET reentered_as = ?3, reason = ?4, waits = waits AND ?5
                 WHERE case_id = ?1 AND change_hash = ?2",
                params![
                    case.to_string(),
                    change_hash,
                    hash.to_string(),
                    reason,
                    partly
                ],
            )?;
            Ok(())
        })?;
        tracing::info!(case.id = %case, old = change_hash, new = %hash, "refused change entered again");
        Ok(hash.to_string())
    }

    /// How many of the case's changes the server has acknowledged ("not yet uploaded"
    /// is the difference).
    pub fn upload_state(&mut self, case: CaseId) -> Result<UploadState> {
        let changes = self.doc(case)?.doc.get_changes(&[]).len() as u32;
        let acknowledged: u32 = self.conn.query_row(
            "SELECT count(*) FROM change_acks WHERE case_id = ?1",
            [case.to_string()],
            |r| r.get(0),
        )?;
        Ok(UploadState {
            changes,
            acknowledged,
        })
    }

    /// Where this store last read the server's catalog up to (0 before the first sync).
    pub fn sync_cursor(&self, server: &str) -> Result<i64> {
        Ok(self
            .conn
            .query_row(
                "SELECT cursor FROM sync_servers WHERE server = ?1",
                [server],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// When this store last completed a sync round with `server` (kept across restarts,
    /// for the app's "last synced" line); `None` before the first.
    pub fn last_synced_at(&self, server: &str) -> Result<Option<DateTime<FixedOffset>>> {
        let at: Option<String> = self
            .conn
            .query_row(
                "SELECT last_sync_at FROM sync_servers WHERE server = ?1",
                [server.trim_end_matches('/')],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        at.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map_err(|e| Error::Corrupt(format!("sync_servers.last_sync_at {t:?}: {e}")))
        })
        .transpose()
    }

    pub(crate) fn finish_sync_round(&self, server: &str, cursor: i64, result: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO sync_servers (server, cursor, last_sync_at, last_result) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (server) DO UPDATE SET cursor = excluded.cursor, last_sync_at = excluded.last_sync_at,
                last_result = excluded.last_result",
            params![server, cursor, Utc::now().to_rfc3339(), result],
        )?;
        Ok(())
    }

    /// Every local case whose heads the server has not acknowledged (one query over the
    /// heads kept with every write; no document is read).
    pub(crate) fn unacknowledged_cases(&mut self, server: &str) -> Result<Vec<CaseId>> {
        let ids: Vec<String> = self
            .conn
            .prepare_cached(
                "SELECT d.case_id FROM documents d
                 LEFT JOIN sync_states s ON s.server = ?1 AND s.case_id = d.case_id
                 WHERE s.acked IS NULL OR s.acked <> d.heads",
            )?
            .query_map([server], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.into_iter()
            .map(|id| {
                id.parse()
                    .map_err(|_| Error::Corrupt(format!("case id {id:?}")))
            })
            .collect()
    }

    /// Whether the case exists here.
    pub(crate) fn has_case(&mut self, case: CaseId) -> Result<bool> {
        Ok(self.doc_if_exists(case)?.is_some())
    }

    /// The persisted sync state for a case (a fresh one if none or unreadable).
    pub(crate) fn load_sync_state(&self, server: &str, case: CaseId) -> Result<sync::State> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT state FROM sync_states WHERE server = ?1 AND case_id = ?2",
                params![server, case.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(bytes
            .and_then(|b| sync::State::decode(&b).ok())
            .unwrap_or_default())
    }

    /// Keeps the sync state (its shared heads) and, when the server holds everything this
    /// device has, records the acknowledgement of every change.
    pub(crate) fn save_sync_state(
        &mut self,
        server: &str,
        case: CaseId,
        state: &sync::State,
    ) -> Result<bool> {
        let Some(loaded) = self.doc_if_exists(case)? else {
            return Ok(false);
        };
        let ours = loaded.doc.get_heads();
        let acked = state
            .their_heads
            .as_ref()
            .is_some_and(|theirs| same_heads(theirs, &ours));
        let hashes: Vec<String> = if acked {
            loaded
                .doc
                .get_changes(&[])
                .iter()
                .map(|c| c.hash().to_string())
                .collect()
        } else {
            Vec::new()
        };
        let key = case.to_string();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO sync_states (server, case_id, state) VALUES (?1, ?2, ?3)
             ON CONFLICT (server, case_id) DO UPDATE SET state = excluded.state",
            params![server, key, state.encode()],
        )?;
        if acked {
            let mut heads: Vec<String> = ours.iter().map(ToString::to_string).collect();
            heads.sort();
            tx.execute(
                "UPDATE sync_states SET acked = ?3 WHERE server = ?1 AND case_id = ?2",
                params![server, key, heads.join(",")],
            )?;
            let now = Utc::now().to_rfc3339();
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO change_acks (case_id, change_hash, acked_at) VALUES (?1, ?2, ?3)",
            )?;
            for hash in hashes {
                insert.execute(params![key, hash, now])?;
            }
        }
        tx.commit()?;
        Ok(acked)
    }

    /// The next sync message for a case (the case may not exist here yet: then the
    /// message asks for it). It carries no capability flags: a server that does not hear
    /// that the device reads whole-document messages sends changes, which the device
    /// checks one by one as the server checks the device's.
    pub(crate) fn generate_sync(
        &mut self,
        case: CaseId,
        state: &mut sync::State,
    ) -> Result<Option<Vec<u8>>> {
        if self.rewind.remove(&case) {
            return Ok(Some(intake::rewind().encode()));
        }
        let message = match self.doc_if_exists(case)? {
            Some(loaded) => crate::sync::next_message(&mut loaded.doc, state),
            None => crate::sync::next_message(&mut AutoCommit::new(), state),
        };
        Ok(message.map(|m| m.encode()))
    }

    /// Applies a sync message from the server; the result must still be a readable case,
    /// and is persisted before this returns. Its changes pass the same limits and the same
    /// check of how they are written as changes reaching the server: a server that is not
    /// what it should be cannot crash the device or damage a case on it. Returns whether
    /// changes were left to wait because a change held here has their numbers
    /// (`without_taken_numbers`).
    pub(crate) fn receive_sync(
        &mut self,
        case: CaseId,
        state: &mut sync::State,
        data: &[u8],
        signatures: &[ChangeSignature],
    ) -> Result<bool> {
        let message = sync::Message::decode(data)
            .map_err(|e| Error::InvalidDocument(format!("sync message: {e}")))?;
        let checked = intake::check(message, &intake::Limits::default())
            .map_err(|e| Error::InvalidDocument(format!("sync message: {e}")))?;
        if self.doc_if_exists(case)?.is_none() {
            let mut doc = AutoCommit::new();
            let admitted = intake::admit(&doc, checked);
            rules::apply(&mut doc, &admitted.changes)?;
            intake::receive_applied(&mut doc, state, admitted.message)?;
            if doc.get_heads().is_empty() {
                return Ok(false);
            }
            let id = document::check_case(&doc)?;
            if id != case {
                return Err(Error::InvalidDocument(format!(
                    "document {case} holds case {id}"
                )));
            }
            let signed = signatures_of_changes(signatures, &admitted.changes);
            self.insert_case(case, doc, &signed)?;
            // A case that left this device on a refusal may have changes waiting.
            self.enter_again_what_waited(case);
            return Ok(false);
        }
        let loaded = self.cache.get_mut(case).expect("loaded just above");
        let mut admitted = intake::admit(&loaded.doc, checked);
        let mut applied = rules::apply(&mut loaded.doc, &admitted.changes);
        let mut taken = false;
        if applied.is_err() {
            // What was applied leaves memory with the document, which is read again.
            self.cache.remove(case);
            let loaded = self.doc(case)?;
            // They wait without asking the server for everything again: the exchange
            // goes on, and this device sends the held change for the server to refuse.
            let left = without_taken_numbers(&mut loaded.doc, &admitted.changes);
            if left.len() < admitted.changes.len() {
                taken = true;
                admitted.changes = left;
                applied = rules::apply(&mut loaded.doc, &admitted.changes);
            }
        }
        if admitted.waiting > 0 {
            self.rewind.insert(case);
        }
        let loaded = self.cache.get_mut(case).expect("loaded just above");
        let unchanged = admitted.changes.is_empty();
        let signed = signatures_of_changes(signatures, &admitted.changes);
        let received = applied.map_err(Error::from).and_then(|()| {
            Ok(intake::receive_applied(
                &mut loaded.doc,
                state,
                admitted.message,
            )?)
        });
        if let Err(e) = received {
            // What was applied leaves memory with the document, which is read again from
            // storage.
            self.cache.remove(case);
            return Err(e);
        }
        if unchanged {
            return Ok(taken);
        }
        self.persist_merged(case, &signed)?;
        self.enter_again_what_waited(case);
        Ok(taken)
    }

    /// Enters again the changes of `case` that wait (`refusals.waits`): this device's,
    /// dropped because they built on a refused change, and not entered again whole
    /// because they wrote into records of another device's change dropped with them. Each
    /// whose history has such changes back in the case (entered again by their own
    /// devices), under other changes than at its last try, goes into the records as they
    /// are now (`enter_again`). Called after changes from elsewhere were kept, and after
    /// a refusal; what stays out (the rule book, a storage error) is said in the log, and
    /// what was received is kept either way.
    pub(crate) fn enter_again_what_waited(&mut self, case: CaseId) {
        let waiting = match self.waiting(case) {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::error!(case.id = %case, error = %e, "changes waiting to be entered again cannot be read");
                return;
            }
        };
        for (change, with) in waiting {
            let hash = change.to_string();
            match self.enter_again(case, &hash) {
                Ok(new) => {
                    tracing::info!(case.id = %case, old = hash, new, "a change that waited on a teammate's is entered again")
                }
                Err(
                    Error::NotAllowed(reason)
                    | Error::Invalid {
                        message: reason, ..
                    },
                ) => {
                    tracing::info!(case.id = %case, change = hash, reason, "a change that waited on a teammate's stays out")
                }
                Err(e) => {
                    tracing::error!(case.id = %case, change = hash, error = %e, "a change that waited on a teammate's could not be entered again");
                    continue;
                }
            }
            let tried = self.conn.execute(
                "UPDATE refusals SET tried_with = ?3 WHERE case_id = ?1 AND change_hash = ?2",
                params![case.to_string(), hash, with],
            );
            if let Err(e) = tried {
                tracing::error!(case.id = %case, change = hash, error = %e, "a try to enter a change again could not be recorded");
            }
        }
    }

    /// The changes of `case` that wait and whose history has other devices' dropped
    /// changes back in the case under other changes than at their last try, in the order
    /// this device made them, each with those changes (`refusals.tried_with`).
    fn waiting(&mut self, case: CaseId) -> Result<Vec<(ChangeHash, String)>> {
        let key = case.to_string();
        let waits: bool = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM refusals WHERE case_id = ?1 AND waits = 1)",
            )?
            .query_row([&key], |r| r.get(0))?;
        if !waits {
            return Ok(Vec::new());
        }
        let rows: Vec<(Vec<u8>, bool, String)> = self
            .conn
            .prepare_cached("SELECT change, waits, tried_with FROM refusals WHERE case_id = ?1")?
            .query_map([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut dropped = HashMap::with_capacity(rows.len());
        let mut waiting = Vec::new();
        for (bytes, waits, tried_with) in rows {
            let change = automerge::Change::try_from(bytes.as_slice())
                .map_err(|e| Error::Corrupt(format!("a refused change of case {case}: {e}")))?;
            if waits {
                waiting.push((change.clone(), tried_with));
            }
            dropped.insert(change.hash(), change);
        }
        // Another device's changes, each entered again (once, or in parts) by that device.
        let actor = self.actor.clone();
        let mut back: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
        for (old, new) in reenter::entered_again(&mut self.doc(case)?.doc) {
            let theirs = dropped
                .get(&old)
                .is_some_and(|c| c.actor_id() == new.actor_id());
            if theirs && *new.actor_id() != actor {
                back.entry(old).or_default().push(new.hash());
            }
        }
        let mut ready: Vec<(automerge::Change, String)> = waiting
            .into_iter()
            .filter_map(|(change, tried_with)| {
                let mut with: BTreeSet<ChangeHash> = BTreeSet::new();
                let mut stack = change.deps().to_vec();
                let mut seen = HashSet::new();
                while let Some(hash) = stack.pop() {
                    if !seen.insert(hash) {
                        continue;
                    }
                    with.extend(back.get(&hash).into_iter().flatten());
                    if let Some(gone) = dropped.get(&hash) {
                        stack.extend(gone.deps().iter().copied());
                    }
                }
                let with = with
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                (!with.is_empty() && with != tried_with).then_some((change, with))
            })
            .collect();
        ready.sort_by_key(|(c, _)| c.seq());
        Ok(ready
            .into_iter()
            .map(|(c, with)| (c.hash(), with))
            .collect())
    }

    /// The signatures kept of the changes a sync message carries (`data`), to send before
    /// it.
    pub(crate) fn signatures_in(&self, data: &[u8]) -> Result<Vec<ChangeSignature>> {
        let message = sync::Message::decode(data)
            .map_err(|e| Error::InvalidDocument(format!("sync message: {e}")))?;
        let hashes = message
            .changes
            .iter()
            .filter_map(|bytes| automerge::Change::try_from(bytes).ok())
            .map(|change| change.hash());
        crate::db::signatures_of(&self.conn, hashes)
    }

    /// Records that the server refused changes of a case and rebuilds the case without
    /// them and every change built on them, so that later edits do not build on changes
    /// the server will never accept, while what the server sent and what was not refused
    /// stays. Each of this device's changes that went only because it built on a refused
    /// one is entered again on the rebuilt case (`reenter`), unless the server's `rule`
    /// refuses the author rather than the change. Every dropped change is kept
    /// (bytes and reason) as evidence, with the change that holds it again. Returns
    /// whether the case left the device (its first change was refused): the round then
    /// reads the whole catalog next time, so that whatever of it the server does hold
    /// comes back. `kept_by_server`: the server kept the refusal (it is final); the rule
    /// of each refused change is then kept with it, so that the phone refuses it again on
    /// site.
    pub(crate) fn refuse(
        &mut self,
        server: &str,
        case: CaseId,
        rule: &str,
        reason: &str,
        hashes: &[String],
        kept_by_server: bool,
    ) -> Result<bool> {
        let Some(loaded) = self.doc_if_exists(case)? else {
            return Ok(false);
        };
        let refused: BTreeSet<ChangeHash> = hashes.iter().filter_map(|h| h.parse().ok()).collect();
        let changes = loaded.doc.get_changes(&[]);
        if !changes.iter().any(|c| refused.contains(&c.hash())) {
            // Gone already: a change the server refused only for building on one refused
            // in the same answer went with that one.
            return Ok(false);
        }
        // Changes come in causal order: a change goes if it was refused or builds on one
        // that goes.
        let mut dropped: BTreeSet<ChangeHash> = BTreeSet::new();
        let mut keep = Vec::new();
        let mut pending = Vec::new();
        for change in changes {
            let hash = change.hash();
            if refused.contains(&hash) || change.deps().iter().any(|d| dropped.contains(d)) {
                dropped.insert(hash);
                pending.push(change);
            } else {
                keep.push(change);
            }
        }
        // A device revoked or an account disabled (the server refused the change for its
        // signer): this phone refuses that device's changes on site too, in every case,
        // under any certificate of it issued before (`learn_revoked`).
        if rule
            .parse::<rules::Rule>()
            .is_ok_and(|r| r == rules::Rule::Signature)
        {
            let signers: BTreeSet<String> = pending
                .iter()
                .filter(|c| refused.contains(&c.hash()))
                .map(|c| c.actor_id().to_hex_string())
                .collect();
            for signer in signers {
                self.learn_revoked(&signer, reason)?;
            }
        }
        let kept = if keep.is_empty() {
            None
        } else {
            let mut doc = AutoCommit::new();
            doc.apply_changes(keep)?;
            Some(doc)
        };
        // A rule that refuses this device's author, not what the change writes, would
        // refuse every change entered again for the same reason.
        let for_the_author = rule
            .parse::<rules::Rule>()
            .is_ok_and(rules::Rule::refuses_the_author)
            && pending
                .iter()
                .any(|c| refused.contains(&c.hash()) && *c.actor_id() == self.actor);
        let (kept, mut fates) = match kept {
            Some(doc) if !for_the_author => {
                let (author, trust) = self.judging()?;
                let again = reenter::reenter(doc, pending, &refused, &self.actor, &author, &trust);
                (Some(again.doc), again.fates)
            }
            kept => {
                let fates = pending
                    .into_iter()
                    .map(|c| {
                        let fate = if refused.contains(&c.hash()) {
                            Fate::Refused
                        } else {
                            Fate::Lost
                        };
                        (c, fate)
                    })
                    .collect();
                (kept, fates)
            }
        };
        // This device's changes that wrote into records of another device's change
        // dropped with them (not refused itself: its device may enter it again) wait for
        // that change to come back.
        let mut on_foreign: HashSet<ChangeHash> = HashSet::new();
        let mut waits: HashSet<ChangeHash> = HashSet::new();
        for (change, fate) in &fates {
            let hash = change.hash();
            let foreign = *change.actor_id() != self.actor;
            if (foreign && !refused.contains(&hash))
                || change.deps().iter().any(|d| on_foreign.contains(d))
            {
                on_foreign.insert(hash);
                if !foreign && !for_the_author && matches!(fate, Fate::Lost | Fate::Partly(_)) {
                    waits.insert(hash);
                }
            }
        }
        let signatures = fates
            .iter()
            .filter_map(|(_, fate)| match fate {
                Fate::Entered(hash) | Fate::Partly(hash) => Some(*hash),
                Fate::Refused | Fate::Lost => None,
            })
            .map(|hash| ChangeSignature::sign(self.signer.as_ref(), hash))
            .collect::<Result<Vec<_>>>()?;
        let now = Utc::now().to_rfc3339();
        let key = case.to_string();
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO refusals (case_id, change_hash, reason, refused_at, change, reentered_as, waits, rule)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            // Their signatures go with them: a change the server refused may come back
            // from elsewhere, with a signature that verifies.
            let mut unsign =
                tx.prepare_cached("DELETE FROM change_signatures WHERE change_hash = ?1")?;
            for (change, fate) in &mut fates {
                let hash = change.hash().to_string();
                unsign.execute([&hash])?;
                let refused_itself =
                    (kept_by_server && matches!(fate, Fate::Refused)).then_some(rule);
                let (why, again) = match fate {
                    Fate::Refused => (reason.to_owned(), None),
                    Fate::Entered(again) => (
                        format!("{DROPPED_ENTERED}{reason}"),
                        Some(again.to_string()),
                    ),
                    Fate::Partly(again) => {
                        (format!("{DROPPED_PARTLY}{reason}"), Some(again.to_string()))
                    }
                    Fate::Lost => (format!("{DROPPED}{reason}"), None),
                };
                let waits = waits.contains(&change.hash());
                insert.execute(params![
                    key,
                    hash,
                    why,
                    now,
                    change.bytes().to_vec(),
                    again,
                    waits,
                    refused_itself
                ])?;
            }
        }
        db::keep_signatures(&tx, case, &signatures)?;
        match &kept {
            Some(doc) => {
                let mut doc = doc.clone();
                let projection = document::project_case(&doc)?;
                db::write_snapshot(&tx, case, &doc.save())?;
                db::set_heads(&tx, case, &mut doc)?;
                crate::projections::write_case_projection(&tx, &projection)?;
                // The sync starts afresh, and the case is exchanged again next round: the
                // server holds changes this device may not have seen (the very ones that
                // made it refuse, such as an approval), which no catalog entry may list
                // again.
                tx.execute(
                    "UPDATE sync_states SET state = ?3, acked = '' WHERE server = ?1 AND case_id = ?2",
                    params![server, key, sync::State::new().encode()],
                )?;
            }
            None => {
                // The case itself was refused: it leaves the device's lists; the refused
                // changes above keep every edit.
                tx.execute("DELETE FROM cases WHERE case_id = ?1", [&key])?;
                tx.execute("DELETE FROM documents WHERE case_id = ?1", [&key])?;
                tx.execute(
                    "DELETE FROM sync_states WHERE server = ?1 AND case_id = ?2",
                    params![server, key],
                )?;
                // The next round reads the whole catalog, so that whatever of the case the
                // server does hold comes back, even should this round end in an error.
                tx.execute(
                    "UPDATE sync_servers SET cursor = 0 WHERE server = ?1",
                    [server],
                )?;
            }
        }
        tx.commit()?;
        self.cache.remove(case);
        if kept.is_some() {
            // Another device's changes may have come back before this refusal.
            self.enter_again_what_waited(case);
        }
        let entered = signatures.len();
        tracing::warn!(case.id = %case, reason, entered, "server refused changes; case rebuilt without them, this device's later changes entered again");
        Ok(kept.is_none())
    }
}

/// What a refusal row says before the server's reason, of a change dropped because it
/// built on a refused one: not entered again, entered again, entered again in part.
const DROPPED: &str = "依赖被拒绝的修改：";
const DROPPED_ENTERED: &str = "依赖被拒绝的修改，已重新录入：";
const DROPPED_PARTLY: &str = "依赖被拒绝的修改，写入被拒内容的部分未能重新录入，其余已重新录入：";
/// What it says of a change refused itself and entered again in part by hand.
const REFUSED_PARTLY: &str = "写入已不存在记录的部分未能重新录入，其余已重新录入：";

/// A refusal row's `reason` once its change is entered again later (by hand, or after a
/// teammate's change it wrote into came back): whether a part is still left out.
fn reason_entered_again(reason: &str, partly: bool) -> String {
    let dropped = [DROPPED_PARTLY, DROPPED_ENTERED, DROPPED]
        .iter()
        .find_map(|prefix| reason.strip_prefix(prefix));
    let refused = reason.strip_prefix(REFUSED_PARTLY);
    match (dropped, refused, partly) {
        (Some(server), _, false) => format!("{DROPPED_ENTERED}{server}"),
        (Some(server), _, true) => format!("{DROPPED_PARTLY}{server}"),
        (None, Some(server), false) => server.to_owned(),
        (None, Some(_), true) => reason.to_owned(),
        (None, None, false) => reason.to_owned(),
        (None, None, true) => format!("{REFUSED_PARTLY}{reason}"),
    }
}

/// `changes` without each one whose number its actor has already used in `doc` for
/// another change, and without what builds on it. Its author's device dropped, after a
/// refusal, a change this device still holds (merged on site), and entered what followed
/// it again under the same numbers (`reenter`): the server refuses the held change when
/// this device sends it, and the new one comes in the round after that.
fn without_taken_numbers(
    doc: &mut AutoCommit,
    changes: &[automerge::Change],
) -> Vec<automerge::Change> {
    let mut last: std::collections::HashMap<automerge::ActorId, u64> =
        std::collections::HashMap::new();
    for meta in doc.get_changes_meta(&[]) {
        let seq = last.entry(meta.actor.into_owned()).or_insert(0);
        *seq = (*seq).max(meta.seq);
    }
    let mut left_out: BTreeSet<ChangeHash> = BTreeSet::new();
    changes
        .iter()
        .filter(|change| {
            let taken = last
                .get(change.actor_id())
                .is_some_and(|seq| change.seq() <= *seq);
            if taken || change.deps().iter().any(|d| left_out.contains(d)) {
                left_out.insert(change.hash());
                return false;
            }
            true
        })
        .cloned()
        .collect()
}

/// The signatures among `signatures` of the changes `changes`.
fn signatures_of_changes(
    signatures: &[ChangeSignature],
    changes: &[automerge::Change],
) -> Vec<ChangeSignature> {
    let hashes: BTreeSet<ChangeHash> = changes.iter().map(|c| c.hash()).collect();
    signatures
        .iter()
        .filter(|s| hashes.contains(&s.hash))
        .cloned()
        .collect()
}

/// Whether two sets of heads are the same set.
pub(crate) fn same_heads(a: &[ChangeHash], b: &[ChangeHash]) -> bool {
    let a: BTreeSet<_> = a.iter().collect();
    let b: BTreeSet<_> = b.iter().collect();
    a == b
}

#[cfg(test)]
mod tests {
    use automerge::AutoCommit;
    use automerge::sync::{self, SyncDoc};

    use crate::sample;
    use crate::store::Store;

    #[test]
    fn changes_that_wait_are_asked_for_again_and_then_applied() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut a = Store::open(dir.path().join("a.db"), sample::inspector("insp")).expect("a");
        let enterprise = sample::enterprise(1);
        a.register_enterprise(&enterprise).expect("enterprise");
        let case = a.open_case(&sample::new_case(&enterprise)).expect("case");
        let mut b = phone_of(&dir, "insp");
        sample::certify(&mut [&mut a, &mut b]).expect("certified");
        b.merge_case(&a.export_case(case).expect("export"))
            .expect("merge");
        let known = AutoCommit::load(&b.export_document(case).expect("export"))
            .expect("load")
            .get_heads();
        for text in ["配电箱未接地", "消防通道堵塞"] {
            a.add_finding(case, &sample::finding(text))
                .expect("finding");
        }
        let mut server = AutoCommit::load(&a.export_document(case).expect("export")).expect("load");
        let changes = server.get_changes(&known);
        assert_eq!(changes.len(), 2);
        // A message that lost the first of the two changes on the way.
        let message = sync::Message {
            heads: server.get_heads(),
            need: Vec::new(),
            have: Vec::new(),
            changes: vec![changes[1].raw_bytes().to_vec()].into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        let mut state = sync::State::new();
        b.receive_sync(case, &mut state, &message.encode(), &[])
            .expect("received");
        assert_eq!(b.case(case).expect("case").findings.len(), 0, "it waits");
        let rewind = b
            .generate_sync(case, &mut state)
            .expect("generate")
            .expect("a message");
        let rewind = sync::Message::decode(&rewind).expect("decode");
        assert!(
            rewind.heads.is_empty(),
            "the server is asked for everything"
        );
        let mut server_state = sync::State::new();
        server
            .sync()
            .receive_sync_message(&mut server_state, rewind)
            .expect("receive");
        let everything = server
            .sync()
            .generate_sync_message(&mut server_state)
            .expect("the server answers");
        b.receive_sync(case, &mut state, &everything.encode(), &[])
            .expect("received");
        assert_eq!(b.case(case).expect("case").findings.len(), 2);
        let mut synced = AutoCommit::load(&b.export_document(case).expect("export")).expect("load");
        assert_eq!(synced.get_heads(), server.get_heads());
    }

    /// The phone of inspector `name`, in `dir`.
    fn phone_of(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::open(
            dir.path().join(format!("{name}.db")),
            sample::inspector(name),
        )
        .expect(name)
    }

    /// `store` hears that the server refused change `hash` of `case` (the review trail's
    /// rule, which refuses the change, not its author).
    /// Returns whether the case left the device.
    fn refused_by_the_trail(store: &mut Store, case: crate::CaseId, hash: &str) -> bool {
        store
            .refuse(
                "server",
                case,
                "review_trail",
                "审核记录只能追加",
                &[hash.to_owned()],
                true,
            )
            .expect("refuse")
    }

    /// The descriptions of the case's findings, sorted.
    fn descriptions(store: &mut Store, case: crate::CaseId) -> Vec<String> {
        let mut findings: Vec<String> = store
            .case(case)
            .expect("case")
            .findings
            .into_iter()
            .map(|f| f.description)
            .collect();
        findings.sort();
        findings
    }

    /// An inspector's phone in `dir` with one case of the sample enterprise.
    fn phone_with_case(dir: &tempfile::TempDir) -> (Store, crate::CaseId) {
        let mut phone =
            Store::open(dir.path().join("phone.db"), sample::inspector("insp")).expect("phone");
        let enterprise = sample::enterprise(1);
        phone.register_enterprise(&enterprise).expect("enterprise");
        let case = phone
            .open_case(&sample::new_case(&enterprise))
            .expect("case");
        (phone, case)
    }

    #[test]
    fn a_refusal_takes_only_the_refused_changes_and_what_builds_on_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        // Another inspector's finding reaches the phone (the phone never heard that the
        // server holds any of the case).
        let mut other = phone_of(&dir, "other");
        sample::certify(&mut [&mut phone, &mut other]).expect("certified");
        other
            .merge_case(&phone.export_case(case).expect("export"))
            .expect("merge");
        other
            .add_finding(case, &sample::finding("消防通道堵塞"))
            .expect("finding");
        phone
            .merge_case(&other.export_case(case).expect("export"))
            .expect("merge");
        let mut refused = Vec::new();
        for text in ["配电箱未接地", "安全出口锁闭"] {
            phone
                .add_finding(case, &sample::finding(text))
                .expect("finding");
            let hash = phone.heads(case).expect("heads").remove(0);
            let left = phone
                .refuse(
                    "server",
                    case,
                    "approved_lock",
                    "案件已审核通过",
                    std::slice::from_ref(&hash),
                    true,
                )
                .expect("refuse");
            assert!(!left, "the case stays on the phone");
            refused.push(hash);
        }
        let findings: Vec<String> = phone
            .case(case)
            .expect("case")
            .findings
            .into_iter()
            .map(|f| f.description)
            .collect();
        assert_eq!(findings, ["消防通道堵塞"], "what the server sent stays");
        let mut kept: Vec<String> = phone
            .refusals()
            .expect("refusals")
            .into_iter()
            .map(|r| r.change_hash)
            .collect();
        kept.sort();
        refused.sort();
        assert_eq!(
            kept, refused,
            "each refused change is kept as evidence, nothing else"
        );

        // A refused first change takes the case off the phone.
        let lone = phone
            .open_case(&sample::new_case(&sample::enterprise(1)))
            .expect("case");
        let hash = phone.heads(lone).expect("heads").remove(0);
        phone
            .finish_sync_round("server", 42, "ok")
            .expect("a round");
        assert!(
            phone
                .refuse("server", lone, "jurisdiction", "不在辖区", &[hash], true)
                .expect("refuse")
        );
        assert!(!phone.has_case(lone).expect("has"));
        assert_eq!(
            phone.sync_cursor("server").expect("cursor"),
            0,
            "the next round reads the whole catalog, whatever ends this one"
        );
    }

    /// A refused change takes with it every later change of the case on the device. The
    /// device's own later changes that stand without it are entered again, with their
    /// time and note, and what was concurrent with them stays a conflict; what wrote into
    /// the refused change's finding, and another device's change built on it, are kept as
    /// evidence only.
    #[test]
    fn a_refusal_enters_again_the_device_s_later_changes_that_stand_without_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        let mut other = phone_of(&dir, "other");
        let mut third = phone_of(&dir, "third");
        sample::certify(&mut [&mut phone, &mut other, &mut third]).expect("certified");
        let kept = phone
            .add_finding(case, &sample::finding("消防通道堵塞"))
            .expect("finding");
        other
            .merge_case(&phone.export_case(case).expect("export"))
            .expect("merge");
        let place = |place: &str| crate::FindingEdit {
            place: Some(place.into()),
            ..Default::default()
        };

        let dropped = phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        let refused = phone.heads(case).expect("heads").remove(0);
        let later = phone
            .add_finding(case, &sample::finding("安全出口锁闭"))
            .expect("finding");
        let edit = crate::FindingEdit {
            description: Some("配电箱未接地，线路裸露".into()),
            ..Default::default()
        };
        phone.edit_finding(case, dropped, &edit).expect("edit");
        phone
            .edit_finding(case, kept, &place("二号车间"))
            .expect("edit");
        let photo = phone.ingest_photo(&sample::jpeg(64, 48)).expect("ingest");
        phone
            .attach_photo(
                case,
                &crate::PhotoTarget::Finding(later),
                &photo.sha256,
                "全景",
            )
            .expect("attach");
        // Concurrently: another inspector edits the same field, and a third builds on the
        // change the server will refuse.
        other
            .edit_finding(case, kept, &place("三号车间"))
            .expect("edit");
        phone
            .merge_case(&other.export_case(case).expect("export"))
            .expect("merge");
        third
            .merge_case(&phone.export_case(case).expect("export"))
            .expect("merge");
        third
            .add_finding(case, &sample::finding("灭火器过期"))
            .expect("finding");
        phone
            .merge_case(&third.export_case(case).expect("export"))
            .expect("merge");
        let before = phone.history(case).expect("history");

        let tomorrow = phone.now() + chrono::Duration::days(1);
        phone.set_clock(std::sync::Arc::new(move || tomorrow));
        let left = refused_by_the_trail(&mut phone, case, &refused);
        assert!(!left);

        assert_eq!(
            descriptions(&mut phone, case),
            ["安全出口锁闭", "消防通道堵塞"]
        );
        let now = phone.case(case).expect("case");
        let entered = now.findings.iter().find(|f| f.id == later).expect("later");
        assert_eq!(
            entered.photos.len(),
            1,
            "the photo attached to it came back too"
        );
        let conflicts = phone.conflicts(case).expect("conflicts");
        assert!(
            conflicts
                .iter()
                .any(|c| c.path.last().map(String::as_str) == Some("place") && c.values.len() == 2),
            "the concurrent edits of one field still show as a conflict: {conflicts:?}"
        );

        // Every dropped change is evidence; the device's own that stand are entered again.
        let refusals = phone.refusals().expect("refusals");
        let find = |hash: &str| before.iter().find(|e| e.hash == hash).expect("known");
        assert_eq!(refusals.len(), 6, "{refusals:#?}");
        let first = refusals
            .iter()
            .find(|r| r.change_hash == refused)
            .expect("refused");
        assert_eq!(
            (first.reason.as_str(), &first.reentered_as),
            ("审核记录只能追加", &None)
        );
        let history = phone.history(case).expect("history");
        for refusal in &refusals {
            let Some(again) = &refusal.reentered_as else {
                continue;
            };
            let old = find(&refusal.change_hash);
            let new = history
                .iter()
                .find(|e| e.hash == *again)
                .expect("in the case");
            assert_eq!(
                (new.action.as_str(), new.device_time, &new.device),
                (old.action.as_str(), old.device_time, &old.device),
                "the same note, time and device"
            );
        }
        for refusal in &refusals {
            assert_eq!(
                refusal.change.as_ref(),
                Some(find(&refusal.change_hash)),
                "each dropped change reads as its history entry did"
            );
        }
        let mut lost: Vec<&str> = refusals
            .iter()
            .filter(|r| r.change_hash != refused && r.reentered_as.is_none())
            .filter_map(|r| r.change.as_ref().map(|c| c.author.as_str()))
            .collect();
        lost.sort();
        assert_eq!(
            lost,
            ["insp", "third"],
            "the edit of the refused finding, and another device's change on it"
        );
        let entered: Vec<automerge::ChangeHash> = refusals
            .iter()
            .filter_map(|r| r.reentered_as.as_ref())
            .map(|h| h.parse().expect("hash"))
            .collect();
        assert_eq!(
            entered.len(),
            3,
            "the later finding, the edit and the photo"
        );
        let signed =
            crate::db::signatures_of(&phone.conn, entered.iter().copied()).expect("signed");
        assert_eq!(
            signed.len(),
            3,
            "each change entered again is signed by the device"
        );
        assert!(
            phone
                .unacknowledged_cases("server")
                .expect("list")
                .contains(&case),
            "they go to the server next round"
        );

        // What the refusal left is what any device reads: the stored case loads the same.
        let stored = Store::open(dir.path().join("phone.db"), sample::inspector("insp"));
        drop(phone);
        let mut stored = stored.expect("reopen");
        assert_eq!(stored.case(case).expect("case").findings.len(), 2);
    }

    /// A photo attached to the refused finding has nowhere to go: what its change wrote
    /// into the photo's own entry goes with it, and never into an object of the case that
    /// gets the same id now (here the later finding entered again; the rule book's check
    /// of the case's shape stands behind this too).
    #[test]
    fn a_photo_of_the_refused_finding_lands_nowhere_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        let mut other = phone_of(&dir, "other");
        sample::certify(&mut [&mut phone, &mut other]).expect("certified");
        other
            .merge_case(&phone.export_case(case).expect("export"))
            .expect("merge");
        for i in 0..6 {
            other
                .add_finding(case, &sample::finding(&format!("隐患{i}")))
                .expect("finding");
        }
        let refused_finding = phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        let refused = phone.heads(case).expect("heads").remove(0);
        let later = phone
            .add_finding(case, &sample::finding("安全出口锁闭"))
            .expect("finding");
        // The other inspector's findings carry larger operation counters than the phone's,
        // so the photo attached next starts where the finding entered again will start.
        phone
            .merge_case(&other.export_case(case).expect("export"))
            .expect("merge");
        let photo = phone.ingest_photo(&sample::jpeg(64, 48)).expect("ingest");
        phone
            .attach_photo(
                case,
                &crate::PhotoTarget::Finding(refused_finding),
                &photo.sha256,
                "全景",
            )
            .expect("attach");
        let keys = |phone: &mut Store| {
            use automerge::ReadDoc;
            let doc = &phone.doc(case).expect("case").doc;
            let findings = match doc.get(automerge::ROOT, "findings").expect("read") {
                Some((_, id)) => id,
                None => panic!("no findings"),
            };
            let finding = match doc.get(&findings, later.to_string()).expect("read") {
                Some((_, id)) => id,
                None => panic!("no finding"),
            };
            doc.keys(&finding).collect::<Vec<_>>()
        };
        let before = keys(&mut phone);
        refused_by_the_trail(&mut phone, case, &refused);
        assert_eq!(
            keys(&mut phone),
            before,
            "the later finding holds what it held"
        );
        let refusals = phone.refusals().expect("refusals");
        assert_eq!(
            refusals.iter().filter(|r| r.reentered_as.is_some()).count(),
            1,
            "the later finding is entered again, the photo of the refused one is not: {refusals:#?}"
        );
    }

    /// An inspector's phone and a teammate's after the server refused an earlier change
    /// of the inspector's: the teammate had attached a photo on site to the inspector's
    /// later finding, and both phones dropped the finding, and the photo with it. The
    /// inspector's phone entered the finding again, naming the old change.
    struct PhotoWaiting {
        phone: Store,
        mate: Store,
        case: crate::CaseId,
        /// The photo's hash.
        photo: String,
        /// The teammate's change that attached it.
        attached: String,
        /// The change that entered the rest of it again at the refusal.
        first: Option<String>,
    }

    fn a_photo_waiting(dir: &tempfile::TempDir) -> PhotoWaiting {
        let TwoFindings {
            mut phone,
            mut mate,
            case,
            refused,
            later: finding,
            recorded,
        } = two_findings_merged_on_site(dir);
        let photo = mate.ingest_photo(&sample::jpeg(64, 48)).expect("ingest");
        mate.attach_photo(
            case,
            &crate::PhotoTarget::Finding(finding),
            &photo.sha256,
            "安全出口",
        )
        .expect("attach");
        let attached = mate.heads(case).expect("heads").remove(0);
        for store in [&mut phone, &mut mate] {
            refused_by_the_trail(store, case, &refused);
        }
        // The teammate heard of the refusal before the finding entered again reached it:
        // the photo has nowhere to go yet (the rest of its change, the teammate's entry in
        // the team, is entered again).
        assert!(descriptions(&mut mate, case).is_empty());
        let mut waiting = PhotoWaiting {
            phone,
            mate,
            case,
            photo: photo.sha256,
            attached,
            first: None,
        };
        let row = waiting.row();
        assert!(row.reason.contains("未能重新录入"), "{row:#?}");
        waiting.first = row.reentered_as;
        let again = refusal_of(&waiting.phone, &recorded)
            .reentered_as
            .expect("the finding is entered again");
        let mut phone = waiting.phone;
        assert_eq!(
            entry(&mut phone, case, &again).and_then(|e| e.entered_again_for),
            Some(recorded),
            "the new change names the old one"
        );
        PhotoWaiting { phone, ..waiting }
    }

    impl PhotoWaiting {
        /// The refusal row of the teammate's change.
        fn row(&self) -> crate::Refusal {
            refusal_of(&self.mate, &self.attached)
        }

        /// The photos of the finding entered again, on `store`.
        fn photos(case: crate::CaseId, store: &mut Store) -> Vec<String> {
            store
                .case(case)
                .expect("case")
                .findings
                .into_iter()
                .find(|f| f.description == "安全出口锁闭")
                .expect("the finding")
                .photos
                .into_iter()
                .map(|p| p.sha256)
                .collect()
        }

        /// The photo is entered again on the teammate's phone into the finding as it is
        /// now, naming the change it enters again, and reaches the inspector.
        fn check_followed(mut self) {
            let case = self.case;
            let row = self.row();
            assert!(!row.reason.contains("未能重新录入"), "{row:#?}");
            let again = row.reentered_as.expect("the photo is entered again");
            assert_ne!(Some(&again), self.first.as_ref());
            assert_eq!(
                entry(&mut self.mate, case, &again).and_then(|e| e.entered_again_for),
                Some(self.attached.clone())
            );
            let photo = std::slice::from_ref(&self.photo);
            assert_eq!(Self::photos(case, &mut self.mate), photo);
            self.phone
                .merge_case(&self.mate.export_case(case).expect("export"))
                .expect("merge");
            assert_eq!(Self::photos(case, &mut self.phone), photo);
        }
    }

    /// The refusal row `store` keeps of change `hash`.
    fn refusal_of(store: &Store, hash: &str) -> crate::Refusal {
        store
            .refusals()
            .expect("refusals")
            .into_iter()
            .find(|r| r.change_hash == hash)
            .expect("a refusal row of the change")
    }

    /// The history entry of change `hash` of `case` on `store`.
    fn entry(store: &mut Store, case: crate::CaseId, hash: &str) -> Option<crate::HistoryEntry> {
        store
            .history(case)
            .expect("history")
            .into_iter()
            .find(|e| e.hash == hash)
    }

    /// When the finding entered again reaches the teammate's phone through the server,
    /// the photo is entered again into it.
    #[test]
    fn a_teammate_s_photo_follows_a_finding_entered_again_through_the_server() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut waiting = a_photo_waiting(&dir);
        let case = waiting.case;
        let mut server =
            AutoCommit::load(&waiting.phone.export_document(case).expect("export")).expect("load");
        let mut state = sync::State::new();
        let mut server_state = sync::State::new();
        loop {
            let asked = waiting
                .mate
                .generate_sync(case, &mut state)
                .expect("generate");
            if let Some(asked) = asked {
                server
                    .sync()
                    .receive_sync_message(
                        &mut server_state,
                        sync::Message::decode(&asked).expect("decode"),
                    )
                    .expect("receive");
            }
            let Some(answer) = server.sync().generate_sync_message(&mut server_state) else {
                break;
            };
            waiting
                .mate
                .receive_sync(case, &mut state, &answer.encode(), &[])
                .expect("received");
        }
        waiting.check_followed();
    }

    /// The same, when the inspector hands the case over on site again.
    #[test]
    fn a_teammate_s_photo_follows_a_finding_entered_again_handed_over_on_site() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut waiting = a_photo_waiting(&dir);
        let handed = waiting.phone.export_case(waiting.case).expect("export");
        waiting.mate.merge_case(&handed).expect("merge");
        waiting.check_followed();
    }

    /// The teammate recorded a finding of her own and then corrected the inspector's: the
    /// finding is entered again at the refusal, and the correction, once the inspector's
    /// finding comes back, builds on it and replaces its place, without a conflict.
    #[test]
    fn a_teammate_s_correction_made_after_her_own_finding_replaces_the_value() {
        let dir = tempfile::tempdir().expect("temp dir");
        let TwoFindings {
            mut phone,
            mut mate,
            case,
            refused,
            later,
            ..
        } = two_findings_merged_on_site(&dir);
        mate.add_finding(case, &sample::finding("灭火器过期"))
            .expect("finding");
        let edit = crate::FindingEdit {
            place: Some("三号仓库东侧".into()),
            ..Default::default()
        };
        mate.edit_finding(case, later, &edit).expect("edit");
        let edited = mate.heads(case).expect("heads").remove(0);
        for store in [&mut phone, &mut mate] {
            refused_by_the_trail(store, case, &refused);
        }
        assert_eq!(descriptions(&mut mate, case), ["灭火器过期"]);
        mate.merge_case(&phone.export_case(case).expect("export"))
            .expect("the inspector's finding comes back on site");
        let again = refusal_of(&mate, &edited)
            .reentered_as
            .expect("the correction is entered again");
        let finding = mate
            .case(case)
            .expect("case")
            .findings
            .into_iter()
            .find(|f| f.description == "安全出口锁闭")
            .expect("the finding");
        assert_eq!(finding.place, "三号仓库东侧");
        assert!(
            mate.conflicts(case).expect("conflicts").is_empty(),
            "{:#?}",
            mate.conflicts(case)
        );
        let new = entry(&mut mate, case, &again).expect("in the case");
        assert_eq!(new.entered_again_for.as_deref(), Some(edited.as_str()));
    }

    /// The teammate took off a photo the inspector had attached to his later finding (and
    /// joined the team with the same change): the taking off waits with the finding, and
    /// the photo does not come back with it.
    #[test]
    fn a_teammate_s_removal_of_a_photo_follows_a_finding_entered_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let TwoFindings {
            mut phone,
            mut mate,
            case,
            refused,
            later,
            ..
        } = two_findings_merged_on_site(&dir);
        let photo = phone.ingest_photo(&sample::jpeg(64, 48)).expect("ingest");
        let target = crate::PhotoTarget::Finding(later);
        phone
            .attach_photo(case, &target, &photo.sha256, "安全出口")
            .expect("attach");
        mate.merge_case(&phone.export_case(case).expect("export"))
            .expect("merge");
        mate.detach_photo(case, &target, &photo.sha256)
            .expect("detach");
        let detached = mate.heads(case).expect("heads").remove(0);
        for store in [&mut phone, &mut mate] {
            refused_by_the_trail(store, case, &refused);
        }
        mate.merge_case(&phone.export_case(case).expect("export"))
            .expect("the inspector's finding comes back on site");
        let photos: Vec<String> = mate
            .case(case)
            .expect("case")
            .findings
            .into_iter()
            .find(|f| f.id == later)
            .expect("the finding")
            .photos
            .into_iter()
            .map(|p| p.sha256)
            .collect();
        assert!(photos.is_empty(), "the photo stays off: {photos:?}");
        let row = refusal_of(&mate, &detached);
        assert!(!row.reason.contains("未能重新录入"), "{row:#?}");
    }

    /// A change entered again whose new change went too (refused itself) is not entered a
    /// second time by hand: what it held went with that change.
    #[test]
    fn a_change_whose_new_change_was_refused_is_not_entered_twice() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        let first = phone.heads(case).expect("heads").remove(0);
        phone
            .add_finding(case, &sample::finding("安全出口锁闭"))
            .expect("finding");
        let later = phone.heads(case).expect("heads").remove(0);
        phone
            .refuse(
                "server",
                case,
                "review_trail",
                "审核记录只能追加",
                &[first],
                true,
            )
            .expect("refuse");
        let new = refusal_of(&phone, &later)
            .reentered_as
            .expect("entered again");
        phone
            .refuse(
                "server",
                case,
                "jurisdiction",
                "不在辖区",
                std::slice::from_ref(&new),
                true,
            )
            .expect("refuse");
        assert!(descriptions(&mut phone, case).is_empty());
        let twice = phone.enter_again(case, &later);
        assert!(
            matches!(&twice, Err(crate::Error::Invalid { .. })),
            "{twice:?}"
        );
        assert!(descriptions(&mut phone, case).is_empty());
        // The new change itself can be.
        phone.enter_again(case, &new).expect("entered again");
        assert_eq!(descriptions(&mut phone, case), ["安全出口锁闭"]);
    }

    /// A phone that entered a change again after a refusal, a teammate's phone still
    /// holding the dropped one (merged on site before), and the server's case (what the
    /// author's phone holds now).
    struct Held {
        phone: Store,
        mate: Store,
        case: crate::CaseId,
        refused: String,
        server: AutoCommit,
    }

    /// An inspector's phone with two findings, the first to be refused, and a teammate's
    /// phone that merged them on site.
    struct TwoFindings {
        phone: Store,
        mate: Store,
        case: crate::CaseId,
        /// The change that recorded the first finding.
        refused: String,
        /// The later finding, and the change that recorded it.
        later: crate::FindingId,
        recorded: String,
    }

    fn two_findings_merged_on_site(dir: &tempfile::TempDir) -> TwoFindings {
        let (mut phone, case) = phone_with_case(dir);
        let mut mate = phone_of(dir, "mate");
        sample::certify(&mut [&mut phone, &mut mate]).expect("certified");
        phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        let refused = phone.heads(case).expect("heads").remove(0);
        let later = phone
            .add_finding(case, &sample::finding("安全出口锁闭"))
            .expect("finding");
        let recorded = phone.heads(case).expect("heads").remove(0);
        mate.merge_case(&phone.export_case(case).expect("export"))
            .expect("merge");
        TwoFindings {
            phone,
            mate,
            case,
            refused,
            later,
            recorded,
        }
    }

    fn held_by_a_teammate(dir: &tempfile::TempDir) -> Held {
        let TwoFindings {
            mut phone,
            mate,
            case,
            refused,
            ..
        } = two_findings_merged_on_site(dir);
        refused_by_the_trail(&mut phone, case, &refused);
        let server = AutoCommit::load(&phone.export_document(case).expect("export")).expect("load");
        Held {
            phone,
            mate,
            case,
            refused,
            server,
        }
    }

    /// A server that keeps sending the changes entered again without ever refusing the
    /// held one (it never hears of it) does not keep the teammate's round going for ever:
    /// after a few such messages the case waits for the next sync.
    #[test]
    fn changes_waiting_under_taken_numbers_end_the_case_s_round_after_a_few_messages() {
        use crate::sync::{CatalogEntry, CatalogPage, DocumentId, SyncSession, WireMessage};
        let dir = tempfile::tempdir().expect("temp dir");
        let Held {
            mut mate,
            case,
            mut server,
            ..
        } = held_by_a_teammate(&dir);
        let document_id = DocumentId::of(case);
        let catalog = CatalogPage {
            cursor: 1,
            documents: vec![CatalogEntry {
                document_id: document_id.to_string(),
                heads: crate::case_doc::sorted_heads(&mut server),
            }],
            more: false,
            revoked: Vec::new(),
        };
        let mut session = SyncSession::plan(&mut mate, "server", &catalog).expect("plan");
        let peer = WireMessage::Peer {
            sender_id: "server".into(),
            target_id: "mate".into(),
            selected_version: "1".into(),
            metadata: Default::default(),
        };
        let first = session.on_frame(&mut mate, &peer.encode()).expect("peer");
        assert_eq!(first.len(), 1, "the mate asks for the case");
        // The server answers every message with the changes entered again.
        let answer = WireMessage::Sync {
            sender_id: "server".into(),
            target_id: "mate".into(),
            document_id,
            data: every_change(&mut server).encode(),
            signatures: Vec::new(),
        }
        .encode();
        let mut replies = 0;
        for _ in 0..50 {
            if session
                .on_frame(&mut mate, &answer)
                .expect("on frame")
                .is_empty()
            {
                break;
            }
            replies += 1;
        }
        assert!(replies < 50, "the exchange ends");
        assert!(session.is_done(), "nothing is left pending");
        let report = session.finish(&mut mate, 1).expect("finish");
        assert_eq!(report.waiting.len(), 1, "{report:?}");
        assert_eq!(report.waiting[0].0, case);
    }

    /// A sync message from `server` carrying every change it has, whatever the peer's
    /// summary claims.
    fn every_change(server: &mut AutoCommit) -> sync::Message {
        sync::Message {
            heads: server.get_heads(),
            need: Vec::new(),
            have: Vec::new(),
            changes: server
                .get_changes(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect::<Vec<_>>()
                .into(),
            flags: None,
            version: sync::MessageVersion::V1,
        }
    }

    /// A teammate holds a change its author's phone dropped on a refusal (merged on site
    /// before), and the server sends what the author entered again under the same change
    /// numbers: the teammate leaves it waiting instead of failing, and takes it once the
    /// server refused the held change to the teammate too.
    #[test]
    fn a_change_entered_again_waits_on_a_teammate_still_holding_the_dropped_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let Held {
            mut phone,
            mut mate,
            case,
            refused,
            mut server,
        } = held_by_a_teammate(&dir);
        // The server answers with every change it has (the mate already holds most). A
        // sync message of Automerge's own would name only those the mate's summary lacks,
        // and the summary, a bloom filter, claims one the mate lacks about once in a
        // hundred runs: the changes entered again would then come a round later.
        let exchange = |mate: &mut Store, server: &mut AutoCommit| {
            let mut state = sync::State::new();
            let answer = every_change(server);
            mate.receive_sync(case, &mut state, &answer.encode(), &[])
                .map(|waits| (waits, state))
        };
        let (waits, mut state) = exchange(&mut mate, &mut server).expect("waits, not fails");
        assert!(waits, "the session is told that changes wait");
        assert_eq!(
            mate.case(case).expect("case").findings.len(),
            2,
            "as it was"
        );
        let goes_on = mate
            .generate_sync(case, &mut state)
            .expect("generate")
            .expect("a message");
        assert!(
            !sync::Message::decode(&goes_on)
                .expect("decode")
                .heads
                .is_empty(),
            "the exchange goes on (the held change goes to the server, to be refused) \
             instead of asking for everything again, which would bring the same answer"
        );
        mate.refuse(
            "server",
            case,
            "review_trail",
            "审核记录只能追加",
            std::slice::from_ref(&refused),
            true,
        )
        .expect("refuse");
        let (waits, _) = exchange(&mut mate, &mut server).expect("received");
        assert!(!waits);
        assert_eq!(
            descriptions(&mut mate, case),
            descriptions(&mut phone, case)
        );
        assert_eq!(descriptions(&mut mate, case), ["安全出口锁闭"]);
    }

    /// A change of this device refused for its author (out of jurisdiction, a revoked
    /// device) means every later change would be refused for the same reason: nothing is
    /// entered again. Another device's change refused so takes nothing of this device's.
    #[test]
    fn a_refusal_of_the_author_enters_nothing_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        let mut hashes = Vec::new();
        for text in ["配电箱未接地", "安全出口锁闭"] {
            phone
                .add_finding(case, &sample::finding(text))
                .expect("finding");
            hashes.push(phone.heads(case).expect("heads").remove(0));
        }
        phone
            .refuse(
                "server",
                case,
                "jurisdiction",
                "不在辖区",
                &hashes[..1],
                true,
            )
            .expect("refuse");
        assert!(phone.case(case).expect("case").findings.is_empty());
        let refusals = phone.refusals().expect("refusals");
        assert_eq!(refusals.len(), 2);
        assert!(
            refusals.iter().all(|r| r.reentered_as.is_none()),
            "{refusals:?}"
        );

        // Another device's change refused for its author (merged on site): this device's
        // own changes built on it are entered again.
        let mut other = phone_of(&dir, "other");
        sample::certify(&mut [&mut phone, &mut other]).expect("certified");
        other
            .merge_case(&phone.export_case(case).expect("export"))
            .expect("merge");
        other
            .add_finding(case, &sample::finding("消防通道堵塞"))
            .expect("finding");
        let revoked = other.heads(case).expect("heads").remove(0);
        phone
            .merge_case(&other.export_case(case).expect("export"))
            .expect("merge");
        phone
            .add_finding(case, &sample::finding("灭火器过期"))
            .expect("finding");
        phone
            .refuse(
                "server",
                case,
                "signature",
                "签名设备已被吊销",
                &[revoked],
                true,
            )
            .expect("refuse");
        assert_eq!(descriptions(&mut phone, case), ["灭火器过期"]);
    }

    /// A change entered again by hand after the device wrote the same field since leaves
    /// that write out, and says so: replacing the later value would settle silently what
    /// the two changes wrote in that order; the rest of it goes in.
    #[test]
    fn a_change_entered_again_by_hand_leaves_out_a_field_written_since() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        let finding = phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        let edit = crate::FindingEdit {
            description: Some("配电箱未接地，线路裸露".into()),
            place: Some("一号车间".into()),
            ..Default::default()
        };
        phone.edit_finding(case, finding, &edit).expect("edit");
        let refused = phone.heads(case).expect("heads").remove(0);
        assert!(!refused_by_the_trail(&mut phone, case, &refused));
        let since = crate::FindingEdit {
            place: Some("配电室".into()),
            ..Default::default()
        };
        phone.edit_finding(case, finding, &since).expect("edit");

        phone.enter_again(case, &refused).expect("entered again");
        let read = phone.case(case).expect("case");
        assert_eq!(read.findings[0].description, "配电箱未接地，线路裸露");
        assert_eq!(read.findings[0].place, "配电室");
        assert!(phone.conflicts(case).expect("conflicts").is_empty());
        let row = refusal_of(&phone, &refused);
        assert!(row.reentered_as.is_some());
        assert!(row.reason.contains("未能重新录入"), "{}", row.reason);
    }

    /// A change entered again by hand builds on the device's last change, as every change
    /// of a device does: when a later refusal takes that last change, the one entered
    /// again goes with it and comes back, and the case still saves and loads. (Found by
    /// the simulation: built beside it, the change entered again stayed while the last
    /// change went, and rebuilding the case panicked inside Automerge.)
    #[test]
    fn a_change_entered_again_by_hand_builds_on_the_device_s_last_change() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        let refused = phone.heads(case).expect("heads").remove(0);
        assert!(!refused_by_the_trail(&mut phone, case, &refused));
        phone
            .add_finding(case, &sample::finding("安全出口锁闭"))
            .expect("finding");
        let last = phone.heads(case).expect("heads").remove(0);
        let again = phone.enter_again(case, &refused).expect("entered again");
        let mut doc =
            AutoCommit::load(&phone.export_document(case).expect("export")).expect("loads");
        let new: automerge::ChangeHash = again.parse().expect("a hash");
        let deps = doc
            .get_change_by_hash(&new)
            .expect("in the case")
            .deps()
            .to_vec();
        assert_eq!(
            deps,
            [last.parse::<automerge::ChangeHash>().expect("a hash")]
        );

        assert!(!refused_by_the_trail(&mut phone, case, &last));
        assert_eq!(descriptions(&mut phone, case), ["配电箱未接地"]);
        AutoCommit::load(&phone.export_document(case).expect("export")).expect("loads");
    }

    /// A change dropped on a refusal and not entered again then is entered again by hand
    /// once the rule book allows it; one whose content all lay in a dropped finding, one
    /// already entered again and one the device never had are refused with a reason.
    #[test]
    fn a_dropped_change_is_entered_again_by_hand() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        let mut hashes = Vec::new();
        let first = phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        hashes.push(phone.heads(case).expect("heads").remove(0));
        phone
            .add_finding(case, &sample::finding("安全出口锁闭"))
            .expect("finding");
        hashes.push(phone.heads(case).expect("heads").remove(0));
        let edit = crate::FindingEdit {
            description: Some("配电箱未接地，线路裸露".into()),
            ..Default::default()
        };
        phone.edit_finding(case, first, &edit).expect("edit");
        hashes.push(phone.heads(case).expect("heads").remove(0));
        let before = phone.history(case).expect("history");
        // Refused for its author: nothing was entered again then.
        phone
            .refuse(
                "server",
                case,
                "jurisdiction",
                "不在辖区",
                &hashes[..1],
                true,
            )
            .expect("refuse");
        assert!(descriptions(&mut phone, case).is_empty());

        let later = phone.enter_again(case, &hashes[1]).expect("entered again");
        assert_eq!(descriptions(&mut phone, case), ["安全出口锁闭"]);
        let history = phone.history(case).expect("history");
        let new = history
            .iter()
            .find(|e| e.hash == later)
            .expect("in the case");
        let old = before.iter().find(|e| e.hash == hashes[1]).expect("known");
        assert_eq!(
            (&new.action, new.device_time),
            (&old.action, old.device_time)
        );
        let row = refusal_of(&phone, &hashes[1]);
        assert_eq!(row.reentered_as.as_deref(), Some(later.as_str()));
        let twice = phone.enter_again(case, &hashes[1]);
        assert!(
            matches!(&twice, Err(crate::Error::NotAllowed(why)) if why.contains("已全部重新录入")),
            "entered once: {twice:?}"
        );

        phone
            .enter_again(case, &hashes[0])
            .expect("the refused one too");
        assert_eq!(
            descriptions(&mut phone, case),
            ["安全出口锁闭", "配电箱未接地"]
        );
        // The edit wrote into the finding its first entry made: it goes into the finding
        // as entered again.
        let edit_again = phone.enter_again(case, &hashes[2]).expect("entered again");
        assert_eq!(
            descriptions(&mut phone, case),
            ["安全出口锁闭", "配电箱未接地，线路裸露"]
        );
        let history = phone.history(case).expect("history");
        let entry = history
            .iter()
            .find(|e| e.hash == edit_again)
            .expect("entry");
        assert_eq!(entry.entered_again_for.as_deref(), Some(hashes[2].as_str()));
        assert!(matches!(
            phone.enter_again(case, &"0".repeat(64)),
            Err(crate::Error::NotFound { .. })
        ));
        // What was entered again is stored, signed, and goes to the server.
        drop(phone);
        let mut reopened =
            Store::open(dir.path().join("phone.db"), sample::inspector("insp")).expect("reopen");
        assert_eq!(
            descriptions(&mut reopened, case),
            ["安全出口锁闭", "配电箱未接地，线路裸露"]
        );
    }

    /// A change made after a refusal, on a finding entered again then, and refused in
    /// turn, is entered again by hand into that finding: the operation numbers the first
    /// refused change had, which the finding entered again took, are not taken for gone.
    #[test]
    fn a_change_on_a_finding_entered_again_is_entered_again_by_hand_into_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        let first = phone.heads(case).expect("heads").remove(0);
        let later = phone
            .add_finding(case, &sample::finding("安全出口锁闭"))
            .expect("finding");
        phone
            .refuse(
                "server",
                case,
                "review_trail",
                "审核记录只能追加",
                &[first],
                true,
            )
            .expect("refuse");
        let edit = crate::FindingEdit {
            place: Some("二号车间".into()),
            ..Default::default()
        };
        phone.edit_finding(case, later, &edit).expect("edit");
        let edited = phone.heads(case).expect("heads").remove(0);
        phone
            .refuse(
                "server",
                case,
                "jurisdiction",
                "不在辖区",
                std::slice::from_ref(&edited),
                true,
            )
            .expect("refuse");
        let place = |phone: &mut Store| phone.case(case).expect("case").findings[0].place.clone();
        assert_eq!(place(&mut phone), sample::finding("").place, "as recorded");
        phone.enter_again(case, &edited).expect("entered again");
        assert_eq!(place(&mut phone), "二号车间");
        let row = refusal_of(&phone, &edited);
        assert!(
            !row.reason.contains("未能重新录入"),
            "entered whole: {}",
            row.reason
        );

        // A dropped change that came back into the case is not entered twice (one refused
        // in a message the server refused whole, which it did not keep: one refused for
        // good is refused again when handed back).
        let (mut other, mut third, lone, gone) = a_teammate_s_merged_finding_refused(&dir, false);
        other
            .merge_case(&third.export_case(lone).expect("export"))
            .expect("it comes back from a teammate");
        let twice = other.enter_again(lone, &gone);
        assert!(
            matches!(&twice, Err(crate::Error::NotAllowed(why)) if why.contains("已在案件中")),
            "{twice:?}"
        );
        assert_eq!(descriptions(&mut other, lone), ["灭火器过期"]);
    }

    /// A phone `other` with a case and a finding (`gone`, its change), merged by a teammate
    /// `third`, then refused by the server as outside the jurisdiction, the refusal `kept`
    /// or not.
    fn a_teammate_s_merged_finding_refused(
        dir: &tempfile::TempDir,
        kept: bool,
    ) -> (Store, Store, crate::CaseId, String) {
        let (mut other, mut third) = (phone_of(dir, "other"), phone_of(dir, "third"));
        sample::certify(&mut [&mut other, &mut third]).expect("certified");
        other
            .register_enterprise(&sample::enterprise(1))
            .expect("enterprise");
        let lone = other
            .open_case(&sample::new_case(&sample::enterprise(1)))
            .expect("case");
        other
            .add_finding(lone, &sample::finding("灭火器过期"))
            .expect("finding");
        let gone = other.heads(lone).expect("heads").remove(0);
        third
            .merge_case(&other.export_case(lone).expect("export"))
            .expect("merge");
        let gone_alone = std::slice::from_ref(&gone);
        other
            .refuse("server", lone, "jurisdiction", "不在辖区", gone_alone, kept)
            .expect("refuse");
        (other, third, lone, gone)
    }

    #[test]
    fn a_change_the_server_refused_for_good_is_refused_again_when_a_teammate_hands_it_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut other, mut third, lone, gone) = a_teammate_s_merged_finding_refused(&dir, true);
        let merged = other
            .merge_case(&third.export_case(lone).expect("export"))
            .expect("merge");
        assert_eq!(merged.received.accepted, 0, "{merged:?}");
        assert!(
            merged.received.refused.iter().any(|(refusal, hashes)| {
                refusal.rule == crate::rules::Rule::Jurisdiction
                    && refusal.reason == "不在辖区"
                    && hashes.contains(&gone)
            }),
            "{merged:?}"
        );
        assert!(descriptions(&mut other, lone).is_empty());
    }

    #[test]
    fn a_case_with_a_refused_change_is_exchanged_again_next_round() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        // The server acknowledged the case as it is.
        let mut state = sync::State::new();
        state.their_heads = Some(
            AutoCommit::load(&phone.export_document(case).expect("export"))
                .expect("load")
                .get_heads(),
        );
        assert!(phone.save_sync_state("server", case, &state).expect("save"));
        assert!(
            !phone
                .unacknowledged_cases("server")
                .expect("list")
                .contains(&case)
        );
        // An edit concurrent with the case's approval on the server is refused.
        phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        let hash = phone.heads(case).expect("heads").remove(0);
        phone
            .refuse(
                "server",
                case,
                "approved_lock",
                "案件已审核通过",
                &[hash],
                true,
            )
            .expect("refuse");
        assert!(
            phone
                .unacknowledged_cases("server")
                .expect("list")
                .contains(&case),
            "the next round fetches what the server holds (the approval)"
        );
    }

    /// A photo attached by a change the server refused (made while the case was approved
    /// there, say) is named by no case any more, but the refused change is kept for the
    /// inspector to enter again: the photo, which never reached the server, stays too.
    #[test]
    fn a_photo_attached_by_a_refused_change_outlives_garbage_collection() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut phone, case) = phone_with_case(&dir);
        let finding = phone
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        let photo = phone.ingest_photo(&sample::jpeg(64, 48)).expect("ingest");
        let stray = phone.ingest_photo(&sample::jpeg(32, 24)).expect("ingest");
        phone
            .attach_photo(
                case,
                &crate::PhotoTarget::Finding(finding),
                &photo.sha256,
                "全景",
            )
            .expect("attach");
        let hash = phone.heads(case).expect("heads").remove(0);
        phone
            .refuse(
                "server",
                case,
                "approved_lock",
                "案件已审核通过",
                &[hash],
                true,
            )
            .expect("refuse");
        assert!(
            phone.case(case).expect("case").findings[0]
                .photos
                .is_empty()
        );

        let later = phone.now() + chrono::Duration::hours(crate::UNATTACHED_HOURS + 1);
        phone.set_clock(std::sync::Arc::new(move || later));
        let collected = phone.collect_garbage().expect("collected");
        assert_eq!(collected.blobs, 2, "the stray photo and its thumbnail go");
        assert!(phone.blob(&stray.sha256).is_err());
        for kept in [&photo.sha256, &photo.thumbnail_sha256] {
            assert!(phone.blob(kept).is_ok(), "{kept}");
        }
    }
}
