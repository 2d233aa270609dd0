//! Changes forged from honest ones: a phone edits a real case through Automerge, then the
//! change is taken apart (`ExpandedChange`) and its operations rewritten — predecessors,
//! keys, objects, actions, order, counters, dependencies, actor — and encoded again, so the
//! server receives a valid Automerge change saying what no honest phone would. The server
//! refuses it or stores it; what it stores must still load, read as a case, and be the
//! change it received.

use std::sync::OnceLock;

use anjian_core::sync::DocumentId;
use anjian_core::sync::wire::{PROTOCOL_VERSION, PeerMetadata, REFUSAL_EXTENSION, WireMessage};
use anjian_core::{CaseId, FindingEdit, FindingId, Level, Store, Violation, ViolationKind, sample};
use anjian_sim::server::{ConnId, SimServer};
use anjian_sim::world;
use arbitrary::{Arbitrary, Unstructured};
use automerge::legacy::{ElementId, Key as OpKey, ObjectId, OpId, OpType};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value};

use crate::server::{fresh_server, stored_cases_read};

/// A real case, opened on inspector 0's phone, with findings.
struct Base {
    case: CaseId,
    finding: FindingId,
    bytes: Vec<u8>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let actor = world::device_actor(0);
        let first = std::sync::atomic::AtomicBool::new(true);
        let next = std::sync::atomic::AtomicU64::new(0);
        // Fixed ids: the same case in every run, so a saved input replays.
        let ids: anjian_core::Ids = std::sync::Arc::new(move || {
            if first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                return actor;
            }
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            uuid::Uuid::from_u128(0xf022_0000_0000_4000_8000_0000_0000_0000 | u128::from(n))
        });
        let mut store = Store::open_with_ids(
            dir.path().join("phone.db"),
            world::identity(0),
            anjian_core::checklist::Catalog::builtin(),
            ids,
        )
        .expect("a store");
        let mut enterprise = sample::enterprise(1);
        enterprise.district = world::district(0);
        store.register_enterprise(&enterprise).expect("enterprise");
        let case = store
            .open_case(&sample::new_case(&enterprise))
            .expect("case");
        let leak = store
            .add_finding(case, &sample::finding("储罐区可燃气体报警器失效"))
            .expect("finding");
        let mut violation = sample::finding("动火作业未办理作业票");
        violation.violation = Some(Violation {
            kind: ViolationKind::IllegalOperation,
            post: "焊工".into(),
            person: "张某".into(),
        });
        store.add_finding(case, &violation).expect("finding");
        store
            .edit_finding(
                case,
                leak,
                &FindingEdit {
                    level: Some(Level::Major),
                    place: Some("二号罐区".into()),
                    ..FindingEdit::default()
                },
            )
            .expect("edit");
        // A follow-up and an enforcement document to tamper with, too.
        store
            .order_rectification(
                case,
                leak,
                &anjian_core::RectificationOrder {
                    measures: "更换探头并校验".into(),
                    deadline: "2026-11-30".parse().expect("a day"),
                    responsible: "王经理".into(),
                },
            )
            .expect("order");
        for step in [
            anjian_core::HazardStep::Onsite {
                measure: anjian_core::OnsiteMeasure::Evacuate,
                note: "撤出罐区人员".into(),
            },
            anjian_core::HazardStep::Extend {
                deadline: "2026-12-10".parse().expect("a day"),
                reason: "备件到货延迟".into(),
            },
        ] {
            store.follow_up(case, leak, &step).expect("step");
        }
        let writ = store
            .create_writ(case, anjian_core::WritKind::RectificationOrder, None)
            .expect("writ");
        store.seal_writ(case, writ).expect("sealed");
        let bytes = store.export_document(case).expect("export");
        Base {
            case,
            finding: leak,
            bytes,
        }
    })
}

/// A value to write.
#[derive(Arbitrary, Debug, Clone)]
enum Scalar {
    Str(String),
    Int(i64),
    Uint(u64),
    F64(f64),
    Bool(bool),
    Null,
    Timestamp(i64),
    Counter(i64),
    Bytes(Vec<u8>),
}

impl Scalar {
    fn value(&self) -> ScalarValue {
        match self.clone() {
            Scalar::Str(s) => ScalarValue::Str(s.into()),
            Scalar::Int(i) => ScalarValue::Int(i),
            Scalar::Uint(u) => ScalarValue::Uint(u),
            Scalar::F64(f) => ScalarValue::F64(f),
            Scalar::Bool(b) => ScalarValue::Boolean(b),
            Scalar::Null => ScalarValue::Null,
            Scalar::Timestamp(t) => ScalarValue::Timestamp(t),
            Scalar::Counter(c) => ScalarValue::counter(c),
            Scalar::Bytes(b) => ScalarValue::Bytes(b),
        }
    }
}

