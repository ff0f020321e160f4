//! The REST surface: one small router per family, merged here with the middleware
//! every route shares (metrics, authentication, rate limits, JSON errors).

pub mod auth;
mod avatar;
mod calendar;
mod calendars;
mod claims;
mod compat;
mod custom_status;
mod dnd;
pub mod error;
pub mod extract;
mod history;
mod method_call;
mod middleware;
pub mod openapi;
mod permissions;
pub mod preferences;
mod presence;
mod reply;
pub(crate) mod schema;
mod settings;
pub(crate) mod status;
mod strict;
mod users;
mod users_admin;
pub mod views;
mod webhooks;
mod websocket;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Router;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::ApiError;
use self::reply::{json_response, ok};
use crate::app::Ctx;

/// The Rocket.Chat version clients gate features on (`RC_COMPAT_VERSION`), and
/// statusd's own; with the credentials of a holder of `get-server-info`, Rocket.Chat's
/// `info` object too.
#[utoipa::path(get, path = "/api/info", tag = "meta",
    params(
        ("X-User-Id" = Option<String>, Header),
        ("X-Auth-Token" = Option<String>, Header),
    ),
    responses((status = 200, description = "Versions", body = schema::InfoBody)))]
async fn info(State(app): State<Ctx>, headers: axum::http::HeaderMap) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let privileged = match (header("x-user-id"), header("x-auth-token")) {
        (Some(id), Some(token)) => app.authenticate(id, token).is_some_and(|(user, _)| {
            app.has_permission(&user, crate::auth::defaults::Permission::GetServerInfo)
        }),
        _ => false,
    };
    ok(&schema::InfoBody {
        info: privileged.then(|| schema::ServerInfo {
            build: schema::BuildInfo {
                arch: std::env::consts::ARCH,
                cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
                platform: std::env::consts::OS,
                statusd_version: env!("CARGO_PKG_VERSION"),
            },
            commit: schema::CommitInfo {
                hash: option_env!("STATUSD_COMMIT"),
            },
            version: &app.cfg.rc_compat_version,
        }),
        statusd: env!("CARGO_PKG_VERSION"),
        success: true,
        version: &app.cfg.rc_compat_version,
    })
}

/// Liveness and readiness: can this instance commit (store) and fan out (NATS)?
#[utoipa::path(get, path = "/api/health", tag = "meta", responses(
    (status = 200, description = "Healthy", body = schema::HealthBody),
    (status = 503, description = "The store or NATS is unreachable", body = schema::HealthBody),
))]
async fn health(State(app): State<Ctx>) -> Response {
    let store_ok = app.store_answers().await;
    let nats_ok = app.nats_connected();
    let healthy = store_ok && nats_ok.unwrap_or(true);
    let body = schema::HealthBody {
        connections: app.hub.live(),
        instance: &app.instance_id,
        nats: nats_ok,
        status: if healthy { "ok" } else { "unavailable" },
        store: store_ok,
        success: healthy,
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(code, &body)
}

/// Prometheus metrics. With `METRICS_TOKEN` set, only for `Authorization: Bearer
/// <METRICS_TOKEN>`; with `METRICS_BIND` set, only on that address (404 here).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    params(("Authorization" = Option<String>, Header, description = "Bearer METRICS_TOKEN, when set")),
    responses(
    (status = 200, description = "OpenMetrics text", body = String,
     content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    (status = 401, description = "METRICS_TOKEN is set and the bearer token is missing or wrong",
     body = schema::ErrorBody),
    (status = 404, description = "METRICS_BIND is set: /metrics is served on that address only",
     body = schema::ErrorBody),
))]
async fn metrics(State(app): State<Ctx>, headers: axum::http::HeaderMap) -> Response {
    if app.cfg.metrics_bind.is_some() {
        return ApiError::NotFound.into_response();
    }
    metrics_text(app, headers).await
}

