//! Photo blobs over a bad network: resumable uploads, verification, visibility and
//! deduplication, against a real server.

use anjian_core::Role;
use anjian_core::{PhotoTarget, sample};
use anjian_tests::{Inspector, TestServer, add_user, login_token};
use image::ImageEncoder;

/// A PNG of noise (it does not compress): about `w * h * 3` bytes.
pub(crate) fn noise_png(w: u32, h: u32) -> Vec<u8> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let pixels: Vec<u8> = (0..w * h * 3)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
    .expect("encode");
    out
}

/// A server, an inspector whose synced case mentions `photo`, and the photo's hash.
async fn setup(dir: &tempfile::TempDir, photo: &[u8]) -> (TestServer, Inspector, String) {
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    add_user(&data, "outsider", Role::Inspector, "310105", "应急管理");
    let server = TestServer::start(&data).await;
    let mut zhang =
        Inspector::sign_in(dir.path(), &server.url(), "zhang", "应急管理", "310101").await;
    let case = zhang.open_sample_case(11);
    let finding = zhang
        .store
        .add_finding(case, &sample::finding("泄漏点"))
        .expect("finding");
    let info = zhang.store.ingest_photo(photo).expect("ingest");
    zhang
        .store
        .attach_photo(
            case,
            &PhotoTarget::Finding(finding),
            &info.sha256,
            "泄漏点全景",
        )
        .expect("attach");
    // The original is held back (as an app does off Wi-Fi): the tests upload it themselves.
    zhang.store.set_upload_originals(false);
    let report = zhang.sync().await.expect("sync");
    assert_eq!(report.blobs_uploaded, 1, "the thumbnail goes with the case");
    (server, zhang, info.sha256)
}

/// `PATCH`es `part` at `offset` of an upload of `length` bytes.
pub(crate) async fn patch(
    url: &str,
    token: &str,
    offset: usize,
    length: usize,
    part: &[u8],
) -> reqwest::Response {
    reqwest::Client::new()
        .patch(url)
        .bearer_auth(token)
        .header("upload-offset", offset)
        .header("upload-length", length)
        .body(part.to_vec())
        .send()
        .await
        .expect("a PATCH answer")
}

/// The bytes the server's blob store holds under `sha256`, if any.
async fn stored(server: &TestServer, sha256: &str) -> Option<Vec<u8>> {
    anjian_sync_server::testing::blob_store(&server.data)
        .expect("blob store")
        .read(sha256)
        .await
        .expect("read")
}

fn blob_url(server: &TestServer, sha256: &str) -> String {
    format!("{}/api/v1/blobs/{sha256}", server.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_from_where_it_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = noise_png(1850, 1850);
    assert!(
        photo.len() > 10_000_000,
        "a 10 MB photo ({} bytes)",
        photo.len()
    );
    let (server, zhang, sha256) = setup(&dir, &photo).await;
    let client = reqwest::Client::new();
    let url = blob_url(&server, &sha256);

    // 30% goes through, then the connection is cut.
    let cut = photo.len() * 3 / 10;
    let first = patch(&url, &zhang.token, 0, photo.len(), &photo[..cut]).await;
    assert_eq!(first.status(), 204);

    // Later: ask what the server holds and send only the rest.
    let head = client
        .head(&url)
        .bearer_auth(&zhang.token)
        .send()
        .await
        .expect("head");
    let held: usize = head.headers()["upload-offset"]
        .to_str()
        .expect("text")
        .parse()
        .expect("number");
    assert_eq!(held, cut);
    let rest = patch(&url, &zhang.token, held, photo.len(), &photo[held..]).await;
    assert_eq!(rest.status(), 201, "{:?}", rest.text().await);
    let resent = cut - held;
    assert!(resent < photo.len() / 10, "re-sent {resent} bytes");

    // A PATCH at the wrong offset is told where to continue, and the stored blob is exact.
    let wrong = patch(&url, &zhang.token, 5, photo.len(), &[0u8; 10]).await;
    assert_eq!(wrong.status(), 200, "a complete blob answers with its size");
    let got = client
        .get(&url)
        .bearer_auth(&zhang.token)
        .send()
        .await
        .expect("get");
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), photo.as_slice());
    server.stop().await;
}

