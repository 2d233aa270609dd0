//! `serve --demo`: fills a fresh data folder with demo accounts and a few days of realistic
//! cases. Nothing is written into the server's database directly: simulated inspectors,
//! each with a real inspector's store in `DATA/demo-devices/`, sign in over HTTP and sync
//! through the WebSocket and blob endpoints of the running server, and supervisors review
//! through the case API, exactly as phones and browsers would.

mod accounts;
mod content;
mod photos;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anjian_core::{
    AnswerInput, CaseId, CaseType, Enterprise, FindingEdit, FindingId, GeoPoint, Identity, Level,
    NewCase, NewFinding, PhotoTarget, RectificationOrder, RectificationState, ReviewAction, Store,
    TeamMember, Violation,
};
use anjian_core::{HazardStep, OnsiteMeasure};
use chrono::{DateTime, Days, FixedOffset, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};
use sha2::Digest;

pub use accounts::{DISTRICTS, DemoAccount, accounts_table, district_name, role_label};

use crate::error::{AppError, AppResult};
use crate::storage::{Database, Storage};
use anjian_core::Role;
use content::{CASES, CaseSpec, ENTERPRISES, FindingSpec, RectSpec, Stage};

/// The folder, under the data folder, of the simulated inspectors' stores.
pub const DEVICES_FOLDER: &str = "demo-devices";

/// What `prepare` found in the data folder.
#[derive(Debug)]
pub enum Prepared {
    /// The folder was fresh: these accounts were created (passwords in clear, to be shown
    /// once).
    Accounts(Vec<DemoAccount>),
    /// The folder already holds data, so nothing was added; the reason, for the terminal.
    NotFresh(String),
}

/// What the demo recorded, counted from the simulated devices' stores once all synced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoSummary {
    /// Enterprises inspected.
    pub enterprises: usize,
    /// Cases opened.
    pub cases: usize,
    /// Districts owning cases.
    pub districts: usize,
    /// Findings recorded (from checklists too).
    pub findings: usize,
    /// Of which 重大隐患.
    pub major_findings: usize,
    /// Of which three-violation records.
    pub violations: usize,
    /// Rectifications ordered.
    pub rectifications: usize,
    /// Rectifications open past their deadline (China time).
    pub overdue: usize,
    /// Rectifications re-inspected and closed (销号).
    pub closed: usize,
    /// Checklists attached.
    pub checklists: usize,
    /// Distinct photos attached.
    pub photos: usize,
    /// Cases submitted for review.
    pub submitted: usize,
    /// Cases then returned or approved by a supervisor.
    pub reviewed: usize,
    /// Joint cases.
    pub joint: usize,
    /// Cross-district cases.
    pub cross_district: usize,
    /// Fields left in conflict for a supervisor to resolve.
    pub conflicts: usize,
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} 个案件（{} 家企业，{} 个区；联合执法 {} 件，异地交叉执法 {} 件），隐患 {} 项（重大隐患 {} 项，三违 {} 项），\
             整改 {} 项（逾期 {} 项，已销号 {} 项），检查表 {} 份，照片 {} 张，提交审核 {} 件（已审核或退回 {} 件），待处理冲突 {} 处",
            self.cases,
            self.enterprises,
            self.districts,
            self.joint,
            self.cross_district,
            self.findings,
            self.major_findings,
            self.violations,
            self.rectifications,
            self.overdue,
            self.closed,
            self.checklists,
            self.photos,
            self.submitted,
            self.reviewed,
            self.conflicts,
        )
    }
}

/// Creates the demo accounts if the data folder and the database are fresh (no accounts
/// yet, no demo devices left from an earlier run); otherwise changes nothing and says why.
pub fn prepare(data: &Path, database: &Database) -> AppResult<Prepared> {
    std::fs::create_dir_all(data)
        .map_err(|e| AppError::Internal(format!("data folder {}: {e}", data.display())))?;
    let storage = Storage::open(database)?;
    let users = storage.users()?.len();
    if users > 0 {
        return Ok(Prepared::NotFresh(format!(
            "数据目录 {} 已有 {users} 个账号，不再添加演示数据 (the data folder already has accounts; the demo adds nothing)",
            data.display()
        )));
    }
    let devices = data.join(DEVICES_FOLDER);
    let leftovers = std::fs::read_dir(&devices).is_ok_and(|mut d| d.next().is_some());
    if leftovers {
        return Ok(Prepared::NotFresh(format!(
            "{} 中有上次演示留下的设备数据，不再添加演示数据 (demo devices of an earlier run are there; the demo adds nothing)",
            devices.display()
        )));
    }
    Ok(Prepared::Accounts(accounts::create(&storage)?))
}

