//! User administration and lookup (CONTRACT §4 users.info, §6 users.*). The account
//! rules are `accounts::users`; these handlers read the request, check the caller's
//! permissions, hash a password before the writer job, and render the answer.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{opt_strings, Body, Caller, Query};
use super::reply::ok;
use super::{schema, views};
use crate::accounts::password;
use crate::accounts::users::{self, Changes, Named, NewAccount};
use crate::app::{App, Ctx};
use crate::auth::defaults::{self, Permission};
use crate::error::Error;
use crate::model::{User, UserKind};
use crate::settings::{self, Values};

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
    caller.user.id == user.id || app.has_permission(&caller.user, Permission::ViewFullOtherUserInfo)
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
            return Err(ApiError::plain("Invalid search query."));
        }
    }
    .ok_or_else(|| ApiError::plain("User not found."))?;
    let view = if sees_everything(&app, &caller, &user) {
        views::full(&user)
    } else {
        views::public(&user)
    };
    Ok(ok(&schema::UserBody {
        success: true,
        user: view,
    }))
}

/// `offset` and `count` query parameters, bounded by the API count settings.
pub(super) fn paging(app: &App, q: &Query) -> ApiResult<(usize, usize)> {
    let m = app.model.read();
    let default = m.value(&settings::DEFAULT_COUNT).max(1) as usize;
    let upper = m.value(&settings::UPPER_COUNT_LIMIT).max(1) as usize;
    let num = |name: &str| -> ApiResult<Option<usize>> {
        q.get(name)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    ApiError::plain(&format!(
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
    app.require(&caller.user, Permission::ViewDirectRoom)?;
    let (offset, count) = paging(&app, &q)?;
    let full = app.has_permission(&caller.user, Permission::ViewFullOtherUserInfo);
    let m = app.model.read();
    let mut users: Vec<&std::sync::Arc<User>> = m.users.values().collect();
    users.sort_by_key(|u| u.username.to_lowercase());
    let total = users.len();
    let page: Vec<_> = users
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
    Ok(ok(&schema::UserListBody {
        count: page.len(),
        offset,
        success: true,
        total,
        users: page,
    }))
}

/// `POST users.create`.
#[derive(Deserialize, ToSchema)]
pub struct CreateUserRequest {
    #[schema(format = Email)]
    email: String,
    name: String,
    #[schema(min_length = 1)]
    password: String,
    /// Letters, digits, `.`, `_` and `-`, at most 64.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    username: String,
    #[serde(default, deserialize_with = "opt_strings")]
    #[schema(schema_with = schema::role_list)]
    roles: Option<Vec<String>>,
    active: Option<bool>,
}

/// `POST users.register`.
#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Letters, digits, `.`, `_` and `-`, at most 64.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    username: String,
    #[schema(format = Email)]
    email: String,
    #[schema(min_length = 1)]
    pass: String,
    name: Option<String>,
}

/// Creates an account: the password rule and the roles first, then the (slow) hash,
/// then the account itself in a writer job.
async fn create_account(app: &App, acct: NewAccount, plain: &str) -> ApiResult<User> {
    password::required(plain)?;
    users::check_roles(&acct.roles)?;
    let hash = app.hash_password(plain).await?;
    let acct = NewAccount {
        password_hash: Some(hash),
        ..acct
    };
    Ok(app.writer.run(move |tx| users::create(tx, acct)).await?)
}

/// Creates a user (`create-user`).
#[utoipa::path(post, path = "/api/v1/users.create", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = CreateUserRequest,
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
    body: Body<CreateUserRequest>,
) -> ApiResult<Response> {
    app.require(&caller.user, Permission::CreateUser)?;
    let req = body.read()?;
    let acct = NewAccount {
        username: req.username.trim().to_string(),
        name: req.name,
        email: Some(req.email.trim().to_string()),
        password_hash: None,
        roles: req.roles.unwrap_or_else(|| vec![defaults::USER.into()]),
        active: req.active.unwrap_or(true),
        kind: UserKind::User,
    };
    let user = create_account(&app, acct, &req.password).await?;
    Ok(ok(&schema::UserBody {
        success: true,
        user: views::full(&user),
    }))
}

/// Self-service sign-up, when `Accounts_RegistrationForm` is `Public`.
#[utoipa::path(post, path = "/api/v1/users.register", tag = "users",
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "The new user", body = schema::UserBody),
        (status = 400, description = "Registration disabled, Match error, or an invalid or \
            taken username or email", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn register(State(app): State<Ctx>, body: Body<RegisterRequest>) -> ApiResult<Response> {
    if app.setting(&settings::REGISTRATION_FORM) != "Public" {
        return Err(Error::refused(
            "error-user-registration-disabled",
            "User registration is disabled",
        )
        .by("registerUser")
        .into());
    }
    let req = body.read()?;
    let username = req.username.trim().to_string();
    let acct = NewAccount {
        name: req.name.unwrap_or_else(|| username.clone()),
        username,
        email: Some(req.email.trim().to_string()),
        password_hash: None,
        roles: vec![defaults::USER.into()],
        active: true,
        kind: UserKind::User,
    };
    let user = create_account(&app, acct, &req.pass).await?;
    Ok(ok(&schema::UserBody {
        success: true,
        user: views::public(&user),
    }))
}

/// `POST users.update`: the user and the changes.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct UpdateUserRequest {
    user_id: String,
    data: UserChanges,
}

