//! The HTTP server loop. Hand-built on hyper (rather than `axum::serve`) for the
//! limits a public server needs: a deadline for reading request headers (slowloris),
//! a cap on simultaneous connections per client IP, riding out the open-file limit,
//! and graceful shutdown.
//!
//! HTTP/1.1 only. Rocket.Chat (Meteor on Node's `http` module) serves HTTP/1.1 and its
//! clients reach it that way or through a proxy that speaks HTTP/1.1 upstream; DDP
//! needs the HTTP/1.1 websocket upgrade. Detecting HTTP/2 meant waiting, with no
//! deadline, for the first bytes to tell the two apart, and an h2c connection had no
//! header deadline at all: a client sending nothing, or only the HTTP/2 preface, held
//! its connection forever. On HTTP/1.1 the header deadline runs from the moment the
//! connection is accepted (and again whenever a kept-alive one waits for its next
//! request); a connection opening with the HTTP/2 preface is closed at once.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tower::ServiceExt;

pub struct Limits {
    pub header_timeout: Duration,
    /// 0 = no limit.
    pub max_connections_per_ip: usize,
}

/// The wait after an accept failed for lack of descriptors (or memory), doubled while
/// the failures last, up to the maximum: existing connections keep being served, and
/// a connection closing frees a descriptor the next try can use.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Raises the soft limit on open files to the hard limit (every connection is a
/// descriptor; the soft limit is often 1024). Returns the soft limit before, the soft
/// limit now and the hard limit.
#[cfg(unix)]
pub fn raise_open_file_limit() -> std::io::Result<(libc::rlim_t, libc::rlim_t, libc::rlim_t)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok((before, lim.rlim_cur, lim.rlim_max))
}

/// Caps glibc's malloc arenas at one per core (at least 2), unless `MALLOC_ARENA_MAX`
/// says otherwise. glibc's default, 8 per core, lets each of the runtime's threads
/// allocate from an arena of its own, and the memory a connection frees on one thread
/// stays in that arena for the next allocation *there*: measured with
/// `bench/run.sh --only scale` at 100,000 connections over 7 instances, the instances'
/// RSS per idle connection was 18.3 KiB by default and 12.5 KiB with 2 arenas (the
/// issue's ceiling is 16), with no loss in delivery latency. Returns the cap set, or
/// `None` when the environment sets one or the C library is not glibc.
pub fn limit_malloc_arenas() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return None;
        }
        let arenas = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        let value = libc::c_int::try_from(arenas).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes a malloc tunable; M_ARENA_MAX limits arenas
        // created from now on and is safe to set while other threads allocate.
        if unsafe { libc::mallopt(libc::M_ARENA_MAX, value) } == 1 {
            return Some(arenas);
        }
        None
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// An accept error that concerns one connection only (it was reset or aborted before
/// it was accepted): the next accept can go ahead at once.
fn one_connection_only(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    )
}

/// A run of failed accepts: when it began and how long to wait next.
struct AcceptFailures {
    since: std::time::Instant,
    count: u64,
    wait: Duration,
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
    // Graceful shutdown: every connection's task holds a receiver; the signal asks
    // each to finish its request in flight, and the sender sees when all are gone.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let counts: Counts = Default::default();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut failing: Option<AcceptFailures> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) if one_connection_only(&e) => continue,
                Err(e) => {
                    // Out of file descriptors (EMFILE, ENFILE) or memory: the connection
                    // waits in the listen backlog. Logged once per run of failures.
                    let f = failing.get_or_insert_with(|| {
                        tracing::warn!(
                            "cannot accept connections: {e}; serving the open ones and \
                             retrying (raise the open-file limit or lower \
                             MAX_CONNECTIONS_PER_IP)"
                        );
                        AcceptFailures {
                            since: std::time::Instant::now(),
                            count: 0,
                            wait: ACCEPT_BACKOFF_FIRST,
                        }
                    });
                    f.count += 1;
                    let wait = f.wait;
                    f.wait = (f.wait * 2).min(ACCEPT_BACKOFF_MAX);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        if let Some(f) = failing.take() {
            tracing::warn!(
                "accepting connections again, after {} failed attempts in {:.1} s",
                f.count,
                f.since.elapsed().as_secs_f64()
            );
        }
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
        let conn = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .with_upgrades();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.changed() => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
            drop(stop);
        });
    }
    // In-flight requests finish; websockets are closed by the realtime hub.
    drop(stop_rx);
    let _ = stop_tx.send(());
    tokio::select! {
        _ = stop_tx.closed() => {}
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
