//! The embedded SQLite store. One connection, used by the writer thread (and at
//! start-up); WAL mode with `synchronous=FULL`, so a commit is on disk before the
//! writer answers anyone. WAL checkpoints run on a thread of their own
//! (`checkpoint`), so no commit waits for one.

pub mod backup;
mod checkpoint;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{from_ms, ms, status_of};
use super::{
    attempt_row, Attempt, CommitError, DeliveryRecord, DueDelivery, HistoryQuery, Role, Snapshot,
    Store, OUTBOX_DUE,
};
use crate::model::{
    CalendarEvent, ConnectedCalendar, CustomStatus, Email, HistoryEntry, PreviousState, Source,
    Status, Token, TokenKind, User, UserKind, Webhook,
};
use crate::record::Change;

/// Versioned migrations: index + 1 is the schema version. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: users, tokens, settings, permissions
    r#"
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        username_lower TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        emails TEXT NOT NULL,
        password_hash TEXT,
        roles TEXT NOT NULL,
        active INTEGER NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        status_default TEXT NOT NULL,
        status_connection TEXT NOT NULL,
        status_text TEXT NOT NULL,
        status_source TEXT,
        status_expires_at INTEGER,
        previous_state TEXT,
        utc_offset REAL NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_login INTEGER
    );
    CREATE INDEX users_status_expires_at ON users(status_expires_at) WHERE status_expires_at IS NOT NULL;
    CREATE TABLE tokens (
        hashed TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT,
        last_part TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX tokens_user ON tokens(user_id);
    CREATE TABLE settings (id TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE permissions (id TEXT PRIMARY KEY, roles TEXT NOT NULL);
    "#,
    // 2: status history and custom statuses
    r#"
    CREATE TABLE status_history (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        actor_id TEXT,
        old_status TEXT NOT NULL,
        new_status TEXT NOT NULL,
        old_text TEXT NOT NULL,
        new_text TEXT NOT NULL,
        source TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX status_history_user_at ON status_history(user_id, at);
    CREATE INDEX status_history_at ON status_history(at);
    CREATE TABLE custom_statuses (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status_type TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    "#,
    // 3: status history without the unique index on its random text id. Every change
    // appends one entry, and that index put each one on a random page of its own: one
    // more page in the WAL per change for a lookup nothing makes (ids are generated
    // here, 17 random characters). Rows keep their order (`seq` is the rowid).
    r#"
    CREATE TABLE status_history_v3 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        actor_id TEXT,
        old_status TEXT NOT NULL,
        new_status TEXT NOT NULL,
        old_text TEXT NOT NULL,
        new_text TEXT NOT NULL,
        source TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    INSERT INTO status_history_v3 (id, user_id, actor_id, old_status, new_status, old_text,
        new_text, source, at)
        SELECT id, user_id, actor_id, old_status, new_status, old_text, new_text, source, at
        FROM status_history ORDER BY rowid;
    DROP TABLE status_history;
    ALTER TABLE status_history_v3 RENAME TO status_history;
    CREATE INDEX status_history_user_at ON status_history(user_id, at);
    CREATE INDEX status_history_at ON status_history(at);
    "#,
    // 4: a user's bio and nickname; whether a personal access token bypasses two-factor
    r#"
    ALTER TABLE users ADD COLUMN bio TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN nickname TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN bypass_two_factor INTEGER NOT NULL DEFAULT 0;
    "#,
    // 5: a user's preferences (Rocket.Chat's `settings.preferences`), a JSON object
    r#"
    ALTER TABLE users ADD COLUMN preferences TEXT NOT NULL DEFAULT '{}';
    "#,
    // 6: the admin commands' change counter and what the running server has loaded of
    // it (`crate::external`: a command waits until the server has its change)
    r#"
    CREATE TABLE admin_sync (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        changed INTEGER NOT NULL,
        applied INTEGER
    );
    INSERT INTO admin_sync (id, changed, applied) VALUES (1, 0, NULL);
    "#,
    // 7: when a user was last seen present (statusd's last seen, milliseconds)
    r#"
    ALTER TABLE users ADD COLUMN last_seen INTEGER;
    "#,
    // 8: the id of a user's active status claim (`status::claims`)
    r#"
    ALTER TABLE users ADD COLUMN status_id TEXT;
    "#,
    // 9: webhook endpoints and their outbox (`state::outbox`, `crate::webhooks`)
    r#"
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        user_ids TEXT NOT NULL,
        roles TEXT NOT NULL,
        active INTEGER NOT NULL,
        secret TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        finished_at INTEGER
    );
    CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(endpoint_id, user_id, seq)
        WHERE state = 'pending';
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at) WHERE state = 'pending';
    CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, seq);
    "#,
    // 10: a user's do-not-disturb schedule (`status::dnd`, JSON)
    r#"
    ALTER TABLE users ADD COLUMN dnd TEXT;
    "#,
    // 11: calendar events (`calendar-events.*`), each one JSON body
    r#"
    CREATE TABLE calendar_events (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX calendar_events_user ON calendar_events(user_id);
    "#,
    // 12: calendars connected by URL (`statusd.calendars.*`, `crate::calsync`), each
    // one JSON body (the password in it sealed)
    r#"
    CREATE TABLE connected_calendars (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX connected_calendars_user ON connected_calendars(user_id);
    "#,
];

pub struct SqliteStore {
    /// The writer's connection.
    conn: Mutex<Connection>,
    /// A second connection for reads that are not served from memory (history), so
    /// they never wait behind a commit (WAL lets readers and the writer run together).
    reader: Mutex<Connection>,
    /// `PRAGMA data_version` of the writer's connection when last asked: it changes
    /// when another connection (the admin CLI, the pruning reader) commits.
    data_version: AtomicI64,
    /// The file, for [`backup::others_have_open`].
    path: String,
    /// A server's store or an admin command's: the latter counts its commits in
    /// `admin_sync.changed` (`crate::external`).
    role: Role,
    /// `admin_sync.changed` as the last `load` read it (-1 before the first).
    admin_loaded: AtomicI64,
    /// `admin_sync.changed` after this process's last admin commit (-1: none yet).
    admin_committed: AtomicI64,
    /// Copies the WAL into the database file in the background; stops when dropped.
    _checkpointer: checkpoint::Checkpointer,
}

impl SqliteStore {
    /// Opens the store for a server.
    #[cfg(test)]
    pub fn open(path: &str) -> anyhow::Result<SqliteStore> {
        SqliteStore::open_as(path, Role::Server)
    }

    /// Opens the store for a server or an admin command.
    pub fn open_as(path: &str, role: Role) -> anyhow::Result<SqliteStore> {
        private_files(Path::new(path))?;
        let open = || Connection::open(path).with_context(|| format!("opening {path}"));
        let conn = open()?;
        // The writer never checkpoints (the checkpointer does). Its page cache is 16 MiB
        // rather than 2: each change touches a random page of `users` and of the history
        // index, and a page missing from the cache is a read from the file first. The
        // cache holds only pages the writer touched: `load` reads through `reader`.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864;
             PRAGMA cache_size=-16384;",
        )?;
        conn.busy_handler(Some(checkpoint::wait_briefly))?;
        migrate(&conn)?;
        let reader = open()?;
        reader.execute_batch("PRAGMA busy_timeout=5000;")?;
        let checkpointer = open()?;
        checkpointer.busy_handler(Some(checkpoint::wait_briefly))?;
        let data_version = AtomicI64::new(data_version(&conn)?);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            data_version,
            path: path.to_string(),
            role,
            admin_loaded: AtomicI64::new(-1),
            admin_committed: AtomicI64::new(-1),
            _checkpointer: checkpoint::Checkpointer::start(checkpointer, Default::default())
                .context("starting the WAL checkpointer")?,
        })
    }
}

