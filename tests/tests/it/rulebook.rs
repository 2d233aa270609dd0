//! One rule book on every path: each row (role × relation to the case × action × state)
//! is tried through the sync path (a raw device sending the change) and through the API
//! (the same action as a request), on fresh cases; both must give the verdict written by
//! hand in the table.

use anjian_core::HazardStep;
use anjian_core::sync::DocumentId;
use anjian_core::{CaseId, DistrictCode, FindingId, ReviewAction, Role, case_doc, sample};
use anjian_sync_server::Settings;
use anjian_sync_server::config::Limits;
use anjian_tests::peer::RawPeer;
use anjian_tests::{
    Inspector, TestServer, add_user, browser, get_json, get_page, login_device, login_token,
};
use automerge::AutoCommit;
use serde_json::{Value, json};

const OWNER: &str = "310101";
const SHARED: &str = "310104";
const OTHER: &str = "310105";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Refused,
}

use Verdict::{Allowed, Refused};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Submitted,
    Approved,
    /// Submitted, the major hazard lowered to general by the inspector after its order.
    Lowered,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Review(ReviewAction),
    CloseMajor,
    Share,
    /// Sync only: the owning district rewritten.
    RewriteDistrict,
}

/// A case as the rows need it: submitted, shared with 310104, with a major hazard
/// re-inspected on site and waiting for 销号.
struct Fresh {
    case: CaseId,
    major: FindingId,
    bytes: Vec<u8>,
}

async fn fresh(insp: &mut Inspector, url: &str, state: State) -> Fresh {
    let enterprise = sample::enterprise(2);
    insp.store
        .register_enterprise(&enterprise)
        .expect("register");
    let case = insp
        .store
        .open_case(&anjian_core::NewCase {
            visible_to: vec![SHARED.parse().expect("district")],
            ..sample::new_case(&enterprise)
        })
        .expect("case");
    let major = insp.reinspected_major_hazard(case);
    if state == State::Lowered {
        let lower = anjian_core::FindingEdit {
            level: Some(anjian_core::Level::General),
            ..Default::default()
        };
        insp.store
            .edit_finding(case, major, &lower)
            .expect("lowered");
    }
    insp.store
        .review(case, ReviewAction::Submit, "检查完毕")
        .expect("submit");
    let report = insp.sync().await.expect("sync");
    assert!(report.refused.is_empty(), "{report:?}");
    if state == State::Approved {
        let (status, body) = api(url, "chief", case, Action::Review(ReviewAction::Approve)).await;
        assert_eq!(status, 200, "{body}");
        insp.sync().await.expect("sync");
    }
    Fresh {
        case,
        major,
        bytes: insp.store.export_document(case).expect("export"),
    }
}

