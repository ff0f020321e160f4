//! This instance's own realtime connections, as its sessions hold them, and the repair
//! of what the shared store and the model say about them.
//!
//! The store can lose an instance's live connections: an instance that stopped beating
//! for longer than INSTANCE_DEAD_SECS (paused, stalled, cut off from PostgreSQL) has
//! them reaped by the leader, even though its websockets never closed. And it can keep
//! connections that are gone: a close whose commit failed (PostgreSQL was down) leaves
//! its row behind, and the user online everywhere. Every heartbeat period, each
//! instance therefore compares the sessions it holds with its rows in the store and
//! with its model, and puts back or removes the difference through the normal write
//! path, so the other instances and every subscriber hear of it.
//!
//! The register is updated *before* a connection's change is committed (and undone if
//! the commit fails), so a row the store holds for this instance always has its entry
//! here unless the connection is gone. A repair that races with a change in flight
//! writes the same thing again, which changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::change;
use crate::model::ConnStatus;
use crate::state::{Core, Key, Value};

/// Connection id → (user id, the connection's own status).
type Conns = HashMap<String, (String, ConnStatus)>;

#[derive(Default)]
pub struct OwnConns {
    live: Mutex<Conns>,
}

impl OwnConns {
    /// Records a connection's user and status; returns what it held before.
    pub fn set(&self, conn: &str, user: &str, status: ConnStatus) -> Option<(String, ConnStatus)> {
        self.live
            .lock()
            .insert(conn.to_string(), (user.to_string(), status))
    }

    /// Puts back what `set` returned (its commit failed).
    pub fn restore(&self, conn: &str, before: Option<(String, ConnStatus)>) {
        let mut live = self.live.lock();
        match before {
            Some(b) => live.insert(conn.to_string(), b),
            None => live.remove(conn),
        };
    }

    pub fn remove(&self, conn: &str) {
        self.live.lock().remove(conn);
    }

    fn snapshot(&self) -> Conns {
        self.live.lock().clone()
    }
}

/// Makes the store and the model agree with the sessions this instance holds.
pub async fn repair(core: &Core, own_conns: &Arc<OwnConns>) {
    let store = core.store.clone();
    let recorded = tokio::task::spawn_blocking(move || match store.cluster() {
        Some(c) => c.own_connections(),
        None => Ok(Vec::new()),
    });
    let recorded = match recorded.await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            tracing::debug!("reading this instance's connections: {e:#}");
            return;
        }
        Err(_) => return,
    };
    let recorded: Conns = recorded
        .into_iter()
        .map(|(user, conn, status)| (conn, (user, status)))
        .collect();
    let own = own_conns.clone();
    let repaired = core
        .writer
        .run(move |tx| {
            // Read in the writer's order: every change queued before this job is seen.
            let live = own.snapshot();
            let mut n = 0;
            for (conn, (user, status)) in &live {
                let in_model =
                    tx.get(&Key::Conn(user.clone(), conn.clone())) == Some(Value::Conn(*status));
                let in_store = recorded.get(conn) == Some(&(user.clone(), *status));
                if !in_model || !in_store {
                    change::connection(tx, user, conn, Some(*status));
                    n += 1;
                }
            }
            for (conn, (user, _)) in &recorded {
                if !live.contains_key(conn) {
                    change::connection(tx, user, conn, None);
                    n += 1;
                }
            }
            Ok(n)
        })
        .await;
    match repaired {
        Ok(0) => {}
        Ok(n) => tracing::info!("restored {n} connections of this instance in the store"),
        Err(e) => tracing::debug!("restoring this instance's connections: {e}"),
    }
}
