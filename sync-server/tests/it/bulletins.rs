//! Bulletins (执法通报): exact counts over real case documents, limited to the viewer's
//! jurisdiction; inspectors refused; bad periods refused; the page's charts; and XLSX and
//! CSV exports that hold exactly the numbers of the JSON.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use anjian_core::HazardStep;
use anjian_core::Role;
use anjian_core::{
    CaseId, CaseType, CreditCode, DistrictCode, Enterprise, FindingId, Identity, Industry, Level,
    NewCase, NewFinding, RectificationOrder, RectificationState, RiskGrade, Store, Violation,
    ViolationKind,
};
use anjian_sync_server::AppState;
use axum::body::Body;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE};
use axum::http::{Request, Response, StatusCode};
use calamine::{Data, Reader, Xlsx};
use chrono::{DateTime, NaiveDate};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{self, PASSWORD};

const A: &str = "310101";
const B: &str = "310104";
const OCTOBER: &str = "from=2026-10-01&to=2026-10-31";

/// The server with a supervisor in each district, an inspector and an admin.
fn server(dir: &Path) -> (axum::Router, Arc<AppState>) {
    support::server(
        dir,
        &[
            ("sup_a", Role::Supervisor, A),
            ("sup_b", Role::Supervisor, B),
            ("insp_a", Role::Inspector, A),
            ("admin", Role::Admin, A),
        ],
    )
}

fn district(code: &str) -> DistrictCode {
    code.parse().expect("district")
}

fn credit_code(seed: u32) -> CreditCode {
    anjian_core::sample::credit_code(seed)
}

fn enterprise(seed: u32, name: &str, district_code: &str, industry: Industry) -> Enterprise {
    Enterprise {
        credit_code: credit_code(seed),
        name: name.to_owned(),
        district: district(district_code),
        industry,
        risk_grade: RiskGrade::General,
    }
}

/// An inspector's device in `district_code`, with every enterprise registered.
fn device(dir: &Path, user: &str, district_code: &str) -> Store {
    device_of(dir, user, district_code, anjian_core::Role::Inspector)
}

/// A device of `role` in `district_code`, with every enterprise registered.
fn device_of(dir: &Path, user: &str, district_code: &str, role: anjian_core::Role) -> Store {
    let mut store = Store::open(
        dir.join(format!("{user}.db")),
        Identity {
            user_id: user.to_owned(),
            name: user.to_owned(),
            department: "应急管理".to_owned(),
            district: district(district_code),
            role,
        },
    )
    .expect("store");
    // Certified, as a sign-in would: devices hand each other case files.
    anjian_core::sample::certify(&mut [&mut store]).expect("certified");
    for e in [
        enterprise(1, "滨江化工有限公司", A, Industry::HazardousChemicals),
        enterprise(2, "申城建工项目部", A, Industry::Construction),
        enterprise(3, "东方燃气有限公司", B, Industry::CityGas),
    ] {
        store.register_enterprise(&e).expect("enterprise");
    }
    store
}

fn open(
    store: &mut Store,
    seed: u32,
    case_type: CaseType,
    opened_at: &str,
    visible_to: &[&str],
) -> CaseId {
    store
        .open_case(&NewCase {
            enterprise: credit_code(seed),
            case_type,
            district: None,
            visible_to: visible_to.iter().map(|d| district(d)).collect(),
            team: Vec::new(),
            opened_at: DateTime::parse_from_rfc3339(opened_at).expect("time"),
            location: None,
            amends: None,
        })
        .expect("case")
}

fn find(
    store: &mut Store,
    case: CaseId,
    level: Level,
    violation: Option<(ViolationKind, &str)>,
) -> FindingId {
    store
        .add_finding(
            case,
            &NewFinding {
                description: "隐患".to_owned(),
                level: Some(level),
                category: "安全管理".to_owned(),
                place: "现场".to_owned(),
                violation: violation.map(|(kind, post)| Violation {
                    kind,
                    post: post.to_owned(),
                    person: "某人".to_owned(),
                }),
                ..NewFinding::default()
            },
        )
        .expect("finding")
}

fn order(store: &mut Store, case: CaseId, finding: FindingId, deadline: &str) {
    store
        .order_rectification(
            case,
            finding,
            &RectificationOrder {
                measures: "立即整改".to_owned(),
                deadline: deadline.parse::<NaiveDate>().expect("deadline"),
                responsible: "安全总监".to_owned(),
            },
        )
        .expect("order");
}

fn upload(state: &AppState, store: &mut Store, case: CaseId) {
    support::upload(state, store, case, "insp_a");
}

/// Seeds cases around October 2026 in districts A and B (see the expectations in
/// `supervisors_get_exact_counts_of_their_jurisdiction`).
fn seed(dir: &Path, state: &AppState) {
    let mut a = device(dir, "insp_a", A);
    let mut b = device(dir, "insp_b", B);
    // District A, enterprise 1 (hazardous chemicals): two cases on 5 October.
    let c1 = open(
        &mut a,
        1,
        CaseType::Routine,
        "2026-10-05T09:00:00+08:00",
        &[],
    );
    let f1 = find(&mut a, c1, Level::Major, None);
    order(&mut a, c1, f1, "2026-10-10"); // long past: overdue
    let f2 = find(
        &mut a,
        c1,
        Level::General,
        Some((ViolationKind::IllegalOperation, "司机")),
    );
    order(&mut a, c1, f2, "2099-12-31"); // open, not overdue
    find(
        &mut a,
        c1,
        Level::General,
        Some((ViolationKind::LabourDiscipline, "司机")),
    );
    let c2 = open(
        &mut a,
        1,
        CaseType::SpecialCampaign,
        "2026-10-05T23:30:00+08:00",
        &[],
    );
    let f4 = find(&mut a, c2, Level::Major, None);
    order(&mut a, c2, f4, "2099-12-31");
    a.follow_up(c2, f4, &HazardStep::pass("已整改到位"))
        .expect("reinspect");
    // A major hazard is closed (销号) by the district's supervisor.
    let mut chief = device_of(dir, "chief_a", A, anjian_core::Role::Supervisor);
    chief
        .merge_case(&a.export_case(c2).expect("export"))
        .expect("merge");
    chief
        .follow_up(c2, f4, &HazardStep::close())
        .expect("close");
    a.merge_case(&chief.export_case(c2).expect("export"))
        .expect("merge");
    let f5 = find(
        &mut a,
        c2,
        Level::General,
        Some((ViolationKind::IllegalCommand, "班组长")),
    );
    order(&mut a, c2, f5, "2026-10-08");
    a.follow_up(c2, f5, &HazardStep::pass("已复查"))
        .expect("reinspect"); // past the deadline, but re-inspected
    // District A, enterprise 2 (construction): the last minute of October, and the last
    // day of September and the first minute of November, which are outside it (the day
    // is the day in China: 00:10 on 1 November is still October in UTC).
    let c3 = open(
        &mut a,
        2,
        CaseType::Routine,
        "2026-10-31T23:50:00+08:00",
        &[],
    );
    find(&mut a, c3, Level::General, None);
    let c4 = open(
        &mut a,
        2,
        CaseType::Routine,
        "2026-09-30T10:00:00+08:00",
        &[],
    );
    find(&mut a, c4, Level::Major, None);
    let c5 = open(
        &mut a,
        1,
        CaseType::Routine,
        "2026-11-01T00:10:00+08:00",
        &[],
    );
    find(&mut a, c5, Level::Major, None);
    // District B, enterprise 3 (city gas): a joint case B alone sees, and a cross-district
    // case shared with A.
    let c6 = open(&mut b, 3, CaseType::Joint, "2026-10-12T14:00:00+08:00", &[]);
    let f8 = find(&mut b, c6, Level::Major, None);
    // Marked overdue by the inspector before its deadline: overdue by its state alone.
    order(&mut b, c6, f8, "2099-12-31");
    b.move_rectification(c6, f8, RectificationState::Overdue)
        .expect("overdue");
    find(
        &mut b,
        c6,
        Level::General,
        Some((ViolationKind::IllegalOperation, "焊工")),
    );
    let c7 = open(
        &mut b,
        3,
        CaseType::CrossDistrict,
        "2026-10-15T10:00:00+08:00",
        &[A],
    );
    find(&mut b, c7, Level::General, None);
    for case in [c1, c2, c3, c4, c5] {
        upload(state, &mut a, case);
    }
    for case in [c6, c7] {
        upload(state, &mut b, case);
    }
}

