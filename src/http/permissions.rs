//! Permissions and roles (CONTRACT §6). Giving and taking a user's role are account
//! operations (`accounts::users`); the permission table is changed here directly.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::error::ApiResult;
use super::extract::{strings, Body, Caller, Query};
use super::reply::ok;
use super::schema;
use crate::accounts::users;
use crate::app::Ctx;
use crate::auth::defaults::{self, Permission, ROLES, ROOM_SCOPED_ROLES};
use crate::error::Error;
use crate::model::iso;
use crate::state::Model;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(list_all))
        .routes(routes!(update))
        .routes(routes!(roles_list))
        .routes(routes!(add_user_to_role))
        .routes(routes!(remove_user_from_role))
}

/// Every permission changed after `since` (all without it), by id.
fn all_permissions(m: &Model, since: Option<DateTime<Utc>>) -> Vec<schema::Permission<'_>> {
    let mut all: Vec<_> = m
        .permissions
        .iter()
        .map(|(id, roles)| (id, roles, m.permission_updated_at(id)))
        .filter(|(_, _, at)| since.is_none_or(|since| *at > since))
        .map(|(id, roles, at)| schema::Permission {
            id,
            roles: roles.as_slice(),
            updated_at: iso(&at),
        })
        .collect();
    all.sort_by_key(|p| p.id);
    all
}

/// `updatedSince` as JavaScript's `Date.parse` reads the forms clients send: an
/// RFC 3339 time, a date-time without zone (UTC), or a date.
fn parse_since(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, format) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// Every permission and the roles holding it; with `updatedSince`, only those changed
/// since, and in `remove` those that went since (Rocket.Chat's sync answer). Any
/// logged-in user may read them (clients use them to shape their UI).
#[utoipa::path(get, path = "/api/v1/permissions.listAll", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    params(("updatedSince" = Option<String>, Query, description = "A date: only what changed after it")),
    responses(
        (status = 200, description = "The permissions", body = schema::PermissionListBody),
        (status = 400, description = "updatedSince is not a date", body = schema::ErrorBody),
    ))]
