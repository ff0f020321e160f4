//! The websocket upgrades: `/websocket` (DDP, one frame per message) and Meteor's
//! SockJS path `/sockjs/<server>/<session>/websocket` (DDP in SockJS framing, for older
//! clients such as libpurple's `purple-rocketchat`), plus `/sockjs/info`. Each hands the
//! connection to the realtime layer (`realtime::serve`), which speaks DDP on it.

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::ClientIp;
use super::schema;
use crate::app::Ctx;
use crate::realtime::{sockjs, Transport};
use crate::server::IpSlot;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(upgrade))
        .routes(routes!(sockjs_upgrade))
        .routes(routes!(sockjs_info))
}

/// DDP over a websocket (CONTRACT §7).
#[utoipa::path(get, path = "/websocket", tag = "realtime", responses(
    (status = 101, description = "Switched to the websocket protocol; DDP frames follow"),
    (status = 400, description = "Not a websocket upgrade request", body = schema::ErrorBody),
))]
async fn upgrade(
    State(app): State<Ctx>,
    ClientIp(ip): ClientIp,
    slot: Option<Extension<IpSlot>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    accept(app, ip, slot, ws, false)
}

/// DDP in SockJS's websocket framing (`o`, `a[…]`, `h`, `c[…]`), Meteor's transport.
/// `server` and `session` are any ids without dots (SockJS's routing); only the
/// websocket transport is served, not SockJS's HTTP fallbacks.
#[utoipa::path(get, path = "/sockjs/{server}/{session}/websocket", tag = "realtime",
    params(
        ("server" = String, Path, description = "Any id without a dot (clients send 3 digits)"),
        ("session" = String, Path, description = "Any id without a dot"),
    ),
    responses(
        (status = 101, description = "Switched to the websocket protocol; `o`, then DDP frames in SockJS framing"),
        (status = 400, description = "Not a websocket upgrade request", body = schema::ErrorBody),
        (status = 404, description = "An id with a dot, longer than 64 bytes or not UTF-8", body = schema::ErrorBody),
))]
async fn sockjs_upgrade(
    State(app): State<Ctx>,
    path: Result<Path<(String, String)>, PathRejection>,
    ClientIp(ip): ClientIp,
    slot: Option<Extension<IpSlot>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Ids that are not UTF-8 are a 404 JSON too, not axum's text.
    let Ok(Path((server, session))) = path else {
        return ApiError::NotFound.into_response();
    };
    if !sockjs::valid_id(&server) || !sockjs::valid_id(&session) {
        return ApiError::NotFound.into_response();
    }
    accept(app, ip, slot, ws, true)
}

/// SockJS's `info`: what a SockJS client asks before it opens a transport. statusd
/// serves the websocket transport only.
#[utoipa::path(get, path = "/sockjs/info", tag = "realtime", responses(
    (status = 200, description = "`{\"websocket\":true,\"origins\":[\"*:*\"],\"cookie_needed\":false,\"entropy\":…}`",
        body = Object),
))]
async fn sockjs_info() -> Response {
    let body = serde_json::json!({
        "websocket": true,
        "origins": ["*:*"],
        "cookie_needed": false,
        "entropy": rand::random::<u32>(),
    });
    (
        [(
            header::CACHE_CONTROL,
            "no-store, no-cache, no-transform, must-revalidate, max-age=0",
        )],
        axum::Json(body),
    )
        .into_response()
}

fn accept(
    app: Ctx,
    ip: std::net::IpAddr,
    slot: Option<Extension<IpSlot>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    sockjs: bool,
) -> Response {
    // A plain HTTP request gets a JSON error like every other route, not axum's text.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return ApiError::plain(&rejection.body_text()).into_response(),
    };
    let max_frame = app.cfg.ws_max_frame_bytes;
    // Small buffers: an idle connection should cost a few KiB, not a hundred.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| async move {
            // The session holds the client's connection slot until it ends.
            let _slot = slot;
            let transport = if sockjs {
                // SockJS heartbeats (`h`) at the DDP ping interval (Meteor's SockJS
                // server sends one every 45 s; statusd pings idle clients every 30 s).
                Transport::sockjs(socket, Duration::from_secs(app.cfg.ddp_ping_secs))
            } else {
                Transport::Raw(socket)
            };
            crate::realtime::serve(app, transport, ip).await
        })
}