async fn send(app: &axum::Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.expect("response")
}

async fn bytes(response: Response<Body>) -> Vec<u8> {
    axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body")
        .to_vec()
}

/// A bearer token for `username` (from the apps' login).
async fn token(app: &axum::Router, username: &str, actor: &str) -> String {
    let request = Request::post("/api/v1/login")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": username, "password": PASSWORD, "device_name": "测试", "actor_id": actor})
                .to_string(),
        ))
        .expect("request");
    let body: Value = serde_json::from_slice(&bytes(send(app, request).await).await).expect("json");
    body["token"].as_str().expect("token").to_owned()
}

/// Signs in to the pages as `username`; returns the `Cookie` header of the session.
async fn session(app: &axum::Router, username: &str) -> String {
    support::sign_in(app, username).await.cookie
}

async fn get(app: &axum::Router, uri: &str, auth: &str) -> Response<Body> {
    let request = if auth.contains('=') {
        Request::get(uri).header(COOKIE, auth)
    } else {
        Request::get(uri).header("authorization", format!("Bearer {auth}"))
    };
    send(app, request.body(Body::empty()).expect("request")).await
}

async fn bulletin(app: &axum::Router, query: &str, auth: &str) -> Value {
    let response = get(app, &format!("/api/v1/bulletins?{query}"), auth).await;
    assert_eq!(response.status(), StatusCode::OK);
    serde_json::from_slice(&bytes(response).await).expect("json")
}

#[tokio::test]
async fn supervisors_get_exact_counts_of_their_jurisdiction() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(dir.path());
    seed(dir.path(), &state);
    let sup_a = token(&app, "sup_a", "00000000000000000000000000000a01").await;
    let b = bulletin(&app, OCTOBER, &sup_a).await;

    // A sees its own cases 1, 2, 3 and B's case 7 shared with it; not B's case 6, nor
    // cases 4 and 5 outside the period.
    assert_eq!(
        b["period"],
        json!({"from": "2026-10-01", "to": "2026-10-31"})
    );
    assert_eq!(b["granularity"], "day");
    assert_eq!(
        b["totals"],
        json!({"cases": 4, "findings": 7, "major_findings": 2, "violations": 3,
               "rectifications_open": 3, "rectifications_closed": 1, "rectifications_overdue": 1})
    );
    assert_eq!(
        b["by_district"],
        json!([
            {"code": A, "label": "黄浦区", "cases": 3, "findings": 6, "major_findings": 2},
            {"code": B, "label": "徐汇区", "cases": 1, "findings": 1, "major_findings": 0},
        ])
    );
    assert_eq!(
        b["by_industry"],
        json!([
            {"code": "hazardous_chemicals", "label": "危险化学品", "cases": 2, "findings": 5, "major_findings": 2},
            {"code": "city_gas", "label": "城镇燃气", "cases": 1, "findings": 1, "major_findings": 0},
            {"code": "construction", "label": "建筑施工", "cases": 1, "findings": 1, "major_findings": 0},
        ])
    );
    assert_eq!(
        b["by_case_type"],
        json!([
            {"code": "routine", "label": "日常检查", "cases": 2, "findings": 4, "major_findings": 1},
            {"code": "special_campaign", "label": "专项检查", "cases": 1, "findings": 2, "major_findings": 1},
            {"code": "cross_district", "label": "异地交叉执法", "cases": 1, "findings": 1, "major_findings": 0},
        ])
    );
    assert_eq!(
        b["findings_by_level"],
        json!([
            {"code": "general", "label": "一般隐患", "count": 5},
            {"code": "major", "label": "重大隐患", "count": 2},
        ])
    );
    assert_eq!(
        b["violations_by_kind"],
        json!([
            {"code": "illegal_command", "label": "违章指挥", "count": 1},
            {"code": "illegal_operation", "label": "违章作业", "count": 1},
            {"code": "labour_discipline", "label": "违反劳动纪律", "count": 1},
        ])
    );
    assert_eq!(
        b["violations_by_post"],
        json!([
            {"post": "司机", "illegal_command": 0, "illegal_operation": 1, "labour_discipline": 1, "total": 2},
            {"post": "班组长", "illegal_command": 1, "illegal_operation": 0, "labour_discipline": 0, "total": 1},
        ])
    );
    let trend = b["trend"].as_array().expect("trend");
    assert_eq!(trend.len(), 31, "every day, zeros included");
    let busy: Vec<(&str, i64, i64, i64)> = trend
        .iter()
        .filter(|r| r["cases"] != 0)
        .map(|r| {
            (
                r["label"].as_str().expect("label"),
                r["cases"].as_i64().expect("cases"),
                r["findings"].as_i64().expect("findings"),
                r["major_findings"].as_i64().expect("major"),
            )
        })
        .collect();
    assert_eq!(
        busy,
        [
            ("2026-10-05", 2, 5, 2),
            ("2026-10-15", 1, 1, 0),
            ("2026-10-31", 1, 1, 0)
        ]
    );
    let top: Vec<(&str, i64, i64, i64)> = b["top_enterprises"]
        .as_array()
        .expect("top")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().expect("name"),
                r["cases"].as_i64().expect("cases"),
                r["findings"].as_i64().expect("findings"),
                r["major_findings"].as_i64().expect("major"),
            )
        })
        .collect();
    // Ties are broken by credit code: enterprise 2 before enterprise 3.
    assert_eq!(
        top,
        [
            ("滨江化工有限公司", 2, 5, 2),
            ("申城建工项目部", 1, 1, 0),
            ("东方燃气有限公司", 1, 1, 0)
        ]
    );
    assert_eq!(
        b["top_enterprises"][0]["credit_code"],
        credit_code(1).as_str()
    );
    assert_eq!(b["top_enterprises"][0]["industry_label"], "危险化学品");
    // Districts by code, with their names beside them.
    assert_eq!(b["top_enterprises"][0]["district"], A);
    assert_eq!(b["top_enterprises"][0]["district_name"], "黄浦区");
    let major = b["top_major_enterprises"].as_array().expect("major");
    assert_eq!(major.len(), 1);
    assert_eq!(major[0]["credit_code"], credit_code(1).as_str());

    // B sees its two cases only: none of A's numbers.
    let sup_b = token(&app, "sup_b", "00000000000000000000000000000b01").await;
    let b = bulletin(&app, OCTOBER, &sup_b).await;
    assert_eq!(
        b["totals"],
        json!({"cases": 2, "findings": 3, "major_findings": 1, "violations": 1,
               "rectifications_open": 1, "rectifications_closed": 0, "rectifications_overdue": 1})
    );
    assert_eq!(
        b["by_district"],
        json!([{"code": B, "label": "徐汇区", "cases": 2, "findings": 3, "major_findings": 1}])
    );
    assert_eq!(b["violations_by_post"][0]["post"], "焊工");
    assert_eq!(b["violations_by_post"].as_array().map(Vec::len), Some(1));

    // An admin sees every district.
    let admin = token(&app, "admin", "00000000000000000000000000000c01").await;
    let b = bulletin(&app, OCTOBER, &admin).await;
    assert_eq!(
        (
            b["totals"]["cases"].as_i64(),
            b["totals"]["findings"].as_i64()
        ),
        (Some(5), Some(9))
    );

    // A longer period trends by ISO week and takes in September's and November's cases.
    let b = bulletin(&app, "from=2026-09-01&to=2026-11-30", &admin).await;
    assert_eq!(b["granularity"], "week");
    assert_eq!(b["totals"]["cases"], 7);
    assert_eq!(b["trend"][0]["label"], "2026-W36");
    let weeks = b["trend"].as_array().expect("trend");
    let cases: i64 = weeks
        .iter()
        .map(|w| w["cases"].as_i64().expect("cases"))
        .sum();
    assert_eq!(cases, 7);
}

