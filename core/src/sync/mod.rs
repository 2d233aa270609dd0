//! Sync with the server: the automerge-repo wire messages, document ids, and (behind the
//! `client` feature) the client that pushes and pulls cases. The protocol is written down
//! in `docs/protocol.md`.

pub mod docid;
pub mod intake;
pub mod session;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;

pub use docid::DocumentId;
pub use session::{
    CatalogEntry, CatalogPage, RevokedDevice, SyncProgress, SyncReport, SyncSession,
};
pub use wire::{PeerMetadata, WireError, WireMessage};

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};

/// The next sync message to a peer, as both ends send it. Every change the peer says it
/// needs goes again, even if this session sent it before: that message was lost, and
/// Automerge, which never sends a change twice in a session, would otherwise leave the two
/// answering each other for ever. The capability flags are left out: a peer that does not
/// hear that we read whole-document messages never sends one.
pub fn next_message(doc: &mut AutoCommit, state: &mut sync::State) -> Option<sync::Message> {
    if let Some(need) = &state.their_need {
        for hash in need {
            state.sent_hashes.remove(hash);
        }
    }
    let mut message = doc.sync().generate_sync_message(state)?;
    message.flags = None;
    Some(message)
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    use super::*;

    #[test]
    fn a_change_the_peer_still_needs_goes_again_after_its_message_was_lost() {
        let mut a = AutoCommit::new();
        a.put(ROOT, "place", "罐区").expect("put");
        a.commit();
        // b has a change of its own: a peer with nothing is resent everything anyway.
        let mut b = AutoCommit::new();
        b.put(ROOT, "level", "general").expect("put");
        b.commit();
        let (mut a_state, mut b_state) = (sync::State::new(), sync::State::new());

        let first = next_message(&mut a, &mut a_state).expect("a starts");
        b.sync()
            .receive_sync_message(&mut b_state, first)
            .expect("b receives");
        let asks = next_message(&mut b, &mut b_state).expect("b asks");
        assert_eq!(asks.need, a.get_heads(), "b needs a's change");
        a.sync()
            .receive_sync_message(&mut a_state, asks.clone())
            .expect("a receives");
        let lost = next_message(&mut a, &mut a_state).expect("a sends the change");
        assert_eq!(lost.changes.len(), 1);

        // That message never arrives; b asks again.
        a.sync()
            .receive_sync_message(&mut a_state, asks)
            .expect("a receives again");
        let again = next_message(&mut a, &mut a_state).expect("a answers");
        assert_eq!(again.changes.len(), 1, "the needed change goes again");
        b.sync()
            .receive_sync_message(&mut b_state, again)
            .expect("b receives");
        assert!(
            a.get_heads()
                .iter()
                .all(|h| b.get_change_by_hash(h).is_some()),
            "b has a's change"
        );
    }
}
