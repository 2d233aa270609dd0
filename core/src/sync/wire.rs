//! The automerge-repo v1 WebSocket messages (one CBOR map per binary frame), as the stock
//! JavaScript client (`@automerge/automerge-repo` 2.x) sends and reads them, plus Anjian's
//! two extensions, sent only to peers that announce them: the `anjian-refused` message, and
//! the signatures of a sync message's changes in the message itself (`anjianSignatures`).
//!
//! Decoding is lenient where the JavaScript encoder is loose (16-bit map headers, CBOR
//! `undefined`, floats for large integers, unknown keys) and strict about what matters
//! (types of known fields, valid document ids).

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use super::docid::DocumentId;

/// The protocol version this implementation speaks.
pub const PROTOCOL_VERSION: &str = "1";
/// The extension name a peer lists in `peerMetadata.anjianExtensions` to receive
/// `anjian-refused` messages.
pub const REFUSAL_EXTENSION: &str = "refusal";
/// The extension name a peer lists to send and receive the signatures of changes in its
/// sync messages (`anjianSignatures`).
pub const SIGNATURES_EXTENSION: &str = "signatures";

/// What a peer says about itself in `join` and `peer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    /// A stable id of the peer's storage, if it has one.
    pub storage_id: Option<String>,
    /// Whether the peer keeps nothing.
    pub is_ephemeral: bool,
    /// Anjian extensions the peer understands.
    pub extensions: Vec<String>,
}

impl PeerMetadata {
    /// Whether the peer wants `anjian-refused` messages.
    pub fn understands_refusals(&self) -> bool {
        self.extensions.iter().any(|e| e == REFUSAL_EXTENSION)
    }

    /// Whether the peer sends and reads the signatures of changes in sync messages.
    pub fn understands_signatures(&self) -> bool {
        self.extensions.iter().any(|e| e == SIGNATURES_EXTENSION)
    }
}

/// One message on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    /// Client → server: the first message on a socket.
    Join {
        /// The client's peer id.
        sender_id: String,
        /// What the client says about itself.
        metadata: PeerMetadata,
        /// Protocol versions the client speaks.
        supported_versions: Vec<String>,
    },
    /// Server → client: the reply to `join`.
    Peer {
        /// The server's peer id.
        sender_id: String,
        /// The client's peer id.
        target_id: String,
        /// The version chosen.
        selected_version: String,
        /// What the server says about itself.
        metadata: PeerMetadata,
    },
    /// Asks for a document the sender does not have (carries a sync message).
    Request {
        /// Sender.
        sender_id: String,
        /// Recipient.
        target_id: String,
        /// The document.
        document_id: DocumentId,
        /// An Automerge sync message.
        data: Vec<u8>,
        /// Anjian extension (`anjianSignatures`, for peers that announce it): the
        /// signatures of the message's changes, `signing::ChangeSignature` records one after
        /// another; empty when none.
        signatures: Vec<u8>,
    },
    /// An Automerge sync message for a document.
    Sync {
        /// Sender.
        sender_id: String,
        /// Recipient.
        target_id: String,
        /// The document.
        document_id: DocumentId,
        /// An Automerge sync message.
        data: Vec<u8>,
        /// The signatures of its changes, as in `Request`.
        signatures: Vec<u8>,
    },
    /// The sender does not have the document (or may not share it: the same answer).
    DocUnavailable {
        /// Sender.
        sender_id: String,
        /// Recipient.
        target_id: String,
        /// The document.
        document_id: DocumentId,
    },
    /// Something went wrong; the connection may close after it.
    Error {
        /// What went wrong.
        message: String,
    },
    /// Anjian extension, server → client: changes were refused and not applied.
    Refused {
        /// Sender.
        sender_id: String,
        /// Recipient.
        target_id: String,
        /// The document.
        document_id: DocumentId,
        /// Why, for the inspector to read.
        reason: String,
        /// The code of the rule that refused (`anjian_core::rules::Rule`), or a limit of
        /// the wire (`limit`); empty from servers that send none.
        rule: String,
        /// The refused change hashes (hex).
        changes: Vec<String>,
        /// The server kept the refusal (`rules::Rule::is_final`, judged as each change's
        /// author's): it refuses the changes again whoever carries them, and a phone
        /// refuses them again on site. Absent (false) from servers that send none, and for
        /// a message refused whole, which says nothing of its changes' authors.
        kept: bool,
    },
    /// A message type this implementation does not act on (`ephemeral`, `leave`,
    /// `remote-heads-changed`, `remote-subscription-change`).
    Ignored {
        /// Its type.
        kind: String,
    },
}

