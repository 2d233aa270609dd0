//! "A day in a district" (docs/BENCHMARKS.md): 200 devices, each with 10 new cases of 20
//! findings, sync to an empty server at once. Runs the same workload, with the same
//! protocol driver, against Anjian's server and against the stock automerge-repo sync
//! server on Node (`tests/js/stock-server.mjs`), and reports documents merged per second,
//! bytes on the wire against the raw size of the changes, and the server's peak memory.
//! Anjian's server runs twice: with devices that send no signatures (as before devices
//! signed their changes), then with every change's signature sent and verified; and the
//! cost of signing and of verifying one change is measured on its own.
//!
//! After the push, a fresh peer (a supervisor's new device) reads every case back. Both
//! phases' server CPU per document is set against a floor measured in the same run: what
//! the engine and the disk must spend anyway (applying exactly those changes to empty
//! documents with `automerge` directly, saving each once and writing it to SQLite with the
//! server's durability; and answering a fresh peer's sync messages from documents already
//! in memory). The run without devices' signatures is set against it too: the floor
//! verifies and signs nothing, while the server signs a receipt for every change, and with
//! signatures also verifies each change's.
//!
//! Run: `(cd tests/js && npm ci) && cargo bench -p anjian-tests --bench sync_load`
//! (`-- DEVICES CASES FINDINGS` to change the workload; `ANJIAN_BENCH_ONLY_ANJIAN=1` to
//! skip the stock server).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use anjian_core::Role;
use anjian_core::signing::{
    ChangeSignature, KeyAlgorithm, PublicKey, SignedCase, Signer, SoftwareKey,
};
use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use anjian_core::{CaseId, Store, sample};
use anjian_sync_server::storage::Database;
use anjian_sync_server::users::NewUser;
use anjian_sync_server::{Storage, testing};
use anjian_tests::process;
use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

struct Device {
    token: Option<String>,
    docs: Vec<(CaseId, AutoCommit)>,
    /// The device's key, and the signatures of its changes (sent only when signing).
    key: PublicKey,
    signatures: Signatures,
    signing: bool,
}

type Signatures = std::sync::Arc<HashMap<ChangeHash, ChangeSignature>>;

