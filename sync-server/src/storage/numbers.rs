//! Document numbers (docs/decisions/0004): the next sequence per department prefix, kind
//! and year, and every block allocated from it, each signed with the server's key: to a
//! device's key (it issues from them offline), or to the server's own key for one number
//! that replaces a provisional one. A number is allocated once, ever.

use anjian_core::numbering::{self, NumberBlock, SignedBlock};
use anjian_core::signing::{KeyId, Signer};
use anjian_core::{DistrictCode, WritKind};
use chrono::{Datelike, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::Storage;
use crate::error::{AppError, AppResult};
use crate::users::User;

/// Numbers in a block allocated to a device.
pub const BLOCK_SIZE: u32 = 20;

/// Blocks of one kind one device key may hold in a year: beyond them a device asks for
/// more than any inspection team issues, and is refused.
pub const MAX_BLOCKS_PER_YEAR: i64 = 50;

impl Storage {
    /// Allocates the device `actor` of `user`, for its key `key` (one it registered), a
    /// block of [`BLOCK_SIZE`] numbers this year for each of `kinds`; returns them signed.
    pub fn allocate_number_blocks(
        &self,
        user: &User,
        actor: &str,
        key: &KeyId,
        kinds: &[WritKind],
    ) -> AppResult<Vec<String>> {
        let prefix = numbering::prefix(&user.district, &user.department);
        let year = crate::queries::china_now().year();
        self.write(|conn| {
            let tx = conn.transaction()?;
            let registered: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM device_keys k JOIN devices d ON d.actor_id = k.actor_id
                     WHERE k.key_id = ?1 AND k.actor_id = ?2 AND d.user_id = ?3 AND d.revoked_at IS NULL",
                    params![key.as_slice(), actor, user.id],
                    |r| r.get(0),
                )
                .optional()?;
            if registered.is_none() {
                return Err(AppError::Forbidden(
                    "该密钥不是本设备登记的签名密钥 (the key is not one this device registered; sign in again)".into(),
                ));
            }
            let mut blocks = Vec::new();
            for &kind in kinds {
                let held: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM number_blocks WHERE key_id = ?1 AND kind = ?2 AND year = ?3",
                    params![key.as_slice(), kind.code(), year],
                    |r| r.get(0),
                )?;
                if held >= MAX_BLOCKS_PER_YEAR {
                    return Err(AppError::Conflict(format!(
                        "本设备今年已领取 {held} 个{}编号段 (this key holds the most blocks of a kind a year allows)",
                        kind.label()
                    )));
                }
                let place = Place {
                    prefix: &prefix,
                    kind,
                    year,
                };
                let block =
                    self.allocate(&tx, &place, BLOCK_SIZE, user.id, actor, *key)?;
                blocks.push(block.encode());
            }
            tx.commit()?;
            Ok(blocks)
        })
    }

    /// Allocates one number for a document of `kind` sealed with a provisional number in
    /// a case of `district` by `sealer` (whose department's numbers it takes), bound to
    /// the server's own key, written by the server-side actor `actor`.
    pub fn allocate_server_number(
        &self,
        sealer: &User,
        district: &DistrictCode,
        actor: &str,
        kind: WritKind,
    ) -> AppResult<SignedBlock> {
        let prefix = numbering::prefix(district, &sealer.department);
        let year = crate::queries::china_now().year();
        let key = self.server_key().public_key().id();
        self.write(|conn| {
            let tx = conn.transaction()?;
            let place = Place {
                prefix: &prefix,
                kind,
                year,
            };
            let block = self.allocate(&tx, &place, 1, sealer.id, actor, key)?;
            tx.commit()?;
            Ok(block)
        })
    }

    fn allocate(
        &self,
        tx: &Transaction<'_>,
        place: &Place<'_>,
        size: u32,
        user_id: i64,
        actor: &str,
        key: KeyId,
    ) -> AppResult<SignedBlock> {
        let Place { prefix, kind, year } = *place;
        let first: u32 = tx
            .query_row(
                "SELECT next FROM number_sequences WHERE prefix = ?1 AND kind = ?2 AND year = ?3",
                params![prefix, kind.code(), year],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(1);
        let last = first + size - 1;
        tx.execute(
            "INSERT INTO number_sequences (prefix, kind, year, next) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (prefix, kind, year) DO UPDATE SET next = excluded.next",
            params![prefix, kind.code(), year, last + 1],
        )?;
        let server = self.server_key();
        let now = Utc::now();
        let block = SignedBlock::issue(
            server,
            NumberBlock {
                prefix: prefix.to_owned(),
                kind,
                year,
                first,
                last,
                actor: actor.to_owned(),
                key,
                issued_at: now.timestamp(),
                issuer: server.public_key().id(),
            },
        )?;
        tx.execute(
            "INSERT INTO number_blocks (prefix, kind, year, first, last, user_id, actor_id, key_id, issued_at, block)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                prefix,
                kind.code(),
                year,
                first,
                last,
                user_id,
                actor,
                key.as_slice(),
                now.to_rfc3339(),
                block.encode()
            ],
        )?;
        Ok(block)
    }
}

/// Where a number is allocated: the department's prefix, the kind and the year.
#[derive(Clone, Copy)]
struct Place<'a> {
    prefix: &'a str,
    kind: WritKind,
    year: i32,
}