/// A frame that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not CBOR, or not the shape of a message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A `type` this protocol does not have.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A `documentId` that is not one.
    #[error("invalid document id {0:?}")]
    InvalidDocumentId(String),
}

/// A field value as decoded, before the message's shape is checked.
#[derive(Debug, Clone)]
enum Field {
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
    Texts(Vec<String>),
    Metadata(PeerMetadata),
    Absent,
}

impl WireMessage {
    /// A `request` (when the sender lacks the document) or a `sync` carrying `data`, and
    /// the signatures of its changes (records; empty for none).
    pub fn document(
        request: bool,
        sender_id: String,
        target_id: String,
        document_id: DocumentId,
        data: Vec<u8>,
        signatures: Vec<u8>,
    ) -> Self {
        if request {
            WireMessage::Request {
                sender_id,
                target_id,
                document_id,
                data,
                signatures,
            }
        } else {
            WireMessage::Sync {
                sender_id,
                target_id,
                document_id,
                data,
                signatures,
            }
        }
    }

    /// Decodes one frame.
    pub fn decode(frame: &[u8]) -> Result<WireMessage, WireError> {
        let malformed = |e: minicbor::decode::Error| WireError::Malformed(e.to_string());
        let mut d = Decoder::new(frame);
        let len = d.map().map_err(malformed)?;
        let mut fields: Vec<(String, Field)> = Vec::new();
        let mut i = 0u64;
        loop {
            match len {
                Some(n) if i >= n => break,
                None if d.datatype().map_err(malformed)? == Type::Break => {
                    d.skip().map_err(malformed)?;
                    break;
                }
                _ => {}
            }
            i += 1;
            let key = d.str().map_err(malformed)?.to_owned();
            let value = match key.as_str() {
                "peerMetadata" | "metadata" => decode_metadata(&mut d).map_err(malformed)?,
                "supportedProtocolVersions" | "changes" => {
                    Field::Texts(decode_texts(&mut d).map_err(malformed)?)
                }
                _ => decode_scalar(&mut d).map_err(malformed)?,
            };
            fields.push((key, value));
        }
        if d.position() != frame.len() {
            return Err(WireError::Malformed("bytes after the message".into()));
        }
        Message::new(fields).build()
    }

    /// Encodes the message as one frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        self.write(&mut e).expect("writing to a Vec cannot fail");
        e.into_writer()
    }

    fn write(
        &self,
        e: &mut Encoder<Vec<u8>>,
    ) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
        match self {
            WireMessage::Join {
                sender_id,
                metadata,
                supported_versions,
            } => {
                e.map(4)?
                    .str("type")?
                    .str("join")?
                    .str("senderId")?
                    .str(sender_id)?;
                e.str("peerMetadata")?;
                write_metadata(e, metadata)?;
                e.str("supportedProtocolVersions")?
                    .array(supported_versions.len() as u64)?;
                for v in supported_versions {
                    e.str(v)?;
                }
            }
            WireMessage::Peer {
                sender_id,
                target_id,
                selected_version,
                metadata,
            } => {
                e.map(5)?
                    .str("type")?
                    .str("peer")?
                    .str("senderId")?
                    .str(sender_id)?;
                e.str("targetId")?
                    .str(target_id)?
                    .str("selectedProtocolVersion")?
                    .str(selected_version)?;
                e.str("peerMetadata")?;
                write_metadata(e, metadata)?;
            }
            WireMessage::Request {
                sender_id,
                target_id,
                document_id,
                data,
                signatures,
            }
            | WireMessage::Sync {
                sender_id,
                target_id,
                document_id,
                data,
                signatures,
            } => {
                let kind = if matches!(self, WireMessage::Request { .. }) {
                    "request"
                } else {
                    "sync"
                };
                e.map(5 + u64::from(!signatures.is_empty()))?
                    .str("type")?
                    .str(kind)?;
                write_doc_message(e, sender_id, target_id, document_id)?;
                e.str("data")?.bytes(data)?;
                if !signatures.is_empty() {
                    e.str("anjianSignatures")?.bytes(signatures)?;
                }
            }
            WireMessage::DocUnavailable {
                sender_id,
                target_id,
                document_id,
            } => {
                e.map(4)?.str("type")?.str("doc-unavailable")?;
                write_doc_message(e, sender_id, target_id, document_id)?;
            }
            WireMessage::Error { message } => {
                e.map(2)?
                    .str("type")?
                    .str("error")?
                    .str("message")?
                    .str(message)?;
            }
            WireMessage::Refused {
                sender_id,
                target_id,
                document_id,
                reason,
                rule,
                changes,
                kept,
            } => {
                e.map(8)?.str("type")?.str("anjian-refused")?;
                write_doc_message(e, sender_id, target_id, document_id)?;
                e.str("reason")?
                    .str(reason)?
                    .str("rule")?
                    .str(rule)?
                    .str("kept")?
                    .bool(*kept)?
                    .str("changes")?
                    .array(changes.len() as u64)?;
                for c in changes {
                    e.str(c)?;
                }
            }
            WireMessage::Ignored { kind } => {
                e.map(1)?.str("type")?.str(kind)?;
            }
        }
        Ok(())
    }
}

