//! Device certificates and server receipts: what the server signs with its own key.
//!
//! At sign-in the server issues the device a certificate binding its public key to its
//! account (user, role, district, department), its Automerge actor and a validity window.
//! Phones on site verify each other's certificates with the server's public key, which
//! each got at its own sign-in, so they can tell who wrote a change without signal.
//!
//! For every change it commits the server signs a receipt: the change hash, the actor
//! that wrote it and the server's time. A device keeps its receipts: proof of when each of
//! its records reached the server.
//!
//! Both are CBOR; the bytes signed are a context line followed by the exact body bytes
//! (docs/EVIDENCE.md), so that anyone can check them without this code.

use automerge::ChangeHash;

use crate::codes::{DistrictCode, Role};
use crate::error::{Error, Result};
use crate::rules::Author;
use crate::signing::{KeyAlgorithm, KeyId, PublicKey, SignatureError, Signer};

/// The format name in a certificate's body.
pub const CERTIFICATE_FORMAT: &str = "anjian-certificate/1";

/// What precedes a certificate's body in the bytes the server signs.
pub const CERTIFICATE_CONTEXT: &[u8] = b"anjian certificate v1\n";

/// What precedes a receipt's fields in the bytes the server signs.
pub const RECEIPT_CONTEXT: &[u8] = b"anjian receipt v1\n";

/// How long a certificate the server issues is valid (seconds): a device that signs in
/// again gets a new one; a phone on site trusts a peer's key no longer than this after
/// its sign-in (the server, which knows revocations, checks every change again).
pub const CERTIFICATE_VALIDITY: i64 = 30 * 86_400;

/// Certificates one peer message or case file carries at most (a joint team is a
/// handful of phones).
pub const MAX_CERTIFICATES: u64 = 64;

/// A certificate's bytes, at most (one the server issues is about 400).
pub const MAX_CERTIFICATE_BYTES: usize = 4096;

/// Writes certificates (their bytes) as a CBOR array.
pub(crate) fn encode_certificates<W: minicbor::encode::Write>(
    e: &mut minicbor::Encoder<W>,
    certificates: &[Vec<u8>],
) -> std::result::Result<(), minicbor::encode::Error<W::Error>> {
    e.array(certificates.len() as u64)?;
    for certificate in certificates {
        e.bytes(certificate)?;
    }
    Ok(())
}

/// Reads a CBOR array of certificates (their bytes, unverified), within
/// `MAX_CERTIFICATES` and `MAX_CERTIFICATE_BYTES`; why not, otherwise.
pub(crate) fn decode_certificates(
    d: &mut minicbor::Decoder<'_>,
) -> std::result::Result<Vec<Vec<u8>>, String> {
    let count = d
        .array()
        .map_err(|e| e.to_string())?
        .ok_or("an array of known length")?;
    if count > MAX_CERTIFICATES {
        return Err(format!("{count} certificates, at most {MAX_CERTIFICATES}"));
    }
    let mut certificates = Vec::new();
    for _ in 0..count {
        let bytes = d.bytes().map_err(|e| e.to_string())?;
        if bytes.len() > MAX_CERTIFICATE_BYTES {
            return Err(format!(
                "a certificate of {} bytes, at most {MAX_CERTIFICATE_BYTES}",
                bytes.len()
            ));
        }
        certificates.push(bytes.to_vec());
    }
    Ok(certificates)
}

/// Receipts one peer message or case file carries at most: one for each change a message
/// may carry.
pub const MAX_RECEIPTS: u64 = 20_000;

/// Writes receipts as a CBOR array of `[hash, actor, received_at, issuer, signature]`.
pub(crate) fn encode_receipts<W: minicbor::encode::Write>(
    e: &mut minicbor::Encoder<W>,
    receipts: &[Receipt],
) -> std::result::Result<(), minicbor::encode::Error<W::Error>> {
    e.array(receipts.len() as u64)?;
    for r in receipts {
        e.array(5)?.bytes(&r.hash.0)?.str(&r.actor)?;
        e.str(&r.received_at)?.bytes(r.issuer.as_slice())?;
        e.bytes(&r.signature)?;
    }
    Ok(())
}

