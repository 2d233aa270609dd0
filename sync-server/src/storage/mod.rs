//! The server's storage: accounts, devices, tokens, case documents with their catalog
//! sequence, visibility, receipts and projections, on SQLite (the embedded default: one
//! writer connection and a reader for each read and apply thread and some more, side by
//! side in WAL, every write committed with `synchronous=FULL`) or on PostgreSQL (a pool
//! of as many connections, shared by any number of server processes; decision 0005). Every query is written once, through `db::Conn`;
//! every write is one transaction, durable before anything acknowledges it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use anjian_core::rules::{Author, CaseState, Refusal};
use anjian_core::signing::{ChangeSignature, KeyAlgorithm, KeyId, PublicKey, SoftwareKey};
use anjian_core::sync::{CatalogEntry, CatalogPage, DocumentId, RevokedDevice};
use anjian_core::{CaseId, DistrictCode, Role};
use automerge::{AutoCommit, ChangeHash};
use chrono::Utc;
use rusqlite::Connection;

use crate::db::{self, Conn, Dialect, Row, Value, params, row};

use crate::error::{AppError, AppResult};
use crate::users::User;

/// The tokens that still sign their holder in, as SQL after `SELECT …`: the token `?1`
/// joined with its account `u` and device `d`, neither it, its device nor its account
/// revoked, and not expired at `?2` (unix seconds). One definition for checking a token
/// and for checking it again when the changes it brought commit.
macro_rules! good_token {
    () => {
        "FROM tokens t JOIN users u ON u.id = t.user_id JOIN devices d ON d.actor_id = t.actor_id
         WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND d.revoked_at IS NULL
           AND u.disabled = 0 AND t.expires_at > ?2"
    };
}

mod accounts;
mod numbers;
mod projections;
mod uploads;

pub use accounts::{KEYS_PER_DEVICE, TOKEN_ID_LEN, TOKENS_PER_DEVICE, prepare_sign_in};
pub use numbers::{MAX_BLOCKS_PER_YEAR, MAX_NUMBERS_PER_YEAR};
pub(crate) use projections::FOUND;
use projections::write_projections;
pub use projections::{Projection, TALLIED_POST_CHARS};
pub use uploads::Staged;

macro_rules! migrations {
    ($dir:literal) => {
        &[
            include_str!(concat!($dir, "001_server.sql")),
            include_str!(concat!($dir, "002_blobs.sql")),
            include_str!(concat!($dir, "003_supervisors.sql")),
            include_str!(concat!($dir, "004_trust.sql")),
            include_str!(concat!($dir, "005_device_keys.sql")),
            include_str!(concat!($dir, "006_certificates.sql")),
            include_str!(concat!($dir, "007_follow_up.sql")),
            include_str!(concat!($dir, "008_writs.sql")),
            include_str!(concat!($dir, "009_number_blocks.sql")),
            include_str!(concat!($dir, "010_upload_parts.sql")),
            include_str!(concat!($dir, "011_sign_in.sql")),
            include_str!(concat!($dir, "012_city_scale.sql")),
            include_str!(concat!($dir, "013_tallies.sql")),
            include_str!(concat!($dir, "014_china_days.sql")),
            include_str!(concat!($dir, "015_uploads_per_user.sql")),
            include_str!(concat!($dir, "016_number_blocks_by_user.sql")),
            include_str!(concat!($dir, "017_signature_images.sql")),
            include_str!(concat!($dir, "018_blob_refs_of_changes.sql")),
            include_str!(concat!($dir, "019_refusals_by_account.sql")),
            include_str!(concat!($dir, "020_blobs_by_uploader.sql")),
            include_str!(concat!($dir, "021_receipts_in_order.sql")),
            include_str!(concat!($dir, "022_tallied_posts_cut.sql")),
            include_str!(concat!($dir, "023_receipts_by_sender.sql")),
            include_str!(concat!($dir, "024_enabled_at.sql")),
        ]
    };
}
/// The schema's steps, one list per engine, each step the same in both.
const SQLITE_MIGRATIONS: &[&str] = migrations!("../../migrations/");
const POSTGRES_MIGRATIONS: &[&str] = migrations!("../../migrations/postgres/");
/// Fold a document's chunks into a new snapshot after this many.
const COMPACT_AFTER_CHUNKS: i64 = 64;

/// Where the server keeps its data: a SQLite file (the embedded default) or a PostgreSQL
/// database that any number of server processes share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://user@host:port/database`).
    Postgres(String),
}

impl Database {
    /// `postgres://…` or `postgresql://…` names PostgreSQL; anything else is a SQLite
    /// file's path.
    pub fn parse(location: &str) -> Database {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Database::Postgres(location.to_owned())
        } else {
            Database::Sqlite(PathBuf::from(location))
        }
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            // Never the password.
            Database::Postgres(url) => match url.split_once('@') {
                Some((_, host)) => write!(f, "postgres://…@{host}"),
                None => f.write_str(url),
            },
        }
    }
}

/// Connections a server process keeps open to PostgreSQL at most, unless its threads
/// need more (`Storage::open_for`).
const POSTGRES_POOL: usize = 16;

/// Reader connections a server process keeps to its SQLite file, unless its threads need
/// more (`Storage::open_for`): the read threads, the apply threads and the async workers'
/// small reads each take one, so that a long read holds one connection and the others go
/// on (WAL lets every reader work beside the writer).
const SQLITE_READERS: usize = 8;

/// Writes run at once off the async workers (`AppState::writing`: a number block, a part
/// of an upload), each holding a connection.
pub const WRITES_AT_ONCE: usize = 2;

/// Connections kept beyond one for each read and apply thread: the writer's, those of the
/// writes off the async workers, and some more, so that the async workers' small reads (a
/// token, a session, a blob's visibility) never wait for a connection that every busy
/// thread holds, or the async side stalls with them.
const CONNECTIONS_BESIDE_THREADS: usize = 1 + WRITES_AT_ONCE + 3;

enum Engine {
    /// One writer connection and its readers.
    Sqlite {
        writer: Mutex<Connection>,
        readers: Readers,
    },
    Postgres(crate::db::postgres::Pool),
}

/// Idle reader connections to a SQLite file.
struct Readers {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

/// A reader lent out; it goes back when dropped, even if its user panicked.
struct Lent<'a> {
    readers: &'a Readers,
    conn: Option<Connection>,
}

