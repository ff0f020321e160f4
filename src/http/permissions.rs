//! Permissions and roles (CONTRACT §6). Giving and taking a user's role are account
//! operations (`accounts::users`); the permission table is changed here directly.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
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

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(list_all))
        .routes(routes!(update))
        .routes(routes!(roles_list))
        .routes(routes!(add_user_to_role))
        .routes(routes!(remove_user_from_role))
}

fn all_permissions(app: &Ctx) -> Vec<Value> {
    let m = app.model.read();
    let mut ids: Vec<&String> = m.permissions.keys().collect();
    ids.sort();
    ids.into_iter()
        .map(|id| json!({"_id": id, "roles": m.permissions[id].as_ref()}))
        .collect()
}

/// Every permission and the roles holding it. Any logged-in user may read them
/// (clients use them to shape their UI).
#[utoipa::path(get, path = "/api/v1/permissions.listAll", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    responses((status = 200, description = "The permissions", body = schema::PermissionListBody)))]
async fn list_all(State(app): State<Ctx>, _caller: Caller) -> ApiResult<Response> {
    Ok(ok(json!({ "update": all_permissions(&app), "remove": [] })))
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
    Ok(ok(json!({ "permissions": all_permissions(&app) })))
}

fn role_json(id: &str, description: &str, protected: bool) -> Value {
    json!({
        "_id": id,
        "name": id,
        "description": description,
        "protected": protected,
        "mandatory2fa": false,
        "scope": if ROOM_SCOPED_ROLES.contains(&id) { "Subscriptions" } else { "Users" },
    })
}

/// The roles statusd knows.
#[utoipa::path(get, path = "/api/v1/roles.list", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    responses((status = 200, description = "The roles", body = schema::RoleListBody)))]
async fn roles_list(_caller: Caller) -> ApiResult<Response> {
    let roles: Vec<Value> = ROLES
        .iter()
        .map(|(id, d, p)| role_json(id, d, *p))
        .collect();
    Ok(ok(json!({ "roles": roles })))
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
    let &(id, description, protected) = defaults::role(&role)
        .ok_or_else(|| Error::refused("error-role-not-found", "Role not found"))?;
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
    Ok(ok(json!({ "role": role_json(id, description, protected) })))
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
