//! anjian-sim: a district under faults, replayable from a seed.
//!
//! One server and five inspectors' phones (three districts, a supervisor each, an admin)
//! run in one process on virtual time. A seeded scheduler decides everything: what the
//! inspectors record through the real `Store` (cases, findings, levels, places, shared
//! descriptions, three-violation records, submissions), what supervisors decide through
//! the server's own review step, when phones sync, and every fault: frames dropped,
//! duplicated, delayed past one another or cut short, phones cut off from the server,
//! the server crashing (losing what its writer had not yet made durable) and restarting
//! on its files, phones crashing and reopening their stores, phone clocks hours off.
//!
//! At the end every partition heals and every phone syncs until nothing moves; then the
//! outcome is checked against a model written without the rule book (`check`).

mod check;
mod net;
pub mod server;
pub mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use anjian_core::injected::{self, Bug};
use anjian_core::sync::SyncSession;
use anjian_core::sync::wire::WireMessage;
use anjian_core::{
    AnswerInput, AnswerResult, CaseId, Enterprise, FieldValue, FindingEdit, FindingId, HazardStep,
    Level, PhotoTarget, RectificationOrder, RectificationState, ReinspectionResult, Resolution,
    ReviewAction, Store, Violation, ViolationKind, WritKind, sample,
};
use chrono::{DateTime, Duration, FixedOffset, TimeZone};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use net::{Net, Payload, To};
use server::{ConnId, SimServer};

/// The server's name in the phones' stores.
const SERVER: &str = "sim://server";
/// Steps of one schedule before everything heals.
const STEPS: usize = 400;
/// A phone gives up a sync round that has not moved for this long (virtual ms).
const ROUND_TIMEOUT: u64 = 30_000;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The seed.
    pub seed: u64,
    /// A bug injected on purpose, to show it is caught.
    pub bug: Option<Bug>,
    /// Print the trace as it goes.
    pub verbose: bool,
    /// Inspectors also order and move rectifications, fill in checklists, attach photos
    /// and resolve conflicts. Off, a seed replays the schedule it had before these were
    /// simulated (the regression seeds found then).
    pub field_work: bool,
    /// Inspectors also enter again by hand, now and then, a change of theirs that a
    /// refusal dropped and that was not entered again (the case may have been reopened
    /// since). Off, a seed replays the schedule it had before this was simulated.
    pub by_hand: bool,
}

impl Options {
    /// Seed `seed` with every action, no bug, quietly.
    pub fn seed(seed: u64) -> Options {
        Options {
            seed,
            bug: None,
            verbose: false,
            field_work: true,
            by_hand: true,
        }
    }
}

/// How a schedule ended.
#[derive(Debug)]
pub struct Outcome {
    /// One line per event.
    pub trace: Vec<String>,
    /// The first check that failed.
    pub failure: Option<String>,
}

/// What one schedule sent, kept when asked (`record`): the fuzzers' seed corpora are
/// this traffic.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Per connection, in the order opened: the phone's index and every frame it sent the
    /// server, in order.
    pub sessions: Vec<(usize, Vec<Vec<u8>>)>,
    /// Every frame the server sent.
    pub replies: Vec<Vec<u8>>,
    /// Every case the server stores at the end, as a case file (`Store::export_case`: its
    /// changes and their signatures).
    pub documents: Vec<Vec<u8>>,
    open: BTreeMap<ConnId, usize>,
}

/// Runs schedule `seed` and returns what was sent.
pub fn record(seed: u64) -> Traffic {
    let mut sim = Sim::new(Options::seed(seed));
    sim.traffic = Some(Traffic::default());
    // A failing schedule's traffic is as good a seed as any.
    let _ = sim.schedule();
    let mut traffic = sim.traffic.take().unwrap_or_default();
    if let Some(server) = &sim.server {
        for case in sim.model.cases.keys() {
            if let Ok(Some(doc)) = server.storage().load_document(*case) {
                let mut file = anjian_core::signing::SignedCase::unsigned(&doc);
                let hashes: Vec<automerge::ChangeHash> = doc
                    .clone()
                    .get_changes(&[])
                    .iter()
                    .map(|c| c.hash())
                    .collect();
                file.signatures = server.storage().signatures_of(&hashes).unwrap_or_default();
                traffic.documents.push(file.encode());
            }
        }
    }
    traffic
}

/// A write of one field by one phone, for the conflicts check.
struct Write {
    case: CaseId,
    finding: FindingId,
    field: &'static str,
    value: String,
    change: String,
}

/// What the model knows, written without the rule book.
#[derive(Default)]
struct Model {
    /// Each case: its owning district and the districts it is shared with (indices).
    cases: BTreeMap<CaseId, (usize, BTreeSet<usize>)>,
    writes: Vec<Write>,
    /// Cases a supervisor approved at some point (an edit concurrent with that is refused
    /// legitimately).
    approved: BTreeSet<CaseId>,
    /// Per finding, the phones that ordered or moved its rectification or raised it to
    /// major: a step taken on one phone concurrently with another's step, or with another's
    /// raising the hazard to major (closing a major hazard is the supervisors'), may no
    /// longer be one the rule book allows when the server judges it (refused legitimately).
    rectified: BTreeMap<(CaseId, FindingId), BTreeSet<usize>>,
    /// Per case, every change the server showed a phone as its own (acknowledged).
    acknowledged: BTreeMap<CaseId, BTreeSet<automerge::ChangeHash>>,
}

