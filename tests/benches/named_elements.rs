//! What checking a change that names deleted list elements costs (docs/BENCHMARKS.md): a
//! list of N elements, all deleted, then one change inserting an element after each of
//! them, as a hostile writer can build by hand. The rule book's check of how the change is
//! written (`rules::apply`: each element named must have been one of that list's) against
//! applying it with Automerge alone (the floor), in the same process. This is what one
//! message can make a server or a teammate's phone spend before anything is judged.
//!
//! A second table: a case's whole history taken by a device that holds none of it (a
//! phone's first sync of a case, or a case file from a teammate), as three phones of a
//! joint team wrote it into one list, each taking the others' work every few changes; and
//! the same number of changes from one device, each also naming the case's first change
//! as a dependency, as a hostile writer can.
//!
//! Run: `cargo bench -p anjian-tests --bench named_elements [-- N…]` (1,000, 10,000 and
//! 30,000 by default; the second table takes N / 10 changes)

use anjian_tests::bench::{ms, sizes_or, timed};

use anjian_core::rules;
use anjian_core::sync::intake;
use automerge::legacy::{ElementId, Key, OpId};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

fn main() {
    let sizes = sizes_or(&[1_000, 10_000, 30_000]);
    deleted_elements(&sizes);
    histories(&sizes);
}

fn deleted_elements(sizes: &[usize]) {
    println!(
        "# Checking one change inserting after each of N deleted elements, against applying it"
    );
    for &n in sizes {
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
        let (checking, verdict) = checked(&doc, std::slice::from_ref(&change));
        println!(
            "N = {n:>6}: floor {:>9.1} ms, checking {:>9.1} ms ({:.1}x), {verdict}",
            ms(floor),
            ms(checking),
            checking.as_secs_f64() / floor.as_secs_f64(),
        );
    }
}

fn histories(sizes: &[usize]) {
    println!("# Taking a case's whole history of N changes to one list, against applying it");
    for n in sizes.iter().map(|n| n / 10) {
        report(n, "joint team", &joint_team(n));
        report(n, "every change also on the first", &on_the_first(n));
    }
}

/// `n` changes by three phones, each appending one element to a shared list; every ten
/// changes a phone takes the others' work.
fn joint_team(n: usize) -> Vec<automerge::Change> {
    let mut start = AutoCommit::new();
    start
        .put_object(ROOT, "events", ObjType::List)
        .expect("list");
    start.commit();
    let mut phones: Vec<AutoCommit> = (0..3)
        .map(|_| start.fork().with_actor(automerge::ActorId::random()))
        .collect();
    for i in 0..n {
        let phone = &mut phones[(i / 10) % 3];
        let (_, list) = phone.get(ROOT, "events").expect("read").expect("list");
        let end = phone.length(&list);
        phone.insert(&list, end, i as i64).expect("insert");
        phone.commit();
        if i % 10 == 9 {
            let [a, b, c] = &mut phones[..] else {
                unreachable!()
            };
            b.merge(a).expect("merge");
            c.merge(b).expect("merge");
            a.merge(c).expect("merge");
            b.merge(c).expect("merge");
        }
    }
    let mut all = start;
    for phone in &mut phones {
        all.merge(phone).expect("merge");
    }
    all.get_changes(&[])
}

/// `n` changes by one device, each appending one element to a list, each built on the one
/// before and also naming the first change.
fn on_the_first(n: usize) -> Vec<automerge::Change> {
    let mut device = AutoCommit::new();
    let list = device
        .put_object(ROOT, "events", ObjType::List)
        .expect("list");
    device.commit();
    for i in 0..n {
        device.insert(&list, i, i as i64).expect("insert");
        device.commit();
    }
    let mut changes: Vec<automerge::Change> = Vec::new();
    for change in device.get_changes(&[]) {
        let mut expanded = change.decode();
        if let (Some(first), Some(before)) = (changes.first(), changes.last()) {
            expanded.deps = vec![before.hash(), first.hash()];
            expanded.deps.sort();
            expanded.deps.dedup();
        }
        changes.push(automerge::Change::from(expanded));
    }
    changes
}

/// Times taking `changes` on an empty document, in the order a device's intake puts them:
/// with Automerge alone, and with the rule book's check of how each is written.
fn report(n: usize, what: &str, changes: &[automerge::Change]) {
    let (ordered, waiting) = intake::in_causal_order(&AutoCommit::new(), changes);
    assert_eq!(waiting, 0);
    let floor = timed(|| {
        let mut doc = AutoCommit::new();
        doc.apply_changes(ordered.clone()).expect("apply");
    });
    let one_by_one = timed(|| {
        let mut doc = AutoCommit::new();
        for change in &ordered {
            doc.apply_changes([change.clone()]).expect("apply");
        }
    });
    let (checking, verdict) = checked(&AutoCommit::new(), &ordered);
    println!(
        "N = {n:>6}, {what:<31}: floor {:>9.1} ms, one by one {:>9.1} ms, checking {:>9.1} ms ({:.1}x), {verdict}",
        ms(floor),
        ms(one_by_one),
        ms(checking),
        checking.as_secs_f64() / floor.as_secs_f64(),
    );
}

/// How long `rules::apply` takes `changes` on a copy of `doc`, and what it made of them.
fn checked(doc: &AutoCommit, changes: &[automerge::Change]) -> (std::time::Duration, String) {
    let mut verdict = String::new();
    let took = timed(|| {
        let mut after = doc.clone();
        verdict = match rules::apply(&mut after, changes) {
            Ok(()) => "applied".into(),
            Err(refusal) => format!("refused ({})", refusal.rule),
        };
    });
    (took, verdict)
}
