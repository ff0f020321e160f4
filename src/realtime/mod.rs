//! Realtime: DDP over websocket at `/websocket` (CONTRACT §7). Each connection is one
//! task (`session`); what it may call is in `methods`, what it listens to in `streams`.

mod frame;
mod methods;
mod session;
mod streams;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Router;
use tokio::sync::{watch, Notify};

use crate::app::Ctx;
use crate::http::extract::ClientIp;
use crate::server::IpSlot;

pub fn routes() -> Router<Ctx> {
    Router::new().route("/websocket", get(upgrade))
}

async fn upgrade(
    State(app): State<Ctx>,
    ClientIp(ip): ClientIp,
    slot: Option<Extension<IpSlot>>,
    ws: WebSocketUpgrade,
) -> Response {
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
