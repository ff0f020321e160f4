//! JSON projections of a user, named after the routes that show them.

use serde_json::{json, Map, Value};

use crate::model::{iso, User};

fn insert_status_extras(obj: &mut Map<String, Value>, u: &User) {
    if let Some(src) = &u.status_source {
        obj.insert("statusSource".into(), json!(src));
    }
    if let Some(at) = &u.status_expires_at {
        obj.insert("statusExpiresAt".into(), json!(iso(at)));
    }
}

fn emails(u: &User) -> Value {
    json!(u
        .emails
        .iter()
        .map(|e| json!({"address": e.address, "verified": e.verified}))
        .collect::<Vec<_>>())
}

/// What anyone may see of a user (users.info for others, users.list).
pub fn public(u: &User) -> Value {
    let mut v = json!({
        "_id": u.id,
        "username": u.username,
        "name": u.name,
        "status": u.status.as_str(),
        "statusText": u.status_text,
        "utcOffset": u.utc_offset,
        "active": u.active,
        "type": u.kind,
    });
    if let Some(obj) = v.as_object_mut() {
        insert_status_extras(obj, u);
    }
    v
}

/// What the user itself, or a holder of `view-full-other-user-info`, sees.
pub fn full(u: &User) -> Value {
    let mut v = public(u);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "statusConnection".into(),
            json!(u.status_connection.as_str()),
        );
        obj.insert("statusDefault".into(), json!(u.status_default.as_str()));
        obj.insert("roles".into(), json!(u.roles));
        obj.insert("emails".into(), emails(u));
        obj.insert("createdAt".into(), json!(iso(&u.created_at)));
        obj.insert("_updatedAt".into(), json!(iso(&u.updated_at)));
        if let Some(t) = &u.last_login {
            obj.insert("lastLogin".into(), json!(iso(t)));
        }
    }
    v
}

/// `GET /api/v1/me` and the `me` of a login answer.
pub fn me(u: &User, root_url: &str) -> Value {
    let mut v = full(u);
    if let Some(obj) = v.as_object_mut() {
        if let Some(email) = u.first_email() {
            obj.insert("email".into(), json!(email));
        }
        obj.insert("settings".into(), json!({"preferences": {}}));
        obj.insert(
            "avatarUrl".into(),
            json!(format!(
                "{}/avatar/{}",
                root_url.trim_end_matches('/'),
                u.username
            )),
        );
    }
    v
}

/// An entry of `users.presence`.
pub fn presence(u: &User) -> Value {
    let mut v = json!({
        "_id": u.id,
        "username": u.username,
        "name": u.name,
        "status": u.status.as_str(),
        "statusText": u.status_text,
        "utcOffset": u.utc_offset,
    });
    if let Some(obj) = v.as_object_mut() {
        insert_status_extras(obj, u);
    }
    v
}