impl Readers {
    /// Runs `f` with an idle reader, waiting for one when all are in use.
    fn with<T>(&self, f: impl FnOnce(&mut dyn Conn) -> AppResult<T>) -> AppResult<T> {
        let poisoned = |_| AppError::Internal("storage readers poisoned".into());
        let mut idle = self.idle.lock().map_err(poisoned)?;
        let conn = loop {
            if let Some(conn) = idle.pop() {
                break conn;
            }
            idle = self.returned.wait(idle).map_err(poisoned)?;
        };
        drop(idle);
        let mut lent = Lent {
            readers: self,
            conn: Some(conn),
        };
        match lent.conn.as_mut() {
            Some(conn) => f(conn),
            None => Err(AppError::Internal(
                "a reader lent without its connection".into(),
            )),
        }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.readers.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.push(conn);
            self.readers.returned.notify_one();
        }
    }
}

impl Engine {
    fn sqlite(path: &Path, readers: usize) -> AppResult<Engine> {
        let writer = crate::db::sqlite::open(path)?;
        writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
        writer.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )?;
        // The reader opens after the writer has made the file.
        let reader = || -> AppResult<Connection> {
            let reader = crate::db::sqlite::open(path)?;
            reader.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")?;
            Ok(reader)
        };
        let readers = (0..readers)
            .map(|_| reader())
            .collect::<AppResult<Vec<_>>>()?;
        Ok(Engine::Sqlite {
            writer: Mutex::new(writer),
            readers: Readers {
                idle: Mutex::new(readers),
                returned: Condvar::new(),
            },
        })
    }

    fn write<T>(&self, f: impl FnOnce(&mut dyn Conn) -> AppResult<T>) -> AppResult<T> {
        match self {
            Engine::Sqlite { writer, .. } => {
                let mut conn = writer
                    .lock()
                    .map_err(|_| AppError::Internal("storage writer poisoned".into()))?;
                f(&mut *conn)
            }
            Engine::Postgres(pool) => pool.with(|conn| f(conn)),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&mut dyn Conn) -> AppResult<T>) -> AppResult<T> {
        match self {
            Engine::Sqlite { readers, .. } => readers.with(f),
            Engine::Postgres(pool) => pool.with(|conn| f(conn)),
        }
    }
}

/// Brings the schema up to date, one numbered step per transaction.
fn migrate(conn: &mut dyn Conn, location: &Database) -> AppResult<()> {
    let steps = match conn.dialect() {
        Dialect::Sqlite => SQLITE_MIGRATIONS,
        Dialect::Postgres => POSTGRES_MIGRATIONS,
    };
    // Nodes starting together migrate one after the other.
    let (version_sql, set_version): (&str, fn(i64) -> String) = match conn.dialect() {
        Dialect::Sqlite => ("PRAGMA user_version", |v| {
            format!("PRAGMA user_version = {v}")
        }),
        Dialect::Postgres => {
            conn.batch(
                "SELECT pg_advisory_lock(7268501); \
                 CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL); \
                 INSERT INTO schema_version SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version)",
            )?;
            ("SELECT version FROM schema_version", |v| {
                format!("UPDATE schema_version SET version = {v}")
            })
        }
    };
    let result = (|| {
        let version: i64 = conn.query_row(version_sql, params![], |r| r.get(0))?;
        if version > steps.len() as i64 {
            return Err(AppError::Internal(format!(
                "{location} was written by a newer server (version {version}); upgrade the server"
            )));
        }
        for (i, sql) in steps.iter().enumerate().skip(version as usize) {
            conn.transaction(|tx| {
                tx.batch(sql)?;
                tx.batch(&set_version(i as i64 + 1))
            })?;
        }
        Ok(())
    })();
    if conn.dialect() == Dialect::Postgres {
        conn.batch("SELECT pg_advisory_unlock(7268501)")?;
    }
    result
}

/// The value of `key` in `meta`, made by `new` and kept the first time.
fn meta_or(conn: &mut dyn Conn, key: &str, new: fn() -> String) -> AppResult<String> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        params![key, new()],
    )?;
    conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
        r.get(0)
    })
}

fn new_storage_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The channel on which every commit to a PostgreSQL database is announced to the server
/// processes sharing it (payload: the committing process, the catalog sequence number,
/// the case).
pub const COMMITS_CHANNEL: &str = "anjian_commits";

/// The server's database.
pub struct Storage {
    engine: Engine,
    /// This process among those sharing the database (random, for this run).
    node: String,
    storage_id: String,
    /// The server's own secret (server actors are derived from it); never sent anywhere.
    secret: Vec<u8>,
    /// The server's signing key (certificates, receipts), derived from the secret.
    key: SoftwareKey,
    /// The devices the catalog lists as revoked, as of a count of revocations
    /// (`revoked_devices`).
    revoked: Mutex<Option<(i64, std::sync::Arc<[RevokedDevice]>)>>,
}

/// What the server signed about some cases (`Storage::proofs`).
#[derive(Debug, Default)]
pub struct Proofs {
    /// Certificates of the devices and server-side actors that wrote in them (CBOR).
    pub certificates: Vec<Vec<u8>>,
    /// The receipts of each case's changes, and whether it has more than these.
    pub receipts: Vec<(CaseId, Vec<anjian_core::certificate::Receipt>, bool)>,
}

/// One change received, for its receipt.
pub struct Receipt {
    /// The server's signed receipt (hash, actor, time received), made where the change
    /// was judged: the one writer thread only stores it.
    pub signed: anjian_core::certificate::Receipt,
    /// Device time (seconds).
    pub device_time: i64,
    /// The account that wrote the change (for a relayed change, not the sender's).
    pub author: i64,
    /// The change's signature, when it came with one.
    pub signature: Option<ChangeSignature>,
}

/// A refusal to keep: the refused change (hex hash), the actor (hex) that made it, and why.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The change's hash, hex.
    pub hash: String,
    /// The actor that made it, hex.
    pub actor: String,
    /// Why it was refused.
    pub refusal: Refusal,
}

/// A key a device registered, as the server keeps it.
#[derive(Debug, Clone)]
pub struct DeviceKey {
    /// The device (actor id, hex).
    pub actor: String,
    /// The account the device is bound to.
    pub user_id: i64,
    /// The key.
    pub key: PublicKey,
    /// Whether the device was revoked.
    pub revoked: bool,
}

/// What committing new changes of a case writes.
pub struct Commit {
    /// The case.
    pub case_id: CaseId,
    /// The changes' bytes (incremental save), or the whole document for a new case.
    pub bytes: Vec<u8>,
    /// Whether the case is new on the server.
    pub new: bool,
    /// Heads after the changes (hex, sorted).
    pub heads: Vec<String>,
    /// Heads of the stored document the changes were judged against (hex, sorted; empty
    /// for a new case): when another server process committed changes of the case since,
    /// the commit fails as `Stale` and writes nothing.
    pub base: Vec<String>,
    /// What the queries read of the case as it now is.
    pub projection: Projection,
    /// Who sent the changes.
    pub user_id: i64,
    /// The token (its hash) the changes came with over sync: the commit writes nothing
    /// unless the token is still good (neither it, its device nor its account revoked,
    /// not expired), checked in its own transaction, so that nothing reaches the record
    /// once a revocation has committed. `None` for changes made on the server.
    pub token_hash: Option<String>,
    /// The changes, for receipts.
    pub receipts: Vec<Receipt>,
}

