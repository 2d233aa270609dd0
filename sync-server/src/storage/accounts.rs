//! Accounts, devices and tokens in the database: creating and disabling accounts,
//! checking passwords, binding devices at sign-in, issuing and revoking tokens.

use std::sync::Arc;

use crate::db::{Conn, params};
use chrono::Utc;
use sha2::{Digest, Sha256};

use anjian_core::certificate::{CERTIFICATE_VALIDITY, Certificate, CertificateFields};
use anjian_core::signing::{PublicKey, Signer};
use anjian_core::sync::RevokedDevice;

use super::{Storage, user_row};
use crate::error::{AppError, AppResult};
use crate::users::{
    DEVICE_NAME_CHARS, Device, NewUser, SERVER_DEVICE_NAME, Token, TokenSession, User,
    hash_password, token_hash, verify_password,
};

impl Storage {
    /// Creates an account.
    pub fn add_user(&self, new: &NewUser<'_>) -> AppResult<User> {
        if new.username.trim().is_empty() || new.name.trim().is_empty() {
            return Err(AppError::BadRequest(
                "username and name are required".into(),
            ));
        }
        let hash = hash_password(new.password)?;
        self.write(|conn| {
            let inserted = conn.execute(
                "INSERT INTO users (username, name, role, district, department, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (username) DO NOTHING",
                params![
                    new.username.trim(),
                    new.name.trim(),
                    new.role.to_string(),
                    new.district.as_str(),
                    new.department.trim(),
                    hash,
                    Utc::now().to_rfc3339()
                ],
            )?;
            if inserted == 0 {
                return Err(AppError::Conflict(format!("user {:?} already exists", new.username)));
            }
            Ok(())
        })?;
        self.user(new.username)
    }

