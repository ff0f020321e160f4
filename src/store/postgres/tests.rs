//! These talk to a real PostgreSQL (`STATUSD_TEST_PG_ADMIN_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust auth); each test works in a
//! fresh database of its own, dropped afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use postgres::{Client, NoTls};
use serde_json::json;

use super::rows::{escape, unescape};
use super::schema::MIGRATIONS;
use super::*;
use crate::model::{ConnStatus, CustomStatus, HistoryEntry, Status, Token, TokenKind, User};
use crate::store::fixtures::{history, t, user};

fn admin_url() -> String {
    std::env::var("STATUSD_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn admin() -> Client {
    Client::connect(&admin_url(), NoTls).unwrap_or_else(|e| {
        panic!(
            "these tests need PostgreSQL at {} (scripts/test.sh starts it): {e}",
            admin_url()
        )
    })
}

/// Runs `f` on a thread of its own: the plain client cannot be used on a thread
/// that drives a tokio runtime (the async tests).
fn aside<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| s.spawn(f).join().expect("the helper thread panicked"))
}

/// A fresh database, dropped (with whatever is still connected) on drop.
struct TestDb {
    name: String,
    url: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    fn new() -> TestDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "statusd_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            nanos
        );
        aside(|| {
            admin()
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("CREATE DATABASE")
        });
        let base = admin_url();
        let url = match base.rfind('/') {
            Some(i) if base[..i].contains("//") && !base[..i].ends_with('/') => {
                format!("{}/{name}", &base[..i])
            }
            _ => format!("{base}/{name}"),
        };
        TestDb { name, url }
    }

    fn open(&self, instance: &str) -> PostgresStore {
        PostgresStore::open(&self.url, instance, Role::Server).expect("open the store")
    }

    /// A plain connection to the test database, for looking behind the store.
    fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("connect to the test database")
    }

    /// Terminates the backends of this database whose application name is `app`.
    fn kill(&self, app: &str) -> usize {
        let rows = admin()
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = $2",
                &[&self.name, &app],
            )
            .expect("pg_terminate_backend");
        // Termination is asynchronous: wait until they are gone.
        for _ in 0..100 {
            let left: i64 = admin()
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
                    &[&self.name, &app],
                )
                .unwrap()
                .get(0);
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        rows.len()
    }

    /// Ends the leader lease now, as if its holder had stopped renewing it long ago.
    fn expire_lease(&self) {
        self.client()
            .execute("UPDATE leases SET expires_at = 0", &[])
            .expect("expire the lease");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        aside(|| {
            if let Ok(mut c) = Client::connect(&admin_url(), NoTls) {
                let _ = c.batch_execute(&sql);
            }
        });
    }
}

fn q(user: &str) -> HistoryQuery {
    HistoryQuery {
        user_id: user.into(),
        from: None,
        to: None,
        offset: 0,
        count: 100,
    }
}

