//! The SQLite file: opening it, recognising it, and migrating it to the current version.

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

/// `PRAGMA application_id` of every Anjian store ("AnJj").
const APPLICATION_ID: i64 = 0x416E_4A6A;

/// A numbered migration; `rebuild_projections` asks the store to rebuild the query
/// projections from the documents once every migration has run.
struct Migration {
    name: &'static str,
    sql: &'static str,
    rebuild_projections: bool,
}

/// Migrations in order; the store version is the number of migrations applied.
const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "001_documents",
        sql: include_str!("../migrations/001_documents.sql"),
        rebuild_projections: false,
    },
    Migration {
        name: "002_projections",
        sql: include_str!("../migrations/002_projections.sql"),
        rebuild_projections: true,
    },
    Migration {
        name: "003_checklists",
        sql: include_str!("../migrations/003_checklists.sql"),
        rebuild_projections: true,
    },
    Migration {
        name: "004_photos",
        sql: include_str!("../migrations/004_photos.sql"),
        rebuild_projections: true,
    },
    Migration {
        name: "005_sync",
        sql: include_str!("../migrations/005_sync.sql"),
        rebuild_projections: false,
    },
    Migration {
        name: "006_local_heads",
        sql: include_str!("../migrations/006_local_heads.sql"),
        rebuild_projections: true,
    },
    Migration {
        name: "007_signatures",
        sql: include_str!("../migrations/007_signatures.sql"),
        rebuild_projections: false,
    },
    Migration {
        name: "008_certificates",
        sql: include_str!("../migrations/008_certificates.sql"),
        rebuild_projections: false,
    },
    Migration {
        name: "009_number_blocks",
        sql: include_str!("../migrations/009_number_blocks.sql"),
        rebuild_projections: false,
    },
    Migration {
        name: "010_china_days",
        sql: include_str!("../migrations/010_china_days.sql"),
        rebuild_projections: true,
    },
    Migration {
        name: "011_signature_images",
        sql: include_str!("../migrations/011_signature_images.sql"),
        rebuild_projections: true,
    },
    Migration {
        name: "012_reentered",
        sql: include_str!("../migrations/012_reentered.sql"),
        rebuild_projections: false,
    },
    Migration {
        name: "013_waiting",
        sql: include_str!("../migrations/013_waiting.sql"),
        rebuild_projections: false,
    },
    Migration {
        name: "014_refused_rule",
        sql: include_str!("../migrations/014_refused_rule.sql"),
        rebuild_projections: false,
    },
    Migration {
        name: "015_revoked_devices",
        sql: include_str!("../migrations/015_revoked_devices.sql"),
        rebuild_projections: false,
    },
];

/// The store version this build writes.
pub const STORE_VERSION: i64 = MIGRATIONS.len() as i64;

/// What opening found, for the store to act on.
pub(crate) struct Opened {
    pub conn: Connection,
    pub rebuild_projections: bool,
}

/// Opens (or creates) the store file at `path` and brings it to `STORE_VERSION`.
pub(crate) fn open(path: &Path) -> Result<Opened> {
    check_header(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    migrate_to(conn, path, STORE_VERSION)
}

/// Opens `path` and applies migrations up to `target` (tests use it to build old stores).
pub(crate) fn migrate_to(conn: Connection, path: &Path, target: i64) -> Result<Opened> {
    configure(&conn)?;
    let application_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    if application_id != APPLICATION_ID && (application_id != 0 || version != 0 || tables != 0) {
        return Err(Error::NotAStore {
            path: path.to_owned(),
            reason: "it is an SQLite database of another application".into(),
        });
    }
    if version > STORE_VERSION {
        return Err(Error::NewerStore {
            path: path.to_owned(),
            found: version,
            supported: STORE_VERSION,
        });
    }
    for (index, migration) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(version as usize)
    {
        let number = index as i64 + 1;
        // Each step in its own transaction: a crash between steps leaves a store at a
        // known version that the next open continues from.
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(migration.sql)?;
        if migration.rebuild_projections && version > 0 {
            // Recorded with the step, and forgotten only once the rebuild is written: a
            // store closed between the two rebuilds them when it opens next.
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('projections_stale', 'yes')",
                [],
            )?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", number)?;
        tx.commit()?;
        tracing::info!(migration = migration.name, "store migrated");
    }
    let rebuild_projections = target > 0
        && conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'projections_stale')",
            [],
            |r| r.get(0),
        )?;
    Ok(Opened {
        conn,
        rebuild_projections,
    })
}

