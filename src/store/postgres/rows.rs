//! Mapping between the model and the tables: text escaping, rows, the statements of a
//! commit, the full load and history pages.

use std::time::Duration;

use chrono::Utc;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::Client;

use super::session::{stmt, Stmts};
use crate::model::{
    CalendarEvent, ConnStatus, CustomStatus, Email, HistoryEntry, PreviousState, Source, Token,
    TokenKind, User, UserKind, Webhook,
};
use crate::record::Change;
use crate::store::codec::{conn_status_of, conn_status_str, from_ms, ms, status_of};
use crate::store::{Credentials, HistoryQuery, Snapshot};

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The escape of stored text. PostgreSQL's TEXT cannot hold NUL, which SQLite keeps and
/// clients may send (a status text, a name): NUL is stored as ESC '0' and ESC itself as
/// ESC '1'. Text with neither (all real text) is stored as it is.
pub(super) const ESC: char = '\u{E000}';

pub(super) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
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

pub(super) fn unescape(s: String) -> String {
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
pub(super) struct Txt<'a>(&'a str);

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

pub(super) fn txt(s: &str) -> Txt<'_> {
    Txt(s)
}

pub(super) fn opt_txt(s: &Option<String>) -> Option<Txt<'_>> {
    s.as_deref().map(Txt)
}

/// A text column, unescaped (see [`escape`]).
pub(super) fn text<I: postgres::row::RowIndex + std::fmt::Display>(
    r: &postgres::Row,
    i: I,
) -> Result<String, postgres::Error> {
    Ok(unescape(r.try_get(i)?))
}

pub(super) fn opt_text<I: postgres::row::RowIndex + std::fmt::Display>(
    r: &postgres::Row,
    i: I,
) -> Result<Option<String>, postgres::Error> {
    Ok(r.try_get::<_, Option<String>>(i)?.map(unescape))
}

pub(super) fn user_from_row(r: &postgres::Row) -> anyhow::Result<User> {
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
        kind: UserKind::parse(&text(r, "kind")?),
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
        bio: text(r, "bio")?,
        nickname: text(r, "nickname")?,
        preferences: serde_json::from_str(&text(r, "preferences")?).unwrap_or_default(),
        last_seen: r.try_get::<_, Option<i64>>("last_seen")?.map(from_ms),
        status_id: opt_text(r, "status_id")?,
        dnd: opt_text(r, "dnd")?,
    })
}

/// Upserts the users of a batch in one statement (one round trip, not one per user).
pub(super) const PUT_USERS: &str = "INSERT INTO users (id, username, username_lower, name, emails,
        password_hash, roles, active, kind, status, status_default, status_connection, status_text,
        status_source, status_expires_at, previous_state, utc_offset, created_at, updated_at,
        last_login, bio, nickname, preferences, last_seen, status_id, dnd)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::bool[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
        $14::text[], $15::int8[], $16::text[], $17::float8[], $18::int8[], $19::int8[], $20::int8[],
        $21::text[], $22::text[], $23::text[], $24::int8[], $25::text[],
        $26::text[])
     ON CONFLICT (id) DO UPDATE SET username = excluded.username,
        username_lower = excluded.username_lower, name = excluded.name, emails = excluded.emails,
        password_hash = excluded.password_hash, roles = excluded.roles, active = excluded.active,
        kind = excluded.kind, status = excluded.status, status_default = excluded.status_default,
        status_connection = excluded.status_connection, status_text = excluded.status_text,
        status_source = excluded.status_source, status_expires_at = excluded.status_expires_at,
        previous_state = excluded.previous_state, utc_offset = excluded.utc_offset,
        created_at = excluded.created_at, updated_at = excluded.updated_at,
        last_login = excluded.last_login, bio = excluded.bio, nickname = excluded.nickname,
        preferences = excluded.preferences, last_seen = excluded.last_seen,
        status_id = excluded.status_id, dnd = excluded.dnd";