impl Storage {
    /// Opens (or creates) the database at `location`, bringing its schema up to date.
    pub fn open(location: &Database) -> AppResult<Storage> {
        Storage::open_for(location, 0)
    }

    /// `open`, for a server process with `threads` read and apply threads: it keeps a
    /// connection for each and `CONNECTIONS_BESIDE_THREADS` more.
    pub fn open_for(location: &Database, threads: usize) -> AppResult<Storage> {
        let wanted = threads + CONNECTIONS_BESIDE_THREADS;
        let engine = match location {
            Database::Sqlite(path) => Engine::sqlite(path, wanted.max(SQLITE_READERS))?,
            Database::Postgres(url) => Engine::Postgres(crate::db::postgres::Pool::open(
                url,
                wanted.max(POSTGRES_POOL),
            )?),
        };
        engine.write(|conn| migrate(conn, location))?;
        let (storage_id, secret) = engine.write(|conn| {
            conn.transaction(|tx| {
                Ok((
                    meta_or(tx, "storage_id", new_storage_id)?,
                    meta_or(tx, "server_secret", new_secret)?,
                ))
            })
        })?;
        let secret = hex::decode(&secret)
            .map_err(|e| AppError::Internal(format!("the server secret is damaged: {e}")))?;
        let key = server_key(&secret);
        let storage = Storage {
            engine,
            node: hex::encode(rand::random::<[u8; 8]>()),
            storage_id,
            secret,
            key,
            revoked: Mutex::new(None),
        };
        if storage.pending("server_actors_repair")? {
            storage.repair_server_actors()?;
        }
        // A step that adds projections leaves a flag until they are filled from the
        // documents, so that a crash during the rebuild resumes it on the next start.
        if storage.pending("reproject_pending")? {
            storage.rebuild_projections()?;
            storage.done("reproject_pending")?;
        }
        // A step that adds tallies leaves a flag until they are counted from the
        // projections, in one transaction, after any rebuild above (which starts from
        // tallies that may not match the rows yet).
        if storage.pending("retally_pending")? {
            storage.recount_tallies()?;
            storage.done("retally_pending")?;
            tracing::info!("tallies counted from the projections");
        }
        Ok(storage)
    }