#[test]
fn round_trip_through_commit_and_load() {
    let db = TestDb::new();
    let store = db.open("inst-a");

    let bare = User {
        emails: vec![],
        password_hash: None,
        status_source: None,
        status_expires_at: None,
        status_id: None,
        dnd: None,
        previous_state: None,
        last_login: None,
        last_seen: None,
        bio: String::new(),
        nickname: String::new(),
        preferences: Default::default(),
        kind: crate::model::UserKind::Bot,
        active: false,
        ..user("u2", "Rocket.Cat")
    };
    let login = Token {
        hashed: "h1".into(),
        user_id: "u1".into(),
        kind: TokenKind::Login,
        created_at: t(1_700_000_000_010),
    };
    let pat = Token {
        hashed: "h2".into(),
        user_id: "u1".into(),
        kind: TokenKind::Personal {
            name: "ci".into(),
            last_part: "abcdef".into(),
            bypass_two_factor: true,
        },
        created_at: t(1_700_000_000_011),
    };
    let custom = CustomStatus {
        id: "c1".into(),
        name: "Lunch".into(),
        status_type: Status::Away,
        updated_at: t(1_700_000_000_012),
    };
    let setting = json!({"a": [1, 2.5, "x"], "nested": {"b": null, "c": true}});
    store
        .commit(&[
            Change::PutUser(Arc::new(user("u1", "Alice"))),
            Change::PutUser(Arc::new(bare.clone())),
            Change::PutToken(Arc::new(login.clone())),
            Change::PutToken(Arc::new(pat.clone())),
            Change::PutSetting("S_obj".into(), setting.clone()),
            Change::PutSetting("S_num".into(), json!(42)),
            Change::PutPermission(
                "view-x".into(),
                Arc::new(vec!["admin".into(), "user".into()]),
            ),
            Change::PutCustomStatus(Arc::new(custom.clone())),
            Change::PutConn("u1".into(), "k1".into(), ConnStatus::Online),
            Change::PutConn("u1".into(), "k2".into(), ConnStatus::Away),
            Change::AddHistory(Arc::new(history("e1", "u1", 1000))),
        ])
        .expect("commit");

    let snap = store.load().expect("load");
    let mut users = snap.users.clone();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(users, vec![user("u1", "Alice"), bare.clone()]);
    let mut tokens = snap.tokens.clone();
    tokens.sort_by(|a, b| a.hashed.cmp(&b.hashed));
    assert_eq!(tokens, vec![login.clone(), pat.clone()]);
    let mut settings = snap.settings.clone();
    settings.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        settings,
        vec![("S_num".into(), json!(42)), ("S_obj".into(), setting)]
    );
    assert_eq!(
        snap.permissions,
        vec![(
            "view-x".to_string(),
            vec!["admin".to_string(), "user".into()]
        )]
    );
    assert_eq!(snap.custom_statuses, vec![custom.clone()]);
    assert_eq!(
        snap.conns,
        vec![
            ("u1".to_string(), "k1".to_string(), ConnStatus::Online),
            ("u1".to_string(), "k2".to_string(), ConnStatus::Away),
        ]
    );
    let (items, total) = store.history(&q("u1")).expect("history");
    assert_eq!((items, total), (vec![history("e1", "u1", 1000)], 1));

    // Updates overwrite, deletions delete.
    let mut renamed = user("u1", "Alicia");
    renamed.status = Status::Online;
    renamed.previous_state = None;
    store
        .commit(&[
            Change::PutUser(Arc::new(renamed.clone())),
            Change::DeleteUser("u2".into()),
            Change::DeleteToken("h1".into()),
            Change::PutToken(Arc::new(Token {
                kind: TokenKind::Login,
                ..pat.clone()
            })),
            Change::PutSetting("S_num".into(), json!("text")),
            Change::DeleteSetting("S_obj".into()),
            Change::DeletePermission("view-x".into()),
            Change::PutPermission("edit-y".into(), Arc::new(vec![])),
            Change::DeleteCustomStatus("c1".into()),
            Change::DeleteConn("u1".into(), "k1".into()),
            Change::PutConn("u1".into(), "k2".into(), ConnStatus::Online),
        ])
        .expect("second commit");
    let snap = store.load().expect("load");
    assert_eq!(snap.users, vec![renamed]);
    assert_eq!(
        snap.tokens,
        vec![Token {
            kind: TokenKind::Login,
            ..pat
        }]
    );
    assert_eq!(snap.settings, vec![("S_num".to_string(), json!("text"))]);
    assert_eq!(snap.permissions, vec![("edit-y".to_string(), vec![])]);
    assert!(snap.custom_statuses.is_empty());
    assert_eq!(
        snap.conns,
        vec![("u1".to_string(), "k2".to_string(), ConnStatus::Online)]
    );

    // The connection rows carry this store's instance.
    let owner: String = db
        .client()
        .query_one(
            "SELECT instance_id FROM connections WHERE conn_id = 'k2'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, "inst-a");

    // A second store on the same database sees the same state.
    drop(store);
    let again = db.open("inst-b");
    assert_eq!(again.load().unwrap().users.len(), 1);
}

