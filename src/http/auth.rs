//! Sessions (CONTRACT §3): login in every body form, logout, me, personal access
//! tokens. The rules are `accounts` and the login sequence `crate::login`; these
//! handlers read the request, check the caller's permission and render the answer.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{parse_json_or_form, Body, Caller, ClientIp, RawBody};
use super::reply::ok;
use super::{schema, views};
use crate::accounts::credentials::{self, Credentials, LoginRequest};
use crate::accounts::preferences;
use crate::accounts::tokens;
use crate::app::{App, Ctx};
use crate::auth::defaults::Permission;
use crate::error::Error;
use crate::login::log_in;
use crate::model::iso;

pub fn public_routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(login))
}

pub fn authed_routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(generate_pat))
        .routes(routes!(regenerate_pat))
        .routes(routes!(remove_pat))
        .routes(routes!(list_pats))
}

/// The login route's body, raw bytes and content type to credentials: the whole of its
/// input handling, pure (the `login_body` fuzz target runs exactly this).
pub fn parse_login(bytes: &[u8], content_type: Option<&str>) -> Result<Credentials, ApiError> {
    Ok(credentials::parse(&parse_json_or_form(
        bytes,
        content_type,
    )?)?)
}

/// Logs in with a password (or its SHA-256 digest) or resumes a token (CONTRACT §3).
#[utoipa::path(post, path = "/api/v1/login", tag = "sessions",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in", body = schema::LoginBody),
        (status = 400, description = "A body of the wrong shape", body = schema::ErrorBody),
        (status = 401, description = "Bad credentials, or blocked after repeated failures",
         body = schema::ErrorBody),
        (status = 503, description = "The login could not be recorded", body = schema::ErrorBody),
    ))]
async fn login(
    State(app): State<Ctx>,
    ClientIp(ip): ClientIp,
    body: RawBody,
) -> ApiResult<Response> {
    let creds = parse_login(&body.bytes, body.content_type.as_deref())?;
    let done = log_in(&app, creds, ip).await?;
    Ok(ok(&schema::LoginBody {
        data: schema::LoginData {
            auth_token: done.token,
            me: views::me(
                &done.user,
                &app.cfg.root_url,
                preferences::effective(&done.user, &app.model.read()),
            ),
            user_id: &done.user.id,
        },
        status: "success",
        success: true,
    }))
}

/// Revokes the calling token.
#[utoipa::path(method(get, post), path = "/api/v1/logout", tag = "sessions",
    security(("userId" = [], "authToken" = [])),
    responses(
        (status = 200, description = "Logged out", body = schema::LogoutBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn logout(State(app): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    let hashed = caller.token.hashed.clone();
    app.writer
        .run(move |tx| {
            tokens::revoke(tx, &hashed);
            Ok(())
        })
        .await?;
    Ok(ok(&schema::LogoutBody {
        data: schema::LogoutData {
            message: "You've been logged out!",
        },
        status: "success",
        success: true,
    }))
}

/// The caller's own user.
#[utoipa::path(get, path = "/api/v1/me", tag = "sessions",
    security(("userId" = [], "authToken" = [])),
    responses((status = 200, description = "The caller", body = Me)))]
async fn me(State(app): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    let user = app
        .model
        .read()
        .users
        .get(&caller.user.id)
        .cloned()
        .ok_or(ApiError::Unauthenticated)?;
    Ok(ok(&Me {
        me: views::me(
            &user,
            &app.cfg.root_url,
            preferences::effective(&user, &app.model.read()),
        ),
        success: true,
    }))
}

/// `GET me`: the caller's own view, members at the top level.
#[derive(Serialize, ToSchema)]
pub struct Me<'a> {
    #[serde(flatten)]
    me: views::UserView<'a>,
    success: bool,
}

/// `{"tokenName": …, "bypassTwoFactor"?: bool}`: the personal access token routes'
/// body (`bypassTwoFactor` only when generating; kept when regenerating).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct TokenNameRequest {
    /// Not blank.
    #[schema(pattern = r"\S")]
    token_name: String,
    /// Stored and listed as given.
    bypass_two_factor: Option<bool>,
}

