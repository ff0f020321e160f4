//! Webhooks: endpoints admins register, and the worker that delivers the outbox.
//!
//! The rules (`check_*`, `create`, `update`, `delete`) run as writer jobs, shared by the
//! REST routes (`http::webhooks`) and the CLI (`statusd webhook …`). The deliveries
//! themselves are written by the writer in the transaction of the change they tell of
//! (`state::outbox`); the worker here sends them, signed per the Standard Webhooks
//! specification (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
//! HMAC-SHA256 of "id.timestamp.body">`), at least once, in order per endpoint and user,
//! retrying with exponential backoff until `WEBHOOK_RETRY_HOURS` run out. A delivery
//! stays in the store until it is delivered or given up, so a restart or a `kill -9`
//! loses none; in a cluster only the leader sends, so each is sent by one instance.
//!
//! Signing is ten lines over the `hmac` and `sha2` the cluster seal already uses, checked
//! against the specification's test vector here and against its Python library in
//! `tests/clients/python/test_webhooks.py`; the `standardwebhooks` crate (1.0.1) would
//! add a second `base64` (0.21), `time` and another HMAC implementation for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::auth::defaults::role_exists;
use crate::auth::secrets::new_id;
use crate::cluster::Leadership;
use crate::error::{Error, Result};
use crate::model::{Webhook, WEBHOOK_EVENTS};
use crate::state::{Core, Tx};
use crate::store::{Attempt, DueDelivery};

/// The most endpoints a workspace keeps (each change is one delivery per endpoint).
pub const MAX_ENDPOINTS: usize = 50;
/// The longest URL accepted.
pub const MAX_URL: usize = 2048;
/// The most user ids or roles in one endpoint's filter.
pub const MAX_FILTER: usize = 1000;
/// The longest user id in a filter.
const MAX_ID: usize = 64;
/// The most due deliveries read at once (besides those on their way).
const BATCH: usize = 64;
/// The most deliveries on their way at once (one per endpoint and user).
const MAX_IN_FLIGHT: usize = 256;
/// How often the worker looks at the outbox when nothing woke it (deliveries committed
/// by another instance, retries falling due).
const POLL: Duration = Duration::from_millis(250);
/// Delivered and given-up deliveries are kept this long for the delivery log.
const KEEP_FINISHED: chrono::Duration = chrono::Duration::days(7);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The most of a receiver's error text kept in the log.
const MAX_ERROR: usize = 300;

fn refused(code: &str, reason: &str) -> Error {
    Error::refused(code, reason)
}

