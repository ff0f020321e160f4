//! The webhook outbox: the deliveries a committed batch causes, derived from the batch
//! itself in the writer's commit path and committed in the same transaction, so a
//! change is never committed without its deliveries nor a delivery without its change.
//! Only the instance that commits a change derives them (peers apply the change from
//! the bus without committing), so a cluster writes each delivery once.
//!
//! Claim events come from the same user writes: the claims of a user are the active
//! one and the one waiting in the slot, of source `internal` or `external` (a user's
//! own choice is `manual`: `status.changed` tells of it), each known by its source and
//! `statusId`. One the write adds, or whose status, text or expiry it changes, is
//! `claim.set`; one it removes is `claim.ended`, with the reason the claim operation
//! gave (`Tx::put_user_after_claim`) or `expired` when its own `expiresAt` had passed.
//! A claim moving between active and waiting (displaced by a higher one, restored when
//! that ends) is neither: `status.changed` tells what the user shows.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::model::Model;
use crate::auth::secrets::new_id;
use crate::model::{Delivery, Status, User, Webhook};
use crate::record::Change;
use crate::status::claims::ClaimSource;
use crate::status::privacy;

/// A claim of a user, as the claim events tell it.
#[derive(Clone, Debug, PartialEq)]
struct ClaimView<'a> {
    source: &'a str,
    id: Option<&'a str>,
    status: Status,
    text: &'a str,
    expires_at: Option<DateTime<Utc>>,
    /// Active (what the user chose now), or waiting in the slot.
    active: bool,
}

impl ClaimView<'_> {
    fn key(&self) -> (&str, Option<&str>) {
        (self.source, self.id)
    }

    fn same_claim(&self, other: &ClaimView) -> bool {
        self.key() == other.key()
            && self.status == other.status
            && self.text == other.text
            && self.expires_at == other.expires_at
    }
}

/// The integration claims of `u` (source `internal` or `external`): the active one,
/// then the one waiting.
fn claims_of(u: &User) -> Vec<ClaimView<'_>> {
    let is_claim = |s: Option<&str>| {
        s.and_then(ClaimSource::parse)
            .is_some_and(|s| s != ClaimSource::Manual)
    };
    let mut out = Vec::new();
    if is_claim(u.status_source.as_deref()) {
        out.push(ClaimView {
            source: u.status_source.as_deref().unwrap_or_default(),
            id: u.status_id.as_deref(),
            status: u.status_default,
            text: &u.status_text,
            expires_at: u.status_expires_at,
            active: true,
        });
    }
    if let Some(p) = u
        .previous_state
        .as_ref()
        .filter(|p| is_claim(p.status_source.as_deref()))
    {
        out.push(ClaimView {
            source: p.status_source.as_deref().unwrap_or_default(),
            id: p.status_id.as_deref(),
            status: p.status_default,
            text: &p.status_text,
            expires_at: p.status_expires_at,
            active: false,
        });
    }
    out
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Standard Webhooks' `{type, timestamp, data}`.
fn envelope(event: &str, at: DateTime<Utc>, data: Value) -> String {
    json!({"type": event, "timestamp": iso(at), "data": data}).to_string()
}

/// The body of a claim event.
fn claim_payload(
    event: &str,
    user: &User,
    c: &ClaimView,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> String {
    let mut data = json!({
        "userId": user.id,
        "username": user.username,
        "source": c.source,
        "statusId": c.id,
        "status": c.status.as_str(),
        "statusText": c.text,
        "expiresAt": c.expires_at.map(iso),
        "active": c.active,
        "userStatus": user.status.as_str(),
    });
    if let (Some(reason), Some(d)) = (reason, data.as_object_mut()) {
        d.insert("reason".into(), json!(reason));
    }
    envelope(event, at, data)
}

/// One event a user write causes; its body is built only when an endpoint wants it.
enum Event<'a> {
    /// `status.changed`, `status-text.changed`, `user.created`, `user.deactivated`.
    User(&'static str),
    /// `claim.set`, or `claim.ended` with its reason.
    Claim(&'static str, ClaimView<'a>, Option<&'static str>),
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::User(e) | Event::Claim(e, ..) => e,
        }
    }

    fn body(&self, before: Option<&User>, after: &User, at: DateTime<Utc>) -> String {
        match self {
            Event::User(e) => payload(e, before, after, at),
            Event::Claim(e, c, reason) => claim_payload(e, after, c, *reason, at),
        }
    }
}

