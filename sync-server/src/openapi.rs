//! The OpenAPI description of `/api/v1/`, generated from the handlers' `#[utoipa::path]`
//! attributes and the types they take and answer with (`schemas` holds the named schemas
//! they share), served at `/api/v1/openapi.json`.

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::extract::Json;
use crate::{api, blobs, bulletin_api};

/// The description of the HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Anjian sync server API",
        description = "The HTTP API of the Anjian sync server under `/api/v1/`: signing in, \
            the catalog of documents to sync, supervisors' case queries and review actions, \
            the rectification board, bulletins, and photo blobs. The sync itself is a \
            WebSocket at `/sync` (docs/protocol.md). Every endpoint but signing in and this \
            description takes a token from `POST /api/v1/login` as `Authorization: Bearer \
            TOKEN` (or a supervisor's browser session cookie, with which \
            anything but `GET`/`HEAD` must carry the session's `X-CSRF-Token`). Every error \
            is `{\"error\": code, \"message\": …}`, the message in Chinese."
    ),
    paths(
        api::login,
        api::catalog,
        api::cases,
        api::case,
        api::proofs,
        api::number_blocks,
        api::review_case,
        api::resolve_conflict,
        api::share_case,
        api::close_rectification,
        api::follow_up,
        api::rectifications,
        api::documents,
        bulletin_api::json,
        bulletin_api::xlsx,
        bulletin_api::csv,
        blobs::get,
        blobs::head,
        blobs::put,
        blobs::patch,
        document,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "sync", description = "Signing in and the catalog, for the apps' sync"),
        (name = "cases", description = "Supervisors' case queries and review actions"),
        (name = "bulletins", description = "Law-enforcement bulletins (执法通报)"),
        (name = "blobs", description = "Photo originals and thumbnails, uploads resumable"),
        (name = "description", description = "This description"),
    )
)]
pub struct ApiDoc;

/// The description, as JSON.
#[utoipa::path(
    get,
    operation_id = "openapi",
    path = "/api/v1/openapi.json",
    tag = "description",
    responses((status = 200, description = "The OpenAPI description of this API", body = Object)),
)]
pub async fn document() -> Json<Value> {
    Json(described())
}

/// The description as JSON. utoipa 5 writes the fields of a response's links in snake
/// case (`operation_id`), where OpenAPI spells them in camel case (`operationId`) like
/// every other field, and tools then find links that name no operation: they are renamed
/// here.
pub fn described() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the description is JSON");
    let operations = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let links = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("links").and_then(Value::as_object_mut))
            .flat_map(|links| links.values_mut())
            .filter_map(Value::as_object_mut);
        for link in links {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
    doc
}

/// The security scheme `bearer`: a token from `POST /api/v1/login`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "A token from `POST /api/v1/login` (64 hex digits), valid for \
                             `token_days`",
                        ))
                        .build(),
                ),
            );
    }
}