    /// The account with this username.
    pub fn user(&self, username: &str) -> AppResult<User> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT id, username, name, role, district, department, disabled FROM users WHERE username = ?1",
                params![username],
                user_row,
            )?
            .ok_or_else(|| AppError::NotFound(format!("no user {username:?}")))
        })
    }

    /// Every account, by username.
    pub fn users(&self) -> AppResult<Vec<User>> {
        self.read(|conn| {
            let rows = conn.query_map("SELECT id, username, name, role, district, department, disabled FROM users ORDER BY username", params![], user_row)?;
            Ok(rows)
        })
    }

    /// Disables (or enables) an account. Disabling also revokes its tokens and ends its
    /// browser sessions, so that enabling it again brings none of them back (one may have
    /// been stolen): the user signs in anew.
    pub fn set_disabled(&self, username: &str, disabled: bool) -> AppResult<()> {
        let user = self.user(username)?;
        self.write(|conn| {
            conn.transaction(|tx| {
                tx.execute(
                    "UPDATE users SET disabled = ?2 WHERE id = ?1",
                    params![user.id, disabled as i64],
                )?;
                if disabled {
                    end_sessions(tx, user.id)?;
                } else {
                    // Certificates from before vouch for nothing on phones that learned of
                    // the disabling: the next sign-in gets a new one (`recent_certificate`),
                    // and the catalog stops listing the account's devices.
                    tx.execute(
                        "UPDATE users SET enabled_at = ?2 WHERE id = ?1",
                        params![user.id, Utc::now().to_rfc3339()],
                    )?;
                    bump_revocations(tx)?;
                }
                Ok(())
            })
        })
    }

    /// Sets a new password and revokes every token of the account.
    pub fn reset_password(&self, username: &str, password: &str) -> AppResult<()> {
        let hash = hash_password(password)?;
        let user = self.user(username)?;
        self.write(|conn| {
            conn.transaction(|tx| {
                tx.execute(
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![user.id, hash],
                )?;
                end_sessions(tx, user.id)
            })
        })
    }

    /// Checks a user's password (on the password thread: argon2 is slow on purpose).
    pub fn check_password(&self, username: &str, password: &str) -> AppResult<User> {
        let denied =
            || AppError::Unauthorized("用户名或密码错误 (wrong username or password)".into());
        let stored: Option<(String, i64)> = self.read(|conn| {
            conn.query_opt(
                "SELECT password_hash, disabled FROM users WHERE username = ?1",
                params![username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })?;
        let Some((hash, disabled)) = stored else {
            // An unknown name takes as long as a wrong password: names cannot be told
            // apart by timing.
            verify_password(password, unknown_user_hash())?;
            return Err(denied());
        };
        if !verify_password(password, &hash)? {
            return Err(denied());
        }
        if disabled != 0 {
            return Err(AppError::Forbidden(
                "账号已停用 (this account is disabled)".into(),
            ));
        }
        self.user(username)
    }

    /// Checks a password; binds the device's actor id to the user (a device belongs to one
    /// user for ever; a user has at most `devices_per_user` devices not revoked) and issues
    /// a token, ending the device's earlier tokens but the newest few, and for a device
    /// that signs, a certificate of its key. Returns the token, the user and the
    /// certificate.
    #[expect(
        clippy::too_many_arguments,
        reason = "a sign-in's every input, and the terms it is held to"
    )]
    pub fn login(
        &self,
        username: &str,
        password: &str,
        device_name: &str,
        actor_id: &str,
        key: Option<&PublicKey>,
        token_days: u32,
        devices_per_user: usize,
    ) -> AppResult<(String, User, Option<Certificate>)> {
        if actor_id.len() != 32 || !actor_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::BadRequest(
                "actor_id must be the device's 16-byte actor id in hex".into(),
            ));
        }
        let actor_id = actor_id.to_ascii_lowercase();
        let device_name = device_name.trim();
        if device_name.chars().count() > DEVICE_NAME_CHARS
            || device_name.chars().any(hides_text)
            || device_name == SERVER_DEVICE_NAME
        {
            return Err(AppError::BadRequest(format!(
                "设备名称不超过 {DEVICE_NAME_CHARS} 个字符，且不能使用服务器自用的名称 (a device name has at most {DEVICE_NAME_CHARS} characters, none a control character or a direction override, and is not the server's own)"
            )));
        }
        let user = self.check_password(username, password)?;
        let user_id = user.id;
        let token = hex::encode(rand::random::<[u8; 32]>());
        self.write(|conn| {
            conn.transaction(|tx| {
                let owner: Option<(i64, Option<String>)> = tx
                    .query_opt("SELECT user_id, revoked_at FROM devices WHERE actor_id = ?1", params![&actor_id], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                let server_side: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM devices WHERE actor_id = ?1 AND name = ?2)",
                    params![actor_id, SERVER_DEVICE_NAME],
                    |r| r.get(0),
                )?;
                if server_side {
                    return Err(AppError::Conflict("this actor id belongs to the server".into()));
                }
                match owner {
                    Some((owner, _)) if owner != user_id => {
                        return Err(AppError::Conflict("this device is bound to another user".into()));
                    }
                    Some((_, Some(_))) => return Err(AppError::Forbidden("this device was revoked".into())),
                    Some(_) => {}
                    None => {
                        let devices: i64 = tx.query_row(
                            "SELECT COUNT(*) FROM devices WHERE user_id = ?1 AND revoked_at IS NULL AND name <> ?2",
                            params![user_id, SERVER_DEVICE_NAME],
                            |r| r.get(0),
                        )?;
                        if devices >= devices_per_user as i64 {
                            return Err(AppError::Forbidden(format!(
                                "此账号已登记 {devices} 台设备（上限 {devices_per_user} 台），请联系管理员吊销不再使用的设备 (the account has as many devices as allowed; an administrator revokes one no longer used)"
                            )));
                        }
                        tx.execute(
                            "INSERT INTO devices (actor_id, user_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                            params![actor_id, user_id, device_name, Utc::now().to_rfc3339()],
                        )?;
                    }
                }
                let now = Utc::now();
                let certificate = match key {
                    Some(key) if *key == self.server_key().public_key() => {
                        return Err(AppError::Conflict("this public key belongs to the server".into()));
                    }
                    Some(key) => {
                        register_key(tx, &actor_id, key)?;
                        Some(match self.recent_certificate(tx, &user, &actor_id, key, now)? {
                            Some(certificate) => certificate,
                            None => self.certify(tx, &user, &actor_id, key, now)?,
                        })
                    }
                    None => None,
                };
                end_older_tokens(tx, &actor_id, now)?;
                tx.execute(
                    "INSERT INTO tokens (token_hash, user_id, actor_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        token_hash(&token),
                        user_id,
                        actor_id,
                        now.to_rfc3339(),
                        now.timestamp() + i64::from(token_days) * 86_400
                    ],
                )?;
                Ok(certificate)
            })
        })
        .map(|certificate| (token, user, certificate))
    }

    /// The certificate issued within the last day for `key` on the device `actor_id` that
    /// still says what `user` is, by the server's key of now: a device that signs in again
    /// within the day is given it rather than a new one, so that signing in over and over
    /// does not pile up certificates that every answer of proofs and every evidence
    /// package of the device's cases carries.
    fn recent_certificate(
        &self,
        tx: &mut dyn Conn,
        user: &User,
        actor_id: &str,
        key: &PublicKey,
        now: chrono::DateTime<Utc>,
    ) -> AppResult<Option<Certificate>> {
        let since = now - chrono::Duration::days(1);
        // Never one issued before the account was last enabled again.
        let stored = tx.query_opt(
            "SELECT bytes FROM certificates WHERE actor_id = ?1 AND key_id = ?2 AND issued_at > ?3
             AND issued_at > coalesce((SELECT enabled_at FROM users WHERE id = ?4), '')
             ORDER BY id DESC LIMIT 1",
            params![actor_id, key.id().as_slice(), since.to_rfc3339(), user.id],
            |r| r.get::<Vec<u8>>(0),
        )?;
        let Some(certificate) = stored.and_then(|bytes| Certificate::decode(&bytes).ok()) else {
            return Ok(None);
        };
        let fields = certificate.fields();
        let current = fields.user == user.username
            && fields.name == user.name
            && fields.role == user.role
            && fields.district == user.district
            && fields.department == user.department
            && fields.issuer == self.server_key().public_key().id()
            && fields.not_after > now.timestamp();
        Ok(current.then_some(certificate))
    }

    /// Issues (and keeps) a certificate binding `key` to `user` and the device `actor_id`.
    fn certify(
        &self,
        tx: &mut dyn Conn,
        user: &User,
        actor_id: &str,
        key: &PublicKey,
        now: chrono::DateTime<Utc>,
    ) -> AppResult<Certificate> {
        let server = self.server_key();
        let certificate = Certificate::issue(
            server,
            CertificateFields {
                user: user.username.clone(),
                name: user.name.clone(),
                role: user.role,
                district: user.district.clone(),
                department: user.department.clone(),
                actor: actor_id.to_owned(),
                key: key.clone(),
                issued_at: now.timestamp(),
                not_after: now.timestamp() + CERTIFICATE_VALIDITY,
                issuer: server.public_key().id(),
            },
        )
        .map_err(|e| AppError::Internal(format!("issuing a certificate: {e}")))?;
        tx.execute(
            "INSERT INTO certificates (actor_id, key_id, bytes, issued_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                actor_id,
                key.id().as_slice(),
                certificate.encode(),
                now.to_rfc3339()
            ],
        )?;
        Ok(certificate)
    }

    /// Every certificate the server issued the device `actor_id`, oldest first.
    pub fn certificates_of(&self, actor_id: &str) -> AppResult<Vec<Certificate>> {
        self.read(|conn| {
            let rows = conn.query_map(
                "SELECT bytes FROM certificates WHERE actor_id = ?1 ORDER BY id",
                params![actor_id],
                |r| r.get::<Vec<u8>>(0),
            )?;
            rows.iter()
                .map(|bytes| {
                    Certificate::decode(bytes)
                        .map_err(|e| AppError::Internal(format!("a stored certificate: {e}")))
                })
                .collect()
        })
    }

    /// Devices, optionally of one user.
    pub fn devices(&self, username: Option<&str>) -> AppResult<Vec<Device>> {
        self.read(|conn| {
            let rows = conn.query_map(
                "SELECT d.actor_id, u.username, d.name, d.created_at, d.revoked_at
                 FROM devices d JOIN users u ON u.id = d.user_id
                 WHERE CAST(?1 AS TEXT) IS NULL OR u.username = ?1 ORDER BY u.username, d.created_at",
                params![username],
                |r| {
                    Ok(Device {
                        actor_id: r.get(0)?,
                        username: r.get(1)?,
                        name: r.get(2)?,
                        created_at: r.get(3)?,
                        revoked_at: r.get(4)?,
                    })
                },
            )?;
            Ok(rows)
        })
    }

    /// Revokes a device: its changes are refused and its tokens stop working.
    pub fn revoke_device(&self, actor_id: &str) -> AppResult<()> {
        let now = Utc::now().to_rfc3339();
        let changed = self.write(|conn| {
            conn.transaction(|tx| {
                let changed = tx.execute(
                    "UPDATE devices SET revoked_at = ?2 WHERE actor_id = ?1 AND revoked_at IS NULL",
                    params![actor_id, now],
                )?;
                tx.execute(
                    "UPDATE tokens SET revoked_at = ?2 WHERE actor_id = ?1 AND revoked_at IS NULL",
                    params![actor_id, now],
                )?;
                bump_revocations(tx)?;
                Ok(changed)
            })
        })?;
        if changed == 0 {
            return Err(AppError::NotFound(format!("no active device {actor_id}")));
        }
        Ok(())
    }

    /// The actor id under which the server writes `user`'s own changes (review actions
    /// and conflict resolutions made in the web pages), bound to the user like a device
    /// so that history attributes every such change to them. Stable per user and server,
    /// and derived from a secret that never leaves the server, so that no device can
    /// guess it and bind it first.
    pub fn server_actor(&self, user: &User) -> AppResult<automerge::ActorId> {
        let digest = hmac(
            self.secret(),
            format!("anjian-server-actor\0{}", user.id).as_bytes(),
        );
        let actor = automerge::ActorId::from(&digest[..16]);
        let hex = actor.to_hex_string();
        self.write(|conn| {
            conn.transaction(|tx| {
                let now = Utc::now();
                tx.execute(
                    "INSERT INTO devices (actor_id, user_id, name, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![hex, user.id, SERVER_DEVICE_NAME, now.to_rfc3339()],
                )?;
                let owner: i64 =
                    tx.query_row("SELECT user_id FROM devices WHERE actor_id = ?1", params![&hex], |r| r.get(0))?;
                if owner != user.id {
                    return Err(AppError::Internal(format!(
                        "the server-side actor {hex} of {} is bound to another account",
                        user.username
                    )));
                }
                // The server signs what it writes for the user with its own key, certified for
                // this actor as the user's, renewed well before it expires: phones on site
                // then verify a supervisor's decision like any teammate's change.
                let renew_after = now - chrono::Duration::seconds(CERTIFICATE_VALIDITY / 2);
                let current: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM certificates WHERE actor_id = ?1 AND issued_at > ?2)",
                    params![hex, renew_after.to_rfc3339()],
                    |r| r.get(0),
                )?;
                if !current {
                    self.certify(tx, user, &hex, &self.server_key().public_key(), now)?;
                }
                Ok(())
            })
        })?;
        Ok(actor)
    }

    /// Once, after the upgrade that derived server actors from the secret: server actor
    /// ids of the old derivation (from the storage id every peer is told and sequential
    /// user ids) that a device bound first are revoked with their tokens. The supervisors'
    /// own old server actors stay, for their history.
    pub(super) fn repair_server_actors(&self) -> AppResult<()> {
        let users = self.users()?;
        let now = Utc::now().to_rfc3339();
        self.write(|conn| {
            conn.transaction(|tx| {
                for user in &users {
                    let digest = Sha256::digest(
                        format!("anjian-server-actor\0{}\0{}", self.storage_id(), user.id).as_bytes(),
                    );
                    let old = automerge::ActorId::from(&digest[..16]).to_hex_string();
                    let squatted = tx.execute(
                        "UPDATE devices SET revoked_at = ?3 WHERE actor_id = ?1 AND user_id <> ?2 AND revoked_at IS NULL",
                        params![old, user.id, now],
                    )?;
                    if squatted > 0 {
                        tx.execute(
                            "UPDATE tokens SET revoked_at = ?2 WHERE actor_id = ?1 AND revoked_at IS NULL",
                            params![old, now],
                        )?;
                        tracing::warn!(actor = %old, user = %user.username, "a device had bound a supervisor's server-side actor id; it is revoked");
                    }
                }
                bump_revocations(tx)?;
                tx.execute("DELETE FROM meta WHERE key = 'server_actors_repair'", params![])?;
                Ok(())
            })
        })
    }

    /// The signed-in session a token is, if the token, its device and its user are all
    /// valid and it has not expired.
    pub fn token_session(&self, token_hash: &str) -> AppResult<Option<TokenSession>> {
        self.read(|conn| {
            conn.query_opt(
                concat!(
                    "SELECT u.id, u.username, u.name, u.role, u.district, u.department, u.disabled, t.actor_id, t.expires_at ",
                    good_token!()
                ),
                params![token_hash, Utc::now().timestamp()],
                |r| Ok((user_row(r)?, r.get::<String>(7)?, r.get::<i64>(8)?)),
            )?
            .map(|(user, actor_id, expires_at)| {
                Ok(TokenSession {
                    user,
                    token_hash: token_hash.to_owned(),
                    actor_id,
                    expires_at,
                })
            })
            .transpose()
        })
    }

    /// Tokens, optionally of one user, newest first.
    pub fn tokens(&self, username: Option<&str>) -> AppResult<Vec<Token>> {
        self.read(|conn| {
            conn.query_map(
                "SELECT t.token_hash, u.username, t.actor_id, d.name, t.created_at, t.expires_at, t.revoked_at
                 FROM tokens t JOIN users u ON u.id = t.user_id JOIN devices d ON d.actor_id = t.actor_id
                 WHERE CAST(?1 AS TEXT) IS NULL OR u.username = ?1 ORDER BY t.created_at DESC",
                params![username],
                |r| {
                    let hash: String = r.get(0)?;
                    Ok(Token {
                        id: hash[..TOKEN_ID_LEN].to_owned(),
                        username: r.get(1)?,
                        actor_id: r.get(2)?,
                        device: r.get(3)?,
                        created_at: r.get(4)?,
                        expires_at: r.get(5)?,
                        revoked_at: r.get(6)?,
                    })
                },
            )
        })
    }

    /// Revokes the token whose id (the start of its hash, as `tokens` lists it) is `id`.
    pub fn revoke_token(&self, id: &str) -> AppResult<()> {
        if id.len() < TOKEN_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::BadRequest(format!(
                "a token id is the first {TOKEN_ID_LEN} hex digits that `token list` shows"
            )));
        }
        let changed = self.write(|conn| {
            conn.transaction(|tx| {
                let changed = tx.execute(
                    "UPDATE tokens SET revoked_at = ?2 WHERE token_hash LIKE ?1 || '%' AND revoked_at IS NULL",
                    params![id.to_ascii_lowercase(), Utc::now().to_rfc3339()],
                )?;
                if changed > 1 {
                    return Err(AppError::BadRequest("that id names more than one token; give more of it".into()));
                }
                bump_revocations(tx)?;
                Ok(changed)
            })
        })?;
        if changed == 0 {
            return Err(AppError::NotFound(format!("no active token {id}")));
        }
        Ok(())
    }

    /// How many revocations there have been (every process sharing the database sees it
    /// move, and rechecks its open connections).
    pub fn revocations(&self) -> AppResult<i64> {
        self.read(revocation_count)
    }

    /// Devices revoked, or of disabled accounts, each with the newest certificate the
    /// server issued it, while that certificate may still be within its validity on a
    /// phone (an expired one vouches for nothing anyway): what the catalog tells phones,
    /// so that they refuse such a device's changes on site. Read again only once the count
    /// of revocations has moved.
    pub(super) fn revoked_devices(&self, conn: &mut dyn Conn) -> AppResult<Arc<[RevokedDevice]>> {
        let count = revocation_count(conn)?;
        let cached = self
            .revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((seen, devices)) = cached
            && seen == count
        {
            return Ok(devices);
        }
        // Twice the validity: a phone whose clock runs slow still takes a certificate
        // the server's clock has seen expire.
        let valid_after = Utc::now() - chrono::Duration::seconds(2 * CERTIFICATE_VALIDITY);
        // Not the server's own actors for supervisors: what they wrote, the server signed.
        let rows: Vec<(String, String)> = conn.query_map(
            "SELECT d.actor_id, max(c.issued_at) FROM devices d
             JOIN users u ON u.id = d.user_id
             JOIN certificates c ON c.actor_id = d.actor_id
             WHERE (d.revoked_at IS NOT NULL OR u.disabled <> 0) AND d.name <> ?2
             GROUP BY d.actor_id HAVING max(c.issued_at) > ?1 ORDER BY d.actor_id",
            params![valid_after.to_rfc3339(), SERVER_DEVICE_NAME],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let devices: Arc<[RevokedDevice]> = rows
            .into_iter()
            .filter_map(|(actor, issued_at)| {
                // One unreadable time (only `certify` writes them) costs its device, not
                // every catalog.
                let issued = chrono::DateTime::parse_from_rfc3339(&issued_at)
                    .inspect_err(|e| tracing::warn!(%actor, error = %e, "a certificate's time does not read"))
                    .ok()?;
                Some(RevokedDevice {
                    actor,
                    issued_before: issued.timestamp(),
                })
            })
            .collect();
        *self.revoked.lock().unwrap_or_else(|p| p.into_inner()) = Some((count, devices.clone()));
        Ok(devices)
    }
}

