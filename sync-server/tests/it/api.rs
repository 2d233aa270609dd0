//! Login, tokens and the catalog through the router, without a network.

use std::sync::Arc;

use anjian_core::Role;
use anjian_sync_server::users::NewUser;
use anjian_sync_server::{AppState, Settings, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

const ACTOR: &str = "00112233445566778899aabbccddeeff";

fn app(dir: &tempfile::TempDir) -> (axum::Router, Arc<AppState>) {
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let settings = Settings {
        data: dir.path().to_owned(),
        ..Settings::default()
    };
    let state = AppState::open(settings, stopped).expect("state");
    for (username, district) in [("zhang", "310101"), ("li", "310104")] {
        state
            .storage
            .add_user(&NewUser {
                username,
                name: "测试",
                role: Role::Inspector,
                district: &district.parse().expect("district"),
                department: "应急管理",
                password: "correct horse battery",
            })
            .expect("user");
    }
    (router(state.clone()), state)
}

async fn call(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Zhang's token, signed in from `ACTOR`.
async fn zhang_token(app: &axum::Router) -> String {
    let (status, body) = call(app, login("zhang", "correct horse battery", ACTOR)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

fn login(username: &str, password: &str, actor: &str) -> Request<Body> {
    Request::post("/api/v1/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"username": username, "password": password, "device_name": "手机", "actor_id": actor}).to_string(),
        ))
        .expect("request")
}

#[tokio::test]
async fn login_binds_the_device_and_issues_a_working_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = app(&dir);
    let (status, body) = call(&app, login("zhang", "correct horse battery", ACTOR)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token");
    assert_eq!(token.len(), 64);
    assert_eq!(body["user"]["district"], "310101");
    let devices = state.storage.devices(Some("zhang")).expect("devices");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].actor_id, ACTOR);

    let request =
        Request::get("/api/v1/catalog?since=0").header("authorization", format!("Bearer {token}"));
    let (status, body) = call(&app, request.body(Body::empty()).expect("request")).await;
    assert_eq!((status, body["cursor"].as_i64()), (StatusCode::OK, Some(0)));
    // The token is stored only hashed.
    let stored: i64 = state
        .storage
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM tokens WHERE token_hash = ?1",
                anjian_sync_server::params![token],
                |r| r.get(0),
            )
        })
        .expect("query");
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn bad_logins_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = app(&dir);
    let cases = [
        (
            login("zhang", "wrong password", ACTOR),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            login("nobody", "correct horse battery", ACTOR),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            login("zhang", "correct horse battery", "not-hex"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (request, status, code) in cases {
        let (got, body) = call(&app, request).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    // A device belongs to one user for ever.
    assert_eq!(
        call(&app, login("zhang", "correct horse battery", ACTOR))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = call(&app, login("li", "correct horse battery", ACTOR)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // A disabled account cannot sign in, and its tokens stop working.
    let li_signs_in = || {
        call(
            &app,
            login(
                "li",
                "correct horse battery",
                "ffeeddccbbaa99887766554433221100",
            ),
        )
    };
    let (_, body) = li_signs_in().await;
    let token = body["token"].as_str().expect("token").to_owned();
    state.storage.set_disabled("li", true).expect("disable");
    assert_eq!(li_signs_in().await.0, StatusCode::FORBIDDEN);
    let cases = || {
        Request::get("/api/v1/cases")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(call(&app, cases()).await.0, StatusCode::UNAUTHORIZED);
    // Disabling revoked the token: enabling the account again (after a stolen token, say)
    // does not bring it back; the user signs in anew.
    state.storage.set_disabled("li", false).expect("enable");
    assert_eq!(call(&app, cases()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(li_signs_in().await.0, StatusCode::OK);
}

/// What one account can make the server keep is bounded: at most `devices_per_user`
/// devices not revoked (revoking one makes room), and each device keeps only its newest
/// tokens (an older one stops working when the device signs in again past them).
#[tokio::test]
async fn an_account_s_devices_and_a_device_s_tokens_are_bounded() {
    use anjian_sync_server::config::Limits;
    use anjian_sync_server::storage::TOKENS_PER_DEVICE;
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = app(&dir);
    let sign_in = |user: &'static str, actor: String| {
        let app = app.clone();
        async move { call(&app, login(user, "correct horse battery", &actor)).await }
    };
    let allowed = Limits::default().devices_per_user;
    let actor = |i: usize| format!("{i:032x}");
    for i in 0..allowed {
        let (status, body) = sign_in("zhang", actor(i)).await;
        assert_eq!(status, StatusCode::OK, "device {i}: {body}");
    }
    let (status, body) = sign_in("zhang", actor(allowed)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("吊销"),
        "{body}"
    );
    // A device already bound still signs in; a revoked one makes room for a new one.
    assert_eq!(sign_in("zhang", actor(0)).await.0, StatusCode::OK);
    state.storage.revoke_device(&actor(1)).expect("revoke");
    assert_eq!(sign_in("zhang", actor(allowed)).await.0, StatusCode::OK);

    let mut tokens = Vec::new();
    for _ in 0..=TOKENS_PER_DEVICE {
        let (status, body) = sign_in("li", ACTOR.to_owned()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.push(body["token"].as_str().expect("token").to_owned());
    }
    let works = |token: &String| {
        let request = Request::get("/api/v1/cases")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        let app = app.clone();
        async move { call(&app, request).await.0 == StatusCode::OK }
    };
    let mut working = Vec::new();
    for token in &tokens {
        working.push(works(token).await);
    }
    let mut expected = vec![true; tokens.len()];
    expected[0] = false;
    assert_eq!(working, expected, "the oldest token ended, the newest work");
}

/// A device registers at most `KEYS_PER_DEVICE` signing keys (each is kept for ever):
/// one more is refused, and a key it has already registered still signs in, with the
/// certificate it was given within the day.
#[tokio::test]
async fn a_device_registers_a_bounded_number_of_keys() {
    use anjian_core::signing::{KeyAlgorithm, Signer, SoftwareKey};
    use anjian_sync_server::storage::KEYS_PER_DEVICE;
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = app(&dir);
    let with_key = |i: u8| {
        let key = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [i + 1; 32]).public_key();
        Request::post("/api/v1/login")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({
                    "username": "zhang", "password": "correct horse battery",
                    "device_name": "手机", "actor_id": ACTOR,
                    "key_algorithm": key.algorithm().code(),
                    "public_key": hex::encode(key.bytes()),
                })
                .to_string(),
            ))
            .expect("request")
    };
    let most = KEYS_PER_DEVICE as u8;
    for i in 0..most {
        let (status, body) = call(&app, with_key(i)).await;
        assert_eq!(status, StatusCode::OK, "key {i}: {body}");
    }
    let (status, body) = call(&app, with_key(most)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let certificates = || state.storage.certificates_of(ACTOR).expect("certificates");
    assert_eq!(
        certificates().len(),
        usize::from(most),
        "no certificate for the key refused"
    );

    // Signing in again within the day with a key certified is answered with the same
    // certificate: sign-ins over and over pile up none. Once the account reads otherwise
    // than the certificate says, a new one.
    let first = certificates()[0].encode();
    for _ in 0..3 {
        let (status, body) = call(&app, with_key(0)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["certificate"], hex::encode(&first));
    }
    assert_eq!(certificates().len(), usize::from(most));
    state
        .storage
        .write(|c| {
            c.execute(
                "UPDATE users SET department = '消防' WHERE username = 'zhang'",
                anjian_sync_server::params![],
            )
        })
        .expect("moved");
    let (status, body) = call(&app, with_key(0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["certificate"], hex::encode(&first));
    assert_eq!(certificates().len(), usize::from(most) + 1);
}

/// The history shows each change's device by the name given at sign-in: a phone cannot
/// take the name the server gives the actors of the supervisors' pages (its changes would
/// read as made there), nor an endless or control-character name.
#[tokio::test]
async fn a_device_cannot_sign_in_under_the_server_s_name_or_a_name_that_is_no_name() {
    use anjian_sync_server::users::{DEVICE_NAME_CHARS, SERVER_DEVICE_NAME};
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = app(&dir);
    let named = |name: &str| {
        Request::post("/api/v1/login")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"username": "zhang", "password": "correct horse battery", "device_name": name, "actor_id": ACTOR}).to_string(),
            ))
            .expect("request")
    };
    let long = "机".repeat(DEVICE_NAME_CHARS + 1);
    let server = format!(" {SERVER_DEVICE_NAME} ");
    for name in [server.as_str(), long.as_str(), "手\n机", "手机\u{202e}"] {
        let (status, body) = call(&app, named(name)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {body}");
    }
    assert!(
        state
            .storage
            .devices(Some("zhang"))
            .expect("devices")
            .is_empty()
    );
    let (status, body) = call(&app, named(&"机".repeat(DEVICE_NAME_CHARS))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn api_calls_without_a_valid_token_are_unauthorized() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, _) = app(&dir);
    for uri in [
        "/api/v1/catalog",
        "/api/v1/cases",
        "/api/v1/cases/8b1c3f0e-4d55-4d5e-9a43-7b6f0b2f9d11",
    ] {
        let (status, body) = call(
            &app,
            Request::get(uri).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(body["error"], "unauthorized");
        let request = Request::get(uri)
            .header("authorization", "Bearer 0000")
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            call(&app, request).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    let (status, _) = call(
        &app,
        Request::get("/healthz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// A token in a URL ends up in the logs of every proxy it passes: the API reads it from
/// the header alone (only the sync socket's upgrade, which a browser cannot give a
/// header, takes `?token=`).
#[tokio::test]
async fn a_token_in_the_url_of_an_api_call_is_not_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, _) = app(&dir);
    let token = zhang_token(&app).await;
    let in_url = Request::get(format!("/api/v1/catalog?since=0&token={token}"))
        .body(Body::empty())
        .expect("request");
    assert_eq!(call(&app, in_url).await.0, StatusCode::UNAUTHORIZED);
    let in_header = Request::get("/api/v1/catalog?since=0")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    assert_eq!(call(&app, in_header).await.0, StatusCode::OK);
}

/// An upload of a blob no case of the user's mentions is refused before its body is read:
/// a body that never ends (as a slow or hostile sender's) is answered at once.
#[tokio::test]
async fn an_upload_nobody_may_send_is_refused_before_its_body_is_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, _) = app(&dir);
    let token = zhang_token(&app).await;
    for method in ["PUT", "PATCH"] {
        let endless = futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from_static(
                b"\xff\xd8\xff",
            ))]),
            futures_util::stream::pending(),
        );
        let request = Request::builder()
            .method(method)
            .uri(format!("/api/v1/blobs/{}", "ab".repeat(32)))
            .header("authorization", format!("Bearer {token}"))
            .header("upload-offset", "0")
            .header("upload-length", "1000")
            .body(Body::from_stream(endless))
            .expect("request");
        let answered =
            tokio::time::timeout(std::time::Duration::from_secs(10), call(&app, request))
                .await
                .expect("answered without the body");
        assert_eq!(answered.0, StatusCode::NOT_FOUND, "{method}");
    }
}

#[tokio::test]
async fn requests_that_cannot_be_read_are_answered_as_json_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, _) = app(&dir);
    let token = format!("Bearer {}", zhang_token(&app).await);
    let post = |content_type: &str, body: String| {
        Request::post("/api/v1/login")
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request")
    };
    let get = |uri: &str| {
        Request::get(uri)
            .header("authorization", &token)
            .body(Body::empty())
            .expect("request")
    };
    let cases = [
        (
            post("text/plain", "{}".into()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post("application/json", "{".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post("application/json", json!({"username": 1}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            post("application/json", "x".repeat(9 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            get("/api/v1/catalog?since=yesterday"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            get("/api/v1/cases?limit=1&limit=2"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            get("/api/v1/cases/%FF"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            get("/api/v1/cases?from=%2B12026-01-01"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (request, status, code) in cases {
        let uri = request.uri().to_string();
        let (got, body) = call(&app, request).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "{uri}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{uri}: {body}"
        );
    }
}

/// What the API answers is evidence and personal data: no cache keeps it, and no browser
/// reads it as another type than it says, found or not.
#[tokio::test]
async fn api_answers_are_kept_by_no_cache_and_never_sniffed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, _state) = app(&dir);
    let token = crate::support::device_token(&app, "zhang", ACTOR).await;
    for uri in [
        "/api/v1/cases".to_owned(),
        format!("/api/v1/cases/{}", uuid::Uuid::new_v4()),
        format!("/api/v1/blobs/{}", "0".repeat(64)),
    ] {
        let request = Request::get(&uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        let (status, headers, _) = crate::support::call(&app, request).await;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("cache-control"), Some("no-store"), "{uri} {status}");
        assert_eq!(header("x-content-type-options"), Some("nosniff"), "{uri}");
    }
}
