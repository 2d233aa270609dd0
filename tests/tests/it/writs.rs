//! Enforcement documents through the real server: numbers issued offline from blocks
//! allocated at sync, provisional numbers the server replaces, a store restored from a
//! backup, a number the server never allocated to the device, and inspectors' signatures
//! checked against the enforcement certificates on record.

use std::collections::BTreeSet;
use std::path::Path;

use anjian_core::sync::DocumentId;
use anjian_core::{CaseId, Role, WritKind};
use anjian_sync_server::Settings;
use anjian_sync_server::config::Limits;
use anjian_tests::peer::RawPeer;
use anjian_tests::{Inspector, TestServer, add_user, login_device, login_token};
use automerge::AutoCommit;
use automerge::transaction::Transactable;

const PHONES: [&str; 4] = ["zhang", "li", "wang", "zhao"];

/// Sealed offline by each phone: more than the block of 20 a first sync gives.
const SEALED: usize = 23;

/// Records `user`'s enforcement certificate on the server in `data`.
fn certify(data: &Path, user: &str, number: &str, valid_until: &str) {
    anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(data))
        .expect("server database")
        .set_enforcement_certificate(user, number, valid_until.parse().expect("day"))
        .expect("certified");
}

/// A server with the phones' inspectors and a supervisor, all of 黄浦区's 应急管理.
async fn district(dir: &Path) -> TestServer {
    district_with(dir, Limits::default()).await
}

/// The district's server, held to `limits`.
async fn district_with(dir: &Path, limits: Limits) -> TestServer {
    let data = dir.join("server");
    for user in PHONES {
        add_user(&data, user, Role::Inspector, "310101", "应急管理");
    }
    add_user(&data, "chen", Role::Supervisor, "310101", "应急管理");
    TestServer::start_with(Settings {
        data,
        limits,
        ..Settings::default()
    })
    .await
}

/// The district's server, and Zhang's phone with a case, synced once: it holds blocks of
/// numbers for every kind.
async fn zhang_with_blocks(dir: &Path) -> (TestServer, Inspector, CaseId) {
    let server = district(dir).await;
    let mut zhang = Inspector::sign_in(dir, &server.url(), "zhang", "应急管理", "310101").await;
    let case = zhang.open_sample_case(1);
    zhang.sync().await.expect("blocks");
    (server, zhang, case)
}

/// The numbers in force of the case's documents, and how many are provisional.
fn numbers(phone: &mut Inspector, case: CaseId) -> (Vec<String>, usize) {
    let writs = phone.store.case(case).expect("case").writs;
    let provisional = writs.iter().filter(|w| w.provisional()).count();
    let numbers = writs
        .iter()
        .filter_map(|w| w.number().map(str::to_owned))
        .collect();
    (numbers, provisional)
}

/// Seals a new document of `kind` on the phone's case (offline: no sync).
fn seal(phone: &mut Inspector, case: CaseId, kind: WritKind) -> anjian_core::WritSeal {
    let writ = phone.store.create_writ(case, kind, None).expect("drawn up");
    phone.store.seal_writ(case, writ).expect("sealed")
}

