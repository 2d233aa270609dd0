//! Who is signed in on a request: a device's bearer token (apps and integrations), or a
//! supervisor's browser session (a cookie, with a CSRF token for anything but reads);
//! and from which address the request came.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::db::params;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use chrono::Utc;

use crate::error::{AppError, AppResult};
use crate::signin::{Admission, Outcome};
use crate::state::AppState;
use crate::storage::{Storage, user_row};
use crate::users::{TokenSession, User, token_hash};

/// The signed-in user of a request (bearer token in `Authorization`).
pub struct AuthUser(pub User);

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = AppError;

    /// A bearer token (apps and integrations), or a supervisor's session cookie (pages
    /// in a browser: photos, and API calls that must then carry `X-CSRF-Token` unless
    /// they only read).
    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> AppResult<AuthUser> {
        if let Some(token) = token_from(parts) {
            return app
                .storage
                .token_session(&token_hash(&token))?
                .map(|session| AuthUser(session.user))
                .ok_or_else(|| {
                    AppError::Unauthorized(
                        "invalid, expired or revoked token; sign in again".into(),
                    )
                });
        }
        let viewer = session_of(app, &parts.headers)?
            .ok_or_else(|| AppError::Unauthorized("sign in first: no token".into()))?;
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !same_origin(parts) || !constant_time_eq(sent, viewer.csrf.as_bytes()) {
                return Err(AppError::Forbidden(
                    "a request signed in by cookie must carry the session's X-CSRF-Token".into(),
                ));
            }
        }
        Ok(AuthUser(viewer.user))
    }
}

/// The signed-in device of a request: a bearer token only (a browser session belongs to
/// no device).
pub struct AuthDevice(pub TokenSession);

impl FromRequestParts<Arc<AppState>> for AuthDevice {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> AppResult<AuthDevice> {
        let token = token_from(parts).ok_or_else(|| {
            AppError::Unauthorized("sign in on a device first: no bearer token".into())
        })?;
        app.storage
            .token_session(&token_hash(&token))?
            .map(AuthDevice)
            .ok_or_else(|| {
                AppError::Unauthorized("invalid, expired or revoked token; sign in again".into())
            })
    }
}

/// The token of a request, from the `Authorization: Bearer` header.
pub fn token_from(parts: &Parts) -> Option<String> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    Some(header.strip_prefix("Bearer ")?.trim().to_owned())
}

/// The token of a sync socket's upgrade: from the header, or from `?token=`, since a
/// browser's WebSocket cannot set a header. Nowhere else: a token in a URL ends up in the
/// logs of every proxy it passes.
pub fn socket_token_from(parts: &Parts) -> Option<String> {
    token_from(parts).or_else(|| {
        parts
            .uri
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token=").map(str::to_owned))
    })
}

/// The signed-in user of a page, with the CSRF token their forms carry.
pub struct Viewer {
    /// Who.
    pub user: User,
    /// The session's CSRF token.
    pub csrf: String,
}

/// The session a request's cookie names, if it is valid and its user is enabled.
pub fn session_of(app: &AppState, headers: &HeaderMap) -> AppResult<Option<Viewer>> {
    let Some(id) = cookie(headers, cookie_name(app)) else {
        return Ok(None);
    };
    find_session(&app.storage, &id)
}

/// Whether an unsafe request comes from this site's own pages (checked on every action
/// besides the CSRF token; `SameSite=Strict` already keeps the cookie off cross-site
/// requests).
pub fn same_origin(parts: &Parts) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if parts
        .headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return false;
    }
    let (Some(origin), Some(host)) = (parts.headers.get(ORIGIN), parts.headers.get(HOST)) else {
        // Non-browser clients send no Origin; the CSRF token still has to match.
        return true;
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = host.to_str().unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host)
}

/// The session cookie's name: with `Secure`, the `__Host-` prefix makes browsers refuse
/// it unless it is secure, host-only and for the whole site.
pub fn cookie_name(app: &AppState) -> &'static str {
    if app.settings.secure_cookies {
        "__Host-anjian_session"
    } else {
        "anjian_session"
    }
}

fn find_session(storage: &Storage, id: &str) -> AppResult<Option<Viewer>> {
    storage.read(|conn| {
        conn.query_opt(
            "SELECT u.id, u.username, u.name, u.role, u.district, u.department, u.disabled, s.csrf_token
             FROM web_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.session_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0",
            params![token_hash(id), Utc::now().to_rfc3339()],
            |r| Ok((user_row(r)?, r.get::<String>(7)?)),
        )?
        .map(|(user, csrf)| Ok(Viewer { user, csrf }))
        .transpose()
    })
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.to_owned())
        })
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The address a request came from (unknown in handler tests that send requests without
/// a connection).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientAddr, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip()),
        ))
    }
}

/// A sign-in held back for `wait`, and why (in Chinese and English).
fn held_back(wait: std::time::Duration, why: &str, why_en: &str) -> AppError {
    let seconds = wait.as_secs().max(1);
    AppError::TooMany {
        message: format!("{why}，请 {seconds} 秒后再试 ({why_en}; try again in {seconds} s)"),
        retry_after: seconds,
    }
}

/// One sign-in attempt as `name` from `address`: held back with 429 and `Retry-After`
/// while earlier failures (or the name's many sign-ins) say so, turned away with 503 when
/// the password threads' queue is full, and otherwise `check` (the password check) runs
/// on a password thread, ahead of the queue when the address signed in as the name
/// before. The outcome is recorded for the delays of later attempts.
pub async fn sign_in<T: Send + 'static>(
    app: &AppState,
    name: &str,
    address: IpAddr,
    check: impl FnOnce() -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    let known = match app.signin.admit(name, address)? {
        Admission::Go { known } => known,
        Admission::Wait(wait) => {
            return Err(held_back(
                wait,
                "登录失败次数过多",
                "too many failed sign-ins",
            ));
        }
        Admission::TooOften(wait) => {
            return Err(held_back(
                wait,
                "该账号登录过于频繁",
                "this account signed in too often",
            ));
        }
    };
    let attempt = app.signin.attempt(name, address);
    let outcome = match app.passwords.try_run(known, check).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AppError::Busy {
            message:
                "服务器正忙，请稍后再试 (the server is busy signing others in; try again shortly)"
                    .into(),
            retry_after: 1,
        }),
    };
    let recorded = match &outcome {
        Ok(_) => Outcome::Success,
        Err(AppError::Unauthorized(_)) => Outcome::Failure,
        // The password was checked, and the device or its key refused (`Storage::login`).
        Err(AppError::Conflict(_) | AppError::Forbidden(_)) => Outcome::Refused,
        Err(_) => Outcome::Unchecked,
    };
    attempt.record(recorded);
    outcome
}
