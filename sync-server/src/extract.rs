//! The API's extractors: axum's `Json`, `Query` and `Path`, and a body of bytes, whose
//! rejections are `AppError`s, so that a malformed request is answered like every other
//! error, `{"error": code, "message": …}` with a message in Chinese, instead of axum's
//! plain text. The statuses stay axum's: 400 for what cannot be parsed, 413 for a body
//! over the route's limit, 415 for a body that is not JSON, 422 for JSON of the wrong
//! shape.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// A JSON body (and a JSON answer), refused as an `AppError`.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The query string, refused as an `AppError`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

/// The path's parameters, refused as an `AppError`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

/// The whole body as bytes (up to the route's limit), refused as an `AppError`.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Body, AppError> {
        Ok(Body(Bytes::from_request(request, state).await?))
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> AppError {
        let detail = rejection.body_text();
        match rejection {
            JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType(
                "请求体须为 JSON (send the body as JSON with Content-Type: application/json)"
                    .into(),
            ),
            JsonRejection::JsonSyntaxError(_) => {
                AppError::BadRequest(format!("请求体不是有效的 JSON ({detail})"))
            }
            JsonRejection::JsonDataError(_) => {
                AppError::Unprocessable(format!("请求体的字段有误 ({detail})"))
            }
            JsonRejection::BytesRejection(rejection) => rejection.into(),
            other => rejected(other.status(), "请求体有误", other.body_text()),
        }
    }
}

impl From<BytesRejection> for AppError {
    fn from(rejection: BytesRejection) -> AppError {
        rejected(rejection.status(), "请求体有误", rejection.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> AppError {
        rejected(rejection.status(), "查询参数有误", rejection.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> AppError {
        rejected(rejection.status(), "路径参数有误", rejection.body_text())
    }
}

/// A rejection as the error of its status: too large, malformed, or (a route whose
/// extractors do not fit it, never the client's doing) internal.
fn rejected(status: StatusCode, what: &str, detail: String) -> AppError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge(format!(
            "请求体过大 (the body is larger than this endpoint accepts: {detail})"
        )),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            AppError::UnsupportedMediaType(format!("{what} ({detail})"))
        }
        StatusCode::UNPROCESSABLE_ENTITY => AppError::Unprocessable(format!("{what} ({detail})")),
        status if status.is_client_error() => AppError::BadRequest(format!("{what} ({detail})")),
        _ => AppError::Internal(format!("{what}: {detail}")),
    }
}
