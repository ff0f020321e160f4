//! Realtime: DDP over websocket at `/websocket` (CONTRACT §7). Each connection is one
//! task (`session`); what it may call is in `methods`, what it listens to in `streams`.

pub(crate) mod frame;
mod methods;
mod session;
pub(crate) mod streams;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use tokio::sync::{watch, Notify};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::Ctx;
use crate::error::ApiError;
use crate::http::extract::ClientIp;
use crate::server::IpSlot;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

/// DDP over a websocket (CONTRACT §7).
#[utoipa::path(get, path = "/websocket", tag = "realtime", responses(
    (status = 101, description = "Switched to the websocket protocol; DDP frames follow"),
    (status = 400, description = "Not a websocket upgrade request",
     body = crate::http::schema::ErrorBody),
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
        Err(rejection) => return ApiError::Plain(rejection.body_text()).into_response(),
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
            session::run(app, socket, ip).await
        })
}

/// Tracks live sessions so shutdown can tell them to close and wait until they have.
pub struct Hub {
    shutdown: watch::Sender<bool>,
    live: AtomicUsize,
    drained: Notify,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            shutdown: watch::channel(false).0,
            live: AtomicUsize::new(0),
            drained: Notify::new(),
        }
    }
}

impl Hub {
    fn enter(&self) -> watch::Receiver<bool> {
        self.live.fetch_add(1, Ordering::SeqCst);
        self.shutdown.subscribe()
    }

    fn leave(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.drained.notify_waiters();
        }
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Tells every session to close (each removes its connection and publishes the result).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until every session has finished, at most `limit`.
    pub async fn drained(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.live() > 0 {
                let notified = self.drained.notified();
                if self.live() == 0 {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        })
        .await;
    }
}
