//! Device keys and signed changes. Every change a device commits is signed with the
//! device's key; the signature covers the change hash, and the hash covers the change's
//! content and its dependencies. Whoever holds the signer's public key (the server, which
//! registered it at sign-in, or a peer that holds the server's certificate for it) can
//! tell that the device wrote the change, however many devices carried it since.
//!
//! Keys are Ed25519, or ECDSA over P-256 with SHA-256 (what the iOS Secure Enclave and
//! older Android Keystores sign with). A key is named by its key id: the first 8 bytes of
//! the SHA-256 of its algorithm code, a colon and its public key bytes. What is signed for
//! a change is [`CHANGE_CONTEXT`] followed by the 32 bytes of its hash (docs/protocol.md).

use std::path::Path;

use automerge::ChangeHash;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

coded_enum!(
    /// A signature algorithm a device key uses.
    KeyAlgorithm, "key algorithm" {
        /// Ed25519 (RFC 8032): 32-byte public keys, 64-byte signatures.
        Ed25519 = "ed25519" / "Ed25519",
        /// ECDSA over P-256 with SHA-256: 33-byte compressed (or 65-byte uncompressed)
        /// public keys, 64-byte signatures (r and s, big-endian).
        P256 = "p256" / "P-256 ECDSA",
    }
);

/// What precedes a change hash in the bytes a device signs for the change.
pub const CHANGE_CONTEXT: &[u8] = b"anjian change v1\n";

/// Bytes of a key id.
pub const KEY_ID_LEN: usize = 8;

/// A key id: names the key that signed a change.
pub type KeyId = [u8; KEY_ID_LEN];

/// A public key and its algorithm, checked (and parsed once) when made.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    bytes: Vec<u8>,
    id: KeyId,
    parsed: Parsed,
}

#[derive(Clone)]
enum Parsed {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.algorithm == other.algorithm && self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PublicKey({} {})",
            self.algorithm,
            hex::encode(&self.bytes)
        )
    }
}

/// Why a signature or a key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key's bytes are not a key of its algorithm.
    #[error("not a valid {0} public key")]
    BadKey(KeyAlgorithm),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Mismatch,
    /// Signature records are not a whole number of records.
    #[error("signature records are {RECORD_LEN} bytes each")]
    Malformed,
}

impl PublicKey {
    /// A public key, checked to be one of its algorithm: 32 bytes for Ed25519, a
    /// compressed or uncompressed point for P-256 (as every platform key store exports
    /// them).
    pub fn new(algorithm: KeyAlgorithm, bytes: Vec<u8>) -> Result<PublicKey, SignatureError> {
        let bad = SignatureError::BadKey(algorithm);
        let parsed = match algorithm {
            KeyAlgorithm::Ed25519 => {
                let array: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| bad.clone())?;
                Parsed::Ed25519(
                    ed25519_dalek::VerifyingKey::from_bytes(array).map_err(|_| bad.clone())?,
                )
            }
            KeyAlgorithm::P256 => {
                let sec1 = matches!(
                    (bytes.first(), bytes.len()),
                    (Some(2 | 3), 33) | (Some(4), 65)
                );
                if !sec1 {
                    return Err(bad);
                }
                Parsed::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes).map_err(|_| bad.clone())?,
                )
            }
        };
        let mut hasher = Sha256::new();
        hasher.update(algorithm.code().as_bytes());
        hasher.update(b":");
        hasher.update(&bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&hasher.finalize()[..KEY_ID_LEN]);
        Ok(PublicKey {
            algorithm,
            bytes,
            id,
            parsed,
        })
    }

    /// How it signs.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Its bytes: 32 for Ed25519, a SEC1 point for P-256.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let mismatch = |_| SignatureError::Mismatch;
        match &self.parsed {
            Parsed::Ed25519(key) => {
                let signature =
                    ed25519_dalek::Signature::from_slice(signature).map_err(mismatch)?;
                key.verify_strict(message, &signature).map_err(mismatch)
            }
            Parsed::P256(key) => {
                use p256::ecdsa::signature::Verifier;
                let signature = p256::ecdsa::Signature::from_slice(signature).map_err(mismatch)?;
                key.verify(message, &signature).map_err(mismatch)
            }
        }
    }
}

/// What signs a device's changes: the store's own key ([`SoftwareKey`]), or a key an app
/// keeps in the platform's key store (Android Keystore, iOS Secure Enclave), which never
/// hands out its secret.
pub trait Signer: Send + Sync {
    /// The public key.
    fn public_key(&self) -> PublicKey;

