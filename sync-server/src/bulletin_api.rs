//! `/api/v1/bulletins`: a bulletin as JSON, XLSX or CSV, for supervisors and admins (by
//! token, or by the pages' session cookie so that the pages' export links work).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthUser;
use crate::error::{AppResult, ErrorBody, SignedOut};
use crate::export;
use crate::extract::{Json, Query};
use crate::schemas;
use crate::state::AppState;
use crate::stats::{self, Bulletin, PeriodQuery};

/// The bulletin as JSON
///
/// Counts and trends of cases and findings over the period (both days included, at most
/// three years, by default the last 30 days up to today in China), in the user's scope;
/// supervisors and admins only.
#[utoipa::path(
    get,
    operation_id = "bulletin",
    path = "/api/v1/bulletins",
    tag = "bulletins",
    params(PeriodQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The bulletin", body = Bulletin),
        (status = 400, description = "A day is not a date, the period is reversed or longer than three years, or a parameter is given twice", body = ErrorBody),
        SignedOut,
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ),
)]
pub async fn json(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(query): Query<PeriodQuery>,
) -> AppResult<Json<Bulletin>> {
    Ok(Json(
        app.reading(user.id, move |app| stats::for_user(app, &user, &query))
            .await?,
    ))
}

/// The bulletin as a workbook
///
/// The bulletin's tables as sheets, each with a Chinese header row, as an attachment
/// named `bulletin-FROM-TO.xlsx`.
#[utoipa::path(
    get,
    operation_id = "bulletin_xlsx",
    path = "/api/v1/bulletins.xlsx",
    tag = "bulletins",
    params(PeriodQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The workbook", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = schemas::Binary,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"bulletin-FROM-TO.xlsx\"`"))),
        (status = 400, description = "A day is not a date, the period is reversed or longer than three years, or a parameter is given twice", body = ErrorBody),
        SignedOut,
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ),
)]
pub async fn xlsx(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(query): Query<PeriodQuery>,
) -> AppResult<Response> {
    let (bulletin, bytes) = app
        .reading(user.id, move |app| {
            let bulletin = stats::for_user(app, &user, &query)?;
            let bytes = export::xlsx(&bulletin)?;
            Ok((bulletin, bytes))
        })
        .await?;
    Ok(attachment(&bulletin, "xlsx", export::XLSX_TYPE, bytes))
}

/// The bulletin as CSV
///
/// The bulletin's tables as sections of one CSV file (UTF-8 with a byte-order mark, CRLF
/// line ends), as an attachment named `bulletin-FROM-TO.csv`.
#[utoipa::path(
    get,
    operation_id = "bulletin_csv",
    path = "/api/v1/bulletins.csv",
    tag = "bulletins",
    params(PeriodQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The CSV file", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"bulletin-FROM-TO.csv\"`"))),
        (status = 400, description = "A day is not a date, the period is reversed or longer than three years, or a parameter is given twice", body = ErrorBody),
        SignedOut,
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ),
)]
pub async fn csv(
    State(app): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
    Query(query): Query<PeriodQuery>,
) -> AppResult<Response> {
    let bulletin = app
        .reading(user.id, move |app| stats::for_user(app, &user, &query))
        .await?;
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
