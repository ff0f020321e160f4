//! Cluster mode: committed changes travel between instances over NATS. Each instance
//! publishes what its writer committed (once, in commit order) and applies what the
//! others committed; its own messages come back to it and are skipped by origin.
//! After a gap (NATS restarted, link lost) the instance reloads its model from the
//! shared store, so nothing missed while disconnected stays missed; so it does when a
//! status part (`WireChange::Status`) cannot be applied for want of the record it
//! belongs to (`state::remote::Unapplied`). The reload runs in
//! the writer's order (a snapshot read earlier could be older than changes applied
//! while it was read, and would undo them) and is retried until the store answers.
//!
//! A committed batch larger than the NATS server's `max_payload` (1 MiB by default:
//! closing 14,000 connections at a shutdown is one batch of about 1.2 MB) goes out in
//! several messages, applied by the others in order (`messages`). Every message is
//! numbered; a receiver that finds a number missing (a publish that failed, a message
//! NATS dropped for a slow subscriber) reloads its model from the store too
//! (`replay::Fresh::Gap`), at most once a second like the reload for status parts.
//!
//! Nothing on the subject is trusted: every message is sealed with the cluster secret
//! (`seal.rs`), numbered and stamped against replays (`replay.rs`), and carries no
//! secret (`state::remote`). A message that fails any check is dropped, counted in
//! `statusd_cluster_messages_rejected_total` and logged at most once a minute.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::replay;
use super::seal::Sealer;
use crate::config::Config;
use crate::metrics::{Metrics, RejectLabels};
use crate::state::remote::{Unapplied, WireChange};
use crate::state::Writer;
use crate::store::Store;

/// How long to wait before trying a failed resync again.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

/// The least time between two reloads for status parts that could not be applied.
const PART_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The least time between two log lines about rejected messages.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The sending instance's id.
    origin: String,
    /// The sender's message number, from 1 (`replay.rs`).
    seq: u64,
    /// The sender's clock when sending, ms since the epoch.
    sent_at: i64,
    changes: Vec<WireChange>,
}

/// An `Envelope` to send, borrowing its changes (so a batch too large for one message
/// can be cut without copying it).
#[derive(Serialize)]
struct Outgoing<'a> {
    origin: &'a str,
    seq: u64,
    sent_at: i64,
    changes: &'a [WireChange],
}

/// The most bytes of a message when the server has not said (NATS's default).
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// The sealed messages that carry `changes`, numbered from `*seq + 1` on: one, or as
/// many as it takes to keep each within `limit` bytes (the server refuses a larger one),
/// cut in halves, in order. A single change larger than `limit` cannot be sent: its
/// number is used all the same, so the others find it missing and reload from the
/// store. Returns the messages and how many changes could not be sent.
fn messages(
    origin: &str,
    seq: &mut u64,
    sent_at: i64,
    changes: &[WireChange],
    limit: usize,
    seal: impl Fn(&[u8]) -> Vec<u8>,
) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut unsent = 0;
    // Pieces still to send, the next one last.
    let mut todo: Vec<&[WireChange]> = vec![changes];
    while let Some(piece) = todo.pop() {
        let env = Outgoing {
            origin,
            seq: *seq + 1,
            sent_at,
            changes: piece,
        };
        let sealed = match serde_json::to_vec(&env) {
            Ok(bytes) => seal(&bytes),
            Err(e) => {
                tracing::error!("encoding a change for NATS: {e}");
                *seq += 1;
                unsent += piece.len();
                continue;
            }
        };
        if sealed.len() <= limit {
            *seq += 1;
            out.push(sealed);
        } else if piece.len() > 1 {
            let (first, second) = piece.split_at(piece.len() / 2);
            todo.push(second);
            todo.push(first);
        } else {
            tracing::error!(
                "a change of {} bytes is larger than the NATS server's max_payload ({limit}): \
                 not sent; the other instances reload from the store",
                sealed.len()
            );
            *seq += 1;
            unsent += 1;
        }
    }
    (out, unsent)
}

/// Credentials carried in a `NATS_URL` (`nats://user:password@host`, `nats://token@host`).
#[derive(Debug, PartialEq)]
enum UrlAuth {
    UserPassword(String, String),
    Token(String),
}

