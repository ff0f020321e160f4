//! Changes another process committed to the store while this server runs: the admin
//! CLI (`statusd user …`, `statusd settings set …`) and `statusd import`. The server
//! asks the store five times a second whether someone else committed
//! (`Store::changed_elsewhere`: SQLite's data version; a NOTIFY the command sent with
//! its commit on PostgreSQL) and, if so, brings those changes into its model. On
//! PostgreSQL every instance of a cluster hears the NOTIFY and reloads for itself, so
//! this works with or without NATS.
//!
//! The store is read inside a writer job, so no commit of this process can slip in
//! between the read and the comparison: at that moment the committed model holds
//! exactly what this process committed, and every difference from the store is a
//! change made elsewhere. Those differences are then applied like a cluster peer's
//! changes (`Writer::apply_remote`): what users show is re-derived from the live
//! connections this process holds, and watchers get an event for every visible change.
//! Live connections are kept as they are unless the store is shared and persists
//! them (`Store::cluster`): an embedded store does not, so to it every user looks
//! disconnected.
//!
//! **A command waits for the server.** Each admin commit also raises a counter in the
//! same transaction (`admin_sync.changed`); every `load` reads that counter before
//! the rest, so the state loaded holds every admin change up to it
//! (`Store::loaded_admin_changes`). Once the model holds what a load read, the server
//! records the counter as applied (`Store::acknowledge`: `admin_sync.applied` on
//! SQLite, its own row of `instances` on PostgreSQL), and clears it when it stops.
//! The command, after its commit, waits until every running server has applied its
//! count ([`wait_for_servers`], at most [`WAIT`]), so a login right after
//! `statusd user add` works. No server running (nothing recorded; on SQLite also no
//! other process holding the database open, so a server that died is not waited
//! for; on PostgreSQL no heartbeat younger than INSTANCE_DEAD_SECS): it does not wait.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::model::{CustomStatus, Token, User, Webhook};
use crate::record::{Change, Snapshot};
use crate::state::{Core, Model};

/// How often the store is asked.
const POLL: Duration = Duration::from_millis(200);

/// The longest an admin command waits for the running servers to apply its change.
pub const WAIT: Duration = Duration::from_secs(5);

/// Set when the server stops: it records no more applied changes.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Polls the store for outside changes for as long as the server runs. A reload that
/// fails (the store went away) is tried again every tick until it succeeds: the news
/// of the change is not repeated.
pub async fn run(core: Core) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = false;
    let mut failing = false;
    let mut acknowledged = None;
    loop {
        tick.tick().await;
        acknowledge(&core, &mut acknowledged).await;
        let store = core.store.clone();
        match tokio::task::spawn_blocking(move || store.changed_elsewhere()).await {
            Ok(Ok(changed)) => {
                pending |= changed;
                failing = false;
            }
            // Once per outage, not at every tick.
            Ok(Err(e)) if failing => tracing::debug!("asking the store for outside changes: {e:#}"),
            Ok(Err(e)) => {
                tracing::warn!("asking the store for outside changes: {e:#}");
                failing = true;
            }
            Err(e) => tracing::warn!("asking the store for outside changes: {e}"),
        }
        if pending {
            match reload(&core).await {
                Ok(0) => pending = false,
                Ok(n) => {
                    pending = false;
                    tracing::info!("applied {n} changes made by another process");
                }
                Err(e) => tracing::warn!("reading changes made by another process: {e}"),
            }
        }
    }
}

/// Records the admin changes the model holds, when that moved since the last time.
async fn acknowledge(core: &Core, acknowledged: &mut Option<i64>) {
    let loaded = core.store.loaded_admin_changes();
    if loaded.is_none() || loaded == *acknowledged || STOPPED.load(Ordering::SeqCst) {
        return;
    }
    let store = core.store.clone();
    match tokio::task::spawn_blocking(move || store.acknowledge(loaded)).await {
        Ok(Ok(())) => *acknowledged = loaded,
        Ok(Err(e)) => tracing::debug!("recording the admin changes applied: {e:#}"),
        Err(e) => tracing::debug!("recording the admin changes applied: {e}"),
    }
}

/// A graceful stop: no admin command waits for this server any more.
pub async fn withdraw(core: &Core) {
    STOPPED.store(true, Ordering::SeqCst);
    let store = core.store.clone();
    let done = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::task::spawn_blocking(move || store.acknowledge(None)),
    )
    .await;
    if !matches!(done, Ok(Ok(Ok(())))) {
        tracing::debug!("could not clear the admin changes applied");
    }
}

