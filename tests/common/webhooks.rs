//! A local webhook receiver for the tests (an axum server on a port of its own) and
//! the Standard Webhooks signature check.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;

use super::free_port;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Got {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub raw: String,
    pub body: Value,
    pub at: Instant,
    /// The status the receiver answered it with.
    pub answered: u16,
    /// Answered only after the receiver's delay (statusd may have given up waiting).
    pub slow: bool,
}

/// A local webhook receiver: records every request and answers with `status`.
pub struct Receiver {
    pub port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    status: Arc<AtomicU16>,
    /// How long each request waits before its answer, in ms.
    delay_ms: Arc<AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// A receiver that is not listening yet (down), on a port of its own.
    pub fn down() -> Receiver {
        Receiver {
            port: free_port(),
            got: Default::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            task: None,
        }
    }

    pub async fn start() -> Receiver {
        let mut r = Receiver::down();
        r.up().await;
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Starts listening.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the receiver");
        let got = self.got.clone();
        let status = self.status.clone();
        let delay_ms = self.delay_ms.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let got = got.clone();
                let status = status.clone();
                let delay = delay_ms.load(Ordering::SeqCst);
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let answered = status.load(Ordering::SeqCst);
                    got.lock().push(Got {
                        id: h("webhook-id"),
                        timestamp: h("webhook-timestamp"),
                        signature: h("webhook-signature"),
                        body: serde_json::from_str(&body).unwrap_or(Value::Null),
                        raw: body,
                        at: Instant::now(),
                        answered,
                        slow: delay > 0,
                    });
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    axum::http::StatusCode::from_u16(answered).unwrap_or(axum::http::StatusCode::OK)
                }
            }),
        );
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Makes every answer wait this long (0: answer at once).
    pub fn delay(&self, by: Duration) {
        self.delay_ms.store(by.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().clone()
    }

    /// The accepted (2xx) requests.
    pub fn accepted(&self) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| g.answered < 300 && !g.slow)
            .collect()
    }

    /// Waits until `n` requests were accepted.
    pub async fn wait_accepted(&self, n: usize, within: Duration) -> Vec<Got> {
        let deadline = Instant::now() + within;
        loop {
            let a = self.accepted();
            if a.len() >= n {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries accepted within {within:?}: {:?}",
                a.len(),
                self.got()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Checks a request's Standard Webhooks signature with `secret`.
#[track_caller]
pub fn assert_signed(g: &Got, secret: &str) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", g.id, g.timestamp, g.raw).as_bytes());
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(g.signature, want, "bad signature on {g:?}");
    let ts: i64 = g.timestamp.parse().expect("numeric webhook-timestamp");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60, "{ts}");
    assert!(g.id.starts_with("msg_"), "{}", g.id);
}
