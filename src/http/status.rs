//! The status routes (CONTRACT §4): users.setStatus and the reads around it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{parse_json, Caller, Query, RawBody};
use super::reply::{json_response, ok};
use super::{schema, views};
use crate::app::{App, Ctx};
use crate::auth::defaults::Permission;
use crate::change::{self, StatusChange};
use crate::error::Error;
use crate::model::{Source, User};
use crate::settings;
use crate::status::rules::{self, TargetParam};

const SET_STATUS: &str = "users.setStatus";
/// Status text changes allowed per target user per window, unless the caller may edit others.
const MESSAGE_CHANGES: u64 = 5;
const MESSAGE_WINDOW: Duration = Duration::from_secs(60);

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(set_status))
        .routes(routes!(get_status))
        .routes(routes!(get_presence))
        .routes(routes!(presence))
}

/// Finds the user a `userId` / `username` parameter names (ids exact, usernames ignoring case).
pub fn find_target(app: &App, target: &TargetParam) -> Option<Arc<User>> {
    let m = app.model.read();
    match target {
        TargetParam::Id(id) => m.users.get(id).cloned(),
        TargetParam::Username(name) => m.user_by_username(name),
    }
}

/// Step 8: a user's status text changes at most 5 times per 60 s, unless the caller
/// may edit others (Rocket.Chat's setStatusText limit). users.update's `statusText`
/// counts against the same budget.
pub(super) fn limit_text_change(
    app: &App,
    target_id: &str,
    may_edit_others: bool,
) -> ApiResult<()> {
    if may_edit_others {
        return Ok(());
    }
    let d = app.limiter.hit(
        &format!("status-text:{target_id}"),
        MESSAGE_CHANGES,
        MESSAGE_WINDOW,
        Instant::now(),
    );
    if !d.allowed {
        return Err(Error::TooManyRequests {
            wait_secs: d.reset_in.as_millis().div_ceil(1000) as u64,
        }
        .into());
    }
    Ok(())
}

/// Step 3 from the raw body: JSON (whatever the content type says, as every route but
/// login), then the shape. Pure (the `set_status_body` fuzz target runs exactly this).
pub fn parse_set_status_body(bytes: &[u8]) -> ApiResult<rules::SetStatusRequest> {
    Ok(rules::parse_set_status(&parse_json(bytes)?)?)
}

/// Sets the caller's (or, with `edit-other-user-info`, another user's) status and
/// status text, optionally until `expiresAt` (CONTRACT §4).
#[utoipa::path(post, path = "/api/v1/users.setStatus", tag = "status",
    security(("userId" = [], "authToken" = [])),
    request_body = rules::SetStatusRequest,
    responses(
        (status = 200, description = "Committed and published", body = schema::Success),
        (status = 400, description = "Match error, error-not-allowed, error-invalid-user, \
            error-invalid-status, error-status-not-allowed or error-invalid-date",
         body = schema::ErrorBody),
        (status = 403, description = "Another user, without edit-other-user-info", body = schema::ErrorBody),
        (status = 429, description = "Over the rate limit, or the status text changed 5 times in 60 s",
         body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
// The nine steps of CONTRACT §4, in order. Steps 1–2 ran in the middleware.
async fn set_status(State(app): State<Ctx>, caller: Caller, body: RawBody) -> ApiResult<Response> {
    let started = Instant::now();
    // 3. shape
    let req = parse_set_status_body(&body.bytes)?;
    // 4. the workspace allows status changes at all
    if !app.setting(&settings::ALLOW_STATUS_MESSAGE_CHANGE) {
        return Err(
            Error::refused("error-not-allowed", "Change status is not allowed")
                .by(SET_STATUS)
                .into(),
        );
    }
    // 5. target
    let may_edit_others = app.has_permission(&caller.user, Permission::EditOtherUserInfo);
    let target_id = if rules::names_self(
        req.user_id.as_deref(),
        req.username.as_deref(),
        req.user.as_deref(),
        &caller.user.id,
        &caller.user.username,
    ) {
        caller.user.id.clone()
    } else {
        if !may_edit_others {
            return Err(Error::Forbidden.into());
        }
        let param = rules::target_param(
            req.user_id.as_deref(),
            req.username.as_deref(),
            req.user.as_deref(),
        )
        .ok_or_else(Error::invalid_user)?;
        find_target(&app, &param)
            .ok_or_else(Error::invalid_user)?
            .id
            .clone()
    };
    // 6. status value and the invisible option
    let status = rules::check_status(
        req.status.as_deref(),
        app.setting(&settings::ALLOW_INVISIBLE),
        SET_STATUS,
    )?;
    // 7. expiry
    let expires_at = rules::check_expires_at(req.expires_at.as_deref(), Utc::now(), SET_STATUS)?;
    // 8. message-change limit per target user
    if req.message.is_some() {
        limit_text_change(&app, &target_id, may_edit_others)?;
    }
    // 9. apply, commit, publish
    let change = StatusChange {
        status,
        text: req.message.as_deref().map(rules::normalize_text),
        expires_at,
        actor: Some(caller.user.id.clone()),
        source: Source::Rest,
    };
    app.writer
        .run(move |tx| change::set_status(tx, &target_id, change))
        .await?;
    app.metrics
        .set_status_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(ok(&schema::Success::YES))
}

/// Resolves the `userId`/`username`/`user` query of the read routes: None for self.
fn read_target(app: &App, caller: &Caller, q: &Query) -> ApiResult<Option<Arc<User>>> {
    let (id, name, user) = (q.get("userId"), q.get("username"), q.get("user"));
    if rules::names_self(id, name, user, &caller.user.id, &caller.user.username) {
        return Ok(None);
    }
    let param = rules::target_param(id, name, user).ok_or_else(Error::invalid_user)?;
    Ok(find_target(app, &param)
        .map(Some)
        .ok_or_else(Error::invalid_user)?)
}

/// The caller's own user as the model holds it now (the caller was resolved from
/// the model an instant ago; the fallback only covers a user deleted meanwhile).
fn me(app: &App, caller: &Caller) -> Arc<User> {
    app.model
        .read()
        .users
        .get(&caller.user.id)
        .cloned()
        .unwrap_or_else(|| caller.user.clone())
}

/// How the caller sees other users' status (`crate::privacy`).
fn lens<'a>(app: &App, caller: &'a Caller) -> crate::privacy::Lens<'a> {
    crate::privacy::Lens::of(&app.model.read(), &caller.user.id)
}

