//! Changes committed by other instances (cluster mode). They arrive over NATS already
//! durable in the shared store; here they are applied to this instance's model and
//! turned into events for this instance's subscribers.
//!
//! Each instance derives what a user shows from the connections it knows of (every
//! instance learns every connection), so all instances converge on the same answer
//! even when two of them wrote the same user at once. A user record only replaces a
//! newer one it raced with if it is at least as recent (last writer wins).
//!
//! A user record whose only differences from the one before it are in its status part
//! (a status change, a claim, a connection event, an expiry, last seen) travels as that
//! part alone (`WireChange::Status`; `account` and `StatusPart::of` say which field is
//! in which part): every instance
//! must store every user's status, but not receive the whole record again for it. The
//! receiver completes the part with the record it has, which must be the one the part
//! was made from (the part carries a fingerprint of its account part); when it has no
//! such record (a user it does not know yet, or one it has in another version after a
//! race), it cannot apply the part and reloads its model from the store instead
//! (`Unapplied`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::model::Model;
use super::notices;
use crate::bus::notice::Notice;
use crate::bus::StatusEvent;
use crate::model::{
    CalendarEvent, ConnStatus, CustomStatus, Email, PreviousState, Status, User, UserKind, Webhook,
};
use crate::record::Change;
use crate::status::presence;
use crate::store::Credentials;

/// A change as it travels between instances. No secret travels: a user goes without
/// its password hash, and tokens (whose key is the token's hash) not at all; a change
/// to either is announced as `Credentials(user id)`, and each instance re-reads that
/// user's password hash and tokens from the shared store.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum WireChange {
    /// A user, `password_hash` always None (the receiver keeps the one it has).
    User(String, Option<Box<User>>),
    /// A user record that differs from the one before it only in its status part: that
    /// part alone. Instances of versions before it cannot read a message holding one.
    Status(String, Box<StatusPart>),
    Setting(String, Option<Json>),
    Permission(String, Option<Vec<String>>),
    Conn(String, String, Option<ConnStatus>),
    CustomStatus(String, Option<CustomStatus>),
    CalendarEvent(String, Option<Box<CalendarEvent>>),
    /// The password hash or the tokens of this user changed: read them from the store.
    Credentials(String),
    /// A webhook endpoint (its secret stays in the store).
    Webhook(String, Option<Box<Webhook>>),
}

/// What the committed changes look like on the wire (history stays in the store).
/// `before` is the model as it was before these changes, to tell which users'
/// credentials changed.
pub fn to_wire(changes: &[Change], before: &Model) -> Vec<WireChange> {
    let mut out = Vec::with_capacity(changes.len());
    let mut credentials: Vec<String> = Vec::new();
    let mut credential = |uid: &str| {
        if !credentials.iter().any(|c| c == uid) {
            credentials.push(uid.to_string());
        }
    };
    // Each user's record as the receivers will have it so far: written earlier in this
    // batch (None: deleted in it), else as before it.
    let mut so_far: HashMap<&str, Option<&User>> = HashMap::new();
    for change in changes {
        out.push(match change {
            Change::PutUser(u) => {
                let had = before
                    .users
                    .get(&u.id)
                    .and_then(|o| o.password_hash.as_ref());
                if had != u.password_hash.as_ref() {
                    credential(&u.id);
                }
                let base = match so_far.get(u.id.as_str()) {
                    Some(earlier) => *earlier,
                    None => before.users.get(&u.id).map(|b| &**b),
                };
                so_far.insert(&u.id, Some(&**u));
                match base {
                    Some(base) if account(base) == account(u) => {
                        WireChange::Status(u.id.clone(), Box::new(StatusPart::of(u)))
                    }
                    _ => {
                        let mut u = (**u).clone();
                        u.password_hash = None;
                        WireChange::User(u.id.clone(), Some(Box::new(u)))
                    }
                }
            }
            Change::DeleteUser(id) => {
                so_far.insert(id, None);
                WireChange::User(id.clone(), None)
            }
            Change::PutToken(t) => {
                credential(&t.user_id);
                continue;
            }
            Change::DeleteToken(h) => {
                // A token both made and dropped in this batch was never announced.
                if let Some(t) = before.tokens.get(h) {
                    credential(&t.user_id);
                }
                continue;
            }
            Change::PutSetting(id, j) => WireChange::Setting(id.clone(), Some(j.clone())),
            Change::DeleteSetting(id) => WireChange::Setting(id.clone(), None),
            Change::PutPermission(id, r) => WireChange::Permission(id.clone(), Some((**r).clone())),
            Change::DeletePermission(id) => WireChange::Permission(id.clone(), None),
            Change::PutConn(u, c, s) => WireChange::Conn(u.clone(), c.clone(), Some(*s)),
            Change::DeleteConn(u, c) => WireChange::Conn(u.clone(), c.clone(), None),
            Change::PutCustomStatus(c) => {
                WireChange::CustomStatus(c.id.clone(), Some((**c).clone()))
            }
            Change::DeleteCustomStatus(id) => WireChange::CustomStatus(id.clone(), None),
            Change::PutWebhook(w) => {
                WireChange::Webhook(w.id.clone(), Some(Box::new((**w).clone())))
            }
            Change::DeleteWebhook(id) => WireChange::Webhook(id.clone(), None),
            // History, secrets and the outbox stay in the store.
            Change::AddHistory(_) | Change::PutWebhookSecret(..) | Change::AddDelivery(_) => {
                continue
            }
            Change::PutCalendarEvent(e) => {
                WireChange::CalendarEvent(e.id.clone(), Some(Box::new((**e).clone())))
            }
            Change::DeleteCalendarEvent(id) => WireChange::CalendarEvent(id.clone(), None),
        });
    }
    // Last: the users they belong to are in the model by then.
    out.extend(credentials.into_iter().map(WireChange::Credentials));
    out
}

