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
use crate::accounts::identity::{self, Purpose};
use crate::accounts::password;
use crate::accounts::users::{self, Changes, Editor, Named, NewAccount};
use crate::app::{App, Ctx};
use crate::auth::defaults::{self, Permission};
use crate::error::Error;
use crate::model::User;
use crate::settings::{self, Values};
use crate::status::rules::normalize_text;

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

/// One user, by `userId`, `username` or `email` (CONTRACT §4). Looking another user
/// up by email needs `view-full-other-user-info`: otherwise anyone could map an email
/// to an account, so without it the answer is the same `User not found.` as for an
/// address nobody has.
#[utoipa::path(get, path = "/api/v1/users.info", tag = "users",
    security(("userId" = [], "authToken" = [])),
    params(
        ("userId" = Option<String>, Query),
        ("username" = Option<String>, Query),
        ("email" = Option<String>, Query, description = "Another user's only with \
            view-full-other-user-info"),
    ),
    responses(
        (status = 200, description = "The user; the optional fields for oneself or with \
            view-full-other-user-info", body = schema::UserBody),
        (status = 400, description = "Invalid search query, User not found, or an unreadable query",
         body = schema::ErrorBody),
    ))]
async fn info(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    let present = |k: &str| q.get(k).filter(|v| !v.is_empty());
    let may_see_emails = app.has_permission(&caller.user, Permission::ViewFullOtherUserInfo);
    let user = {
        let m = app.model.read();
        if let Some(id) = present("userId") {
            m.users.get(id).cloned()
        } else if let Some(name) = present("username") {
            m.user_by_username(name)
        } else if let Some(email) = present("email") {
            m.user_by_email(email)
                .filter(|u| may_see_emails || u.id == caller.user.id)
        } else {
            return Err(ApiError::plain("Invalid search query."));
        }
    }
    .ok_or_else(|| ApiError::plain("User not found."))?;
    let (seen, shown) = {
        let m = app.model.read();
        let lens = crate::privacy::Lens::of(&m, &caller.user.id);
        (views::last_seen(&m, &caller.user, &user), lens.sees(&user))
    };
    let view = if user.id == caller.user.id {
        views::own(&user)
    } else if sees_everything(&app, &caller, &user) {
        views::full(&user)
    } else {
        views::public(&user)
    }
    .with_statusd(seen)
    .shown_if(shown);
    Ok(ok(&schema::UserBody {
        success: true,
        user: view,
    }))
}

/// The largest offset a page may start at, and the largest count asked for: beyond
/// these a number is refused rather than wrapped or saturated (an offset of 2^64 - 1
/// once read as the first page).
const MAX_OFFSET: u64 = i64::MAX as u64;
const MAX_COUNT: u64 = u32::MAX as u64;

/// `offset` and `count` query parameters, bounded by the API count settings. A value
/// that is not a whole number in range is a 400.
pub(super) fn paging(app: &App, q: &Query) -> ApiResult<(usize, usize)> {
    let m = app.model.read();
    let default = m.value(&settings::DEFAULT_COUNT).max(1) as usize;
    let upper = m.value(&settings::UPPER_COUNT_LIMIT).max(1) as usize;
    let num = |name: &str, max: u64| -> ApiResult<Option<usize>> {
        q.get(name)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n <= max)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::plain(&format!(
                            "Invalid query parameter {name}: must be an integer from 0 to {max}"
                        ))
                    })
            })
            .transpose()
    };
    let offset = num("offset", MAX_OFFSET)?.unwrap_or(0);
    let count = num("count", MAX_COUNT)?.unwrap_or(default).min(upper);
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
        (status = 403, description = "Without view-d-room (declared)", body = schema::ErrorBody),
    ))]
