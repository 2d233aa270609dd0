//! For test harnesses: the database and the blob store a test server keeps its data in.
//! Tests run against SQLite by default and against PostgreSQL when `ANJIAN_TEST_POSTGRES`
//! names a server (`postgres://user@host:port/database`, as `scripts/postgres run` sets
//! it): then each data folder gets a database of its own, made on first use, so that tests
//! running side by side never see each other's data. Blobs go to `blobs/` in the data
//! folder by default and to an S3-compatible object store when `ANJIAN_TEST_S3` names its
//! endpoint (as `scripts/s3 run` sets it): then each data folder gets a prefix of its own
//! in the bucket `ANJIAN_TEST_S3_BUCKET`.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::db::Conn;
use crate::db::postgres::PgConn;
use crate::error::AppResult;
use crate::storage::Database;

/// The variable naming the PostgreSQL server tests run against.
pub const POSTGRES_VARIABLE: &str = "ANJIAN_TEST_POSTGRES";
/// The variable naming the endpoint of the object store tests run against.
pub const S3_VARIABLE: &str = "ANJIAN_TEST_S3";
/// The variable naming the bucket tests keep blobs in on that object store.
pub const S3_BUCKET_VARIABLE: &str = "ANJIAN_TEST_S3_BUCKET";

/// Where a test server with its data in `data` keeps it.
pub fn database(data: &Path) -> Database {
    match postgres_database(data) {
        Some(url) => Database::Postgres(url),
        None => Database::Sqlite(data.join("server.db")),
    }
}

/// Where a test server with its data in `data` keeps blobs, when tests run against an
/// object store (`None`: in the data folder).
pub fn s3_blobs(data: &Path) -> Option<String> {
    let endpoint = std::env::var(S3_VARIABLE).ok()?;
    let bucket = std::env::var(S3_BUCKET_VARIABLE).unwrap_or_else(|_| "anjian".into());
    Some(blobs_on(&endpoint, &bucket, data))
}

/// The blobs of the data folder `data` in `bucket` on the object store at `endpoint`: a
/// prefix of their own.
pub fn blobs_on(endpoint: &str, bucket: &str, data: &Path) -> String {
    let digest = Sha256::digest(data.to_string_lossy().as_bytes());
    format!(
        "s3://{bucket}/{}?endpoint={endpoint}",
        hex::encode(&digest[..8])
    )
}

/// The blob store of a test server with its data in `data`.
pub fn blob_store(data: &Path) -> AppResult<crate::blob_store::BlobStore> {
    crate::blob_store::BlobStore::open(s3_blobs(data).as_deref(), data)
}

/// The PostgreSQL database of the data folder `data` (made if new), when tests run against
/// PostgreSQL.
pub fn postgres_database(data: &Path) -> Option<String> {
    let server = std::env::var(POSTGRES_VARIABLE).ok()?;
    Some(database_on(&server, data))
}

/// The database of the data folder `data` on the PostgreSQL server `server` (a URL of
/// one of its databases), made if new.
pub fn database_on(server: &str, data: &Path) -> String {
    let digest = Sha256::digest(data.to_string_lossy().as_bytes());
    let name = format!("anjian_{}", hex::encode(&digest[..8]));
    create(server, &name).unwrap_or_else(|e| panic!("a test database on {server}: {e}"));
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    format!("{base}/{name}")
}

fn create(server: &str, name: &str) -> AppResult<()> {
    let mut conn = PgConn::connect(server)?;
    let conn: &mut dyn Conn = &mut conn;
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ?1)",
        crate::db::params![name],
        |r| r.get(0),
    )?;
    if !exists {
        // Two tests may open the same folder at once; the second one's attempt fails and
        // the database is there all the same.
        if let Err(e) = conn.batch(&format!("CREATE DATABASE {name}")) {
            let message = e.to_string();
            if !message.contains("already exists") && !message.contains("duplicate key") {
                return Err(e);
            }
        }
    }
    Ok(())
}
