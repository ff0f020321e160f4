//! Meteor's `users` collection as older DDP clients see it: the logged-in user's own
//! record, and the `activeUsers` and `fullUserData` publications, merged per connection
//! as Meteor's merge box does (a document two publications share is `added` once, the
//! first publication wins a field both have, each later difference of the merged
//! fields is one `changed`, and it is `removed` when no publication has it any more).
//! One difference: a publication that joins a document the client already has sends
//! all its fields in that `changed`, not only the new ones (see `put`).
//!
//! The shapes follow Rocket.Chat (docs/decisions.md):
//! - the own record: Meteor's default publish fields (`profile`, `username`, `emails`)
//!   extended with `getBaseUserFields(true)` minus `status`
//!   (apps/meteor/app/authentication/server/startup/index.js,
//!   apps/meteor/app/utils/server/functions/getBaseUserFields.ts) — the fields statusd
//!   has of those;
//! - `activeUsers`: users not offline, `{username, name, status, utcOffset, statusText}`
//!   (server/publications/activeUsers.js, Rocket.Chat 2.x–3.0, a reactive cursor), at
//!   most [`MAX_ACTIVE_USERS`] of them (first by username);
//! - `fullUserData(filter, limit)`: server/publications/fullUserData.js and
//!   app/lib/server/functions/getFullUserData.js (2.x–3.x), at most
//!   [`MAX_FULL_USER_DATA`] users; `services` is never sent.
//!
//! Fields are written in the order `serde_json` maps write them (alphabetical); Meteor
//! writes a document's own order, which no client relies on.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::frame::MeteorError;
use crate::auth::defaults::Permission;
use crate::model::{Status, User};
use crate::state::model::Model;

pub const ACTIVE_USERS: &str = "activeUsers";
pub const FULL_USER_DATA: &str = "fullUserData";
pub const COLLECTION: &str = "users";
/// The most users one `activeUsers` subscription publishes (Rocket.Chat has no bound;
/// a workspace with more users online gets the first ones by username, and a user who
/// comes online while the set is full is not added).
pub const MAX_ACTIVE_USERS: usize = 1000;
/// The most users one `fullUserData` subscription publishes (Rocket.Chat takes the
/// client's `limit` as is).
pub const MAX_FULL_USER_DATA: usize = 100;
/// The most documents the publications of one connection hold together (a document two
/// subscriptions share counts twice): past it a sub is refused and `activeUsers` adds
/// no newcomer. Bounds the memory and the per-event work one client can ask for
/// (WS_MAX_SUBSCRIPTIONS subs of 1000 users each would be 256 000).
pub const MAX_HELD_DOCUMENTS: usize = 5000;

fn too_many() -> MeteorError {
    MeteorError::new(
        "error-too-many-subscriptions",
        "Too many subscriptions on this connection",
    )
}

/// Who put a document in the merge box: the login (the own record) or a subscription.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Source {
    Own,
    Sub(String),
}

#[derive(Default)]
struct DocView {
    /// Each publication's fields, in the order they arrived (the first wins a field).
    sources: Vec<(Source, Map<String, Value>)>,
    /// What the client has.
    sent: Map<String, Value>,
}