/// The servers of a `NATS_URL` (comma-separated) without their credentials, and the
/// credentials of the first that has some. Errors never quote the URL.
fn servers(url: &str) -> anyhow::Result<(Vec<async_nats::ServerAddr>, Option<UrlAuth>)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut auth = None;
    let mut out = Vec::new();
    for (i, one) in url.split(',').enumerate() {
        let addr: async_nats::ServerAddr = one
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("NATS_URL: server {} is not a valid URL", i + 1))?;
        if auth.is_none() {
            auth = match (addr.username(), addr.password()) {
                (Some(u), Some(p)) => Some(UrlAuth::UserPassword(decode(u), decode(p))),
                (Some(t), None) => Some(UrlAuth::Token(decode(t))),
                _ => None,
            };
        }
        let mut bare = addr.into_inner();
        let _ = bare.set_password(None);
        let _ = bare.set_username("");
        out.push(
            async_nats::ServerAddr::from_url(bare)
                .map_err(|_| anyhow::anyhow!("NATS_URL: server {} is not usable", i + 1))?,
        );
    }
    Ok((out, auth))
}

/// The authentication and TLS options `cfg` names.
async fn options(
    cfg: &Config,
    auth: Option<UrlAuth>,
) -> anyhow::Result<async_nats::ConnectOptions> {
    let mut o = async_nats::ConnectOptions::new();
    match auth {
        Some(UrlAuth::UserPassword(u, p)) => o = o.user_and_password(u, p),
        Some(UrlAuth::Token(t)) => o = o.token(t),
        None => {}
    }
    if let Some(path) = &cfg.nats_creds {
        o = o
            .credentials_file(path)
            .await
            .with_context(|| format!("NATS_CREDS: cannot read {}", path.display()))?;
    }
    if let Some(path) = &cfg.nats_nkey_file {
        let seed = std::fs::read_to_string(path)
            .with_context(|| format!("NATS_NKEY_FILE: cannot read {}", path.display()))?;
        o = o.nkey(seed.trim().to_string());
    }
    let readable = |name: &str, p: &PathBuf| -> anyhow::Result<()> {
        std::fs::metadata(p)
            .map(|_| ())
            .with_context(|| format!("{name}: cannot read {}", p.display()))
    };
    if let Some(ca) = &cfg.nats_tls_ca {
        readable("NATS_TLS_CA", ca)?;
        o = o.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&cfg.nats_tls_cert, &cfg.nats_tls_key) {
        readable("NATS_TLS_CERT", cert)?;
        readable("NATS_TLS_KEY", key)?;
        o = o
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(o)
}

/// Connects to the NATS servers of `NATS_URL` with the credentials and TLS options of
/// `cfg`; `reconnected` hears of every reconnection after the first.
pub async fn connect(
    cfg: &Config,
    url: &str,
    reconnected: mpsc::UnboundedSender<()>,
) -> anyhow::Result<async_nats::Client> {
    let (addrs, auth) = servers(url)?;
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Never the URL itself in a log line: it may carry a user and password.
    let shown: Arc<str> = crate::logging::describe_nats(url).into();
    // The last connection failure logged as a warning: each kind once until connected,
    // not at every retry.
    let failing: Arc<parking_lot::Mutex<Option<String>>> = Arc::default();
    options(cfg, auth)
        .await?
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let reconnected = reconnected.clone();
            let first = first.clone();
            let shown = shown.clone();
            let failing = failing.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        if failing.lock().take().is_some() {
                            tracing::info!("NATS: connected to {shown}");
                        }
                        if !first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                            tracing::info!("NATS connection restored");
                            let _ = reconnected.send(());
                        }
                    }
                    async_nats::Event::Disconnected => tracing::warn!("NATS connection lost"),
                    async_nats::Event::ClientError(e) => {
                        let why = connect_failure(&e);
                        if failing.lock().replace(why.clone()).as_ref() != Some(&why) {
                            tracing::warn!("NATS: cannot connect to {shown}: {why}; retrying");
                        } else {
                            tracing::debug!("NATS: cannot connect to {shown}: {why}");
                        }
                    }
                    async_nats::Event::ServerError(e) => {
                        tracing::warn!("NATS server {shown}: {e}")
                    }
                    other => tracing::debug!("NATS: {other}"),
                }
            }
        })
        .connect(addrs)
        .await
        .with_context(|| {
            // Never the URL itself: it may carry a user and password.
            let servers = crate::logging::describe_nats(url);
            format!("NATS_URL: cannot connect to {servers}")
        })
}

