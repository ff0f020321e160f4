//! The realtime hub: tracks the live realtime sessions so shutdown can tell them to
//! close and wait until they have. A server-only part (`App::hub`), kept apart from
//! `realtime` so the server context does not depend on the sessions it serves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{watch, Notify};

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
    /// A session starts; the receiver tells it when to close.
    pub fn enter(&self) -> watch::Receiver<bool> {
        self.live.fetch_add(1, Ordering::SeqCst);
        self.shutdown.subscribe()
    }

    /// A session ended.
    pub fn leave(&self) {
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
