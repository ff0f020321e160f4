//! Phase 7, webhooks (issue 18.3): the real server delivering `status.changed` to a
//! receiver on this host (a hyper server in this process that answers 204 at once).
//! An admin registers one endpoint; then `--webhook-users` users each change their own
//! status over REST (their own login token, keep-alive, alternating `busy` / `away`, so
//! every request is a change and one delivery):
//!
//! * paced: each user sends a change, then waits `--webhook-pause-ms`, for
//!   `--webhook-rounds` rounds: the latency with the server otherwise idle;
//! * burst: each user sends its changes back to back: the throughput the outbox
//!   sustains (deliveries per second, first request sent to last delivery received)
//!   and the latency under that load.
//!
//! Latency is taken twice: from just before the request is sent to the delivery read
//! by the receiver (an upper bound of commit to receiver: it includes the request and
//! the commit's fsync), and from the change's own `timestamp` (the writer's clock when
//! the batch began, milliseconds) to the delivery (commit to receiver, at millisecond
//! resolution, same host clock). Every delivery is checked: each user's arrive in the
//! order of the changes, none lost, none extra (a mismatch counts as an error).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::fixture::BenchUser;
use crate::http::{self, new_hist, Auth, Client};
use crate::server::{Server, ServerSpec};
use crate::{Args, Report};

/// A delivery as the receiver got it.
struct Got {
    at: Instant,
    wall: SystemTime,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Got>>>;

/// A receiver on 127.0.0.1: records every POST and answers 204.
async fn receiver() -> anyhow::Result<(SocketAddr, Log)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let log: Log = Default::default();
    let shared = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = shared.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let (at, wall) = (Instant::now(), SystemTime::now());
                        if let Ok(mut l) = log.lock() {
                            l.push(Got { at, wall, body });
                        }
                        let mut resp = Response::new(Empty::<Bytes>::new());
                        *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
                        Ok::<_, hyper::Error>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((addr, log))
}