async fn list(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    app.require_declared(&caller.user, Permission::ViewDirectRoom)?;
    let (offset, count) = paging(&app, &q)?;
    let full = app.has_permission(&caller.user, Permission::ViewFullOtherUserInfo);
    let m = app.model.read();
    let lens = crate::privacy::Lens::of(&m, &caller.user.id);
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
            .with_statusd(views::last_seen(&m, &caller.user, u))
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

/// `POST users.create`: the members Rocket.Chat's schema allows; any other is refused
/// (`must NOT have additional properties`). Those statusd has no use for
/// (`joinDefaultChannels`, `sendWelcomeEmail`, `requirePasswordChange`, …) are
/// accepted and ignored.
// Members Rocket.Chat's schema allows and statusd has no use for are read (so they
// are not refused) and never used.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct CreateUserRequest {
    #[schema(format = Email)]
    email: String,
    /// At most 120 characters, without `<`, `>`, `\` or `/`.
    name: String,
    #[schema(min_length = 1)]
    password: String,
    /// Matches UTF8_User_Names_Validation (default `[0-9a-zA-Z-_.]+`), at most 64.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    username: String,
    #[serde(default, deserialize_with = "opt_strings")]
    #[schema(schema_with = schema::role_list)]
    roles: Option<Vec<String>>,
    active: Option<bool>,
    /// At most 260 characters.
    bio: Option<String>,
    /// At most 120 characters.
    nickname: Option<String>,
    status_text: Option<String>,
    /// The email is already verified.
    verified: Option<bool>,
    join_default_channels: Option<bool>,
    require_password_change: Option<bool>,
    set_random_password: Option<bool>,
    send_welcome_email: Option<bool>,
    #[schema(value_type = Option<Object>)]
    custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
    #[schema(value_type = Option<Object>)]
    settings: Option<serde_json::Value>,
    fields: Option<String>,
    free_switch_extension: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    phones: Option<Vec<serde_json::Value>>,
}

/// `POST users.register`.
// Members Rocket.Chat's schema allows and statusd has no use for are read (so they
// are not refused) and never used.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// Matches UTF8_User_Names_Validation (default `[0-9a-zA-Z-_.]+`), at most 64.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    username: String,
    #[schema(format = Email)]
    email: String,
    #[schema(min_length = 1)]
    pass: String,
    name: Option<String>,
    secret: Option<String>,
    reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Creates an account: the password rule and the roles first, then the (slow) hash,
/// then the account itself in a writer job.
async fn create_account(
    app: &App,
    acct: NewAccount,
    plain: &str,
    purpose: Purpose,
) -> ApiResult<User> {
    password::required(plain)?;
    users::check_roles(&acct.roles)?;
    let hash = app.hash_password(plain).await?;
    let acct = NewAccount {
        password_hash: Some(hash),
        ..acct
    };
    Ok(app
        .writer
        .run(move |tx| users::create(tx, acct, purpose))
        .await?)
}

/// Creates a user (`create-user`; an admin also `assign-admin-role`). Rocket.Chat
/// declares no permission on this route: its saveUser refuses with a 400.
#[utoipa::path(post, path = "/api/v1/users.create", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 200, description = "The new user", body = schema::UserBody),
        (status = 400, description = "Match error, an unknown member, an invalid, reserved or \
            taken username or email, a bad name, bio or nickname, a password or role \
            refused, or without create-user (error-action-not-allowed)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn create(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<CreateUserRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    if !identity::valid_name_chars(&req.name) {
        return Err(ApiError::plain("Name contains invalid characters"));
    }
    if !app.has_permission(&caller.user, Permission::CreateUser) {
        return Err(
            Error::refused("error-action-not-allowed", "Adding user is not allowed")
                .by(crate::accounts::METHOD)
                .into(),
        );
    }
    let roles = req.roles.unwrap_or_else(|| vec![defaults::USER.into()]);
    users::check_roles(&roles)?;
    let may_assign_admin = app.has_permission(&caller.user, Permission::AssignAdminRole);
    users::check_admin_assignment(&roles, may_assign_admin)?;
    let username = req.username.trim().to_string();
    let acct = NewAccount {
        roles,
        active: req.active.unwrap_or(true),
        bio: req.bio.unwrap_or_default(),
        nickname: req.nickname.unwrap_or_default(),
        verified: req.verified.unwrap_or(false),
        status_text: normalize_text(req.status_text.as_deref().unwrap_or("")),
        ..NewAccount::person(&username, &req.name, Some(req.email.trim().to_string()))
    };
    let user = create_account(&app, acct, &req.password, Purpose::Create).await?;
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
        (status = 400, description = "Registration disabled, Match error, an unknown member, \
            or an invalid, reserved or taken username or email", body = schema::ErrorBody),
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
    if req
        .name
        .as_deref()
        .is_some_and(|n| !identity::valid_name_chars(n))
    {
        return Err(ApiError::plain("Name contains invalid characters"));
    }
    let username = req.username.trim().to_string();
    let name = req.name.unwrap_or_else(|| username.clone());
    let acct = NewAccount::person(&username, &name, Some(req.email.trim().to_string()));
    let user = create_account(&app, acct, &req.pass, Purpose::Register).await?;
    Ok(ok(&schema::UserBody {
        success: true,
        user: views::public(&user),
    }))
}