#[test]
fn text_with_nul_characters_round_trips() {
    for plain in ["", "plain", "naïve ✓", "0 1 \\0"] {
        assert!(matches!(escape(plain), std::borrow::Cow::Borrowed(_)));
        assert_eq!(unescape(plain.to_string()), plain);
    }
    for odd in [
        "\0",
        "a\0b\0",
        "\u{E000}",
        "\u{E000}0",
        "x\u{E000}\0\u{E000}1",
    ] {
        let stored = escape(odd).into_owned();
        assert!(!stored.contains('\0'), "{stored:?}");
        assert_eq!(unescape(stored), odd);
    }

    let db = TestDb::new();
    let store = db.open("i");
    let mut u = user("u\0", "nul\0name");
    u.status_text = "away\0\u{E000}0 text".into();
    u.name = "\u{E000}".into();
    let mut h = history("h\0", "u\0", 5);
    h.new_text = "\0".into();
    let custom = CustomStatus {
        id: "c\0".into(),
        name: "Lunch\0".into(),
        status_type: Status::Away,
        updated_at: t(7),
    };
    store
        .commit(&[
            Change::PutUser(Arc::new(u.clone())),
            Change::PutSetting("s\0".into(), json!("v\0")),
            Change::PutCustomStatus(Arc::new(custom.clone())),
            Change::AddHistory(Arc::new(h.clone())),
            Change::PutConn("u\0".into(), "k\0".into(), ConnStatus::Online),
        ])
        .expect("commit text with NUL");
    let snap = store.load().unwrap();
    assert_eq!(snap.users, vec![u.clone()]);
    assert_eq!(snap.settings, vec![("s\0".to_string(), json!("v\0"))]);
    assert_eq!(snap.custom_statuses, vec![custom]);
    assert_eq!(
        snap.conns,
        vec![("u\0".to_string(), "k\0".to_string(), ConnStatus::Online)]
    );
    assert_eq!(store.history(&q("u\0")).unwrap(), (vec![h], 1));
    // Looked up and deleted by the same (escaped) key.
    store
        .commit(&[
            Change::DeleteUser(u.id.clone()),
            Change::DeleteSetting("s\0".into()),
            Change::DeleteConn("u\0".into(), "k\0".into()),
        ])
        .unwrap();
    let snap = store.load().unwrap();
    assert!(snap.users.is_empty() && snap.settings.is_empty() && snap.conns.is_empty());
}

/// A batch writes its users in one statement: the last change of each user wins,
/// whatever came before it in the batch, and two users may swap usernames.
#[test]
fn a_batch_keeps_the_last_change_of_each_user() {
    let db = TestDb::new();
    let store = db.open("i");
    let u = |id: &str, name: &str| Arc::new(user(id, name));
    store
        .commit(&[
            Change::PutUser(u("a", "Alpha")),
            Change::PutUser(u("b", "Beta")),
            Change::PutUser(u("gone", "Gone")),
        ])
        .unwrap();
    let later = User {
        status: Status::Away,
        status_text: "second\0write".into(),
        ..user("a", "Beta")
    };
    store
        .commit(&[
            Change::PutUser(u("a", "Interim")),
            Change::DeleteUser("gone".into()),
            Change::PutUser(u("new", "New")),
            Change::DeleteUser("new".into()),
            Change::DeleteUser("back".into()),
            Change::PutUser(u("back", "Back")),
            // Swap: a takes b's username before b gives it up.
            Change::PutUser(Arc::new(later.clone())),
            Change::PutUser(u("b", "Alpha")),
        ])
        .unwrap();
    let mut users = store.load().unwrap().users;
    users.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(users, vec![later, user("b", "Alpha"), user("back", "Back")]);
}

#[test]
fn history_pages_filters_and_prunes() {
    let db = TestDb::new();
    let store = db.open("i");
    let mut changes = Vec::new();
    for i in 0..10 {
        let e = history(&format!("e{i}"), "u1", 1000 + i * 10);
        changes.push(Change::AddHistory(Arc::new(e)));
    }
    // Two entries in the same millisecond come back newest-inserted first.
    for id in ["same1", "same2"] {
        let e = history(id, "u1", 2000);
        changes.push(Change::AddHistory(Arc::new(e)));
    }
    let other = history("o1", "u2", 1500);
    changes.push(Change::AddHistory(Arc::new(other)));
    store.commit(&changes).unwrap();

    let ids = |r: (Vec<HistoryEntry>, u64)| -> (Vec<String>, u64) {
        (r.0.into_iter().map(|e| e.id).collect(), r.1)
    };
    let all = ids(store.history(&q("u1")).unwrap());
    assert_eq!(all.1, 12);
    assert_eq!(&all.0[..4], &["same2", "same1", "e9", "e8"]);
    let page = ids(store
        .history(&HistoryQuery {
            offset: 3,
            count: 2,
            ..q("u1")
        })
        .unwrap());
    assert_eq!(page, (vec!["e8".to_string(), "e7".to_string()], 12));
    let window = ids(store
        .history(&HistoryQuery {
            from: Some(t(1020)),
            to: Some(t(1040)),
            ..q("u1")
        })
        .unwrap());
    assert_eq!(
        window,
        (
            vec!["e4".to_string(), "e3".to_string(), "e2".to_string()],
            3
        )
    );
    assert_eq!(ids(store.history(&q("nobody")).unwrap()), (vec![], 0));

    // Replaying an entry (same id) does not duplicate it.
    store
        .commit(&[Change::AddHistory(Arc::new(history("e0", "u1", 1000)))])
        .unwrap();
    assert_eq!(store.history(&q("u1")).unwrap().1, 12);

    assert_eq!(store.prune_history(t(1050)).unwrap(), 5);
    assert_eq!(store.history(&q("u1")).unwrap().1, 7);
    assert_eq!(store.history(&q("u2")).unwrap().1, 1);
    assert_eq!(store.prune_history(t(1_000_000)).unwrap(), 8);
}