struct Round {
    conn: ConnId,
    session: Option<SyncSession>,
    cursor: i64,
    /// The page of the catalog was cut short: the next round follows at once.
    more: bool,
    moved: u64,
}

struct Phone {
    path: PathBuf,
    store: Option<Store>,
    round: Option<Round>,
    skew: Duration,
    ids: Arc<std::sync::Mutex<StdRng>>,
    enterprises: Vec<Enterprise>,
}

struct Sim {
    rng: StdRng,
    now: u64,
    dir: tempfile::TempDir,
    server: Option<SimServer>,
    phones: Vec<Phone>,
    net: Net,
    model: Model,
    next_conn: ConnId,
    trace: Vec<String>,
    verbose: bool,
    /// Faults on (off while healing).
    faults: bool,
    /// What was sent, when recording.
    traffic: Option<Traffic>,
    /// Draws the field work (`Options::field_work`), apart from `rng` so that schedules
    /// without it stay as they were.
    field_work: Option<StdRng>,
    /// Draws the entering again by hand (`Options::by_hand`), apart from the others so
    /// that a schedule in which nothing waits to be entered again stays as it was.
    by_hand: Option<StdRng>,
}

/// Runs one schedule.
pub fn run(options: Options) -> Outcome {
    injected::inject(options.bug);
    let mut sim = Sim::new(options);
    let failure = sim.schedule().err();
    injected::inject(None);
    Outcome {
        trace: sim.trace,
        failure,
    }
}

/// The one-line command that replays a seed with its trace.
pub fn replay_command(seed: u64, bug: Option<Bug>) -> String {
    let bug = bug.map(|b| format!(" --bug {b:?}")).unwrap_or_default();
    format!("cargo run -p anjian-sim --release -- --seed {seed} --trace{bug}")
}

/// Where stores live: tmpfs where there is one.
pub fn tmp_root() -> PathBuf {
    // Stores on tmpfs where there is one: thousands of schedules fsync a lot.
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(&shm).is_ok() {
        shm
    } else {
        std::env::temp_dir()
    }
}

fn every_case() -> anjian_core::CaseQuery {
    anjian_core::CaseQuery {
        limit: u32::MAX,
        ..Default::default()
    }
}

/// A phone's clock at virtual time `now`, `skew` off.
fn phone_clock(skew: Duration, now: u64) -> anjian_core::Clock {
    Arc::new(move || base_time() + skew + Duration::milliseconds(now as i64))
}

fn base_time() -> DateTime<FixedOffset> {
    FixedOffset::east_opt(8 * 3600)
        .expect("UTC+8")
        .with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
        .single()
        .expect("a valid time")
}

impl Sim {
    fn new(options: Options) -> Sim {
        let mut rng = StdRng::seed_from_u64(options.seed);
        let dir = tempfile::tempdir_in(tmp_root()).expect("temp dir");
        world::server_data(&dir.path().join("server"));
        let server = SimServer::open(&dir.path().join("server")).expect("server opens");
        let phones = (0..world::INSPECTORS.len())
            .map(|index| {
                let skew = Duration::minutes(rng.random_range(-6 * 60..=6 * 60));
                let ids = StdRng::seed_from_u64(rng.random());
                let district = world::INSPECTORS[index].1;
                let enterprises = (0..2)
                    .map(|k| {
                        let mut e = sample::enterprise((index * 10 + k) as u32 + 1);
                        e.district = world::district(district);
                        e
                    })
                    .collect();
                Phone {
                    path: dir.path().join(format!("phone-{index}.db")),
                    store: None,
                    round: None,
                    skew,
                    ids: Arc::new(std::sync::Mutex::new(ids)),
                    enterprises,
                }
            })
            .collect();
        let mut sim = Sim {
            rng,
            now: 0,
            dir,
            server: Some(server),
            phones,
            net: Net::default(),
            model: Model::default(),
            next_conn: 1,
            trace: Vec::new(),
            verbose: options.verbose,
            faults: true,
            traffic: None,
            field_work: options
                .field_work
                .then(|| StdRng::seed_from_u64(options.seed ^ 0xf1e1_d000)),
            by_hand: options
                .by_hand
                .then(|| StdRng::seed_from_u64(options.seed ^ 0xa6a1_0000)),
        };
        for index in 0..sim.phones.len() {
            sim.open_store(index).expect("a phone's store opens");
            let phone = &mut sim.phones[index];
            let store = phone.store.as_mut().expect("open");
            // The phone signed in with its key before the schedule (its account was bound
            // in the accounts template).
            if let Some(server) = &sim.server {
                let actor =
                    automerge::ActorId::from(world::device_actor(index).as_bytes().as_slice());
                let storage = server.storage();
                let certificate = storage
                    .register_device_key(&actor.to_hex_string(), &store.public_key())
                    .expect("the phone's key is recorded");
                store
                    .keep_sign_in(
                        "sim",
                        &anjian_core::signing::Signer::public_key(storage.server_key()),
                        Some(&certificate.encode()),
                    )
                    .expect("the phone keeps its certificate");
                // And took blocks of document numbers at its first sync.
                let user = storage
                    .user(world::INSPECTORS[index].0)
                    .expect("the phone's account");
                let blocks = storage
                    .allocate_number_blocks(
                        &user,
                        &actor.to_hex_string(),
                        &store.public_key().id(),
                        &[WritKind::InspectionRecord],
                    )
                    .expect("blocks allocated");
                store
                    .keep_number_blocks(&blocks)
                    .expect("the phone keeps its blocks");
            }
            for e in &phone.enterprises {
                store.register_enterprise(e).expect("enterprise");
            }
        }
        sim
    }

