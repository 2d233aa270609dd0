//! Supervisors' queries at city scale (docs/BENCHMARKS.md): a store holding five years of a
//! city's inspections (by default 200,000 cases and about two million findings) answers
//! the case list's first page, the rectification board and a year's bulletin through the
//! real server's HTTP API, for a district's supervisor and for the city's administrator.
//!
//! How the data is made: in each of Shanghai's 16 districts, inspectors record their visits
//! in real inspector stores (the core's `Store`: every write judged by the rule book), each
//! phone's clock set to the day of the visit: findings, three-violation records,
//! rectification orders, and, once a deadline has passed, the re-inspection and the
//! closure (销号). The district's supervisor merges each case into a store of their own,
//! closes its major hazards once re-inspected, and approves it. Each finished document is
//! then committed through the server's commit path (`Storage::commit_batch`) with the
//! projections the server derives from it (`Projection::of`), as a sync commits a new case.
//! No receipts are made: no change is received from a device.
//!
//! The store is kept under the target folder and reused by later runs. On PostgreSQL (run
//! under `scripts/postgres run`) its documents are read from the SQLite store of the same
//! size, if there is one, and committed again the same way.
//!
//! Run: `TMPDIR=/dev/shm cargo bench -p anjian-tests --bench city_queries [-- CASES]` (the
//! inspectors' stores are temporary: on tmpfs their fsyncs cost nothing).

use anjian_tests::bench::ms;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anjian_core::rules::CaseState;
use anjian_core::{
    CaseId, CaseType, Enterprise, HazardStep, Identity, Industry, Level, NewCase, NewFinding,
    RectificationOrder, ReviewAction, RiskGrade, Role, Store, TeamMember, Violation, ViolationKind,
    case_doc,
};
use anjian_sync_server::db::params;
use anjian_sync_server::storage::{Commit, Database, Projection};
use anjian_sync_server::users::NewUser;
use anjian_sync_server::{Storage, testing};
use anjian_tests::{PASSWORD, TestServer, login_token};
use automerge::AutoCommit;
use chrono::{DateTime, Days, FixedOffset, NaiveDate, TimeZone};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The five years the city's cases span.
const FIRST_DAY: (i32, u32, u32) = (2022, 1, 1);
const LAST_DAY: (i32, u32, u32) = (2026, 11, 30);
/// The year whose bulletin is asked for.
const BULLETIN_YEAR: i32 = 2025;
/// Enterprises of each district.
const ENTERPRISES_PER_DISTRICT: usize = 1_250;
/// Inspectors of each district.
const INSPECTORS_PER_DISTRICT: usize = 12;
/// Cases an inspector's phone holds before it is replaced (the next one starts empty).
const CASES_PER_PHONE: usize = 500;
/// The district whose supervisor queries (浦东新区).
const QUERYING_DISTRICT: &str = "310115";
/// Timed runs of each query (after one untimed).
const RUNS: usize = 7;

