//! Document numbers (docs/decisions/0004): the next sequence per department prefix, kind
//! and year, and every block allocated from it, each signed with the server's key: to a
//! device's key (it issues from them offline), or to the server's own key for one number
//! that replaces a provisional one. A number is allocated once, ever.

use std::collections::HashSet;

use crate::db::{Conn, params};
use anjian_core::numbering::{self, NumberBlock, SignedBlock};
use anjian_core::rules::EnforcementCertificate;
use anjian_core::signing::{KeyId, Signer};
use anjian_core::{Case, WritKind};
use chrono::{Datelike, NaiveDate, Utc};

use super::Storage;
use crate::error::{AppError, AppResult};
use crate::users::User;

/// Numbers in a block allocated to a device.
pub const BLOCK_SIZE: u32 = 20;

/// Blocks of one kind one account may hold in a year when it takes its numbers in blocks
/// alone (`MAX_NUMBERS_PER_YEAR`).
pub const MAX_BLOCKS_PER_YEAR: i64 = 50;

/// Numbers of one kind one account may take in a year, whatever devices and keys it signed
/// in with (each sign-in may register a new key), in its devices' blocks and one at a time
/// for the documents it sealed with a provisional number: beyond them it asks for more
/// than any inspector issues, and is refused. The numbers are its department's, one
/// sequence: counted per key, or per block, an account signing in again and again under
/// new keys, or sealing provisionally again and again, could take them by the thousand.
pub const MAX_NUMBERS_PER_YEAR: i64 = MAX_BLOCKS_PER_YEAR * BLOCK_SIZE as i64;

impl Storage {
    /// Records `username`'s enforcement certificate (执法证): its number and the last day
    /// it is valid (a renewed one replaces the old).
    pub fn set_enforcement_certificate(
        &self,
        username: &str,
        number: &str,
        valid_until: NaiveDate,
    ) -> AppResult<()> {
        let number = number.trim();
        if number.is_empty() {
            return Err(AppError::BadRequest(
                "执法证号不能为空 (a certificate number)".into(),
            ));
        }
        let user = self.user(username)?;
        self.write(|conn| {
            let taken: Option<String> = conn.query_opt(
                "SELECT u.username FROM enforcement_certificates c JOIN users u ON u.id = c.user_id
                     WHERE c.number = ?1 AND c.user_id <> ?2",
                params![number, user.id],
                |r| r.get(0),
            )?;
            if let Some(other) = taken {
                return Err(AppError::Conflict(format!(
                    "执法证号 {number} 已登记给 {other} (the number is another user's)"
                )));
            }
            conn.execute(
                "INSERT INTO enforcement_certificates (user_id, number, valid_until, recorded_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id) DO UPDATE SET number = excluded.number,
                    valid_until = excluded.valid_until, recorded_at = excluded.recorded_at",
                params![
                    user.id,
                    number,
                    valid_until.to_string(),
                    Utc::now().to_rfc3339()
                ],
            )?;
            Ok(())
        })
    }

