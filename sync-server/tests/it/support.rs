//! What the handler tests share: a server with accounts, cases put into its storage as
//! if synced, and signing in to the pages as a browser does.

use std::path::Path;
use std::sync::Arc;

use anjian_core::Role;
use anjian_core::rules::CaseState;
use anjian_core::{CaseId, Identity, Level, RectificationOrder, Store, case_doc, sample};
use anjian_sync_server::config::Limits;
use anjian_sync_server::storage::{Commit, Projection};
use anjian_sync_server::users::NewUser;
use anjian_sync_server::web::session::encode_query;
use anjian_sync_server::{AppState, Settings, router};
use automerge::AutoCommit;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

/// Every test account's password.
pub const PASSWORD: &str = "correct horse battery";

/// A server with its data under `dir/server` and these accounts (username, role,
/// district); each user's name is "USERNAME姓名".
pub fn server(dir: &Path, users: &[(&str, Role, &str)]) -> (axum::Router, Arc<AppState>) {
    server_with(dir, users, Limits::default())
}

/// `server`, holding clients to `limits`.
pub fn server_with(
    dir: &Path,
    users: &[(&str, Role, &str)],
    limits: Limits,
) -> (axum::Router, Arc<AppState>) {
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let settings = Settings {
        data: dir.join("server"),
        database: anjian_sync_server::testing::postgres_database(&dir.join("server")),
        blobs: anjian_sync_server::testing::s3_blobs(&dir.join("server")),
        limits,
        ..Settings::default()
    };
    let state = AppState::open(settings, stopped).expect("state");
    for (username, role, district) in users {
        state
            .storage
            .add_user(&NewUser {
                username,
                name: &format!("{username}姓名"),
                role: *role,
                district: &district.parse().expect("district"),
                department: "应急管理",
                password: PASSWORD,
            })
            .expect("user");
    }
    (router(state.clone()), state)
}

/// An inspector's identity on their store.
pub fn identity(user: &str, district: &str) -> Identity {
    Identity {
        user_id: user.to_owned(),
        name: format!("{user}姓名"),
        department: "应急管理".to_owned(),
        district: district.parse().expect("district"),
        role: anjian_core::Role::Inspector,
    }
}

/// An inspector's store (in `dir`) with a case of `district` holding one major finding
/// whose rectification deadline (22 November 2026) has passed.
pub fn record_case(dir: &Path, user: &str, district: &str, seed: u32) -> (Store, CaseId) {
    let mut store = Store::open(
        dir.join(format!("{user}-{seed}.db")),
        identity(user, district),
    )
    .expect("store");
    // Certified, as a sign-in would: devices hand each other case files.
    sample::certify(&mut [&mut store]).expect("certified");
    let mut enterprise = sample::enterprise(seed);
    enterprise.district = district.parse().expect("district");
    store.register_enterprise(&enterprise).expect("enterprise");
    let case = store
        .open_case(&sample::new_case(&enterprise))
        .expect("case");
    let mut finding = sample::finding("液氯储罐区可燃有毒气体检测报警装置未投入使用");
    finding.level = Some(Level::Major);
    let finding = store.add_finding(case, &finding).expect("finding");
    store
        .order_rectification(
            case,
            finding,
            &RectificationOrder {
                measures: "立即恢复报警装置并联锁".into(),
                deadline: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("date"),
                responsible: "王安全".into(),
            },
        )
        .expect("order");
    (store, case)
}

/// Puts a store's case into the server's storage as if it had been synced (in full, as
/// a new document or on top of the stored one). It goes past the server's in-memory
/// documents, so upload a case before the server first loads it.
pub fn upload(state: &AppState, store: &mut Store, case: CaseId, user: &str) {
    for result in state
        .storage
        .commit_batch(&[commit_of(state, store, case, user)])
    {
        result.expect("committed");
    }
}

/// What syncing a store's case in full commits (as a new document or on top of the stored
/// one).
pub fn commit_of(state: &AppState, store: &mut Store, case: CaseId, user: &str) -> Commit {
    let mut doc = AutoCommit::load(&store.export_document(case).expect("export")).expect("load");
    let stored = state.storage.stored_heads(case).expect("storage");
    Commit {
        case_id: case,
        bytes: doc.save(),
        new: stored.is_none(),
        heads: case_doc::sorted_heads(&mut doc),
        base: stored.unwrap_or_default(),
        projection: Projection::of(&doc, &CaseState::of(&doc).expect("a case"))
            .expect("projection"),
        user_id: state.storage.user(user).expect("user").id,
        token_hash: None,
        receipts: Vec::new(),
    }
}

/// Signs `username` in from the device `actor` (as an app does) and returns its token.
pub async fn device_token(app: &axum::Router, username: &str, actor: &str) -> String {
    let (_, _, body) = call(
        app,
        Request::post("/api/v1/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::json!({"username": username, "password": PASSWORD, "device_name": "手机", "actor_id": actor})
                    .to_string(),
            ))
            .expect("request"),
    )
    .await;
    serde_json::from_str::<serde_json::Value>(&body).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// A signed-in browser: its session cookie and the CSRF token its pages carry.
pub struct Session {
    /// The `Cookie` header.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
}

/// Sends a request; returns the status, the headers and the body as text.
pub async fn call(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, Vec<(String, String)>, String) {
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Signs in through the login form, as a browser does.
pub async fn sign_in(app: &axum::Router, username: &str) -> Session {
    let (status, headers, html) = call(
        app,
        Request::get("/login").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let login_cookie = set_cookie(&headers, "anjian_login").expect("login cookie");
    let csrf = hidden(&html, "csrf").expect("csrf field");
    let body = form(&[
        ("username", username),
        ("password", PASSWORD),
        ("csrf", &csrf),
        ("next", "/cases"),
    ]);
    let (status, headers, _) = call(
        app,
        Request::post("/login")
            .header(header::COOKIE, format!("anjian_login={login_cookie}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{username} signs in");
    let session = set_cookie(&headers, "__Host-anjian_session").expect("session cookie");
    let cookie = format!("__Host-anjian_session={session}");
    let (_, _, page) = call(
        app,
        Request::get("/cases")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    Session {
        cookie,
        csrf: hidden(&page, "csrf")
            .unwrap_or_else(|| panic!("the page carries the session's csrf token: {page}")),
    }
}

/// A form body.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_query(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the cookie `name` set by a response.
pub fn set_cookie(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| {
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (key, value) = pair.split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.to_owned())
        })
}

/// The value of the first hidden input called `name`.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}