/// How many revocations there have been.
fn revocation_count(conn: &mut dyn Conn) -> AppResult<i64> {
    Ok(conn
        .query_opt(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'revocations'",
            params![],
            |r| r.get(0),
        )?
        .unwrap_or_default())
}

/// Signing keys one device may register. Keys are kept for ever (they verify what the
/// device signed), so each new one is a row and a certificate for good: a phone makes a
/// new key only when its key store is lost, and then usually a new actor too.
pub const KEYS_PER_DEVICE: i64 = 8;

/// Live tokens one device keeps: signing in again ends the older ones past this (a phone
/// uses its newest; a few more let a sign-in cut off mid-answer be retried).
pub const TOKENS_PER_DEVICE: i64 = 4;

/// Revokes the live tokens of device `actor_id` but the newest `TOKENS_PER_DEVICE - 1`,
/// making room for the one being issued.
fn end_older_tokens(
    tx: &mut dyn Conn,
    actor_id: &str,
    now: chrono::DateTime<Utc>,
) -> AppResult<()> {
    let ended = tx.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE actor_id = ?1 AND revoked_at IS NULL
         AND token_hash NOT IN (
             SELECT token_hash FROM tokens WHERE actor_id = ?1 AND revoked_at IS NULL
             ORDER BY created_at DESC, token_hash LIMIT ?3)",
        params![actor_id, now.to_rfc3339(), TOKENS_PER_DEVICE - 1],
    )?;
    if ended > 0 {
        bump_revocations(tx)?;
    }
    Ok(())
}

