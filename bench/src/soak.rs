//! The soak run of issue 7 (`statusd-bench --soak-secs 1800`): mixed load with
//! connection churn for a long time, reported per interval, to show that memory does
//! not grow, nothing fails and latency does not drift.
//!
//! - `watchers` long-lived websockets subscribed to `user-status`, answering pings;
//!   none may be closed by the server (a closed one means a slow or dropped client).
//! - `churners` workers, each looping: open a websocket, log in (resume), change the
//!   status with `setUserStatus` (a unique text: a real write), close. That is the
//!   "connect, set, disconnect" churn; every open and close is a presence change too.
//! - `http` keep-alive clients alternating `users.setStatus` (status only: the text
//!   limit of 5 per minute per user would refuse more) and `users.getStatus`.
//!
//! Every non-2xx answer, DDP error, failed connect or unexpected close is an error.
//! RSS is read from /proc at the start (after setup and one warm-up interval) and at
//! the end; the run fails when it grew by more than 10 %.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::fixture::{self, BenchUser};
use crate::http::{self, new_hist, Auth, Client};
use crate::server::{Server, ServerSpec};
use crate::ws;

pub struct SoakArgs {
    pub secs: u64,
    pub users: usize,
    pub watchers: usize,
    pub churners: usize,
    pub http: usize,
    pub interval_secs: u64,
    /// Each churn worker starts a cycle at most this often.
    pub churn_every: Duration,
    /// Each HTTP client sends a request at most this often.
    pub http_every: Duration,
}

/// What every worker adds to; the reporter swaps the histograms each interval.
#[derive(Default)]
struct Stats {
    errors: AtomicU64,
    ops: AtomicU64,
    frames: AtomicU64,
    churn: Mutex<Option<Histogram<u64>>>,
    rest: Mutex<Option<Histogram<u64>>>,
    samples: Mutex<Vec<String>>,
}

