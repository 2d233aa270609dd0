//! anjian-fuzz: the fuzz targets, as plain functions of bytes.
//!
//! The coverage-guided fuzzer (`fuzz/libfuzzer`, cargo-fuzz on a nightly toolchain) runs
//! them; `tests/corpus.rs` replays, on the stable toolchain, the committed seed corpora
//! (`fuzz/corpus/<target>/`: real traffic recorded from the simulation, the shipped
//! checklists, sample photos) and every input that ever made one fail
//! (`fuzz/regressions/<target>/`). A target fails by panicking: a panic anywhere in the
//! product's code, or a property of the product that does not hold.

mod documents;
mod forged;
mod http;
mod peers;
mod server;

use anjian_core::checklist::Catalog;
use anjian_core::photo::{self, PhotoLimits};
use anjian_core::sync::intake;
use anjian_core::sync::wire::WireMessage;
use anjian_sync_server::Settings;

pub use documents::case_document;
pub use forged::forged_changes;
pub use http::http_request;
pub use peers::{peer_inputs, peer_message};
pub use server::{server_session, session_input};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target: its name (the fuzzer's binary and the folders of its corpus and
/// regressions) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_frame", wire_frame),
    ("server_session", server_session),
    ("forged_changes", forged_changes),
    ("case_document", case_document),
    ("peer_message", peer_message),
    ("checklist_template", checklist_template),
    ("photo_ingest", photo_ingest),
    ("http_request", http_request),
];

/// One WebSocket frame as a peer may send it: it decodes or is refused; what decodes
/// encodes back to the same message; an Automerge sync message inside goes through the
/// server's limits (`intake::check`) without panicking.
pub fn wire_frame(data: &[u8]) {
    let Ok(message) = WireMessage::decode(data) else {
        return;
    };
    let again = WireMessage::decode(&message.encode()).expect("an encoded message decodes");
    assert_eq!(again, message, "a message survives encoding and decoding");
    if let WireMessage::Sync { data, .. } | WireMessage::Request { data, .. } = message
        && let Ok(sync) = automerge::sync::Message::decode(&data)
    {
        let _ = intake::check(sync, &Settings::default().limits.wire());
    }
}

/// A checklist template file, as an update of the templates would bring it (its file
/// name on the first line, then its text): valid or a typed error.
pub fn checklist_template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, text) = text.split_once('\n').unwrap_or(("", text));
    let categories = include_str!("../../checklists/categories.toml");
    let released = include_str!("../../checklists/released.lock");
    if let Ok(catalog) = Catalog::from_sources(&[(file, text)], categories, released) {
        for template in catalog.templates() {
            for item in &template.items {
                assert!(
                    catalog
                        .get(&template.id)
                        .is_some_and(|t| t.item(&item.id).is_some()),
                    "every item of a valid template can be found by its id"
                );
            }
        }
    }
}

/// A photo's bytes as a phone takes them in: a typed error, or a photo named by the hash
/// of its bytes with a thumbnail named by its own.
pub fn photo_ingest(data: &[u8]) {
    // The app's limits, with fewer pixels: each input is decoded whole.
    let limits = PhotoLimits {
        max_pixels: 4_000_000,
        ..PhotoLimits::default()
    };
    if let Ok(ingested) = photo::ingest(data, &limits) {
        assert_eq!(ingested.info.sha256, photo::sha256_hex(data));
        assert_eq!(
            ingested.info.thumbnail_sha256,
            photo::sha256_hex(&ingested.thumbnail)
        );
    }
}