/// What [`wait_for_servers`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// No server runs on the database: the next one to start loads the change.
    NoServer,
    /// Every running server has applied it.
    Applied,
    /// This many running servers had not applied it after [`WAIT`].
    NotYet(usize),
}

/// An admin command, after its commits: waits (at most [`WAIT`]) until every running
/// server has applied them. `alive_within`: how recent a shared store's heartbeat
/// must be for its instance to count as running (INSTANCE_DEAD_SECS).
pub async fn wait_for_servers(core: &Core, alive_within: Duration) -> anyhow::Result<Seen> {
    let start = Instant::now();
    loop {
        let store = core.store.clone();
        let behind =
            tokio::task::spawn_blocking(move || store.servers_behind(alive_within)).await??;
        match behind {
            None => return Ok(Seen::NoServer),
            Some(0) => return Ok(Seen::Applied),
            Some(n) if start.elapsed() >= WAIT => return Ok(Seen::NotYet(n)),
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Reads the store and applies what differs from the model; returns how many changes.
pub async fn reload(core: &Core) -> Result<usize, Error> {
    let store = core.store.clone();
    if store.cluster().is_some() {
        // A shared store (PostgreSQL) also holds what the other instances committed,
        // some of which NATS may still be carrying here. Applying a diff after the job
        // that computed it could undo a connection change that NATS delivered in
        // between; the writer's resync reads and replaces in one step, in its order,
        // as after a NATS gap.
        return if core.writer.resync(store).await {
            tracing::info!("reloaded the store after a change made by another process");
            Ok(0)
        } else {
            Err(Error::Unavailable("the store could not be read".into()))
        };
    }
    let model = core.model.clone();
    let changes = core
        .writer
        .run(move |_tx| {
            let snapshot = store.load().map_err(|e| {
                tracing::warn!("loading the store: {e:#}");
                Error::Unavailable("the store could not be read".into())
            })?;
            // An embedded store keeps no connections: keep the ones the model holds.
            Ok(differences(&model.read(), snapshot, true))
        })
        .await?;
    let n = changes.len();
    if n > 0 {
        core.writer.apply_remote(changes).await;
    }
    Ok(n)
}

/// A time as the stores keep it (milliseconds), so a value this process committed
/// compares equal to the same value read back.
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

fn stored_user(u: &User) -> User {
    let mut u = u.clone();
    u.created_at = ms(u.created_at);
    u.updated_at = ms(u.updated_at);
    u.last_login = u.last_login.map(ms);
    u.last_seen = u.last_seen.map(ms);
    u.status_expires_at = u.status_expires_at.map(ms);
    u
}

fn stored_token(t: &Token) -> Token {
    let mut t = t.clone();
    t.created_at = ms(t.created_at);
    t
}

fn stored_custom_status(c: &CustomStatus) -> CustomStatus {
    let mut c = c.clone();
    c.updated_at = ms(c.updated_at);
    c
}

fn stored_webhook(w: &Webhook) -> Webhook {
    let mut w = w.clone();
    w.created_at = ms(w.created_at);
    w.updated_at = ms(w.updated_at);
    w
}

/// The changes that turn `current` into what `fresh` holds, for one kind of record:
/// `same` compares a current value with a fresh one as the store would keep it.
fn diff_map<K, C, F>(
    out: &mut Vec<Change>,
    current: &HashMap<K, C>,
    fresh: HashMap<K, F>,
    same: impl Fn(&C, &F) -> bool,
    delete: impl Fn(&K) -> Change,
    put: impl Fn(K, F) -> Change,
) where
    K: Eq + Hash,
{
    for (k, _) in current.iter().filter(|(k, _)| !fresh.contains_key(*k)) {
        out.push(delete(k));
    }
    for (k, f) in fresh {
        if !current.get(&k).is_some_and(|c| same(c, &f)) {
            out.push(put(k, f));
        }
    }
}

/// Every change between the model and a fresh snapshot of the store.
pub fn differences(current: &Model, fresh: Snapshot, keep_conns: bool) -> Vec<Change> {
    let mut out = Vec::new();
    diff_map(
        &mut out,
        &current.users,
        fresh.users.into_iter().map(|u| (u.id.clone(), u)).collect(),
        |c, f| stored_user(c) == *f,
        |id| Change::DeleteUser(id.clone()),
        |_, u| Change::PutUser(Arc::new(u)),
    );
    diff_map(
        &mut out,
        &current.tokens,
        fresh
            .tokens
            .into_iter()
            .map(|t| (t.hashed.clone(), t))
            .collect(),
        |c, f| stored_token(c) == *f,
        |h| Change::DeleteToken(h.clone()),
        |_, t| Change::PutToken(Arc::new(t)),
    );
    diff_map(
        &mut out,
        &current.settings,
        fresh.settings.into_iter().collect(),
        |c, f| c == f,
        |id| Change::DeleteSetting(id.clone()),
        Change::PutSetting,
    );
    diff_map(
        &mut out,
        &current.permissions,
        fresh.permissions.into_iter().collect(),
        |c, f| **c == *f,
        |id| Change::DeletePermission(id.clone()),
        |id, r| Change::PutPermission(id, Arc::new(r)),
    );
    diff_map(
        &mut out,
        &current.custom_statuses,
        fresh
            .custom_statuses
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect(),
        |c, f| stored_custom_status(c) == *f,
        |id| Change::DeleteCustomStatus(id.clone()),
        |_, c| Change::PutCustomStatus(Arc::new(c)),
    );
    diff_map(
        &mut out,
        &current.webhooks,
        fresh
            .webhooks
            .into_iter()
            .map(|w| (w.id.clone(), w))
            .collect(),
        |c, f| stored_webhook(c) == *f,
        |id| Change::DeleteWebhook(id.clone()),
        |_, w| Change::PutWebhook(Arc::new(w)),
    );
    if !keep_conns {
        let current_conns: HashMap<(String, String), _> = current
            .conns
            .iter()
            .flat_map(|(u, m)| m.iter().map(move |(c, s)| ((u.clone(), c.clone()), *s)))
            .collect();
        diff_map(
            &mut out,
            &current_conns,
            fresh
                .conns
                .into_iter()
                .map(|(u, c, s)| ((u, c), s))
                .collect(),
            |c, f| c == f,
            |(u, c)| Change::DeleteConn(u.clone(), c.clone()),
            |(u, c), s| Change::PutConn(u, c, s),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConnStatus, Status};
    use crate::store::sqlite::SqliteStore;
    use crate::store::Store;
    use serde_json::json;

    fn user(id: &str, name: &str) -> User {
        let mut u = crate::accounts::users::new_user(name, name, Utc::now());
        u.id = id.to_string();
        u
    }

    fn put(u: &User) -> Change {
        Change::PutUser(Arc::new(u.clone()))
    }

    #[test]
    fn another_connection_commit_is_noticed_and_own_commits_are_not() {
        let dir =
            std::env::temp_dir().join(format!("statusd-ext-{}", crate::auth::secrets::new_id()));
        let path = dir.join("db.sqlite");
        let path = path.to_str().unwrap();
        let server = SqliteStore::open(path).unwrap();
        let cli = SqliteStore::open(path).unwrap();
        assert!(!server.changed_elsewhere().unwrap());
        server.commit(&[put(&user("a", "alice"))]).unwrap();
        assert!(!server.changed_elsewhere().unwrap(), "own commit");
        cli.commit(&[put(&user("b", "bob"))]).unwrap();
        assert!(server.changed_elsewhere().unwrap(), "the CLI's commit");
        assert!(!server.changed_elsewhere().unwrap(), "asked again");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn differences_ignore_sub_millisecond_times_and_keep_connections() {
        let mut model = Model::default();
        let alice = user("a", "alice");
        let bob = user("b", "bob");
        model.apply(put(&alice));
        model.apply(put(&bob));
        model.apply(Change::PutConn("a".into(), "c1".into(), ConnStatus::Online));
        model.settings.insert("S".into(), json!(true));

        let mut bob2 = stored_user(&bob);
        bob2.status_default = Status::Busy;
        let carol = user("c", "carol");
        let fresh = Snapshot {
            users: vec![stored_user(&alice), bob2.clone(), carol.clone()],
            settings: vec![("S".into(), json!(false))],
            ..Snapshot::default()
        };
        let changes = differences(&model, fresh, true);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(changes.contains(&put(&bob2)));
        assert!(changes.contains(&put(&carol)));
        assert!(changes.contains(&Change::PutSetting("S".into(), json!(false))));

        // A store that persists connections: the missing one is a deletion.
        let fresh = Snapshot {
            users: vec![stored_user(&alice), stored_user(&bob)],
            settings: vec![("S".into(), json!(true))],
            ..Snapshot::default()
        };
        assert_eq!(
            differences(&model, fresh, false),
            vec![Change::DeleteConn("a".into(), "c1".into())]
        );
    }
}
