//! anjian-core: the offline engine every Anjian inspector app embeds.
//!
//! A [`Store`] keeps an inspector's cases in one SQLite file, each case as an Automerge
//! document, with query projections beside them; see `docs/ARCHITECTURE.md`.

#[macro_use]
mod coded;

pub mod case_doc;
pub mod certificate;
pub mod checklist;
mod codes;
mod db;
mod document;
mod error;
pub mod injected;
mod model;
pub mod numbering;
mod paths;
pub mod pdf;
pub mod photo;
mod projections;
pub mod rules;
pub mod sample;
mod schema;
pub mod signing;
mod store;
pub mod sync;
pub mod writs;

pub use checklist::{Catalog, Operation, Template, TemplateError, TemplateItem, TemplateKind};
pub use codes::*;
pub use document::SCHEMA_VERSION;
pub use error::{Error, Result};
pub use model::*;
pub use photo::{PhotoError, PhotoInfo, PhotoLimits};
pub use projections::{CaseQuery, FindingQuery};
pub use schema::STORE_VERSION;
pub use store::{
    Clock, Ids, MergedCase, PEER_FORMAT, PEER_MESSAGE_BYTES, PeerReceived, PeerSession, Store,
    UNATTACHED_HOURS, random_ids, system_clock,
};