/// The register as the district's supervisor reads it, in one page.
async fn register(server: &str) -> Vec<serde_json::Value> {
    let token = login_token(server, "chen").await;
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{server}/api/v1/documents?limit=500"))
        .bearer_auth(token)
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let rows = body["documents"].as_array().expect("rows").clone();
    assert_eq!(body["total"], rows.len(), "every document on the page");
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_issue_numbers_offline_and_sync_in_any_order_without_a_duplicate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = district(dir.path()).await;
    let url = server.url();
    let mut phones = Vec::new();
    let mut cases = Vec::new();
    for (i, user) in PHONES.iter().enumerate() {
        let mut phone = Inspector::sign_in(dir.path(), &url, user, "应急管理", "310101").await;
        cases.push(phone.open_sample_case(i as u32 + 1));
        let report = phone.sync().await.expect("first sync");
        assert_eq!(report.number_blocks, WritKind::ALL.len(), "{user}");
        let idle = phone.sync().await.expect("idle sync");
        assert_eq!(
            idle.number_blocks, 0,
            "no block asked for while numbers are left"
        );
        phones.push(phone);
    }
    // Offline, interleaved: each phone uses up its block, then issues provisional ones.
    let mut sealed = vec![Vec::new(); PHONES.len()];
    for _ in 0..SEALED {
        for (i, phone) in phones.iter_mut().enumerate() {
            sealed[i].push(seal(phone, cases[i], WritKind::RectificationOrder));
        }
    }
    for seals in &sealed {
        assert_eq!(seals.iter().filter(|s| s.provisional).count(), SEALED - 20);
        assert!(
            seals[0].number.starts_with("（沪黄）应急责改〔"),
            "{}",
            seals[0].number
        );
    }
    // Back in signal, all at once, in no particular order.
    let [mut a, mut b, mut c, mut d] = <[Inspector; 4]>::try_from(phones).ok().expect("four");
    let (ra, rb, rc, rd) = tokio::join!(d.sync(), b.sync(), a.sync(), c.sync());
    for report in [ra, rb, rc, rd] {
        let report = report.expect("sync");
        assert!(report.refused.is_empty(), "{:?}", report.refused);
    }
    let mut phones = [a, b, c, d];
    let mut all = BTreeSet::new();
    for (i, phone) in phones.iter_mut().enumerate() {
        // The server's numbers for the provisional ones may have come in the same sync;
        // they have after the next.
        phone.sync().await.expect("sync again");
        let (numbers, provisional) = numbers(phone, cases[i]);
        assert_eq!(
            provisional, 0,
            "{}: every provisional number replaced",
            PHONES[i]
        );
        assert_eq!(numbers.len(), SEALED);
        for (seal, number) in sealed[i].iter().zip(&numbers) {
            if !seal.provisional {
                assert_eq!(&seal.number, number, "a number from a block stays");
            }
        }
        all.extend(numbers);
    }
    assert_eq!(all.len(), PHONES.len() * SEALED, "no number issued twice");

    let rows = register(&url).await;
    let listed: BTreeSet<String> = rows
        .iter()
        .map(|r| r["number"].as_str().expect("number").to_owned())
        .collect();
    assert_eq!(listed, all, "the register holds every number");
    let replaced: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["provisional_number"].is_string())
        .collect();
    assert_eq!(replaced.len(), PHONES.len() * (SEALED - 20));
    assert!(rows.iter().all(|r| r["provisional"] == false));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restored_from_a_backup_issues_only_provisional_numbers_until_new_blocks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mut zhang, case) = zhang_with_blocks(dir.path()).await;
    let url = server.url();
    let first = seal(&mut zhang, case, WritKind::InspectionRecord);
    zhang.sync().await.expect("synced");
    // The backup: a consistent copy of the database, never the key beside it.
    let backup = dir.path().join("backup.db");
    rusqlite::Connection::open(dir.path().join("zhang.db"))
        .expect("open")
        .execute("VACUUM INTO ?1", [backup.to_str().expect("utf-8")])
        .expect("backed up");
    let second = seal(&mut zhang, case, WritKind::InspectionRecord);
    zhang.sync().await.expect("synced");
    drop(zhang);

    // The phone is lost; a new one restores the backup, offline.
    let restored_dir = dir.path().join("restored");
    std::fs::create_dir_all(&restored_dir).expect("dir");
    std::fs::copy(&backup, restored_dir.join("zhang.db")).expect("restored");
    let identity = anjian_core::Identity {
        user_id: "zhang".into(),
        name: "zhang的姓名".into(),
        department: "应急管理".into(),
        district: "310101".parse().expect("district"),
        role: Role::Inspector,
    };
    let mut store =
        anjian_core::Store::open(restored_dir.join("zhang.db"), identity).expect("opens");
    assert!(
        store
            .numbers_left()
            .expect("left")
            .iter()
            .all(|(_, n)| *n == 0),
        "the blocks of the lost key are not the restored store's"
    );
    let writ = store
        .create_writ(case, WritKind::InspectionRecord, None)
        .expect("drawn up");
    let offline = store.seal_writ(case, writ).expect("sealed");
    assert!(offline.provisional, "{}", offline.number);

    // Back in signal: it signs in again (its new key), syncs, and gets new blocks.
    let token = store
        .login(&url, "zhang", anjian_tests::PASSWORD, "新手机")
        .await
        .expect("login");
    let mut zhang = Inspector {
        store,
        token,
        server: url.clone(),
    };
    let report = zhang.sync().await.expect("sync");
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(report.number_blocks, WritKind::ALL.len());
    zhang.sync().await.expect("sync");
    let next = seal(&mut zhang, case, WritKind::InspectionRecord);
    assert!(!next.provisional, "{}", next.number);
    zhang.sync().await.expect("sync");
    let (numbers, provisional) = numbers(&mut zhang, case);
    assert_eq!(provisional, 0);
    let distinct: BTreeSet<&String> = numbers.iter().collect();
    assert_eq!(distinct.len(), 4, "{numbers:?}");
    for number in [&first.number, &second.number, &next.number] {
        assert!(numbers.contains(number), "{number} in {numbers:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_a_number_it_did_not_allocate_to_the_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mut zhang, case) = zhang_with_blocks(dir.path()).await;
    let url = server.url();
    let own = seal(&mut zhang, case, WritKind::RectificationOrder);
    let draft = zhang
        .store
        .create_writ(case, WritKind::RectificationOrder, None)
        .expect("drawn up");
    zhang.sync().await.expect("synced");
    let block = zhang
        .store
        .case(case)
        .expect("case")
        .writs
        .iter()
        .find_map(|w| w.seal.as_ref()?.block.clone())
        .expect("a block in the seal");

    // Li's own device, speaking the protocol itself, draws up a document of its own and
    // seals it with the next number of Zhang's block (a block carried in the case for all
    // to read).
    let actor = "11".repeat(16);
    let token = login_device(&url, "li", &actor).await;
    let mut doc =
        AutoCommit::load(&zhang.store.export_document(case).expect("export")).expect("load");
    doc.set_actor(automerge::ActorId::from(hex::decode(&actor).expect("hex")));
    let next = own.number.replace("0001号", "0002号");
    let fields = zhang.store.writ(case, draft).expect("draft").fields;
    let writs = match automerge::ReadDoc::get(&doc, automerge::ROOT, "writs").expect("get") {
        Some((_, writs)) => writs,
        None => panic!("writs"),
    };
    let lis = anjian_core::WritId::new();
    let writ = doc
        .put_object(&writs, lis.to_string(), automerge::ObjType::Map)
        .expect("put");
    doc.put(&writ, "kind", "rectification_order").expect("put");
    doc.put(&writ, "created_by", "li").expect("put");
    doc.put(&writ, "created_at", "2026-11-20T10:00:00+08:00")
        .expect("put");
    let held = doc
        .put_object(&writ, "fields", automerge::ObjType::Map)
        .expect("put");
    for (key, value) in &fields {
        doc.put(&held, key.as_str(), value.as_str()).expect("put");
    }
    doc.put_object(&writ, "signatures", automerge::ObjType::List)
        .expect("put");
    let seal = doc
        .put_object(&writ, "seal", automerge::ObjType::Map)
        .expect("put");
    doc.put(&seal, "number", next.as_str()).expect("put");
    doc.put(&seal, "provisional", 0).expect("put");
    doc.put(&seal, "block", block.as_str()).expect("put");
    let sha256 =
        anjian_core::writs::content_sha256(case, WritKind::RectificationOrder, &next, &fields);
    doc.put(&seal, "sha256", sha256).expect("put");
    doc.put(&seal, "by", "li").expect("put");
    doc.put(&seal, "at", "2026-11-20T10:00:00+08:00")
        .expect("put");
    doc.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(serde_json::json!({ "by": "li", "action": "writ:seal" }).to_string()),
    );
    let mut peer = RawPeer::joined(&server.addr.to_string(), &token).await;
    let pushed = peer.push(DocumentId::of(case), &mut doc).await;
    let (rule, reason) = pushed.refused.expect("refused");
    assert_eq!(rule, "writ", "{reason}");
    assert!(reason.contains("号段"), "{reason}");
    zhang.sync().await.expect("sync");
    assert!(
        zhang.store.writ(case, lis).is_err(),
        "nothing of it reached the case"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspector_signs_with_the_certificate_on_record_valid_that_day() {
    use anjian_core::{SignatureInput, SignerRole};
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    let server = district(dir.path()).await;
    certify(&data, "zhang", "31010100001", "2030-12-31");
    certify(&data, "li", "31010100002", "2026-01-31");
    let url = server.url();
    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let case = zhang.open_joint_case(1, &[("li", "310101", "应急管理")]);
    let image = zhang
        .store
        .ingest_photo(&anjian_core::sample::jpeg(40, 20))
        .expect("signature image")
        .sha256;
    let inspector = |user: &str, number: &str| SignatureInput {
        role: SignerRole::Inspector,
        user: user.into(),
        name: format!("{user}的姓名"),
        certificate_no: number.into(),
        image: image.clone(),
    };
    // Signed today on the phone's clock: Li's certificate expired in January, and
    // Zhang's number is mistyped in the second document.
    let signed = |zhang: &mut Inspector, signatures: [SignatureInput; 2]| {
        let writ = zhang
            .store
            .create_writ(case, WritKind::InspectionRecord, None)
            .expect("drawn up");
        zhang.store.seal_writ(case, writ).expect("sealed");
        for signature in &signatures {
            zhang
                .store
                .sign_writ(case, writ, signature)
                .expect("the phone does not know the certificates on record");
        }
        writ
    };
    let expired = signed(
        &mut zhang,
        [
            inspector("zhang", "31010100001"),
            inspector("li", "31010100002"),
        ],
    );
    let report = zhang.sync().await.expect("sync");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(
        report.refused[0].1.contains("执法证"),
        "{:?}",
        report.refused
    );
    let writ = zhang.store.writ(case, expired).expect("kept");
    assert_eq!(
        writ.signatures.len(),
        1,
        "only the signature with a valid certificate stays"
    );

    let mistyped = signed(
        &mut zhang,
        [
            inspector("zhang", "31010100009"),
            inspector("li", "31010100002"),
        ],
    );
    let report = zhang.sync().await.expect("sync");
    // Each signature is judged on its own: Li's, which the phone had recorded after
    // Zhang's refused one, is entered again and refused for its own reason.
    let reasons: Vec<&str> = report.refused.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{report:?}");
    assert!(
        reasons.iter().any(|r| r.contains("31010100009"))
            && reasons.iter().any(|r| r.contains("31010100002")),
        "{reasons:?}"
    );
    assert!(
        zhang
            .store
            .writ(case, mistyped)
            .expect("kept")
            .signatures
            .is_empty()
    );

    // Li's certificate renewed: both sign, and the document is issued.
    certify(&data, "li", "31010100002", "2031-12-31");
    zhang
        .store
        .sign_writ(case, expired, &inspector("li", "31010100002"))
        .expect("signed");
    let refusal_photo = zhang
        .store
        .ingest_photo(&anjian_core::sample::jpeg(32, 24))
        .expect("a photo of the refusal")
        .sha256;
    zhang
        .store
        .refuse_writ(
            case,
            expired,
            "拒绝签字",
            "见证人 王某",
            Some(&refusal_photo),
        )
        .expect("refusal recorded");
    zhang.store.issue_writ(case, expired).expect("issued");
    // Printed on site: the same PDF bytes reach the server and are served with the case.
    let font_path = std::env::var("ANJIAN_CJK_FONT")
        .unwrap_or_else(|_| "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc".into());
    let font = anjian_core::pdf::PdfFont::load(std::fs::read(&font_path).expect("font"), 2)
        .expect("a font");
    let (sha256, pdf) = zhang
        .store
        .print_writ(case, expired, &font)
        .expect("printed");
    let report = zhang.sync().await.expect("sync");
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(
        report.blobs_uploaded, 2,
        "the refusal's photo and the PDF (the signature image went earlier): {report:?}"
    );
    let rows = register(&url).await;
    assert!(
        rows.iter()
            .any(|r| r["writ_id"] == expired.to_string().as_str() && r["state"] == "issued"),
        "{rows:?}"
    );
    let chen = login_token(&url, "chen").await;
    let http = reqwest::Client::new();
    let served: serde_json::Value = http
        .get(format!("{url}/api/v1/cases/{case}"))
        .bearer_auth(&chen)
        .send()
        .await
        .expect("case")
        .json()
        .await
        .expect("json");
    let writ = served["writs"]
        .as_array()
        .expect("writs")
        .iter()
        .find(|w| w["id"] == expired.to_string().as_str())
        .expect("the issued document");
    assert_eq!(writ["pdf"], sha256.as_str());
    let response = http
        .get(format!("{url}/api/v1/blobs/{sha256}"))
        .bearer_auth(&chen)
        .send()
        .await
        .expect("blob");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "application/pdf"
    );
    assert_eq!(
        response.bytes().await.expect("bytes").as_ref(),
        pdf.as_slice()
    );
    // The signature image and the refusal's photo are evidence the server keeps too.
    for (what, blob) in [
        ("signature image", &image),
        ("refusal photo", &refusal_photo),
    ] {
        let response = http
            .get(format!("{url}/api/v1/blobs/{blob}"))
            .bearer_auth(&chen)
            .send()
            .await
            .expect("blob");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{what}");
    }
    let pending = zhang.store.pending_uploads().expect("pending");
    assert!(
        pending
            .iter()
            .all(|b| b.sha256 != image && b.sha256 != refusal_photo),
        "neither waits on the phone: {pending:?}"
    );
    server.stop().await;
}

/// Every sign-in may register a new key: an account signing in again and again under
/// fresh keys (from fresh devices, as many as it may have, with the sign-ins per account
/// raised past the year's blocks) is still held to the blocks its account may hold in a
/// year (the numbers are its department's one sequence).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holds_a_bounded_number_of_blocks_whatever_keys_it_signs_in_with() {
    use anjian_core::signing::{KeyAlgorithm, Signer, SoftwareKey};
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = Limits::default();
    let devices = limits.devices_per_user;
    let server = district_with(
        dir.path(),
        Limits {
            sign_ins_per_name: 1_000,
            ..limits
        },
    )
    .await;
    let url = server.url();
    let most = anjian_sync_server::storage::MAX_BLOCKS_PER_YEAR as usize;
    let actors: Vec<String> = (0..devices)
        .map(|_| automerge::ActorId::random().to_hex_string())
        .collect();
    let mut answers = Vec::new();
    for round in 0..=most {
        let key = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [round as u8 + 1; 32]);
        let actor = &actors[round % devices];
        let token =
            anjian_tests::login_device_with_key(&url, "zhang", actor, Some(&key.public_key()))
                .await;
        let answer = reqwest::Client::new()
            .post(format!("{url}/api/v1/number-blocks"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "key": hex::encode(key.public_key().id()),
                "kinds": ["rectification_order"],
            }))
            .send()
            .await
            .expect("request");
        answers.push(answer.status().as_u16());
    }
    let mut expected = vec![200; most];
    expected.push(409);
    assert_eq!(answers, expected);
    server.stop().await;
}

