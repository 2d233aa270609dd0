//! Store benchmarks (docs/BENCHMARKS.md): recording findings against the floor of a bare
//! Automerge transaction plus one SQLite insert, and opening stores of growing size.
//!
//! Run: `cargo bench -p anjian-tests --bench store [record|open]` (both by default).

use std::time::{Duration, Instant};

use anjian_core::sample;
use anjian_core::{CaseId, CaseQuery, FindingId, NewFinding, Store};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};
use rusqlite::{Connection, params};

const CASES: usize = 50;
const FINDINGS_PER_CASE: usize = 40;
const ROUNDS: usize = 3;

fn main() {
    let part = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if part.as_deref() != Some("open") {
        record();
    }
    if part.as_deref() != Some("record") {
        open();
    }
}

fn record() {
    println!(
        "# Recording a finding ({CASES} cases x {FINDINGS_PER_CASE} findings per round, {ROUNDS} rounds, median)"
    );
    let mut store_times = Vec::new();
    let mut floor_times = Vec::new();
    for _ in 0..ROUNDS {
        floor_times.push(floor_round());
        store_times.push(store_round());
    }
    let writes = (CASES * FINDINGS_PER_CASE) as f64;
    let store = median(&mut store_times);
    let floor = median(&mut floor_times);
    println!(
        "store.add_finding: {:>8.0} findings/s",
        writes / store.as_secs_f64()
    );
    println!(
        "floor:             {:>8.0} findings/s",
        writes / floor.as_secs_f64()
    );
    println!(
        "ratio store/floor: {:.2}x time per finding",
        store.as_secs_f64() / floor.as_secs_f64()
    );
}

fn open() {
    println!("# Opening a store and listing the first page of 50 cases (median of 20)");
    for size in [100, 10_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.db");
        fill(&path, size);
        let (mut opens, mut lists): (Vec<Duration>, Vec<Duration>) = (0..20)
            .map(|_| {
                let start = Instant::now();
                let store = Store::open(&path, sample::inspector("bench")).expect("open");
                let opened = start.elapsed();
                let page = store.cases(&CaseQuery::default()).expect("list");
                assert_eq!(page.len(), 50);
                (opened, start.elapsed() - opened)
            })
            .unzip();
        let (open, list) = (median(&mut opens), median(&mut lists));
        println!(
            "{size:>6} cases: open {:>5.2} ms + first page {:>5.2} ms = {:>5.2} ms",
            open.as_secs_f64() * 1e3,
            list.as_secs_f64() * 1e3,
            (open + list).as_secs_f64() * 1e3
        );
    }
}

fn finding(i: usize) -> NewFinding {
    let (description, category, basis, place, _) = sample::FINDINGS[i % sample::FINDINGS.len()];
    NewFinding {
        description: format!("{description}（{i}）"),
        category: category.into(),
        legal_basis: basis.into(),
        place: place.into(),
        ..NewFinding::default()
    }
}

/// Interleaves writes across cases, as a joint team's day would.
fn order() -> impl Iterator<Item = (usize, usize)> {
    (0..FINDINGS_PER_CASE).flat_map(|f| (0..CASES).map(move |c| (c, f)))
}

fn store_round() -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store =
        Store::open(dir.path().join("store.db"), sample::inspector("bench")).expect("open");
    let enterprise = sample::enterprise(1);
    store.register_enterprise(&enterprise).expect("register");
    let cases: Vec<CaseId> = (0..CASES)
        .map(|_| {
            store
                .open_case(&sample::new_case(&enterprise))
                .expect("case")
        })
        .collect();
    let start = Instant::now();
    for (c, f) in order() {
        store.add_finding(cases[c], &finding(f)).expect("finding");
    }
    start.elapsed()
}

/// The floor: the same finding (the same Automerge operations the store's schema
/// writes) as one bare transaction, and its incremental bytes inserted into SQLite with
/// the store's durability settings: no validation, no projections, no bookkeeping.
fn floor_round() -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = Connection::open(dir.path().join("floor.db")).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE chunks (case_id INTEGER, seq INTEGER, bytes BLOB, PRIMARY KEY (case_id, seq));",
    )
    .expect("schema");
    let mut docs: Vec<(AutoCommit, automerge::ObjId)> = (0..CASES)
        .map(|_| {
            let mut doc = AutoCommit::new();
            let findings = doc.put_object(ROOT, "findings", ObjType::Map).expect("map");
            doc.commit();
            doc.save();
            (doc, findings)
        })
        .collect();
    let now = sample::visit_time().to_rfc3339();
    let start = Instant::now();
    for (seq, (c, f)) in order().enumerate() {
        let new = finding(f);
        let (doc, findings) = &mut docs[c];
        let obj = doc
            .put_object(&*findings, FindingId::new().to_string(), ObjType::Map)
            .expect("map");
        let text = doc
            .put_object(&obj, "description", ObjType::Text)
            .expect("text");
        doc.splice_text(&text, 0, 0, &new.description)
            .expect("splice");
        for (key, value) in [
            ("level", "general"),
            ("category", new.category.as_str()),
            ("legal_basis", new.legal_basis.as_str()),
            ("place", new.place.as_str()),
            ("recorded_by", "bench"),
            ("recorded_at", now.as_str()),
        ] {
            doc.put(&obj, key, value).expect("put");
        }
        // The same nested records the store's schema gives every finding.
        doc.put_object(&obj, "photos", ObjType::List)
            .expect("photos");
        let rect = doc
            .put_object(&obj, "rectification", ObjType::Map)
            .expect("map");
        doc.put(&rect, "state", "none").expect("state");
        doc.put_object(&rect, "evidence", ObjType::List)
            .expect("evidence");
        doc.put_object(&obj, "violation", ObjType::Map)
            .expect("violation");
        doc.commit();
        let bytes = doc.save_incremental();
        conn.execute(
            "INSERT INTO chunks VALUES (?1, ?2, ?3)",
            params![c as i64, seq as i64, bytes],
        )
        .expect("insert");
    }
    start.elapsed()
}

fn fill(path: &std::path::Path, cases: usize) {
    let mut store = Store::open(path, sample::inspector("bench")).expect("open");
    for (i, (name, industry)) in sample::ENTERPRISES.iter().enumerate() {
        let mut enterprise = sample::enterprise(i as u32);
        enterprise.name = (*name).into();
        enterprise.industry = *industry;
        store.register_enterprise(&enterprise).expect("register");
    }
    let enterprises = store.enterprises().expect("enterprises");
    for i in 0..cases {
        let mut new = sample::new_case(&enterprises[i % enterprises.len()]);
        new.opened_at -= chrono::Duration::hours(i as i64);
        let case = store.open_case(&new).expect("case");
        store.add_finding(case, &finding(i)).expect("finding");
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
