//! The sync server killed (SIGKILL) many times at random moments while inspectors' devices
//! edit and sync (docs/TESTING.md). After every kill, everything a device recorded as
//! acknowledged by the server is in the server's files; after every restart on those files,
//! every device's next sync completes; at the end every device and the server hold the same
//! heads for every case, with every finding any device recorded. The durability test runs
//! it with a few dozen kills, the `sync_kills` benchmark with 200: the same code.
//!
//! **Acknowledged** is what a device knows, read from its store file after the kill:
//! `change_acks` (every change the device held when the server's heads in a sync message
//! equalled its own, recorded in the same transaction as the sync state) and, per case, the
//! heads of the kept sync state (`sync_states.acked`, and the shared heads the next sync
//! starts from). The server's files are read read-only, exactly as the kill left them, so
//! that the restart that follows opens them untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anjian_core::Role;
use automerge::AutoCommit;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};

use crate::{add_user, process};
use device::{Handle, Holdings, Reply, Request, Setup};

mod device;

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server binary: `test_server DATA_DIR ADDRESS`, printing `listening ADDRESS`.
    pub server: PathBuf,
    /// How many times the server is killed.
    pub kills: usize,
    /// Inspectors' devices, all of one district, so that each syncs every case.
    pub devices: usize,
    /// The seed of every random choice: each device's edits and how long the devices work
    /// before each kill. Threads and the network are not replayed: a seed gives the same
    /// schedule of edits and kill delays, not the same interleaving.
    pub seed: u64,
}

impl Options {
    /// A run of `server` with three devices and `kills` kills, unless `ANJIAN_KILLS` gives
    /// another number; the seed is `ANJIAN_KILL_SEED`, or a fresh one.
    pub fn from_env(server: impl Into<PathBuf>, kills: usize) -> Options {
        let number = |name: &str| {
            std::env::var(name).ok().map(|v| {
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number"))
            })
        };
        Options {
            server: server.into(),
            kills: number("ANJIAN_KILLS").map_or(kills, |n| n as usize),
            devices: 3,
            seed: number("ANJIAN_KILL_SEED").unwrap_or_else(rand::random),
        }
    }
}

/// What a run counted.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// The seed it ran with.
    pub seed: u64,
    /// Times the server was killed (and restarted on its files).
    pub kills: usize,
    /// Sync calls that completed.
    pub syncs_completed: usize,
    /// Sync calls cut by a kill (each failed with a network error).
    pub syncs_interrupted: usize,
    /// Sync attempts after a restart beyond each device's first.
    pub retries_after_restart: usize,
    /// Edits the devices made (cases opened, findings added and edited).
    pub edits: usize,
    /// Distinct changes the devices recorded as acknowledged by the end.
    pub changes_acknowledged: usize,
    /// Acknowledged changes and heads looked up in the server's files, over all kills.
    pub acknowledgements_checked: usize,
    /// Each acknowledged change or head that was not in the server's files after a kill.
    pub missing: Vec<String>,
    /// Cases at the end.
    pub cases: usize,
    /// Changes on the server at the end.
    pub server_changes: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed: {}", self.seed)?;
        writeln!(f, "kills: {}", self.kills)?;
        writeln!(f, "syncs completed: {}", self.syncs_completed)?;
        writeln!(f, "syncs interrupted by a kill: {}", self.syncs_interrupted)?;
        writeln!(
            f,
            "sync attempts after a restart beyond the first: {}",
            self.retries_after_restart
        )?;
        writeln!(f, "edits on the devices: {}", self.edits)?;
        writeln!(
            f,
            "changes acknowledged: {} (looked up after kills: {})",
            self.changes_acknowledged, self.acknowledgements_checked
        )?;
        writeln!(f, "missing: {}", self.missing.len())?;
        if self.missing.is_empty() {
            writeln!(
                f,
                "at the end: {} cases, {} changes, identical on every device and the server",
                self.cases, self.server_changes
            )?;
        } else {
            writeln!(f, "the run stopped after the kill that lost them")?;
        }
        write!(f, "time: {:.1} s", self.elapsed.as_secs_f64())
    }
}

/// The devices work for a random time below this before each kill, in milliseconds.
const WORK_MS: u64 = 600;
/// Rounds of every device syncing at the end before the run fails to converge.
const CONVERGE_PASSES: usize = 8;
const DISTRICT: &str = "310101";
const DEPARTMENT: &str = "应急管理";

