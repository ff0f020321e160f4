//! The views of a user the routes show, as typed structs borrowing from the user and
//! serialised straight to bytes: each also describes its shape in the OpenAPI document
//! (`ToSchema`), so the description is the code. (For the hot read routes,
//! users.getStatus, users.getPresence and users.presence, building a
//! `serde_json::Value` tree instead cost an allocation per key and per string, most of
//! the CPU of a 100-id users.presence.) Fields are declared in alphabetical order, the
//! order `Value` maps write, so the bytes are what they were.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::defaults::Permission;
use crate::model::{iso, Email, Status, User, UserKind};
use crate::settings::{self, Values};
use crate::state::Model;
use crate::status::last_seen::{shown, Seen, Viewer, Visibility};

/// A user: what anyone may see (`public`); the user itself and holders of
/// `view-full-other-user-info` see the optional members too (`full`), and `GET me` and
/// a login answer add `email`, `settings` and `avatarUrl` (`me`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    #[serde(rename = "_updatedAt", skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    updated_at: Option<String>,
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar_url: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    bio: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emails: Option<&'a [Email]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    last_login: Option<String>,
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    nickname: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
    /// The user's own login services, sanitised: whether a password is set, never it.
    #[serde(skip_serializing_if = "Option::is_none")]
    services: Option<Services>,
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<Preferences>,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_connection: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_default: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    status_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_source: Option<&'a str>,
    status_text: &'a str,
    /// statusd's extensions (last seen), when the caller may see them.
    #[serde(skip_serializing_if = "Option::is_none")]
    statusd: Option<StatusdUser>,
    #[serde(rename = "type")]
    kind: UserKind,
    username: &'a str,
    utc_offset: f64,
}

/// statusd's own fields of a user, in an object of their own so no Rocket.Chat field
/// can collide with them: when an offline user was last seen present and last logged
/// in (`status::last_seen` decides who sees them). Each left out when unknown.
#[derive(Serialize, ToSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusdUser {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_login: Option<Iso>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_seen: Option<Iso>,
}

/// A time, written as Rocket.Chat writes times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Iso(chrono::DateTime<chrono::Utc>);

impl Serialize for Iso {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&iso(&self.0))
    }
}

impl StatusdUser {
    pub fn of(seen: Seen) -> StatusdUser {
        StatusdUser {
            last_login: seen.last_login.map(Iso),
            last_seen: seen.last_seen.map(Iso),
        }
    }
}

impl UserView<'_> {
    /// The view as a caller the user hides their status from sees it
    /// (`status::privacy::redacted`): offline, with no text, source, expiry, last login
    /// or last seen.
    pub fn hidden(self) -> Self {
        let offline = |s: Option<Status>| s.map(|_| Status::Offline);
        UserView {
            last_login: None,
            status: Status::Offline,
            status_connection: offline(self.status_connection),
            status_default: offline(self.status_default),
            status_expires_at: None,
            status_source: None,
            status_text: "",
            statusd: None,
            ..self
        }
    }

    /// `hidden` when `shown` is false.
    pub fn shown_if(self, shown: bool) -> Self {
        if shown {
            self
        } else {
            self.hidden()
        }
    }

    /// Adds what the caller may see of statusd's extensions.
    pub fn with_statusd(self, seen: Option<Seen>) -> Self {
        UserView {
            statusd: seen.map(StatusdUser::of),
            ..self
        }
    }
}

/// What `viewer` may see of `target`'s last seen (`status::last_seen`), with the
/// workspace setting and the viewer's permission read from the model `m`.
pub fn last_seen(m: &Model, viewer: &User, target: &User) -> Option<Seen> {
    // Most users of the hot lists are not offline: nothing to look up for them.
    if target.status != Status::Offline {
        return None;
    }
    let visibility = Visibility::parse(&m.value(&settings::LAST_SEEN_VISIBILITY));
    if visibility == Visibility::Off {
        return None;
    }
    let who = Viewer {
        admin: m.has_permission(viewer, Permission::ViewFullOtherUserInfo.id()),
        own: viewer.id == target.id,
    };
    shown(visibility, who, target)
}