#[test]
fn a_failed_commit_applies_nothing() {
    let db = TestDb::new();
    let store = db.open("i");
    store
        .commit(&[Change::PutUser(Arc::new(user("u1", "alice")))])
        .unwrap();
    // Two users with the same username: refused as a whole.
    let err = store.commit(&[
        Change::PutSetting("s".into(), json!(1)),
        Change::PutUser(Arc::new(user("u2", "ALICE"))),
    ]);
    assert!(err.is_err());
    let snap = store.load().unwrap();
    assert_eq!(snap.users.len(), 1);
    assert!(snap.settings.is_empty());
    // The connection is still fine.
    store
        .commit(&[Change::PutSetting("s".into(), json!(2))])
        .unwrap();
    // Swapping two usernames in one batch is fine (checked at commit).
    store
        .commit(&[Change::PutUser(Arc::new(user("u2", "bob")))])
        .unwrap();
    store
        .commit(&[
            Change::PutUser(Arc::new(user("u1", "bob"))),
            Change::PutUser(Arc::new(user("u2", "alice"))),
        ])
        .unwrap();
    let mut names: Vec<_> = store
        .load()
        .unwrap()
        .users
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![("u1".into(), "bob".into()), ("u2".into(), "alice".into())]
    );
}

#[test]
fn migrations_are_idempotent_and_safe_to_race() {
    let db = TestDb::new();
    // Several instances starting at once on the fresh database.
    let url = db.url.clone();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                PostgresStore::open(&url, &format!("racer{i}"), Role::Server).map(|_| ())
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().expect("open during a race");
    }
    // And again, one after the other.
    let a = db.open("a");
    drop(a);
    let b = db.open("b");
    b.commit(&[Change::PutSetting("s".into(), json!(1))])
        .unwrap();
    drop(b);
    let versions: Vec<i64> = db
        .client()
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<i64> = (1..=MIGRATIONS.len() as i64).collect();
    assert_eq!(versions, want);
    // Data survives a re-open.
    assert_eq!(db.open("c").load().unwrap().settings.len(), 1);
}

