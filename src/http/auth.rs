//! Sessions (CONTRACT §3): login in every body form, logout, me, personal access tokens.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{parse_json_or_form, str_field, Caller, ClientIp, JsonBody, RawBody};
use super::{ok, schema, views};
use crate::app::{App, Ctx};
use crate::auth::secrets;
use crate::error::{ApiError, ApiResult};
use crate::model::{iso, Token, TokenKind, User};

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

/// Who is trying to log in, and with what.
pub enum Credentials {
    /// A username or email with the SHA-256 hex digest of the password.
    Password {
        login: Login,
        digest: String,
    },
    Resume(String),
}

pub enum Login {
    Username(String),
    Email(String),
}

fn parse_password(v: &Value) -> Result<String, ApiError> {
    match v {
        Value::String(plain) => Ok(secrets::sha256_hex(plain)),
        Value::Object(o) => {
            let digest = o
                .get("digest")
                .or_else(|| o.get("hashed"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::match_field("password", "string or {digest, algorithm}")
                })?;
            match o.get("algorithm").and_then(Value::as_str) {
                None | Some("sha-256") => Ok(digest.to_lowercase()),
                Some(_) => Err(ApiError::LoginFailed),
            }
        }
        _ => Err(ApiError::match_field(
            "password",
            "string or {digest, algorithm}",
        )),
    }
}

fn login_of(v: &Value) -> Result<Option<Login>, ApiError> {
    Ok(match v {
        Value::String(s) if s.contains('@') => Some(Login::Email(s.clone())),
        Value::String(s) => Some(Login::Username(s.clone())),
        Value::Object(o) => {
            if let Some(u) = o.get("username").and_then(Value::as_str) {
                Some(Login::Username(u.to_string()))
            } else {
                o.get("email")
                    .and_then(Value::as_str)
                    .map(|e| Login::Email(e.to_string()))
            }
        }
        Value::Null => None,
        _ => return Err(ApiError::match_field("user", "string")),
    })
}

/// Reads every login body form of CONTRACT §3 (the DDP login uses it too).
pub fn parse_credentials(body: &Value) -> Result<Credentials, ApiError> {
    let obj = body.as_object().ok_or_else(ApiError::match_error)?;
    if let Some(resume) = obj.get("resume") {
        return resume
            .as_str()
            .map(|t| Credentials::Resume(t.to_string()))
            .ok_or_else(|| ApiError::match_field("resume", "string"));
    }
    let login = if let Some(u) = obj.get("user") {
        login_of(u)?
    } else if let Some(u) = obj.get("username") {
        login_of(&Value::String(
            u.as_str()
                .ok_or_else(|| ApiError::match_field("username", "string"))?
                .to_string(),
        ))?
        .map(|l| match l {
            Login::Email(e) => Login::Username(e),
            other => other,
        })
    } else if let Some(e) = obj.get("email") {
        Some(Login::Email(
            e.as_str()
                .ok_or_else(|| ApiError::match_field("email", "string"))?
                .to_string(),
        ))
    } else {
        None
    };
    let (Some(login), Some(password)) = (login, obj.get("password")) else {
        return Err(ApiError::LoginFailed);
    };
    Ok(Credentials::Password {
        login,
        digest: parse_password(password)?,
    })
}

/// The login route's body, raw bytes and content type to credentials: the whole of its
/// input handling, pure (the `login_body` fuzz target runs exactly this).
pub fn parse_login(bytes: &[u8], content_type: Option<&str>) -> Result<Credentials, ApiError> {
    parse_credentials(&parse_json_or_form(bytes, content_type)?)
}

/// A successful login: the user and the (new or resumed) token secret.
pub struct LoggedIn {
    pub user: User,
    pub token: String,
    pub token_created: chrono::DateTime<chrono::Utc>,
    pub resumed: bool,
}

fn blocked_error(app: &App, username: &str, ip: IpAddr) -> Option<ApiError> {
    let m = app.model.read();
    if !m.setting_bool("Block_Multiple_Failed_Logins_Enabled") {
        return None;
    }
    let now = Instant::now();
    if m.setting_bool("Block_Multiple_Failed_Logins_By_User") {
        let attempts = m.setting_i64(
            "Block_Multiple_Failed_Logins_Attempts_Until_Block_by_User",
            10,
        );
        let mins = m.setting_i64(
            "Block_Multiple_Failed_Logins_Time_To_Unblock_By_User_In_Minutes",
            5,
        );
        if app.login_guard.blocked(
            &format!("user:{}", username.to_lowercase()),
            attempts.max(0) as usize,
            Duration::from_secs(mins.max(0) as u64 * 60),
            now,
        ) {
            return Some(ApiError::LoginBlocked {
                code: "error-login-blocked-for-user".into(),
                reason: "Login has been temporarily blocked For User".into(),
            });
        }
    }
    let whitelisted = m
        .setting("Block_Multiple_Failed_Logins_Ip_Whitelist")
        .and_then(Value::as_str)
        .is_some_and(|list| list.split(',').any(|s| s.trim() == ip.to_string()));
    if m.setting_bool("Block_Multiple_Failed_Logins_By_Ip") && !whitelisted {
        let attempts = m.setting_i64(
            "Block_Multiple_Failed_Logins_Attempts_Until_Block_By_Ip",
            50,
        );
        let mins = m.setting_i64(
            "Block_Multiple_Failed_Logins_Time_To_Unblock_By_Ip_In_Minutes",
            5,
        );
        if app.login_guard.blocked(
            &format!("ip:{ip}"),
            attempts.max(0) as usize,
            Duration::from_secs(mins.max(0) as u64 * 60),
            now,
        ) {
            return Some(ApiError::LoginBlocked {
                code: "error-login-blocked-for-ip".into(),
                reason: "Login has been temporarily blocked For IP".into(),
            });
        }
    }
    None
}

