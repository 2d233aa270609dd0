//! Peer sessions: two phones of a joint team merge one case with no server, over whatever
//! carries bytes between them (Wi-Fi Direct, Bluetooth, a sequence of QR codes). The same
//! Automerge sync as with the server, with the changes' signatures and the signers'
//! certificates alongside; each side verifies every change it receives against the
//! certificates (issued by a server it signed in to) and judges it with the rule book as
//! its author's, as the server will, so that a phone never takes from a teammate what the
//! server will refuse.
//!
//! A message is CBOR: `{"format": "anjian-peer/1", "case": text, "sync": bytes,
//! "signatures": bytes, "certificates": [bytes]}` (docs/protocol.md).

use std::collections::{HashMap, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};

use super::Store;
use crate::codes::CaseId;
use crate::document;
use crate::error::{Error, Result};
use crate::rules::{self, Author, KeyHolder, Refusal, RefusedChanges};
use crate::signing::{ChangeSignature, KeyId};
use crate::sync::intake;

/// The format name a peer message starts with.
pub const PEER_FORMAT: &str = "anjian-peer/1";

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
        let actors: HashMap<ChangeHash, String> = message
            .changes
            .iter()
            .filter_map(|bytes| automerge::Change::try_from(bytes).ok())
            .map(|change| (change.hash(), change.actor_id().to_hex_string()))
            .collect();
        let signatures = crate::db::signatures_of(&self.conn, actors.keys().copied())?;
        let mut signers: Vec<(KeyId, String)> = signatures
            .iter()
            .filter_map(|s| Some((s.key, actors.get(&s.hash)?.clone())))
            .collect();
        signers.push((self.public_key().id(), self.device_id()));
        let certificates = self.certificates_for(signers)?;
        Ok(Some(encode(
            session.case,
            &message.encode(),
            &signatures,
            &certificates,
        )))
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
        let limits = intake::Limits::default();
        let checked = intake::check(message, &limits)
            .map_err(|e| Error::InvalidDocument(format!("peer sync message: {e}")))?;
        self.keep_certificates(&incoming.certificates)?;
        let case = session.case;
        let (doc, before) = match self.doc_if_exists(case)? {
            Some(loaded) => {
                let before = super::judged_state(loaded)?;
                loaded.judged = Some((loaded.doc.get_heads(), before.clone()));
                (loaded.doc.clone(), Some(before))
            }
            None => (AutoCommit::new(), None),
        };
        let admitted = intake::admit(&doc, checked);
        session.rewind |= admitted.waiting > 0;
        let mut message = admitted.message;
        let fresh = admitted.changes;
        if let Err(e) = intake::check_depth(&doc, &fresh, &admitted.decoded, limits.depth) {
            return Err(Error::InvalidDocument(e.to_string()));
        }
        let signatures: HashMap<ChangeHash, ChangeSignature> = incoming
            .signatures
            .into_iter()
            .map(|s| (s.hash, s))
            .collect();
        let mut verifier = Certified {
            store: self,
            known: HashMap::new(),
        };
        let authors: Vec<std::result::Result<Author, Refusal>> = fresh
            .iter()
            .map(|change| {
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
        for (_, hashes) in &judged.refused {
            session
                .left_out
                .extend(hashes.iter().filter_map(|h| h.parse::<ChangeHash>().ok()));
        }
        // What the message carried is in the judged document already, or was left out.
        message.changes = Vec::<Vec<u8>>::new().into();
        let mut merged = judged.doc;
        merged
            .sync()
            .receive_sync_message(&mut session.state, message)?;
        let kept: Vec<ChangeSignature> = judged
            .admitted
            .iter()
            .filter_map(|(change, _)| signatures.get(&change.hash()).cloned())
            .collect();
        let received = PeerReceived {
            accepted: judged.admitted.len(),
            refused: judged.refused,
        };
        let Some(after) = judged.case else {
            return Ok(received);
        };
        // A teammate may hand over only cases this phone's inspector may read (the server
        // would never send it another district's case): nothing of the message is kept.
        if !rules::may_read(&Author::from(&self.identity), after.case()) {
            return Err(rules::jurisdiction().into());
        }
        let actor = self.actor.clone();
        match self.doc_if_exists(case)? {
            Some(loaded) => {
                loaded.doc = merged.with_actor(actor);
                loaded.judged = Some((loaded.doc.get_heads(), after));
                self.persist_merged(case, &kept)?;
            }
            None => {
                let id = document::check_case(&merged)?;
                if id != case {
                    return Err(Error::InvalidDocument(format!(
                        "peer message for case {case} holds case {id}"
                    )));
                }
                self.insert_case(case, merged, &kept)?;
            }
        }
        tracing::info!(case.id = %case, accepted = received.accepted, left_out = received.refused.len(), "peer changes received");
        Ok(received)
    }
}