/// `services` as Rocket.Chat shows a user their own: `{"password": {"exists": …}}`.
#[derive(Serialize, ToSchema)]
pub struct Services {
    password: PasswordService,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordService {
    exists: bool,
}

/// The user's client preferences (none are kept: an empty object).
#[derive(Serialize, ToSchema)]
pub struct Preferences {
    #[schema(value_type = Object)]
    preferences: Map<String, Value>,
}

/// What anyone may see of a user (users.info for others, users.list).
pub fn public(u: &User) -> UserView<'_> {
    UserView {
        id: &u.id,
        updated_at: None,
        active: u.active,
        avatar_url: None,
        bio: &u.bio,
        created_at: None,
        email: None,
        emails: None,
        last_login: None,
        name: &u.name,
        nickname: &u.nickname,
        roles: None,
        services: None,
        settings: None,
        status: u.status,
        status_connection: None,
        status_default: None,
        status_expires_at: u.status_expires_at.as_ref().map(iso),
        status_source: u.status_source.as_deref(),
        status_text: &u.status_text,
        statusd: None,
        kind: u.kind,
        username: &u.username,
        utc_offset: u.utc_offset,
    }
}

/// What the user itself, or a holder of `view-full-other-user-info`, sees.
pub fn full(u: &User) -> UserView<'_> {
    UserView {
        updated_at: Some(iso(&u.updated_at)),
        created_at: Some(iso(&u.created_at)),
        emails: Some(&u.emails),
        last_login: u.last_login.as_ref().map(iso),
        roles: Some(&u.roles),
        status_connection: Some(u.status_connection),
        status_default: Some(u.status_default),
        ..public(u)
    }
}

/// What the user itself sees of itself (users.info of oneself): `full` and whether
/// it has a password.
pub fn own(u: &User) -> UserView<'_> {
    UserView {
        services: Some(Services {
            password: PasswordService {
                exists: u.password_hash.is_some(),
            },
        }),
        ..full(u)
    }
}

/// `GET /api/v1/me` and the `me` of a login answer.
/// `preferences`: what `accounts::preferences::effective` makes of the user's own and
/// the workspace defaults.
pub fn me<'a>(u: &'a User, root_url: &str, preferences: Map<String, Value>) -> UserView<'a> {
    UserView {
        email: u.first_email(),
        settings: Some(Preferences { preferences }),
        avatar_url: Some(format!(
            "{}/avatar/{}",
            root_url.trim_end_matches('/'),
            u.username
        )),
        ..own(u)
    }
}

/// An entry of `users.presence`.
#[derive(Serialize, ToSchema)]
pub struct Presence<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    name: &'a str,
    status: Status,
    #[serde(rename = "statusExpiresAt", skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    status_expires_at: Option<String>,
    #[serde(rename = "statusSource", skip_serializing_if = "Option::is_none")]
    status_source: Option<&'a str>,
    /// Left out when empty, as Rocket.Chat's projection leaves out an unset field.
    #[serde(rename = "statusText", skip_serializing_if = "str::is_empty")]
    status_text: &'a str,
    /// statusd's extensions (last seen), when the caller may see them.
    #[serde(skip_serializing_if = "Option::is_none")]
    statusd: Option<StatusdUser>,
    username: &'a str,
    #[serde(rename = "utcOffset")]
    utc_offset: f64,
}

/// An entry of `users.presence`, with what the caller may see of its last seen.
pub fn presence_seen(u: &User, seen: Option<Seen>) -> Presence<'_> {
    Presence {
        statusd: seen.map(StatusdUser::of),
        ..presence(u)
    }
}

/// An entry of `users.presence` for a user who hides their status from the caller
/// (`crate::privacy`): offline, nothing else.
pub fn presence_hidden(u: &User) -> Presence<'_> {
    Presence {
        status: Status::Offline,
        status_expires_at: None,
        status_source: None,
        status_text: "",
        statusd: None,
        ..presence(u)
    }
}

pub fn presence(u: &User) -> Presence<'_> {
    Presence {
        id: &u.id,
        name: &u.name,
        status: u.status,
        status_expires_at: u.status_expires_at.as_ref().map(iso),
        status_source: u.status_source.as_deref(),
        status_text: &u.status_text,
        statusd: None,
        username: &u.username,
        utc_offset: u.utc_offset,
    }
}

/// The users.presence answer.
#[derive(Serialize, ToSchema)]
pub struct PresenceList<'a> {
    /// True when the list holds every user who is not offline.
    pub full: bool,
    pub success: bool,
    pub users: Vec<Presence<'a>>,
}

