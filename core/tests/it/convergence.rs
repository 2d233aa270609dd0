//! Property: stores that edit one case offline and exchange bytes in any order end
//! identical, with every finding present and every concurrent disagreement a conflict.
//!
//! The test keeps its own model of what each store has seen (a multi-value register per
//! field), independent of Automerge, and checks the stores against it.

use std::collections::{BTreeMap, BTreeSet};

use anjian_core::{FieldValue, FindingEdit, FindingId, Level, Store};
use proptest::prelude::*;

use crate::support::*;

const STORES: usize = 3;
const PLACES: [&str; 3] = ["罐区", "一号车间", "配电室"];

#[derive(Debug, Clone)]
enum Op {
    Add {
        store: usize,
    },
    SetLevel {
        store: usize,
        pick: usize,
        major: bool,
    },
    SetPlace {
        store: usize,
        pick: usize,
        place: usize,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..STORES).prop_map(|store| Op::Add { store }),
        (0..STORES, any::<usize>(), any::<bool>()).prop_map(|(store, pick, major)| Op::SetLevel {
            store,
            pick,
            major
        }),
        (0..STORES, any::<usize>(), 0..PLACES.len())
            .prop_map(|(store, pick, place)| Op::SetPlace { store, pick, place }),
        (0..STORES, 0..STORES).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

/// One write of one field, as the model sees it.
#[derive(Debug, Clone)]
struct Write {
    key: (FindingId, &'static str),
    value: String,
    /// Writes of the same key this one overwrote (the writer had seen them).
    supersedes: BTreeSet<usize>,
}

#[derive(Default)]
struct Model {
    writes: Vec<Write>,
    /// Per store: the writes it has seen, and the findings it knows, in creation order.
    seen: Vec<BTreeSet<usize>>,
    findings: Vec<Vec<FindingId>>,
}

impl Model {
    /// The writes of `key` among `seen` that no other seen write overwrote.
    fn current(&self, seen: &BTreeSet<usize>, key: (FindingId, &'static str)) -> Vec<usize> {
        seen.iter()
            .copied()
            .filter(|&w| self.writes[w].key == key)
            .filter(|&w| !seen.iter().any(|&o| self.writes[o].supersedes.contains(&w)))
            .collect()
    }

    /// Records that `store` writes `value` to `key`, overwriting what it has seen.
    fn write(&mut self, store: usize, key: (FindingId, &'static str), value: String) {
        let id = self.writes.len();
        let supersedes = self.seen[store]
            .iter()
            .copied()
            .filter(|&w| self.writes[w].key == key)
            .collect();
        self.writes.push(Write {
            key,
            value,
            supersedes,
        });
        self.seen[store].insert(id);
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, case) = store_with_case(&dir, "s0.db", "u0");
    let mut stores = vec![first];
    let bytes = stores[0].export_case(case).expect("export");
    for i in 1..STORES {
        let mut store = certified(
            Store::open(
                dir.path().join(format!("s{i}.db")),
                inspector(&format!("u{i}")),
            )
            .expect("store"),
        );
        store.merge_case(&bytes).expect("receive the case");
        stores.push(store);
    }
    let mut model = Model {
        seen: vec![BTreeSet::new(); STORES],
        findings: vec![Vec::new(); STORES],
        ..Model::default()
    };

    for op in ops {
        match op {
            Op::Add { store } => {
                let id = stores[store]
                    .add_finding(case, &finding("隐患"))
                    .expect("add");
                model.findings[store].push(id);
                model.write(store, (id, "level"), "general".into());
                model.write(store, (id, "place"), PLACES[0].into());
            }
            Op::SetLevel { store, pick, major } => {
                let Some(&id) = pick_from(&model.findings[store], pick) else {
                    continue;
                };
                let level = if major { Level::Major } else { Level::General };
                model.write(store, (id, "level"), level.code().into());
                let edit = FindingEdit {
                    level: Some(level),
                    ..FindingEdit::default()
                };
                stores[store]
                    .edit_finding(case, id, &edit)
                    .expect("edit level");
            }
            Op::SetPlace { store, pick, place } => {
                let Some(&id) = pick_from(&model.findings[store], pick) else {
                    continue;
                };
                model.write(store, (id, "place"), PLACES[place].into());
                let edit = FindingEdit {
                    place: Some(PLACES[place].into()),
                    ..FindingEdit::default()
                };
                stores[store]
                    .edit_finding(case, id, &edit)
                    .expect("edit place");
            }
            Op::Sync { from, to } => {
                if from == to {
                    continue;
                }
                let bytes = stores[from].export_case(case).expect("export");
                stores[to].merge_case(&bytes).expect("merge");
                let seen = model.seen[from].clone();
                model.seen[to].extend(seen);
                let known: Vec<FindingId> = model.findings[from].clone();
                for id in known {
                    if !model.findings[to].contains(&id) {
                        model.findings[to].push(id);
                    }
                }
            }
        }
    }

    // Everyone exchanges with everyone until all hold the same document.
    for _ in 0..2 {
        for from in 0..STORES {
            let bytes = stores[from].export_case(case).expect("export");
            for (to, store) in stores.iter_mut().enumerate() {
                if to != from {
                    store.merge_case(&bytes).expect("merge");
                }
            }
        }
    }
    let all_seen: BTreeSet<usize> = (0..model.writes.len()).collect();
    let expected_findings: BTreeSet<FindingId> = model.findings.iter().flatten().copied().collect();
    let reference_heads = stores[0].heads(case).expect("heads");
    let reference = stores[0].case(case).expect("case");
    for store in &mut stores {
        prop_assert_eq!(
            &store.heads(case).expect("heads"),
            &reference_heads,
            "stores hold the same changes"
        );
        let read = store.case(case).expect("case");
        prop_assert_eq!(&read, &reference, "stores read the same case");
        let ids: BTreeSet<FindingId> = read.findings.iter().map(|f| f.id).collect();
        prop_assert_eq!(
            &ids,
            &expected_findings,
            "every finding from every store is present"
        );

        let mut reported: BTreeMap<(FindingId, String), BTreeSet<String>> = BTreeMap::new();
        for conflict in store.conflicts(case).expect("conflicts") {
            let id: FindingId = conflict.path[1].parse().expect("a finding path");
            let values = conflict.values.iter().map(|v| match &v.value {
                FieldValue::Text(t) => t.clone(),
                other => other.to_string(),
            });
            reported.insert((id, conflict.path[2].clone()), values.collect());
        }
        let mut expected: BTreeMap<(FindingId, String), BTreeSet<String>> = BTreeMap::new();
        for &id in &expected_findings {
            for field in ["level", "place"] {
                let current = model.current(&all_seen, (id, field));
                let values: BTreeSet<String> = current
                    .iter()
                    .map(|&w| model.writes[w].value.clone())
                    .collect();
                if values.len() > 1 {
                    expected.insert((id, field.to_owned()), values);
                } else {
                    let finding = read.findings.iter().find(|f| f.id == id).expect("present");
                    let actual = if field == "level" {
                        finding.level.code().to_owned()
                    } else {
                        finding.place.clone()
                    };
                    prop_assert_eq!(
                        values.into_iter().next(),
                        Some(actual),
                        "single value of {} wins",
                        field
                    );
                }
            }
        }
        prop_assert_eq!(
            reported,
            expected,
            "every concurrent disagreement is a conflict, and nothing else is"
        );
    }
    Ok(())
}

fn pick_from<T>(items: &[T], pick: usize) -> Option<&T> {
    (!items.is_empty()).then(|| &items[pick % items.len()])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn stores_editing_offline_converge_with_every_finding_and_conflict(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
