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
        let due = app
            .model
            .read()
            .due_expiries(chrono::Utc::now().timestamp_millis());
        if due.is_empty() {
            continue;
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
}
