//! What instances sharing the database agree on through it: heartbeats, whose
//! connections are dead, the leader lease, and the notifications of the admin CLI.
//!
//! Every time here is the database's clock, `(extract(epoch from clock_timestamp()) *
//! 1000)::bigint` (spelled out in each statement: `concat!` takes only literals), so
//! instances with skewed clocks still agree on who stopped beating and when a lease ends.
//!
//! **The leader lease.** Once-only work (status expiry, reaping dead instances) is done
//! by the holder of a row claim: `leases.leader` names a holder and an expiry. An
//! instance takes the row when it is expired, or renews it when it already holds it, in
//! one UPDATE, and counts its leadership from *before* it sent that UPDATE, so it always
//! stops (by its own monotonic clock) before the database lets anyone else take over.
//! A session-level advisory lock (the earlier design) is freed only when the holder's
//! session ends, which never happens while a hung process keeps its sockets open; a
//! lease ends by itself.
//!
//! **Fencing.** A leader that was paused (SIGSTOP, a VM stall) may wake up after its
//! lease ended and before it noticed. Its leader work therefore commits with
//! [`FENCE`] in the same transaction: the commit is refused unless the lease is still
//! its own, and the `FOR SHARE` row lock keeps anyone from taking the lease over until
//! that commit is done, so work committed under a lease always precedes the next
//! holder's. A process paused in the middle of such a transaction cannot hold the row
//! forever: every session runs with `idle_in_transaction_session_timeout`
//! ([`SESSION_SETUP`]), so PostgreSQL ends it and rolls it back, and lease takers wait
//! for the row at most [`LEASE_LOCK_TIMEOUT`] per attempt.

use std::time::Duration;

use anyhow::bail;
use postgres::{Client, GenericClient};

use super::rows::{duration_ms, text, txt};
use super::session::{stmt, Stmts};
use crate::model::ConnStatus;
use crate::store::codec::conn_status_of;

/// Run by every connection when it opens. A transaction left idle this long belongs
/// to a process that hangs (statusd sends a transaction's statements back to back):
/// PostgreSQL ends that session, so the row locks it holds cannot stall the other
/// instances' writers or the lease.
pub(super) const SESSION_SETUP: &str = "SET idle_in_transaction_session_timeout = '5s'";

/// The channel on which admin commands announce their commits to running servers.
pub(super) const CHANGED_CHANNEL: &str = "statusd_changed";

/// How long a look for notifications waits for them to arrive.
const NOTIFICATION_WAIT: Duration = Duration::from_millis(20);

/// The longest a lease taker waits for a leader's commit holding the lease row.
const LEASE_LOCK_TIMEOUT: &str = "2s";

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
const OWN_CONNECTIONS: &str =
    "SELECT user_id, conn_id, status FROM connections WHERE instance_id = $1";
/// Takes the lease when it has expired, renews it when `$1` holds it.
const TAKE_LEASE: &str = "UPDATE leases
     SET holder = $1, expires_at = (extract(epoch from clock_timestamp()) * 1000)::bigint + $2
     WHERE name = 'leader'
       AND (holder = $1 OR expires_at <= (extract(epoch from clock_timestamp()) * 1000)::bigint)";
const RESIGN: &str = "UPDATE leases SET expires_at = 0 WHERE name = 'leader' AND holder = $1";
/// Inside a leader's commit: is the lease still `$1`'s? Holds the row until the commit.
pub(super) const FENCE: &str = "SELECT 1 FROM leases
     WHERE name = 'leader' AND holder = $1
       AND expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint
     FOR SHARE";

/// The error of a leader commit refused because the lease is no longer this instance's
/// (`CommitError::NotLeader` to the store's callers).
#[derive(Debug, thiserror::Error)]
#[error("this instance no longer holds the leader lease")]
pub struct NotLeader;

pub(super) fn heartbeat(c: &mut Client, stmts: &mut Stmts, id: &str) -> anyhow::Result<()> {
    let st = stmt(stmts, c, HEARTBEAT)?;
    c.execute(&st, &[&txt(id)])?;
    Ok(())
}

pub(super) fn dead_connections(
    c: &mut Client,
    stmts: &mut Stmts,
    id: &str,
    older_than: Duration,
) -> anyhow::Result<Vec<(String, String)>> {
    let st = stmt(stmts, c, DEAD_CONNECTIONS)?;
    c.query(&st, &[&txt(id), &duration_ms(older_than)])?
        .iter()
        .map(|r| Ok((text(r, 0)?, text(r, 1)?)))
        .collect()
}

pub(super) fn forget_dead_instances(
    c: &mut Client,
    stmts: &mut Stmts,
    id: &str,
    older_than: Duration,
) -> anyhow::Result<()> {
    let st = stmt(stmts, c, FORGET_INSTANCES)?;
    c.execute(&st, &[&txt(id), &duration_ms(older_than)])?;
    Ok(())
}