impl DocView {
    fn merged(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (_, fields) in &self.sources {
            for (k, v) in fields {
                if !m.contains_key(k) {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        m
    }
}

#[derive(PartialEq)]
enum PubKind {
    Active,
    /// Whether the subscriber sees the full fields.
    Full(bool),
}

struct Publication {
    kind: PubKind,
    ids: HashSet<String>,
}

/// The `users` collection of one connection.
#[derive(Default)]
pub struct Publications {
    /// Whether this connection gets the logged-in user's record (Meteor's transport).
    own_record: bool,
    own: Option<String>,
    /// Who subscribed (the logged-in user): whose eyes the documents are seen through
    /// (`crate::privacy`).
    viewer: String,
    subs: HashMap<String, Publication>,
    docs: HashMap<String, DocView>,
}

/// Is `name` a publication of this module?
pub fn handles(name: &str) -> bool {
    name == ACTIVE_USERS || name == FULL_USER_DATA
}

/// `{"msg":"added","collection":"users","id":…,"fields":{…}}` (`fields` left out when
/// empty, as Meteor's `stringifyDDP` does).
pub fn added(id: &str, fields: &Map<String, Value>) -> String {
    let head = format!(
        r#"{{"msg":"added","collection":"{COLLECTION}","id":{}"#,
        Value::String(id.into())
    );
    if fields.is_empty() {
        format!("{head}}}")
    } else {
        format!("{head},\"fields\":{}}}", Value::Object(fields.clone()))
    }
}

/// `{"msg":"changed","collection":"users","id":…,"fields":{…},"cleared":[…]}`.
pub fn changed(id: &str, fields: &Map<String, Value>, cleared: &[String]) -> String {
    let mut s = format!(
        r#"{{"msg":"changed","collection":"{COLLECTION}","id":{}"#,
        Value::String(id.into())
    );
    if !fields.is_empty() {
        s.push_str(&format!(",\"fields\":{}", Value::Object(fields.clone())));
    }
    if !cleared.is_empty() {
        s.push_str(&format!(",\"cleared\":{}", json!(cleared)));
    }
    s.push('}');
    s
}

/// `{"msg":"removed","collection":"users","id":…}`.
pub fn removed(id: &str) -> String {
    format!(
        r#"{{"msg":"removed","collection":"{COLLECTION}","id":{}}}"#,
        Value::String(id.into())
    )
}

fn date(t: &chrono::DateTime<chrono::Utc>) -> Value {
    json!({ "$date": t.timestamp_millis() })
}

/// A UTC offset as JavaScript writes the number: `0`, `2`, `-3.5`.
fn offset(h: f64) -> Value {
    if h.fract() == 0.0 && h.abs() < 1e15 {
        json!(h as i64)
    } else {
        json!(h)
    }
}

/// The logged-in user's own record.
pub fn own_fields(u: &User) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("_updatedAt".into(), date(&u.updated_at));
    m.insert("active".into(), json!(u.active));
    if !u.bio.is_empty() {
        m.insert("bio".into(), json!(u.bio));
    }
    m.insert("emails".into(), json!(u.emails));
    m.insert("name".into(), json!(u.name));
    if !u.nickname.is_empty() {
        m.insert("nickname".into(), json!(u.nickname));
    }
    m.insert("roles".into(), json!(u.roles));
    m.insert("statusConnection".into(), json!(u.status_connection));
    m.insert("statusDefault".into(), json!(u.status_default));
    m.insert("statusText".into(), json!(u.status_text));
    m.insert("username".into(), json!(u.username));
    m.insert("utcOffset".into(), offset(u.utc_offset));
    m
}

/// An `activeUsers` document.
pub fn active_fields(u: &User) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(u.name));
    m.insert("status".into(), json!(u.status));
    m.insert("statusText".into(), json!(u.status_text));
    m.insert("username".into(), json!(u.username));
    m.insert("utcOffset".into(), offset(u.utc_offset));
    m
}

/// A `fullUserData` document: `defaultFields`, plus `fullFields` for the user itself and
/// holders of `view-full-other-user-info` (without `services`).
pub fn full_user_fields(u: &User, full: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("active".into(), json!(u.active));
    m.insert("name".into(), json!(u.name));
    m.insert("status".into(), json!(u.status));
    m.insert("statusText".into(), json!(u.status_text));
    m.insert("type".into(), json!(u.kind.as_str()));
    m.insert("username".into(), json!(u.username));
    m.insert("utcOffset".into(), offset(u.utc_offset));
    if full {
        m.insert("createdAt".into(), date(&u.created_at));
        m.insert("emails".into(), json!(u.emails));
        if let Some(t) = &u.last_login {
            m.insert("lastLogin".into(), date(t));
        }
        m.insert("roles".into(), json!(u.roles));
        m.insert("statusConnection".into(), json!(u.status_connection));
    }
    m
}

