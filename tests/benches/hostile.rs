//! What a hostile signed-in client costs the server (docs/BENCHMARKS.md, "Trust
//! boundary"), each against a baseline measured in the same run:
//!
//! 1. memory: the server's resident memory before, while and after one socket asks for
//!    100,000 random document ids;
//! 2. `/healthz` latency while four 10,000 × 10,000 filtered PNGs are uploaded and decoded,
//!    against `/healthz` on an idle server;
//! 3. a correct sign-in while 200 wrong passwords for the same name arrive from 200 other
//!    addresses, against the same sign-in on a quiet server; and an unknown name's answer
//!    time against a known name's wrong password.
//!
//! Run: `cargo bench -p anjian-tests --bench hostile [-- IDS]`

use std::process::Command;
use std::time::{Duration, Instant};

use anjian_core::sync::DocumentId;
use anjian_core::{CaseId, Role, sample};
use anjian_tests::hostile::{name_photo, png, png_rows};
use anjian_tests::peer::RawPeer;
use anjian_tests::process::{self, rss};
use anjian_tests::{Inspector, PASSWORD, add_user, login_device, login_token};
use automerge::AutoCommit;
use serde_json::json;

fn main() {
    let ids: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("server");
    add_user(&data, "insp", Role::Inspector, "310101", "应急管理");
    add_user(&data, "victim", Role::Inspector, "310101", "应急管理");
    let settings = work.path().join("bench.toml");
    std::fs::write(&settings, "[limits]\nframes_per_second = 10000000\n").expect("settings");
    let (server, addr) = process::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_test_server"))
            .arg(&data)
            .env("ANJIAN_CONFIG", &settings),
    );
    let url = format!("http://{addr}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut insp = Inspector::sign_in(work.path(), &url, "insp", "应急管理", "310101").await;
        let case = insp.open_sample_case(1);
        let finding = insp
            .store
            .add_finding(case, &sample::finding("配电室门口堆放杂物"))
            .expect("finding");
        insp.sync().await.expect("sync");

        memory(&server, &addr, &url, ids).await;
        healthz_under_png_load(&url, &addr, &mut insp, case, finding).await;
        sign_in_during_a_flood(&url).await;
    });
    process::stop(server);
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}

async fn memory(server: &std::process::Child, addr: &str, url: &str, ids: usize) {
    let token = login_token(url, "insp").await;
    // Warm up: a socket asking for a tenth as many ids, so that the baseline holds what
    // serving any such socket allocates once (pools, buffers, the allocator's arenas).
    ask_random(server, addr, &token, ids / 10).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss(server);
    println!("# {ids} random document ids on one socket, twice");
    for round in 1..=2 {
        let started = Instant::now();
        let during = ask_random(server, addr, &token, ids).await;
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss(server);
        println!(
            "round {round} ({:.1} s): resident memory before {:.1} MB, at the end of the socket {:.1} MB, after it closed {:.1} MB ({:+.1}% of before)",
            took.as_secs_f64(),
            mb(before),
            mb(during),
            mb(after),
            (after as f64 / before as f64 - 1.0) * 100.0
        );
    }
}