#[tokio::test]
async fn inspectors_and_strangers_are_refused_and_bad_periods_are_explained() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, _state) = server(dir.path());
    let insp = token(&app, "insp_a", "00000000000000000000000000000d01").await;
    for uri in [
        "/api/v1/bulletins",
        "/api/v1/bulletins.xlsx",
        "/api/v1/bulletins.csv",
    ] {
        assert_eq!(
            get(&app, uri, &insp).await.status(),
            StatusCode::FORBIDDEN,
            "{uri}"
        );
        let anonymous = send(
            &app,
            Request::get(uri).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
    let page = session(&app, "insp_a").await;
    let response = get(&app, "/bulletins", &page).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = String::from_utf8(bytes(response).await).expect("utf-8");
    assert!(html.contains("无权操作"), "{html}");

    let sup = token(&app, "sup_a", "00000000000000000000000000000a02").await;
    for (query, says) in [
        ("from=2026-10-31&to=2026-10-01", "晚于"),
        ("from=2020-01-01&to=2026-01-01", "最长"),
        ("from=2026-02-30", "YYYY-MM-DD"),
        ("to=yesterday", "YYYY-MM-DD"),
    ] {
        for path in ["/api/v1/bulletins", "/api/v1/bulletins.csv"] {
            let response = get(&app, &format!("{path}?{query}"), &sup).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}?{query}");
            let body: Value = serde_json::from_slice(&bytes(response).await).expect("json");
            assert_eq!(body["error"], "bad_request");
            assert!(
                body["message"].as_str().is_some_and(|m| m.contains(says)),
                "{body}"
            );
        }
    }
    let page = session(&app, "sup_a").await;
    let response = get(&app, "/bulletins?from=2026-10-31&to=2026-10-01", &page).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Without a period: the last 30 days.
    let b = bulletin(&app, "", &sup).await;
    let from: NaiveDate = b["period"]["from"]
        .as_str()
        .expect("from")
        .parse()
        .expect("date");
    let to: NaiveDate = b["period"]["to"]
        .as_str()
        .expect("to")
        .parse()
        .expect("date");
    assert_eq!(
        ((to - from).num_days(), b["computed_on"].as_str()),
        (29, b["period"]["to"].as_str())
    );
}

