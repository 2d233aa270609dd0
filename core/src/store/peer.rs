//! Peer sessions: two phones of a joint team merge one case with no server, over whatever
//! carries bytes between them (Wi-Fi Direct, Bluetooth, a sequence of QR codes). The same
//! Automerge sync as with the server, with the changes' signatures and the signers'
//! certificates alongside; each side verifies every change it receives against the
//! certificates (issued by a server it signed in to) and judges it with the rule book as
//! its author's, as the server will, so that a phone never takes from a teammate what the
//! server will refuse.
//!
//! A message is CBOR: `{"format": "anjian-peer/1", "case": text, "sync": bytes,
//! "signatures": bytes, "certificates": [bytes], "receipts": [[...]]}`, the receipts only
//! when there are some (docs/protocol.md).

use std::collections::{HashMap, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};

use super::Store;
use super::proofs::Vouching;
use crate::certificate::{
    Receipt, decode_certificates, decode_receipts, encode_certificates, encode_receipts,
};
use crate::codes::CaseId;
use crate::document;
use crate::error::{Error, Result};
use crate::rules::{self, Author, KeyHolder, Refusal, RefusedChanges};
use crate::signing::{ChangeSignature, KeyId};
use crate::sync::intake;

/// The format name a peer message starts with.
pub const PEER_FORMAT: &str = "anjian-peer/1";

/// Bytes one peer message may have: a sync message's changes (at most
/// `intake::Limits::message_bytes` uncompressed) and room for their signatures, the
/// certificates vouching for them and the server's receipts of revoked devices' changes
/// (about 180 bytes each). A longer one is refused before any of it is read.
pub const PEER_MESSAGE_BYTES: usize = 24 * 1024 * 1024;

/// One side of a peer session for one case (`Store::peer_session`): the Automerge sync
/// state with the other phone, and what this side left out of what it received (never
/// asked for again in this session).
#[derive(Debug)]
pub struct PeerSession {
    case: CaseId,
    state: sync::State,
    left_out: HashSet<ChangeHash>,
    rewind: bool,
    /// The heads and needs of the last message without changes this side sent.
    last_said: Option<(Vec<ChangeHash>, Vec<ChangeHash>)>,
}

impl PeerSession {
    /// The case it merges.
    pub fn case(&self) -> CaseId {
        self.case
    }
}

/// What one message of a peer came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerReceived {
    /// Changes verified, allowed and recorded.
    pub accepted: usize,
    /// Changes left out, by reason: refused by the rule book or for their signature, or
    /// held back (`held_back`) until their signer's certificate can be verified. The
    /// server judges them again when they reach it some other way.
    pub refused: Vec<RefusedChanges>,
}

impl PeerReceived {
    /// How many changes were held back rather than refused.
    pub fn waiting(&self) -> usize {
        self.refused
            .iter()
            .filter(|(r, _)| r.rule == rules::Rule::HeldBack)
            .map(|(_, hashes)| hashes.len())
            .sum()
    }
}

impl Store {
    /// A peer session for `case` (which this store may not hold yet: then the session
    /// receives it whole).
    pub fn peer_session(&self, case: CaseId) -> PeerSession {
        PeerSession {
            case,
            state: sync::State::new(),
            left_out: HashSet::new(),
            rewind: false,
            last_said: None,
        }
    }

    /// The next message to hand the other phone, or `None` when this side has nothing more
    /// to say (the session is done once neither side has).
    pub fn peer_message(&mut self, session: &mut PeerSession) -> Result<Option<Vec<u8>>> {
        let message = if std::mem::take(&mut session.rewind) {
            Some(intake::rewind())
        } else {
            let next = match self.doc_if_exists(session.case)? {
                Some(loaded) => crate::sync::next_message(&mut loaded.doc, &mut session.state),
                None => crate::sync::next_message(&mut AutoCommit::new(), &mut session.state),
            };
            next.map(|mut message| {
                message.need.retain(|h| !session.left_out.contains(h));
                message
            })
        };
        let Some(message) = message else {
            return Ok(None);
        };
        // With changes left out the two sides' heads never meet, and Automerge would
        // answer for ever: saying again what was said changes nothing, so the side stops.
        if message.changes.is_empty() {
            let said = (message.heads.clone(), message.need.clone());
            if session.last_said.as_ref() == Some(&said) {
                return Ok(None);
            }
            session.last_said = Some(said);
        }
        let changes: Vec<automerge::Change> = message
            .changes
            .iter()
            .filter_map(|bytes| automerge::Change::try_from(bytes).ok())
            .collect();
        let vouching = self.vouching_for(&changes)?;
        Ok(Some(encode(session.case, &message.encode(), &vouching)))
    }