    /// Whether a migration left the flag `key` for work still to do.
    fn pending(&self, key: &str) -> AppResult<bool> {
        self.read(|conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?1)",
                params![key],
                |r| r.get(0),
            )
        })
    }

    /// Clears the flag `key` once its work is done.
    fn done(&self, key: &str) -> AppResult<()> {
        self.write(|conn| {
            conn.execute("DELETE FROM meta WHERE key = ?1", params![key])?;
            Ok(())
        })
    }

    /// Counts every case's projection rows into the bulletins' tallies afresh, in one
    /// transaction (what each commit keeps up to date as it writes the projections).
    pub fn recount_tallies(&self) -> AppResult<()> {
        self.write(|conn| conn.transaction(projections::recount_tallies))
    }

    /// A stable id of this server's storage (sent to automerge-repo peers).
    pub fn storage_id(&self) -> &str {
        &self.storage_id
    }

    /// The server's own secret.
    fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The key the server signs device certificates and receipts with (Ed25519). Its public
    /// half goes to every device at sign-in.
    pub fn server_key(&self) -> &SoftwareKey {
        &self.key
    }

    /// Runs `f` with a connection that may write (it opens its own transactions).
    pub fn write<T>(&self, f: impl FnOnce(&mut dyn Conn) -> AppResult<T>) -> AppResult<T> {
        self.engine.write(f)
    }

    /// Runs `f` with a connection for reading.
    pub fn read<T>(&self, f: impl FnOnce(&mut dyn Conn) -> AppResult<T>) -> AppResult<T> {
        self.engine.read(f)
    }

    /// The SQL the database reads.
    pub fn dialect(&self) -> Dialect {
        match self.engine {
            Engine::Sqlite { .. } => Dialect::Sqlite,
            Engine::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Loads a case document; `None` if the server does not have it. The connection goes
    /// back once the stored bytes are read, before Automerge reads them.
    pub fn load_document(&self, case: CaseId) -> AppResult<Option<AutoCommit>> {
        let pieces = self.read(|conn| pieces(conn, case, true))?;
        assemble(case, pieces)
    }

    /// Commits new changes of several cases, each with everything derived from it, in one
    /// transaction (one fsync for all of them); each commit gets its own result, and one
    /// that fails changes nothing of its own. Returns, per commit, the number of chunks its
    /// document now has (compact it when there are many).
    ///
    /// The batch is written whole first. Only when a commit of it fails is it written
    /// again with each commit in a savepoint of its own: a savepoint makes SQLite copy
    /// every page a commit touches before changing it, and PostgreSQL open a
    /// subtransaction, two more statements each, for what almost never happens.
    pub fn commit_batch(&self, commits: &[Commit]) -> Vec<AppResult<i64>> {
        let whole = self.write(|conn| {
            conn.transaction(|tx| {
                lock_commits(tx)?;
                commits
                    .iter()
                    .map(|commit| apply_commit(tx, commit, &self.node))
                    .collect::<AppResult<Vec<i64>>>()
            })
        });
        if let Ok(chunks) = whole {
            return chunks.into_iter().map(Ok).collect();
        }
        let outcome = self.write(|conn| {
            conn.transaction(|tx| {
                lock_commits(tx)?;
                let mut results = Vec::with_capacity(commits.len());
                for commit in commits {
                    // A commit that fails is rolled back to its savepoint, and only it.
                    results.push(tx.savepoint(|one| apply_commit(one, commit, &self.node)));
                }
                Ok(results)
            })
        });
        match outcome {
            Ok(results) => results,
            Err(e) => commits
                .iter()
                .map(|_| Err(AppError::Internal(e.to_string())))
                .collect(),
        }
    }

    /// Replaces a document's snapshot and chunks with one snapshot of the document at
    /// `heads`; does nothing when the stored document has moved on since (another server
    /// process committed changes of it).
    pub fn compact(&self, case: CaseId, snapshot: &[u8], heads: &[String]) -> AppResult<()> {
        self.write(|conn| {
            conn.transaction(|tx| {
                lock_commits(tx)?;
                let key = case.to_string();
                let stored: Option<String> = tx.query_opt(
                    "SELECT heads FROM documents WHERE case_id = ?1",
                    params![&key],
                    |r| r.get(0),
                )?;
                if stored.as_deref() != Some(heads.join(",").as_str()) {
                    return Ok(());
                }
                tx.execute(
                    "UPDATE documents SET snapshot = ?2 WHERE case_id = ?1",
                    params![&key, snapshot],
                )?;
                tx.execute("DELETE FROM chunks WHERE case_id = ?1", params![&key])?;
                Ok(())
            })
        })
    }

    /// The heads of a stored document (hex, sorted), if the server has it.
    pub fn stored_heads(&self, case: CaseId) -> AppResult<Option<Vec<String>>> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT heads FROM documents WHERE case_id = ?1",
                params![case.to_string()],
                |r| Ok(split_heads(&r.get::<String>(0)?)),
            )
        })
    }

    /// A stored document as the server answers a peer from it without reading it into
    /// memory (`sync::document`): its heads, who may read it and, when `with_bytes`, its
    /// bytes (the snapshot and the chunks after it, which Automerge loads as one).
    pub fn stored_document(&self, case: CaseId, with_bytes: bool) -> AppResult<Option<Stored>> {
        self.read(|conn| stored_document(conn, case, with_bytes))
    }

    /// This process among those sharing the database.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The cases committed after the catalog sequence number `since`, with the number of
    /// their last commit, in order.
    pub fn committed_since(&self, since: i64) -> AppResult<Vec<(i64, CaseId)>> {
        self.read(|conn| {
            conn.query_map(
                "SELECT seq, case_id FROM documents WHERE seq > ?1 ORDER BY seq",
                params![since],
                |r| Ok((r.get(0)?, r.get::<String>(1)?.parse()?)),
            )
        })
    }

    /// The catalog sequence number of the last commit.
    pub fn last_commit(&self) -> AppResult<i64> {
        self.read(|conn| {
            conn.query_row(
                "SELECT coalesce(max(seq), 0) FROM documents",
                params![],
                |r| r.get(0),
            )
        })
    }

    /// Whether other server processes may share the database (PostgreSQL): documents
    /// held in memory must then be checked against the stored ones.
    pub fn shared(&self) -> bool {
        self.dialect() == Dialect::Postgres
    }

    /// Whether a document has piled up enough chunks to compact.
    pub fn should_compact(chunks: i64) -> bool {
        chunks >= COMPACT_AFTER_CHUNKS
    }

    /// Recomputes every projection from the documents (after a migration that adds one).
    fn rebuild_projections(&self) -> AppResult<()> {
        let cases: Vec<String> = self.read(|conn| {
            conn.query_map("SELECT case_id FROM documents", params![], |r| r.get(0))
        })?;
        for case in cases {
            let id: CaseId = case.parse()?;
            let Some(doc) = self.load_document(id)? else {
                continue;
            };
            let state = CaseState::of_stored(&doc)
                .map_err(|e| AppError::Internal(format!("stored case {id}: {e}")))?;
            let projection = Projection::of(&doc, &state)?;
            self.write(|conn| {
                conn.transaction(|tx| {
                    write_projections(tx, &case, &projection, false, false)?;
                    Ok(())
                })
            })?;
        }
        tracing::info!("projections rebuilt from the documents");
        Ok(())
    }

    /// The documents `user` may see that changed after `since`, oldest change first, with
    /// their heads, and the cursor to pass next time: at most `limit` of them (at least
    /// one), the page cut short after the last it lists (`more`).
    pub fn catalog(&self, user: &User, since: i64, limit: usize) -> AppResult<CatalogPage> {
        // At least one document, and one more than the page still a number SQL takes.
        let limit = limit.clamp(1, i64::MAX as usize - 1);
        self.read(|conn| {
            let top: i64 = conn.query_row(
                "SELECT coalesce(max(seq), 0) FROM documents",
                params![],
                |r| r.get(0),
            )?;
            let (readable, mut values) = crate::policy::readable(user, "d.case_id");
            values.splice(0..0, [db::value(since), db::value(top)]);
            // One more than the page holds tells whether the page is cut short.
            values.push(db::value(limit as i64 + 1));
            let rows = conn.query(
                &format!(
                    "SELECT d.case_id, d.heads, d.seq FROM documents d
                     WHERE d.seq > ? AND d.seq <= ? AND {readable} ORDER BY d.seq LIMIT ?"
                ),
                &values,
            )?;
            let more = rows.len() > limit;
            // A page cut short ends at its last document; a whole one at the last commit.
            let cursor = match more {
                true => rows[limit - 1].get(2)?,
                false => top,
            };
            let mut documents = Vec::with_capacity(rows.len().min(limit));
            for row in rows.into_iter().take(limit) {
                let case: CaseId = row.get::<String>(0)?.parse()?;
                let heads = split_heads(&row.get::<String>(1)?);
                documents.push(CatalogEntry {
                    document_id: DocumentId::of(case).to_string(),
                    heads,
                });
            }
            Ok(CatalogPage {
                cursor,
                documents,
                more,
                revoked: self.revoked_devices(conn)?.to_vec(),
            })
        })
    }

    /// The key `id` and the device that registered it.
    pub fn device_key(&self, id: &KeyId) -> AppResult<Option<DeviceKey>> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT k.actor_id, d.user_id, k.algorithm, k.public_key, d.revoked_at IS NOT NULL
                 FROM device_keys k JOIN devices d ON d.actor_id = k.actor_id
                 WHERE k.key_id = ?1",
                params![id.as_slice()],
                |r| {
                    let algorithm: String = r.get(2)?;
                    let key = PublicKey::new(algorithm.parse()?, r.get(3)?)
                        .map_err(|e| AppError::Internal(format!("a stored device key: {e}")))?;
                    Ok(DeviceKey {
                        actor: r.get(0)?,
                        user_id: r.get(1)?,
                        key,
                        revoked: r.get(4)?,
                    })
                },
            )
        })
    }

    /// Whether `user` may read `case` by the stored projection (the rule book's `may_read`
    /// over the owner and the districts the case is shared with): a check before the
    /// document is read. `false` when the server has no such case.
    pub fn may_read(&self, user: &User, case: CaseId) -> AppResult<bool> {
        self.read(|conn| sees(conn, user, &case.to_string()))
    }

    /// What the server signed about the cases of `asked` that `user` may sync (the others
    /// are left out, as if they did not exist): the server's receipts of each case's
    /// changes, in the order of `received_at` then `change_hash`, from after the place
    /// asked (`(received_at, change_hash)`), at most `most` in all; and the certificates of
    /// every device and server-side actor that wrote one of those, each once. A case cut
    /// short says so.
    pub fn proofs(
        &self,
        user: &User,
        asked: &[(CaseId, Option<(String, String)>)],
        most: usize,
    ) -> AppResult<Proofs> {
        self.read(|conn| {
            let mut proofs = Proofs::default();
            let mut writers = std::collections::BTreeSet::new();
            let mut left = most;
            for (case, after) in asked {
                let key = case.to_string();
                if !sees(conn, user, &key)? {
                    continue;
                }
                let (since, past) = after.clone().unwrap_or_default();
                let mut of_case = conn.query_map(
                    "SELECT change_hash, actor_id, received_at, receipt_issuer, receipt_signature
                     FROM receipts WHERE case_id = ?1 AND receipt_signature IS NOT NULL
                       AND (received_at > ?2 OR (received_at = ?2 AND change_hash > ?3))
                     ORDER BY received_at, change_hash LIMIT ?4",
                    params![&key, since, past, (left + 1) as i64],
                    |r| {
                        let hash: String = r.get(0)?;
                        let issuer: Vec<u8> = r.get(3)?;
                        anjian_core::certificate::Receipt::from_stored(
                            &hash,
                            r.get(1)?,
                            r.get(2)?,
                            &issuer,
                            r.get(4)?,
                        )
                        .ok_or_else(|| AppError::Internal(format!("the stored receipt of {hash}")))
                    },
                )?;
                let more = of_case.len() > left;
                of_case.truncate(left);
                left -= of_case.len();
                writers.extend(of_case.iter().map(|r| r.actor.clone()));
                proofs.receipts.push((*case, of_case, more));
            }
            for actor in writers {
                proofs.certificates.extend(conn.query_map(
                    "SELECT bytes FROM certificates WHERE actor_id = ?1 ORDER BY id",
                    params![&actor],
                    |r| r.get::<Vec<u8>>(0),
                )?);
            }
            Ok(proofs)
        })
    }

    /// The account `user_id` as the rule book knows it, unless disabled.
    pub fn author(&self, user_id: i64) -> AppResult<Option<Author>> {
        self.read(|conn| {
            let user = conn
                .query_opt(
                    "SELECT id, username, name, role, district, department, disabled FROM users WHERE id = ?1",
                    params![user_id],
                    user_row,
                )?;
            Ok(user
                .filter(|u| !u.disabled)
                .map(|u| crate::policy::author(&u)))
        })
    }

    /// The signatures the server received of the changes `hashes` (those without one are
    /// left out).
    pub fn signatures_of(&self, hashes: &[ChangeHash]) -> AppResult<Vec<ChangeSignature>> {
        self.read(|conn| {
            let mut found = Vec::new();
            for hash in hashes {
                let row: Option<(Vec<u8>, Vec<u8>)> = conn.query_opt(
                    "SELECT key_id, signature FROM receipts WHERE change_hash = ?1 AND signature IS NOT NULL",
                    params![hash.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if let Some((key, signature)) = row {
                    found.push(
                        ChangeSignature::from_stored(*hash, &key, &signature).ok_or_else(
                            || AppError::Internal(format!("the signature of {hash}")),
                        )?,
                    );
                }
            }
            Ok(found)
        })
    }

    /// Why each of `hashes` the server ever refused was refused, in one read.
    pub fn refused_before(&self, hashes: &[ChangeHash]) -> AppResult<HashMap<ChangeHash, Refusal>> {
        self.read(|conn| {
            let mut refused = HashMap::new();
            for hash in hashes {
                let row: Option<(String, String)> = conn.query_opt(
                    "SELECT rule, reason FROM refused_changes WHERE change_hash = ?1",
                    params![hash.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if let Some((rule, reason)) = row {
                    refused.insert(*hash, Refusal::new(rule.parse()?, reason));
                }
            }
            Ok(refused)
        })
    }

    /// Keeps refusals of changes of `case` (hex hashes, each with the actor that made it),
    /// so that they are final, each counted against the account of the device that made
    /// the change (revoked or not; `sender`, whose device carried it, when no account has
    /// that device). An account whose changes already have `bound` refusals kept has no
    /// more kept: those are refused all the same, and judged again should they come back.
    /// Answers how many were not kept. The bound is checked before the rows are written,
    /// not under one lock, so that messages judged at once may pass it by a message each.
    pub fn record_refusals(
        &self,
        case: CaseId,
        sender: i64,
        refused: &[Refused],
        bound: u64,
    ) -> AppResult<usize> {
        if refused.is_empty() {
            return Ok(0);
        }
        self.write(|conn| {
            conn.transaction(|tx| {
                // Whose each change is, and whether that account may have more kept.
                let mut accounts: HashMap<&str, (i64, bool)> = HashMap::new();
                let mut not_kept = 0;
                let now = Utc::now().to_rfc3339();
                for row in refused {
                    let (account, room) = match accounts.get(row.actor.as_str()) {
                        Some(known) => *known,
                        None => {
                            let owner: Option<i64> = tx.query_opt(
                                "SELECT user_id FROM devices WHERE actor_id = ?1",
                                params![row.actor.as_str()],
                                |r| r.get(0),
                            )?;
                            let account = owner.unwrap_or(sender);
                            // Counted only up to the bound: an account at it costs no more.
                            let kept: i64 = tx.query_row(
                                "SELECT count(*) FROM (SELECT 1 FROM refused_changes WHERE user_id = ?1 LIMIT ?2) AS kept",
                                params![account, bound as i64],
                                |r| r.get(0),
                            )?;
                            let known = (account, (kept as u64) < bound);
                            accounts.insert(&row.actor, known);
                            known
                        }
                    };
                    if !room {
                        not_kept += 1;
                        continue;
                    }
                    tx.execute(
                        "INSERT INTO refused_changes (change_hash, case_id, rule, reason, refused_at, user_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                        params![
                            row.hash.as_str(),
                            case.to_string(),
                            row.refusal.rule.code(),
                            &row.refusal.reason,
                            &now,
                            account
                        ],
                    )?;
                }
                Ok(not_kept)
            })
        })
    }

    /// Lets the account `username`'s devices have refusals kept again: those kept stay
    /// final, and count against no account. How many were cleared.
    pub fn clear_refusals(&self, username: &str) -> AppResult<u64> {
        let user = self.user(username)?;
        self.write(|conn| {
            conn.execute(
                "UPDATE refused_changes SET user_id = NULL WHERE user_id = ?1",
                params![user.id],
            )
        })
    }

    /// Whether a device (actor id) ever signed in, revoked or not.
    pub fn device_known(&self, actor: &str) -> AppResult<bool> {
        self.read(|conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM devices WHERE actor_id = ?1)",
                params![actor],
                |r| r.get(0),
            )
        })
    }

    /// Which user a device (actor id) is bound to, unless revoked.
    pub fn actor_owner(&self, actor: &str) -> AppResult<Option<i64>> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT user_id FROM devices WHERE actor_id = ?1 AND revoked_at IS NULL",
                params![actor],
                |r| r.get(0),
            )
        })
    }
}

