//! The presence administration routes, as Rocket.Chat answers them
//! (apps/meteor/app/api/server/v1/presence.ts): how many realtime connections the
//! workspace has, and turning presence broadcasting back on.
//!
//! Who may call: both need `manage-user-status` (declared, 403 `[error-unauthorized]`).
//! A hostile caller holding it can only count connections and set one flag to its
//! default.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::Caller;
use super::reply::ok;
use super::schema;
use crate::app::Ctx;
use crate::auth::defaults::Permission;
use crate::settings::{self, Typed, Values};

/// Rocket.Chat's `MAX_CONNECTIONS`: above it, an unlicensed Rocket.Chat stops
/// broadcasting presence. statusd has no such cap; it reports the same number.
pub const MAX_CONNECTIONS: u64 = 200;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(get_connections))
        .routes(routes!(enable_broadcast))
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionsBody {
    /// Live realtime connections of the whole workspace (every instance).
    current: u64,
    /// Rocket.Chat's broadcast cap (200), reported as it does.
    max: u64,
    /// statusd's addition: whether presence broadcasting is off
    /// (`Presence_broadcast_disabled`, turned on by an admin or, past
    /// `PRESENCE_BROADCAST_BUDGET`, by the server itself).
    #[serde(rename = "broadcastDisabled")]
    broadcast_disabled: bool,
    success: bool,
}

/// The workspace's live realtime connections.
#[utoipa::path(get, path = "/api/v1/presence.getConnections", tag = "presence",
    security(("userId" = [], "authToken" = [])),
    responses(
        (status = 200, description = "Connections now, and the cap", body = ConnectionsBody),
        (status = 403, description = "Without manage-user-status (declared)", body = schema::ErrorBody),
    ))]
async fn get_connections(State(app): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    app.require_declared(&caller.user, Permission::ManageUserStatus)?;
    let (current, broadcast_disabled) = {
        let m = app.model.read();
        let current = m.conns.values().map(|c| c.len() as u64).sum();
        (current, m.value(&settings::PRESENCE_BROADCAST_DISABLED))
    };
    Ok(ok(&ConnectionsBody {
        current,
        max: MAX_CONNECTIONS,
        broadcast_disabled,
        success: true,
    }))
}

/// Turns presence broadcasting back on: `Presence_broadcast_disabled` becomes false.
#[utoipa::path(post, path = "/api/v1/presence.enableBroadcast", tag = "presence",
    security(("userId" = [], "authToken" = [])),
    responses(
        (status = 200, description = "Broadcasting", body = schema::Success),
        (status = 403, description = "Without manage-user-status (declared)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn enable_broadcast(State(app): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    app.require_declared(&caller.user, Permission::ManageUserStatus)?;
    let id = settings::PRESENCE_BROADCAST_DISABLED.definition().id;
    app.writer
        .run(move |tx| {
            if tx.setting(id) != Some(serde_json::json!(false)) {
                tx.put_setting(id, serde_json::json!(false));
            }
            Ok(())
        })
        .await?;
    Ok(ok(&schema::Success::YES))
}