/// Numbers asked for at once, from several connections (or server processes), do not take
/// an account past its year's allowance: each request holds the account while it counts
/// what it took and adds to it.
#[test]
fn numbers_asked_for_at_once_stay_within_the_year_s_allowance() {
    use anjian_sync_server::storage::MAX_NUMBERS_PER_YEAR;
    use chrono::Datelike;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    anjian_tests::add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    let storage = std::sync::Arc::new(
        anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(&data))
            .expect("database"),
    );
    let zhang = storage.user("zhang").expect("zhang");
    let actor = storage.server_actor(&zhang).expect("actor").to_hex_string();
    // All but three of the year's numbers of a kind taken already (under a prefix of
    // before, as if the account had moved department).
    let year = i64::from(anjian_sync_server::queries::china_now().year());
    let kind = WritKind::RectificationOrder;
    storage
        .write(|c| {
            c.execute(
                "INSERT INTO number_blocks (prefix, kind, year, first, last, user_id, actor_id, key_id, issued_at, block)
                 VALUES ('（旧）', ?1, ?2, 1, ?3, ?4, ?5, ?6, '2026-01-01T00:00:00+00:00', '')",
                anjian_sync_server::params![
                    kind.code(),
                    year,
                    MAX_NUMBERS_PER_YEAR - 3,
                    zhang.id,
                    &actor,
                    vec![0u8; 8]
                ],
            )
        })
        .expect("taken");
    let given: usize = std::thread::scope(|scope| {
        let asks: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| storage.allocate_server_number(&zhang, &actor, kind).is_ok()))
            .collect();
        asks.into_iter()
            .map(|ask| usize::from(ask.join().expect("asked")))
            .sum()
    });
    assert_eq!(given, 3);
}

