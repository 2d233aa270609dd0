//! End-to-end scenarios and benchmarks across the Anjian crates; this library holds what
//! they share: a real sync server on `127.0.0.1:0` and inspectors with real stores.

pub mod bench;
pub mod cluster;
pub mod hostile;
pub mod kills;
pub mod peer;
pub mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anjian_core::Role;
use anjian_core::{Identity, Store};
use anjian_sync_server::users::NewUser;
use anjian_sync_server::{Settings, Storage};

/// A sync server running in this process on a free loopback port.
pub struct TestServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its data folder.
    pub data: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with its data in `data`.
    pub async fn start(data: &Path) -> TestServer {
        Self::start_with(Settings {
            data: data.to_owned(),
            ..Settings::default()
        })
        .await
    }

    /// Starts a server with these settings (its `listen` is replaced by a free port).
    pub async fn start_with(mut settings: Settings) -> TestServer {
        if settings.database.is_none() {
            settings.database = anjian_sync_server::testing::postgres_database(&settings.data);
        }
        if settings.blobs.is_none() {
            settings.blobs = anjian_sync_server::testing::s3_blobs(&settings.data);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        settings.listen = addr;
        let data = settings.data.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            anjian_sync_server::serve(settings, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        TestServer {
            addr,
            data,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Makes every blob the server at `data` stored a day old, as if the day had passed (what
/// one account's uploads store is bounded within 24 hours).
pub fn blobs_stored_a_day_ago(data: &Path) {
    Storage::open(&anjian_sync_server::testing::database(data))
        .expect("server database")
        .write(|c| {
            let day_ago = (chrono::Utc::now() - chrono::Duration::hours(25)).to_rfc3339();
            c.execute(
                "UPDATE blobs SET stored_at = ?1",
                anjian_sync_server::params![day_ago],
            )
        })
        .expect("a day passes");
}

/// Adds a user to the server's database in `data` (the server may be running).
pub fn add_user(data: &Path, username: &str, role: Role, district: &str, department: &str) {
    std::fs::create_dir_all(data).expect("data folder");
    let storage =
        Storage::open(&anjian_sync_server::testing::database(data)).expect("server database");
    storage
        .add_user(&NewUser {
            username,
            name: &format!("{username}的姓名"),
            role,
            district: &district.parse().expect("district"),
            department,
            password: "correct horse battery",
        })
        .expect("user added");
}

/// Every change a store's file (`path`) records as acknowledged by the server: (case,
/// change hash).
pub fn acknowledged_changes(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).expect("the store's file");
    let mut stmt = conn
        .prepare("SELECT case_id, change_hash FROM change_acks")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect()
}

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery";

/// An inspector with a store of their own, signed in to a server.
pub struct Inspector {
    /// The store on the inspector's phone.
    pub store: Store,
    /// The sync token.
    pub token: String,
    /// The server.
    pub server: String,
}

impl Inspector {
    /// Opens a store in `dir` for `username` and signs in to `server`.
    pub async fn sign_in(
        dir: &Path,
        server: &str,
        username: &str,
        department: &str,
        district: &str,
    ) -> Inspector {
        let identity = Identity {
            user_id: username.to_owned(),
            name: format!("{username}的姓名"),
            department: department.to_owned(),
            district: district.parse().expect("district"),
            role: anjian_core::Role::Inspector,
        };
        let store = Store::open(dir.join(format!("{username}.db")), identity).expect("store opens");
        let token = store
            .login(server, username, PASSWORD, "测试手机")
            .await
            .expect("login");
        Inspector {
            store,
            token,
            server: server.to_owned(),
        }
    }

    /// Registers the sample enterprise `seed` and opens a routine case of it.
    pub fn open_sample_case(&mut self, seed: u32) -> anjian_core::CaseId {
        let enterprise = anjian_core::sample::enterprise(seed);
        self.store
            .register_enterprise(&enterprise)
            .expect("register");
        self.store
            .open_case(&anjian_core::sample::new_case(&enterprise))
            .expect("case")
    }

    /// Registers the sample enterprise `seed` and opens `count` routine cases of it, each
    /// with one finding (隐患 0, 隐患 1, …).
    pub fn record_cases(&mut self, seed: u32, count: usize) -> Vec<anjian_core::CaseId> {
        let enterprise = anjian_core::sample::enterprise(seed);
        self.store
            .register_enterprise(&enterprise)
            .expect("register");
        (0..count)
            .map(|i| {
                let case = self
                    .store
                    .open_case(&anjian_core::sample::new_case(&enterprise))
                    .expect("case");
                self.store
                    .add_finding(case, &anjian_core::sample::finding(&format!("隐患 {i}")))
                    .expect("finding");
                case
            })
            .collect()
    }

    /// Registers the sample enterprise `seed` and opens a joint case (联合执法) of it with
    /// `team` (user, district, department) on the inspection team.
    pub fn open_joint_case(
        &mut self,
        seed: u32,
        team: &[(&str, &str, &str)],
    ) -> anjian_core::CaseId {
        let enterprise = anjian_core::sample::enterprise(seed);
        self.store
            .register_enterprise(&enterprise)
            .expect("register");
        let mut new = anjian_core::sample::new_case(&enterprise);
        new.case_type = anjian_core::CaseType::Joint;
        for (user, district, department) in team {
            new.team.push(anjian_core::TeamMember {
                user_id: (*user).into(),
                name: format!("{user}的姓名"),
                department: (*department).into(),
                district: district.parse().expect("district"),
            });
        }
        self.store.open_case(&new).expect("case")
    }

    /// Records a major hazard in `case`, orders it rectified and re-inspects it as passed
    /// on site: it waits for 销号.
    pub fn reinspected_major_hazard(
        &mut self,
        case: anjian_core::CaseId,
    ) -> anjian_core::FindingId {
        let major = self
            .store
            .add_finding(
                case,
                &anjian_core::NewFinding {
                    level: Some(anjian_core::Level::Major),
                    ..anjian_core::sample::finding("液氯储罐区报警装置未投入使用")
                },
            )
            .expect("finding");
        let order = anjian_core::RectificationOrder {
            measures: "恢复报警装置".into(),
            deadline: chrono::NaiveDate::from_ymd_opt(2026, 12, 31).expect("date"),
            responsible: "安全总监".into(),
        };
        self.store
            .order_rectification(case, major, &order)
            .expect("order");
        self.store
            .follow_up(case, major, &anjian_core::HazardStep::pass("已恢复"))
            .expect("reinspect");
        major
    }

    /// The descriptions of a case's findings, sorted.
    pub fn descriptions(&mut self, case: anjian_core::CaseId) -> Vec<String> {
        let mut found: Vec<String> = self
            .store
            .case(case)
            .expect("case")
            .findings
            .into_iter()
            .map(|f| f.description)
            .collect();
        found.sort();
        found
    }

    /// One sync round.
    pub async fn sync(&mut self) -> anjian_core::Result<anjian_core::sync::SyncReport> {
        self.store.sync(&self.server, &self.token, |_| {}).await
    }
}

/// The value `/metrics` of the server at `url` shows for `name` (a counter or a gauge).
pub async fn metric(url: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// The JSON body of a GET of `url` with the bearer `token`.
pub async fn get_json(url: &str, token: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

/// Signs `username` in over HTTP (as a browser or integration would) and returns a token.
pub async fn login_token(server: &str, username: &str) -> String {
    login_device(server, username, &uuid::Uuid::new_v4().simple().to_string()).await
}

/// Signs `username` in from the device with actor id `actor` (hex), binding it; returns a
/// token.
pub async fn login_device(server: &str, username: &str, actor: &str) -> String {
    login_device_with_key(server, username, actor, None).await
}

/// Signs `username` in from the device with actor id `actor` (hex) that signs with `key`
/// (none: a device that signs nothing), binding both; returns a token.
pub async fn login_device_with_key(
    server: &str,
    username: &str,
    actor: &str,
    key: Option<&anjian_core::signing::PublicKey>,
) -> String {
    let mut request = serde_json::json!({
        "username": username,
        "password": PASSWORD,
        "device_name": "测试设备",
        "actor_id": actor,
    });
    if let Some(key) = key {
        request["key_algorithm"] = key.algorithm().code().into();
        request["public_key"] = hex::encode(key.bytes()).into();
    }
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("{server}/api/v1/login"))
        .json(&request)
        .send()
        .await
        .expect("login request")
        .json()
        .await
        .expect("login json");
    body["token"].as_str().expect("a token").to_owned()
}

/// Runs `tests/js/SCRIPT` with Node and returns the JSON of its last line of output;
/// panics with its output when it fails. The Node packages come from `npm ci` in
/// `tests/js` (the CI script runs it).
pub async fn run_js(script: &str, args: Vec<String>) -> serde_json::Value {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        js.join("node_modules").exists(),
        "run `npm ci` in tests/js (the CI script does)"
    );
    let script = js.join(script);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .args(args)
            .output()
    })
    .await
    .expect("task")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default()).expect("a JSON line")
}

/// A browser signed in to the pages: its session cookie.
pub async fn browser(server: &str, username: &str) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(format!("{server}/login"))
        .send()
        .await
        .expect("login page");
    let login_cookie = cookie(&page, "anjian_login");
    let html = page.text().await.expect("page");
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    let csrf = &html[start..start + html[start..].find('"').expect("end")];
    let answer = client
        .post(format!("{server}/login"))
        .header("cookie", format!("anjian_login={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            [
                ("username", username),
                ("password", PASSWORD),
                ("csrf", csrf),
                ("next", "/cases"),
            ]
            .iter()
            .map(|(k, v)| format!("{k}={}", anjian_sync_server::web::session::encode_query(v)))
            .collect::<Vec<_>>()
            .join("&"),
        )
        .send()
        .await
        .expect("login");
    assert_eq!(answer.status(), 303, "{username} signs in");
    let session = format!(
        "__Host-anjian_session={}",
        cookie(&answer, "__Host-anjian_session")
    );
    (client, session)
}

/// The value of cookie `name` that `response` sets.
pub fn cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
        .unwrap_or_else(|| panic!("no cookie {name}"))
}

/// What a browser with `session` (its cookie) gets at `url`: the status and the body.
pub async fn get_page(client: &reqwest::Client, session: &str, url: String) -> (u16, Vec<u8>) {
    let response = client
        .get(url)
        .header("cookie", session)
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}