/// `/metrics` on the `METRICS_BIND` listener (not part of the API's document).
#[utoipa::path(get, path = "/metrics", tag = "meta", responses(
    (status = 200, description = "OpenMetrics text", body = String),
    (status = 401, description = "METRICS_TOKEN is set and the bearer token is missing or wrong"),
))]
async fn metrics_only(State(app): State<Ctx>, headers: axum::http::HeaderMap) -> Response {
    metrics_text(app, headers).await
}

async fn metrics_text(app: Ctx, headers: axum::http::HeaderMap) -> Response {
    if let Some(want) = &app.cfg.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared as hashes: equal lengths, so the time taken says nothing about it.
        let hash = crate::auth::secrets::hash_token;
        if !crate::auth::secrets::secrets_equal(&hash(given), &hash(want)) {
            return ApiError::Unauthenticated.into_response();
        }
    }
    app.metrics.set_scrape(&app.scrape().await);
    let mut resp = app.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Every route with its description: registering a route through `routes!` is what
/// puts it in the OpenAPI document, so the two cannot drift apart.
fn routes(app: &Ctx, document: openapi::Document) -> OpenApiRouter<Ctx> {
    // Routes that need a logged-in caller: authentication first, then the rate limit.
    let authed = OpenApiRouter::new()
        .merge(auth::authed_routes())
        .merge(status::routes())
        .merge(users::authed_routes())
        .merge(settings::authed_routes())
        .merge(permissions::routes())
        .merge(history::routes())
        .merge(custom_status::routes())
        .merge(webhooks::routes())
        .merge(calendar::routes())
        .merge(calendars::routes())
        .merge(preferences::routes())
        .merge(compat::routes())
        .merge(users_admin::routes())
        .merge(presence::routes())
        .merge(claims::routes())
        .merge(dnd::routes())
        // Authentication, then the rate limit as the caller (one layer does both).
        .route_layer(from_fn_with_state(app.clone(), middleware::require_auth));
    // Routes anyone may call; limited per client IP.
    let public = OpenApiRouter::new()
        .merge(auth::public_routes())
        .merge(users::public_routes())
        .merge(settings::public_routes())
        // The document rides on its own route only: as a layer of the whole router it
        // was one more extension to insert and drop on every request.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(openapi::openapi_json))
                .route_layer(Extension(document)),
        )
        .route_layer(from_fn_with_state(app.clone(), middleware::rate_limit));
    // Full paths (`/api/v1/…` in each handler's description) rather than `nest`: a
    // nested router strips the prefix from every request's URI (a new URI each time)
    // and routes it twice, a measurable share of a cheap read like users.getStatus.
    OpenApiRouter::new()
        .merge(authed)
        .merge(public)
        .routes(routes!(info))
        .routes(routes!(metrics))
        .routes(routes!(health))
        // Authenticated inside (method.call) and limited per method, as the websocket's
        // methods are, not by the REST limiter (Rocket.Chat's `rateLimiterOptions: false`).
        .merge(method_call::routes())
        .merge(avatar::routes())
        .merge(websocket::routes())
        .merge(crate::web::routes())
}

/// The router of the `METRICS_BIND` listener: `/metrics` and nothing else.
pub fn metrics_router(app: Ctx) -> Router {
    let (router, _) = OpenApiRouter::new()
        .routes(routes!(metrics_only))
        .split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

pub fn router(app: Ctx) -> Router {
    // The document describes the routes and is served by one of them: collect it from
    // a first build of the routes, then build the router that serves it.
    let (_, api) = routes(&app, openapi::Document::default()).split_for_parts();
    let document = serde_json::to_value(openapi::finish(api)).unwrap_or(Value::Null);
    let (router, _) =
        routes(&app, openapi::Document(std::sync::Arc::new(document))).split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(app.clone(), middleware::track))
        .layer(DefaultBodyLimit::max(app.cfg.max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            std::time::Duration::from_secs(app.cfg.http_body_timeout_secs),
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &schema::ErrorBody {
                        error: "Internal server error".into(),
                        ..Default::default()
                    },
                )
            },
        ))
        .with_state(app)
}