/// Records the demo's cases on simulated inspectors' devices and syncs them to the server
/// at `server` (`http://host:port`, which must be serving), then has supervisors review
/// some. `accounts` are those `prepare` created; the devices' stores go in
/// `data/demo-devices/`. Stops at the first error, leaving what was synced so far.
pub async fn seed(server: &str, data: &Path, accounts: &[DemoAccount]) -> AppResult<DemoSummary> {
    let server = server.trim_end_matches('/');
    let started = std::time::Instant::now();
    let folder = data.join(DEVICES_FOLDER);
    std::fs::create_dir_all(&folder)
        .map_err(|e| AppError::Internal(format!("demo devices {}: {e}", folder.display())))?;
    let mut devices = BTreeMap::new();
    for account in accounts.iter().filter(|a| a.role == Role::Inspector) {
        devices.insert(
            account.username.clone(),
            Device::sign_in(&folder, server, account).await?,
        );
    }
    let mut demo = Demo {
        server,
        devices,
        enterprises: ENTERPRISES
            .iter()
            .enumerate()
            .map(|(index, e)| {
                Ok(Enterprise {
                    credit_code: content::credit_code(e.district, index)?,
                    name: e.name.to_owned(),
                    district: e.district.parse()?,
                    industry: e.industry,
                    risk_grade: e.risk,
                })
            })
            .collect::<AppResult<_>>()?,
        now: crate::queries::china_now(),
        photos: 0,
        supervised: Vec::new(),
    };
    let mut recorded = Vec::new();
    // Day by day, oldest first: each inspector records the day's visits offline and syncs
    // in the evening, as on the phones.
    for days_ago in (0..=4).rev() {
        let mut worked = BTreeSet::new();
        for spec in CASES.iter().filter(|c| c.days_ago == days_ago) {
            let case = demo.record(spec).await?;
            worked.insert(spec.inspector);
            recorded.push((spec, case));
        }
        for username in worked {
            demo.sync(username).await?;
        }
    }
    let supervisor_of = |district: &str| {
        accounts
            .iter()
            .find(|a| a.role == Role::Supervisor && a.district.as_str() == district)
            .ok_or_else(|| AppError::Internal(format!("no demo supervisor for {district}")))
    };
    let year = demo.now.date_naive().format("%Y").to_string();
    for (n, (case, finding, district, step)) in
        std::mem::take(&mut demo.supervised).into_iter().enumerate()
    {
        let path = format!("/api/v1/cases/{case}/findings/{finding}/steps");
        let supervisor = supervisor_of(district.as_str())?;
        let bodies = match step {
            ForSupervisor::Close => vec![json!({ "action": "close" })],
            ForSupervisor::List => vec![
                json!({
                    "action": "list",
                    "authority": format!("{}安全生产委员会办公室", district.label()),
                    "number": format!("{}安委办督〔{year}〕{}号", district.label(), n + 1),
                    "deadline": (demo.now.date_naive() + Days::new(60)).to_string(),
                }),
                json!({
                    "action": "plan",
                    "measures": "制定专项治理方案，更换失效设备并完善联锁",
                    "funds": "企业自筹",
                    "responsible": "企业主要负责人",
                    "interim": "落实专人值守，每两小时巡检一次",
                }),
            ],
        };
        for body in bodies {
            act(server, supervisor, &path, body).await?;
        }
    }
    let mut reviewed = 0;
    for (spec, case) in &recorded {
        if let Some((action, text)) = spec.review {
            let supervisor = supervisor_of(ENTERPRISES[spec.enterprise].district)?;
            let body = json!({ "action": action.code(), "text": text });
            act(
                server,
                supervisor,
                &format!("/api/v1/cases/{case}/review"),
                body,
            )
            .await?;
            tracing::info!(case.id = %case, action = action.code(), supervisor = %supervisor.username, "demo case reviewed");
            reviewed += 1;
        }
    }
    let mut summary = demo.summary(&recorded)?;
    summary.reviewed = reviewed;
    tracing::info!(
        cases = summary.cases,
        findings = summary.findings,
        conflicts = summary.conflicts,
        seconds = started.elapsed().as_secs_f32(),
        "demo data synced"
    );
    Ok(summary)
}