/// Where in an object: a key or index it already has, or a new key.
#[derive(Arbitrary, Debug)]
enum Prop {
    Existing(u16),
    New(String),
}

/// An honest edit, through Automerge's own API, of one of the case's objects (by index).
#[derive(Arbitrary, Debug)]
enum Edit {
    Put {
        obj: u8,
        prop: Prop,
        value: Scalar,
    },
    Make {
        obj: u8,
        prop: Prop,
        list: bool,
    },
    Delete {
        obj: u8,
        prop: Prop,
    },
    Insert {
        obj: u8,
        index: u16,
        value: Scalar,
    },
    Splice {
        obj: u8,
        at: u16,
        delete: u8,
        text: String,
    },
    Increment {
        obj: u8,
        prop: Prop,
        by: i64,
    },
}

/// What a forger rewrites in the change (operations by index).
#[derive(Arbitrary, Debug)]
enum Tamper {
    /// Names another operation of the document as replaced.
    AddPred {
        op: u8,
        id: u16,
    },
    ClearPred {
        op: u8,
    },
    /// Inserts after, or writes at, another operation's element.
    ElemKey {
        op: u8,
        id: u16,
    },
    MapKey {
        op: u8,
        key: String,
    },
    /// Moves the operation into another object.
    Obj {
        op: u8,
        obj: u8,
    },
    Put {
        op: u8,
        value: Scalar,
    },
    Delete {
        op: u8,
    },
    Increment {
        op: u8,
        by: i64,
    },
    Make {
        op: u8,
        list: bool,
    },
    ToggleInsert {
        op: u8,
    },
    Drop {
        op: u8,
    },
    Duplicate {
        op: u8,
    },
    Swap {
        a: u8,
        b: u8,
    },
    Seq(u64),
    StartOp(u64),
    Time(i64),
    Message(Option<String>),
    DropDeps,
    /// Depends on a change of the case (by index) besides, or instead of, its own.
    Dep(u16),
    /// Says another phone (by index) wrote it.
    Actor(u8),
}

/// One forgery: who sends it, the honest edits, what is rewritten.
#[derive(Arbitrary, Debug)]
struct Forgery {
    sender: u8,
    edits: Vec<Edit>,
    tampers: Vec<Tamper>,
}

/// The case's objects (the root first), in document order.
fn objects(doc: &AutoCommit) -> Vec<(ObjId, ObjType)> {
    let mut found = vec![(automerge::ROOT, ObjType::Map)];
    let mut i = 0;
    while i < found.len() {
        let (obj, kind) = found[i].clone();
        i += 1;
        let children: Vec<(Value<'static>, ObjId)> = match kind {
            ObjType::Map | ObjType::Table => doc
                .map_range(&obj, ..)
                .map(|item| (item.value.clone().into(), item.id()))
                .collect(),
            ObjType::List => doc
                .list_range(&obj, ..)
                .map(|i| (i.value.clone().into(), i.id()))
                .collect(),
            ObjType::Text => Vec::new(),
        };
        for (value, id) in children {
            if let Value::Object(kind) = value {
                found.push((id, kind));
            }
        }
    }
    found
}

/// Every operation id the document's visible values and elements carry.
fn op_ids(doc: &AutoCommit, objects: &[(ObjId, ObjType)]) -> Vec<OpId> {
    let mut ids = Vec::new();
    for (obj, kind) in objects {
        let found: Vec<ObjId> = match kind {
            ObjType::Map | ObjType::Table => doc.map_range(obj, ..).map(|i| i.id()).collect(),
            ObjType::List => doc.list_range(obj, ..).map(|i| i.id()).collect(),
            ObjType::Text => Vec::new(),
        };
        ids.extend(found.iter().filter_map(|id| id.to_string().parse().ok()));
    }
    ids
}

fn pick<T>(items: &[T], index: impl Into<usize>) -> Option<&T> {
    (!items.is_empty()).then(|| &items[index.into() % items.len()])
}

fn prop_of(doc: &AutoCommit, obj: &ObjId, kind: ObjType, prop: &Prop) -> automerge::Prop {
    match (kind, prop) {
        (ObjType::Map | ObjType::Table, Prop::Existing(i)) => {
            let keys: Vec<String> = doc.keys(obj).collect();
            pick(&keys, *i as usize).cloned().unwrap_or_default().into()
        }
        (ObjType::Map | ObjType::Table, Prop::New(key)) => key.clone().into(),
        (_, Prop::Existing(i)) => (*i as usize % (doc.length(obj).max(1))).into(),
        (_, Prop::New(key)) => (key.len() % (doc.length(obj) + 1)).into(),
    }
}

