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

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, Config, GenericClient, NoTls, Statement};

use super::{HistoryQuery, Snapshot, Store};
use crate::model::{
    ConnStatus, CustomStatus, Email, HistoryEntry, PreviousState, Source, Status, Token, TokenKind,
    User,
};
use crate::state::{Change, Key, Value};

/// Versioned migrations: index + 1 is the schema version. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: users, tokens, settings, permissions
    r#"
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        username_lower TEXT NOT NULL,
        name TEXT NOT NULL,
        emails TEXT NOT NULL,
        password_hash TEXT,
        roles TEXT NOT NULL,
        active BOOLEAN NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        status_default TEXT NOT NULL,
        status_connection TEXT NOT NULL,
        status_text TEXT NOT NULL,
        status_source TEXT,
        status_expires_at BIGINT,
        previous_state TEXT,
        utc_offset DOUBLE PRECISION NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        last_login BIGINT,
        -- Checked at commit, so a batch may swap two usernames in any order.
        CONSTRAINT users_username_lower_key UNIQUE (username_lower) DEFERRABLE INITIALLY DEFERRED
    );
    CREATE INDEX users_status_expires_at ON users(status_expires_at) WHERE status_expires_at IS NOT NULL;
    CREATE TABLE tokens (
        hashed TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT,
        last_part TEXT,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX tokens_user ON tokens(user_id);
    CREATE TABLE settings (id TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE permissions (id TEXT PRIMARY KEY, roles TEXT NOT NULL);
    "#,
    // 2: status history and custom statuses
    r#"
    CREATE TABLE status_history (
        id TEXT PRIMARY KEY,
        -- Insertion order, to break ties between entries of the same millisecond.
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        user_id TEXT NOT NULL,
        actor_id TEXT,
        old_status TEXT NOT NULL,
        new_status TEXT NOT NULL,
        old_text TEXT NOT NULL,
        new_text TEXT NOT NULL,
        source TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX status_history_user_at ON status_history(user_id, at, seq);
    CREATE INDEX status_history_at ON status_history(at);
    CREATE TABLE custom_statuses (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status_type TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    "#,
    // 3: live connections of every instance, and the instances' heartbeats
    r#"
    CREATE TABLE connections (
        user_id TEXT NOT NULL,
        conn_id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        status TEXT NOT NULL,
        updated_at BIGINT
    );
    CREATE INDEX connections_instance ON connections(instance_id);
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        heartbeat_at BIGINT NOT NULL
    );
    "#,
];

/// Advisory lock keys (per database): migrating, and being the leader.
const MIGRATION_LOCK: i64 = 0x7374_6174_7573_6401;
const LEADER_LOCK: i64 = 0x7374_6174_7573_6402;

/// How long a failed connection attempt is remembered: calls within it fail at once
/// instead of each waiting for a connect timeout again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

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

// ------------------------------------------------------------------ connections

/// One connection, owned by its worker thread.
struct Session {
    config: Config,
    target: String,
    client: Option<Client>,
    /// Prepared statements of this connection, by their SQL.
    stmts: HashMap<&'static str, Statement>,
    /// When and why the last connection attempt failed.
    failed: Option<(Instant, String)>,
    /// The leader connection: does this session hold the leader lock?
    leading: bool,
}

impl Session {
    /// The live connection, connecting first when there is none.
    fn client(&mut self) -> anyhow::Result<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.reset();
        }
        if self.client.is_none() {
            if let Some((at, why)) = &self.failed {
                if at.elapsed() < RECONNECT_BACKOFF {
                    anyhow::bail!("{} is unreachable: {why}", self.target);
                }
            }
            match self.config.connect(NoTls) {
                Ok(c) => {
                    self.failed = None;
                    self.client = Some(c);
                }
                Err(e) => {
                    let why = e.to_string();
                    self.failed = Some((Instant::now(), why.clone()));
                    anyhow::bail!("cannot connect to {}: {why}", self.target);
                }
            }
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Forgets the connection (and everything tied to it).
    fn reset(&mut self) {
        self.client = None;
        self.stmts.clear();
        self.leading = false;
    }

    /// After a failed call: drops the connection if it is broken, so the next call
    /// connects again. Returns whether it did.
    fn check(&mut self, e: &anyhow::Error) -> bool {
        let broken = self.client.as_ref().is_none_or(Client::is_closed)
            || e.chain().any(|cause| {
                cause
                    .downcast_ref::<postgres::Error>()
                    .is_some_and(is_connection_error)
            });
        if broken {
            self.reset();
        }
        broken
    }

    /// Runs `f` on the connection; a broken connection is dropped afterwards.
    fn run<R>(
        &mut self,
        f: &mut impl FnMut(&mut Client, &mut Stmts) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        self.client()?;
        let Session { client, stmts, .. } = self;
        let client = client.as_mut().expect("connected above");
        let r = f(client, stmts);
        if let Err(e) = &r {
            self.check(e);
        }
        r
    }

    /// Like `run`, for idempotent work: when the connection turns out to be broken it
    /// is retried once on a new one.
    fn run_retrying<R>(
        &mut self,
        mut f: impl FnMut(&mut Client, &mut Stmts) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let had_connection = self.client.as_ref().is_some_and(|c| !c.is_closed());
        match self.run(&mut f) {
            Err(_) if had_connection && self.client.is_none() => self.run(&mut f),
            r => r,
        }
    }
}

/// Does this error mean the connection is unusable?
fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        // Class 08: connection exception; 57P0x: the server is shutting down or
        // terminated this backend.
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08")
                || *db.code() == SqlState::ADMIN_SHUTDOWN
                || *db.code() == SqlState::CRASH_SHUTDOWN
                || *db.code() == SqlState::CANNOT_CONNECT_NOW
        }
        // I/O errors, protocol errors, timeouts: start over on a fresh connection.
        None => true,
    }
}