/// A simulated inspector's phone: a real store, signed in to the server.
struct Device {
    store: Store,
    token: String,
}

impl Device {
    async fn sign_in(folder: &Path, server: &str, account: &DemoAccount) -> AppResult<Device> {
        let identity = Identity {
            user_id: account.username.clone(),
            name: account.name.clone(),
            department: account.department.clone(),
            district: account.district.clone(),
            role: anjian_core::Role::Inspector,
        };
        let store = Store::open(folder.join(format!("{}.db", account.username)), identity)?;
        let token = store
            .login(
                server,
                &account.username,
                &account.password,
                &format!("{}的执法终端（演示）", account.name),
            )
            .await
            .map_err(|e| {
                AppError::Internal(format!(
                    "demo inspector {} cannot sign in: {e}",
                    account.username
                ))
            })?;
        Ok(Device { store, token })
    }
}

/// The seeding in progress.
struct Demo<'a> {
    server: &'a str,
    devices: BTreeMap<String, Device>,
    enterprises: Vec<Enterprise>,
    /// When the seeding started, China time: visits and deadlines are relative to it.
    now: DateTime<FixedOffset>,
    /// Photos taken so far (each photo is made from its number).
    photos: u32,
    /// Major hazards for their district's supervisor to close (re-inspected on site) or to
    /// list for supervision (挂牌督办: not yet rectified).
    supervised: Vec<(CaseId, FindingId, anjian_core::DistrictCode, ForSupervisor)>,
}

