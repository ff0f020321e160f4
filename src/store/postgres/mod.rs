//! The PostgreSQL store, for several instances sharing one database.
//!
//! It uses the synchronous `postgres` client, which drives each connection with a
//! small runtime of its own and so panics when used (or even dropped) on a thread that
//! is inside a tokio runtime. Every connection therefore lives on a dedicated thread
//! of this store (a [`Worker`]), and the trait methods hand it a job and wait for the
//! answer: they are safe to call from any thread, a plain one (the writer) or a
//! runtime worker (start-up, `spawn_blocking`, async housekeeping).
//!
//! A server keeps three connections, each with its own thread:
//! - the writer's: `load` and `commit`;
//! - the reader's: history reads, pruning, `ping`, heartbeats, the leader lease and
//!   reaping queries, so none of them waits behind a commit;
//! - the listener's: LISTENs for the commits of admin commands (`statusd user …`),
//!   which announce them with NOTIFY (`cluster.rs`), and nothing else.
//!
//! An admin command opens only the first two and does not register as an instance.
//!
//! A broken connection (PostgreSQL restarted, the backend killed) is noticed by the
//! next call on it: a commit then fails (the writer answers 503) and the call after it
//! connects again, so an instance recovers on its own. Reads are idempotent and are
//! retried once on a fresh connection right away.
//!
//! Times are BIGINT milliseconds since the epoch, like the SQLite store. Heartbeats and
//! the lease are stamped and compared with the database's clock. Instance ids must be
//! unique per process (a fresh id each start): an instance never reaps its own
//! connections.

mod cluster;
mod rows;
mod schema;
mod session;
#[cfg(test)]
mod tests;

use self::cluster::NotLeader;

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use postgres::Config;

use self::cluster::{CHANGED_CHANNEL, SESSION_SETUP};
use self::rows::{apply_changes, credentials, history_page, load_all};
use self::schema::migrate;
use self::session::{Stmts, Worker};
use super::codec::{from_ms, ms};
use super::{
    attempt_row, Attempt, ClusterStore, CommitError, Credentials, DeliveryRecord, DueDelivery,
    HistoryQuery, Role, Snapshot, Store, OUTBOX_DUE,
};
use crate::model::{ConnStatus, ConnectedCalendar, HistoryEntry};
use crate::record::Change;

pub struct PostgresStore {
    instance_id: String,
    role: Role,
    writer: Worker,
    reader: Worker,
    /// A server's LISTENing connection (none for an admin command).
    listener: Option<Worker>,
    /// `admin_sync.changed` as the last `load` read it (-1 before the first).
    admin_loaded: AtomicI64,
    /// `admin_sync.changed` after this admin command's last commit (-1: none yet).
    admin_committed: AtomicI64,
}

impl PostgresStore {
    /// Connects (without TLS) and migrates the schema. A server also registers this
    /// instance and starts listening for the admin commands' commits.
    pub fn open(url: &str, instance_id: &str, role: Role) -> anyhow::Result<PostgresStore> {
        let mut config =
            Config::from_str(url).map_err(|e| anyhow!("not a valid PostgreSQL URL ({e})"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_keepalives_interval().is_none() {
            // Notice a peer that vanished within a minute, not two hours.
            config
                .keepalives(true)
                .keepalives_idle(Duration::from_secs(15))
                .keepalives_interval(Duration::from_secs(5))
                .keepalives_retries(3);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(30));
        }
        let target = describe(&config);
        let listener = match role {
            Role::Server => Some(Worker::spawn(
                "listener",
                &config,
                &target,
                &format!("{SESSION_SETUP}; LISTEN {CHANGED_CHANNEL}"),
            )?),
            Role::Admin => None,
        };
        let store = PostgresStore {
            instance_id: instance_id.to_string(),
            role,
            writer: Worker::spawn("writer", &config, &target, SESSION_SETUP)?,
            reader: Worker::spawn("reader", &config, &target, SESSION_SETUP)?,
            listener,
            admin_loaded: AtomicI64::new(-1),
            admin_committed: AtomicI64::new(-1),
        };
        store
            .writer
            .call(|s| {
                let c = s.client()?;
                migrate(c)
            })
            .with_context(|| format!("migrating {target}"))?;
        if role == Role::Server {
            store
                .heartbeat()
                .with_context(|| format!("registering the instance in {target}"))?;
            // Listening before the first load: a command committing in between is heard.
            if let Some(listener) = &store.listener {
                listener
                    .call(|s| s.client().map(|_| ()))
                    .with_context(|| format!("listening on {target}"))?;
            }
        }
        Ok(store)
    }

    /// Runs `f` on the reader's connection, retried once on a fresh one.
    fn read<R: Send + 'static>(
        &self,
        f: impl FnMut(&mut postgres::Client, &mut Stmts) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        self.reader.call(move |s| s.run_retrying(f))
    }

