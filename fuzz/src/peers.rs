//! A teammate's phone on site that sends anything in a peer session: the receiving phone
//! (which trusts a server key and holds certificates it issued) takes any bytes as a peer
//! message, and answers.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anjian_core::checklist::Catalog;
use anjian_core::{CaseId, Store, sample};
use anjian_sim::world;

thread_local! {
    /// The receiving phone and the case its sessions are for, for the whole run: what it
    /// took from one input is there for the next, as on a phone.
    static RECEIVER: RefCell<Option<Phones>> = const { RefCell::new(None) };
}

/// A message from a peer: taken (what the rule book allows recorded) or refused with a
/// typed error; either way the phone can answer, and the case, if it holds it, reads,
/// exports and merges again with the same heads.
pub fn peer_message(data: &[u8]) {
    RECEIVER.with(|receiver| {
        let mut receiver = receiver.borrow_mut();
        let phones = receiver.get_or_insert_with(Phones::new);
        let mut session = phones.receiver.peer_session(phones.case);
        let _ = phones.receiver.peer_receive(&mut session, data);
        phones
            .receiver
            .peer_message(&mut session)
            .expect("the phone answers");
        if let Ok(read) = phones.receiver.case(phones.case) {
            assert_eq!(read.id, phones.case);
            let heads = phones.receiver.heads(phones.case).expect("heads");
            let exported = phones
                .receiver
                .export_case(phones.case)
                .expect("a case exports");
            phones
                .receiver
                .merge_case(&exported)
                .expect("it merges again");
            assert_eq!(phones.receiver.heads(phones.case).expect("heads"), heads);
        }
    });
}

/// The messages an honest phone sends in a whole session with the receiver: the seed
/// corpus.
pub fn peer_inputs() -> Vec<Vec<u8>> {
    let mut phones = Phones::new();
    let (mut at_sender, mut at_receiver) = (
        phones.sender.peer_session(phones.case),
        phones.receiver.peer_session(phones.case),
    );
    let mut inputs = Vec::new();
    for _ in 0..20 {
        let sent = phones
            .sender
            .peer_message(&mut at_sender)
            .expect("a message");
        if let Some(message) = &sent {
            phones
                .receiver
                .peer_receive(&mut at_receiver, message)
                .expect("an honest message applies");
            inputs.push(message.clone());
        }
        let answer = phones
            .receiver
            .peer_message(&mut at_receiver)
            .expect("an answer");
        if let Some(message) = &answer {
            phones
                .sender
                .peer_receive(&mut at_sender, message)
                .expect("an honest answer applies");
        }
        if sent.is_none() && answer.is_none() {
            break;
        }
    }
    inputs
}

/// Two phones of one district that signed in to the same server: the sender holds a case
/// with findings, the receiver nothing yet. Identifiers and keys are the same in every run,
/// so the case of the committed corpus is the case the receiver's sessions are for.
struct Phones {
    _dir: tempfile::TempDir,
    sender: Store,
    receiver: Store,
    case: CaseId,
}

impl Phones {
    fn new() -> Phones {
        let dir = tempfile::tempdir_in(anjian_sim::tmp_root()).expect("a temporary folder");
        let phone = |index: usize| {
            let counter = Arc::new(AtomicU64::new((index as u64 + 1) << 32));
            let ids: anjian_core::Ids = Arc::new(move || {
                uuid::Uuid::from_u128(u128::from(counter.fetch_add(1, Ordering::Relaxed)))
            });
            let mut store = Store::open_with_ids(
                dir.path().join(format!("phone{index}.db")),
                world::identity(index),
                Catalog::builtin(),
                ids,
            )
            .expect("a store");
            anjian_core::sample::certify(&mut [&mut store]).expect("the phone is certified");
            store
        };
        // Two inspectors of the first district.
        let mut sender = phone(0);
        let receiver = phone(1);
        let enterprise = sample::enterprise(5);
        sender.register_enterprise(&enterprise).expect("enterprise");
        let case = sender
            .open_case(&sample::new_case(&enterprise))
            .expect("a case");
        for text in ["储罐区可燃气体报警器故障", "安全出口堵塞"] {
            sender
                .add_finding(case, &sample::finding(text))
                .expect("a finding");
        }
        Phones {
            _dir: dir,
            sender,
            receiver,
            case,
        }
    }
}
