//! The HTTP server loop. Hand-built on hyper-util (rather than `axum::serve`) for the
//! limits a public server needs: a deadline for reading request headers (slowloris),
//! a cap on simultaneous connections per client IP, and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tower::ServiceExt;

pub struct Limits {
    pub header_timeout: Duration,
    /// 0 = no limit.
    pub max_connections_per_ip: usize,
}

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Holds one of an IP's connection slots; the slot frees when the last clone drops.
/// A websocket session keeps a clone, so upgraded connections count as well.
#[derive(Clone)]
pub struct IpSlot {
    /// Held only for its `Drop`, which frees the slot.
    _inner: Arc<SlotInner>,
}

struct SlotInner {
    ip: IpAddr,
    counts: Counts,
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

fn take_slot(counts: &Counts, ip: IpAddr, max: usize) -> Option<IpSlot> {
    let mut map = counts.lock();
    let n = map.entry(ip).or_insert(0);
    if max > 0 && *n >= max {
        return None;
    }
    *n += 1;
    Some(IpSlot {
        _inner: Arc::new(SlotInner {
            ip,
            counts: counts.clone(),
        }),
    })
}

pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let counts: Counts = Default::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(slot) = take_slot(&counts, addr.ip(), limits.max_connections_per_ip) else {
            tracing::debug!(
                "refused a connection from {}: too many from this address",
                addr.ip()
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = router
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
                req.extensions_mut().insert(slot.clone());
                req
            });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    // In-flight requests finish; websockets are closed by the realtime hub.
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_ip_and_freed() {
        let counts: Counts = Default::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = take_slot(&counts, ip, 2).unwrap();
        let b = take_slot(&counts, ip, 2).unwrap();
        assert!(take_slot(&counts, ip, 2).is_none());
        assert!(take_slot(&counts, "10.0.0.2".parse().unwrap(), 2).is_some());
        let a2 = a.clone();
        drop(a);
        assert!(
            take_slot(&counts, ip, 2).is_none(),
            "a clone still holds the slot"
        );
        drop(a2);
        let c = take_slot(&counts, ip, 2).unwrap();
        drop((b, c));
        assert!(counts.lock().is_empty());
        assert!(take_slot(&counts, ip, 0).is_some(), "0 means unlimited");
    }
}