/// The events one user write causes, in the order they are delivered: the claims
/// that ended, those set (when `claims`), then what the user shows.
fn events<'a>(
    before: Option<&'a User>,
    after: &'a User,
    claims: bool,
    reason: Option<&'static str>,
    at: DateTime<Utc>,
) -> Vec<Event<'a>> {
    let Some(b) = before else {
        return vec![Event::User("user.created")];
    };
    let mut out = Vec::new();
    let (was, mut now) = if claims {
        (claims_of(b), claims_of(after))
    } else {
        (Vec::new(), Vec::new())
    };
    for c in was
        .iter()
        .filter(|c| !now.iter().any(|n| n.key() == c.key()))
    {
        let why = if c.expires_at.is_some_and(|t| t <= at) {
            "expired"
        } else {
            reason.unwrap_or("ended")
        };
        out.push(Event::Claim("claim.ended", c.clone(), Some(why)));
    }
    now.retain(|c| !was.iter().any(|w| w.same_claim(c)));
    for c in now {
        out.push(Event::Claim("claim.set", c, None));
    }
    if b.status != after.status {
        out.push(Event::User("status.changed"));
    }
    if b.status_text != after.status_text {
        out.push(Event::User("status-text.changed"));
    }
    if b.active && !after.active {
        out.push(Event::User("user.deactivated"));
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

/// The body sent for a user event.
pub fn payload(event: &str, before: Option<&User>, after: &User, at: DateTime<Utc>) -> String {
    envelope(
        event,
        at,
        json!({
            "userId": after.id,
            "username": after.username,
            "status": after.status.as_str(),
            "previousStatus": before.map(|b| b.status.as_str()),
            "statusText": after.status_text,
            "previousStatusText": before.map(|b| b.status_text.as_str()),
            "active": after.active,
            "roles": after.roles,
        }),
    )
}

/// The outbox rows `changes` cause, given the model as it was before them. `reasons`
/// are (index in `changes`, why claims went away) of the writes claim operations made.
pub fn derive(
    changes: &[Change],
    reasons: &[(usize, &'static str)],
    model: &Model,
    now: DateTime<Utc>,
) -> Vec<Change> {
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
    for (i, change) in changes.iter().enumerate() {
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
                    .copied()
                    .map(|u| u.as_ref())
                    .or_else(|| model.users.get(&after.id).map(|u| u.as_ref()));
                latest.insert(user.id.as_str(), user);
                if hooks.is_empty() {
                    continue;
                }
                let (before_seen, after_seen) = (before.and_then(seen), seen(user));
                // A user hidden from everyone has no claims to an endpoint: going into
                // or out of hiding is told by `status.changed` alone.
                let claims = before_seen.is_none() && after_seen.is_none();
                let before = before_seen.as_ref().or(before);
                let after = after_seen.as_ref().unwrap_or(user);
                // Pushed in order of the writes: the one for this write, if any.
                let reason = reasons
                    .binary_search_by_key(&i, |(at, _)| *at)
                    .ok()
                    .map(|k| reasons[k].1);
                for event in events(before, after, claims, reason, now) {
                    let name = event.name();
                    let mut targets: Vec<&Arc<Webhook>> =
                        hooks.values().filter(|w| wants(w, name, after)).collect();
                    if targets.is_empty() {
                        continue;
                    }
                    targets.sort_by(|a, b| a.id.cmp(&b.id));
                    let body = event.body(before, after, now);
                    for w in targets {
                        out.push(Change::AddDelivery(Arc::new(Delivery {
                            id: format!("msg_{}", new_id()),
                            endpoint_id: w.id.clone(),
                            user_id: after.id.clone(),
                            event: name.to_string(),
                            payload: body.clone(),
                            created_at: now,
                        })));
                    }
                }
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
        let out = derive(&batch, &[], &m, Utc::now());
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

    /// A model with presence privacy (`Accounts_StatusVisibility_Enabled`) on.
    fn with_privacy_on() -> Model {
        let mut m = Model::default();
        m.apply(Change::PutSetting(
            crate::settings::Typed::definition(&crate::settings::STATUS_VISIBILITY)
                .id
                .into(),
            serde_json::json!(true),
        ));
        m
    }

    /// A user who hides from everyone (presence privacy on) is offline to an endpoint:
    /// hiding sends the change to offline, a change while hidden sends nothing, and a
    /// denied list alone changes nothing for endpoints.
    #[test]
    fn an_endpoint_sees_a_user_hidden_from_everyone_offline() {
        let mut m = with_privacy_on();
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
            derive(&batch, &[], &m, Utc::now())
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
        let out = derive(
            &[with_status(&alice, Status::Busy, "")],
            &[],
            &m,
            Utc::now(),
        );
        assert!(out.is_empty(), "{out:?}");
        let created = derive(
            &[Change::PutUser(Arc::new(user("u9", "new")))],
            &[],
            &Model::default(),
            Utc::now(),
        );
        assert!(created.is_empty());
    }

    fn claimed(u: &User, source: &str, id: &str, s: Status, text: &str) -> User {
        let mut u = u.clone();
        u.status_source = Some(source.into());
        u.status_id = Some(id.into());
        u.status_default = s;
        u.status = s;
        u.status_text = text.into();
        u.status_expires_at = None;
        u.previous_state = None;
        u
    }

    /// (event, statusId, reason) of the deliveries.
    fn claim_rows(out: &[Change]) -> Vec<(String, String, String)> {
        out.iter()
            .filter_map(|c| match c {
                Change::AddDelivery(d) => {
                    let v: Value = serde_json::from_str(&d.payload).unwrap();
                    Some((
                        d.event.clone(),
                        v["data"]["statusId"].as_str().unwrap_or("").to_string(),
                        v["data"]["reason"].as_str().unwrap_or("").to_string(),
                    ))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn claims_set_and_ended_with_their_reason() {
        use crate::model::PreviousState;
        let mut m = Model::default();
        let mut alice = user("u1", "alice");
        alice.status = Status::Online;
        alice.status_source = Some("manual".into());
        alice.status_expires_at = None;
        alice.previous_state = None;
        m.apply(Change::PutUser(Arc::new(alice.clone())));
        m.apply(Change::PutWebhook(Arc::new(hook(
            "w1",
            &["claim.set", "claim.ended"],
        ))));
        let row = |e: &str, id: &str, why: &str| (e.to_string(), id.to_string(), why.to_string());
        // A manual choice is not a claim; an external one is.
        let cal = claimed(&alice, "external", "cal-1", Status::Busy, "meeting");
        let out = derive(
            &[Change::PutUser(Arc::new(cal.clone()))],
            &[],
            &m,
            Utc::now(),
        );
        assert_eq!(claim_rows(&out), [row("claim.set", "cal-1", "")]);
        let body: Value = match &out[0] {
            Change::AddDelivery(d) => serde_json::from_str(&d.payload).unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(body["type"], "claim.set");
        assert_eq!(body["data"]["source"], "external");
        assert_eq!(body["data"]["status"], "busy");
        assert_eq!(body["data"]["statusText"], "meeting");
        assert_eq!(body["data"]["active"], true);
        assert_eq!(body["data"]["expiresAt"], Value::Null);
        m.apply(Change::PutUser(Arc::new(cal.clone())));
        // An internal claim over it: set; the external one waits (no event).
        let mut dnd = claimed(&cal, "internal", "statusd.dnd", Status::Busy, "focus");
        dnd.previous_state = Some(PreviousState {
            status_default: Status::Busy,
            status_text: "meeting".into(),
            status_source: Some("external".into()),
            status_expires_at: None,
            status_id: Some("cal-1".into()),
        });
        let batch = vec![Change::PutUser(Arc::new(dnd.clone()))];
        let out = derive(&batch, &[(0, "replaced")], &m, Utc::now());
        assert_eq!(claim_rows(&out), [row("claim.set", "statusd.dnd", "")]);
        m.apply(batch[0].clone());
        // It ends: the external one comes back (no event for it).
        let out = derive(
            &[Change::PutUser(Arc::new(cal.clone()))],
            &[(0, "ended")],
            &m,
            Utc::now(),
        );
        assert_eq!(
            claim_rows(&out),
            [row("claim.ended", "statusd.dnd", "ended")]
        );
        // Cleared: both go, in one write; the same claim re-set with new text is a set.
        let mut reset = alice.clone();
        reset.status_source = None;
        let out = derive(
            &[Change::PutUser(Arc::new(reset))],
            &[(0, "cleared")],
            &m,
            Utc::now(),
        );
        assert_eq!(
            claim_rows(&out),
            [
                row("claim.ended", "statusd.dnd", "cleared"),
                row("claim.ended", "cal-1", "cleared")
            ]
        );
        let mut moved = dnd.clone();
        moved.status_text = "deep focus".into();
        let out = derive(&[Change::PutUser(Arc::new(moved))], &[], &m, Utc::now());
        assert_eq!(claim_rows(&out), [row("claim.set", "statusd.dnd", "")]);
        // A claim whose expiry passed ended as expired, whatever ended it.
        let mut temp = dnd.clone();
        temp.status_expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
        m.apply(Change::PutUser(Arc::new(temp)));
        let out = derive(
            &[Change::PutUser(Arc::new(cal))],
            &[(0, "ended")],
            &m,
            Utc::now(),
        );
        assert_eq!(
            claim_rows(&out),
            [row("claim.ended", "statusd.dnd", "expired")]
        );
    }

    /// A user hidden from everyone (presence privacy on) has no claims to an endpoint.
    #[test]
    fn no_claim_events_about_a_user_hidden_from_everyone() {
        let mut m = with_privacy_on();
        let mut alice = user("u1", "alice");
        alice.preferences.clear();
        alice.status_source = None;
        alice.status_expires_at = None;
        alice.previous_state = None;
        alice
            .preferences
            .insert(privacy::HIDE_ALL_PREFERENCE.into(), serde_json::json!(true));
        m.apply(Change::PutUser(Arc::new(alice.clone())));
        m.apply(Change::PutWebhook(Arc::new(hook(
            "w1",
            &["claim.set", "claim.ended"],
        ))));
        let cal = claimed(&alice, "external", "cal-1", Status::Busy, "meeting");
        let out = derive(
            &[Change::PutUser(Arc::new(cal.clone()))],
            &[],
            &m,
            Utc::now(),
        );
        assert!(out.is_empty(), "{out:?}");
        // Coming out of hiding with the claim on is no claim.set either.
        let mut shown = cal;
        shown.preferences.clear();
        let out = derive(&[Change::PutUser(Arc::new(shown))], &[], &m, Utc::now());
        assert!(out.is_empty(), "{out:?}");
    }
}
