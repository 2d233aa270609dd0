//! HTTP requests to the server's real router (every route, the API's catalog and blob
//! transfers first), as signed-in inspectors, supervisors and the admin or as no one:
//! whatever arrives is answered, never with a server error.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anjian_sim::world;
use anjian_sync_server::config::Limits;
use anjian_sync_server::{AppState, Settings, router};
use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// Routes, with `{case}`, `{finding}` and `{sha}` where a segment goes.
const ROUTES: &[&str] = &[
    "/api/v1/catalog",
    "/api/v1/blobs/{sha}",
    "/api/v1/login",
    "/api/v1/cases",
    "/api/v1/cases/{case}",
    "/api/v1/cases/{case}/review",
    "/api/v1/cases/{case}/resolve",
    "/api/v1/cases/{case}/share",
    "/api/v1/cases/{case}/findings/{finding}/close",
    "/api/v1/rectifications",
    "/api/v1/bulletins",
    "/api/v1/bulletins.xlsx",
    "/api/v1/bulletins.csv",
    "/sync",
    "/healthz",
    "/metrics",
    "/login",
    "/logout",
    "/cases",
    "/cases/{case}",
    "/cases/{case}/review",
    "/cases/{case}/resolve",
    "/cases/{case}/findings/{finding}/close",
    "/cases/{case}/photos/{sha}",
    "/rectifications",
    "/bulletins",
];

const METHODS: &[Method] = &[
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::HEAD,
    Method::DELETE,
];

/// Names of query parameters, form and JSON fields and headers the server reads.
const NAMES: &[&str] = &[
    "since",
    "district",
    "enterprise",
    "industry",
    "type",
    "state",
    "level",
    "inspector",
    "from",
    "to",
    "conflicts",
    "limit",
    "offset",
    "action",
    "note",
    "field",
    "value",
    "districts",
    "username",
    "password",
    "device_name",
    "actor_id",
    "evidence",
    "upload-offset",
    "upload-length",
    "content-type",
    "content-length",
    "cookie",
    "origin",
    "host",
    "range",
    "if-none-match",
    "sec-websocket-key",
    "upgrade",
    "connection",
];

/// A name the server reads, or any.
#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Known(i) => NAMES[*i as usize % NAMES.len()].to_owned(),
            Name::Other(s) => s.clone(),
        }
    }
}

/// A path segment: the real one (a stored case, its finding, a stored photo, the body's
/// hash) or any.
#[derive(Arbitrary, Debug)]
enum Segment {
    Real,
    BodyHash,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Raw(Vec<u8>),
    Form(Vec<(Name, String)>),
    Json(Vec<(Name, Json)>),
}

/// Who sends it: no one, one of the accounts (by index), or a made-up token or cookie.
#[derive(Arbitrary, Debug)]
enum Who {
    Nobody,
    Account(u8),
    Cookie(u8),
    Token(String),
}

#[derive(Arbitrary, Debug)]
struct Call {
    method: u8,
    route: u8,
    segments: [Segment; 2],
    query: Vec<(Name, String)>,
    headers: Vec<(Name, String)>,
    who: Who,
    payload: Payload,
}

struct Server {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    /// Per account: its bearer token.
    tokens: Vec<String>,
    case: String,
    finding: String,
    sha: String,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir_in(anjian_sim::tmp_root()).expect("a temporary folder");
        let (case, finding) = crate::forged::store_base_case(dir.path());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let settings = Settings {
            data: dir.path().to_owned(),
            ..Settings::default()
        };
        let state: Arc<AppState> = runtime.block_on(async {
            AppState::open(settings, stopped).expect("the server opens its data")
        });
        let tokens = crate::server::accounts()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let actor = format!("{:032x}", 0xa0 + i as u128);
                state
                    .storage
                    .login(
                        name,
                        world::PASSWORD,
                        "fuzz",
                        &actor,
                        None,
                        30,
                        Limits::default().devices_per_user,
                    )
                    .expect("an account signs in")
                    .0
            })
            .collect();
        let photo = anjian_core::sample::jpeg(64, 48);
        let sha = anjian_core::photo::sha256_hex(&photo);
        Server {
            app: router(state),
            runtime,
            tokens,
            case,
            finding,
            sha,
            _stop: stop,
            _dir: dir,
        }
    })
}

fn escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn body(payload: &Payload) -> (Vec<u8>, Option<&'static str>) {
    match payload {
        Payload::Raw(bytes) => (bytes.clone(), None),
        Payload::Form(fields) => {
            let form: Vec<String> = fields
                .iter()
                .map(|(n, v)| format!("{}={}", escape(&n.text()), escape(v)))
                .collect();
            (
                form.join("&").into_bytes(),
                Some("application/x-www-form-urlencoded"),
            )
        }
        Payload::Json(fields) => {
            let mut object = serde_json::Map::new();
            for (name, value) in fields {
                let value = match value {
                    Json::Str(s) => serde_json::Value::from(s.as_str()),
                    Json::Int(i) => serde_json::Value::from(*i),
                    Json::Bool(b) => serde_json::Value::from(*b),
                    Json::List(l) => serde_json::Value::from(l.clone()),
                };
                object.insert(name.text(), value);
            }
            (
                serde_json::Value::Object(object).to_string().into_bytes(),
                Some("application/json"),
            )
        }
    }
}

/// One request from anyone: answered without a server error.
pub fn http_request(data: &[u8]) {
    let Ok(call) = Call::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let server = server();
    let (body, content_type) = body(&call.payload);
    let route = ROUTES[call.route as usize % ROUTES.len()];
    let mut segments = call.segments.iter();
    let mut path = String::new();
    for part in route.split('/').skip(1) {
        path.push('/');
        if !(part.starts_with('{') && part.ends_with('}')) {
            path.push_str(part);
            continue;
        }
        let real = match part {
            "{case}" => server.case.clone(),
            "{finding}" => server.finding.clone(),
            _ => server.sha.clone(),
        };
        match segments.next() {
            Some(Segment::Real) | None => path.push_str(&real),
            Some(Segment::BodyHash) => path.push_str(&hex::encode(Sha256::digest(&body))),
            Some(Segment::Other(s)) => path.push_str(&escape(s)),
        }
    }
    if !call.query.is_empty() {
        let query: Vec<String> = call
            .query
            .iter()
            .map(|(n, v)| format!("{}={}", escape(&n.text()), escape(v)))
            .collect();
        path = format!("{path}?{}", query.join("&"));
    }
    let method = METHODS[call.method as usize % METHODS.len()].clone();
    let mut request = Request::builder().method(method).uri(&path);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let accounts = server.tokens.len();
    request = match &call.who {
        Who::Nobody => request,
        Who::Account(i) => request.header(
            "authorization",
            format!("Bearer {}", server.tokens[*i as usize % accounts]),
        ),
        Who::Cookie(i) => request.header(
            "cookie",
            format!("anjian_session={}", server.tokens[*i as usize % accounts]),
        ),
        Who::Token(t) => request.header("authorization", format!("Bearer {t}")),
    };
    for (name, value) in call.headers.iter().take(8) {
        request = request.header(name.text(), value.as_str());
    }
    let Ok(mut request) = request.body(Body::from(body)) else {
        // Not a request an HTTP parser would hand to the router.
        return;
    };
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let app = server.app.clone();
    server.runtime.block_on(async move {
        let response = app.oneshot(request).await.expect("the router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .expect("the answer's body is read");
        assert!(
            !status.is_server_error(),
            "{path}: {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    });
}
