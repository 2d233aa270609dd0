//! Supervisors' browser sessions: sign-in with the same accounts as the apps, a random
//! session id in a `Secure`, `HttpOnly`, `SameSite=Strict` cookie (stored only as its
//! SHA-256), and a CSRF token per session that every action must carry.

use std::sync::Arc;

use crate::db::params;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use maud::html;
use serde::Deserialize;

use super::{WebError, page};
use crate::auth::{
    self, ClientAddr, Viewer, constant_time_eq, cookie, cookie_name, same_origin, session_of,
};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::Storage;
use crate::users::{User, token_hash};

/// How long a session lasts: one working day.
const SESSION_HOURS: i64 = 12;
/// The cookie that carries the login form's CSRF token before there is a session.
const LOGIN_COOKIE: &str = "anjian_login";

impl Viewer {
    /// Checks the CSRF token a form sent.
    pub fn check_csrf(&self, sent: &str) -> Result<(), WebError> {
        if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(WebError(AppError::Forbidden(
                "表单已过期，请刷新页面后重试 (the form's CSRF token does not match)".into(),
            )))
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Viewer, Response> {
        if !same_origin(parts) {
            return Err(WebError(cross_origin()).into_response());
        }
        match session_of(app, &parts.headers) {
            Ok(Some(viewer)) => Ok(viewer),
            Ok(None) if parts.method == Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                Err(Redirect::to(&format!("/login?next={}", encode_query(&next))).into_response())
            }
            Ok(None) => Err(
                WebError(AppError::Unauthorized("请先登录 (sign in first)".into())).into_response(),
            ),
            Err(e) => Err(WebError(e).into_response()),
        }
    }
}

fn cross_origin() -> AppError {
    AppError::Forbidden("拒绝来自其他网站的请求 (cross-origin request refused)".into())
}

/// `?next=` of the login page.
#[derive(Deserialize)]
pub struct Next {
    #[serde(default)]
    next: String,
    #[serde(default)]
    failed: Option<String>,
}

/// `GET /login`: the sign-in form, with a fresh CSRF token in a cookie of its own.
pub async fn login_page(State(app): State<Arc<AppState>>, Query(q): Query<Next>) -> Response {
    let token = random_token();
    let body = html! {
        section.login {
            h1 { "安检 · 监管平台登录" }
            @if let Some(message) = q.failed.as_deref().and_then(failure) {
                p.error role="alert" { (message) }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(safe_next(&q.next));
                label { "用户名" input name="username" autocomplete="username" required autofocus; }
                label { "密码" input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "登录" }
            }
        }
    };
    let mut response = page("登录", None, body).into_response();
    set_cookie(
        &mut response,
        &format!(
            "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            secure(&app)
        ),
    );
    response
}

/// What the login page says after a failed sign-in: fixed texts only, so that a link
/// cannot make the page show words of its own.
fn failure(code: &str) -> Option<&'static str> {
    match code {
        "credentials" => Some("用户名或密码错误"),
        "disabled" => Some("账号已停用，请联系管理员"),
        "wait" => Some("登录失败次数过多，请稍后再试"),
        "busy" => Some("服务器正忙，请稍后再试"),
        _ => None,
    }
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`: checks the password, starts a session, and goes where the user was
/// going.
pub async fn login(
    State(app): State<Arc<AppState>>,
    ClientAddr(address): ClientAddr,
    parts: Parts,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let expected = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if !same_origin(&parts)
        || expected.is_empty()
        || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes())
    {
        return Err(WebError(AppError::Forbidden(
            "登录表单已过期，请刷新页面后重试 (the login form's CSRF token does not match)".into(),
        )));
    }
    let storage = app.storage.clone();
    let (username, password) = (form.username.trim().to_owned(), form.password);
    let name = username.clone();
    let checked = auth::sign_in(&app, &name, address, move || {
        storage.check_password(&username, &password)
    })
    .await;
    let user = match checked {
        Ok(user) => user,
        Err(
            e @ (AppError::Unauthorized(_)
            | AppError::Forbidden(_)
            | AppError::TooMany { .. }
            | AppError::Busy { .. }),
        ) => {
            let code = match e {
                AppError::Forbidden(_) => "disabled",
                AppError::TooMany { .. } => "wait",
                AppError::Busy { .. } => "busy",
                _ => "credentials",
            };
            let to = format!(
                "/login?next={}&failed={code}",
                encode_query(&safe_next(&form.next))
            );
            return Ok(Redirect::to(&to).into_response());
        }
        Err(e) => return Err(WebError(e)),
    };
    let id = create_session(&app.storage, &user)?;
    tracing::info!(user = %user.username, "web session started");
    let mut response = Redirect::to(&safe_next(&form.next)).into_response();
    set_cookie(
        &mut response,
        &format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            cookie_name(&app),
            SESSION_HOURS * 3600,
            secure(&app)
        ),
    );
    set_cookie(
        &mut response,
        &format!("{LOGIN_COOKIE}=; Path=/login; Max-Age=0{}", secure(&app)),
    );
    Ok(response)
}

/// A form that carries nothing but the CSRF token (sign-out, 销号).
#[derive(Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    pub csrf: String,
}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    if let Some(id) = cookie(&headers, cookie_name(&app)) {
        app.storage.write(|conn| {
            conn.execute(
                "DELETE FROM web_sessions WHERE session_hash = ?1",
                params![token_hash(&id)],
            )?;
            Ok(())
        })?;
    }
    let mut response = Redirect::to("/login").into_response();
    set_cookie(
        &mut response,
        &format!("{}=; Path=/; Max-Age=0{}", cookie_name(&app), secure(&app)),
    );
    Ok(response)
}

fn secure(app: &AppState) -> &'static str {
    if app.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

/// Starts a session for `user`; returns the session id for the cookie.
fn create_session(storage: &Storage, user: &User) -> AppResult<String> {
    let id = random_token();
    let now = Utc::now();
    storage.write(|conn| {
        conn.execute(
            "DELETE FROM web_sessions WHERE expires_at < ?1",
            params![now.to_rfc3339()],
        )?;
        conn.execute(
            "INSERT INTO web_sessions (session_hash, user_id, csrf_token, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                token_hash(&id),
                user.id,
                random_token(),
                now.to_rfc3339(),
                (now + Duration::hours(SESSION_HOURS)).to_rfc3339()
            ],
        )?;
        Ok(())
    })?;
    Ok(id)
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Where to go after signing in: only a path of this site. Browsers drop tabs and line
/// breaks from URLs and read a backslash as `/`, so `/\t/evil.example` would leave the site: any
/// control character, space or backslash, or a second leading slash, sends the user to
/// the case list instead.
pub fn safe_next(next: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    if local {
        next.to_owned()
    } else {
        "/cases".to_owned()
    }
}

/// Percent-encodes a query value.
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