    /// The enforcement certificate on record for `username`.
    pub fn enforcement_certificate(
        &self,
        username: &str,
    ) -> AppResult<Option<EnforcementCertificate>> {
        let row: Option<(String, String)> = self.read(|conn| {
            conn.query_opt(
                "SELECT c.number, c.valid_until FROM enforcement_certificates c
                     JOIN users u ON u.id = c.user_id WHERE u.username = ?1",
                params![username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })?;
        row.map(|(number, valid_until)| {
            Ok(EnforcementCertificate {
                number,
                valid_until: valid_until
                    .parse()
                    .map_err(|e| AppError::Internal(format!("a certificate's validity: {e}")))?,
            })
        })
        .transpose()
    }

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
            conn.transaction(|tx| {
                let registered: Option<i64> = tx
                    .query_opt(
                        "SELECT 1 FROM device_keys k JOIN devices d ON d.actor_id = k.actor_id
                         WHERE k.key_id = ?1 AND k.actor_id = ?2 AND d.user_id = ?3 AND d.revoked_at IS NULL",
                        params![key.as_slice(), actor, user.id],
                        |r| r.get(0),
                    )?;
                if registered.is_none() {
                    return Err(AppError::Forbidden(
                        "该密钥不是本设备登记的签名密钥 (the key is not one this device registered; sign in again)".into(),
                    ));
                }
                // A kind the account took its year's numbers of is left out; the others
                // are allocated (refused only when every kind asked for is left out).
                let mut blocks = Vec::new();
                let mut spent = None;
                for &kind in kinds {
                    match within_the_year_s_numbers(tx, user.id, kind, year, BLOCK_SIZE) {
                        Err(AppError::Conflict(why)) => {
                            spent = Some(why);
                            continue;
                        }
                        checked => checked?,
                    }
                    let place = Place {
                        prefix: &prefix,
                        kind,
                        year,
                    };
                    let block =
                        self.allocate(tx, &place, BLOCK_SIZE, user.id, actor, *key)?;
                    blocks.push(block.encode());
                }
                match spent {
                    Some(why) if blocks.is_empty() => Err(AppError::Conflict(why)),
                    _ => Ok(blocks),
                }
            })
        })
    }

    /// Allocates one number for a document of `kind` sealed with a provisional number by
    /// `sealer` (the numbers of whose district and department it takes, as their device's
    /// blocks do), bound to the server's own key, written by the server-side actor `actor`.
    pub fn allocate_server_number(
        &self,
        sealer: &User,
        actor: &str,
        kind: WritKind,
    ) -> AppResult<SignedBlock> {
        let prefix = numbering::prefix(&sealer.district, &sealer.department);
        let year = crate::queries::china_now().year();
        let key = self.server_key().public_key().id();
        self.write(|conn| {
            conn.transaction(|tx| {
                within_the_year_s_numbers(tx, sealer.id, kind, year, 1)?;
                let place = Place {
                    prefix: &prefix,
                    kind,
                    year,
                };
                let block = self.allocate(tx, &place, 1, sealer.id, actor, key)?;
                Ok(block)
            })
        })
    }

    fn allocate(
        &self,
        tx: &mut dyn Conn,
        place: &Place<'_>,
        size: u32,
        user_id: i64,
        actor: &str,
        key: KeyId,
    ) -> AppResult<SignedBlock> {
        let Place { prefix, kind, year } = *place;
        // One statement takes the numbers and moves the sequence on (the row locked while
        // it does), so that connections and server processes allocating at once never
        // take the same numbers.
        let next: u32 = tx.query_row(
            "INSERT INTO number_sequences (prefix, kind, year, next) VALUES (?1, ?2, ?3, 1 + ?4)
             ON CONFLICT (prefix, kind, year) DO UPDATE SET next = number_sequences.next + ?4
             RETURNING next",
            params![prefix, kind.code(), year, size],
            |r| r.get(0),
        )?;
        let first = next - size;
        let last = next - 1;
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

/// Whether a document of another case than `case` holds `number`, in the register as
/// `conn` reads it: the rule book's check (`Records::number_elsewhere`), and the commit's.
pub(super) fn number_elsewhere(conn: &mut dyn Conn, number: &str, case: &str) -> AppResult<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM writs WHERE number = ?1 AND case_id <> ?2)",
        params![number, case],
        |r| r.get(0),
    )
}

/// Fails a commit as stale when a number in force of its case (`key`), one the register
/// does not hold for the case yet, is held by another case's document. The rule book reads
/// the register as last committed, so two connections sending one number in two cases at
/// once would both pass it; commits run one at a time, so this check, inside the commit's
/// transaction, sees every commit before it. Judged again, the change is refused for the
/// number by the rule book. `new`: the case is stored for the first time (the register
/// holds nothing of it).
pub(super) fn numbers_still_free(
    tx: &mut dyn Conn,
    key: &str,
    case: &Case,
    new: bool,
) -> AppResult<()> {
    let mut numbers = case
        .writs
        .iter()
        .filter(|w| !w.provisional())
        .filter_map(|w| w.number())
        .peekable();
    if numbers.peek().is_none() {
        return Ok(());
    }
    let recorded: HashSet<String> = if new {
        HashSet::new()
    } else {
        tx.query_map(
            "SELECT number FROM writs WHERE case_id = ?1 AND number IS NOT NULL",
            params![key],
            |r| r.get(0),
        )?
        .into_iter()
        .collect()
    };
    for number in numbers.filter(|n| !recorded.contains(*n)) {
        if number_elsewhere(tx, number, key)? {
            return Err(AppError::Stale(format!(
                "文书编号 {number} 刚由另一案件使用，请重试 (another case took the number meanwhile; try again)"
            )));
        }
    }
    Ok(())
}

/// Refuses `more` numbers of `kind` in `year` to the account `user_id` if they would take
/// it past `MAX_NUMBERS_PER_YEAR`.
fn within_the_year_s_numbers(
    tx: &mut dyn Conn,
    user_id: i64,
    kind: WritKind,
    year: i32,
    more: u32,
) -> AppResult<()> {
    // Two requests at once must not both see room for one more block.
    super::lock_account(tx, user_id)?;
    let taken: i64 = tx.query_row(
        "SELECT coalesce(sum(last - first + 1), 0) FROM number_blocks
         WHERE user_id = ?1 AND kind = ?2 AND year = ?3",
        params![user_id, kind.code(), year],
        |r| r.get(0),
    )?;
    if taken + i64::from(more) > MAX_NUMBERS_PER_YEAR {
        return Err(AppError::Conflict(format!(
            "本账号今年已领取 {taken} 个{}编号 (this account took the most numbers of a kind a year allows)",
            kind.label()
        )));
    }
    Ok(())
}

/// Where a number is allocated: the department's prefix, the kind and the year.
#[derive(Clone, Copy)]
struct Place<'a> {
    prefix: &'a str,
    kind: WritKind,
    year: i32,
}
