//! Prometheus metrics, served at `/metrics` in the text exposition format.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub reason: &'static str,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    /// The counters of `requests` already created, found by route and status without
    /// building (allocating) a label on every request.
    request_counters: RwLock<HashMap<Box<str>, HashMap<u16, Counter>>>,
    pub set_status_seconds: Histogram,
    pub commit_batch_size: Histogram,
    pub commit_seconds: Histogram,
    pub live_connections: Gauge<i64, AtomicI64Compat>,
    pub frames_sent: Counter,
    pub frames_dropped: Counter,
    /// Cluster messages dropped unapplied (forged, tampered with, replayed, unreadable).
    pub cluster_rejected: Family<RejectLabels, Counter>,
}

pub type AtomicI64Compat = std::sync::atomic::AtomicI64;

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("statusd");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let set_status_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "set_status_seconds",
            "users.setStatus latency, request to reply",
            set_status_seconds.clone(),
        );
        let commit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "commit_batch_size",
            "jobs committed together in one transaction",
            commit_batch_size.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "commit_seconds",
            "time to run and commit one batch",
            commit_seconds.clone(),
        );
        let live_connections = Gauge::<i64, AtomicI64Compat>::default();
        registry.register(
            "live_connections",
            "open realtime (websocket) connections",
            live_connections.clone(),
        );
        let frames_sent = Counter::<u64, AtomicU64>::default();
        registry.register("frames_sent", "realtime frames sent", frames_sent.clone());
        let frames_dropped = Counter::<u64, AtomicU64>::default();
        registry.register(
            "frames_dropped",
            "realtime events not delivered because a slow connection was closed",
            frames_dropped.clone(),
        );
        let cluster_rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "cluster_messages_rejected",
            "cluster (NATS) messages dropped unapplied, by reason",
            cluster_rejected.clone(),
        );
        Metrics {
            cluster_rejected,
            registry: Mutex::new(registry),
            request_counters: RwLock::new(HashMap::new()),
            requests,
            set_status_seconds,
            commit_batch_size,
            commit_seconds,
            live_connections,
            frames_sent,
            frames_dropped,
        }
    }

    pub fn observe_commit(&self, jobs: usize, took: Duration) {
        self.commit_batch_size.observe(jobs as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    pub fn count_request(&self, route: &str, status: u16) {
        if let Some(c) = self
            .request_counters
            .read()
            .get(route)
            .and_then(|by_status| by_status.get(&status))
        {
            c.inc();
            return;
        }
        let counter = self
            .requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .clone();
        counter.inc();
        self.request_counters
            .write()
            .entry(route.into())
            .or_default()
            .insert(status, counter);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