fn main() {
    let cases: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("city-{cases}"));
    std::fs::create_dir_all(&data).expect("data folder");
    let database = testing::database(&data);
    let storage = Storage::open(&database).expect("the city's store");
    let held = documents(&storage);
    if held == 0 {
        fill(&storage, &data, &database, cases);
    } else {
        assert_eq!(
            held, cases,
            "{database} holds {held} cases, not {cases}: a run was interrupted; delete it"
        );
        println!("# {database}: {held} cases, made by an earlier run");
    }
    describe(&storage, &database);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = TestServer::start(&data).await;
        let url = server.url();
        let client = reqwest::Client::new();
        let year = format!("from={BULLETIN_YEAR}-01-01&to={BULLETIN_YEAR}-12-31");
        println!("| who | query | rows | bytes | median | max |");
        println!("|---|---|---|---|---|---|");
        for (who, username) in [
            (
                "浦东新区 supervisor",
                format!("supervisor-{QUERYING_DISTRICT}"),
            ),
            ("city admin", "city-admin".to_owned()),
        ] {
            let token = login_token(&url, &username).await;
            for (query, path) in [
                ("case list, first page", "/api/v1/cases".to_owned()),
                (
                    "case list, major hazards this year",
                    "/api/v1/cases?level=major&from=2026-01-01".to_owned(),
                ),
                (
                    "case list, an enterprise by name",
                    "/api/v1/cases?enterprise=申江化工7".to_owned(),
                ),
                ("rectification board", "/api/v1/rectifications".to_owned()),
                (
                    "rectification board, overdue",
                    "/api/v1/rectifications?overdue=true".to_owned(),
                ),
                (
                    "bulletin of November 2026",
                    "/api/v1/bulletins?from=2026-11-01&to=2026-11-30".to_owned(),
                ),
                (
                    &format!("bulletin of {BULLETIN_YEAR}"),
                    format!("/api/v1/bulletins?{year}"),
                ),
            ] {
                let timed = time(&client, &format!("{url}{path}"), &token).await;
                println!(
                    "| {who} | {query} | {} | {} | {:.1} ms | {:.1} ms |",
                    timed.rows,
                    timed.bytes,
                    ms(timed.median),
                    ms(timed.max)
                );
            }
        }
        server.stop().await;
    });

    // The baseline: reading every finding's row once, on the same database.
    let mut scans = Vec::new();
    for _ in 0..=RUNS {
        let start = Instant::now();
        let n: i64 = storage
            .read(|conn| {
                conn.query_row(
                    "SELECT count(*) FROM findings WHERE length(title) >= 0",
                    params![],
                    |r| r.get(0),
                )
            })
            .expect("scan");
        assert!(n > 0);
        scans.push(start.elapsed());
    }
    scans.remove(0);
    scans.sort();
    println!(
        "# baseline: reading every finding's row once (a full scan): median {:.1} ms",
        ms(scans[scans.len() / 2])
    );
}

/// What timing one query found.
struct Timed {
    rows: usize,
    bytes: usize,
    median: Duration,
    max: Duration,
}

/// Asks for `url` once untimed, then `RUNS` times, each answer read whole.
async fn time(client: &reqwest::Client, url: &str, token: &str) -> Timed {
    let mut times = Vec::new();
    let mut answer = (0, 0);
    for run in 0..=RUNS {
        let start = Instant::now();
        let response = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("ask");
        let status = response.status();
        let body = response.bytes().await.expect("answer");
        let took = start.elapsed();
        assert!(status.is_success(), "{url}: {status}");
        if run > 0 {
            times.push(took);
        }
        answer = (rows(&body), body.len());
    }
    times.sort();
    Timed {
        rows: answer.0,
        bytes: answer.1,
        median: times[times.len() / 2],
        max: times[times.len() - 1],
    }
}

/// Rows in an answer: the list it holds (cases, rectifications) or, for a bulletin, its
/// cases.
fn rows(body: &[u8]) -> usize {
    let value: serde_json::Value = serde_json::from_slice(body).expect("JSON");
    if let Some(list) = ["cases", "rectifications"]
        .iter()
        .find_map(|key| value.get(key).and_then(|v| v.as_array()))
    {
        return list.len();
    }
    value["totals"]["cases"].as_u64().unwrap_or(0) as usize
}

fn documents(storage: &Storage) -> usize {
    storage
        .read(|conn| conn.query_row("SELECT count(*) FROM documents", params![], |r| r.get(0)))
        .map(|n: i64| n as usize)
        .expect("count documents")
}