/// The database holds password and token hashes: its folder is made 0700 and the file
/// 0600 when statusd creates them. SQLite gives the `-wal` and `-shm` files it makes
/// the database file's mode, so they are 0600 as well. The mode of a folder or file
/// that already exists is the operator's choice and left alone (the server warns about
/// it: [`warn_if_open_to_others`]).
fn private_files(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .with_context(|| format!("creating the folder {}", dir.display()))?;
            }
        }
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
    }
    #[cfg(not(unix))]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the folder {}", dir.display()))?;
    }
    Ok(())
}

/// Warns when the database's folder or file may be read by others than its owner
/// (the server calls this at start; an admin command stays quiet).
pub fn warn_if_open_to_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        for (what, p, want) in [("folder", dir, "700"), ("file", Some(path), "600")] {
            let Some(p) = p else { continue };
            let Ok(meta) = std::fs::metadata(p) else {
                continue;
            };
            let mode = meta.mode() & 0o777;
            if mode & 0o077 != 0 {
                let shown = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
                tracing::warn!(
                    "the database {what} {} has mode {mode:o}: others than its owner may \
                     read it (chmod {want})",
                    shown.display()
                );
            }
        }
    }
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

/// The schema state of the SQLite file at `path`, read without creating the file (it
/// is opened read-write but never created, so a WAL database reads as the server
/// left it) and without migrating.
pub fn schema_state(path: &str) -> anyhow::Result<super::SchemaState> {
    let known = MIGRATIONS.len() as i64;
    if !Path::new(path).exists() {
        return Ok(super::SchemaState {
            version: None,
            known,
        });
    }
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {path}"))?;
    conn.execute_batch("PRAGMA busy_timeout=5000;")?;
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
            [],
            |r| r.get(0),
        )
        .with_context(|| format!("reading {path}"))?;
    let version = if has_table {
        conn.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get::<_, Option<i64>>(0)
        })?
    } else {
        None
    };
    Ok(super::SchemaState { version, known })
}