/// The action through the API, as `user`; returns the status and the body.
async fn api(url: &str, user: &str, case: CaseId, action: Action) -> (u16, Value) {
    let token = login_token(url, user).await;
    let (path, body) = match action {
        Action::Review(action) => (
            format!("/api/v1/cases/{case}/review"),
            json!({ "action": action.code(), "text": "意见" }),
        ),
        Action::Share => (
            format!("/api/v1/cases/{case}/share"),
            json!({ "districts": [SHARED, OTHER] }),
        ),
        Action::CloseMajor | Action::RewriteDistrict => unreachable!("no API for this row"),
    };
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The 销号 of the major hazard through the API, as `user`.
async fn api_close(url: &str, user: &str, fresh: &Fresh) -> (u16, Value) {
    let token = login_token(url, user).await;
    let response = reqwest::Client::new()
        .post(format!(
            "{url}/api/v1/cases/{}/findings/{}/close",
            fresh.case, fresh.major
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The action as a change sent over `/sync` by a device of `user`, made on the case's
/// bytes past every check of an app.
async fn over_sync(server: &TestServer, user: &str, fresh: &Fresh, action: Action) -> Verdict {
    let actor = automerge::ActorId::random();
    let token = login_device(&server.url(), user, &actor.to_hex_string()).await;
    let mut doc = AutoCommit::load(&fresh.bytes)
        .expect("load")
        .with_actor(actor);
    let at = chrono::Utc::now().fixed_offset();
    match action {
        Action::Review(action) => {
            case_doc::review(&mut doc, user, action, "意见", at).expect("a review step");
        }
        Action::CloseMajor => {
            case_doc::follow_up(&mut doc, user, fresh.major, &HazardStep::close(), at)
                .expect("a step of the loop");
        }
        Action::Share => {
            let districts: Vec<DistrictCode> =
                vec![SHARED.parse().expect("d"), OTHER.parse().expect("d")];
            case_doc::share(&mut doc, user, &districts, at).expect("share");
        }
        Action::RewriteDistrict => {
            use automerge::transaction::Transactable;
            doc.put(automerge::ROOT, "district", OTHER).expect("put");
            doc.commit();
        }
    }
    let mut peer = RawPeer::joined(&server.addr.to_string(), &token).await;
    let pushed = peer.push(DocumentId::of(fresh.case), &mut doc).await;
    match (pushed.acknowledged, &pushed.refused) {
        (true, None) => Allowed,
        (false, Some(_)) => Refused,
        _ => panic!("{user} {action:?}: neither acknowledged nor refused: {pushed:?}"),
    }
}

/// The case as the API gives it to the owning district's chief, and its finding `id`.
async fn case_and_finding(url: &str, case: CaseId, id: FindingId) -> (Value, Value) {
    let token = login_token(url, "chief").await;
    let case = get_json(&format!("{url}/api/v1/cases/{case}"), &token).await;
    let finding = case["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["id"] == id.to_string())
        .unwrap_or_else(|| panic!("finding {id} in {case}"))
        .clone();
    (case, finding)
}

fn verdict_of(status: u16) -> Verdict {
    match status {
        200..=299 => Allowed,
        403 | 404 => Refused,
        other => panic!("unexpected status {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_path_and_the_api_give_the_table_s_verdicts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    for (user, role, district) in [
        ("insp", Role::Inspector, OWNER),
        ("chief", Role::Supervisor, OWNER),
        ("shared_chief", Role::Supervisor, SHARED),
        ("shared_insp", Role::Inspector, SHARED),
        ("far_chief", Role::Supervisor, OTHER),
        ("admin", Role::Admin, OTHER),
    ] {
        add_user(&data, user, role, district, "应急管理");
    }
    // The table signs the same accounts in again for every row, from a new device each
    // time over sync.
    let server = TestServer::start_with(Settings {
        data,
        limits: Limits {
            sign_ins_per_name: 1_000,
            devices_per_user: 1_000,
            ..Limits::default()
        },
        ..Settings::default()
    })
    .await;
    let url = server.url();
    let mut insp = Inspector::sign_in(dir.path(), &url, "insp", "应急管理", OWNER).await;
    use Action::*;
    use ReviewAction::{Approve, Comment, Reopen, Return};
    use State::*;
    // (user, relation, action, state, verdict) — the relation is the user's district's to
    // the case: owner, shared (visible_to) or other.
    let rows: &[(&str, &str, Action, State, Verdict)] = &[
        ("chief", "owner", Review(Approve), Submitted, Allowed),
        (
            "shared_chief",
            "shared",
            Review(Approve),
            Submitted,
            Refused,
        ),
        ("far_chief", "other", Review(Approve), Submitted, Refused),
        ("admin", "any", Review(Approve), Submitted, Allowed),
        ("insp", "owner", Review(Approve), Submitted, Refused),
        ("chief", "owner", Review(Return), Submitted, Allowed),
        ("shared_chief", "shared", Review(Return), Submitted, Refused),
        (
            "shared_chief",
            "shared",
            Review(Comment),
            Submitted,
            Allowed,
        ),
        ("shared_insp", "shared", Review(Comment), Submitted, Allowed),
        ("far_chief", "other", Review(Comment), Submitted, Refused),
        ("chief", "owner", Review(Reopen), Approved, Allowed),
        ("shared_chief", "shared", Review(Reopen), Approved, Refused),
        ("insp", "owner", Review(Reopen), Approved, Refused),
        ("insp", "owner", Review(Comment), Approved, Allowed),
        ("chief", "owner", CloseMajor, Submitted, Allowed),
        ("shared_chief", "shared", CloseMajor, Submitted, Refused),
        ("insp", "owner", CloseMajor, Submitted, Refused),
        // Approval locks the record of the visit, not the hazards' follow-up.
        ("chief", "owner", CloseMajor, Approved, Allowed),
        ("insp", "owner", CloseMajor, Approved, Refused),
        // A hazard ordered as major and lowered since is still the supervisors' to close.
        ("chief", "owner", CloseMajor, Lowered, Allowed),
        ("insp", "owner", CloseMajor, Lowered, Refused),
        ("chief", "owner", Share, Submitted, Allowed),
        ("admin", "any", Share, Submitted, Allowed),
        ("shared_chief", "shared", Share, Submitted, Refused),
        ("insp", "owner", Share, Submitted, Refused),
        ("chief", "owner", RewriteDistrict, Submitted, Refused),
        ("admin", "any", RewriteDistrict, Submitted, Refused),
    ];
    let mut wrong = Vec::new();
    for (user, relation, action, state, expected) in rows {
        let row = format!("{user} ({relation}) {action:?} on {state:?}");
        let by_sync = over_sync(
            &server,
            user,
            &fresh(&mut insp, &url, *state).await,
            *action,
        )
        .await;
        if by_sync != *expected {
            wrong.push(format!(
                "{row}: over sync {by_sync:?}, expected {expected:?}"
            ));
        }
        let target = fresh(&mut insp, &url, *state).await;
        let by_api = match action {
            RewriteDistrict => continue,
            CloseMajor => api_close(&url, user, &target).await,
            _ => api(&url, user, target.case, *action).await,
        };
        if verdict_of(by_api.0) != *expected {
            wrong.push(format!("{row}: over the API {:?} {}", by_api.0, by_api.1));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing the table refused reached the inspector's device: its next sync is clean.
    let report = insp.sync().await.expect("sync");
    assert!(report.refused.is_empty(), "{report:?}");
    server.stop().await;
}

/// The chief has closed a major hazard on the server; the inspector, offline and not
/// knowing, took another step on it and then recorded a new hazard. A teammate of the
/// same district is signed in too.
struct Stepped {
    server: TestServer,
    url: String,
    insp: Inspector,
    mate: Inspector,
    fresh: Fresh,
    /// The new hazard.
    later: FindingId,
}

async fn a_step_on_a_closed_hazard(dir: &tempfile::TempDir) -> Stepped {
    let data = dir.path().join("server");
    add_user(&data, "insp", Role::Inspector, OWNER, "应急管理");
    add_user(&data, "mate", Role::Inspector, OWNER, "应急管理");
    add_user(&data, "chief", Role::Supervisor, OWNER, "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut insp = Inspector::sign_in(dir.path(), &url, "insp", "应急管理", OWNER).await;
    let mate = Inspector::sign_in(dir.path(), &url, "mate", "应急管理", OWNER).await;
    let fresh = fresh(&mut insp, &url, State::Submitted).await;
    let (status, body) = api_close(&url, "chief", &fresh).await;
    assert_eq!(status, 200, "{body}");
    insp.store
        .follow_up(fresh.case, fresh.major, &HazardStep::pass("再次复查"))
        .expect("a step the device allows, not knowing of the close");
    let later = insp
        .store
        .add_finding(fresh.case, &sample::finding("二号仓库安全出口锁闭"))
        .expect("finding");
    Stepped {
        server,
        url,
        insp,
        mate,
        fresh,
        later,
    }
}

/// A refusal takes none of the inspector's later work with it. The chief closes the major
/// hazard on the server while the inspector, offline, takes another step on it and then
/// records a new hazard: the step is refused, and the new hazard, which the device had
/// built on it, is entered again and reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_step_takes_none_of_the_later_findings_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Stepped {
        server,
        url,
        mut insp,
        fresh,
        later,
        ..
    } = a_step_on_a_closed_hazard(&dir).await;
    let report = insp.sync().await.expect("sync");
    assert_eq!(report.refused.len(), 1, "only the step: {report:?}");
    let report = insp.sync().await.expect("sync");
    assert!(report.refused.is_empty(), "{report:?}");

    let refusals = insp.store.refusals().expect("refusals");
    assert_eq!(refusals.len(), 2, "{refusals:#?}");
    assert!(
        refusals.iter().any(|r| r.reentered_as.is_some()),
        "{refusals:#?}"
    );
    let token = login_token(&url, "chief").await;
    let case = get_json(&format!("{url}/api/v1/cases/{}", fresh.case), &token).await;
    let findings = case["findings"].as_array().expect("findings");
    assert!(
        findings.iter().any(|f| f["id"] == later.to_string()),
        "{case}"
    );
    let uploaded = insp.store.upload_state(fresh.case).expect("upload state");
    assert_eq!(
        uploaded.acknowledged, uploaded.changes,
        "the server acknowledged every change the device holds"
    );
    server.stop().await;
}

/// A teammate's edit follows a finding entered again. As above, the inspector's step on
/// the closed hazard is refused and the new hazard built on it is entered again; a
/// teammate had merged that hazard on site and corrected its place. The server refuses
/// the teammate's copy of the step too, and the correction with it; once the hazard as
/// entered again reaches the teammate's phone, the correction is entered again into it
/// and reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teammate_s_edit_follows_a_finding_entered_again_to_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Stepped {
        server,
        url,
        mut insp,
        mut mate,
        fresh,
        later,
    } = a_step_on_a_closed_hazard(&dir).await;
    // On site, the teammate takes the case and corrects where the hazard is.
    mate.store
        .merge_case(&insp.store.export_case(fresh.case).expect("export"))
        .expect("merged on site");
    let place = "三号仓库东侧";
    mate.store
        .edit_finding(
            fresh.case,
            later,
            &anjian_core::FindingEdit {
                place: Some(place.into()),
                ..Default::default()
            },
        )
        .expect("edit");
    let edit = mate.store.heads(fresh.case).expect("heads").remove(0);

    // The teammate hears of the refusal first: the correction has nowhere to go yet
    // (the rest of its change, the teammate's entry in the team, is entered again).
    let report = mate.sync().await.expect("sync");
    assert!(!report.refused.is_empty(), "{report:?}");
    let waiting = |mate: &Inspector| {
        mate.store
            .refusals()
            .expect("refusals")
            .into_iter()
            .find(|r| r.change_hash == edit)
            .expect("the correction is kept")
    };
    assert!(
        waiting(&mate).reason.contains("未能重新录入"),
        "{:#?}",
        waiting(&mate)
    );
    let first = waiting(&mate).reentered_as;
    insp.sync().await.expect("sync");
    insp.sync().await.expect("sync");
    mate.sync().await.expect("sync");
    mate.sync().await.expect("sync");
    let now = waiting(&mate);
    assert_ne!(now.reentered_as, first, "{now:#?}");
    assert!(!now.reason.contains("未能重新录入"), "{now:#?}");

    let (case, finding) = case_and_finding(&url, fresh.case, later).await;
    assert_eq!(finding["place"], place, "{finding}");
    let history = case["history"].as_array().expect("history");
    assert!(
        history.iter().any(|h| h["entered_again_for"] == edit),
        "the correction entered again names the one the server refused: {history:#?}"
    );
    // The case page says so in its history.
    let (client, session) = browser(&url, "chief").await;
    let (status, page) = get_page(&client, &session, format!("{url}/cases/{}", fresh.case)).await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).expect("utf-8");
    assert!(
        page.contains(&format!("（重新录入，原修改 <code>{}</code>）", &edit[..8])),
        "{page}"
    );
    for phone in [&mut insp, &mut mate] {
        phone.sync().await.expect("sync");
        let uploaded = phone.store.upload_state(fresh.case).expect("upload state");
        assert_eq!(uploaded.acknowledged, uploaded.changes);
    }
    assert_eq!(
        insp.store
            .case(fresh.case)
            .expect("case")
            .findings
            .iter()
            .find(|f| f.id == later)
            .map(|f| f.place.clone()),
        Some(place.to_owned())
    );
    server.stop().await;
}

/// A hazard ordered as major and lowered since says so: the API gives the level the order
/// was given at beside the level now, and the case page shows it beside the rectification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hazard_ordered_as_major_and_lowered_since_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    add_user(&data, "insp", Role::Inspector, OWNER, "应急管理");
    add_user(&data, "chief", Role::Supervisor, OWNER, "应急管理");
    let server = TestServer::start(&data).await;
    let url = server.url();
    let mut insp = Inspector::sign_in(dir.path(), &url, "insp", "应急管理", OWNER).await;
    let fresh = fresh(&mut insp, &url, State::Lowered).await;
    let (_, finding) = case_and_finding(&url, fresh.case, fresh.major).await;
    assert_eq!(finding["level"], "general", "{finding}");
    assert_eq!(
        finding["rectification"]["ordered_level"], "major",
        "{finding}"
    );
    let (client, session) = browser(&url, "chief").await;
    let (status, page) = get_page(&client, &session, format!("{url}/cases/{}", fresh.case)).await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).expect("utf-8");
    assert!(page.contains("按重大隐患下达整改"), "{page}");
    server.stop().await;
}
