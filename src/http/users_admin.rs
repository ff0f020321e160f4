//! Admin routes around accounts and presence, as Rocket.Chat answers them
//! (apps/meteor/app/api/server/v1/users.ts): `users.setActiveStatus` (the account
//! rules of `accounts::users::set_active`, the last active admin kept),
//! `users.logout` (every session of oneself, or of another user with
//! `logout-other-user`) and `users.listByStatus` (a filtered page of users).
//!
//! Who may call and what a hostile caller can do: setActiveStatus needs
//! `edit-other-user-active-status` (or `manage-moderation-actions`, then refused inside
//! as upstream); deactivating logs the user out everywhere and can never leave the
//! workspace without an active admin. users.logout of another user needs
//! `logout-other-user`. listByStatus needs `view-d-room`, pages are bounded by
//! `API_Upper_Count_Limit`, and emails are shown and searched only for holders of
//! `view-full-other-user-info` (as users.list).

use std::cmp::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, Query};
use super::reply::ok;
use super::{schema, views};
use crate::accounts::{tokens, users};
use crate::app::Ctx;
use crate::auth::defaults::Permission;
use crate::error::Error;
use crate::model::User;
use crate::settings::{self, Values};

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(set_active_status))
        .routes(routes!(logout))
        .routes(routes!(list_by_status))
}

/// `POST users.setActiveStatus`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct SetActiveStatusRequest {
    user_id: String,
    active_status: bool,
    /// Accepted as Rocket.Chat does (it hands the user's rooms on); statusd has no rooms.
    #[allow(dead_code)]
    confirm_relinquish: Option<bool>,
}

/// `{"user": {"_id", "active"}}`: the user's `active` after the change.
#[derive(Serialize, ToSchema)]
pub struct ActiveStatusBody {
    user: ActiveOf,
    success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ActiveOf {
    #[serde(rename = "_id")]
    #[schema(rename = "_id")]
    id: String,
    active: bool,
}

/// Activates or deactivates a user (deactivating logs them out everywhere; the last
/// active admin stays active).
#[utoipa::path(post, path = "/api/v1/users.setActiveStatus", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = SetActiveStatusRequest,
    responses(
        (status = 200, description = "The user's new state", body = ActiveStatusBody),
        (status = 400, description = "User not found, error-action-not-allowed (the last active \
            admin), error-not-allowed, or a body of the wrong shape", body = schema::ErrorBody),
        (status = 403, description = "Without edit-other-user-active-status or \
            manage-moderation-actions (declared)", body = schema::ErrorBody),
    ))]
async fn set_active_status(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<SetActiveStatusRequest>,
) -> ApiResult<Response> {
    let (may_edit, may_moderate) = {
        let m = app.model.read();
        (
            m.has_permission(&caller.user, Permission::EditOtherUserActiveStatus.id()),
            m.has_permission(&caller.user, "manage-moderation-actions"),
        )
    };
    if !may_edit && !may_moderate {
        return Err(Error::NotPermitted.into());
    }
    let req = body.read()?;
    // Rocket.Chat's setUserActiveStatus checks edit-other-user-active-status itself.
    if !may_edit {
        return Err(Error::refused("error-not-allowed", "Not allowed")
            .by("setUserActiveStatus")
            .into());
    }
    let (user_id, active) = (req.user_id, req.active_status);
    let id = user_id.clone();
    let done = app
        .writer
        .run(move |tx| {
            let Some(username) = tx.user(&id).map(|u| u.username.clone()) else {
                return Ok(None);
            };
            users::set_active(tx, &username, active).map(|(u, _)| Some(u.active))
        })
        .await?;
    let active = done.ok_or_else(|| ApiError::plain("User not found"))?;
    Ok(ok(&ActiveStatusBody {
        user: ActiveOf {
            id: user_id,
            active,
        },
        success: true,
    }))
}

