//! Bad input and damaged files: a typed error, an unchanged store, no panic.

use anjian_core::{
    CaseId, Error, FindingEdit, FindingId, GeoPoint, RectificationOrder, Store, Violation,
    ViolationKind,
};
use chrono::NaiveDate;

use crate::support::*;

/// Everything the store holds, as bytes and rows, to prove a failed call changed nothing.
fn fingerprint(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    let mut rows = Vec::new();
    for table in [
        "meta",
        "enterprises",
        "documents",
        "chunks",
        "cases",
        "findings",
    ] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .expect("select");
        let columns = stmt.column_count();
        let mut q = stmt.query([]).expect("query");
        while let Some(row) = q.next().expect("row") {
            let values: Vec<String> = (0..columns)
                .map(|i| format!("{:?}", row.get_ref(i).expect("value")))
                .collect();
            rows.push(format!("{table}: {}", values.join(" | ")));
        }
    }
    rows
}

#[test]
fn invalid_inputs_are_typed_errors_that_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let id = store.add_finding(case, &finding("A")).expect("finding");
    let before = fingerprint(&path);

    let field = |e: Error| match e {
        Error::Invalid { field, .. } => field,
        other => panic!("expected a validation error, got {other}"),
    };
    assert_eq!(
        field(store.add_finding(case, &finding("   ")).expect_err("empty")),
        "description"
    );
    let mut v = finding("B");
    v.violation = Some(Violation {
        kind: ViolationKind::LabourDiscipline,
        post: " ".into(),
        person: "x".into(),
    });
    assert_eq!(
        field(store.add_finding(case, &v).expect_err("no post")),
        "violation"
    );
    let order = |deadline: &str| RectificationOrder {
        measures: "整改".into(),
        deadline: deadline.parse::<NaiveDate>().expect("date"),
        responsible: "王五".into(),
    };
    let err = store
        .order_rectification(case, id, &order("2026-11-19"))
        .expect_err("before the visit");
    assert!(
        err.to_string().contains("before the visit on 2026-11-20"),
        "{err}"
    );
    let mut no_measures = order("2026-12-01");
    no_measures.measures.clear();
    assert_eq!(
        field(
            store
                .order_rectification(case, id, &no_measures)
                .expect_err("measures")
        ),
        "measures"
    );
    let edit = FindingEdit {
        description: Some(String::new()),
        ..FindingEdit::default()
    };
    assert_eq!(
        field(store.edit_finding(case, id, &edit).expect_err("emptied")),
        "description"
    );
    let mut bad_ent = enterprise(3);
    bad_ent.name = " ".into();
    assert_eq!(
        field(store.register_enterprise(&bad_ent).expect_err("no name")),
        "name"
    );

    let unknown_case = CaseId::new();
    let unknown_finding = FindingId::new();
    for err in [
        store
            .add_finding(unknown_case, &finding("C"))
            .expect_err("unknown case"),
        store
            .edit_finding(case, unknown_finding, &FindingEdit::default())
            .expect_err("unknown finding"),
        store
            .order_rectification(case, unknown_finding, &order("2026-12-01"))
            .expect_err("unknown finding"),
        store
            .open_case(&new_case(&enterprise(99)))
            .expect_err("unknown enterprise"),
        store.case(unknown_case).expect_err("unknown case"),
    ] {
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
    for bytes in [
        &b""[..],
        b"not automerge",
        &[0x85, 0x6f, 0x4a, 0x83, 1, 2, 3][..],
        // A bare Automerge document: its whole-document chunk is never expanded.
        &automerge::AutoCommit::new().save()[..],
    ] {
        let err = store.merge_case(bytes).expect_err("corrupt bytes");
        assert!(matches!(err, Error::InvalidDocument(_)), "{err}");
    }
    // A valid Automerge document that is not a case.
    let mut other = automerge::AutoCommit::new();
    automerge::transaction::Transactable::put(&mut other, automerge::ROOT, "kind", "note")
        .expect("put");
    let err = store
        .merge_case(&anjian_core::signing::SignedCase::unsigned(&other).encode())
        .expect_err("not a case");
    assert!(matches!(err, Error::InvalidDocument(_)), "{err}");

    assert_eq!(
        fingerprint(&path),
        before,
        "no failed call changed the store"
    );
    // The store still works after all of it.
    store
        .add_finding(case, &finding("D"))
        .expect("still writable");
}