/// `POST users.update`: the user and the changes.
// Members Rocket.Chat's schema allows and statusd has no use for are read (so they
// are not refused) and never used.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct UpdateUserRequest {
    user_id: Option<String>,
    data: UserChanges,
    confirm_relinquish: Option<bool>,
}

/// What users.update may change; absent fields stay as they are. The members
/// Rocket.Chat's schema allows and statusd has no use for are accepted and ignored.
// Members Rocket.Chat's schema allows and statusd has no use for are read (so they
// are not refused) and never used.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct UserChanges {
    #[schema(format = Email)]
    email: Option<String>,
    /// At most 120 characters, without `<`, `>`, `\` or `/`.
    name: Option<String>,
    /// Matches UTF8_User_Names_Validation (default `[0-9a-zA-Z-_.]+`), at most 64.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    username: Option<String>,
    /// Oneself's (when Accounts_AllowPasswordChange), or another's with
    /// edit-other-user-password; ends every other session of the user.
    password: Option<String>,
    active: Option<bool>,
    #[serde(default, deserialize_with = "opt_strings")]
    #[schema(schema_with = schema::role_list)]
    roles: Option<Vec<String>>,
    /// As users.setStatus's `message`: the same setting, limit and history.
    status_text: Option<String>,
    /// At most 260 characters; empty clears it.
    bio: Option<String>,
    /// At most 120 characters; empty clears it.
    nickname: Option<String>,
    /// Whether the first email is verified (not for oneself).
    verified: Option<bool>,
    join_default_channels: Option<bool>,
    require_password_change: Option<bool>,
    set_random_password: Option<bool>,
    send_welcome_email: Option<bool>,
    #[schema(value_type = Option<Object>)]
    custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
    status: Option<String>,
}