    /// Signs `message` (64 bytes: Ed25519, or P-256 r and s, big-endian).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
}

/// A key kept by the store itself, in a file of its own beside the store's database
/// (`<store>.key`), which never goes into a backup of the database: a store restored from
/// a backup makes a new key, and the server records it at the next sign-in.
pub struct SoftwareKey {
    secret: [u8; 32],
    signing: SigningKey,
    public: PublicKey,
}

enum SigningKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// A key of `algorithm` from 32 secret bytes (for P-256, bytes that are not a valid
    /// scalar are hashed until they are one).
    pub fn from_secret(algorithm: KeyAlgorithm, mut secret: [u8; 32]) -> SoftwareKey {
        let (signing, bytes) = match algorithm {
            KeyAlgorithm::Ed25519 => {
                let key = ed25519_dalek::SigningKey::from_bytes(&secret);
                let public = key.verifying_key().to_bytes().to_vec();
                (SigningKey::Ed25519(key), public)
            }
            KeyAlgorithm::P256 => {
                let key = loop {
                    match p256::ecdsa::SigningKey::from_slice(&secret) {
                        Ok(key) => break key,
                        Err(_) => secret = Sha256::digest(secret).into(),
                    }
                };
                let public = key.verifying_key().to_sec1_point(true).as_bytes().to_vec();
                (SigningKey::P256(key), public)
            }
        };
        let public = PublicKey::new(algorithm, bytes).expect("a key's own public key is valid");
        SoftwareKey {
            secret,
            signing,
            public,
        }
    }

    /// The key in the file at `path`, or a new one of `algorithm` made from `seed` (with
    /// the store's source of identifiers: random in an app, seeded in a simulation) and
    /// written there when the file does not exist.
    pub fn load_or_create(
        path: &Path,
        algorithm: KeyAlgorithm,
        seed: impl FnOnce() -> [u8; 32],
    ) -> Result<SoftwareKey> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text)
                .ok_or_else(|| Error::Corrupt(format!("device key file {}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SoftwareKey::from_secret(algorithm, seed());
                write_private(path, &key.to_text())?;
                tracing::info!(path = %path.display(), algorithm = %algorithm, "device key created");
                Ok(key)
            }
            Err(e) => Err(Error::Corrupt(format!(
                "device key file {}: {e}",
                path.display()
            ))),
        }
    }

    fn to_text(&self) -> String {
        format!(
            "{} {}\n",
            self.public.algorithm().code(),
            hex::encode(self.secret)
        )
    }

    fn parse(text: &str) -> Option<SoftwareKey> {
        let (algorithm, secret) = text.trim().split_once(' ')?;
        let algorithm: KeyAlgorithm = algorithm.parse().ok()?;
        let secret: [u8; 32] = hex::decode(secret).ok()?.try_into().ok()?;
        let key = SoftwareKey::from_secret(algorithm, secret);
        (key.secret == secret).then_some(key)
    }
}

impl Signer for SoftwareKey {
    fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Ok(match &self.signing {
            SigningKey::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                key.sign(message).to_bytes().to_vec()
            }
            SigningKey::P256(key) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
        })
    }
}

/// Writes a file only its owner may read, atomically (a crash leaves the old file or the
/// new one, never half of it).
fn write_private(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("key-new");
    let io = |e: std::io::Error| Error::Corrupt(format!("device key file {}: {e}", path.display()));
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    // The rename is durable only once the directory that holds the name is.
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// A change's signature as it travels with the change: the change hash, the id of the key
/// that signed it, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangeSignature {
    /// The signed change.
    pub hash: ChangeHash,
    /// The key that signed it.
    pub key: KeyId,
    /// The signature of [`change_message`].
    pub signature: [u8; SIGNATURE_LEN],
}

/// Bytes of a signature, for either algorithm.
pub const SIGNATURE_LEN: usize = 64;

/// Bytes of one signature record: the change hash, the key id, the signature.
pub const RECORD_LEN: usize = 32 + KEY_ID_LEN + SIGNATURE_LEN;