fn migrate(conn: &Connection) -> anyhow::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let current: i64 = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, Utc::now().timestamp_millis()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// The columns `user_from_row` reads, in its order. Read by position: looking every
/// column up by name costs a scan of the column names per field, which was most of the
/// start-up time with 100,000 users.
const USER_COLUMNS: &str = "id, username, name, emails, password_hash, roles, active, kind, \
    status, status_default, status_connection, status_text, status_source, status_expires_at, \
    previous_state, utc_offset, created_at, updated_at, last_login, bio, nickname, preferences, \
    last_seen, status_id, dnd";

/// A text column without copying it (NULL reads as None).
fn text_at<'r>(r: &'r rusqlite::Row, i: usize) -> rusqlite::Result<Option<&'r str>> {
    r.get_ref(i)?.as_str_or_null().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn status_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<Status> {
    Ok(status_of(text_at(r, i)?.unwrap_or("")))
}

fn user_from_row(r: &rusqlite::Row) -> rusqlite::Result<User> {
    let json_at = |i: usize| -> rusqlite::Result<&str> { Ok(text_at(r, i)?.unwrap_or("")) };
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        name: r.get(2)?,
        emails: serde_json::from_str::<Vec<Email>>(json_at(3)?).unwrap_or_default(),
        password_hash: r.get(4)?,
        roles: serde_json::from_str(json_at(5)?).unwrap_or_default(),
        active: r.get(6)?,
        kind: UserKind::parse(&r.get::<_, String>(7)?),
        status: status_at(r, 8)?,
        status_default: status_at(r, 9)?,
        status_connection: status_at(r, 10)?,
        status_text: r.get(11)?,
        status_source: r.get(12)?,
        status_expires_at: r.get::<_, Option<i64>>(13)?.map(from_ms),
        previous_state: text_at(r, 14)?.and_then(|p| serde_json::from_str::<PreviousState>(p).ok()),
        utc_offset: r.get(15)?,
        created_at: from_ms(r.get(16)?),
        updated_at: from_ms(r.get(17)?),
        last_login: r.get::<_, Option<i64>>(18)?.map(from_ms),
        bio: r.get(19)?,
        nickname: r.get(20)?,
        preferences: serde_json::from_str(json_at(21)?).unwrap_or_default(),
        last_seen: r.get::<_, Option<i64>>(22)?.map(from_ms),
        status_id: r.get(23)?,
        dnd: r.get(24)?,
    })
}

