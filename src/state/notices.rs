//! The notices a committed batch causes, derived in one place from the changes
//! themselves and the model as it was before them: whichever path made the change
//! (REST, DDP, the CLI through `external.rs`, another instance over NATS), the same
//! committed change yields the same notices. Status changes are not here: they travel
//! as `StatusEvent`s (the hot path), and the user's own `userData` for them is encoded
//! by the realtime layer from that event.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::model::Model;
use crate::bus::notice::{self, Notice, Obj};
use crate::model::{CustomStatus, User};
use crate::record::Change;
use crate::settings;

/// `UI_Use_Real_Name`: Rocket.Chat announces a changed display name as
/// `Users:NameChanged` only when names are shown (a changed username always).
const USE_REAL_NAME: &str = "UI_Use_Real_Name";
/// `UI_DisplayRoles`: role changes are announced only while roles are shown (default).
const DISPLAY_ROLES: &str = "UI_DisplayRoles";

/// The last value each key takes in the batch, in the order keys first appear.
struct Last<V> {
    order: Vec<String>,
    value: HashMap<String, Option<V>>,
}

impl<V> Last<V> {
    fn new() -> Last<V> {
        Last {
            order: Vec::new(),
            value: HashMap::new(),
        }
    }

    fn set(&mut self, key: &str, v: Option<V>) {
        if self.value.insert(key.to_string(), v).is_none() {
            self.order.push(key.to_string());
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, Option<&V>)> {
        self.order
            .iter()
            .map(|k| (k.as_str(), self.value.get(k).and_then(Option::as_ref)))
    }
}

/// The notices `changes` cause, against `before`, the model they were applied to.
pub fn derive(changes: &[Change], before: &Model, now: DateTime<Utc>) -> Vec<Notice> {
    let mut users: Last<Arc<User>> = Last::new();
    let mut settings_: Last<Json> = Last::new();
    let mut permissions: Last<Arc<Vec<String>>> = Last::new();
    let mut customs: Last<Arc<CustomStatus>> = Last::new();
    for change in changes {
        match change {
            // The hot path (status changes) ends here: a user whose record changed in
            // nothing notices carry, and who is not already tracked in this batch, costs
            // a lookup and no allocation.
            Change::PutUser(u)
                if !users.value.contains_key(&u.id)
                    && before.users.get(&u.id).is_some_and(|b| same_account(b, u)) => {}
            Change::PutUser(u) => users.set(&u.id, Some(u.clone())),
            Change::DeleteUser(id) => users.set(id, None),
            Change::PutSetting(id, v) => settings_.set(id, Some(v.clone())),
            Change::DeleteSetting(id) => settings_.set(id, None),
            Change::PutPermission(id, r) => permissions.set(id, Some(r.clone())),
            Change::DeletePermission(id) => permissions.set(id, None),
            Change::PutCustomStatus(c) => customs.set(&c.id, Some(c.clone())),
            Change::DeleteCustomStatus(id) => customs.set(id, None),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let setting_on = |id: &str, default: bool| {
        let after = settings_.value.get(id).cloned().flatten();
        after
            .as_ref()
            .or(before.settings.get(id))
            .and_then(Json::as_bool)
            .unwrap_or(default)
    };
    let real_name = setting_on(USE_REAL_NAME, false);
    let display_roles = setting_on(DISPLAY_ROLES, true);
    for (id, after) in users.iter() {
        user_notices(
            &mut out,
            before.users.get(id).map(Arc::as_ref),
            after.map(Arc::as_ref),
            id,
            real_name,
            display_roles,
        );
    }
    for (id, after) in settings_.iter() {
        let was = before.settings.get(id);
        if was == after {
            continue;
        }
        let action = match (was, after) {
            (None, Some(_)) => "inserted",
            (Some(_), None) => "removed",
            _ => "updated",
        };
        let public = settings::definition(id).is_some_and(|d| d.public);
        if public {
            out.push(notice::setting_changed(true, action, id, after));
        }
        out.push(notice::setting_changed(false, action, id, after));
    }
    for (id, after) in permissions.iter() {
        if before.permissions.get(id).map(|r| r.as_slice()) == after.map(|r| r.as_slice()) {
            continue;
        }
        out.push(notice::permission_changed(
            id,
            after.map(|r| r.as_slice()),
            now,
        ));
    }
    for (id, after) in customs.iter() {
        match (before.custom_statuses.get(id), after) {
            (None, Some(new)) => out.push(notice::custom_status_created(new)),
            (Some(old), Some(new)) => {
                if old.name != new.name || old.status_type != new.status_type {
                    out.push(notice::custom_status_updated(old, new));
                }
            }
            (Some(old), None) => out.push(notice::custom_status_deleted(old)),
            (None, None) => {}
        }
    }
    out
}

/// Do two records of a user agree in everything notices are about?
fn same_account(a: &User, b: &User) -> bool {
    a.username == b.username
        && a.name == b.name
        && a.roles == b.roles
        && a.active == b.active
        && a.preferences == b.preferences
}

/// What others and the user themself are told about one user's changed record (its
/// status aside).
fn user_notices(
    out: &mut Vec<Notice>,
    before: Option<&User>,
    after: Option<&User>,
    id: &str,
    real_name: bool,
    display_roles: bool,
) {
    let (old, new) = match (before, after) {
        (Some(old), Some(new)) => (old, new),
        (Some(_), None) => {
            out.push(notice::user_deleted(id));
            out.push(notice::user_data_removed(id));
            return;
        }
        // A new user has no session to tell yet.
        _ => return,
    };
    let mut diff = Obj::new();
    if old.username != new.username {
        diff = diff.field("username", &new.username);
    }
    if old.name != new.name {
        diff = diff.field("name", &new.name);
    }
    if old.roles != new.roles {
        diff = diff.field("roles", &new.roles);
    }
    if old.active != new.active {
        diff = diff.field("active", &new.active);
    }
    // saveUserPreferences.ts: `settings.preferences.<key>` for each preference set (here:
    // each that changed), and `language` beside them when it is one.
    for (key, value) in &new.preferences {
        if old.preferences.get(key) != Some(value) {
            diff = diff.field(&format!("settings.preferences.{key}"), value);
        }
    }
    if let Some(language) = new
        .preferences
        .get("language")
        .filter(|l| old.preferences.get("language") != Some(*l))
    {
        diff = diff.field("language", language);
    }
    if diff.is_empty() {
        return;
    }
    out.push(notice::user_data_updated(id, &diff));
    if old.username != new.username || (real_name && old.name != new.name) {
        out.push(notice::name_changed(id, &new.name, &new.username));
    }
    if display_roles {
        for role in new.roles.iter().filter(|r| !old.roles.contains(r)) {
            out.push(notice::role_changed("added", role, id, &new.username));
        }
        for role in old.roles.iter().filter(|r| !new.roles.contains(r)) {
            out.push(notice::role_changed("removed", role, id, &new.username));
        }
    }
}

/// The notices between two whole models (after a reload from the store): the records
/// that differ, as the changes that would turn `old` into `new`. Only the fields
/// notices are about are compared, so times the store rounds make no difference.
pub fn between(old: &Model, new: &Model, now: DateTime<Utc>) -> Vec<Notice> {
    let mut changes = Vec::new();
    for (id, u) in &new.users {
        let same = old.users.get(id).is_some_and(|o| {
            o.username == u.username
                && o.name == u.name
                && o.roles == u.roles
                && o.active == u.active
        });
        if !same {
            changes.push(Change::PutUser(u.clone()));
        }
    }
    changes.extend(
        old.users
            .keys()
            .filter(|id| !new.users.contains_key(*id))
            .map(|id| Change::DeleteUser(id.clone())),
    );
    for (id, v) in &new.settings {
        if old.settings.get(id) != Some(v) {
            changes.push(Change::PutSetting(id.clone(), v.clone()));
        }
    }
    changes.extend(
        old.settings
            .keys()
            .filter(|id| !new.settings.contains_key(*id))
            .map(|id| Change::DeleteSetting(id.clone())),
    );
    for (id, r) in &new.permissions {
        if old.permissions.get(id) != Some(r) {
            changes.push(Change::PutPermission(id.clone(), r.clone()));
        }
    }
    changes.extend(
        old.permissions
            .keys()
            .filter(|id| !new.permissions.contains_key(*id))
            .map(|id| Change::DeletePermission(id.clone())),
    );
    for (id, c) in &new.custom_statuses {
        let same = old
            .custom_statuses
            .get(id)
            .is_some_and(|o| o.name == c.name && o.status_type == c.status_type);
        if !same {
            changes.push(Change::PutCustomStatus(c.clone()));
        }
    }
    changes.extend(
        old.custom_statuses
            .keys()
            .filter(|id| !new.custom_statuses.contains_key(*id))
            .map(|id| Change::DeleteCustomStatus(id.clone())),
    );
    derive(&changes, old, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::user;

    fn frames(n: &[Notice]) -> Vec<&str> {
        n.iter().map(|n| n.frame.as_str()).collect()
    }

    #[test]
    fn a_renamed_user_with_a_new_role_is_announced_once_each() {
        let mut m = Model::default();
        let alice = user("u1", "alice");
        m.apply(Change::PutUser(Arc::new(alice.clone())));
        let mut renamed = alice.clone();
        renamed.username = "alice2".into();
        let mut with_role = renamed.clone();
        with_role.roles.push("bot".into());
        // Two writes of the same user in one batch: one announcement of the end state.
        let changes = [
            Change::PutUser(Arc::new(renamed)),
            Change::PutUser(Arc::new(with_role.clone())),
        ];
        let n = derive(&changes, &m, Utc::now());
        let roles = serde_json::to_string(&with_role.roles).unwrap();
        assert_eq!(
            frames(&n),
            [
                format!(r#"{{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{{"eventName":"u1/userData","args":[{{"id":"u1","diff":{{"username":"alice2","roles":{roles}}},"type":"updated"}}]}}}}"#).as_str(),
                r#"{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{"eventName":"Users:NameChanged","args":[{"_id":"u1","name":"alice Name","username":"alice2"}]}}"#,
                r#"{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{"eventName":"roles-change","args":[{"type":"added","_id":"bot","u":{"_id":"u1","username":"alice2"}}]}}"#,
            ]
        );
        // Nothing about a record that did not change in what notices carry.
        let mut same = alice.clone();
        same.updated_at = Utc::now();
        assert!(derive(&[Change::PutUser(Arc::new(same))], &m, Utc::now()).is_empty());
    }

    #[test]
    fn a_reload_announces_only_real_differences() {
        let mut old = Model::default();
        old.apply(Change::PutUser(Arc::new(user("u1", "alice"))));
        old.apply(Change::PutSetting(
            "Site_Name".into(),
            serde_json::json!("A"),
        ));
        let mut new = Model::default();
        new.apply(Change::PutUser(Arc::new(user("u1", "alice"))));
        new.apply(Change::PutSetting(
            "Site_Name".into(),
            serde_json::json!("B"),
        ));
        let n = between(&old, &new, Utc::now());
        assert!(
            n.iter().all(|n| n.event.ends_with("settings-changed")),
            "{n:?}"
        );
        assert!(!n.is_empty());
    }
}
