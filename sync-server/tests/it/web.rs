//! The supervisors' pages and review endpoints through the router: sign-in and session
//! cookies, CSRF, who sees and does what (role × district × page), and review actions
//! and conflict resolutions written into the case document.

use std::sync::Arc;

use anjian_core::HazardStep;
use anjian_core::Role;
use anjian_core::{CaseId, FindingEdit, Level, Store, case_doc, sample};
use anjian_sync_server::AppState;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::support::*;

const A: &str = "310101";
const B: &str = "310104";

struct Web {
    app: axum::Router,
    state: Arc<AppState>,
    dir: tempfile::TempDir,
}

/// A server with supervisors of districts A and B, two inspectors of A and an admin.
fn setup() -> Web {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(
        dir.path(),
        &[
            ("chief_a", Role::Supervisor, A),
            ("chief_b", Role::Supervisor, B),
            ("insp_a", Role::Inspector, A),
            ("insp_a2", Role::Inspector, A),
            ("admin", Role::Admin, A),
        ],
    );
    Web { app, state, dir }
}

impl Web {
    /// An inspector's store with a case of district `district` holding one major finding
    /// whose rectification deadline has passed.
    fn record(&self, user: &str, district: &str, seed: u32) -> (Store, CaseId) {
        record_case(self.dir.path(), user, district, seed)
    }

    fn upload(&self, store: &mut Store, case: CaseId, user: &str) {
        upload(&self.state, store, case, user);
    }

    async fn call(&self, request: Request<Body>) -> (StatusCode, Vec<(String, String)>, String) {
        call(&self.app, request).await
    }

    async fn sign_in(&self, username: &str) -> Session {
        sign_in(&self.app, username).await
    }

    async fn get(&self, session: &Session, uri: &str) -> (StatusCode, String) {
        let (status, _, body) = self
            .call(
                Request::get(uri)
                    .header(header::COOKIE, &session.cookie)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        (status, body)
    }

    async fn post_form(&self, session: &Session, uri: &str, fields: &[(&str, &str)]) -> StatusCode {
        self.call(
            Request::post(uri)
                .header(header::COOKIE, &session.cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form(fields)))
                .expect("request"),
        )
        .await
        .0
    }

    async fn post_json(&self, session: &Session, uri: &str, body: Value) -> (StatusCode, String) {
        let (status, _, body) = self
            .call(
                Request::post(uri)
                    .header(header::COOKIE, &session.cookie)
                    .header("x-csrf-token", &session.csrf)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .expect("request"),
            )
            .await;
        (status, body)
    }

    fn case_json(&self, case: CaseId) -> anjian_core::Case {
        let doc = self
            .state
            .storage
            .load_document(case)
            .expect("storage")
            .expect("document");
        case_doc::read(&doc).expect("case")
    }
}

