//! What checking a change that names deleted list elements costs (docs/BENCHMARKS.md): a
//! list of N elements, all deleted, then one change inserting an element after each of
//! them, as a hostile writer can build by hand. The rule book's check of how the change is
//! written (`rules::apply`: each element named must have been one of that list's) against
//! applying it with Automerge alone (the floor), in the same process. This is what one
//! message can make a server or a teammate's phone spend before anything is judged.
//!
//! Run: `cargo bench -p anjian-tests --bench named_elements [-- N…]` (1,000, 10,000 and
//! 30,000 by default)

use anjian_tests::bench::{ms, sizes_or, timed};

use anjian_core::rules;
use automerge::legacy::{ElementId, Key, OpId};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

fn main() {
    let sizes = sizes_or(&[1_000, 10_000, 30_000]);
    println!(
        "# Checking one change inserting after each of N deleted elements, against applying it"
    );
    for n in sizes {
        let mut doc = AutoCommit::new();
        let list = doc.put_object(ROOT, "photos", ObjType::List).expect("list");
        for i in 0..n {
            doc.insert(&list, i, i as i64).expect("insert");
        }
        doc.commit();
        let deleted: Vec<OpId> = (0..n)
            .map(|i| {
                let (_, id) = doc.get(&list, i).expect("read").expect("an element");
                id.to_string().parse().expect("an operation id")
            })
            .collect();
        for _ in 0..n {
            doc.delete(&list, 0).expect("delete");
        }
        doc.commit();
        let heads = doc.get_heads();
        let mut writer = doc.clone();
        writer.set_actor(automerge::ActorId::random());
        for i in 0..n {
            writer.insert(&list, i, i as i64).expect("insert");
        }
        writer.commit();
        let honest = writer.get_changes(&heads).pop().expect("a change");
        let mut expanded = honest.decode();
        for (op, named) in expanded.operations.iter_mut().zip(deleted) {
            op.key = Key::Seq(ElementId::Id(named));
        }
        let change = automerge::Change::from(expanded);
        let floor = timed(|| {
            let mut after = doc.clone();
            after.apply_changes([change.clone()]).expect("apply");
        });
        let mut verdict = String::new();
        let checking = timed(|| {
            let mut after = doc.clone();
            verdict = match rules::apply(&mut after, std::slice::from_ref(&change)) {
                Ok(()) => "applied".into(),
                Err(refusal) => format!("refused ({})", refusal.rule),
            };
        });
        println!(
            "N = {n:>6}: floor {:>9.1} ms, checking {:>9.1} ms ({:.1}x), {verdict}",
            ms(floor),
            ms(checking),
            checking.as_secs_f64() / floor.as_secs_f64(),
        );
    }
}