/// The users whose credentials a received batch says changed.
pub fn credential_users(batch: &[WireChange]) -> Vec<String> {
    let mut seen = HashSet::new();
    batch
        .iter()
        .filter_map(|w| match w {
            WireChange::Credentials(uid) if seen.insert(uid.as_str()) => Some(uid.clone()),
            _ => None,
        })
        .collect()
}

/// A received change as a model change (`Credentials` are applied separately).
fn from_wire(w: WireChange, m: &Model) -> Option<Change> {
    Some(match w {
        WireChange::User(id, Some(mut u)) => {
            // Hashes never travel: keep the one this instance knows; a changed one
            // arrives through `Credentials`. The record's id is the one it travelled
            // under.
            u.password_hash = m.users.get(&id).and_then(|o| o.password_hash.clone());
            u.id = id;
            Change::PutUser(Arc::new(*u))
        }
        WireChange::User(id, None) => Change::DeleteUser(id),
        WireChange::Setting(id, Some(j)) => Change::PutSetting(id, j),
        WireChange::Setting(id, None) => Change::DeleteSetting(id),
        WireChange::Permission(id, Some(r)) => Change::PutPermission(id, Arc::new(r)),
        WireChange::Permission(id, None) => Change::DeletePermission(id),
        WireChange::Conn(u, c, Some(s)) => Change::PutConn(u, c, s),
        WireChange::Conn(u, c, None) => Change::DeleteConn(u, c),
        WireChange::CustomStatus(id, Some(mut c)) => {
            c.id = id;
            Change::PutCustomStatus(Arc::new(c))
        }
        WireChange::CustomStatus(id, None) => Change::DeleteCustomStatus(id),
        WireChange::Webhook(id, Some(mut w)) => {
            w.id = id;
            Change::PutWebhook(Arc::new(*w))
        }
        WireChange::Webhook(id, None) => Change::DeleteWebhook(id),
        WireChange::CalendarEvent(id, Some(mut e)) => {
            e.id = id;
            Change::PutCalendarEvent(Arc::new(*e))
        }
        WireChange::CalendarEvent(id, None) => Change::DeleteCalendarEvent(id),
        // Completed by `apply_peer` with the record it is a part of.
        WireChange::Credentials(_) | WireChange::Status(..) => return None,
    })
}

