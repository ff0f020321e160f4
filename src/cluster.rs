//! Cluster upkeep, every heartbeat period: this instance's heartbeat in the shared
//! store; the leader lease; on the leader, reaping the connections of instances that
//! stopped beating (killed, crashed, hung, cut off); and on every instance, repairing
//! what the store records of its own connections (`own_conns`).
//!
//! An instance is dead after `INSTANCE_DEAD_SECS` (default 30) without a heartbeat. The
//! period is `HEARTBEAT`, or a third of INSTANCE_DEAD_SECS when that is shorter: a live
//! instance must beat several times within it, or the leader would take it for dead
//! between two beats and reap connections that are still open. A dead instance's users
//! go offline within INSTANCE_DEAD_SECS + 2 × the period (≤ 40 s by default).
//!
//! Leadership is a lease in the store (`store/postgres/cluster.rs`) of three periods,
//! renewed every period, and counted from before each renewal was asked for: a leader
//! that cannot renew (hung, paused, cut off from PostgreSQL) stops leading by its own
//! clock before another instance can take over, and its late commits are refused by
//! the store (`Writer::run_as_leader`). Another instance takes over within a period of
//! the lease's end, so expiry pauses for at most four periods (20 s by default) when
//! the leader dies without a goodbye; a graceful stop resigns at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::change;
use crate::own_conns::{self, OwnConns};
use crate::state::Core;

pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// How often an instance beats (and the leader looks for dead instances).
pub fn heartbeat_period(dead_after: Duration) -> Duration {
    HEARTBEAT.min(dead_after / 3)
}

/// How long a lease lasts: three periods, so one slow round does not lose it, and at
/// most INSTANCE_DEAD_SECS.
pub fn lease_length(period: Duration) -> Duration {
    period * 3
}

/// Whether (and until when, by this process's monotonic clock) this instance leads.
#[derive(Default)]
pub struct Leadership {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    until: Option<Instant>,
    stopped: bool,
}

impl Leadership {
    /// May this instance do once-only work now?
    pub fn is_leader(&self) -> bool {
        self.state.lock().until.is_some_and(|u| Instant::now() < u)
    }

    /// Records the outcome of asking for the lease at `asked`.
    pub fn record(&self, leads: bool, asked: Instant, length: Duration) {
        let mut s = self.state.lock();
        s.until = (leads && !s.stopped).then(|| asked + length);
    }

    /// Stops leading for good (shutting down).
    pub fn stop(&self) {
        let mut s = self.state.lock();
        s.stopped = true;
        s.until = None;
    }

    fn stopped(&self) -> bool {
        self.state.lock().stopped
    }
}

/// At start-up, before the model is loaded: takes the lease if it is free, so expiries
/// that fell due while the cluster was down apply before anyone can look.
pub fn lead_at_start(store: &dyn crate::store::Store, dead_after: Duration) -> (bool, Instant) {
    let asked = Instant::now();
    // A single embedded instance always leads.
    let leads = store.cluster().is_none_or(|c| {
        c.lead(lease_length(heartbeat_period(dead_after)))
            .unwrap_or(false)
    });
    (leads, asked)
}

/// The upkeep loop: this instance's heartbeat and its bid for the lease every period;
/// as the leader, reaping; on every instance, the repair of its own connections.
pub async fn run(
    core: Core,
    leader: Arc<Leadership>,
    own_conns: Arc<OwnConns>,
    dead_after: Duration,
) {
    let period = heartbeat_period(dead_after);
    loop {
        round(&core, &leader, &own_conns, dead_after, lease_length(period)).await;
        tokio::time::sleep(period).await;
    }
}

