//! The websocket upgrade at `/websocket`: an HTTP route that hands the connection to
//! the realtime layer (`realtime::serve`), which speaks DDP on it.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::ClientIp;
use super::schema;
use crate::app::Ctx;
use crate::server::IpSlot;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(upgrade))
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
            crate::realtime::serve(app, socket, ip).await
        })
}
