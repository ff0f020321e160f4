//! JSON projections of a user, named after the routes that show them. The views of
//! the hot read routes (users.getStatus, users.getPresence, users.presence) are typed
//! structs borrowing from the user, serialised straight to bytes: building a
//! `serde_json::Value` tree first cost an allocation per key and per string, most of
//! the CPU of a 100-id users.presence. Fields are declared in alphabetical order,
//! the order the `Value` maps wrote, so the bytes are the same.

use serde::Serialize;
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
        "type": u.kind.as_str(),
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
#[derive(Serialize)]
pub struct Presence<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    name: &'a str,
    status: &'static str,
    #[serde(rename = "statusExpiresAt", skip_serializing_if = "Option::is_none")]
    status_expires_at: Option<String>,
    #[serde(rename = "statusSource", skip_serializing_if = "Option::is_none")]
    status_source: Option<&'a str>,
    #[serde(rename = "statusText")]
    status_text: &'a str,
    username: &'a str,
    #[serde(rename = "utcOffset")]
    utc_offset: f64,
}

pub fn presence(u: &User) -> Presence<'_> {
    Presence {
        id: &u.id,
        name: &u.name,
        status: u.status.as_str(),
        status_expires_at: u.status_expires_at.as_ref().map(iso),
        status_source: u.status_source.as_deref(),
        status_text: &u.status_text,
        username: &u.username,
        utc_offset: u.utc_offset,
    }
}

/// The users.presence answer.
#[derive(Serialize)]
pub struct PresenceList<'a> {
    pub full: bool,
    pub success: bool,
    pub users: Vec<Presence<'a>>,
}

/// The users.getStatus answer; `connectionStatus` only for the caller's own.
#[derive(Serialize)]
pub struct StatusOf<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    #[serde(rename = "connectionStatus", skip_serializing_if = "Option::is_none")]
    connection_status: Option<&'static str>,
    status: &'static str,
    #[serde(rename = "statusExpiresAt", skip_serializing_if = "Option::is_none")]
    status_expires_at: Option<String>,
    #[serde(rename = "statusSource", skip_serializing_if = "Option::is_none")]
    status_source: Option<&'a str>,
    success: bool,
}

pub fn status_of(u: &User, own: bool) -> StatusOf<'_> {
    StatusOf {
        id: &u.id,
        connection_status: own.then(|| u.status_connection.as_str()),
        status: u.status.as_str(),
        status_expires_at: u.status_expires_at.as_ref().map(iso),
        status_source: u.status_source.as_deref(),
        success: true,
    }
}

/// The users.getPresence answer; `connectionStatus` and `lastLogin` only for the
/// caller's own.
#[derive(Serialize)]
pub struct PresenceOf {
    #[serde(rename = "connectionStatus", skip_serializing_if = "Option::is_none")]
    connection_status: Option<&'static str>,
    #[serde(rename = "lastLogin", skip_serializing_if = "Option::is_none")]
    last_login: Option<String>,
    presence: &'static str,
    success: bool,
}

pub fn presence_of(u: &User, own: bool) -> PresenceOf {
    PresenceOf {
        connection_status: own.then(|| u.status_connection.as_str()),
        last_login: if own {
            u.last_login.as_ref().map(iso)
        } else {
            None
        },
        presence: u.status.as_str(),
        success: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, User};
    use chrono::{TimeZone, Utc};

    fn user(extras: bool) -> User {
        let t = |ms| Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
        User {
            id: "u1".into(),
            username: "alice".into(),
            name: "Alice \"A\" ✓".into(),
            emails: vec![],
            password_hash: None,
            roles: vec!["user".into()],
            active: true,
            kind: crate::model::UserKind::User,
            status: Status::Busy,
            status_default: Status::Busy,
            status_connection: Status::Away,
            status_text: "in a meeting".into(),
            status_source: extras.then(|| "manual".into()),
            status_expires_at: extras.then(|| t(1_700_000_000_123)),
            previous_state: None,
            utc_offset: -3.5,
            created_at: t(1_600_000_000_000),
            updated_at: t(1_600_000_000_000),
            last_login: extras.then(|| t(1_650_000_000_000)),
        }
    }

    fn text<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }

    /// The bytes the typed views write, against the JSON the contract describes
    /// (and which the `Value` maps used to build, keys in the same order).
    #[test]
    fn typed_views_write_the_contract_json() {
        let full = user(true);
        let bare = user(false);
        assert_eq!(
            text(&status_of(&full, true)),
            r#"{"_id":"u1","connectionStatus":"away","status":"busy","statusExpiresAt":"2023-11-14T22:13:20.123Z","statusSource":"manual","success":true}"#
        );
        assert_eq!(
            text(&status_of(&bare, false)),
            r#"{"_id":"u1","status":"busy","success":true}"#
        );
        assert_eq!(
            text(&presence_of(&full, true)),
            r#"{"connectionStatus":"away","lastLogin":"2022-04-15T05:20:00.000Z","presence":"busy","success":true}"#
        );
        assert_eq!(
            text(&presence_of(&full, false)),
            r#"{"presence":"busy","success":true}"#
        );
        let list = PresenceList {
            full: false,
            success: true,
            users: vec![presence(&full), presence(&bare)],
        };
        assert_eq!(
            text(&list),
            concat!(
                r#"{"full":false,"success":true,"users":["#,
                r#"{"_id":"u1","name":"Alice \"A\" ✓","status":"busy","statusExpiresAt":"2023-11-14T22:13:20.123Z","statusSource":"manual","statusText":"in a meeting","username":"alice","utcOffset":-3.5},"#,
                r#"{"_id":"u1","name":"Alice \"A\" ✓","status":"busy","statusText":"in a meeting","username":"alice","utcOffset":-3.5}"#,
                r#"]}"#
            )
        );
    }
}