/// Who `activeUsers` publishes: users not offline, first by username, bounded.
fn active_users(model: &Model) -> Vec<&User> {
    let mut users: Vec<&User> = model
        .users
        .values()
        .map(|u| u.as_ref())
        .filter(|u| u.status != Status::Offline && !u.username.is_empty())
        .collect();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    users.truncate(MAX_ACTIVE_USERS);
    users
}

/// Who `fullUserData(filter, limit)` publishes and whether with the full fields, as
/// `getFullUserData` decides.
fn full_user_data<'m>(
    model: &'m Model,
    caller: &User,
    filter: &str,
    limit: Option<i64>,
) -> (Vec<&'m User>, bool) {
    let username = filter.trim();
    let target = if username.is_empty() {
        None
    } else {
        model.user_by_username(username)
    };
    let is_own = target.as_ref().is_some_and(|t| t.id == caller.id);
    let view_full = model.has_permission(caller, Permission::ViewFullOtherUserInfo.id());
    // Without the permission one user at most; an absent limit is no limit (bounded here).
    let limit = if view_full { limit } else { Some(1) };
    let full = is_own || view_full;
    if username.is_empty() && limit.is_some_and(|l| l <= 1) {
        return (Vec::new(), full);
    }
    let cap = limit
        .map(|l| usize::try_from(l).unwrap_or(0))
        .unwrap_or(MAX_FULL_USER_DATA)
        .min(MAX_FULL_USER_DATA);
    if let (Some(1), Some(t)) = (limit, target.as_ref()) {
        return (
            model
                .users
                .get(&t.id)
                .map(|u| u.as_ref())
                .into_iter()
                .collect(),
            full,
        );
    }
    if limit == Some(1) {
        // Rocket.Chat looks for a livechat visitor by that name: statusd has none.
        return (Vec::new(), full);
    }
    let needle = username.to_lowercase();
    let mut users: Vec<&User> = model
        .users
        .values()
        .map(|u| u.as_ref())
        .filter(|u| {
            needle.is_empty()
                || u.username.to_lowercase().contains(&needle)
                || u.name.to_lowercase().contains(&needle)
                || u.emails
                    .iter()
                    .any(|e| e.address.to_lowercase().contains(&needle))
        })
        .collect();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    users.truncate(cap);
    (users, full)
}

impl Publications {
    /// `own_record`: whether the connection gets the logged-in user's record (the SockJS
    /// transport; see docs/decisions.md for why not the raw `/websocket`).
    pub fn new(own_record: bool) -> Publications {
        Publications {
            own_record,
            ..Publications::default()
        }
    }

    /// Does this connection need the bus's events?
    pub fn wants_events(&self) -> bool {
        self.own.is_some() || !self.subs.is_empty()
    }

    /// Does this connection need every user's changes (`activeUsers`, `fullUserData`)?
    pub fn wants_all(&self) -> bool {
        !self.subs.is_empty()
    }

    /// The user whose own record this connection holds.
    pub fn own(&self) -> Option<&str> {
        self.own.as_deref()
    }

    /// Is `id` one of this module's subscriptions?
    pub fn has(&self, id: &str) -> bool {
        self.subs.contains_key(id)
    }

    /// A login succeeded on this connection: its user's record, before the result.
    pub fn login(&mut self, model: &Model, uid: &str, out: &mut Vec<String>) {
        if !self.own_record {
            return;
        }
        if let Some(old) = self.own.take() {
            if old != uid {
                self.take(&Source::Own, &old, out);
            }
        }
        if let Some(u) = model.users.get(uid) {
            self.own = Some(uid.to_string());
            self.put(Source::Own, uid, own_fields(u), out);
        }
    }

    /// The connection logged out: every document goes, as Meteor re-runs the
    /// publications without a user.
    pub fn logout(&mut self, out: &mut Vec<String>) {
        let mut ids: Vec<String> = self.docs.keys().cloned().collect();
        ids.sort();
        for id in ids {
            out.push(removed(&id));
        }
        self.docs.clear();
        self.subs.clear();
        self.own = None;
    }