/// Connection settings every store runs with.
fn configure(conn: &Connection) -> Result<()> {
    // WAL with synchronous=FULL: a committed write survives power loss, and readers do
    // not block the writer.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "store could not switch to WAL journal mode");
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;",
    )?;
    Ok(())
}

/// Refuses, before SQLite touches it, a non-empty file that is not an SQLite database.
fn check_header(path: &Path) -> Result<()> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::NotAStore {
                path: path.to_owned(),
                reason: format!("it cannot be read: {e}"),
            });
        }
    };
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => {
                return Err(Error::NotAStore {
                    path: path.to_owned(),
                    reason: format!("it cannot be read: {e}"),
                });
            }
        }
    }
    if read == 0 || &header[..read] == b"SQLite format 3\0" {
        return Ok(());
    }
    Err(Error::NotAStore {
        path: path.to_owned(),
        reason: "it is not an SQLite database".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;
    use crate::store::Store;

    fn schema_of(conn: &Connection) -> Vec<(String, String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name")
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query");
        rows.map(|r| r.expect("row")).collect()
    }

    fn rows_of(conn: &Connection, table: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .expect("prepare");
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).expect("query");
        let mut out = Vec::new();
        while let Some(row) = rows.next().expect("row") {
            let values: Vec<String> = (0..columns)
                .map(|i| format!("{:?}", row.get_ref(i).expect("value")))
                .collect();
            out.push(values.join(" | "));
        }
        out
    }

    /// A store as the current version makes it, with one case of two findings, and the
    /// same case in a store as version 1 of the app left it: documents, no projections.
    fn fresh_and_old(dir: &tempfile::TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
        let fresh_path = dir.path().join("fresh.db");
        let mut fresh = Store::open(&fresh_path, sample::inspector("u1")).expect("fresh store");
        let enterprise = sample::enterprise(1);
        fresh.register_enterprise(&enterprise).expect("register");
        let case = fresh
            .open_case(&sample::new_case(&enterprise))
            .expect("case");
        for text in ["安全出口堵塞", "储罐区无喷淋"] {
            fresh
                .add_finding(case, &sample::finding(text))
                .expect("finding");
        }
        fresh
            .compact(case)
            .expect("one snapshot, as version 1 stored it");
        let snapshot = fresh.export_document(case).expect("export");
        drop(fresh);

        // A store as version 1 of the app left it: documents, no projections yet.
        let old_path = dir.path().join("old.db");
        let conn = Connection::open(&old_path).expect("open");
        let conn = migrate_to(conn, &old_path, 1).expect("version 1").conn;
        conn.execute(
            "INSERT INTO documents (case_id, snapshot) VALUES (?1, ?2)",
            rusqlite::params![case.to_string(), snapshot],
        )
        .expect("document");
        drop(conn);
        (fresh_path, old_path)
    }

    #[test]
    fn a_migrated_store_equals_a_fresh_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (fresh_path, old_path) = fresh_and_old(&dir);
        Store::open(&old_path, sample::inspector("u1")).expect("migrates");
        let fresh = Connection::open(&fresh_path).expect("fresh");
        let old = Connection::open(&old_path).expect("old");
        assert_eq!(schema_of(&old), schema_of(&fresh));
        for pragma in ["user_version", "application_id"] {
            let read = |c: &Connection| -> i64 {
                c.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                    .expect("pragma")
            };
            assert_eq!(read(&old), read(&fresh), "{pragma}");
        }
        for table in ["cases", "findings", "answers", "blob_refs", "documents"] {
            assert_eq!(rows_of(&old, table), rows_of(&fresh, table), "{table}");
        }
    }

    /// A store closed after its migrations and before the projections were rebuilt (the
    /// app killed, the disk full) rebuilds them when it opens next.
    #[test]
    fn projections_a_migration_asked_for_are_rebuilt_even_after_an_interruption() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, old_path) = fresh_and_old(&dir);
        let conn = Connection::open(&old_path).expect("open");
        let opened = migrate_to(conn, &old_path, STORE_VERSION).expect("migrated");
        assert!(opened.rebuild_projections);
        drop(opened);
        let store = Store::open(&old_path, sample::inspector("u1")).expect("opens");
        assert_eq!(
            store.cases(&Default::default()).expect("cases").len(),
            1,
            "the case is listed"
        );
        drop(store);
        let conn = Connection::open(&old_path).expect("open");
        assert!(
            !migrate_to(conn, &old_path, STORE_VERSION)
                .expect("open")
                .rebuild_projections,
            "and only once"
        );
    }
}