/// The status part of a user record: every field a status change, a claim
/// (`status::claims`), a connection event, an expiry or last seen can change
/// (`change.rs`), and nothing secret. Short names: it is what most cluster messages
/// carry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StatusPart {
    #[serde(rename = "s")]
    pub status: Status,
    #[serde(rename = "d")]
    pub status_default: Status,
    #[serde(rename = "c")]
    pub status_connection: Status,
    #[serde(rename = "t", default, skip_serializing_if = "String::is_empty")]
    pub status_text: String,
    #[serde(rename = "src", default, skip_serializing_if = "Option::is_none")]
    pub status_source: Option<String>,
    #[serde(rename = "exp", default, skip_serializing_if = "Option::is_none")]
    pub status_expires_at: Option<DateTime<Utc>>,
    #[serde(rename = "id", default, skip_serializing_if = "Option::is_none")]
    pub status_id: Option<String>,
    #[serde(rename = "prev", default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<PreviousState>,
    #[serde(rename = "seen", default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(rename = "at")]
    pub updated_at: DateTime<Utc>,
    /// `fingerprint` of the account part of the record this part belongs to: the
    /// receiver applies the part only onto a record with the same account part.
    #[serde(rename = "acct")]
    pub account: u64,
}

/// The part of a user record that is not its status, borrowed: names, emails, roles,
/// preferences, the do-not-disturb schedule, ...
#[derive(PartialEq, Debug)]
pub struct Account<'a> {
    username: &'a str,
    name: &'a str,
    bio: &'a str,
    nickname: &'a str,
    preferences: &'a serde_json::Map<String, Json>,
    emails: &'a [Email],
    roles: &'a [String],
    active: bool,
    kind: UserKind,
    dnd: Option<&'a str>,
    utc_offset: f64,
    created_at: DateTime<Utc>,
    last_login: Option<DateTime<Utc>>,
}

/// The account part of `u`: what decides whether a change of `u` travels as its status
/// part alone (the account parts before and after are equal). Every field of `User` is
/// named here and in `StatusPart::of` (no `..`): a field added to `User` does not
/// compile until it is put in one of the two parts.
pub fn account(u: &User) -> Account<'_> {
    let User {
        // The key the record travels under.
        id: _,
        // Never travels; a change of it is announced as `Credentials`.
        password_hash: _,
        username,
        name,
        bio,
        nickname,
        preferences,
        emails,
        roles,
        active,
        kind,
        dnd,
        utc_offset,
        created_at,
        last_login,
        // The status part (`StatusPart`).
        status: _,
        status_default: _,
        status_connection: _,
        status_text: _,
        status_source: _,
        status_expires_at: _,
        status_id: _,
        previous_state: _,
        last_seen: _,
        updated_at: _,
    } = u;
    Account {
        username,
        name,
        bio,
        nickname,
        preferences,
        emails,
        roles,
        active: *active,
        kind: *kind,
        dnd: dnd.as_deref(),
        utc_offset: *utc_offset,
        created_at: *created_at,
        last_login: *last_login,
    }
}

