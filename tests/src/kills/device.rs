//! One inspector's phone in a kill run: a real store on a real SQLite file, signed in to
//! the server and syncing through the real client, on a thread and runtime of its own,
//! driven by the run's requests (sync after a restart, work until a kill, report).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anjian_core::{CaseId, CaseQuery, Error, FindingEdit, FindingId, Level, sample};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{DEPARTMENT, DISTRICT};
use crate::Inspector;

/// Sync attempts a device gets after a restart before the run fails.
const ATTEMPTS_AFTER_RESTART: usize = 3;
/// Cases each device opens at most (edits then go to the cases there are).
const CASES_PER_DEVICE: usize = 6;

/// What a device holds at the end.
pub(super) struct Holdings {
    /// Per case (id as text): heads and findings.
    pub(super) cases: BTreeMap<String, Held>,
    /// The findings this device recorded.
    pub(super) created: Vec<(CaseId, FindingId)>,
}

/// What a device holds of one case at the end.
pub(super) struct Held {
    /// Its heads (hex, sorted).
    pub(super) heads: Vec<String>,
    /// Its findings.
    pub(super) findings: BTreeSet<FindingId>,
}

/// What the run asks of a device.
pub(super) enum Request {
    /// Sync after a restart: a few attempts, only network errors tried again.
    Sync,
    /// Edit and sync until the flag is set (and then the server is killed).
    Work(Arc<AtomicBool>),
    /// Tell what the store holds.
    Report,
}

/// What a device answers.
pub(super) enum Reply {
    /// A sync completed, after `attempts` attempts, exchanging `documents` documents.
    Synced { attempts: usize, documents: usize },
    /// The work until a kill.
    Worked(Worked),
    /// What the store holds.
    Holds(Holdings),
}

/// What a device did until a kill.
#[derive(Default)]
pub(super) struct Worked {
    /// Sync calls that completed.
    pub(super) completed: usize,
    /// Sync calls the kill cut (at most one).
    pub(super) interrupted: usize,
    /// Edits made.
    pub(super) edits: usize,
}

/// What a device starts from.
pub(super) struct Setup {
    /// Which device (its enterprise is made from it).
    pub(super) index: usize,
    /// The inspector's user name; the store is `USER.db` in `dir`.
    pub(super) user: String,
    /// Where the store goes.
    pub(super) dir: PathBuf,
    /// The server.
    pub(super) url: String,
    /// The seed of the device's edits.
    pub(super) seed: u64,
}

/// A device running on a thread of its own, driven by requests.
pub(super) struct Handle {
    requests: mpsc::Sender<Request>,
    replies: mpsc::Receiver<Result<Reply, String>>,
}

impl Handle {
    pub(super) fn spawn<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        setup: Setup,
    ) -> Handle {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (outbox, replies) = mpsc::channel();
        scope.spawn(move || {
            let mut device = Device::sign_in(setup);
            for request in inbox {
                let reply = match request {
                    Request::Sync => device.sync_after_restart(),
                    Request::Work(stop) => device.work(&stop).map(Reply::Worked),
                    Request::Report => device.holdings().map(Reply::Holds),
                };
                if outbox.send(reply).is_err() {
                    break;
                }
            }
        });
        Handle { requests, replies }
    }

    pub(super) fn send(&self, request: Request) {
        self.requests.send(request).expect("the device thread runs");
    }

    pub(super) fn receive(&self) -> Result<Reply, String> {
        self.replies
            .recv()
            .map_err(|_| "the device thread stopped".to_owned())?
    }

    pub(super) fn ask(&self, request: Request) -> Result<Reply, String> {
        self.send(request);
        self.receive()
    }
}

/// An inspector's phone: a real store on a real SQLite file, signed in, syncing through
/// the real client on a runtime of its own.
struct Device {
    user: String,
    inspector: Inspector,
    runtime: tokio::runtime::Runtime,
    rng: StdRng,
    enterprise: anjian_core::Enterprise,
    opened: usize,
    created: Vec<(CaseId, FindingId)>,
}

impl Device {
    fn sign_in(setup: Setup) -> Device {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut inspector = runtime.block_on(Inspector::sign_in(
            &setup.dir,
            &setup.url,
            &setup.user,
            DEPARTMENT,
            DISTRICT,
        ));
        // A server that stops answering must fail the sync, not hang the run.
        inspector.store.set_network_timeout(Duration::from_secs(10));
        let enterprise = sample::enterprise(100 + setup.index as u32);
        inspector
            .store
            .register_enterprise(&enterprise)
            .expect("register the enterprise");
        let mut device = Device {
            user: setup.user,
            inspector,
            runtime,
            rng: StdRng::seed_from_u64(setup.seed),
            enterprise,
            opened: 0,
            created: Vec::new(),
        };
        device.open_case().expect("a first case");
        device
    }

