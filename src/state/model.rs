//! The in-memory model: every user, token, setting and permission, plus the live
//! connections. Reads (auth, getStatus, presence) are served from here and never touch
//! the disk; only the writer changes it, after the store has committed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use crate::model::{CalendarEvent, ConnStatus, CustomStatus, HistoryEntry, Token, User, Webhook};
use crate::record::{Change, Snapshot};

/// What a change is about: the key of a record in the model and the transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    User(String),
    Token(String),
    Setting(String),
    Permission(String),
    /// A live realtime connection of a user: (user id, connection id).
    Conn(String, String),
    CustomStatus(String),
    CalendarEvent(String),
    /// An appended status-history entry (by its id); never read back from the model.
    History(String),
    Webhook(String),
    /// An endpoint's secret (by endpoint id); never read back from the model.
    WebhookSecret(String),
    /// An outbox delivery (by its id); never read back from the model.
    Delivery(String),
}

/// A record's value in the transaction overlay (`None` there: deleted).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    User(Arc<User>),
    Token(Arc<Token>),
    Setting(Json),
    Permission(Arc<Vec<String>>),
    Conn(ConnStatus),
    CustomStatus(Arc<CustomStatus>),
    CalendarEvent(Arc<CalendarEvent>),
    History(Arc<HistoryEntry>),
    Webhook(Arc<Webhook>),
    /// Written, never read: the secret stays out of the overlay.
    Written,
}

/// The key and the new value (None: deleted) a change writes, as the transaction
/// overlay keeps them.
pub fn entry(change: &Change) -> (Key, Option<Value>) {
    match change {
        Change::PutUser(u) => (Key::User(u.id.clone()), Some(Value::User(u.clone()))),
        Change::DeleteUser(id) => (Key::User(id.clone()), None),
        Change::PutToken(t) => (Key::Token(t.hashed.clone()), Some(Value::Token(t.clone()))),
        Change::DeleteToken(h) => (Key::Token(h.clone()), None),
        Change::PutSetting(id, v) => (Key::Setting(id.clone()), Some(Value::Setting(v.clone()))),
        Change::DeleteSetting(id) => (Key::Setting(id.clone()), None),
        Change::PutPermission(id, r) => (
            Key::Permission(id.clone()),
            Some(Value::Permission(r.clone())),
        ),
        Change::DeletePermission(id) => (Key::Permission(id.clone()), None),
        Change::PutConn(u, c, s) => (Key::Conn(u.clone(), c.clone()), Some(Value::Conn(*s))),
        Change::DeleteConn(u, c) => (Key::Conn(u.clone(), c.clone()), None),
        Change::PutCustomStatus(c) => (
            Key::CustomStatus(c.id.clone()),
            Some(Value::CustomStatus(c.clone())),
        ),
        Change::DeleteCustomStatus(id) => (Key::CustomStatus(id.clone()), None),
        Change::PutCalendarEvent(e) => (
            Key::CalendarEvent(e.id.clone()),
            Some(Value::CalendarEvent(e.clone())),
        ),
        Change::DeleteCalendarEvent(id) => (Key::CalendarEvent(id.clone()), None),
        Change::AddHistory(h) => (Key::History(h.id.clone()), Some(Value::History(h.clone()))),
        Change::PutWebhook(w) => (Key::Webhook(w.id.clone()), Some(Value::Webhook(w.clone()))),
        Change::DeleteWebhook(id) => (Key::Webhook(id.clone()), None),
        Change::PutWebhookSecret(id, _) => (Key::WebhookSecret(id.clone()), Some(Value::Written)),
        Change::AddDelivery(d) => (Key::Delivery(d.id.clone()), Some(Value::Written)),
    }
}