    /// Commits `changes` in one transaction, with `extra` run first in it. An admin
    /// command's commit also counts itself in `admin_sync.changed` and announces itself.
    fn commit_with(
        &self,
        changes: &[Change],
        extra: impl Fn(&mut postgres::Transaction, &mut Stmts, &str) -> anyhow::Result<()>
            + Send
            + 'static,
    ) -> anyhow::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        // The job runs on the connection's thread, so it owns its input.
        let changes = changes.to_vec();
        let instance_id = self.instance_id.clone();
        let announce = self.role == Role::Admin;
        let counted = self.writer.call(move |s| {
            // No retry: after a failure nothing was applied, and the caller decides.
            s.run(&mut |c, stmts| {
                let mut tx = c.transaction()?;
                extra(&mut tx, stmts, &instance_id)?;
                apply_changes(&mut tx, stmts, &instance_id, &changes)?;
                let counted = if announce {
                    cluster::announce(&mut tx, &instance_id)?;
                    Some(cluster::count_admin_change(&mut tx)?)
                } else {
                    None
                };
                tx.commit()?;
                Ok(counted)
            })
        })?;
        if let Some(n) = counted {
            self.admin_committed.store(n, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// The schema state of the PostgreSQL database `url` names: one short connection on a
/// thread of its own (the client must not run inside a tokio runtime), no migration.
pub fn schema_state(url: &str) -> anyhow::Result<super::SchemaState> {
    let mut config =
        Config::from_str(url).map_err(|e| anyhow!("not a valid PostgreSQL URL ({e})"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let target = describe(&config);
    let known = schema::MIGRATIONS.len() as i64;
    let read = std::thread::spawn(move || -> anyhow::Result<Option<i64>> {
        let mut c = config.connect(postgres::NoTls)?;
        let exists: bool = c
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
            .get(0);
        if !exists {
            return Ok(None);
        }
        let v: Option<i64> = c
            .query_one("SELECT MAX(version)::bigint FROM schema_migrations", &[])?
            .get(0);
        Ok(v)
    })
    .join()
    .map_err(|_| anyhow!("reading the schema version panicked"))?;
    let version = read.with_context(|| format!("reading the schema version of {target}"))?;
    Ok(super::SchemaState { version, known })
}

/// `user@host:port/dbname`, without the password, for messages.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("?");
    let db = config.get_dbname().unwrap_or(user);
    format!("PostgreSQL {user}@{host}:{port}/{db}")
}

impl Store for PostgresStore {
    fn load(&self) -> anyhow::Result<Snapshot> {
        let (admin, snap) = self.writer.call(|s| {
            s.run_retrying(|c, _| {
                // Read first: what follows holds every admin change counted so far.
                let admin = cluster::admin_changes(c)?;
                Ok((admin, load_all(c)?))
            })
        })?;
        self.admin_loaded.store(admin, Ordering::SeqCst);
        Ok(snap)
    }

    fn commit(&self, changes: &[Change]) -> Result<(), CommitError> {
        Ok(self.commit_with(changes, |_, _, _| Ok(()))?)
    }

    fn history(&self, q: &HistoryQuery) -> anyhow::Result<(Vec<HistoryEntry>, u64)> {
        let q = q.clone();
        self.read(move |c, stmts| history_page(c, stmts, &q))
    }

    fn prune_history(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let before = ms(&before);
        self.read(
            move |c, _| Ok(c.execute("DELETE FROM status_history WHERE at < $1", &[&before])?),
        )
    }

    fn calendars(&self, user_id: Option<&str>) -> anyhow::Result<Vec<ConnectedCalendar>> {
        let user_id = user_id.map(str::to_string);
        self.read(move |c, _| {
            let bodies = c.query(
                "SELECT body FROM connected_calendars WHERE $1::TEXT IS NULL OR user_id = $1
                 ORDER BY id",
                &[&user_id.as_deref().map(rows::txt)],
            )?;
            Ok(bodies
                .iter()
                .filter_map(|r| rows::text(r, 0).ok())
                .filter_map(|b| serde_json::from_str::<ConnectedCalendar>(&b).ok())
                .collect())
        })
    }

    fn put_calendar(&self, cal: &ConnectedCalendar) -> anyhow::Result<()> {
        let (id, uid, body) = (cal.id.clone(), cal.uid.clone(), serde_json::to_string(cal)?);
        self.read(move |c, _| {
            c.execute(
                "INSERT INTO connected_calendars (id, user_id, body) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, body = EXCLUDED.body",
                &[&rows::txt(&id), &rows::txt(&uid), &rows::txt(&body)],
            )?;
            Ok(())
        })
    }

    fn delete_calendar(&self, id: &str) -> anyhow::Result<bool> {
        let id = id.to_string();
        self.read(move |c, _| {
            Ok(c.execute(
                "DELETE FROM connected_calendars WHERE id = $1",
                &[&rows::txt(&id)],
            )? > 0)
        })
    }

    fn due_deliveries(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<Vec<DueDelivery>> {
        let (now, limit) = (ms(&now), limit as i64);
        self.read(move |c, _| {
            c.query(OUTBOX_DUE, &[&now, &limit])?
                .iter()
                .map(|r| -> anyhow::Result<DueDelivery> {
                    Ok(DueDelivery {
                        seq: r.try_get(0)?,
                        id: rows::text(r, 1)?,
                        endpoint_id: rows::text(r, 2)?,
                        user_id: rows::text(r, 3)?,
                        payload: rows::text(r, 4)?,
                        created_at: from_ms(r.try_get(5)?),
                        attempts: r.try_get::<_, i32>(6)?.max(0) as u32,
                        url: rows::text(r, 7)?,
                        secret: rows::text(r, 8)?,
                    })
                })
                .collect()
        })
    }

    fn record_attempt(
        &self,
        seq: i64,
        attempt: &Attempt,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let (state, status, error, next_at, finished) = attempt_row(attempt, now);
        let status = status.map(i32::from);
        self.read(move |c, _| {
            c.execute(
                "UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1,
                    last_status = $3, last_error = $4, next_at = COALESCE($5, next_at),
                    finished_at = $6 WHERE seq = $1",
                &[
                    &seq,
                    &state,
                    &status,
                    &error.as_deref().map(rows::txt),
                    &next_at,
                    &finished,
                ],
            )?;
            Ok(())
        })
    }

    fn delivery_log(&self, endpoint_id: &str, limit: usize) -> anyhow::Result<Vec<DeliveryRecord>> {
        let (endpoint_id, limit) = (endpoint_id.to_string(), limit as i64);
        self.read(move |c, _| {
            c.query(
                "SELECT id, user_id, event, state, attempts, created_at, next_at, last_status,
                    last_error, finished_at FROM webhook_deliveries WHERE endpoint_id = $1
                 ORDER BY seq DESC LIMIT $2",
                &[&rows::txt(&endpoint_id), &limit],
            )?
            .iter()
            .map(|r| -> anyhow::Result<DeliveryRecord> {
                Ok(DeliveryRecord {
                    id: rows::text(r, 0)?,
                    user_id: rows::text(r, 1)?,
                    event: rows::text(r, 2)?,
                    state: rows::text(r, 3)?,
                    attempts: r.try_get::<_, i32>(4)?.max(0) as u32,
                    created_at: from_ms(r.try_get(5)?),
                    next_at: from_ms(r.try_get(6)?),
                    last_status: r
                        .try_get::<_, Option<i32>>(7)?
                        .and_then(|s| u16::try_from(s).ok()),
                    last_error: rows::opt_text(r, 8)?,
                    finished_at: r.try_get::<_, Option<i64>>(9)?.map(from_ms),
                })
            })
            .collect()
        })
    }

    fn outbox_backlog(&self) -> anyhow::Result<(u64, Option<DateTime<Utc>>)> {
        self.read(|c, _| {
            let r = c.query_one(
                "SELECT COUNT(*), MIN(created_at) FROM webhook_deliveries WHERE state = 'pending'",
                &[],
            )?;
            let n: i64 = r.try_get(0)?;
            let oldest: Option<i64> = r.try_get(1)?;
            Ok((n.max(0) as u64, oldest.map(from_ms)))
        })
    }

    fn prune_deliveries(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let before = ms(&before);
        self.read(move |c, _| {
            Ok(c.execute(
                "DELETE FROM webhook_deliveries WHERE state != 'pending' AND finished_at < $1",
                &[&before],
            )?)
        })
    }

    fn ping(&self) -> anyhow::Result<()> {
        self.read(|c, _| {
            c.simple_query("SELECT 1")?;
            Ok(())
        })
    }

    fn loaded_admin_changes(&self) -> Option<i64> {
        Some(self.admin_loaded.load(Ordering::SeqCst)).filter(|n| *n >= 0)
    }

    /// In this instance's row of `instances`.
    fn acknowledge(&self, applied: Option<i64>) -> anyhow::Result<()> {
        let id = self.instance_id.clone();
        self.read(move |c, _| cluster::acknowledge(c, &id, applied))
    }

    /// The instances that recorded what they loaded (a stopped one cleared it) and
    /// whose heartbeat is younger than `alive_within`.
    fn servers_behind(&self, alive_within: Duration) -> anyhow::Result<Option<usize>> {
        let mine = self.admin_committed.load(Ordering::SeqCst);
        let (running, behind) =
            self.read(move |c, _| cluster::servers_behind(c, mine, alive_within))?;
        Ok((running > 0).then_some(behind))
    }

    /// A shared store; its `load` returns every instance's live connections (the
    /// `connections` table).
    fn cluster(&self) -> Option<&dyn ClusterStore> {
        Some(self)
    }

    /// Peers' commits arrive over NATS; the admin commands' are announced with NOTIFY,
    /// heard on the listening connection. A new connection (after PostgreSQL was lost)
    /// may have missed some, so it counts as a change too.
    fn changed_elsewhere(&self) -> anyhow::Result<bool> {
        let Some(listener) = &self.listener else {
            return Ok(false);
        };
        listener.call(|s| {
            let before = s.connects;
            s.client()?;
            let reconnected = s.connects != before;
            let heard = cluster::drain_notifications(s.client()?);
            match heard {
                Ok(heard) => Ok(heard || reconnected),
                Err(e) => {
                    let e = anyhow::Error::from(e);
                    s.check(&e);
                    Err(e)
                }
            }
        })
    }
}

impl ClusterStore for PostgresStore {
    /// On the writer's connection: the writer asks, in its order (`state::remote`).
    fn credentials(&self, user_ids: &[String]) -> anyhow::Result<Credentials> {
        let ids = user_ids.to_vec();
        self.writer
            .call(move |s| s.run_retrying(|c, _| credentials(c, &ids)))
    }

    fn commit_as_leader(&self, changes: &[Change]) -> Result<(), CommitError> {
        self.commit_with(changes, cluster::fence).map_err(|e| {
            // The fence's refusal, raised inside the transaction on the connection's
            // thread, is told apart here, where it was made.
            if e.chain().any(|c| c.is::<NotLeader>()) {
                CommitError::NotLeader
            } else {
                CommitError::Failed(e)
            }
        })
    }

    fn heartbeat(&self) -> anyhow::Result<()> {
        let id = self.instance_id.clone();
        self.read(move |c, stmts| cluster::heartbeat(c, stmts, &id))
    }

    fn dead_connections(&self, older_than: Duration) -> anyhow::Result<Vec<(String, String)>> {
        let id = self.instance_id.clone();
        self.read(move |c, stmts| cluster::dead_connections(c, stmts, &id, older_than))
    }

    fn forget_dead_instances(&self, older_than: Duration) -> anyhow::Result<()> {
        let id = self.instance_id.clone();
        self.read(move |c, stmts| cluster::forget_dead_instances(c, stmts, &id, older_than))
    }

    fn own_connections(&self) -> anyhow::Result<Vec<(String, String, ConnStatus)>> {
        let id = self.instance_id.clone();
        self.read(move |c, stmts| cluster::own_connections(c, stmts, &id))
    }

    fn lead(&self, length: Duration) -> anyhow::Result<bool> {
        let id = self.instance_id.clone();
        self.read(move |c, stmts| cluster::take_lease(c, stmts, &id, length))
    }

    fn resign(&self) -> anyhow::Result<()> {
        let id = self.instance_id.clone();
        self.read(move |c, _| cluster::resign(c, &id))
    }
}