/// The users.getStatus answer; `connectionStatus` only for the caller's own.
#[derive(Serialize, ToSchema)]
pub struct StatusOf<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    #[serde(rename = "connectionStatus", skip_serializing_if = "Option::is_none")]
    connection_status: Option<Status>,
    status: Status,
    #[serde(rename = "statusExpiresAt", skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    status_expires_at: Option<String>,
    #[serde(rename = "statusSource", skip_serializing_if = "Option::is_none")]
    status_source: Option<&'a str>,
    success: bool,
}

pub fn status_of(u: &User, own: bool) -> StatusOf<'_> {
    StatusOf {
        id: &u.id,
        connection_status: own.then_some(u.status_connection),
        status: u.status,
        status_expires_at: u.status_expires_at.as_ref().map(iso),
        status_source: u.status_source.as_deref(),
        success: true,
    }
}

/// The users.getPresence answer; `connectionStatus` and `lastLogin` only for the
/// caller's own.
#[derive(Serialize, ToSchema)]
pub struct PresenceOf {
    #[serde(rename = "connectionStatus", skip_serializing_if = "Option::is_none")]
    connection_status: Option<Status>,
    #[serde(rename = "lastLogin", skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    last_login: Option<String>,
    presence: Status,
    success: bool,
}

pub fn presence_of(u: &User, own: bool) -> PresenceOf {
    PresenceOf {
        connection_status: own.then_some(u.status_connection),
        last_login: if own {
            u.last_login.as_ref().map(iso)
        } else {
            None
        },
        presence: u.status,
        success: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn user(extras: bool) -> User {
        let t = |ms| Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
        User {
            id: "u1".into(),
            username: "alice".into(),
            name: "Alice \"A\" ✓".into(),
            bio: String::new(),
            nickname: String::new(),
            preferences: Default::default(),
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
            status_id: None,
            dnd: None,
            previous_state: None,
            utc_offset: -3.5,
            created_at: t(1_600_000_000_000),
            updated_at: t(1_600_000_000_000),
            last_login: extras.then(|| t(1_650_000_000_000)),
            last_seen: None,
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

    /// The user views write what the `json!` maps they replaced wrote: the same members,
    /// keys in the same (alphabetical) order.
    #[test]
    fn user_views_write_the_json_they_always_did() {
        let mut u = user(true);
        u.emails = vec![Email {
            address: "alice@example.com".into(),
            verified: false,
        }];
        let public_json = serde_json::json!({
            "_id": "u1", "username": "alice", "name": "Alice \"A\" ✓", "status": "busy",
            "statusText": "in a meeting", "utcOffset": -3.5, "active": true, "type": "user",
            "statusSource": "manual", "statusExpiresAt": "2023-11-14T22:13:20.123Z",
        });
        let mut full_json = public_json.clone();
        for (k, v) in [
            ("statusConnection", serde_json::json!("away")),
            ("statusDefault", serde_json::json!("busy")),
            ("roles", serde_json::json!(["user"])),
            (
                "emails",
                serde_json::json!([{"address": "alice@example.com", "verified": false}]),
            ),
            ("createdAt", serde_json::json!("2020-09-13T12:26:40.000Z")),
            ("_updatedAt", serde_json::json!("2020-09-13T12:26:40.000Z")),
            ("lastLogin", serde_json::json!("2022-04-15T05:20:00.000Z")),
        ] {
            full_json[k] = v;
        }
        let mut me_json = full_json.clone();
        me_json["email"] = serde_json::json!("alice@example.com");
        me_json["settings"] = serde_json::json!({"preferences": {"idleTimeLimit": 300}});
        me_json["avatarUrl"] = serde_json::json!("http://h/avatar/alice");
        me_json["services"] = serde_json::json!({"password": {"exists": false}});
        for (view, want) in [
            (public_view(&u), public_json),
            (full_view(&u), full_json),
            (text(&me(&u, "http://h/", prefs())), me_json),
        ] {
            assert_eq!(view, text(&want));
        }
        // Without the optional members.
        let bare = user(false);
        assert!(!text(&full(&bare)).contains("lastLogin"));
        assert!(!text(&me(&bare, "http://h", prefs())).contains("\"email\""));
    }

    fn prefs() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("idleTimeLimit".into(), Value::from(300));
        m
    }

    fn public_view(u: &User) -> String {
        text(&public(u))
    }

    fn full_view(u: &User) -> String {
        text(&full(u))
    }
}