/// Asks for `ids` random documents on one socket, reading every answer; returns the
/// server's resident memory once all are answered, before the socket closes.
async fn ask_random(server: &std::process::Child, addr: &str, token: &str, ids: usize) -> u64 {
    let mut peer = RawPeer::joined(addr, token).await;
    peer.ask_for_unknown_documents(ids, 200).await;
    rss(server)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

async fn healthz_samples(url: &str, until: impl Fn() -> bool) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    while !until() {
        let started = Instant::now();
        let ok = client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        assert!(ok, "healthz answers");
        samples.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    samples
}

async fn healthz_under_png_load(
    url: &str,
    addr: &str,
    insp: &mut Inspector,
    case: CaseId,
    finding: anjian_core::FindingId,
) {
    let started = Instant::now();
    let mut idle = healthz_samples(url, || started.elapsed() > Duration::from_secs(3)).await;
    let (width, height) = (10_000, 10_000);
    let rows = png_rows(width, height);
    let pngs: Vec<Vec<u8>> = (0..4).map(|seed| png(width, height, &rows, seed)).collect();
    let kilobytes = pngs[0].len() / 1024;
    let hashes: Vec<String> = pngs
        .iter()
        .map(|p| anjian_core::photo::sha256_hex(p))
        .collect();
    let actor = automerge::ActorId::random();
    let token = login_device(url, "insp", &actor.to_hex_string()).await;
    let mut doc = AutoCommit::load(&insp.store.export_document(case).expect("export"))
        .expect("load")
        .with_actor(actor);
    for sha256 in &hashes {
        name_photo(&mut doc, finding, sha256, "insp");
    }
    doc.commit();
    let mut peer = RawPeer::joined(addr, &token).await;
    assert!(peer.push(DocumentId::of(case), &mut doc).await.acknowledged);
    let load_started = Instant::now();
    let uploads: Vec<_> = pngs
        .into_iter()
        .zip(&hashes)
        .map(|(bytes, sha256)| {
            let (url, token, sha256) = (url.to_owned(), token.clone(), sha256.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .put(format!("{url}/api/v1/blobs/{sha256}"))
                    .bearer_auth(token)
                    .body(bytes)
                    .send()
                    .await
                    .expect("upload")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut loaded = healthz_samples(url, || uploads.iter().all(|u| u.is_finished())).await;
    let took = load_started.elapsed();
    let mut statuses = Vec::new();
    for upload in uploads {
        statuses.push(upload.await.expect("task"));
    }
    println!(
        "# /healthz while four {width} x {height} filtered PNGs ({kilobytes} KB each) are uploaded and decoded ({:.1} s, answers {statuses:?})",
        took.as_secs_f64()
    );
    for (name, samples) in [("idle", &mut idle), ("under the PNG load", &mut loaded)] {
        let n = samples.len();
        println!(
            "/healthz {name}: {n} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(samples, 0.5).as_secs_f64() * 1e3,
            percentile(samples, 0.99).as_secs_f64() * 1e3,
            percentile(samples, 1.0).as_secs_f64() * 1e3
        );
    }
}

async fn sign_in(url: &str, from: [u8; 4], username: &str, password: &str) -> (u16, Duration) {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .build()
        .expect("client");
    let started = Instant::now();
    let status = client
        .post(format!("{url}/api/v1/login"))
        .json(&json!({
            "username": username, "password": password, "device_name": "手机",
            "actor_id": automerge::ActorId::random().to_hex_string(),
        }))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16();
    (status, started.elapsed())
}

async fn sign_in_during_a_flood(url: &str) {
    // The owner's phone signed in from its address before.
    let (status, _) = sign_in(url, [127, 0, 0, 1], "victim", PASSWORD).await;
    assert_eq!(status, 200);
    let mut quiet = Vec::new();
    for _ in 0..9 {
        let (status, took) = sign_in(url, [127, 0, 0, 1], "victim", PASSWORD).await;
        assert_eq!(status, 200);
        quiet.push(took);
    }
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..9u8 {
        unknown.push(sign_in(url, [127, 0, 1, i], "nobody", "wrong password").await);
        wrong.push(sign_in(url, [127, 0, 2, i], "insp", "wrong password").await);
    }
    let flood: Vec<_> = (0..200u8)
        .map(|i| {
            let url = url.to_owned();
            tokio::spawn(async move {
                sign_in(&url, [127, 0, 3, i], "victim", "wrong password")
                    .await
                    .0
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, during) = sign_in(url, [127, 0, 0, 1], "victim", PASSWORD).await;
    let mut statuses = std::collections::BTreeMap::new();
    for attempt in flood {
        *statuses.entry(attempt.await.expect("task")).or_insert(0) += 1;
    }
    let median = |xs: &[Duration]| {
        let mut xs = xs.to_vec();
        percentile(&mut xs, 0.5).as_secs_f64() * 1e3
    };
    let times = |xs: &[(u16, Duration)]| xs.iter().map(|(_, t)| *t).collect::<Vec<_>>();
    println!(
        "# sign-in while 200 wrong passwords for the same name arrive from 200 other addresses"
    );
    println!(
        "correct sign-in: quiet median {:.1} ms; during the flood {:.1} ms (status {status}); the flood got {statuses:?}",
        median(&quiet),
        during.as_secs_f64() * 1e3
    );
    println!(
        "unknown name: median {:.1} ms (statuses {:?}); known name, wrong password: median {:.1} ms (statuses {:?})",
        median(&times(&unknown)),
        unknown.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        median(&times(&wrong)),
        wrong.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );
}
