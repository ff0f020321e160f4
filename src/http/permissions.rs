//! Permissions and roles (CONTRACT §6).

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{opt_str_field, str_field, Caller, JsonBody};
use super::{ok, schema};
use crate::app::Ctx;
use crate::auth::defaults::{self, ROLES, ROOM_SCOPED_ROLES};
use crate::error::{ApiError, ApiResult};
use crate::state::Tx;

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

/// Sets the roles of permissions (`access-permissions`), all or none.
#[utoipa::path(post, path = "/api/v1/permissions.update", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::PermissionsRequest,
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
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    const METHOD: &str = "permissions.update";
    if !app.has_permission(&caller.user, "access-permissions") {
        return Err(ApiError::Forbidden);
    }
    let items = match body.get("permissions") {
        Some(Value::Array(items)) => items,
        None => {
            return Err(ApiError::Plain(
                "Match error: Missing key 'permissions'".into(),
            ))
        }
        Some(_) => return Err(ApiError::match_field("permissions", "array")),
    };
    let mut updates = Vec::with_capacity(items.len());
    for item in items {
        let id = str_field(item, "_id")?.to_string();
        let roles = match item.get("roles") {
            Some(Value::Array(r)) => r
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::match_field("roles", "array of strings"))?,
            _ => return Err(ApiError::match_field("roles", "array of strings")),
        };
        if let Some(r) = roles.iter().find(|r| !defaults::role_exists(r)) {
            return Err(ApiError::meteor(
                "error-invalid-role",
                &format!("Invalid role {r}"),
                METHOD,
            ));
        }
        updates.push((id, roles));
    }
    app.writer
        .run(move |tx| {
            for (id, roles) in updates {
                if tx.permission_roles(&id).is_none() {
                    return Err(ApiError::meteor(
                        "error-invalid-permission",
                        &format!("Invalid permission {id}"),
                        METHOD,
                    ));
                }
                tx.put_permission(&id, roles);
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

/// `roleId` or `roleName` and `username`, as Rocket.Chat's role routes take them.
fn role_and_user(body: &Value) -> ApiResult<(&'static (&'static str, &'static str, bool), String)> {
    let role = opt_str_field(body, "roleId")?
        .or(opt_str_field(body, "roleName")?)
        .ok_or_else(|| ApiError::Plain("Match error: Missing key 'roleId'".into()))?;
    let username = str_field(body, "username")?.to_string();
    let entry = ROLES
        .iter()
        .find(|(id, _, _)| *id == role)
        .ok_or_else(|| ApiError::meteor_bare("error-role-not-found", "Role not found"))?;
    Ok((entry, username))
}

async fn change_role(app: Ctx, caller: Caller, body: Value, add: bool) -> ApiResult<Response> {
    if !app.has_permission(&caller.user, "access-permissions") {
        return Err(ApiError::Forbidden);
    }
    let (role, username) = role_and_user(&body)?;
    let role_id = role.0;
    app.writer
        .run(move |tx| set_user_role(tx, &username, role_id, add))
        .await?;
    Ok(ok(json!({ "role": role_json(role.0, role.1, role.2) })))
}

/// Adds `role_id` to (or removes it from) the user named `username`, keeping at least
/// one admin. A writer job, shared with the admin CLI (`statusd user role`).
pub(crate) fn set_user_role(
    tx: &mut Tx,
    username: &str,
    role_id: &str,
    add: bool,
) -> ApiResult<()> {
    let user = tx
        .user_by_username(username)
        .ok_or_else(ApiError::invalid_user)?;
    let mut u = (*user).clone();
    if add {
        if u.has_role(role_id) {
            return Err(ApiError::meteor_bare(
                "error-user-already-in-role",
                "User already in role",
            ));
        }
        u.roles.push(role_id.to_string());
    } else {
        if !u.has_role(role_id) {
            return Err(ApiError::meteor_bare(
                "error-user-not-in-role",
                "User is not in this role",
            ));
        }
        if role_id == "admin" && tx.admins_except(&u.id) == 0 {
            return Err(ApiError::meteor_bare(
                "error-remove-last-admin",
                "This is the last admin, the role cannot be removed",
            ));
        }
        u.roles.retain(|r| r != role_id);
    }
    u.updated_at = tx.now;
    tx.put_user(u);
    Ok(())
}

/// Gives a user a role (`access-permissions`).
#[utoipa::path(post, path = "/api/v1/roles.addUserToRole", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::UserRoleRequest,
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
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    change_role(app, caller, body, true).await
}

/// Takes a role from a user (`access-permissions`); never the last admin's.
#[utoipa::path(post, path = "/api/v1/roles.removeUserFromRole", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::UserRoleRequest,
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
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    change_role(app, caller, body, false).await
}