pub(super) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
pub(super) const PUT_TOKEN: &str =
    "INSERT INTO tokens (hashed, user_id, kind, name, last_part, created_at, bypass_two_factor)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (hashed) DO UPDATE SET user_id = excluded.user_id, kind = excluded.kind,
        name = excluded.name, last_part = excluded.last_part, created_at = excluded.created_at,
        bypass_two_factor = excluded.bypass_two_factor";
pub(super) const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE hashed = $1";
pub(super) const PUT_SETTING: &str = "INSERT INTO settings (id, value) VALUES ($1, $2)
     ON CONFLICT (id) DO UPDATE SET value = excluded.value";
pub(super) const DELETE_SETTING: &str = "DELETE FROM settings WHERE id = $1";
pub(super) const PUT_PERMISSION: &str = "INSERT INTO permissions (id, roles) VALUES ($1, $2)
     ON CONFLICT (id) DO UPDATE SET roles = excluded.roles";
pub(super) const DELETE_PERMISSION: &str = "DELETE FROM permissions WHERE id = $1";
pub(super) const PUT_CUSTOM_STATUS: &str =
    "INSERT INTO custom_statuses (id, name, status_type, updated_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, status_type = excluded.status_type,
        updated_at = excluded.updated_at";
pub(super) const DELETE_CUSTOM_STATUS: &str = "DELETE FROM custom_statuses WHERE id = $1";
pub(super) const PUT_WEBHOOK: &str =
    "INSERT INTO webhooks (id, url, events, user_ids, roles, active, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events,
        user_ids = excluded.user_ids, roles = excluded.roles, active = excluded.active,
        updated_at = excluded.updated_at";
pub(super) const ADD_DELIVERY: &str =
    "INSERT INTO webhook_deliveries (id, endpoint_id, user_id, event, payload, created_at, next_at)
     VALUES ($1, $2, $3, $4, $5, $6, $6)";
pub(super) const PUT_CALENDAR_EVENT: &str =
    "INSERT INTO calendar_events (id, user_id, body) VALUES ($1, $2, $3)
     ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, body = excluded.body";
pub(super) const DELETE_CALENDAR_EVENT: &str = "DELETE FROM calendar_events WHERE id = $1";
/// Appends the history entries of a batch in one statement, in their order (`seq`).
pub(super) const ADD_HISTORY: &str =
    "INSERT INTO status_history (id, user_id, actor_id, old_status, new_status, old_text, new_text,
        source, at)
     SELECT id, user_id, actor_id, old_status, new_status, old_text, new_text, source, at
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::text[], $9::int8[])
        WITH ORDINALITY AS h(id, user_id, actor_id, old_status, new_status, old_text, new_text,
            source, at, n)
     ORDER BY n
     ON CONFLICT (id) DO NOTHING";
pub(super) const PUT_CONN: &str =
    "INSERT INTO connections (user_id, conn_id, instance_id, status, updated_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (conn_id) DO UPDATE SET user_id = excluded.user_id,
        instance_id = excluded.instance_id, status = excluded.status,
        updated_at = excluded.updated_at";
pub(super) const DELETE_CONN: &str = "DELETE FROM connections WHERE conn_id = $1";

/// One text column of a batch, from each row.
fn texts<'a, T>(rows: &[&'a T], f: impl Fn(&'a T) -> &'a str) -> Vec<Txt<'a>> {
    rows.iter().map(|r| txt(f(r))).collect()
}

/// One column of a batch, from each row.
fn column<'a, T, C>(rows: &[&'a T], f: impl Fn(&'a T) -> C) -> Vec<C> {
    rows.iter().map(|r| f(r)).collect()
}

