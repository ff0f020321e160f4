//! The webhook outbox: the deliveries a committed batch causes, derived from the batch
//! itself in the writer's commit path and committed in the same transaction, so a
//! change is never committed without its deliveries nor a delivery without its change.
//! Only the instance that commits a change derives them (peers apply the change from
//! the bus without committing), so a cluster writes each delivery once.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::model::Model;
use crate::auth::secrets::new_id;
use crate::model::{Delivery, User, Webhook};
use crate::record::Change;
use crate::status::privacy;

/// The events one user write causes, in the order they are delivered.
fn events(before: Option<&User>, after: &User) -> Vec<&'static str> {
    let Some(b) = before else {
        return vec!["user.created"];
    };
    let mut out = Vec::new();
    if b.status != after.status {
        out.push("status.changed");
    }
    if b.status_text != after.status_text {
        out.push("status-text.changed");
    }
    if b.active && !after.active {
        out.push("user.deactivated");
    }
    out
}

/// Does the endpoint want this event about this user?
fn wants(w: &Webhook, event: &str, user: &User) -> bool {
    w.active
        && w.events.iter().any(|e| e == event)
        && (w.user_ids.is_empty() || w.user_ids.contains(&user.id))
        && (w.roles.is_empty() || user.roles.iter().any(|r| w.roles.contains(r)))
}

/// The body sent for an event: Standard Webhooks' `{type, timestamp, data}`.
pub fn payload(event: &str, before: Option<&User>, after: &User, at: DateTime<Utc>) -> String {
    json!({
        "type": event,
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": {
            "userId": after.id,
            "username": after.username,
            "status": after.status.as_str(),
            "previousStatus": before.map(|b| b.status.as_str()),
            "statusText": after.status_text,
            "previousStatusText": before.map(|b| b.status_text.as_str()),
            "active": after.active,
            "roles": after.roles,
        }
    })
    .to_string()
}

