//! Upgrading the server's database: a database of the previous version, migrated and
//! rebuilt, holds the same projections as one written by this version.

use anjian_core::HazardStep;
use anjian_core::Role;
use anjian_sync_server::db::Dialect;
use anjian_sync_server::{Storage, testing};

use crate::support::{record_case, server, upload};

/// Every projection row and every tally that counts something, in a stable order
/// (`updated_at` aside: it records when the server received the last change).
fn projections(storage: &Storage) -> Vec<String> {
    let queries = [
        "SELECT case_id, enterprise_name, credit_code, industry, district, case_type, state, opened_at,
                opened_by, findings, major_findings, conflicts, amends FROM cases ORDER BY case_id",
        "SELECT * FROM findings ORDER BY case_id, finding_id",
        "SELECT * FROM case_team ORDER BY case_id, user_id",
        "SELECT * FROM visibility ORDER BY case_id, district",
        "SELECT * FROM blob_refs ORDER BY case_id, sha256",
        "SELECT * FROM hazard_steps ORDER BY case_id, finding_id, seq",
        "SELECT * FROM writs ORDER BY case_id, writ_id",
        "SELECT * FROM finding_tallies WHERE n <> 0
         ORDER BY district, day, level, rectification, deadline, violation, post",
        "SELECT * FROM step_tallies WHERE n <> 0 ORDER BY district, day, kind, result, on_time, since",
    ];
    storage
        .read(|conn| {
            let mut rows = Vec::new();
            for sql in queries {
                for row in conn.query(sql, &[])? {
                    rows.push(format!("{:?}", row.0));
                }
            }
            Ok(rows)
        })
        .expect("read")
}

#[test]
fn a_migrated_database_holds_the_same_projections_as_a_fresh_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_app, state) = server(dir.path(), &[("insp_a", Role::Inspector, "310101")]);
    for seed in 1..=3 {
        let (mut store, case) = record_case(dir.path(), "insp_a", "310101", seed);
        let finding = store.case(case).expect("case").findings[0].id;
        store
            .follow_up(case, finding, &HazardStep::pass("复查合格"))
            .expect("reinspect");
        upload(&state, &mut store, case, "insp_a");
    }
    let fresh = projections(&state.storage);
    assert!(fresh.len() > 10, "{fresh:?}");
    let database = testing::database(&dir.path().join("server"));
    drop(state);

    // Take the database back to version 2: what migration 3 adds is gone.
    downgrade(
        &database,
        2,
        "DROP TABLE finding_tallies; DROP TABLE step_tallies; DROP INDEX visibility_by_case; ALTER TABLE cases DROP COLUMN tallied; DROP INDEX findings_open; DROP INDEX findings_facts; DROP INDEX findings_listed; DROP INDEX cases_by_district; DROP TABLE sign_in_known; DROP TABLE sign_in_failures; DROP TABLE upload_parts; DROP TABLE number_blocks; DROP TABLE number_sequences; DROP TABLE enforcement_certificates;
         DROP TABLE writs; DROP TABLE hazard_steps; ALTER TABLE findings DROP COLUMN listed_authority;
         ALTER TABLE findings DROP COLUMN listed_number; ALTER TABLE findings DROP COLUMN listed_deadline;
         ALTER TABLE findings DROP COLUMN onsite;
         DROP TABLE certificates; ALTER TABLE receipts DROP COLUMN receipt_issuer;
         ALTER TABLE receipts DROP COLUMN receipt_signature;
         DROP TABLE device_keys; DROP TABLE refused_changes; ALTER TABLE receipts DROP COLUMN relayed_by;
         ALTER TABLE receipts DROP COLUMN key_id; ALTER TABLE receipts DROP COLUMN signature;
         DROP TABLE web_sessions; DROP TABLE case_team;
         DROP INDEX cases_by_opened; DROP INDEX cases_by_amended;
         ALTER TABLE cases DROP COLUMN amends;
         ALTER TABLE findings DROP COLUMN category; ALTER TABLE findings DROP COLUMN place;
         ALTER TABLE findings DROP COLUMN recorded_by; ALTER TABLE findings DROP COLUMN recorded_at;
         ALTER TABLE findings DROP COLUMN measures; ALTER TABLE findings DROP COLUMN responsible;
         ALTER TABLE findings DROP COLUMN evidence; ALTER TABLE findings DROP COLUMN violation_post;
         ALTER TABLE findings DROP COLUMN violation_person;
         DELETE FROM meta WHERE key = 'reproject_pending';
         DROP TABLE uploads; DROP INDEX tokens_by_user; DROP INDEX tokens_by_actor;
         ALTER TABLE tokens DROP COLUMN expires_at;
         DELETE FROM meta WHERE key IN ('revocations', 'server_actors_repair', 'retally_pending');",
    );

    let migrated = Storage::open(&database).expect("migrates");
    assert_eq!(projections(&migrated), fresh);
    let pending: bool = migrated
        .read(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'reproject_pending')",
                &[],
                |r| r.get(0),
            )
        })
        .expect("read");
    assert!(!pending, "the rebuild finished and cleared its flag");
}