/// A 64-bit FNV-1a hash of `u`'s account part, the same on every instance (of one
/// version) holding the same account part: times to the millisecond (what the stores
/// keep), a preference object's keys in order. Not a secret and not a seal (the message
/// is sealed as a whole); it only tells a receiver whether the record it holds is the
/// one a status part was made from.
pub fn fingerprint(u: &User) -> u64 {
    struct Fnv(u64);
    impl Fnv {
        fn bytes(&mut self, buf: &[u8]) {
            for b in buf {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        fn num(&mut self, n: u64) {
            self.bytes(&n.to_le_bytes());
        }
        fn str(&mut self, s: &str) {
            self.num(s.len() as u64);
            self.bytes(s.as_bytes());
        }
        fn time(&mut self, t: Option<DateTime<Utc>>) {
            self.num(t.map_or(u64::MAX, |t| t.timestamp_millis() as u64));
        }
        /// An object's members in key order (the order it was built in may differ).
        fn object(&mut self, o: &serde_json::Map<String, Json>) {
            let mut members: Vec<(&String, &Json)> = o.iter().collect();
            members.sort_by_key(|(k, _)| *k);
            self.bytes(b"{");
            self.num(members.len() as u64);
            for (k, v) in members {
                self.str(k);
                self.json(v);
            }
        }
        fn json(&mut self, v: &Json) {
            match v {
                Json::Object(o) => self.object(o),
                Json::Array(a) => {
                    self.bytes(b"[");
                    self.num(a.len() as u64);
                    a.iter().for_each(|v| self.json(v));
                }
                // Scalars as JSON text: a number is written the same by every instance.
                other => self.str(&other.to_string()),
            }
        }
    }
    let Account {
        username,
        name,
        bio,
        nickname,
        preferences,
        emails,
        roles,
        active,
        kind,
        dnd,
        utc_offset,
        created_at,
        last_login,
    } = account(u);
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for s in [username, name, bio, nickname] {
        h.str(s);
    }
    h.object(preferences);
    h.num(emails.len() as u64);
    for e in emails {
        h.str(&e.address);
        h.num(u64::from(e.verified));
    }
    h.num(roles.len() as u64);
    for r in roles {
        h.str(r);
    }
    h.num(u64::from(active));
    h.str(kind.as_str());
    match dnd {
        Some(d) => h.str(d),
        None => h.num(u64::MAX),
    }
    h.num(utc_offset.to_bits());
    h.time(Some(created_at));
    h.time(last_login);
    h.0
}

impl StatusPart {
    /// The status part of `u` (see `account` for the other part).
    pub fn of(u: &User) -> StatusPart {
        let User {
            id: _,
            password_hash: _,
            // The account part (`account`).
            username: _,
            name: _,
            bio: _,
            nickname: _,
            preferences: _,
            emails: _,
            roles: _,
            active: _,
            kind: _,
            dnd: _,
            utc_offset: _,
            created_at: _,
            last_login: _,
            status,
            status_default,
            status_connection,
            status_text,
            status_source,
            status_expires_at,
            status_id,
            previous_state,
            last_seen,
            updated_at,
        } = u;
        StatusPart {
            status: *status,
            status_default: *status_default,
            status_connection: *status_connection,
            status_text: status_text.clone(),
            status_source: status_source.clone(),
            status_expires_at: *status_expires_at,
            status_id: status_id.clone(),
            previous_state: previous_state.clone(),
            last_seen: *last_seen,
            updated_at: *updated_at,
            account: fingerprint(u),
        }
    }

    /// `base` with this status part in place of its own.
    fn onto(self, base: &User) -> User {
        let StatusPart {
            status,
            status_default,
            status_connection,
            status_text,
            status_source,
            status_expires_at,
            status_id,
            previous_state,
            last_seen,
            updated_at,
            account: _,
        } = self;
        User {
            status,
            status_default,
            status_connection,
            status_text,
            status_source,
            status_expires_at,
            status_id,
            previous_state,
            last_seen,
            updated_at,
            ..base.clone()
        }
    }
}

/// Status parts of a peer's batch this instance could not apply: for a user it does not
/// know (a clustered NATS does not order the messages of different publishers, so a
/// part can come before the record it belongs to), or whose account part here is not
/// the one the part was made from (an account change raced it). The instance then
/// reloads its model from the store, which holds both (`bus::nats`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unapplied {
    pub unknown_user: u64,
    pub account_differs: u64,
}

impl Unapplied {
    pub fn any(&self) -> bool {
        self.unknown_user + self.account_differs > 0
    }
}

/// Where a writer reports the parts it could not apply (cluster mode: the NATS link,
/// which counts them and has the model reloaded); None: nowhere.
pub type Resync = Option<tokio::sync::mpsc::UnboundedSender<Unapplied>>;

/// Puts the credentials read from the store for `users` in place of what the model
/// holds. When they could not be read, fails closed: those users' tokens stop working
/// here and their password is unknown until the next reload from the store.
fn apply_credentials(m: &mut Model, users: &[String], read: anyhow::Result<Credentials>) {
    let read = match read {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(
                "re-reading the credentials of {} users changed on another instance failed; \
                 they must log in again on this instance: {e:#}",
                users.len()
            );
            Credentials::default()
        }
    };
    let wanted: HashSet<&str> = users.iter().map(String::as_str).collect();
    m.tokens.retain(|_, t| !wanted.contains(t.user_id.as_str()));
    for t in read.tokens {
        if wanted.contains(t.user_id.as_str()) {
            m.tokens.insert(t.hashed.clone(), Arc::new(t));
        }
    }
    let hashes: HashMap<String, Option<String>> = read.password_hashes.into_iter().collect();
    for uid in users {
        if let Some(u) = m.users.get(uid) {
            let hash = hashes.get(uid).cloned().flatten();
            if u.password_hash != hash {
                let mut u = (**u).clone();
                u.password_hash = hash;
                m.users.insert(uid.clone(), Arc::new(u));
            }
        }
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
        let privacy_changed = old
            .as_ref()
            .is_some_and(|old| crate::status::privacy::differs(old, new));
        let changed = match &old {
            Some(old) => visible(old) != visible(new) || privacy_changed,
            None => false,
        };
        if changed {
            events.push(StatusEvent {
                privacy_changed,
                ..StatusEvent::of(new, now)
            });
        }
    }
    events
}