/// Prints what the store holds.
fn describe(storage: &Storage, database: &Database) {
    let count = |sql: &str| -> i64 {
        storage
            .read(|conn| conn.query_row(sql, params![], |r| r.get(0)))
            .expect("count")
    };
    println!(
        "# {database}: {} cases, {} findings ({} major, {} three-violation records), \
         {} rectifications open, {} closed, {} approved cases",
        count("SELECT count(*) FROM cases"),
        count("SELECT count(*) FROM findings"),
        count("SELECT count(*) FROM findings WHERE level = 'major'"),
        count("SELECT count(*) FROM findings WHERE violation IS NOT NULL"),
        count(&format!(
            "SELECT count(*) FROM findings WHERE rectification IN ({})",
            anjian_core::RectificationState::open_codes_sql()
        )),
        count("SELECT count(*) FROM findings WHERE rectification = 'closed'"),
        count("SELECT count(*) FROM cases WHERE state = 'approved'"),
    );
    if let Database::Sqlite(path) = database {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!("# file size {:.0} MB", size as f64 / 1e6);
    }
}

/// A document made, to be committed.
struct Made {
    case: CaseId,
    bytes: Vec<u8>,
}

/// Fills the empty store with `cases` cases: from the SQLite store of the same size when
/// filling PostgreSQL and there is one, otherwise made by the districts' stores.
fn fill(storage: &Storage, data: &Path, database: &Database, cases: usize) {
    let started = Instant::now();
    let (sender, desks) = add_accounts(storage);
    let source = data.join("server.db");
    let districts = districts();
    let (made, queue) = mpsc::sync_channel::<Commit>(1_024);
    std::thread::scope(|scope| {
        let copy = matches!(database, Database::Postgres(_)) && source.exists();
        if copy {
            println!("# committing the documents of {}", source.display());
        } else {
            println!("# making {cases} cases in the districts' stores");
        }
        for worker in 0..2 {
            let (made, districts, desks, source) = (made.clone(), &districts, &desks, &source);
            scope.spawn(move || {
                if copy {
                    copy_documents(source, worker, 2, sender, &made);
                    return;
                }
                for (i, district) in districts.iter().enumerate() {
                    if i % 2 == worker {
                        let share =
                            cases / districts.len() + usize::from(i < cases % districts.len());
                        make_district(district, i, share, &desks[i], sender, &made);
                    }
                }
            });
        }
        drop(made);
        let mut batch = Vec::new();
        let mut committed = 0;
        for commit in queue {
            batch.push(commit);
            if batch.len() == 128 || committed + batch.len() == cases {
                for result in storage.commit_batch(&batch) {
                    result.expect("committed");
                }
                committed += batch.len();
                batch.clear();
                if committed % 10_000 < 128 {
                    println!(
                        "# {committed} cases committed in {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    });
    assert_eq!(documents(storage), cases, "every case committed");
    println!(
        "# {cases} cases made and committed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// What the server commits for a new case: the document with its projections, as the
/// server derives them.
fn committing(made: Made, sender: i64) -> Commit {
    let mut doc = AutoCommit::load(&made.bytes).expect("a made document loads");
    let state = CaseState::of_stored(&doc).expect("a made case reads");
    let projection = Projection::of(&doc, &state).expect("projected");
    Commit {
        case_id: made.case,
        heads: case_doc::sorted_heads(&mut doc),
        bytes: made.bytes,
        new: true,
        base: Vec::new(),
        projection,
        user_id: sender,
        token_hash: None,
        receipts: Vec::new(),
    }
}

/// Sends for commit the documents of the SQLite store at `source` whose place in the
/// order of case ids is `worker` modulo `workers` (each is one snapshot: the cases were
/// committed new).
fn copy_documents(
    source: &Path,
    worker: usize,
    workers: usize,
    sender: i64,
    made: &mpsc::SyncSender<Commit>,
) {
    let source = Storage::open(&Database::Sqlite(source.to_owned())).expect("the SQLite store");
    let mut after = String::new();
    loop {
        let page: Vec<(String, Vec<u8>)> = source
            .read(|conn| {
                conn.query_map(
                    "SELECT case_id, snapshot FROM documents WHERE case_id > ?1 ORDER BY case_id LIMIT 1000",
                    params![&after],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .expect("documents");
        let Some((last, _)) = page.last() else {
            return;
        };
        after = last.clone();
        for (i, (id, bytes)) in page.into_iter().enumerate() {
            if i % workers == worker {
                let case = id.parse().expect("case id");
                made.send(committing(Made { case, bytes }, sender))
                    .expect("the committer runs");
            }
        }
    }
}

/// The accounts that query (a supervisor of every district, the city's administrator);
/// returns the one the commits are sent as and each district's supervisor, in the order of
/// `districts()`.
fn add_accounts(storage: &Storage) -> (i64, Vec<Desk>) {
    let add = |username: &str, role: Role, district: &str| {
        storage
            .add_user(&NewUser {
                username,
                name: &format!("{username}的姓名"),
                role,
                district: &district.parse().expect("district"),
                department: "应急管理",
                password: PASSWORD,
            })
            .expect("account added")
    };
    let admin = add("city-admin", Role::Admin, "310101");
    let desks = districts()
        .iter()
        .map(|district| {
            let user = add(
                &format!("supervisor-{district}"),
                Role::Supervisor,
                district,
            );
            Desk {
                actor: storage.server_actor(&user).expect("the supervisor's actor"),
                username: user.username,
            }
        })
        .collect();
    (admin.id, desks)
}

/// Shanghai's districts (the table's codes 3101xx, its city row aside).
fn districts() -> Vec<String> {
    anjian_core::districts()
        .iter()
        .map(|(code, _)| *code)
        .filter(|code| code.starts_with("3101") && *code != "310100")
        .map(str::to_owned)
        .collect()
}

/// What inspectors find, in words an inspector would use: (description, category, legal
/// basis, place).
const FINDINGS: &[(&str, &str, &str, &str)] = &[
    (
        "可燃有毒气体检测报警装置未投入使用",
        "报警与切断",
        "安监总管三〔2017〕121号 第十二条",
        "罐区",
    ),
    (
        "动火作业未办理动火安全作业票",
        "作业许可",
        "GB 30871-2022 5.2.1",
        "车间",
    ),
    (
        "安全出口被货物堵塞",
        "安全管理",
        "《中华人民共和国消防法》第二十八条",
        "仓库",
    ),
    (
        "配电箱未设置漏电保护器",
        "设备设施",
        "GB 50194-2014 第8.2.5条",
        "施工现场",
    ),
    (
        "特种作业人员未持证上岗",
        "人员资质",
        "《中华人民共和国安全生产法》第三十条",
        "装卸区",
    ),
    (
        "受限空间作业前未进行气体分析",
        "气体分析",
        "GB 30871-2022 受限空间作业要求",
        "污水池",
    ),
    (
        "安全生产教育培训记录不全",
        "安全管理",
        "《中华人民共和国安全生产法》第二十八条",
        "办公室",
    ),
    (
        "消防器材过期未更换",
        "消防设施",
        "《中华人民共和国消防法》第十六条",
        "厂区",
    ),
];

/// Posts of three-violation records.
const POSTS: &[&str] = &["电焊工", "叉车司机", "班组长", "操作工", "仓库管理员"];

/// Words of enterprise names, by industry.
const TRADES: &[(&str, Industry)] = &[
    ("申江化工", Industry::HazardousChemicals),
    ("华东危险品仓储", Industry::HazardousChemicals),
    ("宏达金属制品", Industry::Machinery),
    ("建工第七项目部", Industry::Construction),
    ("东方燃气", Industry::CityGas),
    ("浦江物流", Industry::Transport),
    ("联华商贸", Industry::Commerce),
    ("金丰纺织", Industry::Textile),
    ("新沪建材", Industry::BuildingMaterials),
    ("长江特种设备", Industry::SpecialEquipment),
];

/// Enterprise `index` of `district`.
fn enterprise(district: &str, index: usize) -> Enterprise {
    let (trade, industry) = TRADES[index % TRADES.len()];
    let body = format!("91{district}MA{index:07}");
    let check = anjian_core::CreditCode::check_character(&body).expect("a valid body");
    Enterprise {
        credit_code: format!("{body}{check}").parse().expect("a valid code"),
        name: format!("上海{trade}{index}有限公司"),
        district: district.parse().expect("district"),
        industry,
        risk_grade: [RiskGrade::General, RiskGrade::Significant, RiskGrade::Low][index % 3],
    }
}

/// A phone's clock that starts at `start` and moves a minute each time it is read.
fn clock(start: DateTime<FixedOffset>) -> anjian_core::Clock {
    let reads = Arc::new(std::sync::atomic::AtomicI64::new(0));
    Arc::new(move || {
        let read = reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        start + chrono::Duration::minutes(read)
    })
}

fn at(day: NaiveDate, hour: u32) -> DateTime<FixedOffset> {
    let china = FixedOffset::east_opt(8 * 3600).expect("+08:00");
    china
        .from_local_datetime(&day.and_hms_opt(hour, 0, 0).expect("a time"))
        .single()
        .expect("one time")
}

fn day((y, m, d): (i32, u32, u32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a day")
}

/// A phone: a store in a temporary folder, replaced after `CASES_PER_PHONE` cases.
struct Phone {
    _dir: tempfile::TempDir,
    store: Store,
    cases: usize,
}

impl Phone {
    fn new(identity: Identity) -> Phone {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("store.db"), identity).expect("store");
        Phone {
            _dir: dir,
            store,
            cases: 0,
        }
    }
}

fn inspector(district: &str, k: usize) -> Identity {
    Identity {
        user_id: format!("inspector-{district}-{k}"),
        name: format!("检查员{district}{k:02}"),
        department: "应急管理".to_owned(),
        district: district.parse().expect("district"),
        role: Role::Inspector,
    }
}

/// A district's supervisor as the server writes in their name.
struct Desk {
    username: String,
    actor: automerge::ActorId,
}

/// Makes `cases` cases of `district` (the `index`th of the city), in order of their visits
/// over the five years, and sends each finished document to `made`.
fn make_district(
    district: &str,
    index: usize,
    cases: usize,
    desk: &Desk,
    sender: i64,
    made: &mpsc::SyncSender<Commit>,
) {
    let mut rng = StdRng::seed_from_u64(index as u64);
    let (first, last) = (day(FIRST_DAY), day(LAST_DAY));
    let span = (last - first).num_days() as usize + 1;
    let inspectors: Vec<Identity> = (0..INSPECTORS_PER_DISTRICT)
        .map(|k| inspector(district, k))
        .collect();
    let mut phones: Vec<Option<Phone>> = (0..INSPECTORS_PER_DISTRICT).map(|_| None).collect();
    let others = districts();
    for n in 0..cases {
        let visit = first + Days::new((n * span / cases) as u64);
        let k = rng.random_range(0..INSPECTORS_PER_DISTRICT);
        let phone = phones[k].get_or_insert_with(|| Phone::new(inspectors[k].clone()));
        let enterprise = enterprise(district, rng.random_range(0..ENTERPRISES_PER_DISTRICT));
        let mut team = Vec::new();
        if rng.random_bool(0.3) {
            let mate = &inspectors[(k + 1) % INSPECTORS_PER_DISTRICT];
            team.push(TeamMember::from(mate));
        }
        let (case_type, visible_to) = match rng.random_range(0..100) {
            0..5 => (
                CaseType::CrossDistrict,
                vec![
                    others[rng.random_range(0..others.len())]
                        .parse()
                        .expect("district"),
                ],
            ),
            5..15 => (CaseType::SpecialCampaign, Vec::new()),
            15..20 => (CaseType::Joint, Vec::new()),
            _ => (CaseType::Routine, Vec::new()),
        };
        let store = &mut phone.store;
        let opened_at = at(visit, 9 + rng.random_range(0..6));
        store.set_clock(clock(opened_at));
        store.register_enterprise(&enterprise).expect("register");
        let case = store
            .open_case(&NewCase {
                enterprise: enterprise.credit_code.clone(),
                case_type,
                district: None,
                visible_to,
                team,
                opened_at,
                location: None,
                amends: None,
            })
            .expect("open case");
        let mut steps = Vec::new();
        for _ in 0..rng.random_range(4..=16) {
            let (description, category, legal_basis, place) =
                FINDINGS[rng.random_range(0..FINDINGS.len())];
            let violation = rng.random_bool(0.12).then(|| Violation {
                kind: [
                    ViolationKind::IllegalCommand,
                    ViolationKind::IllegalOperation,
                    ViolationKind::LabourDiscipline,
                ][rng.random_range(0..3)],
                post: POSTS[rng.random_range(0..POSTS.len())].to_owned(),
                person: "现场作业人员".to_owned(),
            });
            let level = if rng.random_bool(0.02) {
                Level::Major
            } else {
                Level::General
            };
            let finding = store
                .add_finding(
                    case,
                    &NewFinding {
                        description: description.to_owned(),
                        level: Some(level),
                        category: category.to_owned(),
                        legal_basis: legal_basis.to_owned(),
                        place: place.to_owned(),
                        violation: violation.clone(),
                    },
                )
                .expect("finding");
            if violation.is_some() {
                continue; // corrected on the spot
            }
            let deadline = visit + Days::new([7, 15, 30][rng.random_range(0..3)]);
            store
                .order_rectification(
                    case,
                    finding,
                    &RectificationOrder {
                        measures: "立即组织整改，整改完成后书面报告".to_owned(),
                        deadline,
                        responsible: "企业安全负责人".to_owned(),
                    },
                )
                .expect("rectification ordered");
            // Re-inspected once the deadline is past, but for a few left overdue.
            let reinspected = deadline + Days::new(rng.random_range(0..5));
            if reinspected < last && rng.random_bool(0.99) {
                steps.push((finding, level, reinspected));
            }
        }
        store
            .review(case, ReviewAction::Submit, "现场检查完毕，提交审核")
            .expect("submitted");
        // The rest of the loop is written with the core's document functions directly
        // (what the store writes for them, less its own bookkeeping): the re-inspections
        // in the inspector's name from the same phone, then, as the server writes for the
        // case page's actions, the supervisor closing the major hazards re-inspected and
        // approving the case a fortnight after the visit.
        let mut doc = AutoCommit::load(&store.export_document(case).expect("export"))
            .expect("the case loads");
        doc.set_actor(automerge::ActorId::from(
            hex::decode(store.device_id()).expect("hex"),
        ));
        let by = &inspectors[k].user_id;
        for &(finding, level, reinspected) in &steps {
            let at = at(reinspected, 10);
            case_doc::follow_up(&mut doc, by, finding, &HazardStep::pass("复查合格"), at)
                .expect("re-inspected");
            if level == Level::General {
                case_doc::follow_up(&mut doc, by, finding, &HazardStep::close(), at)
                    .expect("closed");
            }
        }
        doc.set_actor(desk.actor.clone());
        for &(finding, level, reinspected) in &steps {
            if level == Level::Major {
                let at = at(reinspected, 16);
                case_doc::follow_up(&mut doc, &desk.username, finding, &HazardStep::close(), at)
                    .expect("major hazard closed");
            }
        }
        let review = visit + Days::new(14);
        if review < last {
            case_doc::review(
                &mut doc,
                &desk.username,
                ReviewAction::Approve,
                "",
                at(review, 16),
            )
            .expect("approved");
        }
        let bytes = doc.save();
        made.send(committing(Made { case, bytes }, sender))
            .expect("the committer runs");
        phone.cases += 1;
        if phone.cases == CASES_PER_PHONE {
            phones[k] = None;
        }
    }
}
