//! The durable store behind a narrow trait: load everything at start-up, commit an
//! ordered list of changes atomically. SQLite is the embedded default; a PostgreSQL
//! backend implements the same two calls.

mod codec;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod postgres;
pub mod sqlite;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{ConnStatus, ConnectedCalendar, HistoryEntry, Token};
pub use crate::record::{Change, Snapshot};

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

/// An outbox delivery the worker may send now: the first undelivered one of its
/// endpoint and user, due, with where to send it and the key to sign it with.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub seq: i64,
    pub id: String,
    pub endpoint_id: String,
    pub user_id: String,
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub url: String,
    pub secret: String,
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// Try again at `next_at`.
    Retry {
        status: Option<u16>,
        error: String,
        next_at: DateTime<Utc>,
    },
    /// Given up: out of retry time.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

/// One row of an endpoint's delivery log.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: String,
    pub user_id: String,
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub next_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The due deliveries, the same SQL for both stores: $1 now (ms), $2 the limit. A
/// delivery is due when it is the oldest pending one of its endpoint and user (the
/// heads, read from the partial index of pending rows) and its time has come; a later
/// one waits behind it however due it is.
pub(crate) const OUTBOX_DUE: &str = "SELECT d.seq, d.id, d.endpoint_id, d.user_id, d.payload,
        d.created_at, d.attempts, w.url, w.secret
     FROM (SELECT MIN(seq) AS seq FROM webhook_deliveries WHERE state = 'pending'
           GROUP BY endpoint_id, user_id) h
     JOIN webhook_deliveries d ON d.seq = h.seq
     JOIN webhooks w ON w.id = d.endpoint_id
     WHERE d.next_at <= $1
     ORDER BY d.seq LIMIT $2";

/// An attempt as a row: (state, status, error, next attempt (ms), finished (ms)).
pub(crate) fn attempt_row(
    a: &Attempt,
    now: DateTime<Utc>,
) -> (
    &'static str,
    Option<u16>,
    Option<String>,
    Option<i64>,
    Option<i64>,
) {
    let now = now.timestamp_millis();
    match a {
        Attempt::Delivered { status } => ("delivered", Some(*status), None, None, Some(now)),
        Attempt::Retry {
            status,
            error,
            next_at,
        } => (
            "pending",
            *status,
            Some(error.clone()),
            Some(next_at.timestamp_millis()),
            None,
        ),
        Attempt::Failed { status, error } => {
            ("failed", *status, Some(error.clone()), None, Some(now))
        }
    }
}

/// Why a commit did not happen. Either way, nothing of it was applied.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Leader work refused: this instance no longer holds the cluster's leader lease
    /// (`ClusterStore::commit_as_leader`).
    #[error("this instance no longer holds the leader lease")]
    NotLeader,
    /// The store could not commit (unreachable, a constraint, I/O).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

pub trait Store: Send + Sync + 'static {
    /// Reads the whole state (start-up only).
    fn load(&self) -> anyhow::Result<Snapshot>;
    /// Applies the changes in order, in one transaction, durably: when this returns
    /// Ok the changes survive a crash of the process. On error nothing was applied.
    fn commit(&self, changes: &[Change]) -> Result<(), CommitError>;
    /// Reads a page of the status history and the total matching entries. Blocking:
    /// call from `spawn_blocking`.
    fn history(&self, q: &HistoryQuery) -> anyhow::Result<(Vec<HistoryEntry>, u64)>;
    /// Deletes history entries older than `before`; returns how many.
    fn prune_history(&self, before: DateTime<Utc>) -> anyhow::Result<u64>;

    /// Up to `limit` outbox deliveries due at `now`, oldest first, at most one per
    /// endpoint and user (the oldest undelivered one: order per user is kept).
    fn due_deliveries(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<Vec<DueDelivery>>;
    /// Records what became of an attempt at delivery `seq`.
    fn record_attempt(&self, seq: i64, attempt: &Attempt, now: DateTime<Utc>)
        -> anyhow::Result<()>;
    /// The newest `limit` deliveries of an endpoint, newest first.
    fn delivery_log(&self, endpoint_id: &str, limit: usize) -> anyhow::Result<Vec<DeliveryRecord>>;
    /// (undelivered deliveries, creation time of the oldest of them).
    fn outbox_backlog(&self) -> anyhow::Result<(u64, Option<DateTime<Utc>>)>;
    /// Forgets finished deliveries older than `before`; returns how many.
    fn prune_deliveries(&self, before: DateTime<Utc>) -> anyhow::Result<u64>;

    /// Connected calendars (`crate::calsync`), of one user or of all. They live only in
    /// the store (read by the routes and the sync worker), each row one JSON body.
    fn calendars(&self, user_id: Option<&str>) -> anyhow::Result<Vec<ConnectedCalendar>>;
    /// Writes a connected calendar (new or changed).
    fn put_calendar(&self, calendar: &ConnectedCalendar) -> anyhow::Result<()>;
    /// Forgets a connected calendar; false when there was none.
    fn delete_calendar(&self, id: &str) -> anyhow::Result<bool>;

    /// Is the store reachable? (for `/api/health`)
    fn ping(&self) -> anyhow::Result<()>;

    /// Has another process (the admin CLI, an import) committed to the store since the
    /// last call? The server polls this and then reloads (`crate::external`).
    fn changed_elsewhere(&self) -> anyhow::Result<bool>;

    /// The admin commands' change counter (`admin_sync.changed`, which each admin
    /// commit raises in its transaction) as the last `load` read it, before anything
    /// else: the state loaded holds every admin change up to it. None before a load.
    fn loaded_admin_changes(&self) -> Option<i64>;

    /// A server records that its model holds every admin change up to `applied`
    /// (`crate::external`); None when it stops, so no command waits for it.
    fn acknowledge(&self, applied: Option<i64>) -> anyhow::Result<()>;

    /// An admin command, after its commits: how many running servers have not yet
    /// loaded this process's last commit (0: all have); None when no server runs on
    /// the database. A shared store counts the instances whose heartbeat is younger
    /// than `alive_within`.
    fn servers_behind(&self, alive_within: Duration) -> anyhow::Result<Option<usize>>;

    /// The operations of a store shared by a cluster of instances; None for an
    /// embedded store, which serves one instance: it always leads, keeps its live
    /// connections only in memory, and hears from no peer.
    fn cluster(&self) -> Option<&dyn ClusterStore> {
        None
    }
}

