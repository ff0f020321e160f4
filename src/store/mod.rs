//! The durable store behind a narrow trait: load everything at start-up, commit an
//! ordered list of changes atomically. SQLite is the embedded default; a PostgreSQL
//! backend implements the same two calls.

#[cfg(test)]
pub(crate) mod fixtures;
pub mod postgres;
pub mod sqlite;

use serde_json::Value as Json;

use chrono::{DateTime, Utc};

use crate::model::{ConnStatus, CustomStatus, HistoryEntry, Token, User};
use crate::state::Change;

/// Everything the server keeps, as loaded at start-up.
#[derive(Default)]
pub struct Snapshot {
    pub users: Vec<User>,
    pub tokens: Vec<Token>,
    pub settings: Vec<(String, Json)>,
    pub permissions: Vec<(String, Vec<String>)>,
    pub custom_statuses: Vec<CustomStatus>,
    /// Live connections of running instances (user id, connection id, status); an
    /// embedded store keeps none, since connections die with the process.
    pub conns: Vec<(String, String, ConnStatus)>,
}

/// The secrets of some users, re-read from a shared store when another instance says
/// they changed (they never travel between instances: `state::remote`).
#[derive(Default, Debug)]
pub struct Credentials {
    /// (user id, password hash) of each of those users that exists.
    pub password_hashes: Vec<(String, Option<String>)>,
    /// Every token of those users.
    pub tokens: Vec<Token>,
}

/// A page of one user's status history, newest first.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub user_id: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub offset: usize,
    pub count: usize,
}

pub trait Store: Send + Sync + 'static {
    /// Reads the whole state (start-up only).
    fn load(&self) -> anyhow::Result<Snapshot>;
    /// Applies the changes in order, in one transaction, durably: when this returns
    /// Ok the changes survive a crash of the process. On error nothing was applied.
    fn commit(&self, changes: &[Change]) -> anyhow::Result<()>;
    /// Reads a page of the status history and the total matching entries. Blocking:
    /// call from `spawn_blocking`.
    fn history(&self, q: &HistoryQuery) -> anyhow::Result<(Vec<HistoryEntry>, u64)>;
    /// Deletes history entries older than `before`; returns how many.
    fn prune_history(&self, before: DateTime<Utc>) -> anyhow::Result<u64>;

    // Cluster support. An embedded store serves one instance, so these are trivial there.

    /// Is the store reachable? (for `/api/health`)
    fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Records that this instance is alive (called every few seconds).
    fn heartbeat(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Connections (user id, connection id) of instances whose last heartbeat is older
    /// than `older_than`: their owner died, so they must be reaped.
    fn dead_connections(
        &self,
        _older_than: std::time::Duration,
    ) -> anyhow::Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
    /// Forgets instances that have no connections left and stopped beating.
    fn forget_dead_instances(&self, _older_than: std::time::Duration) -> anyhow::Result<()> {
        Ok(())
    }
    /// Takes the cluster-wide leader lease for once-only work (expiry, reaping) for
    /// `length` from now, or renews it when this instance holds it already. Ok(true):
    /// this instance leads; the caller counts `length` from before the call, so it
    /// stops before anyone else may take over. A single embedded instance always leads.
    fn lead(&self, _length: std::time::Duration) -> anyhow::Result<bool> {
        Ok(true)
    }
    /// Ends this instance's lease now (a graceful stop), so another takes over at once.
    fn resign(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Like `commit`, for the leader's work: refused (`postgres::NotLeader`) unless
    /// this instance still holds the lease when the transaction commits.
    fn commit_as_leader(&self, changes: &[Change]) -> anyhow::Result<()> {
        self.commit(changes)
    }
    /// The password hashes and tokens of `user_ids`, as committed now (a shared
    /// store; an embedded one has no other instance to hear from).
    fn credentials(&self, _user_ids: &[String]) -> anyhow::Result<Credentials> {
        anyhow::bail!("an embedded store is not shared")
    }
    /// The live connections the store records for this instance (user id, connection
    /// id, status), when `persists_connections`.
    fn own_connections(&self) -> anyhow::Result<Vec<(String, String, ConnStatus)>> {
        Ok(Vec::new())
    }

    // Changes made by another process (the admin CLI, an import) while the server runs.

    /// Has another process committed to the store since the last call? The server
    /// polls this and then reloads (`crate::external`). A store that cannot tell says no.
    fn changed_elsewhere(&self) -> anyhow::Result<bool> {
        Ok(false)
    }
    /// Does `load` return the live connections? An embedded store keeps them only in
    /// memory, so a reload must keep the ones the model holds.
    fn persists_connections(&self) -> bool {
        false
    }
}

/// Who opens a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A server: registers as an instance and listens for other processes' commits.
    Server,
    /// An admin command (`statusd user …`, `import`): announces its commits to the
    /// running servers instead.
    Admin,
}

/// Opens the store a `DATABASE_URL` names. `instance_id` names this process among the
/// instances sharing a database (unique per process); an embedded store ignores it.
pub fn open(url: &str, instance_id: &str, role: Role) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(std::sync::Arc::new(sqlite::SqliteStore::open(path)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(self::postgres::PostgresStore::open(
            url,
            instance_id,
            role,
        )?));
    }
    anyhow::bail!(
        "DATABASE_URL: unsupported scheme in {url:?} (expected sqlite://PATH or postgres://…)"
    )
}
