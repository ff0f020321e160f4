//! The expiry timer: when a temporary status (`expiresAt`) is due, the previous status
//! and text come back, through the same writer path as any change. Due times live in
//! the model (loaded from the store), so overdue ones apply right after a restart.
//! The same timer opens and closes do-not-disturb windows (`status::dnd`): schedules
//! and the window applied live in the users' rows, so a restart resumes them.

use std::sync::Arc;
use std::time::Duration;

use crate::calendar;
use crate::change;
use crate::cluster::Leadership;
use crate::state::Core;
use crate::status::dnd;

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

/// Restores every status whose expiry is due now, opens and closes the due
/// do-not-disturb windows, then fires the calendar events due (`crate::calendar`:
/// their starts and ends, once each).
async fn apply_due(core: &Core) {
    expire_due(core).await;
    dnd_due(core).await;
    calendar::apply_due(core).await;
}

/// Users whose do-not-disturb schedule has a step to take now.
fn dnd_pending(core: &Core) -> Vec<String> {
    let now = chrono::Utc::now();
    let model = core.model.read();
    model
        .dnd_users
        .iter()
        .filter(|id| {
            model
                .users
                .get(*id)
                .and_then(|u| u.dnd.as_deref())
                .and_then(|j| serde_json::from_str::<dnd::Schedule>(j).ok())
                .is_some_and(|s| dnd::step(&s, now) != dnd::Step::Nothing)
        })
        .cloned()
        .collect()
}

async fn dnd_due(core: &Core) {
    let due = dnd_pending(core);
    if due.is_empty() {
        return;
    }
    let result = core
        .writer
        .run_as_leader(move |tx| {
            for id in &due {
                change::dnd_step(tx, id);
            }
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!("do-not-disturb schedules failed, will retry: {e}");
    }
}

async fn expire_due(core: &Core) {
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
