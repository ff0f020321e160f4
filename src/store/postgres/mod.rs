//! The PostgreSQL store, for several instances sharing one database.
//!
//! It uses the synchronous `postgres` client, which drives each connection with a
//! small runtime of its own and so panics when used (or even dropped) on a thread that
//! is inside a tokio runtime. Every connection therefore lives on a dedicated thread
//! of this store (a [`Worker`]), and the trait methods hand it a job and wait for the
//! answer: they are safe to call from any thread, a plain one (the writer) or a
//! runtime worker (start-up, `spawn_blocking`, async housekeeping).
//!
//! Three connections, each with its own thread:
//! - the writer's: `load` and `commit`;
//! - the reader's: history reads, pruning, `ping`, heartbeats and reaping queries, so
//!   none of them waits behind a commit;
//! - the leader's: holds the session-level advisory lock that makes one instance the
//!   leader, and nothing else.
//!
//! A broken connection (PostgreSQL restarted, the backend killed) is noticed by the
//! next call on it: a commit then fails (the writer answers 503) and the call after it
//! connects again, so an instance recovers on its own. Reads are idempotent and are
//! retried once on a fresh connection right away.
//!
//! Times are BIGINT milliseconds since the epoch, like the SQLite store. Heartbeats are
//! stamped and compared with the database's clock, so instances with skewed clocks
//! still agree on which one stopped beating. Instance ids must be unique per process
//! (a fresh id each start): an instance never reaps its own connections.

mod rows;
mod schema;
mod session;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use postgres::Config;

use self::rows::*;
use self::schema::migrate;
use self::session::{stmt, Worker};
use super::{HistoryQuery, Snapshot, Store};
use crate::model::HistoryEntry;
use crate::state::Change;

/// Advisory lock key (per database) of being the leader.
const LEADER_LOCK: i64 = 0x7374_6174_7573_6402;

pub struct PostgresStore {
    instance_id: String,
    writer: Worker,
    reader: Worker,
    leader: Worker,
}

impl PostgresStore {
    /// Connects (without TLS), migrates the schema and registers this instance.
    pub fn open(url: &str, instance_id: &str) -> anyhow::Result<PostgresStore> {
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
        let store = PostgresStore {
            instance_id: instance_id.to_string(),
            writer: Worker::spawn("writer", &config, &target)?,
            reader: Worker::spawn("reader", &config, &target)?,
            leader: Worker::spawn("leader", &config, &target)?,
        };
        store
            .writer
            .call(|s| {
                let c = s.client()?;
                migrate(c)
            })
            .with_context(|| format!("migrating {target}"))?;
        store
            .heartbeat()
            .with_context(|| format!("registering the instance in {target}"))?;
        Ok(store)
    }
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

// These compare with the database's clock, `(extract(epoch from clock_timestamp()) *
// 1000)::bigint` (spelled out: `concat!` takes only literals).
const HEARTBEAT: &str = "INSERT INTO instances (id, heartbeat_at)
     VALUES ($1, (extract(epoch from clock_timestamp()) * 1000)::bigint)
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";
const DEAD_CONNECTIONS: &str = "SELECT c.user_id, c.conn_id FROM connections c
     LEFT JOIN instances i ON i.id = c.instance_id
     WHERE c.instance_id <> $1
       AND (i.id IS NULL
            OR i.heartbeat_at < (extract(epoch from clock_timestamp()) * 1000)::bigint - $2)
     ORDER BY c.instance_id, c.user_id, c.conn_id";
const FORGET_INSTANCES: &str = "DELETE FROM instances i
     WHERE i.id <> $1
       AND i.heartbeat_at < (extract(epoch from clock_timestamp()) * 1000)::bigint - $2
       AND NOT EXISTS (SELECT 1 FROM connections c WHERE c.instance_id = i.id)";

impl Store for PostgresStore {
    fn load(&self) -> anyhow::Result<Snapshot> {
        self.writer.call(|s| s.run_retrying(|c, _| load_all(c)))
    }

    fn commit(&self, changes: &[Change]) -> anyhow::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        // The job runs on the connection's thread, so it owns its input.
        let changes = changes.to_vec();
        let instance_id = self.instance_id.clone();
        self.writer.call(move |s| {
            // No retry: after a failure nothing was applied, and the caller decides.
            s.run(&mut |c, stmts| {
                let mut tx = c.transaction()?;
                for change in &changes {
                    apply_change(&mut tx, stmts, &instance_id, change)?;
                }
                tx.commit()?;
                Ok(())
            })
        })
    }

    fn history(&self, q: &HistoryQuery) -> anyhow::Result<(Vec<HistoryEntry>, u64)> {
        let q = q.clone();
        self.reader
            .call(move |s| s.run_retrying(|c, stmts| history_page(c, stmts, &q)))
    }

    fn prune_history(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let before = ms(&before);
        self.reader.call(move |s| {
            s.run_retrying(|c, _| {
                Ok(c.execute("DELETE FROM status_history WHERE at < $1", &[&before])?)
            })
        })
    }

    fn ping(&self) -> anyhow::Result<()> {
        self.reader.call(|s| {
            s.run_retrying(|c, _| {
                c.simple_query("SELECT 1")?;
                Ok(())
            })
        })
    }

    fn heartbeat(&self) -> anyhow::Result<()> {
        let id = self.instance_id.clone();
        self.reader.call(move |s| {
            s.run_retrying(|c, stmts| {
                let st = stmt(stmts, c, HEARTBEAT)?;
                c.execute(&st, &[&txt(&id)])?;
                Ok(())
            })
        })
    }

    fn dead_connections(&self, older_than: Duration) -> anyhow::Result<Vec<(String, String)>> {
        let id = self.instance_id.clone();
        let older = duration_ms(older_than);
        self.reader.call(move |s| {
            s.run_retrying(|c, stmts| {
                let st = stmt(stmts, c, DEAD_CONNECTIONS)?;
                c.query(&st, &[&txt(&id), &older])?
                    .iter()
                    .map(|r| Ok((text(r, 0)?, text(r, 1)?)))
                    .collect()
            })
        })
    }

    fn forget_dead_instances(&self, older_than: Duration) -> anyhow::Result<()> {
        let id = self.instance_id.clone();
        let older = duration_ms(older_than);
        self.reader.call(move |s| {
            s.run_retrying(|c, stmts| {
                let st = stmt(stmts, c, FORGET_INSTANCES)?;
                c.execute(&st, &[&txt(&id), &older])?;
                Ok(())
            })
        })
    }

    /// The `connections` table holds every instance's live connections.
    fn persists_connections(&self) -> bool {
        true
    }

    // `changed_elsewhere` keeps the default (no): peers' commits arrive over NATS, and
    // a server on PostgreSQL picks up the admin CLI's changes when restarted.

    fn is_leader(&self) -> bool {
        let r = self.leader.call(|s| {
            if s.leading {
                // The lock lives as long as the session: still connected, still leader.
                let alive = s
                    .client
                    .as_mut()
                    .is_some_and(|c| c.is_valid(Duration::from_secs(5)).is_ok());
                if alive {
                    return Ok(true);
                }
                s.reset();
            }
            let c = s.client()?;
            let got = c.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]);
            match got {
                Ok(row) => {
                    s.leading = row.try_get(0)?;
                    Ok(s.leading)
                }
                Err(e) => {
                    let e = anyhow::Error::from(e);
                    s.check(&e);
                    Err(e)
                }
            }
        });
        match r {
            Ok(leading) => leading,
            Err(e) => {
                tracing::debug!("leader lock: {e:#}");
                false
            }
        }
    }
}
