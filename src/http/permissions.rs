//! Permissions and roles (CONTRACT §6). Giving and taking a user's role are account
//! operations (`accounts::users`); the permission table is changed here directly.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{strings, Body, Caller};
use super::reply::ok;
use super::schema;
use crate::accounts::users;
use crate::app::Ctx;
use crate::auth::defaults::{self, Permission, ROLES, ROOM_SCOPED_ROLES};
use crate::error::Error;
use crate::state::Model;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(list_all))
        .routes(routes!(update))
        .routes(routes!(roles_list))
        .routes(routes!(add_user_to_role))
        .routes(routes!(remove_user_from_role))
}

/// Every permission, by id.
fn all_permissions(m: &Model) -> Vec<schema::Permission<'_>> {
    let mut all: Vec<_> = m
        .permissions
        .iter()
        .map(|(id, roles)| schema::Permission {
            id,
            roles: roles.as_slice(),
        })
        .collect();
    all.sort_by_key(|p| p.id);
    all
}

/// Every permission and the roles holding it. Any logged-in user may read them
/// (clients use them to shape their UI).
#[utoipa::path(get, path = "/api/v1/permissions.listAll", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    responses((status = 200, description = "The permissions", body = schema::PermissionListBody)))]
async fn list_all(State(app): State<Ctx>, _caller: Caller) -> ApiResult<Response> {
    let m = app.model.read();
    Ok(ok(&schema::PermissionListBody {
        remove: [],
        success: true,
        update: all_permissions(&m),
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
    app.require(&caller.user, Permission::AccessPermissions)?;
    let updates = body.read()?.permissions;
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
        permissions: all_permissions(&m),
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
    app.require(&caller.user, Permission::AccessPermissions)?;
    let req = body.read()?;
    let role = req
        .role_id
        .or(req.role_name)
        .ok_or_else(|| Error::missing_key("roleId"))?;
    let role = defaults::role(&role)
        .ok_or_else(|| Error::refused("error-role-not-found", "Role not found"))?;
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
