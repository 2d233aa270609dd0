//! `serve --demo`: the demo fills a fresh folder through a real server (its inspectors sync
//! over HTTP and WebSocket), supervisors see the result through the API, and a second run
//! on the same folder adds nothing.

use std::collections::BTreeSet;

use anjian_core::Role;
use anjian_sync_server::demo::{self, DemoAccount, Prepared};
use anjian_sync_server::{Settings, Storage};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A client signed in as one demo account.
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    async fn sign_in(url: &str, account: &DemoAccount) -> Client {
        let http = reqwest::Client::new();
        let body: Value = http
            .post(format!("{url}/api/v1/login"))
            .json(&json!({
                "username": account.username,
                "password": account.password,
                "device_name": "测试浏览器",
                "actor_id": uuid::Uuid::new_v4().simple().to_string(),
            }))
            .send()
            .await
            .expect("login request")
            .json()
            .await
            .expect("login json");
        let token = body["token"].as_str().expect("a token").to_owned();
        Client {
            http,
            url: url.to_owned(),
            token,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request")
    }

    async fn json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("json")
    }
}

fn account<'a>(accounts: &'a [DemoAccount], role: Role, district: &str) -> &'a DemoAccount {
    accounts
        .iter()
        .find(|a| a.role == role && a.district.as_str() == district)
        .expect("demo account")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fills_a_fresh_folder_through_the_sync_path_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,anjian_core=warn")
        .try_init();
    let data = dir.path().join("data");
    let database = anjian_sync_server::testing::database(&data);
    let Prepared::Accounts(accounts) = demo::prepare(&data, &database).expect("prepare") else {
        panic!("a fresh folder gets demo accounts");
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    let settings = Settings {
        data: data.clone(),
        database: anjian_sync_server::testing::postgres_database(&data),
        blobs: anjian_sync_server::testing::s3_blobs(&data),
        listen: addr,
        ..Settings::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(anjian_sync_server::serve(settings, listener, async {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}");

    let summary = demo::seed(&url, &data, &accounts).await.expect("seeded");
    assert!(
        summary.cases >= 10 && summary.enterprises >= 10,
        "{summary}"
    );
    assert!(summary.conflicts >= 1 && summary.overdue >= 1, "{summary}");

    // The administrator sees every case, in every demo district, with major hazards.
    let admin = Client::sign_in(&url, account(&accounts, Role::Admin, "310101")).await;
    let all = admin.json("/api/v1/cases?limit=500").await;
    assert_eq!(
        all["total"],
        json!(summary.cases),
        "every case reached the server"
    );
    let districts: BTreeSet<&str> = all["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| c["district"].as_str())
        .collect();
    assert_eq!(districts, BTreeSet::from(["310101", "310104", "310115"]));
    let major = admin.json("/api/v1/cases?level=major").await;
    assert!(major["total"].as_i64().unwrap_or(0) >= 1, "{major}");

    // Pudong's supervisor finds the joint case's level conflict, naming both inspectors.
    let pudong = Client::sign_in(&url, account(&accounts, Role::Supervisor, "310115")).await;
    let disputed = pudong.json("/api/v1/cases?conflicts=true").await;
    let case_id = disputed["cases"][0]["id"]
        .as_str()
        .expect("a case in conflict");
    let case = pudong.json(&format!("/api/v1/cases/{case_id}")).await;
    assert_eq!(case["type"], "joint");
    let conflict = case["conflicts"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["path"].as_array().and_then(|p| p.last()) == Some(&json!("level")))
        })
        .expect("a level conflict");
    let mut writers: Vec<&str> = conflict["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|v| v["written_by"].as_str())
        .collect();
    writers.sort();
    assert_eq!(writers, ["lina", "wujun"]);

    // Xuhui's supervisor sees the cross-district case its inspector made in Huangpu.
    let xuhui = Client::sign_in(&url, account(&accounts, Role::Supervisor, "310104")).await;
    let cross = xuhui.json("/api/v1/cases?type=cross_district").await;
    assert_eq!(cross["cases"][0]["district"], "310101", "{cross}");

    // Huangpu's rectification board has overdue items.
    let huangpu = Client::sign_in(&url, account(&accounts, Role::Supervisor, "310101")).await;
    let overdue = huangpu.json("/api/v1/rectifications?overdue=true").await;
    let rows = overdue["rectifications"].as_array().expect("rows");
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["overdue"] == true),
        "{overdue}"
    );

    // The follow-up reaches the board: major hazards listed for supervision (挂牌督办).
    let board = admin.json("/api/v1/rectifications").await;
    let listed = board["rectifications"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["listed"] == true && r["listing"]["number"].is_string())
        .count();
    assert!(listed >= 1, "{board}");

    // Findings carry the day of their visit (recorded offline on that day), not the day
    // the demo ran, and their follow-up; and photos were uploaded: a finding's photo comes
    // back byte-exact.
    let mut steps = BTreeSet::new();
    let mut photo = None;
    for row in all["cases"].as_array().expect("cases") {
        let id = row["id"].as_str().expect("id");
        let case = admin.json(&format!("/api/v1/cases/{id}")).await;
        let visit_day = &case["opened_at"].as_str().expect("opened_at")[..10];
        for finding in case["findings"].as_array().expect("findings") {
            let recorded = finding["recorded_at"].as_str().expect("recorded_at");
            assert_eq!(&recorded[..10], visit_day, "{id}: {finding}");
            for step in finding["events"].as_array().expect("events") {
                steps.insert(step["action"].as_str().expect("action").to_owned());
            }
        }
        if photo.is_some() {
            continue;
        }
        photo = case["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .flat_map(|f| f["photos"].as_array().cloned().unwrap_or_default())
            .find_map(|p| p["sha256"].as_str().map(str::to_owned));
    }
    let wanted = ["close", "extend", "list", "onsite", "plan", "reinspect"];
    assert!(
        wanted.iter().all(|w| steps.contains(*w)),
        "the demo takes every kind of follow-up step it shows: {steps:?}"
    );
    let sha256 = photo.expect("a photo in some case");
    let response = admin.get(&format!("/api/v1/blobs/{sha256}")).await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.expect("photo bytes");
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sha256);

    // A second `serve --demo` on the same folder adds nothing.
    let users = Storage::open(&database)
        .expect("database")
        .users()
        .expect("users")
        .len();
    assert!(matches!(
        demo::prepare(&data, &database).expect("prepare again"),
        Prepared::NotFresh(_)
    ));
    let again = Storage::open(&database)
        .expect("database")
        .users()
        .expect("users")
        .len();
    assert_eq!(again, users);
    let all_again = admin.json("/api/v1/cases?limit=500").await;
    assert_eq!(all_again["total"], all["total"]);

    let _ = stop.send(());
    server.await.expect("server task").expect("server ran");
}
