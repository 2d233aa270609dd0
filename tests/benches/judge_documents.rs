//! What judging one message of many records costs (docs/BENCHMARKS.md): the rule book's
//! judging of N drafts of enforcement documents made in one change, and of N review
//! comments made one change each (one run of one author), on a case, against applying the
//! same changes with Automerge alone (the floor), in the same process. Past
//! `rules::MAX_WRITS` documents the change is refused; what it costs to find that out is
//! what a hostile device can make the server spend on one message.
//!
//! Run: `cargo bench -p anjian-tests --bench judge_documents [-- N…]` (1,000, 10,000 and
//! 30,000 by default)

use anjian_tests::bench::{ms, sizes_or, timed};

use anjian_core::rules::{self, Author, CaseState};
use anjian_core::sync::intake::{Decoded, Limits};
use anjian_core::{ReviewAction, Role, Store, case_doc, sample};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

fn main() {
    let sizes = sizes_or(&[1_000, 10_000, 30_000]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path().join("s.db"), sample::inspector("u1")).expect("store");
    let enterprise = sample::enterprise(1);
    store.register_enterprise(&enterprise).expect("enterprise");
    let case = store
        .open_case(&sample::new_case(&enterprise))
        .expect("case");
    let base = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let author = Author {
        user_id: "u1".into(),
        role: Role::Inspector,
        district: "310101".parse().expect("district"),
        department: "应急管理".into(),
        key: None,
    };
    let heads = base.clone().get_heads();
    let workloads: [(&str, Make); 2] = [
        ("new documents in one change", drafts),
        ("review comments", comments),
    ];
    for (what, make) in workloads {
        println!("# Judging N {what}, against applying them with Automerge alone");
        for &n in &sizes {
            let mut device = base.clone();
            device.set_actor(automerge::ActorId::random());
            make(&mut device, n);
            let changes = device.get_changes(&heads);
            let floor = timed(|| {
                let mut doc = base.clone();
                doc.apply_changes(changes.clone()).expect("apply");
            });
            let before = CaseState::of(&base).expect("the case reads");
            let mut verdict = String::new();
            let judging = timed(|| {
                let judged = rules::judge_changes(
                    &base,
                    Some(&before),
                    changes.clone(),
                    &Decoded::default(),
                    vec![Ok(author.clone()); changes.len()],
                    &Limits::default(),
                    &rules::Trust::default(),
                );
                verdict = match judged.refused.first() {
                    Some((refusal, _)) => format!("refused ({})", refusal.rule),
                    None => format!("admitted {}", judged.admitted.len()),
                };
            });
            println!(
                "N = {n:>6}: floor {:>9.1} ms, judging {:>9.1} ms ({:.1}x), {verdict}",
                ms(floor),
                ms(judging),
                judging.as_secs_f64() / floor.as_secs_f64(),
            );
        }
    }
}

/// Makes `n` records of a workload on a device's copy of the case.
type Make = fn(&mut AutoCommit, usize);

/// Makes `n` review comments by `u1`, each its own change, as a device records them.
fn comments(doc: &mut AutoCommit, n: usize) {
    let at = sample::visit_time();
    for i in 0..n {
        case_doc::review(doc, "u1", ReviewAction::Comment, &format!("批注 {i}"), at)
            .expect("comment");
    }
}

/// Makes `n` drafts of 现场检查记录 in one change, under ids bound to the device.
fn drafts(doc: &mut AutoCommit, n: usize) {
    let actor = doc.get_actor().to_bytes().to_vec();
    let writs = match doc.get(ROOT, "writs").expect("get") {
        Some((_, writs)) => writs,
        None => panic!("a case has its documents' map"),
    };
    for _ in 0..n {
        let id = anjian_core::bound_id(uuid::Uuid::new_v4(), &actor);
        let writ = doc
            .put_object(&writs, id.to_string(), ObjType::Map)
            .expect("put");
        doc.put(&writ, "kind", "inspection_record").expect("put");
        doc.put(&writ, "created_by", "u1").expect("put");
        doc.put(&writ, "created_at", "2026-11-20T10:00:00+08:00")
            .expect("put");
        doc.put_object(&writ, "fields", ObjType::Map).expect("put");
        doc.put_object(&writ, "signatures", ObjType::List)
            .expect("put");
    }
    doc.commit();
}
