//! Unfinished blob uploads, held in the database part by part so that every server
//! process sharing it sees the same upload: a part received by one node and the next by
//! another. Each upload is its uploader's alone (two users sending the same blob each
//! send their own), so that no one else can move, spoil or cancel it; and it counts
//! against its uploader's quota.

use chrono::{SecondsFormat, Utc};

use super::Storage;
use crate::db::{Conn, params};
use crate::error::{AppError, AppResult};

/// What became of a part offered for an unfinished upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staged {
    /// Kept: the upload now holds this many bytes.
    Kept(u64),
    /// Refused, because the part does not start where the upload ends: it holds this many
    /// bytes (another process may have taken a part meanwhile).
    Elsewhere(u64),
    /// Refused: the user's unfinished uploads would hold this many bytes, past the quota.
    OverQuota(u64),
}

impl Storage {
    /// Bytes `user_id`'s unfinished upload of `sha256` holds (0 if there is none).
    pub fn upload_held(&self, sha256: &str, user_id: i64) -> AppResult<u64> {
        self.read(|conn| held(conn, sha256, user_id))
    }

    /// Keeps `part` of the unfinished upload of `sha256` by `user_id`, if it starts where
    /// the upload ends (at 0 for a new one) and the user's unfinished uploads stay within
    /// `quota` bytes. One transaction: two processes offered the same part keep it once,
    /// and one user's parts for different blobs are weighed against the quota one at a
    /// time.
    pub fn stage_part(
        &self,
        sha256: &str,
        user_id: i64,
        start: u64,
        part: &[u8],
        quota: u64,
    ) -> AppResult<Staged> {
        self.write(|conn| {
            conn.transaction(|tx| {
                super::lock_account(tx, user_id)?;
                let holds = held(tx, sha256, user_id)?;
                if holds != start {
                    return Ok(Staged::Elsewhere(holds));
                }
                let total = start + part.len() as u64;
                let parked: i64 = tx.query_row(
                    "SELECT coalesce(sum(bytes), 0) FROM uploads WHERE user_id = ?1 AND sha256 <> ?2",
                    params![user_id, sha256],
                    |r| r.get(0),
                )?;
                let parked = parked.max(0) as u64 + total;
                if parked > quota {
                    return Ok(Staged::OverQuota(parked));
                }
                let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
                // Only from where the upload ends, whoever wrote last: a part another
                // process kept meanwhile moves the end, and this one is then refused.
                let moved = if start == 0 {
                    tx.execute(
                        "INSERT INTO uploads (sha256, user_id, bytes, updated_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (sha256, user_id) DO NOTHING",
                        params![sha256, user_id, total as i64, now],
                    )?
                } else {
                    tx.execute(
                        "UPDATE uploads SET bytes = ?3, updated_at = ?4
                         WHERE sha256 = ?1 AND user_id = ?2 AND bytes = ?5",
                        params![sha256, user_id, total as i64, now, start as i64],
                    )?
                };
                if moved != 1 {
                    return Ok(Staged::Elsewhere(held(tx, sha256, user_id)?));
                }
                tx.execute(
                    "INSERT INTO upload_parts (sha256, user_id, start, bytes) VALUES (?1, ?2, ?3, ?4)",
                    params![sha256, user_id, start as i64, part],
                )?;
                Ok(Staged::Kept(total))
            })
        })
    }

    /// The bytes `user_id`'s unfinished upload of `sha256` holds, in order, read at one
    /// moment.
    pub fn staged_bytes(&self, sha256: &str, user_id: i64) -> AppResult<Vec<u8>> {
        self.read(|conn| {
            conn.consistent(|tx| {
                let expected = held(tx, sha256, user_id)?;
                let mut bytes = Vec::with_capacity(expected as usize);
                for (start, part) in tx.query_map(
                    "SELECT start, bytes FROM upload_parts WHERE sha256 = ?1 AND user_id = ?2 ORDER BY start",
                    params![sha256, user_id],
                    |r| Ok((r.get::<u64>(0)?, r.get::<Vec<u8>>(1)?)),
                )? {
                    if start != bytes.len() as u64 {
                        return Err(AppError::Internal(format!(
                            "the upload of {sha256} has a gap at byte {}",
                            bytes.len()
                        )));
                    }
                    bytes.extend_from_slice(&part);
                }
                if bytes.len() as u64 != expected {
                    return Err(AppError::Internal(format!(
                        "the upload of {sha256} holds {} bytes of the {expected} recorded",
                        bytes.len()
                    )));
                }
                Ok(bytes)
            })
        })
    }

    /// Forgets `user_id`'s unfinished upload of `sha256` (refused or expired).
    pub fn forget_upload(&self, sha256: &str, user_id: i64) -> AppResult<()> {
        self.write(|conn| conn.transaction(|tx| forget(tx, sha256, user_id)))
    }

    /// Forgets the unfinished uploads untouched for longer than `age`; how many.
    pub fn forget_uploads_older_than(&self, age: std::time::Duration) -> AppResult<usize> {
        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now()
            .checked_sub_signed(age)
            .map_or_else(String::new, |t| {
                t.to_rfc3339_opts(SecondsFormat::Micros, true)
            });
        self.write(|conn| {
            conn.transaction(|tx| {
                let stale: Vec<(String, i64)> = tx.query_map(
                    "SELECT sha256, user_id FROM uploads WHERE updated_at < ?1",
                    params![cutoff],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                for (sha256, user_id) in &stale {
                    forget(tx, sha256, *user_id)?;
                }
                Ok(stale.len())
            })
        })
    }
}

fn held(conn: &mut dyn Conn, sha256: &str, user_id: i64) -> AppResult<u64> {
    Ok(conn
        .query_opt(
            "SELECT bytes FROM uploads WHERE sha256 = ?1 AND user_id = ?2",
            params![sha256, user_id],
            |r| r.get::<u64>(0),
        )?
        .unwrap_or(0))
}

fn forget(tx: &mut dyn Conn, sha256: &str, user_id: i64) -> AppResult<()> {
    tx.execute(
        "DELETE FROM upload_parts WHERE sha256 = ?1 AND user_id = ?2",
        params![sha256, user_id],
    )?;
    tx.execute(
        "DELETE FROM uploads WHERE sha256 = ?1 AND user_id = ?2",
        params![sha256, user_id],
    )?;
    Ok(())
}
