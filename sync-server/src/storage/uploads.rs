//! Unfinished blob uploads, attributed to who parked them, for the per-user quota.

use crate::db::params;
use chrono::Utc;

use super::Storage;
use crate::error::AppResult;

impl Storage {
    /// Bytes of unfinished uploads `user_id` has parked, besides the upload of `except`.
    pub fn parked_bytes(&self, user_id: i64, except: &str) -> AppResult<u64> {
        self.read(|conn| {
            let bytes: i64 = conn.query_row(
                "SELECT coalesce(sum(bytes), 0) FROM uploads WHERE user_id = ?1 AND sha256 <> ?2",
                params![user_id, except],
                |r| r.get(0),
            )?;
            Ok(bytes.max(0) as u64)
        })
    }

    /// Records that `user_id` holds `bytes` of the unfinished upload of `sha256`.
    pub fn record_upload(&self, sha256: &str, user_id: i64, bytes: u64) -> AppResult<()> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO uploads (sha256, user_id, bytes, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sha256) DO UPDATE SET user_id = excluded.user_id,
                    bytes = excluded.bytes, updated_at = excluded.updated_at",
                params![sha256, user_id, bytes as i64, Utc::now().to_rfc3339()],
            )?;
            Ok(())
        })
    }

    /// Forgets the unfinished upload of `sha256` (finished, refused or expired).
    pub fn forget_upload(&self, sha256: &str) -> AppResult<()> {
        self.write(|conn| {
            conn.execute("DELETE FROM uploads WHERE sha256 = ?1", params![sha256])?;
            Ok(())
        })
    }
}
