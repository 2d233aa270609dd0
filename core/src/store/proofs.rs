//! What the server signed, as a device keeps it: the keys of the servers it signed in to,
//! certificates (its own and its teammates', and those of supervisors' server-side actors)
//! and the server's receipts of changes (proof of when each reached the server).

use chrono::Utc;
use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::certificate::{Certificate, Receipt};
use crate::codes::CaseId;
use crate::error::{Error, Result};
use crate::signing::{KeyId, PublicKey};

impl Store {
    /// Keeps the certificate the server issued this device at sign-in, and the server's
    /// key, which it trusts from then on to issue certificates and receipts.
    pub fn keep_sign_in(
        &self,
        server: &str,
        server_key: &PublicKey,
        certificate: Option<&[u8]>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO server_keys (key_id, public_key, server, first_seen)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                server_key.id().as_slice(),
                server_key.bytes(),
                server,
                Utc::now().to_rfc3339()
            ],
        )?;
        if let Some(bytes) = certificate {
            let kept = self.keep_certificates(&[bytes.to_vec()])?;
            if kept == 0 {
                return Err(Error::invalid(
                    "certificate",
                    "the server's certificate for this device does not verify against its key",
                ));
            }
        }
        Ok(())
    }

    /// Keeps every certificate of `certificates` issued by a trusted server key and valid
    /// now (a later one for the same key and device replaces an earlier one); the others
    /// are ignored: the changes they would vouch for wait. Returns how many verified.
    pub fn keep_certificates(&self, certificates: &[Vec<u8>]) -> Result<usize> {
        let now = self.now().timestamp();
        let mut kept = 0;
        for bytes in certificates {
            let Ok(certificate) = Certificate::decode(bytes) else {
                continue;
            };
            let Some(issuer) = self.trusted_key(&certificate.fields().issuer)? else {
                continue;
            };
            if certificate.verify(&issuer, now).is_err() {
                continue;
            }
            let fields = certificate.fields();
            kept += 1;
            self.conn.execute(
                "INSERT INTO certificates (key_id, actor, not_after, bytes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key_id, actor) DO UPDATE SET not_after = excluded.not_after,
                    bytes = excluded.bytes
                 WHERE excluded.not_after > certificates.not_after",
                params![
                    fields.key.id().as_slice(),
                    fields.actor,
                    fields.not_after,
                    bytes
                ],
            )?;
        }
        Ok(kept)
    }

    /// This device's account as the rule book judges its own changes (signed with its
    /// key), and what the judge trusts: the keys of the servers it signed in to.
    pub(crate) fn judging(&self) -> Result<(crate::rules::Author, crate::rules::Trust<'static>)> {
        let mut author = crate::rules::Author::from(&self.identity);
        author.key = Some(self.public_key().id());
        let mut stmt = self
            .conn
            .prepare_cached("SELECT public_key FROM server_keys")?;
        let servers = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .map(|bytes| {
                PublicKey::new(crate::signing::KeyAlgorithm::Ed25519, bytes?)
                    .map_err(|e| Error::Corrupt(format!("a trusted server key: {e}")))
            })
            .collect::<Result<_>>()?;
        let trust = crate::rules::Trust {
            servers,
            records: None,
        };
        Ok((author, trust))
    }

    /// The trusted server key `id`.
    fn trusted_key(&self, id: &KeyId) -> Result<Option<PublicKey>> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT public_key FROM server_keys WHERE key_id = ?1",
                [id.as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        bytes
            .map(|b| {
                PublicKey::new(crate::signing::KeyAlgorithm::Ed25519, b)
                    .map_err(|e| Error::Corrupt(format!("a trusted server key: {e}")))
            })
            .transpose()
    }

    /// What another phone needs to verify `changes`: their signatures, and the
    /// certificates kept of their signers and this device's own.
    pub(crate) fn vouching_for(
        &self,
        changes: &[automerge::Change],
    ) -> Result<(Vec<crate::signing::ChangeSignature>, Vec<Vec<u8>>)> {
        let actors: std::collections::HashMap<automerge::ChangeHash, String> = changes
            .iter()
            .map(|c| (c.hash(), c.actor_id().to_hex_string()))
            .collect();
        let signatures = crate::db::signatures_of(&self.conn, changes.iter().map(|c| c.hash()))?;
        let mut signers: Vec<(KeyId, String)> = signatures
            .iter()
            .filter_map(|s| Some((s.key, actors.get(&s.hash)?.clone())))
            .collect();
        signers.push((self.public_key().id(), self.device_id()));
        Ok((signatures, self.certificates_for(signers)?))
    }

    /// The certificates kept for the signers (key and device), and this device's own.
    pub(crate) fn certificates_for(
        &self,
        mut signers: Vec<(KeyId, String)>,
    ) -> Result<Vec<Vec<u8>>> {
        signers.sort();
        signers.dedup();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT bytes FROM certificates WHERE key_id = ?1 AND actor = ?2")?;
        let mut out = Vec::new();
        for (key, actor) in signers {
            let bytes: Option<Vec<u8>> = stmt
                .query_row(params![key.as_slice(), actor], |r| r.get(0))
                .optional()?;
            out.extend(bytes);
        }
        Ok(out)
    }

    /// The certificate kept for key `id` and the device `actor`, verified again now (one
    /// key may certify several actors: the server's own key certifies each supervisor's
    /// server-side actor).
    pub(crate) fn certificate_of(&self, id: &KeyId, actor: &str) -> Result<Option<Certificate>> {
        let now = self.now().timestamp();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT bytes FROM certificates WHERE key_id = ?1 AND actor = ?2")?;
        let rows = stmt.query_map(params![id.as_slice(), actor], |r| r.get::<_, Vec<u8>>(0))?;
        for bytes in rows {
            let Ok(certificate) = Certificate::decode(&bytes?) else {
                continue;
            };
            if let Some(issuer) = self.trusted_key(&certificate.fields().issuer)?
                && certificate.verify(&issuer, now).is_ok()
            {
                return Ok(Some(certificate));
            }
        }
        Ok(None)
    }

    /// Keeps the server's receipts of a case's changes (`POST /api/v1/proofs`) that a
    /// server key this device trusts (from sign-in) signed; the rest are ignored. Returns
    /// how many were new.
    pub fn keep_receipts(&self, case: CaseId, receipts: &[Receipt]) -> Result<usize> {
        let mut kept = 0;
        for receipt in receipts {
            let Some(server) = self.trusted_key(&receipt.issuer)? else {
                continue;
            };
            if receipt.verify(&server).is_err() {
                tracing::warn!(case.id = %case, change = %receipt.hash, "a receipt that does not verify was ignored");
                continue;
            }
            kept += self.conn.execute(
                "INSERT OR IGNORE INTO receipts (change_hash, case_id, actor, received_at, issuer, signature)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    receipt.hash.to_string(),
                    case.to_string(),
                    receipt.actor,
                    receipt.received_at,
                    receipt.issuer.as_slice(),
                    receipt.signature
                ],
            )?;
        }
        Ok(kept)
    }

    /// Which of `cases` this store holds with changes the server acknowledged and no
    /// receipt of them kept here: the cases to ask the server's proofs of.
    #[cfg(feature = "client")]
    pub(crate) fn cases_wanting_receipts(&self, cases: &[CaseId]) -> Result<Vec<CaseId>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM change_acks a WHERE a.case_id = ?1
                AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.change_hash = a.change_hash))",
        )?;
        let mut wanted = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for case in cases {
            if seen.insert(*case) && stmt.query_row([case.to_string()], |r| r.get::<_, bool>(0))? {
                wanted.push(*case);
            }
        }
        Ok(wanted)
    }

    /// The server's receipts kept of a case's changes, in the order the server received
    /// them.
    pub fn receipts(&self, case: CaseId) -> Result<Vec<Receipt>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT change_hash, actor, received_at, issuer, signature FROM receipts
             WHERE case_id = ?1 ORDER BY received_at, change_hash",
        )?;
        let rows = stmt.query_map([case.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        rows.map(|row| {
            let (hash, actor, received_at, issuer, signature) = row?;
            Receipt::from_stored(&hash, actor, received_at, &issuer, signature)
                .ok_or_else(|| Error::Corrupt(format!("a kept receipt of change {hash}")))
        })
        .collect()
    }
}