/// Checks credentials and records a new login token (REST and DDP login share this).
pub async fn log_in(app: &Ctx, creds: Credentials, ip: IpAddr) -> ApiResult<LoggedIn> {
    match creds {
        Credentials::Resume(token) => {
            let user_id = {
                let m = app.model.read();
                let tok = m
                    .tokens
                    .get(&secrets::hash_token(&token))
                    .ok_or(ApiError::LoginFailed)?;
                tok.user_id.clone()
            };
            let (user, tok) = app
                .authenticate(&user_id, &token)
                .ok_or(ApiError::LoginFailed)?;
            Ok(LoggedIn {
                user: (*user).clone(),
                token,
                token_created: tok.created_at,
                resumed: true,
            })
        }
        Credentials::Password { login, digest } => {
            let user = {
                let m = app.model.read();
                match &login {
                    Login::Username(u) => m.user_by_username(u),
                    Login::Email(e) => m.user_by_email(e),
                }
            };
            let login_name = match (&user, &login) {
                (Some(u), _) => u.username.clone(),
                (None, Login::Username(u) | Login::Email(u)) => u.clone(),
            };
            if let Some(e) = blocked_error(app, &login_name, ip) {
                return Err(e);
            }
            let stored = user
                .as_ref()
                .filter(|u| u.active)
                .and_then(|u| u.password_hash.clone());
            // Verify even for unknown users, so both cost the same time.
            let hash = stored
                .clone()
                .unwrap_or_else(|| secrets::dummy_hash().to_string());
            let _slot = app
                .login_slots
                .acquire()
                .await
                .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
            let matches = secrets::off_thread(move || secrets::verify_digest(&digest, &hash))
                .await
                .unwrap_or(false);
            let (Some(user), true, true) = (user, matches, stored.is_some()) else {
                let now = Instant::now();
                app.login_guard
                    .fail(&format!("user:{}", login_name.to_lowercase()), now);
                app.login_guard.fail(&format!("ip:{ip}"), now);
                return Err(ApiError::LoginFailed);
            };
            app.login_guard
                .clear(&format!("user:{}", user.username.to_lowercase()));
            let token = secrets::new_secret();
            let hashed = secrets::hash_token(&token);
            let user_id = user.id.clone();
            let (user, created) = app
                .writer
                .run(move |tx| {
                    let current = tx.user(&user_id).ok_or(ApiError::LoginFailed)?;
                    let mut u = (*current).clone();
                    u.last_login = Some(tx.now);
                    tx.put_user(u.clone());
                    tx.put_token(Token {
                        hashed,
                        user_id: user_id.clone(),
                        kind: TokenKind::Login,
                        created_at: tx.now,
                    });
                    Ok((u, tx.now))
                })
                .await?;
            Ok(LoggedIn {
                user,
                token,
                token_created: created,
                resumed: false,
            })
        }
    }
}

/// Logs in with a password (or its SHA-256 digest) or resumes a token (CONTRACT §3).
#[utoipa::path(post, path = "/api/v1/login", tag = "sessions",
    request_body(content(
        (schema::LoginRequest = "application/json"),
        (schema::LoginRequest = "application/x-www-form-urlencoded"),
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
    Ok(ok(json!({
        "status": "success",
        "data": {
            "userId": done.user.id,
            "authToken": done.token,
            "me": views::me(&done.user, &app.cfg.root_url),
        },
    })))
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
            tx.delete_token(&hashed);
            Ok(())
        })
        .await?;
    Ok(ok(json!({
        "status": "success",
        "data": {"message": "You've been logged out!"},
    })))
}

/// The caller's own user.
#[utoipa::path(get, path = "/api/v1/me", tag = "sessions",
    security(("userId" = [], "authToken" = [])),
    responses((status = 200, description = "The caller", body = schema::Me)))]
async fn me(State(app): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    let user = app
        .model
        .read()
        .users
        .get(&caller.user.id)
        .cloned()
        .ok_or(ApiError::Unauthenticated)?;
    Ok(ok(views::me(&user, &app.cfg.root_url)))
}

const PAT_METHOD: &str = "personalAccessTokens";