fn put_users(
    tx: &mut postgres::Transaction,
    stmts: &mut Stmts,
    users: &[&User],
) -> anyhow::Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let s = stmt(stmts, tx, PUT_USERS)?;
    let lower = column(users, |u| u.username.to_lowercase());
    let emails = column(users, |u| serde_json::to_string(&u.emails))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let roles = column(users, |u| serde_json::to_string(&u.roles))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let preferences = column(users, |u| serde_json::to_string(&u.preferences))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let previous = column(users, |u| {
        u.previous_state
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    tx.execute(
        &s,
        &[
            &texts(users, |u| &u.id),
            &texts(users, |u| &u.username),
            &lower.iter().map(|l| txt(l)).collect::<Vec<_>>(),
            &texts(users, |u| &u.name),
            &emails.iter().map(|e| txt(e)).collect::<Vec<_>>(),
            &column(users, |u| opt_txt(&u.password_hash)),
            &roles.iter().map(|r| txt(r)).collect::<Vec<_>>(),
            &column(users, |u| u.active),
            &texts(users, |u| u.kind.as_str()),
            &column(users, |u| u.status.as_str()),
            &column(users, |u| u.status_default.as_str()),
            &column(users, |u| u.status_connection.as_str()),
            &texts(users, |u| &u.status_text),
            &column(users, |u| opt_txt(&u.status_source)),
            &column(users, |u| u.status_expires_at.as_ref().map(ms)),
            &previous
                .iter()
                .map(|p| p.as_deref().map(Txt))
                .collect::<Vec<_>>(),
            &column(users, |u| u.utc_offset),
            &column(users, |u| ms(&u.created_at)),
            &column(users, |u| ms(&u.updated_at)),
            &column(users, |u| u.last_login.as_ref().map(ms)),
            &texts(users, |u| &u.bio),
            &texts(users, |u| &u.nickname),
            &preferences.iter().map(|p| txt(p)).collect::<Vec<_>>(),
            &column(users, |u| u.last_seen.as_ref().map(ms)),
            &column(users, |u| opt_txt(&u.status_id)),
            &column(users, |u| opt_txt(&u.dnd)),
        ],
    )?;
    Ok(())
}

fn add_history(
    tx: &mut postgres::Transaction,
    stmts: &mut Stmts,
    entries: &[&HistoryEntry],
) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let s = stmt(stmts, tx, ADD_HISTORY)?;
    tx.execute(
        &s,
        &[
            &texts(entries, |h| &h.id),
            &texts(entries, |h| &h.user_id),
            &column(entries, |h| opt_txt(&h.actor_id)),
            &column(entries, |h| h.old_status.as_str()),
            &column(entries, |h| h.new_status.as_str()),
            &texts(entries, |h| &h.old_text),
            &texts(entries, |h| &h.new_text),
            &column(entries, |h| h.source.as_str()),
            &column(entries, |h| ms(&h.at)),
        ],
    )?;
    Ok(())
}

/// Applies a batch of changes in one transaction, in few round trips: the users of the
/// batch (the last value of each) go in one statement, its history entries (in order)
/// in another, everything else one change at a time. Only the order of changes to the
/// same row matters here: the tables have no foreign keys, and the one other unique
/// constraint (usernames) is checked at commit. Users are written in id order, so two
/// instances writing the same users lock their rows in the same order.
pub(super) fn apply_changes(
    tx: &mut postgres::Transaction,
    stmts: &mut Stmts,
    instance_id: &str,
    changes: &[Change],
) -> anyhow::Result<()> {
    let mut users: std::collections::BTreeMap<&str, Option<&User>> = Default::default();
    let mut history: Vec<&HistoryEntry> = Vec::new();
    for change in changes {
        match change {
            Change::PutUser(u) => {
                users.insert(&u.id, Some(u));
            }
            Change::DeleteUser(id) => {
                users.insert(id, None);
            }
            Change::AddHistory(h) => history.push(h),
            other => apply_change(tx, stmts, instance_id, other)?,
        }
    }
    for (id, _) in users.iter().filter(|(_, u)| u.is_none()) {
        let s = stmt(stmts, tx, DELETE_USER)?;
        tx.execute(&s, &[&txt(id)])?;
    }
    let puts: Vec<&User> = users.values().filter_map(|u| *u).collect();
    put_users(tx, stmts, &puts)?;
    add_history(tx, stmts, &history)
}