impl Demo<'_> {
    fn device(&mut self, username: &str) -> AppResult<&mut Device> {
        self.devices
            .get_mut(username)
            .ok_or_else(|| AppError::Internal(format!("no demo device for {username}")))
    }

    /// Syncs one device with the server; a refusal is an error, since every demo change is
    /// meant to be accepted.
    async fn sync(&mut self, username: &str) -> AppResult<()> {
        let server = self.server;
        let device = self.device(username)?;
        let report = device
            .store
            .sync(server, &device.token, |_| {})
            .await
            .map_err(|e| {
                AppError::Internal(format!("demo device of {username} cannot sync: {e}"))
            })?;
        if let Some((case, reason)) = report.refused.first() {
            return Err(AppError::Internal(format!(
                "the server refused {username}'s changes to case {case}: {reason}"
            )));
        }
        tracing::info!(
            user = username,
            documents = report.documents,
            blobs = report.blobs_uploaded,
            "demo device synced"
        );
        Ok(())
    }

    /// Records one visit; a joint visit goes through the team's devices and syncs.
    async fn record(&mut self, spec: &CaseSpec) -> AppResult<CaseId> {
        let enterprise = self
            .enterprises
            .get(spec.enterprise)
            .cloned()
            .ok_or_else(|| AppError::Internal(format!("demo enterprise {}", spec.enterprise)))?;
        let location = ENTERPRISES[spec.enterprise].location;
        let opened_at = visit_start(self.now, spec.days_ago, spec.at)?;
        let visit_day = opened_at.date_naive();
        let mut team = Vec::new();
        for username in spec.team {
            let store = &mut self.device(username)?.store;
            team.push(TeamMember::from(store.identity()));
            // The phones' clocks on the day of the visit, so that findings and changes
            // carry that day (the server's receipt times show when they arrived).
            store.set_clock(walking_clock(opened_at));
        }
        let mut photos = self.photos;
        let store = &mut self.device(spec.inspector)?.store;
        store.set_clock(walking_clock(opened_at));
        store.register_enterprise(&enterprise)?;
        let case = store.open_case(&NewCase {
            enterprise: enterprise.credit_code.clone(),
            case_type: spec.case_type,
            district: None,
            visible_to: Vec::new(),
            team,
            opened_at,
            location: GeoPoint::new(location.0, location.1).ok(),
            amends: None,
        })?;
        let mut findings = Vec::new();
        // Major hazards whose next step is the supervisor's.
        let mut supervised = Vec::new();
        for finding in spec.findings {
            findings.push(record_finding(
                store,
                case,
                finding,
                visit_day,
                &mut photos,
                &mut supervised,
            )?);
        }
        if let Some(checklist) = &spec.checklist {
            let attached = store.attach_checklist(case, checklist.template)?;
            for answer in checklist.answers {
                let linked = store.answer_item(
                    case,
                    attached,
                    answer.item,
                    &AnswerInput {
                        result: answer.result,
                        note: answer.note.to_owned(),
                        post: answer.observed.map(|(post, _)| post.to_owned()),
                        person: answer.observed.map(|(_, person)| person.to_owned()),
                    },
                )?;
                if let (Some(finding), Some(order)) = (linked, &answer.rectification) {
                    rectify(
                        store,
                        case,
                        finding,
                        order,
                        visit_day,
                        &mut photos,
                        &mut supervised,
                    )?;
                }
            }
        }
        if spec.submit {
            store.review(case, ReviewAction::Submit, "现场检查完毕，提交审核")?;
        }
        self.photos = photos;
        self.supervised.extend(
            supervised
                .into_iter()
                .map(|(finding, step)| (case, finding, enterprise.district.clone(), step)),
        );
        tracing::info!(
            case.id = %case,
            enterprise = %enterprise.name,
            inspector = spec.inspector,
            "demo case recorded"
        );
        if let Some(member) = spec.team.first() {
            self.joint_work(spec, case, member, &findings, visit_day)
                .await?;
        }
        Ok(case)
    }

    /// The rest of a joint visit: the opener syncs, the team member receives the case and
    /// records on their own device; both judge the disputed level offline, differently;
    /// all sync, so that the disagreement reaches the server as a conflict.
    async fn joint_work(
        &mut self,
        spec: &CaseSpec,
        case: CaseId,
        member: &str,
        findings: &[FindingId],
        visit_day: NaiveDate,
    ) -> AppResult<()> {
        self.sync(spec.inspector).await?;
        self.sync(member).await?;
        let mut photos = self.photos;
        let mut supervised = Vec::new();
        let store = &mut self.device(member)?.store;
        for finding in spec.team_findings {
            record_finding(
                store,
                case,
                finding,
                visit_day,
                &mut photos,
                &mut supervised,
            )?;
        }
        self.photos = photos;
        let district = self.device(member)?.store.case(case)?.district;
        self.supervised.extend(
            supervised
                .into_iter()
                .map(|(f, step)| (case, f, district.clone(), step)),
        );
        if let Some((index, opener_level, member_level)) = spec.dispute {
            let disputed = *findings
                .get(index)
                .ok_or_else(|| AppError::Internal(format!("demo dispute names finding {index}")))?;
            let level = |level: Level| FindingEdit {
                level: Some(level),
                ..FindingEdit::default()
            };
            self.device(member)?
                .store
                .edit_finding(case, disputed, &level(member_level))?;
            self.device(spec.inspector)?.store.edit_finding(
                case,
                disputed,
                &level(opener_level),
            )?;
        }
        self.sync(spec.inspector).await?;
        self.sync(member).await?;
        self.sync(spec.inspector).await
    }

    /// Counts what was recorded, from the stores of the inspectors who opened the cases
    /// (after the last sync they hold their team's records too).
    fn summary(&mut self, recorded: &[(&CaseSpec, CaseId)]) -> AppResult<DemoSummary> {
        let today = self.now.date_naive();
        let mut summary = DemoSummary::default();
        let (mut enterprises, mut districts, mut photos) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (spec, id) in recorded {
            let store = &mut self.device(spec.inspector)?.store;
            let case = store.case(*id)?;
            summary.cases += 1;
            enterprises.insert(case.enterprise.credit_code.clone());
            districts.insert(case.district.clone());
            summary.joint += usize::from(case.case_type == CaseType::Joint);
            summary.cross_district += usize::from(case.case_type == CaseType::CrossDistrict);
            summary.submitted += usize::from(spec.submit);
            summary.checklists += case.checklists.len();
            summary.conflicts += store.conflicts(*id)?.len();
            photos.extend(case.photos().map(|p| p.sha256.clone()));
            for finding in &case.findings {
                summary.findings += 1;
                summary.major_findings += usize::from(finding.level == Level::Major);
                summary.violations += usize::from(finding.violation.is_some());
                let Some(rect) = &finding.rectification else {
                    continue;
                };
                summary.rectifications += 1;
                summary.closed += usize::from(rect.state == RectificationState::Closed);
                summary.overdue += usize::from(rect.state.is_open() && rect.deadline < today);
            }
        }
        summary.enterprises = enterprises.len();
        summary.districts = districts.len();
        summary.photos = photos.len();
        Ok(summary)
    }
}