/// Reads a CBOR array of receipts (unverified), within `MAX_RECEIPTS`, each field of a
/// size a server's receipt has; why not, otherwise.
pub(crate) fn decode_receipts(
    d: &mut minicbor::Decoder<'_>,
) -> std::result::Result<Vec<Receipt>, String> {
    let cbor = |e: minicbor::decode::Error| e.to_string();
    let count = d.array().map_err(cbor)?.ok_or("an array of known length")?;
    if count > MAX_RECEIPTS {
        return Err(format!("{count} receipts, at most {MAX_RECEIPTS}"));
    }
    let mut receipts = Vec::new();
    for _ in 0..count {
        if d.array().map_err(cbor)? != Some(5) {
            return Err("a receipt is an array of five".into());
        }
        let hash = d.bytes().map_err(cbor)?;
        let actor = d.str().map_err(cbor)?;
        let received_at = d.str().map_err(cbor)?;
        let issuer = d.bytes().map_err(cbor)?;
        let signature = d.bytes().map_err(cbor)?;
        // An actor id is at most 128 hex digits here, a time an RFC 3339 one, a signature
        // one of the algorithms' (at most 72 bytes, DER P-256).
        let receipt = (actor.len() <= 128 && received_at.len() <= 64 && signature.len() <= 128)
            .then(|| {
                Some(Receipt {
                    hash: ChangeHash(hash.try_into().ok()?),
                    actor: actor.to_owned(),
                    received_at: received_at.to_owned(),
                    issuer: issuer.try_into().ok()?,
                    signature: signature.to_vec(),
                })
            })
            .flatten()
            .ok_or("a receipt's fields are not a server's")?;
        receipts.push(receipt);
    }
    Ok(receipts)
}

/// What a certificate says about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFields {
    /// The account's user id (username), as records name it.
    pub user: String,
    /// The account's full name.
    pub name: String,
    /// The account's role.
    pub role: Role,
    /// The account's district.
    pub district: DistrictCode,
    /// The account's department.
    pub department: String,
    /// The device's Automerge actor id (hex).
    pub actor: String,
    /// The device's public key.
    pub key: PublicKey,
    /// When it was issued (unix seconds, server time).
    pub issued_at: i64,
    /// Until when it is valid (unix seconds).
    pub not_after: i64,
    /// The key id of the server key that signs it.
    pub issuer: KeyId,
}

/// A certificate: its fields, the exact body bytes the server signed and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    fields: CertificateFields,
    body: Vec<u8>,
    signature: Vec<u8>,
}

/// Why a certificate was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Its bytes are not a certificate.
    #[error("not a device certificate: {0}")]
    Malformed(String),
    /// Another server key issued it.
    #[error("the certificate was issued by another server key")]
    OtherIssuer,
    /// The server's signature does not verify.
    #[error("the server's signature on the certificate does not verify")]
    Signature(#[from] SignatureError),
    /// It was not valid at the time asked about.
    #[error("the certificate is not valid at that time")]
    Expired,
}

impl Certificate {
    /// A certificate for `fields`, signed by `server`.
    pub fn issue(server: &dyn Signer, fields: CertificateFields) -> Result<Certificate> {
        let body = encode_body(&fields);
        let signature = server.sign(&signed_bytes(CERTIFICATE_CONTEXT, &body))?;
        Ok(Certificate {
            fields,
            body,
            signature,
        })
    }

    /// What it says (not yet verified: see [`Certificate::verify`]).
    pub fn fields(&self) -> &CertificateFields {
        &self.fields
    }

    /// The account it binds the key to, as the rule book knows authors.
    pub fn author(&self) -> Author {
        Author {
            user_id: self.fields.user.clone(),
            role: self.fields.role,
            district: self.fields.district.clone(),
            department: self.fields.department.clone(),
            key: Some(self.fields.key.id()),
        }
    }

    /// Whether `server` issued it and it has not expired at `now` (unix seconds, the
    /// device's clock). Only its end is checked: a phone whose clock is behind still
    /// trusts a certificate the server just issued, which the server signed for the key
    /// from the moment it was issued.
    pub fn verify(&self, server: &PublicKey, now: i64) -> Result<(), CertificateError> {
        self.issued_by(server)?;
        if now > self.fields.not_after {
            return Err(CertificateError::Expired);
        }
        Ok(())
    }

    /// Whether `server` issued it, whenever that was: what an evidence package asks of a
    /// certificate (which account the server bound a key and device to), where a phone
    /// on site asks [`Certificate::verify`] whether to trust the key now.
    pub fn issued_by(&self, server: &PublicKey) -> Result<(), CertificateError> {
        if server.id() != self.fields.issuer {
            return Err(CertificateError::OtherIssuer);
        }
        server.verify(
            &signed_bytes(CERTIFICATE_CONTEXT, &self.body),
            &self.signature,
        )?;
        Ok(())
    }

