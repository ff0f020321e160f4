//! A user's preferences (Rocket.Chat's `settings.preferences`): which keys a client may
//! set, of which type, and how big they may be; how a change merges into what is kept;
//! what a client reads back. REST `users.setPreferences` / `users.getPreferences` and
//! `GET me` use these rules.
//!
//! The keys and their types are Rocket.Chat's: the body schema of `users.setPreferences`
//! (`packages/rest-typings/src/v1/users/UsersSetPreferenceParamsPOST.ts`, ajv with
//! `additionalProperties: false`) and the method `saveUserPreferences`
//! (`apps/meteor/server/methods/saveUserPreferences.ts`, which also takes
//! `idleTimeLimit`). A key Rocket.Chat does not know is refused as its ajv refuses it,
//! so a caller cannot add keys of its own; on top of that statusd bounds every value
//! (`MAX_TEXT`, `MAX_ITEMS`) and the whole (`MAX_STORED`), so no caller can grow what is
//! kept without bound. A value is kept as given (`null` too, as Rocket.Chat's `$set`),
//! merged key by key over what the user had.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::User;
use crate::settings::{self, Values};
use crate::state::{Model, Tx};
use crate::status::privacy;

/// The longest text a preference (or an item of a list) may hold, in characters.
pub const MAX_TEXT: usize = 256;
/// The most items a list preference (`highlights`, `dontAskAgainList`, …) may hold.
pub const MAX_ITEMS: usize = 100;
/// The most a user's preferences may take, serialised as JSON, in bytes.
pub const MAX_STORED: usize = 32 * 1024;

/// What a key holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Bool,
    Number,
    Text,
    /// One of these texts.
    OneOf(&'static [&'static str]),
    /// A list of texts.
    Texts,
    /// A list of users, by username or id (`status::privacy::DENIED_PREFERENCE`), of at
    /// most `privacy::MAX_DENIED`.
    Users,
    /// A list of objects with these text (`true`: or boolean) members.
    Objects(&'static [(&'static str, Item)]),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Item {
    Text,
    Bool,
}

/// Every key a client may set, with its type (Rocket.Chat's schema, plus `idleTimeLimit`
/// that its method takes and every client sends).
const KEYS: &[(&str, Shape)] = &[
    ("newRoomNotification", Shape::Text),
    ("newMessageNotification", Shape::Text),
    ("clockMode", Shape::Number),
    ("useEmojis", Shape::Bool),
    ("convertAsciiEmoji", Shape::Bool),
    (
        "alsoSendThreadToChannel",
        Shape::OneOf(&["default", "always", "never"]),
    ),
    ("saveMobileBandwidth", Shape::Bool),
    ("collapseMediaByDefault", Shape::Bool),
    ("autoImageLoad", Shape::Bool),
    ("emailNotificationMode", Shape::Text),
    ("unreadAlert", Shape::Bool),
    ("notificationsSoundVolume", Shape::Number),
    ("desktopNotifications", Shape::Text),
    ("pushNotifications", Shape::Text),
    ("enableAutoAway", Shape::Bool),
    ("idleTimeLimit", Shape::Number),
    ("highlights", Shape::Texts),
    ("showThreadsInMainChannel", Shape::Bool),
    ("desktopNotificationRequireInteraction", Shape::Bool),
    ("hideUsernames", Shape::Bool),
    ("hideRoles", Shape::Bool),
    ("displayAvatars", Shape::Bool),
    ("hideFlexTab", Shape::Bool),
    ("sendOnEnter", Shape::Text),
    ("language", Shape::Text),
    ("sidebarShowFavorites", Shape::Bool),
    ("sidebarShowUnread", Shape::Bool),
    ("sidebarSortby", Shape::Text),
    ("sidebarViewMode", Shape::Text),
    ("sidebarDisplayAvatar", Shape::Bool),
    ("sidebarGroupByType", Shape::Bool),
    ("muteFocusedConversations", Shape::Bool),
    (
        "dontAskAgainList",
        Shape::Objects(&[("action", Item::Text), ("label", Item::Text)]),
    ),
    (
        "featuresPreview",
        Shape::Objects(&[("name", Item::Text), ("value", Item::Bool)]),
    ),
    ("themeAppearence", Shape::Text),
    ("fontSize", Shape::Text),
    ("receiveLoginDetectionEmail", Shape::Bool),
    ("notifyCalendarEvents", Shape::Bool),
    ("idleTimeLimitH", Shape::Number),
    ("idleTimeLimitM", Shape::Number),
    ("idleTimeLimitS", Shape::Number),
    ("omnichannelTranscriptEmail", Shape::Bool),
    ("omnichannelTranscriptPDF", Shape::Bool),
    ("omnichannelHideConversationAfterClosing", Shape::Bool),
    ("enableMobileRinging", Shape::Bool),
    ("mentionsWithSymbol", Shape::Bool),
    // statusd's own: hide my last seen from everyone but admins (`status::last_seen`).
    (crate::status::last_seen::HIDE_PREFERENCE, Shape::Bool),
    // Presence privacy (`status::privacy`): Rocket.Chat 8.8's list of users denied the
    // status, and statusd's own "hide it from everyone".
    (privacy::DENIED_PREFERENCE, Shape::Users),
    (privacy::HIDE_ALL_PREFERENCE, Shape::Bool),
];

