//! What the server signed, as a device keeps it: the keys of the servers it signed in to,
//! certificates (its own and its teammates', and those of supervisors' server-side actors)
//! and the server's receipts of changes (proof of when each reached the server).

use chrono::Utc;
use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::certificate::{CERTIFICATE_VALIDITY, Certificate, Receipt};
use crate::codes::CaseId;
use crate::error::{Error, Result};
use crate::signing::{KeyId, PublicKey};
use crate::sync::RevokedDevice;

/// Why a device the catalog lists as revoked vouches for nothing (`learn_revocations`).
const LISTED_REVOKED: &str = "服务器通知该设备已吊销或其账号已停用 (the server lists the device as revoked or its account disabled)";

/// What vouches for changes a phone hands another (a case file, a peer message): their
/// signatures, the certificates of their signers, and the server's receipts of those whose
/// signer's certificate the phone holds as revoked (`Store::vouching_for`).
#[derive(Debug, Default)]
pub(crate) struct Vouching {
    pub signatures: Vec<crate::signing::ChangeSignature>,
    pub certificates: Vec<Vec<u8>>,
    pub receipts: Vec<Receipt>,
}

impl Store {
    /// Keeps the certificate the server issued this device at sign-in, and the server's
    /// key, which it trusts from then on to issue certificates, receipts and blocks of
    /// document numbers. A device trusts the key of its first server (or those it trusted
    /// before it trusted only one): a sign-in answered with another (a wrong address, or
    /// something between the phone and the server) is refused with `Auth` and changes
    /// nothing, until `forget_server_keys`.
    pub fn keep_sign_in(
        &self,
        server: &str,
        server_key: &PublicKey,
        certificate: Option<&[u8]>,
    ) -> Result<()> {
        self.in_one_transaction(|| {
            // (A phone that signed in to several servers before it trusted only one keeps
            // trusting each of their keys.)
            let trusted: Option<String> = self
                .conn
                .query_row(
                    "SELECT server FROM server_keys
                     WHERE NOT EXISTS (SELECT 1 FROM server_keys WHERE key_id = ?1) LIMIT 1",
                    [server_key.id().as_slice()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(trusted) = trusted {
                return Err(Error::Auth(format!(
                    "服务器 {server} 的密钥与本机信任的服务器（{trusted}）的密钥不同，可能连接了错误的地址；如服务器确已更换密钥，请经管理员确认后重置本机信任的服务器 (the server's key is not the one this device trusts)"
                )));
            }
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
            if let Some(bytes) = certificate
                && self.keep_certificates(&[bytes.to_vec()])? == 0
            {
                return Err(Error::invalid(
                    "certificate",
                    "the server's certificate for this device does not verify against its key",
                ));
            }
            Ok(())
        })
    }

    /// Forgets the server keys this device trusts, the certificates they vouched for and
    /// what it learned of revoked devices: the next sign-in trusts the key its server
    /// answers with. For a server whose key was changed on purpose, once an administrator
    /// has confirmed it; the receipts kept stay (each was verified when it was kept).
    pub fn forget_server_keys(&self) -> Result<()> {
        self.in_one_transaction(|| {
            self.conn.execute("DELETE FROM certificates", [])?;
            self.conn.execute("DELETE FROM revoked_devices", [])?;
            self.conn.execute("DELETE FROM server_keys", [])?;
            Ok(())
        })
    }

    /// Keeps every certificate of `certificates` issued by a trusted server key and valid
    /// now (a later one for the same key and device replaces an earlier one); the others
    /// are ignored: the changes they would vouch for wait. Certificates that expired more
    /// than `CERTIFICATE_VALIDITY` ago (a margin for a phone's clock set wrong) vouch for
    /// nothing any more and go. Returns how many verified.
    pub fn keep_certificates(&self, certificates: &[Vec<u8>]) -> Result<usize> {
        let now = self.now().timestamp();
        self.in_one_transaction(|| {
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
                self.conn
                    .prepare_cached(
                        "INSERT INTO certificates (key_id, actor, not_after, bytes)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (key_id, actor) DO UPDATE SET not_after = excluded.not_after,
                            bytes = excluded.bytes
                         WHERE excluded.not_after > certificates.not_after",
                    )?
                    .execute(params![
                        fields.key.id().as_slice(),
                        fields.actor,
                        fields.not_after,
                        bytes
                    ])?;
            }
            self.conn
                .prepare_cached("DELETE FROM certificates WHERE not_after < ?1")?
                .execute([now.saturating_sub(CERTIFICATE_VALIDITY)])?;
            Ok(kept)
        })
    }

    /// Runs `write` in one transaction, so that its statements reach the disk in one sync
    /// and all or none of them are kept; inside a caller's transaction, in that one.
    pub(crate) fn in_one_transaction<R>(&self, write: impl FnOnce() -> Result<R>) -> Result<R> {
        if !self.conn.is_autocommit() {
            return write();
        }
        let tx = self.conn.unchecked_transaction()?;
        let result = write()?;
        tx.commit()?;
        Ok(result)
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

    /// What another phone needs to verify `changes`: their signatures, the certificates
    /// kept of their signers and this device's own, and the receipts of those whose
    /// signer's certificate this phone holds as revoked.
    pub(crate) fn vouching_for(&self, changes: &[automerge::Change]) -> Result<Vouching> {
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
        Ok(Vouching {
            receipts: self.receipts_of_revoked(&actors, &signatures)?,
            certificates: self.certificates_for(signers)?,
            signatures,
        })
    }

    /// The receipts kept here of those of the changes whose signer's certificate this
    /// phone holds as revoked (`revoked_device`): the server took them before the
    /// revocation, and a phone that knows of it takes them only with the receipt. None for
    /// a device whose newer certificate vouches again, or whose certificate has expired
    /// (no receipt helps then).
    fn receipts_of_revoked(
        &self,
        actors: &std::collections::HashMap<automerge::ChangeHash, String>,
        signatures: &[crate::signing::ChangeSignature],
    ) -> Result<Vec<Receipt>> {
        // Most phones know of no revocation: then no certificate needs verifying here.
        let none: bool = self.conn.query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM revoked_devices)",
            [],
            |r| r.get(0),
        )?;
        if none {
            return Ok(Vec::new());
        }
        let mut signers: std::collections::HashMap<(KeyId, &str), bool> =
            std::collections::HashMap::new();
        let mut receipt = self.conn.prepare_cached(
            "SELECT actor, received_at, issuer, signature FROM receipts WHERE change_hash = ?1",
        )?;
        let mut receipts = Vec::new();
        for signature in signatures {
            let Some(actor) = actors.get(&signature.hash) else {
                continue;
            };
            let revoked = match signers.get(&(signature.key, actor.as_str())) {
                Some(revoked) => *revoked,
                None => {
                    let revoked = match self.certificate_of(&signature.key, actor)? {
                        Some(c) => self.revoked_device(actor, c.fields().issued_at)?,
                        None => false,
                    };
                    signers.insert((signature.key, actor.as_str()), revoked);
                    revoked
                }
            };
            if !revoked {
                continue;
            }
            let key = signature.hash.to_string();
            let row = receipt
                .query_row([&key], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?, r.get(3)?))
                })
                .optional()?;
            if let Some((actor, received_at, issuer, signature)) = row {
                receipts.extend(Receipt::from_stored(
                    &key,
                    actor,
                    received_at,
                    &issuer,
                    signature,
                ));
            }
        }
        receipts.sort_by_key(|r| r.hash);
        Ok(receipts)
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

    /// Learns from the server's refusal (rule `signature`, for `reason`) that device `actor`
    /// was revoked or its account disabled: its certificates issued up to the newest this
    /// phone holds (or until now, holding none) vouch for nothing more here.
    pub(crate) fn learn_revoked(&self, actor: &str, reason: &str) -> Result<()> {
        let mut newest = None;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT bytes FROM certificates WHERE actor = ?1")?;
        for bytes in stmt.query_map([actor], |r| r.get::<_, Vec<u8>>(0))? {
            if let Ok(certificate) = Certificate::decode(&bytes?) {
                newest = newest.max(Some(certificate.fields().issued_at));
            }
        }
        let issued_before = newest.unwrap_or_else(|| self.now().timestamp());
        self.conn.execute(
            "INSERT INTO revoked_devices (actor, issued_before, reason) VALUES (?1, ?2, ?3)
             ON CONFLICT (actor) DO UPDATE SET reason = excluded.reason,
                issued_before = max(issued_before, excluded.issued_before)",
            params![actor, issued_before, reason],
        )?;
        Ok(())
    }

    /// Learns from the catalog (`CatalogPage::revoked`) which devices were revoked or had
    /// their accounts disabled, before this phone ever carries one of their changes to the
    /// server: their certificates issued up to the time given (the server's clock, as the
    /// certificates' times are, whatever this phone's says) vouch for nothing more here but
    /// with the server's receipt. A device already known so is not written again.
    pub fn learn_revocations(&self, revoked: &[RevokedDevice]) -> Result<()> {
        if revoked.is_empty() {
            return Ok(());
        }
        self.in_one_transaction(|| {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO revoked_devices (actor, issued_before, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT (actor) DO UPDATE SET reason = excluded.reason,
                    issued_before = excluded.issued_before
                 WHERE excluded.issued_before > revoked_devices.issued_before",
            )?;
            for device in revoked {
                stmt.execute(params![device.actor, device.issued_before, LISTED_REVOKED])?;
            }
            Ok(())
        })
    }

    /// Whether a certificate of device `actor` issued at `issued_at` vouches for nothing
    /// any more: the server refused a change of the device for its signer since
    /// (`learn_revoked`), or the catalog listed the device (`learn_revocations`).
    pub(crate) fn revoked_device(&self, actor: &str, issued_at: i64) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM revoked_devices WHERE actor = ?1 AND issued_before >= ?2",
            )?
            .exists(params![actor, issued_at])?)
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
        self.in_one_transaction(|| {
            let mut kept = 0;
            for receipt in receipts {
                let Some(server) = self.trusted_key(&receipt.issuer)? else {
                    continue;
                };
                if receipt.verify(&server).is_err() {
                    tracing::warn!(case.id = %case, change = %receipt.hash, "a receipt that does not verify was ignored");
                    continue;
                }
                kept += self
                    .conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO receipts
                            (change_hash, case_id, actor, received_at, issuer, signature)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        receipt.hash.to_string(),
                        case.to_string(),
                        receipt.actor,
                        receipt.received_at,
                        receipt.issuer.as_slice(),
                        receipt.signature
                    ])?;
            }
            Ok(kept)
        })
    }

    /// The receipts among `receipts` of the changes `of` that a server this phone trusts
    /// signed, by change (another phone handed them over; the others vouch for nothing,
    /// and receipts of other changes are not verified at all).
    pub(crate) fn verified_receipts(
        &self,
        receipts: Vec<Receipt>,
        of: &std::collections::HashSet<automerge::ChangeHash>,
    ) -> Result<std::collections::HashMap<automerge::ChangeHash, Receipt>> {
        let mut verified = std::collections::HashMap::new();
        for receipt in receipts.into_iter().filter(|r| of.contains(&r.hash)) {
            if let Some(server) = self.trusted_key(&receipt.issuer)?
                && receipt.verify(&server).is_ok()
            {
                verified.insert(receipt.hash, receipt);
            }
        }
        Ok(verified)
    }

    /// Of the changes `receipts` are of, those `doc` holds with no receipt kept here and
    /// whose device this phone knows was revoked: a receipt that came with them lets this
    /// phone hand them on to phones that know of the revocation too.
    pub(crate) fn held_wanting_receipts(
        &self,
        doc: &mut automerge::AutoCommit,
        receipts: &[Receipt],
    ) -> Result<std::collections::HashSet<automerge::ChangeHash>> {
        let mut kept = self
            .conn
            .prepare_cached("SELECT 1 FROM receipts WHERE change_hash = ?1")?;
        let mut revoked = self
            .conn
            .prepare_cached("SELECT 1 FROM revoked_devices WHERE actor = ?1")?;
        let mut wanting = std::collections::HashSet::new();
        for receipt in receipts {
            if doc.get_change_by_hash(&receipt.hash).is_some()
                && !kept.exists([receipt.hash.to_string()])?
                && revoked.exists([&receipt.actor])?
            {
                wanting.insert(receipt.hash);
            }
        }
        Ok(wanting)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, TimeZone};

    use crate::certificate::{CERTIFICATE_VALIDITY, Certificate, CertificateFields};
    use crate::sample;
    use crate::signing::{KeyAlgorithm, Signer, SoftwareKey};
    use crate::store::Store;
    use crate::sync::RevokedDevice;

    fn at(seconds: i64) -> crate::store::Clock {
        let time: DateTime<chrono::FixedOffset> = chrono::Utc
            .timestamp_opt(seconds, 0)
            .single()
            .expect("a time")
            .into();
        Arc::new(move || time)
    }

    fn kept(store: &Store) -> i64 {
        store
            .conn
            .query_row("SELECT count(*) FROM certificates", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn one_server_key_is_trusted_a_failed_sign_in_trusts_nothing_and_long_expired_certificates_go()
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path().join("a.db"), sample::inspector("wang")).expect("a");
        let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [7; 32]);
        let now = 1_800_000_000;
        store.set_clock(at(now));

        // A sign-in whose certificate does not verify keeps neither it nor the server's key.
        let stranger = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [9; 32]);
        let teammate = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [8; 32]);
        let issue = |issuer: &SoftwareKey, not_after| {
            Certificate::issue(
                issuer,
                CertificateFields {
                    user: "li".into(),
                    name: "李".into(),
                    role: crate::Role::Inspector,
                    district: "310101".parse().expect("district"),
                    department: "应急管理".into(),
                    actor: "0a0b0c0d".into(),
                    key: teammate.public_key(),
                    issued_at: now,
                    not_after,
                    issuer: issuer.public_key().id(),
                },
            )
            .expect("issued")
            .encode()
        };
        let forged = issue(&stranger, now + 86_400);
        assert!(
            store
                .keep_sign_in("server", &server.public_key(), Some(&forged))
                .is_err()
        );
        assert_eq!(
            store
                .keep_certificates(&[issue(&server, now + 86_400)])
                .expect("keep"),
            0
        );

        // Signed in: a teammate's certificate is kept until long after it ended.
        store
            .keep_sign_in("server", &server.public_key(), None)
            .expect("sign-in");
        assert_eq!(
            store
                .keep_certificates(&[issue(&server, now + 86_400)])
                .expect("keep"),
            1
        );
        store.set_clock(at(now + 2 * 86_400));
        store.keep_certificates(&[]).expect("keep");
        assert_eq!(kept(&store), 1, "a clock set wrong may come back");
        store.set_clock(at(now + 86_400 + CERTIFICATE_VALIDITY + 1));
        store.keep_certificates(&[]).expect("keep");
        assert_eq!(kept(&store), 0, "it vouches for nothing any more");

        // A sign-in answered with another key (a wrong address, something in between) is
        // refused, and that key vouches for nothing; once the trusted key is forgotten, the
        // next sign-in trusts the key it is answered with.
        store.set_clock(at(now));
        assert!(matches!(
            store.keep_sign_in("elsewhere", &stranger.public_key(), None),
            Err(crate::Error::Auth(_))
        ));
        assert_eq!(
            store
                .keep_certificates(&[issue(&stranger, now + 86_400)])
                .expect("keep"),
            0
        );
        store
            .keep_sign_in("server", &server.public_key(), None)
            .expect("the trusted server again");

        // The server refused a change of the teammate's device for its signer: its
        // certificates issued until then vouch for nothing more; one issued after (the
        // account enabled again, signed in again) does.
        assert_eq!(
            store
                .keep_certificates(&[issue(&server, now + 86_400)])
                .expect("keep"),
            1
        );
        store.learn_revoked("0a0b0c0d", "已吊销").expect("learn");
        assert!(store.revoked_device("0a0b0c0d", now).expect("read"));
        assert!(!store.revoked_device("0a0b0c0d", now + 1).expect("read"));
        assert!(!store.revoked_device("0e0f", now).expect("read"));
        // The catalog lists devices as revoked: a time past this phone's clock is the
        // server's (a certificate issued then, on a phone running slow, is still void), a
        // later one is not, and an older listing moves nothing back.
        let listed = |actor: &str, issued_before| RevokedDevice {
            actor: actor.into(),
            issued_before,
        };
        store
            .learn_revocations(&[listed("0e0f", now + 3_600), listed("0a0b0c0d", now - 60)])
            .expect("learn");
        assert!(store.revoked_device("0e0f", now + 3_600).expect("read"));
        assert!(!store.revoked_device("0e0f", now + 3_601).expect("read"));
        assert!(store.revoked_device("0a0b0c0d", now).expect("read"));
        store.forget_server_keys().expect("forget");
        assert!(
            !store.revoked_device("0a0b0c0d", now).expect("read"),
            "forgotten with the keys"
        );
        assert_eq!(
            store
                .keep_certificates(&[issue(&server, now + 86_400)])
                .expect("keep"),
            0,
            "the forgotten key vouches for nothing"
        );
        store
            .keep_sign_in("elsewhere", &stranger.public_key(), None)
            .expect("the new key, once the old one is forgotten");
        assert_eq!(
            store
                .keep_certificates(&[issue(&stranger, now + 86_400)])
                .expect("keep"),
            1
        );

        // A phone that trusted two keys before it trusted only one signs in to either.
        store
            .conn
            .execute(
                "INSERT INTO server_keys (key_id, public_key, server, first_seen)
                 VALUES (?1, ?2, 'server', '2026-01-01T00:00:00Z')",
                rusqlite::params![
                    server.public_key().id().as_slice(),
                    server.public_key().bytes()
                ],
            )
            .expect("a second key, as kept before");
        for key in [&server, &stranger] {
            store
                .keep_sign_in("either", &key.public_key(), None)
                .expect("a key it trusts");
        }
    }
}