/// The outbox rows `changes` cause, given the model as it was before them.
pub fn derive(changes: &[Change], model: &Model, now: DateTime<Utc>) -> Vec<Change> {
    if model.webhooks.is_empty() && !changes.iter().any(|c| matches!(c, Change::PutWebhook(_))) {
        return Vec::new();
    }
    // Endpoints as this batch leaves them at each point: an endpoint created in the
    // batch hears of what follows it.
    let mut hooks: HashMap<String, Arc<Webhook>> = model.webhooks.clone();
    // Each user as the batch last wrote it.
    let mut latest: HashMap<&str, &Arc<User>> = HashMap::new();
    // An endpoint sees users as a viewer who is nobody (`status::privacy`): a user who
    // hides their status from everyone is offline to it, so their changes send nothing
    // but the one that takes them out of sight.
    let private = crate::settings::Values::value(model, &crate::settings::STATUS_VISIBILITY);
    let seen = |u: &User| -> Option<User> {
        (private && privacy::hides_from_everyone(u)).then(|| privacy::redacted(u))
    };
    let mut out = Vec::new();
    for change in changes {
        match change {
            Change::PutWebhook(w) => {
                hooks.insert(w.id.clone(), w.clone());
            }
            Change::DeleteWebhook(id) => {
                hooks.remove(id);
            }
            Change::PutUser(after) => {
                let user = after;
                let before = latest
                    .get(after.id.as_str())
                    .map(|u| u.as_ref())
                    .or_else(|| model.users.get(&after.id).map(|u| u.as_ref()));
                let (before_seen, after_seen) = (before.and_then(seen), seen(user));
                let before = before_seen.as_ref().or(before);
                let after = after_seen.as_ref().unwrap_or(user);
                for event in events(before, after) {
                    let mut targets: Vec<&Arc<Webhook>> =
                        hooks.values().filter(|w| wants(w, event, after)).collect();
                    if targets.is_empty() {
                        continue;
                    }
                    targets.sort_by(|a, b| a.id.cmp(&b.id));
                    let body = payload(event, before, after, now);
                    for w in targets {
                        out.push(Change::AddDelivery(Arc::new(Delivery {
                            id: format!("msg_{}", new_id()),
                            endpoint_id: w.id.clone(),
                            user_id: after.id.clone(),
                            event: event.to_string(),
                            payload: body.clone(),
                            created_at: now,
                        })));
                    }
                }
                latest.insert(user.id.as_str(), user);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;
    use crate::store::fixtures::user;

    fn hook(id: &str, events: &[&str]) -> Webhook {
        Webhook {
            id: id.into(),
            url: "http://127.0.0.1:1/".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            user_ids: vec![],
            roles: vec![],
            active: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn with_status(u: &User, s: Status, text: &str) -> Change {
        let mut u = u.clone();
        u.status = s;
        u.status_text = text.into();
        Change::PutUser(Arc::new(u))
    }

    #[test]
    fn each_change_is_one_delivery_per_wanting_endpoint_in_order() {
        let mut m = Model::default();
        let mut alice = user("u1", "alice");
        alice.status = Status::Online;
        alice.status_text = String::new();
        m.apply(Change::PutUser(Arc::new(alice.clone())));
        m.apply(Change::PutWebhook(Arc::new(hook(
            "w1",
            &["status.changed"],
        ))));
        m.apply(Change::PutWebhook(Arc::new(hook(
            "w2",
            &["status-text.changed"],
        ))));
        let batch = vec![
            with_status(&alice, Status::Busy, ""),
            with_status(&alice, Status::Away, "lunch"),
        ];
        let out = derive(&batch, &m, Utc::now());
        let rows: Vec<(String, String)> = out
            .iter()
            .map(|c| match c {
                Change::AddDelivery(d) => (d.endpoint_id.clone(), d.event.clone()),
                _ => panic!("not a delivery"),
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("w1".into(), "status.changed".into()),
                ("w1".into(), "status.changed".into()),
                ("w2".into(), "status-text.changed".into()),
            ]
        );
    }

    /// A user who hides from everyone (presence privacy on) is offline to an endpoint:
    /// hiding sends the change to offline, a change while hidden sends nothing, and a
    /// denied list alone changes nothing for endpoints.
    #[test]
    fn an_endpoint_sees_a_user_hidden_from_everyone_offline() {
        let mut m = Model::default();
        m.apply(Change::PutSetting(
            crate::settings::Typed::definition(&crate::settings::STATUS_VISIBILITY)
                .id
                .into(),
            serde_json::json!(true),
        ));
        let mut alice = user("u1", "alice");
        alice.preferences.clear();
        alice.status = Status::Busy;
        alice.status_text = "focus".into();
        m.apply(Change::PutUser(Arc::new(alice.clone())));
        m.apply(Change::PutWebhook(Arc::new(hook(
            "w1",
            &["status.changed", "status-text.changed"],
        ))));
        let mut hidden = alice.clone();
        hidden
            .preferences
            .insert(privacy::HIDE_ALL_PREFERENCE.into(), serde_json::json!(true));
        let mut denying = alice.clone();
        denying
            .preferences
            .insert(privacy::DENIED_PREFERENCE.into(), serde_json::json!(["u2"]));
        let mut away = hidden.clone();
        away.status = Status::Away;
        let bodies = |batch: Vec<Change>| -> Vec<serde_json::Value> {
            derive(&batch, &m, Utc::now())
                .iter()
                .map(|c| match c {
                    Change::AddDelivery(d) => serde_json::from_str(&d.payload).unwrap_or_default(),
                    _ => serde_json::Value::Null,
                })
                .collect()
        };
        let got = bodies(vec![
            Change::PutUser(Arc::new(hidden)),
            Change::PutUser(Arc::new(away)),
        ]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0]["data"]["status"], "offline");
        assert_eq!(got[0]["data"]["previousStatus"], "busy");
        assert_eq!(got[1]["data"]["statusText"], "");
        denying.status = Status::Away;
        let got = bodies(vec![Change::PutUser(Arc::new(denying))]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["data"]["status"], "away");
    }

    #[test]
    fn filters_and_inactive_endpoints() {
        let mut m = Model::default();
        let mut alice = user("u1", "alice");
        alice.status = Status::Online;
        alice.roles = vec!["user".into()];
        m.apply(Change::PutUser(Arc::new(alice.clone())));
        let mut only_bob = hook("w1", &["status.changed"]);
        only_bob.user_ids = vec!["u2".into()];
        let mut admins = hook("w2", &["status.changed"]);
        admins.roles = vec!["admin".into()];
        let mut off = hook("w3", &["status.changed"]);
        off.active = false;
        for w in [only_bob, admins, off] {
            m.apply(Change::PutWebhook(Arc::new(w)));
        }
        let out = derive(&[with_status(&alice, Status::Busy, "")], &m, Utc::now());
        assert!(out.is_empty(), "{out:?}");
        let created = derive(
            &[Change::PutUser(Arc::new(user("u9", "new")))],
            &Model::default(),
            Utc::now(),
        );
        assert!(created.is_empty());
    }
}