    /// Its bytes: a CBOR map `{"body": bytes, "signature": bytes}`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = minicbor::Encoder::new(&mut out);
        let written: std::result::Result<(), minicbor::encode::Error<std::convert::Infallible>> =
            (|| {
                e.map(2)?.str("body")?.bytes(&self.body)?;
                e.str("signature")?.bytes(&self.signature)?;
                Ok(())
            })();
        written.expect("writing to a vector cannot fail");
        out
    }

    /// Reads a certificate (its signature is checked by [`Certificate::verify`]).
    pub fn decode(bytes: &[u8]) -> std::result::Result<Certificate, CertificateError> {
        let mut d = minicbor::Decoder::new(bytes);
        let (mut body, mut signature) = (None, None);
        for _ in 0..definite_map(&mut d)? {
            match d.str().map_err(malformed)? {
                "body" => body = Some(d.bytes().map_err(malformed)?.to_vec()),
                "signature" => signature = Some(d.bytes().map_err(malformed)?.to_vec()),
                other => return Err(unknown(other)),
            }
        }
        let (Some(body), Some(signature)) = (body, signature) else {
            return Err(CertificateError::Malformed("body and signature".into()));
        };
        Ok(Certificate {
            fields: decode_body(&body)?,
            body,
            signature,
        })
    }
}

fn signed_bytes(context: &[u8], body: &[u8]) -> Vec<u8> {
    let mut message = context.to_vec();
    message.extend_from_slice(body);
    message
}

fn encode_body(f: &CertificateFields) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = minicbor::Encoder::new(&mut out);
    let written: std::result::Result<(), minicbor::encode::Error<std::convert::Infallible>> =
        (|| {
            e.map(12)?.str("format")?.str(CERTIFICATE_FORMAT)?;
            e.str("user")?.str(&f.user)?;
            e.str("name")?.str(&f.name)?;
            e.str("role")?.str(f.role.code())?;
            e.str("district")?.str(f.district.as_str())?;
            e.str("department")?.str(&f.department)?;
            e.str("actor")?.str(&f.actor)?;
            e.str("algorithm")?.str(f.key.algorithm().code())?;
            e.str("publicKey")?.bytes(f.key.bytes())?;
            e.str("issuedAt")?.i64(f.issued_at)?;
            e.str("notAfter")?.i64(f.not_after)?;
            e.str("issuer")?.bytes(&f.issuer)?;
            Ok(())
        })();
    written.expect("writing to a vector cannot fail");
    out
}

fn decode_body(body: &[u8]) -> std::result::Result<CertificateFields, CertificateError> {
    let mut d = minicbor::Decoder::new(body);
    let mut text: std::collections::HashMap<&str, String> = Default::default();
    let (mut key, mut issued_at, mut not_after, mut issuer, mut format) =
        (None, None, None, None, None);
    for _ in 0..definite_map(&mut d)? {
        match d.str().map_err(malformed)? {
            "format" => format = Some(d.str().map_err(malformed)?.to_owned()),
            field @ ("user" | "name" | "role" | "district" | "department" | "actor"
            | "algorithm") => {
                text.insert(field, d.str().map_err(malformed)?.to_owned());
            }
            "publicKey" => key = Some(d.bytes().map_err(malformed)?.to_vec()),
            "issuedAt" => issued_at = Some(d.i64().map_err(malformed)?),
            "notAfter" => not_after = Some(d.i64().map_err(malformed)?),
            "issuer" => issuer = Some(d.bytes().map_err(malformed)?.to_vec()),
            other => return Err(unknown(other)),
        }
    }
    if format.as_deref() != Some(CERTIFICATE_FORMAT) {
        return Err(CertificateError::Malformed(format!(
            "format {format:?}, expected {CERTIFICATE_FORMAT}"
        )));
    }
    let mut take = |field: &str| {
        text.remove(field)
            .ok_or_else(|| CertificateError::Malformed(format!("missing {field}")))
    };
    let algorithm: KeyAlgorithm = take("algorithm")?
        .parse()
        .map_err(|e: Error| CertificateError::Malformed(e.to_string()))?;
    let missing = |field: &str| CertificateError::Malformed(format!("missing {field}"));
    Ok(CertificateFields {
        user: take("user")?,
        name: take("name")?,
        role: take("role")?
            .parse()
            .map_err(|e: Error| CertificateError::Malformed(e.to_string()))?,
        district: take("district")?
            .parse()
            .map_err(|e: Error| CertificateError::Malformed(e.to_string()))?,
        department: take("department")?,
        actor: take("actor")?,
        key: PublicKey::new(algorithm, key.ok_or_else(|| missing("publicKey"))?)?,
        issued_at: issued_at.ok_or_else(|| missing("issuedAt"))?,
        not_after: not_after.ok_or_else(|| missing("notAfter"))?,
        issuer: issuer
            .ok_or_else(|| missing("issuer"))?
            .try_into()
            .map_err(|_| CertificateError::Malformed("issuer is a key id of 8 bytes".into()))?,
    })
}

fn definite_map(d: &mut minicbor::Decoder<'_>) -> std::result::Result<u64, CertificateError> {
    d.map()
        .map_err(malformed)?
        .ok_or_else(|| CertificateError::Malformed("a map of known length".into()))
}

fn malformed(e: minicbor::decode::Error) -> CertificateError {
    CertificateError::Malformed(e.to_string())
}