type Stmts = HashMap<&'static str, Statement>;

/// The prepared statement for `sql` on this connection, preparing it the first time.
fn stmt(
    stmts: &mut Stmts,
    c: &mut impl GenericClient,
    sql: &'static str,
) -> Result<Statement, postgres::Error> {
    if let Some(s) = stmts.get(sql) {
        return Ok(s.clone());
    }
    let s = c.prepare(sql)?;
    stmts.insert(sql, s.clone());
    Ok(s)
}

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// A thread owning one connection; runs the jobs it is handed one after another.
struct Worker {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Worker {
    fn spawn(role: &str, config: &Config, target: &str) -> anyhow::Result<Worker> {
        let mut config = config.clone();
        if config.get_application_name().is_none() {
            config.application_name(&format!("statusd-{role}"));
        }
        let mut session = Session {
            config,
            target: target.to_string(),
            client: None,
            stmts: HashMap::new(),
            failed: None,
            leading: false,
        };
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("statusd-pg-{role}"))
            .spawn(move || {
                // Ends when the store is dropped; the connection closes with it.
                for job in rx {
                    job(&mut session);
                }
            })
            .context("starting a PostgreSQL connection thread")?;
        Ok(Worker {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `f` on the worker's thread and waits for its answer.
    fn call<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Session) -> anyhow::Result<R> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel::<anyhow::Result<R>>(1);
        let job: Job = Box::new(move |session: &mut Session| {
            let r = match catch_unwind(AssertUnwindSafe(|| f(session))) {
                Ok(r) => r,
                Err(_) => {
                    session.reset();
                    Err(anyhow!("internal error: a PostgreSQL job panicked"))
                }
            };
            let _ = reply.send(r);
        });
        self.jobs
            .lock()
            .send(job)
            .map_err(|_| anyhow!("the PostgreSQL connection thread stopped"))?;
        answer
            .recv()
            .map_err(|_| anyhow!("the PostgreSQL connection thread stopped"))?
    }
}

// ------------------------------------------------------------------- migrations

fn migrate(c: &mut Client) -> anyhow::Result<()> {
    // Two instances starting at once on a fresh database: one migrates, the other
    // waits here and then finds nothing left to do.
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let r = migrate_locked(c);
    let unlocked = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    r?;
    unlocked?;
    Ok(())
}

fn migrate_locked(c: &mut Client) -> anyhow::Result<()> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )?;
    let current: i64 = c
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM schema_migrations",
            &[],
        )?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if current > known {
        tracing::warn!(
            "the database schema is at version {current}, newer than this statusd knows ({known})"
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let mut tx = c.transaction()?;
        tx.batch_execute(sql)
            .with_context(|| format!("migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &Utc::now().timestamp_millis()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------- mapping

fn ms(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

fn status_of(s: &str) -> Status {
    Status::parse(s).unwrap_or(Status::Offline)
}

fn conn_status_of(s: &str) -> ConnStatus {
    if s == "away" {
        ConnStatus::Away
    } else {
        ConnStatus::Online
    }
}

fn conn_status_str(s: ConnStatus) -> &'static str {
    match s {
        ConnStatus::Online => "online",
        ConnStatus::Away => "away",
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The escape of stored text. PostgreSQL's TEXT cannot hold NUL, which SQLite keeps and
/// clients may send (a status text, a name): NUL is stored as ESC '0' and ESC itself as
/// ESC '1'. Text with neither (all real text) is stored as it is.
const ESC: char = '\u{E000}';

fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\0', ESC]) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for ch in s.chars() {
        match ch {
            '\0' => out.extend([ESC, '0']),
            ESC => out.extend([ESC, '1']),
            c => out.push(c),
        }
    }
    out.into()
}

fn unescape(s: String) -> String {
    if !s.contains(ESC) {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, chars.peek()) {
            (ESC, Some('0')) => {
                chars.next();
                out.push('\0');
            }
            (ESC, Some('1')) => {
                chars.next();
                out.push(ESC);
            }
            (c, _) => out.push(c),
        }
    }
    out
}

/// A text parameter, escaped as stored (see [`escape`]).
#[derive(Debug)]
struct Txt<'a>(&'a str);

impl ToSql for Txt<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        escape(self.0).as_ref().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

fn txt(s: &str) -> Txt<'_> {
    Txt(s)
}

fn opt_txt(s: &Option<String>) -> Option<Txt<'_>> {
    s.as_deref().map(Txt)
}

