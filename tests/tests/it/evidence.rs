//! Evidence packages against a real server: the case page's download is the package the
//! command line writes (one function), every change in it is the document's and verifies
//! against its device's key, the package verifies against the server's key, only
//! supervisors who may read the case get it, and the page's 签名核验 section tells a
//! signature that does not verify. A supervisor's decision, which the server writes and
//! signs with its own key, verifies as the supervisor's; the server's key on a device's
//! change does not.

use anjian_core::signing::{ChangeSignature, KeyAlgorithm, PublicKey, Signer as _};
use anjian_core::{PhotoTarget, ReviewAction, Role, sample};
use anjian_sync_server::Storage;
use anjian_sync_server::evidence::{self, Photos, Verdict};
use anjian_sync_server::users::SERVER_DEVICE_NAME;
use anjian_tests::{Inspector, TestServer, add_user, browser, get_page, login_token};
use base64::Engine as _;
use sha2::Digest as _;

const PHOTO: &[u8] = include_bytes!("../../../ffi/tests/fixtures/tank-farm.jpg");

/// The evidence package of `case` as the command line exports it.
async fn export(data: &std::path::Path, case: anjian_core::CaseId, photos: Photos) -> Vec<u8> {
    try_export(data, case, photos).await.expect("export")
}

/// What the command line's export of `case` gives.
async fn try_export(
    data: &std::path::Path,
    case: anjian_core::CaseId,
    photos: Photos,
) -> anjian_sync_server::error::AppResult<Vec<u8>> {
    let data = data.to_owned();
    tokio::task::spawn_blocking(move || {
        let storage =
            Storage::open(&anjian_sync_server::testing::database(&data)).expect("storage");
        let blobs = anjian_sync_server::testing::blob_store(&data).expect("blob store");
        evidence::export(&storage, &blobs, case, photos)
    })
    .await
    .expect("exported")
}

fn b64(value: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().expect("base64 text"))
        .expect("base64")
}