    /// Takes a message from the other phone: verifies the certificates it carries, and
    /// each new change's signature and author, judges each as its author's with the rule
    /// book, and records what is allowed (with its signatures) before it returns.
    pub fn peer_receive(
        &mut self,
        session: &mut PeerSession,
        bytes: &[u8],
    ) -> Result<PeerReceived> {
        let incoming = decode(bytes)?;
        if incoming.case != session.case.to_string() {
            return Err(Error::InvalidDocument(format!(
                "peer message for case {}, expected {}",
                incoming.case, session.case
            )));
        }
        let message = sync::Message::decode(&incoming.sync)
            .map_err(|e| Error::InvalidDocument(format!("peer sync message: {e}")))?;
        let checked = intake::check(message, &intake::Limits::default())
            .map_err(|e| Error::InvalidDocument(format!("peer sync message: {e}")))?;
        let case = session.case;
        let mut handed = self.judge_handed_over(case, checked, incoming.vouching)?;
        session.rewind |= handed.waiting > 0;
        for (_, hashes) in &handed.received.refused {
            session
                .left_out
                .extend(hashes.iter().filter_map(|h| h.parse::<ChangeHash>().ok()));
        }
        if let Some(message) = handed.message.take() {
            handed
                .merged
                .sync()
                .receive_sync_message(&mut session.state, message)?;
        }
        let received = self.keep_handed_over(case, handed)?;
        tracing::info!(case.id = %case, accepted = received.accepted, left_out = received.refused.len(), "peer changes received");
        Ok(received)
    }

    /// Judges the changes another phone handed over for `case` (in a peer session or a
    /// case file) as the server will: the certificates that came with them are kept if a
    /// server this phone trusts issued them, each new change's signature is verified
    /// against its signer's certificate (a peer proves nothing about who it is, so a
    /// change no certificate vouches for is left out: refused, or held back until its
    /// signer's certificate is known), and each is judged as its author's with the rule
    /// book. Nothing is recorded yet (`keep_handed_over`).
    pub(crate) fn judge_handed_over(
        &mut self,
        case: CaseId,
        checked: intake::Checked,
        vouching: Vouching,
    ) -> Result<HandedOver> {
        self.keep_certificates(&vouching.certificates)?;
        let limits = intake::Limits::default();
        let (mut doc, before) = match self.doc_if_exists(case)? {
            Some(loaded) => {
                let before = super::judged_state(loaded)?;
                loaded.judged = Some((loaded.doc.get_heads(), before.clone()));
                (loaded.doc.clone(), Some(before))
            }
            None => (AutoCommit::new(), None),
        };
        let admitted = intake::admit(&doc, checked);
        let mut message = admitted.message;
        let fresh = admitted.changes;
        if let Err(e) = intake::check_depth(&doc, &fresh, &admitted.decoded, limits.depth) {
            return Err(Error::InvalidDocument(e.to_string()));
        }
        // The receipts of the changes taken, and of changes held here already that came
        // without one (taken before this phone knew of their device's revocation), so
        // that this phone can hand those on in turn; no others are verified.
        let fresh_hashes: HashSet<ChangeHash> = fresh.iter().map(automerge::Change::hash).collect();
        let held = self.held_wanting_receipts(&mut doc, &vouching.receipts)?;
        let wanted = fresh_hashes.union(&held).copied().collect();
        let receipts = self.verified_receipts(vouching.receipts, &wanted)?;
        let signatures: HashMap<ChangeHash, ChangeSignature> = vouching
            .signatures
            .into_iter()
            .map(|s| (s.hash, s))
            .collect();
        let mut verifier = Certified {
            store: self,
            known: HashMap::new(),
            receipts: &receipts,
        };
        let mut refused_before =
            self.refused_for_good(fresh.iter().map(automerge::Change::hash))?;
        let authors: Vec<std::result::Result<Author, Refusal>> = fresh
            .iter()
            .map(|change| {
                if let Some(refusal) = refused_before.remove(&change.hash()) {
                    return Err(refusal);
                }
                rules::author_of(change, signatures.get(&change.hash()), &mut verifier)
                    .map(|(author, _)| author)
            })
            .collect();
        let (_, trust) = self.judging()?;
        let judged = rules::judge_changes(
            &doc,
            before.as_ref(),
            fresh,
            &admitted.decoded,
            authors,
            &limits,
            &trust,
        );
        // What the message carried is in the judged document already, or was left out.
        message.changes = Vec::<Vec<u8>>::new().into();
        let kept: Vec<ChangeSignature> = judged
            .admitted
            .iter()
            .filter_map(|(change, _)| signatures.get(&change.hash()).cloned())
            .collect();
        let taken_receipts = judged
            .admitted
            .iter()
            .filter_map(|(change, _)| receipts.get(&change.hash()).cloned())
            .collect();
        let held_receipts = receipts
            .into_values()
            .filter(|r| !fresh_hashes.contains(&r.hash))
            .collect();
        Ok(HandedOver {
            merged: judged.doc,
            after: judged.case,
            kept,
            receipts: taken_receipts,
            held_receipts,
            received: PeerReceived {
                accepted: judged.admitted.len(),
                refused: judged.refused,
            },
            message: Some(message),
            waiting: admitted.waiting,
        })
    }

