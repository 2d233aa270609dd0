//! Two server nodes on one PostgreSQL database, as behind a load balancer: a joint team
//! split across them merges live, commits to one case from both at once lose nothing and
//! leave the queries true, and supervisors read the same on either node.

use std::path::Path;
use std::time::Duration;

use anjian_core::Role;
use anjian_core::sample;
use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::WireMessage;
use anjian_sync_server::storage::Database;
use anjian_sync_server::users::NewUser;
use anjian_sync_server::{Settings, Storage};
use anjian_tests::cluster::{ObjectStore, Postgres};
use anjian_tests::peer::{Next, RawPeer};
use anjian_tests::{Inspector, PASSWORD, TestServer, acknowledged_changes, login_token};
use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};

/// Accounts on the cluster's database: (username, role, district, department).
fn add_users(database: &str, users: &[(&str, Role, &str, &str)]) {
    let storage = Storage::open(&Database::Postgres(database.to_owned())).expect("database");
    for (username, role, district, department) in users {
        storage
            .add_user(&NewUser {
                username,
                name: &format!("{username}的姓名"),
                role: *role,
                district: &district.parse().expect("district"),
                department,
                password: PASSWORD,
            })
            .expect("user added");
    }
}

/// What a test's nodes share: a PostgreSQL database with the team's accounts and a blob
/// store in an object store (keep it while the test runs).
struct Shared {
    _postgres: Postgres,
    objects: ObjectStore,
    database: String,
    blobs: String,
}

impl Shared {
    fn start(dir: &Path) -> Shared {
        let postgres = Postgres::start();
        let objects = ObjectStore::start();
        let database = postgres.database(&dir.join("cluster"));
        add_users(&database, &TEAM);
        Shared {
            blobs: objects.blobs(&dir.join("cluster")),
            _postgres: postgres,
            objects,
            database,
        }
    }

    /// The settings of a node with its data folder `data`.
    fn settings(&self, data: std::path::PathBuf) -> Settings {
        Settings {
            data,
            database: Some(self.database.clone()),
            blobs: Some(self.blobs.clone()),
            ..Settings::default()
        }
    }
}

/// A node with its own data folder on the shared database and blob store.
async fn node(dir: &Path, name: &str, shared: &Shared) -> TestServer {
    TestServer::start_with(shared.settings(dir.join(name))).await
}

/// Two nodes on one database, Zhang's phone on node A and Li's on node B.
struct Split {
    shared: Shared,
    a: TestServer,
    b: TestServer,
    zhang: Inspector,
    li: Inspector,
}

impl Split {
    async fn start(dir: &Path) -> Split {
        let shared = Shared::start(dir);
        let (a, b) = (node(dir, "a", &shared).await, node(dir, "b", &shared).await);
        let zhang = Inspector::sign_in(dir, &a.url(), "zhang", "应急管理", "310101").await;
        let li = Inspector::sign_in(dir, &b.url(), "li", "消防", "310104").await;
        Split {
            shared,
            a,
            b,
            zhang,
            li,
        }
    }
}

/// The case's document as a store holds it.
fn document(inspector: &mut Inspector, case: anjian_core::CaseId) -> AutoCommit {
    AutoCommit::load(&inspector.store.export_document(case).expect("export")).expect("loads")
}