/// Changes a user: oneself, or others with `edit-other-user-info` (400
/// `error-action-not-allowed` without, as Rocket.Chat's saveUser).
#[utoipa::path(post, path = "/api/v1/users.update", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The changed user", body = schema::UserBody),
        (status = 400, description = "Match error, invalid-params, unknown user, an invalid, \
            reserved or taken username or email, an unknown role, the last admin, or a change \
            the caller may not make (error-action-not-allowed)", body = schema::ErrorBody),
        (status = 429, description = "The status text changed 5 times in 60 s", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn update(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<UpdateUserRequest>,
) -> ApiResult<Response> {
    let UpdateUserRequest { user_id, data, .. } = body.read()?;
    let user_id = match user_id {
        None => return Err(invalid_params("must have required property 'userId'")),
        Some(id) if id.is_empty() => {
            return Err(invalid_params("must NOT have fewer than 1 characters"))
        }
        Some(id) => id,
    };
    if data
        .name
        .as_deref()
        .is_some_and(|n| !identity::valid_name_chars(n))
    {
        return Err(ApiError::plain("Name contains invalid characters"));
    }
    let editor = Editor {
        id: caller.user.id.clone(),
        token: Some(caller.token.hashed.clone()),
        edit_other_info: app.has_permission(&caller.user, Permission::EditOtherUserInfo),
        edit_other_password: app.has_permission(&caller.user, Permission::EditOtherUserPassword),
        assign_roles: app.has_permission(&caller.user, Permission::AssignRoles),
        assign_admin: app.has_permission(&caller.user, Permission::AssignAdminRole),
    };
    // Refused before any slow work; the job checks everything again.
    if user_id != editor.id && !editor.edit_other_info {
        return Err(
            Error::refused("error-action-not-allowed", "Editing user is not allowed")
                .by(crate::accounts::METHOD)
                .into(),
        );
    }
    if data.active.is_some()
        && !app.has_permission(&caller.user, Permission::EditOtherUserActiveStatus)
    {
        return Err(Error::refused("error-not-allowed", "Not allowed")
            .by("setUserActiveStatus")
            .into());
    }
    if let Some(r) = &data.roles {
        users::check_roles(r)?;
    }
    let status_text = data.status_text.as_deref().map(normalize_text);
    let current = app.model.read().users.get(&user_id).cloned();
    if let (Some(text), Some(current)) = (&status_text, &current) {
        if *text != current.status_text && app.setting(&settings::ALLOW_STATUS_MESSAGE_CHANGE) {
            super::status::limit_text_change(&app, &user_id, editor.edit_other_info)?;
        }
    }
    let password_hash = match data.password.as_deref() {
        Some(p) if !p.trim().is_empty() => Some(app.hash_password(p).await?),
        _ => None,
    };
    let changes = Changes {
        username: data.username.map(|s| s.trim().to_string()),
        name: data.name,
        email: data.email.map(|s| s.trim().to_string()),
        password_hash,
        active: data.active,
        roles: data.roles,
        status_text,
        bio: data.bio,
        nickname: data.nickname,
        verified: data.verified,
    };
    let user = app
        .writer
        .run(move |tx| users::update(tx, &user_id, changes, &editor))
        .await?;
    Ok(ok(&schema::UserBody {
        success: true,
        user: views::full(&user),
    }))
}

/// Rocket.Chat's body validation refusal (`errorType` `invalid-params`).
fn invalid_params(reason: &str) -> ApiError {
    Error::refused("invalid-params", reason).into()
}

/// `POST users.delete`: `userId`, or else `username` (or `user`).
// Members Rocket.Chat's schema allows and statusd has no use for are read (so they
// are not refused) and never used.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct DeleteUserRequest {
    user_id: Option<String>,
    username: Option<String>,
    user: Option<String>,
    confirm_relinquish: Option<bool>,
}

/// Deletes a user (`delete-user`, declared); never the last active admin.
#[utoipa::path(post, path = "/api/v1/users.delete", tag = "users",
    security(("userId" = [], "authToken" = [])),
    request_body = DeleteUserRequest,
    responses(
        (status = 200, description = "Deleted", body = schema::Success),
        (status = 400, description = "Match error, invalid-params, unknown user, or the last admin",
         body = schema::ErrorBody),
        (status = 403, description = "Without delete-user (declared)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn delete(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<DeleteUserRequest>,
) -> ApiResult<Response> {
    app.require_declared(&caller.user, Permission::DeleteUser)?;
    let req = body.read()?;
    let by_id = req.user_id.filter(|s| !s.trim().is_empty());
    let by_name = req.username.or(req.user).filter(|s| !s.is_empty());
    if by_id.is_none() && by_name.is_none() {
        return Err(invalid_params("must have required property 'userId'"));
    }
    app.writer
        .run(move |tx| {
            let who = match (&by_id, &by_name) {
                (Some(id), _) => Named::Id(id),
                (None, Some(name)) => Named::Username(name),
                (None, None) => return Err(Error::invalid_user()),
            };
            users::delete(tx, who)
        })
        .await?;
    Ok(ok(&schema::Success::YES))
}
