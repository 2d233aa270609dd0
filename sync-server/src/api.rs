//! The HTTP API under `/api/v1/`: login, the catalog, supervisors' case queries, review
//! actions and the rectification board.

use std::sync::Arc;

use anjian_core::sync::{CatalogPage, DocumentId};
use anjian_core::{Case, DistrictCode, ReviewAction};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{self, AuthUser, ClientAddr};
use crate::error::{AppError, AppResult};
use crate::queries::{self, BoardFilter, CaseFilter};
use crate::state::AppState;
use crate::{policy, review};

/// `POST /api/v1/login` body.
#[derive(Deserialize)]
pub struct Login {
    username: String,
    password: String,
    device_name: String,
    actor_id: String,
}

/// Signs in and binds the device; returns a token (valid for `token_days`, after which
/// the app signs in again) and the account.
pub async fn login(
    State(app): State<Arc<AppState>>,
    ClientAddr(address): ClientAddr,
    Json(body): Json<Login>,
) -> AppResult<Json<Value>> {
    let storage = app.storage.clone();
    let days = app.settings.token_days;
    let name = body.username.trim().to_owned();
    let (token, user) = auth::sign_in(&app, &name, address, move || {
        storage.login(
            &body.username,
            &body.password,
            &body.device_name,
            &body.actor_id,
            days,
        )
    })
    .await?;
    Ok(Json(json!({ "token": token, "user": user })))
}

/// `?since=` of the catalog.
#[derive(Deserialize)]
pub struct Since {
    #[serde(default)]
    since: i64,
}

/// The documents this user may see that changed after `since`, with their heads.
pub async fn catalog(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(q): Query<Since>,
) -> AppResult<Json<CatalogPage>> {
    let page = app.storage.catalog(&user, q.since)?;
    Ok(Json(page))
}

/// The cases this user's scope covers (`policy::scope`), filtered, newest visit first.
pub async fn cases(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(filter): Query<CaseFilter>,
) -> AppResult<Json<Value>> {
    let (rows, total) = app
        .storage
        .read(|conn| queries::cases(conn, policy::scope(&user), &filter))?;
    Ok(Json(json!({ "total": total, "cases": rows })))
}

/// One case in full, with its conflicts and its history (device time and server receipt
/// time side by side). A case outside the user's scope is answered as one that does not
/// exist.
pub async fn case(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let detail = review::load(&app, &user, &id)?;
    let mut body = case_json(&detail.case);
    body["document_id"] = json!(DocumentId::of(detail.case.id).to_string());
    body["conflicts"] = json!(detail
        .conflicts
        .iter()
        .map(|c| json!({
            "path": c.path,
            "values": c.values.iter().map(|v| json!({
                "value": v.value.to_string(), "written_by": v.written_by, "device": v.device,
                "device_time": chrono::DateTime::from_timestamp(v.device_time, 0).map(|t| t.to_rfc3339()),
            })).collect::<Vec<_>>(),
        }))
        .collect::<Vec<_>>());
    body["history"] = json!(detail.history);
    body["amendments"] = json!(
        detail
            .amendments
            .iter()
            .map(|(id, opened_at)| json!({ "id": id, "opened_at": opened_at }))
            .collect::<Vec<_>>()
    );
    Ok(Json(body))
}

/// `POST /api/v1/cases/{id}/review` body.
#[derive(Deserialize)]
pub struct ReviewBody {
    action: String,
    #[serde(default)]
    text: String,
}

