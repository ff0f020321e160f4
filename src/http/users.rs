//! User administration and lookup (CONTRACT §4 users.info, §6 users.*).

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{
    opt_bool_field, opt_str_field, opt_str_list, str_field, Caller, JsonBody, Query,
};
use super::{ok, schema, views};
use crate::app::{App, Ctx};
use crate::auth::{defaults, secrets};
use crate::bootstrap::new_user;
use crate::error::{ApiError, ApiResult};
use crate::model::{Email, Status, User};
use crate::settings::ids;
use crate::state::Tx;

pub fn authed_routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(info))
        .routes(routes!(list))
        .routes(routes!(create))
        .routes(routes!(update))
        .routes(routes!(delete))
}

pub fn public_routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(register))
}

fn sees_everything(app: &App, caller: &Caller, user: &User) -> bool {
    caller.user.id == user.id || app.has_permission(&caller.user, "view-full-other-user-info")
}

/// One user, by `userId`, `username` or `email` (CONTRACT §4).
#[utoipa::path(get, path = "/api/v1/users.info", tag = "users",
    security(("userId" = [], "authToken" = [])),
    params(
        ("userId" = Option<String>, Query),
        ("username" = Option<String>, Query),
        ("email" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "The user; the optional fields for oneself or with \
            view-full-other-user-info", body = schema::UserBody),
        (status = 400, description = "Invalid search query, User not found, or an unreadable query",
         body = schema::ErrorBody),
    ))]
async fn info(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    let user = {
        let m = app.model.read();
        if let Some(id) = q.get("userId") {
            m.users.get(id).cloned()
        } else if let Some(name) = q.get("username") {
            m.user_by_username(name)
        } else if let Some(email) = q.get("email") {
            m.user_by_email(email)
        } else {
            return Err(ApiError::Plain("Invalid search query.".into()));
        }
    }
    .ok_or_else(|| ApiError::Plain("User not found.".into()))?;
    let view = if sees_everything(&app, &caller, &user) {
        views::full(&user)
    } else {
        views::public(&user)
    };
    Ok(ok(json!({ "user": view })))
}

/// `offset` and `count` query parameters, bounded by the API count settings.
pub(super) fn paging(app: &App, q: &Query) -> ApiResult<(usize, usize)> {
    let m = app.model.read();
    let default = m.setting_i64("API_Default_Count", 50).max(1) as usize;
    let upper = m.setting_i64("API_Upper_Count_Limit", 100).max(1) as usize;
    let num = |name: &str| -> ApiResult<Option<usize>> {
        q.get(name)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    ApiError::Plain(format!(
                        "Invalid query parameter {name}: must be a non-negative integer"
                    ))
                })
            })
            .transpose()
    };
    let offset = num("offset")?.unwrap_or(0);
    let count = num("count")?.unwrap_or(default).min(upper);
    Ok((offset, count))
}

/// Every user, a page at a time, by username.
#[utoipa::path(get, path = "/api/v1/users.list", tag = "users",
    security(("userId" = [], "authToken" = [])),
    params(
        ("offset" = Option<u64>, Query),
        ("count" = Option<u64>, Query, description = "At most API_Upper_Count_Limit"),
    ),
    responses(
        (status = 200, description = "A page of users", body = schema::UserListBody),
        (status = 400, description = "A bad offset or count", body = schema::ErrorBody),
        (status = 403, description = "Without view-d-room", body = schema::ErrorBody),
    ))]
async fn list(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    if !app.has_permission(&caller.user, "view-d-room") {
        return Err(ApiError::Forbidden);
    }
    let (offset, count) = paging(&app, &q)?;
    let full = app.has_permission(&caller.user, "view-full-other-user-info");
    let m = app.model.read();
    let mut users: Vec<&std::sync::Arc<User>> = m.users.values().collect();
    users.sort_by_key(|u| u.username.to_lowercase());
    let total = users.len();
    let page: Vec<Value> = users
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|u| {
            if full || u.id == caller.user.id {
                views::full(u)
            } else {
                views::public(u)
            }
        })
        .collect();
    Ok(ok(json!({
        "users": page,
        "count": page.len(),
        "offset": offset,
        "total": total,
    })))
}

fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// Checks a username and email are well formed and free (ignoring `except`, the user
/// being updated). Runs inside the writer so two concurrent creations cannot both pass.
pub(crate) fn check_identity(
    tx: &Tx,
    username: Option<&str>,
    email: Option<&str>,
    except: Option<&str>,
    method: &str,
) -> ApiResult<()> {
    if let Some(name) = username {
        if !valid_username(name) {
            return Err(ApiError::meteor(
                "error-invalid-username",
                &format!("{name} is not a valid username"),
                method,
            ));
        }
        if tx
            .user_by_username(name)
            .is_some_and(|u| Some(u.id.as_str()) != except)
        {
            return Err(ApiError::meteor(
                "error-field-unavailable",
                &format!("{name} is already in use :("),
                method,
            ));
        }
    }
    if let Some(email) = email {
        if !valid_email(email) {
            return Err(ApiError::meteor(
                "error-invalid-email",
                &format!("Invalid email {email}"),
                method,
            ));
        }
        if tx
            .user_by_email(email)
            .is_some_and(|u| Some(u.id.as_str()) != except)
        {
            return Err(ApiError::meteor(
                "error-field-unavailable",
                &format!("{email} is already in use :("),
                method,
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_roles(roles: &[String], method: &str) -> ApiResult<()> {
    match roles.iter().find(|r| !defaults::role_exists(r)) {
        Some(r) => Err(ApiError::meteor(
            "error-invalid-role",
            &format!("Invalid role {r}"),
            method,
        )),
        None => Ok(()),
    }
}

pub(crate) async fn hash_password(app: &Ctx, password: &str) -> ApiResult<String> {
    let digest = secrets::sha256_hex(password);
    let _slot = app
        .login_slots
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    secrets::off_thread(move || secrets::hash_password_digest(&digest))
        .await
        .ok_or_else(|| ApiError::Unavailable("hashing failed".into()))?
        .map_err(|_| ApiError::Unavailable("hashing failed".into()))
}

/// A new account, as users.create and users.register make it.
struct NewAccount {
    username: String,
    name: String,
    email: String,
    password: String,
    roles: Vec<String>,
    active: bool,
}

async fn create_account(app: &Ctx, acct: NewAccount, method: &'static str) -> ApiResult<User> {
    if acct.password.is_empty() {
        return Err(ApiError::meteor(
            "error-invalid-password",
            "Password is required",
            method,
        ));
    }
    check_roles(&acct.roles, method)?;
    let hash = hash_password(app, &acct.password).await?;
    app.writer
        .run(move |tx| {
            check_identity(tx, Some(&acct.username), Some(&acct.email), None, method)?;
            let mut user = new_user(&acct.username, &acct.name, tx.now);
            user.emails = vec![Email {
                address: acct.email,
                verified: false,
            }];
            user.password_hash = Some(hash);
            user.roles = acct.roles;
            user.active = acct.active;
            tx.put_user(user.clone());
            Ok(user)
        })
        .await
}

/// Creates a user (`create-user`).
#[utoipa::path(post, path = "/api/v1/users.create", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::CreateUserRequest,
    responses(
        (status = 200, description = "The new user", body = schema::UserBody),
        (status = 400, description = "Match error, or an invalid or taken username, email, \
            password or role", body = schema::ErrorBody),
        (status = 403, description = "Without create-user", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn create(
    State(app): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if !app.has_permission(&caller.user, "create-user") {
        return Err(ApiError::Forbidden);
    }
    let acct = NewAccount {
        email: str_field(&body, "email")?.trim().to_string(),
        name: str_field(&body, "name")?.to_string(),
        password: str_field(&body, "password")?.to_string(),
        username: str_field(&body, "username")?.trim().to_string(),
        roles: opt_str_list(&body, "roles")?.unwrap_or_else(|| vec!["user".into()]),
        active: opt_bool_field(&body, "active")?.unwrap_or(true),
    };
    let user = create_account(&app, acct, "insertOrUpdateUser").await?;
    Ok(ok(json!({ "user": views::full(&user) })))
}

/// Self-service sign-up, when `Accounts_RegistrationForm` is `Public`.
#[utoipa::path(post, path = "/api/v1/users.register", tag = "users",
    request_body = schema::RegisterRequest,
    responses(
        (status = 200, description = "The new user", body = schema::UserBody),
        (status = 400, description = "Registration disabled, Match error, or an invalid or \
            taken username or email", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn register(State(app): State<Ctx>, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let form = app
        .model
        .read()
        .setting(ids::REGISTRATION_FORM)
        .and_then(Value::as_str)
        .unwrap_or("Disabled")
        .to_string();
    if form != "Public" {
        return Err(ApiError::meteor(
            "error-user-registration-disabled",
            "User registration is disabled",
            "registerUser",
        ));
    }
    let username = str_field(&body, "username")?.trim().to_string();
    let acct = NewAccount {
        email: str_field(&body, "email")?.trim().to_string(),
        name: opt_str_field(&body, "name")?
            .unwrap_or(&username)
            .to_string(),
        password: str_field(&body, "pass")?.to_string(),
        username,
        roles: vec!["user".into()],
        active: true,
    };
    let user = create_account(&app, acct, "registerUser").await?;
    Ok(ok(json!({ "user": views::public(&user) })))
}

/// Changes a user: oneself, or others with `edit-other-user-info`.
#[utoipa::path(post, path = "/api/v1/users.update", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::UpdateUserRequest,
    responses(
        (status = 200, description = "The changed user", body = schema::UserBody),
        (status = 400, description = "Match error, unknown user, an invalid or taken username \
            or email, an unknown role, or the last admin", body = schema::ErrorBody),
        (status = 403, description = "Without the permission the change needs", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn update(
    State(app): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    const METHOD: &str = "insertOrUpdateUser";
    let user_id = str_field(&body, "userId")?.to_string();
    let data = match body.get("data") {
        Some(d @ Value::Object(_)) => d.clone(),
        None => return Err(ApiError::Plain("Match error: Missing key 'data'".into())),
        Some(_) => return Err(ApiError::match_field("data", "object")),
    };
    let email = opt_str_field(&data, "email")?.map(|s| s.trim().to_string());
    let name = opt_str_field(&data, "name")?.map(str::to_string);
    let username = opt_str_field(&data, "username")?.map(|s| s.trim().to_string());
    let password = opt_str_field(&data, "password")?.map(str::to_string);
    let active = opt_bool_field(&data, "active")?;
    let roles = opt_str_list(&data, "roles")?;
    let status_text = opt_str_field(&data, "statusText")?.map(crate::status::rules::normalize_text);

    let is_self = user_id == caller.user.id;
    if !is_self && !app.has_permission(&caller.user, "edit-other-user-info") {
        return Err(ApiError::Forbidden);
    }
    if roles.is_some() && !app.has_permission(&caller.user, "assign-roles") {
        return Err(ApiError::Forbidden);
    }
    if active.is_some() && !app.has_permission(&caller.user, "edit-other-user-active-status") {
        return Err(ApiError::Forbidden);
    }
    if let Some(r) = &roles {
        check_roles(r, METHOD)?;
    }
    let hash = match &password {
        Some(p) if !p.is_empty() => Some(hash_password(&app, p).await?),
        _ => None,
    };
    let user = app
        .writer
        .run(move |tx| {
            let current = tx.user(&user_id).ok_or_else(ApiError::invalid_user)?;
            check_identity(
                tx,
                username.as_deref(),
                email.as_deref(),
                Some(&user_id),
                METHOD,
            )?;
            let mut u = (*current).clone();
            if let Some(n) = username {
                u.username = n;
            }
            if let Some(n) = name {
                u.name = n;
            }
            if let Some(e) = email {
                if u.first_email() != Some(e.as_str()) {
                    u.emails = vec![Email {
                        address: e,
                        verified: false,
                    }];
                }
            }
            if let Some(h) = hash {
                u.password_hash = Some(h);
            }
            if let Some(r) = roles {
                if current.has_role("admin") && !r.iter().any(|x| x == "admin") {
                    ensure_other_admin(tx, &u.id, METHOD)?;
                }
                u.roles = r;
            }
            if let Some(a) = active {
                if !a && current.has_role("admin") {
                    ensure_other_admin(tx, &u.id, METHOD)?;
                }
                u.active = a;
            }
            if let Some(t) = status_text {
                u.status_text = t;
            }
            u.updated_at = tx.now;
            if !u.active {
                // A deactivated user is logged out everywhere.
                for t in tx.user_tokens(&u.id) {
                    tx.delete_token(&t.hashed);
                }
            }
            tx.put_user(u.clone());
            Ok(u)
        })
        .await?;
    Ok(ok(json!({ "user": views::full(&user) })))
}

/// Refuses a change that would leave the workspace without an active admin.
pub(crate) fn ensure_other_admin(tx: &Tx, leaving: &str, method: &str) -> ApiResult<()> {
    let others = tx.admins_except(leaving);
    if others == 0 {
        return Err(ApiError::meteor(
            "error-action-not-allowed",
            "Leaving the app without admins is not allowed",
            method,
        ));
    }
    Ok(())
}

/// Deletes a user (`delete-user`); never the last active admin.
#[utoipa::path(post, path = "/api/v1/users.delete", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::DeleteUserRequest,
    responses(
        (status = 200, description = "Deleted", body = schema::Success),
        (status = 400, description = "Match error, unknown user, or the last admin", body = schema::ErrorBody),
        (status = 403, description = "Without delete-user", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn delete(
    State(app): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if !app.has_permission(&caller.user, "delete-user") {
        return Err(ApiError::Forbidden);
    }
    let id = opt_str_field(&body, "userId")?.map(str::to_string);
    let username = opt_str_field(&body, "username")?.map(str::to_string);
    if id.is_none() && username.is_none() {
        return Err(ApiError::Plain("Match error: Missing key 'userId'".into()));
    }
    app.writer
        .run(move |tx| {
            let user = match (&id, &username) {
                (Some(id), _) => tx.user(id),
                (None, Some(name)) => tx.user_by_username(name),
                _ => None,
            }
            .ok_or_else(ApiError::invalid_user)?;
            if user.has_role("admin") {
                ensure_other_admin(tx, &user.id, "deleteUser")?;
            }
            if user.status != Status::Offline {
                // Tell the watchers the user is gone before the record goes.
                let mut gone = (*user).clone();
                gone.status = Status::Offline;
                gone.status_connection = Status::Offline;
                tx.put_user(gone);
            }
            for t in tx.user_tokens(&user.id) {
                tx.delete_token(&t.hashed);
            }
            tx.delete_user(&user.id);
            Ok(())
        })
        .await?;
    Ok(ok(json!({})))
}