    /// Answers a `sub` (`id`, `name`, `params`) of `activeUsers` / `fullUserData` for
    /// the logged-in `caller`: the documents (the caller sends `ready`), or the error of
    /// a sub refused past `max_subs` of these.
    pub fn sub(
        &mut self,
        model: &Model,
        caller: &User,
        (id, name, params): (&str, &str, &[Value]),
        max_subs: usize,
        out: &mut Vec<String>,
    ) -> Result<(), MeteorError> {
        if self.subs.len() >= max_subs {
            return Err(too_many());
        }
        let (users, kind) = if name == ACTIVE_USERS {
            (active_users(model), PubKind::Active)
        } else {
            let filter = params.first().and_then(Value::as_str).unwrap_or("");
            let limit = params.get(1).and_then(Value::as_f64).map(|l| l as i64);
            let (users, full) = full_user_data(model, caller, filter, limit);
            (users, PubKind::Full(full))
        };
        if self.held() + users.len() > MAX_HELD_DOCUMENTS {
            return Err(too_many());
        }
        self.viewer = caller.id.clone();
        let lens = crate::privacy::Lens::of(model, &caller.id);
        let mut ids = HashSet::new();
        for u in users {
            // A user who hides from the caller is offline to them: not an active user.
            if kind == PubKind::Active && !lens.sees(u) {
                continue;
            }
            let u = &*lens.show(u);
            let fields = match kind {
                PubKind::Active => active_fields(u),
                PubKind::Full(full) => full_user_fields(u, full),
            };
            ids.insert(u.id.clone());
            self.put(Source::Sub(id.to_string()), &u.id, fields, out);
        }
        self.subs.insert(id.to_string(), Publication { kind, ids });
        Ok(())
    }

    /// How many documents the subscriptions hold together.
    fn held(&self) -> usize {
        self.subs.values().map(|p| p.ids.len()).sum()
    }

    /// Ends one subscription: its documents go or lose its fields.
    pub fn unsub(&mut self, id: &str, out: &mut Vec<String>) {
        let Some(p) = self.subs.remove(id) else {
            return;
        };
        let mut ids: Vec<String> = p.ids.into_iter().collect();
        ids.sort();
        let source = Source::Sub(id.to_string());
        for uid in ids {
            self.take(&source, &uid, out);
        }
    }

    /// The logged-in user's record read again (what differs is sent): for the changes
    /// the bus does not carry (a new name or roles alone), at each SockJS heartbeat.
    pub fn refresh_own(&mut self, model: &Model, out: &mut Vec<String>) {
        let Some(uid) = self.own.clone() else {
            return;
        };
        match model.users.get(&uid) {
            Some(u) => self.put(Source::Own, &uid, own_fields(u), out),
            None => {
                self.own = None;
                self.take(&Source::Own, &uid, out);
            }
        }
    }

    /// The frames a committed change of user `uid` makes on this connection: the user is
    /// read again from the model and what differs is sent.
    pub fn on_user(&mut self, model: &Model, uid: &str, out: &mut Vec<String>) {
        let user = model.users.get(uid).map(|u| u.as_ref());
        let lens = crate::privacy::Lens::of(model, &self.viewer);
        let seen = user.map(|u| lens.show(u));
        let others_see = seen.as_deref();
        if self.own.as_deref() == Some(uid) {
            match user {
                Some(u) => self.put(Source::Own, uid, own_fields(u), out),
                None => {
                    self.own = None;
                    self.take(&Source::Own, uid, out);
                }
            }
        }
        let mut sub_ids: Vec<String> = self.subs.keys().cloned().collect();
        sub_ids.sort();
        for sid in sub_ids {
            let source = Source::Sub(sid.clone());
            let held = self.held();
            let Some(p) = self.subs.get_mut(&sid) else {
                continue;
            };
            let had = p.ids.contains(uid);
            let fields = match (&p.kind, others_see) {
                (PubKind::Active, Some(u)) if u.status != Status::Offline => {
                    if had || (p.ids.len() < MAX_ACTIVE_USERS && held < MAX_HELD_DOCUMENTS) {
                        Some(active_fields(u))
                    } else {
                        None
                    }
                }
                (PubKind::Full(full), Some(u)) if had => Some(full_user_fields(u, *full)),
                _ => None,
            };
            match fields {
                Some(f) => {
                    p.ids.insert(uid.to_string());
                    self.put(source, uid, f, out);
                }
                None if had => {
                    p.ids.remove(uid);
                    self.take(&source, uid, out);
                }
                None => {}
            }
        }
    }