#[test]
fn heartbeats_and_dead_connections() {
    let db = TestDb::new();
    let a = db.open("inst-a");
    let b = db.open("inst-b");
    let conn = |u: &str, c: &str| Change::PutConn(u.into(), c.into(), ConnStatus::Online);
    a.commit(&[conn("u1", "a1"), conn("u2", "a2")]).unwrap();
    b.commit(&[conn("u1", "b1")]).unwrap();
    // A connection of an instance that never registered (or was forgotten).
    db.client()
        .execute(
            "INSERT INTO connections (user_id, conn_id, instance_id, status) VALUES ('u3', 'x1', 'ghost', 'away')",
            &[],
        )
        .unwrap();
    // Each instance's own rows.
    let mut own = a.own_connections().unwrap();
    own.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(
        own,
        vec![
            ("u1".to_string(), "a1".to_string(), ConnStatus::Online),
            ("u2".to_string(), "a2".to_string(), ConnStatus::Online),
        ]
    );
    assert_eq!(b.own_connections().unwrap().len(), 1);
    let long = Duration::from_secs(60);
    // Everyone registered at open: only the ghost is dead.
    assert_eq!(
        b.dead_connections(long).unwrap(),
        vec![("u3".to_string(), "x1".to_string())]
    );
    assert_eq!(a.load().unwrap().conns.len(), 4);

    // A stops beating (its last heartbeat two minutes ago).
    db.client()
        .execute(
            "UPDATE instances SET heartbeat_at = heartbeat_at - 120000 WHERE id = 'inst-a'",
            &[],
        )
        .unwrap();
    let mut dead = b.dead_connections(long).unwrap();
    dead.sort();
    assert_eq!(
        dead,
        vec![
            ("u1".to_string(), "a1".to_string()),
            ("u2".to_string(), "a2".to_string()),
            ("u3".to_string(), "x1".to_string()),
        ]
    );
    // An instance never reaps its own connections.
    assert_eq!(
        a.dead_connections(long).unwrap(),
        vec![("u3".to_string(), "x1".to_string())]
    );
    // A beats again: alive.
    a.heartbeat().unwrap();
    assert_eq!(b.dead_connections(long).unwrap().len(), 1);
    b.ping().unwrap();

    // A is silent again; B reaps its connections, then forgets it.
    db.client()
        .execute(
            "UPDATE instances SET heartbeat_at = heartbeat_at - 120000 WHERE id = 'inst-a'",
            &[],
        )
        .unwrap();
    let instances = || -> Vec<String> {
        db.client()
            .query("SELECT id FROM instances ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    b.forget_dead_instances(long).unwrap();
    assert_eq!(
        instances(),
        vec!["inst-a", "inst-b"],
        "A still has connections"
    );
    b.commit(&[
        Change::DeleteConn("u1".into(), "a1".into()),
        Change::DeleteConn("u2".into(), "a2".into()),
        Change::DeleteConn("u3".into(), "x1".into()),
    ])
    .unwrap();
    assert!(b.dead_connections(long).unwrap().is_empty());
    b.forget_dead_instances(long).unwrap();
    assert_eq!(instances(), vec!["inst-b"]);
    // B never forgets itself, even when it looks silent.
    a.forget_dead_instances(Duration::ZERO).unwrap();
    assert!(instances().is_empty() || instances() == vec!["inst-b"]);
    b.forget_dead_instances(Duration::ZERO).unwrap();
    assert_eq!(instances(), vec!["inst-b"]);
    assert_eq!(
        b.load().unwrap().conns,
        vec![("u1".to_string(), "b1".to_string(), ConnStatus::Online)]
    );
}

/// Polls `f` for up to five seconds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn leadership_is_exclusive() {
    let db = TestDb::new();
    let other = TestDb::new();
    let a = db.open("a");
    let b = db.open("b");
    let lease = Duration::from_secs(60);
    assert!(a.lead(lease).unwrap());
    assert!(!b.lead(lease).unwrap());
    assert!(a.lead(lease).unwrap(), "renewing keeps the lease");
    assert!(!b.lead(lease).unwrap());
    // Another database has its own leader.
    assert!(other.open("c").lead(lease).unwrap());

    // A stops renewing (hung, cut off): once the lease ran out, B takes it and A has
    // lost it.
    db.expire_lease();
    assert!(b.lead(lease).unwrap());
    assert!(!a.lead(lease).unwrap());
    assert!(b.lead(lease).unwrap());
    // And back.
    db.expire_lease();
    assert!(a.lead(lease).unwrap());
    assert!(!b.lead(lease).unwrap());

    // A short lease runs out by itself (the database's clock).
    assert!(a.lead(Duration::from_millis(200)).unwrap());
    assert!(!b.lead(lease).unwrap());
    eventually("B leads after A's lease ran out", || b.lead(lease).unwrap());
    assert!(!a.lead(lease).unwrap());

    // B resigns (a graceful stop): A takes over at once.
    b.resign().unwrap();
    assert!(a.lead(lease).unwrap());
    // Resigning a lease one does not hold changes nothing.
    b.resign().unwrap();
    assert!(!b.lead(lease).unwrap());
}

#[test]
fn only_the_lease_holder_commits_leader_work() {
    let db = TestDb::new();
    let a = db.open("a");
    let b = db.open("b");
    let set = |v: i64| vec![Change::PutSetting("s".into(), json!(v))];
    let setting = |s: &PostgresStore| s.load().unwrap().settings;
    let lease = Duration::from_secs(60);
    assert!(a.lead(lease).unwrap());
    a.commit_as_leader(&set(1)).expect("the holder commits");
    let refused = b.commit_as_leader(&set(2)).expect_err("not the holder");
    assert!(matches!(refused, CommitError::NotLeader), "{refused:#}");
    assert_eq!(
        setting(&b),
        vec![("s".to_string(), json!(1))],
        "nothing applied"
    );
    // Ordinary commits do not care.
    b.commit(&set(3)).unwrap();

    // A's lease ends while it is not looking (paused): its leader work is refused even
    // though nobody took over yet, and after B did.
    db.expire_lease();
    assert!(a.commit_as_leader(&set(4)).is_err());
    assert!(b.lead(lease).unwrap());
    assert!(a.commit_as_leader(&set(5)).is_err());
    b.commit_as_leader(&set(6)).unwrap();
    assert_eq!(setting(&a), vec![("s".to_string(), json!(6))]);
    // The connection is fine after a refusal.
    a.commit(&set(7)).unwrap();
}

#[test]
fn a_leader_commit_holds_the_lease_until_it_is_done() {
    // The fence locks the lease row: a takeover waits for the leader's commit (a
    // bounded time), so work committed under a lease precedes the next holder's.
    let db = TestDb::new();
    let a = db.open("a");
    let b = db.open("b");
    assert!(a.lead(Duration::from_millis(300)).unwrap());
    let mut c = db.client();
    let mut tx = c.transaction().unwrap();
    tx.query_one(super::cluster::FENCE, &[&"a"])
        .expect("a holds the lease");
    // A's lease runs out while its commit is still open: B may not take over yet.
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    assert!(!b.lead(Duration::from_secs(60)).unwrap_or(false));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a lease taker waits a bounded time"
    );
    tx.commit().unwrap();
    assert!(b.lead(Duration::from_secs(60)).unwrap());
}