fn edit(doc: &mut AutoCommit, objects: &[(ObjId, ObjType)], edit: &Edit) {
    let obj_at = |i: u8| pick(objects, i as usize).cloned().expect("the root");
    // Automerge refuses what does not fit the object; that is an honest phone's error.
    let _ = match edit {
        Edit::Put { obj, prop, value } => {
            let (obj, kind) = obj_at(*obj);
            let prop = prop_of(doc, &obj, kind, prop);
            doc.put(&obj, prop, value.value())
        }
        Edit::Make { obj, prop, list } => {
            let (obj, kind) = obj_at(*obj);
            let prop = prop_of(doc, &obj, kind, prop);
            let kind = if *list { ObjType::List } else { ObjType::Map };
            doc.put_object(&obj, prop, kind).map(|_| ())
        }
        Edit::Delete { obj, prop } => {
            let (obj, kind) = obj_at(*obj);
            let prop = prop_of(doc, &obj, kind, prop);
            doc.delete(&obj, prop)
        }
        Edit::Insert { obj, index, value } => {
            let (obj, _) = obj_at(*obj);
            let index = *index as usize % (doc.length(&obj) + 1);
            doc.insert(&obj, index, value.value())
        }
        Edit::Splice {
            obj,
            at,
            delete,
            text,
        } => {
            let (obj, _) = obj_at(*obj);
            let at = *at as usize % (doc.length(&obj) + 1);
            doc.splice_text(&obj, at, *delete as isize % 4, text)
        }
        Edit::Increment { obj, prop, by } => {
            let (obj, kind) = obj_at(*obj);
            let prop = prop_of(doc, &obj, kind, prop);
            doc.increment(&obj, prop, *by)
        }
    };
}

fn legacy_obj(obj: &ObjId) -> ObjectId {
    match obj.to_string().parse::<OpId>() {
        Ok(id) => ObjectId::Id(id),
        Err(_) => ObjectId::Root,
    }
}

fn tamper(
    change: &mut automerge::ExpandedChange,
    tamper: &Tamper,
    objects: &[(ObjId, ObjType)],
    ids: &[OpId],
    hashes: &[ChangeHash],
) {
    let ops = &mut change.operations;
    let at = |op: u8, len: usize| (len > 0).then(|| op as usize % len);
    match tamper {
        Tamper::AddPred { op, id } => {
            if let (Some(op), Some(id)) = (at(*op, ops.len()), pick(ids, *id as usize)) {
                let mut pred: Vec<OpId> = ops[op].pred.iter().cloned().collect();
                pred.push(id.clone());
                pred.dedup();
                ops[op].pred = pred.into();
            }
        }
        Tamper::ClearPred { op } => {
            if let Some(op) = at(*op, ops.len()) {
                ops[op].pred = Vec::new().into();
            }
        }
        Tamper::ElemKey { op, id } => {
            if let (Some(op), Some(id)) = (at(*op, ops.len()), pick(ids, *id as usize)) {
                ops[op].key = OpKey::Seq(ElementId::Id(id.clone()));
            }
        }
        Tamper::MapKey { op, key } => {
            if let Some(op) = at(*op, ops.len()) {
                ops[op].key = OpKey::Map(key.as_str().into());
                ops[op].insert = false;
            }
        }
        Tamper::Obj { op, obj } => {
            if let (Some(op), Some((obj, _))) = (at(*op, ops.len()), pick(objects, *obj as usize)) {
                ops[op].obj = legacy_obj(obj);
            }
        }
        Tamper::Put { op, value } => {
            if let Some(op) = at(*op, ops.len()) {
                ops[op].action = OpType::Put(value.value());
            }
        }
        Tamper::Delete { op } => {
            if let Some(op) = at(*op, ops.len()) {
                ops[op].action = OpType::Delete;
            }
        }
        Tamper::Increment { op, by } => {
            if let Some(op) = at(*op, ops.len()) {
                ops[op].action = OpType::Increment(*by);
            }
        }
        Tamper::Make { op, list } => {
            if let Some(op) = at(*op, ops.len()) {
                let kind = if *list { ObjType::List } else { ObjType::Map };
                ops[op].action = OpType::Make(kind);
            }
        }
        Tamper::ToggleInsert { op } => {
            if let Some(op) = at(*op, ops.len()) {
                ops[op].insert = !ops[op].insert;
            }
        }
        Tamper::Drop { op } => {
            if let Some(op) = at(*op, ops.len()) {
                ops.remove(op);
            }
        }
        Tamper::Duplicate { op } => {
            if let Some(op) = at(*op, ops.len()) {
                let copy = ops[op].clone();
                ops.insert(op, copy);
            }
        }
        Tamper::Swap { a, b } => {
            if let (Some(a), Some(b)) = (at(*a, ops.len()), at(*b, ops.len())) {
                ops.swap(a, b);
            }
        }
        Tamper::Seq(seq) => change.seq = *seq,
        Tamper::StartOp(start) => {
            if let Some(start) = std::num::NonZeroU64::new(*start) {
                change.start_op = start;
            }
        }
        Tamper::Time(time) => change.time = *time,
        Tamper::Message(message) => change.message = message.clone(),
        Tamper::DropDeps => change.deps.clear(),
        Tamper::Dep(i) => {
            if let Some(hash) = pick(hashes, *i as usize) {
                change.deps.push(*hash);
                change.deps.sort();
                change.deps.dedup();
            }
        }
        Tamper::Actor(phone) => {
            let phone = *phone as usize % world::INSPECTORS.len();
            change.actor_id = ActorId::from(world::device_actor(phone).as_bytes().as_slice());
        }
    }
}

