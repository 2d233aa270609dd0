//! Every committed input of every fuzz target, replayed on the stable toolchain: the seed
//! corpora (`corpus/<target>/`) and the inputs that once made a target fail
//! (`regressions/<target>/`).

use std::path::Path;

fn replay(target: &str) {
    let (_, body) = anjian_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a target of that name");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.expect("an entry").path()).collect();
        files.sort();
        for file in files {
            let input = std::fs::read(&file).expect("an input");
            println!("{}", file.display());
            body(&input);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "{target} has a seed corpus");
    println!("{target}: {replayed} inputs");
}

#[test]
fn wire_frame() {
    replay("wire_frame");
}

#[test]
fn server_session() {
    replay("server_session");
}

#[test]
fn forged_changes() {
    replay("forged_changes");
}

#[test]
fn case_document() {
    replay("case_document");
}

#[test]
fn peer_message() {
    replay("peer_message");
}

#[test]
fn checklist_template() {
    replay("checklist_template");
}

#[test]
fn photo_ingest() {
    replay("photo_ingest");
}

#[test]
fn http_request() {
    replay("http_request");
}

#[test]
fn every_target_is_replayed_here() {
    let source = include_str!("corpus.rs");
    for (name, _) in anjian_fuzz::TARGETS {
        assert!(
            source.contains(&format!("fn {name}()")),
            "{name} has a replay test"
        );
    }
}

/// The case files of the seed corpus are cases a phone takes (or the target would only
/// ever see refusals).
#[test]
fn the_seed_case_files_merge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store =
        anjian_core::Store::open(dir.path().join("phone.db"), anjian_sim::world::identity(0))
            .expect("a store");
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/case_document");
    let mut merged = 0;
    for entry in std::fs::read_dir(folder).expect("the corpus") {
        let input = std::fs::read(entry.expect("an entry").path()).expect("an input");
        merged += usize::from(store.merge_case(&input).is_ok());
    }
    assert!(merged > 10, "{merged} case files merged");
}