/// An http(s) URL with a host and without credentials (they would show in listings),
/// at most `MAX_URL` characters.
pub fn check_url(url: &str) -> Result<String> {
    let bad = |why: &str| refused("error-invalid-webhook-url", why);
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL {
        return Err(bad(&format!("The URL must have 1 to {MAX_URL} characters")));
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("The URL is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("The URL must be http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("The URL has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("The URL must not hold credentials"));
    }
    Ok(parsed.to_string())
}

/// At least one event, each one statusd sends; duplicates dropped.
pub fn check_events(events: &[String]) -> Result<Vec<String>> {
    if events.is_empty() || events.len() > WEBHOOK_EVENTS.len() * 4 {
        return Err(refused(
            "error-invalid-webhook-events",
            &format!("events: name one or more of {}", WEBHOOK_EVENTS.join(", ")),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !WEBHOOK_EVENTS.contains(&e.as_str()) {
            return Err(refused(
                "error-invalid-webhook-events",
                &format!(
                    "Unknown event {:?}: one of {}",
                    e.chars().take(64).collect::<String>(),
                    WEBHOOK_EVENTS.join(", ")
                ),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

/// The user-id and role filters: bounded, roles known.
pub fn check_filter(user_ids: &[String], roles: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let bad = |why: &str| refused("error-invalid-webhook-filter", why);
    if user_ids.len() > MAX_FILTER || roles.len() > MAX_FILTER {
        return Err(bad(&format!("At most {MAX_FILTER} user ids and roles")));
    }
    if user_ids.iter().any(|u| u.is_empty() || u.len() > MAX_ID) {
        return Err(bad(&format!("A user id has 1 to {MAX_ID} characters")));
    }
    if let Some(r) = roles.iter().find(|r| !role_exists(r)) {
        return Err(bad(&format!(
            "Unknown role {:?}",
            r.chars().take(64).collect::<String>()
        )));
    }
    let dedup = |v: &[String]| {
        let mut out: Vec<String> = Vec::new();
        for x in v {
            if !out.contains(x) {
                out.push(x.clone());
            }
        }
        out
    };
    Ok((dedup(user_ids), dedup(roles)))
}

/// A new signing secret in the Standard Webhooks format: `whsec_` and 32 random bytes
/// in base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The `webhook-signature` header value: `v1,` and the base64 HMAC-SHA256, keyed with
/// the secret's bytes, of `id.timestamp.body`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> anyhow::Result<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| anyhow::anyhow!("the endpoint's secret is not base64"))?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|_| anyhow::anyhow!("the endpoint's secret is not a valid key"))?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The wait before the next attempt after `attempts` failed ones: 1 s, 2 s, 4 s, … up
/// to an hour.
pub fn backoff(attempts: u32) -> Duration {
    let secs = 1u64 << attempts.saturating_sub(1).min(12);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// What an endpoint is to be: the checked parts of a create or an update.
pub struct Spec {
    pub url: String,
    pub events: Vec<String>,
    pub user_ids: Vec<String>,
    pub roles: Vec<String>,
    pub active: bool,
}

impl Spec {
    /// Checks every part (URL, events, filters).
    pub fn checked(
        url: &str,
        events: &[String],
        user_ids: &[String],
        roles: &[String],
        active: bool,
    ) -> Result<Spec> {
        let url = check_url(url)?;
        let events = check_events(events)?;
        let (user_ids, roles) = check_filter(user_ids, roles)?;
        Ok(Spec {
            url,
            events,
            user_ids,
            roles,
            active,
        })
    }
}

fn not_found() -> Error {
    refused("error-webhook-not-found", "No webhook with this id")
}

/// Registers an endpoint; returns it and its secret (shown once, never again).
pub fn create(tx: &mut Tx, spec: Spec) -> Result<(Webhook, String)> {
    if tx.webhooks().len() >= MAX_ENDPOINTS {
        return Err(refused(
            "error-too-many-webhooks",
            &format!("At most {MAX_ENDPOINTS} webhooks"),
        ));
    }
    let w = Webhook {
        id: new_id(),
        url: spec.url,
        events: spec.events,
        user_ids: spec.user_ids,
        roles: spec.roles,
        active: spec.active,
        created_at: tx.now,
        updated_at: tx.now,
    };
    let secret = new_secret();
    tx.put_webhook(w.clone());
    tx.put_webhook_secret(&w.id, secret.clone());
    Ok((w, secret))
}

/// Changes an endpoint (its secret stays).
pub fn update(tx: &mut Tx, id: &str, spec: Spec) -> Result<Webhook> {
    let current = tx.webhook(id).ok_or_else(not_found)?;
    let w = Webhook {
        id: current.id.clone(),
        url: spec.url,
        events: spec.events,
        user_ids: spec.user_ids,
        roles: spec.roles,
        active: spec.active,
        created_at: current.created_at,
        updated_at: tx.now,
    };
    tx.put_webhook(w.clone());
    Ok(w)
}

/// Deletes an endpoint and its undelivered deliveries.
pub fn delete(tx: &mut Tx, id: &str) -> Result<()> {
    tx.webhook(id).ok_or_else(not_found)?;
    tx.delete_webhook(id);
    Ok(())
}

/// Finds an endpoint by id.
pub fn find(tx: &Tx, id: &str) -> Result<Arc<Webhook>> {
    tx.webhook(id).ok_or_else(not_found)
}

/// How the worker delivers.
#[derive(Clone, Debug)]
pub struct Options {
    /// Retried for this long after the change, then given up.
    pub retry_for: Duration,
    /// A receiver's time to answer.
    pub timeout: Duration,
}

/// Delivers the outbox for as long as the server runs (only while this instance leads).
pub async fn run(core: Core, leader: Arc<Leadership>, options: Options) {
    let client = match reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        // A receiver answers; it does not send statusd elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("statusd/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhooks: no HTTP client, nothing will be delivered: {e}");
            return;
        }
    };
    let wake = core.writer.outbox_signal();
    let in_flight: InFlight = Default::default();
    let mut last_prune = Instant::now();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        if !leader.is_leader() {
            continue;
        }
        match drain(&core, &client, &options, &in_flight, &wake).await {
            Ok(()) => failing = false,
            Err(e) if failing => tracing::debug!("webhooks: reading the outbox: {e:#}"),
            Err(e) => {
                tracing::warn!("webhooks: reading the outbox: {e:#}");
                failing = true;
            }
        }
        let store = core.store.clone();
        let prune = last_prune.elapsed() > Duration::from_secs(3600);
        if prune {
            last_prune = Instant::now();
        }
        let backlog = tokio::task::spawn_blocking(move || {
            if prune {
                let _ = store.prune_deliveries(Utc::now() - KEEP_FINISHED);
            }
            store.outbox_backlog()
        })
        .await;
        if let Ok(Ok((pending, oldest))) = backlog {
            core.metrics
                .webhook_pending
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
            let lag = oldest.map_or(0.0, |at| {
                (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
            });
            core.metrics.webhook_lag_seconds.set(lag);
        }
    }
}

/// The deliveries being sent now (by `seq`): each is sent by a task of its own, so a
/// slow receiver holds up only its own user's next deliveries, never anyone else's.
#[derive(Default)]
struct Flights {
    sending: std::collections::HashSet<i64>,
    /// Recorded since the last read of the outbox began: a read that began before the
    /// record may still list them as pending.
    done: std::collections::HashSet<i64>,
}

type InFlight = Arc<parking_lot::Mutex<Flights>>;

/// Starts sending every due delivery not already on its way. A finished attempt is
/// recorded, then wakes the worker, so the user's next delivery follows at once.
async fn drain(
    core: &Core,
    client: &reqwest::Client,
    options: &Options,
    in_flight: &InFlight,
    wake: &Arc<tokio::sync::Notify>,
) -> anyhow::Result<()> {
    let busy = {
        let mut f = in_flight.lock();
        // Whatever was recorded before this read is no longer listed as pending.
        f.done.clear();
        f.sending.len()
    };
    if busy >= MAX_IN_FLIGHT {
        return Ok(());
    }
    let store = core.store.clone();
    // The ones on their way are still pending: ask for that many more.
    let due = tokio::task::spawn_blocking(move || store.due_deliveries(Utc::now(), busy + BATCH))
        .await??;
    for d in due {
        {
            let mut f = in_flight.lock();
            if f.sending.len() >= MAX_IN_FLIGHT {
                break;
            }
            if f.done.contains(&d.seq) || !f.sending.insert(d.seq) {
                continue;
            }
        }
        let (core, client, options) = (core.clone(), client.clone(), options.clone());
        let (in_flight, wake) = (in_flight.clone(), wake.clone());
        tokio::spawn(async move {
            let attempt = send(&client, &d, &options).await;
            count(&core, &d, &attempt);
            let store = core.store.clone();
            let seq = d.seq;
            let recorded = tokio::task::spawn_blocking(move || {
                store.record_attempt(seq, &attempt, Utc::now())
            })
            .await;
            if !matches!(recorded, Ok(Ok(()))) {
                // It stays pending and is sent again: at least once.
                tracing::warn!(delivery = %d.id, "webhooks: recording an attempt failed");
            }
            {
                let mut f = in_flight.lock();
                f.sending.remove(&seq);
                f.done.insert(seq);
            }
            wake.notify_one();
        });
    }
    Ok(())
}

/// Counts an attempt in the metrics and logs what needs saying.
fn count(core: &Core, d: &DueDelivery, attempt: &Attempt) {
    match attempt {
        Attempt::Delivered { .. } => {
            core.metrics.webhook_delivered.inc();
            let took = (Utc::now() - d.created_at).num_microseconds().unwrap_or(0);
            core.metrics
                .webhook_delivery_seconds
                .observe(took.max(0) as f64 / 1e6);
        }
        Attempt::Failed { error, .. } => {
            core.metrics.webhook_failed.inc();
            tracing::warn!(
                webhook = %d.endpoint_id,
                delivery = %d.id,
                "webhook delivery given up after {} attempts: {error}",
                d.attempts + 1
            );
        }
        Attempt::Retry { error, .. } => {
            core.metrics.webhook_retrying.inc();
            tracing::debug!(
                webhook = %d.endpoint_id,
                delivery = %d.id,
                "webhook delivery failed, will retry: {error}"
            );
        }
    }
}

/// One attempt at one delivery.
async fn send(client: &reqwest::Client, d: &DueDelivery, options: &Options) -> Attempt {
    let now = Utc::now();
    let failed = |status: Option<u16>, error: String| {
        let error: String = error.chars().take(MAX_ERROR).collect();
        give_up_or_retry(d, now, options.retry_for, status, error)
    };
    let signature = match sign(&d.secret, &d.id, now.timestamp(), &d.payload) {
        Ok(s) => s,
        Err(e) => return failed(None, e.to_string()),
    };
    let result = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", now.timestamp().to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    match result {
        Ok(resp) if resp.status().is_success() => Attempt::Delivered {
            status: resp.status().as_u16(),
        },
        Ok(resp) => {
            let status = resp.status();
            failed(Some(status.as_u16()), format!("HTTP {status}"))
        }
        // Without the URL: the error's text would repeat it.
        Err(e) => failed(None, describe(e)),
    }
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        e.without_url().to_string()
    }
}

/// A failed attempt: retried after the backoff, or given up when the retry time (from
/// the change) has run out. The last retry is at the deadline.
fn give_up_or_retry(
    d: &DueDelivery,
    now: DateTime<Utc>,
    retry_for: Duration,
    status: Option<u16>,
    error: String,
) -> Attempt {
    let deadline = d.created_at
        + chrono::Duration::from_std(retry_for).unwrap_or(chrono::Duration::days(3650));
    if now >= deadline {
        return Attempt::Failed { status, error };
    }
    let wait =
        chrono::Duration::from_std(backoff(d.attempts + 1)).unwrap_or(chrono::Duration::hours(1));
    Attempt::Retry {
        status,
        error,
        next_at: (now + wait).min(deadline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_reference() {
        // The test vector of the Standard Webhooks libraries.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let secret = new_secret();
        assert!(secret.starts_with("whsec_") && secret.len() == 6 + 44);
        assert!(sign(&secret, "a", 1, "{}").is_ok());
    }

    #[test]
    fn urls_events_and_filters_are_checked() {
        assert_eq!(
            check_url(" http://example.com/hook ").unwrap(),
            "http://example.com/hook"
        );
        assert!(check_url("https://127.0.0.1:8443/x?y=1").is_ok());
        for bad in [
            "",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http://",
            "http://user:pw@example.com/",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("http://e.com/{}", "a".repeat(MAX_URL))).is_err());
        let ev = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_events(&ev(&["status.changed", "status.changed"])).unwrap(),
            ev(&["status.changed"])
        );
        assert!(check_events(&[]).is_err());
        assert_eq!(
            check_events(&ev(&["claim.set", "claim.ended"])).unwrap(),
            ev(&["claim.set", "claim.ended"])
        );
        assert!(check_events(&ev(&["claim.changed"])).is_err());
        assert!(check_filter(&[], &ev(&["admin", "user"])).is_ok());
        assert!(check_filter(&[], &ev(&["nobody"])).is_err());
        assert!(check_filter(&vec!["u".to_string(); MAX_FILTER + 1], &[]).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_an_hour_and_gives_up_at_the_deadline() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(40), MAX_BACKOFF);
        let now = Utc::now();
        let d = DueDelivery {
            seq: 1,
            id: "msg_1".into(),
            endpoint_id: "w".into(),
            user_id: "u".into(),
            payload: "{}".into(),
            created_at: now - chrono::Duration::seconds(10),
            attempts: 3,
            url: "http://x/".into(),
            secret: new_secret(),
        };
        let day = Duration::from_secs(86400);
        match give_up_or_retry(&d, now, day, Some(500), "e".into()) {
            Attempt::Retry { next_at, .. } => {
                assert_eq!((next_at - now).num_seconds(), 8)
            }
            other => panic!("{other:?}"),
        }
        match give_up_or_retry(&d, now, Duration::from_secs(12), None, "e".into()) {
            Attempt::Retry { next_at, .. } => {
                assert_eq!(next_at, d.created_at + chrono::Duration::seconds(12))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            give_up_or_retry(&d, now, Duration::from_secs(5), None, "e".into()),
            Attempt::Failed { .. }
        ));
    }
}