fn put_user(tx: &rusqlite::Transaction, u: &User) -> anyhow::Result<()> {
    let emails = serde_json::to_string(&u.emails)?;
    let roles = serde_json::to_string(&u.roles)?;
    let preferences = serde_json::to_string(&u.preferences)?;
    let previous_state = u
        .previous_state
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    // Most writes are status changes of an existing user. Setting only the status
    // columns leaves the username index alone: SQLite rewrites an index whenever one
    // of its columns is in the SET list, changed or not, which put one more page in
    // the WAL per change. The WHERE clause checks that the rest of the row is what is
    // stored; when it is not (or the user is new), the full upsert below runs.
    let narrowed = tx
        .prepare_cached(
            "UPDATE users SET status=?2, status_default=?3, status_connection=?4, status_text=?5,
                status_source=?6, status_expires_at=?7, previous_state=?8, updated_at=?9,
                last_login=?10, last_seen=?23, status_id=?24, dnd=?25
             WHERE id=?1 AND username=?11 AND name=?12 AND emails=?13 AND password_hash IS ?14
                AND roles=?15 AND active=?16 AND kind=?17 AND utc_offset=?18 AND created_at=?19
                AND bio=?20 AND nickname=?21 AND preferences=?22",
        )?
        .execute(params![
            u.id,
            u.status.as_str(),
            u.status_default.as_str(),
            u.status_connection.as_str(),
            u.status_text,
            u.status_source,
            u.status_expires_at.as_ref().map(ms),
            previous_state,
            ms(&u.updated_at),
            u.last_login.as_ref().map(ms),
            u.username,
            u.name,
            emails,
            u.password_hash,
            roles,
            u.active,
            u.kind.as_str(),
            u.utc_offset,
            ms(&u.created_at),
            u.bio,
            u.nickname,
            preferences,
            u.last_seen.as_ref().map(ms),
            u.status_id,
            u.dnd,
        ])?;
    if narrowed == 1 {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO users (id, username, username_lower, name, emails, password_hash, roles, active, kind,
            status, status_default, status_connection, status_text, status_source, status_expires_at,
            previous_state, utc_offset, created_at, updated_at, last_login, bio, nickname, preferences,
            last_seen, status_id, dnd)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
            ?21, ?22, ?23, ?24, ?25, ?26)
         ON CONFLICT(id) DO UPDATE SET username=excluded.username, username_lower=excluded.username_lower,
            name=excluded.name, emails=excluded.emails, password_hash=excluded.password_hash,
            roles=excluded.roles, active=excluded.active, kind=excluded.kind, status=excluded.status,
            status_default=excluded.status_default, status_connection=excluded.status_connection,
            status_text=excluded.status_text, status_source=excluded.status_source,
            status_expires_at=excluded.status_expires_at, previous_state=excluded.previous_state,
            utc_offset=excluded.utc_offset, created_at=excluded.created_at,
            updated_at=excluded.updated_at, last_login=excluded.last_login, bio=excluded.bio,
            nickname=excluded.nickname, preferences=excluded.preferences,
            last_seen=excluded.last_seen, status_id=excluded.status_id, dnd=excluded.dnd",
    )?;
    stmt.execute(params![
        u.id,
        u.username,
        u.username.to_lowercase(),
        u.name,
        emails,
        u.password_hash,
        roles,
        u.active,
        u.kind.as_str(),
        u.status.as_str(),
        u.status_default.as_str(),
        u.status_connection.as_str(),
        u.status_text,
        u.status_source,
        u.status_expires_at.as_ref().map(ms),
        previous_state,
        u.utc_offset,
        ms(&u.created_at),
        ms(&u.updated_at),
        u.last_login.as_ref().map(ms),
        u.bio,
        u.nickname,
        preferences,
        u.last_seen.as_ref().map(ms),
        u.status_id,
        u.dnd,
    ])?;
    Ok(())
}