/// `POST users.logout`: `userId` another user (with `logout-other-user`); without it,
/// oneself.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct UsersLogoutRequest {
    user_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UsersLogoutBody {
    /// `User <id> has been logged out!`
    message: String,
    success: bool,
}

/// Ends every session of a user: all their tokens go (personal access tokens too, as
/// Rocket.Chat's `unsetLoginTokens`), and their realtime connections close.
#[utoipa::path(post, path = "/api/v1/users.logout", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = UsersLogoutRequest,
    responses(
        (status = 200, description = "Logged out", body = UsersLogoutBody),
        (status = 400, description = "error-invalid-user-id: no such user, or nothing to log out; \
            or a body of the wrong shape", body = schema::ErrorBody),
        (status = 403, description = "Another user, without logout-other-user", body = schema::ErrorBody),
    ))]
async fn logout(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<UsersLogoutRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let user_id = req
        .user_id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| caller.user.id.clone());
    if user_id != caller.user.id {
        app.require(&caller.user, Permission::LogoutOtherUser)?;
    }
    let id = user_id.clone();
    let revoked = app
        .writer
        .run(move |tx| Ok(tokens::revoke_all(tx, &id)))
        .await?;
    if revoked == 0 {
        return Err(Error::refused("error-invalid-user-id", "Invalid user id").into());
    }
    Ok(ok(&UsersLogoutBody {
        message: format!("User {user_id} has been logged out!"),
        success: true,
    }))
}

/// The query members Rocket.Chat's `isUsersListStatusProps` allows.
const LIST_PARAMS: &[&str] = &[
    "status",
    "hasLoggedIn",
    "type",
    "roles",
    "roles[]",
    "searchTerm",
    "sort",
    "count",
    "offset",
];

fn invalid_params(reason: &str) -> ApiError {
    Error::refused("invalid-params", reason).into()
}

/// One key of `sort` and its direction.
fn compare(a: &User, b: &User, key: &str) -> Ordering {
    match key {
        "username" => a.username.to_lowercase().cmp(&b.username.to_lowercase()),
        "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        // Rocket.Chat sorts `status` by `active`.
        "status" | "active" => a.active.cmp(&b.active),
        "createdAt" => a.created_at.cmp(&b.created_at),
        "lastLogin" => a.last_login.cmp(&b.last_login),
        _ => Ordering::Equal,
    }
}

/// `sort` (`{"username": 1}`), in order; by username without one.
fn parse_sort(text: Option<&str>) -> ApiResult<Vec<(String, bool)>> {
    let Some(text) = text else {
        return Ok(vec![("username".into(), true)]);
    };
    let bad = || {
        ApiError::from(Error::refused(
            "error-invalid-sort",
            &format!("Invalid sort parameter provided: \"{text}\""),
        ))
    };
    let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(text) else {
        return Err(bad());
    };
    keys.into_iter()
        .map(|(k, v)| match v.as_i64() {
            Some(1) => Ok((k, true)),
            Some(-1) => Ok((k, false)),
            _ => Err(bad()),
        })
        .collect()
}

/// A page of users, filtered by `status` (`active` / `deactivated`), `hasLoggedIn`,
/// `type`, `roles` and `searchTerm` (username, name; emails too for holders of
/// view-full-other-user-info), sorted by `sort`.
#[utoipa::path(get, path = "/api/v1/users.listByStatus", tag = "users",
    security(("userId" = [], "authToken" = [])),
    params(
        ("status" = Option<String>, Query, description = "`active` or `deactivated`"),
        ("hasLoggedIn" = Option<bool>, Query),
        ("type" = Option<String>, Query, description = "`user` or `bot`"),
        ("roles" = Option<Vec<String>>, Query, description = "Users with any of these roles \
            (`all`: no filter)"),
        ("searchTerm" = Option<String>, Query, description = "A case-insensitive part of the \
            username or name"),
        ("sort" = Option<String>, Query, description = "JSON, e.g. {\"username\":1}"),
        ("offset" = Option<u64>, Query),
        ("count" = Option<u64>, Query, description = "At most API_Upper_Count_Limit"),
    ),
    responses(
        (status = 200, description = "A page of users", body = schema::UserListBody),
        (status = 400, description = "invalid-params, error-invalid-sort, a bad offset or count",
         body = schema::ErrorBody),
        (status = 403, description = "Without view-d-room (declared), or without view-outside-room \
            when API_Apply_permission_view-outside-room_on_users-list is on", body = schema::ErrorBody),
    ))]