fn write_doc_message(
    e: &mut Encoder<Vec<u8>>,
    sender_id: &str,
    target_id: &str,
    document_id: &DocumentId,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    e.str("senderId")?
        .str(sender_id)?
        .str("targetId")?
        .str(target_id)?;
    e.str("documentId")?.str(&document_id.to_string())?;
    Ok(())
}

fn write_metadata(
    e: &mut Encoder<Vec<u8>>,
    m: &PeerMetadata,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    let len = 1 + u64::from(m.storage_id.is_some()) + u64::from(!m.extensions.is_empty());
    e.map(len)?;
    if let Some(id) = &m.storage_id {
        e.str("storageId")?.str(id)?;
    }
    e.str("isEphemeral")?.bool(m.is_ephemeral)?;
    if !m.extensions.is_empty() {
        e.str("anjianExtensions")?
            .array(m.extensions.len() as u64)?;
        for x in &m.extensions {
            e.str(x)?;
        }
    }
    Ok(())
}

fn decode_scalar(d: &mut Decoder<'_>) -> Result<Field, minicbor::decode::Error> {
    Ok(match d.datatype()? {
        Type::String => Field::Text(d.str()?.to_owned()),
        Type::StringIndef => Field::Text(d.str_iter()?.collect::<Result<Vec<_>, _>>()?.concat()),
        Type::Bytes => Field::Bytes(d.bytes()?.to_vec()),
        Type::BytesIndef => Field::Bytes(d.bytes_iter()?.collect::<Result<Vec<_>, _>>()?.concat()),
        Type::Bool => Field::Bool(d.bool()?),
        Type::Undefined | Type::Null => {
            d.skip()?;
            Field::Absent
        }
        _ => {
            // Numbers and nested values of fields this implementation does not use.
            d.skip()?;
            Field::Absent
        }
    })
}