/// Records a finding with its photo and rectification.
fn record_finding(
    store: &mut Store,
    case: CaseId,
    spec: &FindingSpec,
    visit_day: NaiveDate,
    photos: &mut u32,
    supervised: &mut Vec<(FindingId, ForSupervisor)>,
) -> AppResult<FindingId> {
    let finding = store.add_finding(
        case,
        &NewFinding {
            description: spec.description.to_owned(),
            level: Some(spec.level),
            category: spec.category.to_owned(),
            legal_basis: spec.basis.to_owned(),
            place: spec.place.to_owned(),
            violation: spec.violation.map(|(kind, post, person)| Violation {
                kind,
                post: post.to_owned(),
                person: person.to_owned(),
            }),
        },
    )?;
    if let Some(caption) = spec.photo {
        take_photo(store, case, &PhotoTarget::Finding(finding), caption, photos)?;
    }
    if let Some(order) = &spec.rectification {
        rectify(store, case, finding, order, visit_day, photos, supervised)?;
    }
    Ok(finding)
}

/// A major hazard's next step, which belongs to its district's supervisor.
#[derive(Debug, Clone, Copy)]
enum ForSupervisor {
    /// 销号 after the inspector's 合格 re-inspection.
    Close,
    /// 挂牌督办, with the enterprise's 治理方案.
    List,
}

/// Orders a rectification and takes it as far as the spec says. A major hazard first gets
/// the on-site measure of evacuating the danger zone. The inspector closes (销号) a general
/// hazard after re-inspecting it; work in progress gets an extension (延期); a major
/// hazard is left in `supervised` for the district's supervisor to close once
/// re-inspected, or to list for supervision (挂牌督办) while it is open.
fn rectify(
    store: &mut Store,
    case: CaseId,
    finding: FindingId,
    spec: &RectSpec,
    visit_day: NaiveDate,
    photos: &mut u32,
    supervised: &mut Vec<(FindingId, ForSupervisor)>,
) -> AppResult<()> {
    let major = store
        .case(case)?
        .findings
        .iter()
        .any(|f| f.id == finding && f.level == Level::Major);
    if major {
        store.follow_up(
            case,
            finding,
            &HazardStep::Onsite {
                measure: OnsiteMeasure::Evacuate,
                note: "责令立即撤出危险区域内作业人员，设置警戒".into(),
            },
        )?;
    }
    let deadline = visit_day
        .checked_add_days(Days::new(u64::from(spec.days)))
        .ok_or_else(|| AppError::Internal("demo deadline out of range".into()))?;
    store.order_rectification(
        case,
        finding,
        &RectificationOrder {
            measures: spec.measures.to_owned(),
            deadline,
            responsible: spec.responsible.to_owned(),
        },
    )?;
    match spec.stage {
        Stage::Ordered => {
            if major {
                supervised.push((finding, ForSupervisor::List));
            }
        }
        Stage::InProgress => {
            store.move_rectification(case, finding, RectificationState::InProgress)?;
            store.follow_up(
                case,
                finding,
                &HazardStep::Extend {
                    deadline: deadline + Days::new(7),
                    reason: "企业书面申请：备件到货延迟，已落实临时管控措施".into(),
                },
            )?;
        }
        Stage::Closed { note, evidence } => {
            if let Some(caption) = evidence {
                let target = PhotoTarget::Rectification(finding);
                take_photo(store, case, &target, caption, photos)?;
            }
            store.follow_up(case, finding, &HazardStep::pass(note))?;
            if major {
                supervised.push((finding, ForSupervisor::Close));
            } else {
                store.follow_up(case, finding, &HazardStep::close())?;
            }
        }
    }
    Ok(())
}

/// Makes the next demo photo, ingests it as the phone's camera would, and attaches it.
fn take_photo(
    store: &mut Store,
    case: CaseId,
    target: &PhotoTarget,
    caption: &str,
    photos: &mut u32,
) -> AppResult<()> {
    *photos += 1;
    let info = store.ingest_photo(&photos::jpeg(*photos)?)?;
    store.attach_photo(case, target, &info.sha256, caption)?;
    Ok(())
}