/// A document sealed with a provisional number takes one number from the server: one
/// number of the account's year, not a block of its devices'. However an account takes its
/// numbers, it takes at most the year's allowance of a kind; a kind spent leaves the
/// others to be allocated, and the phone's sync goes on with provisional numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_taken_one_at_a_time_count_as_numbers_and_a_spent_kind_stops_no_sync() {
    use anjian_sync_server::storage::{MAX_BLOCKS_PER_YEAR, MAX_NUMBERS_PER_YEAR};
    let dir = tempfile::tempdir().expect("temp dir");
    let server = district(dir.path()).await;
    let cli =
        anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(&server.data))
            .expect("database");
    let zhang = cli.user("zhang").expect("zhang");
    let actor = cli.server_actor(&zhang).expect("actor").to_hex_string();
    // More documents sealed provisionally than an account may hold blocks.
    for _ in 0..MAX_BLOCKS_PER_YEAR + 5 {
        cli.allocate_server_number(&zhang, &actor, WritKind::RectificationOrder)
            .expect("a number");
    }
    // Every number of on-site decisions of the year.
    for _ in 0..MAX_NUMBERS_PER_YEAR {
        cli.allocate_server_number(&zhang, &actor, WritKind::OnsiteDecision)
            .expect("a number");
    }
    assert!(matches!(
        cli.allocate_server_number(&zhang, &actor, WritKind::OnsiteDecision),
        Err(anjian_sync_server::error::AppError::Conflict(_))
    ));

    let mut phone =
        Inspector::sign_in(dir.path(), &server.url(), "zhang", "应急管理", "310101").await;
    phone.open_sample_case(1);
    let report = phone.sync().await.expect("the sync goes on");
    assert_eq!(report.number_blocks, WritKind::ALL.len() - 1, "{report:?}");
    for (kind, left) in phone.store.numbers_left().expect("left") {
        let expected = if kind == WritKind::OnsiteDecision {
            0
        } else {
            20
        };
        assert_eq!(left, expected, "{kind:?}");
    }

    // Decisions sealed offline with provisional numbers, of the kind spent: the server
    // cannot number them, and tries once per commit, not once for each.
    let case = phone.open_sample_case(2);
    for _ in 0..6 {
        assert!(seal(&mut phone, case, WritKind::OnsiteDecision).provisional);
    }
    let report = phone.sync().await.expect("the sync goes on");
    assert!(report.refused.is_empty(), "{report:?}");
    let tries = anjian_tests::metric(&server.url(), "anjian_numbers_not_given_total").await;
    assert!((1..=2).contains(&tries), "{tries} tries for 6 documents");
    server.stop().await;
}
