//! Cluster upkeep: this instance's heartbeat in the shared store, and — on the one
//! instance holding the cluster lock — reaping the connections of instances that
//! stopped beating (killed, crashed, cut off). An instance is dead after
//! `INSTANCE_DEAD_SECS` (default 30) without a heartbeat; the reaper looks every
//! `HEARTBEAT` seconds, so a dead instance's users go offline within
//! INSTANCE_DEAD_SECS + 2 × HEARTBEAT (≤ 40 s by default).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::app::Ctx;
use crate::change;

pub const HEARTBEAT: Duration = Duration::from_secs(5);

pub async fn run(app: Ctx) {
    let dead_after = Duration::from_secs(app.cfg.instance_dead_secs);
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
        tokio::time::sleep(HEARTBEAT).await;
    }
}
