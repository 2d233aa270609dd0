//! The supervisors' pages under `/`: server-rendered HTML, Chinese first, no script. Every
//! page reads through the same queries and policy as the `/api/v1/` endpoints, and every
//! action is a form carrying the session's CSRF token.

pub mod bulletins;
pub mod cases;
pub mod charts;
pub mod documents;
pub mod follow_up;
pub mod rectifications;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

use crate::auth::Viewer;
use crate::error::AppError;
use crate::state::AppState;
use anjian_core::Role;

/// The pages' routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/cases") }))
        .route(
            "/login",
            get(session::login_page)
                .post(session::login)
                .layer(axum::extract::DefaultBodyLimit::max(crate::FORM_BODY_BYTES)),
        )
        .route("/logout", post(session::logout))
        .route("/cases", get(cases::list))
        .route("/cases/{id}", get(cases::show))
        .route("/cases/{id}/evidence", get(cases::evidence))
        .route("/cases/{id}/review", post(cases::review))
        .route("/cases/{id}/resolve", post(cases::resolve))
        .route("/cases/{id}/findings/{finding}/close", post(cases::close))
        .route(
            "/cases/{id}/findings/{finding}/steps",
            post(follow_up::record),
        )
        .route("/cases/{id}/photos/{sha256}", get(cases::photo))
        .route("/rectifications", get(rectifications::board))
        .route("/bulletins", get(bulletins::show))
        .route("/documents", get(documents::register))
        .route("/static/app.css", get(stylesheet))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers every page carries: no framing, no inline script, no sniffing, no caching of
/// pages that hold evidence.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'none'; frame-ancestors 'none'; form-action 'self'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

/// A whole page: the layout around `body`, with the navigation when someone is signed in.
pub fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · 安检监管平台" }
                link rel="stylesheet" href="/static/app.css";
            }
            body {
                header.top {
                    a.brand href="/cases" { "安检 · 监管平台" }
                    @if let Some(viewer) = viewer {
                        nav {
                            a href="/cases" { "案件审核" }
                            @if viewer.user.role != Role::Inspector {
                                a href="/rectifications" { "隐患整改" }
                                a href="/bulletins" { "执法通报" }
                                a href="/documents" { "文书台账" }
                            }
                        }
                        div.who {
                            span { (viewer.user.name) " · " (role_label(viewer.user.role)) " · " (viewer.user.district.label()) }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button.link type="submit" { "退出" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The address of the page `path` with the non-empty `pairs` of its filters, the page
/// size asked for, and from row `offset`.
fn paged(path: &str, pairs: &[(&str, &str)], limit: Option<i64>, offset: i64) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if !value.is_empty() {
            query.append_pair(key, value);
        }
    }
    if let Some(limit) = limit {
        query.append_pair("limit", &limit.to_string());
    }
    if offset > 0 {
        query.append_pair("offset", &offset.to_string());
    }
    format!("{path}?{}", query.finish())
}

/// The county-level districts the server knows by name, for a filter's `list`
/// (`#districts`): the filter takes a code, and the browser offers 黄浦区 for 310101 as one
/// types. Provinces and cities (codes ending in `00`) own no cases and are left out.
pub fn district_choices() -> Markup {
    let counties = anjian_core::districts()
        .iter()
        .filter(|(code, _)| !code.ends_with("00"));
    html! {
        datalist #districts {
            @for (code, name) in counties { option value=(code) { (name) } }
        }
    }
}

/// A role as supervisors read it.
pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Inspector => "执法检查人员",
        Role::Supervisor => "监管负责人",
        Role::Admin => "管理员",
    }
}

/// An error shown as a page (the same codes as the API's JSON errors).
#[derive(Debug)]
pub struct WebError(pub AppError);

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        WebError(e)
    }
}

impl From<anjian_core::Error> for WebError {
    fn from(e: anjian_core::Error) -> Self {
        WebError(e.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, code) = self.0.parts();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.0, "page failed");
        }
        let heading = match status {
            StatusCode::UNAUTHORIZED => "请先登录",
            StatusCode::FORBIDDEN => "无权操作",
            StatusCode::NOT_FOUND => "未找到",
            StatusCode::BAD_REQUEST => "输入有误",
            StatusCode::CONFLICT => "无法执行",
            StatusCode::TOO_MANY_REQUESTS => "操作过于频繁",
            StatusCode::SERVICE_UNAVAILABLE => "服务器繁忙",
            _ => "服务器出错",
        };
        // What was not found is named by the link, which anyone may write: the page says
        // so in words of its own, never in the link's.
        let message = match status {
            StatusCode::NOT_FOUND => "您要查看的内容不存在，或您无权查看。".to_owned(),
            _ => self.0.to_string(),
        };
        let body = html! {
            section.error-page data-error=(code) {
                h1 { (heading) }
                p { (message) }
                p { a href="/cases" { "返回案件列表" } }
            }
        };
        let mut response = (status, page(heading, None, body)).into_response();
        self.0.tell_when_to_retry(&mut response);
        response
    }
}