async fn round(
    core: &Core,
    leader: &Leadership,
    own_conns: &Arc<OwnConns>,
    dead_after: Duration,
    lease: Duration,
) {
    if leader.stopped() {
        return;
    }
    let store = core.store.clone();
    let asked = Instant::now();
    let (healthy, leads) = tokio::task::spawn_blocking(move || {
        // A single embedded instance always leads and has no one to beat for.
        let Some(store) = store.cluster() else {
            return (true, true);
        };
        if let Err(e) = store.heartbeat() {
            tracing::debug!("heartbeat: {e:#}");
            return (false, false);
        }
        match store.lead(lease) {
            Ok(leads) => (true, leads),
            Err(e) => {
                tracing::debug!("leader lease: {e:#}");
                (true, false)
            }
        }
    })
    .await
    .unwrap_or((false, false));

    let shared = core.store.cluster().is_some();
    if leads && !leader.is_leader() && shared {
        // Newly the leader: first read everything the previous leader committed, some
        // of which NATS may not have brought yet, so no expiry is applied twice.
        if !core.writer.resync(core.store.clone()).await {
            leader.record(false, asked, lease);
            return;
        }
        tracing::info!("this instance is now the cluster leader");
    }
    leader.record(leads, asked, lease);
    if leader.is_leader() {
        reap(core, dead_after).await;
    }
    if healthy && shared {
        own_conns::repair(core, own_conns).await;
    }
}

/// Removes the connections of dead instances through the normal write path
/// (committed, published on NATS, an `offline` event for each user left with none).
async fn reap(core: &Core, dead_after: Duration) {
    let store = core.store.clone();
    let dead = tokio::task::spawn_blocking(move || match store.cluster() {
        Some(c) => c.dead_connections(dead_after),
        None => Ok(Vec::new()),
    })
    .await
    .map_err(anyhow::Error::from)
    .and_then(|r| r);
    let dead = match dead {
        Ok(dead) if dead.is_empty() => return,
        Ok(dead) => dead,
        Err(e) => {
            tracing::debug!("looking for dead instances: {e:#}");
            return;
        }
    };
    tracing::info!("reaping {} connections of dead instances", dead.len());
    let reaped = core
        .writer
        .run_as_leader(move |tx| {
            for (user, conn) in &dead {
                change::connection(tx, user, conn, None);
            }
            Ok(())
        })
        .await;
    match reaped {
        Ok(()) => {
            let store = core.store.clone();
            let _ = tokio::task::spawn_blocking(move || match store.cluster() {
                Some(c) => c.forget_dead_instances(dead_after),
                None => Ok(()),
            })
            .await;
        }
        Err(e) => tracing::warn!("reaping dead connections failed, will retry: {e}"),
    }
}

/// A graceful stop: stop leading and hand the lease back, so another instance takes
/// over within one period instead of after the lease runs out.
pub async fn resign(core: &Core, leader: &Leadership) {
    leader.stop();
    let store = core.store.clone();
    // Not worth holding up the stop for: the lease runs out by itself anyway.
    let resigned = tokio::time::timeout(
        RESIGN_WAIT,
        tokio::task::spawn_blocking(move || match store.cluster() {
            Some(c) => c.resign(),
            None => Ok(()),
        }),
    )
    .await;
    match resigned {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!("could not hand back the leader lease: {e:#}"),
        _ => tracing::warn!("could not hand back the leader lease in time"),
    }
}

/// The longest a graceful stop waits to hand the lease back.
const RESIGN_WAIT: Duration = Duration::from_secs(1);

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
            assert!(lease_length(period) <= dead);
            assert!(lease_length(period) > period * 2);
        }
    }

    #[test]
    fn leadership_ends_with_the_lease_and_for_good_when_stopped() {
        let l = Leadership::default();
        assert!(!l.is_leader());
        l.record(true, Instant::now(), Duration::from_secs(60));
        assert!(l.is_leader());
        l.record(
            true,
            Instant::now() - Duration::from_secs(2),
            Duration::from_secs(1),
        );
        assert!(!l.is_leader(), "a lease counted from the ask has run out");
        l.record(true, Instant::now(), Duration::from_secs(60));
        l.record(false, Instant::now(), Duration::from_secs(60));
        assert!(!l.is_leader());
        l.record(true, Instant::now(), Duration::from_secs(60));
        l.stop();
        assert!(!l.is_leader());
        l.record(true, Instant::now(), Duration::from_secs(60));
        assert!(!l.is_leader(), "stopped for good");
    }
}