/// A supervisor's action through the case API (`path`, with a JSON `body`), as the case
/// page sends it.
async fn act(server: &str, supervisor: &DemoAccount, path: &str, body: Value) -> AppResult<()> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| AppError::Internal(format!("demo http client: {e}")))?;
    // One demo "device" per supervisor, however many cases they review.
    let actor =
        hex::encode(&sha2::Sha256::digest(format!("demo-review:{}", supervisor.username))[..16]);
    let login = http
        .post(format!("{server}/api/v1/login"))
        .json(&json!({
            "username": supervisor.username,
            "password": supervisor.password,
            "device_name": "监管网页（演示）",
            "actor_id": actor,
        }))
        .send()
        .await;
    let token = answer(login, "supervisor sign-in")
        .await?
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| AppError::Internal("demo supervisor sign-in gave no token".into()))?;
    let done = http
        .post(format!("{server}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await;
    answer(done, path).await?;
    Ok(())
}

/// The JSON body of a successful response, or an error naming `what` failed and why.
async fn answer(
    response: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> AppResult<Value> {
    let response = response.map_err(|e| AppError::Internal(format!("demo {what}: {e}")))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| AppError::Internal(format!("demo {what}: {e}")))?;
    if !status.is_success() {
        return Err(AppError::Internal(format!("demo {what}: {status} {body}")));
    }
    Ok(body)
}

/// When a visit started: `days_ago` days before `now`'s day at the given hour and
/// minute, in `now`'s zone; a visit of today no later than half an hour before `now`. Just
/// after midnight no half hour of today is behind us, so today's visits were yesterday's:
/// a visit never spans two days.
fn visit_start(
    now: DateTime<FixedOffset>,
    days_ago: u32,
    (hour, minute): (u32, u32),
) -> AppResult<DateTime<FixedOffset>> {
    let on = |days_ago: u32| {
        now.date_naive()
            .checked_sub_days(Days::new(u64::from(days_ago)))
            .and_then(|day| day.and_hms_opt(hour, minute, 0))
            .and_then(|t| now.timezone().from_local_datetime(&t).single())
            .ok_or_else(|| {
                AppError::Internal(format!("demo visit {days_ago} days ago at {hour}:{minute}"))
            })
    };
    let latest = now - chrono::Duration::minutes(30);
    let planned = on(days_ago)?;
    if planned <= latest {
        Ok(planned)
    } else if latest.date_naive() == planned.date_naive() {
        Ok(latest)
    } else {
        on(days_ago + 1)
    }
}

/// A clock that starts at `start` and moves on three minutes every time it is read, as
/// the phone's clock does while an inspector walks through a site (never past now).
fn walking_clock(start: DateTime<FixedOffset>) -> anjian_core::Clock {
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    std::sync::Arc::new(move || {
        let read = reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Utc::now().with_timezone(start.offset());
        (start + chrono::Duration::minutes(3 * read)).min(now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_starts_at_its_planned_time_and_never_spans_two_days() {
        // (now, days ago, planned hour and minute, when the visit started), China time.
        let cases = [
            // Planned, long past.
            ("2026-12-06T15:00:00", 2, (9, 30), "2026-12-04T09:30:00"),
            ("2026-12-06T15:00:00", 0, (9, 30), "2026-12-06T09:30:00"),
            // A visit of today planned later than half an hour ago started half an hour ago.
            ("2026-12-06T09:40:00", 0, (9, 30), "2026-12-06T09:10:00"),
            ("2026-12-06T00:40:00", 0, (9, 30), "2026-12-06T00:10:00"),
            // Just after midnight, today's visits were yesterday's, at their planned time.
            ("2026-12-06T00:03:27", 0, (9, 30), "2026-12-05T09:30:00"),
            ("2026-12-06T00:29:59", 0, (8, 30), "2026-12-05T08:30:00"),
            // Earlier days are untouched by the hour.
            ("2026-12-06T00:03:27", 1, (15, 0), "2026-12-05T15:00:00"),
        ];
        for (now, days_ago, at, expected) in cases {
            let now = DateTime::parse_from_rfc3339(&format!("{now}+08:00")).expect("now");
            let start = visit_start(now, days_ago, at).expect("visit start");
            assert_eq!(
                start.to_rfc3339(),
                format!("{expected}+08:00"),
                "{now} {days_ago} {at:?}"
            );
        }
    }
}