/// Applies one change.
fn apply_change(
    tx: &mut postgres::Transaction,
    stmts: &mut Stmts,
    instance_id: &str,
    change: &Change,
) -> anyhow::Result<()> {
    match change {
        Change::PutUser(u) => put_users(tx, stmts, &[u])?,
        Change::DeleteUser(id) => {
            let s = stmt(stmts, tx, DELETE_USER)?;
            tx.execute(&s, &[&txt(id)])?;
        }
        Change::PutToken(t) => {
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
                    &bypass,
                ],
            )?;
        }
        Change::DeleteToken(h) => {
            let s = stmt(stmts, tx, DELETE_TOKEN)?;
            tx.execute(&s, &[&txt(h)])?;
        }
        Change::PutSetting(id, v) => {
            let s = stmt(stmts, tx, PUT_SETTING)?;
            tx.execute(&s, &[&txt(id), &txt(&serde_json::to_string(v)?)])?;
        }
        Change::DeleteSetting(id) => {
            let s = stmt(stmts, tx, DELETE_SETTING)?;
            tx.execute(&s, &[&txt(id)])?;
        }
        Change::PutPermission(id, roles) => {
            let s = stmt(stmts, tx, PUT_PERMISSION)?;
            tx.execute(
                &s,
                &[&txt(id), &txt(&serde_json::to_string(roles.as_ref())?)],
            )?;
        }
        Change::DeletePermission(id) => {
            let s = stmt(stmts, tx, DELETE_PERMISSION)?;
            tx.execute(&s, &[&txt(id)])?;
        }
        Change::PutCustomStatus(c) => {
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
        Change::DeleteCustomStatus(id) => {
            let s = stmt(stmts, tx, DELETE_CUSTOM_STATUS)?;
            tx.execute(&s, &[&txt(id)])?;
        }
        Change::PutCalendarEvent(e) => {
            let s = stmt(stmts, tx, PUT_CALENDAR_EVENT)?;
            let body = serde_json::to_string(e.as_ref())?;
            tx.execute(&s, &[&txt(&e.id), &txt(&e.uid), &txt(&body)])?;
        }
        Change::DeleteCalendarEvent(id) => {
            let s = stmt(stmts, tx, DELETE_CALENDAR_EVENT)?;
            tx.execute(&s, &[&txt(id)])?;
        }
        Change::AddHistory(h) => add_history(tx, stmts, &[h])?,
        Change::PutWebhook(w) => {
            let s = stmt(stmts, tx, PUT_WEBHOOK)?;
            tx.execute(
                &s,
                &[
                    &txt(&w.id),
                    &txt(&w.url),
                    &txt(&serde_json::to_string(&w.events)?),
                    &txt(&serde_json::to_string(&w.user_ids)?),
                    &txt(&serde_json::to_string(&w.roles)?),
                    &w.active,
                    &ms(&w.created_at),
                    &ms(&w.updated_at),
                ],
            )?;
        }
        Change::DeleteWebhook(id) => {
            tx.execute("DELETE FROM webhooks WHERE id = $1", &[&txt(id)])?;
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
                &[&txt(id)],
            )?;
        }
        Change::PutWebhookSecret(id, secret) => {
            tx.execute(
                "UPDATE webhooks SET secret = $2 WHERE id = $1",
                &[&txt(id), &txt(secret)],
            )?;
        }
        Change::AddDelivery(d) => {
            let s = stmt(stmts, tx, ADD_DELIVERY)?;
            tx.execute(
                &s,
                &[
                    &txt(&d.id),
                    &txt(&d.endpoint_id),
                    &txt(&d.user_id),
                    &txt(&d.event),
                    &txt(&d.payload),
                    &ms(&d.created_at),
                ],
            )?;
        }
        Change::PutConn(user, conn, status) => {
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
        Change::DeleteConn(_, conn) => {
            let s = stmt(stmts, tx, DELETE_CONN)?;
            tx.execute(&s, &[&txt(conn)])?;
        }
    }
    Ok(())
}