/// The case as the API of the server at `url` shows it to `token`'s user.
async fn case_json(url: &str, token: &str, case: anjian_core::CaseId) -> serde_json::Value {
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/cases/{case}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

const TEAM: [(&str, Role, &str, &str); 3] = [
    ("zhang", Role::Inspector, "310101", "应急管理"),
    ("li", Role::Inspector, "310104", "消防"),
    ("chief", Role::Supervisor, "310101", "应急管理"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joint_team_split_across_two_nodes_merges_live() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Split {
        shared: _shared,
        a,
        b,
        mut zhang,
        mut li,
    } = Split::start(dir.path()).await;

    // Zhang opens the joint case on node A; Li receives it from node B.
    let case = zhang.open_joint_case(4, &[("li", "310104", "消防")]);
    zhang
        .store
        .add_finding(case, &sample::finding("储罐区可燃气体报警器故障"))
        .expect("finding");
    zhang.sync().await.expect("zhang syncs with node A");
    li.sync().await.expect("li syncs with node B");
    assert_eq!(
        li.store.case(case).expect("li has the case").findings.len(),
        1
    );

    // Li's phone stays connected to node B, synced with the case.
    let document_id = DocumentId::of(case);
    let mut live = RawPeer::joined(&b.addr.to_string(), &li.token).await;
    let mut held = document(&mut li, case);
    let pushed = live.push(document_id, &mut held).await;
    assert!(pushed.acknowledged, "{pushed:?}");

    // Zhang records another finding on node A: node B sends it to Li's open connection.
    zhang
        .store
        .add_finding(case, &sample::finding("安全出口堵塞"))
        .expect("finding");
    zhang.sync().await.expect("zhang syncs with node A");
    let expected = document(&mut zhang, case).get_heads();
    let mut state = sync::State::new();
    while held.get_heads() != expected {
        match live.next(Duration::from_secs(30)).await {
            Next::Message(WireMessage::Sync { data, .. }) => {
                let message = sync::Message::decode(&data).expect("a sync message");
                held.sync()
                    .receive_sync_message(&mut state, message)
                    .expect("applies");
            }
            Next::Message(_) => {}
            other => panic!("node B did not pass on node A's commit: {other:?}"),
        }
    }

    // Li's own finding goes through node B and reaches Zhang through node A.
    li.store
        .add_finding(case, &sample::finding("消防水池无水"))
        .expect("finding");
    li.sync().await.expect("li syncs with node B");
    zhang.sync().await.expect("zhang syncs with node A");
    for inspector in [&mut zhang, &mut li] {
        assert_eq!(inspector.store.case(case).expect("case").findings.len(), 3);
    }
    assert_eq!(
        document(&mut zhang, case).get_heads(),
        document(&mut li, case).get_heads()
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_to_one_case_on_two_nodes_at_once_lose_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Split {
        shared,
        a,
        b,
        mut zhang,
        mut li,
    } = Split::start(dir.path()).await;
    let case = zhang.open_joint_case(5, &[("li", "310104", "消防")]);
    zhang.sync().await.expect("zhang syncs with node A");
    li.sync().await.expect("li syncs with node B");

    // Both record findings and sync at the same moment, each with their own node, round
    // after round: the two nodes commit changes of the one case side by side.
    const ROUNDS: usize = 8;
    for round in 0..ROUNDS {
        for (inspector, who) in [(&mut zhang, "张"), (&mut li, "李")] {
            inspector
                .store
                .add_finding(
                    case,
                    &sample::finding(&format!("{who}第{round}轮发现的隐患")),
                )
                .expect("finding");
        }
        let (z, l) = tokio::join!(zhang.sync(), li.sync());
        z.expect("zhang syncs with node A");
        l.expect("li syncs with node B");
    }
    zhang.sync().await.expect("zhang syncs again");
    li.sync().await.expect("li syncs again");

    // Every finding is in both phones and in the stored case; the queries say so too, on
    // either node.
    let findings = 2 * ROUNDS;
    for inspector in [&mut zhang, &mut li] {
        assert_eq!(
            inspector.store.case(case).expect("case").findings.len(),
            findings
        );
    }
    let storage = Storage::open(&Database::Postgres(shared.database.clone())).expect("database");
    let mut stored = storage.load_document(case).expect("reads").expect("stored");
    assert_eq!(stored.get_heads(), document(&mut zhang, case).get_heads());
    assert_eq!(
        storage.stored_heads(case).expect("reads").expect("stored"),
        anjian_core::case_doc::sorted_heads(&mut stored),
        "the catalog's heads are the stored document's"
    );
    let chief = login_token(&a.url(), "chief").await;
    let on_a = case_json(&a.url(), &chief, case).await;
    let on_b = case_json(&b.url(), &chief, case).await;
    assert_eq!(on_a, on_b, "both nodes show the same case");
    assert_eq!(
        on_a["findings"].as_array().map(Vec::len),
        Some(findings),
        "{on_a}"
    );
    let listed = |url: String| {
        let chief = chief.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{url}/api/v1/cases"))
                .bearer_auth(&chief)
                .send()
                .await
                .expect("request")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    let (list_a, list_b) = (listed(a.url()).await, listed(b.url()).await);
    assert_eq!(list_a, list_b, "both nodes list the same cases");
    assert_eq!(
        list_a["cases"][0]["findings"].as_i64(),
        Some(findings as i64),
        "{list_a}"
    );
    b.stop().await;
    a.stop().await;
}

/// Every table with its columns in order, as the engine describes it.
fn schema(storage: &Storage) -> Vec<(String, Vec<String>)> {
    use anjian_sync_server::db::Dialect;
    storage
        .read(|conn| {
            let listing = match conn.dialect() {
                Dialect::Sqlite => {
                    "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
                     WHERE m.type = 'table' ORDER BY m.name, p.cid"
                }
                Dialect::Postgres => {
                    "SELECT table_name, column_name FROM information_schema.columns
                     WHERE table_schema = 'public' AND table_name <> 'schema_version'
                     ORDER BY table_name, ordinal_position"
                }
            };
            let mut tables: Vec<(String, Vec<String>)> = Vec::new();
            for row in conn.query(listing, &[])? {
                let (table, column): (String, String) = (row.get(0)?, row.get(1)?);
                match tables.last_mut() {
                    Some((last, columns)) if *last == table => columns.push(column),
                    _ => tables.push((table, vec![column])),
                }
            }
            Ok(tables)
        })
        .expect("the schema reads")
}

#[test]
fn both_engines_make_the_same_tables_and_columns() {
    let postgres = Postgres::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let on_postgres = Storage::open(&Database::Postgres(
        postgres.database(&dir.path().join("fresh")),
    ))
    .expect("a fresh PostgreSQL database");
    let on_sqlite = Storage::open(&Database::Sqlite(dir.path().join("server.db")))
        .expect("a fresh SQLite database");
    let (sqlite, postgres) = (schema(&on_sqlite), schema(&on_postgres));
    assert!(sqlite.len() > 20, "{sqlite:?}");
    assert_eq!(sqlite, postgres);
}

/// A node as a child process with its own data folder.
fn spawn_node(dir: &Path, name: &str, shared: &Shared) -> (std::process::Child, String) {
    anjian_tests::process::spawn_listening(
        std::process::Command::new(env!("CARGO_BIN_EXE_test_server"))
            .arg(dir.join(name))
            .arg("127.0.0.1:0")
            .env("ANJIAN_DATABASE", &shared.database)
            .env("ANJIAN_BLOBS", &shared.blobs)
            .stderr(std::process::Stdio::null()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_sync_loses_nothing_and_the_phone_finishes_on_the_other() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = Shared::start(dir.path());
    let database = shared.database.clone();
    let (mut a, a_addr) = spawn_node(dir.path(), "a", &shared);
    let (mut b, b_addr) = spawn_node(dir.path(), "b", &shared);
    let (a_url, b_url) = (format!("http://{a_addr}"), format!("http://{b_addr}"));
    let mut zhang = Inspector::sign_in(dir.path(), &a_url, "zhang", "应急管理", "310101").await;
    let cases = zhang.record_cases(9, 200);

    // Node A is killed (SIGKILL) a third of the way through the phone's sync.
    let mut killed = false;
    let outcome = zhang
        .store
        .sync(&a_url, &zhang.token, |p| {
            if !killed && p.documents_done >= p.documents_total / 3 {
                a.kill().expect("SIGKILL");
                killed = true;
            }
        })
        .await;
    assert!(killed && outcome.is_err(), "{outcome:?}");
    let _ = a.wait();

    // Every change the phone recorded as acknowledged by node A is in the database.
    let acknowledged = acknowledged_changes(&dir.path().join("zhang.db"));
    assert!(!acknowledged.is_empty(), "node A acknowledged some changes");
    let storage = Storage::open(&Database::Postgres(database.clone())).expect("database");
    for (case, hash) in &acknowledged {
        let mut stored = storage
            .load_document(case.parse().expect("case id"))
            .expect("reads")
            .expect("an acknowledged case is stored");
        let hash: automerge::ChangeHash = hash.parse().expect("hash");
        assert!(stored.get_change_by_hash(&hash).is_some(), "{case}: {hash}");
    }

    // The phone finishes on node B, with the same token.
    let report = zhang
        .store
        .sync(&b_url, &zhang.token, |_| {})
        .await
        .expect("the phone syncs with node B");
    assert!(report.refused.is_empty(), "{report:?}");
    for case in &cases {
        let state = zhang.store.upload_state(*case).expect("state");
        assert_eq!(
            state.acknowledged, state.changes,
            "{case} fully acknowledged"
        );
        let mut stored = storage
            .load_document(*case)
            .expect("reads")
            .expect("stored");
        assert_eq!(stored.get_heads(), document(&mut zhang, *case).get_heads());
    }
    let count: i64 = storage
        .read(|c| c.query_row("SELECT count(*) FROM documents", &[], |r| r.get(0)))
        .expect("count");
    assert_eq!(count, cases.len() as i64, "each case stored once");
    let _ = b.kill();
    let _ = b.wait();
}

/// The HTTP requests a node has counted (this one among them).
async fn requests(node: &TestServer) -> u64 {
    let metrics = reqwest::get(format!("{}/metrics", node.url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("anjian_http_requests_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the node counts requests")
}

/// Tries to sign in as `username` with a wrong password, as the client `forwarded` behind
/// a proxy; the answer's status.
async fn wrong_password(url: &str, username: &str, forwarded: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/api/v1/login"))
        .header("X-Forwarded-For", forwarded)
        .json(&serde_json::json!({
            "username": username,
            "password": "not the password",
            "device_name": "测试设备",
            "actor_id": uuid::Uuid::new_v4().simple().to_string(),
        }))
        .send()
        .await
        .expect("login request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_delays_follow_the_client_a_trusted_proxy_names_and_no_one_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let loopback: std::net::IpAddr = [127, 0, 0, 1].into();
    for (name, trusted) in [("behind", vec![loopback]), ("open", Vec::new())] {
        let data = dir.path().join(name);
        anjian_tests::add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
        let server = TestServer::start_with(Settings {
            data,
            trusted_proxies: trusted.clone(),
            ..Settings::default()
        })
        .await;
        // Five failures as one client: the sixth attempt from it waits.
        for _ in 0..5 {
            assert_eq!(
                wrong_password(&server.url(), "zhang", "203.0.113.7").await,
                401
            );
        }
        assert_eq!(
            wrong_password(&server.url(), "zhang", "203.0.113.7").await,
            429
        );
        // Another client: behind a trusted proxy it is someone else and tries at once;
        // without one, the header is the caller's say-so and changes nothing.
        let other = wrong_password(&server.url(), "zhang", "198.51.100.9").await;
        if trusted.is_empty() {
            assert_eq!(other, 429, "an untrusted X-Forwarded-For is ignored");
        } else {
            assert_eq!(other, 401, "a trusted proxy's client is its own");
        }
        server.stop().await;
    }
}

/// `/metrics` answers this machine's own requests and the scrapers `metrics_from` names;
/// anyone else, a client forwarded by a proxy on this machine included, is answered 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_this_machine_and_named_scrapers_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scraper: std::net::IpAddr = [203, 0, 113, 7].into();
    let status = |url: String, forwarded: Option<&'static str>| async move {
        let request = reqwest::Client::new().get(format!("{url}/metrics"));
        let request = match forwarded {
            Some(client) => request.header("X-Forwarded-For", client),
            None => request,
        };
        request.send().await.expect("an answer").status().as_u16()
    };
    let open = TestServer::start_with(Settings {
        data: dir.path().join("open"),
        ..Settings::default()
    })
    .await;
    assert_eq!(status(open.url(), None).await, 200);
    let text = reqwest::get(format!("{}/metrics", open.url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(text.contains("anjian_http_requests_total"), "{text}");
    assert_eq!(
        status(open.url(), Some("203.0.113.7")).await,
        404,
        "forwarded by a proxy the server does not trust"
    );
    open.stop().await;

    let behind = TestServer::start_with(Settings {
        data: dir.path().join("behind"),
        trusted_proxies: vec![[127, 0, 0, 1].into()],
        metrics_from: vec![scraper],
        ..Settings::default()
    })
    .await;
    assert_eq!(status(behind.url(), Some("203.0.113.7")).await, 200);
    assert_eq!(status(behind.url(), Some("198.51.100.9")).await, 404);
    assert_eq!(
        status(behind.url(), None).await,
        404,
        "from the trusted proxy's address, naming no client"
    );
    behind.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_behind_a_round_robin_balancer_merges_and_reads_alike_on_every_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = Shared::start(dir.path());
    // Each node has a data folder of its own; both trust the balancer, and let the test
    // read their counters, from the balancer's address as this machine is both.
    let settings = |name: &str| Settings {
        trusted_proxies: vec![[127, 0, 0, 1].into()],
        metrics_from: vec![[127, 0, 0, 1].into()],
        ..shared.settings(dir.path().join(name))
    };
    let a = TestServer::start_with(settings("a")).await;
    let b = TestServer::start_with(settings("b")).await;
    let balancer = anjian_tests::cluster::Balancer::start(&[a.addr, b.addr]);
    let url = balancer.url();
    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let mut li = Inspector::sign_in(dir.path(), &url, "li", "消防", "310104").await;

    // Every request may land on either node: a joint case with a photo, recorded on both
    // phones offline, syncs and merges through the balancer.
    let case = zhang.open_joint_case(6, &[("li", "310104", "消防")]);
    let finding = zhang
        .store
        .add_finding(case, &sample::finding("配电箱未接地"))
        .expect("finding");
    let photo = zhang
        .store
        .ingest_photo(&sample::jpeg(640, 480))
        .expect("ingest");
    zhang
        .store
        .attach_photo(
            case,
            &anjian_core::PhotoTarget::Finding(finding),
            &photo.sha256,
            "配电箱",
        )
        .expect("attach");
    zhang.sync().await.expect("zhang syncs");
    li.sync().await.expect("li syncs");
    li.store
        .add_finding(case, &sample::finding("灭火器过期"))
        .expect("finding");
    li.sync().await.expect("li syncs");
    zhang.sync().await.expect("zhang syncs");
    for inspector in [&mut zhang, &mut li] {
        assert_eq!(inspector.store.case(case).expect("case").findings.len(), 2);
    }

    // A supervisor's requests alternate between the nodes (each balanced on its own) and
    // read the same case, photo included, whichever answers.
    let chief = login_token(&url, "chief").await;
    let before = [requests(&a).await, requests(&b).await];
    let first = case_json(&url, &chief, case).await;
    for _ in 0..3 {
        assert_eq!(case_json(&url, &chief, case).await, first);
    }
    let after = [requests(&a).await, requests(&b).await];
    // Each node answered two of the four (a node counts its own metrics requests too).
    assert_eq!([after[0] - before[0] - 1, after[1] - before[1] - 1], [2, 2]);
    for _ in 0..2 {
        let response = reqwest::Client::new()
            .get(format!("{url}/api/v1/blobs/{}", photo.sha256))
            .bearer_auth(&chief)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.expect("bytes");
        assert_eq!(anjian_core::photo::sha256_hex(&bytes), photo.sha256);
    }

    // A guesser's wrong passwords, spread over both nodes by the balancer, add up: after
    // the allowance, both nodes make the next attempt wait.
    let allowed = Settings::default()
        .limits
        .sign_in_failures_per_name_and_address;
    for _ in 0..allowed {
        assert_eq!(wrong_password(&url, "li", "203.0.113.9").await, 401);
    }
    for node in [&a, &b] {
        assert_eq!(wrong_password(&node.url(), "li", "203.0.113.9").await, 429);
    }
    drop(balancer);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_started_on_one_node_finishes_on_the_other_in_whole_s3_parts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Split {
        shared,
        a,
        b,
        mut zhang,
        li: _li,
    } = Split::start(dir.path()).await;
    // A photo of about 12 MB: three parts of an S3 multipart upload (5, 5 and 2 MiB).
    let photo = crate::blobs::noise_png(2000, 2000);
    assert!(photo.len() > 2 * 5 * 1024 * 1024 && photo.len() < 3 * 5 * 1024 * 1024);
    let case = zhang.open_sample_case(12);
    let finding = zhang
        .store
        .add_finding(case, &sample::finding("储罐泄漏"))
        .expect("finding");
    let info = zhang.store.ingest_photo(&photo).expect("ingest");
    zhang
        .store
        .attach_photo(
            case,
            &anjian_core::PhotoTarget::Finding(finding),
            &info.sha256,
            "储罐全景",
        )
        .expect("attach");
    zhang.store.set_upload_originals(false);
    zhang
        .sync()
        .await
        .expect("the case and thumbnail reach node A");

    // 40% goes to node A; the connection drops and the phone reaches node B for the rest.
    let path = format!("/api/v1/blobs/{}", info.sha256);
    let cut = photo.len() * 4 / 10;
    let first = crate::blobs::patch(
        &format!("{}{path}", a.url()),
        &zhang.token,
        0,
        photo.len(),
        &photo[..cut],
    )
    .await;
    assert_eq!(first.status(), 204);
    let head = reqwest::Client::new()
        .head(format!("{}{path}", b.url()))
        .bearer_auth(&zhang.token)
        .send()
        .await
        .expect("head");
    assert_eq!(head.headers()["upload-offset"], cut.to_string().as_str());
    let rest = crate::blobs::patch(
        &format!("{}{path}", b.url()),
        &zhang.token,
        cut,
        photo.len(),
        &photo[cut..],
    )
    .await;
    assert_eq!(rest.status(), 201, "{:?}", rest.text().await);

    // Node A serves the photo node B stored, byte for byte.
    let got = reqwest::Client::new()
        .get(format!("{}{path}", a.url()))
        .bearer_auth(&zhang.token)
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), photo.as_slice());

    // The object store holds it, sent in three parts (an S3 multipart object's ETag ends
    // in its number of parts; every part but the last had to be at least 5 MiB, which
    // SeaweedFS enforces); no node keeps blob files or unfinished parts.
    let location = shared.blobs.strip_prefix("s3://").expect("an s3 location");
    let (bucket_and_prefix, _) = location.split_once('?').expect("settings");
    let object = reqwest::Client::new()
        .head(format!(
            "{}/{bucket_and_prefix}/{}",
            shared.objects.endpoint, info.sha256
        ))
        .send()
        .await
        .expect("object head");
    assert_eq!(object.status(), 200);
    assert_eq!(
        object.headers()["content-length"],
        photo.len().to_string().as_str()
    );
    let etag = object.headers()["etag"].to_str().expect("text").to_owned();
    assert!(etag.trim_matches('"').ends_with("-3"), "ETag {etag}");
    for node in ["a", "b"] {
        assert!(!dir.path().join(node).join("blobs").exists(), "{node}");
    }
    let storage = Storage::open(&Database::Postgres(shared.database.clone())).expect("database");
    let unfinished: i64 = storage
        .read(|c| c.query_row("SELECT count(*) FROM upload_parts", &[], |r| r.get(0)))
        .expect("count");
    assert_eq!(unfinished, 0);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_districts_day_split_across_two_nodes_merges_every_case_and_photo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = Shared::start(dir.path());
    let (a, b) = (
        node(dir.path(), "a", &shared).await,
        node(dir.path(), "b", &shared).await,
    );
    let nodes = [a.url(), b.url()];
    const PHONES: usize = 12;
    const CASES: usize = 3;
    let names: Vec<String> = (0..PHONES).map(|i| format!("insp{i:02}")).collect();
    let accounts: Vec<(&str, Role, &str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), Role::Inspector, "310101", "应急管理"))
        .collect();
    add_users(&shared.database, &accounts);

    // Each phone signs in on one node, records its cases offline, one with a photo of its
    // own, and all sync at once, half of them through each node.
    let mut phones = Vec::new();
    let mut photos = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut phone =
            Inspector::sign_in(dir.path(), &nodes[i % 2], name, "应急管理", "310101").await;
        let cases = phone.record_cases(100 + i as u32, CASES);
        let info = phone
            .store
            .ingest_photo(&sample::jpeg(320 + i as u32, 240))
            .expect("ingest");
        let finding = phone.store.case(cases[0]).expect("case").findings[0].id;
        phone
            .store
            .attach_photo(
                cases[0],
                &anjian_core::PhotoTarget::Finding(finding),
                &info.sha256,
                "现场",
            )
            .expect("attach");
        photos.push(info.sha256);
        phones.push(phone);
    }
    let reports = futures_util::future::join_all(phones.iter_mut().map(|phone| phone.sync())).await;
    for report in reports {
        let report = report.expect("sync");
        // Its own cases, and those of colleagues of its district already synced.
        assert!(report.acknowledged >= CASES, "{report:?}");
        assert!(report.refused.is_empty(), "{report:?}");
        assert_eq!(report.blobs_uploaded, 2, "the original and its thumbnail");
    }

    // Both nodes list every case and serve every photo, whichever node took it.
    let chief = login_token(&nodes[0], "chief").await;
    for url in &nodes {
        let list = anjian_tests::get_json(&format!("{url}/api/v1/cases?limit=200"), &chief).await;
        assert_eq!(list["total"], PHONES * CASES, "{url}");
        for sha256 in &photos {
            let response = reqwest::Client::new()
                .get(format!("{url}/api/v1/blobs/{sha256}"))
                .bearer_auth(&chief)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200);
            let bytes = response.bytes().await.expect("bytes");
            assert_eq!(&anjian_core::photo::sha256_hex(&bytes), sha256);
        }
    }

    // The next day every phone reaches the other node: nothing is sent again and nothing
    // is missing.
    for (i, phone) in phones.iter_mut().enumerate() {
        phone.server = nodes[(i + 1) % 2].clone();
        let report = phone.sync().await.expect("sync");
        assert_eq!(report.blobs_uploaded, 0, "{report:?}");
        assert!(report.refused.is_empty(), "{report:?}");
    }
    b.stop().await;
    a.stop().await;
}
