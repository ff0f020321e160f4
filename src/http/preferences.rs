//! A user's preferences: `POST users.setPreferences` and `GET users.getPreferences`,
//! as Rocket.Chat's routes (`apps/meteor/app/api/server/v1/users.ts`) answer them. The
//! rules (which keys, their types and bounds, the merge) are `accounts::preferences`.
//!
//! Who may call: any logged-in user, for themselves; another user's preferences only
//! with `edit-other-user-info` (Rocket.Chat's check), and reading is always one's own.
//! A hostile caller can only set Rocket.Chat's known keys, each bounded, the whole
//! capped (`preferences::MAX_STORED`), within the per-user rate limit.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{parse_json, Caller, RawBody};
use super::reply::ok;
use crate::accounts::preferences::{self, invalid};
use crate::app::Ctx;
use crate::auth::defaults::Permission;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(set_preferences))
        .routes(routes!(get_preferences))
}

/// `{"userId"?: …, "data": {…}}`: whose preferences (the caller's when absent) and the
/// keys to set, each merged over what the user had.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct SetPreferencesRequest {
    user_id: Option<String>,
    /// Rocket.Chat's preference keys (`enableAutoAway`, `idleTimeLimit` in seconds,
    /// `highlights`, …), each of its type; no others. Presence privacy:
    /// `statusVisibilityDenied` (usernames or user ids, at most 1000; kept as ids, read
    /// back by `users.getPreferences` as usernames) and `statusdHideStatus` (boolean).
    #[schema(value_type = Object)]
    data: Value,
}

/// The body read as Rocket.Chat's ajv schema reads it, with its first error's words:
/// the target's id (None: the caller) and the checked keys. Pure.
pub fn read_set_preferences(
    body: &Value,
) -> Result<(Option<String>, Map<String, Value>), crate::error::Error> {
    let obj = body.as_object().ok_or_else(|| invalid("must be object"))?;
    let data = obj
        .get("data")
        .ok_or_else(|| invalid("must have required property 'data'"))?;
    if obj.keys().any(|k| k != "data" && k != "userId") {
        return Err(invalid("must NOT have additional properties"));
    }
    let user_id = match obj.get("userId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("must be string")),
    };
    Ok((user_id, preferences::check(data)?))
}

/// The raw body of `users.setPreferences` to the target's id and the checked keys, with
/// the answers a client gets: the whole of its input handling, pure (the
/// `set_preferences_body` fuzz target runs exactly this).
pub fn parse_set_preferences_body(
    bytes: &[u8],
) -> Result<(Option<String>, Map<String, Value>), super::error::ApiError> {
    Ok(read_set_preferences(&parse_json(bytes)?)?)
}

/// `{"user": {"_id", "settings": {"preferences": {…}}}, "success": true}`: the user's
/// own preferences as now kept (no defaults; `statusVisibilityDenied` as ids), as
/// Rocket.Chat answers.
#[derive(Serialize, ToSchema)]
pub struct SetPreferencesBody {
    success: bool,
    user: PreferencesUser,
}

#[derive(Serialize, ToSchema)]
pub struct PreferencesUser {
    #[serde(rename = "_id")]
    id: String,
    settings: PreferencesSettings,
}

#[derive(Serialize, ToSchema)]
pub struct PreferencesSettings {
    #[schema(value_type = Object)]
    preferences: Map<String, Value>,
}

/// Sets a user's preferences: one's own, or another's with `edit-other-user-info`.
#[utoipa::path(post, path = "/api/v1/users.setPreferences", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = SetPreferencesRequest,
    responses(
        (status = 200, description = "The user's preferences as now kept",
         body = SetPreferencesBody),
        (status = 400, description = "invalid-params (a body of the wrong shape, an unknown \
            key, a value of the wrong type or too big), error-action-not-allowed (another \
            user without edit-other-user-info), error-invalid-user (nobody has that id)",
         body = super::schema::ErrorBody),
        (status = 503, description = "The change could not be committed",
         body = super::schema::ErrorBody),
    ))]
async fn set_preferences(
    State(app): State<Ctx>,
    caller: Caller,
    body: RawBody,
) -> ApiResult<Response> {
    let (user_id, prefs) = parse_set_preferences_body(&body.bytes)?;
    let target = match user_id.filter(|id| !id.is_empty()) {
        Some(id) if id != caller.user.id => {
            if !app.has_permission(&caller.user, Permission::EditOtherUserInfo) {
                return Err(preferences::not_allowed().into());
            }
            id
        }
        _ => caller.user.id.clone(),
    };
    let user = app
        .writer
        .run(move |tx| preferences::save(tx, &target, prefs))
        .await?;
    Ok(ok(&SetPreferencesBody {
        success: true,
        user: PreferencesUser {
            id: user.id,
            settings: PreferencesSettings {
                preferences: user.preferences,
            },
        },
    }))
}

/// `{"preferences": {…}, "success": true}`.
#[derive(Serialize, ToSchema)]
pub struct GetPreferencesBody {
    #[schema(value_type = Object)]
    preferences: Map<String, Value>,
    success: bool,
}

/// The caller's preferences: the workspace defaults
/// (`Accounts_Default_User_Preferences_*`) with their own values over them.
#[utoipa::path(get, path = "/api/v1/users.getPreferences", tag = "users",
    security(("userId" = [], "authToken" = [])),
    responses((status = 200, description = "The caller's preferences", body = GetPreferencesBody)))]
async fn get_preferences(State(app): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    let m = app.model.read();
    let user = m.users.get(&caller.user.id).unwrap_or(&caller.user);
    Ok(ok(&GetPreferencesBody {
        preferences: preferences::effective(user, &m),
        success: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(body: Value) -> String {
        read_set_preferences(&body).unwrap_err().to_string()
    }

    #[test]
    fn bodies_read_as_rocket_chats_schema() {
        let (id, data) =
            read_set_preferences(&json!({"userId": "u", "data": {"idleTimeLimit": 2}})).unwrap();
        assert_eq!(id.as_deref(), Some("u"));
        assert_eq!(Value::Object(data), json!({"idleTimeLimit": 2}));
        assert_eq!(
            read_set_preferences(&json!({"userId": null, "data": {}})).unwrap(),
            (None, Map::new())
        );
        for (body, want) in [
            (json!([]), "must be object"),
            (json!({}), "must have required property 'data'"),
            (
                json!({"data": {}, "user": "x"}),
                "must NOT have additional properties",
            ),
            (json!({"data": {}, "userId": 1}), "must be string"),
            (json!({"data": []}), "must be object"),
            (json!({"data": "x"}), "must be object"),
            (json!({"data": null}), "must be object"),
        ] {
            assert_eq!(refusal(body), format!("{want} [invalid-params]"));
        }
    }
}
