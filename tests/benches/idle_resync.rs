//! A device's first full sync and its idle resync (docs/BENCHMARKS.md), measured from
//! the device's side: a device sends N new cases to the server (its first sync), a new
//! device of the same inspector receives them all (its first sync), then the first device,
//! nothing changed, syncs again. The idle resync against the automerge-repo approach (a
//! sync message per document from the kept sync state, answered by the server), on the
//! same server.
//!
//! Run: `cargo bench -p anjian-tests --bench idle_resync [-- CASES]`

use std::time::Instant;

use anjian_core::Role;
use anjian_core::sample;
use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use anjian_tests::{Inspector, TestServer, add_user};
use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let cases: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("server");
        add_user(&data, "busy", Role::Inspector, "310101", "应急管理");
        let server = TestServer::start(&data).await;
        let mut inspector =
            Inspector::sign_in(dir.path(), &server.url(), "busy", "应急管理", "310101").await;
        let enterprise = sample::enterprise(1);
        inspector
            .store
            .register_enterprise(&enterprise)
            .expect("register");
        let mut ids = Vec::new();
        for _ in 0..cases {
            ids.push(
                inspector
                    .store
                    .open_case(&sample::new_case(&enterprise))
                    .expect("case"),
            );
        }
        let report = timed_sync(
            &format!("first sync, sending {cases} cases:"),
            &mut inspector,
        )
        .await;
        assert_eq!(report.acknowledged, cases, "every case acknowledged");

        let phone = dir.path().join("new-phone");
        std::fs::create_dir_all(&phone).expect("dir");
        let mut new_phone =
            Inspector::sign_in(&phone, &server.url(), "busy", "应急管理", "310101").await;
        timed_sync(
            &format!("first sync, receiving {cases} cases:"),
            &mut new_phone,
        )
        .await;
        assert!(
            ids.iter()
                .all(|id| new_phone.store.export_document(*id).is_ok()),
            "every case received"
        );

        println!("# idle resync of {cases} synced cases, nothing changed");

        let report = timed_sync("anjian catalog:", &mut inspector).await;

        // The automerge-repo way: one sync message per document from the kept state (the
        // shared heads), each answered by the server.
        let docs: Vec<(DocumentId, AutoCommit)> = ids
            .iter()
            .map(|id| {
                (
                    DocumentId::of(*id),
                    AutoCommit::load(&inspector.store.export_document(*id).expect("export"))
                        .expect("load"),
                )
            })
            .collect();
        let url = format!("ws://{}/sync?token={}", server.addr, inspector.token);
        let start = Instant::now();
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect");
        let (mut frames, mut bytes) = (0usize, 0usize);
        let join = WireMessage::Join {
            sender_id: "repo".into(),
            metadata: PeerMetadata::default(),
            supported_versions: vec![PROTOCOL_VERSION.into()],
        }
        .encode();
        bytes += join.len();
        frames += 1;
        socket
            .send(Message::Binary(join.into()))
            .await
            .expect("join");
        if let Some(Ok(Message::Binary(b))) = socket.next().await {
            bytes += b.len();
            frames += 1;
        }
        for (id, doc) in &docs {
            let mut doc = doc.clone();
            let mut state = sync::State::new();
            state.shared_heads = doc.get_heads();
            if let Some(m) = doc.sync().generate_sync_message(&mut state) {
                let frame = WireMessage::Sync {
                    sender_id: "repo".into(),
                    target_id: String::new(),
                    document_id: *id,
                    data: m.encode(),
                    signatures: Vec::new(),
                }
                .encode();
                bytes += frame.len();
                frames += 1;
                socket
                    .send(Message::Binary(frame.into()))
                    .await
                    .expect("send");
            }
        }
        for _ in 0..docs.len() {
            match tokio::time::timeout(std::time::Duration::from_secs(30), socket.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    bytes += b.len();
                    frames += 1;
                }
                _ => break,
            }
        }
        let theirs = start.elapsed();
        println!(
            "{:<34}{:>3} HTTP round trip, {frames:>6} frames, {bytes:>9} bytes, {:>8.1} ms",
            "one message per document:",
            0,
            theirs.as_secs_f64() * 1e3
        );
        println!(
            "ratio: {:.0}x fewer bytes",
            bytes as f64 / (report.bytes_sent + report.bytes_received) as f64
        );
        server.stop().await;
    });
}

/// Syncs `device` once, timed, and prints what it cost from the device's side.
async fn timed_sync(what: &str, device: &mut Inspector) -> anjian_core::sync::SyncReport {
    let start = Instant::now();
    let report = device.sync().await.expect("sync");
    println!(
        "{what:<34}{:>3} HTTP round trip, {:>6} frames, {:>9} bytes, {:>8.1} ms",
        report.http_requests,
        report.frames_sent + report.frames_received,
        report.bytes_sent + report.bytes_received,
        start.elapsed().as_secs_f64() * 1e3
    );
    report
}