/// Reads a user row (id, username, name, role, district, department, disabled).
pub fn user_row(r: &Row) -> AppResult<User> {
    let role: String = r.get(3)?;
    let district: String = r.get(4)?;
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        name: r.get(2)?,
        role: role.parse::<Role>()?,
        district: district
            .parse()
            .map_err(|e: anjian_core::Error| AppError::Internal(e.to_string()))?,
        department: r.get(5)?,
        disabled: r.get(6)?,
    })
}

/// The server's signing key, derived from its secret (so that it lives wherever the secret
/// does, and every server process sharing the database signs with the same key).
fn server_key(secret: &[u8]) -> SoftwareKey {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"anjian server key v1\n");
    hasher.update(secret);
    SoftwareKey::from_secret(KeyAlgorithm::Ed25519, hasher.finalize().into())
}

/// Holds account `user_id` for the rest of the transaction `tx`, so that what is counted
/// of it (its parked upload bytes, its numbers of the year) and then added to is not
/// counted by another transaction meanwhile. SQLite's write transaction already excludes
/// every other writer; PostgreSQL locks the account's row.
fn lock_account(tx: &mut dyn Conn, user_id: i64) -> AppResult<()> {
    if tx.dialect() == Dialect::Postgres {
        tx.execute(
            "SELECT 1 FROM users WHERE id = ?1 FOR UPDATE",
            params![user_id],
        )?;
    }
    Ok(())
}

