//! Writes the fuzz targets' seed corpora (`fuzz/corpus/<target>/`): real traffic of the
//! simulation's schedules (the frames phones sent, per connection and one by one, the
//! frames the server sent, the cases it stored), the shipped checklist templates, sample
//! photos, and random bytes for the structure-aware targets (which read any bytes as a
//! forgery or a request).
//!
//! `cargo run -p anjian-fuzz --release --bin seed-corpus -- [SCHEDULES]`

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// Inputs kept per target, at most.
const KEEP: usize = 120;
/// Largest input kept, in bytes.
const LARGEST: usize = 64 * 1024;

struct Corpus {
    root: PathBuf,
}

impl Corpus {
    /// Writes `inputs` of `target`, named by their hash, at most `KEEP`, spread over all.
    fn write(&self, target: &str, inputs: Vec<Vec<u8>>) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("the corpus folder");
        let mut seen = BTreeSet::new();
        let inputs: Vec<Vec<u8>> = inputs
            .into_iter()
            .filter(|i| i.len() <= LARGEST && seen.insert(Sha256::digest(i)))
            .collect();
        let step = inputs.len().div_ceil(KEEP).max(1);
        let mut written = 0;
        for input in inputs.iter().step_by(step) {
            let name = hex::encode(&Sha256::digest(input)[..10]);
            std::fs::write(dir.join(name), input).expect("an input is written");
            written += 1;
        }
        println!("{target}: {written} inputs");
    }
}

fn main() {
    let schedules: u64 = std::env::args()
        .nth(1)
        .map_or(6, |n| n.parse().expect("a number of schedules"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let corpus = Corpus { root };
    let (mut sessions, mut frames, mut documents) = (Vec::new(), Vec::new(), Vec::new());
    for seed in 0..schedules {
        let traffic = anjian_sim::record(seed);
        for (phone, sent) in traffic.sessions {
            sessions.push(anjian_fuzz::session_input(phone as u8, &sent));
            frames.extend(sent);
        }
        frames.extend(traffic.replies);
        documents.extend(traffic.documents);
    }
    corpus.write("server_session", sessions);
    corpus.write("wire_frame", frames);
    corpus.write("case_document", documents);
    corpus.write("peer_message", anjian_fuzz::peer_inputs());
    let checklists = Path::new(env!("CARGO_MANIFEST_DIR")).join("../checklists");
    let mut templates = Vec::new();
    for entry in std::fs::read_dir(checklists).expect("the checklists") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".toml") && name != "categories.toml" {
            let text = std::fs::read_to_string(&path).expect("a template");
            templates.push(format!("{name}\n{text}").into_bytes());
        }
    }
    corpus.write("checklist_template", templates);
    let photos = [(1, 1), (64, 48), (300, 200), (17, 900)]
        .iter()
        .map(|&(w, h)| anjian_core::sample::jpeg(w, h))
        .collect();
    corpus.write("photo_ingest", photos);
    let mut rng = StdRng::seed_from_u64(13);
    for target in ["forged_changes", "http_request"] {
        let inputs = (0..48)
            .map(|_| {
                let len = rng.random_range(16..1024);
                (0..len).map(|_| rng.random()).collect()
            })
            .collect();
        corpus.write(target, inputs);
    }
}