#[test]
fn an_interrupted_rebuild_resumes_on_the_next_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_app, state) = server(dir.path(), &[("insp_a", Role::Inspector, "310101")]);
    let (mut store, case) = record_case(dir.path(), "insp_a", "310101", 1);
    upload(&state, &mut store, case, "insp_a");
    let fresh = projections(&state.storage);
    // As if the server stopped after the migration committed, before the rebuild ended.
    state
        .storage
        .write(|c| {
            c.batch(
                "DELETE FROM case_team; UPDATE findings SET category = '', responsible = NULL;
                 INSERT INTO meta (key, value) VALUES ('reproject_pending', '1');",
            )
        })
        .expect("interrupt");
    drop(state);
    let reopened = Storage::open(&testing::database(&dir.path().join("server"))).expect("opens");
    assert_eq!(projections(&reopened), fresh);
}

#[test]
fn the_upgrade_writes_times_of_another_zone_in_china_s_offset_and_counts_them_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_app, state) = server(dir.path(), &[("insp_a", Role::Inspector, "310101")]);
    let (mut store, case) = record_case(dir.path(), "insp_a", "310101", 1);
    upload(&state, &mut store, case, "insp_a");
    let fresh = projections(&state.storage);
    assert!(
        fresh.iter().any(|row| row.contains("+08:00")),
        "times are written in China's offset: {fresh:?}"
    );
    let database = testing::database(&dir.path().join("server"));
    drop(state);
    // As version 13 wrote a case opened and recorded by a phone showing UTC, at 23:30
    // China time: its times with the phone's offset, and counted under the day before.
    downgrade(
        &database,
        13,
        "UPDATE cases SET opened_at = '2026-10-31T15:30:00+00:00';
         UPDATE findings SET recorded_at = '2026-10-31T15:30:00+00:00';
         UPDATE finding_tallies SET day = '2026-10-30';
         UPDATE step_tallies SET day = '2026-10-30';
         DELETE FROM meta WHERE key IN ('reproject_pending', 'retally_pending');",
    );
    let reopened = Storage::open(&database).expect("opens");
    assert_eq!(projections(&reopened), fresh);
}