/// A user's status: the caller's own when no user is named.
#[utoipa::path(get, path = "/api/v1/users.getStatus", tag = "status",
    security(("userId" = [], "authToken" = [])),
    params(
        ("userId" = Option<String>, Query, description = "Another user, by id"),
        ("username" = Option<String>, Query, description = "Another user, by username"),
        ("user" = Option<String>, Query, description = "Another user, by username"),
    ),
    responses(
        (status = 200, description = "The status", body = views::StatusOf),
        (status = 400, description = "error-invalid-user, or an unreadable query", body = schema::ErrorBody),
    ))]
async fn get_status(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    Ok(match read_target(&app, &caller, &q)? {
        None => json_response(StatusCode::OK, &views::status_of(&me(&app, &caller), true)),
        Some(u) => {
            let lens = lens(&app, &caller);
            json_response(StatusCode::OK, &views::status_of(&lens.show(&u), false))
        }
    })
}

/// A user's presence: the caller's own when no user is named.
#[utoipa::path(get, path = "/api/v1/users.getPresence", tag = "status",
    security(("userId" = [], "authToken" = [])),
    params(
        ("userId" = Option<String>, Query, description = "Another user, by id"),
        ("username" = Option<String>, Query, description = "Another user, by username"),
        ("user" = Option<String>, Query, description = "Another user, by username"),
    ),
    responses(
        (status = 200, description = "The presence", body = views::PresenceOf),
        (status = 400, description = "error-invalid-user, or an unreadable query", body = schema::ErrorBody),
    ))]
async fn get_presence(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    Ok(match read_target(&app, &caller, &q)? {
        None => json_response(
            StatusCode::OK,
            &views::presence_of(&me(&app, &caller), true),
        ),
        Some(u) => {
            let lens = lens(&app, &caller);
            json_response(StatusCode::OK, &views::presence_of(&lens.show(&u), false))
        }
    })
}

/// How far back `from` may reach for an incremental answer.
const PRESENCE_FROM_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// Presence of many users: those named by `ids`, those changed since `from` (within
/// the last 10 minutes), or everyone not offline.
#[utoipa::path(get, path = "/api/v1/users.presence", tag = "status",
    security(("userId" = [], "authToken" = [])),
    params(
        ("ids" = Option<Vec<String>>, Query, description = "User ids (`ids[]=a&ids[]=b`, `ids=a,b`)"),
        ("from" = Option<String>, Query, description = "An RFC 3339 time"),
    ),
    responses(
        (status = 200, description = "The users", body = views::PresenceList),
        (status = 400, description = "An unreadable query", body = schema::ErrorBody),
    ))]
async fn presence(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    let m = app.model.read();
    // Users who hide from the caller are seen offline (`crate::privacy`).
    let lens = crate::privacy::Lens::of(&m, &caller.user.id);
    let visible = |u: &User| u.status != crate::model::Status::Offline || !u.status_text.is_empty();
    let answer = |users, full| {
        let list = views::PresenceList {
            full,
            success: true,
            users,
        };
        Ok(json_response(StatusCode::OK, &list))
    };
    // While presence broadcasting is off, Rocket.Chat shows everyone offline.
    if settings::Values::value(&*m, &settings::PRESENCE_BROADCAST_DISABLED) {
        return answer(Vec::new(), true);
    }
    if q.has("ids") {
        let users = q
            .list("ids")
            .iter()
            .filter_map(|id| m.users.get(id))
            .filter(|u| lens.sees(u) && visible(u))
            .map(|u| views::presence_seen(u, views::last_seen(&m, &caller.user, u)))
            .collect();
        return answer(users, false);
    }
    let now = Utc::now();
    if let Some(from) = q
        .get("from")
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t <= now && now - *t <= PRESENCE_FROM_WINDOW)
    {
        let users = m
            .users
            .values()
            .filter(|u| u.id != caller.user.id && u.updated_at >= from)
            .map(|u| {
                if lens.sees(u) {
                    views::presence_seen(u, views::last_seen(&m, &caller.user, u))
                } else {
                    views::presence_hidden(u)
                }
            })
            .collect();
        return answer(users, false);
    }
    let users = m
        .users
        .values()
        .filter(|u| u.status != crate::model::Status::Offline && lens.sees(u))
        .map(|u| views::presence_seen(u, views::last_seen(&m, &caller.user, u)))
        .collect();
    answer(users, true)
}