/// An unfinished upload is its uploader's: a colleague who may see the case (and so the
/// blob's name) can neither append to it nor have it forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_cannot_spoil_an_unfinished_upload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = noise_png(600, 600);
    let (server, zhang, sha256) = setup(&dir, &photo).await;
    add_user(&server.data, "wang", Role::Inspector, "310101", "应急管理");
    let wang = login_token(&server.url(), "wang").await;
    let url = blob_url(&server, &sha256);
    let cut = photo.len() / 3;
    let first = patch(&url, &zhang.token, 0, photo.len(), &photo[..cut]).await;
    assert_eq!(first.status(), 204);

    // Junk where Zhang's upload ends, then a part that goes past its length.
    let junk = patch(&url, &wang, cut, photo.len(), &[0u8; 1000]).await;
    assert_eq!(junk.status(), 409, "Wang's own upload holds nothing");
    assert_eq!(junk.headers()["upload-offset"], "0");
    let past = patch(&url, &wang, 0, 10, &[0u8; 20]).await;
    assert_eq!(past.status(), 400);
    let parked = patch(&url, &wang, 0, photo.len(), &[0u8; 1000]).await;
    assert_eq!(
        parked.status(),
        204,
        "Wang may send the same blob: his own upload"
    );

    // Zhang's upload is as he left it, and finishes.
    let head = reqwest::Client::new()
        .head(&url)
        .bearer_auth(&zhang.token)
        .send()
        .await
        .expect("head");
    assert_eq!(head.headers()["upload-offset"], cut.to_string().as_str());
    let rest = patch(&url, &zhang.token, cut, photo.len(), &photo[cut..]).await;
    assert_eq!(rest.status(), 201, "{:?}", rest.text().await);
    assert_eq!(
        stored(&server, &sha256).await.as_deref(),
        Some(photo.as_slice())
    );
    server.stop().await;
}

/// An upload refused before its body was read (no token, a blob the account may not see)
/// is answered `Connection: close`, as the server closes that connection: the client opens
/// a new one for its next request instead of sending it into one being closed (a sync
/// whose upload was put off failed on its next request, now and then). An upload whose
/// body was read keeps its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_closes_its_connection_and_the_next_request_goes_through() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = noise_png(300, 300);
    let (server, zhang, sha256) = setup(&dir, &photo).await;
    let outsider = login_token(&server.url(), "outsider").await;
    let url = blob_url(&server, &sha256);
    let closes = |response: &reqwest::Response| {
        response
            .headers()
            .get("connection")
            .is_some_and(|value| value == "close")
    };
    let http = reqwest::Client::new();
    let part = |token: Option<&str>| {
        let request = http
            .patch(&url)
            .header("upload-offset", 0)
            .header("upload-length", photo.len())
            .body(photo[..1000].to_vec());
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    for round in 0..20 {
        for (token, status) in [(Some(outsider.as_str()), 404), (None, 401)] {
            let refused = part(token).send().await.expect("a PATCH answer");
            assert_eq!(refused.status(), status, "round {round}");
            assert!(closes(&refused), "round {round}: {:?}", refused.headers());
        }
        let head = http
            .head(&url)
            .bearer_auth(&zhang.token)
            .send()
            .await
            .expect("the next request on the same client goes through");
        assert_eq!(head.status(), 200, "round {round}");
        assert!(!closes(&head), "round {round}");
    }
    let taken = part(Some(&zhang.token))
        .send()
        .await
        .expect("a PATCH answer");
    assert_eq!(taken.status(), 204);
    assert!(!closes(&taken), "{:?}", taken.headers());
    server.stop().await;
}