/// A text column, unescaped (see [`escape`]).
fn text<I: postgres::row::RowIndex + std::fmt::Display>(
    r: &postgres::Row,
    i: I,
) -> Result<String, postgres::Error> {
    Ok(unescape(r.try_get(i)?))
}

fn opt_text<I: postgres::row::RowIndex + std::fmt::Display>(
    r: &postgres::Row,
    i: I,
) -> Result<Option<String>, postgres::Error> {
    Ok(r.try_get::<_, Option<String>>(i)?.map(unescape))
}

fn user_from_row(r: &postgres::Row) -> anyhow::Result<User> {
    let emails = text(r, "emails")?;
    let roles = text(r, "roles")?;
    let previous = opt_text(r, "previous_state")?;
    Ok(User {
        id: text(r, "id")?,
        username: text(r, "username")?,
        name: text(r, "name")?,
        emails: serde_json::from_str::<Vec<Email>>(&emails).unwrap_or_default(),
        password_hash: opt_text(r, "password_hash")?,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        active: r.try_get("active")?,
        kind: text(r, "kind")?,
        status: status_of(r.try_get("status")?),
        status_default: status_of(r.try_get("status_default")?),
        status_connection: status_of(r.try_get("status_connection")?),
        status_text: text(r, "status_text")?,
        status_source: opt_text(r, "status_source")?,
        status_expires_at: r
            .try_get::<_, Option<i64>>("status_expires_at")?
            .map(from_ms),
        previous_state: previous.and_then(|p| serde_json::from_str::<PreviousState>(&p).ok()),
        utc_offset: r.try_get("utc_offset")?,
        created_at: from_ms(r.try_get("created_at")?),
        updated_at: from_ms(r.try_get("updated_at")?),
        last_login: r.try_get::<_, Option<i64>>("last_login")?.map(from_ms),
    })
}

const PUT_USER: &str = "INSERT INTO users (id, username, username_lower, name, emails, password_hash,
        roles, active, kind, status, status_default, status_connection, status_text, status_source,
        status_expires_at, previous_state, utc_offset, created_at, updated_at, last_login)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
     ON CONFLICT (id) DO UPDATE SET username = excluded.username,
        username_lower = excluded.username_lower, name = excluded.name, emails = excluded.emails,
        password_hash = excluded.password_hash, roles = excluded.roles, active = excluded.active,
        kind = excluded.kind, status = excluded.status, status_default = excluded.status_default,
        status_connection = excluded.status_connection, status_text = excluded.status_text,
        status_source = excluded.status_source, status_expires_at = excluded.status_expires_at,
        previous_state = excluded.previous_state, utc_offset = excluded.utc_offset,
        created_at = excluded.created_at, updated_at = excluded.updated_at,
        last_login = excluded.last_login";
