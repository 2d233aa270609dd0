//! The server's one error type: JSON bodies `{"error": code, "message": …}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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
    /// The request conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
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

/// The server's result type.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// The HTTP status and the stable error code.
    pub fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
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
        let mut body = serde_json::json!({ "error": code, "message": self.to_string() });
        if let AppError::Refused(refusal) = &self {
            body["rule"] = serde_json::json!(refusal.rule.code());
        }
        let mut response = (status, Json(body)).into_response();
        if let AppError::TooMany { retry_after, .. } | AppError::Busy { retry_after, .. } = &self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after),
            );
        }
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