/// A stored document, loaded from its snapshot and the chunks after it.
fn assemble(case: CaseId, pieces: Pieces) -> AppResult<Option<AutoCommit>> {
    let mut bytes = pieces.bytes.into_iter();
    let Some(snapshot) = bytes.next() else {
        return Ok(None);
    };
    let damaged =
        |what: String| AppError::Internal(format!("stored case {case} is damaged: {what}"));
    let mut doc = AutoCommit::load(&snapshot).map_err(|e| damaged(e.to_string()))?;
    for chunk in bytes {
        doc.load_incremental(&chunk)
            .map_err(|e| damaged(e.to_string()))?;
    }
    // Automerge loads what it can of a damaged chunk and says nothing: the heads written
    // with the document say whether everything came back, so that a case that loads short
    // is never served, judged or compacted as if it were whole.
    let mut stored = split_heads(pieces.heads.as_deref().unwrap_or_default());
    stored.sort();
    if stored != anjian_core::case_doc::sorted_heads(&mut doc) {
        return Err(damaged(
            "its stored changes no longer make the heads last committed".into(),
        ));
    }
    anjian_core::case_doc::forget_patches(&mut doc);
    Ok(Some(doc))
}

/// What is stored of a document, read in one statement so that all of it is of one
/// moment (a commit or a compaction elsewhere never falls between its parts).
struct Pieces {
    /// Its heads (hex, comma-separated); `None` if it is not stored.
    heads: Option<String>,
    /// The district that owns its case, from the projections.
    owner: Option<String>,
    /// The districts its case is visible to (the owner among them).
    shared: Vec<String>,
    /// Its snapshot, then the chunks after it in order (when asked for).
    bytes: Vec<Vec<u8>>,
}

/// The stored pieces of document `case`, its bytes only `with_bytes`.
fn pieces(conn: &mut dyn Conn, case: CaseId, with_bytes: bool) -> AppResult<Pieces> {
    let rows = conn.query_map(
        // The bytes come first in the statement (not in the rows): PostgreSQL types a
        // column of the union from its first parts, and a NULL there would make it text.
        "SELECT 3 AS part, 0 AS seq, NULL AS text, snapshot AS bytes FROM documents
             WHERE case_id = ?1 AND ?2 = 1
         UNION ALL SELECT 3, seq, NULL, bytes FROM chunks WHERE case_id = ?1 AND ?2 = 1
         UNION ALL SELECT 0, 0, heads, NULL FROM documents WHERE case_id = ?1
         UNION ALL SELECT 1, 0, district, NULL FROM cases WHERE case_id = ?1
         UNION ALL SELECT 2, 0, district, NULL FROM visibility WHERE case_id = ?1
         ORDER BY part, seq",
        params![case.to_string(), with_bytes],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<Option<String>>(2)?,
                r.get::<Option<Vec<u8>>>(3)?,
            ))
        },
    )?;
    let mut pieces = Pieces {
        heads: None,
        owner: None,
        shared: Vec::new(),
        bytes: Vec::new(),
    };
    for (part, text, bytes) in rows {
        match (part, text, bytes) {
            (0, heads, _) => pieces.heads = heads,
            (1, owner, _) => pieces.owner = owner,
            (2, Some(district), _) => pieces.shared.push(district),
            (_, _, Some(bytes)) => pieces.bytes.push(bytes),
            _ => {}
        }
    }
    Ok(pieces)
}

/// What `Storage::stored_document` reads of a document.
pub struct Stored {
    /// Its heads, sorted.
    pub heads: Vec<ChangeHash>,
    /// The district that owns the case.
    pub owner: DistrictCode,
    /// The districts it is shared with (the owner among them).
    pub shared: Vec<DistrictCode>,
    /// The snapshot and the chunks after it, one after the other (empty unless asked).
    pub bytes: Vec<u8>,
}

fn stored_document(
    conn: &mut dyn Conn,
    case: CaseId,
    with_bytes: bool,
) -> AppResult<Option<Stored>> {
    let Pieces {
        heads: Some(heads),
        owner: Some(owner),
        shared,
        bytes,
    } = pieces(conn, case, with_bytes)?
    else {
        return Ok(None);
    };
    let damaged = |what: &str| AppError::Internal(format!("stored case {case}: {what}"));
    let district = |code: String| -> AppResult<DistrictCode> {
        code.parse()
            .map_err(|_| damaged("a district is not a code"))
    };
    let mut heads = split_heads(&heads)
        .iter()
        .map(|h| {
            h.parse::<ChangeHash>()
                .map_err(|_| damaged("a head is not a hash"))
        })
        .collect::<AppResult<Vec<_>>>()?;
    heads.sort();
    Ok(Some(Stored {
        heads,
        owner: district(owner)?,
        shared: shared
            .into_iter()
            .map(district)
            .collect::<AppResult<Vec<_>>>()?,
        bytes: bytes.concat(),
    }))
}

