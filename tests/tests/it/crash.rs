//! A crash in the middle of a write leaves the last committed state intact.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anjian_core::sample as fixtures;
use anjian_core::{CaseQuery, FindingId, Store};

#[test]
fn a_killed_writer_leaves_every_committed_finding_and_consistent_projections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crash.db");
    let mut committed: Vec<FindingId> = Vec::new();
    // Several rounds: each kill lands at a different point of a write.
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("writer starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let target = 40 + round * 17;
        let mut seen = 0;
        while seen < target {
            let line = lines.next().expect("writer is alive").expect("utf-8 line");
            if let Some(id) = line.strip_prefix("committed ") {
                committed.push(id.parse().expect("finding id"));
                seen += 1;
            }
        }
        // SIGKILL while it is writing the next findings.
        child.kill().expect("kill");
        child.wait().expect("reap");
        for line in lines.map_while(Result::ok) {
            if let Some(id) = line.strip_prefix("committed ") {
                committed.push(id.parse().expect("finding id"));
            }
        }

        let mut store =
            Store::open(&path, fixtures::inspector("writer")).expect("reopens after the kill");
        let cases = store.cases(&CaseQuery::default()).expect("cases");
        assert_eq!(cases.len(), 1);
        let case = store.case(cases[0].id).expect("document loads");
        let present: Vec<FindingId> = case.findings.iter().map(|f| f.id).collect();
        for id in &committed {
            assert!(
                present.contains(id),
                "round {round}: committed finding {id} was lost"
            );
        }
        // At most the one write in flight may have landed without being reported.
        assert!(
            present.len() <= committed.len() + 1,
            "round {round}: {} > {} + 1",
            present.len(),
            committed.len()
        );
        assert_eq!(
            cases[0].findings as usize,
            present.len(),
            "round {round}: projection in step with the document"
        );
        committed = present;
    }
}