/// Why a connection attempt failed, for the operator: a refused login names the
/// settings that hold the credentials (never their values).
fn connect_failure(e: &async_nats::ClientError) -> String {
    let text = e.to_string();
    let text = text.strip_prefix("nats: ").unwrap_or(&text).to_string();
    if text.contains("authorization violation") || text.contains("signing nonce") {
        format!(
            "{text} (the server refused the credentials: check the user and password or \
             token in NATS_URL, NATS_CREDS, NATS_NKEY_FILE)"
        )
    } else {
        text
    }
}

/// What the cluster link needs besides the NATS client.
pub struct Link {
    pub subject: String,
    pub instance_id: String,
    pub sealer: Sealer,
    pub metrics: Arc<Metrics>,
    /// This instance's listeners: who here watches whom (`count_interest`).
    pub bus: super::Bus,
}

/// Starts the tasks that publish local commits, apply remote ones and resync after gaps.
pub async fn start(
    client: async_nats::Client,
    link: Link,
    mut commits: mpsc::UnboundedReceiver<Vec<WireChange>>,
    mut reconnected: mpsc::UnboundedReceiver<()>,
    writer: Writer,
    store: Arc<dyn Store>,
) -> anyhow::Result<()> {
    let Link {
        subject,
        instance_id,
        sealer,
        metrics,
        bus,
    } = link;
    let mut sub = client
        .subscribe(subject.clone())
        .await
        .context("NATS: subscribing")?;

    let publisher = client.clone();
    let origin = instance_id.clone();
    let out_subject = subject.clone();
    let out_sealer = sealer.clone();
    let split_metrics = metrics.clone();
    tokio::spawn(async move {
        let mut seq = 0u64;
        while let Some(changes) = commits.recv().await {
            if changes.is_empty() {
                continue;
            }
            let limit = match publisher.server_info().max_payload {
                0 => DEFAULT_MAX_PAYLOAD,
                n => n,
            };
            let (sealed, _) = messages(
                &origin,
                &mut seq,
                chrono::Utc::now().timestamp_millis(),
                &changes,
                limit,
                |bytes| out_sealer.seal(&out_subject, bytes),
            );
            if sealed.len() > 1 {
                split_metrics.cluster_split_batches.inc();
            }
            for message in sealed {
                if let Err(e) = publisher.publish(out_subject.clone(), message.into()).await {
                    // Numbered all the same: the others find it missing and reload.
                    tracing::warn!("NATS publish failed (the others reload from the store): {e}");
                }
            }
        }
    });

    let apply_writer = writer.clone();
    let (unapplied_tx, mut unapplied) = mpsc::unbounded_channel::<Unapplied>();
    let (gap_tx, mut gaps) = mpsc::unbounded_channel::<()>();
    let resync_metrics = metrics.clone();
    tokio::spawn(async move {
        let mut guard = replay::Guard::default();
        let mut log = RejectLog::default();
        while let Some(msg) = sub.next().await {
            let now = chrono::Utc::now().timestamp_millis();
            match accept(
                &sealer,
                &subject,
                &msg.payload,
                &instance_id,
                &mut guard,
                now,
            ) {
                Ok(Some((changes, fresh))) => {
                    count_interest(&changes, &bus, &metrics);
                    apply_writer
                        .apply_peer(changes, Some(unapplied_tx.clone()))
                        .await;
                    if fresh == replay::Fresh::Gap {
                        metrics.cluster_gaps.inc();
                        let _ = gap_tx.send(());
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    metrics
                        .cluster_rejected
                        .get_or_create(&RejectLabels { reason })
                        .inc();
                    log.note(reason);
                }
            }
        }
    });

    tokio::spawn(async move {
        let mut last_part_reload = None;
        loop {
            tokio::select! {
                gap = reconnected.recv() => if gap.is_none() { break },
                missing = gaps.recv() => {
                    if missing.is_none() { break }
                    if let Some(wait) = last_part_reload
                        .map(|at: Instant| PART_RELOAD_EVERY.saturating_sub(at.elapsed()))
                    {
                        tokio::time::sleep(wait).await;
                    }
                    last_part_reload = Some(Instant::now());
                    while gaps.try_recv().is_ok() {}
                    tracing::warn!(
                        "messages of another instance never arrived (a failed publish, or \
                         NATS dropped them); reloading the model from the store"
                    );
                }
                first = unapplied.recv() => {
                    let Some(mut parts) = first else { break };
                    // At most one such reload a second (it reads the whole store): should
                    // parts keep failing, the instance keeps serving in between.
                    if let Some(wait) = last_part_reload
                        .map(|at: Instant| PART_RELOAD_EVERY.saturating_sub(at.elapsed()))
                    {
                        tokio::time::sleep(wait).await;
                    }
                    last_part_reload = Some(Instant::now());
                    // Those reported meanwhile are covered by the same reload.
                    while let Ok(more) = unapplied.try_recv() {
                        parts.unknown_user += more.unknown_user;
                        parts.account_differs += more.account_differs;
                    }
                    for (reason, n) in [
                        ("unknown_user", parts.unknown_user),
                        ("account_differs", parts.account_differs),
                    ] {
                        resync_metrics
                            .cluster_parts_unapplied
                            .get_or_create(&RejectLabels { reason })
                            .inc_by(n);
                    }
                    tracing::info!(
                        "{} status change(s) from another instance were for users this \
                         instance does not know, {} for users whose account part here \
                         differs; reloading the model from the store",
                        parts.unknown_user,
                        parts.account_differs
                    );
                }
            }
            while !writer.resync(store.clone()).await {
                tracing::warn!("reloading the model from the store failed; retrying");
                tokio::time::sleep(RESYNC_RETRY).await;
            }
        }
    });
    Ok(())
}

/// Counts the users' records and connections a peer's batch carries, and those about
/// users no connection here listens to (`statusd_cluster_received_unwatched_total`):
/// what interest routing could spare this instance. Measured (docs/cluster.md): with
/// every instance keeping the whole model, all of them must still apply every change.
fn count_interest(changes: &[WireChange], bus: &super::Bus, metrics: &Metrics) {
    let (mut all, mut unwatched) = (0u64, 0u64);
    for c in changes {
        let uid = match c {
            WireChange::User(uid, _) | WireChange::Status(uid, _) | WireChange::Conn(uid, _, _) => {
                uid
            }
            _ => continue,
        };
        all += 1;
        if !bus.fanout().wants(uid) {
            unwatched += 1;
        }
    }
    metrics.cluster_received_user_changes.inc_by(all);
    metrics.cluster_received_unwatched.inc_by(unwatched);
}

/// The changes of a received message to apply, and whether messages of its sender went
/// missing before it: None for this instance's own; the reason it is dropped when it is
/// not sealed with the cluster's secret, unreadable, or a replay.
fn accept(
    sealer: &Sealer,
    subject: &str,
    message: &[u8],
    instance_id: &str,
    guard: &mut replay::Guard,
    now: i64,
) -> Result<Option<(Vec<WireChange>, replay::Fresh)>, &'static str> {
    let payload = sealer.open(subject, message).map_err(|r| r.as_str())?;
    // Sealed by a peer, so a peer of another version: unreadable, not hostile.
    let env: Envelope = serde_json::from_slice(payload).map_err(|_| "unreadable")?;
    if env.origin == instance_id {
        return Ok(None);
    }
    let fresh = guard
        .check(&env.origin, env.seq, env.sent_at, now)
        .map_err(|r| r.as_str())?;
    Ok(Some((env.changes, fresh)))
}