#[derive(Default)]
pub struct Model {
    pub users: HashMap<String, Arc<User>>,
    pub by_username: HashMap<String, String>,
    pub by_email: HashMap<String, String>,
    pub tokens: HashMap<String, Arc<Token>>,
    pub settings: HashMap<String, Json>,
    pub permissions: HashMap<String, Arc<Vec<String>>>,
    /// When this process last saw each permission change or go (`permissions.listAll
    /// ?updatedSince=`); one never seen changing counts as changed when the model was
    /// loaded, so a client asking across a restart refreshes rather than misses one.
    pub permission_times: HashMap<String, (DateTime<Utc>, bool)>,
    pub loaded_at: DateTime<Utc>,
    /// When this process last saw each setting change (`public-settings/get` with a
    /// date); one never seen changing counts as changed when the model was loaded.
    pub setting_times: HashMap<String, DateTime<Utc>>,
    pub conns: HashMap<String, HashMap<String, ConnStatus>>,
    pub custom_statuses: HashMap<String, Arc<CustomStatus>>,
    /// Calendar events by id (`calendar-events.*`).
    pub calendar_events: HashMap<String, Arc<CalendarEvent>>,
    /// (next due time in ms, event id) of every calendar event the timer still has to
    /// handle, earliest first (`CalendarEvent::next_due_ms`).
    pub calendar_due: BTreeSet<(i64, String)>,
    /// (due time in ms, user id) of every temporary status, earliest first.
    pub expiries: BTreeSet<(i64, String)>,
    /// Webhook endpoints by id (without their secrets).
    pub webhooks: HashMap<String, Arc<Webhook>>,
    /// Users with a do-not-disturb schedule (`status::dnd`).
    pub dnd_users: BTreeSet<String>,
}

impl Model {
    /// The model of a freshly loaded store.
    pub fn from_snapshot(snapshot: Snapshot) -> Model {
        let mut model = Model {
            loaded_at: Utc::now(),
            ..Model::default()
        };
        for u in snapshot.users {
            model.apply(Change::PutUser(Arc::new(u)));
        }
        for t in snapshot.tokens {
            model.tokens.insert(t.hashed.clone(), Arc::new(t));
        }
        model.settings.extend(snapshot.settings);
        for (id, roles) in snapshot.permissions {
            model.permissions.insert(id, Arc::new(roles));
        }
        for c in snapshot.custom_statuses {
            model.custom_statuses.insert(c.id.clone(), Arc::new(c));
        }
        for w in snapshot.webhooks {
            model.webhooks.insert(w.id.clone(), Arc::new(w));
        }
        for e in snapshot.calendar_events {
            model.apply(Change::PutCalendarEvent(Arc::new(e)));
        }
        for (user, conn, status) in snapshot.conns {
            model.conns.entry(user).or_default().insert(conn, status);
        }
        model
    }

    pub fn get(&self, key: &Key) -> Option<Value> {
        match key {
            Key::User(id) => self.users.get(id).cloned().map(Value::User),
            Key::Token(h) => self.tokens.get(h).cloned().map(Value::Token),
            Key::Setting(id) => self.settings.get(id).cloned().map(Value::Setting),
            Key::Permission(id) => self.permissions.get(id).cloned().map(Value::Permission),
            Key::Conn(u, c) => self
                .conns
                .get(u)
                .and_then(|m| m.get(c))
                .copied()
                .map(Value::Conn),
            Key::CustomStatus(id) => self
                .custom_statuses
                .get(id)
                .cloned()
                .map(Value::CustomStatus),
            Key::Webhook(id) => self.webhooks.get(id).cloned().map(Value::Webhook),
            Key::History(_) | Key::WebhookSecret(_) | Key::Delivery(_) => None,
            Key::CalendarEvent(id) => self
                .calendar_events
                .get(id)
                .cloned()
                .map(Value::CalendarEvent),
        }
    }

    /// Users whose temporary status is due at `now_ms`.
    pub fn due_expiries(&self, now_ms: i64) -> Vec<String> {
        self.expiries
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .map(|(_, id)| id.clone())
            .collect()
    }

    pub fn user_by_username(&self, name: &str) -> Option<Arc<User>> {
        let id = self.by_username.get(&name.to_lowercase())?;
        self.users.get(id).cloned()
    }

    pub fn user_by_email(&self, email: &str) -> Option<Arc<User>> {
        let id = self.by_email.get(&email.to_lowercase())?;
        self.users.get(id).cloned()
    }

    pub fn setting(&self, id: &str) -> Option<&Json> {
        self.settings.get(id)
    }

    /// Does any of the user's roles grant the permission?
    pub fn has_permission(&self, user: &User, permission: &str) -> bool {
        self.permissions
            .get(permission)
            .is_some_and(|roles| user.roles.iter().any(|r| roles.contains(r)))
    }

    /// When the permission `id` last changed (or went), as far as this process knows.
    pub fn permission_updated_at(&self, id: &str) -> DateTime<Utc> {
        self.permission_times
            .get(id)
            .map_or(self.loaded_at, |(at, _)| *at)
    }