/// What users.update may change; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct UserChanges {
    #[schema(format = Email)]
    email: Option<String>,
    name: Option<String>,
    /// Letters, digits, `.`, `_` and `-`, at most 64.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    username: Option<String>,
    password: Option<String>,
    active: Option<bool>,
    #[serde(default, deserialize_with = "opt_strings")]
    #[schema(schema_with = schema::role_list)]
    roles: Option<Vec<String>>,
    status_text: Option<String>,
}

/// Changes a user: oneself, or others with `edit-other-user-info`.
#[utoipa::path(post, path = "/api/v1/users.update", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = UpdateUserRequest,
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
    body: Body<UpdateUserRequest>,
) -> ApiResult<Response> {
    let UpdateUserRequest { user_id, data } = body.read()?;
    if user_id != caller.user.id {
        app.require(&caller.user, Permission::EditOtherUserInfo)?;
    }
    if data.roles.is_some() {
        app.require(&caller.user, Permission::AssignRoles)?;
    }
    if data.active.is_some() {
        app.require(&caller.user, Permission::EditOtherUserActiveStatus)?;
    }
    if let Some(r) = &data.roles {
        users::check_roles(r)?;
    }
    let password_hash = match data.password.as_deref() {
        Some(p) if !p.is_empty() => Some(app.hash_password(p).await?),
        _ => None,
    };
    let changes = Changes {
        username: data.username.map(|s| s.trim().to_string()),
        name: data.name,
        email: data.email.map(|s| s.trim().to_string()),
        password_hash,
        active: data.active,
        roles: data.roles,
        status_text: data
            .status_text
            .as_deref()
            .map(crate::status::rules::normalize_text),
    };
    let user = app
        .writer
        .run(move |tx| users::update(tx, &user_id, changes))
        .await?;
    Ok(ok(&schema::UserBody {
        success: true,
        user: views::full(&user),
    }))
}

/// `POST users.delete`: `userId`, or else `username`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct DeleteUserRequest {
    user_id: Option<String>,
    username: Option<String>,
}

/// Deletes a user (`delete-user`); never the last active admin.
#[utoipa::path(post, path = "/api/v1/users.delete", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = DeleteUserRequest,
    responses(
        (status = 200, description = "Deleted", body = schema::Success),
        (status = 400, description = "Match error, unknown user, or the last admin", body = schema::ErrorBody),
        (status = 403, description = "Without delete-user", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn delete(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<DeleteUserRequest>,
) -> ApiResult<Response> {
    app.require(&caller.user, Permission::DeleteUser)?;
    let req = body.read()?;
    if req.user_id.is_none() && req.username.is_none() {
        return Err(Error::missing_key("userId").into());
    }
    app.writer
        .run(move |tx| {
            let who = match (&req.user_id, &req.username) {
                (Some(id), _) => Named::Id(id),
                (None, Some(name)) => Named::Username(name),
                (None, None) => return Err(Error::invalid_user()),
            };
            users::delete(tx, who)
        })
        .await?;
    Ok(ok(&schema::Success::YES))
}
