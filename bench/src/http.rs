//! A minimal keep-alive HTTP/1.1 client (one TCP connection per load worker) and the
//! closed-loop load runner: N workers, each sending its next request as soon as the
//! previous answer arrived, for a fixed time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub type Req = Request<Full<Bytes>>;

/// Who a request is sent as.
#[derive(Clone, Debug)]
pub struct Auth {
    pub user_id: String,
    pub token: String,
}

pub struct Client {
    send: SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { send })
    }

    /// Whether the server closed this connection (an idle keep-alive connection is
    /// closed after the server's header timeout).
    pub fn is_closed(&self) -> bool {
        self.send.is_closed()
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(&mut self, req: Req) -> anyhow::Result<(StatusCode, Bytes)> {
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends a request that must succeed; returns the JSON body.
    pub async fn call_json(&mut self, req: Req) -> anyhow::Result<serde_json::Value> {
        let what = format!("{} {}", req.method(), req.uri());
        let (status, body) = self.call(req).await?;
        if !status.is_success() {
            anyhow::bail!("{what}: {status} {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("{what}: not JSON"))
    }
}

fn build(method: Method, path: &str, auth: Option<&Auth>, body: Bytes) -> Req {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, HeaderValue::from_static("127.0.0.1"));
    if let Some(a) = auth {
        req = req
            .header("X-User-Id", a.user_id.as_str())
            .header("X-Auth-Token", a.token.as_str());
    }
    if !body.is_empty() {
        req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    req.body(Full::new(body)).expect("a valid request")
}

pub fn get(path: &str, auth: Option<&Auth>) -> Req {
    build(Method::GET, path, auth, Bytes::new())
}

pub fn post(path: &str, auth: Option<&Auth>, body: &serde_json::Value) -> Req {
    build(
        Method::POST,
        path,
        auth,
        Bytes::from(serde_json::to_vec(body).expect("JSON")),
    )
}

pub fn post_raw(path: &str, auth: Option<&Auth>, body: String) -> Req {
    build(Method::POST, path, auth, Bytes::from(body))
}

/// Latencies in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// What a closed-loop run measured.
pub struct LoadResult {
    pub name: String,
    pub clients: usize,
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub hist: Histogram<u64>,
    /// The first few error answers, for the report.
    pub samples: Vec<String>,
    /// Requests sent by each worker, in worker order.
    pub per_worker: Vec<u64>,
    /// CPU time the server process used during the run (user + system).
    pub server_cpu_secs: f64,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// Server CPU per request, in microseconds: unlike req/s, it does not depend on
    /// how much of the machine the load tool (or anything else) takes.
    pub fn cpu_us(&self) -> f64 {
        1e6 * self.server_cpu_secs / (self.requests.max(1) as f64)
    }

    /// Adds another run of the same load (one more window of an interleaved measurement).
    pub fn merge(&mut self, other: LoadResult) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.hist.add(&other.hist).expect("same bounds");
        self.samples.extend(
            other
                .samples
                .into_iter()
                .take(3 - self.samples.len().min(3)),
        );
        for (mine, theirs) in self.per_worker.iter_mut().zip(other.per_worker) {
            *mine += theirs;
        }
        self.server_cpu_secs += other.server_cpu_secs;
    }

    pub fn line(&self) -> String {
        format!(
            "{:<34} {:>9.0} req/s  server CPU {:>5.1} µs/req  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  n={} errors={} ({} clients, {:.1} s)",
            self.name,
            self.rps(),
            self.cpu_us(),
            self.ms(0.5),
            self.ms(0.99),
            self.hist.max() as f64 / 1000.0,
            self.requests,
            self.errors,
            self.clients,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs `clients` workers for `duration`; worker `w` sends `make(w, i)` as its i-th request.
/// Every answer that is not 2xx (and every transport failure) counts as an error.
pub async fn run_load<F>(
    name: &str,
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    make: F,
) -> anyhow::Result<LoadResult>
where
    F: Fn(usize, u64) -> Req + Send + Sync + 'static,
{
    let make = Arc::new(make);
    // Connect everybody first so connection set-up is not measured.
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Client::connect(addr).await?);
    }
    let pid = crate::server::CURRENT_PID.load(std::sync::atomic::Ordering::Relaxed);
    let cpu0 = crate::server::cpu_time(pid).ok();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for (w, mut client) in conns.into_iter().enumerate() {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = new_hist();
            let (mut n, mut errors) = (0u64, 0u64);
            let mut samples = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let req = make(w, i);
                i += 1;
                let t0 = Instant::now();
                let res = client.call(req).await;
                let us = t0.elapsed().as_micros() as u64;
                n += 1;
                let _ = hist.record(us.clamp(1, 60_000_000));
                match res {
                    Ok((st, _)) if st.is_success() => {}
                    Ok((st, body)) => {
                        errors += 1;
                        if samples.len() < 3 {
                            samples.push(format!("{st} {}", String::from_utf8_lossy(&body)));
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if samples.len() < 3 {
                            samples.push(format!("transport: {e:#}"));
                        }
                        match Client::connect(addr).await {
                            Ok(c) => client = c,
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                }
            }
            (hist, n, errors, samples)
        }));
    }
    let mut out = LoadResult {
        name: name.to_string(),
        clients,
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        hist: new_hist(),
        samples: Vec::new(),
        per_worker: Vec::with_capacity(clients),
        server_cpu_secs: 0.0,
    };
    for t in tasks {
        let (hist, n, errors, samples) = t.await?;
        out.hist.add(&hist).expect("same bounds");
        out.requests += n;
        out.per_worker.push(n);
        out.errors += errors;
        out.samples.extend(samples.into_iter().take(3));
    }
    out.elapsed = start.elapsed();
    if let (Some(a), Ok(b)) = (cpu0, crate::server::cpu_time(pid)) {
        out.server_cpu_secs = b.secs - a.secs;
    }
    Ok(out)
}