impl ChangeSignature {
    /// `signer`'s signature of the change `hash`.
    pub fn sign(signer: &dyn Signer, hash: ChangeHash) -> Result<ChangeSignature> {
        let signature = signer.sign(&change_message(&hash))?;
        Ok(ChangeSignature {
            hash,
            key: signer.public_key().id(),
            signature: signature.as_slice().try_into().map_err(|_| {
                Error::invalid(
                    "signature",
                    format!(
                        "the key signed with {} bytes; signatures are {SIGNATURE_LEN} bytes (P-256: r and s, not DER)",
                        signature.len()
                    ),
                )
            })?,
        })
    }

    /// A signature as a database keeps it: the key id and the signature as bytes of any
    /// length (`None` unless they are 8 and 64 bytes).
    pub fn from_stored(hash: ChangeHash, key: &[u8], signature: &[u8]) -> Option<ChangeSignature> {
        Some(ChangeSignature {
            hash,
            key: key.try_into().ok()?,
            signature: signature.try_into().ok()?,
        })
    }

    /// Its record: the hash, the key id and the signature, `RECORD_LEN` bytes.
    pub fn record(&self) -> [u8; RECORD_LEN] {
        let mut record = [0u8; RECORD_LEN];
        record[..32].copy_from_slice(&self.hash.0);
        record[32..32 + KEY_ID_LEN].copy_from_slice(&self.key);
        record[32 + KEY_ID_LEN..].copy_from_slice(&self.signature);
        record
    }

    /// Records one after the other, as exports and the wire carry them.
    pub fn records(signatures: &[ChangeSignature]) -> Vec<u8> {
        signatures.iter().flat_map(|s| s.record()).collect()
    }

    /// Reads records one after the other.
    pub fn from_records(bytes: &[u8]) -> Result<Vec<ChangeSignature>, SignatureError> {
        if !bytes.len().is_multiple_of(RECORD_LEN) {
            return Err(SignatureError::Malformed);
        }
        Ok(bytes
            .chunks_exact(RECORD_LEN)
            .map(|r| ChangeSignature {
                hash: ChangeHash(r[..32].try_into().expect("32 bytes")),
                key: r[32..32 + KEY_ID_LEN].try_into().expect("8 bytes"),
                signature: r[32 + KEY_ID_LEN..].try_into().expect("64 bytes"),
            })
            .collect())
    }

    /// Whether `key` signed the change: its id is the one named and the signature verifies.
    pub fn verify(&self, key: &PublicKey) -> Result<(), SignatureError> {
        if key.id() != self.key {
            return Err(SignatureError::Mismatch);
        }
        key.verify(&change_message(&self.hash), &self.signature)
    }
}

/// The bytes a device signs for the change `hash`.
pub fn change_message(hash: &ChangeHash) -> Vec<u8> {
    let mut message = CHANGE_CONTEXT.to_vec();
    message.extend_from_slice(&hash.0);
    message
}

/// The format name a signed case export starts with.
pub const CASE_FORMAT: &str = "anjian-case/1";

/// A case as one device hands it to another (`Store::export_case`): the Automerge changes
/// of its document, their signatures and the certificates of their signers. Encoded as a
/// CBOR map `{"format": "anjian-case/1", "changes": bytes, "signatures": bytes,
/// "certificates": [bytes]}`: the change chunks one after the other, as they travel in a
/// sync message (never a whole-document chunk, which Automerge expands before anything
/// could bound it), the signature records one after the other, and the certificates as a
/// peer message carries them (docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCase {
    /// The change chunks, one after the other.
    pub changes: Vec<u8>,
    /// Signatures of its changes (a change may have none: one recorded before devices
    /// signed, or by a client that does not sign).
    pub signatures: Vec<ChangeSignature>,
    /// The certificates the exporting device holds of the changes' signers (the receiving
    /// phone keeps those a server it trusts issued, to verify the signatures).
    pub certificates: Vec<Vec<u8>>,
    /// The server's receipts the exporting device holds of changes whose signer's
    /// certificate it holds as revoked: the server took them before the revocation, so a
    /// phone that knows of it still takes them (written only when there are some, so that
    /// a file without them reads on phones from before).
    pub receipts: Vec<crate::certificate::Receipt>,
}

impl SignedCase {
    /// Every change of `doc`, without signatures (a document from a peer that signs
    /// nothing).
    pub fn unsigned(doc: &automerge::AutoCommit) -> SignedCase {
        SignedCase {
            changes: doc
                .clone()
                .get_changes(&[])
                .iter()
                .flat_map(|c| c.raw_bytes().to_vec())
                .collect(),
            signatures: Vec::new(),
            certificates: Vec::new(),
            receipts: Vec::new(),
        }
    }