/// Runs the server, the devices and the kills; panics, naming the seed, when a device's
/// sync fails other than by a kill, when a device cannot sync after a restart, when the
/// server does not start on its files, or when the end state differs. A kill after which
/// acknowledged changes are missing ends the run, with them in `Counts::missing`.
pub fn run(options: &Options) -> Counts {
    let started = Instant::now();
    let seed = options.seed;
    println!(
        "sync_kills: seed {seed}, {} kills, {} devices (replay the schedule with ANJIAN_KILL_SEED={seed})",
        options.kills, options.devices
    );
    let run = Run::new(options);
    let mut server = Server::start(&options.server, &run.data, "127.0.0.1:0", &run.log);
    let url = format!("http://{}", server.addr);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = Counts {
        seed,
        ..Counts::default()
    };

    std::thread::scope(|scope| {
        let devices: Vec<Handle> = run
            .users
            .iter()
            .enumerate()
            .map(|(index, user)| {
                let setup = Setup {
                    index,
                    user: user.clone(),
                    dir: run.dir.path().to_owned(),
                    url: url.clone(),
                    seed: rng.random(),
                };
                Handle::spawn(scope, setup)
            })
            .collect();

        for kill in 1..=options.kills {
            // After every restart, every device's next sync completes (all at once).
            for device in &devices {
                device.send(Request::Sync);
            }
            for device in &devices {
                match device.receive() {
                    Ok(Reply::Synced { attempts, .. }) => {
                        counts.syncs_completed += 1;
                        counts.retries_after_restart += attempts - 1;
                    }
                    Ok(_) => unreachable!("a sync is answered with Synced"),
                    Err(e) => run.fail(format!(
                        "after restart {}: {e}{}",
                        kill - 1,
                        server.log_tail()
                    )),
                }
            }

            // The devices edit and sync until the server dies under them.
            let stop = Arc::new(AtomicBool::new(false));
            for device in &devices {
                device.send(Request::Work(stop.clone()));
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..WORK_MS)));
            // Set before the kill: a sync that fails from here on was cut by it.
            stop.store(true, Ordering::SeqCst);
            server.kill();
            counts.kills += 1;
            for device in &devices {
                match device.receive() {
                    Ok(Reply::Worked(worked)) => {
                        counts.syncs_completed += worked.completed;
                        counts.syncs_interrupted += worked.interrupted;
                        counts.edits += worked.edits;
                    }
                    Ok(_) => unreachable!("work is answered with Worked"),
                    Err(e) => run.fail(format!("before kill {kill}: {e}")),
                }
            }

            run.check_acknowledged(kill, &mut counts);
            if !counts.missing.is_empty() {
                // Lost for good on the server: what follows would only fail on it (a device
                // sending another's lost change is refused).
                counts.changes_acknowledged = run.changes_acknowledged().len();
                return;
            }
            server = Server::start(&options.server, &run.data, &server.addr, &run.log);
        }

        // Every device syncs until a whole pass exchanges nothing.
        let mut converged = false;
        for _ in 0..CONVERGE_PASSES {
            let mut exchanged = 0;
            for device in &devices {
                match device.ask(Request::Sync) {
                    Ok(Reply::Synced { documents, .. }) => {
                        counts.syncs_completed += 1;
                        exchanged += documents;
                    }
                    Ok(_) => unreachable!("a sync is answered with Synced"),
                    Err(e) => run.fail(format!("after the last restart: {e}")),
                }
            }
            if exchanged == 0 {
                converged = true;
                break;
            }
        }
        if !converged {
            run.fail(format!(
                "the devices still exchanged documents after {CONVERGE_PASSES} passes"
            ));
        }
        let holdings: Vec<Holdings> = devices
            .iter()
            .map(|device| match device.ask(Request::Report) {
                Ok(Reply::Holds(holds)) => holds,
                Ok(_) => unreachable!("a report is answered with Holds"),
                Err(e) => run.fail(format!("reading a device at the end: {e}")),
            })
            .collect();
        drop(devices);
        server.kill();
        run.check_end(&holdings, &mut counts);
    });
    counts.elapsed = started.elapsed();
    counts
}

/// A run's files: the server's data folder and log, the devices' stores.
struct Run {
    seed: u64,
    dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    users: Vec<String>,
}