/// The keys and devices a phone knows: those of the certificates it verified. A peer
/// proves nothing about who it is, so no unsigned change is taken from it.
struct Certified<'a> {
    store: &'a Store,
    /// What was found for each key and device in this message (a certificate is
    /// verified once, not once per change).
    known: HashMap<(KeyId, String), Option<KeyHolder>>,
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
        let holder = certificate.map(|c| KeyHolder {
            actor: c.fields().actor.clone(),
            key: c.fields().key.clone(),
            author: Some(c.author()),
            revoked: false,
        });
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
}

/// A peer message as read.
struct Incoming {
    case: String,
    sync: Vec<u8>,
    signatures: Vec<ChangeSignature>,
    certificates: Vec<Vec<u8>>,
}

fn encode(
    case: CaseId,
    sync: &[u8],
    signatures: &[ChangeSignature],
    certificates: &[Vec<u8>],
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = minicbor::Encoder::new(&mut out);
    let written: std::result::Result<(), minicbor::encode::Error<std::convert::Infallible>> =
        (|| {
            e.map(5)?.str("format")?.str(PEER_FORMAT)?;
            e.str("case")?.str(&case.to_string())?;
            e.str("sync")?.bytes(sync)?;
            e.str("signatures")?
                .bytes(&ChangeSignature::records(signatures))?;
            e.str("certificates")?.array(certificates.len() as u64)?;
            for certificate in certificates {
                e.bytes(certificate)?;
            }
            Ok(())
        })();
    written.expect("writing to a vector cannot fail");
    out
}

/// At most this many certificates in one message (a joint team is a handful of phones).
const MAX_CERTIFICATES: u64 = 64;

/// A certificate's bytes, at most (one the server issues is about 400).
const MAX_CERTIFICATE_BYTES: usize = 4096;

fn decode(bytes: &[u8]) -> Result<Incoming> {
    let invalid = |why: String| Error::InvalidDocument(format!("peer message: {why}"));
    let cbor = |e: minicbor::decode::Error| invalid(e.to_string());
    let mut d = minicbor::Decoder::new(bytes);
    let (mut format, mut case, mut sync) = (None, None, None);
    let mut signatures = Vec::new();
    let mut certificates = Vec::new();
    let fields = d
        .map()
        .map_err(cbor)?
        .ok_or_else(|| invalid("a map of known length".into()))?;
    for _ in 0..fields {
        match d.str().map_err(cbor)? {
            "format" => format = Some(d.str().map_err(cbor)?.to_owned()),
            "case" => case = Some(d.str().map_err(cbor)?.to_owned()),
            "sync" => sync = Some(d.bytes().map_err(cbor)?.to_vec()),
            "signatures" => {
                signatures = ChangeSignature::from_records(d.bytes().map_err(cbor)?)
                    .map_err(|e| invalid(e.to_string()))?;
            }
            "certificates" => {
                let count = d
                    .array()
                    .map_err(cbor)?
                    .ok_or_else(|| invalid("an array of known length".into()))?;
                if count > MAX_CERTIFICATES {
                    return Err(invalid(format!(
                        "{count} certificates, at most {MAX_CERTIFICATES}"
                    )));
                }
                for _ in 0..count {
                    let bytes = d.bytes().map_err(cbor)?;
                    if bytes.len() > MAX_CERTIFICATE_BYTES {
                        return Err(invalid(format!(
                            "a certificate of {} bytes, at most {MAX_CERTIFICATE_BYTES}",
                            bytes.len()
                        )));
                    }
                    certificates.push(bytes.to_vec());
                }
            }
            other => return Err(invalid(format!("unknown field {other:?}"))),
        }
    }
    if format.as_deref() != Some(PEER_FORMAT) {
        return Err(invalid(format!(
            "format {format:?}, expected {PEER_FORMAT}"
        )));
    }
    Ok(Incoming {
        case: case.ok_or_else(|| invalid("no case".into()))?,
        sync: sync.ok_or_else(|| invalid("no sync message".into()))?,
        signatures,
        certificates,
    })
}