    /// Sets one publication's fields of a document and sends the difference.
    fn put(&mut self, source: Source, id: &str, fields: Map<String, Value>, out: &mut Vec<String>) {
        let is_new = !self.docs.contains_key(id);
        let doc = self.docs.entry(id.to_string()).or_default();
        let joins = match doc.sources.iter_mut().find(|(s, _)| *s == source) {
            Some((_, f)) => {
                *f = fields;
                None
            }
            None => {
                let keys: Vec<String> = fields.keys().cloned().collect();
                doc.sources.push((source, fields));
                Some(keys)
            }
        };
        let merged = doc.merged();
        match joins {
            _ if is_new => out.push(added(id, &merged)),
            // A publication joining a document the client has: its fields are all
            // sent (at their merged values), not only the new ones as Meteor's merge
            // box does. A DDP client applies an unchanged value as a no-op; a client
            // that reads a field only from the frame that carries it (purple-rocketchat
            // reads `status` so, for a buddy it adds after activeUsers published it)
            // learns it (docs/decisions.md).
            Some(keys) => {
                let fields: Map<String, Value> = merged
                    .iter()
                    .filter(|(k, v)| keys.contains(k) || doc.sent.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let cleared: Vec<String> = doc
                    .sent
                    .keys()
                    .filter(|k| !merged.contains_key(*k))
                    .cloned()
                    .collect();
                if !fields.is_empty() || !cleared.is_empty() {
                    out.push(changed(id, &fields, &cleared));
                }
            }
            None => push_diff(id, &doc.sent, &merged, out),
        }
        doc.sent = merged;
    }

    /// Drops one publication's share of a document.
    fn take(&mut self, source: &Source, id: &str, out: &mut Vec<String>) {
        let Some(doc) = self.docs.get_mut(id) else {
            return;
        };
        doc.sources.retain(|(s, _)| s != source);
        if doc.sources.is_empty() {
            self.docs.remove(id);
            out.push(removed(id));
            return;
        }
        let merged = doc.merged();
        push_diff(id, &doc.sent, &merged, out);
        doc.sent = merged;
    }
}

/// One `changed` with the fields that differ and the ones gone, if any.
fn push_diff(
    id: &str,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    out: &mut Vec<String>,
) {
    let fields: Map<String, Value> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cleared: Vec<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    if !fields.is_empty() || !cleared.is_empty() {
        out.push(changed(id, &fields, &cleared));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn frames_have_meteors_shape() {
        assert_eq!(
            added("u1", &fields(json!({"username": "a", "name": "A"}))),
            r#"{"msg":"added","collection":"users","id":"u1","fields":{"name":"A","username":"a"}}"#
        );
        assert_eq!(
            added("u1", &Map::new()),
            r#"{"msg":"added","collection":"users","id":"u1"}"#
        );
        assert_eq!(
            changed(
                "u1",
                &fields(json!({"status": "away"})),
                &["statusText".into()]
            ),
            r#"{"msg":"changed","collection":"users","id":"u1","fields":{"status":"away"},"cleared":["statusText"]}"#
        );
        assert_eq!(
            changed("u1", &Map::new(), &["x".into()]),
            r#"{"msg":"changed","collection":"users","id":"u1","cleared":["x"]}"#
        );
        assert_eq!(
            removed("u1"),
            r#"{"msg":"removed","collection":"users","id":"u1"}"#
        );
    }

    #[test]
    fn the_merge_box_adds_once_and_removes_last() {
        let mut p = Publications::new(true);
        let mut out = Vec::new();
        let own = Source::Own;
        let sub = Source::Sub("s1".into());
        p.put(
            own.clone(),
            "u1",
            fields(json!({"username": "a", "name": "A"})),
            &mut out,
        );
        // A second publication of the same document: all its fields are sent once.
        p.put(
            sub.clone(),
            "u1",
            fields(json!({"username": "a", "status": "online"})),
            &mut out,
        );
        // The same fields again: nothing.
        p.put(
            sub.clone(),
            "u1",
            fields(json!({"username": "a", "status": "online"})),
            &mut out,
        );
        p.put(
            sub.clone(),
            "u1",
            fields(json!({"username": "a", "status": "away"})),
            &mut out,
        );
        // The first publication wins a field both have.
        p.put(
            sub.clone(),
            "u1",
            fields(json!({"username": "b", "status": "away"})),
            &mut out,
        );
        p.take(&sub, "u1", &mut out);
        p.take(&own, "u1", &mut out);
        assert_eq!(
            out,
            [
                r#"{"msg":"added","collection":"users","id":"u1","fields":{"name":"A","username":"a"}}"#,
                r#"{"msg":"changed","collection":"users","id":"u1","fields":{"status":"online","username":"a"}}"#,
                r#"{"msg":"changed","collection":"users","id":"u1","fields":{"status":"away"}}"#,
                r#"{"msg":"changed","collection":"users","id":"u1","cleared":["status"]}"#,
                r#"{"msg":"removed","collection":"users","id":"u1"}"#,
            ]
        );
    }

    fn user(i: usize) -> User {
        User {
            id: format!("u{i:05}"),
            username: format!("user{i:05}"),
            name: String::new(),
            bio: String::new(),
            nickname: String::new(),
            emails: Vec::new(),
            password_hash: None,
            roles: vec!["user".into()],
            active: true,
            kind: crate::model::UserKind::User,
            status: Status::Online,
            status_default: Status::Online,
            status_connection: Status::Online,
            status_text: String::new(),
            status_source: None,
            status_expires_at: None,
            status_id: None,
            dnd: None,
            previous_state: None,
            utc_offset: 0.0,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            last_login: None,
            last_seen: None,
            preferences: Default::default(),
        }
    }

    #[test]
    fn what_one_connection_holds_is_bounded() {
        let mut model = Model::default();
        for i in 0..MAX_ACTIVE_USERS + 10 {
            model.apply(crate::record::Change::PutUser(std::sync::Arc::new(user(i))));
        }
        let caller = user(0);
        let mut p = Publications::new(false);
        let mut out = Vec::new();
        let mut ready = 0;
        for n in 0..10 {
            let id = format!("s{n}");
            if p.sub(&model, &caller, (&id, ACTIVE_USERS, &[]), 256, &mut out)
                .is_ok()
            {
                ready += 1;
            }
        }
        // Each activeUsers holds the first 1000 users by username; 5 fit in 5000.
        assert_eq!(ready, MAX_HELD_DOCUMENTS / MAX_ACTIVE_USERS);
        assert_eq!(p.held(), MAX_HELD_DOCUMENTS);
        let added = out
            .iter()
            .filter(|f| f.contains(r#""msg":"added""#))
            .count();
        assert_eq!(added, MAX_ACTIVE_USERS);
        assert!(!out
            .iter()
            .any(|f| f.contains(&format!("user{:05}", MAX_ACTIVE_USERS))));
        // The subscription count bound applies too.
        let mut q = Publications::new(false);
        assert!(q
            .sub(&model, &caller, ("a", FULL_USER_DATA, &[]), 1, &mut out)
            .is_ok());
        assert!(q
            .sub(&model, &caller, ("b", FULL_USER_DATA, &[]), 1, &mut out)
            .is_err());
    }
}