impl Run {
    /// A temporary folder with the server's accounts, one inspector per device.
    fn new(options: &Options) -> Run {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("server");
        let users: Vec<String> = (0..options.devices).map(|i| format!("kill{i}")).collect();
        for user in &users {
            add_user(&data, user, Role::Inspector, DISTRICT, DEPARTMENT);
        }
        Run {
            seed: options.seed,
            log: dir.path().join("server.log"),
            dir,
            data,
            users,
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!("sync_kills seed {}: {what}", self.seed)
    }

    fn store(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.db"))
    }

    /// After a kill: looks up everything each device records as acknowledged in the
    /// server's files as the kill left them; what is not there goes to `missing`.
    fn check_acknowledged(&self, kill: usize, counts: &mut Counts) {
        let documents = server_documents(&self.data)
            .unwrap_or_else(|e| self.fail(format!("after kill {kill}, the server's files: {e}")));
        for user in &self.users {
            let acked = acknowledged(&self.store(user))
                .unwrap_or_else(|e| self.fail(format!("{user}'s store after kill {kill}: {e}")));
            for Ack { case, hash, source } in acked {
                counts.acknowledgements_checked += 1;
                let held = documents
                    .get(&case)
                    .is_some_and(|doc| doc.hashes.contains(&hash));
                if !held {
                    counts.missing.push(format!(
                        "after kill {kill}: {source} {hash} of case {case}, acknowledged to {user}, is not on the server"
                    ));
                }
            }
        }
    }

    /// Every change (case, hash) some device records as acknowledged.
    fn changes_acknowledged(&self) -> BTreeSet<(String, String)> {
        let mut acked = BTreeSet::new();
        for user in &self.users {
            let rows = acknowledged(&self.store(user))
                .unwrap_or_else(|e| self.fail(format!("{user}'s store: {e}")));
            acked.extend(
                rows.into_iter()
                    .filter(|ack| ack.source == Source::Change)
                    .map(|ack| (ack.case, ack.hash)),
            );
        }
        acked
    }

    /// At the end, with the server stopped: every device holds exactly the server's cases
    /// with the server's heads (which the catalog lists too), every finding any device
    /// recorded, and every change as acknowledged; the server never panicked.
    fn check_end(&self, holdings: &[Holdings], counts: &mut Counts) {
        let documents = server_documents(&self.data)
            .unwrap_or_else(|e| self.fail(format!("the server's files at the end: {e}")));
        let theirs: BTreeSet<&String> = documents.keys().collect();
        for (user, holds) in self.users.iter().zip(holdings) {
            let ours: BTreeSet<&String> = holds.cases.keys().collect();
            if theirs != ours {
                self.fail(format!(
                    "{user} holds cases {ours:?}, the server {theirs:?}"
                ));
            }
            for (case, held) in &holds.cases {
                let doc = &documents[case];
                if held.heads != doc.heads || doc.heads != doc.catalog_heads {
                    self.fail(format!(
                        "case {case}: {user} has heads {:?}, the server {:?} (its catalog {:?})",
                        held.heads, doc.heads, doc.catalog_heads
                    ));
                }
            }
            for (case, finding) in holdings.iter().flat_map(|h| &h.created) {
                let present = holds
                    .cases
                    .get(&case.to_string())
                    .is_some_and(|held| held.findings.contains(finding));
                if !present {
                    self.fail(format!(
                        "finding {finding} of case {case}, recorded on a device, is not on {user}'s"
                    ));
                }
            }
        }
        counts.changes_acknowledged = self.changes_acknowledged().len();
        counts.cases = documents.len();
        counts.server_changes = documents.values().map(|d| d.hashes.len()).sum();
        // In step, each device holds every change as acknowledged.
        if counts.changes_acknowledged != counts.server_changes {
            self.fail(format!(
                "the devices acknowledged {} changes, the server holds {}",
                counts.changes_acknowledged, counts.server_changes
            ));
        }
        if let Some(panic) = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("panicked"))
        {
            self.fail(format!("the server panicked: {panic}"));
        }
    }
}

/// The server as a child process, killed when dropped.
struct Server {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
}

