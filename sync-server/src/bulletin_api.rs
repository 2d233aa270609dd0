//! `/api/v1/bulletins`: a bulletin as JSON, XLSX or CSV, for supervisors and admins (by
//! token, or by the pages' session cookie so that the pages' export links work).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::export;
use crate::state::AppState;
use crate::stats::{self, Bulletin, PeriodQuery};

/// `GET /api/v1/bulletins?from=&to=`: the bulletin as JSON.
pub async fn json(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(query): Query<PeriodQuery>,
) -> AppResult<Json<Bulletin>> {
    Ok(Json(stats::for_user(&app, &user, &query)?))
}

/// `GET /api/v1/bulletins.xlsx?from=&to=`: the bulletin as a workbook.
pub async fn xlsx(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(query): Query<PeriodQuery>,
) -> AppResult<Response> {
    let bulletin = stats::for_user(&app, &user, &query)?;
    let bytes = export::xlsx(&bulletin)?;
    Ok(attachment(&bulletin, "xlsx", export::XLSX_TYPE, bytes))
}

/// `GET /api/v1/bulletins.csv?from=&to=`: the bulletin as CSV (UTF-8 with BOM).
pub async fn csv(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(query): Query<PeriodQuery>,
) -> AppResult<Response> {
    let bulletin = stats::for_user(&app, &user, &query)?;
    let text = export::csv(&bulletin);
    Ok(attachment(
        &bulletin,
        "csv",
        export::CSV_TYPE,
        text.into_bytes(),
    ))
}

/// A download named after the period; never cached, as it holds enforcement data.
fn attachment(bulletin: &Bulletin, ext: &str, mime: &'static str, bytes: Vec<u8>) -> Response {
    let name = format!(
        "attachment; filename=\"bulletin-{}-{}.{ext}\"",
        bulletin.period.from, bulletin.period.to
    );
    (
        [
            (CONTENT_TYPE, mime.to_owned()),
            (CONTENT_DISPOSITION, name),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response()
}