fn unknown(field: &str) -> CertificateError {
    CertificateError::Malformed(format!("unknown field {field:?}"))
}

/// The server's receipt for a change it committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The change.
    pub hash: ChangeHash,
    /// The actor (hex) that wrote it.
    pub actor: String,
    /// When the server first received it (RFC 3339, server time).
    pub received_at: String,
    /// The key id of the server key that signed the receipt.
    pub issuer: KeyId,
    /// The server's signature of [`receipt_message`].
    pub signature: Vec<u8>,
}

/// The bytes the server signs for a receipt: [`RECEIPT_CONTEXT`], the 32 bytes of the
/// change hash, the actor in hex, a newline and the time received.
pub fn receipt_message(hash: &ChangeHash, actor: &str, received_at: &str) -> Vec<u8> {
    let mut message = RECEIPT_CONTEXT.to_vec();
    message.extend_from_slice(&hash.0);
    message.extend_from_slice(actor.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(received_at.as_bytes());
    message
}

impl Receipt {
    /// `server`'s receipt for the change `hash` by `actor`, received at `received_at`.
    pub fn sign(
        server: &dyn Signer,
        hash: ChangeHash,
        actor: String,
        received_at: String,
    ) -> Result<Receipt> {
        let signature = server.sign(&receipt_message(&hash, &actor, &received_at))?;
        Ok(Receipt {
            hash,
            actor,
            received_at,
            issuer: server.public_key().id(),
            signature,
        })
    }

    /// A receipt as a database or an answer keeps it: the change hash in hex and the
    /// issuer's key id as bytes of any length (`None` unless the hash reads and the key id
    /// is 8 bytes).
    pub fn from_stored(
        hash: &str,
        actor: String,
        received_at: String,
        issuer: &[u8],
        signature: Vec<u8>,
    ) -> Option<Receipt> {
        Some(Receipt {
            hash: hash.parse().ok()?,
            actor,
            received_at,
            issuer: issuer.try_into().ok()?,
            signature,
        })
    }

    /// Whether `server` signed it.
    pub fn verify(&self, server: &PublicKey) -> std::result::Result<(), SignatureError> {
        if server.id() != self.issuer {
            return Err(SignatureError::Mismatch);
        }
        server.verify(
            &receipt_message(&self.hash, &self.actor, &self.received_at),
            &self.signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SoftwareKey;

    fn fields(server: &SoftwareKey, device: &SoftwareKey) -> CertificateFields {
        CertificateFields {
            user: "zhang".into(),
            name: "张三".into(),
            role: Role::Inspector,
            district: "320102".parse().expect("district"),
            department: "应急管理局".into(),
            actor: "aa01".into(),
            key: device.public_key(),
            issued_at: 1_000_000,
            not_after: 1_000_000 + CERTIFICATE_VALIDITY,
            issuer: server.public_key().id(),
        }
    }

    #[test]
    fn a_certificate_verifies_against_its_server_only_and_within_its_validity() {
        let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [1; 32]);
        let other = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [2; 32]);
        let device = SoftwareKey::from_secret(KeyAlgorithm::P256, [3; 32]);
        let issued = Certificate::issue(&server, fields(&server, &device)).expect("as built");
        let read = Certificate::decode(&issued.encode()).expect("as built");
        assert_eq!(read, issued);
        assert_eq!(read.fields().key, device.public_key());
        assert_eq!(read.author().user_id, "zhang");
        read.verify(&server.public_key(), 1_000_001)
            .expect("as built");
        assert_eq!(
            read.verify(&other.public_key(), 1_000_001),
            Err(CertificateError::OtherIssuer)
        );
        assert_eq!(
            read.verify(&server.public_key(), 1_000_000 + CERTIFICATE_VALIDITY + 1),
            Err(CertificateError::Expired)
        );
    }

    #[test]
    fn a_certificate_altered_anywhere_does_not_verify() {
        let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [1; 32]);
        let device = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [3; 32]);
        let bytes = Certificate::issue(&server, fields(&server, &device))
            .expect("as built")
            .encode();
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 0x01;
            if let Ok(read) = Certificate::decode(&altered) {
                assert!(
                    read.verify(&server.public_key(), 1_000_001).is_err(),
                    "byte {i} altered still verifies"
                );
            }
        }
    }

    #[test]
    fn a_receipt_verifies_only_as_signed() {
        let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [1; 32]);
        let receipt = Receipt::sign(
            &server,
            ChangeHash([7; 32]),
            "aa01".into(),
            "2026-12-03T10:00:00Z".into(),
        )
        .expect("as built");
        receipt.verify(&server.public_key()).expect("as built");
        let mut later = receipt.clone();
        later.received_at = "2026-12-03T10:00:01Z".into();
        assert!(later.verify(&server.public_key()).is_err());
    }
}