    /// Records what `judge_handed_over` allowed of `case`, with its signatures; nothing
    /// if the case is not one this phone's inspector may read (the server would never
    /// send it another district's case).
    pub(crate) fn keep_handed_over(
        &mut self,
        case: CaseId,
        handed: HandedOver,
    ) -> Result<PeerReceived> {
        let HandedOver {
            merged,
            after,
            kept,
            receipts,
            held_receipts,
            received,
            ..
        } = handed;
        self.keep_receipts_handed(case, &held_receipts);
        let Some(after) = after else {
            return Ok(received);
        };
        if !rules::may_read(&Author::from(&self.identity), after.case()) {
            return Err(rules::jurisdiction().into());
        }
        let actor = self.actor.clone();
        match self.doc_if_exists(case)? {
            Some(loaded) => {
                loaded.doc = merged.with_actor(actor);
                loaded.judged = Some((loaded.doc.get_heads(), after));
                self.persist_merged(case, &kept)?;
                self.enter_again_what_waited(case);
            }
            None => {
                let id = document::check_case(&merged)?;
                if id != case {
                    return Err(Error::InvalidDocument(format!(
                        "the changes handed over for case {case} make case {id}"
                    )));
                }
                self.insert_case(case, merged, &kept)?;
                // A case that left this device on a refusal may have changes waiting.
                self.enter_again_what_waited(case);
            }
        }
        // The receipts that vouched for changes of revoked devices vouch for them again
        // when this phone hands them on; the merge is done whether or not they are kept
        // (a sync fetches them again).
        self.keep_receipts_handed(case, &receipts);
        Ok(received)
    }

    /// Keeps receipts another phone handed over; the merge is done whether or not they
    /// are kept (a sync fetches them again).
    fn keep_receipts_handed(&mut self, case: CaseId, receipts: &[Receipt]) {
        if let Err(e) = self.keep_receipts(case, receipts) {
            tracing::warn!(case.id = %case, error = %e, "the receipts handed over were not kept");
        }
    }
}

/// What merging a case file came to (`Store::merge_case`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedCase {
    /// The case.
    pub case: CaseId,
    /// Its changes allowed and left out.
    pub received: PeerReceived,
}