/// Rocket.Chat's token methods refuse a caller without `create-personal-access-tokens`
/// themselves: a 400 `not-authorized`, not the 403 of a declared permission.
fn require_pat_permission(app: &App, caller: &Caller) -> ApiResult<()> {
    if app.has_permission(&caller.user, Permission::CreatePersonalAccessTokens) {
        Ok(())
    } else {
        Err(Error::refused("not-authorized", "Not Authorized")
            .by(tokens::PAT_METHOD)
            .into())
    }
}

/// Issues (or with `replace` renews) the caller's token named in the body.
async fn issue(
    app: &App,
    caller: &Caller,
    body: Body<TokenNameRequest>,
    replace: bool,
) -> ApiResult<Response> {
    require_pat_permission(app, caller)?;
    let req = body.read()?;
    let name = tokens::token_name(&req.token_name)?;
    let bypass = req.bypass_two_factor.unwrap_or(false);
    let user_id = caller.user.id.clone();
    let token = app
        .writer
        .run(move |tx| tokens::issue_personal(tx, &user_id, name, replace, bypass))
        .await?;
    Ok(ok(&schema::TokenBody {
        success: true,
        token,
    }))
}

/// Creates a personal access token (how bots log in).
#[utoipa::path(post, path = "/api/v1/users.generatePersonalAccessToken", tag = "tokens",
    security(("userId" = [], "authToken" = [])),
    request_body = TokenNameRequest,
    responses(
        (status = 200, description = "The new token, shown once", body = schema::TokenBody),
        (status = 400, description = "No name, the name is taken, or without \
            create-personal-access-tokens (not-authorized)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn generate_pat(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<TokenNameRequest>,
) -> ApiResult<Response> {
    issue(&app, &caller, body, false).await
}

/// Replaces a personal access token by a new one of the same name.
#[utoipa::path(post, path = "/api/v1/users.regeneratePersonalAccessToken", tag = "tokens",
    security(("userId" = [], "authToken" = [])),
    request_body = TokenNameRequest,
    responses(
        (status = 200, description = "The new token, shown once", body = schema::TokenBody),
        (status = 400, description = "No name, no such token, or without \
            create-personal-access-tokens (not-authorized)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn regenerate_pat(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<TokenNameRequest>,
) -> ApiResult<Response> {
    issue(&app, &caller, body, true).await
}

/// Revokes a personal access token.
#[utoipa::path(post, path = "/api/v1/users.removePersonalAccessToken", tag = "tokens",
    security(("userId" = [], "authToken" = [])),
    request_body = TokenNameRequest,
    responses(
        (status = 200, description = "Removed", body = schema::Success),
        (status = 400, description = "No name, no such token, or without \
            create-personal-access-tokens (not-authorized)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn remove_pat(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<TokenNameRequest>,
) -> ApiResult<Response> {
    require_pat_permission(&app, &caller)?;
    let name = tokens::token_name(&body.read()?.token_name)?;
    let user_id = caller.user.id.clone();
    app.writer
        .run(move |tx| tokens::revoke_personal(tx, &user_id, &name))
        .await?;
    Ok(ok(&schema::Success::YES))
}

/// The caller's personal access tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/users.getPersonalAccessTokens", tag = "tokens",
    security(("userId" = [], "authToken" = [])),
    responses(
        (status = 200, description = "The tokens", body = schema::TokenListBody),
        (status = 403, description = "Without create-personal-access-tokens (declared)",
         body = schema::ErrorBody),
    ))]
async fn list_pats(State(app): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    app.require_declared(&caller.user, Permission::CreatePersonalAccessTokens)?;
    let m = app.model.read();
    let mine = tokens::personal_tokens(&m, &caller.user.id);
    Ok(ok(&schema::TokenListBody {
        success: true,
        tokens: mine
            .iter()
            .map(|(name, last_part, bypass, created)| schema::PersonalToken {
                bypass_two_factor: *bypass,
                created_at: iso(created),
                last_token_part: last_part,
                name,
            })
            .collect(),
    }))
}