/// What only a store shared by several instances does: heartbeats, reaping, the
/// leader lease, and the reads cluster mode needs. A shared store's `load` also
/// returns every instance's live connections.
pub trait ClusterStore: Send + Sync {
    /// Records that this instance is alive (called every few seconds).
    fn heartbeat(&self) -> anyhow::Result<()>;
    /// Connections (user id, connection id) of instances whose last heartbeat is older
    /// than `older_than`: their owner died, so they must be reaped.
    fn dead_connections(&self, older_than: Duration) -> anyhow::Result<Vec<(String, String)>>;
    /// Forgets instances that have no connections left and stopped beating.
    fn forget_dead_instances(&self, older_than: Duration) -> anyhow::Result<()>;
    /// Takes the cluster-wide leader lease for once-only work (expiry, reaping) for
    /// `length` from now, or renews it when this instance holds it already. Ok(true):
    /// this instance leads; the caller counts `length` from before the call, so it
    /// stops before anyone else may take over.
    fn lead(&self, length: Duration) -> anyhow::Result<bool>;
    /// Ends this instance's lease now (a graceful stop), so another takes over at once.
    fn resign(&self) -> anyhow::Result<()>;
    /// Like `Store::commit`, for the leader's work: refused (`CommitError::NotLeader`)
    /// unless this instance still holds the lease when the transaction commits.
    fn commit_as_leader(&self, changes: &[Change]) -> Result<(), CommitError>;
    /// The live connections the store records for this instance (user id, connection
    /// id, status).
    fn own_connections(&self) -> anyhow::Result<Vec<(String, String, ConnStatus)>>;
    /// The password hashes and tokens of `user_ids`, as committed now: they do not
    /// travel between instances (`state::remote`).
    fn credentials(&self, user_ids: &[String]) -> anyhow::Result<Credentials>;
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

/// Where the schema of the database a `DATABASE_URL` names stands, read without
/// creating or changing anything (`statusd migrate --check`, and the admin commands'
/// refusal to make a new database where none was meant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaState {
    /// The last migration applied; None when there is no statusd database there (no
    /// file, an empty file, or no migrations table).
    pub version: Option<i64>,
    /// The last migration this binary knows.
    pub known: i64,
}

impl SchemaState {
    /// The versions this binary would apply on opening the store.
    pub fn pending(&self) -> std::ops::RangeInclusive<i64> {
        self.version.unwrap_or(0) + 1..=self.known
    }
}

/// Reads the [`SchemaState`] of the database a `DATABASE_URL` names. Blocking.
pub fn schema_state(url: &str) -> anyhow::Result<SchemaState> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return sqlite::schema_state(path);
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return self::postgres::schema_state(url);
    }
    anyhow::bail!(
        "DATABASE_URL: unsupported scheme in {url:?} (expected sqlite://PATH or postgres://…)"
    )
}

/// Opens the store a `DATABASE_URL` names. `instance_id` names this process among the
/// instances sharing a database (unique per process); an embedded store ignores it.
pub fn open(url: &str, instance_id: &str, role: Role) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(std::sync::Arc::new(sqlite::SqliteStore::open_as(
            path, role,
        )?));
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
