//! Case documents from elsewhere: a phone merging a case another phone or a file gave it
//! (`Store::merge_case`, which checks the changes as the server does), and the readers the
//! core and the server run on a loaded document.

use std::cell::RefCell;

use anjian_core::rules::CaseState;
use anjian_core::{Store, case_doc};
use anjian_sim::world;
use automerge::AutoCommit;

thread_local! {
    /// One phone's store for the whole run: a case merged once is there for later inputs,
    /// as on a phone.
    static PHONE: RefCell<Option<(tempfile::TempDir, Store)>> = const { RefCell::new(None) };
}

/// A document's bytes: a phone merges them or refuses them with a typed error; a case it
/// merged exports and loads again with the same heads; the readers run on whatever loads.
pub fn case_document(data: &[u8]) {
    PHONE.with(|phone| {
        let mut phone = phone.borrow_mut();
        let (_, store) = phone.get_or_insert_with(|| {
            let dir = tempfile::tempdir_in(anjian_sim::tmp_root()).expect("a temporary folder");
            let store =
                Store::open(dir.path().join("phone.db"), world::identity(0)).expect("a store");
            (dir, store)
        });
        if let Ok(case) = store.merge_case(data) {
            let heads = store.heads(case).expect("a merged case has heads");
            let exported = store.export_document(case).expect("a merged case exports");
            let mut again = AutoCommit::load(&exported).expect("an exported case loads");
            assert_eq!(case_doc::sorted_heads(&mut again), heads);
            store.case(case).expect("a merged case reads");
        }
    });
    // What the server's pages and API read of a stored case, on whatever loads.
    if let Ok(mut doc) = AutoCommit::load(data)
        && CaseState::of(&doc).is_ok()
    {
        let _ = case_doc::read(&doc);
        let _ = case_doc::conflicts(&doc);
        let _ = case_doc::history(&mut doc);
        let _ = case_doc::blob_refs(&doc);
    }
}