/// A supervisor's review action (`return`, `approve`, `reopen`, `comment`), written into
/// the case by the supervisor's server-side actor; returns the new state.
pub async fn review_case(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> AppResult<Json<Value>> {
    let action: ReviewAction = body.action.parse()?;
    let state = review::act(&app, &user, &id, action, &body.text).await?;
    Ok(Json(json!({ "state": state.code() })))
}

/// `POST /api/v1/cases/{id}/resolve` body: the conflict's path, and either the value to
/// keep, as shown in the case's `conflicts` (`keep`), or a new text value (`value`).
#[derive(Deserialize)]
pub struct ResolveBody {
    path: Vec<String>,
    keep: Option<String>,
    value: Option<String>,
}

/// `POST /api/v1/cases/{id}/share` body: the districts the case is shared with besides
/// its owner (replacing those it was shared with).
#[derive(Deserialize)]
pub struct ShareBody {
    districts: Vec<String>,
}

/// Shares a case with other districts, as a supervisor of the owning district (or an
/// admin); returns the districts it is now shared with.
pub async fn share_case(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(body): Json<ShareBody>,
) -> AppResult<Json<Value>> {
    let districts = body
        .districts
        .iter()
        .map(|d| d.parse::<DistrictCode>())
        .collect::<Result<Vec<_>, _>>()?;
    let shared = review::share(&app, &user, &id, districts).await?;
    Ok(Json(
        json!({ "visible_to": shared.iter().map(|d| d.as_str()).collect::<Vec<_>>() }),
    ))
}

/// Resolves a conflict as the supervisor.
pub async fn resolve_conflict(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(body): Json<ResolveBody>,
) -> AppResult<Json<Value>> {
    let decision = match (body.keep, body.value) {
        (Some(shown), None) => review::Decision::Keep(shown),
        (None, Some(value)) => review::Decision::Write(value),
        _ => {
            return Err(AppError::BadRequest(
                "give either keep (one of the values, as shown) or value (a new value)".into(),
            ));
        }
    };
    review::resolve(&app, &user, &id, &body.path, decision).await?;
    Ok(Json(json!({ "resolved": body.path })))
}

/// Closes (销号) a re-inspected hazard as the supervisor.
pub async fn close_rectification(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path((id, finding)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    review::close_rectification(&app, &user, &id, &finding).await?;
    Ok(Json(json!({ "state": "closed" })))
}

/// Open rectifications in the user's scope (`?overdue=true` for notification systems),
/// major hazards first; supervisors and admins only.
pub async fn rectifications(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(filter): Query<BoardFilter>,
) -> AppResult<Json<Value>> {
    policy::require_supervisor(&user)?;
    let rows = app
        .storage
        .read(|conn| queries::board(conn, policy::scope(&user), &filter))?;
    Ok(Json(
        json!({ "today": queries::today().to_string(), "rectifications": rows }),
    ))
}

/// A case as JSON.
pub fn case_json(case: &Case) -> Value {
    json!({
        "id": case.id.to_string(),
        "enterprise": {
            "name": case.enterprise.name,
            "credit_code": case.enterprise.credit_code.as_str(),
            "district": case.enterprise.district.as_str(),
            "industry": case.enterprise.industry.code(),
            "risk_grade": case.enterprise.risk_grade.code(),
        },
        "type": case.case_type.code(),
        "district": case.district.as_str(),
        "visible_to": case.visible_to.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "team": case.team.iter().map(|m| json!({
            "user_id": m.user_id, "name": m.name, "department": m.department, "district": m.district.as_str(),
        })).collect::<Vec<_>>(),
        "opened_at": case.opened_at.to_rfc3339(),
        "opened_by": case.opened_by,
        "state": case.state.code(),
        "amends": case.amends.map(|id| id.to_string()),
        "review_events": case.review_events.iter().map(|e| json!({
            "kind": e.kind, "by": e.by, "at": e.at, "text": e.text,
        })).collect::<Vec<_>>(),
        "findings": case.findings.iter().map(|f| json!({
            "id": f.id.to_string(),
            "description": f.description,
            "level": f.level.code(),
            "category": f.category,
            "legal_basis": f.legal_basis,
            "place": f.place,
            "recorded_by": f.recorded_by,
            "recorded_at": f.recorded_at.to_rfc3339(),
            "rectification": f.rectification.as_ref().map(|r| json!({
                "measures": r.measures, "deadline": r.deadline.to_string(),
                "responsible": r.responsible, "state": r.state.code(),
                "evidence": r.evidence.iter().map(|p| p.sha256.as_str()).collect::<Vec<_>>(),
                "reinspection": r.reinspection.as_ref().map(|re| json!({
                    "note": re.note, "by": re.by, "at": re.at.to_rfc3339(),
                })),
            })),
            "violation": f.violation.as_ref().map(|v| json!({ "kind": v.kind.code(), "post": v.post, "person": v.person })),
            "photos": f.photos.iter().map(|p| json!({ "sha256": p.sha256, "thumbnail": p.thumbnail, "caption": p.caption })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
