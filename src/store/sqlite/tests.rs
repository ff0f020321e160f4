//! The SQLite store on its own: what is committed is what loads, whichever of the two
//! user writes (status columns only, or the whole row) carried it, and migration 3
//! keeps an existing history.

use std::sync::Arc;

use rusqlite::{params, Connection};

use super::{SqliteStore, MIGRATIONS};
use crate::model::{Email, HistoryEntry, PreviousState, Status, User};
use crate::record::Change;
use crate::store::fixtures::{history, t, user};
use crate::store::{HistoryQuery, Role, Store};
use std::time::Duration;

fn put(store: &SqliteStore, u: &User) {
    store
        .commit(&[Change::PutUser(Arc::new(u.clone()))])
        .expect("commit");
}

fn loaded(store: &SqliteStore, id: &str) -> User {
    let snap = store.load().expect("load");
    snap.users
        .into_iter()
        .find(|u| u.id == id)
        .expect("the user is stored")
}

fn username_lower(path: &std::path::Path, id: &str) -> String {
    Connection::open(path)
        .expect("open")
        .query_row(
            "SELECT username_lower FROM users WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .expect("row")
}

#[test]
fn every_user_write_loads_back_as_committed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(path.to_str().expect("utf-8 path")).expect("open");

    // New user: the narrow UPDATE finds no row, the upsert inserts it.
    let mut u = user("u1", "Alice");
    put(&store, &u);
    assert_eq!(loaded(&store, "u1"), u);

    // A status change: only status columns differ (each of them).
    u.status = Status::Away;
    u.status_default = Status::Away;
    u.status_connection = Status::Offline;
    u.status_text = "lunch".into();
    u.status_source = Some("manual".into());
    u.status_expires_at = None;
    u.previous_state = Some(PreviousState {
        status_default: Status::Busy,
        status_text: "in a meeting ✓".into(),
        ..Default::default()
    });
    u.status_id = None;
    u.updated_at = t(1_700_000_000_102);
    u.last_login = None;
    put(&store, &u);
    assert_eq!(loaded(&store, "u1"), u);

    // Each of the other columns changed alone still reaches the disk (the narrow
    // UPDATE must not match, and the upsert must write it).
    let changes: [fn(&mut User); 10] = [
        |u| u.username = "Alicia".into(),
        |u| u.name = "Alicia N.".into(),
        |u| {
            u.emails.push(Email {
                address: "b@example.com".into(),
                verified: false,
            })
        },
        |u| u.password_hash = None,
        |u| u.password_hash = Some("$2b$10$other".into()),
        |u| u.roles.retain(|r| r != "admin"),
        |u| u.active = false,
        |u| u.kind = crate::model::UserKind::Bot,
        |u| u.utc_offset = -3.0,
        |u| u.created_at = t(1_500_000_000_000),
    ];
    for change in changes {
        change(&mut u);
        put(&store, &u);
        assert_eq!(loaded(&store, "u1"), u);
    }
    assert_eq!(username_lower(&path, "u1"), "alicia");

    // And the store reopens with the same row.
    drop(store);
    let store = SqliteStore::open(path.to_str().expect("utf-8 path")).expect("reopen");
    assert_eq!(loaded(&store, "u1"), u);
}

#[test]
fn migration_3_keeps_the_history_and_its_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old.db");
    // A database as version 2 left it, with entries whose ids do not sort in insertion
    // order and two at the same millisecond (the tie is broken by insertion order).
    let entries = [
        history("zz", "u1", 1_000),
        history("aa", "u1", 2_000),
        history("mm", "u1", 2_000),
    ];
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .expect("migrations table");
        for (i, sql) in MIGRATIONS[..2].iter().enumerate() {
            conn.execute_batch(sql).expect("old migration");
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)",
                [i as i64 + 1],
            )
            .expect("record");
        }
        for h in &entries {
            conn.execute(
                "INSERT INTO status_history (id, user_id, actor_id, old_status, new_status,
                    old_text, new_text, source, at) VALUES (?1, ?2, ?3, 'online', 'away', ?4, ?5, 'ddp', ?6)",
                params![h.id, h.user_id, h.actor_id, h.old_text, h.new_text, h.at.timestamp_millis()],
            )
            .expect("old history row");
        }
    }
    let store = SqliteStore::open(path.to_str().expect("utf-8 path")).expect("migrate");
    let q = HistoryQuery {
        user_id: "u1".into(),
        from: None,
        to: None,
        offset: 0,
        count: 10,
    };
    let (items, total) = store.history(&q).expect("history");
    assert_eq!(total, 3);
    let newest_first: Vec<HistoryEntry> = entries.iter().rev().cloned().collect();
    assert_eq!(items, newest_first);

    // New entries go after the migrated ones.
    let h = history("new", "u1", 2_000);
    store
        .commit(&[Change::AddHistory(Arc::new(h.clone()))])
        .expect("commit");
    let (items, total) = store.history(&q).expect("history");
    assert_eq!(total, 4);
    assert_eq!(items[0], h);
    let version: i64 = Connection::open(&path)
        .expect("open")
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .expect("version");
    assert_eq!(version, MIGRATIONS.len() as i64);
}