/// A spreadsheet cell as text (counts are whole numbers).
fn cell(data: &Data) -> String {
    match data {
        Data::Float(f) => format!("{f}"),
        Data::Int(i) => i.to_string(),
        Data::String(s) => s.clone(),
        other => panic!("unexpected cell {other:?}"),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What each sheet (and CSV section) must hold, read from the JSON independently of the
/// exporter: (sheet, section, rows without the header).
fn expected(b: &Value) -> Vec<(&'static str, &'static str, Vec<Vec<String>>)> {
    let rows = |key: &str, fields: &[&str]| -> Vec<Vec<String>> {
        b[key]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| fields.iter().map(|f| text(&r[*f])).collect())
            .collect()
    };
    let ranked = |key: &str| -> Vec<Vec<String>> {
        let fields = [
            "credit_code",
            "name",
            "district",
            "district_name",
            "industry",
            "industry_label",
            "cases",
            "findings",
            "major_findings",
        ];
        rows(key, &fields)
            .into_iter()
            .enumerate()
            .map(|(i, r)| std::iter::once((i + 1).to_string()).chain(r).collect())
            .collect()
    };
    let group = ["code", "label", "cases", "findings", "major_findings"];
    let mut summary: Vec<Vec<String>> = vec![
        vec![
            "period_from".into(),
            "开始日期".into(),
            text(&b["period"]["from"]),
        ],
        vec![
            "period_to".into(),
            "结束日期".into(),
            text(&b["period"]["to"]),
        ],
        vec![
            "computed_on".into(),
            "统计日期".into(),
            text(&b["computed_on"]),
        ],
    ];
    for (key, label) in [
        ("cases", "检查案件数"),
        ("findings", "隐患数"),
        ("major_findings", "重大隐患数"),
        ("violations", "三违数"),
        ("rectifications_open", "未销号整改数"),
        ("rectifications_closed", "已销号整改数"),
        ("rectifications_overdue", "逾期整改数"),
    ] {
        summary.push(vec![key.into(), label.into(), text(&b["totals"][key])]);
    }
    for (key, label) in [
        ("found", "期间发现隐患数"),
        ("rectified_on_time", "按期整改（复查合格）数"),
        ("rectified_late", "逾期整改（复查合格）数"),
        ("reinspections_failed", "复查不合格数"),
        ("extended", "延期数"),
        ("closed", "销号数"),
        ("listed", "挂牌督办数"),
        ("delisted", "摘牌数"),
    ] {
        summary.push(vec![
            format!("loop.{key}"),
            label.into(),
            text(&b["hazard_loop"][key]),
        ]);
    }
    for r in b["writs_by_kind"].as_array().expect("rows") {
        summary.push(vec![
            format!("writ.{}", text(&r["code"])),
            format!("签发{}", text(&r["label"])),
            text(&r["count"]),
        ]);
    }
    for (prefix, key) in [
        ("level", "findings_by_level"),
        ("violation", "violations_by_kind"),
    ] {
        for r in b[key].as_array().expect("rows") {
            summary.push(vec![
                format!("{prefix}.{}", text(&r["code"])),
                text(&r["label"]),
                text(&r["count"]),
            ]);
        }
    }
    vec![
        ("汇总", "summary", summary),
        ("按辖区", "by_district", rows("by_district", &group)),
        ("按行业", "by_industry", rows("by_industry", &group)),
        ("按类型", "by_case_type", rows("by_case_type", &group)),
        (
            "趋势",
            "trend",
            rows(
                "trend",
                &["label", "from", "to", "cases", "findings", "major_findings"],
            ),
        ),
        (
            "隐患最多的企业",
            "top_enterprises",
            ranked("top_enterprises"),
        ),
        (
            "重大隐患最多的企业",
            "top_major_enterprises",
            ranked("top_major_enterprises"),
        ),
        (
            "三违按岗位",
            "violations_by_post",
            rows(
                "violations_by_post",
                &[
                    "post",
                    "illegal_command",
                    "illegal_operation",
                    "labour_discipline",
                    "total",
                ],
            ),
        ),
    ]
}

/// Posts are free text: a district's bulletin counts the three violations by the
/// `TOP_POSTS` posts with the most, the last row summing the rest, each post cut for
/// showing; a post longer than a spreadsheet cell holds still exports.
#[tokio::test]
async fn posts_past_the_top_are_summed_and_a_long_one_still_exports() {
    use anjian_sync_server::stats::{OTHER_POSTS, POST_CHARS, TOP_POSTS};
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(dir.path());
    let mut a = device(dir.path(), "insp_a", A);
    let case = open(
        &mut a,
        1,
        CaseType::Routine,
        "2026-10-05T09:00:00+08:00",
        &[],
    );
    // Long, and of no pattern that compresses (as a database index would store it).
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let long: String = (0..40_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(b'A' + (seed % 26) as u8)
        })
        .collect();
    let mut posts: Vec<String> = (0..TOP_POSTS + 1).map(|i| format!("岗位{i:03}")).collect();
    posts.push(long.clone());
    for post in &posts {
        find(
            &mut a,
            case,
            Level::General,
            Some((ViolationKind::IllegalOperation, post)),
        );
    }
    // The first post twice: it heads the list.
    find(
        &mut a,
        case,
        Level::General,
        Some((ViolationKind::IllegalCommand, &posts[0])),
    );
    upload(&state, &mut a, case);
    let sup = token(&app, "sup_a", "00000000000000000000000000000a03").await;
    let b = bulletin(&app, OCTOBER, &sup).await;
    let rows = b["violations_by_post"].as_array().expect("posts");
    assert_eq!(rows.len(), TOP_POSTS, "{:#}", rows[0]);
    assert_eq!(rows[0]["post"], posts[0].as_str());
    assert_eq!(rows[0]["total"], 2);
    let other = rows.last().expect("a row");
    assert_eq!(other["post"], OTHER_POSTS);
    let total: i64 = rows
        .iter()
        .map(|r| r["total"].as_i64().expect("total"))
        .sum();
    assert_eq!(total, posts.len() as i64 + 1, "every finding counted once");
    assert_eq!(
        other["total"],
        posts.len() as i64 + 1 - 2 - (TOP_POSTS as i64 - 2)
    );
    assert!(
        rows.iter()
            .all(|r| r["post"].as_str().expect("post").chars().count() <= POST_CHARS + 1)
    );

    let response = get(&app, &format!("/api/v1/bulletins.xlsx?{OCTOBER}"), &sup).await;
    assert_eq!(response.status(), StatusCode::OK);
    calamine::open_workbook_from_rs::<Xlsx<_>, _>(Cursor::new(bytes(response).await))
        .expect("xlsx");
}

#[tokio::test]
async fn xlsx_and_csv_hold_exactly_the_numbers_of_the_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(dir.path());
    seed(dir.path(), &state);
    let sup = token(&app, "sup_a", "00000000000000000000000000000a03").await;
    let b = bulletin(&app, OCTOBER, &sup).await;
    let expected = expected(&b);
    assert!(
        expected.iter().all(|(_, _, rows)| !rows.is_empty()),
        "every table has rows"
    );

    let response = get(&app, &format!("/api/v1/bulletins.xlsx?{OCTOBER}"), &sup).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"[..])
    );
    assert_eq!(
        response
            .headers()
            .get(CONTENT_DISPOSITION)
            .map(|v| v.as_bytes()),
        Some(&b"attachment; filename=\"bulletin-2026-10-01-2026-10-31.xlsx\""[..])
    );
    let mut workbook: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes(response).await)).expect("xlsx");
    let names: Vec<String> = workbook.sheet_names();
    let wanted: Vec<&str> = expected.iter().map(|(sheet, _, _)| *sheet).collect();
    assert_eq!(names, wanted);
    for (sheet, _, rows) in &expected {
        let range = workbook.worksheet_range(sheet).expect("sheet");
        let mut got: Vec<Vec<String>> =
            range.rows().map(|r| r.iter().map(cell).collect()).collect();
        let header = got.remove(0);
        assert!(
            header.iter().all(|h| !h.is_empty() && !h.is_ascii()),
            "{sheet}: {header:?}"
        );
        assert_eq!(&got, rows, "sheet {sheet}");
        if *sheet == "隐患最多的企业" {
            assert_eq!(header[3..5], ["辖区代码", "辖区"], "{header:?}");
            assert_eq!(got[0][3..5], [A, "黄浦区"], "{got:?}");
        }
        if *sheet == "按辖区" {
            assert_eq!(header[..2], ["辖区代码", "辖区"], "{header:?}");
            assert_eq!(got[0][..2], [A, "黄浦区"], "{got:?}");
        }
    }

    let response = get(&app, &format!("/api/v1/bulletins.csv?{OCTOBER}"), &sup).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"text/csv; charset=utf-8"[..])
    );
    assert_eq!(
        response
            .headers()
            .get(CONTENT_DISPOSITION)
            .map(|v| v.as_bytes()),
        Some(&b"attachment; filename=\"bulletin-2026-10-01-2026-10-31.csv\""[..])
    );
    let body = bytes(response).await;
    assert_eq!(&body[..3], b"\xEF\xBB\xBF", "UTF-8 byte-order mark");
    let csv = String::from_utf8(body[3..].to_vec()).expect("utf-8");
    let mut sections: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    let mut headers = 0;
    for line in csv.split("\r\n").filter(|l| !l.is_empty()) {
        let fields: Vec<String> = line.split(',').map(str::to_owned).collect();
        if fields[0] == "分区" {
            headers += 1;
            continue;
        }
        sections
            .entry(fields[0].clone())
            .or_default()
            .push(fields[1..].to_vec());
    }
    assert_eq!(headers, expected.len());
    for (_, section, rows) in &expected {
        assert_eq!(sections.get(*section), Some(rows), "section {section}");
    }
    // The name stands beside the code, in a column of its own.
    assert!(csv.contains("\r\n分区,辖区代码,辖区,案件数,"), "{csv}");
    assert!(
        csv.contains("\r\nby_district,310101,黄浦区,3,6,2\r\n"),
        "{csv}"
    );
    assert!(csv.contains(",310101,黄浦区,hazardous_chemicals,"), "{csv}");
}