impl Server {
    /// Starts the server on its data folder at `addr`. The address of a killed server may
    /// be taken for a moment by another socket: the start is tried again for a while.
    fn start(bin: &Path, data: &Path, addr: &str, log: &Path) -> Server {
        for _ in 0..50 {
            let stderr: File = OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("server log");
            let started =
                process::try_spawn_listening(Command::new(bin).arg(data).arg(addr).stderr(stderr));
            if let Some((child, addr)) = started {
                return Server {
                    child: Some(child),
                    addr,
                    log: log.to_owned(),
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let tail = Server {
            child: None,
            addr: addr.to_owned(),
            log: log.to_owned(),
        }
        .log_tail();
        panic!(
            "the server does not start on {} at {addr}{tail}",
            data.display()
        );
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            process::stop(child);
        }
    }

    /// The end of what the server wrote to stderr, to explain a failure.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("\nthe server's stderr ends with:\n{tail}")
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One case document in the server's files.
struct StoredDocument {
    /// Every change's hash.
    hashes: BTreeSet<String>,
    /// Its heads (hex, sorted).
    heads: Vec<String>,
    /// The heads the catalog lists (`documents.heads`).
    catalog_heads: Vec<String>,
}

/// Every case document in the server's database, read as the server reads it (snapshot,
/// then chunks in order): from a SQLite file through a read-only connection, so that
/// nothing is checkpointed or changed before the server opens the files again; or from
/// the data folder's PostgreSQL database when the tests run against PostgreSQL.
fn server_documents(data: &Path) -> Result<BTreeMap<String, StoredDocument>, String> {
    let stored = match anjian_sync_server::testing::postgres_database(data) {
        Some(url) => postgres_documents(&url)?,
        None => sqlite_documents(&data.join("server.db"))?,
    };
    let mut out = BTreeMap::new();
    for (case, snapshot, catalog, pieces) in stored {
        let damaged = |e: automerge::AutomergeError| format!("case {case} does not load: {e}");
        let mut doc = AutoCommit::load(&snapshot).map_err(damaged)?;
        for piece in pieces {
            doc.load_incremental(&piece).map_err(damaged)?;
        }
        let hashes = doc
            .get_changes(&[])
            .iter()
            .map(|c| c.hash().to_string())
            .collect();
        let mut heads: Vec<String> = doc.get_heads().iter().map(ToString::to_string).collect();
        heads.sort();
        let mut catalog_heads: Vec<String> = catalog
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        catalog_heads.sort();
        out.insert(
            case,
            StoredDocument {
                hashes,
                heads,
                catalog_heads,
            },
        );
    }
    Ok(out)
}

/// A stored document: case, snapshot, heads in the catalog, chunks in order.
type Stored = (String, Vec<u8>, String, Vec<Vec<u8>>);

fn sqlite_documents(path: &Path) -> Result<Vec<Stored>, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    let sql = |e: rusqlite::Error| e.to_string();
    let rows: Vec<(String, Vec<u8>, String)> = conn
        .prepare("SELECT case_id, snapshot, heads FROM documents")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(sql)?;
    let mut chunks = conn
        .prepare("SELECT bytes FROM chunks WHERE case_id = ?1 ORDER BY seq")
        .map_err(sql)?;
    rows.into_iter()
        .map(|(case, snapshot, heads)| {
            let pieces = chunks
                .query_map([&case], |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(sql)?;
            Ok((case, snapshot, heads, pieces))
        })
        .collect()
}

fn postgres_documents(url: &str) -> Result<Vec<Stored>, String> {
    use anjian_sync_server::db::{Conn, postgres::PgConn};
    let mut conn = PgConn::connect(url).map_err(|e| e.to_string())?;
    let conn: &mut dyn Conn = &mut conn;
    let read = |conn: &mut dyn Conn| -> anjian_sync_server::AppResult<Vec<Stored>> {
        let rows = conn.query("SELECT case_id, snapshot, heads FROM documents", &[])?;
        rows.iter()
            .map(|row| {
                let case: String = row.get(0)?;
                let pieces = conn.query_map(
                    "SELECT bytes FROM chunks WHERE case_id = ?1 ORDER BY seq",
                    anjian_sync_server::params![&case],
                    |r| r.get(0),
                )?;
                Ok((case, row.get(1)?, row.get(2)?, pieces))
            })
            .collect()
    };
    conn.consistent(read).map_err(|e| e.to_string())
}

/// One thing a device's store records the server as having.
struct Ack {
    /// The case (id as text).
    case: String,
    /// A change hash (hex).
    hash: String,
    /// Which record says so.
    source: Source,
}

/// Where a device records what the server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `change_acks`: every change the device held when the server's heads equalled its
    /// own.
    Change,
    /// `sync_states.acked`: those heads.
    AckedHead,
    /// The shared heads of the kept sync state, which the next sync starts from.
    SharedHead,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Change => "change",
            Source::AckedHead => "acknowledged head",
            Source::SharedHead => "shared head",
        })
    }
}

/// Everything a device's store records the server as having, read through a second,
/// read-only connection (the device is idle meanwhile).
fn acknowledged(store: &Path) -> Result<Vec<Ack>, String> {
    let read = || -> rusqlite::Result<Vec<Ack>> {
        let conn = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut out = Vec::new();
        let mut changes = conn.prepare("SELECT case_id, change_hash FROM change_acks")?;
        for row in changes.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (case, hash) = row?;
            out.push(Ack {
                case,
                hash,
                source: Source::Change,
            });
        }
        let mut states = conn.prepare("SELECT case_id, state, acked FROM sync_states")?;
        let rows = states.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (case, state, acked) = row?;
            for head in acked.split(',').filter(|h| !h.is_empty()) {
                out.push(Ack {
                    case: case.clone(),
                    hash: head.to_owned(),
                    source: Source::AckedHead,
                });
            }
            // The store takes a state it cannot decode for a fresh one: nothing shared.
            if let Ok(state) = automerge::sync::State::decode(&state) {
                for head in state.shared_heads {
                    out.push(Ack {
                        case: case.clone(),
                        hash: head.to_string(),
                        source: Source::SharedHead,
                    });
                }
            }
        }
        Ok(out)
    };
    read().map_err(|e| e.to_string())
}