#[test]
fn admin_commits_are_counted_and_a_server_records_what_it_loaded() {
    let dir = std::env::temp_dir().join(format!(
        "statusd-admin-sync-{}",
        crate::auth::secrets::new_id()
    ));
    let path = dir.join("db.sqlite");
    let path = path.to_str().unwrap();
    let server = SqliteStore::open(path).unwrap();
    let cli = SqliteStore::open_as(path, Role::Admin).unwrap();
    let set = |v: i64| vec![Change::PutSetting("s".into(), serde_json::json!(v))];
    assert_eq!(server.loaded_admin_changes(), None, "before a load");
    server.load().unwrap();
    assert_eq!(server.loaded_admin_changes(), Some(0));
    // No server recorded anything: nobody to wait for.
    assert_eq!(cli.servers_behind(Duration::ZERO).unwrap(), None);
    server.commit(&set(1)).unwrap();
    cli.commit(&set(2)).unwrap();
    cli.commit(&set(3)).unwrap();
    server.load().unwrap();
    assert_eq!(
        server.loaded_admin_changes(),
        Some(2),
        "only the admin's commits"
    );
    assert!(server.changed_elsewhere().unwrap(), "the command's commits");
    server.acknowledge(Some(2)).unwrap();
    assert!(
        !server.changed_elsewhere().unwrap(),
        "the acknowledgement is the server's own write"
    );
    let applied: Option<i64> = Connection::open(path)
        .unwrap()
        .query_row("SELECT applied FROM admin_sync", [], |r| r.get(0))
        .unwrap();
    assert_eq!(applied, Some(2));
    // The server is this very process, which holds no lock against itself: to the
    // command no other process has the database open, so it does not wait.
    assert_eq!(cli.servers_behind(Duration::ZERO).unwrap(), None);
    server.acknowledge(None).unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// The outbox: an endpoint loads back without its secret, which only the due read
/// carries; one user's deliveries go one at a time, in order, a later one waiting
/// while an earlier one is retried; other users' do not wait.
#[test]
fn the_outbox_keeps_order_per_endpoint_and_user() {
    use crate::model::{Delivery, Webhook};
    use crate::store::Attempt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("statusd.db");
    let store = SqliteStore::open(path.to_str().expect("utf-8 path")).expect("open");
    let now = chrono::Utc::now();
    let hook = Webhook {
        id: "w1".into(),
        url: "http://127.0.0.1:9/".into(),
        events: vec!["status.changed".into()],
        user_ids: vec![],
        roles: vec!["user".into()],
        active: true,
        created_at: t(1_700_000_000_000),
        updated_at: t(1_700_000_000_000),
    };
    let delivery = |id: &str, user: &str| {
        Change::AddDelivery(Arc::new(Delivery {
            id: id.into(),
            endpoint_id: "w1".into(),
            user_id: user.into(),
            event: "status.changed".into(),
            payload: format!("{{\"n\":\"{id}\"}}"),
            created_at: now,
        }))
    };
    store
        .commit(&[
            Change::PutWebhook(Arc::new(hook.clone())),
            Change::PutWebhookSecret("w1".into(), "whsec_c2VjcmV0".into()),
            delivery("a1", "alice"),
            delivery("a2", "alice"),
            delivery("b1", "bob"),
        ])
        .expect("commit");
    assert_eq!(store.load().expect("load").webhooks, vec![hook]);
    let due = |at| -> Vec<String> {
        store
            .due_deliveries(at, 10)
            .expect("due")
            .into_iter()
            .map(|d| {
                assert_eq!(
                    (d.url.as_str(), d.secret.as_str()),
                    ("http://127.0.0.1:9/", "whsec_c2VjcmV0")
                );
                d.id
            })
            .collect()
    };
    assert_eq!(due(now), ["a1", "b1"]);
    let seq = |id: &str| {
        store
            .due_deliveries(now + chrono::Duration::days(1), 10)
            .expect("due")
            .into_iter()
            .find(|d| d.id == id)
            .expect("due")
            .seq
    };
    let later = now + chrono::Duration::seconds(30);
    let retry = Attempt::Retry {
        status: Some(500),
        error: "HTTP 500".into(),
        next_at: later,
    };
    store
        .record_attempt(seq("a1"), &retry, now)
        .expect("record");
    // a1 waits for its retry; a2 waits behind it; b1 goes on.
    assert_eq!(due(now), ["b1"]);
    assert_eq!(due(later), ["a1", "b1"]);
    store
        .record_attempt(seq("a1"), &Attempt::Delivered { status: 204 }, later)
        .expect("record");
    assert_eq!(due(later), ["a2", "b1"]);
    assert_eq!(store.outbox_backlog().expect("backlog").0, 2);
    let log = store.delivery_log("w1", 10).expect("log");
    let a1 = log.iter().find(|d| d.id == "a1").expect("a1");
    assert_eq!(
        (a1.state.as_str(), a1.attempts, a1.last_status),
        ("delivered", 2, Some(204))
    );
    // Deleting the endpoint takes its deliveries with it.
    store
        .commit(&[Change::DeleteWebhook("w1".into())])
        .expect("commit");
    assert!(due(later).is_empty());
    assert!(store.delivery_log("w1", 10).expect("log").is_empty());
}