/// A `tokens` row: hashed, user_id, kind, name, last_part, created_at.
fn token_from_row(r: &postgres::Row) -> anyhow::Result<Token> {
    let kind = text(r, 2)?;
    Ok(Token {
        hashed: text(r, 0)?,
        user_id: text(r, 1)?,
        kind: if kind == "personal" {
            TokenKind::Personal {
                name: opt_text(r, 3)?.unwrap_or_default(),
                last_part: opt_text(r, 4)?.unwrap_or_default(),
                bypass_two_factor: r.try_get(6)?,
            }
        } else {
            TokenKind::Login
        },
        created_at: from_ms(r.try_get(5)?),
    })
}

/// The password hashes and tokens of some users, from one consistent view.
pub(super) fn credentials(c: &mut Client, user_ids: &[String]) -> anyhow::Result<Credentials> {
    let ids: Vec<Txt> = user_ids.iter().map(|id| txt(id)).collect();
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let password_hashes = tx
        .query(
            "SELECT id, password_hash FROM users WHERE id = ANY($1::text[])",
            &[&ids],
        )?
        .iter()
        .map(|r| -> anyhow::Result<(String, Option<String>)> { Ok((text(r, 0)?, opt_text(r, 1)?)) })
        .collect::<anyhow::Result<_>>()?;
    let tokens = tx
        .query(
            "SELECT hashed, user_id, kind, name, last_part, created_at, bypass_two_factor FROM tokens
             WHERE user_id = ANY($1::text[])",
            &[&ids],
        )?
        .iter()
        .map(token_from_row)
        .collect::<anyhow::Result<_>>()?;
    tx.commit()?;
    Ok(Credentials {
        password_hashes,
        tokens,
    })
}

/// (id, JSON value) rows; a row whose value does not parse is skipped.
fn json_rows<T: serde::de::DeserializeOwned>(
    tx: &mut postgres::Transaction,
    sql: &str,
) -> anyhow::Result<Vec<(String, T)>> {
    Ok(tx
        .query(sql, &[])?
        .iter()
        .filter_map(|r| {
            let id = text(r, 0).ok()?;
            let v = text(r, 1).ok()?;
            serde_json::from_str(&v).ok().map(|v| (id, v))
        })
        .collect())
}

pub(super) fn load_all(c: &mut Client) -> anyhow::Result<Snapshot> {
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
            "SELECT hashed, user_id, kind, name, last_part, created_at, bypass_two_factor FROM tokens",
            &[],
        )?
        .iter()
        .map(token_from_row)
        .collect::<anyhow::Result<_>>()?;
    let settings = json_rows(&mut tx, "SELECT id, value FROM settings")?;
    let permissions = json_rows(&mut tx, "SELECT id, roles FROM permissions")?;
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
    let calendar_events = tx
        .query("SELECT body FROM calendar_events", &[])?
        .iter()
        .filter_map(|r| text(r, 0).ok())
        .filter_map(|b| serde_json::from_str::<CalendarEvent>(&b).ok())
        .collect();
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
    let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
    let webhooks = tx
        .query(
            "SELECT id, url, events, user_ids, roles, active, created_at, updated_at FROM webhooks",
            &[],
        )?
        .iter()
        .map(|r| -> anyhow::Result<Webhook> {
            Ok(Webhook {
                id: text(r, 0)?,
                url: text(r, 1)?,
                events: list(text(r, 2)?),
                user_ids: list(text(r, 3)?),
                roles: list(text(r, 4)?),
                active: r.try_get(5)?,
                created_at: from_ms(r.try_get(6)?),
                updated_at: from_ms(r.try_get(7)?),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    tx.commit()?;
    Ok(Snapshot {
        users,
        tokens,
        settings,
        permissions,
        custom_statuses,
        calendar_events,
        conns,
        webhooks,
    })
}

pub(super) const HISTORY_COUNT: &str =
    "SELECT COUNT(*) FROM status_history WHERE user_id = $1 AND at >= $2 AND at <= $3";
pub(super) const HISTORY_PAGE: &str =
    "SELECT id, user_id, actor_id, old_status, new_status, old_text, new_text, source, at
     FROM status_history WHERE user_id = $1 AND at >= $2 AND at <= $3
     ORDER BY at DESC, seq DESC LIMIT $4 OFFSET $5";

pub(super) fn history_page(
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