fn join(sender: &str) -> Vec<u8> {
    WireMessage::Join {
        sender_id: sender.to_owned(),
        metadata: PeerMetadata {
            storage_id: None,
            is_ephemeral: false,
            extensions: vec![REFUSAL_EXTENSION.to_owned()],
        },
        supported_versions: vec![PROTOCOL_VERSION.to_owned()],
    }
    .encode()
}

fn send_changes(
    server: &mut SimServer,
    conn: ConnId,
    case: CaseId,
    changes: Vec<automerge::Change>,
) {
    let message = automerge::sync::Message {
        heads: changes.last().map(|c| vec![c.hash()]).unwrap_or_default(),
        need: Vec::new(),
        have: Vec::new(),
        changes: changes
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect::<Vec<_>>()
            .into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let frame = WireMessage::Sync {
        sender_id: format!("phone-{conn}"),
        target_id: "anjian-server".into(),
        document_id: DocumentId::of(case),
        data: message.encode(),
        signatures: Vec::new(),
    }
    .encode();
    server.on_frame(conn, &frame);
    server.flush();
}

/// A forged change of a real case, sent by a signed-in inspector after the case's owner
/// synced it: refused, or stored exactly as received in a document that still loads and
/// reads as a case.
pub fn forged_changes(data: &[u8]) {
    let Ok(forgery) = Forgery::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let base = base();
    let (_dir, mut server) = fresh_server();
    let mut honest = AutoCommit::load(&base.bytes).expect("the base case loads");
    let heads = honest.get_heads();
    let history = honest.get_changes(&[]);
    push_base(&mut server, history.clone());
    // The forger edits it honestly, then rewrites the change.
    let mut doc = honest.with_actor(ActorId::from(world::device_actor(0).as_bytes().as_slice()));
    let objects = objects(&doc);
    let ids = op_ids(&doc, &objects);
    let hashes: Vec<ChangeHash> = history.iter().map(|c| c.hash()).collect();
    for e in forgery.edits.iter().take(16) {
        edit(&mut doc, &objects, e);
    }
    doc.commit();
    let Some(change) = doc.get_changes(&heads).into_iter().next_back() else {
        return;
    };
    let mut expanded = change.decode();
    for t in forgery.tampers.iter().take(8) {
        tamper(&mut expanded, t, &objects, &ids, &hashes);
    }
    let forged = automerge::Change::from(expanded);
    let sender = world::INSPECTORS[forgery.sender as usize % world::INSPECTORS.len()].0;
    server.connect(2, sender).expect("the sender connects");
    server.on_frame(2, &join("phone-2"));
    send_changes(&mut server, 2, base.case, vec![forged.clone()]);
    stored_cases_read(server.storage());
    let stored = server
        .storage()
        .load_document(base.case)
        .expect("loads")
        .expect("stored");
    if let Some(kept) = stored.get_change_by_hash(&forged.hash()) {
        assert_eq!(
            kept.raw_bytes(),
            forged.raw_bytes(),
            "a change is stored as it was received"
        );
    }
}

/// The owner's phone syncs the real case (its changes, `history`) to `server`.
fn push_base(server: &mut SimServer, history: Vec<automerge::Change>) {
    let base = base();
    server
        .connect(1, world::INSPECTORS[0].0)
        .expect("the owner connects");
    server.on_frame(1, &join("phone-1"));
    send_changes(server, 1, base.case, history);
    server.disconnect(1);
    assert!(
        server
            .storage()
            .load_document(base.case)
            .expect("loads")
            .is_some(),
        "the owner's honest case is stored"
    );
}

/// Makes the server data in `data` (the accounts) hold the real case; returns the ids of
/// the case and of one of its findings.
pub(crate) fn store_base_case(data: &std::path::Path) -> (String, String) {
    world::server_data(data);
    let mut server = SimServer::open(data).expect("the server opens its storage");
    let history = AutoCommit::load(&base().bytes)
        .expect("the base case loads")
        .get_changes(&[]);
    push_base(&mut server, history);
    let base = base();
    (base.case.to_string(), base.finding.to_string())
}
