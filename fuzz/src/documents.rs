//! Case documents from elsewhere: a phone merging a case another phone or a file gave it
//! (`Store::merge_case`, which checks the changes as the server does), and the readers the
//! core and the server run on a loaded document.

use std::cell::RefCell;

use anjian_core::rules::CaseState;
use anjian_core::signing::SignedCase;
use anjian_core::{Store, case_doc};
use anjian_sim::world;
use automerge::AutoCommit;

thread_local! {
    /// One phone's store for the whole run: a case merged once is there for later inputs,
    /// as on a phone.
    static PHONE: RefCell<Option<(tempfile::TempDir, Store)>> = const { RefCell::new(None) };
}

/// A case file's bytes (`Store::export_case`): a phone merges them (keeping what a
/// certificate vouches for) or refuses them with a typed error; a case it holds exports and
/// merges again with the same heads; the readers the server runs on a stored case run on
/// the case the file makes.
pub fn case_document(data: &[u8]) {
    PHONE.with(|phone| {
        let mut phone = phone.borrow_mut();
        let (_, store) = phone.get_or_insert_with(|| {
            let dir = tempfile::tempdir_in(anjian_sim::tmp_root()).expect("a temporary folder");
            let store =
                Store::open(dir.path().join("phone.db"), world::identity(0)).expect("a store");
            (dir, store)
        });
        let Ok(merged) = store.merge_case(data) else {
            return;
        };
        let case = merged.case;
        // A phone keeps only what a certificate vouches for, which a fuzzer's changes never
        // are; a case it does hold exports and merges again with the same heads.
        if store.case(case).is_ok() {
            let heads = store.heads(case).expect("a merged case has heads");
            let exported = store.export_case(case).expect("a merged case exports");
            let again = store.merge_case(&exported).expect("it merges again");
            assert_eq!(again.case, case);
            assert_eq!(store.heads(case).expect("heads"), heads);
        }
        // What the server's pages and API read of such a case: the file's changes, which
        // the merge checked (limits first) before they were ever expanded.
        let file = SignedCase::decode(data).expect("merged, so it reads");
        let mut doc = AutoCommit::new();
        doc.load_incremental(&file.changes)
            .expect("merged, so its changes apply");
        if CaseState::of(&doc).is_ok() {
            let _ = case_doc::read(&doc);
            let _ = case_doc::conflicts(&doc);
            let _ = case_doc::history(&mut doc);
            let _ = case_doc::blob_refs(&doc);
        }
    });
}