fn decode_texts(d: &mut Decoder<'_>) -> Result<Vec<String>, minicbor::decode::Error> {
    if matches!(d.datatype()?, Type::Undefined | Type::Null) {
        d.skip()?;
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in d.array_iter::<&str>()? {
        out.push(item?.to_owned());
    }
    Ok(out)
}

fn decode_metadata(d: &mut Decoder<'_>) -> Result<Field, minicbor::decode::Error> {
    if matches!(d.datatype()?, Type::Undefined | Type::Null) {
        d.skip()?;
        return Ok(Field::Absent);
    }
    let len = d.map()?;
    let mut m = PeerMetadata::default();
    let mut i = 0u64;
    loop {
        match len {
            Some(n) if i >= n => break,
            None if d.datatype()? == Type::Break => {
                d.skip()?;
                break;
            }
            _ => {}
        }
        i += 1;
        match d.str()? {
            "storageId" => {
                if let Field::Text(id) = decode_scalar(d)? {
                    m.storage_id = Some(id);
                }
            }
            "isEphemeral" => m.is_ephemeral = matches!(decode_scalar(d)?, Field::Bool(true)),
            "anjianExtensions" => m.extensions = decode_texts(d)?,
            _ => d.skip()?,
        }
    }
    Ok(Field::Metadata(m))
}

/// Decoded fields, checked into a message.
struct Message {
    fields: Vec<(String, Field)>,
}

impl Message {
    fn new(fields: Vec<(String, Field)>) -> Self {
        Message { fields }
    }

    fn get(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn text(&self, key: &str) -> Result<String, WireError> {
        match self.get(key) {
            Some(Field::Text(t)) => Ok(t.clone()),
            _ => Err(WireError::Malformed(format!("{key} must be text"))),
        }
    }

    fn optional_text(&self, key: &str) -> String {
        match self.get(key) {
            Some(Field::Text(t)) => t.clone(),
            _ => String::new(),
        }
    }

    fn bytes(&self, key: &str) -> Result<Vec<u8>, WireError> {
        match self.get(key) {
            Some(Field::Bytes(b)) if !b.is_empty() => Ok(b.clone()),
            _ => Err(WireError::Malformed(format!(
                "{key} must be non-empty bytes"
            ))),
        }
    }

    fn texts(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Field::Texts(t)) => t.clone(),
            _ => Vec::new(),
        }
    }

    fn metadata(&self) -> PeerMetadata {
        match self.get("peerMetadata").or_else(|| self.get("metadata")) {
            Some(Field::Metadata(m)) => m.clone(),
            _ => PeerMetadata::default(),
        }
    }

    fn document_id(&self) -> Result<DocumentId, WireError> {
        let raw = self.text("documentId")?;
        raw.parse().map_err(|_| WireError::InvalidDocumentId(raw))
    }

    fn build(self) -> Result<WireMessage, WireError> {
        let kind = self.text("type")?;
        Ok(match kind.as_str() {
            "join" => WireMessage::Join {
                sender_id: self.text("senderId")?,
                metadata: self.metadata(),
                supported_versions: match self.get("supportedProtocolVersions") {
                    Some(Field::Texts(v)) => v.clone(),
                    _ => vec![PROTOCOL_VERSION.to_owned()],
                },
            },
            "peer" => WireMessage::Peer {
                sender_id: self.text("senderId")?,
                target_id: self.optional_text("targetId"),
                selected_version: self.optional_text("selectedProtocolVersion"),
                metadata: self.metadata(),
            },
            "request" | "sync" => {
                let (sender_id, target_id) =
                    (self.text("senderId")?, self.optional_text("targetId"));
                let document_id = self.document_id()?;
                let data = self.bytes("data")?;
                let signatures = match self.get("anjianSignatures") {
                    Some(Field::Bytes(b)) => b.clone(),
                    None | Some(Field::Absent) => Vec::new(),
                    _ => {
                        return Err(WireError::Malformed(
                            "anjianSignatures must be bytes".into(),
                        ));
                    }
                };
                WireMessage::document(
                    kind == "request",
                    sender_id,
                    target_id,
                    document_id,
                    data,
                    signatures,
                )
            }
            "doc-unavailable" => WireMessage::DocUnavailable {
                sender_id: self.text("senderId")?,
                target_id: self.optional_text("targetId"),
                document_id: self.document_id()?,
            },
            "error" => WireMessage::Error {
                message: self.optional_text("message"),
            },
            "anjian-refused" => WireMessage::Refused {
                sender_id: self.text("senderId")?,
                target_id: self.optional_text("targetId"),
                document_id: self.document_id()?,
                reason: self.text("reason")?,
                rule: self.optional_text("rule"),
                changes: self.texts("changes"),
                kept: matches!(self.get("kept"), Some(Field::Bool(true))),
            },
            "ephemeral" | "leave" | "remote-heads-changed" | "remote-subscription-change" => {
                WireMessage::Ignored { kind }
            }
            _ => return Err(WireError::UnknownType(kind)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn decodes_a_request_frame_of_the_stock_javascript_client() {
        // Captured from @automerge/automerge-repo 2.5.6: 16-bit map header, keys in its order.
        let frame = hex(
            "b90005 6474797065 6772657175657374 68746172676574496468 7365727665722d31
             6a646f63756d656e744964 781c 344e4d4e6e6b4d684c386a5872644a396a616d533538504156645875
             6464617461 4a 42000001000000020284 6873656e6465724964 6e706565722d3878617665746b6264",
        );
        let message = WireMessage::decode(&frame).expect("decodes");
        assert_eq!(
            message,
            WireMessage::Request {
                sender_id: "peer-8xavetkbd".into(),
                target_id: "server-1".into(),
                document_id: "4NMNnkMhL8jXrdJ9jamS58PAVdXu".parse().expect("id"),
                data: hex("42000001000000020284"),
                signatures: Vec::new(),
            }
        );
    }

    type Encoded = Result<(), minicbor::encode::Error<std::convert::Infallible>>;

    #[test]
    fn decodes_a_join_with_undefined_storage_id() -> Encoded {
        // join of a client without storage: storageId is CBOR undefined (0xf7).
        let mut e = Encoder::new(Vec::new());
        e.map(4)?.str("type")?.str("join")?;
        e.str("senderId")?.str("peer-x")?;
        e.str("peerMetadata")?
            .map(2)?
            .str("storageId")?
            .undefined()?;
        e.str("isEphemeral")?.bool(true)?;
        e.str("supportedProtocolVersions")?.array(1)?.str("1")?;
        let message = WireMessage::decode(&e.into_writer()).expect("decodes");
        assert_eq!(
            message,
            WireMessage::Join {
                sender_id: "peer-x".into(),
                metadata: PeerMetadata {
                    storage_id: None,
                    is_ephemeral: true,
                    extensions: vec![]
                },
                supported_versions: vec!["1".into()],
            }
        );
        Ok(())
    }

    #[test]
    fn every_message_round_trips() {
        let doc: DocumentId = "4NMNnkMhL8jXrdJ9jamS58PAVdXu".parse().expect("id");
        let metadata = PeerMetadata {
            storage_id: Some("s".into()),
            is_ephemeral: false,
            extensions: vec!["refusal".into()],
        };
        for message in [
            WireMessage::Join {
                sender_id: "a".into(),
                metadata: metadata.clone(),
                supported_versions: vec!["1".into()],
            },
            WireMessage::Peer {
                sender_id: "s".into(),
                target_id: "a".into(),
                selected_version: "1".into(),
                metadata,
            },
            WireMessage::Request {
                sender_id: "a".into(),
                target_id: "s".into(),
                document_id: doc,
                data: vec![1, 2],
                signatures: Vec::new(),
            },
            WireMessage::Sync {
                sender_id: "a".into(),
                target_id: "s".into(),
                document_id: doc,
                data: vec![3],
                signatures: Vec::new(),
            },
            WireMessage::Sync {
                sender_id: "a".into(),
                target_id: "s".into(),
                document_id: doc,
                data: vec![3],
                signatures: vec![7; crate::signing::RECORD_LEN],
            },
            WireMessage::DocUnavailable {
                sender_id: "s".into(),
                target_id: "a".into(),
                document_id: doc,
            },
            WireMessage::Error {
                message: "bad".into(),
            },
            WireMessage::Refused {
                sender_id: "s".into(),
                target_id: "a".into(),
                document_id: doc,
                reason: "已审核的案件不能修改".into(),
                rule: "approved_lock".into(),
                changes: vec!["ab".into()],
                kept: true,
            },
            WireMessage::Refused {
                sender_id: "s".into(),
                target_id: "a".into(),
                document_id: doc,
                reason: "超出同步限制".into(),
                rule: "shape".into(),
                changes: vec!["ab".into()],
                kept: false,
            },
        ] {
            assert_eq!(
                WireMessage::decode(&message.encode()).expect("round trip"),
                message
            );
        }
    }

    #[test]
    fn bad_frames_are_typed_errors() -> Encoded {
        assert!(matches!(
            WireMessage::decode(b"\xff\x00garbage"),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            WireMessage::decode(&[]),
            Err(WireError::Malformed(_))
        ));
        let unknown = WireMessage::Ignored {
            kind: "teleport".into(),
        }
        .encode();
        assert_eq!(
            WireMessage::decode(&unknown),
            Err(WireError::UnknownType("teleport".into()))
        );
        let mut e = Encoder::new(Vec::new());
        e.map(5)?
            .str("type")?
            .str("sync")?
            .str("senderId")?
            .str("a")?;
        e.str("targetId")?
            .str("s")?
            .str("documentId")?
            .str("nope")?;
        e.str("data")?.bytes(&[1])?;
        assert_eq!(
            WireMessage::decode(&e.into_writer()),
            Err(WireError::InvalidDocumentId("nope".into()))
        );
        Ok(())
    }
}