/// One user's changes: (status, sent at).
type Sent = Vec<(&'static str, Instant)>;

/// Each of `users` sends `rounds` changes, pausing `pause` after each; returns what
/// each sent, the request errors and when the first was sent.
async fn send(
    addr: SocketAddr,
    users: &[BenchUser],
    rounds: usize,
    pause: Duration,
    offset: usize,
) -> anyhow::Result<(Vec<Sent>, u64, Instant)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for u in users {
        let auth = Auth {
            user_id: u.id.clone(),
            token: u.token.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut sent: Sent = Vec::with_capacity(rounds);
            let mut errors = 0u64;
            for i in 0..rounds {
                let status = ["busy", "away"][(offset + i) % 2];
                let req = http::post(
                    "/api/v1/users.setStatus",
                    Some(&auth),
                    &json!({ "status": status }),
                );
                let at = Instant::now();
                match c.call(req).await {
                    Ok((st, _)) if st.is_success() => sent.push((status, at)),
                    _ => {
                        errors += 1;
                        if c.is_closed() {
                            c = Client::connect(addr).await?;
                        }
                    }
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            anyhow::Ok((sent, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (sent, e) = t.await??;
        all.push(sent);
        errors += e;
    }
    Ok((all, errors, started))
}

/// Waits until `n` deliveries arrived (or `within` passed); returns how many did.
async fn wait_for(log: &Log, n: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let have = log.lock().map(|l| l.len()).unwrap_or(0);
        if have >= n || Instant::now() > deadline {
            return have;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What one run measured.
struct Measured {
    changes: usize,
    /// From the request sent, and from the change's timestamp (µs).
    from_request: hdrhistogram::Histogram<u64>,
    from_commit: hdrhistogram::Histogram<u64>,
    /// First request sent to last delivery received.
    span: Duration,
    /// First request sent to the last acknowledged (every change committed).
    committed_in: Duration,
    /// Lost, extra or out-of-order deliveries, and failed requests.
    errors: u64,
}

/// Matches each user's n-th change to its n-th delivery.
fn measure(users: &[BenchUser], sent: &[Sent], got: &[Got], started: Instant) -> Measured {
    let mut by_user: std::collections::HashMap<String, Vec<(&Got, serde_json::Value)>> =
        Default::default();
    let mut errors = 0u64;
    for g in got {
        match serde_json::from_slice::<serde_json::Value>(&g.body) {
            Ok(v) => {
                let uid = v["data"]["userId"].as_str().unwrap_or_default().to_string();
                by_user.entry(uid).or_default().push((g, v));
            }
            Err(_) => errors += 1,
        }
    }
    let (mut from_request, mut from_commit) = (new_hist(), new_hist());
    let mut last = started;
    let mut changes = 0;
    for (u, sent) in users.iter().zip(sent) {
        let got = by_user.remove(&u.id).unwrap_or_default();
        changes += sent.len();
        if got.len() != sent.len() {
            errors += sent.len().abs_diff(got.len()) as u64;
        }
        for ((status, at), (g, v)) in sent.iter().zip(&got) {
            if v["data"]["status"] != *status || v["type"] != "status.changed" {
                errors += 1;
                continue;
            }
            let us = g.at.saturating_duration_since(*at).as_micros() as u64;
            let _ = from_request.record(us.max(1));
            let stamp = v["timestamp"].as_str().and_then(epoch_ms).unwrap_or(0);
            let wall = g
                .wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let _ = from_commit.record(((wall - stamp).max(0) as u64 * 1000).max(1));
            last = last.max(g.at);
        }
    }
    // Deliveries about users who changed nothing here.
    errors += by_user.values().map(|v| v.len() as u64).sum::<u64>();
    Measured {
        changes,
        from_request,
        from_commit,
        span: last.saturating_duration_since(started),
        committed_in: Duration::ZERO,
        errors,
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn epoch_ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn report(r: &mut Report, key: &str, name: &str, m: &Measured) {
    let per_sec = m.changes as f64 / m.span.as_secs_f64().max(1e-9);
    let committed_per_sec = m.changes as f64 / m.committed_in.as_secs_f64().max(1e-9);
    r.say(format!(
        "    {name}: {} changes committed in {:.2} s ({committed_per_sec:.0}/s), delivered in {:.2} s = {per_sec:.0} deliveries/s",
        m.changes,
        m.committed_in.as_secs_f64(),
        m.span.as_secs_f64()
    ));
    r.say(format!(
        "      latency from the request: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(&m.from_request, 0.5),
        ms(&m.from_request, 0.99),
        m.from_request.max() as f64 / 1000.0
    ));
    r.say(format!(
        "      latency from the change's timestamp (ms resolution): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(&m.from_commit, 0.5),
        ms(&m.from_commit, 0.99),
        m.from_commit.max() as f64 / 1000.0
    ));
    r.errors(
        "lost, extra or out-of-order deliveries or failed requests",
        m.errors,
    );
    r.fig(
        key,
        json!({"changes": m.changes, "secs": m.span.as_secs_f64(), "per_sec": per_sec,
               "committed_secs": m.committed_in.as_secs_f64(),
               "p50_ms": ms(&m.from_request, 0.5), "p99_ms": ms(&m.from_request, 0.99),
               "max_ms": m.from_request.max() as f64 / 1000.0,
               "commit_p50_ms": ms(&m.from_commit, 0.5),
               "commit_p99_ms": ms(&m.from_commit, 0.99),
               "errors": m.errors}),
    );
}

pub async fn webhooks(
    args: &Args,
    spec: &ServerSpec,
    admin: &Auth,
    users: &[BenchUser],
    r: &mut Report,
) -> anyhow::Result<()> {
    let n = args.webhook_users.min(users.len());
    let users = &users[..n];
    r.say(format!(
        "\n## 7. webhooks: status.changed to a local receiver, {n} users over REST"
    ));
    let server = Server::start(spec).await?;
    let (rx, log) = receiver().await?;
    let mut c = Client::connect(server.addr).await?;
    c.call_json(http::post(
        "/api/v1/statusd.webhooks.create",
        Some(admin),
        &json!({"url": format!("http://{rx}/hook"), "events": ["status.changed"]}),
    ))
    .await
    .context("registering the endpoint")?;

    let mut offset = 0;
    for (key, name, rounds, pause) in [
        (
            "webhooks_paced",
            format!(
                "paced ({} ms between a user's changes)",
                args.webhook_pause_ms
            ),
            args.webhook_rounds,
            Duration::from_millis(args.webhook_pause_ms),
        ),
        (
            "webhooks_burst",
            "burst (back to back)".to_string(),
            args.webhook_rounds * 2,
            Duration::ZERO,
        ),
    ] {
        if let Ok(mut l) = log.lock() {
            l.clear();
        }
        let (sent, errors, started) = send(server.addr, users, rounds, pause, offset).await?;
        let committed_in = started.elapsed();
        offset += rounds;
        let want: usize = sent.iter().map(Vec::len).sum();
        wait_for(&log, want, Duration::from_secs(60)).await;
        // Anything extra would arrive now.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got = std::mem::take(&mut *log.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        let mut m = measure(users, &sent, &got, started);
        m.errors += errors;
        m.committed_in = committed_in;
        report(r, key, &name, &m);
    }
    // The server's own view: commit to a 2xx answer, over every delivery.
    let (_, metrics) = c.call(http::get("/metrics", None)).await?;
    let text = String::from_utf8_lossy(&metrics);
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    if let (Some(sum), Some(count)) = (
        value("statusd_webhook_delivery_seconds_sum"),
        value("statusd_webhook_delivery_seconds_count"),
    ) {
        r.say(format!(
            "    server's statusd_webhook_delivery_seconds (commit to 2xx): mean {:.1} ms over {count} deliveries",
            1000.0 * sum / count.max(1.0)
        ));
    }
    server.stop().await?;
    Ok(())
}
