//! The notices besides status changes that Rocket.Chat's clients subscribe to, each a
//! `changed` frame on one stream under one event name, in the shapes Rocket.Chat's
//! `ListenersModule` sends (`apps/meteor/server/modules/listeners/listeners.module.ts`;
//! docs/decisions.md lists each shape and the file it comes from). The writer derives
//! them from the committed changes (`state::notices`); here they are only encoded,
//! once, with their keys in Rocket.Chat's order (serde_json's own objects sort keys).

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::CustomStatus;

pub const NOTIFY_USER: &str = "stream-notify-user";
pub const NOTIFY_LOGGED: &str = "stream-notify-logged";
pub const NOTIFY_ALL: &str = "stream-notify-all";

/// The event a subscription must be on to receive a notice: `private-settings-changed`
/// is only for those who may see private settings (checked when they subscribe).
pub const PRIVATE_SETTINGS_CHANGED: &str = "private-settings-changed";

/// Every (stream, event name) a notice goes out under, `<uid>/userData` aside: a
/// subscription to any other key never receives anything, so it does not make its
/// connection listen to the bus at all (the status fan-out stays as cheap as before).
pub const PRODUCED: &[(&str, &str)] = &[
    (NOTIFY_LOGGED, "updateCustomUserStatus"),
    (NOTIFY_LOGGED, "deleteCustomUserStatus"),
    (NOTIFY_LOGGED, "permissions-changed"),
    (NOTIFY_LOGGED, "roles-change"),
    (NOTIFY_LOGGED, "Users:NameChanged"),
    (NOTIFY_LOGGED, "Users:Deleted"),
    (NOTIFY_LOGGED, PRIVATE_SETTINGS_CHANGED),
    (NOTIFY_ALL, "public-settings-changed"),
];

/// One encoded `changed` frame, and the stream and event name it goes out under.
#[derive(Debug, Clone)]
pub struct Notice {
    pub stream: &'static str,
    pub event: String,
    pub frame: Utf8Bytes,
    /// The user whose record changed, when it is about one (the realtime layer reads
    /// that user's published documents again).
    pub about: Option<String>,
}

impl Notice {
    /// `{"msg":"changed","collection":<stream>,"id":"id","fields":{"eventName":…,"args":[…]}}`
    /// with `args` already encoded, comma-separated.
    fn new(stream: &'static str, event: String, args: &[String]) -> Notice {
        let frame = format!(
            r#"{{"msg":"changed","collection":{},"id":"id","fields":{{"eventName":{},"args":[{}]}}}}"#,
            js(&stream),
            js(&event),
            args.join(",")
        );
        Notice {
            stream,
            event,
            frame: frame.into(),
            about: None,
        }
    }

    fn about(mut self, uid: &str) -> Notice {
        self.about = Some(uid.to_string());
        self
    }
}

