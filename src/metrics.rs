//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! Counters and histograms are kept as things happen; the gauges of state (users by
//! status, live tokens, store and NATS health) are set at scrape time from the model
//! (`Scrape`), and the `process_*` metrics are read from the OS on each scrape.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
    /// The git commit built from (`STATUSD_COMMIT` at build time), or `unknown`.
    pub commit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

/// The state gauges, computed by the caller at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Users by displayed status.
    pub users_by_status: Vec<(&'static str, i64)>,
    /// Login tokens not yet expired (personal access tokens are not counted).
    pub live_login_tokens: i64,
    pub store_up: bool,
    /// Connected to NATS, or not in cluster mode (nothing to be disconnected from).
    pub nats_up: bool,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    /// The standard `process_*` metrics: a registry without the `statusd_` prefix.
    process: Registry,
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
    /// Status changes published to this instance's connections.
    pub status_events: Counter,
    /// Changes queued to connections by the fan-out (one per connection and change).
    pub fanout_queued: Counter,
    /// Realtime connections closed as slow consumers (queue overflowed or a send stuck).
    pub slow_consumers: Counter,
    /// Users' status changes received from other instances (cluster mode)...
    pub cluster_received_user_changes: Counter,
    /// ...and those of them about users no local connection listens to.
    pub cluster_received_unwatched: Counter,
    /// Connections × status changes per second of the `user-status` fan-out (the load
    /// `PRESENCE_BROADCAST_BUDGET` bounds), set each second.
    pub presence_broadcast_load: Gauge,
    /// Times this instance turned `Presence_broadcast_disabled` on (over its budget).
    pub presence_broadcast_auto_disabled: Counter,
    /// Cluster messages dropped unapplied (forged, tampered with, replayed, unreadable).
    pub cluster_rejected: Family<RejectLabels, Counter>,
    /// Status parts received from other instances that could not be applied (each
    /// makes the instance reload its model from the store), by reason.
    pub cluster_parts_unapplied: Family<RejectLabels, Counter>,
    /// Messages of other instances found missing by their numbers (each reloads the
    /// model), and batches this instance sent split in several messages.
    pub cluster_gaps: Counter,
    pub cluster_split_batches: Counter,
    /// Failed password logins (wrong password, unknown or deactivated user).
    pub login_failures: Counter,
    /// Webhook deliveries a receiver accepted (2xx).
    pub webhook_delivered: Counter,
    /// Webhook deliveries given up on (out of retry time).
    pub webhook_failed: Counter,
    /// Failed webhook attempts that will be retried.
    pub webhook_retrying: Counter,
    /// Commit of a change to its delivery's acceptance, in seconds.
    pub webhook_delivery_seconds: Histogram,
    /// Undelivered webhook deliveries in the outbox (set by the delivery worker).
    pub webhook_pending: Gauge,
    /// Age of the oldest undelivered webhook delivery, in seconds (0: none).
    pub webhook_lag_seconds: Gauge<f64, AtomicU64>,
    users: Family<StatusLabels, Gauge>,
    live_login_tokens: Gauge,
    store_up: Gauge,
    nats_up: Gauge,
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
        let status_events = Counter::<u64, AtomicU64>::default();
        registry.register(
            "status_events",
            "status changes published to this instance's realtime connections",
            status_events.clone(),
        );
        let fanout_queued = Counter::<u64, AtomicU64>::default();
        registry.register(
            "fanout_queued",
            "changes queued to realtime connections (one per connection and change)",
            fanout_queued.clone(),
        );
        let slow_consumers = Counter::<u64, AtomicU64>::default();
        registry.register(
            "slow_consumers",
            "realtime connections closed as slow consumers (close code 1013)",
            slow_consumers.clone(),
        );
        let cluster_received_user_changes = Counter::<u64, AtomicU64>::default();
        registry.register(
            "cluster_received_user_changes",
            "user records and connections received from other instances",
            cluster_received_user_changes.clone(),
        );
        let cluster_received_unwatched = Counter::<u64, AtomicU64>::default();
        registry.register(
            "cluster_received_unwatched",
            "of those, the ones about users no connection of this instance listens to",
            cluster_received_unwatched.clone(),
        );
        let presence_broadcast_load = Gauge::default();
        registry.register(
            "presence_broadcast_load",
            "user-status subscribers x status changes per second (PRESENCE_BROADCAST_BUDGET bounds it)",
            presence_broadcast_load.clone(),
        );
        let presence_broadcast_auto_disabled = Counter::<u64, AtomicU64>::default();
        registry.register(
            "presence_broadcast_auto_disabled",
            "times this instance turned Presence_broadcast_disabled on, over its budget",
            presence_broadcast_auto_disabled.clone(),
        );
        let cluster_rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "cluster_messages_rejected",
            "cluster (NATS) messages dropped unapplied, by reason",
            cluster_rejected.clone(),
        );
        let cluster_parts_unapplied = Family::<RejectLabels, Counter>::default();
        registry.register(
            "cluster_parts_unapplied",
            "status changes from other instances not applied for want of the user record \
             they belong to (unknown_user, account_differs); each reloads the model",
            cluster_parts_unapplied.clone(),
        );
        let cluster_gaps = Counter::<u64, AtomicU64>::default();
        registry.register(
            "cluster_gaps",
            "times messages of another instance were found missing by their numbers \
             (a failed publish, a message NATS dropped); each reloads the model",
            cluster_gaps.clone(),
        );
        let cluster_split_batches = Counter::<u64, AtomicU64>::default();
        registry.register(
            "cluster_split_batches",
            "committed batches sent to the other instances in several messages, being \
             larger than the NATS server's max_payload",
            cluster_split_batches.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: option_env!("STATUSD_COMMIT").unwrap_or("unknown"),
            })
            .set(1);
        registry.register(
            "build_info",
            "always 1; the version and commit as labels",
            build_info,
        );
        let login_failures = Counter::<u64, AtomicU64>::default();
        registry.register(
            "login_failures",
            "failed password logins (wrong password, unknown or deactivated user)",
            login_failures.clone(),
        );
        let users = Family::<StatusLabels, Gauge>::default();
        registry.register("users", "users by displayed status", users.clone());
        let live_login_tokens = Gauge::default();
        registry.register(
            "live_login_tokens",
            "login tokens not yet expired (personal access tokens not counted)",
            live_login_tokens.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 when the store answers a ping within 2 seconds, else 0",
            store_up.clone(),
        );
        let nats_up = Gauge::default();
        registry.register(
            "nats_up",
            "1 when connected to NATS or not in cluster mode, 0 when the NATS link is down",
            nats_up.clone(),
        );
        let webhook_delivered = Counter::<u64, AtomicU64>::default();
        registry.register(
            "webhook_delivered",
            "webhook deliveries a receiver accepted (2xx)",
            webhook_delivered.clone(),
        );
        let webhook_failed = Counter::<u64, AtomicU64>::default();
        registry.register(
            "webhook_failed",
            "webhook deliveries given up on (WEBHOOK_RETRY_HOURS ran out)",
            webhook_failed.clone(),
        );
        let webhook_retrying = Counter::<u64, AtomicU64>::default();
        registry.register(
            "webhook_retrying",
            "failed webhook attempts that will be retried",
            webhook_retrying.clone(),
        );
        let webhook_delivery_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "webhook_delivery_seconds",
            "from the commit of a change to a receiver accepting its webhook delivery",
            webhook_delivery_seconds.clone(),
        );
        let webhook_pending = Gauge::default();
        registry.register(
            "webhook_pending",
            "undelivered webhook deliveries in the outbox",
            webhook_pending.clone(),
        );
        let webhook_lag_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "webhook_lag_seconds",
            "age of the oldest undelivered webhook delivery (0 when none)",
            webhook_lag_seconds.clone(),
        );
        let mut process = Registry::default();
        process.register_collector(Box::new(ProcessCollector));
        Metrics {
            webhook_delivered,
            webhook_failed,
            webhook_retrying,
            webhook_delivery_seconds,
            webhook_pending,
            webhook_lag_seconds,
            cluster_rejected,
            cluster_parts_unapplied,
            cluster_gaps,
            cluster_split_batches,
            login_failures,
            users,
            live_login_tokens,
            store_up,
            nats_up,
            process,
            registry: Mutex::new(registry),
            request_counters: RwLock::new(HashMap::new()),
            requests,
            set_status_seconds,
            commit_batch_size,
            commit_seconds,
            live_connections,
            frames_sent,
            frames_dropped,
            status_events,
            fanout_queued,
            slow_consumers,
            cluster_received_user_changes,
            cluster_received_unwatched,
            presence_broadcast_load,
            presence_broadcast_auto_disabled,
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

    /// Sets the state gauges from a scrape-time reading.
    pub fn set_scrape(&self, scrape: &Scrape) {
        for (status, n) in &scrape.users_by_status {
            self.users.get_or_create(&StatusLabels { status }).set(*n);
        }
        self.live_login_tokens.set(scrape.live_login_tokens);
        self.store_up.set(scrape.store_up.into());
        self.nats_up.set(scrape.nats_up.into());
    }

    pub fn render(&self) -> String {
        use prometheus_client::encoding::text;
        let mut out = String::new();
        let _ = text::encode_registry(&mut out, &self.registry.lock())
            .and_then(|()| text::encode_registry(&mut out, &self.process))
            .and_then(|()| text::encode_eof(&mut out));
        out
    }
}

/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`
/// and `process_start_time_seconds`, read on each scrape (see `crate::procstat`).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = crate::procstat::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "user and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "resident memory size, in bytes",
                p.resident_memory_bytes as f64,
            ),
            (
                "process_open_fds",
                "open file descriptors",
                p.open_fds as f64,
            ),
            (
                "process_start_time_seconds",
                "start time of the process since the Unix epoch, in seconds",
                p.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