/// Applies a batch another instance committed; `credentials` is what the store holds
/// for the users of its `Credentials` entries (`credential_users`), read in the
/// writer's order. Returns the local events the batch causes.
/// The status parts it cannot apply are reported to `resync`.
pub fn apply_peer(
    m: &mut Model,
    batch: Vec<WireChange>,
    credentials: anyhow::Result<Credentials>,
    now: DateTime<Utc>,
    resync: &Resync,
) -> Announced {
    let users = credential_users(&batch);
    let mut unapplied = Unapplied::default();
    // Each user's record as the sender had it so far in this batch (None: deleted).
    let mut so_far: HashMap<String, Option<Arc<User>>> = HashMap::new();
    let mut changes: Vec<Change> = Vec::with_capacity(batch.len());
    for w in batch {
        let change = match w {
            WireChange::Status(uid, part) => {
                let earlier = so_far.get(&uid).cloned();
                let Some(base) = earlier
                    .clone()
                    .unwrap_or_else(|| m.users.get(&uid).cloned())
                else {
                    unapplied.unknown_user += 1;
                    continue;
                };
                // A record written earlier in the batch is the one the part was made from.
                if earlier.is_none() && fingerprint(&base) != part.account {
                    // Older than the record here: last writer wins, as for a whole one.
                    if base.updated_at <= part.updated_at {
                        unapplied.account_differs += 1;
                    }
                    continue;
                }
                let mut u = part.onto(&base);
                u.id = uid;
                Change::PutUser(Arc::new(u))
            }
            other => match from_wire(other, m) {
                Some(c) => c,
                None => continue,
            },
        };
        match &change {
            Change::PutUser(u) => {
                so_far.insert(u.id.clone(), Some(u.clone()));
            }
            Change::DeleteUser(id) => {
                so_far.insert(id.clone(), None);
            }
            _ => {}
        }
        changes.push(change);
    }
    if unapplied.any() {
        if let Some(tx) = resync {
            let _ = tx.send(unapplied);
        }
    }
    let events = apply(m, changes, now);
    if !users.is_empty() {
        apply_credentials(m, &users, credentials);
    }
    events
}

/// What applying changes made elsewhere causes here: status events and the other
/// notices (`state::notices`).
pub type Announced = (Vec<StatusEvent>, Vec<Notice>);

/// Applies changes committed elsewhere (another instance, another process); returns
/// the local events and notices they cause.
pub fn apply(m: &mut Model, changes: Vec<Change>, now: DateTime<Utc>) -> Announced {
    let changes = newest_only(m, changes);
    let notices = notices::derive(&changes, m, now);
    let mut before: HashMap<String, Option<Arc<User>>> = HashMap::new();
    for change in changes {
        if let Some(uid) = change.user_id() {
            before
                .entry(uid.to_string())
                .or_insert_with(|| m.users.get(uid).cloned());
        }
        m.apply(change);
    }
    for uid in before.keys() {
        rederive(m, uid);
    }
    (events_since(m, before, now), notices)
}

/// The changes without the user records older than the one they would replace (last
/// writer wins), judged as if applied in order; so the notices derived from them
/// announce only what is applied.
fn newest_only(m: &Model, changes: Vec<Change>) -> Vec<Change> {
    // The `updated_at` each user has so far in the batch (None: deleted in it).
    let mut seen: HashMap<String, Option<DateTime<Utc>>> = HashMap::new();
    changes
        .into_iter()
        .filter(|change| match change {
            Change::PutUser(new) => {
                let current = match seen.get(&new.id) {
                    Some(at) => *at,
                    None => m.users.get(&new.id).map(|u| u.updated_at),
                };
                if current.is_some_and(|cur| cur > new.updated_at) {
                    return false;
                }
                seen.insert(new.id.clone(), Some(new.updated_at));
                true
            }
            Change::DeleteUser(id) => {
                seen.insert(id.clone(), None);
                true
            }
            _ => true,
        })
        .collect()
}

