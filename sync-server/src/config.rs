//! Settings: embedded defaults, then a TOML file, then environment variables, then flags.
//! Every limit the server holds clients to is here, with its default (docs/SECURITY.md
//! explains each).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::storage::Database;

/// How the server runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Folder of the database and blobs.
    pub data: PathBuf,
    /// The database, when it is not `server.db` in the data folder: a PostgreSQL URL
    /// (`postgres://user@host:port/database`) that several server processes may share, or
    /// a SQLite file's path.
    pub database: Option<String>,
    /// Where stored blobs are kept, when not in `blobs/` in the data folder: an
    /// S3-compatible object store (`s3://bucket/prefix?endpoint=URL&region=R`, with
    /// credentials in `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`) that several server
    /// processes may share, or a folder.
    pub blobs: Option<String>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Whether the supervisors' session cookie is `Secure` (sent over HTTPS only; browsers
    /// also accept it from `http://localhost` and `http://127.0.0.1`). Turn off only to
    /// try the pages over plain HTTP from another machine.
    pub secure_cookies: bool,
    /// How long a device's token lasts before the app signs in again, in days.
    pub token_days: u32,
    /// Load balancers in front of the server (their addresses): a request through one is
    /// counted against the client its `X-Forwarded-For` names (the last address there that
    /// is not a proxy's), and its connections are not held to the cap on one address's.
    /// Empty by default: the server then trusts no header about where a request came from.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Addresses besides this machine's own that may read `/metrics` (a metrics
    /// scraper's). Empty by default: the counters say how busy the server is and when,
    /// which is no business of anyone on the network; everyone else is answered 404.
    pub metrics_from: Vec<std::net::IpAddr>,
    /// What each client may cost.
    pub limits: Limits,
}