pub(super) fn own_connections(
    c: &mut Client,
    stmts: &mut Stmts,
    id: &str,
) -> anyhow::Result<Vec<(String, String, ConnStatus)>> {
    let st = stmt(stmts, c, OWN_CONNECTIONS)?;
    c.query(&st, &[&txt(id)])?
        .iter()
        .map(|r| Ok((text(r, 0)?, text(r, 1)?, conn_status_of(r.try_get(2)?))))
        .collect()
}

/// Takes or renews the lease for `length`; whether `id` holds it now.
pub(super) fn take_lease(
    c: &mut Client,
    stmts: &mut Stmts,
    id: &str,
    length: Duration,
) -> anyhow::Result<bool> {
    let mut tx = c.transaction()?;
    // A leader's commit may hold the row (FENCE); do not wait behind a hung one.
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LEASE_LOCK_TIMEOUT}'"))?;
    let st = stmt(stmts, &mut tx, TAKE_LEASE)?;
    let taken = tx.execute(&st, &[&txt(id), &duration_ms(length)])?;
    tx.commit()?;
    Ok(taken == 1)
}

/// Ends `id`'s lease now, so another instance can take over at once.
pub(super) fn resign(c: &mut Client, id: &str) -> anyhow::Result<()> {
    c.execute(RESIGN, &[&txt(id)])?;
    Ok(())
}

/// In a leader's commit transaction: fails with [`NotLeader`] unless `id` holds the
/// lease, and keeps it from changing hands until the transaction ends.
pub(super) fn fence(
    tx: &mut postgres::Transaction,
    stmts: &mut Stmts,
    id: &str,
) -> anyhow::Result<()> {
    let st = stmt(stmts, tx, FENCE)?;
    if tx.query_opt(&st, &[&txt(id)])?.is_none() {
        bail!(NotLeader);
    }
    Ok(())
}

/// In an admin command's commit transaction: tells the servers LISTENing on
/// [`CHANGED_CHANNEL`] (delivered when the transaction commits, not before).
pub(super) fn announce(tx: &mut impl GenericClient, origin: &str) -> anyhow::Result<()> {
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANGED_CHANNEL, &txt(origin)],
    )?;
    Ok(())
}

/// In an admin command's commit transaction: counts it in `admin_sync.changed`;
/// returns the new count (`crate::external`).
pub(super) fn count_admin_change(tx: &mut impl GenericClient) -> anyhow::Result<i64> {
    Ok(tx
        .query_one(
            "UPDATE admin_sync SET changed = changed + 1 WHERE id = 1 RETURNING changed",
            &[],
        )?
        .get(0))
}

/// The admin commands' change counter now.
pub(super) fn admin_changes(c: &mut impl GenericClient) -> anyhow::Result<i64> {
    Ok(
        c.query_one("SELECT changed FROM admin_sync WHERE id = 1", &[])?
            .get(0),
    )
}

/// Records in instance `id`'s row the admin changes its model holds (None: it stops).
pub(super) fn acknowledge(c: &mut Client, id: &str, applied: Option<i64>) -> anyhow::Result<()> {
    c.execute(
        "UPDATE instances SET applied = $2 WHERE id = $1",
        &[&txt(id), &applied],
    )?;
    Ok(())
}

/// (running instances, those of them that have not loaded admin change `mine`): an
/// instance runs when it recorded what it loaded and beat within `alive_within`.
pub(super) fn servers_behind(
    c: &mut Client,
    mine: i64,
    alive_within: Duration,
) -> anyhow::Result<(usize, usize)> {
    let row = c.query_one(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE applied < $1) FROM instances
         WHERE applied IS NOT NULL
           AND heartbeat_at > (extract(epoch from clock_timestamp()) * 1000)::bigint - $2",
        &[&mine, &duration_ms(alive_within)],
    )?;
    let count = |i: usize| usize::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok((count(0), count(1)))
}

/// Drains the notifications the listening connection received; whether there were any.
pub(super) fn drain_notifications(c: &mut Client) -> Result<bool, postgres::Error> {
    let mut any = false;
    let mut notifications = c.notifications();
    // Not `iter()`: it polls the socket without letting the connection's runtime look
    // for readiness, so it only ever sees what an earlier call happened to read. A
    // short wait lets it read what has arrived.
    let mut pending = notifications.timeout_iter(NOTIFICATION_WAIT);
    while let Some(n) = postgres::fallible_iterator::FallibleIterator::next(&mut pending)? {
        tracing::debug!("{} from {}", n.channel(), n.payload());
        any = true;
    }
    Ok(any)
}