impl Stats {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < 20 {
            s.push(what);
        }
    }

    fn record(h: &Mutex<Option<Histogram<u64>>>, took: Duration) {
        let mut g = h.lock().unwrap_or_else(|e| e.into_inner());
        let _ = g
            .get_or_insert_with(new_hist)
            .record(took.as_micros() as u64);
    }

    fn take(h: &Mutex<Option<Histogram<u64>>>) -> Histogram<u64> {
        h.lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(new_hist)
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Runs the soak and returns the number of errors (the caller fails on any).
pub async fn run(a: &SoakArgs, spec: &ServerSpec) -> anyhow::Result<u64> {
    println!(
        "soak: {} s, {} users, {} watchers, {} churn workers, {} HTTP clients",
        a.secs, a.users, a.watchers, a.churners, a.http
    );
    // The schema comes from a first start; the users from the fixture.
    let server = Server::start(spec).await?;
    let mut c = Client::connect(server.addr).await?;
    let admin =
        fixture::log_in(&mut c, crate::server::ADMIN_USER, crate::server::ADMIN_PASS).await?;
    server.stop().await?;
    let users = Arc::new(fixture::write_users(&spec.db, a.users, true)?);
    let server = Server::start(spec).await?;
    let addr = server.addr;
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));

    let mut tasks = Vec::new();
    for i in 0..a.watchers {
        let user = users[i % users.len()].clone();
        let (stats, stop) = (stats.clone(), stop.clone());
        tasks.push(tokio::spawn(watch(addr, user, stats, stop)));
    }
    for w in 0..a.churners {
        let (users, stats, stop) = (users.clone(), stats.clone(), stop.clone());
        let (n, every) = (a.churners, a.churn_every);
        tasks.push(tokio::spawn(churn(addr, users, w, n, every, stats, stop)));
    }
    for w in 0..a.http {
        let (users, stats, stop) = (users.clone(), stats.clone(), stop.clone());
        let (admin, n, every) = (admin.clone(), a.http, a.http_every);
        tasks.push(tokio::spawn(rest(
            addr, admin, users, w, n, every, stats, stop,
        )));
    }

    let rss_setup = server.rss_bytes()?;
    let started = Instant::now();
    let mut rss_start = rss_setup;
    let mut interval = tokio::time::interval(Duration::from_secs(a.interval_secs));
    interval.tick().await;
    let mut worst_p99: f64 = 0.0;
    println!("    t(s)   ops/s  frames/s  churn p50/p99 ms  REST p50/p99 ms  RSS MiB  errors");
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(a.secs) {
        interval.tick().await;
        n += 1;
        let ops = stats.ops.swap(0, Ordering::Relaxed);
        let frames = stats.frames.swap(0, Ordering::Relaxed);
        let (ch, re) = (Stats::take(&stats.churn), Stats::take(&stats.rest));
        let rss = server.rss_bytes()?;
        if n == 1 {
            rss_start = rss; // after one warm-up interval
        }
        worst_p99 = worst_p99.max(ms(&re, 0.99));
        let secs = a.interval_secs as f64;
        println!(
            "    {:>5} {:>7.0} {:>9.0} {:>8.1}/{:<8.1} {:>7.1}/{:<8.1} {:>7.1} {:>7}",
            started.elapsed().as_secs(),
            ops as f64 / secs,
            frames as f64 / secs,
            ms(&ch, 0.5),
            ms(&ch, 0.99),
            ms(&re, 0.5),
            ms(&re, 0.99),
            rss as f64 / 1048576.0,
            stats.errors.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    let rss_end = server.rss_bytes()?;
    let dropped = frames_dropped(addr).await.unwrap_or(u64::MAX);
    server.stop().await?;
    let growth = (rss_end as f64 / rss_start as f64 - 1.0) * 100.0;
    let errors = stats.errors.load(Ordering::Relaxed);
    println!(
        "soak: RSS after setup {:.1} MiB, after warm-up {:.1} MiB, at the end {:.1} MiB ({growth:+.1} %)",
        rss_setup as f64 / 1048576.0,
        rss_start as f64 / 1048576.0,
        rss_end as f64 / 1048576.0
    );
    println!("soak: worst REST p99 of an interval {worst_p99:.1} ms; frames dropped by the server: {dropped}; errors: {errors}");
    for s in stats
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("    error: {s}");
    }
    let mut failed = errors;
    if growth > 10.0 {
        println!("soak: FAILED: RSS grew by more than 10 %");
        failed += 1;
    }
    if dropped != 0 {
        println!("soak: FAILED: the server dropped frames (or /metrics was unreadable)");
        failed += 1;
    }
    Ok(failed)
}

