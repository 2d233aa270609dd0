//! What entering again after a refusal costs the phone (docs/BENCHMARKS.md). A supervisor
//! closes (销号) a major hazard on the server while the inspector, offline, takes another
//! step on it and then records N more findings in the same case. The phone's sync sends
//! them all; the server refuses the step and, with it, every finding built on it; the
//! phone rebuilds the case and enters the N findings again, and its next round sends the
//! new changes. Against the baseline of the same N findings recorded without the refused
//! step, synced the same way, on the same server.
//!
//! Run: `cargo bench -p anjian-tests --bench reentry [-- N…]` (100, 400 and 1000 by default)

use anjian_tests::bench::{ms, sizes_or};
use std::time::{Duration, Instant};

use anjian_core::sample;
use anjian_core::{CaseId, FindingId, HazardStep, Role};
use anjian_tests::{Inspector, TestServer, add_user, login_token};

const DISTRICT: &str = "310101";

fn main() {
    let sizes = sizes_or(&[100, 400, 1000]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("# Entering again N findings after a refused step, against syncing them plainly");
    for n in sizes {
        let (plain, plain_entered) = runtime.block_on(round(n, false));
        let (refused, entered) = runtime.block_on(round(n, true));
        assert_eq!(plain_entered, 0);
        assert_eq!(entered, n, "every finding is entered again");
        println!(
            "N = {n:>5}: plain {:>8.1} ms, with the refusal {:>8.1} ms ({:.2}x), {:.2} ms per finding entered again",
            ms(plain),
            ms(refused),
            refused.as_secs_f64() / plain.as_secs_f64(),
            (ms(refused) - ms(plain)) / n as f64,
        );
    }
}

/// Records `n` findings after (if `refused`) a step the server will refuse, and syncs
/// until the server holds them: how long the syncs took, and how many changes the phone
/// entered again.
async fn round(n: usize, refused: bool) -> (Duration, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "insp", Role::Inspector, DISTRICT, "应急管理");
    add_user(&data, "chief", Role::Supervisor, DISTRICT, "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut insp = Inspector::sign_in(dir.path(), &url, "insp", "应急管理", DISTRICT).await;
    let (case, major) = closed_on_the_server(&mut insp, &url).await;
    if refused {
        insp.store
            .follow_up(case, major, &HazardStep::pass("再次复查"))
            .expect("a step the phone allows, not knowing of the close");
    }
    for i in 0..n {
        insp.store
            .add_finding(case, &sample::finding(&format!("隐患 {i}")))
            .expect("finding");
    }
    let start = Instant::now();
    for _ in 0..3 {
        insp.sync().await.expect("sync");
    }
    let took = start.elapsed();
    let uploaded = insp.store.upload_state(case).expect("upload state");
    assert_eq!(
        uploaded.acknowledged, uploaded.changes,
        "the server holds it all"
    );
    let entered = insp
        .store
        .refusals()
        .expect("refusals")
        .iter()
        .filter(|r| r.reentered_as.is_some())
        .count();
    server.stop().await;
    (took, entered)
}

/// A case with a major hazard re-inspected on site and synced, which the supervisor has
/// closed on the server since.
async fn closed_on_the_server(insp: &mut Inspector, url: &str) -> (CaseId, FindingId) {
    let case = insp.open_sample_case(1);
    let major = insp.reinspected_major_hazard(case);
    insp.sync().await.expect("sync");
    let token = login_token(url, "chief").await;
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v1/cases/{case}/findings/{major}/close"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200, "closed");
    (case, major)
}