fn put_token(tx: &rusqlite::Transaction, t: &Token) -> anyhow::Result<()> {
    let (kind, name, last, bypass) = match &t.kind {
        TokenKind::Login => ("login", None, None, false),
        TokenKind::Personal {
            name,
            last_part,
            bypass_two_factor,
        } => (
            "personal",
            Some(name.as_str()),
            Some(last_part.as_str()),
            *bypass_two_factor,
        ),
    };
    tx.prepare_cached(
        "INSERT OR REPLACE INTO tokens (hashed, user_id, kind, name, last_part, created_at,
            bypass_two_factor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        t.hashed,
        t.user_id,
        kind,
        name,
        last,
        ms(&t.created_at),
        bypass
    ])?;
    Ok(())
}

/// Applies `changes` in order, in one transaction.
/// Commits `changes` in one transaction; an admin command's commit also counts itself
/// in `admin_sync.changed` and returns the new count.
fn commit_all(
    conn: &mut Connection,
    changes: &[Change],
    admin: bool,
) -> anyhow::Result<Option<i64>> {
    let tx = conn.transaction()?;
    for change in changes {
        match change {
            Change::PutUser(u) => put_user(&tx, u)?,
            Change::DeleteUser(id) => {
                tx.prepare_cached("DELETE FROM users WHERE id = ?1")?
                    .execute([id])?;
            }
            Change::PutToken(t) => put_token(&tx, t)?,
            Change::DeleteToken(h) => {
                tx.prepare_cached("DELETE FROM tokens WHERE hashed = ?1")?
                    .execute([h])?;
            }
            Change::PutSetting(id, v) => {
                tx.prepare_cached("INSERT OR REPLACE INTO settings (id, value) VALUES (?1, ?2)")?
                    .execute(params![id, serde_json::to_string(v)?])?;
            }
            Change::DeleteSetting(id) => {
                tx.prepare_cached("DELETE FROM settings WHERE id = ?1")?
                    .execute([id])?;
            }
            Change::PutPermission(id, roles) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO permissions (id, roles) VALUES (?1, ?2)",
                )?
                .execute(params![id, serde_json::to_string(roles.as_ref())?])?;
            }
            Change::DeletePermission(id) => {
                tx.prepare_cached("DELETE FROM permissions WHERE id = ?1")?
                    .execute([id])?;
            }
            Change::PutCustomStatus(c) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO custom_statuses (id, name, status_type, updated_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    c.id,
                    c.name,
                    c.status_type.as_str(),
                    ms(&c.updated_at)
                ])?;
            }
            Change::DeleteCustomStatus(id) => {
                tx.prepare_cached("DELETE FROM custom_statuses WHERE id = ?1")?
                    .execute([id])?;
            }
            Change::PutCalendarEvent(e) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO calendar_events (id, user_id, body) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![e.id, e.uid, serde_json::to_string(e.as_ref())?])?;
            }
            Change::DeleteCalendarEvent(id) => {
                tx.prepare_cached("DELETE FROM calendar_events WHERE id = ?1")?
                    .execute([id])?;
            }
            Change::AddHistory(h) => {
                tx.prepare_cached(
                    "INSERT INTO status_history (id, user_id, actor_id, old_status, new_status,
                        old_text, new_text, source, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    h.id,
                    h.user_id,
                    h.actor_id,
                    h.old_status.as_str(),
                    h.new_status.as_str(),
                    h.old_text,
                    h.new_text,
                    h.source.as_str(),
                    ms(&h.at)
                ])?;
            }
            Change::PutWebhook(w) => {
                tx.prepare_cached(
                    "INSERT INTO webhooks (id, url, events, user_ids, roles, active, created_at,
                        updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT(id) DO UPDATE SET url = ?2, events = ?3, user_ids = ?4,
                        roles = ?5, active = ?6, updated_at = ?8",
                )?
                .execute(params![
                    w.id,
                    w.url,
                    serde_json::to_string(&w.events)?,
                    serde_json::to_string(&w.user_ids)?,
                    serde_json::to_string(&w.roles)?,
                    w.active,
                    ms(&w.created_at),
                    ms(&w.updated_at)
                ])?;
            }
            Change::DeleteWebhook(id) => {
                tx.prepare_cached("DELETE FROM webhooks WHERE id = ?1")?
                    .execute([id])?;
                tx.prepare_cached("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1")?
                    .execute([id])?;
            }
            Change::PutWebhookSecret(id, secret) => {
                tx.prepare_cached("UPDATE webhooks SET secret = ?2 WHERE id = ?1")?
                    .execute(params![id, secret])?;
            }
            Change::AddDelivery(d) => {
                tx.prepare_cached(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, user_id, event, payload,
                        created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )?
                .execute(params![
                    d.id,
                    d.endpoint_id,
                    d.user_id,
                    d.event,
                    d.payload,
                    ms(&d.created_at)
                ])?;
            }
            // Live connections die with the process: an embedded store does not keep them.
            Change::PutConn(..) | Change::DeleteConn(..) => {}
        }
    }
    let counted = if admin && !changes.is_empty() {
        Some(tx.query_row(
            "UPDATE admin_sync SET changed = changed + 1 WHERE id = 1 RETURNING changed",
            [],
            |r| r.get(0),
        )?)
    } else {
        None
    };
    tx.commit()?;
    Ok(counted)
}

