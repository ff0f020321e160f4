//! The expiry timer: when a temporary status (`expiresAt`) is due, the previous status
//! and text come back, through the same writer path as any change. Due times live in
//! the model (loaded from the store), so overdue ones apply right after a restart.

use std::time::Duration;

use crate::app::Ctx;
use crate::change;

/// How often the timer looks for due statuses (the contract allows one second).
const TICK: Duration = Duration::from_millis(250);

pub async fn run(app: Ctx) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // In a cluster only the lock holder expires statuses, so each runs once.
        if !app.leader.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        apply_due(&app).await;
    }
}

/// At start-up, before the server listens: applies the expiries that fell due while
/// it was down, so no client ever sees them pending. Only on the instance holding the
/// cluster lock (a single embedded instance always does); the others leave them to it.
pub async fn catch_up(app: &Ctx) {
    let store = app.store.clone();
    if tokio::task::spawn_blocking(move || store.is_leader())
        .await
        .unwrap_or(false)
    {
        apply_due(app).await;
    }
}

/// Restores every status whose expiry is due now.
async fn apply_due(app: &Ctx) {
    let due = app
        .model
        .read()
        .due_expiries(chrono::Utc::now().timestamp_millis());
    if due.is_empty() {
        return;
    }
    let result = app
        .writer
        .run(move |tx| {
            for id in &due {
                change::expire(tx, id);
            }
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!("expiring statuses failed, will retry: {e}");
    }
}