async fn list_all(State(app): State<Ctx>, _caller: Caller, q: Query) -> ApiResult<Response> {
    let since = match q.get("updatedSince") {
        Some(text) => Some(parse_since(text).ok_or_else(|| {
            Error::refused(
                "error-roomId-param-invalid",
                "The \"updatedSince\" query parameter must be a valid date.",
            )
        })?),
        None => None,
    };
    let m = app.model.read();
    let remove = match since {
        Some(since) => m
            .permissions_removed_since(since)
            .into_iter()
            .map(|(id, at)| schema::RemovedPermission {
                id,
                deleted_at: iso(&at),
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(ok(&schema::PermissionListBody {
        remove,
        success: true,
        update: all_permissions(&m, since),
    }))
}

/// One permission and the roles that hold it.
#[derive(Deserialize, ToSchema)]
pub struct PermissionRoles {
    #[serde(rename = "_id")]
    #[schema(rename = "_id")]
    id: String,
    #[serde(deserialize_with = "strings")]
    #[schema(schema_with = schema::role_list)]
    roles: Vec<String>,
}

/// `POST permissions.update`.
#[derive(Deserialize, ToSchema)]
pub struct PermissionsRequest {
    permissions: Vec<PermissionRoles>,
}

/// Sets the roles of permissions (`access-permissions`), all or none.
#[utoipa::path(post, path = "/api/v1/permissions.update", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    request_body = PermissionsRequest,
    responses(
        (status = 200, description = "Every permission, after the change", body = schema::PermissionsBody),
        (status = 400, description = "Match error, error-invalid-role or error-invalid-permission",
         body = schema::ErrorBody),
        (status = 403, description = "Without access-permissions", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn update(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<PermissionsRequest>,
) -> ApiResult<Response> {
    const METHOD: &str = "permissions.update";
    app.require_declared(&caller.user, Permission::AccessPermissions)?;
    let updates = body.read()?.permissions;
    // Rocket.Chat's order: every permission must exist, then every role.
    {
        let m = app.model.read();
        if let Some(p) = updates.iter().find(|p| !m.permissions.contains_key(&p.id)) {
            return Err(Error::refused(
                "error-invalid-permission",
                &format!("Invalid permission {}", p.id),
            )
            .by(METHOD)
            .into());
        }
    }
    for p in &updates {
        if let Some(r) = p.roles.iter().find(|r| !defaults::role_exists(r)) {
            return Err(
                Error::refused("error-invalid-role", &format!("Invalid role {r}"))
                    .by(METHOD)
                    .into(),
            );
        }
    }
    app.writer
        .run(move |tx| {
            for p in updates {
                if tx.permission_roles(&p.id).is_none() {
                    return Err(Error::refused(
                        "error-invalid-permission",
                        &format!("Invalid permission {}", p.id),
                    )
                    .by(METHOD));
                }
                tx.put_permission(&p.id, p.roles);
            }
            Ok(())
        })
        .await?;
    let m = app.model.read();
    Ok(ok(&schema::PermissionsBody {
        permissions: all_permissions(&m, None),
        success: true,
    }))
}

fn role_view(&(id, description, protected): &(&'static str, &'static str, bool)) -> schema::Role {
    schema::Role {
        id,
        description,
        mandatory2fa: false,
        name: id,
        protected,
        scope: if ROOM_SCOPED_ROLES.contains(&id) {
            "Subscriptions"
        } else {
            "Users"
        },
    }
}

/// The roles statusd knows.
#[utoipa::path(get, path = "/api/v1/roles.list", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    responses((status = 200, description = "The roles", body = schema::RoleListBody)))]
async fn roles_list(_caller: Caller) -> ApiResult<Response> {
    Ok(ok(&schema::RoleListBody {
        roles: ROLES.iter().map(role_view).collect(),
        success: true,
    }))
}

/// `roleId` (or `roleName`) and `username`, as Rocket.Chat's role routes take them.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct UserRoleRequest {
    #[schema(schema_with = schema::role_name)]
    role_id: Option<String>,
    #[schema(schema_with = schema::role_name)]
    role_name: Option<String>,
    username: String,
}

async fn change_role(
    app: Ctx,
    caller: Caller,
    body: Body<UserRoleRequest>,
    add: bool,
) -> ApiResult<Response> {
    app.require_declared(&caller.user, Permission::AccessPermissions)?;
    let req = body.read()?;
    let role = req
        .role_id
        .or(req.role_name)
        .ok_or_else(|| Error::missing_key("roleId"))?;
    // Rocket.Chat looks the user up first, then the role, each route in its own words.
    if app.model.read().user_by_username(&req.username).is_none() {
        return Err(if add {
            Error::invalid_user()
        } else {
            Error::refused("error-invalid-user", "There is no user with this username")
        }
        .into());
    }
    let role = defaults::role(&role).ok_or_else(|| {
        if add {
            Error::refused("error-role-not-found", "Role not found")
        } else {
            Error::refused("error-invalid-roleId", "This role does not exist")
        }
    })?;
    let id = role.0;
    if add {
        // Making someone an admin also needs assign-admin-role (Rocket.Chat).
        let may = app.has_permission(&caller.user, Permission::AssignAdminRole);
        users::check_admin_assignment(&[id.to_string()], may)?;
    }
    let username = req.username;
    app.writer
        .run(move |tx| {
            if add {
                users::add_role(tx, &username, id)
            } else {
                users::remove_role(tx, &username, id)
            }
        })
        .await?;
    Ok(ok(&schema::RoleBody {
        role: role_view(role),
        success: true,
    }))
}

/// Gives a user a role (`access-permissions`).
#[utoipa::path(post, path = "/api/v1/roles.addUserToRole", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    request_body = UserRoleRequest,
    responses(
        (status = 200, description = "The role", body = schema::RoleBody),
        (status = 400, description = "Match error, unknown role or user, or already in the role",
         body = schema::ErrorBody),
        (status = 403, description = "Without access-permissions", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn add_user_to_role(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<UserRoleRequest>,
) -> ApiResult<Response> {
    change_role(app, caller, body, true).await
}

/// Takes a role from a user (`access-permissions`); never the last admin's.
#[utoipa::path(post, path = "/api/v1/roles.removeUserFromRole", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    request_body = UserRoleRequest,
    responses(
        (status = 200, description = "The role", body = schema::RoleBody),
        (status = 400, description = "Match error, unknown role or user, not in the role, or \
            the last admin", body = schema::ErrorBody),
        (status = 403, description = "Without access-permissions", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn remove_user_from_role(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<UserRoleRequest>,
) -> ApiResult<Response> {
    change_role(app, caller, body, false).await
}