#[test]
fn the_upgrade_finds_each_steps_previous_step_of_its_class_as_the_server_writes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_app, state) = server(dir.path(), &[("insp_a", Role::Inspector, "310101")]);
    let (mut store, case) = record_case(dir.path(), "insp_a", "310101", 1);
    let finding = store.case(case).expect("case").findings[0].id;
    // Three extensions, the second recorded by a clock two days behind.
    for (day, deadline) in [
        ("2026-11-23", "2026-12-10"),
        ("2026-11-21", "2026-12-20"),
        ("2026-11-25", "2026-12-30"),
    ] {
        let at =
            chrono::DateTime::parse_from_rfc3339(&format!("{day}T10:00:00+08:00")).expect("time");
        store.set_clock(std::sync::Arc::new(move || at));
        store
            .follow_up(
                case,
                finding,
                &HazardStep::Extend {
                    deadline: deadline.parse().expect("day"),
                    reason: "企业书面申请".into(),
                },
            )
            .expect("extended");
    }
    upload(&state, &mut store, case, "insp_a");
    let previous: Vec<(String, Option<String>)> = state
        .storage
        .read(|c| {
            c.query_map(
                "SELECT day, prev_day FROM hazard_steps WHERE kind = 'extend' ORDER BY day",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .expect("steps");
    let day = |d: &str| d.to_owned();
    assert_eq!(
        previous,
        [
            (day("2026-11-21"), None),
            (day("2026-11-23"), Some(day("2026-11-21"))),
            (day("2026-11-25"), Some(day("2026-11-23"))),
        ]
    );
    let fresh = projections(&state.storage);
    let database = testing::database(&dir.path().join("server"));
    drop(state);

    // Back to version 11: the steps without their previous days, the old indexes.
    downgrade(
        &database,
        11,
        "DROP TABLE finding_tallies; DROP TABLE step_tallies; DROP INDEX visibility_by_case; ALTER TABLE cases DROP COLUMN tallied; DROP INDEX findings_facts; DROP INDEX findings_listed;
         DROP INDEX cases_by_district; DROP INDEX findings_open;
         CREATE INDEX findings_open ON findings (rectification, deadline);
         ALTER TABLE hazard_steps DROP COLUMN prev_day;
         CREATE INDEX hazard_steps_by_day ON hazard_steps (kind, day);",
    );
    let migrated = Storage::open(&database).expect("migrates");
    assert_eq!(projections(&migrated), fresh);
}

/// Takes a database of this version back to version 3 (before tokens expired, server
/// actors were derived from the server's secret, and devices registered keys).
fn downgrade_to_3(database: &anjian_sync_server::storage::Database) {
    downgrade(
        database,
        3,
        "DROP TABLE finding_tallies; DROP TABLE step_tallies; DROP INDEX visibility_by_case; ALTER TABLE cases DROP COLUMN tallied; DROP INDEX findings_open; DROP INDEX findings_facts; DROP INDEX findings_listed; DROP INDEX cases_by_district; DROP TABLE sign_in_known; DROP TABLE sign_in_failures; DROP TABLE upload_parts; DROP TABLE number_blocks; DROP TABLE number_sequences; DROP TABLE enforcement_certificates;
         DROP TABLE writs; DROP TABLE hazard_steps; ALTER TABLE findings DROP COLUMN listed_authority;
         ALTER TABLE findings DROP COLUMN listed_number; ALTER TABLE findings DROP COLUMN listed_deadline;
         ALTER TABLE findings DROP COLUMN onsite;
         DROP TABLE certificates; ALTER TABLE receipts DROP COLUMN receipt_issuer;
         ALTER TABLE receipts DROP COLUMN receipt_signature;
         DROP TABLE device_keys; DROP TABLE refused_changes; ALTER TABLE receipts DROP COLUMN relayed_by;
         ALTER TABLE receipts DROP COLUMN key_id; ALTER TABLE receipts DROP COLUMN signature;
         DROP TABLE uploads; DROP INDEX tokens_by_user; DROP INDEX tokens_by_actor;
         ALTER TABLE tokens DROP COLUMN expires_at;
         CREATE INDEX findings_open ON findings (rectification, deadline);
         DELETE FROM meta WHERE key IN ('revocations', 'server_actors_repair', 'retally_pending');",
    );
}

/// Runs `sql` on the database and sets its schema's version to `version`, as if an older
/// server had written it.
fn downgrade(database: &anjian_sync_server::storage::Database, version: i64, sql: &str) {
    let storage = Storage::open(database).expect("opens");
    storage
        .write(|c| {
            c.transaction(|tx| {
                // What every step after 15 added, which no older server had.
                tx.batch(
                    "DROP INDEX IF EXISTS number_blocks_by_user;
                     DROP INDEX IF EXISTS refused_changes_by_user;
                     ALTER TABLE refused_changes DROP COLUMN user_id;
                     DROP INDEX IF EXISTS blobs_by_uploader;
                     ALTER TABLE blobs DROP COLUMN uploaded_by;
                     DROP INDEX IF EXISTS receipts_in_order;
                     DROP INDEX IF EXISTS receipts_by_sender;
                     ALTER TABLE users DROP COLUMN enabled_at;
                     CREATE INDEX receipts_by_case ON receipts (case_id);
                     CREATE INDEX findings_facts ON findings (case_id, level, rectification, deadline, violation, violation_post);",
                )?;
                tx.batch(sql)?;
                tx.batch(&match tx.dialect() {
                    Dialect::Sqlite => format!("PRAGMA user_version = {version}"),
                    Dialect::Postgres => format!("UPDATE schema_version SET version = {version}"),
                })
            })
        })
        .expect("downgrade");
}

#[test]
fn the_upgrade_revokes_a_device_that_took_a_supervisors_server_actor() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().expect("temp dir");
    let (_app, state) = server(
        dir.path(),
        &[
            ("chief", Role::Supervisor, "310101"),
            ("mallory", Role::Inspector, "310101"),
        ],
    );
    // Before the upgrade a supervisor's server actor was derivable from the storage id
    // every peer is told and the sequential user id; an inspector could bind it first.
    let chief = state.storage.user("chief").expect("chief");
    let digest = Sha256::digest(
        format!(
            "anjian-server-actor\0{}\0{}",
            state.storage.storage_id(),
            chief.id
        )
        .as_bytes(),
    );
    let old = hex::encode(&digest[..16]);
    let (squatter, _, _) = state
        .storage
        .login(
            "mallory",
            crate::support::PASSWORD,
            "手机",
            &old,
            None,
            30,
            20,
        )
        .expect("binds");
    let honest = "00112233445566778899aabbccddeeff";
    let (kept, _, _) = state
        .storage
        .login(
            "chief",
            crate::support::PASSWORD,
            "平板",
            honest,
            None,
            30,
            20,
        )
        .expect("binds");
    let database = testing::database(&dir.path().join("server"));
    drop(state);
    downgrade_to_3(&database);

    let upgraded = Storage::open(&database).expect("migrates");
    let session = |token: &str| {
        upgraded
            .token_session(&anjian_sync_server::users::token_hash(token))
            .expect("read")
    };
    assert!(
        session(&squatter).is_none(),
        "the squatter's token is revoked"
    );
    let squatting = upgraded.devices(Some("mallory")).expect("devices");
    assert!(
        squatting.iter().all(|d| d.revoked_at.is_some()),
        "{squatting:?}"
    );
    let kept = session(&kept).expect("an honest token stays valid");
    assert!(kept.expires_at > chrono::Utc::now().timestamp());
    let actor = upgraded
        .server_actor(&chief)
        .expect("the supervisor acts again");
    assert_ne!(actor.to_hex_string(), old);
}
