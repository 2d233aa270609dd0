//! On-site merging without a server (`PeerSession`), device keys kept by the platform
//! (`DeviceSigner`), and the server's receipts a device keeps.

use std::sync::{Arc, Mutex as StdMutex};

use anjian_core as core;

use crate::error::AnjianError;
use crate::records;
use crate::store::InspectorStore;

/// One phone's side of a peer session merging one case with a teammate's phone, with no
/// server: hand each `message()` to the other phone by any means (Wi-Fi Direct,
/// Bluetooth, QR codes) and pass what it sends to `receive()`, until neither side has a
/// message. Every change received is verified against its signer's certificate and
/// judged by the rule book as the server will judge it.
#[derive(uniffi::Object)]
pub struct PeerSession {
    store: Arc<InspectorStore>,
    session: StdMutex<core::PeerSession>,
}

/// What one message from the other phone came to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PeerResult {
    /// Changes verified, allowed and recorded.
    pub accepted: u64,
    /// Changes left out, by reason (refused, or held back until their signer can be
    /// verified).
    pub refused: Vec<PeerRefusal>,
    /// How many of them were only held back.
    pub waiting: u64,
}

/// What merging a case file from another phone came to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MergedCase {
    /// The case.
    pub case_id: String,
    /// Its changes allowed, and those left out (refused, or held back until their signer
    /// can be verified), as a peer message's.
    pub result: PeerResult,
}

/// Changes of a peer message left out for one reason.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PeerRefusal {
    /// The rule's code (`relay`, `signature`, `held_back`, `jurisdiction`, …).
    pub rule: String,
    /// The reason, to show the inspector.
    pub reason: String,
    /// The changes (hex hashes).
    pub change_hashes: Vec<String>,
}

#[uniffi::export]
impl InspectorStore {
    /// Starts a peer session for a case (which this store may not hold yet: the session
    /// then receives it whole).
    pub fn peer_session(self: Arc<Self>, case_id: String) -> Result<Arc<PeerSession>, AnjianError> {
        let case = records::case_id(&case_id)?;
        let session = self.with_store(|s| Ok(s.peer_session(case)))?;
        Ok(Arc::new(PeerSession {
            store: self,
            session: StdMutex::new(session),
        }))
    }

    /// Signs this device's changes from now on with a key the app keeps in the platform's
    /// key store (Android Keystore, iOS Secure Enclave) instead of the store's own key
    /// file. Sign in again afterwards, so that the server certifies the new key.
    pub fn set_signer(&self, signer: Arc<dyn DeviceSigner>) -> Result<(), AnjianError> {
        let algorithm: core::signing::KeyAlgorithm =
            signer.algorithm().parse().map_err(AnjianError::from)?;
        let key = core::signing::PublicKey::new(algorithm, signer.public_key()).map_err(|e| {
            AnjianError::Validation {
                field: "public_key".into(),
                reason: e.to_string(),
            }
        })?;
        let platform = Arc::new(PlatformKey { signer, key });
        self.with_store(|s| {
            s.set_signer(platform);
            Ok(())
        })
    }
}

/// The server's signed receipt of one change: proof of when it reached the server.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServerReceipt {
    /// The change (hex hash).
    pub change_hash: String,
    /// The device that wrote it (actor id, hex).
    pub actor: String,
    /// When the server first received it (RFC 3339, server time).
    pub received_at: String,
    /// The server's signature (verified against the server's key before it was kept).
    pub signature: Vec<u8>,
}

#[uniffi::export]
impl InspectorStore {
    /// The server's receipts kept of a case's changes (each sync keeps those of the cases
    /// it exchanged), in the order the server received them.
    pub fn receipts(&self, case_id: String) -> Result<Vec<ServerReceipt>, AnjianError> {
        let case = records::case_id(&case_id)?;
        let receipts = self.with_store(|s| s.receipts(case).map_err(AnjianError::from))?;
        Ok(receipts
            .into_iter()
            .map(|r| ServerReceipt {
                change_hash: r.hash.to_string(),
                actor: r.actor,
                received_at: r.received_at,
                signature: r.signature,
            })
            .collect())
    }
}

#[uniffi::export]
impl PeerSession {
    /// The next message to hand the other phone, or nothing when this side has nothing
    /// more to say.
    pub fn message(&self) -> Result<Option<Vec<u8>>, AnjianError> {
        let mut session = self.session.lock().map_err(poisoned)?;
        self.store
            .with_store(|s| s.peer_message(&mut session).map_err(AnjianError::from))
    }

    /// Takes a message from the other phone; what it came to. Bytes that are not a peer
    /// message of this case change nothing and give `Validation`.
    pub fn receive(&self, message: Vec<u8>) -> Result<PeerResult, AnjianError> {
        let mut session = self.session.lock().map_err(poisoned)?;
        let received = self.store.with_store(|s| {
            s.peer_receive(&mut session, &message)
                .map_err(AnjianError::from)
        })?;
        Ok(PeerResult::from(received))
    }
}

impl From<core::PeerReceived> for PeerResult {
    fn from(received: core::PeerReceived) -> PeerResult {
        PeerResult {
            accepted: received.accepted as u64,
            waiting: received.waiting() as u64,
            refused: received
                .refused
                .into_iter()
                .map(|(refusal, change_hashes)| PeerRefusal {
                    rule: refusal.rule.code().to_owned(),
                    reason: refusal.reason,
                    change_hashes,
                })
                .collect(),
        }
    }
}

fn poisoned<T>(_: T) -> AnjianError {
    AnjianError::Internal {
        reason: "a peer session call panicked earlier; start a new session".into(),
    }
}

/// A device key the app keeps in the platform's key store, which never hands out its
/// secret. Called on the thread that records a change, inside the store's transaction:
/// sign at once (a key that asks the user for a fingerprint per use does not suit).
#[uniffi::export(foreign)]
pub trait DeviceSigner: Send + Sync {
    /// `ed25519` or `p256`.
    fn algorithm(&self) -> String;
    /// The public key: 32 bytes (Ed25519), or a SEC1 point (P-256, compressed or not).
    fn public_key(&self) -> Vec<u8>;
    /// The signature of `message`: 64 bytes (Ed25519; P-256 as r and s, 32 bytes each,
    /// big-endian, not DER), or nothing when the key store cannot sign now (nothing is
    /// recorded then).
    fn sign(&self, message: Vec<u8>) -> Option<Vec<u8>>;
}

/// A `DeviceSigner` as the core signs with it.
struct PlatformKey {
    signer: Arc<dyn DeviceSigner>,
    key: core::signing::PublicKey,
}

impl core::signing::Signer for PlatformKey {
    fn public_key(&self) -> core::signing::PublicKey {
        self.key.clone()
    }

    /// The platform's signature, checked against the key before anything is recorded
    /// with it (a signature the server cannot verify would get the change refused).
    fn sign(&self, message: &[u8]) -> core::Result<Vec<u8>> {
        let signature = self.signer.sign(message.to_vec()).ok_or_else(|| {
            core::Error::invalid(
                "signature",
                "the platform key store did not sign; nothing was recorded",
            )
        })?;
        self.key.verify(message, &signature).map_err(|_| {
            core::Error::invalid(
                "signature",
                "the platform key store's signature does not verify against its public key \
                 (P-256 signatures are r and s, 64 bytes, not DER); nothing was recorded",
            )
        })?;
        Ok(signature)
    }
}