const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
const PUT_TOKEN: &str = "INSERT INTO tokens (hashed, user_id, kind, name, last_part, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (hashed) DO UPDATE SET user_id = excluded.user_id, kind = excluded.kind,
        name = excluded.name, last_part = excluded.last_part, created_at = excluded.created_at";
const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE hashed = $1";
const PUT_SETTING: &str = "INSERT INTO settings (id, value) VALUES ($1, $2)
     ON CONFLICT (id) DO UPDATE SET value = excluded.value";
const DELETE_SETTING: &str = "DELETE FROM settings WHERE id = $1";
const PUT_PERMISSION: &str = "INSERT INTO permissions (id, roles) VALUES ($1, $2)
     ON CONFLICT (id) DO UPDATE SET roles = excluded.roles";
const DELETE_PERMISSION: &str = "DELETE FROM permissions WHERE id = $1";
const PUT_CUSTOM_STATUS: &str =
    "INSERT INTO custom_statuses (id, name, status_type, updated_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, status_type = excluded.status_type,
        updated_at = excluded.updated_at";
const DELETE_CUSTOM_STATUS: &str = "DELETE FROM custom_statuses WHERE id = $1";
const ADD_HISTORY: &str = "INSERT INTO status_history (id, user_id, actor_id, old_status,
        new_status, old_text, new_text, source, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (id) DO NOTHING";
const PUT_CONN: &str = "INSERT INTO connections (user_id, conn_id, instance_id, status, updated_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (conn_id) DO UPDATE SET user_id = excluded.user_id,
        instance_id = excluded.instance_id, status = excluded.status,
        updated_at = excluded.updated_at";
const DELETE_CONN: &str = "DELETE FROM connections WHERE conn_id = $1";

fn put_user(tx: &mut postgres::Transaction, stmts: &mut Stmts, u: &User) -> anyhow::Result<()> {
    let s = stmt(stmts, tx, PUT_USER)?;
    let emails = serde_json::to_string(&u.emails)?;
    let roles = serde_json::to_string(&u.roles)?;
    let previous = u
        .previous_state
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    tx.execute(
        &s,
        &[
            &txt(&u.id),
            &txt(&u.username),
            &txt(&u.username.to_lowercase()),
            &txt(&u.name),
            &txt(&emails),
            &opt_txt(&u.password_hash),
            &txt(&roles),
            &u.active,
            &txt(&u.kind),
            &u.status.as_str(),
            &u.status_default.as_str(),
            &u.status_connection.as_str(),
            &txt(&u.status_text),
            &opt_txt(&u.status_source),
            &u.status_expires_at.as_ref().map(ms),
            &previous.as_deref().map(Txt),
            &u.utc_offset,
            &ms(&u.created_at),
            &ms(&u.updated_at),
            &u.last_login.as_ref().map(ms),
        ],
    )?;
    Ok(())
}