/// The limits every client is held to (docs/SECURITY.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Seconds to send a request's headers (also how long an idle keep-alive connection
    /// stays open).
    pub header_seconds: u64,
    /// Seconds a request's body may pause between two parts (a slow phone keeps sending;
    /// a stalled one is cut off).
    pub body_seconds: u64,
    /// Open TCP connections from one address.
    pub connections_per_address: usize,
    /// Open sync connections of one user.
    pub sync_connections_per_user: usize,
    /// Seconds a sync connection may stay silent before it is closed (it is pinged at a
    /// third of this).
    pub sync_idle_seconds: u64,
    /// Frames per second one sync connection may send (more are read more slowly).
    pub frames_per_second: u32,
    /// Milliseconds of the apply threads one account's sync connections may take a
    /// minute (its bucket holds ten seconds' worth): past it, every connection of the
    /// account reads nothing more until the time is made up (`apply_time`).
    pub apply_ms_per_user_per_minute: u64,
    /// Documents one sync connection syncs at once (the least recently used beyond this
    /// are forgotten and synced afresh when asked again).
    pub documents_per_connection: usize,
    /// Unknown document ids one sync connection is answered about later, when they
    /// appear (beyond this, the oldest are forgotten).
    pub unknown_documents_per_connection: usize,
    /// Bytes the sync states one connection keeps may hold (the peer's summaries among
    /// them, which a message may make as large as its frame): beyond this, the least
    /// recently used are forgotten whatever their number.
    pub sync_state_bytes_per_connection: usize,
    /// Bytes of one change, uncompressed.
    pub change_bytes: usize,
    /// Bytes of all changes in one sync message, uncompressed.
    pub message_change_bytes: usize,
    /// Operations in one change.
    pub change_operations: u64,
    /// Operations in one sync message.
    pub message_operations: u64,
    /// Operations one case may hold (every change ever made to it): past this, changes
    /// are refused and the case is closed for growth. A sixteenth of it is kept for those
    /// who decide the case (`rules::Room`).
    pub case_operations: u64,
    /// Bytes of all the changes one case may hold, each counted as encoded alone and
    /// uncompressed: past this, changes are refused and the case is closed for growth. A
    /// sixteenth of it is kept for those who decide the case (`rules::Room`).
    pub case_bytes: u64,
    /// Threads applying and saving documents.
    pub apply_threads: usize,
    /// Threads answering reads that walk many rows or a whole case (lists, a case in full,
    /// bulletins, registers, the catalog), so that they never hold an async worker.
    pub read_threads: usize,
    /// Threads decoding photos.
    pub photo_threads: usize,
    /// Threads hashing passwords.
    pub password_threads: usize,
    /// Sign-ins waiting for a password thread before more are turned away with 503.
    pub sign_in_queue: usize,
    /// Failed sign-ins of one name from one address before each further attempt waits.
    pub sign_in_failures_per_name_and_address: u32,
    /// Failed sign-ins from one address (any name) before each further attempt waits.
    pub sign_in_failures_per_address: u32,
    /// Failed sign-ins of one name (any address) before attempts from addresses that never
    /// signed in as it successfully must wait.
    pub sign_in_failures_per_name: u32,
    /// Sign-ins of one name (any address) whose password was right, within 15 minutes,
    /// before each further attempt waits, so that an account's owner cannot keep the
    /// password threads busy.
    pub sign_ins_per_name: u32,
    /// Devices one account may have that are not revoked (phones, tablets; the supervisors'
    /// pages are not counted): a new one beyond them is refused until one is revoked.
    pub devices_per_user: usize,
    /// Hours a partial blob upload is kept without progress.
    pub upload_hours: u64,
    /// Bytes of unfinished uploads one user may have parked on the server.
    pub parked_bytes_per_user: u64,
    /// Refused changes the server keeps (so that their refusal is final) of one account's
    /// devices, whoever carried them: beyond this many, that account's changes are refused
    /// all the same but not kept (judged again should they come back), until an
    /// administrator clears them (`user refusals-clear`).
    pub refusals_per_user: u64,
    /// Receipts in one answer of `POST /api/v1/proofs` (about 400 bytes each): a case of
    /// more changes is answered over several requests.
    pub receipts_per_proofs_answer: usize,
    /// Documents in one page of `GET /api/v1/catalog` (about 130 bytes each): a device
    /// that sees more of them changed reads the rest page by page, syncing each.
    pub catalog_page: usize,
    /// Bytes of blobs one account's uploads may store within 24 hours: past this, its
    /// uploads of blobs the server does not hold yet are answered `429` until the oldest
    /// of that day's fall out of the 24 hours (a day's photos, and a week's carried back
    /// from where there was no signal, fit well within it).
    pub blob_bytes_per_user_per_day: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data: PathBuf::from("data"),
            database: None,
            blobs: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_message_bytes: 16 * 1024 * 1024,
            secure_cookies: true,
            token_days: 30,
            trusted_proxies: Vec::new(),
            metrics_from: Vec::new(),
            limits: Limits::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let wire = anjian_core::sync::intake::Limits::default();
        Limits {
            header_seconds: 15,
            body_seconds: 120,
            connections_per_address: 512,
            sync_connections_per_user: 8,
            sync_idle_seconds: 120,
            frames_per_second: 1_000,
            apply_ms_per_user_per_minute: 60_000,
            documents_per_connection: 20_000,
            unknown_documents_per_connection: 1_024,
            sync_state_bytes_per_connection: 16 * 1024 * 1024,
            change_bytes: wire.change_bytes,
            message_change_bytes: wire.message_bytes,
            change_operations: wire.change_ops,
            message_operations: wire.message_ops,
            case_operations: wire.case_ops,
            case_bytes: wire.case_bytes,
            apply_threads: cores,
            read_threads: cores,
            photo_threads: 1,
            password_threads: 1,
            sign_in_queue: 16,
            sign_in_failures_per_name_and_address: 5,
            sign_in_failures_per_address: 20,
            sign_in_failures_per_name: 10,
            sign_ins_per_name: 30,
            devices_per_user: 20,
            upload_hours: 24,
            parked_bytes_per_user: 256 * 1024 * 1024,
            refusals_per_user: 100_000,
            receipts_per_proofs_answer: 5_000,
            catalog_page: 1_000,
            blob_bytes_per_user_per_day: 32 * 1024 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// What the wire accepts of one sync message.
    pub fn wire(&self) -> anjian_core::sync::intake::Limits {
        anjian_core::sync::intake::Limits {
            change_bytes: self.change_bytes,
            message_bytes: self.message_change_bytes,
            change_ops: self.change_operations,
            message_ops: self.message_operations,
            case_ops: self.case_operations,
            case_bytes: self.case_bytes,
            ..anjian_core::sync::intake::Limits::default()
        }
    }
}