fn require_pat_permission(app: &App, caller: &Caller) -> ApiResult<()> {
    if app.has_permission(&caller.user, "create-personal-access-tokens") {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn token_name(body: &Value) -> ApiResult<String> {
    let name = str_field(body, "tokenName")?.trim().to_string();
    if name.is_empty() {
        return Err(ApiError::meteor(
            "error-token-name-required",
            "Token name is required",
            PAT_METHOD,
        ));
    }
    Ok(name)
}

fn pat_not_found() -> ApiError {
    ApiError::meteor(
        "error-token-does-not-exists",
        "Token does not exist",
        PAT_METHOD,
    )
}

/// Creates a personal access token named `name` for `user_id`, optionally replacing one.
pub(crate) async fn issue_pat(
    app: &Ctx,
    user_id: String,
    name: String,
    replace: bool,
) -> ApiResult<String> {
    let secret = secrets::new_secret();
    let hashed = secrets::hash_token(&secret);
    let last_part = secret[secret.len() - 6..].to_string();
    app.writer
        .run(move |tx| {
            let existing = tx
                .user_tokens(&user_id)
                .into_iter()
                .find(|t| matches!(&t.kind, TokenKind::Personal { name: n, .. } if *n == name));
            match (&existing, replace) {
                (Some(_), false) => {
                    return Err(ApiError::meteor(
                        "error-token-already-exists",
                        "A token with this name already exists",
                        PAT_METHOD,
                    ))
                }
                (None, true) => return Err(pat_not_found()),
                (Some(old), true) => tx.delete_token(&old.hashed),
                (None, false) => {}
            }
            tx.put_token(Token {
                hashed,
                user_id,
                kind: TokenKind::Personal { name, last_part },
                created_at: tx.now,
            });
            Ok(())
        })
        .await?;
    Ok(secret)
}

/// Creates a personal access token (how bots log in).
#[utoipa::path(post, path = "/api/v1/users.generatePersonalAccessToken", tag = "tokens",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::TokenNameRequest,
    responses(
        (status = 200, description = "The new token, shown once", body = schema::TokenBody),
        (status = 400, description = "No name, or the name is taken", body = schema::ErrorBody),
        (status = 403, description = "Without create-personal-access-tokens", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn generate_pat(
    State(app): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_pat_permission(&app, &caller)?;
    let name = token_name(&body)?;
    let token = issue_pat(&app, caller.user.id.clone(), name, false).await?;
    Ok(ok(json!({ "token": token })))
}

/// Replaces a personal access token by a new one of the same name.
#[utoipa::path(post, path = "/api/v1/users.regeneratePersonalAccessToken", tag = "tokens",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::TokenNameRequest,
    responses(
        (status = 200, description = "The new token, shown once", body = schema::TokenBody),
        (status = 400, description = "No name, or no such token", body = schema::ErrorBody),
        (status = 403, description = "Without create-personal-access-tokens", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn regenerate_pat(
    State(app): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_pat_permission(&app, &caller)?;
    let name = token_name(&body)?;
    let token = issue_pat(&app, caller.user.id.clone(), name, true).await?;
    Ok(ok(json!({ "token": token })))
}

/// Revokes a personal access token.
#[utoipa::path(post, path = "/api/v1/users.removePersonalAccessToken", tag = "tokens",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::TokenNameRequest,
    responses(
        (status = 200, description = "Removed", body = schema::Success),
        (status = 400, description = "No name, or no such token", body = schema::ErrorBody),
        (status = 403, description = "Without create-personal-access-tokens", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn remove_pat(
    State(app): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_pat_permission(&app, &caller)?;
    let name = token_name(&body)?;
    let user_id = caller.user.id.clone();
    app.writer
        .run(move |tx| {
            let old = tx
                .user_tokens(&user_id)
                .into_iter()
                .find(|t| matches!(&t.kind, TokenKind::Personal { name: n, .. } if *n == name))
                .ok_or_else(pat_not_found)?;
            tx.delete_token(&old.hashed);
            Ok(())
        })
        .await?;
    Ok(ok(json!({})))
}

/// The caller's personal access tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/users.getPersonalAccessTokens", tag = "tokens",
    security(("userId" = [], "authToken" = [])),
    responses(
        (status = 200, description = "The tokens", body = schema::TokenListBody),
        (status = 403, description = "Without create-personal-access-tokens", body = schema::ErrorBody),
    ))]
async fn list_pats(State(app): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    require_pat_permission(&app, &caller)?;
    let m = app.model.read();
    let mut tokens: Vec<(chrono::DateTime<chrono::Utc>, Value)> = m
        .tokens
        .values()
        .filter(|t| t.user_id == caller.user.id)
        .filter_map(|t| match &t.kind {
            TokenKind::Personal { name, last_part } => Some((
                t.created_at,
                json!({
                    "name": name,
                    "createdAt": iso(&t.created_at),
                    "lastTokenPart": last_part,
                    "bypassTwoFactor": false,
                }),
            )),
            TokenKind::Login => None,
        })
        .collect();
    tokens.sort_by_key(|(t, _)| *t);
    let tokens: Vec<Value> = tokens.into_iter().map(|(_, v)| v).collect();
    Ok(ok(json!({ "tokens": tokens })))
}