    fn log(&mut self, line: String) {
        let line = format!("{:>8} {line}", self.now);
        if self.verbose {
            println!("{line}");
        }
        self.trace.push(line);
    }

    fn open_store(&mut self, index: usize) -> Result<(), String> {
        let phone = &mut self.phones[index];
        let ids = phone.ids.clone();
        // The phone's actor id is the first identifier of a new store only.
        let first = std::sync::atomic::AtomicBool::new(!phone.path.exists());
        let actor = world::device_actor(index);
        let ids: anjian_core::Ids = Arc::new(move || {
            if first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                return actor;
            }
            let mut rng = ids.lock().unwrap_or_else(|p| p.into_inner());
            uuid::Builder::from_random_bytes(rng.random()).into_uuid()
        });
        let mut store = Store::open_with_ids(
            &phone.path,
            world::identity(index),
            anjian_core::checklist::Catalog::builtin(),
            ids,
        )
        .map_err(|e| format!("phone {index} cannot open its store: {e}"))?;
        store.set_clock(phone_clock(phone.skew, self.now));
        phone.store = Some(store);
        Ok(())
    }

    fn schedule(&mut self) -> Result<(), String> {
        for _ in 0..STEPS {
            self.now += self.rng.random_range(1..=400);
            self.tick_clocks();
            self.step()?;
        }
        self.log("heal: every partition heals, faults stop".into());
        self.faults = false;
        self.net.heal();
        if self.server.is_none() {
            self.restart()?;
        }
        self.heal()?;
        check::outcome(self)
    }

    /// Phones read the virtual time, each with its own skew.
    fn tick_clocks(&mut self) {
        for phone in &mut self.phones {
            if let Some(store) = phone.store.as_mut() {
                store.set_clock(phone_clock(phone.skew, self.now));
            }
        }
    }

    fn step(&mut self) -> Result<(), String> {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..=44 => {
                self.deliver()?;
            }
            45..=54 => {
                self.flush()?;
            }
            55..=74 => {
                let phone = self.rng.random_range(0..self.phones.len());
                self.act(phone)?;
            }
            75..=86 => {
                let phone = self.rng.random_range(0..self.phones.len());
                self.start_round(phone)?;
            }
            87..=91 => self.supervise()?,
            92..=93 => self.partition(),
            94 => self.crash_server()?,
            95 => self.crash_phone()?,
            _ => {
                self.deliver()?;
            }
        }
        if self.server.is_none() && self.rng.random_bool(0.2) {
            self.restart()?;
        }
        self.time_out_rounds();
        Ok(())
    }

    /// Heals: every phone syncs until a whole pass moves nothing: no phone's cases and
    /// none of the server's (a phone late in a pass may bring the server what the phones
    /// before it have not received).
    fn heal(&mut self) -> Result<(), String> {
        for pass in 0..30 {
            let mut moved = false;
            let commits = self.server_commits()?;
            for index in 0..self.phones.len() {
                let before = self.phone_heads(index)?;
                self.start_round(index)?;
                let mut spins = 0;
                while self.phones[index].round.is_some() {
                    spins += 1;
                    if spins > 10_000 {
                        return Err(format!("phone {index}'s sync round never ends"));
                    }
                    self.now += 10;
                    if !self.deliver()? {
                        self.flush()?;
                        if self.net.is_empty() && self.server_queue() == 0 {
                            // Nothing in flight and the round is not done: it stalled.
                            self.now += ROUND_TIMEOUT + 1;
                            self.time_out_rounds();
                        }
                    }
                }
                let after = self.phone_heads(index)?;
                moved |= before != after;
            }
            self.flush()?;
            while self.deliver()? {}
            moved |= self.server_commits()? != commits;
            if !moved && pass > 0 {
                self.log(format!("quiet after {pass} passes"));
                return Ok(());
            }
        }
        Err("the district never became quiet after healing".into())
    }

    fn server_queue(&self) -> usize {
        self.server.as_ref().map(|s| s.queued()).unwrap_or_default()
    }

    /// The catalog sequence number of the server's last commit.
    fn server_commits(&self) -> Result<i64, String> {
        let server = self.server.as_ref().ok_or("the server is down")?;
        server.storage().last_commit().map_err(|e| e.to_string())
    }

    fn phone_heads(&mut self, index: usize) -> Result<BTreeMap<CaseId, Vec<String>>, String> {
        let store = self.phones[index].store.as_mut().ok_or("a closed store")?;
        let cases = store.cases(&every_case()).map_err(|e| e.to_string())?;
        let mut heads = BTreeMap::new();
        for case in cases {
            heads.insert(case.id, store.heads(case.id).map_err(|e| e.to_string())?);
        }
        Ok(heads)
    }

    /// Delivers the next frame due; `false` if none was in flight.
    fn deliver(&mut self) -> Result<bool, String> {
        let Some(packet) = self.net.next() else {
            return Ok(false);
        };
        self.now = self.now.max(packet.at);
        match packet.to {
            To::Server => self.at_server(packet.conn, packet.from, packet.payload)?,
            To::Phone(index) => self.at_phone(index, packet.conn, packet.payload)?,
        }
        Ok(true)
    }

    fn send(&mut self, to: To, from: usize, conn: ConnId, payload: Payload) {
        let faults = self.faults;
        self.net
            .send(&mut self.rng, self.now, to, from, conn, payload, faults);
    }

    fn at_server(&mut self, conn: ConnId, from: usize, payload: Payload) -> Result<(), String> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        let user = world::INSPECTORS[from].0;
        let out = match payload {
            Payload::Catalog(since) => {
                let page = server.catalog(user, since).map_err(|e| e.to_string())?;
                self.send(To::Phone(from), from, conn, Payload::Page(page));
                return Ok(());
            }
            Payload::Open => {
                if let Some(traffic) = self.traffic.as_mut() {
                    traffic.open.insert(conn, traffic.sessions.len());
                    traffic.sessions.push((from, Vec::new()));
                }
                server.connect(conn, user).map_err(|e| e.to_string())?;
                return Ok(());
            }
            Payload::Close => {
                server.disconnect(conn);
                return Ok(());
            }
            Payload::Frame(bytes) => {
                if let Some(traffic) = self.traffic.as_mut()
                    && let Some(&session) = traffic.open.get(&conn)
                {
                    traffic.sessions[session].1.push(bytes.clone());
                }
                server.on_frame(conn, &bytes)
            }
            Payload::Page(_) => return Ok(()),
        };
        self.send_out(out)
    }

    fn send_out(&mut self, out: server::Out) -> Result<(), String> {
        for (conn, message) in out {
            let Some(phone) = self
                .phones
                .iter()
                .position(|p| p.round.as_ref().is_some_and(|r| r.conn == conn))
            else {
                continue;
            };
            self.note_acknowledged(&message);
            if let Some(traffic) = self.traffic.as_mut() {
                traffic.replies.push(message.encode());
            }
            self.send(
                To::Phone(phone),
                phone,
                conn,
                Payload::Frame(message.encode()),
            );
        }
        Ok(())
    }

    /// Every change a server's sync message shows as its own heads is acknowledged: the
    /// server must never lose it.
    fn note_acknowledged(&mut self, message: &WireMessage) {
        if let WireMessage::Sync {
            document_id, data, ..
        } = message
            && let Ok(sync) = automerge::sync::Message::decode(data)
        {
            self.model
                .acknowledged
                .entry(document_id.case_id())
                .or_default()
                .extend(sync.heads);
        }
    }

    fn at_phone(&mut self, index: usize, conn: ConnId, payload: Payload) -> Result<(), String> {
        let phone = &mut self.phones[index];
        let (Some(store), Some(round)) = (phone.store.as_mut(), phone.round.as_mut()) else {
            return Ok(());
        };
        if round.conn != conn {
            return Ok(());
        }
        round.moved = self.now;
        match payload {
            Payload::Page(page) => {
                let session = SyncSession::plan(store, SERVER, &page).map_err(|e| e.to_string())?;
                round.cursor = page.cursor;
                round.more = page.more;
                if session.is_idle() {
                    session
                        .finish(store, page.cursor)
                        .map_err(|e| e.to_string())?;
                    phone.round = None;
                    if page.more {
                        self.start_round(index)?;
                    }
                    return Ok(());
                }
                let mut session = session;
                let join = session.join();
                round.session = Some(session);
                self.send(To::Server, index, conn, Payload::Open);
                self.send(To::Server, index, conn, Payload::Frame(join));
            }
            Payload::Frame(bytes) => {
                let Some(session) = round.session.as_mut() else {
                    return Ok(());
                };
                match session.on_frame(store, &bytes) {
                    Ok(out) => {
                        let done = session.is_done();
                        for frame in out {
                            self.send(To::Server, index, conn, Payload::Frame(frame));
                        }
                        if done {
                            self.end_round(index, true)?;
                        }
                    }
                    Err(e) => {
                        self.log(format!("phone {index}: round abandoned: {e}"));
                        self.end_round(index, false)?;
                    }
                }
            }
            Payload::Catalog(_) | Payload::Open | Payload::Close => {}
        }
        Ok(())
    }

    fn end_round(&mut self, index: usize, done: bool) -> Result<(), String> {
        let Some(mut round) = self.phones[index].round.take() else {
            return Ok(());
        };
        if done
            && let (Some(session), Some(store)) =
                (round.session.take(), self.phones[index].store.as_mut())
        {
            let report = session
                .finish(store, round.cursor)
                .map_err(|e| e.to_string())?;
            self.log(format!(
                "phone {index}: round done ({} documents, {} refused)",
                report.documents,
                report.refused.len()
            ));
        }
        self.send(To::Server, index, round.conn, Payload::Close);
        if done && round.more {
            self.start_round(index)?;
        }
        Ok(())
    }

    fn start_round(&mut self, index: usize) -> Result<(), String> {
        if self.phones[index].round.is_some() || self.phones[index].store.is_none() {
            return Ok(());
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let since = self.phones[index]
            .store
            .as_ref()
            .map(|s| s.sync_cursor(SERVER))
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        self.phones[index].round = Some(Round {
            conn,
            session: None,
            cursor: 0,
            more: false,
            moved: self.now,
        });
        self.log(format!("phone {index}: sync round {conn}"));
        self.send(To::Server, index, conn, Payload::Catalog(since));
        Ok(())
    }

    fn time_out_rounds(&mut self) {
        for index in 0..self.phones.len() {
            let stalled = self.phones[index]
                .round
                .as_ref()
                .is_some_and(|r| self.now.saturating_sub(r.moved) > ROUND_TIMEOUT);
            if stalled {
                self.log(format!("phone {index}: round timed out"));
                let _ = self.end_round(index, false);
            }
        }
    }

    fn flush(&mut self) -> Result<bool, String> {
        let Some(server) = self.server.as_mut() else {
            return Ok(false);
        };
        if server.queued() == 0 {
            return Ok(false);
        }
        let out = server.flush();
        self.log("server: writer commits".into());
        self.send_out(out)?;
        Ok(true)
    }

    fn crash_server(&mut self) -> Result<(), String> {
        if self.server.take().is_some() {
            self.log("server: crash".into());
            self.net.drop_server_bound();
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<(), String> {
        let server = SimServer::open(&self.dir.path().join("server"))
            .map_err(|e| format!("the server does not restart: {e}"))?;
        self.server = Some(server);
        self.log("server: restarted".into());
        check::acknowledged_kept(self)
    }

    fn crash_phone(&mut self) -> Result<(), String> {
        let index = self.rng.random_range(0..self.phones.len());
        self.log(format!("phone {index}: crash"));
        self.phones[index].round = None;
        self.phones[index].store = None;
        self.open_store(index)?;
        Ok(())
    }

    fn partition(&mut self) {
        let index = self.rng.random_range(0..self.phones.len());
        let cut = self.net.toggle(index);
        self.log(format!(
            "phone {index}: {}",
            if cut { "cut off" } else { "back" }
        ));
    }

    /// A supervisor (or the admin) takes a review action on a case they may read.
    fn supervise(&mut self) -> Result<(), String> {
        let cases: Vec<CaseId> = self.model.cases.keys().copied().collect();
        if cases.is_empty() || self.server.is_none() {
            return Ok(());
        }
        let case = cases[self.rng.random_range(0..cases.len())];
        let pick = self.rng.random_range(0..world::SUPERVISORS.len() + 1);
        let (user, district) = world::SUPERVISORS
            .get(pick)
            .map(|(u, d)| (*u, Some(*d)))
            .unwrap_or(("admin", None));
        let action = [
            ReviewAction::Approve,
            ReviewAction::Return,
            ReviewAction::Reopen,
            ReviewAction::Comment,
        ][self.rng.random_range(0..4)];
        let (owner, shared) = self.model.cases[&case].clone();
        let at = base_time() + Duration::milliseconds(self.now as i64);
        let server = self.server.as_mut().expect("running");
        let (accepted, out) = server
            .review(user, case, action, at)
            .map_err(|e| format!("{user} {action:?}: {e}"))?;
        self.log(format!(
            "{user}: {} {case} -> {}",
            action.code(),
            if accepted { "accepted" } else { "not taken" }
        ));
        if accepted {
            let decides = district.is_none_or(|d| d == owner);
            if action != ReviewAction::Comment && !decides {
                let shared = district.is_some_and(|d| shared.contains(&d));
                return Err(format!(
                    "{user} (shared district: {shared}) took {} on case {case} owned by district {}",
                    action.code(),
                    world::DISTRICTS[owner]
                ));
            }
            if action == ReviewAction::Approve {
                self.model.approved.insert(case);
            }
        }
        self.send_out(out)
    }

    /// An inspector records something on their phone.
    fn act(&mut self, index: usize) -> Result<(), String> {
        if self.enter_again_by_hand(index)? {
            return Ok(());
        }
        if let Some(rng) = self.field_work.as_mut()
            && rng.random_bool(0.35)
        {
            return self.field_work(index);
        }
        let roll = self.rng.random_range(0..100);
        let phone = &mut self.phones[index];
        let Some(store) = phone.store.as_mut() else {
            return Ok(());
        };
        let cases = store.cases(&every_case()).map_err(|e| e.to_string())?;
        if cases.is_empty() || roll < 10 {
            let enterprise = phone.enterprises[self.rng.random_range(0..2)].clone();
            let mut new = sample::new_case(&enterprise);
            let own = world::INSPECTORS[index].1;
            let mut shared = BTreeSet::new();
            if self.rng.random_bool(0.4) {
                let other = (own + self.rng.random_range(1..3)) % 3;
                new.visible_to = vec![world::district(other)];
                shared.insert(other);
            }
            match store.open_case(&new) {
                Ok(case) => {
                    self.model.cases.insert(case, (own, shared));
                    self.log(format!("phone {index}: opens {case}"));
                }
                Err(e) => return Err(format!("phone {index} cannot open a case: {e}")),
            }
            return Ok(());
        }
        let case = cases[self.rng.random_range(0..cases.len())].id;
        let findings: Vec<FindingId> = store
            .case(case)
            .map_err(|e| e.to_string())?
            .findings
            .iter()
            .map(|f| f.id)
            .collect();
        let line;
        let result = if findings.is_empty() || roll < 30 {
            let mut finding = sample::finding("储罐区可燃气体报警器失效");
            if self.rng.random_bool(0.3) {
                finding.violation = Some(Violation {
                    kind: ViolationKind::IllegalOperation,
                    post: "电焊工".into(),
                    person: "赵六".into(),
                });
            }
            line = format!("adds a finding to {case}");
            store.add_finding(case, &finding).map(|_| None)
        } else {
            let finding = findings[self.rng.random_range(0..findings.len())];
            match roll {
                30..=54 => {
                    let level = if self.rng.random_bool(0.5) {
                        Level::Major
                    } else {
                        Level::General
                    };
                    line = format!("sets {finding} level {}", level.code());
                    let edit = FindingEdit {
                        level: Some(level),
                        ..FindingEdit::default()
                    };
                    store
                        .edit_finding(case, finding, &edit)
                        .map(|()| Some((finding, "level", level.code().to_owned())))
                }
                55..=79 => {
                    let place = ["罐区", "一号车间", "配电室"][self.rng.random_range(0..3)];
                    line = format!("sets {finding} place {place}");
                    let edit = FindingEdit {
                        place: Some(place.to_owned()),
                        ..FindingEdit::default()
                    };
                    store
                        .edit_finding(case, finding, &edit)
                        .map(|()| Some((finding, "place", place.to_owned())))
                }
                80..=92 => {
                    line = format!("adds to {finding}'s description");
                    let description = store
                        .case(case)
                        .map_err(|e| e.to_string())?
                        .findings
                        .iter()
                        .find(|f| f.id == finding)
                        .map(|f| format!("{}；补充{}", f.description, index))
                        .unwrap_or_default();
                    let edit = FindingEdit {
                        description: Some(description),
                        ..FindingEdit::default()
                    };
                    store.edit_finding(case, finding, &edit).map(|()| None)
                }
                _ => {
                    line = format!("submits {case}");
                    store.review(case, ReviewAction::Submit, "").map(|()| None)
                }
            }
        };
        match result {
            Ok(write) => {
                if let Some((finding, field, value)) = write {
                    self.record_write(index, case, finding, field, value)?;
                }
                self.log(format!("phone {index}: {line}"));
            }
            // The phone's own rule book said no (an approved case, a step the review
            // state does not allow): nothing was recorded.
            Err(e) => self.log(format!("phone {index}: {line}: not recorded: {e}")),
        }
        Ok(())
    }

    /// Now and then, an inspector enters again by hand one of the phone's own changes that
    /// a refusal dropped and that was not entered again then: the records it wrote into
    /// may be back since. On a case the phone holds as approved, the inspector first asks
    /// the owning district's supervisor to reopen it, as the refusal's reason says to; the
    /// supervisor does so on the server. Returns whether anything was done (when nothing
    /// waits, the schedule goes on as it was).
    fn enter_again_by_hand(&mut self, index: usize) -> Result<bool, String> {
        let (Some(rng), Some(store)) = (self.by_hand.as_mut(), self.phones[index].store.as_mut())
        else {
            return Ok(false);
        };
        let device = store.device_id();
        let waiting: Vec<(CaseId, String)> = store
            .refusals()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|r| {
                r.reentered_as.is_none() && r.change.as_ref().is_some_and(|c| c.device == device)
            })
            .map(|r| (r.case_id, r.change_hash))
            .collect();
        if waiting.is_empty() || !rng.random_bool(0.2) {
            return Ok(false);
        }
        let (case, change) = waiting[rng.random_range(0..waiting.len())].clone();
        let approved = store
            .case(case)
            .is_ok_and(|c| c.state == anjian_core::ReviewState::Approved);
        if approved {
            let owner = self.model.cases[&case].0;
            let (chief, _) = world::SUPERVISORS[owner];
            let at = base_time() + Duration::milliseconds(self.now as i64);
            let Some(server) = self.server.as_mut() else {
                return Ok(false);
            };
            let (accepted, out) = server
                .review(chief, case, ReviewAction::Reopen, at)
                .map_err(|e| format!("{chief} reopen: {e}"))?;
            self.log(format!(
                "phone {index} asks {chief} to reopen {case}: {}",
                if accepted { "reopened" } else { "not taken" }
            ));
            self.send_out(out)?;
            return Ok(true);
        }
        let line = match store.enter_again(case, &change) {
            Ok(new) => format!("phone {index}: enters {change} of {case} again by hand as {new}"),
            Err(e) => {
                format!("phone {index}: enters {change} of {case} again by hand: not entered: {e}")
            }
        };
        self.log(line);
        Ok(true)
    }

    /// Records for the conflicts check that phone `index` just wrote `field` of `finding`.
    fn record_write(
        &mut self,
        index: usize,
        case: CaseId,
        finding: FindingId,
        field: &'static str,
        value: String,
    ) -> Result<(), String> {
        let store = self.phones[index].store.as_mut().expect("the phone wrote");
        let change = store
            .heads(case)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .unwrap_or_default();
        if field == "level" && value == "major" {
            self.model
                .rectified
                .entry((case, finding))
                .or_default()
                .insert(index);
        }
        self.model.writes.push(Write {
            case,
            finding,
            field,
            value,
            change,
        });
        Ok(())
    }

    /// Field work on a case the phone holds: a rectification ordered or moved on, a
    /// checklist attached or one of its items answered (不符合 makes a finding), a photo
    /// attached to a finding, the case handed to a teammate's phone on site (an on-site
    /// merge: the teammate may carry the phone's changes to the server), a conflict
    /// resolved. Drawn from its own generator.
    fn field_work(&mut self, index: usize) -> Result<(), String> {
        let rng = self.field_work.as_mut().expect("field work is on");
        let roll: u32 = rng.random_range(0..100);
        let (pick, other) = (rng.random::<u32>() as usize, rng.random::<u32>() as usize);
        let phones = self.phones.len();
        let Some(store) = self.phones[index].store.as_mut() else {
            return Ok(());
        };
        let cases = store.cases(&every_case()).map_err(|e| e.to_string())?;
        if cases.is_empty() {
            return Ok(());
        }
        let case = cases[pick % cases.len()].id;
        let detail = store.case(case).map_err(|e| e.to_string())?;
        let finding =
            (!detail.findings.is_empty()).then(|| &detail.findings[other % detail.findings.len()]);
        let mut write = None;
        let (line, result) = match (roll, finding) {
            (0..=19, Some(f)) => {
                let order = RectificationOrder {
                    measures: "更换可燃气体报警器探头并校验".into(),
                    deadline: sample::visit_time().date_naive() + Duration::days(15),
                    responsible: "王经理".into(),
                };
                (
                    format!("orders rectification of {}", f.id),
                    store.order_rectification(case, f.id, &order),
                )
            }
            (20..=39, Some(f)) => {
                // The next step of the loop, as an inspector would take it: the enterprise
                // at work; a re-inspection, failed with a new deadline or passed; an
                // extension; closing.
                let rect = f.rectification.as_ref();
                let later = |days| {
                    rect.map_or(sample::visit_time().date_naive(), |r| r.deadline)
                        + Duration::days(days)
                };
                let step = match (rect.map(|r| r.state), other % 3) {
                    (Some(RectificationState::InProgress), 0) => Some(HazardStep::Reinspect {
                        result: ReinspectionResult::Fail,
                        note: "报警器仍未校验".into(),
                        deadline: Some(later(7)),
                        escalation: String::new(),
                    }),
                    (Some(RectificationState::InProgress), 1) => Some(HazardStep::Extend {
                        deadline: later(10),
                        reason: "探头到货延迟，企业书面申请".into(),
                    }),
                    (Some(RectificationState::InProgress), _) => {
                        Some(HazardStep::pass("探头已更换并校验合格"))
                    }
                    (Some(RectificationState::Reinspected), _) => Some(HazardStep::close()),
                    _ => None,
                };
                match step {
                    Some(step) => (
                        format!("records {} on {}", step.action().code(), f.id),
                        store.follow_up(case, f.id, &step),
                    ),
                    None => (
                        format!("moves the rectification of {} to in_progress", f.id),
                        store.move_rectification(case, f.id, RectificationState::InProgress),
                    ),
                }
            }
            (40..=64, _) => match detail.checklists.first() {
                None => (
                    format!("attaches a checklist to {case}"),
                    store.attach_checklist(case, "hot-work").map(drop),
                ),
                Some(list) => {
                    let item = &list.entries[other % list.entries.len()].item.id;
                    let result = [
                        AnswerResult::Compliant,
                        AnswerResult::NotApplicable,
                        AnswerResult::NonCompliant,
                    ][pick % 3];
                    let input = AnswerInput {
                        result,
                        note: String::new(),
                        post: None,
                        person: None,
                    };
                    (
                        format!("answers {item} {}", result.code()),
                        store.answer_item(case, list.id, item, &input).map(drop),
                    )
                }
            },
            (65..=79, Some(f)) => {
                let photo = sample::jpeg(8 + (other % 16) as u32, 8);
                let result = store.ingest_photo(&photo).and_then(|info| {
                    store.attach_photo(case, &PhotoTarget::Finding(f.id), &info.sha256, "现场照片")
                });
                (format!("attaches a photo to {}", f.id), result)
            }
            (80..=94, _) => {
                // On site, without signal: the case goes to a teammate's phone that may
                // see it, which may carry it to the server first.
                let (owner, shared) = &self.model.cases[&case];
                let teammates: Vec<usize> = (0..phones)
                    .filter(|&to| to != index)
                    .filter(|&to| {
                        let district = world::INSPECTORS[to].1;
                        *owner == district || shared.contains(&district)
                    })
                    .collect();
                let Some(&to) = teammates.get(other % teammates.len().max(1)) else {
                    return Ok(());
                };
                if roll.is_multiple_of(2) {
                    let bytes = store.export_case(case).map_err(|e| e.to_string())?;
                    let Some(teammate) = self.phones[to].store.as_mut() else {
                        return Ok(());
                    };
                    (
                        format!("hands {case} to phone {to}"),
                        teammate.merge_case(&bytes).map(drop),
                    )
                } else {
                    let Some(mut teammate) = self.phones[to].store.take() else {
                        return Ok(());
                    };
                    let store = self.phones[index].store.as_mut().expect("open");
                    let met = meet(store, &mut teammate, case);
                    self.phones[to].store = Some(teammate);
                    (
                        format!("meets phone {to} over {case}: left out {:?}", met?),
                        Ok(()),
                    )
                }
            }
            (95..=96, _) => {
                // A 现场检查记录 sealed on site with the next number of the phone's block.
                let result = store
                    .create_writ(case, WritKind::InspectionRecord, None)
                    .and_then(|writ| store.seal_writ(case, writ));
                let line = match &result {
                    Ok(seal) => format!("seals 现场检查记录 {} in {case}", seal.number),
                    Err(_) => format!("seals a 现场检查记录 in {case}"),
                };
                (line, result.map(drop))
            }
            _ => {
                let conflicts = store.conflicts(case).map_err(|e| e.to_string())?;
                let Some(conflict) = conflicts.first() else {
                    return Ok(());
                };
                let chosen = other % conflict.values.len();
                if let ([_, finding, field], FieldValue::Text(value)) =
                    (conflict.path.as_slice(), &conflict.values[chosen].value)
                    && let (Ok(finding), Some(field)) = (
                        finding.parse::<FindingId>(),
                        ["level", "place"].into_iter().find(|f| f == field),
                    )
                {
                    write = Some((finding, field, value.clone()));
                }
                (
                    format!("resolves {} of {case}", conflict.path.join("/")),
                    store.resolve_conflict(case, &conflict.path, &Resolution::Choose(chosen)),
                )
            }
        };
        match result {
            Ok(()) => {
                if let Some((finding, field, value)) = write {
                    self.record_write(index, case, finding, field, value)?;
                }
                if let (0..=39, Some(f)) = (roll, finding) {
                    self.model
                        .rectified
                        .entry((case, f.id))
                        .or_default()
                        .insert(index);
                }
                self.log(format!("phone {index}: {line}"));
            }
            Err(e) => self.log(format!("phone {index}: {line}: not recorded: {e}")),
        }
        Ok(())
    }
}

/// A peer session between two phones for `case`, run until neither has more to say: what
/// each side left out (the rule book refuses on site what the server would). Between two
/// honest phones a message that fails, or a session that does not end, is a bug.
fn meet(a: &mut Store, b: &mut Store, case: CaseId) -> Result<Vec<String>, String> {
    let (mut at_a, mut at_b) = (a.peer_session(case), b.peer_session(case));
    let mut left_out = Vec::new();
    for _ in 0..MEETING_ROUNDS {
        let from_a = exchange(a, b, &mut at_a, &mut at_b, &mut left_out)?;
        let from_b = exchange(b, a, &mut at_b, &mut at_a, &mut left_out)?;
        if !from_a && !from_b {
            return Ok(left_out);
        }
    }
    Err(format!(
        "a peer session over {case} did not end in {MEETING_ROUNDS} exchanges"
    ))
}

/// One message from `from` to `to`, if `from` has one; whether it had.
fn exchange(
    from: &mut Store,
    to: &mut Store,
    at_from: &mut anjian_core::PeerSession,
    at_to: &mut anjian_core::PeerSession,
    left_out: &mut Vec<String>,
) -> Result<bool, String> {
    let Some(message) = from
        .peer_message(at_from)
        .map_err(|e| format!("a peer message: {e}"))?
    else {
        return Ok(false);
    };
    let got = to
        .peer_receive(at_to, &message)
        .map_err(|e| format!("a peer message did not apply: {e}"))?;
    left_out.extend(
        got.refused
            .iter()
            .map(|(r, hashes)| format!("{} ×{}", r.rule.code(), hashes.len())),
    );
    Ok(true)
}

/// A peer session ends within this many exchanges, or the simulation says it did not.
const MEETING_ROUNDS: usize = 20;

/// What a run injects, for its summary line.
pub fn describe(bug: Option<Bug>) -> &'static str {
    match bug {
        None => "no bug injected",
        Some(Bug::AckBeforeCommit) => "acknowledgement before commit",
        Some(Bug::DropChange) => "a change dropped from what is stored",
        Some(Bug::SharedDistrictDecides) => "a shared district decides",
    }
}

/// Parses a bug's name as `--bug` takes it.
pub fn parse_bug(name: &str) -> Option<Bug> {
    match name {
        "AckBeforeCommit" => Some(Bug::AckBeforeCommit),
        "DropChange" => Some(Bug::DropChange),
        "SharedDistrictDecides" => Some(Bug::SharedDistrictDecides),
        _ => None,
    }
}