/// An account that opens as many uploads as the server transfers at once, each announcing
/// a body it never sends, holds a few of them: another inspector's photo still loads
/// (rather than after the body timeout, two minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_s_stalled_uploads_leave_room_for_everyone_else() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = noise_png(300, 300);
    let (server, zhang, sha256) = setup(&dir, &photo).await;
    let url = blob_url(&server, &sha256);
    let put = reqwest::Client::new()
        .put(&url)
        .bearer_auth(&zhang.token)
        .body(photo.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 201);
    add_user(&server.data, "wang", Role::Inspector, "310101", "应急管理");
    let wang = login_token(&server.url(), "wang").await;
    let address = server.url().trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..anjian_sync_server::BLOB_TRANSFERS {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let request = format!(
            "PUT /api/v1/blobs/{sha256} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {wang}\r\nContent-Length: 1000000\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("headers");
        stalled.push(stream);
    }
    // The server takes them in.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let got = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&zhang.token)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .expect("the photo loads while the stalled uploads are held");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), photo.as_slice());
    drop(stalled);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_uploads_store_nothing_and_other_districts_see_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = noise_png(64, 48);
    let (server, zhang, sha256) = setup(&dir, &photo).await;
    let client = reqwest::Client::new();
    let url = blob_url(&server, &sha256);

    // An upload in progress (its first part parked) ...
    let cut = photo.len() / 3;
    let first = patch(&url, &zhang.token, 0, photo.len(), &photo[..cut]).await;
    assert_eq!(first.status(), 204);

    // ... is not disturbed by a corrupted whole upload of the same blob.
    let mut corrupted = photo.clone();
    corrupted[100] ^= 0xFF;
    let put = client
        .put(&url)
        .bearer_auth(&zhang.token)
        .body(corrupted)
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 400);
    let head = client
        .head(&url)
        .bearer_auth(&zhang.token)
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.headers()["upload-offset"],
        cut.to_string().as_str(),
        "the corrupted upload kept nothing and left the parked part"
    );
    assert_eq!(head.headers()["upload-complete"], "false");
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&zhang.token)
            .send()
            .await
            .expect("get")
            .status(),
        404
    );

    // A blob no case mentions is not accepted (no free file hosting).
    let stranger = noise_png(32, 32);
    let stranger_url = blob_url(&server, &anjian_core::photo::sha256_hex(&stranger));
    let refused = client
        .put(&stranger_url)
        .bearer_auth(&zhang.token)
        .body(stranger)
        .send()
        .await
        .expect("put");
    assert_eq!(refused.status(), 404);

    assert_eq!(
        client
            .put(&url)
            .bearer_auth(&zhang.token)
            .body(photo.clone())
            .send()
            .await
            .expect("put")
            .status(),
        201
    );
    let outsider = login_token(&server.url(), "outsider").await;
    for response in [
        client
            .get(&url)
            .bearer_auth(&outsider)
            .send()
            .await
            .expect("get"),
        client
            .head(&url)
            .bearer_auth(&outsider)
            .send()
            .await
            .expect("head"),
    ] {
        assert_eq!(
            response.status(),
            404,
            "another district cannot read or probe the blob"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_devices_uploading_one_photo_store_it_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = noise_png(200, 150);
    let (server, zhang, sha256) = setup(&dir, &photo).await;
    let url = blob_url(&server, &sha256);
    let uploads: Vec<_> = (0..20)
        .map(|_| {
            let (url, token, body) = (url.clone(), zhang.token.clone(), photo.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .put(url)
                    .bearer_auth(token)
                    .body(body)
                    .send()
                    .await
                    .expect("put")
                    .status()
            })
        })
        .collect();
    let mut created = 0;
    for upload in uploads {
        let status = upload.await.expect("task");
        assert!(status == 201 || status == 200, "{status}");
        created += usize::from(status == 201);
    }
    assert_eq!(created, 1, "stored once; the others found it there");
    let storage =
        anjian_sync_server::Storage::open(&anjian_sync_server::testing::database(&server.data))
            .expect("db");
    let count = |sql: &str| -> i64 {
        storage
            .read(|c| c.query_row(sql, anjian_sync_server::params![&sha256], |r| r.get(0)))
            .expect("count")
    };
    assert_eq!(count("SELECT count(*) FROM blobs WHERE sha256 = ?1"), 1);
    assert_eq!(
        count("SELECT count(*) FROM uploads WHERE sha256 = ?1"),
        0,
        "no unfinished upload is left"
    );
    assert_eq!(
        stored(&server, &sha256).await.as_deref(),
        Some(photo.as_slice())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_finishes_a_cut_upload_and_another_device_fetches_the_original() {
    let dir = tempfile::tempdir().expect("temp dir");
    let photo = noise_png(1850, 1850);
    let (server, mut zhang, sha256) = setup(&dir, &photo).await;
    // The app was killed after sending 30% of the original.
    let cut = photo.len() * 3 / 10;
    let first = patch(
        &blob_url(&server, &sha256),
        &zhang.token,
        0,
        photo.len(),
        &photo[..cut],
    )
    .await;
    assert_eq!(first.status(), 204);

    zhang.store.set_upload_originals(true);
    let report = zhang.sync().await.expect("sync resumes the upload");
    assert_eq!(report.blobs_uploaded, 1);
    assert_eq!(
        report.blob_bytes_sent,
        (photo.len() - cut) as u64,
        "only the rest was sent"
    );
    assert!(zhang.store.pending_uploads().expect("pending").is_empty());

    add_user(&server.data, "li", Role::Inspector, "310101", "应急管理");
    let mut li = Inspector::sign_in(dir.path(), &server.url(), "li", "应急管理", "310101").await;
    let received = li.sync().await.expect("li receives the case");
    assert_eq!(received.thumbnails_downloaded, 1, "thumbnails come eagerly");
    let case = li
        .store
        .cases(&anjian_core::CaseQuery::default())
        .expect("cases")[0]
        .id;
    let thumbnail = li.store.case(case).expect("case").findings[0].photos[0]
        .thumbnail
        .clone();
    assert!(
        li.store.has_blob(&thumbnail).expect("query"),
        "the thumbnail is on li's phone"
    );
    assert!(
        !li.store.has_blob(&sha256).expect("query"),
        "the original is not, until asked for"
    );
    let fetched = li
        .store
        .fetch_blob(&li.server, &li.token, &sha256, "original")
        .await
        .expect("fetch");
    assert_eq!(fetched, photo);
    assert_eq!(li.store.blob(&sha256).expect("kept and verified"), photo);
    server.stop().await;
}

/// Past what its account's uploads may store within a day, a phone's uploads are put off,
/// not failed: the sync goes on and says why, the photos stay on the phone, and they go at
/// a later sync once the day has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_a_day_s_bound_go_at_a_later_sync() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "zhang", Role::Inspector, "310101", "应急管理");
    let server = TestServer::start_with(anjian_sync_server::Settings {
        data,
        limits: anjian_sync_server::config::Limits {
            blob_bytes_per_user_per_day: 1,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut zhang =
        Inspector::sign_in(dir.path(), &server.url(), "zhang", "应急管理", "310101").await;
    zhang.store.set_upload_originals(false);
    let case = zhang.open_sample_case(12);
    let finding = zhang
        .store
        .add_finding(case, &sample::finding("配电箱无防护"))
        .expect("finding");
    for side in [64, 80] {
        let info = zhang
            .store
            .ingest_photo(&noise_png(side, side))
            .expect("ingest");
        zhang
            .store
            .attach_photo(case, &PhotoTarget::Finding(finding), &info.sha256, "配电箱")
            .expect("attach");
    }
    let thumbnails_left = |zhang: &Inspector| {
        let pending = zhang.store.pending_uploads().expect("pending");
        pending.iter().filter(|p| p.kind == "thumbnail").count()
    };

    let report = zhang.sync().await.expect("the sync goes on");
    assert_eq!(report.blobs_uploaded, 1, "{report:?}");
    assert!(
        report
            .uploads_deferred
            .as_deref()
            .is_some_and(|why| why.contains("上限")),
        "{report:?}"
    );
    assert!(
        report.refused.is_empty() && report.acknowledged >= 1,
        "{report:?}"
    );
    assert_eq!(thumbnails_left(&zhang), 1);

    // A day later.
    anjian_tests::blobs_stored_a_day_ago(&server.data);
    let report = zhang.sync().await.expect("sync");
    assert_eq!(report.blobs_uploaded, 1, "{report:?}");
    assert_eq!(report.uploads_deferred, None);
    assert_eq!(thumbnails_left(&zhang), 0);
    server.stop().await;
}
