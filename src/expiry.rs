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
        // In a cluster only the lease holder expires statuses, so each runs once.
        if !app.leader.is_leader() {
            continue;
        }
        apply_due(&app).await;
    }
}

/// At start-up, before the server listens: applies the expiries that fell due while
/// it was down, so no client ever sees them pending. Only on the instance holding the
/// cluster lease (a single embedded instance always does); the others leave them to it.
pub async fn catch_up(app: &Ctx) {
    if app.leader.is_leader() {
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
        .run_as_leader(move |tx| {
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