fn js(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// A JSON object whose keys keep the order they were added in.
#[derive(Default)]
pub struct Obj(Vec<(String, String)>);

impl Obj {
    pub fn new() -> Obj {
        Obj::default()
    }

    pub fn field(mut self, key: &str, value: &impl Serialize) -> Obj {
        self.0.push((key.to_string(), js(value)));
        self
    }

    /// A value already encoded (a nested `Obj`).
    pub fn raw(mut self, key: &str, encoded: String) -> Obj {
        self.0.push((key.to_string(), encoded));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn encode(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{v}", js(k)))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// A date as Meteor's EJSON carries it over DDP.
pub fn ejson_date(t: DateTime<Utc>) -> String {
    format!(r#"{{"$date":{}}}"#, t.timestamp_millis())
}

/// `stream-notify-user` `<uid>/userData`: `{"id", "diff", "type":"updated"}`, as the
/// `watch.users` listener sends a change of the user's own record (no `unset` when
/// nothing was unset).
pub fn user_data_updated(uid: &str, diff: &Obj) -> Notice {
    let payload = Obj::new()
        .field("id", &uid)
        .raw("diff", diff.encode())
        .field("type", &"updated");
    Notice::new(NOTIFY_USER, format!("{uid}/userData"), &[payload.encode()]).about(uid)
}

/// `stream-notify-user` `<uid>/userData` for a status change, as the `presence.status`
/// listener sends it: `{"type":"updated", "id", "diff", "unset"}`.
pub fn user_data_status(uid: &str, diff: &Obj, unset: &Obj) -> Notice {
    let payload = Obj::new()
        .field("type", &"updated")
        .field("id", &uid)
        .raw("diff", diff.encode())
        .raw("unset", unset.encode());
    Notice::new(NOTIFY_USER, format!("{uid}/userData"), &[payload.encode()]).about(uid)
}

/// `stream-notify-user` `<uid>/userData` when the user is deleted: `{"id", "type":"removed"}`.
pub fn user_data_removed(uid: &str) -> Notice {
    let payload = Obj::new().field("id", &uid).field("type", &"removed");
    Notice::new(NOTIFY_USER, format!("{uid}/userData"), &[payload.encode()]).about(uid)
}

/// `Users:NameChanged` `{_id, name, username}`.
pub fn name_changed(uid: &str, name: &str, username: &str) -> Notice {
    let payload = Obj::new()
        .field("_id", &uid)
        .field("name", &name)
        .field("username", &username);
    Notice::new(
        NOTIFY_LOGGED,
        "Users:NameChanged".into(),
        &[payload.encode()],
    )
}

/// `Users:Deleted` `{userId, messageErasureType}` (Rocket.Chat's default erasure type,
/// `Delete`, is the one that broadcasts).
pub fn user_deleted(uid: &str) -> Notice {
    let payload = Obj::new()
        .field("userId", &uid)
        .field("messageErasureType", &"Delete");
    Notice::new(NOTIFY_LOGGED, "Users:Deleted".into(), &[payload.encode()])
}

/// `roles-change` `{type: "added"|"removed", _id: role, u: {_id, username}}`.
pub fn role_changed(kind: &str, role: &str, uid: &str, username: &str) -> Notice {
    let u = Obj::new().field("_id", &uid).field("username", &username);
    let payload = Obj::new()
        .field("type", &kind)
        .field("_id", &role)
        .raw("u", u.encode());
    Notice::new(NOTIFY_LOGGED, "roles-change".into(), &[payload.encode()])
}

/// `updateCustomUserStatus` for a new custom status: `{userStatusData: {name,
/// statusType, _id}}`.
pub fn custom_status_created(c: &CustomStatus) -> Notice {
    let data = Obj::new()
        .field("name", &c.name)
        .field("statusType", &c.status_type.as_str())
        .field("_id", &c.id);
    custom_status("updateCustomUserStatus", data)
}

/// `updateCustomUserStatus` for a changed one: `{userStatusData: {_id, name,
/// statusType, previousName, previousStatusType}}`.
pub fn custom_status_updated(before: &CustomStatus, after: &CustomStatus) -> Notice {
    let data = Obj::new()
        .field("_id", &after.id)
        .field("name", &after.name)
        .field("statusType", &after.status_type.as_str())
        .field("previousName", &before.name)
        .field("previousStatusType", &before.status_type.as_str());
    custom_status("updateCustomUserStatus", data)
}

/// `deleteCustomUserStatus` `{userStatusData: <the deleted record>}`.
pub fn custom_status_deleted(c: &CustomStatus) -> Notice {
    let data = Obj::new()
        .field("_id", &c.id)
        .field("name", &c.name)
        .field("statusType", &c.status_type.as_str())
        .raw("_updatedAt", ejson_date(c.updated_at));
    custom_status("deleteCustomUserStatus", data)
}

fn custom_status(event: &str, data: Obj) -> Notice {
    let payload = Obj::new().raw("userStatusData", data.encode());
    Notice::new(NOTIFY_LOGGED, event.into(), &[payload.encode()])
}

/// `permissions-changed` `[clientAction, {_id, roles, _updatedAt}]`; a removed one is
/// `["removed", {_id, roles: []}]`.
pub fn permission_changed(id: &str, roles: Option<&[String]>, at: DateTime<Utc>) -> Notice {
    let (action, data) = match roles {
        Some(roles) => (
            "updated",
            Obj::new()
                .field("_id", &id)
                .field("roles", &roles)
                .raw("_updatedAt", ejson_date(at)),
        ),
        None => (
            "removed",
            Obj::new()
                .field("_id", &id)
                .field("roles", &Vec::<String>::new()),
        ),
    };
    Notice::new(
        NOTIFY_LOGGED,
        "permissions-changed".into(),
        &[js(&action), data.encode()],
    )
}

/// `[clientAction, {_id, value}]` (a removed setting: `{_id}`) on `stream-notify-all`
/// `public-settings-changed` (public settings) or `stream-notify-logged`
/// `private-settings-changed` (every setting).
pub fn setting_changed(
    public: bool,
    action: &str,
    id: &str,
    value: Option<&serde_json::Value>,
) -> Notice {
    let mut data = Obj::new().field("_id", &id);
    if let Some(v) = value {
        data = data.field("value", v);
    }
    let args = [js(&action), data.encode()];
    if public {
        Notice::new(NOTIFY_ALL, "public-settings-changed".into(), &args)
    } else {
        Notice::new(NOTIFY_LOGGED, PRIVATE_SETTINGS_CHANGED.into(), &args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    #[test]
    fn keys_keep_rocket_chats_order() {
        let c = CustomStatus {
            id: "cs1".into(),
            name: "Lunch".into(),
            status_type: Status::Away,
            updated_at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
        };
        assert_eq!(
            custom_status_created(&c).frame.as_str(),
            r#"{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{"eventName":"updateCustomUserStatus","args":[{"userStatusData":{"name":"Lunch","statusType":"away","_id":"cs1"}}]}}"#
        );
        assert_eq!(
            custom_status_deleted(&c).frame.as_str(),
            r#"{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{"eventName":"deleteCustomUserStatus","args":[{"userStatusData":{"_id":"cs1","name":"Lunch","statusType":"away","_updatedAt":{"$date":1700000000123}}}]}}"#
        );
        let diff = Obj::new().field("name", &"Al \"x\"");
        assert_eq!(
            user_data_updated("u1", &diff).frame.as_str(),
            r#"{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{"eventName":"u1/userData","args":[{"id":"u1","diff":{"name":"Al \"x\""},"type":"updated"}]}}"#
        );
    }
}