#[derive(Default)]
struct Totals {
    wire_bytes: u64,
    frames: u64,
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (devices, cases, findings) = (
        *args.first().unwrap_or(&200),
        *args.get(1).unwrap_or(&10),
        *args.get(2).unwrap_or(&20),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let work = tempfile::tempdir().expect("temp dir");
    println!(
        "# {devices} devices x {cases} cases x {findings} findings, all syncing at once to an empty server"
    );
    let started = Instant::now();
    let workload = build_workload(work.path(), devices, cases, findings);
    let raw: u64 = workload
        .iter()
        .flat_map(|d| &d.docs)
        .map(|(_, doc)| raw_change_bytes(doc))
        .sum();
    let documents = devices * cases;
    println!(
        "workload: {documents} documents, {:.1} MB of raw changes (built in {:.0} s)",
        raw as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    signing_costs();
    let floor = floor(&workload, work.path());
    println!(
        "floor: merging {:.2} ms per document, serving {:.2} ms per document \
         (parsing a document's changes from their bytes, not in the floor: {:.2} ms)",
        floor.merge * 1e3,
        floor.serve * 1e3,
        floor.parse * 1e3
    );

    // Anjian's server, as its own process: devices that send no signatures, then devices
    // whose every change's signature the server verifies.
    let mut anjian_devices = workload;
    let unsigned = run_nodes(
        &runtime,
        &work.path().join("unsigned"),
        &Database::Sqlite(work.path().join("unsigned").join("server.db")),
        1,
        &mut anjian_devices,
        false,
    );
    let sqlite = run_nodes(
        &runtime,
        &work.path().join("anjian"),
        &Database::Sqlite(work.path().join("anjian").join("server.db")),
        1,
        &mut anjian_devices,
        true,
    );
    let (ours, ours_peak) = (&sqlite.result, sqlite.peaks[0]);

    // The same signed run on PostgreSQL, with one node and with two sharing it (devices
    // split between them), when a PostgreSQL server is given (`scripts/postgres run`).
    // Each run is named by its engine and nodes; the run without signatures is reported
    // too, since the floor verifies and signs nothing.
    let mut engines = vec![
        ("SQLite, 1, no signatures".to_owned(), &unsigned),
        ("SQLite, 1".to_owned(), &sqlite),
    ];
    let clustered: Vec<(usize, NodesRun)> = match std::env::var(testing::POSTGRES_VARIABLE) {
        Ok(server) => [1, 2]
            .into_iter()
            .map(|nodes| {
                let data = work.path().join(format!("postgres-{nodes}"));
                let database = Database::Postgres(testing::database_on(&server, &data));
                let run = run_nodes(&runtime, &data, &database, nodes, &mut anjian_devices, true);
                (nodes, run)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    engines.extend(
        clustered
            .iter()
            .map(|(nodes, run)| (format!("PostgreSQL, {nodes}"), run)),
    );

    // The stock automerge-repo server on Node.
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    let stock = if std::env::var_os("ANJIAN_BENCH_ONLY_ANJIAN").is_some() {
        None
    } else if js.join("node_modules").exists() {
        let (child, addr) = process::spawn_listening(
            Command::new("node")
                .arg(js.join("stock-server.mjs"))
                .arg(work.path().join("stock")),
        );
        let addr = format!("127.0.0.1:{addr}");
        for device in &mut anjian_devices {
            device.token = None;
            device.signing = false;
        }
        println!("syncing to the stock automerge-repo server …");
        reset_peak_memory(&child);
        let before = process::cpu_seconds(&child);
        let result = runtime.block_on(run(&addr, &anjian_devices));
        let pushed = process::cpu_seconds(&child);
        let served = runtime.block_on(pull_all(
            format!("ws://{addr}/sync"),
            "fresh-reader".into(),
            wanted(&anjian_devices),
        ));
        let cpu = [pushed - before, process::cpu_seconds(&child) - pushed];
        let peak = process::peak_memory(&child);
        process::stop(child);
        Some((result, peak, cpu, served))
    } else {
        println!("stock server: tests/js/node_modules missing; run `npm ci` in tests/js");
        None
    };

    let report = |name: &str, (time, totals): &(Duration, Totals), peak: u64| {
        println!(
            "{name:<28} {:>8.0} docs/s   wire {:>7.2} MB = {:.2}x raw   {:>6} frames   peak memory {:>6.1} MB",
            documents as f64 / time.as_secs_f64(),
            totals.wire_bytes as f64 / 1e6,
            totals.wire_bytes as f64 / raw as f64,
            totals.frames,
            peak as f64 / 1e6,
        );
    };
    report("anjian, no signatures", &unsigned.result, unsigned.peaks[0]);
    report("anjian-sync-server", ours, ours_peak);
    println!(
        "signatures sent and verified: throughput {:.3}x of the same server without them",
        unsigned.result.0.as_secs_f64() / ours.0.as_secs_f64()
    );
    println!(
        "{:<24} {:>8} {:>26} {:>18} {:>10} {:>22} {:>16}",
        "engine, nodes",
        "docs/s",
        "CPU ms/doc per node",
        "PostgreSQL ms/doc",
        "wire MB",
        "peak MB per node",
        "database KB/doc"
    );
    for (name, run) in &engines {
        let per_doc = |seconds: f64| seconds * 1e3 / documents as f64;
        let cpu: Vec<String> = run
            .cpu
            .iter()
            .map(|c| format!("{:.2}", per_doc(*c)))
            .collect();
        let peaks: Vec<String> = run
            .peaks
            .iter()
            .map(|p| format!("{:.1}", *p as f64 / 1e6))
            .collect();
        println!(
            "{:<24} {:>8.0} {:>26} {:>18} {:>10.2} {:>22} {:>16.1}",
            name,
            documents as f64 / run.result.0.as_secs_f64(),
            cpu.join(" + "),
            match run.postgres {
                true => format!("{:.2}", per_doc(run.postgres_cpu)),
                false => "-".to_owned(),
            },
            run.result.1.wire_bytes as f64 / 1e6,
            peaks.join(" + "),
            run.database_bytes as f64 / 1e3 / documents as f64,
        );
    }
    println!(
        "{:<46} {:>22} {:>10} {:>22} {:>10} {:>10}",
        "server CPU per document",
        "merging ms per node",
        "x floor",
        "serving ms",
        "x floor",
        "serve s"
    );
    let per_doc = |seconds: f64| seconds / documents as f64;
    for (name, run) in &engines {
        let merging: f64 = run.cpu.iter().sum::<f64>() + run.postgres_cpu;
        let serving = run.serve_cpu + run.serve_postgres_cpu;
        let each: Vec<String> = run
            .cpu
            .iter()
            .map(|c| format!("{:.2}", per_doc(*c) * 1e3))
            .collect();
        println!(
            "{:<46} {:>22} {:>10.2} {:>22.2} {:>10.2} {:>10.2}",
            format!("{name} (with its database)"),
            each.join(" + "),
            per_doc(merging) / floor.merge,
            per_doc(serving) * 1e3,
            per_doc(serving) / floor.serve,
            run.serve.0.as_secs_f64(),
        );
    }
    if let Some((_, _, [pushed, served], serve)) = &stock {
        println!(
            "{:<46} {:>22.2} {:>10.2} {:>22.2} {:>10.2} {:>10.2}",
            "stock automerge-repo (Node)",
            per_doc(*pushed) * 1e3,
            per_doc(*pushed) / floor.merge,
            per_doc(*served) * 1e3,
            per_doc(*served) / floor.serve,
            serve.0.as_secs_f64(),
        );
    }
    if let Some((theirs, peak, _, _)) = &stock {
        report("stock automerge-repo (Node)", theirs, *peak);
        println!(
            "ratios: throughput {:.1}x, peak memory {:.2}x of the stock server",
            theirs.0.as_secs_f64() / ours.0.as_secs_f64(),
            ours_peak as f64 / *peak as f64
        );
    }
}

/// One run on `nodes` server processes sharing `database`: the time and totals, each
/// node's peak memory and CPU seconds, and PostgreSQL's CPU seconds; then a fresh peer
/// reading every document back from the first node.
struct NodesRun {
    result: (Duration, Totals),
    peaks: Vec<u64>,
    cpu: Vec<f64>,
    /// Whether the database is PostgreSQL, and its CPU seconds.
    postgres: bool,
    postgres_cpu: f64,
    /// The fresh peer's read: its time and totals, the first node's CPU seconds and
    /// PostgreSQL's.
    serve: (Duration, Totals),
    serve_cpu: f64,
    serve_postgres_cpu: f64,
    /// The database's size on disk afterwards.
    database_bytes: u64,
}

/// Signs every device in and syncs them all at once, device `i` through node `i % nodes`.
fn run_nodes(
    runtime: &tokio::runtime::Runtime,
    data: &Path,
    database: &Database,
    nodes: usize,
    devices: &mut [Device],
    signing: bool,
) -> NodesRun {
    std::fs::create_dir_all(data).expect("data folder");
    let storage = Storage::open(database).expect("the database");
    for d in 0..devices.len() {
        storage
            .add_user(&NewUser {
                username: &format!("dev{d:03}"),
                name: &format!("设备{d}"),
                role: Role::Inspector,
                district: &"310101".parse().expect("district"),
                department: "应急管理",
                password: anjian_tests::PASSWORD,
            })
            .expect("user");
    }
    storage
        .add_user(&NewUser {
            username: "reader",
            name: "读取者",
            role: Role::Supervisor,
            district: &"310101".parse().expect("district"),
            department: "应急管理",
            password: anjian_tests::PASSWORD,
        })
        .expect("user");
    drop(storage);
    let location = match database {
        Database::Sqlite(path) => path.display().to_string(),
        Database::Postgres(url) => url.clone(),
    };
    let servers: Vec<(std::process::Child, String)> = (0..nodes)
        .map(|n| {
            process::spawn_listening(
                Command::new(env!("CARGO_BIN_EXE_test_server"))
                    .arg(data.join(format!("node{n}")))
                    .env("ANJIAN_DATABASE", &location),
            )
        })
        .collect();
    let addrs: Vec<String> = servers.iter().map(|(_, addr)| addr.clone()).collect();
    runtime.block_on(async {
        for (d, device) in devices.iter_mut().enumerate() {
            let key = signing.then_some(&device.key);
            let addr = &addrs[d % nodes];
            device.token = Some(login(addr, &format!("dev{d:03}"), &device.docs[0].1, key).await);
            device.signing = signing;
        }
    });
    println!(
        "syncing to anjian-sync-server ({}, {nodes} node{} on {}) …",
        if signing { "signed" } else { "no signatures" },
        if nodes == 1 { "" } else { "s" },
        match database {
            Database::Sqlite(_) => "SQLite",
            Database::Postgres(_) => "PostgreSQL",
        }
    );
    // The peak is measured over the sync only: signing 200 devices in (argon2, 19 MiB
    // per hash) is setup, not the workload.
    for (child, _) in &servers {
        reset_peak_memory(child);
    }
    let cpu_before: Vec<f64> = servers
        .iter()
        .map(|(child, _)| process::cpu_seconds(child))
        .collect();
    let postgres_before = process::cpu_seconds_of("postgres");
    let result = runtime.block_on(run_spread(&addrs, devices));
    let postgres_cpu = process::cpu_seconds_of("postgres") - postgres_before;
    let cpu = servers
        .iter()
        .zip(&cpu_before)
        .map(|((child, _), before)| process::cpu_seconds(child) - before)
        .collect();
    let peaks = servers
        .iter()
        .map(|(child, _)| process::peak_memory(child))
        .collect();
    // A supervisor's new device reads every case back from the first node.
    let reader = runtime.block_on(anjian_tests::login_device(
        &format!("http://{}", addrs[0]),
        "reader",
        "0123456789abcdef0123456789abcdef",
    ));
    println!("  a fresh peer reads every case back …");
    let (node, _) = &servers[0];
    let (serve_before, serve_postgres_before) = (
        process::cpu_seconds(node),
        process::cpu_seconds_of("postgres"),
    );
    let serve = runtime.block_on(pull_all(
        format!("ws://{}/sync?token={reader}", addrs[0]),
        "fresh-reader".into(),
        wanted(devices),
    ));
    let serve_cpu = process::cpu_seconds(node) - serve_before;
    let serve_postgres_cpu = process::cpu_seconds_of("postgres") - serve_postgres_before;
    for (child, _) in servers {
        process::stop(child);
    }
    let database_bytes = match database {
        Database::Sqlite(path) => ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
            .map(|m| m.len())
            .sum(),
        Database::Postgres(_) => Storage::open(database)
            .and_then(|storage| {
                storage.read(|c| {
                    c.query_row("SELECT pg_database_size(current_database())", &[], |r| {
                        r.get(0)
                    })
                })
            })
            .expect("the database's size"),
    };
    NodesRun {
        result,
        peaks,
        cpu,
        postgres: matches!(database, Database::Postgres(_)),
        postgres_cpu,
        serve,
        serve_cpu,
        serve_postgres_cpu,
        database_bytes,
    }
}

/// The engine's and the disk's least cost per document, CPU seconds.
struct Floor {
    /// Applying a document's changes to an empty document, saving it once and writing the
    /// bytes to SQLite (WAL, `synchronous = FULL`, one transaction per document).
    merge: f64,
    /// Parsing a document's changes from their bytes, which the floor's merging is given
    /// parsed (reported beside it, not in it).
    parse: f64,
    /// Answering a fresh peer's sync messages for a document already in memory.
    serve: f64,
}

/// The floor of the workload's documents, each the best of three rounds.
fn floor(devices: &[Device], dir: &Path) -> Floor {
    let docs: Vec<&AutoCommit> = devices
        .iter()
        .flat_map(|d| d.docs.iter().map(|(_, doc)| doc))
        .collect();
    let changes: Vec<Vec<automerge::Change>> =
        docs.iter().map(|d| (*d).clone().get_changes(&[])).collect();
    let db = rusqlite::Connection::open(dir.join("floor.db")).expect("floor database");
    db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .expect("WAL");
    db.execute_batch(
        "PRAGMA synchronous = FULL; CREATE TABLE documents (id INTEGER PRIMARY KEY, bytes BLOB NOT NULL);",
    )
    .expect("floor schema");
    let mut merge = f64::MAX;
    for _ in 0..3 {
        let round: Vec<Vec<automerge::Change>> = changes.clone();
        let started = process::own_cpu_seconds();
        for (i, changes) in round.into_iter().enumerate() {
            let mut doc = AutoCommit::new();
            doc.apply_changes(changes).expect("apply");
            let bytes = doc.save();
            db.execute(
                "INSERT OR REPLACE INTO documents (id, bytes) VALUES (?1, ?2)",
                rusqlite::params![i as i64, bytes],
            )
            .expect("write");
        }
        merge = merge.min(process::own_cpu_seconds() - started);
    }
    let raw: Vec<Vec<Vec<u8>>> = changes
        .iter()
        .map(|changes| changes.iter().map(|c| c.raw_bytes().to_vec()).collect())
        .collect();
    let mut parse = f64::MAX;
    for _ in 0..3 {
        let started = process::own_cpu_seconds();
        for bytes in raw.iter().flatten() {
            std::hint::black_box(automerge::Change::try_from(bytes.as_slice()).expect("parse"));
        }
        parse = parse.min(process::own_cpu_seconds() - started);
    }

    // A fresh peer's side of each exchange, recorded once; then only the server's side is
    // measured, replaying it.
    let mut loaded: Vec<AutoCommit> = docs
        .iter()
        .map(|d| AutoCommit::load(&(*d).clone().save()).expect("load"))
        .collect();
    let replies: Vec<Vec<Vec<u8>>> = loaded
        .iter_mut()
        .map(|server| {
            let (mut ours, mut theirs) = (sync::State::new(), sync::State::new());
            let mut peer = AutoCommit::new();
            let mut replies = Vec::new();
            let mut asked = peer.sync().generate_sync_message(&mut theirs);
            while let Some(message) = asked {
                let encoded = message.encode();
                let message = sync::Message::decode(&encoded).expect("decode");
                replies.push(encoded);
                server
                    .sync()
                    .receive_sync_message(&mut ours, message)
                    .expect("receive");
                let Some(answer) = server.sync().generate_sync_message(&mut ours) else {
                    break;
                };
                peer.sync()
                    .receive_sync_message(&mut theirs, answer)
                    .expect("apply");
                asked = peer.sync().generate_sync_message(&mut theirs);
            }
            assert_eq!(peer.get_heads(), server.get_heads());
            replies
        })
        .collect();
    // Ten passes per round: one pass takes about as long as the CPU clock's tick.
    const PASSES: usize = 10;
    let mut serve = f64::MAX;
    for _ in 0..3 {
        let started = process::own_cpu_seconds();
        for i in 0..loaded.len() * PASSES {
            let (server, replies) = (&mut loaded[i % docs.len()], &replies[i % docs.len()]);
            let mut state = sync::State::new();
            for reply in replies {
                let message = sync::Message::decode(reply).expect("decode");
                server
                    .sync()
                    .receive_sync_message(&mut state, message)
                    .expect("receive");
                if let Some(answer) = server.sync().generate_sync_message(&mut state) {
                    std::hint::black_box(answer.encode());
                }
            }
        }
        serve = serve.min((process::own_cpu_seconds() - started) / PASSES as f64);
    }
    Floor {
        merge: merge / docs.len() as f64,
        parse: parse / docs.len() as f64,
        serve: serve / docs.len() as f64,
    }
}

/// Every device's documents with their heads: what a fresh peer should end up with.
fn wanted(devices: &[Device]) -> Vec<(CaseId, Vec<ChangeHash>)> {
    devices
        .iter()
        .flat_map(|d| d.docs.iter())
        .map(|(case, doc)| {
            let mut heads = doc.clone().get_heads();
            heads.sort();
            (*case, heads)
        })
        .collect()
}

/// A fresh peer: joins, asks for every document from nothing and answers until it holds
/// each one's `wanted` heads; returns the time and what crossed the wire.
async fn pull_all(
    url: String,
    peer: String,
    wanted: Vec<(CaseId, Vec<ChangeHash>)>,
) -> (Duration, Totals) {
    let start = Instant::now();
    let mut totals = Totals::default();
    let (mut socket, server) = join(&url, &peer, Vec::new(), &mut totals).await;
    let mut docs: Vec<AutoCommit> = wanted.iter().map(|_| AutoCommit::new()).collect();
    let mut states: Vec<sync::State> = wanted.iter().map(|_| sync::State::new()).collect();
    let index: HashMap<DocumentId, usize> = wanted
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (DocumentId::of(*c), i))
        .collect();
    let frame = |document_id: DocumentId, m: sync::Message| {
        WireMessage::Sync {
            sender_id: peer.clone(),
            target_id: server.clone(),
            document_id,
            data: m.encode(),
            signatures: ChangeSignature::records(&[]),
        }
        .encode()
    };
    for (i, (case, _)) in wanted.iter().enumerate() {
        if let Some(m) = docs[i].sync().generate_sync_message(&mut states[i]) {
            send(&mut socket, frame(DocumentId::of(*case), m), &mut totals).await;
        }
    }
    let mut pending = wanted.len();
    let mut done = vec![false; wanted.len()];
    while pending > 0 {
        let (document_id, message) = next_sync(&mut socket, &peer, &mut totals).await;
        let Some(&i) = index.get(&document_id) else {
            continue;
        };
        docs[i]
            .sync()
            .receive_sync_message(&mut states[i], message)
            .expect("apply");
        if let Some(m) = docs[i].sync().generate_sync_message(&mut states[i]) {
            send(&mut socket, frame(document_id, m), &mut totals).await;
        }
        let mut heads = docs[i].get_heads();
        heads.sort();
        if !done[i] && heads == wanted[i].1 {
            done[i] = true;
            pending -= 1;
        }
    }
    let _ = socket.close(None).await;
    (start.elapsed(), totals)
}

/// What signing a change costs a device, and verifying it the server, per change.
fn signing_costs() {
    const N: u32 = 5_000;
    for algorithm in KeyAlgorithm::ALL {
        let key = SoftwareKey::from_secret(*algorithm, [9; 32]);
        let public = key.public_key();
        let hashes: Vec<ChangeHash> = (0..N)
            .map(|i| {
                let mut bytes = [0u8; 32];
                bytes[..4].copy_from_slice(&i.to_le_bytes());
                ChangeHash(bytes)
            })
            .collect();
        let started = Instant::now();
        let signed: Vec<ChangeSignature> = hashes
            .iter()
            .map(|h| ChangeSignature::sign(&key, *h).expect("sign"))
            .collect();
        let sign = started.elapsed();
        let started = Instant::now();
        for s in &signed {
            s.verify(&public).expect("verifies");
        }
        let verify = started.elapsed();
        println!(
            "{algorithm}: signing {:.1} µs per change, verifying {:.1} µs per change",
            sign.as_secs_f64() * 1e6 / f64::from(N),
            verify.as_secs_f64() * 1e6 / f64::from(N),
        );
    }
}

/// Every device's store, filled through the real API, and its cases as documents.
fn build_workload(dir: &Path, devices: usize, cases: usize, findings: usize) -> Vec<Device> {
    (0..devices)
        .map(|d| {
            let mut store = Store::open(
                dir.join(format!("device{d}.db")),
                sample::inspector(&format!("dev{d:03}")),
            )
            .expect("store");
            let enterprise = sample::enterprise(d as u32);
            store.register_enterprise(&enterprise).expect("register");
            let mut signatures = HashMap::new();
            let docs = (0..cases)
                .map(|_| {
                    let case = store
                        .open_case(&sample::new_case(&enterprise))
                        .expect("case");
                    for f in 0..findings {
                        let (text, category, basis, place, _) =
                            sample::FINDINGS[f % sample::FINDINGS.len()];
                        let finding = anjian_core::NewFinding {
                            description: format!("{text}（{f}）"),
                            category: category.into(),
                            legal_basis: basis.into(),
                            place: place.into(),
                            ..Default::default()
                        };
                        store.add_finding(case, &finding).expect("finding");
                    }
                    let signed = SignedCase::decode(&store.export_case(case).expect("export"))
                        .expect("a signed case");
                    signatures.extend(signed.signatures.into_iter().map(|s| (s.hash, s)));
                    let doc = AutoCommit::load(&store.export_document(case).expect("export"))
                        .expect("load");
                    (case, doc)
                })
                .collect();
            Device {
                token: None,
                docs,
                key: store.public_key(),
                signatures: std::sync::Arc::new(signatures),
                signing: false,
            }
        })
        .collect()
}

fn raw_change_bytes(doc: &AutoCommit) -> u64 {
    doc.clone()
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().len() as u64)
        .sum()
}

/// Binds the device's actor id (the author of its documents), and its key when it signs,
/// to its user; returns a token.
async fn login(addr: &str, username: &str, doc: &AutoCommit, key: Option<&PublicKey>) -> String {
    let actor = doc.clone().get_changes(&[])[0].actor_id().to_hex_string();
    anjian_tests::login_device_with_key(&format!("http://{addr}"), username, &actor, key).await
}

/// Resets the server's peak memory before a measured phase and says where it starts.
fn reset_peak_memory(child: &std::process::Child) {
    process::reset_peak_memory(child);
    println!(
        "  server before the sync: {:.1} MB",
        process::rss(child) as f64 / 1e6
    );
}

/// Every device syncs all its documents at once; returns the time until the last device
/// has every document acknowledged, and what crossed the wire.
async fn run(addr: &str, devices: &[Device]) -> (Duration, Totals) {
    run_spread(&[addr.to_owned()], devices).await
}

/// As `run`, device `i` syncing with the server at `addrs[i % addrs.len()]`.
async fn run_spread(addrs: &[String], devices: &[Device]) -> (Duration, Totals) {
    let start = Instant::now();
    let tasks: Vec<_> = devices
        .iter()
        .enumerate()
        .map(|(i, device)| {
            let addr = &addrs[i % addrs.len()];
            let url = match &device.token {
                Some(token) => format!("ws://{addr}/sync?token={token}"),
                None => format!("ws://{addr}/sync"),
            };
            let docs: Vec<(CaseId, AutoCommit)> =
                device.docs.iter().map(|(c, d)| (*c, d.clone())).collect();
            let signatures = device.signing.then(|| device.signatures.clone());
            tokio::spawn(push_all(url, format!("device-{i}"), docs, signatures))
        })
        .collect();
    let mut totals = Totals::default();
    for task in tasks {
        let (bytes, frames) = task.await.expect("device task");
        totals.wire_bytes += bytes;
        totals.frames += frames;
    }
    (start.elapsed(), totals)
}

/// One device: join, then the Automerge sync protocol for each document until the
/// server's heads equal ours; with `signatures`, each sync message carries the signatures
/// of its changes.
async fn push_all(
    url: String,
    peer: String,
    mut docs: Vec<(CaseId, AutoCommit)>,
    signatures: Option<Signatures>,
) -> (u64, u64) {
    let extensions = signatures
        .iter()
        .map(|_| anjian_core::sync::wire::SIGNATURES_EXTENSION.to_owned())
        .collect();
    let mut totals = Totals::default();
    let (mut socket, server) = join(&url, &peer, extensions, &mut totals).await;
    let mut states: Vec<sync::State> = docs.iter().map(|_| sync::State::new()).collect();
    let index: std::collections::HashMap<DocumentId, usize> = docs
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (DocumentId::of(*c), i))
        .collect();
    let mut pending = docs.len();
    let frames_of = |document_id: DocumentId, m: sync::Message| {
        let records: Vec<ChangeSignature> = match &signatures {
            Some(signatures) => m
                .changes
                .iter()
                .filter_map(|c| automerge::Change::try_from(c).ok())
                .filter_map(|c| signatures.get(&c.hash()).cloned())
                .collect(),
            None => Vec::new(),
        };
        vec![
            WireMessage::Sync {
                sender_id: peer.clone(),
                target_id: server.clone(),
                document_id,
                data: m.encode(),
                signatures: ChangeSignature::records(&records),
            }
            .encode(),
        ]
    };
    for (i, (case, doc)) in docs.iter_mut().enumerate() {
        if let Some(m) = doc.sync().generate_sync_message(&mut states[i]) {
            for frame in frames_of(DocumentId::of(*case), m) {
                send(&mut socket, frame, &mut totals).await;
            }
        }
    }
    let mut done = vec![false; docs.len()];
    while pending > 0 {
        let (document_id, message) = next_sync(&mut socket, &peer, &mut totals).await;
        let Some(&i) = index.get(&document_id) else {
            continue;
        };
        let doc = &mut docs[i].1;
        doc.sync()
            .receive_sync_message(&mut states[i], message)
            .expect("apply");
        if let Some(m) = doc.sync().generate_sync_message(&mut states[i]) {
            for out in frames_of(document_id, m) {
                send(&mut socket, out, &mut totals).await;
            }
        }
        if !done[i] && states[i].their_heads.as_deref() == Some(&doc.get_heads()[..]) {
            done[i] = true;
            pending -= 1;
        }
    }
    let _ = socket.close(None).await;
    (totals.wire_bytes, totals.frames)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `url` and joins as `peer` with `extensions`; returns the socket and the
/// server's peer id.
async fn join(
    url: &str,
    peer: &str,
    extensions: Vec<String>,
    totals: &mut Totals,
) -> (Socket, String) {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let join = WireMessage::Join {
        sender_id: peer.to_owned(),
        metadata: PeerMetadata {
            storage_id: None,
            is_ephemeral: true,
            extensions,
        },
        supported_versions: vec![PROTOCOL_VERSION.into()],
    }
    .encode();
    send(&mut socket, join, totals).await;
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(b))) => {
                totals.wire_bytes += b.len() as u64;
                totals.frames += 1;
                match WireMessage::decode(&b) {
                    Ok(WireMessage::Peer { sender_id, .. }) => return (socket, sender_id),
                    other => panic!("{peer}: expected peer, got {other:?}"),
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("{peer}: connection ended before peer: {other:?}"),
        }
    }
}

/// Sends one frame, counting it.
async fn send(socket: &mut Socket, frame: Vec<u8>, totals: &mut Totals) {
    totals.wire_bytes += frame.len() as u64;
    totals.frames += 1;
    socket
        .send(Message::Binary(frame.into()))
        .await
        .expect("send");
}

/// The next sync message the server sends (other frames are counted and skipped).
async fn next_sync(
    socket: &mut Socket,
    peer: &str,
    totals: &mut Totals,
) -> (DocumentId, sync::Message) {
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(120), socket.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => b,
            Ok(Some(Ok(_))) => continue,
            other => panic!("{peer}: connection ended early: {other:?}"),
        };
        totals.wire_bytes += frame.len() as u64;
        totals.frames += 1;
        if let Ok(WireMessage::Sync {
            document_id, data, ..
        }) = WireMessage::decode(&frame)
        {
            return (
                document_id,
                sync::Message::decode(&data).expect("sync message"),
            );
        }
    }
}
