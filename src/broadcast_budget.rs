//! The presence broadcast budget: what the global `user-status` stream may cost this
//! instance before presence broadcasting is turned off for the whole workspace.
//!
//! `stream-notify-logged` `user-status` sends every status change to every subscribed
//! connection, so its cost is connections × changes per second, whatever the fan-out
//! index does (`bus::fanout`: one queue push of one shared, once-encoded frame per
//! connection). Past what an instance can deliver in time, every subscriber gets late
//! frames and then slow-consumer closes. Rocket.Chat's answer is
//! `Presence_broadcast_disabled`: its presence service turns it on by itself when the
//! workspace's connections pass `MAX_CONNECTIONS` without a licence
//! (ee/packages/presence/src/Presence.ts, `validateAvailability`), clients then stop
//! expecting live presence, and an admin turns it back on with
//! `presence.enableBroadcast` (apps/meteor/app/api/server/v1/presence.ts).
//!
//! statusd does the same past a measured budget instead of a connection count: each
//! second it samples the `user-status` subscribers (connections in the fan-out's `all`
//! set) and the status changes published; when subscribers × the changes per second
//! over the last [`WINDOW`] pass `PRESENCE_BROADCAST_BUDGET`, it sets the setting (a
//! committed change, so every instance of a cluster stops broadcasting), logs a
//! warning and counts it. Going back under the budget re-enables nothing: as upstream,
//! an admin does (and if the load is still over the budget, it is turned off again
//! once a window has been measured).

use std::collections::VecDeque;
use std::time::Duration;

use crate::app::Ctx;
use crate::settings::{self, Typed, Values};

/// How often the load is sampled.
const TICK: Duration = Duration::from_secs(1);
/// Over how many samples the change rate is averaged: a burst shorter than this does
/// not switch broadcasting off.
pub const WINDOW: usize = 5;

/// The load over a window of samples of (user-status subscribers, changes published so
/// far).
#[derive(Default)]
struct Load {
    samples: VecDeque<(u64, u64)>,
}

impl Load {
    /// Adds a sample; returns subscribers × changes per second once the window is full.
    fn sample(&mut self, subscribers: u64, changes: u64) -> Option<u64> {
        self.samples.push_back((subscribers, changes));
        if self.samples.len() > WINDOW + 1 {
            self.samples.pop_front();
        }
        if self.samples.len() <= WINDOW {
            return None;
        }
        let (_, first) = self.samples.front().copied()?;
        let per_sec = changes.saturating_sub(first) / WINDOW as u64;
        // The fewest subscribers of the window: a crowd that came and left at once
        // is not a load.
        let subs = self.samples.iter().map(|(s, _)| *s).min().unwrap_or(0);
        Some(subs.saturating_mul(per_sec))
    }
}

pub async fn run(app: Ctx) {
    let budget = app.cfg.presence_broadcast_budget;
    let mut load = Load::default();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let subscribers = app.bus.fanout().listening_to_all() as u64;
        let changes = app.metrics.status_events.get();
        let Some(now) = load.sample(subscribers, changes) else {
            continue;
        };
        app.metrics
            .presence_broadcast_load
            .set(i64::try_from(now).unwrap_or(i64::MAX));
        if budget == 0 || now <= budget {
            continue;
        }
        if app
            .model
            .read()
            .value(&settings::PRESENCE_BROADCAST_DISABLED)
        {
            continue;
        }
        if disable(&app).await {
            app.metrics.presence_broadcast_auto_disabled.inc();
            tracing::warn!(
                "presence broadcasting turned off for the workspace: the user-status stream \
                 costs {now} frames/s here ({subscribers} subscribers), over \
                 PRESENCE_BROADCAST_BUDGET={budget}; Presence_broadcast_disabled is on until \
                 an admin calls presence.enableBroadcast"
            );
        }
        // Measure afresh: the changes made while it was on are not a reason to turn
        // it off again after an admin turned it back on.
        load = Load::default();
    }
}

/// Turns `Presence_broadcast_disabled` on; true if this call did it.
async fn disable(app: &Ctx) -> bool {
    let id = settings::PRESENCE_BROADCAST_DISABLED.definition().id;
    let done = app
        .writer
        .run(move |tx| {
            if tx.setting(id) == Some(serde_json::json!(true)) {
                return Ok(false);
            }
            tx.put_setting(id, serde_json::json!(true));
            Ok(true)
        })
        .await;
    match done {
        Ok(did) => did,
        Err(e) => {
            tracing::warn!("turning presence broadcasting off failed: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_is_subscribers_times_changes_per_second_over_the_window() {
        let mut l = Load::default();
        for i in 0..WINDOW as u64 {
            assert_eq!(l.sample(100, i * 50), None);
        }
        // 50 changes a second to 100 subscribers.
        assert_eq!(l.sample(100, WINDOW as u64 * 50), Some(5000));
        // The fewest subscribers of the window count.
        assert_eq!(l.sample(2, (WINDOW as u64 + 1) * 50), Some(100));
        // No changes, no load.
        let mut quiet = Load::default();
        for _ in 0..=WINDOW {
            quiet.sample(1_000_000, 7);
        }
        assert_eq!(quiet.sample(1_000_000, 7), Some(0));
    }
}