/// What changes handed over by another phone came to, judged and not yet recorded.
pub(crate) struct HandedOver {
    /// The case with the allowed changes.
    merged: AutoCommit,
    /// The case as judged after them (`None` when nothing was allowed).
    after: Option<rules::CaseState>,
    /// The signatures of the allowed changes.
    kept: Vec<ChangeSignature>,
    /// The server's receipts that came with allowed changes.
    receipts: Vec<Receipt>,
    /// The server's receipts of changes held here already that had none.
    held_receipts: Vec<Receipt>,
    /// What was allowed and what left out.
    received: PeerReceived,
    /// The sync message they came in, without its changes.
    message: Option<sync::Message>,
    /// Changes that waited for ones not handed over.
    waiting: usize,
}

/// The keys and devices a phone knows: those of the certificates it verified. A peer
/// proves nothing about who it is, so no unsigned change is taken from it.
struct Certified<'a> {
    store: &'a Store,
    /// What was found for each key and device in this message (a certificate is
    /// verified once, not once per change).
    known: HashMap<(KeyId, String), Option<KeyHolder>>,
    /// The receipts that came with the changes, each signed by a server this phone trusts.
    receipts: &'a HashMap<ChangeHash, Receipt>,
}

impl rules::Verifier for Certified<'_> {
    fn key(
        &mut self,
        signature: &ChangeSignature,
        actor: &str,
    ) -> std::result::Result<Option<KeyHolder>, Refusal> {
        let slot = (signature.key, actor.to_owned());
        if let Some(holder) = self.known.get(&slot) {
            return Ok(holder.clone());
        }
        let certificate = self
            .store
            .certificate_of(&signature.key, actor)
            .map_err(|e| rules::held_back(&format!("无法读取证书 ({e})")))?;
        let holder = match certificate {
            Some(c) => Some(KeyHolder {
                revoked: self
                    .store
                    .revoked_device(actor, c.fields().issued_at)
                    .map_err(|e| rules::held_back(&format!("无法读取吊销记录 ({e})")))?,
                actor: c.fields().actor.clone(),
                key: c.fields().key.clone(),
                author: Some(c.author()),
            }),
            None => None,
        };
        self.known.insert(slot, holder.clone());
        Ok(holder)
    }

    fn device_known(&mut self, _actor: &str) -> std::result::Result<bool, Refusal> {
        // A device whose certificate this phone has not seen may still show it.
        Ok(false)
    }

    fn own_device(&mut self, _actor: &str) -> std::result::Result<Option<Author>, Refusal> {
        Ok(None)
    }

    fn taken_before_revocation(&mut self, change: &ChangeHash) -> bool {
        self.receipts.contains_key(change)
    }
}

/// A peer message as read.
struct Incoming {
    case: String,
    sync: Vec<u8>,
    vouching: Vouching,
}

fn encode(case: CaseId, sync: &[u8], vouching: &Vouching) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = minicbor::Encoder::new(&mut out);
    let written: std::result::Result<(), minicbor::encode::Error<std::convert::Infallible>> =
        (|| {
            // Receipts only when there are some, so that phones from before read the rest.
            let receipts = !vouching.receipts.is_empty();
            e.map(5 + receipts as u64)?
                .str("format")?
                .str(PEER_FORMAT)?;
            e.str("case")?.str(&case.to_string())?;
            e.str("sync")?.bytes(sync)?;
            e.str("signatures")?
                .bytes(&ChangeSignature::records(&vouching.signatures))?;
            e.str("certificates")?;
            encode_certificates(&mut e, &vouching.certificates)?;
            if receipts {
                e.str("receipts")?;
                encode_receipts(&mut e, &vouching.receipts)?;
            }
            Ok(())
        })();
    written.expect("writing to a vector cannot fail");
    out
}

