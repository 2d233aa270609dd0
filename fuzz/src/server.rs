//! The server's sync sessions: frames from a signed-in account through the same session,
//! document and commit steps the WebSocket driver runs (as the simulation drives them),
//! on a fresh copy of the simulation's accounts.

use anjian_core::rules::CaseState;
use anjian_core::sync::wire::WireMessage;
use anjian_core::{CaseId, case_doc};
use anjian_sim::server::{ConnId, SimServer};
use anjian_sim::world;
use anjian_sync_server::storage::Storage;

/// Frames one session may hold.
const MAX_FRAMES: usize = 64;

/// A server on a fresh copy of the accounts (on tmpfs where there is one).
pub(crate) fn fresh_server() -> (tempfile::TempDir, SimServer) {
    let dir = tempfile::tempdir_in(anjian_sim::tmp_root()).expect("a temporary folder");
    world::server_data(dir.path());
    let server = SimServer::open(dir.path()).expect("the server opens its storage");
    (dir, server)
}

/// Every account of the simulation's district: inspectors, supervisors, the admin.
pub(crate) fn accounts() -> Vec<&'static str> {
    let inspectors = world::INSPECTORS.iter().map(|(name, _)| *name);
    let supervisors = world::SUPERVISORS.iter().map(|(name, _)| *name);
    inspectors.chain(supervisors).chain(["admin"]).collect()
}

/// The input of `server_session`: the account (an index into the accounts), then each
/// frame as its length (4 bytes, little-endian) and its bytes.
pub fn session_input(account: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut input = vec![account];
    for frame in frames {
        input.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        input.extend_from_slice(frame);
    }
    input
}

fn frames(mut rest: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        Some(frame)
    })
}

/// One sync connection of a signed-in account sending anything: every frame is answered
/// or refused, what the server sends decodes, and every case it stores reads as a case.
pub fn server_session(data: &[u8]) {
    let Some((&who, rest)) = data.split_first() else {
        return;
    };
    let accounts = accounts();
    let (_dir, mut server) = fresh_server();
    let conn: ConnId = 1;
    server
        .connect(conn, accounts[who as usize % accounts.len()])
        .expect("an account of the district connects");
    for frame in frames(rest).take(MAX_FRAMES) {
        let mut out = server.on_frame(conn, frame);
        out.extend(server.flush());
        for (_, message) in out {
            WireMessage::decode(&message.encode()).expect("what the server sends decodes");
        }
    }
    server.disconnect(conn);
    stored_cases_read(server.storage());
}

/// Every case the server stores loads and reads as a case.
pub(crate) fn stored_cases_read(storage: &Storage) {
    let cases = storage
        .read(|conn| conn.query_map("SELECT case_id FROM documents", &[], |r| r.get::<String>(0)))
        .expect("the stored cases are listed");
    for id in cases {
        let case: CaseId = id.parse().expect("a stored case id");
        let mut doc = storage
            .load_document(case)
            .expect("a stored case loads")
            .expect("a listed case is stored");
        CaseState::of_stored(&doc).expect("a stored case reads as a case");
        let heads = case_doc::sorted_heads(&mut doc);
        let mut again = automerge::AutoCommit::load(&doc.save()).expect("a stored case saves");
        assert_eq!(
            case_doc::sorted_heads(&mut again),
            heads,
            "a stored case keeps its heads when saved and loaded again"
        );
    }
}