#[tokio::test]
async fn the_page_draws_charts_and_totals_and_links_the_exports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(dir.path());
    seed(dir.path(), &state);
    let page = session(&app, "sup_a").await;
    let response = get(&app, &format!("/bulletins?{OCTOBER}"), &page).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = String::from_utf8(bytes(response).await).expect("utf-8");
    assert!(html.contains(r#"<dd id="total-cases">4</dd>"#), "{html}");
    assert!(
        html.contains(r#"<dd class="major" id="total-major">2</dd>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<dd class="overdue" id="total-overdue">1</dd>"#),
        "{html}"
    );
    // One bar chart each by district, industry, type, the two enterprise lists and posts,
    // and the trend chart.
    assert_eq!(html.matches("<svg").count(), 7, "{html}");
    assert_eq!(html.matches(r#"class="chart-svg trend""#).count(), 1);
    assert!(
        html.contains("6 项（重大 2）· 3 件"),
        "numbers on the district bar: {html}"
    );
    assert!(html.contains("危险化学品"));
    assert!(html.contains("班组长"));
    // Districts by name: in the district table beside the code, on the bars, and with the
    // code in the enterprise tables.
    assert!(
        html.contains("<td>黄浦区</td><td>310101</td><td>3</td>"),
        "{html}"
    );
    assert!(
        html.contains(">黄浦区</text>"),
        "the district bar's label: {html}"
    );
    assert!(html.contains("<td>黄浦区（310101）</td>"), "{html}");
    assert!(!html.contains("style="), "the CSP forbids style attributes");
    assert!(!html.contains("<script"));
    assert!(html.contains(&format!(
        r#"href="/api/v1/bulletins.xlsx?{}""#,
        OCTOBER.replace('&', "&amp;")
    )));
    assert!(html.contains(&format!(
        r#"href="/api/v1/bulletins.csv?{}""#,
        OCTOBER.replace('&', "&amp;")
    )));
    // The links work with the page's session cookie.
    let response = get(&app, &format!("/api/v1/bulletins.xlsx?{OCTOBER}"), &page).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Sets `store`'s clock to `at` (China time).
fn at(store: &mut Store, at: &str) {
    let time = DateTime::parse_from_rfc3339(at).expect("time");
    store.set_clock(Arc::new(move || time));
}

#[tokio::test]
async fn the_hazard_loop_is_counted_by_the_day_of_each_step_whenever_read() {
    use anjian_core::ReinspectionResult;
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(dir.path());
    let mut insp = device(dir.path(), "insp_a", A);
    let mut sup = device_of(dir.path(), "sup_a", A, Role::Supervisor);
    // A case opened in September: a major hazard found then, and a general one recorded
    // on 2 October (a visit that went on), both followed up in October and November.
    at(&mut insp, "2026-09-20T10:00:00+08:00");
    let case = open(
        &mut insp,
        1,
        CaseType::Routine,
        "2026-09-20T09:00:00+08:00",
        &[],
    );
    let major = find(&mut insp, case, Level::Major, None);
    order(&mut insp, case, major, "2026-10-10");
    at(&mut insp, "2026-10-02T10:00:00+08:00");
    let general = find(&mut insp, case, Level::General, None);
    order(&mut insp, case, general, "2026-10-09");
    let hand_over = |from: &mut Store, to: &mut Store| {
        to.merge_case(&from.export_case(case).expect("export"))
            .expect("merge");
    };
    hand_over(&mut insp, &mut sup);
    at(&mut sup, "2026-10-03T09:00:00+08:00");
    sup.follow_up(
        case,
        major,
        &HazardStep::List {
            authority: "黄浦区安委办".into(),
            number: "黄安委办督〔2026〕5号".into(),
            deadline: "2026-11-30".parse().expect("day"),
        },
    )
    .expect("listed");
    hand_over(&mut sup, &mut insp);
    let steps: [(&str, FindingId, HazardStep); 6] = [
        (
            "2026-10-05T10:00:00+08:00",
            major,
            HazardStep::Extend {
                deadline: "2026-10-20".parse().expect("day"),
                reason: "企业书面申请".into(),
            },
        ),
        // Extended again: the finding still counts once as extended in October.
        (
            "2026-10-06T10:00:00+08:00",
            major,
            HazardStep::Extend {
                deadline: "2026-10-22".parse().expect("day"),
                reason: "企业再次书面申请".into(),
            },
        ),
        (
            "2026-10-08T16:00:00+08:00",
            general,
            HazardStep::pass("已整改"),
        ),
        ("2026-10-08T16:10:00+08:00", general, HazardStep::close()),
        (
            "2026-10-15T10:00:00+08:00",
            major,
            HazardStep::Reinspect {
                result: ReinspectionResult::Fail,
                note: "联锁未恢复".into(),
                deadline: Some("2026-10-25".parse().expect("day")),
                escalation: String::new(),
            },
        ),
        // After the deadline in force (25 October): rectified late.
        (
            "2026-10-28T10:00:00+08:00",
            major,
            HazardStep::pass("已恢复"),
        ),
    ];
    for (time, finding, step) in steps {
        at(&mut insp, time);
        insp.follow_up(case, finding, &step).expect("step");
    }
    hand_over(&mut insp, &mut sup);
    at(&mut sup, "2026-11-02T09:00:00+08:00");
    sup.follow_up(case, major, &HazardStep::close())
        .expect("closed");
    at(&mut sup, "2026-11-03T09:00:00+08:00");
    sup.follow_up(
        case,
        major,
        &HazardStep::Delist {
            note: String::new(),
        },
    )
    .expect("delisted");
    upload(&state, &mut sup, case);
    // Another district's hazard, rectified in October, is not A's to count.
    let mut b = device(dir.path(), "insp_b", B);
    at(&mut b, "2026-10-10T10:00:00+08:00");
    let other = open(
        &mut b,
        3,
        CaseType::Routine,
        "2026-10-10T09:00:00+08:00",
        &[],
    );
    let f = find(&mut b, other, Level::General, None);
    order(&mut b, other, f, "2026-10-20");
    b.follow_up(other, f, &HazardStep::pass("已整改"))
        .expect("passed");
    upload(&state, &mut b, other);

    let sup_a = token(&app, "sup_a", "00000000000000000000000000000a02").await;
    let october = bulletin(&app, OCTOBER, &sup_a).await;
    assert_eq!(
        october["hazard_loop"],
        json!({"found": 1, "rectified_on_time": 1, "rectified_late": 1,
               "reinspections_failed": 1, "extended": 1, "closed": 1, "listed": 1, "delisted": 0})
    );
    let november = bulletin(&app, "from=2026-11-01&to=2026-11-30", &sup_a).await;
    assert_eq!(
        november["hazard_loop"],
        json!({"found": 0, "rectified_on_time": 0, "rectified_late": 0,
               "reinspections_failed": 0, "extended": 0, "closed": 1, "listed": 0, "delisted": 1})
    );
    // Each period holding one of the two extensions counts the finding once.
    for period in [
        "from=2026-10-01&to=2026-10-05",
        "from=2026-10-06&to=2026-10-06",
    ] {
        let part = bulletin(&app, period, &sup_a).await;
        assert_eq!(part["hazard_loop"]["extended"], 1, "{period}");
    }
    let september = bulletin(&app, "from=2026-09-01&to=2026-09-30", &sup_a).await;
    assert_eq!(september["hazard_loop"]["found"], 1);
    let page = session(&app, "sup_a").await;
    let html =
        String::from_utf8(bytes(get(&app, &format!("/bulletins?{OCTOBER}"), &page).await).await)
            .expect("utf-8");
    assert!(
        html.contains("隐患闭环") && html.contains("id=\"loop-late\">1<"),
        "{html}"
    );
}

#[tokio::test]
async fn steps_dated_by_clocks_far_off_are_counted_on_their_days_and_break_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(dir.path());
    let mut insp = device(dir.path(), "insp_a", A);
    at(&mut insp, "2026-10-02T10:00:00+08:00");
    let case = open(
        &mut insp,
        1,
        CaseType::Routine,
        "2026-10-02T09:00:00+08:00",
        &[],
    );
    let late = find(&mut insp, case, Level::General, None);
    order(&mut insp, case, late, "2026-10-09");
    let extended = find(&mut insp, case, Level::General, None);
    order(&mut insp, case, extended, "2026-10-09");
    let shifted = find(&mut insp, case, Level::General, None);
    order(&mut insp, case, shifted, "2026-10-09");
    // A phone whose clock is millennia ahead, one whose clock is at year one, and one
    // at the widest offsets.
    at(&mut insp, "9999-12-31T23:59:59+14:00");
    insp.follow_up(case, late, &HazardStep::pass("已整改"))
        .expect("passed");
    at(&mut insp, "0001-01-01T00:00:00-12:00");
    insp.follow_up(
        case,
        extended,
        &HazardStep::Extend {
            deadline: "2026-10-31".parse().expect("day"),
            reason: "企业书面申请".into(),
        },
    )
    .expect("extended");
    at(&mut insp, "2026-10-08T23:30:00+23:59");
    insp.follow_up(case, shifted, &HazardStep::pass("已整改"))
        .expect("passed");
    upload(&state, &mut insp, case);

    let sup_a = token(&app, "sup_a", "00000000000000000000000000000a02").await;
    let october = bulletin(&app, OCTOBER, &sup_a).await;
    assert_eq!(
        october["hazard_loop"],
        json!({"found": 3, "rectified_on_time": 1, "rectified_late": 0,
               "reinspections_failed": 0, "extended": 0, "closed": 0, "listed": 0, "delisted": 0})
    );
    let page = session(&app, "sup_a").await;
    for uri in [
        format!("/bulletins?{OCTOBER}"),
        format!("/cases/{case}"),
        "/rectifications".to_owned(),
    ] {
        let response = get(&app, &uri, &page).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
}

/// A phone whose clock shows another zone than China's writes its times with that
/// offset; the server counts them on the day in China, and lists them in time order among
/// the others.
#[tokio::test]
async fn a_phone_set_to_another_zone_is_counted_on_the_day_in_china_and_listed_in_time_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(dir.path());
    let mut insp = device(dir.path(), "insp_a", A);
    // 00:30 on 1 November in China, with the phone showing UTC; its hazard is rectified
    // at 00:30 on 2 November in China, a day after its deadline.
    at(&mut insp, "2026-10-31T16:30:00Z");
    let late = open(&mut insp, 1, CaseType::Routine, "2026-10-31T16:30:00Z", &[]);
    let hazard = find(&mut insp, late, Level::Major, None);
    order(&mut insp, late, hazard, "2026-11-01");
    at(&mut insp, "2026-11-01T16:30:00Z");
    insp.follow_up(late, hazard, &HazardStep::pass("已整改"))
        .expect("rectified");
    // 00:10 the same night, with the phone showing China's time: twenty minutes earlier.
    at(&mut insp, "2026-11-01T00:10:00+08:00");
    let early = open(
        &mut insp,
        2,
        CaseType::Routine,
        "2026-11-01T00:10:00+08:00",
        &[],
    );
    find(&mut insp, early, Level::General, None);
    upload(&state, &mut insp, late);
    upload(&state, &mut insp, early);

    let sup_a = token(&app, "sup_a", "00000000000000000000000000000a03").await;
    let october = bulletin(&app, OCTOBER, &sup_a).await;
    assert_eq!(october["totals"]["cases"], 0, "{october}");
    assert_eq!(october["hazard_loop"]["found"], 0, "{october}");
    let november = bulletin(&app, "from=2026-11-01&to=2026-11-01", &sup_a).await;
    assert_eq!(november["totals"]["cases"], 2, "{november}");
    assert_eq!(
        (
            &november["hazard_loop"]["found"],
            &november["hazard_loop"]["rectified_on_time"],
            &november["hazard_loop"]["rectified_late"]
        ),
        (&json!(2), &json!(0), &json!(0)),
        "{november}"
    );
    let second = bulletin(&app, "from=2026-11-02&to=2026-11-02", &sup_a).await;
    assert_eq!(second["hazard_loop"]["rectified_late"], 1, "{second}");

    // The case list's days and order: newest visit first.
    let list = |query: &'static str| {
        let app = app.clone();
        let sup_a = sup_a.clone();
        async move {
            let response = get(&app, &format!("/api/v1/cases?{query}"), &sup_a).await;
            assert_eq!(response.status(), StatusCode::OK);
            let body: Value = serde_json::from_slice(&bytes(response).await).expect("json");
            body["cases"]
                .as_array()
                .expect("cases")
                .iter()
                .map(|c| (text(&c["id"]), text(&c["opened_at"])))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list("from=2026-11-01&to=2026-11-01").await,
        [
            (late.to_string(), "2026-11-01T00:30:00+08:00".to_owned()),
            (early.to_string(), "2026-11-01T00:10:00+08:00".to_owned()),
        ]
    );
    assert_eq!(list("from=2026-10-31&to=2026-10-31").await, []);
}

#[tokio::test]
async fn issued_documents_are_in_the_register_and_counted_by_the_day_they_were_issued() {
    use anjian_core::{SignatureInput, SignerRole, TeamMember, WritKind};
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(dir.path());
    let mut insp = device(dir.path(), "insp_a", A);
    at(&mut insp, "2026-10-09T10:00:00+08:00");
    let case = insp
        .open_case(&NewCase {
            team: vec![TeamMember {
                user_id: "insp_a2".into(),
                name: "李娜".into(),
                department: "消防".into(),
                district: district(A),
            }],
            ..anjian_core::sample::new_case(&enterprise(
                1,
                "滨江化工有限公司",
                A,
                Industry::HazardousChemicals,
            ))
        })
        .expect("case");
    // What the order decides: a hazard ordered to be rectified.
    let finding = find(&mut insp, case, Level::General, None);
    order(&mut insp, case, finding, "2026-12-30");
    let image = insp
        .ingest_photo(&anjian_core::sample::jpeg(40, 20))
        .expect("image")
        .sha256;
    let mut numbers = Vec::new();
    for (kind, issue) in [
        (WritKind::InspectionRecord, true),
        (WritKind::RectificationOrder, true),
        (WritKind::RectificationOrder, false),
    ] {
        let writ = insp.create_writ(case, kind, None).expect("drawn up");
        numbers.push(insp.seal_writ(case, writ).expect("sealed").number);
        if issue {
            for (user, cert) in [("insp_a", "31010000001"), ("insp_a2", "31010000002")] {
                let signature = SignatureInput {
                    role: SignerRole::Inspector,
                    user: user.into(),
                    name: user.into(),
                    certificate_no: cert.into(),
                    image: image.clone(),
                };
                insp.sign_writ(case, writ, &signature).expect("signed");
            }
            insp.refuse_writ(case, writ, "拒绝签字", "见证人 王某", None)
                .expect("refused");
            insp.issue_writ(case, writ).expect("issued");
        } else {
            insp.void_writ(case, writ, "编号错用").expect("voided");
        }
    }
    upload(&state, &mut insp, case);

    let sup_a = token(&app, "sup_a", "00000000000000000000000000000a05").await;
    let response = get(&app, "/api/v1/documents?year=2026", &sup_a).await;
    assert_eq!(response.status(), StatusCode::OK);
    let register: Value = serde_json::from_slice(&bytes(response).await).expect("json");
    let rows = register["documents"].as_array().expect("rows");
    let mut listed: Vec<(String, String)> = rows
        .iter()
        .map(|r| (text(&r["number"]), text(&r["state"])))
        .collect();
    listed.sort();
    let mut wanted = vec![
        (numbers[0].clone(), "issued".to_owned()),
        (numbers[1].clone(), "issued".to_owned()),
        (numbers[2].clone(), "voided".to_owned()),
    ];
    wanted.sort();
    assert_eq!(listed, wanted, "a voided number stays on record");
    assert_eq!(register["total"], 3);
    // A page at a time, with the count over all.
    let mut pages = Vec::new();
    for offset in [0, 2] {
        let uri = format!("/api/v1/documents?year=2026&limit=2&offset={offset}");
        let page: Value =
            serde_json::from_slice(&bytes(get(&app, &uri, &sup_a).await).await).expect("json");
        assert_eq!(page["total"], 3);
        pages.push(
            page["documents"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|r| text(&r["number"]))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!((pages[0].len(), pages[1].len()), (2, 1), "{pages:?}");
    let mut every: Vec<String> = pages.concat();
    every.sort();
    let mut sealed = numbers.clone();
    sealed.sort();
    assert_eq!(every, sealed, "each document on one page");
    let response = get(&app, "/api/v1/documents?year=2025", &sup_a).await;
    let none: Value = serde_json::from_slice(&bytes(response).await).expect("json");
    assert_eq!(none["documents"], json!([]));
    let sup_b = token(&app, "sup_b", "00000000000000000000000000000b05").await;
    let response = get(&app, "/api/v1/documents", &sup_b).await;
    let theirs: Value = serde_json::from_slice(&bytes(response).await).expect("json");
    assert_eq!(
        theirs["documents"],
        json!([]),
        "another district's register is not B's"
    );
    let insp_token = token(&app, "insp_a", "00000000000000000000000000000a06").await;
    let response = get(&app, "/api/v1/documents", &insp_token).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let october = bulletin(&app, OCTOBER, &sup_a).await;
    let issued: Vec<(String, i64)> = october["writs_by_kind"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (text(&r["code"]), r["count"].as_i64().expect("a count")))
        .collect();
    assert_eq!(
        issued,
        [
            ("inspection_record".to_owned(), 1),
            ("rectification_order".to_owned(), 1),
            ("onsite_decision".to_owned(), 0),
            ("reinspection_opinion".to_owned(), 0),
        ]
    );
    let page = session(&app, "sup_a").await;
    let html = String::from_utf8(bytes(get(&app, "/documents?year=2026", &page).await).await)
        .expect("utf-8");
    assert!(
        html.contains(&numbers[2]) && html.contains("作废：编号错用") && html.contains("临时编号"),
        "{html}"
    );
    let september = bulletin(&app, "from=2026-09-01&to=2026-09-30", &sup_a).await;
    assert!(
        september["writs_by_kind"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["count"] == 0)
    );
}

/// Every tally row that counts something, sorted.
fn tallies(state: &AppState) -> Vec<String> {
    state
        .storage
        .read(|conn| {
            let mut rows = conn.query_map(
                "SELECT district, day, level, rectification, deadline, violation, post, n
                 FROM finding_tallies WHERE n <> 0",
                &[],
                |r| {
                    Ok(format!(
                        "finding {:?} {:?} {:?} {:?} {:?} {:?} {:?} {}",
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<String>(4)?,
                        r.get::<String>(5)?,
                        r.get::<String>(6)?,
                        r.get::<i64>(7)?
                    ))
                },
            )?;
            rows.extend(conn.query_map(
                "SELECT district, day, kind, result, on_time, since, n FROM step_tallies WHERE n <> 0",
                &[],
                |r| {
                    Ok(format!(
                        "step {:?} {:?} {:?} {:?} {} {:?} {}",
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<i64>(4)?,
                        r.get::<String>(5)?,
                        r.get::<i64>(6)?
                    ))
                },
            )?);
            rows.sort();
            Ok(rows)
        })
        .expect("tallies")
}

/// The tallies as each commit left them, checked against a count of the projection rows
/// afresh (which must change nothing), with no count below zero.
fn assert_tallies_recount(state: &AppState, after: &str) -> Vec<String> {
    let kept = tallies(state);
    let below_zero = |row: &String| {
        row.rsplit(' ')
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            .is_none_or(|n| n < 0)
    };
    assert!(
        !kept.iter().any(below_zero),
        "{after}: a count below zero: {kept:#?}"
    );
    state.storage.recount_tallies().expect("recount");
    assert_eq!(
        kept,
        tallies(state),
        "{after}: kept by each commit, then counted afresh"
    );
    kept
}

#[tokio::test]
async fn tallies_follow_every_commit_of_a_case_as_a_recount_would() {
    use anjian_core::{FindingEdit, ReinspectionResult};
    let dir = tempfile::tempdir().expect("temp dir");
    let (app, state) = server(dir.path());
    let mut insp = device(dir.path(), "insp_a", A);
    let mut sup = device_of(dir.path(), "sup_a", A, Role::Supervisor);
    let hand_over = |from: &mut Store, to: &mut Store, case: CaseId| {
        to.merge_case(&from.export_case(case).expect("export"))
            .expect("merge");
    };
    // A case of A shared with B, recorded and followed up over weeks, committed after
    // every step as a device syncing would.
    at(&mut insp, "2026-10-03T09:30:00+08:00");
    let case = open(
        &mut insp,
        1,
        CaseType::CrossDistrict,
        "2026-10-03T09:00:00+08:00",
        &[B],
    );
    let major = find(&mut insp, case, Level::Major, None);
    order(&mut insp, case, major, "2026-10-10");
    let driver = find(
        &mut insp,
        case,
        Level::General,
        Some((ViolationKind::IllegalOperation, "司机")),
    );
    let gone = find(&mut insp, case, Level::General, None);
    upload(&state, &mut insp, case);
    let first = assert_tallies_recount(&state, "the first commit");
    assert!(
        first
            .iter()
            .any(|row| row.starts_with(&format!("finding {B:?}"))),
        "counted for B, which the case is shared with: {first:#?}"
    );

    // An edit the tallies do not count (a description) leaves them as they were.
    insp.edit_finding(
        case,
        major,
        &FindingEdit {
            description: Some("储罐区消防喷淋装置损坏".to_owned()),
            ..FindingEdit::default()
        },
    )
    .expect("edit");
    upload(&state, &mut insp, case);
    assert_eq!(assert_tallies_recount(&state, "a description"), first);

    // The next day: a finding removed, another made major and its post changed, a
    // re-inspection that fails with a new deadline.
    at(&mut insp, "2026-10-04T10:00:00+08:00");
    insp.remove_finding(case, gone).expect("remove");
    insp.edit_finding(
        case,
        driver,
        &FindingEdit {
            level: Some(Level::Major),
            violation: Some(Violation {
                kind: ViolationKind::IllegalCommand,
                post: "班组长".to_owned(),
                person: "某人".to_owned(),
            }),
            ..FindingEdit::default()
        },
    )
    .expect("edit");
    insp.follow_up(
        case,
        major,
        &HazardStep::Reinspect {
            result: ReinspectionResult::Fail,
            note: "未整改".to_owned(),
            deadline: Some("2026-10-25".parse().expect("day")),
            escalation: String::new(),
        },
    )
    .expect("fail");
    upload(&state, &mut insp, case);
    assert_tallies_recount(&state, "the edits");

    // Passed late, then closed by the supervisor; a second case opened the same day.
    at(&mut insp, "2026-10-28T10:00:00+08:00");
    insp.follow_up(case, major, &HazardStep::pass("已整改"))
        .expect("pass");
    upload(&state, &mut insp, case);
    assert_tallies_recount(&state, "the late pass");
    hand_over(&mut insp, &mut sup, case);
    at(&mut sup, "2026-10-29T10:00:00+08:00");
    sup.follow_up(case, major, &HazardStep::close())
        .expect("close");
    upload(&state, &mut sup, case);
    let other = open(
        &mut insp,
        2,
        CaseType::Routine,
        "2026-10-03T15:00:00+08:00",
        &[],
    );
    find(&mut insp, other, Level::General, None);
    upload(&state, &mut insp, other);
    let last = assert_tallies_recount(&state, "the closing and a second case");
    assert_ne!(first, last, "the commits changed what is counted");

    // The bulletins read what the commits left: one case for B, two for A and the city.
    let totals = |b: &Value| {
        (
            b["totals"]["cases"].clone(),
            b["totals"]["findings"].clone(),
            b["totals"]["major_findings"].clone(),
            b["totals"]["violations"].clone(),
            b["totals"]["rectifications_closed"].clone(),
            b["hazard_loop"]["found"].clone(),
            b["hazard_loop"]["reinspections_failed"].clone(),
            b["hazard_loop"]["rectified_late"].clone(),
            b["hazard_loop"]["closed"].clone(),
        )
    };
    let sup_b = session(&app, "sup_b").await;
    let admin = session(&app, "admin").await;
    let sup_a = session(&app, "sup_a").await;
    let of_b = bulletin(&app, OCTOBER, &sup_b).await;
    assert_eq!(
        totals(&of_b),
        (
            json!(1),
            json!(2),
            json!(2),
            json!(1),
            json!(1),
            json!(2),
            json!(1),
            json!(1),
            json!(1)
        ),
        "{of_b:#}"
    );
    assert_eq!(of_b["violations_by_post"][0]["post"], "班组长", "{of_b:#}");
    assert_eq!(
        of_b["violations_by_post"][0]["illegal_command"], 1,
        "{of_b:#}"
    );
    for auth in [&admin, &sup_a] {
        let b = bulletin(&app, OCTOBER, auth).await;
        assert_eq!(
            totals(&b),
            (
                json!(2),
                json!(3),
                json!(2),
                json!(1),
                json!(1),
                json!(3),
                json!(1),
                json!(1),
                json!(1)
            ),
            "{b:#}"
        );
    }
}
