//! Cluster mode: committed changes travel between instances over NATS. Each instance
//! publishes what its writer committed (once, in commit order) and applies what the
//! others committed; its own messages come back to it and are skipped by origin.
//! After a gap (NATS restarted, link lost) the instance reloads its model from the
//! shared store, so nothing missed while disconnected stays missed. The reload runs in
//! the writer's order (a snapshot read earlier could be older than changes applied
//! while it was read, and would undo them) and is retried until the store answers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::state::remote::{from_wire, to_wire, WireChange};
use crate::state::{Change, Writer};
use crate::store::Store;

/// How long to wait before trying a failed resync again.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    changes: Vec<WireChange>,
}

/// Connects to NATS; `reconnected` hears of every reconnection after the first.
pub async fn connect(
    url: &str,
    reconnected: mpsc::UnboundedSender<()>,
) -> anyhow::Result<async_nats::Client> {
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let reconnected = reconnected.clone();
            let first = first.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        if !first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                            tracing::info!("NATS connection restored");
                            let _ = reconnected.send(());
                        }
                    }
                    async_nats::Event::Disconnected => tracing::warn!("NATS connection lost"),
                    other => tracing::debug!("NATS: {other}"),
                }
            }
        })
        .connect(url)
        .await
        .with_context(|| {
            // Never the URL itself: it may carry a user and password.
            let servers = crate::logging::describe_nats(url);
            format!("NATS_URL: cannot connect to {servers}")
        })
}

/// Starts the tasks that publish local commits, apply remote ones and resync after gaps.
pub async fn start(
    client: async_nats::Client,
    subject: String,
    instance_id: String,
    mut commits: mpsc::UnboundedReceiver<Vec<Change>>,
    mut reconnected: mpsc::UnboundedReceiver<()>,
    writer: Writer,
    store: Arc<dyn Store>,
) -> anyhow::Result<()> {
    let mut sub = client
        .subscribe(subject.clone())
        .await
        .context("NATS: subscribing")?;

    let publisher = client.clone();
    let origin = instance_id.clone();
    let out_subject = subject.clone();
    tokio::spawn(async move {
        while let Some(changes) = commits.recv().await {
            let wire = to_wire(&changes);
            if wire.is_empty() {
                continue;
            }
            let env = Envelope {
                origin: origin.clone(),
                changes: wire,
            };
            match serde_json::to_vec(&env) {
                Ok(bytes) => {
                    if let Err(e) = publisher.publish(out_subject.clone(), bytes.into()).await {
                        tracing::warn!("NATS publish failed (peers resync on reconnect): {e}");
                    }
                }
                Err(e) => tracing::error!("encoding a change for NATS: {e}"),
            }
        }
    });

    let apply_writer = writer.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let env: Envelope = match serde_json::from_slice(&msg.payload) {
                Ok(env) => env,
                Err(e) => {
                    tracing::warn!("ignoring an unreadable cluster message: {e}");
                    continue;
                }
            };
            if env.origin == instance_id {
                continue;
            }
            let changes: Vec<Change> = env.changes.into_iter().map(from_wire).collect();
            apply_writer.apply_remote(changes).await;
        }
    });

    tokio::spawn(async move {
        while reconnected.recv().await.is_some() {
            while !writer.resync(store.clone()).await {
                tracing::warn!("resync after NATS reconnect failed; retrying");
                tokio::time::sleep(RESYNC_RETRY).await;
            }
        }
    });
    Ok(())
}