/// Rocket.Chat's refusal of a body its ajv schema does not accept: the first error's
/// message, code `invalid-params`.
pub fn invalid(reason: &str) -> Error {
    Error::refused("invalid-params", reason)
}

fn text_ok(s: &str) -> Result<()> {
    if s.chars().count() > MAX_TEXT {
        return Err(invalid(&format!(
            "must NOT have more than {MAX_TEXT} characters"
        )));
    }
    Ok(())
}

fn check_value(shape: Shape, v: &Value) -> Result<()> {
    if v.is_null() {
        // Every member of Rocket.Chat's schema is `nullable`.
        return Ok(());
    }
    match shape {
        Shape::Bool if !v.is_boolean() => Err(invalid("must be boolean")),
        Shape::Number if !v.is_number() => Err(invalid("must be number")),
        Shape::Text | Shape::OneOf(_) => {
            let s = v.as_str().ok_or_else(|| invalid("must be string"))?;
            if let Shape::OneOf(allowed) = shape {
                if !allowed.contains(&s) {
                    return Err(invalid("must be equal to one of the allowed values"));
                }
            }
            text_ok(s)
        }
        Shape::Texts | Shape::Objects(_) | Shape::Users => {
            let items = v.as_array().ok_or_else(|| invalid("must be array"))?;
            let max = if shape == Shape::Users {
                privacy::MAX_DENIED
            } else {
                MAX_ITEMS
            };
            if items.len() > max {
                return Err(invalid(&format!("must NOT have more than {max} items")));
            }
            for item in items {
                match shape {
                    Shape::Objects(members) => check_object(members, item)?,
                    _ => text_ok(item.as_str().ok_or_else(|| invalid("must be string"))?)?,
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// An item of a list of objects: its known members typed; others (which Rocket.Chat's
/// schema lets through) refused, since nothing reads them.
fn check_object(members: &[(&str, Item)], item: &Value) -> Result<()> {
    let obj = item.as_object().ok_or_else(|| invalid("must be object"))?;
    for (k, v) in obj {
        match members.iter().find(|(name, _)| name == k) {
            None => return Err(invalid("must NOT have additional properties")),
            Some((_, Item::Bool)) if !v.is_boolean() => return Err(invalid("must be boolean")),
            Some((_, Item::Text)) => {
                text_ok(v.as_str().ok_or_else(|| invalid("must be string"))?)?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The `data` of a setPreferences body, checked: an object of known keys, each of its
/// type and within the bounds. Pure.
pub fn check(data: &Value) -> Result<Map<String, Value>> {
    let obj = data.as_object().ok_or_else(|| invalid("must be object"))?;
    for (k, v) in obj {
        let shape = KEYS
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, s)| *s)
            .ok_or_else(|| invalid("must NOT have additional properties"))?;
        check_value(shape, v)?;
    }
    Ok(obj.clone())
}

/// `prefs` merged over what `user` has, or refused when the result would be too big.
pub fn merged(user: &User, prefs: Map<String, Value>) -> Result<Map<String, Value>> {
    let mut all = user.preferences.clone();
    all.extend(prefs);
    let size = serde_json::to_string(&all).map_or(usize::MAX, |s| s.len());
    if size > MAX_STORED {
        return Err(invalid(&format!(
            "must NOT have more than {MAX_STORED} bytes of preferences"
        )));
    }
    Ok(all)
}

/// Sets the preferences of `user_id` (a writer job): the checked `prefs` merged over
/// what they had. Returns the user as saved.
pub fn save(tx: &mut Tx, user_id: &str, mut prefs: Map<String, Value>) -> Result<User> {
    let current = tx.user(user_id).ok_or_else(not_found)?;
    if let Some(Value::Array(named)) = prefs.get(privacy::DENIED_PREFERENCE) {
        let ids = denied_ids(tx, user_id, named);
        prefs.insert(privacy::DENIED_PREFERENCE.into(), Value::from(ids));
    }
    let mut u = (*current).clone();
    u.preferences = merged(&current, prefs)?;
    if u.preferences != current.preferences {
        u.updated_at = tx.now;
        tx.put_user(u.clone());
    }
    Ok(u)
}

/// The users a denied list names, as ids (Rocket.Chat's `resolveUsersByUsernames`: a
/// rename must not lift a denial): each entry a username or else a user id; names of
/// nobody, the user themself and repeats are left out.
fn denied_ids(tx: &Tx, user_id: &str, named: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for name in named.iter().filter_map(Value::as_str) {
        let found = tx.user_by_username(name).or_else(|| tx.user(name));
        if let Some(u) = found {
            if u.id != user_id && !ids.contains(&u.id) {
                ids.push(u.id.clone());
            }
        }
    }
    ids
}

/// The preferences of a user imported from Rocket.Chat (`settings.preferences`): each key
/// kept when setPreferences would take it alone; the names of the others, left out. Over
/// `MAX_STORED` together, none is kept (rather than an arbitrary part).
pub fn from_export(value: &Value) -> (Map<String, Value>, Vec<String>) {
    let mut kept = Map::new();
    let mut dropped = Vec::new();
    for (k, v) in value.as_object().into_iter().flatten() {
        let one = Value::Object(Map::from_iter([(k.clone(), v.clone())]));
        match check(&one) {
            Ok(m) => kept.extend(m),
            Err(_) => dropped.push(k.clone()),
        }
    }
    if serde_json::to_string(&kept).map_or(usize::MAX, |s| s.len()) > MAX_STORED {
        dropped.extend(kept.keys().cloned());
        kept.clear();
    }
    (kept, dropped)
}

/// Rocket.Chat's answer to a setPreferences `userId` that names nobody.
pub fn not_found() -> Error {
    Error::refused(
        "error-invalid-user",
        "The optional \"userId\" param provided does not match any users",
    )
}

/// Rocket.Chat's answer when the caller names another user without
/// `edit-other-user-info`.
pub fn not_allowed() -> Error {
    Error::refused("error-action-not-allowed", "Editing user is not allowed")
}

/// What a client reads (`users.getPreferences`, `settings.preferences` of `GET me`):
/// the workspace defaults (`Accounts_Default_User_Preferences_*`) with the user's own
/// values over them; the denied list by username, as Rocket.Chat's user picker reads
/// it (`resolveUsersByIds`; ids of users deleted since left out).
pub fn effective(user: &User, workspace: &Model) -> Map<String, Value> {
    let mut all = Map::new();
    all.insert(
        "enableAutoAway".into(),
        Value::Bool(workspace.value(&settings::DEFAULT_ENABLE_AUTO_AWAY)),
    );
    all.insert(
        "idleTimeLimit".into(),
        Value::from(workspace.value(&settings::DEFAULT_IDLE_TIME_LIMIT)),
    );
    for (k, v) in &user.preferences {
        all.insert(k.clone(), v.clone());
    }
    if all.contains_key(privacy::DENIED_PREFERENCE) {
        let names: Vec<String> = privacy::denied_ids(user)
            .filter_map(|id| workspace.users.get(id))
            .map(|u| u.username.clone())
            .collect();
        all.insert(privacy::DENIED_PREFERENCE.into(), Value::from(names));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(data: Value) -> String {
        match check(&data) {
            Err(e) => e.to_string(),
            Ok(m) => panic!("accepted {m:?}"),
        }
    }

    #[test]
    fn known_keys_of_their_type_are_kept_as_given() {
        let data = json!({"enableAutoAway": false, "idleTimeLimit": 1.5, "highlights": ["a", "ü"],
            "alsoSendThreadToChannel": "never", "language": null,
            "dontAskAgainList": [{"action": "a", "label": "b"}],
            "featuresPreview": [{"name": "quickReactions", "value": true}]});
        assert_eq!(Value::Object(check(&data).unwrap()), data);
        assert!(check(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn anything_else_is_refused_as_rocket_chats_ajv_words_it() {
        let r = "[invalid-params]";
        assert_eq!(refusal(json!([])), format!("must be object {r}"));
        assert_eq!(refusal(json!("x")), format!("must be object {r}"));
        assert_eq!(
            refusal(json!({"mine": 1})),
            format!("must NOT have additional properties {r}")
        );
        assert_eq!(
            refusal(json!({"enableAutoAway": "yes"})),
            format!("must be boolean {r}")
        );
        assert_eq!(
            refusal(json!({"idleTimeLimit": "300"})),
            format!("must be number {r}")
        );
        assert_eq!(
            refusal(json!({"language": 1})),
            format!("must be string {r}")
        );
        assert_eq!(
            refusal(json!({"highlights": "a"})),
            format!("must be array {r}")
        );
        assert_eq!(
            refusal(json!({"highlights": [1]})),
            format!("must be string {r}")
        );
        assert_eq!(
            refusal(json!({"alsoSendThreadToChannel": "sometimes"})),
            format!("must be equal to one of the allowed values {r}")
        );
        assert_eq!(
            refusal(json!({"dontAskAgainList": [{"action": "a", "x": "y"}]})),
            format!("must NOT have additional properties {r}")
        );
    }

    #[test]
    fn values_are_bounded() {
        assert!(check(&json!({"language": "x".repeat(MAX_TEXT)})).is_ok());
        assert_eq!(
            refusal(json!({"language": "x".repeat(MAX_TEXT + 1)})),
            "must NOT have more than 256 characters [invalid-params]"
        );
        let many: Vec<String> = (0..=MAX_ITEMS).map(|i| i.to_string()).collect();
        assert_eq!(
            refusal(json!({ "highlights": many })),
            "must NOT have more than 100 items [invalid-params]"
        );
        assert_eq!(
            refusal(json!({"highlights": ["x".repeat(MAX_TEXT + 1)]})),
            "must NOT have more than 256 characters [invalid-params]"
        );
    }

    #[test]
    fn an_export_keeps_the_keys_setpreferences_takes() {
        let (kept, dropped) = from_export(&json!({"enableAutoAway": false, "idleTimeLimit": 600,
            "sidebarHideAvatar": true, "language": "x".repeat(MAX_TEXT + 1), "highlights": ["a"]}));
        assert_eq!(
            Value::Object(kept),
            json!({"enableAutoAway": false, "idleTimeLimit": 600, "highlights": ["a"]})
        );
        assert_eq!(dropped, vec!["language", "sidebarHideAvatar"]);
        assert_eq!(from_export(&json!("x")), (Map::new(), vec![]));
    }

    #[test]
    fn the_whole_is_bounded_too() {
        let mut u = crate::accounts::users::new_user("a", "A", chrono::Utc::now());
        let big: Vec<String> = (0..MAX_ITEMS).map(|_| "e".repeat(MAX_TEXT)).collect();
        let one = check(&json!({ "highlights": big })).unwrap();
        u.preferences = merged(&u, one).unwrap();
        let two = check(&json!({ "dontAskAgainList": (0..MAX_ITEMS)
            .map(|_| json!({"action": "é".repeat(MAX_TEXT), "label": "é".repeat(MAX_TEXT)}))
            .collect::<Vec<_>>() }))
        .unwrap();
        assert!(merged(&u, two)
            .unwrap_err()
            .to_string()
            .contains("bytes of preferences"));
    }
}