#[test]
fn bad_codes_and_coordinates_are_refused_at_parse_time() {
    assert!(
        "91310101MA1FPX0Y2"
            .parse::<anjian_core::CreditCode>()
            .is_err()
    );
    assert!("12345".parse::<anjian_core::DistrictCode>().is_err());
    assert!(GeoPoint::new(91.0, 0.0).is_err());
    assert!(GeoPoint::new(0.0, f64::NAN).is_err());
    assert!(GeoPoint::new(-33.9, 151.2).is_ok());
}

#[test]
fn a_file_that_is_not_a_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("photo.jpg");
    std::fs::write(&path, b"\xff\xd8\xff\xe0 this is a picture, not a database").expect("write");
    let err = Store::open(&path, inspector("u1")).err().expect("refused");
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"\xff\xd8\xff\xe0 this is a picture, not a database"
    );

    // An SQLite database of another application.
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .expect("open")
        .execute_batch("CREATE TABLE songs (title TEXT)")
        .expect("create");
    let err = Store::open(&other, inspector("u1")).err().expect("refused");
    assert!(err.to_string().contains("another application"), "{err}");
}

#[test]
fn a_store_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    drop(store_with_case(&dir, "a.db", "u1"));
    rusqlite::Connection::open(&path)
        .expect("open")
        .pragma_update(None, "user_version", anjian_core::STORE_VERSION + 1)
        .expect("bump");
    let err = Store::open(&path, inspector("u1")).err().expect("refused");
    assert!(
        matches!(err, Error::NewerStore { found, .. } if found == anjian_core::STORE_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("update the app"), "{err}");
}

#[test]
fn a_truncated_or_scribbled_store_is_reported_as_damaged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    {
        let (mut store, case) = store_with_case(&dir, "a.db", "u1");
        for i in 0..200 {
            store
                .add_finding(
                    case,
                    &finding(&format!("隐患描述{i}，较长的文字用于占满页面")),
                )
                .expect("finding");
        }
    }
    let bytes = std::fs::read(&path).expect("read");
    assert!(
        bytes.len() > 16 * 4096,
        "the file spans many pages ({} bytes)",
        bytes.len()
    );

    // Each damaged copy must fail with a typed error somewhere between opening and
    // reading everything, and never panic.
    let damaged_copies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() / 3].to_vec()),
        ("scribbled", {
            let mut b = bytes.clone();
            for byte in &mut b[4096..bytes.len() - 4096] {
                *byte = byte.wrapping_mul(31).wrapping_add(7);
            }
            b
        }),
        ("header only", bytes[..100].to_vec()),
    ];
    for (what, copy) in damaged_copies {
        let path = dir.path().join(format!("{what}.db"));
        std::fs::write(&path, &copy).expect("write copy");
        let outcome = Store::open(&path, inspector("u1")).and_then(|mut store| {
            let cases = store.cases(&anjian_core::CaseQuery::default())?;
            for case in cases {
                store.case(case.id)?;
            }
            store.findings(&anjian_core::FindingQuery {
                limit: 10_000,
                ..Default::default()
            })
        });
        let err = outcome
            .err()
            .unwrap_or_else(|| panic!("{what}: damage went unnoticed"));
        assert!(
            matches!(err, Error::Corrupt(_) | Error::NotAStore { .. }),
            "{what}: {err}"
        );
    }
}

/// A byte of a stored change flipped on disk: Automerge alone would load the case without
/// that change and say nothing, and the next compaction would save it so. The store
/// reports the damage and keeps every stored byte as it is.
#[test]
fn a_case_whose_stored_changes_are_damaged_is_reported_and_never_compacted_short() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    for text in ["配电箱门缺失", "消防通道堵塞"] {
        store.add_finding(case, &finding(text)).expect("finding");
    }
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let (seq, mut bytes): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT seq, bytes FROM chunks ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a chunk");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    conn.execute(
        "UPDATE chunks SET bytes = ?2 WHERE seq = ?1",
        rusqlite::params![seq, bytes],
    )
    .expect("damage");
    let before = fingerprint(&path);

    let mut store = Store::open(&path, inspector("u1")).expect("store");
    let err = store.case(case).expect_err("damaged");
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(store.compact(case).is_err());
    assert!(store.add_finding(case, &finding("又一条")).is_err());
    assert_eq!(fingerprint(&path), before, "nothing stored was rewritten");
}