    /// One sync call: `Some` when it completed, `None` when the network failed it; any
    /// other error, a refusal or a case the server says it lacks fails the run.
    fn sync_once(&mut self) -> Result<Option<usize>, String> {
        match self.runtime.block_on(self.inspector.sync()) {
            Ok(report) if !report.refused.is_empty() => Err(format!(
                "{}: the server refused {:?}",
                self.user, report.refused
            )),
            Ok(report) if !report.unavailable.is_empty() => Err(format!(
                "{}: the server lacks cases {:?}",
                self.user, report.unavailable
            )),
            Ok(report) => Ok(Some(report.documents)),
            Err(Error::Network(_)) => Ok(None),
            Err(e) => Err(format!("{}: a sync failed with {e}", self.user)),
        }
    }

    fn sync_after_restart(&mut self) -> Result<Reply, String> {
        for attempts in 1..=ATTEMPTS_AFTER_RESTART {
            if let Some(documents) = self.sync_once()? {
                return Ok(Reply::Synced {
                    attempts,
                    documents,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "{} could not sync in {ATTEMPTS_AFTER_RESTART} attempts",
            self.user
        ))
    }

    fn work(&mut self, stop: &AtomicBool) -> Result<Worked, String> {
        let mut worked = Worked::default();
        while !stop.load(Ordering::SeqCst) {
            for _ in 0..self.rng.random_range(0..=3) {
                self.edit()?;
                worked.edits += 1;
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match self.sync_once()? {
                Some(_) => worked.completed += 1,
                None if stop.load(Ordering::SeqCst) => {
                    worked.interrupted += 1;
                    break;
                }
                None => {
                    return Err(format!(
                        "{}: a sync failed with a network error while the server was up",
                        self.user
                    ));
                }
            }
        }
        Ok(worked)
    }

    fn open_case(&mut self) -> Result<(), String> {
        self.inspector
            .store
            .open_case(&sample::new_case(&self.enterprise))
            .map_err(|e| format!("{}: opening a case: {e}", self.user))?;
        self.opened += 1;
        Ok(())
    }

    /// One edit as an inspector makes them: a case opened now and then, findings added to
    /// any case of the district, levels and places set, descriptions added to.
    fn edit(&mut self) -> Result<(), String> {
        let user = self.user.clone();
        let failed = |what: &str, e: Error| format!("{user}: {what}: {e}");
        let roll = self.rng.random_range(0..100);
        let store = &mut self.inspector.store;
        let cases = store
            .cases(&CaseQuery {
                limit: u32::MAX,
                ..CaseQuery::default()
            })
            .map_err(|e| failed("listing cases", e))?;
        if cases.is_empty() || (roll < 5 && self.opened < CASES_PER_DEVICE) {
            return self.open_case();
        }
        let case = cases[self.rng.random_range(0..cases.len())].id;
        let findings = store
            .case(case)
            .map_err(|e| failed("reading a case", e))?
            .findings;
        if findings.is_empty() || roll < 40 {
            let text = format!("第{}条隐患：安全出口被货物堵塞", self.created.len() + 1);
            let finding = store
                .add_finding(case, &sample::finding(&text))
                .map_err(|e| failed("adding a finding", e))?;
            self.created.push((case, finding));
            return Ok(());
        }
        let finding = &findings[self.rng.random_range(0..findings.len())];
        let edit = match roll {
            40..=64 => FindingEdit {
                level: Some(if self.rng.random_bool(0.5) {
                    Level::Major
                } else {
                    Level::General
                }),
                ..FindingEdit::default()
            },
            65..=89 => FindingEdit {
                place: Some(["罐区", "一号车间", "配电室"][self.rng.random_range(0..3)].into()),
                ..FindingEdit::default()
            },
            _ => FindingEdit {
                description: Some(format!("{}；{}补充", finding.description, self.user)),
                ..FindingEdit::default()
            },
        };
        store
            .edit_finding(case, finding.id, &edit)
            .map_err(|e| failed("editing a finding", e))
    }

    fn holdings(&mut self) -> Result<Holdings, String> {
        let user = self.user.clone();
        let failed = |e: Error| format!("{user}: reading the store: {e}");
        let store = &mut self.inspector.store;
        let mut cases = BTreeMap::new();
        let list = store
            .cases(&CaseQuery {
                limit: u32::MAX,
                ..CaseQuery::default()
            })
            .map_err(failed)?;
        for summary in list {
            let heads = store.heads(summary.id).map_err(failed)?;
            let findings = store
                .case(summary.id)
                .map_err(failed)?
                .findings
                .iter()
                .map(|f| f.id)
                .collect();
            cases.insert(summary.id.to_string(), Held { heads, findings });
        }
        Ok(Holdings {
            cases,
            created: self.created.clone(),
        })
    }
}
