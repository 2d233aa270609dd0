//! The server's one error type: JSON bodies `{"error": code, "message": …}`; and the
//! error answers that whole kinds of endpoint share, as the API's description gives them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::IntoResponses;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Missing, invalid or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Not there (or not visible: the same answer).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not of the media type the endpoint takes (JSON where JSON is expected).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is well-formed JSON of the wrong shape (a field missing or of the wrong
    /// type).
    #[error("{0}")]
    Unprocessable(String),
    /// The request conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The case changed on another server process after this one read it: nothing was
    /// written; read it again and retry.
    #[error("{0}")]
    Stale(String),
    /// The rule book refused the change.
    #[error("{0}")]
    Refused(anjian_core::rules::Refusal),
    /// The request (or what it would park on the server) is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// Too many attempts: try again after this many seconds.
    #[error("{message}")]
    TooMany {
        /// What to show.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The server is busy: try again after this many seconds.
    #[error("{message}")]
    Busy {
        /// What to show.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A storage or internal failure.
    #[error("{0}")]
    Internal(String),
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The stable code of the kind of error.
    #[schema(value_type = String, example = "not_found")]
    pub error: &'static str,
    /// What was wrong and what to do, in Chinese (with English in brackets where given).
    pub message: String,
    /// The rule book's rule that refused the change (`refused` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::Rule>, nullable = false)]
    pub rule: Option<&'static str>,
}

/// The answer of every endpoint that takes a token, when there is none that works.
#[derive(IntoResponses)]
pub enum SignedOut {
    /// No token, or an invalid, expired or revoked one (or a disabled account's): sign in
    /// again.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
}

/// The answers of every endpoint with a JSON body, when the body cannot be taken.
#[derive(IntoResponses)]
pub enum JsonBodyRefused {
    /// The body is larger than the endpoint accepts (8 KB for signing in, 64 KB for the
    /// rest).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not sent as JSON (`Content-Type: application/json`).
    #[response(status = 415)]
    NotJson(ErrorBody),
    /// The body is JSON of the wrong shape: a field missing, or of the wrong type.
    #[response(status = 422)]
    WrongShape(ErrorBody),
}

/// The server's result type.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// Says in `response` when to try again (`Retry-After`), for an error that has a time.
    pub fn tell_when_to_retry(&self, response: &mut Response) {
        if let AppError::TooMany { retry_after, .. } | AppError::Busy { retry_after, .. } = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after),
            );
        }
    }

    /// The HTTP status and the stable error code.
    pub fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::Stale(_) => (StatusCode::CONFLICT, "stale"),
            AppError::Refused(_) => (StatusCode::FORBIDDEN, "refused"),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AppError::TooMany { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            AppError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorBody {
            error: code,
            message: self.to_string(),
            rule: match &self {
                AppError::Refused(refusal) => Some(refusal.rule.code()),
                _ => None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        self.tell_when_to_retry(&mut response);
        response
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Internal(format!("storage: {e}"))
    }
}

impl From<anjian_core::Error> for AppError {
    fn from(e: anjian_core::Error) -> Self {
        match e {
            anjian_core::Error::Invalid { .. } => AppError::BadRequest(e.to_string()),
            anjian_core::Error::NotFound { .. } => AppError::NotFound(e.to_string()),
            anjian_core::Error::NotAllowed(_) => AppError::Conflict(e.to_string()),
            anjian_core::Error::InvalidDocument(_) => AppError::BadRequest(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}
