//! Accounts, devices and tokens as values: argon2 password hashes, tokens stored only as
//! their SHA-256. What is stored of them is `storage::accounts`.

use anjian_core::{DistrictCode, Role};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Internal id.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Full name.
    pub name: String,
    /// Role.
    #[schema(value_type = crate::schemas::Role)]
    pub role: Role,
    /// The user's district.
    #[serde(serialize_with = "district")]
    #[schema(value_type = crate::schemas::DistrictCode)]
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

/// A signed-in device's token, as a request or a sync connection holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSession {
    /// Whose.
    pub user: User,
    /// The token's hash.
    pub token_hash: String,
    /// The device it was issued to.
    pub actor_id: String,
    /// When it expires (unix seconds).
    pub expires_at: i64,
}

/// A token as the CLI lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    /// The first digits of its hash, which name it.
    pub id: String,
    /// Whose.
    pub username: String,
    /// The device it was issued to.
    pub actor_id: String,
    /// The device's name.
    pub device: String,
    /// When it was issued.
    pub created_at: String,
    /// When it expires (unix seconds).
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// SHA-256 of a token, hex: tokens are stored only as this.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn hash_password(password: &str) -> AppResult<String> {
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
pub(crate) fn verify_password(password: &str, stored: &str) -> AppResult<bool> {
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

/// The device name of a user's server-side actor (no device may sign in under it: the
/// history would show its changes as made on the supervisors' pages).
pub const SERVER_DEVICE_NAME: &str = "监管网页 (server)";

/// Characters a device's name (given at sign-in, shown beside its changes) has at most.
pub const DEVICE_NAME_CHARS: usize = 64;