#[tokio::test]
async fn the_page_downloads_the_exported_package_and_every_signature_in_it_verifies() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "chen", Role::Supervisor, "310101", "应急管理");
    add_user(&data, "sun", Role::Supervisor, "310104", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();

    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let case = zhang.open_sample_case(3);
    let finding = zhang
        .store
        .add_finding(case, &sample::finding("配电箱未接地"))
        .expect("finding");
    let photo = zhang.store.ingest_photo(PHOTO).expect("photo");
    zhang
        .store
        .attach_photo(
            case,
            &PhotoTarget::Finding(finding),
            &photo.sha256,
            "配电箱",
        )
        .expect("attach");
    let report = zhang.sync().await.expect("sync");
    assert_eq!(report.blobs_uploaded, 2, "the original and its thumbnail");

    // The page's download is the command line's package, byte for byte.
    let (client, chen) = browser(&url, "chen").await;
    let (status, downloaded) = get_page(
        &client,
        &chen,
        format!("{url}/cases/{case}/evidence?photos=true"),
    )
    .await;
    assert_eq!(status, 200);
    let exported = export(&data, case, Photos::Included { limit: None }).await;
    let storage = Storage::open(&anjian_sync_server::testing::database(&data)).expect("storage");
    assert_eq!(downloaded, exported);
    // A package is built in memory: past its bytes of photos it is refused, before a photo
    // is read (the original alone fits; with its thumbnail it does not).
    let limited = Photos::Included {
        limit: Some(photo.size),
    };
    assert!(matches!(
        try_export(&data, case, limited).await,
        Err(anjian_sync_server::error::AppError::TooLarge(_))
    ));

    // Every change of the document is in it, signed by the device's registered key.
    let package: serde_json::Value = serde_json::from_slice(&downloaded).expect("JSON");
    assert_eq!(package["format"], evidence::FORMAT);
    let device_key = zhang.store.public_key();
    let [device] = package["devices"].as_array().expect("devices").as_slice() else {
        panic!("one device: {}", package["devices"]);
    };
    assert_eq!(
        device["keys"][0]["publicKey"],
        hex::encode(device_key.bytes())
    );
    let mut held = storage.load_document(case).expect("load").expect("case");
    let mut expected: Vec<_> = held.get_changes(&[]).iter().map(|c| c.hash()).collect();
    let mut found = Vec::new();
    for entry in package["changes"].as_array().expect("changes") {
        let change = automerge::Change::try_from(&b64(&entry["bytes"])[..]).expect("a change");
        let signature = ChangeSignature::from_stored(
            change.hash(),
            &hex::decode(entry["signature"]["keyId"].as_str().expect("key id")).expect("hex"),
            &hex::decode(entry["signature"]["signature"].as_str().expect("sig")).expect("hex"),
        )
        .expect("8 + 64 bytes");
        signature.verify(&device_key).expect("the device signed it");
        assert_eq!(entry["receipt"]["author"], "zhang");
        found.push(change.hash());
    }
    expected.sort();
    found.sort();
    assert_eq!(found, expected);

    // The photo's bytes are the photo; the package verifies against the server's key.
    let original = package["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .find(|p| p["sha256"] == photo.sha256.as_str())
        .expect("the original");
    assert_eq!(b64(&original["bytes"]), PHOTO);
    assert_eq!(hex::encode(sha2::Sha256::digest(PHOTO)), photo.sha256);
    let server_key = PublicKey::new(
        KeyAlgorithm::Ed25519,
        hex::decode(package["server"]["publicKey"].as_str().expect("key")).expect("hex"),
    )
    .expect("key");
    assert_eq!(server_key, storage.server_key().public_key());
    let mut unsigned = package.clone();
    let signature = unsigned
        .as_object_mut()
        .expect("object")
        .remove("signature")
        .expect("signed");
    server_key
        .verify(
            &evidence::package_message(&unsigned),
            &hex::decode(signature.as_str().expect("hex")).expect("hex"),
        )
        .expect("the server signed the package");

    // Without photos: the same package but for the photos' bytes.
    let (_, light) = get_page(&client, &chen, format!("{url}/cases/{case}/evidence")).await;
    let light: serde_json::Value = serde_json::from_slice(&light).expect("JSON");
    assert_eq!(light["changes"], package["changes"]);
    assert!(
        light["photos"]
            .as_array()
            .expect("photos")
            .iter()
            .all(|p| p.get("bytes").is_none())
    );

    // Only supervisors who may read the case get it.
    let (client_sun, sun) = browser(&url, "sun").await;
    let (status, _) = get_page(&client_sun, &sun, format!("{url}/cases/{case}/evidence")).await;
    assert_eq!(status, 404, "another district's supervisor");
    let (client_zhang, zhang_web) = browser(&url, "zhang").await;
    let (status, _) = get_page(
        &client_zhang,
        &zhang_web,
        format!("{url}/cases/{case}/evidence"),
    )
    .await;
    assert_eq!(status, 403, "an inspector, even of the case");
    let (status, _) = get_page(&client, "", format!("{url}/cases/{case}/evidence")).await;
    assert_ne!(status, 200, "nobody signed in");

    // The page: every signature verifies; then one stored signature is damaged.
    let page = |client: reqwest::Client, session: String| {
        let url = format!("{url}/cases/{case}");
        async move {
            let (status, body) = get_page(&client, &session, url).await;
            assert_eq!(status, 200);
            String::from_utf8(body).expect("UTF-8")
        }
    };
    let html = page(client.clone(), chen.clone()).await;
    assert!(html.contains("签名核验"));
    assert!(html.contains("data-verified=\"true\""), "{html}");
    assert!(html.contains("下载证据包"));
    let damaged = &found[0];
    storage
        .write(|conn| {
            conn.execute(
                "UPDATE receipts SET signature = ?1 WHERE change_hash = ?2",
                anjian_sync_server::params![vec![7u8; 64], damaged.to_string()],
            )?;
            Ok(())
        })
        .expect("damage");
    let html = page(client.clone(), chen.clone()).await;
    assert!(html.contains("data-verified=\"false\""));
    assert!(html.contains("1 项设备签名核验未通过"), "{html}");
    assert_eq!(html.matches("✗ 核验未通过").count(), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_servers_signature_verifies_on_a_supervisors_decision_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "chen", Role::Supervisor, "310101", "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();

    let mut zhang = Inspector::sign_in(dir.path(), &url, "zhang", "应急管理", "310101").await;
    let case = zhang.open_sample_case(5);
    zhang
        .store
        .add_finding(case, &sample::finding("安全出口被成品货物堵塞"))
        .expect("finding");
    zhang
        .store
        .review(case, ReviewAction::Submit, "")
        .expect("submit");
    zhang.sync().await.expect("sync");

    // The supervisor approves through the API: the server writes the decision under
    // chen's server-side device and signs it with its own key.
    let chen_token = login_token(&url, "chen").await;
    let answer = reqwest::Client::new()
        .post(format!("{url}/api/v1/cases/{case}/review"))
        .bearer_auth(&chen_token)
        .json(&serde_json::json!({ "action": "approve", "text": "" }))
        .send()
        .await
        .expect("review");
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);

    let storage = Storage::open(&anjian_sync_server::testing::database(&data)).expect("storage");
    let server_id = hex::encode(storage.server_key().public_key().id());
    let checks = || {
        let mut held = storage.load_document(case).expect("load").expect("case");
        evidence::check(&storage, case, &mut held).expect("check")
    };
    let before = checks();
    for c in &before {
        assert_eq!(
            (&c.signature, &c.receipt),
            (&Verdict::Verified, &Verdict::Verified),
            "{c:?}"
        );
    }
    let decisions: Vec<_> = before.iter().filter(|c| c.server_signed).collect();
    assert!(
        !decisions.is_empty(),
        "the approval is signed by the server"
    );
    for c in &decisions {
        assert_eq!(c.key_id.as_deref(), Some(server_id.as_str()));
        assert_eq!(c.device.as_deref(), Some(SERVER_DEVICE_NAME));
        assert_eq!(c.author.as_ref().map(|(u, _)| u.as_str()), Some("chen"));
    }

    // The page shows every signature verified, the decision's by the server's key.
    let (client, chen) = browser(&url, "chen").await;
    let page = || async {
        let (status, body) = get_page(&client, &chen, format!("{url}/cases/{case}")).await;
        assert_eq!(status, 200);
        String::from_utf8(body).expect("UTF-8")
    };
    let html = page().await;
    assert!(html.contains("data-verified=\"true\""), "{html}");
    assert_eq!(html.matches("✓ 核验通过").count(), 2 * before.len());
    assert!(html.contains("服务器密钥"));

    // The package carries the server-side device with its certificate for the server's key.
    let package: serde_json::Value =
        serde_json::from_slice(&export(&data, case, Photos::Hashes).await).expect("JSON");
    let server_side = package["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["name"] == SERVER_DEVICE_NAME)
        .expect("chen's server-side device");
    assert_eq!(server_side["account"], "chen");
    assert_eq!(server_side["keys"], serde_json::json!([]));
    assert!(
        !server_side["certificates"]
            .as_array()
            .expect("list")
            .is_empty()
    );

    // One of zhang's changes re-signed with the server's key: a valid signature by the
    // server, but on a change the server did not write for a supervisor. It fails, alone.
    let relabelled = before.iter().find(|c| !c.server_signed).expect("zhang's");
    let hash: automerge::ChangeHash = relabelled.hash.parse().expect("hash");
    let forged = ChangeSignature::sign(storage.server_key(), hash).expect("sign");
    forged
        .verify(&storage.server_key().public_key())
        .expect("the server's own signature");
    storage
        .write(|conn| {
            conn.execute(
                "UPDATE receipts SET key_id = ?1, signature = ?2 WHERE change_hash = ?3",
                anjian_sync_server::params![
                    forged.key.as_slice(),
                    forged.signature.as_slice(),
                    relabelled.hash
                ],
            )?;
            Ok(())
        })
        .expect("relabel");
    let after = checks();
    for c in &after {
        if c.hash == relabelled.hash {
            assert!(c.server_signed);
            assert!(
                matches!(&c.signature, Verdict::Failed(reason) if reason.contains("server-side device")),
                "{c:?}"
            );
        } else {
            assert_eq!(c.signature, Verdict::Verified, "{c:?}");
        }
    }
    let html = page().await;
    assert!(html.contains("data-verified=\"false\""));
    assert!(html.contains("1 项设备签名核验未通过"), "{html}");
    assert_eq!(html.matches("✗ 核验未通过").count(), 1);
    server.stop().await;
}
