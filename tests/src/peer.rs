//! A raw peer on `/sync`, as a hostile signed-in client would be: it speaks the wire
//! protocol itself, past every check of the inspectors' store, and sends whatever a test
//! makes (forged changes, bombs, documents it may not touch).

use std::time::Duration;

use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::{PROTOCOL_VERSION, PeerMetadata, REFUSAL_EXTENSION, WireMessage};
use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server sent next.
#[derive(Debug)]
pub enum Next {
    /// A message.
    Message(WireMessage),
    /// The socket closed.
    Closed,
    /// Nothing within the wait.
    Silence,
}

/// How a push of a document ended.
#[derive(Debug, Default)]
pub struct Pushed {
    /// The server acknowledged every change (its heads are the document's).
    pub acknowledged: bool,
    /// A refusal: the rule's code and the reason.
    pub refused: Option<(String, String)>,
    /// Errors the server reported.
    pub errors: Vec<String>,
    /// The server closed the socket.
    pub closed: bool,
}

/// A signed-in peer on a server's `/sync`.
pub struct RawPeer {
    socket: Socket,
    /// The storage id the server announced when the peer joined.
    pub server_storage_id: Option<String>,
}

impl RawPeer {
    /// Connects to the server at `addr` (`host:port`) with `token`, without joining.
    pub async fn connect(addr: &str, token: &str) -> RawPeer {
        let url = format!("ws://{addr}/sync?token={token}");
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect");
        RawPeer {
            socket,
            server_storage_id: None,
        }
    }

    /// Connects and joins, announcing that it understands refusals.
    pub async fn joined(addr: &str, token: &str) -> RawPeer {
        let mut peer = RawPeer::connect(addr, token).await;
        peer.send(
            WireMessage::Join {
                sender_id: "raw-peer".into(),
                metadata: PeerMetadata {
                    extensions: vec![REFUSAL_EXTENSION.into()],
                    ..PeerMetadata::default()
                },
                supported_versions: vec![PROTOCOL_VERSION.into()],
            }
            .encode(),
        )
        .await;
        match peer.next(Duration::from_secs(10)).await {
            Next::Message(WireMessage::Peer { metadata, .. }) => {
                peer.server_storage_id = metadata.storage_id;
                peer
            }
            other => panic!("no peer message after join: {other:?}"),
        }
    }

    /// Sends raw bytes as one binary frame (the server may have closed already).
    pub async fn send(&mut self, bytes: Vec<u8>) {
        let _ = self.socket.send(Message::Binary(bytes.into())).await;
    }

    /// Sends an Automerge sync message (raw bytes) for `document`.
    pub async fn send_sync(&mut self, document: DocumentId, data: Vec<u8>) {
        self.send(
            WireMessage::Sync {
                sender_id: "raw-peer".into(),
                target_id: String::new(),
                document_id: document,
                data,
                signatures: Vec::new(),
            }
            .encode(),
        )
        .await;
    }

    /// Asks for `count` documents nobody has, a frame each, and reads the server's
    /// doc-unavailable answer to every one as it goes (at most `ahead` unanswered), so that
    /// neither side's buffers fill.
    pub async fn ask_for_unknown_documents(&mut self, count: usize, ahead: usize) {
        let ask = AutoCommit::new()
            .sync()
            .generate_sync_message(&mut sync::State::new())
            .expect("a first message")
            .encode();
        let mut answered = 0;
        for i in 0..count {
            self.send_sync(DocumentId::of(anjian_core::CaseId::new()), ask.clone())
                .await;
            while answered + ahead < i + 1 {
                self.read_unavailable(&mut answered).await;
            }
        }
        while answered < count {
            self.read_unavailable(&mut answered).await;
        }
    }

    /// Reads one doc-unavailable answer.
    async fn read_unavailable(&mut self, answered: &mut usize) {
        match self.next(Duration::from_secs(30)).await {
            Next::Message(WireMessage::DocUnavailable { .. }) => *answered += 1,
            other => panic!("expected doc-unavailable, got {other:?}"),
        }
    }

    /// The next message, or what happened instead within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Next {
        loop {
            match tokio::time::timeout(wait, self.socket.next()).await {
                Err(_) => return Next::Silence,
                Ok(Some(Ok(Message::Binary(b)))) => {
                    return Next::Message(
                        WireMessage::decode(&b).expect("the server speaks the protocol"),
                    );
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                    return Next::Closed;
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Syncs `doc` (as document `document`) with the server until one side has nothing
    /// more to say, a refusal or an error arrives, or the socket closes.
    pub async fn push(&mut self, document: DocumentId, doc: &mut AutoCommit) -> Pushed {
        self.push_with(document, doc, |_| {}).await
    }

    /// As `push`, with every message the peer sends passed through `alter` first (as a
    /// peer whose messages lose changes on the way).
    pub async fn push_with(
        &mut self,
        document: DocumentId,
        doc: &mut AutoCommit,
        mut alter: impl FnMut(&mut sync::Message),
    ) -> Pushed {
        let mut state = sync::State::new();
        let mut pushed = Pushed::default();
        let Some(mut first) = doc.sync().generate_sync_message(&mut state) else {
            return pushed;
        };
        alter(&mut first);
        self.send_sync(document, first.encode()).await;
        for _ in 0..64 {
            match self.next(Duration::from_secs(20)).await {
                Next::Message(WireMessage::Sync { data, .. }) => {
                    let message = sync::Message::decode(&data).expect("a sync message");
                    doc.sync()
                        .receive_sync_message(&mut state, message)
                        .expect("the server's message applies");
                    let next = doc.sync().generate_sync_message(&mut state);
                    match next {
                        Some(mut next) => {
                            alter(&mut next);
                            self.send_sync(document, next.encode()).await;
                        }
                        None => {
                            let ours = doc.get_heads();
                            pushed.acknowledged = state
                                .their_heads
                                .as_ref()
                                .is_some_and(|heads| *heads == ours);
                            return pushed;
                        }
                    }
                }
                Next::Message(WireMessage::Refused { rule, reason, .. }) => {
                    pushed.refused = Some((rule, reason));
                    return pushed;
                }
                Next::Message(WireMessage::Error { message }) => {
                    pushed.errors.push(message);
                    return pushed;
                }
                Next::Message(WireMessage::DocUnavailable { .. }) => return pushed,
                Next::Message(_) => {}
                Next::Closed => {
                    pushed.closed = true;
                    return pushed;
                }
                Next::Silence => return pushed,
            }
        }
        pushed
    }
}