/// A long-lived subscriber: counts frames, answers pings; closing is an error.
async fn watch(addr: SocketAddr, user: BenchUser, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    let mut c = match ws::connect_login(addr, &user.token).await {
        Ok(c) => c,
        Err(e) => return stats.error(format!("watcher connect: {e:#}")),
    };
    let sub =
        r#"{"msg":"sub","id":"s","name":"stream-notify-logged","params":["user-status",false]}"#;
    if let Err(e) = c.send(Message::text(sub)).await {
        return stats.error(format!("watcher sub: {e}"));
    }
    while !stop.load(Ordering::Relaxed) {
        let next = tokio::time::timeout(Duration::from_millis(500), c.next()).await;
        match next {
            Err(_) => continue,
            Ok(Some(Ok(Message::Text(t)))) => {
                if t.contains(r#""msg":"changed""#) {
                    stats.frames.fetch_add(1, Ordering::Relaxed);
                } else if t.contains(r#""msg":"ping""#) {
                    let _ = c.send(Message::text(r#"{"msg":"pong"}"#)).await;
                } else if t.contains(r#""msg":"nosub""#) {
                    stats.error(format!("watcher sub refused: {t}"));
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return stats.error(format!("watcher closed: {e}")),
            Ok(None) => return stats.error("watcher closed by the server".into()),
        }
    }
}

/// Connect, log in, set, disconnect — again and again, over the worker's users.
#[allow(clippy::too_many_arguments)]
async fn churn(
    addr: SocketAddr,
    users: Arc<Vec<BenchUser>>,
    w: usize,
    n: usize,
    every: Duration,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let statuses = ["away", "busy", "online"];
    let mut i: u64 = 0;
    let mut pace = pacer(every);
    while !stop.load(Ordering::Relaxed) {
        pace.tick().await;
        // Worker w owns users w, w+n, …: one change per user at a time, and far
        // under setUserStatus's 1 call per second per user.
        let owned = users.len().saturating_sub(w).div_ceil(n).max(1);
        let user = &users[(w + n * (i as usize % owned)) % users.len()];
        i += 1;
        let t = Instant::now();
        let r = async {
            let mut c = ws::connect_login(addr, &user.token).await?;
            let call = serde_json::json!({
                "msg": "method", "id": "set", "method": "setUserStatus",
                "params": [statuses[(i % 3) as usize], format!("soak {w}.{i}")],
            });
            c.send(Message::text(call.to_string())).await?;
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(10), c.next())
                    .await
                    .context("no answer to setUserStatus within 10 s")?;
                match msg {
                    Some(Ok(Message::Text(t))) if t.contains(r#""id":"set""#) => {
                        anyhow::ensure!(!t.contains(r#""error""#), "setUserStatus: {t}");
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => anyhow::bail!("websocket: {e}"),
                    None => anyhow::bail!("closed before the answer"),
                }
            }
            let _ = c.close(None).await;
            anyhow::Ok(())
        }
        .await;
        match r {
            Ok(()) => {
                Stats::record(&stats.churn, t.elapsed());
                stats.ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if !stop.load(Ordering::Relaxed) => stats.error(format!("churn: {e:#}")),
            Err(_) => {}
        }
    }
}

/// REST traffic on one keep-alive connection: setStatus (admin, another user) and
/// getStatus, alternating.
#[allow(clippy::too_many_arguments)]
async fn rest(
    addr: SocketAddr,
    admin: Auth,
    users: Arc<Vec<BenchUser>>,
    w: usize,
    n: usize,
    every: Duration,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let statuses = ["away", "busy", "online", "offline"];
    let mut client: Option<Client> = None;
    let mut i: u64 = 0;
    let mut pace = pacer(every);
    while !stop.load(Ordering::Relaxed) {
        pace.tick().await;
        i += 1;
        let user = &users[(w + n * i as usize) % users.len()];
        let req = if i.is_multiple_of(2) {
            let body =
                serde_json::json!({"userId": user.id, "status": statuses[(i / 2 % 4) as usize]});
            http::post("/api/v1/users.setStatus", Some(&admin), &body)
        } else {
            http::get(
                &format!("/api/v1/users.getStatus?userId={}", user.id),
                Some(&admin),
            )
        };
        if client.as_ref().is_none_or(Client::is_closed) {
            client = Client::connect(addr).await.ok();
        }
        let Some(c) = client.as_mut() else {
            stats.error("HTTP connect failed".into());
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let t = Instant::now();
        match c.call(req).await {
            Ok((st, _)) if st.is_success() => {
                Stats::record(&stats.rest, t.elapsed());
                stats.ops.fetch_add(1, Ordering::Relaxed);
            }
            Ok((st, body)) => stats.error(format!("REST {st}: {}", String::from_utf8_lossy(&body))),
            Err(e) => {
                client = None;
                if !stop.load(Ordering::Relaxed) {
                    stats.error(format!("REST: {e:#}"));
                }
            }
        }
    }
}

/// A steady pace (a slow cycle delays the next instead of bunching them up): the soak
/// is a long steady load, not a throughput test.
fn pacer(every: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval(every.max(Duration::from_millis(1)));
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

/// `statusd_frames_dropped_total` from /metrics.
async fn frames_dropped(addr: SocketAddr) -> anyhow::Result<u64> {
    let mut c = Client::connect(addr).await?;
    let (_, body) = c.call(http::get("/metrics", None)).await?;
    let text = String::from_utf8_lossy(&body);
    let line = text
        .lines()
        .find(|l| l.starts_with("statusd_frames_dropped"))
        .context("no frames_dropped metric")?;
    let v = line
        .split_whitespace()
        .last()
        .context("empty metric line")?;
    Ok(v.parse::<f64>()? as u64)
}
