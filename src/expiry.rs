//! The expiry timer: when a temporary status (`expiresAt`) is due, the previous status
//! and text come back, through the same writer path as any change. Due times live in
//! the model (loaded from the store), so overdue ones apply right after a restart.

use std::sync::Arc;
use std::time::Duration;

use crate::calendar;
use crate::change;
use crate::cluster::Leadership;
use crate::state::Core;

/// How often the timer looks for due statuses (the contract allows one second).
const TICK: Duration = Duration::from_millis(250);

pub async fn run(core: Core, leader: Arc<Leadership>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // In a cluster only the lease holder expires statuses, so each runs once.
        if !leader.is_leader() {
            continue;
        }
        apply_due(&core).await;
    }
}

/// At start-up, before the server listens: applies the expiries that fell due while
/// it was down, so no client ever sees them pending. Only on the instance holding the
/// cluster lease (a single embedded instance always does); the others leave them to it.
pub async fn catch_up(core: &Core, leader: &Leadership) {
    if leader.is_leader() {
        apply_due(core).await;
    }
}

/// Restores every status whose expiry is due now, then fires the calendar events due
/// (`crate::calendar`: their starts and ends, once each).
async fn apply_due(core: &Core) {
    apply_expiries(core).await;
    calendar::apply_due(core).await;
}

async fn apply_expiries(core: &Core) {
    let due = core
        .model
        .read()
        .due_expiries(chrono::Utc::now().timestamp_millis());
    if due.is_empty() {
        return;
    }
    let result = core
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
