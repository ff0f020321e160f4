//! The OpenAPI 3 description of every route, served at `GET /api/v1/openapi.json`.
//! Each handler carries its own `#[utoipa::path]` and is registered with
//! `utoipa_axum::routes!`, so registering a route and describing it are one step; the
//! errors every route shares (CONTRACT §2) are added here from the route's properties.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::OpenApi as _;

use super::reply::json_response;
use super::schema;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "statusd",
        description = "A Rocket.Chat-compatible user status and presence server. Bodies, \
                       codes and errors follow the API reference (docs/API.md); DDP runs \
                       over the websocket at /websocket.",
    ),
    components(schemas(schema::ErrorBody))
)]
struct Base;

/// The served document: `Arc` so every request shares one serialisation.
#[derive(Clone, Default)]
pub struct Document(pub Arc<serde_json::Value>);

/// The description of the routes collected so far, completed: security schemes and the
/// responses every route of a kind may give.
pub fn finish(mut api: OpenApi) -> OpenApi {
    let base = Base::openapi();
    api.info = base.info;
    let components = api.components.get_or_insert_with(Default::default);
    // A logged-in route's `security` names both: `("userId" = [], "authToken" = [])`.
    for (name, header) in [("userId", "X-User-Id"), ("authToken", "X-Auth-Token")] {
        components.add_security_scheme(
            name,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(header))),
        );
    }
    if let Some(extra) = base.components {
        components.schemas.extend(extra.schemas);
    }
    for (path, item) in api.paths.paths.iter_mut() {
        let rest = path.starts_with("/api/v1/");
        let ops: Vec<(&str, &mut Operation)> = [
            ("get", item.get.as_mut()),
            ("post", item.post.as_mut()),
            ("put", item.put.as_mut()),
            ("delete", item.delete.as_mut()),
        ]
        .into_iter()
        .filter_map(|(method, op)| op.map(|op| (method, op)))
        .collect();
        let several = ops.len() > 1;
        for (method, op) in ops {
            op.operation_id = Some(operation_id(path, several.then_some(method)));
            add_shared_errors(op, rest);
        }
    }
    api
}

/// A unique operation id named after the route (handler names repeat across
/// families): `users.setStatus`, `api.info`, `settings.id.post`.
fn operation_id(path: &str, method: Option<&str>) -> String {
    let route = path.strip_prefix("/api/v1/").unwrap_or(path);
    let mut id = route
        .trim_start_matches('/')
        .replace(['{', '}'], "")
        .replace('/', ".");
    if id.is_empty() {
        id = "index".into();
    }
    if let Some(m) = method {
        id = format!("{id}.{m}");
    }
    id
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The errors of CONTRACT §2 that depend only on what kind of route this is.
fn add_shared_errors(op: &mut Operation, rest: bool) {
    let mut add = |code: StatusCode, description: &str| {
        op.responses
            .responses
            .entry(code.as_u16().to_string())
            .or_insert_with(|| error_response(description).into());
    };
    if !rest {
        return;
    }
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    if secured {
        add(
            StatusCode::UNAUTHORIZED,
            "Missing, unknown, expired or mismatched X-User-Id / X-Auth-Token",
        );
    }
    if has_body {
        add(
            StatusCode::BAD_REQUEST,
            "Unparsable JSON or a body of the wrong shape",
        );
        add(StatusCode::PAYLOAD_TOO_LARGE, "A body over the size limit");
    }
    add(
        StatusCode::TOO_MANY_REQUESTS,
        "Over the rate limit (per user, or per client IP when anonymous)",
    );
}

/// The description itself, as JSON.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document", body = Object)),
)]
pub async fn openapi_json(Extension(doc): Extension<Document>) -> Response {
    json_response(StatusCode::OK, doc.0.as_ref())
}
