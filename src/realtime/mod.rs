//! Realtime: DDP over websocket at `/websocket` (CONTRACT §7).

use axum::Router;

use crate::app::Ctx;

pub fn routes() -> Router<Ctx> {
    Router::new()
}