    /// Its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = minicbor::Encoder::new(&mut out);
        let written: Result<(), minicbor::encode::Error<std::convert::Infallible>> = (|| {
            let receipts = !self.receipts.is_empty();
            e.map(4 + receipts as u64)?
                .str("format")?
                .str(CASE_FORMAT)?;
            e.str("changes")?.bytes(&self.changes)?;
            e.str("signatures")?
                .bytes(&ChangeSignature::records(&self.signatures))?;
            e.str("certificates")?;
            crate::certificate::encode_certificates(&mut e, &self.certificates)?;
            if receipts {
                e.str("receipts")?;
                crate::certificate::encode_receipts(&mut e, &self.receipts)?;
            }
            Ok(())
        })();
        written.expect("writing to a vector cannot fail");
        out
    }

    /// Reads an export. Bare Automerge documents are refused: their whole-document chunk
    /// would be expanded before any limit could apply.
    pub fn decode(bytes: &[u8]) -> Result<SignedCase> {
        if bytes.starts_with(&AUTOMERGE_MAGIC) {
            return Err(Error::InvalidDocument(
                "a bare Automerge document is not accepted; export the case with export_case"
                    .into(),
            ));
        }
        let invalid = |why: &str| Error::InvalidDocument(format!("signed case export: {why}"));
        let cbor = |e: minicbor::decode::Error| invalid(&e.to_string());
        let mut d = minicbor::Decoder::new(bytes);
        let mut format = None;
        let mut changes = None;
        let mut signatures = Vec::new();
        let mut certificates = Vec::new();
        let mut receipts = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let fields = d
            .map()
            .map_err(cbor)?
            .ok_or_else(|| invalid("a map of known length"))?;
        for _ in 0..fields {
            let field = d.str().map_err(cbor)?;
            if !seen.insert(field) {
                return Err(invalid(&format!("the field {field:?} twice")));
            }
            match field {
                "format" => format = Some(d.str().map_err(cbor)?.to_owned()),
                "changes" => changes = Some(d.bytes().map_err(cbor)?.to_vec()),
                "certificates" => {
                    certificates =
                        crate::certificate::decode_certificates(&mut d).map_err(|e| invalid(&e))?;
                }
                "signatures" => {
                    signatures = ChangeSignature::from_records(d.bytes().map_err(cbor)?)
                        .map_err(|e| invalid(&e.to_string()))?;
                }
                "receipts" => {
                    receipts =
                        crate::certificate::decode_receipts(&mut d).map_err(|e| invalid(&e))?;
                }
                other => return Err(invalid(&format!("unknown field {other:?}"))),
            }
        }
        if d.position() != bytes.len() {
            return Err(invalid("bytes after the export"));
        }
        if format.as_deref() != Some(CASE_FORMAT) {
            return Err(invalid(&format!(
                "format {format:?}, expected {CASE_FORMAT}"
            )));
        }
        Ok(SignedCase {
            changes: changes.ok_or_else(|| invalid("no changes"))?,
            signatures,
            certificates,
            receipts,
        })
    }
}