#[test]
fn servers_hear_the_commits_of_admin_commands() {
    let db = TestDb::new();
    let server = db.open("server");
    let peer = db.open("peer");
    let cli = PostgresStore::open(&db.url, "cli", Role::Admin).unwrap();
    let set = |v: i64| vec![Change::PutSetting("s".into(), json!(v))];
    assert!(!server.changed_elsewhere().unwrap());
    // A server's own commits (and its peers', which travel over NATS) are not announced.
    server.commit(&set(1)).unwrap();
    peer.commit(&set(2)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!server.changed_elsewhere().unwrap());
    // An admin command's are, to every server.
    cli.commit(&set(3)).unwrap();
    eventually("the server heard the command", || {
        server.changed_elsewhere().unwrap()
    });
    eventually("the peer heard the command", || {
        peer.changed_elsewhere().unwrap()
    });
    assert!(!server.changed_elsewhere().unwrap(), "heard once");
    // A refused commit announces nothing.
    let bad = vec![
        Change::PutUser(Arc::new(user("u1", "x"))),
        Change::PutUser(Arc::new(user("u2", "X"))),
    ];
    assert!(cli.commit(&bad).is_err());
    std::thread::sleep(Duration::from_millis(200));
    assert!(!server.changed_elsewhere().unwrap());
    // An admin command is not an instance.
    let instances: i64 = db
        .client()
        .query_one("SELECT COUNT(*) FROM instances WHERE id = 'cli'", &[])
        .unwrap()
        .get(0);
    assert_eq!(instances, 0);

    // The listening connection dies: what was sent meanwhile may be lost, so the
    // server counts the new connection as a change.
    assert_eq!(db.kill("statusd-listener"), 2);
    cli.commit(&set(4)).unwrap();
    eventually("the server noticed", || {
        server.changed_elsewhere().unwrap_or(false)
    });
    cli.commit(&set(5)).unwrap();
    eventually("and hears again", || server.changed_elsewhere().unwrap());
}

