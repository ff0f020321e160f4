//! Middleware shared by the routes: request metrics, authentication, rate limits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::{client_ip, Caller};
use crate::app::Ctx;
use crate::auth::defaults::Permission;
use crate::error::Error;
use crate::logging::{self, AccessUser};
use crate::settings::{self, Values};

/// Counts every request by route and status (unknown routes share one label), makes
/// business errors name the REST route they came from, and writes the access log.
pub async fn track(State(app): State<Ctx>, req: Request, next: Next) -> Response {
    // Cheap to keep (shared, not copied): the route template and the URI.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let uri = req.uri().clone();
    let access = app
        .cfg
        .access_log
        .then(|| (req.method().clone(), Instant::now()));
    let mut resp = next.run(req).await;
    if let Some(name) = uri.path().strip_prefix("/api/v1/") {
        resp = name_route_in_error(resp, name);
    }
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    app.metrics.count_request(route, resp.status().as_u16());
    if let Some((method, started)) = access {
        let user = resp.extensions().get::<AccessUser>().map(|u| u.0.as_str());
        logging::access(
            method.as_str(),
            route,
            resp.status().as_u16(),
            started.elapsed(),
            user,
        );
    }
    resp
}

/// CONTRACT §2: a business error's body carries `"details":{"method":"<route name>"}`.
/// Handlers and the rules they share build errors without knowing the route; the
/// error travels in the response extensions and is re-rendered here, headers kept.
fn name_route_in_error(mut resp: Response, route: &str) -> Response {
    let Some(err) = resp.extensions_mut().remove::<ApiError>() else {
        return resp;
    };
    let body = serde_json::to_vec(&err.route_body(route)).unwrap_or_else(|_| b"{}".to_vec());
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Resolves `X-User-Id` + `X-Auth-Token` to the caller, or answers 401; then applies
/// the rate limit as the caller. One middleware for both, in this order (401 before
/// 429), because every middleware layer costs an allocation and a boxed future on
/// every request.
pub async fn require_auth(State(app): State<Ctx>, mut req: Request, next: Next) -> Response {
    let found = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        match (header("x-user-id"), header("x-auth-token")) {
            (Some(user_id), Some(token)) => app.authenticate(user_id, token),
            _ => None,
        }
    };
    match found {
        Some((user, token)) => {
            let logged = app.cfg.access_log.then(|| AccessUser(user.id.clone()));
            let caller = Caller { user, token };
            let limit = limit_for(&app, Some(&caller), &req);
            req.extensions_mut().insert(caller);
            let mut resp = limited(&app, limit, req, next).await;
            if let Some(logged) = logged {
                resp.extensions_mut().insert(logged);
            }
            resp
        }
        None => ApiError::Unauthenticated.into_response(),
    }
}

fn set_limit_headers(resp: &mut Response, limit: u64, remaining: u64, reset_in: Duration) {
    let reset_at = chrono::Utc::now().timestamp_millis() + reset_in.as_millis() as i64;
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset_at));
}

/// The REST rate limit (CONTRACT §2): per user when authenticated, else per client IP,
/// per route and method; exempt with `api-bypass-rate-limit`. Authenticated routes get
/// it from `require_auth`; this layer is for the routes anyone may call.
pub async fn rate_limit(State(app): State<Ctx>, req: Request, next: Next) -> Response {
    let limit = limit_for(&app, None, &req);
    limited(&app, limit, req, next).await
}

/// What counts a call: the limiter key and the limit, or None when not limited.
struct Limit {
    key: String,
    calls: u64,
    window: Duration,
}

fn limit_for(app: &Ctx, caller: Option<&Caller>, req: &Request) -> Option<Limit> {
    let (calls, window_ms) = {
        let m = app.model.read();
        if !m.value(&settings::RATE_LIMITER)
            || caller
                .is_some_and(|c| m.has_permission(&c.user, Permission::ApiBypassRateLimit.id()))
        {
            return None;
        }
        (
            m.value(&settings::RATE_LIMIT_CALLS).max(0) as u64,
            m.value(&settings::RATE_LIMIT_TIME).max(1) as u64,
        )
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    let who = match caller {
        Some(c) => format!("user:{}", c.user.id),
        None => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            format!(
                "ip:{}",
                client_ip(req.headers(), peer, app.cfg.http_forwarded_count)
            )
        }
    };
    Some(Limit {
        key: format!("{who}|{}{}", route, req.method()),
        calls,
        window: Duration::from_millis(window_ms),
    })
}

async fn limited(app: &Ctx, limit: Option<Limit>, req: Request, next: Next) -> Response {
    let Some(limit) = limit else {
        return next.run(req).await;
    };
    let d = app
        .limiter
        .hit(&limit.key, limit.calls, limit.window, Instant::now());
    if !d.allowed {
        let mut resp = ApiError::from(Error::TooManyRequests {
            wait_secs: d.reset_in.as_millis().div_ceil(1000) as u64,
        })
        .into_response();
        set_limit_headers(&mut resp, d.limit, 0, d.reset_in);
        return resp;
    }
    let mut resp = next.run(req).await;
    set_limit_headers(&mut resp, d.limit, d.remaining, d.reset_in);
    resp
}