impl Settings {
    /// Defaults, overridden by the file (if given) and then by `ANJIAN_DATA`,
    /// `ANJIAN_DATABASE`, `ANJIAN_BLOBS`, `ANJIAN_LISTEN`, `ANJIAN_MAX_MESSAGE_BYTES`,
    /// `ANJIAN_SECURE_COOKIES`, `ANJIAN_TOKEN_DAYS`, `ANJIAN_TRUSTED_PROXIES` and
    /// `ANJIAN_METRICS_FROM` (comma-separated addresses).
    pub fn load(file: Option<&std::path::Path>) -> AppResult<Settings> {
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| AppError::BadRequest(format!("config {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| AppError::BadRequest(format!("config {}: {e}", path.display())))?
            }
            None => Settings::default(),
        };
        if let Ok(data) = std::env::var("ANJIAN_DATA") {
            settings.data = PathBuf::from(data);
        }
        if let Ok(database) = std::env::var("ANJIAN_DATABASE") {
            settings.database = Some(database);
        }
        if let Ok(blobs) = std::env::var("ANJIAN_BLOBS") {
            settings.blobs = Some(blobs);
        }
        if let Some(listen) = env("ANJIAN_LISTEN")? {
            settings.listen = listen;
        }
        if let Some(max) = env("ANJIAN_MAX_MESSAGE_BYTES")? {
            settings.max_message_bytes = max;
        }
        if let Some(secure) = env("ANJIAN_SECURE_COOKIES")? {
            settings.secure_cookies = secure;
        }
        if let Some(days) = env("ANJIAN_TOKEN_DAYS")? {
            settings.token_days = days;
        }
        if let Some(proxies) = addresses("ANJIAN_TRUSTED_PROXIES")? {
            settings.trusted_proxies = proxies;
        }
        if let Some(scrapers) = addresses("ANJIAN_METRICS_FROM")? {
            settings.metrics_from = scrapers;
        }
        Ok(settings)
    }
}

impl Settings {
    /// Where the data is kept: `database`, or `server.db` in the data folder.
    pub fn database(&self) -> Database {
        match &self.database {
            Some(location) => Database::parse(location),
            None => Database::Sqlite(self.data.join("server.db")),
        }
    }
}

/// An environment variable of comma-separated addresses, parsed, if it is set.
fn addresses(name: &str) -> AppResult<Option<Vec<std::net::IpAddr>>> {
    let Ok(value) = std::env::var(name) else {
        return Ok(None);
    };
    value
        .split(',')
        .filter(|a| !a.trim().is_empty())
        .map(|a| {
            a.trim()
                .parse()
                .map_err(|e| AppError::BadRequest(format!("{name} {a:?}: {e}")))
        })
        .collect::<AppResult<_>>()
        .map(Some)
}

/// An environment variable, parsed, if it is set.
fn env<T: std::str::FromStr>(name: &str) -> AppResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map(Some)
            .map_err(|e| AppError::BadRequest(format!("{name} {value:?}: {e}"))),
        Err(_) => Ok(None),
    }
}
