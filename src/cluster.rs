//! Cluster upkeep: this instance's heartbeat in the shared store, and — on the one
//! instance holding the cluster lock — reaping the connections of instances that
//! stopped beating (killed, crashed, cut off). An instance is dead after
//! `INSTANCE_DEAD_SECS` (default 30) without a heartbeat; the reaper looks every
//! heartbeat period, so a dead instance's users go offline within
//! INSTANCE_DEAD_SECS + 2 × the period (≤ 40 s by default). The period is `HEARTBEAT`,
//! or a third of INSTANCE_DEAD_SECS when that is shorter: a live instance must beat
//! several times within it, or the leader would take it for dead between two beats
//! and reap connections that are still open.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::app::Ctx;
use crate::change;

pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// How often an instance beats (and the leader looks for dead instances).
pub fn heartbeat_period(dead_after: Duration) -> Duration {
    HEARTBEAT.min(dead_after / 3)
}

pub async fn run(app: Ctx) {
    let dead_after = Duration::from_secs(app.cfg.instance_dead_secs);
    let period = heartbeat_period(dead_after);
    loop {
        let store = app.store.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let healthy = store.heartbeat().is_ok();
            let leader = healthy && store.is_leader();
            let dead = if leader {
                store.dead_connections(dead_after).unwrap_or_default()
            } else {
                Vec::new()
            };
            (healthy, leader, dead)
        })
        .await;
        let (_healthy, leader, dead) = checked.unwrap_or((false, false, Vec::new()));
        app.leader.store(leader, Ordering::SeqCst);
        if !dead.is_empty() {
            tracing::info!("reaping {} connections of dead instances", dead.len());
            let reaped = app
                .writer
                .run(move |tx| {
                    for (user, conn) in &dead {
                        change::connection(tx, user, conn, None);
                    }
                    Ok(())
                })
                .await;
            match reaped {
                Ok(()) => {
                    let store = app.store.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        store.forget_dead_instances(dead_after)
                    })
                    .await;
                }
                Err(e) => tracing::warn!("reaping dead connections failed, will retry: {e}"),
            }
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_instance_beats_several_times_within_the_dead_limit() {
        assert_eq!(heartbeat_period(Duration::from_secs(30)), HEARTBEAT);
        for secs in 2..=60 {
            let dead = Duration::from_secs(secs);
            let period = heartbeat_period(dead);
            assert!(period * 3 <= dead, "{secs} s: beats every {period:?}");
            assert!(period <= HEARTBEAT);
        }
    }
}