/// Logs dropped messages at most once every `REJECT_LOG_EVERY`: a flood of forged
/// messages must not flood the log too.
#[derive(Default)]
struct RejectLog {
    next: Option<Instant>,
    dropped: u64,
}

impl RejectLog {
    fn note(&mut self, reason: &str) {
        self.dropped += 1;
        let now = Instant::now();
        if self.next.is_some_and(|next| now < next) {
            return;
        }
        tracing::warn!(
            "dropped {} cluster message(s) that failed verification (latest: {reason}); \
             is something other than this cluster's instances publishing on its subject, \
             or does an instance have another CLUSTER_SECRET?",
            self.dropped
        );
        self.dropped = 0;
        self.next = Some(now + REJECT_LOG_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_taken_out_of_the_server_addresses() {
        let (addrs, auth) =
            servers("nats://statusd:p%40ss@n1.example.net:4223, nats://n2:4222").unwrap();
        assert_eq!(
            auth,
            Some(UrlAuth::UserPassword("statusd".into(), "p@ss".into()))
        );
        let shown: Vec<String> = addrs
            .into_iter()
            .map(|a| a.into_inner().to_string())
            .collect();
        assert_eq!(shown, ["nats://n1.example.net:4223", "nats://n2:4222"]);
        let (_, auth) = servers("tls://s3cr3t-token@n1:4222").unwrap();
        assert_eq!(auth, Some(UrlAuth::Token("s3cr3t-token".into())));
        let (_, auth) = servers("nats://127.0.0.1:4222").unwrap();
        assert_eq!(auth, None);
        let err = servers("nats://u:hunter2@n1:4222,nats://u:hunter2@[::1").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn only_sealed_fresh_messages_of_peers_are_accepted() {
        let sealer = Sealer::new("a-secret-of-thirty-two-characters-at-least", None);
        let now = 1_700_000_000_000;
        let env = |origin: &str, seq: u64| {
            serde_json::to_vec(&Envelope {
                origin: origin.into(),
                seq,
                sent_at: now,
                changes: vec![WireChange::Setting("x".into(), None)],
            })
            .unwrap()
        };
        let mut guard = replay::Guard::default();
        let peer = sealer.seal("s", &env("peer", 1));
        let got = accept(&sealer, "s", &peer, "me", &mut guard, now);
        assert_eq!(
            got,
            Ok(Some((
                vec![WireChange::Setting("x".into(), None)],
                replay::Fresh::InOrder
            )))
        );
        assert_eq!(
            accept(&sealer, "s", &peer, "me", &mut guard, now),
            Err("replayed")
        );
        let own = sealer.seal("s", &env("me", 1));
        assert_eq!(accept(&sealer, "s", &own, "me", &mut guard, now), Ok(None));
        assert_eq!(
            accept(&sealer, "s", &env("peer", 2), "me", &mut guard, now),
            Err("unsealed")
        );
        let forged = Sealer::new("another-secret-of-thirty-two-characters-too", None)
            .seal("s", &env("peer", 3));
        assert_eq!(
            accept(&sealer, "s", &forged, "me", &mut guard, now),
            Err("bad_seal")
        );
        let junk = sealer.seal("s", b"not json");
        assert_eq!(
            accept(&sealer, "s", &junk, "me", &mut guard, now),
            Err("unreadable")
        );
        let late = sealer.seal("s", &env("peer", 4));
        let later = now + replay::MAX_SKEW_MS + 1;
        assert_eq!(
            accept(&sealer, "s", &late, "me", &mut guard, later),
            Err("stale")
        );
    }

    #[test]
    fn a_batch_too_large_for_one_message_goes_in_several_in_order() {
        let sealer = Sealer::new("a-secret-of-thirty-two-characters-at-least", None);
        let changes: Vec<WireChange> = (0..100)
            .map(|i| WireChange::Setting(format!("setting-{i:03}"), Some("x".repeat(200).into())))
            .collect();
        let seal = |b: &[u8]| sealer.seal("s", b);
        // Room for all: one message.
        let mut seq = 4;
        let (one, unsent) = messages("a", &mut seq, 1, &changes, 1 << 20, seal);
        assert_eq!((one.len(), unsent, seq), (1, 0, 5));
        // 4 KiB: several messages, each within it, numbered on, the changes in order.
        let mut seq = 4;
        let (many, unsent) = messages("a", &mut seq, 1, &changes, 4096, seal);
        assert!(many.len() > 5, "{}", many.len());
        assert_eq!((unsent, seq), (0, 4 + many.len() as u64));
        let mut guard = replay::Guard::default();
        let mut got = Vec::new();
        for m in &many {
            assert!(m.len() <= 4096, "{}", m.len());
            let (part, fresh) = accept(&sealer, "s", m, "b", &mut guard, 1)
                .unwrap()
                .unwrap();
            assert_eq!(fresh, replay::Fresh::InOrder);
            got.extend(part);
        }
        assert_eq!(got, changes);
        // A single change larger than the limit is not sent, but its number is used: the
        // receiver finds the gap.
        let mut seq = 0;
        let big = vec![
            WireChange::Setting("small".into(), None),
            WireChange::Setting("big".into(), Some("y".repeat(10_000).into())),
            WireChange::Setting("after".into(), None),
        ];
        let (sent, unsent) = messages("a", &mut seq, 1, &big, 4096, seal);
        assert_eq!((sent.len(), unsent, seq), (2, 1, 3));
        let mut guard = replay::Guard::default();
        let fresh: Vec<replay::Fresh> = sent
            .iter()
            .map(|m| {
                accept(&sealer, "s", m, "b", &mut guard, 1)
                    .unwrap()
                    .unwrap()
                    .1
            })
            .collect();
        assert_eq!(fresh, [replay::Fresh::InOrder, replay::Fresh::Gap]);
    }
}