/// The four bytes every Automerge document starts with.
const AUTOMERGE_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> ChangeHash {
        ChangeHash([n; 32])
    }

    #[test]
    fn both_algorithms_sign_and_verify_and_refuse_what_they_did_not_sign() {
        for algorithm in KeyAlgorithm::ALL {
            let key = SoftwareKey::from_secret(*algorithm, [7; 32]);
            let public = key.public_key();
            assert_eq!(
                PublicKey::new(*algorithm, public.bytes().to_vec()),
                Ok(public.clone())
            );
            let signed = ChangeSignature::sign(&key, hash(1)).expect("sign");
            assert_eq!(signed.signature.len(), 64);
            assert_eq!(signed.verify(&public), Ok(()));

            let other_change = ChangeSignature {
                hash: hash(2),
                ..signed.clone()
            };
            assert_eq!(other_change.verify(&public), Err(SignatureError::Mismatch));
            assert_eq!(
                ChangeSignature::from_records(&signed.record()),
                Ok(vec![signed.clone()])
            );
            let mut flipped = signed.clone();
            flipped.signature[10] ^= 1;
            assert_eq!(flipped.verify(&public), Err(SignatureError::Mismatch));
            let other_key = SoftwareKey::from_secret(*algorithm, [8; 32]).public_key();
            assert_eq!(signed.verify(&other_key), Err(SignatureError::Mismatch));
            // A signature by another key under this key's id still fails.
            let forged = ChangeSignature {
                key: public.id(),
                ..ChangeSignature::sign(&SoftwareKey::from_secret(*algorithm, [8; 32]), hash(1))
                    .expect("sign")
            };
            assert_eq!(forged.verify(&public), Err(SignatureError::Mismatch));
        }
    }

    #[test]
    fn keys_of_the_wrong_shape_are_refused() {
        assert_eq!(
            PublicKey::new(KeyAlgorithm::Ed25519, vec![1; 31]),
            Err(SignatureError::BadKey(KeyAlgorithm::Ed25519))
        );
        for bytes in [vec![9; 33], vec![5; 33], vec![2; 32]] {
            assert_eq!(
                PublicKey::new(KeyAlgorithm::P256, bytes).err(),
                Some(SignatureError::BadKey(KeyAlgorithm::P256))
            );
        }
    }

    #[test]
    fn a_signed_case_reads_back_and_a_bare_document_is_refused() {
        let key = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [1; 32]);
        let case = SignedCase {
            changes: vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
            signatures: vec![
                ChangeSignature::sign(&key, hash(1)).expect("sign"),
                ChangeSignature::sign(&key, hash(2)).expect("sign"),
            ],
            certificates: vec![vec![1, 2, 3], vec![4; 400]],
            receipts: vec![
                crate::certificate::Receipt::sign(
                    &key,
                    hash(1),
                    "0a0b".into(),
                    "2026-12-07T08:00:00+00:00".into(),
                )
                .expect("receipt"),
            ],
        };
        let bytes = case.encode();
        assert_eq!(SignedCase::decode(&bytes).expect("decode"), case);
        // Without receipts the file is the four fields phones from before read.
        let without = SignedCase {
            receipts: Vec::new(),
            ..case.clone()
        }
        .encode();
        assert_eq!(
            (without[0], bytes[0]),
            (0xa4, 0xa5),
            "CBOR maps of four and five"
        );
        assert!(!without.windows(8).any(|w| w == b"receipts"));
        assert!(matches!(
            SignedCase::decode(&case.changes),
            Err(Error::InvalidDocument(_))
        ));
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(SignedCase::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SignedCase::decode(&longer).is_err());
    }

    /// A case file carries at most `MAX_CERTIFICATES`, each field once: a field given
    /// twice would let every occurrence pass the limit on its own.
    #[test]
    fn a_case_file_names_each_field_once_and_carries_a_bounded_number_of_certificates() {
        let file = |fields: &[(&str, usize)]| {
            let mut out = Vec::new();
            let mut e = minicbor::Encoder::new(&mut out);
            e.map(fields.len() as u64 + 2).expect("map");
            e.str("format")
                .expect("key")
                .str(CASE_FORMAT)
                .expect("format");
            e.str("changes").expect("key").bytes(&[]).expect("changes");
            for (name, certificates) in fields {
                e.str(name).expect("key");
                crate::certificate::encode_certificates(&mut e, &vec![vec![7; 8]; *certificates])
                    .expect("certificates");
            }
            out
        };
        let max = crate::certificate::MAX_CERTIFICATES as usize;
        let read = SignedCase::decode(&file(&[("certificates", max)])).expect("at the limit");
        assert_eq!(read.certificates.len(), max);
        for (why, fields) in [
            ("over the limit", vec![("certificates", max + 1)]),
            ("twice", vec![("certificates", max), ("certificates", max)]),
        ] {
            assert!(
                matches!(
                    SignedCase::decode(&file(&fields)),
                    Err(Error::InvalidDocument(_))
                ),
                "{why}"
            );
        }
    }

    #[test]
    fn a_key_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.db.key");
        let made =
            SoftwareKey::load_or_create(&path, KeyAlgorithm::Ed25519, || [3; 32]).expect("made");
        let read =
            SoftwareKey::load_or_create(&path, KeyAlgorithm::P256, || [4; 32]).expect("read");
        assert_eq!(made.public_key(), read.public_key());
        std::fs::write(&path, "ed25519 zz\n").expect("damage");
        assert!(matches!(
            SoftwareKey::load_or_create(&path, KeyAlgorithm::Ed25519, || [3; 32]),
            Err(Error::Corrupt(_))
        ));
    }
}