/// Replaces the model with one freshly loaded from the store (after a gap in the
/// NATS feed); returns the events for what changed meanwhile.
pub fn resync(m: &mut Model, fresh: Model, now: DateTime<Utc>) -> Announced {
    let notices = notices::between(m, &fresh, now);
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
    (events_since(m, before, now), notices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Token, TokenKind};
    use crate::store::fixtures::{t, user};

    fn token(hashed: &str, user_id: &str) -> Token {
        Token {
            hashed: hashed.into(),
            user_id: user_id.into(),
            kind: TokenKind::Login,
            created_at: t(1),
        }
    }

    fn put_user(u: User) -> Change {
        Change::PutUser(Arc::new(u))
    }

    #[test]
    fn no_secret_goes_on_the_wire_and_changed_credentials_are_named() {
        let mut before = Model::default();
        before.apply(put_user(user("u1", "alice")));
        before.apply(Change::PutToken(Arc::new(token("OLDHASH", "u1"))));
        let mut renamed = user("u1", "alice");
        renamed.name = "Alice".into();
        let mut new_password = user("u2", "bob");
        new_password.password_hash = Some("$2b$10$bobhash".into());
        let changes = vec![
            put_user(renamed),
            put_user(new_password),
            Change::PutToken(Arc::new(token("NEWHASH", "u2"))),
            Change::DeleteToken("OLDHASH".into()),
        ];
        let wire = to_wire(&changes, &before);
        let text = serde_json::to_string(&wire).unwrap();
        for secret in ["$2b$10$hash", "$2b$10$bobhash", "NEWHASH", "OLDHASH"] {
            assert!(!text.contains(secret), "{secret} on the wire: {text}");
        }
        assert_eq!(
            credential_users(&wire),
            ["u2", "u1"],
            "bob: a new hash and a token; alice: a dropped token (not her rename)"
        );
        assert!(matches!(wire.last(), Some(WireChange::Credentials(_))));
    }

    #[test]
    fn an_older_record_is_neither_applied_nor_announced() {
        let mut m = Model::default();
        let mut alice = user("u1", "alice");
        alice.updated_at = t(2_000);
        m.apply(put_user(alice.clone()));
        let mut stale = alice.clone();
        stale.username = "old-name".into();
        stale.updated_at = t(1_000);
        let (_, notices) = apply(&mut m, vec![put_user(stale)], Utc::now());
        assert!(notices.is_empty(), "{notices:?}");
        assert_eq!(m.users["u1"].username, "alice");
        let mut newer = alice.clone();
        newer.username = "alice2".into();
        newer.updated_at = t(3_000);
        let (_, notices) = apply(&mut m, vec![put_user(newer)], Utc::now());
        assert_eq!(
            notices.len(),
            2,
            "userData and Users:NameChanged: {notices:?}"
        );
        assert_eq!(m.users["u1"].username, "alice2");
    }

    #[test]
    fn credentials_are_re_read_and_fail_closed() {
        let mut m = Model::default();
        m.apply(put_user(user("u1", "alice")));
        for (h, u) in [("A1", "u1"), ("B1", "u2")] {
            m.apply(Change::PutToken(Arc::new(token(h, u))));
        }
        // A peer's record keeps the hash this instance has.
        let mut peer = user("u1", "alice");
        peer.password_hash = None;
        peer.updated_at = t(1_800_000_000_000);
        let batch = vec![
            WireChange::User("u1".into(), Some(Box::new(peer))),
            WireChange::Credentials("u1".into()),
        ];
        let read = Credentials {
            password_hashes: vec![("u1".into(), Some("$2b$10$fresh".into()))],
            tokens: vec![token("A2", "u1"), token("B2", "u2")],
        };
        apply_peer(&mut m, batch, Ok(read), Utc::now(), &None);
        assert_eq!(m.users["u1"].password_hash.as_deref(), Some("$2b$10$fresh"));
        let mut tokens: Vec<&str> = m.tokens.keys().map(String::as_str).collect();
        tokens.sort();
        assert_eq!(
            tokens,
            ["A2", "B1"],
            "only the named user's tokens replaced"
        );

        let batch = vec![WireChange::Credentials("u1".into())];
        apply_peer(
            &mut m,
            batch,
            Err(anyhow::anyhow!("down")),
            Utc::now(),
            &None,
        );
        assert_eq!(m.users["u1"].password_hash, None);
        assert_eq!(m.tokens.keys().collect::<Vec<_>>(), ["B1"]);
    }

    /// Alice as a status change leaves her: only the status part differs.
    fn away(mut u: User, at: i64) -> User {
        u.status = Status::Away;
        u.status_default = Status::Away;
        u.status_text = "lunch".into();
        u.status_source = Some("manual".into());
        u.status_expires_at = None;
        u.status_id = None;
        u.previous_state = None;
        u.last_seen = Some(t(at));
        u.updated_at = t(at);
        u
    }

    fn kinds(wire: &[WireChange]) -> Vec<String> {
        wire.iter()
            .map(|w| match w {
                WireChange::User(id, Some(_)) => format!("User {id}"),
                WireChange::User(id, None) => format!("Delete {id}"),
                WireChange::Status(id, _) => format!("Status {id}"),
                WireChange::Credentials(id) => format!("Credentials {id}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn sender_before() -> Model {
        let mut m = Model::default();
        m.apply(put_user(user("u1", "alice")));
        m.apply(put_user(user("u2", "bob")));
        m
    }

    #[test]
    fn only_a_record_that_differs_in_its_status_part_alone_travels_as_that_part() {
        let before = sender_before();
        let mut renamed = user("u2", "bob");
        renamed.name = "Bob B.".into();
        let mut new_password = away(user("u1", "alice"), 2_000);
        new_password.password_hash = Some("$2b$10$other".into());
        let changes = vec![
            put_user(away(user("u1", "alice"), 1_000)),
            put_user(renamed.clone()),
            // After the rename in the same batch: against the renamed record.
            put_user(away(renamed, 1_000)),
            put_user(user("u3", "carol")),
            put_user(new_password),
            Change::DeleteUser("u1".into()),
            put_user(away(user("u1", "alice"), 3_000)),
        ];
        let wire = to_wire(&changes, &before);
        assert_eq!(
            kinds(&wire),
            [
                "Status u1",
                "User u2",
                "Status u2",
                "User u3",
                "Status u1",
                "Delete u1",
                "User u1",
                "Credentials u3",
                "Credentials u1"
            ]
        );
        let text = serde_json::to_string(&wire).unwrap();
        assert!(!text.contains("$2b$10$"), "a hash on the wire: {text}");
        // The part carries the status, not the account.
        let WireChange::Status(_, part) = &wire[0] else {
            unreachable!()
        };
        let part = serde_json::to_string(part).unwrap();
        for account in ["alice@example.com", "alice Name", "enableAutoAway", "admin"] {
            assert!(!part.contains(account), "{account} in {part}");
        }
        assert!(part.contains("lunch"), "{part}");
    }

    #[test]
    fn a_status_part_makes_the_record_the_sender_has_and_the_same_events_and_notices() {
        let before = sender_before();
        let mut renamed = user("u2", "bob");
        renamed.username = "bobby".into();
        let after = [
            away(user("u1", "alice"), 1_800_000_000_000),
            renamed.clone(),
            away(renamed, 1_800_000_000_000),
        ];
        let changes: Vec<Change> = after.iter().cloned().map(put_user).collect();
        let compact = to_wire(&changes, &before);
        assert_eq!(kinds(&compact), ["Status u1", "User u2", "Status u2"]);
        // What an instance of the version before sent: every record whole.
        let whole: Vec<WireChange> = after
            .iter()
            .map(|u| {
                let mut u = u.clone();
                u.password_hash = None;
                WireChange::User(u.id.clone(), Some(Box::new(u)))
            })
            .collect();
        // Through the wire's encoding, onto receivers that hold their own hashes.
        let compact: Vec<WireChange> =
            serde_json::from_slice(&serde_json::to_vec(&compact).unwrap()).unwrap();
        let now = Utc::now();
        let receive = |batch: Vec<WireChange>| {
            let mut m = sender_before();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let announced = apply_peer(&mut m, batch, Ok(Credentials::default()), now, &Some(tx));
            assert!(rx.try_recv().is_err(), "no resync asked for");
            (m, announced)
        };
        let (m_whole, (events_whole, notices_whole)) = receive(whole);
        let (m_compact, (events_compact, notices_compact)) = receive(compact);
        for u in &after {
            assert_eq!(*m_compact.users[&u.id], *m_whole.users[&u.id]);
            assert_eq!(m_compact.users[&u.id].status_text, "lunch");
            assert_eq!(
                m_compact.users[&u.id].password_hash.as_deref(),
                Some("$2b$10$hash"),
                "the receiver keeps its hash"
            );
        }
        assert_eq!(m_compact.users["u2"].username, "bobby");
        let sorted = |mut e: Vec<StatusEvent>| {
            e.sort_by(|a, b| a.uid.cmp(&b.uid));
            e
        };
        let events_compact = sorted(events_compact);
        assert_eq!(events_compact, sorted(events_whole));
        assert_eq!(events_compact.len(), 2, "{events_compact:?}");
        assert_eq!(format!("{notices_compact:?}"), format!("{notices_whole:?}"));
        assert!(!notices_compact.is_empty(), "the rename's notices");
    }

    #[test]
    fn an_older_status_part_is_neither_applied_nor_announced() {
        let mut m = sender_before();
        let mut newer = away(user("u1", "alice"), 3_000);
        newer.status_text = "newer".into();
        m.apply(put_user(newer));
        let part = StatusPart::of(&away(user("u1", "alice"), 2_000));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (events, notices) = apply_peer(
            &mut m,
            vec![WireChange::Status("u1".into(), Box::new(part))],
            Ok(Credentials::default()),
            Utc::now(),
            &Some(tx),
        );
        assert!(events.is_empty() && notices.is_empty(), "{events:?}");
        assert_eq!(m.users["u1"].status_text, "newer");
        assert!(rx.try_recv().is_err(), "an older part needs no reload");
    }

    #[test]
    fn a_part_without_the_record_it_belongs_to_asks_for_a_reload() {
        let part = |u: User| WireChange::Status(u.id.clone(), Box::new(StatusPart::of(&u)));
        let mut m = Model::default();
        m.apply(put_user(user("u2", "bob")));
        // Bob here has another name than the record the part was made from, older.
        let mut sender_bob = user("u2", "bob");
        sender_bob.name = "Bob B.".into();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (events, _) = apply_peer(
            &mut m,
            vec![
                part(away(user("u1", "alice"), 1_800_000_000_000)),
                part(away(sender_bob.clone(), 1_800_000_000_000)),
            ],
            Ok(Credentials::default()),
            Utc::now(),
            &Some(tx.clone()),
        );
        assert!(events.is_empty(), "{events:?}");
        assert!(!m.users.contains_key("u1"));
        assert_eq!(m.users["u2"].status_text, "in a meeting ✓", "not applied");
        assert_eq!(
            rx.try_recv(),
            Ok(Unapplied {
                unknown_user: 1,
                account_differs: 1
            })
        );
        // Older than the record here: dropped as an older whole record is, no reload.
        let mut here = (*m.users["u2"]).clone();
        here.updated_at = t(1_900_000_000_000);
        m.apply(put_user(here));
        apply_peer(
            &mut m,
            vec![part(away(sender_bob, 1_800_000_000_000))],
            Ok(Credentials::default()),
            Utc::now(),
            &Some(tx),
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn the_fingerprint_ignores_what_the_stores_do_not_keep() {
        let a = user("u1", "alice");
        let mut b = a.clone();
        // Times to the millisecond; preference keys in another order.
        b.created_at = a.created_at + chrono::Duration::microseconds(300);
        b.preferences = serde_json::from_str(
            r#"{"highlights": ["✓"], "idleTimeLimit": 90, "enableAutoAway": false}"#,
        )
        .unwrap();
        b.password_hash = None;
        b.status_text = "another status".into();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.roles.push("bot".into());
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