/// How many hex digits of a token's hash name it in the CLI.
pub const TOKEN_ID_LEN: usize = 12;

/// Counts a revocation.
impl Storage {
    /// Records a key the device `actor_id` (bound already) signs with and certifies it, as
    /// signing in with it does; returns the certificate.
    pub fn register_device_key(&self, actor_id: &str, key: &PublicKey) -> AppResult<Certificate> {
        let user = self.read(|conn| {
            conn.query_opt(
                "SELECT u.id, u.username, u.name, u.role, u.district, u.department, u.disabled
                 FROM devices d JOIN users u ON u.id = d.user_id
                 WHERE d.actor_id = ?1 AND d.revoked_at IS NULL",
                params![actor_id],
                user_row,
            )
        })?;
        let user =
            user.ok_or_else(|| AppError::NotFound(format!("no unrevoked device {actor_id}")))?;
        self.write(|conn| {
            conn.transaction(|tx| {
                register_key(tx, actor_id, key)?;
                let certificate = self.certify(tx, &user, actor_id, key, Utc::now())?;
                Ok(certificate)
            })
        })
    }
}

/// Records a key the device `actor_id` signs with (a key it registered before stays, as
/// do its older keys); a key registered by another device is refused.
fn register_key(tx: &mut dyn Conn, actor_id: &str, key: &PublicKey) -> AppResult<()> {
    let id = key.id();
    let holder: Option<String> = tx.query_opt(
        "SELECT actor_id FROM device_keys WHERE key_id = ?1",
        params![id.as_slice()],
        |r| r.get(0),
    )?;
    match holder {
        Some(holder) if holder == actor_id => Ok(()),
        Some(_) => Err(AppError::Conflict(
            "this public key belongs to another device".into(),
        )),
        None => {
            let keys: i64 = tx.query_row(
                "SELECT COUNT(*) FROM device_keys WHERE actor_id = ?1",
                params![actor_id],
                |r| r.get(0),
            )?;
            if keys >= KEYS_PER_DEVICE {
                return Err(AppError::Forbidden(format!(
                    "此设备已登记 {keys} 个签名密钥（上限 {KEYS_PER_DEVICE} 个），请以新设备登录 (the device has registered as many keys as allowed; sign in as a new device)"
                )));
            }
            tx.execute(
                "INSERT INTO device_keys (key_id, actor_id, algorithm, public_key, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id.as_slice(),
                    actor_id,
                    key.algorithm().code(),
                    key.bytes(),
                    Utc::now().to_rfc3339()
                ],
            )?;
            Ok(())
        }
    }
}

/// Revokes every token of account `user_id` and ends its browser sessions (how a stolen
/// token or session is cut off), and tells open connections to check theirs again.
fn end_sessions(tx: &mut dyn Conn, user_id: i64) -> AppResult<()> {
    tx.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        params![user_id, Utc::now().to_rfc3339()],
    )?;
    tx.execute(
        "DELETE FROM web_sessions WHERE user_id = ?1",
        params![user_id],
    )?;
    bump_revocations(tx)
}

fn bump_revocations(tx: &mut dyn Conn) -> AppResult<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('revocations', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)",
        params![],
    )?;
    Ok(())
}

/// HMAC-SHA256 of `message` under `key`.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Makes the hash unknown names are checked against before the first sign-in, so that
/// the first unknown name takes no longer than later ones.
pub fn prepare_sign_in() {
    unknown_user_hash();
}

/// A stored hash of a password nobody has, checked for unknown names so that they take
/// as long as known ones.
fn unknown_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        hash_password(&hex::encode(rand::random::<[u8; 16]>()))
            .expect("hashing a random password works")
    })
}

/// A control character, or a direction override that would show a name other than it
/// reads.
fn hides_text(c: char) -> bool {
    c.is_control()
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}
