//! Accounts, devices and tokens: argon2 password hashes, random tokens stored hashed,
//! device actor ids bound to users at login.

use std::fmt;
use std::str::FromStr;

use anjian_core::DistrictCode;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use chrono::Utc;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};
use crate::storage::{Storage, user_row};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 执法检查人员: records cases in the field.
    Inspector,
    /// 监管负责人: reviews the cases of the districts they may see.
    Supervisor,
    /// Administers the server; sees every district.
    Admin,
}

impl FromStr for Role {
    type Err = AppError;
    fn from_str(s: &str) -> AppResult<Role> {
        match s {
            "inspector" => Ok(Role::Inspector),
            "supervisor" => Ok(Role::Supervisor),
            "admin" => Ok(Role::Admin),
            other => Err(AppError::BadRequest(format!(
                "role {other:?} is not inspector, supervisor or admin"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Inspector => "inspector",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        })
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Internal id.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Full name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The user's district.
    #[serde(serialize_with = "district")]
    pub district: DistrictCode,
    /// Department.
    pub department: String,
    /// Whether the account is disabled.
    pub disabled: bool,
}

fn district<S: serde::Serializer>(d: &DistrictCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

/// A new account.
pub struct NewUser<'a> {
    /// Sign-in name.
    pub username: &'a str,
    /// Full name.
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// District.
    pub district: &'a DistrictCode,
    /// Department.
    pub department: &'a str,
    /// Password (at least 8 characters).
    pub password: &'a str,
}

/// A device bound to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// The device's Automerge actor id (hex).
    pub actor_id: String,
    /// Its owner.
    pub username: String,
    /// The name the app gave it.
    pub name: String,
    /// When it was bound.
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// SHA-256 of a token, hex: tokens are stored only as this.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn hash_password(password: &str) -> AppResult<String> {
    if password.chars().count() < 8 {
        return Err(AppError::BadRequest(
            "a password needs at least 8 characters".into(),
        ));
    }
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AppError::Internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hashing: {e}")))
}

thread_local! {
    /// Argon2's working memory, kept between verifications on the password thread.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Checks `password` against a stored PHC hash, reusing this thread's Argon2 memory
/// instead of allocating 19 MiB per check.
fn verify_password(password: &str, stored: &str) -> AppResult<bool> {
    let internal =
        |e: &dyn std::fmt::Display| AppError::Internal(format!("stored password hash: {e}"));
    let parsed = PasswordHash::new(stored).map_err(|e| internal(&e))?;
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm).map_err(|e| internal(&e))?;
    let version = parsed
        .version
        .map(argon2::Version::try_from)
        .transpose()
        .map_err(|e| internal(&e))?
        .unwrap_or_default();
    let params = argon2::Params::try_from(&parsed).map_err(|e| internal(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(internal(&"no salt or no hash"));
    };
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(|e| internal(&e))?;
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    ARGON2_MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut out,
                &mut memory[..blocks],
            )
            .map_err(|e| internal(&e))
    })?;
    // Constant-time comparison: the time does not depend on where the bytes differ.
    let difference = out
        .iter()
        .zip(expected.as_bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    Ok(difference == 0)
}

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
            conn.query_row(
                "SELECT id, username, name, role, district, department, disabled FROM users WHERE username = ?1",
                [username],
                user_row,
            )
            .optional()?
            .ok_or_else(|| AppError::NotFound(format!("no user {username:?}")))?
        })
    }

    /// Every account, by username.
    pub fn users(&self) -> AppResult<Vec<User>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, username, name, role, district, department, disabled FROM users ORDER BY username",
            )?;
            let rows = stmt.query_map([], user_row)?;
            rows.map(|r| r?).collect()
        })
    }

    /// Disables (or enables) an account; a disabled account's tokens stop working.
    pub fn set_disabled(&self, username: &str, disabled: bool) -> AppResult<()> {
        let changed = self.write(|conn| {
            Ok(conn.execute(
                "UPDATE users SET disabled = ?2 WHERE username = ?1",
                params![username, disabled as i64],
            )?)
        })?;
        if changed == 0 {
            return Err(AppError::NotFound(format!("no user {username:?}")));
        }
        Ok(())
    }

    /// Sets a new password and revokes every token of the account.
    pub fn reset_password(&self, username: &str, password: &str) -> AppResult<()> {
        let hash = hash_password(password)?;
        let user = self.user(username)?;
        self.write(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                params![user.id, hash],
            )?;
            tx.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                params![user.id, Utc::now().to_rfc3339()],
            )?;
            // Browser sessions end too: a reset is how a stolen session is cut off.
            tx.execute("DELETE FROM web_sessions WHERE user_id = ?1", [user.id])?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Checks a user's password (on the password thread: argon2 is slow on purpose).
    pub fn check_password(&self, username: &str, password: &str) -> AppResult<User> {
        let denied =
            || AppError::Unauthorized("用户名或密码错误 (wrong username or password)".into());
        let stored: Option<(String, i64)> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT password_hash, disabled FROM users WHERE username = ?1",
                    [username],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
        })?;
        let Some((hash, disabled)) = stored else {
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
    /// user for ever) and issues a token. Returns the token and the user.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        device_name: &str,
        actor_id: &str,
    ) -> AppResult<(String, User)> {
        if actor_id.len() != 32 || !actor_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::BadRequest(
                "actor_id must be the device's 16-byte actor id in hex".into(),
            ));
        }
        let actor_id = actor_id.to_ascii_lowercase();
        let user = self.check_password(username, password)?;
        let user_id = user.id;
        let token = hex::encode(rand::random::<[u8; 32]>());
        self.write(|conn| {
            let tx = conn.transaction()?;
            let owner: Option<(i64, Option<String>)> = tx
                .query_row("SELECT user_id, revoked_at FROM devices WHERE actor_id = ?1", [&actor_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            match owner {
                Some((owner, _)) if owner != user_id => {
                    return Err(AppError::Conflict("this device is bound to another user".into()));
                }
                Some((_, Some(_))) => return Err(AppError::Forbidden("this device was revoked".into())),
                Some(_) => {}
                None => {
                    tx.execute(
                        "INSERT INTO devices (actor_id, user_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![actor_id, user_id, device_name.trim(), Utc::now().to_rfc3339()],
                    )?;
                }
            }
            tx.execute(
                "INSERT INTO tokens (token_hash, user_id, actor_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![token_hash(&token), user_id, actor_id, Utc::now().to_rfc3339()],
            )?;
            tx.commit()?;
            Ok(())
        })?;
        Ok((token, user))
    }

    /// Devices, optionally of one user.
    pub fn devices(&self, username: Option<&str>) -> AppResult<Vec<Device>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT d.actor_id, u.username, d.name, d.created_at, d.revoked_at
                 FROM devices d JOIN users u ON u.id = d.user_id
                 WHERE ?1 IS NULL OR u.username = ?1 ORDER BY u.username, d.created_at",
            )?;
            let rows = stmt.query_map([username], |r| {
                Ok(Device {
                    actor_id: r.get(0)?,
                    username: r.get(1)?,
                    name: r.get(2)?,
                    created_at: r.get(3)?,
                    revoked_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Revokes a device: its changes are refused and its tokens stop working.
    pub fn revoke_device(&self, actor_id: &str) -> AppResult<()> {
        let now = Utc::now().to_rfc3339();
        let changed = self.write(|conn| {
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE devices SET revoked_at = ?2 WHERE actor_id = ?1 AND revoked_at IS NULL",
                params![actor_id, now],
            )?;
            tx.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE actor_id = ?1 AND revoked_at IS NULL",
                params![actor_id, now],
            )?;
            tx.commit()?;
            Ok(changed)
        })?;
        if changed == 0 {
            return Err(AppError::NotFound(format!("no active device {actor_id}")));
        }
        Ok(())
    }

    /// The actor id under which the server writes `user`'s own changes (review actions
    /// and conflict resolutions made in the web pages), bound to the user like a device
    /// so that history attributes every such change to them. Stable per user and server.
    pub fn server_actor(&self, user: &User) -> AppResult<automerge::ActorId> {
        let digest = Sha256::digest(
            format!("anjian-server-actor\0{}\0{}", self.storage_id(), user.id).as_bytes(),
        );
        let actor = automerge::ActorId::from(&digest[..16]);
        let hex = actor.to_hex_string();
        let owner: i64 = self.write(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO devices (actor_id, user_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![hex, user.id, SERVER_DEVICE_NAME, Utc::now().to_rfc3339()],
            )?;
            Ok(conn.query_row("SELECT user_id FROM devices WHERE actor_id = ?1", [&hex], |r| r.get(0))?)
        })?;
        if owner != user.id {
            return Err(AppError::Internal(format!(
                "the server-side actor {hex} of {} is bound to another account",
                user.username
            )));
        }
        Ok(actor)
    }
}

/// The device name of a user's server-side actor.
pub const SERVER_DEVICE_NAME: &str = "监管网页 (server)";

/// A job for the password thread.
type Job = Box<dyn FnOnce() + Send>;

/// Runs password hashing and checking on one dedicated thread. Argon2 takes 19 MiB per
/// hash; one thread reuses one block instead of every blocking thread keeping its own
/// (which inflated the server's memory by hundreds of megabytes under a burst of logins).
pub struct PasswordThread {
    queue: std::sync::mpsc::Sender<Job>,
}

impl PasswordThread {
    /// Starts the thread; it ends when this is dropped.
    pub fn start() -> PasswordThread {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("anjian-passwords".into())
            .spawn(move || {
                while let Ok(job) = jobs.recv() {
                    job();
                }
            })
            .expect("the password thread starts");
        PasswordThread { queue }
    }

    /// Runs `f` on the password thread and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        self.queue
            .send(Box::new(move || {
                let _ = reply.send(f());
            }))
            .map_err(|_| AppError::Internal("the password thread has stopped".into()))?;
        result
            .await
            .map_err(|_| AppError::Internal("the password thread has stopped".into()))
    }
}
