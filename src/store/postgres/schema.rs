//! The schema: versioned migrations, applied under an advisory lock.

use anyhow::Context;
use chrono::Utc;
use postgres::Client;

/// Versioned migrations: index + 1 is the schema version. Append, never edit.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 4: the leader lease (see `cluster.rs`): who leads, and until when (database clock)
    r#"
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    INSERT INTO leases (name, holder, expires_at) VALUES ('leader', '', 0);
    "#,
    // 5: a user's bio and nickname; whether a personal access token bypasses two-factor
    r#"
    ALTER TABLE users ADD COLUMN bio TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN nickname TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN bypass_two_factor BOOLEAN NOT NULL DEFAULT FALSE;
    "#,
    // 6: a user's preferences (Rocket.Chat's `settings.preferences`), a JSON object
    r#"
    ALTER TABLE users ADD COLUMN preferences TEXT NOT NULL DEFAULT '{}';
    "#,
    // 7: the admin commands' change counter, and what each instance has loaded of it
    // (`crate::external`: a command waits until the running instances have its change)
    r#"
    CREATE TABLE admin_sync (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        changed BIGINT NOT NULL
    );
    INSERT INTO admin_sync (id, changed) VALUES (1, 0);
    ALTER TABLE instances ADD COLUMN applied BIGINT;
    "#,
    // 8: when a user was last seen present (statusd's last seen, milliseconds)
    r#"
    ALTER TABLE users ADD COLUMN last_seen BIGINT;
    "#,
    // 9: the id of a user's active status claim (`status::claims`)
    r#"
    ALTER TABLE users ADD COLUMN status_id TEXT;
    "#,
    // 10: webhook endpoints and their outbox (`state::outbox`, `crate::webhooks`)
    r#"
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        user_ids TEXT NOT NULL,
        roles TEXT NOT NULL,
        active BOOLEAN NOT NULL,
        secret TEXT NOT NULL DEFAULT '',
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at BIGINT NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        finished_at BIGINT
    );
    CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(endpoint_id, user_id, seq)
        WHERE state = 'pending';
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at) WHERE state = 'pending';
    CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, seq);
    "#,
    // 11: a user's do-not-disturb schedule (`status::dnd`, JSON)
    r#"
    ALTER TABLE users ADD COLUMN dnd TEXT;
    "#,
    // 12: calendar events (`calendar-events.*`), each one JSON body
    r#"
    CREATE TABLE calendar_events (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX calendar_events_user ON calendar_events(user_id);
    "#,
    // 13: calendars connected by URL (`statusd.calendars.*`, `crate::calsync`), each
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

/// Advisory lock key (per database) of migrating.
pub(super) const MIGRATION_LOCK: i64 = 0x7374_6174_7573_6401;

pub(super) fn migrate(c: &mut Client) -> anyhow::Result<()> {
    // Two instances starting at once on a fresh database: one migrates, the other
    // waits here and then finds nothing left to do.
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let r = migrate_locked(c);
    let unlocked = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    r?;
    unlocked?;
    Ok(())
}

pub(super) fn migrate_locked(c: &mut Client) -> anyhow::Result<()> {
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
