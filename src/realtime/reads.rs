//! The read-only methods clients call at login (`listCustomUserStatus`,
//! `license:getModules`, `public-settings/get`, `permissions/get`, `getUserRoles`): their
//! answers, built from the model in the shapes Rocket.Chat's methods return, dates as
//! EJSON `{"$date": <ms>}` (what a DDP result carries). Pure: unit-tested here; the
//! dispatch and the login checks are in `methods`.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::settings::DEFINITIONS;
use crate::state::Model;

/// The roles Rocket.Chat calls public (`Authorization.getUsersFromPublicRoles`): the
/// user-scoped default roles with a description (its `upsertPermissions` gives `user`,
/// `bot`, `app`, `guest`, `anonymous` an empty one, and the room roles are not
/// user-scoped).
pub const PUBLIC_ROLES: &[&str] = &["admin", "livechat-agent", "livechat-manager"];

/// A date as EJSON writes it.
pub fn ejson_date(t: &DateTime<Utc>) -> Value {
    json!({ "$date": t.timestamp_millis() })
}

/// The EJSON date `v` is (`{"$date": <ms>}`), if it is one.
pub fn as_date(v: &Value) -> Option<DateTime<Utc>> {
    let obj = v.as_object().filter(|o| o.len() == 1)?;
    let ms = obj.get("$date")?.as_f64().filter(|n| n.is_finite())?;
    Utc.timestamp_millis_opt(ms as i64).single()
}

/// A parameter Meteor's `check(x, Match.Maybe(Date))` accepts: absent, null or a date
/// (`Ok`), anything else refused (`Err`).
pub fn maybe_date(v: Option<&Value>) -> Result<Option<DateTime<Utc>>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_date(v).map(Some).ok_or(()),
    }
}

/// `listCustomUserStatus`: every custom status, by name.
pub fn custom_statuses(m: &Model) -> Value {
    let mut all: Vec<_> = m.custom_statuses.values().collect();
    all.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    Value::Array(
        all.into_iter()
            .map(|c| {
                json!({
                    "_id": c.id,
                    "name": c.name,
                    "statusType": c.status_type,
                    "_updatedAt": ejson_date(&c.updated_at),
                })
            })
            .collect(),
    )
}

/// `public-settings/get(updatedAt?)`: the public settings (`[{_id, value}]`); with a
/// date, `{update, remove}` with those changed after it (statusd never removes one).
/// As upstream, a parameter that is not a date reads as none.
pub fn public_settings(m: &Model, since: Option<DateTime<Utc>>) -> Value {
    let value_of = |id: &str, default: Value| m.setting(id).cloned().unwrap_or(default);
    let public = DEFINITIONS.iter().filter(|d| d.public);
    match since {
        None => Value::Array(
            public
                .map(|d| json!({ "_id": d.id, "value": value_of(d.id, d.default_value()) }))
                .collect(),
        ),
        Some(since) => {
            let update: Vec<Value> = public
                .filter(|d| m.setting_updated_at(d.id) > since)
                .map(|d| {
                    json!({
                        "_id": d.id,
                        "value": value_of(d.id, d.default_value()),
                        "_updatedAt": ejson_date(&m.setting_updated_at(d.id)),
                    })
                })
                .collect();
            json!({ "update": update, "remove": [] })
        }
    }
}

/// `permissions/get(updatedAt?)`: every permission (`[{_id, roles, _updatedAt}]`); with
/// a date, `{update, remove}`: those changed after it, and those removed after it.
pub fn permissions(m: &Model, since: Option<DateTime<Utc>>) -> Value {
    let mut ids: Vec<&String> = m.permissions.keys().collect();
    ids.sort();
    let records: Vec<Value> = ids
        .into_iter()
        .map(|id| (id, m.permission_updated_at(id)))
        .filter(|(_, at)| since.is_none_or(|since| *at > since))
        .map(|(id, at)| {
            json!({
                "_id": id,
                "roles": m.permissions.get(id).map(|r| r.as_slice()).unwrap_or_default(),
                "_updatedAt": ejson_date(&at),
            })
        })
        .collect();
    match since {
        None => Value::Array(records),
        Some(since) => {
            let mut removed = m.permissions_removed_since(since);
            removed.sort();
            let remove: Vec<Value> = removed
                .into_iter()
                .map(|(id, at)| json!({ "_id": id, "_deletedAt": ejson_date(&at) }))
                .collect();
            json!({ "update": records, "remove": remove })
        }
    }
}

/// `getUserRoles`: the users holding a public role, by username, each with only its
/// public roles (`[{_id, username, roles}]`).
pub fn public_role_users(m: &Model) -> Value {
    let mut users: Vec<_> = m
        .users
        .values()
        .filter(|u| u.roles.iter().any(|r| PUBLIC_ROLES.contains(&r.as_str())))
        .collect();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    Value::Array(
        users
            .into_iter()
            .map(|u| {
                let roles: Vec<&String> = u
                    .roles
                    .iter()
                    .filter(|r| PUBLIC_ROLES.contains(&r.as_str()))
                    .collect();
                json!({ "_id": u.id, "username": u.username, "roles": roles })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_as_ejson_writes_them() {
        let t = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        assert_eq!(ejson_date(&t), json!({"$date": 1_700_000_000_123_i64}));
        assert_eq!(as_date(&ejson_date(&t)), Some(t));
        for not_a_date in [
            json!("2024-01-01"),
            json!(5),
            json!({"$date": "x"}),
            json!({"$date": 1, "x": 2}),
            json!([]),
        ] {
            assert_eq!(as_date(&not_a_date), None, "{not_a_date}");
            assert_eq!(maybe_date(Some(&not_a_date)), Err(()), "{not_a_date}");
        }
        assert_eq!(maybe_date(None), Ok(None));
        assert_eq!(maybe_date(Some(&Value::Null)), Ok(None));
        assert_eq!(maybe_date(Some(&ejson_date(&t))), Ok(Some(t)));
    }

    #[test]
    fn public_settings_with_a_date_list_only_the_changed_ones() {
        let mut m = Model {
            loaded_at: Utc.timestamp_millis_opt(1_000).unwrap(),
            ..Model::default()
        };
        let all = public_settings(&m, None);
        let all = all.as_array().unwrap();
        assert!(all.iter().all(|s| s.as_object().unwrap().len() == 2));
        assert!(all
            .iter()
            .any(|s| s == &json!({"_id": "API_Use_REST_For_DDP_Calls", "value": true})));
        assert!(!all.iter().any(|s| s["_id"] == "API_Enable_Rate_Limiter"));
        let later = Utc.timestamp_millis_opt(2_000).unwrap();
        assert_eq!(
            public_settings(&m, Some(later)),
            json!({"update": [], "remove": []})
        );
        m.apply(crate::record::Change::PutSetting(
            "Site_Name".into(),
            json!("Acme"),
        ));
        let changed = public_settings(&m, Some(later));
        assert_eq!(changed["update"].as_array().unwrap().len(), 1);
        assert_eq!(changed["update"][0]["_id"], "Site_Name");
        assert_eq!(changed["update"][0]["value"], "Acme");
    }
}
