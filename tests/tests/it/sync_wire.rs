//! Scenarios 5 and 6: an idle resync of 2,000 cases is one catalog round trip; bad input on
//! the wire is answered with an error or a closed socket, and the server keeps serving.

use std::time::Duration;

use anjian_core::Role;
use anjian_core::sample;
use anjian_core::sync::wire::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use anjian_sync_server::Settings;
use anjian_tests::{Inspector, TestServer, add_user, metric};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_resync_of_two_thousand_cases_is_one_catalog_round_trip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "busy", Role::Inspector, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let mut inspector =
        Inspector::sign_in(dir.path(), &server.url(), "busy", "应急管理", "310101").await;
    let enterprise = sample::enterprise(5);
    inspector
        .store
        .register_enterprise(&enterprise)
        .expect("register");
    for _ in 0..2_000 {
        inspector
            .store
            .open_case(&sample::new_case(&enterprise))
            .expect("case");
    }
    let first = inspector.sync().await.expect("first sync");
    assert_eq!(first.acknowledged, 2_000, "{first:?}");
    assert_eq!(
        first.http_requests,
        1 + 2_000 / 1_000 + 2_000 / 100 + 1,
        "a second catalog read confirms and moves past its own pushes, in pages of a \
         thousand cases; the server's receipts of the 2,000 new cases come a hundred \
         cases per request; the first blocks of document numbers in one more"
    );
    assert_eq!(
        first.receipts, 2_000,
        "a receipt of every case's one change"
    );

    let idle = inspector.sync().await.expect("idle resync");
    assert_eq!(
        (
            idle.http_requests,
            idle.frames_sent,
            idle.frames_received,
            idle.documents
        ),
        (1, 0, 0, 0),
        "{idle:?}"
    );
    assert!(
        idle.bytes_received < 200,
        "a small answer: {} bytes",
        idle.bytes_received
    );
    server.stop().await;
}

struct Probe {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Probe {
    async fn connect(server: &TestServer, token: &str) -> Probe {
        let url = format!("ws://{}/sync?token={token}", server.addr);
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect");
        Probe { socket }
    }

    async fn joined(server: &TestServer, token: &str) -> Probe {
        let mut probe = Probe::connect(server, token).await;
        let join = WireMessage::Join {
            sender_id: "probe".into(),
            metadata: PeerMetadata::default(),
            supported_versions: vec![PROTOCOL_VERSION.into()],
        };
        probe.send(join.encode()).await;
        assert!(matches!(
            probe.next().await,
            Next::Message(WireMessage::Peer { .. })
        ));
        probe
    }

    async fn send(&mut self, bytes: Vec<u8>) {
        // The server may already have closed; what it answered is what the test checks.
        let _ = self.socket.send(Message::Binary(bytes.into())).await;
    }

    async fn next(&mut self) -> Next {
        match tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await {
            Err(_) => Next::Silence,
            Ok(Some(Ok(Message::Binary(b)))) => {
                Next::Message(WireMessage::decode(&b).expect("the server speaks the protocol"))
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => Next::Closed,
            Ok(Some(Ok(_))) => Box::pin(self.next()).await,
        }
    }
}

#[derive(Debug)]
enum Next {
    Message(WireMessage),
    Closed,
    Silence,
}

fn is_error(next: &Next) -> bool {
    matches!(next, Next::Message(WireMessage::Error { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_the_wire_is_answered_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "probe", Role::Inspector, "310101", "应急管理");
    add_user(&data, "good", Role::Inspector, "310101", "应急管理");
    let settings = Settings {
        data: data.clone(),
        max_message_bytes: 1024 * 1024,
        ..Settings::default()
    };
    let server = TestServer::start_with(settings).await;
    let mut good =
        Inspector::sign_in(dir.path(), &server.url(), "good", "应急管理", "310101").await;
    let prober = Inspector::sign_in(dir.path(), &server.url(), "probe", "应急管理", "310101").await;
    let token = prober.token.clone();

    // Malformed CBOR: an error, then the socket closes.
    let mut p = Probe::joined(&server, &token).await;
    p.send(b"\xff\xfe not cbor at all".to_vec()).await;
    assert!(is_error(&p.next().await));
    assert!(matches!(p.next().await, Next::Closed));

    // An unknown message type: an error; the connection stays usable.
    let mut p = Probe::joined(&server, &token).await;
    p.send(
        WireMessage::Ignored {
            kind: "teleport".into(),
        }
        .encode(),
    )
    .await;
    assert!(is_error(&p.next().await));
    // A sync message that is not Automerge.
    let document_id = anjian_core::sync::DocumentId::of(anjian_core::CaseId::new());
    p.send(
        WireMessage::Sync {
            sender_id: "probe".into(),
            target_id: String::new(),
            document_id,
            data: b"garbage".to_vec(),
            signatures: Vec::new(),
        }
        .encode(),
    )
    .await;
    assert!(is_error(&p.next().await));
    // A document id that is not one (encoded by hand: the types refuse to hold it).
    let mut e = Vec::new();
    e.extend_from_slice(b"\xa5\x64type\x64sync\x68senderId\x65probe\x68targetId\x60\x6adocumentId\x64nope\x64data\x41\x01");
    p.send(e).await;
    match p.next().await {
        Next::Message(WireMessage::Error { message }) => {
            assert!(message.contains("document id"), "{message}")
        }
        other => panic!("expected an error, got {other:?}"),
    }

    // A frame over the size limit: the socket closes.
    let mut p = Probe::joined(&server, &token).await;
    p.send(vec![0u8; 2 * 1024 * 1024]).await;
    assert!(matches!(
        p.next().await,
        Next::Closed | Next::Message(WireMessage::Error { .. })
    ));

    // Anything before join: an error and a close.
    let mut p = Probe::connect(&server, &token).await;
    p.send(
        WireMessage::Error {
            message: "hello".into(),
        }
        .encode(),
    )
    .await;
    assert!(is_error(&p.next().await));

    // An invalid token, and a revoked device's token: an error, then the socket closes.
    let mut p = Probe::connect(&server, "not-a-token").await;
    assert!(is_error(&p.next().await));
    assert!(matches!(p.next().await, Next::Closed));
    anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(&data))
        .expect("db")
        .revoke_device(&prober.store.device_id())
        .expect("revoke");
    let mut p = Probe::connect(&server, &token).await;
    assert!(is_error(&p.next().await));

    // Through all of it, the server kept serving a well-behaved inspector.
    let enterprise = sample::enterprise(6);
    good.store
        .register_enterprise(&enterprise)
        .expect("register");
    good.store
        .open_case(&sample::new_case(&enterprise))
        .expect("case");
    let report = good.sync().await.expect("sync still works");
    assert_eq!(report.acknowledged, 1);
    let health = reqwest::get(format!("{}/healthz", server.url()))
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    assert!(metric(&server.url(), "anjian_changes_accepted_total").await >= 1);
    server.stop().await;
}