impl Store for SqliteStore {
    fn load(&self) -> anyhow::Result<Snapshot> {
        let conn = self.reader.lock();
        // Read first: what follows holds at least every admin change counted so far.
        let admin: i64 =
            conn.query_row("SELECT changed FROM admin_sync WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        let mut snap = Snapshot::default();
        let mut stmt = conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users"))?;
        snap.users = stmt
            .query_map([], user_from_row)?
            .collect::<Result<_, _>>()?;
        let mut stmt =
            conn.prepare("SELECT hashed, user_id, kind, name, last_part, created_at, bypass_two_factor FROM tokens")?;
        snap.tokens = stmt
            .query_map([], |r| {
                let kind: String = r.get(2)?;
                Ok(Token {
                    hashed: r.get(0)?,
                    user_id: r.get(1)?,
                    kind: if kind == "personal" {
                        TokenKind::Personal {
                            name: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                            last_part: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                            bypass_two_factor: r.get(6)?,
                        }
                    } else {
                        TokenKind::Login
                    },
                    created_at: from_ms(r.get(5)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT id, value FROM settings")?;
        snap.settings = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .filter_map(|r| r.ok())
            .filter_map(|(id, v)| serde_json::from_str(&v).ok().map(|v| (id, v)))
            .collect();
        let mut stmt = conn.prepare("SELECT id, roles FROM permissions")?;
        snap.permissions = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .filter_map(|r| r.ok())
            .filter_map(|(id, v)| serde_json::from_str(&v).ok().map(|v| (id, v)))
            .collect();
        let mut stmt =
            conn.prepare("SELECT id, name, status_type, updated_at FROM custom_statuses")?;
        snap.custom_statuses = stmt
            .query_map([], |r| {
                Ok(CustomStatus {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    status_type: status_of(&r.get::<_, String>(2)?),
                    updated_at: from_ms(r.get(3)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT id, url, events, user_ids, roles, active, created_at, updated_at FROM webhooks",
        )?;
        let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
        snap.webhooks = stmt
            .query_map([], |r| {
                Ok(Webhook {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    events: list(r.get(2)?),
                    user_ids: list(r.get(3)?),
                    roles: list(r.get(4)?),
                    active: r.get(5)?,
                    created_at: from_ms(r.get(6)?),
                    updated_at: from_ms(r.get(7)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT body FROM calendar_events")?;
        snap.calendar_events = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .filter_map(|r| r.ok())
            .filter_map(|b| serde_json::from_str::<CalendarEvent>(&b).ok())
            .collect();
        self.admin_loaded.store(admin, Ordering::SeqCst);
        Ok(snap)
    }

    // Reads of the outbox go through the reader, never holding up a commit; its
    // bookkeeping (writes) through the writer's connection: a commit on any other
    // connection would count as a change made elsewhere (`changed_elsewhere`).
    fn due_deliveries(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<Vec<DueDelivery>> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(OUTBOX_DUE)?;
        let rows = stmt
            .query_map(params![ms(&now), limit as i64], |r| {
                Ok(DueDelivery {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    endpoint_id: r.get(2)?,
                    user_id: r.get(3)?,
                    payload: r.get(4)?,
                    created_at: from_ms(r.get(5)?),
                    attempts: r.get(6)?,
                    url: r.get(7)?,
                    secret: r.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn record_attempt(
        &self,
        seq: i64,
        attempt: &Attempt,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let conn = self.conn.lock();
        let (state, status, error, next_at, finished) = attempt_row(attempt, now);
        conn.prepare_cached(
            "UPDATE webhook_deliveries SET state = ?2, attempts = attempts + 1, last_status = ?3,
                last_error = ?4, next_at = COALESCE(?5, next_at), finished_at = ?6 WHERE seq = ?1",
        )?
        .execute(params![seq, state, status, error, next_at, finished])?;
        Ok(())
    }

    fn delivery_log(&self, endpoint_id: &str, limit: usize) -> anyhow::Result<Vec<DeliveryRecord>> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, user_id, event, state, attempts, created_at, next_at, last_status,
                last_error, finished_at FROM webhook_deliveries WHERE endpoint_id = ?1
             ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![endpoint_id, limit as i64], |r| {
                Ok(DeliveryRecord {
                    id: r.get(0)?,
                    user_id: r.get(1)?,
                    event: r.get(2)?,
                    state: r.get(3)?,
                    attempts: r.get(4)?,
                    created_at: from_ms(r.get(5)?),
                    next_at: from_ms(r.get(6)?),
                    last_status: r.get(7)?,
                    last_error: r.get(8)?,
                    finished_at: r.get::<_, Option<i64>>(9)?.map(from_ms),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn outbox_backlog(&self) -> anyhow::Result<(u64, Option<DateTime<Utc>>)> {
        let conn = self.reader.lock();
        let (n, oldest): (i64, Option<i64>) = conn.query_row(
            "SELECT COUNT(*), MIN(created_at) FROM webhook_deliveries WHERE state = 'pending'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((n.max(0) as u64, oldest.map(from_ms)))
    }

    fn prune_deliveries(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let conn = self.conn.lock();
        let n = conn.execute(
            "DELETE FROM webhook_deliveries WHERE state != 'pending' AND finished_at < ?1",
            [ms(&before)],
        )?;
        Ok(n as u64)
    }

    fn calendars(&self, user_id: Option<&str>) -> anyhow::Result<Vec<ConnectedCalendar>> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT body FROM connected_calendars WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([user_id], |r| r.get::<_, String>(0))?
            .filter_map(|r| r.ok())
            .filter_map(|b| serde_json::from_str::<ConnectedCalendar>(&b).ok())
            .collect();
        Ok(rows)
    }

    // Written through the writer's connection, like the outbox's bookkeeping.
    fn put_calendar(&self, c: &ConnectedCalendar) -> anyhow::Result<()> {
        let conn = self.conn.lock();
        conn.prepare_cached(
            "INSERT OR REPLACE INTO connected_calendars (id, user_id, body) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![c.id, c.uid, serde_json::to_string(c)?])?;
        Ok(())
    }

    fn delete_calendar(&self, id: &str) -> anyhow::Result<bool> {
        let conn = self.conn.lock();
        let n = conn
            .prepare_cached("DELETE FROM connected_calendars WHERE id = ?1")?
            .execute([id])?;
        Ok(n > 0)
    }

    fn commit(&self, changes: &[Change]) -> Result<(), CommitError> {
        let counted = commit_all(&mut self.conn.lock(), changes, self.role == Role::Admin)
            .map_err(CommitError::Failed)?;
        if let Some(n) = counted {
            self.admin_committed.store(n, Ordering::SeqCst);
        }
        Ok(())
    }

    fn history(&self, q: &HistoryQuery) -> anyhow::Result<(Vec<HistoryEntry>, u64)> {
        let conn = self.reader.lock();
        let from = q.from.as_ref().map(ms).unwrap_or(i64::MIN);
        let to = q.to.as_ref().map(ms).unwrap_or(i64::MAX);
        let total: i64 = conn.query_row(
            "SELECT COUNT(*) FROM status_history WHERE user_id = ?1 AND at >= ?2 AND at <= ?3",
            params![q.user_id, from, to],
            |r| r.get(0),
        )?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, user_id, actor_id, old_status, new_status, old_text, new_text, source, at
             FROM status_history WHERE user_id = ?1 AND at >= ?2 AND at <= ?3
             ORDER BY at DESC, rowid DESC LIMIT ?4 OFFSET ?5",
        )?;
        let items = stmt
            .query_map(
                params![q.user_id, from, to, q.count as i64, q.offset as i64],
                |r| {
                    Ok(HistoryEntry {
                        id: r.get(0)?,
                        user_id: r.get(1)?,
                        actor_id: r.get(2)?,
                        old_status: status_of(&r.get::<_, String>(3)?),
                        new_status: status_of(&r.get::<_, String>(4)?),
                        old_text: r.get(5)?,
                        new_text: r.get(6)?,
                        source: Source::parse(&r.get::<_, String>(7)?),
                        at: from_ms(r.get(8)?),
                    })
                },
            )?
            .collect::<Result<_, _>>()?;
        Ok((items, total.max(0) as u64))
    }

    fn prune_history(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let conn = self.reader.lock();
        let n = conn.execute("DELETE FROM status_history WHERE at < ?1", [ms(&before)])?;
        Ok(n as u64)
    }

    /// Always: the file is right here.
    fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn changed_elsewhere(&self) -> anyhow::Result<bool> {
        let now = data_version(&self.conn.lock())?;
        Ok(self.data_version.swap(now, Ordering::SeqCst) != now)
    }

    fn loaded_admin_changes(&self) -> Option<i64> {
        Some(self.admin_loaded.load(Ordering::SeqCst)).filter(|n| *n >= 0)
    }

    /// On the writer's connection: its own commits do not count as changes elsewhere.
    fn acknowledge(&self, applied: Option<i64>) -> anyhow::Result<()> {
        self.conn
            .lock()
            .execute("UPDATE admin_sync SET applied = ?1 WHERE id = 1", [applied])?;
        Ok(())
    }

    /// A server runs when one has recorded what it loaded (it clears that when it
    /// stops) and another process has the database open (a server that died cannot
    /// hold the lock: it leaves no waiting behind).
    fn servers_behind(&self, _alive_within: Duration) -> anyhow::Result<Option<usize>> {
        let mine = self.admin_committed.load(Ordering::SeqCst);
        let applied: Option<i64> = self.reader.lock().query_row(
            "SELECT applied FROM admin_sync WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        let Some(applied) = applied else {
            return Ok(None);
        };
        if !backup::others_have_open(Path::new(&self.path))? {
            return Ok(None);
        }
        Ok(Some(usize::from(applied < mine)))
    }
}

#[cfg(test)]
mod tests;