fn apply_change(
    tx: &mut postgres::Transaction,
    stmts: &mut Stmts,
    instance_id: &str,
    (key, value): &Change,
) -> anyhow::Result<()> {
    match (key, value) {
        (Key::User(_), Some(Value::User(u))) => put_user(tx, stmts, u)?,
        (Key::User(id), _) => {
            let s = stmt(stmts, tx, DELETE_USER)?;
            tx.execute(&s, &[&txt(id)])?;
        }
        (Key::Token(_), Some(Value::Token(t))) => {
            let (kind, name, last) = match &t.kind {
                TokenKind::Login => ("login", None, None),
                TokenKind::Personal { name, last_part } => {
                    ("personal", Some(name.as_str()), Some(last_part.as_str()))
                }
            };
            let s = stmt(stmts, tx, PUT_TOKEN)?;
            tx.execute(
                &s,
                &[
                    &txt(&t.hashed),
                    &txt(&t.user_id),
                    &kind,
                    &name.map(Txt),
                    &last.map(Txt),
                    &ms(&t.created_at),
                ],
            )?;
        }
        (Key::Token(h), _) => {
            let s = stmt(stmts, tx, DELETE_TOKEN)?;
            tx.execute(&s, &[&txt(h)])?;
        }
        (Key::Setting(id), Some(Value::Setting(v))) => {
            let s = stmt(stmts, tx, PUT_SETTING)?;
            tx.execute(&s, &[&txt(id), &txt(&serde_json::to_string(v)?)])?;
        }
        (Key::Setting(id), _) => {
            let s = stmt(stmts, tx, DELETE_SETTING)?;
            tx.execute(&s, &[&txt(id)])?;
        }
        (Key::Permission(id), Some(Value::Permission(roles))) => {
            let s = stmt(stmts, tx, PUT_PERMISSION)?;
            tx.execute(
                &s,
                &[&txt(id), &txt(&serde_json::to_string(roles.as_ref())?)],
            )?;
        }
        (Key::Permission(id), _) => {
            let s = stmt(stmts, tx, DELETE_PERMISSION)?;
            tx.execute(&s, &[&txt(id)])?;
        }
        (Key::CustomStatus(_), Some(Value::CustomStatus(c))) => {
            let s = stmt(stmts, tx, PUT_CUSTOM_STATUS)?;
            tx.execute(
                &s,
                &[
                    &txt(&c.id),
                    &txt(&c.name),
                    &c.status_type.as_str(),
                    &ms(&c.updated_at),
                ],
            )?;
        }
        (Key::CustomStatus(id), _) => {
            let s = stmt(stmts, tx, DELETE_CUSTOM_STATUS)?;
            tx.execute(&s, &[&txt(id)])?;
        }
        (Key::History(_), Some(Value::History(h))) => {
            let s = stmt(stmts, tx, ADD_HISTORY)?;
            tx.execute(
                &s,
                &[
                    &txt(&h.id),
                    &txt(&h.user_id),
                    &opt_txt(&h.actor_id),
                    &h.old_status.as_str(),
                    &h.new_status.as_str(),
                    &txt(&h.old_text),
                    &txt(&h.new_text),
                    &h.source.as_str(),
                    &ms(&h.at),
                ],
            )?;
        }
        (Key::History(_), _) => {}
        (Key::Conn(user, conn), Some(Value::Conn(status))) => {
            let s = stmt(stmts, tx, PUT_CONN)?;
            tx.execute(
                &s,
                &[
                    &txt(user),
                    &txt(conn),
                    &txt(instance_id),
                    &conn_status_str(*status),
                    &Utc::now().timestamp_millis(),
                ],
            )?;
        }
        (Key::Conn(_, conn), _) => {
            let s = stmt(stmts, tx, DELETE_CONN)?;
            tx.execute(&s, &[&txt(conn)])?;
        }
    }
    Ok(())
}

