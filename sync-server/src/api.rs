//! The HTTP API under `/api/v1/`: login, the catalog, and supervisors' case queries.

use std::sync::Arc;

use anjian_core::sync::{CatalogEntry, CatalogPage, DocumentId};
use anjian_core::{Case, CaseId, case_doc};
use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::policy;
use crate::users::{Role, User, token_hash};

/// The signed-in user of a request (bearer token in `Authorization`, or `?token=`).
pub struct AuthUser(pub User);

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> AppResult<AuthUser> {
        let token = token_from(parts)
            .ok_or_else(|| AppError::Unauthorized("sign in first: no token".into()))?;
        app.storage
            .user_for_token(&token_hash(&token))?
            .map(AuthUser)
            .ok_or_else(|| AppError::Unauthorized("invalid or revoked token; sign in again".into()))
    }
}

/// The token of a request, from the `Authorization: Bearer` header or `?token=`.
pub fn token_from(parts: &Parts) -> Option<String> {
    if let Some(header) = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = header.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    parts
        .uri
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token=").map(str::to_owned))
}

/// `POST /api/v1/login` body.
#[derive(Deserialize)]
pub struct Login {
    username: String,
    password: String,
    device_name: String,
    actor_id: String,
}

/// Signs in and binds the device; returns a token.
pub async fn login(
    State(app): State<Arc<AppState>>,
    Json(body): Json<Login>,
) -> AppResult<Json<Value>> {
    let storage = app.storage.clone();
    let (token, user) = app
        .passwords
        .run(move || {
            storage.login(
                &body.username,
                &body.password,
                &body.device_name,
                &body.actor_id,
            )
        })
        .await??;
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
    let page = app.storage.read(|conn| {
        let cursor: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM documents", [], |r| r.get(0))?;
        let mut stmt = conn.prepare_cached(
            "SELECT d.case_id, d.heads FROM documents d
             WHERE d.seq > ?1 AND d.seq <= ?2
               AND (?3 OR EXISTS (SELECT 1 FROM visibility v WHERE v.district = ?4 AND v.case_id = d.case_id))
             ORDER BY d.seq",
        )?;
        let rows = stmt.query_map(params![q.since, cursor, user.role == Role::Admin, user.district.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut documents = Vec::new();
        for row in rows {
            let (case, heads) = row?;
            let case: CaseId = case.parse()?;
            documents.push(CatalogEntry {
                document_id: DocumentId::of(case).to_string(),
                heads: heads.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect(),
            });
        }
        Ok(CatalogPage { cursor, documents })
    })?;
    Ok(Json(page))
}

/// Filters of the case list.
#[derive(Deserialize)]
pub struct CaseFilter {
    district: Option<String>,
    state: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

/// The cases this user may see, newest first.
pub async fn cases(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(f): Query<CaseFilter>,
) -> AppResult<Json<Value>> {
    let rows = app.storage.read(|conn| {
        let mut stmt = conn.prepare_cached(
            "SELECT c.case_id, c.enterprise_name, c.credit_code, c.industry, c.district, c.case_type, c.state,
                    c.opened_at, c.opened_by, c.findings, c.major_findings, c.conflicts, c.updated_at
             FROM cases c
             WHERE (?1 OR EXISTS (SELECT 1 FROM visibility v WHERE v.district = ?2 AND v.case_id = c.case_id))
               AND (?3 IS NULL OR c.district = ?3) AND (?4 IS NULL OR c.state = ?4)
             ORDER BY c.opened_at DESC, c.case_id LIMIT ?5 OFFSET ?6",
        )?;
        let rows = stmt.query_map(
            params![user.role == Role::Admin, user.district.as_str(), f.district, f.state, f.limit.clamp(1, 500), f.offset.max(0)],
            |r| {
                Ok(json!({
                    "id": r.get::<_, String>(0)?,
                    "enterprise": { "name": r.get::<_, String>(1)?, "credit_code": r.get::<_, String>(2)?, "industry": r.get::<_, String>(3)? },
                    "district": r.get::<_, String>(4)?,
                    "type": r.get::<_, String>(5)?,
                    "state": r.get::<_, String>(6)?,
                    "opened_at": r.get::<_, String>(7)?,
                    "opened_by": r.get::<_, String>(8)?,
                    "findings": r.get::<_, i64>(9)?,
                    "major_findings": r.get::<_, i64>(10)?,
                    "conflicts": r.get::<_, i64>(11)?,
                    "updated_at": r.get::<_, String>(12)?,
                }))
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })?;
    Ok(Json(json!({ "cases": rows })))
}

/// One case in full, with its conflicts and its history (device time and server receipt
/// time side by side). A case the user may not see is answered as one that does not exist.
pub async fn case(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let not_found = || AppError::NotFound(format!("no case {id}"));
    let case_id: CaseId = id.parse().map_err(|_| not_found())?;
    let mut doc = app.storage.load_document(case_id)?.ok_or_else(not_found)?;
    let case = case_doc::read(&doc)?;
    if !policy::can_see(&user, &case) {
        return Err(not_found());
    }
    let conflicts = case_doc::conflicts(&doc)?;
    let history = case_doc::history(&mut doc);
    let receipts: Vec<Value> = app.storage.read(|conn| {
        let mut stmt = conn.prepare_cached(
            "SELECT r.received_at, u.username FROM receipts r JOIN users u ON u.id = r.user_id WHERE r.change_hash = ?1",
        )?;
        let mut out = Vec::new();
        for entry in &history {
            let receipt: Option<(String, String)> =
                stmt.query_row([&entry.hash], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
            out.push(json!({
                "hash": entry.hash,
                "author": entry.author,
                "device": entry.device,
                "device_time": chrono::DateTime::from_timestamp(entry.device_time, 0).map(|t| t.to_rfc3339()),
                "action": entry.action,
                "received_at": receipt.as_ref().map(|r| r.0.clone()),
                "received_from": receipt.map(|r| r.1),
            }));
        }
        Ok(out)
    })?;
    let mut body = case_json(&case);
    body["document_id"] = json!(DocumentId::of(case_id).to_string());
    body["conflicts"] = json!(conflicts
        .iter()
        .map(|c| json!({
            "path": c.path,
            "values": c.values.iter().map(|v| json!({
                "value": v.value.to_string(), "written_by": v.written_by, "device": v.device,
                "device_time": chrono::DateTime::from_timestamp(v.device_time, 0).map(|t| t.to_rfc3339()),
            })).collect::<Vec<_>>(),
        }))
        .collect::<Vec<_>>());
    body["history"] = json!(receipts);
    Ok(Json(body))
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
            })),
            "violation": f.violation.as_ref().map(|v| json!({ "kind": v.kind.code(), "post": v.post, "person": v.person })),
            "photos": f.photos.iter().map(|p| json!({ "sha256": p.sha256, "thumbnail": p.thumbnail, "caption": p.caption })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
