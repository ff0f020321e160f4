//! Changes committed by other instances (cluster mode). They arrive over NATS already
//! durable in the shared store; here they are applied to this instance's model and
//! turned into events for this instance's subscribers.
//!
//! Each instance derives what a user shows from the connections it knows of (every
//! instance learns every connection), so all instances converge on the same answer
//! even when two of them wrote the same user at once. A user record only replaces a
//! newer one it raced with if it is at least as recent (last writer wins).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::model::{Change, Key, Model, Value};
use crate::bus::StatusEvent;
use crate::model::{ConnStatus, CustomStatus, Status, Token, User};
use crate::status::presence;

/// A change as it travels between instances.
// Most changes are users' (status changes): boxing the largest variant would add an
// allocation to the common case to save bytes in the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum WireChange {
    User(String, Option<User>),
    Token(String, Option<Token>),
    Setting(String, Option<Json>),
    Permission(String, Option<Vec<String>>),
    Conn(String, String, Option<ConnStatus>),
    CustomStatus(String, Option<CustomStatus>),
}

/// What the committed changes look like on the wire (history stays in the store).
pub fn to_wire(changes: &[Change]) -> Vec<WireChange> {
    changes
        .iter()
        .filter_map(|(k, v)| {
            Some(match (k, v) {
                (Key::User(id), Some(Value::User(u))) => {
                    WireChange::User(id.clone(), Some((**u).clone()))
                }
                (Key::User(id), _) => WireChange::User(id.clone(), None),
                (Key::Token(h), Some(Value::Token(t))) => {
                    WireChange::Token(h.clone(), Some((**t).clone()))
                }
                (Key::Token(h), _) => WireChange::Token(h.clone(), None),
                (Key::Setting(id), Some(Value::Setting(j))) => {
                    WireChange::Setting(id.clone(), Some(j.clone()))
                }
                (Key::Setting(id), _) => WireChange::Setting(id.clone(), None),
                (Key::Permission(id), Some(Value::Permission(r))) => {
                    WireChange::Permission(id.clone(), Some((**r).clone()))
                }
                (Key::Permission(id), _) => WireChange::Permission(id.clone(), None),
                (Key::Conn(u, c), Some(Value::Conn(s))) => {
                    WireChange::Conn(u.clone(), c.clone(), Some(*s))
                }
                (Key::Conn(u, c), _) => WireChange::Conn(u.clone(), c.clone(), None),
                (Key::CustomStatus(id), Some(Value::CustomStatus(c))) => {
                    WireChange::CustomStatus(id.clone(), Some((**c).clone()))
                }
                (Key::CustomStatus(id), _) => WireChange::CustomStatus(id.clone(), None),
                (Key::History(_), _) => return None,
            })
        })
        .collect()
}

pub fn from_wire(w: WireChange) -> Change {
    match w {
        WireChange::User(id, u) => (Key::User(id), u.map(|u| Value::User(Arc::new(u)))),
        WireChange::Token(h, t) => (Key::Token(h), t.map(|t| Value::Token(Arc::new(t)))),
        WireChange::Setting(id, j) => (Key::Setting(id), j.map(Value::Setting)),
        WireChange::Permission(id, r) => (
            Key::Permission(id),
            r.map(|r| Value::Permission(Arc::new(r))),
        ),
        WireChange::Conn(u, c, s) => (Key::Conn(u, c), s.map(Value::Conn)),
        WireChange::CustomStatus(id, c) => (
            Key::CustomStatus(id),
            c.map(|c| Value::CustomStatus(Arc::new(c))),
        ),
    }
}

fn visible(u: &User) -> (Status, &str, Option<&str>, Option<DateTime<Utc>>) {
    (
        u.status,
        &u.status_text,
        u.status_source.as_deref(),
        u.status_expires_at,
    )
}

/// Re-derives what `uid` shows from the connections this instance knows of.
fn rederive(m: &mut Model, uid: &str) {
    let Some(user) = m.users.get(uid) else {
        return;
    };
    let conns: Vec<ConnStatus> = m
        .conns
        .get(uid)
        .map(|c| c.values().copied().collect())
        .unwrap_or_default();
    if conns.is_empty() {
        // No live connection anywhere: keep what the writer decided (a REST choice
        // shows at once; a closed last connection already wrote offline).
        return;
    }
    let conn = presence::connection_status(conns);
    let status = presence::displayed(conn, user.status_default);
    if user.status_connection != conn || user.status != status {
        let mut u = (**user).clone();
        u.status_connection = conn;
        u.status = status;
        m.users.insert(uid.to_string(), Arc::new(u));
    }
}

/// Events for every user whose visible status differs between `before` and now.
fn events_since(
    m: &Model,
    before: HashMap<String, Option<Arc<User>>>,
    now: DateTime<Utc>,
) -> Vec<StatusEvent> {
    let mut events = Vec::new();
    for (uid, old) in before {
        let Some(new) = m.users.get(&uid) else {
            continue;
        };
        let changed = match &old {
            Some(old) => visible(old) != visible(new),
            None => false,
        };
        if changed {
            events.push(StatusEvent::of(new, now));
        }
    }
    events
}

/// Applies another instance's committed changes; returns the local events they cause.
pub fn apply(m: &mut Model, changes: Vec<Change>, now: DateTime<Utc>) -> Vec<StatusEvent> {
    let mut before: HashMap<String, Option<Arc<User>>> = HashMap::new();
    for (key, value) in changes {
        let uid = match &key {
            Key::User(id) => Some(id.clone()),
            Key::Conn(u, _) => Some(u.clone()),
            _ => None,
        };
        if let Some(uid) = &uid {
            before
                .entry(uid.clone())
                .or_insert_with(|| m.users.get(uid).cloned());
        }
        if let (Key::User(id), Some(Value::User(new))) = (&key, &value) {
            if m.users
                .get(id)
                .is_some_and(|cur| cur.updated_at > new.updated_at)
            {
                continue;
            }
        }
        m.apply((key, value));
    }
    for uid in before.keys() {
        rederive(m, uid);
    }
    events_since(m, before, now)
}

/// Replaces the model with one freshly loaded from the store (after a gap in the
/// NATS feed); returns the events for what changed meanwhile.
pub fn resync(m: &mut Model, fresh: Model, now: DateTime<Utc>) -> Vec<StatusEvent> {
    let before: HashMap<String, Option<Arc<User>>> = m
        .users
        .iter()
        .map(|(id, u)| (id.clone(), Some(u.clone())))
        .collect();
    *m = fresh;
    let ids: Vec<String> = m.users.keys().cloned().collect();
    for uid in &ids {
        rederive(m, uid);
    }
    events_since(m, before, now)
}
