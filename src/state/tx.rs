//! A write transaction as the writer runs it: reads see the committed model plus what
//! earlier jobs of the same batch wrote; writes are logged in order for the store. A job
//! that fails is rolled back to where it began, so a failed request changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde_json::Value as Json;

use super::model::{entry, Key, Model, Value};
use crate::auth::defaults;
use crate::bus::StatusEvent;
use crate::model::{
    CalendarEvent, ConnStatus, CustomStatus, HistoryEntry, Token, User, UserKind, Webhook,
};
use crate::record::Change;

pub struct Tx<'a> {
    model: &'a RwLock<Model>,
    overlay: HashMap<Key, Option<Value>>,
    /// (key, what the overlay held before) for rollback.
    undo: Vec<(Key, Option<Option<Value>>)>,
    pub(super) changes: Vec<Change>,
    pub(super) events: Vec<StatusEvent>,
    /// Why claims went away in a user write: (index of the write in `changes`, the
    /// reason, `status::claims::ending_reason`), for the outbox's `claim.ended`.
    pub(super) claim_reasons: Vec<(usize, &'static str)>,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Copy)]
pub struct Mark {
    undo: usize,
    changes: usize,
    events: usize,
    claim_reasons: usize,
}

impl<'a> Tx<'a> {
    pub fn new(model: &'a RwLock<Model>) -> Tx<'a> {
        Tx {
            model,
            overlay: HashMap::new(),
            undo: Vec::new(),
            changes: Vec::new(),
            events: Vec::new(),
            claim_reasons: Vec::new(),
            now: Utc::now(),
        }
    }

    pub fn mark(&self) -> Mark {
        Mark {
            undo: self.undo.len(),
            changes: self.changes.len(),
            events: self.events.len(),
            claim_reasons: self.claim_reasons.len(),
        }
    }

    pub fn rollback(&mut self, mark: Mark) {
        while self.undo.len() > mark.undo {
            if let Some((key, before)) = self.undo.pop() {
                match before {
                    Some(v) => self.overlay.insert(key, v),
                    None => self.overlay.remove(&key),
                };
            }
        }
        self.changes.truncate(mark.changes);
        self.events.truncate(mark.events);
        self.claim_reasons.truncate(mark.claim_reasons);
    }

    /// Reads a key: this batch's write if any, else the committed model.
    pub fn get(&self, key: &Key) -> Option<Value> {
        match self.overlay.get(key) {
            Some(v) => v.clone(),
            None => self.model.read().get(key),
        }
    }

    /// Writes one change, seen by this batch's later reads at once.
    fn put(&mut self, change: Change) {
        let (key, value) = entry(&change);
        let before = self.overlay.insert(key.clone(), value);
        self.undo.push((key, before));
        self.changes.push(change);
    }

    pub fn user(&self, id: &str) -> Option<Arc<User>> {
        match self.get(&Key::User(id.to_string())) {
            Some(Value::User(u)) => Some(u),
            _ => None,
        }
    }

    /// Looks a user up by username, ignoring case, seeing this batch's writes.
    pub fn user_by_username(&self, name: &str) -> Option<Arc<User>> {
        let lower = name.to_lowercase();
        self.find_user(
            |u| u.username.to_lowercase() == lower,
            |m| m.user_by_username(name),
        )
    }

    pub fn user_by_email(&self, email: &str) -> Option<Arc<User>> {
        let lower = email.to_lowercase();
        self.find_user(
            |u| u.emails.iter().any(|e| e.address.to_lowercase() == lower),
            |m| m.user_by_email(email),
        )
    }

    fn find_user(
        &self,
        matches: impl Fn(&User) -> bool,
        committed: impl Fn(&Model) -> Option<Arc<User>>,
    ) -> Option<Arc<User>> {
        for (k, v) in &self.overlay {
            if let (Key::User(_), Some(Value::User(u))) = (k, v) {
                if matches(u) {
                    return Some(u.clone());
                }
            }
        }
        let found = committed(&self.model.read())?;
        // The committed match may have been renamed or deleted earlier in this batch.
        match self.overlay.get(&Key::User(found.id.clone())) {
            Some(Some(Value::User(u))) if matches(u) => Some(u.clone()),
            Some(_) => None,
            None => Some(found),
        }
    }

    /// Writes a user and records a status event when what others see changed.
    pub fn put_user(&mut self, user: User) {
        let before = self.user(&user.id);
        let privacy_changed = before
            .as_ref()
            .is_some_and(|b| crate::status::privacy::differs(b, &user));
        let visible_change = match &before {
            None => false,
            Some(b) => {
                b.status != user.status
                    || b.status_text != user.status_text
                    || b.status_source != user.status_source
                    || b.status_expires_at != user.status_expires_at
                    // Whom the status is hidden from changed: announced again, so
                    // each watcher sees it as they now may (`crate::privacy`).
                    || privacy_changed
            }
        };
        if visible_change {
            self.events.push(StatusEvent {
                privacy_changed,
                ..StatusEvent::of(&user, self.now)
            });
        }
        self.put(Change::PutUser(Arc::new(user)));
    }

    /// Writes a user after a claim operation: like `put_user`, noting why any claim
    /// the write removes went away (`status::claims::ending_reason`).
    pub fn put_user_after_claim(&mut self, user: User, reason: &'static str) {
        self.claim_reasons.push((self.changes.len(), reason));
        self.put_user(user);
    }

    /// Deletes a user and their calendar events.
    pub fn delete_user(&mut self, id: &str) {
        for e in self.calendar_events_of(id) {
            self.put(Change::DeleteCalendarEvent(e.id.clone()));
        }
        self.put(Change::DeleteUser(id.to_string()));
    }

    /// Is there any human user (not a bot), committed or written in this batch?
    pub fn has_human_user(&self) -> bool {
        let human = |u: &User| u.kind == UserKind::User;
        let written = self.overlay.iter().any(|(k, v)| match (k, v) {
            (Key::User(_), Some(Value::User(u))) => human(u),
            _ => false,
        });
        written
            || self.model.read().users.iter().any(|(id, u)| {
                human(u)
                    && match self.overlay.get(&Key::User(id.clone())) {
                        Some(Some(Value::User(now))) => human(now),
                        Some(_) => false,
                        None => true,
                    }
            })
    }

    /// How many active admins there are besides `id` (to keep at least one).
    pub fn admins_except(&self, id: &str) -> usize {
        let is_admin = |u: &User| u.active && u.has_role(defaults::ADMIN);
        let mut ids: std::collections::HashSet<String> = self
            .model
            .read()
            .users
            .values()
            .filter(|u| is_admin(u))
            .map(|u| u.id.clone())
            .collect();
        for (k, v) in &self.overlay {
            if let Key::User(uid) = k {
                match v {
                    Some(Value::User(u)) if is_admin(u) => ids.insert(uid.clone()),
                    _ => ids.remove(uid),
                };
            }
        }
        ids.remove(id);
        ids.len()
    }

    pub fn put_token(&mut self, token: Token) {
        self.put(Change::PutToken(Arc::new(token)));
    }

    pub fn delete_token(&mut self, hashed: &str) {
        self.put(Change::DeleteToken(hashed.to_string()));
    }

    /// Every token of a user, committed or written in this batch.
    pub fn user_tokens(&self, user_id: &str) -> Vec<Arc<Token>> {
        let mut out: HashMap<String, Arc<Token>> = self
            .model
            .read()
            .tokens
            .values()
            .filter(|t| t.user_id == user_id)
            .map(|t| (t.hashed.clone(), t.clone()))
            .collect();
        for (k, v) in &self.overlay {
            if let Key::Token(h) = k {
                match v {
                    Some(Value::Token(t)) if t.user_id == user_id => {
                        out.insert(h.clone(), t.clone());
                    }
                    _ => {
                        out.remove(h);
                    }
                }
            }
        }
        out.into_values().collect()
    }

    pub fn setting(&self, id: &str) -> Option<Json> {
        match self.get(&Key::Setting(id.to_string())) {
            Some(Value::Setting(v)) => Some(v),
            _ => None,
        }
    }

    /// The value of `setting` as this transaction sees it, typed (the default when unset).
    pub fn value<S: crate::settings::Typed>(&self, setting: &S) -> S::Out {
        setting.read(self.setting(setting.definition().id).as_ref())
    }

    pub fn put_setting(&mut self, id: &str, value: Json) {
        self.put(Change::PutSetting(id.to_string(), value));
    }

    pub fn permission_roles(&self, id: &str) -> Option<Arc<Vec<String>>> {
        match self.get(&Key::Permission(id.to_string())) {
            Some(Value::Permission(p)) => Some(p),
            _ => None,
        }
    }

    pub fn put_permission(&mut self, id: &str, roles: Vec<String>) {
        self.put(Change::PutPermission(id.to_string(), Arc::new(roles)));
    }

    /// The statuses of a user's live connections, committed or written in this batch.
    pub fn connections(&self, user_id: &str) -> Vec<ConnStatus> {
        let mut conns: HashMap<String, ConnStatus> = self
            .model
            .read()
            .conns
            .get(user_id)
            .cloned()
            .unwrap_or_default();
        for (k, v) in &self.overlay {
            if let Key::Conn(u, c) = k {
                if u == user_id {
                    match v {
                        Some(Value::Conn(s)) => {
                            conns.insert(c.clone(), *s);
                        }
                        _ => {
                            conns.remove(c);
                        }
                    }
                }
            }
        }
        conns.into_values().collect()
    }

    pub fn custom_status(&self, id: &str) -> Option<Arc<CustomStatus>> {
        match self.get(&Key::CustomStatus(id.to_string())) {
            Some(Value::CustomStatus(c)) => Some(c),
            _ => None,
        }
    }

    /// Every custom status, committed or written in this batch.
    pub fn custom_statuses(&self) -> Vec<Arc<CustomStatus>> {
        let mut all: HashMap<String, Arc<CustomStatus>> = self.model.read().custom_statuses.clone();
        for (k, v) in &self.overlay {
            if let Key::CustomStatus(id) = k {
                match v {
                    Some(Value::CustomStatus(c)) => {
                        all.insert(id.clone(), c.clone());
                    }
                    _ => {
                        all.remove(id);
                    }
                }
            }
        }
        all.into_values().collect()
    }

    pub fn put_custom_status(&mut self, id: &str, status: Option<CustomStatus>) {
        self.put(match status {
            Some(c) => Change::PutCustomStatus(Arc::new(c)),
            None => Change::DeleteCustomStatus(id.to_string()),
        });
    }

    pub fn calendar_event(&self, id: &str) -> Option<Arc<CalendarEvent>> {
        match self.get(&Key::CalendarEvent(id.to_string())) {
            Some(Value::CalendarEvent(e)) => Some(e),
            _ => None,
        }
    }

    /// The calendar events of `uid`, committed or written in this batch.
    pub fn calendar_events_of(&self, uid: &str) -> Vec<Arc<CalendarEvent>> {
        let mut all: HashMap<String, Arc<CalendarEvent>> = self
            .model
            .read()
            .calendar_events
            .iter()
            .filter(|(_, e)| e.uid == uid)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for (k, v) in &self.overlay {
            if let Key::CalendarEvent(id) = k {
                match v {
                    Some(Value::CalendarEvent(e)) if e.uid == uid => {
                        all.insert(id.clone(), e.clone());
                    }
                    _ => {
                        all.remove(id);
                    }
                }
            }
        }
        all.into_values().collect()
    }

    pub fn put_calendar_event(&mut self, id: &str, event: Option<CalendarEvent>) {
        self.put(match event {
            Some(e) => Change::PutCalendarEvent(Arc::new(e)),
            None => Change::DeleteCalendarEvent(id.to_string()),
        });
    }

    /// Appends a status-history entry.
    pub fn record(&mut self, entry: HistoryEntry) {
        self.put(Change::AddHistory(Arc::new(entry)));
    }

    pub fn put_conn(&mut self, user_id: &str, conn_id: &str, status: Option<ConnStatus>) {
        let (user, conn) = (user_id.to_string(), conn_id.to_string());
        self.put(match status {
            Some(s) => Change::PutConn(user, conn, s),
            None => Change::DeleteConn(user, conn),
        });
    }

    pub fn webhook(&self, id: &str) -> Option<Arc<Webhook>> {
        match self.get(&Key::Webhook(id.to_string())) {
            Some(Value::Webhook(w)) => Some(w),
            _ => None,
        }
    }

    /// Every webhook endpoint, committed or written in this batch.
    pub fn webhooks(&self) -> Vec<Arc<Webhook>> {
        let mut all: HashMap<String, Arc<Webhook>> = self.model.read().webhooks.clone();
        for (k, v) in &self.overlay {
            if let Key::Webhook(id) = k {
                match v {
                    Some(Value::Webhook(w)) => {
                        all.insert(id.clone(), w.clone());
                    }
                    _ => {
                        all.remove(id);
                    }
                }
            }
        }
        all.into_values().collect()
    }

    pub fn put_webhook(&mut self, webhook: Webhook) {
        self.put(Change::PutWebhook(Arc::new(webhook)));
    }

    pub fn delete_webhook(&mut self, id: &str) {
        self.put(Change::DeleteWebhook(id.to_string()));
    }

    /// Writes an endpoint's signing secret (the store keeps it; the model never does).
    pub fn put_webhook_secret(&mut self, id: &str, secret: String) {
        self.put(Change::PutWebhookSecret(id.to_string(), secret));
    }
}