#[test]
fn recovers_after_the_connection_is_killed() {
    let db = TestDb::new();
    let store = db.open("i");
    let set = |v: i64| vec![Change::PutSetting("s".into(), json!(v))];
    store.commit(&set(1)).unwrap();
    store.history(&q("u")).unwrap();

    assert_eq!(db.kill("statusd-writer"), 1);
    assert!(
        store.commit(&set(2)).is_err(),
        "a commit on a dead connection fails"
    );
    store.commit(&set(3)).expect("the next commit reconnects");
    assert_eq!(store.load().unwrap().settings, vec![("s".into(), json!(3))]);

    // Reads are retried at once on a fresh connection.
    assert_eq!(db.kill("statusd-reader"), 1);
    store.ping().expect("ping after the reader died");
    assert_eq!(db.kill("statusd-reader"), 1);
    store
        .history(&q("u"))
        .expect("history after the reader died");
    assert_eq!(db.kill("statusd-reader"), 1);
    store.heartbeat().expect("heartbeat after the reader died");
    assert_eq!(db.kill("statusd-writer"), 1);
    store.load().expect("load after the writer died");
}

#[test]
fn unreachable_database_fails_fast_and_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres:secret@127.0.0.1:{port}/nothing");
    let started = Instant::now();
    let err = PostgresStore::open(&url, "i", Role::Server)
        .err()
        .expect("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains(&format!("127.0.0.1:{port}/nothing")), "{msg}");
    assert!(!msg.contains("secret"), "the password leaked: {msg}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(PostgresStore::open("postgres://[bad", "i", Role::Admin).is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn usable_inside_a_current_thread_runtime() {
    let db = TestDb::new();
    let store = db.open("i");
    store
        .commit(&[Change::PutSetting("s".into(), json!(1))])
        .unwrap();
    assert_eq!(store.load().unwrap().settings.len(), 1);
    assert!(store.lead(Duration::from_secs(10)).unwrap());
    assert!(!store.changed_elsewhere().unwrap());
    drop(store); // dropping the connections inside a runtime must not panic either
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_inside_a_multi_thread_runtime() {
    let db = TestDb::new();
    let store: Arc<dyn Store> = Arc::new(db.open("i"));
    store.ping().unwrap();
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.history(&q("u")))
        .await
        .unwrap()
        .unwrap();
    let s = store.clone();
    tokio::spawn(async move { s.cluster().expect("a shared store").heartbeat() })
        .await
        .unwrap()
        .unwrap();
    drop(store);
}

#[test]
fn open_by_url_scheme() {
    let db = TestDb::new();
    let pg = super::super::open(&db.url, "i", Role::Server).expect("postgres://");
    pg.ping().unwrap();
    assert!(pg.cluster().is_some(), "a shared store");
    assert!(!pg.changed_elsewhere().unwrap());
    let alt = db.url.replacen("postgres://", "postgresql://", 1);
    super::super::open(&alt, "j", Role::Admin).expect("postgresql://");
    assert!(super::super::open("mysql://x", "i", Role::Server).is_err());
}

#[test]
fn an_admin_command_learns_which_servers_have_applied_its_commit() {
    let db = TestDb::new();
    let server = db.open("server");
    let peer = db.open("peer");
    let cli = PostgresStore::open(&db.url, "cli", Role::Admin).unwrap();
    let alive = Duration::from_secs(30);
    let set = |v: i64| vec![Change::PutSetting("s".into(), json!(v))];
    // Servers that recorded nothing (stopped, or not yet loaded) are not waited for.
    assert_eq!(cli.servers_behind(alive).unwrap(), None);
    server.load().unwrap();
    peer.load().unwrap();
    assert_eq!(server.loaded_admin_changes(), Some(0));
    server.acknowledge(Some(0)).unwrap();
    peer.acknowledge(Some(0)).unwrap();
    assert_eq!(
        cli.servers_behind(alive).unwrap(),
        Some(0),
        "nothing committed yet"
    );
    // A server's own commits do not count; an admin command's do.
    server.commit(&set(1)).unwrap();
    cli.commit(&set(2)).unwrap();
    assert_eq!(cli.servers_behind(alive).unwrap(), Some(2));
    server.load().unwrap();
    assert_eq!(server.loaded_admin_changes(), Some(1));
    server.acknowledge(server.loaded_admin_changes()).unwrap();
    assert_eq!(
        cli.servers_behind(alive).unwrap(),
        Some(1),
        "the peer is behind"
    );
    // A stopped peer is not waited for; nor one whose heartbeat is too old.
    peer.acknowledge(None).unwrap();
    assert_eq!(cli.servers_behind(alive).unwrap(), Some(0));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        cli.servers_behind(Duration::from_millis(10)).unwrap(),
        None,
        "no heartbeat that young"
    );
}