async fn list_by_status(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    app.require_declared(&caller.user, Permission::ViewDirectRoom)?;
    let (outside_rule, outside_ok, full) = {
        let m = app.model.read();
        (
            m.value(&settings::USERS_LIST_NEEDS_VIEW_OUTSIDE_ROOM),
            m.has_permission(&caller.user, "view-outside-room"),
            m.has_permission(&caller.user, Permission::ViewFullOtherUserInfo.id()),
        )
    };
    if outside_rule && !outside_ok {
        return Err(Error::Forbidden.into());
    }
    if q.0.iter().any(|(k, _)| !LIST_PARAMS.contains(&k.as_str())) {
        return Err(invalid_params("must NOT have additional properties"));
    }
    let active = match q.get("status") {
        None => None,
        Some("active") => Some(true),
        Some("deactivated") => Some(false),
        Some(_) => return Err(invalid_params("must be equal to one of the allowed values")),
    };
    let logged_in = match q.get("hasLoggedIn") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(invalid_params("must be boolean")),
    };
    let kind = q.get("type");
    let roles = q.list("roles");
    let any_role = roles.is_empty() || roles.iter().any(|r| r == "all");
    let term = q
        .get("searchTerm")
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty());
    let sort = parse_sort(q.get("sort"))?;
    let (offset, count) = super::users::paging(&app, &q)?;
    let m = app.model.read();
    let mut matching: Vec<&Arc<User>> = m
        .users
        .values()
        .filter(|u| active.is_none_or(|a| u.active == a))
        .filter(|u| logged_in.is_none_or(|l| u.last_login.is_some() == l))
        .filter(|u| {
            kind.is_none_or(|k| {
                serde_json::to_value(u.kind)
                    .ok()
                    .as_ref()
                    .and_then(Value::as_str)
                    == Some(k)
            })
        })
        .filter(|u| any_role || u.roles.iter().any(|r| roles.contains(r)))
        .filter(|u| {
            term.as_ref().is_none_or(|t| {
                u.username.to_lowercase().contains(t)
                    || u.name.to_lowercase().contains(t)
                    || (full
                        && u.emails
                            .iter()
                            .any(|e| e.address.to_lowercase().contains(t)))
            })
        })
        .collect();
    matching.sort_by(|a, b| {
        sort.iter()
            .map(|(key, up)| {
                let o = compare(a, b, key);
                if *up {
                    o
                } else {
                    o.reverse()
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.username.cmp(&b.username))
    });
    let total = matching.len();
    // Users who hide their status from the caller show offline (`crate::privacy`).
    let lens = crate::privacy::Lens::of(&m, &caller.user.id);
    let page: Vec<_> = matching
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|u| {
            if full || u.id == caller.user.id {
                views::full(u)
            } else {
                views::public(u)
            }
            .shown_if(lens.sees(u))
        })
        .collect();
    Ok(ok(&schema::UserListBody {
        count: page.len(),
        offset,
        success: true,
        total,
        users: page,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_is_read_as_rocket_chat_takes_it() {
        assert_eq!(parse_sort(None).unwrap(), vec![("username".into(), true)]);
        assert_eq!(
            parse_sort(Some(r#"{"name":-1,"username":1}"#)).unwrap(),
            vec![("name".into(), false), ("username".into(), true)]
        );
        for bad in ["", "{", "[]", r#"{"name":2}"#, r#"{"name":"asc"}"#] {
            assert!(parse_sort(Some(bad)).is_err(), "{bad}");
        }
    }
}