    /// When the setting `id` last changed, as far as this process knows.
    pub fn setting_updated_at(&self, id: &str) -> DateTime<Utc> {
        self.setting_times
            .get(id)
            .copied()
            .unwrap_or(self.loaded_at)
    }

    /// Permissions that went after `since` (none of Rocket.Chat's defaults ever do).
    pub fn permissions_removed_since(&self, since: DateTime<Utc>) -> Vec<(&str, DateTime<Utc>)> {
        self.permission_times
            .iter()
            .filter(|(_, (at, removed))| *removed && *at > since)
            .map(|(id, (at, _))| (id.as_str(), *at))
            .collect()
    }

    /// Applies one committed change, keeping the indexes in step.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::PutUser(u) => {
                // Most writes are status changes: the username and the addresses stay,
                // and so do their index entries (callgrind, BENCHMARKS.md: re-indexing
                // cost 4 lower-cased copies and 4 hash updates, ~6k instructions a change).
                let u = match self.replace_user_in_place(u) {
                    Ok(()) => return,
                    Err(u) => u,
                };
                let id = u.id.clone();
                self.remove_user(&id);
                self.by_username
                    .insert(u.username.to_lowercase(), id.clone());
                for e in &u.emails {
                    self.by_email.insert(e.address.to_lowercase(), id.clone());
                }
                if let Some(at) = u.status_expires_at {
                    self.expiries.insert((at.timestamp_millis(), id.clone()));
                }
                if u.dnd.is_some() {
                    self.dnd_users.insert(id.clone());
                }
                self.users.insert(id, u);
            }
            Change::DeleteUser(id) => self.remove_user(&id),
            Change::PutToken(t) => {
                self.tokens.insert(t.hashed.clone(), t);
            }
            Change::DeleteToken(h) => {
                self.tokens.remove(&h);
            }
            Change::PutSetting(id, v) => {
                self.setting_times.insert(id.clone(), Utc::now());
                self.settings.insert(id, v);
            }
            Change::DeleteSetting(id) => {
                self.setting_times.insert(id.clone(), Utc::now());
                self.settings.remove(&id);
            }
            Change::PutPermission(id, p) => {
                self.permission_times
                    .insert(id.clone(), (Utc::now(), false));
                self.permissions.insert(id, p);
            }
            Change::DeletePermission(id) => {
                self.permission_times.insert(id.clone(), (Utc::now(), true));
                self.permissions.remove(&id);
            }
            Change::PutConn(u, c, s) => {
                self.conns.entry(u).or_default().insert(c, s);
            }
            Change::DeleteConn(u, c) => {
                if let Some(m) = self.conns.get_mut(&u) {
                    m.remove(&c);
                    if m.is_empty() {
                        self.conns.remove(&u);
                    }
                }
            }
            Change::PutCustomStatus(c) => {
                self.custom_statuses.insert(c.id.clone(), c);
            }
            Change::DeleteCustomStatus(id) => {
                self.custom_statuses.remove(&id);
            }
            Change::PutCalendarEvent(e) => {
                if let Some(at) = e.next_due_ms() {
                    self.calendar_due.insert((at, e.id.clone()));
                }
                if let Some(old) = self.calendar_events.insert(e.id.clone(), e.clone()) {
                    self.unschedule(&old, e.next_due_ms());
                }
            }
            Change::DeleteCalendarEvent(id) => {
                if let Some(old) = self.calendar_events.remove(&id) {
                    self.unschedule(&old, None);
                }
            }
            // History lives only in the store.
            Change::AddHistory(_) => {}
            Change::PutWebhook(w) => {
                self.webhooks.insert(w.id.clone(), w);
            }
            Change::DeleteWebhook(id) => {
                self.webhooks.remove(&id);
            }
            // Secrets and the outbox live only in the store.
            Change::PutWebhookSecret(..) | Change::AddDelivery(_) => {}
        }
    }

    /// Drops the due entry of a replaced calendar event unless the new one keeps it.
    fn unschedule(&mut self, old: &CalendarEvent, kept: Option<i64>) {
        if let Some(at) = old.next_due_ms().filter(|at| Some(*at) != kept) {
            self.calendar_due.remove(&(at, old.id.clone()));
        }
    }

    /// Calendar events the timer has something to do with at `now_ms`.
    pub fn due_calendar_events(&self, now_ms: i64) -> Vec<String> {
        self.calendar_due
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Replaces a user whose username and email addresses did not change, updating only
    /// the indexes that did (expiry, do-not-disturb). Gives the user back otherwise.
    fn replace_user_in_place(&mut self, u: Arc<User>) -> Result<(), Arc<User>> {
        let Some(old) = self.users.get(&u.id) else {
            return Err(u);
        };
        let same_keys = old.username == u.username
            && old.emails.len() == u.emails.len()
            && old
                .emails
                .iter()
                .zip(&u.emails)
                .all(|(a, b)| a.address == b.address);
        if !same_keys {
            return Err(u);
        }
        let (old_expiry, old_dnd) = (old.status_expires_at, old.dnd.is_some());
        if old_expiry != u.status_expires_at {
            if let Some(at) = old_expiry {
                self.expiries.remove(&(at.timestamp_millis(), u.id.clone()));
            }
            if let Some(at) = u.status_expires_at {
                self.expiries.insert((at.timestamp_millis(), u.id.clone()));
            }
        }
        if old_dnd != u.dnd.is_some() {
            if u.dnd.is_some() {
                self.dnd_users.insert(u.id.clone());
            } else {
                self.dnd_users.remove(&u.id);
            }
        }
        if let Some(slot) = self.users.get_mut(&u.id) {
            *slot = u;
        }
        Ok(())
    }

    /// Removes a user and its index entries.
    fn remove_user(&mut self, id: &str) {
        if let Some(old) = self.users.remove(id) {
            self.by_username.remove(&old.username.to_lowercase());
            for e in &old.emails {
                self.by_email.remove(&e.address.to_lowercase());
            }
            if let Some(at) = old.status_expires_at {
                self.expiries
                    .remove(&(at.timestamp_millis(), id.to_string()));
            }
            self.dnd_users.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Email, Status, UserKind};

    fn user(id: &str, username: &str, email: &str) -> User {
        let now = Utc::now();
        User {
            id: id.into(),
            username: username.into(),
            name: username.into(),
            bio: String::new(),
            nickname: String::new(),
            preferences: Default::default(),
            emails: vec![Email {
                address: email.into(),
                verified: false,
            }],
            password_hash: None,
            roles: vec!["user".into()],
            active: true,
            kind: UserKind::User,
            status: Status::Offline,
            status_default: Status::Online,
            status_connection: Status::Offline,
            status_text: String::new(),
            status_source: None,
            status_expires_at: None,
            status_id: None,
            previous_state: None,
            dnd: None,
            utc_offset: 0.0,
            created_at: now,
            updated_at: now,
            last_login: None,
            last_seen: None,
        }
    }

    /// The in-place path of a status change keeps every index as the full path would.
    #[test]
    fn status_changes_and_renames_keep_the_indexes_right() {
        let mut m = Model::default();
        m.apply(Change::PutUser(Arc::new(user("u1", "Alice", "a@x.io"))));
        // A status change with an expiry and a schedule: same username and address.
        let mut busy = user("u1", "Alice", "a@x.io");
        busy.status_default = Status::Busy;
        busy.status_text = "meeting".into();
        let at = Utc::now() + chrono::Duration::minutes(5);
        busy.status_expires_at = Some(at);
        busy.dnd = Some("{}".into());
        m.apply(Change::PutUser(Arc::new(busy)));
        assert_eq!(m.users["u1"].status_text, "meeting");
        assert_eq!(
            m.user_by_username("alice").map(|u| u.id.clone()),
            Some("u1".into())
        );
        assert_eq!(
            m.user_by_email("A@x.io").map(|u| u.id.clone()),
            Some("u1".into())
        );
        assert!(m
            .expiries
            .contains(&(at.timestamp_millis(), "u1".to_string())));
        assert!(m.dnd_users.contains("u1"));
        // The expiry and the schedule go again.
        m.apply(Change::PutUser(Arc::new(user("u1", "Alice", "a@x.io"))));
        assert!(m.expiries.is_empty());
        assert!(m.dnd_users.is_empty());
        // A rename and a new address take the full path: the old keys are gone.
        m.apply(Change::PutUser(Arc::new(user("u1", "Bob", "b@x.io"))));
        assert!(m.user_by_username("alice").is_none());
        assert!(m.user_by_email("a@x.io").is_none());
        assert_eq!(
            m.user_by_username("bob").map(|u| u.id.clone()),
            Some("u1".into())
        );
        assert_eq!(
            m.user_by_email("b@x.io").map(|u| u.id.clone()),
            Some("u1".into())
        );
        assert_eq!(m.users.len(), 1);
    }
}