fn load_all(c: &mut Client) -> anyhow::Result<Snapshot> {
    // One consistent view of every table.
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let users = tx
        .query("SELECT * FROM users", &[])?
        .iter()
        .map(user_from_row)
        .collect::<anyhow::Result<_>>()?;
    let tokens = tx
        .query(
            "SELECT hashed, user_id, kind, name, last_part, created_at FROM tokens",
            &[],
        )?
        .iter()
        .map(|r| -> anyhow::Result<Token> {
            let kind = text(r, 2)?;
            Ok(Token {
                hashed: text(r, 0)?,
                user_id: text(r, 1)?,
                kind: if kind == "personal" {
                    TokenKind::Personal {
                        name: opt_text(r, 3)?.unwrap_or_default(),
                        last_part: opt_text(r, 4)?.unwrap_or_default(),
                    }
                } else {
                    TokenKind::Login
                },
                created_at: from_ms(r.try_get(5)?),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let settings = tx
        .query("SELECT id, value FROM settings", &[])?
        .iter()
        .filter_map(|r| {
            let id = text(r, 0).ok()?;
            let v = text(r, 1).ok()?;
            serde_json::from_str(&v).ok().map(|v| (id, v))
        })
        .collect();
    let permissions = tx
        .query("SELECT id, roles FROM permissions", &[])?
        .iter()
        .filter_map(|r| {
            let id = text(r, 0).ok()?;
            let v = text(r, 1).ok()?;
            serde_json::from_str(&v).ok().map(|v| (id, v))
        })
        .collect();
    let custom_statuses = tx
        .query(
            "SELECT id, name, status_type, updated_at FROM custom_statuses",
            &[],
        )?
        .iter()
        .map(|r| -> anyhow::Result<CustomStatus> {
            Ok(CustomStatus {
                id: text(r, 0)?,
                name: text(r, 1)?,
                status_type: status_of(r.try_get(2)?),
                updated_at: from_ms(r.try_get(3)?),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let conns = tx
        .query(
            "SELECT user_id, conn_id, status FROM connections ORDER BY user_id, conn_id",
            &[],
        )?
        .iter()
        .map(|r| -> anyhow::Result<(String, String, ConnStatus)> {
            Ok((text(r, 0)?, text(r, 1)?, conn_status_of(r.try_get(2)?)))
        })
        .collect::<anyhow::Result<_>>()?;
    tx.commit()?;
    Ok(Snapshot {
        users,
        tokens,
        settings,
        permissions,
        custom_statuses,
        conns,
    })
}

const HISTORY_COUNT: &str =
    "SELECT COUNT(*) FROM status_history WHERE user_id = $1 AND at >= $2 AND at <= $3";
const HISTORY_PAGE: &str =
    "SELECT id, user_id, actor_id, old_status, new_status, old_text, new_text, source, at
     FROM status_history WHERE user_id = $1 AND at >= $2 AND at <= $3
     ORDER BY at DESC, seq DESC LIMIT $4 OFFSET $5";

fn history_page(
    c: &mut Client,
    stmts: &mut Stmts,
    q: &HistoryQuery,
) -> anyhow::Result<(Vec<HistoryEntry>, u64)> {
    let from = q.from.as_ref().map(ms).unwrap_or(i64::MIN);
    let to = q.to.as_ref().map(ms).unwrap_or(i64::MAX);
    let count = i64::try_from(q.count).unwrap_or(i64::MAX);
    let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
    // Count and page from the same snapshot.
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let s = stmt(stmts, &mut tx, HISTORY_COUNT)?;
    let total: i64 = tx
        .query_one(&s, &[&txt(&q.user_id), &from, &to])?
        .try_get(0)?;
    let s = stmt(stmts, &mut tx, HISTORY_PAGE)?;
    let items = tx
        .query(&s, &[&txt(&q.user_id), &from, &to, &count, &offset])?
        .iter()
        .map(|r| -> anyhow::Result<HistoryEntry> {
            Ok(HistoryEntry {
                id: text(r, 0)?,
                user_id: text(r, 1)?,
                actor_id: opt_text(r, 2)?,
                old_status: status_of(r.try_get(3)?),
                new_status: status_of(r.try_get(4)?),
                old_text: text(r, 5)?,
                new_text: text(r, 6)?,
                source: Source::parse(r.try_get(7)?),
                at: from_ms(r.try_get(8)?),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    tx.commit()?;
    Ok((items, total.max(0) as u64))
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

#[cfg(test)]
mod tests {
    //! These talk to a real PostgreSQL (`STATUSD_TEST_PG_ADMIN_URL`, by default
    //! `postgres://postgres@127.0.0.1:5432/postgres`, trust auth); each test works in a
    //! fresh database of its own, dropped afterwards.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

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
            PostgresStore::open(&self.url, instance).expect("open the store")
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

        /// Terminates the backend holding the leader lock of this database.
        fn kill_leader(&self) {
            let n: i64 = admin()
                .query_one(
                    "SELECT COUNT(pg_terminate_backend(l.pid)) FROM pg_locks l
                     JOIN pg_database d ON d.oid = l.database
                     WHERE d.datname = $1 AND l.locktype = 'advisory' AND l.granted",
                    &[&self.name],
                )
                .expect("pg_terminate_backend")
                .get(0);
            assert_eq!(n, 1, "one backend holds the leader lock");
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

    fn t(ms: i64) -> DateTime<Utc> {
        from_ms(ms)
    }

    fn user(id: &str, username: &str) -> User {
        User {
            id: id.into(),
            username: username.into(),
            name: format!("{username} Name"),
            emails: vec![Email {
                address: format!("{username}@example.com"),
                verified: true,
            }],
            password_hash: Some("$2b$10$hash".into()),
            roles: vec!["user".into(), "admin".into()],
            active: true,
            kind: "user".into(),
            status: Status::Busy,
            status_default: Status::Busy,
            status_connection: Status::Online,
            status_text: "in a meeting ✓".into(),
            status_source: Some("rest".into()),
            status_expires_at: Some(t(1_700_000_123_456)),
            previous_state: Some(PreviousState {
                status_default: Status::Away,
                status_text: "before".into(),
            }),
            utc_offset: 5.5,
            created_at: t(1_600_000_000_001),
            updated_at: t(1_700_000_000_002),
            last_login: Some(t(1_700_000_000_003)),
        }
    }

    fn history(id: &str, user: &str, at: i64) -> HistoryEntry {
        HistoryEntry {
            id: id.into(),
            user_id: user.into(),
            actor_id: Some("admin1".into()),
            old_status: Status::Online,
            new_status: Status::Away,
            old_text: "old".into(),
            new_text: format!("new {id}"),
            source: Source::Ddp,
            at: t(at),
        }
    }

    fn put(key: Key, value: Value) -> Change {
        (key, Some(value))
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
            previous_state: None,
            last_login: None,
            kind: "bot".into(),
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
                put(
                    Key::User("u1".into()),
                    Value::User(Arc::new(user("u1", "Alice"))),
                ),
                put(Key::User("u2".into()), Value::User(Arc::new(bare.clone()))),
                put(
                    Key::Token("h1".into()),
                    Value::Token(Arc::new(login.clone())),
                ),
                put(Key::Token("h2".into()), Value::Token(Arc::new(pat.clone()))),
                put(
                    Key::Setting("S_obj".into()),
                    Value::Setting(setting.clone()),
                ),
                put(Key::Setting("S_num".into()), Value::Setting(json!(42))),
                put(
                    Key::Permission("view-x".into()),
                    Value::Permission(Arc::new(vec!["admin".into(), "user".into()])),
                ),
                put(
                    Key::CustomStatus("c1".into()),
                    Value::CustomStatus(Arc::new(custom.clone())),
                ),
                put(
                    Key::Conn("u1".into(), "k1".into()),
                    Value::Conn(ConnStatus::Online),
                ),
                put(
                    Key::Conn("u1".into(), "k2".into()),
                    Value::Conn(ConnStatus::Away),
                ),
                put(
                    Key::History("e1".into()),
                    Value::History(Arc::new(history("e1", "u1", 1000))),
                ),
                (Key::History("ignored".into()), None),
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
                put(
                    Key::User("u1".into()),
                    Value::User(Arc::new(renamed.clone())),
                ),
                (Key::User("u2".into()), None),
                (Key::Token("h1".into()), None),
                put(
                    Key::Token("h2".into()),
                    Value::Token(Arc::new(Token {
                        kind: TokenKind::Login,
                        ..pat.clone()
                    })),
                ),
                put(Key::Setting("S_num".into()), Value::Setting(json!("text"))),
                (Key::Setting("S_obj".into()), None),
                (Key::Permission("view-x".into()), None),
                put(
                    Key::Permission("edit-y".into()),
                    Value::Permission(Arc::new(vec![])),
                ),
                (Key::CustomStatus("c1".into()), None),
                (Key::Conn("u1".into(), "k1".into()), None),
                put(
                    Key::Conn("u1".into(), "k2".into()),
                    Value::Conn(ConnStatus::Online),
                ),
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
                put(Key::User(u.id.clone()), Value::User(Arc::new(u.clone()))),
                put(Key::Setting("s\0".into()), Value::Setting(json!("v\0"))),
                put(
                    Key::CustomStatus(custom.id.clone()),
                    Value::CustomStatus(Arc::new(custom.clone())),
                ),
                put(
                    Key::History(h.id.clone()),
                    Value::History(Arc::new(h.clone())),
                ),
                put(
                    Key::Conn("u\0".into(), "k\0".into()),
                    Value::Conn(ConnStatus::Online),
                ),
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
                (Key::User(u.id.clone()), None),
                (Key::Setting("s\0".into()), None),
                (Key::Conn("u\0".into(), "k\0".into()), None),
            ])
            .unwrap();
        let snap = store.load().unwrap();
        assert!(snap.users.is_empty() && snap.settings.is_empty() && snap.conns.is_empty());
    }

    #[test]
    fn history_pages_filters_and_prunes() {
        let db = TestDb::new();
        let store = db.open("i");
        let mut changes = Vec::new();
        for i in 0..10 {
            let e = history(&format!("e{i}"), "u1", 1000 + i * 10);
            changes.push(put(Key::History(e.id.clone()), Value::History(Arc::new(e))));
        }
        // Two entries in the same millisecond come back newest-inserted first.
        for id in ["same1", "same2"] {
            let e = history(id, "u1", 2000);
            changes.push(put(Key::History(e.id.clone()), Value::History(Arc::new(e))));
        }
        let other = history("o1", "u2", 1500);
        changes.push(put(
            Key::History("o1".into()),
            Value::History(Arc::new(other)),
        ));
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
            .commit(&[put(
                Key::History("e0".into()),
                Value::History(Arc::new(history("e0", "u1", 1000))),
            )])
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
            .commit(&[put(
                Key::User("u1".into()),
                Value::User(Arc::new(user("u1", "alice"))),
            )])
            .unwrap();
        // Two users with the same username: refused as a whole.
        let err = store.commit(&[
            put(Key::Setting("s".into()), Value::Setting(json!(1))),
            put(
                Key::User("u2".into()),
                Value::User(Arc::new(user("u2", "ALICE"))),
            ),
        ]);
        assert!(err.is_err());
        let snap = store.load().unwrap();
        assert_eq!(snap.users.len(), 1);
        assert!(snap.settings.is_empty());
        // The connection is still fine.
        store
            .commit(&[put(Key::Setting("s".into()), Value::Setting(json!(2)))])
            .unwrap();
        // Swapping two usernames in one batch is fine (checked at commit).
        store
            .commit(&[put(
                Key::User("u2".into()),
                Value::User(Arc::new(user("u2", "bob"))),
            )])
            .unwrap();
        store
            .commit(&[
                put(
                    Key::User("u1".into()),
                    Value::User(Arc::new(user("u1", "bob"))),
                ),
                put(
                    Key::User("u2".into()),
                    Value::User(Arc::new(user("u2", "alice"))),
                ),
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
                    PostgresStore::open(&url, &format!("racer{i}")).map(|_| ())
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
        b.commit(&[put(Key::Setting("s".into()), Value::Setting(json!(1)))])
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
        let conn = |u: &str, c: &str| {
            put(
                Key::Conn(u.into(), c.into()),
                Value::Conn(ConnStatus::Online),
            )
        };
        a.commit(&[conn("u1", "a1"), conn("u2", "a2")]).unwrap();
        b.commit(&[conn("u1", "b1")]).unwrap();
        // A connection of an instance that never registered (or was forgotten).
        db.client()
            .execute(
                "INSERT INTO connections (user_id, conn_id, instance_id, status) VALUES ('u3', 'x1', 'ghost', 'away')",
                &[],
            )
            .unwrap();
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
            (Key::Conn("u1".into(), "a1".into()), None),
            (Key::Conn("u2".into(), "a2".into()), None),
            (Key::Conn("u3".into(), "x1".into()), None),
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
        assert!(a.is_leader());
        assert!(!b.is_leader());
        assert!(a.is_leader(), "re-checking keeps the lock");
        assert!(!b.is_leader());
        // Another database has its own leader.
        assert!(other.open("c").is_leader());

        // A's lock connection dies: the lock is free, B takes it, A has lost it.
        db.kill_leader();
        eventually("B leads", || b.is_leader());
        assert!(!a.is_leader());
        assert!(b.is_leader());
        // And back: B's connection dies, A (re-connected) takes the lock again.
        db.kill_leader();
        eventually("A leads", || a.is_leader());
        assert!(!b.is_leader());
        assert!(a.is_leader());

        // A goes away: B takes over.
        drop(a);
        eventually("B leads again", || b.is_leader());
    }

    #[test]
    fn recovers_after_the_connection_is_killed() {
        let db = TestDb::new();
        let store = db.open("i");
        let set = |v: i64| vec![put(Key::Setting("s".into()), Value::Setting(json!(v)))];
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
        let err = PostgresStore::open(&url, "i").err().expect("must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains(&format!("127.0.0.1:{port}/nothing")), "{msg}");
        assert!(!msg.contains("secret"), "the password leaked: {msg}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(PostgresStore::open("postgres://[bad", "i").is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn usable_inside_a_current_thread_runtime() {
        let db = TestDb::new();
        let store = db.open("i");
        store
            .commit(&[put(Key::Setting("s".into()), Value::Setting(json!(1)))])
            .unwrap();
        assert_eq!(store.load().unwrap().settings.len(), 1);
        assert!(store.is_leader());
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
        tokio::spawn(async move { s.heartbeat() })
            .await
            .unwrap()
            .unwrap();
        drop(store);
    }

    #[test]
    fn open_by_url_scheme() {
        let db = TestDb::new();
        let pg = super::super::open(&db.url, "i").expect("postgres://");
        pg.ping().unwrap();
        assert!(pg.persists_connections());
        assert!(!pg.changed_elsewhere().unwrap());
        let alt = db.url.replacen("postgres://", "postgresql://", 1);
        super::super::open(&alt, "j").expect("postgresql://");
        assert!(super::super::open("mysql://x", "i").is_err());
    }
}