fn decode(bytes: &[u8]) -> Result<Incoming> {
    let invalid = |why: String| Error::InvalidDocument(format!("peer message: {why}"));
    let cbor = |e: minicbor::decode::Error| invalid(e.to_string());
    if bytes.len() > PEER_MESSAGE_BYTES {
        return Err(invalid(format!(
            "{} bytes, over {PEER_MESSAGE_BYTES}",
            bytes.len()
        )));
    }
    let mut d = minicbor::Decoder::new(bytes);
    let (mut format, mut case, mut sync) = (None, None, None);
    let mut vouching = Vouching::default();
    let fields = d
        .map()
        .map_err(cbor)?
        .ok_or_else(|| invalid("a map of known length".into()))?;
    let mut seen = HashSet::new();
    for _ in 0..fields {
        let field = d.str().map_err(cbor)?;
        if !seen.insert(field) {
            return Err(invalid(format!("the field {field:?} twice")));
        }
        match field {
            "format" => format = Some(d.str().map_err(cbor)?.to_owned()),
            "case" => case = Some(d.str().map_err(cbor)?.to_owned()),
            "sync" => sync = Some(d.bytes().map_err(cbor)?.to_vec()),
            "signatures" => {
                vouching.signatures = ChangeSignature::from_records(d.bytes().map_err(cbor)?)
                    .map_err(|e| invalid(e.to_string()))?;
                // One for each change a message may carry.
                let most = intake::Limits::default().changes;
                if vouching.signatures.len() > most {
                    return Err(invalid(format!("more than {most} signatures")));
                }
            }
            "certificates" => {
                vouching.certificates = decode_certificates(&mut d).map_err(invalid)?;
            }
            "receipts" => vouching.receipts = decode_receipts(&mut d).map_err(invalid)?,
            other => return Err(invalid(format!("unknown field {other:?}"))),
        }
    }
    if d.position() != bytes.len() {
        return Err(invalid("bytes after the message".into()));
    }
    if format.as_deref() != Some(PEER_FORMAT) {
        return Err(invalid(format!(
            "format {format:?}, expected {PEER_FORMAT}"
        )));
    }
    Ok(Incoming {
        case: case.ok_or_else(|| invalid("no case".into()))?,
        sync: sync.ok_or_else(|| invalid("no sync message".into()))?,
        vouching,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;
    use crate::signing::{KeyAlgorithm, SignedCase, Signer, SoftwareKey};

    fn phone(dir: &tempfile::TempDir, user: &str) -> Store {
        let path = dir.path().join(format!("{user}.db"));
        let mut store = Store::open(path, sample::inspector(user)).expect("store");
        sample::certify(&mut [&mut store]).expect("certified");
        store
    }

    /// How many of the changes a case file hands over a phone that knows Zhang's device
    /// was revoked takes.
    fn taken(dir: &tempfile::TempDir, name: &str, zhang: &str, file: &[u8]) -> usize {
        let phone = &mut phone(dir, name);
        phone.learn_revoked(zhang, "已吊销").expect("learn");
        phone.merge_case(file).expect("merge").received.accepted
    }

    /// A revoked device's changes that the server took before the revocation are taken
    /// on site when the phone that hands them on holds the server's receipts of them (it
    /// sends them because it knows of the revocation too); without them, or with receipts
    /// no trusted server signed, they are refused as the revoked device's, and a change
    /// the device made after is refused whatever comes with it.
    #[test]
    fn a_revoked_device_s_changes_the_server_took_are_taken_with_its_receipts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut zhang, mut wang) = (phone(&dir, "zhang"), phone(&dir, "wang"));
        let ent = sample::enterprise(1);
        zhang.register_enterprise(&ent).expect("enterprise");
        let case = zhang.open_case(&sample::new_case(&ent)).expect("case");
        zhang
            .add_finding(case, &sample::finding("配电箱未接地"))
            .expect("finding");
        wang.merge_case(&zhang.export_case(case).expect("export"))
            .expect("wang takes the case");
        let changes = zhang.history(case).expect("history");
        // The sample server's key, which every certified phone trusts.
        let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [42; 32]);
        let stranger = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [7; 32]);
        let receipts = |key: &SoftwareKey| -> Vec<Receipt> {
            changes
                .iter()
                .map(|c| {
                    let at = "2026-12-01T08:00:00+00:00".to_owned();
                    Receipt::sign(key, c.hash.parse().expect("hash"), c.device.clone(), at)
                        .expect("receipt")
                })
                .collect()
        };
        assert_eq!(
            wang.keep_receipts(case, &receipts(&server)).expect("kept"),
            changes.len()
        );
        let device = zhang.device_id();

        // Wang does not know of the revocation yet: his file carries no receipts.
        let unaware = wang.export_case(case).expect("export");
        assert!(
            SignedCase::decode(&unaware)
                .expect("read")
                .receipts
                .is_empty()
        );
        wang.learn_revoked(&device, "已吊销").expect("learn");
        let file = wang.export_case(case).expect("export");
        let with_receipts = SignedCase::decode(&file).expect("read");
        assert_eq!(with_receipts.receipts.len(), changes.len());
        // Receipts of a server no phone trusts, and ones that name the trusted server but
        // are signed by another key.
        let untrusted = receipts(&stranger);
        let mut forged = untrusted.clone();
        for receipt in &mut forged {
            receipt.issuer = server.public_key().id();
        }
        let with = |receipts: Vec<Receipt>| {
            SignedCase {
                receipts,
                ..with_receipts.clone()
            }
            .encode()
        };
        assert_eq!(taken(&dir, "li", &device, &file), changes.len());
        assert_eq!(taken(&dir, "li2", &device, &unaware), 0);
        assert_eq!(taken(&dir, "li3", &device, &with(untrusted)), 0);
        assert_eq!(taken(&dir, "li4", &device, &with(forged)), 0);
        // A peer session carries them too.
        let li = &mut phone(&dir, "li5");
        li.learn_revoked(&device, "已吊销").expect("learn");
        let (mut ours, mut theirs) = (wang.peer_session(case), li.peer_session(case));
        let mut accepted = 0;
        for _ in 0..10 {
            let to_li = wang.peer_message(&mut ours).expect("message");
            if let Some(bytes) = &to_li {
                accepted += li.peer_receive(&mut theirs, bytes).expect("li").accepted;
            }
            let to_wang = li.peer_message(&mut theirs).expect("message");
            if let Some(bytes) = &to_wang {
                wang.peer_receive(&mut ours, bytes).expect("wang");
            }
            if to_li.is_none() && to_wang.is_none() {
                break;
            }
        }
        assert_eq!(accepted, changes.len());
        assert_eq!(li.heads(case).expect("li"), wang.heads(case).expect("wang"));

        // A phone that took the changes before it knew of the revocation picks up their
        // receipts from a file that carries them, and hands them on.
        let early = &mut phone(&dir, "li7");
        let received = |phone: &mut Store| {
            let file = phone.export_case(case).expect("export");
            SignedCase::decode(&file).expect("read").receipts.len()
        };
        let taken_early = early.merge_case(&unaware).expect("merge").received.accepted;
        assert_eq!(taken_early, changes.len());
        early.learn_revoked(&device, "已吊销").expect("learn");
        assert_eq!(received(early), 0);
        early.merge_case(&file).expect("merge");
        assert_eq!(received(early), changes.len());

        // What Zhang's phone records after is refused, receipts or not.
        zhang
            .add_finding(case, &sample::finding("吊销后记录"))
            .expect("finding");
        let after = SignedCase::decode(&zhang.export_case(case).expect("export")).expect("read");
        let later = SignedCase {
            receipts: with_receipts.receipts,
            ..after
        }
        .encode();
        let li = &mut phone(&dir, "li6");
        li.learn_revoked(&device, "已吊销").expect("learn");
        let merged = li.merge_case(&later).expect("merge");
        assert_eq!(merged.received.accepted, changes.len(), "{merged:?}");
        assert_eq!(merged.received.refused.len(), 1, "{merged:?}");

        // Once a newer certificate vouches for the device again (its account enabled and
        // signed in again), its changes need no receipts, and none go with them.
        let identity = zhang.identity().clone();
        let renewed = crate::certificate::Certificate::issue(
            &server,
            crate::certificate::CertificateFields {
                user: identity.user_id,
                name: identity.name,
                role: identity.role,
                district: identity.district,
                department: identity.department,
                actor: device.clone(),
                key: zhang.public_key(),
                issued_at: 10,
                not_after: 4_102_444_801,
                issuer: server.public_key().id(),
            },
        )
        .expect("certificate");
        wang.keep_certificates(&[renewed.encode()]).expect("kept");
        let file = wang.export_case(case).expect("export");
        assert!(SignedCase::decode(&file).expect("read").receipts.is_empty());
    }
}
