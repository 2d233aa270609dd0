//! The OpenAPI description served by a real server against the routes the server has: a
//! route added to `router()` without a description, or a method added to a described
//! route, fails here. (`scripts/api-check` checks the answers against the description.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anjian_tests::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every path under `/api/` that the server's source routes (`.route("/api/…", …)`).
fn routed_api_paths() -> BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sync-server/src");
    let mut paths = BTreeSet::new();
    let mut folders = vec![src];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("the server's sources") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                for call in text.split(".route(").skip(1) {
                    let Some(literal) = call.trim_start().strip_prefix('"') else {
                        continue;
                    };
                    let route = &literal[..literal.find('"').expect("a closing quote")];
                    if route.starts_with("/api/") {
                        paths.insert(route.to_owned());
                    }
                }
            }
        }
    }
    paths
}

/// The described paths and the methods of each.
fn described(doc: &Value) -> BTreeMap<String, BTreeSet<Method>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("a path item")
                .keys()
                .filter_map(|key| Method::from_bytes(key.to_ascii_uppercase().as_bytes()).ok())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn the_description_names_every_api_route_and_method() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(dir.path()).await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/api/v1/openapi.json", server.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK, "served without a token");
    let doc: Value = response.json().await.expect("JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document: {}",
        doc["openapi"]
    );
    let described = described(&doc);

    let routed = routed_api_paths();
    assert!(
        routed.len() >= 10,
        "the scan finds the routes in the server's sources: {routed:?}"
    );
    let paths: BTreeSet<String> = described.keys().cloned().collect();
    let undescribed: Vec<_> = routed.difference(&paths).collect();
    assert!(
        undescribed.is_empty(),
        "routes without a description: {undescribed:?}"
    );
    let unrouted: Vec<_> = paths.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "described paths the server does not route: {unrouted:?}"
    );

    // The methods of each path, as the running router answers them: a method it does not
    // route is 405, any other reaches a handler (which may refuse it otherwise). HEAD is
    // routed wherever GET is.
    let all = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut wrong = Vec::new();
    for (path, methods) in &described {
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "0"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in &all {
            let documented = methods.contains(method)
                || (*method == Method::HEAD && methods.contains(&Method::GET));
            let status = client
                .request(method.clone(), format!("{}{concrete}", server.url()))
                .send()
                .await
                .expect("request")
                .status();
            let routed = status != StatusCode::METHOD_NOT_ALLOWED;
            if routed != documented {
                wrong.push(format!(
                    "{method} {path}: answered {status}, described: {documented}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "methods not as described: {wrong:#?}");
    server.stop().await;
}

#[tokio::test]
async fn every_operation_describes_its_token_and_body_refusals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(dir.path()).await;
    let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", server.url()))
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let responses = operation["responses"].as_object().expect("responses");
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            // Everything but signing in and the description itself takes a token, and
            // says so with its 401.
            let public = path == "/api/v1/login" || path == "/api/v1/openapi.json";
            if secured == public || (secured && !responses.contains_key("401")) {
                missing.push(format!("{method} {path}: bearer security with its 401"));
            }
            let takes_json = operation["requestBody"]["content"]
                .get("application/json")
                .is_some();
            for status in ["413", "415", "422"] {
                if takes_json && !responses.contains_key(status) {
                    missing.push(format!("{method} {path}: {status} for a JSON body"));
                }
            }
            if !responses.keys().any(|s| s.starts_with('2')) {
                missing.push(format!("{method} {path}: a success"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
    server.stop().await;
}