#[tokio::test]
async fn signing_in_sets_a_secure_http_only_strict_cookie() {
    let web = setup();
    let (_, headers, html) = web
        .call(Request::get("/login").body(Body::empty()).expect("request"))
        .await;
    let login_cookie = set_cookie(&headers, "anjian_login").expect("login cookie");
    let csrf = hidden(&html, "csrf").expect("csrf");
    let post = |password: &str, csrf: &str| {
        Request::post("/login")
            .header(header::COOKIE, format!("anjian_login={login_cookie}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form(&[
                ("username", "chief_a"),
                ("password", password),
                ("csrf", csrf),
            ])))
            .expect("request")
    };
    // A wrong password goes back to the form with the reason, and no session.
    let (status, headers, _) = web.call(post("wrong password", &csrf)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&headers, "__Host-anjian_session").is_none());
    let location = headers
        .iter()
        .find(|(k, _)| k == "location")
        .expect("location");
    assert!(location.1.contains("failed="), "{location:?}");
    // A login form without its own token is refused (login CSRF).
    let (status, _, _) = web.call(post(PASSWORD, "forged")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A sign-in is small: a form past 8 KB is refused before anything reads it.
    let long = "x".repeat(anjian_sync_server::FORM_BODY_BYTES);
    let (status, _, _) = web.call(post(&long, &csrf)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, headers, _) = web.call(post(PASSWORD, &csrf)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("__Host-anjian_session="))
        .map(|(_, v)| v.clone())
        .expect("session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    // The session id is stored only hashed.
    let id = set_cookie(&headers, "__Host-anjian_session").expect("id");
    let stored: i64 = web
        .state
        .storage
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM web_sessions WHERE session_hash = ?1",
                anjian_sync_server::params![&id],
                |r| r.get(0),
            )
        })
        .expect("query");
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn pages_send_strangers_to_the_login_form() {
    let web = setup();
    let (status, headers, _) = web
        .call(
            Request::get("/cases?state=submitted")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers
        .iter()
        .find(|(k, _)| k == "location")
        .expect("location");
    assert_eq!(location.1, "/login?next=/cases%3Fstate%3Dsubmitted");
    let (status, _, body) = web
        .call(
            Request::post("/cases/8b1c3f0e-4d55-4d5e-9a43-7b6f0b2f9d11/review")
                .header(header::COOKIE, "__Host-anjian_session=forged")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn actions_without_the_session_csrf_token_change_nothing() {
    let web = setup();
    let (mut store, case) = web.record("insp_a", A, 1);
    web.upload(&mut store, case, "insp_a");
    let chief = web.sign_in("chief_a").await;
    let uri = format!("/cases/{case}/review");
    let status = web
        .post_form(&chief, &uri, &[("csrf", "forged"), ("action", "approve")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An API call by cookie needs the token in a header; and a cross-site form is refused
    // even with the right token.
    let (status, _, _) = web
        .call(
            Request::post(format!("/api/v1/cases/{case}/review"))
                .header(header::COOKIE, &chief.cookie)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({"action": "approve"}).to_string()))
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = web
        .call(
            Request::post(&uri)
                .header(header::COOKIE, &chief.cookie)
                .header(header::ORIGIN, "http://evil.example")
                .header(header::HOST, "anjian.example")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form(&[
                    ("csrf", &chief.csrf),
                    ("action", "approve"),
                ])))
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let read = web.case_json(case);
    assert_eq!(read.state, anjian_core::ReviewState::Draft);
    assert!(read.review_events.is_empty());
}

/// Who may open which page and call which endpoint: every cell is checked on the server.
#[tokio::test]
async fn each_role_and_district_sees_and_does_exactly_what_it_may() {
    let web = setup();
    let (mut store_a, case_a) = web.record("insp_a", A, 1);
    web.upload(&mut store_a, case_a, "insp_a");
    let (mut store_b, case_b) = web.record("insp_b", B, 2);
    web.upload(&mut store_b, case_b, "chief_b");

    let users = ["chief_a", "chief_b", "insp_a", "insp_a2", "admin"];
    let mut sessions = Vec::new();
    for user in users {
        sessions.push(web.sign_in(user).await);
    }
    let a = format!("/cases/{case_a}");
    let b = format!("/cases/{case_b}");
    let api_a = format!("/api/v1/cases/{case_a}");
    let api_b = format!("/api/v1/cases/{case_b}");
    // Expected status per user, in the order of `users`. A case in full is answered to
    // whoever may read it, as sync serves it (insp_a2's phone holds case A too); the lists
    // below narrow an inspector's to the cases they worked on.
    let reads: &[(&str, [u16; 5])] = &[
        ("/cases", [200, 200, 200, 200, 200]),
        (&a, [200, 404, 200, 200, 200]),
        (&b, [404, 200, 404, 404, 200]),
        (&api_a, [200, 404, 200, 200, 200]),
        (&api_b, [404, 200, 404, 404, 200]),
        ("/rectifications", [200, 200, 403, 403, 200]),
        ("/api/v1/rectifications", [200, 200, 403, 403, 200]),
        ("/api/v1/cases", [200, 200, 200, 200, 200]),
    ];
    for (uri, expected) in reads {
        for ((user, session), expected) in users.iter().zip(&sessions).zip(expected) {
            let (status, body) = web.get(session, uri).await;
            assert_eq!(status.as_u16(), *expected, "{user} GET {uri}: {body}");
        }
    }
    // The lists hold exactly the cases in scope.
    let listed: [(bool, bool); 5] = [
        (true, false),
        (false, true),
        (true, false),
        (false, false),
        (true, true),
    ];
    for ((user, session), (sees_a, sees_b)) in users.iter().zip(&sessions).zip(listed) {
        let (_, page) = web.get(session, "/cases").await;
        assert_eq!(
            page.contains(&case_a.to_string()),
            sees_a,
            "{user} /cases lists A"
        );
        assert_eq!(
            page.contains(&case_b.to_string()),
            sees_b,
            "{user} /cases lists B"
        );
        let (_, api) = web.get(session, "/api/v1/cases").await;
        let api: Value = serde_json::from_str(&api).expect("json");
        assert_eq!(
            api["total"].as_i64(),
            Some(i64::from(sees_a) + i64::from(sees_b)),
            "{user}"
        );
    }
    // Actions: a comment by page form and by API, per user. The rule book lets everyone
    // who may read a case comment on it, inspectors of its district too (as they may over
    // sync); another district's supervisor gets it answered as absent.
    let actions: [u16; 5] = [303, 404, 303, 303, 303];
    for ((user, session), expected) in users.iter().zip(&sessions).zip(actions) {
        let status = web
            .post_form(
                session,
                &format!("{a}/review"),
                &[
                    ("csrf", &session.csrf),
                    ("action", "comment"),
                    ("text", "请补充照片"),
                ],
            )
            .await;
        assert_eq!(status.as_u16(), expected, "{user} comments by form");
        let (status, body) = web
            .post_json(
                session,
                &format!("{api_a}/review"),
                json!({"action": "comment", "text": "请补充"}),
            )
            .await;
        let expected = if expected == 303 { 200 } else { expected };
        assert_eq!(status.as_u16(), expected, "{user} comments by API: {body}");
    }
    let events = web.case_json(case_a).review_events;
    let by: Vec<&str> = events.iter().map(|e| e.by.as_str()).collect();
    assert_eq!(
        by,
        [
            "chief_a", "chief_a", "insp_a", "insp_a", "insp_a2", "insp_a2", "admin", "admin"
        ]
    );
    assert!(web.case_json(case_b).review_events.is_empty());
}

#[tokio::test]
async fn returning_and_approving_are_changes_by_the_supervisor_with_receipts() {
    let web = setup();
    let (mut store, case) = web.record("insp_a", A, 1);
    web.upload(&mut store, case, "insp_a");
    let chief = web.sign_in("chief_a").await;
    let uri = format!("/cases/{case}/review");
    // Returning needs a reason.
    let status = web
        .post_form(
            &chief,
            &uri,
            &[("csrf", &chief.csrf), ("action", "return"), ("text", " ")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let status = web
        .post_form(
            &chief,
            &uri,
            &[
                ("csrf", &chief.csrf),
                ("action", "return"),
                ("text", "隐患照片不清晰，请补拍"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let read = web.case_json(case);
    assert_eq!(read.state, anjian_core::ReviewState::Returned);
    assert_eq!(read.review_events[0].text, "隐患照片不清晰，请补拍");

    let (status, body) = web
        .post_json(
            &chief,
            &format!("/api/v1/cases/{case}/review"),
            json!({"action": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["state"],
        "approved"
    );
    // Approving twice is not possible; reopening is, with a reason.
    let (status, _) = web
        .post_json(
            &chief,
            &format!("/api/v1/cases/{case}/review"),
            json!({"action": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The history shows the supervisor's changes with the server's receipt time, from a
    // server-side device bound to the supervisor.
    let (_, body) = web.get(&chief, &format!("/api/v1/cases/{case}")).await;
    let body: Value = serde_json::from_str(&body).expect("json");
    let reviews: Vec<&Value> = body["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| {
            h["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("review:"))
        })
        .collect();
    assert_eq!(reviews.len(), 2, "{body}");
    for h in &reviews {
        assert_eq!(h["author"], "chief_a");
        assert_eq!(h["received_from"], "chief_a");
        assert!(h["received_at"].is_string(), "{h}");
    }
    let devices = web.state.storage.devices(Some("chief_a")).expect("devices");
    assert_eq!(devices.len(), 1);
    assert_eq!(
        Some(devices[0].actor_id.as_str()),
        reviews[0]["device"].as_str()
    );
    // The page shows the trail and the state.
    let (_, page) = web.get(&chief, &format!("/cases/{case}")).await;
    assert!(page.contains("隐患照片不清晰，请补拍"));
    assert!(page.contains("已审核"));
}

#[tokio::test]
async fn a_conflict_is_shown_with_its_writers_and_resolved_by_the_supervisor() {
    let web = setup();
    let (mut zhang, case) = web.record("insp_a", A, 1);
    let mut li = Store::open(web.dir.path().join("li.db"), identity("insp_a2", A)).expect("store");
    sample::certify(&mut [&mut li]).expect("certified");
    li.merge_case(&zhang.export_case(case).expect("export"))
        .expect("merge");
    let finding = zhang.case(case).expect("case").findings[0].id;
    zhang
        .edit_finding(
            case,
            finding,
            &FindingEdit {
                level: Some(Level::General),
                ..FindingEdit::default()
            },
        )
        .expect("zhang edits");
    li.edit_finding(
        case,
        finding,
        &FindingEdit {
            level: Some(Level::Major),
            ..FindingEdit::default()
        },
    )
    .expect("li edits");
    zhang
        .merge_case(&li.export_case(case).expect("export"))
        .expect("merge");
    web.upload(&mut zhang, case, "insp_a");

    let chief = web.sign_in("chief_a").await;
    let (_, page) = web.get(&chief, &format!("/cases/{case}")).await;
    assert!(
        page.contains("待处理的冲突"),
        "the page highlights the conflict"
    );
    assert!(
        page.contains("insp_a2"),
        "the page names who wrote each value"
    );
    let path = format!("findings/{finding}/level");
    assert!(page.contains(&format!("data-path=\"{path}\"")));
    let (_, list) = web.get(&chief, "/cases?conflicts=true").await;
    assert!(list.contains(&case.to_string()));

    let mut values = case_conflict_values(&web, case);
    values.sort();
    assert_eq!(values, ["general", "major"]);
    // The form carries the values the page showed.
    let shown = serde_json::to_string(&["major", "general"]).expect("json");
    assert!(page.contains("name=\"shown\""));
    let resolve = |choice: &'static str, shown: &str| {
        let fields = [
            ("csrf", chief.csrf.clone()),
            ("path", path.clone()),
            ("shown", shown.to_owned()),
            ("choice", choice.to_owned()),
        ];
        let web = &web;
        let chief = &chief;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            web.post_form(chief, &format!("/cases/{case}/resolve"), &fields)
                .await
        }
    };
    // A value that is not (or no longer) among the values is refused: nothing is picked
    // quietly; the review state is not resolved by hand. Nor is a choice made on a page
    // that showed other values than the field holds now (another device's since).
    assert_eq!(resolve("keep:minor", &shown).await, StatusCode::CONFLICT);
    let stale = serde_json::to_string(&["general", "minor"]).expect("json");
    assert_eq!(resolve("keep:general", &stale).await, StatusCode::CONFLICT);
    assert_eq!(resolve("custom", &stale).await, StatusCode::CONFLICT);
    assert_eq!(values.len(), case_conflict_values(&web, case).len());
    let status = resolve("keep:major", &shown).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let read = web.case_json(case);
    assert_eq!(read.findings[0].level, Level::Major);
    assert!(case_conflict_values(&web, case).is_empty(), "resolved");
    let (_, list) = web.get(&chief, "/cases?conflicts=true").await;
    assert!(
        !list.contains(&case.to_string()),
        "the list no longer flags it"
    );
}

fn case_conflict_values(web: &Web, case: CaseId) -> Vec<String> {
    let doc = web
        .state
        .storage
        .load_document(case)
        .expect("storage")
        .expect("document");
    case_doc::conflicts(&doc)
        .expect("conflicts")
        .into_iter()
        .flat_map(|c| c.values.into_iter().map(|v| v.value.to_string()))
        .collect()
}

#[tokio::test]
async fn the_board_puts_major_and_overdue_hazards_first_within_scope() {
    let web = setup();
    let (mut store_a, case_a) = web.record("insp_a", A, 1);
    web.upload(&mut store_a, case_a, "insp_a");
    let (mut store_b, case_b) = web.record("insp_b", B, 2);
    web.upload(&mut store_b, case_b, "chief_b");
    let chief = web.sign_in("chief_a").await;
    let (status, body) = web.get(&chief, "/api/v1/rectifications?overdue=true").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    let rows = body["rectifications"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "only district A's overdue hazard: {body}");
    assert_eq!(rows[0]["case_id"], case_a.to_string());
    assert_eq!(
        rows[0]["listed"], false,
        "a major hazard is not listed until listed"
    );
    assert_eq!(rows[0]["overdue"], true);
    assert!(rows[0]["days_left"].as_i64().is_some_and(|d| d < 0));
    let (_, page) = web.get(&chief, "/rectifications").await;
    assert!(page.contains("逾期督办"));
    assert!(!page.contains(&case_b.to_string()));
}

#[tokio::test]
async fn the_board_comes_a_page_at_a_time_in_its_order_with_counts_over_every_page() {
    let web = setup();
    // One major hazard overdue since 2026-11-22, and four general ones: two overdue, two
    // not yet due.
    let (mut store, case) = web.record("insp_a", A, 1);
    for deadline in ["2099-01-03", "2026-11-21", "2099-01-01", "2026-11-25"] {
        let finding = store
            .add_finding(case, &sample::finding(&format!("整改期限 {deadline}")))
            .expect("finding");
        store
            .order_rectification(
                case,
                finding,
                &anjian_core::RectificationOrder {
                    measures: "限期整改".into(),
                    deadline: deadline.parse().expect("day"),
                    responsible: "王安全".into(),
                },
            )
            .expect("order");
    }
    web.upload(&mut store, case, "insp_a");
    let chief = web.sign_in("chief_a").await;
    let json = |body: String| -> Value { serde_json::from_str(&body).expect("json") };
    let deadlines = |board: &Value| -> Vec<String> {
        board["rectifications"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["deadline"].as_str().expect("deadline").to_owned())
            .collect()
    };

    let (_, whole) = web.get(&chief, "/api/v1/rectifications").await;
    let whole = json(whole);
    assert_eq!(
        deadlines(&whole),
        [
            "2026-11-21",
            "2026-11-22",
            "2026-11-25",
            "2099-01-01",
            "2099-01-03"
        ],
        "overdue ones first, each part by deadline: {whole}"
    );
    assert_eq!(
        (whole["total"].as_i64(), whole["overdue"].as_i64()),
        (Some(5), Some(3))
    );
    assert_eq!(whole["listed"], 0);

    let mut paged = Vec::new();
    for offset in [0, 2, 4] {
        let (status, page) = web
            .get(
                &chief,
                &format!("/api/v1/rectifications?limit=2&offset={offset}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = json(page);
        assert_eq!(page["total"], 5, "the counts are over every page: {page}");
        assert_eq!(page["overdue"], 3);
        paged.extend(deadlines(&page));
    }
    assert_eq!(paged, deadlines(&whole), "the pages make up the board");

    let (_, overdue) = web
        .get(
            &chief,
            "/api/v1/rectifications?overdue=true&limit=1&offset=1",
        )
        .await;
    let overdue = json(overdue);
    assert_eq!(deadlines(&overdue), ["2026-11-22"]);
    assert_eq!(
        (overdue["total"].as_i64(), overdue["overdue"].as_i64()),
        (Some(3), Some(3))
    );

    let (_, page) = web.get(&chief, "/rectifications?limit=2&offset=2").await;
    assert!(
        page.contains(r#"<strong id="open-count">5</strong>"#),
        "{page}"
    );
    assert!(page.contains("第 3–4 项，共 5 项"), "{page}");
    assert!(
        page.contains(r#"rel="prev" href="/rectifications?limit=2""#)
            && page.contains(r#"rel="next" href="/rectifications?limit=2&amp;offset=4""#),
        "{page}"
    );
    assert!(page.contains("2026-11-25") && !page.contains("2026-11-21"));
}

#[tokio::test]
async fn a_listed_hazard_is_followed_to_its_delisting_also_after_approval() {
    let web = setup();
    let (mut store, case) = web.record("insp_a", A, 1);
    web.upload(&mut store, case, "insp_a");
    let finding = store.case(case).expect("case").findings[0].id;
    let steps = format!("/api/v1/cases/{case}/findings/{finding}/steps");
    let chief = web.sign_in("chief_a").await;
    let insp = web.sign_in("insp_a").await;
    let listing = json!({"action": "list", "authority": "黄浦区安全生产委员会办公室",
                         "number": "黄安委办督〔2026〕3号", "deadline": "2099-06-30"});
    let (status, body) = web.post_json(&insp, &steps, listing.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("\"rule\":\"decide\""), "{body}");
    let (status, body) = web.post_json(&chief, &steps, listing.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = web.post_json(&chief, &steps, listing).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "listed once: {body}");
    let (_, board) = web.get(&chief, "/api/v1/rectifications").await;
    let board: Value = serde_json::from_str(&board).expect("json");
    let row = &board["rectifications"][0];
    assert_eq!(row["finding_id"], finding.to_string());
    assert_eq!(row["listed"], true);
    assert_eq!(row["listing"]["number"], "黄安委办督〔2026〕3号");
    assert!(row["listing"]["days_left"].as_i64().is_some_and(|d| d > 0));
    let (_, page) = web.get(&chief, "/rectifications").await;
    assert!(page.contains("黄安委办督〔2026〕3号") && page.contains("挂牌督办"));

    // Approval locks the visit's record; the follow-up goes on.
    let (status, body) = web
        .post_json(
            &chief,
            &format!("/api/v1/cases/{case}/review"),
            json!({"action": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (step, expected) in [
        (
            json!({"action": "extend", "deadline": "2099-12-31", "reason": " "}),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({"action": "extend", "deadline": "2099-12-31", "reason": "企业书面申请，设备采购周期长"}),
            StatusCode::OK,
        ),
        (
            json!({"action": "reinspect", "result": "fail", "note": "仍未整改到位"}),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({"action": "reinspect", "result": "fail", "note": "仍未整改到位", "escalation": "立案处罚"}),
            StatusCode::OK,
        ),
        (json!({"action": "delist"}), StatusCode::FORBIDDEN),
        (
            json!({"action": "reinspect", "result": "pass", "note": "报警装置已投用并联锁"}),
            StatusCode::OK,
        ),
        (json!({"action": "deadline"}), StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = web.post_json(&chief, &steps, step.clone()).await;
        assert_eq!(status, expected, "{step}: {body}");
    }
    let page_steps = format!("/cases/{case}/findings/{finding}/steps");
    for action in ["close", "delist"] {
        let status = web
            .post_form(
                &chief,
                &page_steps,
                &[("csrf", &chief.csrf), ("action", action)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{action}");
    }
    let read = web.case_json(case);
    let f = &read.findings[0];
    let actions: Vec<&str> = f.events.iter().map(|e| e.step.action().code()).collect();
    assert_eq!(
        actions,
        [
            "list",
            "extend",
            "reinspect",
            "reinspect",
            "close",
            "delist"
        ]
    );
    assert_eq!(read.state, anjian_core::ReviewState::Approved);
    let (_, board) = web.get(&chief, "/api/v1/rectifications").await;
    assert!(
        !board.contains(&finding.to_string()),
        "delisted and closed: {board}"
    );
    let (_, json) = web.get(&chief, &format!("/api/v1/cases/{case}")).await;
    assert!(
        json.contains("\"action\":\"delist\"") && json.contains("企业书面申请"),
        "{json}"
    );
    let (_, page) = web.get(&chief, &format!("/cases/{case}")).await;
    assert!(page.contains("整改跟踪") && page.contains("摘牌") && page.contains("不合格"));
}

#[tokio::test]
async fn a_step_with_missing_or_malformed_fields_is_refused_never_an_error() {
    let web = setup();
    let (mut store, case) = web.record("insp_a", A, 1);
    web.upload(&mut store, case, "insp_a");
    let finding = store.case(case).expect("case").findings[0].id;
    let steps = format!("/api/v1/cases/{case}/findings/{finding}/steps");
    let chief = web.sign_in("chief_a").await;
    for (step, expected) in [
        (json!({}), None),
        (json!({"action": 5}), None),
        (json!({"action": "bless"}), Some(StatusCode::BAD_REQUEST)),
        (
            json!({"action": "onsite", "measure": "evacuate", "note": "撤离"}),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json!({"action": "extend", "reason": "企业申请"}),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json!({"action": "extend", "deadline": "2099-02-30", "reason": "企业申请"}),
            Some(StatusCode::BAD_REQUEST),
        ),
        (json!({"action": "extend", "deadline": 20990101}), None),
        (
            json!({"action": "reinspect", "note": "已整改"}),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            json!({"action": "reinspect", "result": "pass", "note": "已整改", "deadline": "2099-12-31"}),
            Some(StatusCode::FORBIDDEN),
        ),
        (
            json!({"action": "list", "authority": "区安委办", "number": "3号"}),
            Some(StatusCode::BAD_REQUEST),
        ),
    ] {
        let (status, body) = web.post_json(&chief, &steps, step.clone()).await;
        assert!(status.is_client_error(), "{step}: {status} {body}");
        if let Some(expected) = expected {
            assert_eq!(status, expected, "{step}: {body}");
        }
    }
    for path in [
        format!("/api/v1/cases/{case}/findings/not-a-finding/steps"),
        format!(
            "/api/v1/cases/{case}/findings/{}/steps",
            anjian_core::FindingId::new()
        ),
    ] {
        let (status, body) = web
            .post_json(&chief, &path, json!({"action": "close"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let page_steps = format!("/cases/{case}/findings/{finding}/steps");
    for fields in [
        vec![("csrf", chief.csrf.as_str())],
        vec![("csrf", chief.csrf.as_str()), ("action", "extend")],
        vec![
            ("csrf", chief.csrf.as_str()),
            ("action", "reinspect"),
            ("result", "maybe"),
        ],
    ] {
        let status = web.post_form(&chief, &page_steps, &fields).await;
        assert!(!status.is_server_error(), "{fields:?}: {status}");
    }
    let read = web.case_json(case);
    assert!(read.findings[0].events.is_empty(), "nothing was recorded");
}

#[tokio::test]
async fn the_case_list_finds_an_enterprise_by_name_or_code_and_cases_by_day_and_level() {
    let web = setup();
    let (mut one, first) = web.record("insp_a", A, 1);
    web.upload(&mut one, first, "insp_a");
    let (mut three, third) = web.record("insp_a", A, 3);
    // Each has a major finding; the third a general one too.
    three
        .add_finding(third, &sample::finding("灭火器压力不足"))
        .expect("finding");
    web.upload(&mut three, third, "insp_a");
    let chief = web.sign_in("chief_a").await;
    let ids = |body: String| -> Vec<String> {
        let body: Value = serde_json::from_str(&body).expect("json");
        body["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let query = |filters: &[(&str, &str)]| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(filters);
        format!("/api/v1/cases?{}", query.finish())
    };
    let code = sample::credit_code(1).as_str().to_lowercase();
    // Both visits began on 2026-11-20 at 09:30 in China.
    for (filters, expected) in [
        (vec![("enterprise", "化工有限公司3")], vec![third]),
        (vec![("enterprise", code.as_str())], vec![first]),
        (vec![("enterprise", "五金")], vec![]),
        (
            vec![("from", "2026-11-20"), ("to", "2026-11-20")],
            vec![first, third],
        ),
        (vec![("to", "2026-11-19")], vec![]),
        (vec![("from", "2026-11-21")], vec![]),
        (vec![("level", "major")], vec![first, third]),
        (vec![("level", "general")], vec![third]),
        (vec![("level", "trivial")], vec![]),
    ] {
        let (status, body) = web.get(&chief, &query(&filters)).await;
        assert_eq!(status, StatusCode::OK, "{filters:?}: {body}");
        let mut found = ids(body);
        found.sort();
        let mut expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
        expected.sort();
        assert_eq!(found, expected, "{filters:?}");
    }
}

#[tokio::test]
async fn pages_and_the_api_show_districts_by_name_and_filters_take_codes() {
    let web = setup();
    // A case of 黄浦区 with an open rectification, one shared with 徐汇区, and one of a
    // district the server has no name for.
    let (mut store, first) = web.record("insp_a", A, 1);
    web.upload(&mut store, first, "insp_a");
    let mut new = sample::new_case(&sample::enterprise(1));
    new.visible_to.push(B.parse().expect("district"));
    let shared = store.open_case(&new).expect("shared case");
    web.upload(&mut store, shared, "insp_a");
    let (mut far, unnamed) = web.record("insp_x", "650102", 3);
    web.upload(&mut far, unnamed, "admin");
    let admin = web.sign_in("admin").await;

    let (_, list) = web.get(&admin, "/cases").await;
    assert!(list.contains(r#"<td title="310101">黄浦区</td>"#), "{list}");
    assert!(list.contains(r#"<td title="650102">650102</td>"#), "{list}");
    assert!(
        list.contains("管理员 · 黄浦区"),
        "the header names the user's district"
    );
    assert!(
        list.contains(r#"<option value="310115">浦东新区</option>"#),
        "the district filter offers names: {list}"
    );
    let (_, filtered) = web.get(&admin, "/cases?district=650102").await;
    assert!(filtered.contains(&unnamed.to_string()) && !filtered.contains(&shared.to_string()));

    let (_, page) = web.get(&admin, &format!("/cases/{shared}")).await;
    assert!(
        page.contains("黄浦区（310101），共享给 徐汇区（310104）"),
        "{page}"
    );
    assert!(
        page.contains("（应急管理，黄浦区）"),
        "the team's districts: {page}"
    );

    let (_, api) = web.get(&admin, "/api/v1/cases").await;
    let api: Value = serde_json::from_str(&api).expect("json");
    let names: Vec<(&str, &Value)> = api["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| (c["district"].as_str().expect("code"), &c["district_name"]))
        .collect();
    assert!(names.contains(&(A, &json!("黄浦区"))), "{names:?}");
    assert!(names.contains(&("650102", &Value::Null)), "{names:?}");
    let (_, detail) = web.get(&admin, &format!("/api/v1/cases/{shared}")).await;
    let detail: Value = serde_json::from_str(&detail).expect("json");
    assert_eq!(
        (&detail["district"], &detail["district_name"]),
        (&json!(A), &json!("黄浦区"))
    );
    assert_eq!(detail["enterprise"]["district_name"], "黄浦区");
    assert_eq!(detail["team"][0]["district_name"], "黄浦区");

    let (_, board) = web.get(&admin, "/rectifications").await;
    assert!(
        board.contains(r#"<td title="310101">黄浦区</td>"#),
        "{board}"
    );
    assert!(
        board.contains(r#"<td title="650102">650102</td>"#),
        "{board}"
    );
    let (_, rows) = web
        .get(&admin, "/api/v1/rectifications?district=310101")
        .await;
    let rows: Value = serde_json::from_str(&rows).expect("json");
    let rows = rows["rectifications"].as_array().expect("rows");
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r["district"] == A && r["district_name"] == "黄浦区"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_hazard_is_closed_only_after_re_inspection_with_evidence() {
    let web = setup();
    let chief = web.sign_in("chief_a").await;
    // (The helper writes to storage directly, past the server's in-memory documents, so
    // each case is uploaded in full before the server first loads it.)
    let (mut early, early_case) = web.record("insp_a", A, 1);
    web.upload(&mut early, early_case, "insp_a");
    let early_finding = early.case(early_case).expect("case").findings[0].id;
    let (status, body) = web
        .post_json(
            &chief,
            &format!("/api/v1/cases/{early_case}/findings/{early_finding}/close"),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "not re-inspected yet: {body}"
    );
    assert!(body.contains("\"rule\":\"rectification_loop\""), "{body}");
    let (_, page) = web.get(&chief, &format!("/cases/{early_case}")).await;
    assert!(
        !page.contains("确认销号"),
        "no close button before re-inspection"
    );

    let (mut store, case) = web.record("insp_a", A, 2);
    let finding = store.case(case).expect("case").findings[0].id;
    store
        .follow_up(
            case,
            finding,
            &HazardStep::pass("报警装置已恢复并联锁，复查合格"),
        )
        .expect("re-inspect");
    web.upload(&mut store, case, "insp_a");
    let (_, page) = web.get(&chief, &format!("/cases/{case}")).await;
    assert!(page.contains("确认销号") && page.contains("复查合格"));
    let status = web
        .post_form(
            &chief,
            &format!("/cases/{case}/findings/{finding}/close"),
            &[("csrf", &chief.csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let read = web.case_json(case);
    let rect = read.findings[0]
        .rectification
        .as_ref()
        .expect("rectification");
    assert_eq!(rect.state, anjian_core::RectificationState::Closed);
    let (_, body) = web.get(&chief, "/api/v1/rectifications").await;
    assert!(
        !body.contains(&finding.to_string()),
        "closed hazards leave the board"
    );
    assert!(body.contains(&early_finding.to_string()));
}

#[tokio::test]
async fn photos_show_as_thumbnails_and_in_full_with_their_hash() {
    let web = setup();
    let (mut store, case) = web.record("insp_a", A, 1);
    let finding = store.case(case).expect("case").findings[0].id;
    let photo = store.ingest_photo(&sample::jpeg(800, 600)).expect("photo");
    store
        .attach_photo(
            case,
            &anjian_core::PhotoTarget::Finding(finding),
            &photo.sha256,
            "报警器电源已断开",
        )
        .expect("attach");
    web.upload(&mut store, case, "insp_a");
    // The inspector's device uploads both blobs with its token.
    let token = device_token(&web.app, "insp_a", &store.device_id()).await;
    for sha in [&photo.sha256, &photo.thumbnail_sha256] {
        let (status, _, body) = web
            .call(
                Request::put(format!("/api/v1/blobs/{sha}"))
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::from(store.blob(sha).expect("blob")))
                    .expect("request"),
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
    }

    let chief = web.sign_in("chief_a").await;
    let (_, page) = web.get(&chief, &format!("/cases/{case}")).await;
    assert!(page.contains(&format!("/api/v1/blobs/{}", photo.thumbnail_sha256)));
    let (status, headers, bytes) = web
        .call(
            Request::get(format!("/api/v1/blobs/{}", photo.thumbnail_sha256))
                .header(header::COOKIE, &chief.cookie)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the page's image loads with the session"
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "image/jpeg")
    );
    assert!(!bytes.is_empty());
    let (status, page) = web
        .get(&chief, &format!("/cases/{case}/photos/{}", photo.sha256))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&photo.sha256) && page.contains("报警器电源已断开"));
    assert!(page.contains("800 × 600"));
    // Another inspector of the district, not on the case, sees it as their phone does
    // (it syncs the district's cases and their photos); another district's chief gets
    // nothing.
    for (user, expected) in [
        ("insp_a2", StatusCode::OK),
        ("chief_b", StatusCode::NOT_FOUND),
    ] {
        let other = web.sign_in(user).await;
        let (status, _) = web
            .get(&other, &format!("/cases/{case}/photos/{}", photo.sha256))
            .await;
        assert_eq!(status, expected, "{user}");
    }
}

#[tokio::test]
async fn sign_in_goes_only_to_pages_of_this_site_and_says_only_fixed_things() {
    let web = setup();
    let (_, headers, html) = web
        .call(Request::get("/login").body(Body::empty()).expect("request"))
        .await;
    let login_cookie = set_cookie(&headers, "anjian_login").expect("login cookie");
    let csrf = hidden(&html, "csrf").expect("csrf");
    for (next, expected) in [
        (
            "/rectifications?overdue=true",
            "/rectifications?overdue=true",
        ),
        ("//evil.example/x", "/cases"),
        ("/\t/evil.example", "/cases"),
        ("/\n/evil.example", "/cases"),
        ("/\\evil.example", "/cases"),
        ("https://evil.example/", "/cases"),
    ] {
        let (status, headers, _) = web
            .call(
                Request::post("/login")
                    .header(header::COOKIE, format!("anjian_login={login_cookie}"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(form(&[
                        ("username", "chief_a"),
                        ("password", PASSWORD),
                        ("csrf", &csrf),
                        ("next", next),
                    ])))
                    .expect("request"),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = headers
            .iter()
            .find(|(k, _)| k == "location")
            .expect("location");
        assert_eq!(location.1, expected, "next={next:?}");
    }
    // The login page shows fixed messages only, never text from the link.
    let (_, _, page) = web
        .call(
            Request::get(
                "/login?failed=%E6%82%A8%E7%9A%84%E8%B4%A6%E5%8F%B7%E5%B7%B2%E5%86%BB%E7%BB%93",
            )
            .body(Body::empty())
            .expect("request"),
        )
        .await;
    assert!(!page.contains("您的账号已冻结") && !page.contains("role=\"alert\""));
    let (_, _, page) = web
        .call(
            Request::get("/login?failed=credentials")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert!(page.contains("用户名或密码错误"));
}

#[tokio::test]
async fn resetting_a_password_ends_the_users_browser_sessions() {
    let web = setup();
    let chief = web.sign_in("chief_a").await;
    assert_eq!(web.get(&chief, "/cases").await.0, StatusCode::OK);
    web.state
        .storage
        .reset_password("chief_a", "another good password")
        .expect("reset");
    let (status, _, _) = web
        .call(
            Request::get("/cases")
                .header(header::COOKIE, &chief.cookie)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "sent back to the login form");
}

#[tokio::test]
async fn a_district_a_case_is_shared_with_reads_and_comments_but_does_not_decide() {
    let web = setup();
    // A case of district A shared with district B, as a cross-district inspection is.
    let (mut store, _) = web.record("insp_a", A, 1);
    let mut new = sample::new_case(&sample::enterprise(1));
    new.visible_to.push(B.parse().expect("district"));
    let shared = store.open_case(&new).expect("shared case");
    web.upload(&mut store, shared, "insp_a");
    let chief_b = web.sign_in("chief_b").await;
    assert_eq!(
        web.get(&chief_b, &format!("/cases/{shared}")).await.0,
        StatusCode::OK
    );
    let (_, page) = web.get(&chief_b, &format!("/cases/{shared}")).await;
    assert!(!page.contains("审核通过</button>") && page.contains("添加批注"));
    let uri = format!("/api/v1/cases/{shared}/review");
    let (status, _) = web
        .post_json(&chief_b, &uri, json!({"action": "approve"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the owning district decides");
    let (status, body) = web
        .post_json(
            &chief_b,
            &uri,
            json!({"action": "comment", "text": "徐汇区已阅"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let chief_a = web.sign_in("chief_a").await;
    let (status, body) = web
        .post_json(&chief_a, &uri, json!({"action": "approve"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_issued_decision_is_on_the_case_page_with_its_pdf_and_on_the_board() {
    use anjian_core::{SignatureInput, SignerRole, TeamMember, WritKind};
    let web = setup();
    let mut store =
        Store::open(web.dir.path().join("writs.db"), identity("insp_a", A)).expect("store");
    let mut enterprise = sample::enterprise(2);
    enterprise.district = A.parse().expect("district");
    store.register_enterprise(&enterprise).expect("enterprise");
    let case = store
        .open_case(&anjian_core::NewCase {
            team: vec![TeamMember::from(&identity("insp_a2", A))],
            ..sample::new_case(&enterprise)
        })
        .expect("case");
    let image = store
        .ingest_photo(&sample::jpeg(40, 20))
        .expect("signature image")
        .sha256;
    // Production suspended on site, and the decision drawn up from it.
    let finding = store
        .add_finding(case, &sample::finding("涉爆粉尘除尘系统未设置泄爆装置"))
        .expect("finding");
    store
        .follow_up(
            case,
            finding,
            &HazardStep::Onsite {
                measure: anjian_core::OnsiteMeasure::Suspend,
                note: "除尘系统停止使用".into(),
            },
        )
        .expect("measure taken");
    let writ = store
        .create_writ(case, WritKind::OnsiteDecision, None)
        .expect("drawn up");
    let number = store.seal_writ(case, writ).expect("sealed").number;
    for (user, certificate_no) in [("insp_a", "31010100001"), ("insp_a2", "31010100002")] {
        let signature = SignatureInput {
            role: SignerRole::Inspector,
            user: user.into(),
            name: format!("{user}的姓名"),
            certificate_no: certificate_no.into(),
            image: image.clone(),
        };
        store.sign_writ(case, writ, &signature).expect("signed");
    }
    store
        .refuse_writ(case, writ, "拒绝签字", "见证人 王某", None)
        .expect("refusal recorded");
    store.issue_writ(case, writ).expect("issued");
    let font_path = std::env::var("ANJIAN_CJK_FONT")
        .unwrap_or_else(|_| "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc".into());
    let font = anjian_core::pdf::PdfFont::load(std::fs::read(&font_path).expect("font"), 2)
        .expect("a font");
    let (sha256, pdf) = store.print_writ(case, writ, &font).expect("printed");
    web.upload(&mut store, case, "insp_a");
    let token = device_token(&web.app, "insp_a", &store.device_id()).await;
    // The printed PDF and the signatures' image: blobs the case names, which upload.
    for (blob, bytes) in [
        (&sha256, pdf.clone()),
        (&image, store.blob(&image).expect("image")),
    ] {
        let (status, _, body) = web
            .call(
                Request::put(format!("/api/v1/blobs/{blob}"))
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::from(bytes))
                    .expect("request"),
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
    }

    let chief = web.sign_in("chief_a").await;
    let (_, page) = web.get(&chief, &format!("/cases/{case}")).await;
    assert!(
        page.contains("执法文书 (1)") && page.contains(&number),
        "{page}"
    );
    assert!(page.contains("拒签：拒绝签字"));
    assert!(page.contains(&format!("href=\"/api/v1/blobs/{sha256}\"")));
    let (status, headers, _) = web
        .call(
            Request::get(format!("/api/v1/blobs/{sha256}"))
                .header(header::COOKIE, &chief.cookie)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the page's link loads with the session"
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/pdf")
    );
    // The suspension is on the rectification board at once, for the district only.
    let (_, board) = web.get(&chief, "/rectifications").await;
    assert!(
        board.contains("现场处理措施决定 (1)") && board.contains(&number),
        "{board}"
    );
    let other = web.sign_in("chief_b").await;
    let (_, board) = web.get(&other, "/rectifications").await;
    assert!(!board.contains(&number));
}

/// The actions of the pages and the API take their account's time on the apply threads as
/// its sync does: past it (at a minute's allowance of 1 ms, the first action), the
/// account is told to wait (`429`, `Retry-After`), and another account acts all the same.
#[tokio::test]
async fn actions_take_their_account_s_apply_time_and_wait_past_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = anjian_sync_server::config::Limits {
        apply_ms_per_user_per_minute: 1,
        ..Default::default()
    };
    let (app, state) = server_with(
        dir.path(),
        &[
            ("chief_a", Role::Supervisor, A),
            ("chief_c", Role::Supervisor, A),
            ("admin", Role::Admin, A),
            ("insp_a", Role::Inspector, A),
        ],
        limits,
    );
    let (mut store, case) = record_case(dir.path(), "insp_a", A, 1);
    upload(&state, &mut store, case, "insp_a");
    let comment = |token: &str| {
        Request::post(format!("/api/v1/cases/{case}/review"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"action": "comment", "text": "请补充照片"}).to_string(),
            ))
            .expect("request")
    };
    let chief = device_token(&app, "chief_a", "00000000000000000000000000000a01").await;
    let (status, _, body) = call(&app, comment(&chief)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, headers, body) = call(&app, comment(&chief)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "retry-after" && v.parse::<u64>().is_ok_and(|s| s >= 1)),
        "{headers:?}"
    );
    // On the pages too: a page that says so, and when to try again.
    let session = sign_in(&app, "chief_a").await;
    let (status, headers, html) = call(
        &app,
        Request::post(format!("/cases/{case}/review"))
            .header(header::COOKIE, &session.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form(&[
                ("csrf", &session.csrf),
                ("action", "comment"),
                ("text", "请补充照片"),
            ])))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{html}");
    assert!(html.contains("操作过于频繁"), "{html}");
    assert!(
        headers.iter().any(|(k, _)| k == "retry-after"),
        "{headers:?}"
    );

    let admin = device_token(&app, "admin", "00000000000000000000000000000a02").await;
    let (status, _, body) = call(&app, comment(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A burst at once: no more go through than the account's turns, each judged when its
    // turn comes.
    let burst = device_token(&app, "chief_c", "00000000000000000000000000000a04").await;
    let answers = futures_util::future::join_all((0..8).map(|_| call(&app, comment(&burst)))).await;
    let through = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::OK)
        .count();
    let turns = state.settings.limits.apply_threads.saturating_sub(1).max(1);
    assert!(
        (1..=turns).contains(&through),
        "{through} of 8 went through"
    );
    assert!(
        answers
            .iter()
            .all(|(status, _, _)| [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS].contains(status))
    );
}

/// A link anyone may write names what was not found: the page says so in words of its
/// own, so that a link cannot make the official site show a message of its choosing.
#[tokio::test]
async fn a_page_not_found_shows_none_of_the_link_s_words() {
    let web = setup();
    let chief = web.sign_in("chief_a").await;
    let bait = "系统升级请访问evil.example重新登录";
    for uri in [
        format!(
            "/cases/{}",
            anjian_sync_server::web::session::encode_query(bait)
        ),
        format!("/cases/{}", anjian_core::CaseId::new()),
    ] {
        let (status, body) = web.get(&chief, &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(body.contains("您要查看的内容不存在"), "{body}");
        assert!(!body.contains("evil.example"), "{body}");
    }
}