/// Whether the server has the case `key` and `user` may read it (`policy::readable`).
fn sees(conn: &mut dyn Conn, user: &User, key: &str) -> AppResult<bool> {
    let (readable, mut values) = crate::policy::readable(user, "d.case_id");
    values.insert(0, db::value(key));
    conn.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM documents d WHERE d.case_id = ? AND {readable})"),
        &values,
        |r| r.get(0),
    )
}

/// Heads as stored (hex, comma-separated).
fn split_heads(heads: &str) -> Vec<String> {
    heads
        .split(',')
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Takes the lock every commit takes, inside its transaction, until it ends: commits (of
/// every server process sharing a PostgreSQL database) run one at a time, so that the
/// catalog's sequence numbers are given and become visible in order, and a commit sees
/// every commit before it. SQLite has one writer and needs none.
fn lock_commits(tx: &mut dyn Conn) -> AppResult<()> {
    match tx.dialect() {
        Dialect::Sqlite => Ok(()),
        Dialect::Postgres => tx.batch("SELECT pg_advisory_xact_lock(7268502)"),
    }
}

/// Writes one commit (see `Commit`) inside an open transaction that holds the commit lock;
/// on PostgreSQL, the other server processes hear of it when it commits.
fn apply_commit(tx: &mut dyn Conn, commit: &Commit, node: &str) -> AppResult<i64> {
    let key = commit.case_id.to_string();
    // The stored heads, the next sequence number and whether the sender's token is still
    // good, in one round trip (commits hold the commit lock, so the number is free until
    // this transaction ends).
    let (stored, seq, signed_in): (Option<String>, i64, bool) = tx.query_row(
        concat!(
            "SELECT (SELECT heads FROM documents WHERE case_id = ?3),
                    (SELECT coalesce(max(seq), 0) + 1 FROM documents),
                    CAST(?1 AS TEXT) IS NULL OR EXISTS (SELECT 1 ",
            good_token!(),
            ")"
        ),
        params![commit.token_hash, Utc::now().timestamp(), &key],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if !signed_in {
        return Err(AppError::Unauthorized(crate::live::REVOKED.to_owned()));
    }
    let judged_against = (!commit.new).then(|| commit.base.join(","));
    if stored != judged_against {
        return Err(AppError::Stale(format!(
            "案件 {} 刚在别处更新，请重试 (the case changed on another server process meanwhile; try again)",
            commit.case_id
        )));
    }
    numbers::numbers_still_free(tx, &key, &commit.projection.case, commit.new)?;
    let heads = commit.heads.join(",");
    if commit.new {
        tx.execute(
            "INSERT INTO documents (case_id, snapshot, heads, seq) VALUES (?1, ?2, ?3, ?4)",
            params![key, commit.bytes, heads, seq],
        )?;
    } else {
        tx.execute(
            "UPDATE documents SET heads = ?2, seq = ?3 WHERE case_id = ?1",
            params![key, heads, seq],
        )?;
        let last: i64 = tx.query_row(
            "SELECT coalesce(max(seq), 0) FROM chunks WHERE case_id = ?1",
            params![&key],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO chunks (case_id, seq, bytes) VALUES (?1, ?2, ?3)",
            params![key, last + 1, commit.bytes],
        )?;
    }
    // A new case is one snapshot and no chunks.
    let chunks: i64 = if commit.new {
        0
    } else {
        tx.query_row(
            "SELECT count(*) FROM chunks WHERE case_id = ?1",
            params![&key],
            |r| r.get(0),
        )?
    };
    let receipts: Vec<Vec<Value>> = commit
        .receipts
        .iter()
        .map(|receipt| {
            let relayed_by = (receipt.author != commit.user_id).then_some(commit.user_id);
            let signature = receipt.signature.as_ref();
            let signed = &receipt.signed;
            row![
                signed.hash.to_string(),
                key,
                signed.actor,
                receipt.author,
                receipt.device_time,
                signed.received_at,
                relayed_by,
                signature.map(|s| s.key.to_vec()),
                signature.map(|s| s.signature.to_vec()),
                signed.issuer.as_slice(),
                &signed.signature,
            ]
        })
        .collect();
    tx.insert_rows(
        "INSERT INTO receipts (change_hash, case_id, actor_id, user_id, device_time, received_at,
            relayed_by, key_id, signature, receipt_issuer, receipt_signature)",
        "ON CONFLICT DO NOTHING",
        receipts,
    )?;
    write_projections(tx, &key, &commit.projection, true, commit.new)?;
    if tx.dialect() == Dialect::Postgres {
        tx.query(
            "SELECT pg_notify(?1, ?2)",
            params![COMMITS_CHANNEL, format!("{node} {seq} {key}")],
        )?;
    }
    Ok(chunks)
}

/// What the sync core reads and writes of storage: documents, the devices that may write
/// them, and commits. Everything the sync core does to storage goes through this one
/// interface (implemented by SQLite here).
pub trait Documents: Send + Sync {
    /// A case document; `None` if the server does not have it.
    fn load_document(&self, case: CaseId) -> AppResult<Option<AutoCommit>>;
    /// The user a device (actor id, hex) is bound to, unless revoked.
    fn actor_owner(&self, actor: &str) -> AppResult<Option<i64>>;
    /// Whether a device (actor id, hex) ever signed in, revoked or not.
    fn device_known(&self, actor: &str) -> AppResult<bool>;
    /// Why each of `hashes` that the server ever refused was refused (one read for a
    /// whole message).
    fn refused_before(&self, hashes: &[ChangeHash]) -> AppResult<HashMap<ChangeHash, Refusal>>;
    /// Keeps refusals of changes of a case, so that they are final, each counted against
    /// the account of the device that made it, up to `bound` an account (`sender`'s when
    /// no account has the device); how many were not kept.
    fn record_refusals(
        &self,
        case: CaseId,
        sender: i64,
        refused: &[Refused],
        bound: u64,
    ) -> AppResult<usize>;
    /// A key a device registered, with the device.
    fn device_key(&self, id: &KeyId) -> AppResult<Option<DeviceKey>>;
    /// An account as the rule book knows it, unless disabled.
    fn author(&self, user_id: i64) -> AppResult<Option<Author>>;
    /// The signatures received of changes.
    fn signatures_of(&self, hashes: &[ChangeHash]) -> AppResult<Vec<ChangeSignature>>;
    /// Commits new changes of several cases, each durable and independent of the others;
    /// per commit, the number of chunks its document now has.
    fn commit_batch(&self, commits: &[Commit]) -> Vec<AppResult<i64>>;
    /// Replaces a document's stored pieces with one snapshot of it at `heads`, unless
    /// the stored document has moved on.
    fn compact(&self, case: CaseId, snapshot: &[u8], heads: &[String]) -> AppResult<()>;
    /// The heads of a stored document (hex, sorted), if the server has it.
    fn stored_heads(&self, case: CaseId) -> AppResult<Option<Vec<String>>>;
    /// A stored document's heads, who may read it and, when `with_bytes`, its bytes, if
    /// the server has it.
    fn stored_document(&self, case: CaseId, with_bytes: bool) -> AppResult<Option<Stored>>;
    /// Whether other server processes may commit to the same database.
    fn shared(&self) -> bool;
    /// The key the server signs what it writes itself with.
    fn server_key(&self) -> &SoftwareKey;
    /// The enforcement certificate (执法证) on record for the account `username`.
    fn enforcement_certificate(
        &self,
        username: &str,
    ) -> AppResult<Option<anjian_core::rules::EnforcementCertificate>>;
    /// Whether a document of another case than `case` carries `number` (the register).
    fn number_elsewhere(&self, number: &str, case: CaseId) -> AppResult<bool>;
}

impl Documents for Storage {
    fn load_document(&self, case: CaseId) -> AppResult<Option<AutoCommit>> {
        Storage::load_document(self, case)
    }

    fn actor_owner(&self, actor: &str) -> AppResult<Option<i64>> {
        Storage::actor_owner(self, actor)
    }

    fn device_known(&self, actor: &str) -> AppResult<bool> {
        Storage::device_known(self, actor)
    }

    fn refused_before(&self, hashes: &[ChangeHash]) -> AppResult<HashMap<ChangeHash, Refusal>> {
        Storage::refused_before(self, hashes)
    }

    fn record_refusals(
        &self,
        case: CaseId,
        sender: i64,
        refused: &[Refused],
        bound: u64,
    ) -> AppResult<usize> {
        Storage::record_refusals(self, case, sender, refused, bound)
    }

    fn device_key(&self, id: &KeyId) -> AppResult<Option<DeviceKey>> {
        Storage::device_key(self, id)
    }

    fn author(&self, user_id: i64) -> AppResult<Option<Author>> {
        Storage::author(self, user_id)
    }

    fn signatures_of(&self, hashes: &[ChangeHash]) -> AppResult<Vec<ChangeSignature>> {
        Storage::signatures_of(self, hashes)
    }

    fn commit_batch(&self, commits: &[Commit]) -> Vec<AppResult<i64>> {
        Storage::commit_batch(self, commits)
    }

    fn compact(&self, case: CaseId, snapshot: &[u8], heads: &[String]) -> AppResult<()> {
        Storage::compact(self, case, snapshot, heads)
    }

    fn stored_heads(&self, case: CaseId) -> AppResult<Option<Vec<String>>> {
        Storage::stored_heads(self, case)
    }

    fn stored_document(&self, case: CaseId, with_bytes: bool) -> AppResult<Option<Stored>> {
        Storage::stored_document(self, case, with_bytes)
    }

    fn shared(&self) -> bool {
        Storage::shared(self)
    }

    fn server_key(&self) -> &SoftwareKey {
        Storage::server_key(self)
    }

    fn enforcement_certificate(
        &self,
        username: &str,
    ) -> AppResult<Option<anjian_core::rules::EnforcementCertificate>> {
        Storage::enforcement_certificate(self, username)
    }

    fn number_elsewhere(&self, number: &str, case: CaseId) -> AppResult<bool> {
        self.read(|conn| numbers::number_elsewhere(conn, number, &case.to_string()))
    }
}

/// The one thread that writes commits, batching those that queue up while a transaction
/// is being made durable (group commit).
pub struct Writer {
    queue: std::sync::mpsc::Sender<(Commit, tokio::sync::oneshot::Sender<AppResult<i64>>)>,
}

/// Commits written in one transaction, at most.
const BATCH: usize = 128;

impl Writer {
    /// Starts the writer thread over `storage`; it ends when the `Writer` is dropped.
    pub fn start(storage: std::sync::Arc<Storage>) -> Writer {
        let (queue, commits) =
            std::sync::mpsc::channel::<(Commit, tokio::sync::oneshot::Sender<AppResult<i64>>)>();
        std::thread::Builder::new()
            .name("anjian-storage-writer".into())
            .spawn(move || {
                while let Ok(first) = commits.recv() {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match commits.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let (batch, replies): (Vec<Commit>, Vec<_>) = batch.into_iter().unzip();
                    for (reply, result) in replies.into_iter().zip(storage.commit_batch(&batch)) {
                        let _ = reply.send(result);
                    }
                }
            })
            .expect("the storage writer thread starts");
        Writer { queue }
    }

    /// Commits and waits until the commit is durable.
    pub async fn commit(&self, commit: Commit) -> AppResult<i64> {
        let (reply, result) = tokio::sync::oneshot::channel();
        self.queue
            .send((commit, reply))
            .map_err(|_| AppError::Internal("the storage writer has stopped".into()))?;
        result
            .await
            .map_err(|_| AppError::Internal("the storage writer has stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, mpsc};
    use std::time::{Duration, Instant};

    use super::*;

    /// A server of many threads keeps a connection for each and some more: with every
    /// thread in a long read, a small read (a token's, on an async worker) still gets one.
    #[test]
    fn every_thread_in_a_long_read_leaves_connections_for_small_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let threads = 3 * SQLITE_READERS;
        let storage = Arc::new(
            Storage::open_for(&Database::Sqlite(dir.path().join("server.db")), threads)
                .expect("storage"),
        );
        let inside = Arc::new(AtomicUsize::new(0));
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let long_reads: Vec<_> = (0..threads)
            .map(|_| {
                let (storage, inside, released) =
                    (storage.clone(), inside.clone(), released.clone());
                std::thread::spawn(move || {
                    storage.read(|_| {
                        inside.fetch_add(1, Ordering::SeqCst);
                        let _ = released.lock().expect("lock").recv();
                        Ok(())
                    })
                })
            })
            .collect();
        let start = Instant::now();
        while inside.load(Ordering::SeqCst) < threads && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let held = inside.load(Ordering::SeqCst);
        let (answer, answered) = mpsc::channel();
        let small = storage.clone();
        std::thread::spawn(move || {
            let _ = answer.send(
                small.read(|conn| conn.query_row("SELECT 1", params![], |r| r.get::<i64>(0))),
            );
        });
        let small_read = answered.recv_timeout(Duration::from_secs(10));
        drop(release);
        for read in long_reads {
            read.join().expect("joined").expect("read");
        }
        assert_eq!(held, threads, "every thread reads at once");
        assert_eq!(
            small_read.expect("a small read is answered").expect("read"),
            1
        );
    }
}
