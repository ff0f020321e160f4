//! The DDP methods (CONTRACT §7). Each returns a result value or a Meteor error; status
//! changes go through the same rules and writer path as REST, logins through the same
//! sequence (`crate::login`). The REST bridge (`method.call` / `method.callAnon`) runs
//! the same dispatch without a connection (`CallCtx::over_rest`); the read-only methods
//! clients call at login are answered from `reads`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};

use super::frame::MeteorError;
use super::reads;
use crate::accounts::credentials::{self, Credentials, Login as LoginName};
use crate::accounts::tokens;
use crate::app::Ctx;
use crate::auth::secrets;
use crate::calsync;
use crate::change::{self, StatusChange};
use crate::error::Error;
use crate::login::log_in;
use crate::model::{ConnStatus, Source};
use crate::settings;
use crate::status::{dnd, rules};

/// The logged-in user of a connection.
#[derive(Clone, Debug)]
pub struct Login {
    pub user_id: String,
    pub token_hashed: String,
}

/// What a method call needs to know about its connection.
pub struct CallCtx<'a> {
    pub app: &'a Ctx,
    pub session_id: &'a str,
    pub ip: IpAddr,
    pub login: &'a mut Option<Login>,
    /// Called through the REST bridge (`method.call`): there is no connection, so
    /// `session_id` names the caller (its token, or its address) for the rate limits
    /// only, a login adds no connection, and the connection's own methods change
    /// nothing (as Rocket.Chat's, whose REST calls run on a connection it never saw).
    pub over_rest: bool,
}

/// Converts a domain error into the Meteor error a DDP client expects.
pub fn meteor_of(e: Error) -> MeteorError {
    match e {
        Error::Refused {
            code,
            reason,
            method,
        } => MeteorError {
            error: json!(code),
            reason,
            details: method.map(|m| json!({ "method": m })),
        },
        Error::LoginFailed => MeteorError::new(403, "Incorrect password"),
        Error::LoginBlocked { code, reason } => MeteorError {
            details: Some(crate::error::login_blocked_details()),
            ..MeteorError::new(code, &reason)
        },
        Error::Forbidden | Error::NotPermitted => {
            MeteorError::new("error-not-allowed", "Not allowed")
        }
        Error::TooManyRequests { wait_secs } => MeteorError {
            error: json!("too-many-requests"),
            reason: format!(
                "Error, too many requests. Please slow down. You must wait {wait_secs} seconds before trying again."
            ),
            details: Some(json!({"timeToReset": wait_secs * 1000})),
        },
        Error::Unavailable(_) => MeteorError::new(503, "Service Unavailable"),
        Error::Invalid(_) => MeteorError::new(400, "Match failed"),
    }
}

fn invalid_user(method: &str) -> MeteorError {
    MeteorError {
        error: json!("error-invalid-user"),
        reason: "Invalid user".into(),
        details: Some(json!({ "method": method })),
    }
}

fn match_failed() -> MeteorError {
    MeteorError::new(400, "Match failed")
}

/// A string, null or absent parameter.
fn maybe_str(params: &[Value], i: usize) -> Result<Option<&str>, MeteorError> {
    match params.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(match_failed()),
    }
}

/// Rocket.Chat's DDP rate limiter (`DDP_Rate_Limit_*_By_Method`): each connection may
/// call a method 10 times per 10 s, each user 20 times. Applied to the methods an
/// attacker can flood to some effect: `login` (a password login issues a token) and the
/// connection-status methods (each change is history and a frame to every watcher).
const PER_CONNECTION: (u64, Duration) = (10, Duration::from_secs(10));
const PER_USER: (u64, Duration) = (20, Duration::from_secs(10));

/// Every method statusd has (what `call` dispatches).
pub const METHODS: &[&str] = &[
    "login",
    "logout",
    "setUserStatus",
    "UserPresence:setDefaultStatus",
    "UserPresence:online",
    "UserPresence:away",
    "listCustomUserStatus",
    "license:getModules",
    "public-settings/get",
    "permissions/get",
    "getUserRoles",
    "saveUserPreferences",
    "statusd.dnd.get",
    "statusd.dnd.set",
    "statusd.dnd.clear",
    "statusd.calendars.list",
    "statusd.calendars.sync",
];

/// The name a call is counted under: its own for a method statusd has; one shared name
/// for every other, so made-up names (up to a frame's size each) cannot fill the
/// limiter with keys.
fn limit_name(method: &str) -> &str {
    if METHODS.contains(&method) {
        method
    } else {
        "?"
    }
}

/// The methods limited per connection and per user.
fn rate_limited(method: &str) -> bool {
    matches!(
        method,
        "login"
            | "UserPresence:online"
            | "UserPresence:away"
            | "statusd.dnd.set"
            | "statusd.dnd.clear"
            | "statusd.calendars.sync"
    )
}

/// Counts one call against a limit; the Meteor error when it is over.
fn hit(app: &Ctx, key: String, (limit, window): (u64, Duration)) -> Result<(), MeteorError> {
    let d = app.limiter.hit(&key, limit, window, Instant::now());
    if d.allowed {
        Ok(())
    } else {
        Err(meteor_of(Error::TooManyRequests {
            wait_secs: d.reset_in.as_millis().div_ceil(1000) as u64,
        }))
    }
}

/// Runs one method. `Ok(None)` is a result without a value (Meteor's `undefined`).
pub async fn call(
    cx: &mut CallCtx<'_>,
    method: &str,
    params: &[Value],
) -> Result<Option<Value>, MeteorError> {
    // Over REST every method is limited: each call costs a request and there is no
    // connection to close (Rocket.Chat applies its DDP rate limiter there too).
    if rate_limited(method) || cx.over_rest {
        let name = limit_name(method);
        hit(
            cx.app,
            format!("ddp-conn:{}:{name}", cx.session_id),
            PER_CONNECTION,
        )?;
        if let Some(l) = cx.login.as_ref().filter(|_| method != "login") {
            hit(cx.app, format!("ddp-user:{}:{name}", l.user_id), PER_USER)?;
        }
    }
    match method {
        "login" => login(cx, params).await.map(Some),
        "logout" => logout(cx).await.map(|_| None),
        "setUserStatus" => set_user_status(cx, params).await.map(|_| None),
        "UserPresence:setDefaultStatus" => set_default_status(cx, params).await.map(Some),
        // Over REST there is no connection to set: Rocket.Chat answers `false` (no
        // session changed), or nothing for an anonymous caller.
        "UserPresence:online" | "UserPresence:away" if cx.over_rest => {
            Ok(cx.login.as_ref().map(|_| json!(false)))
        }
        "UserPresence:online" => connection_status(cx, ConnStatus::Online).await.map(Some),
        "UserPresence:away" => connection_status(cx, ConnStatus::Away).await.map(Some),
        "saveUserPreferences" => save_user_preferences(cx, params).await.map(Some),
        "statusd.dnd.get" => {
            let user_id = logged_in(cx, method)?.user_id.clone();
            let stored = cx
                .app
                .model
                .read()
                .users
                .get(&user_id)
                .and_then(|u| u.dnd.clone());
            Ok(Some(dnd::view_json(stored.as_deref(), Utc::now())))
        }
        "statusd.calendars.list" => {
            let user_id = logged_in(cx, method)?.user_id.clone();
            let all = calsync::list(&cx.app.core, Some(&user_id))
                .await
                .map_err(meteor_of)?;
            Ok(Some(Value::Array(
                all.iter().map(calsync::view_json).collect(),
            )))
        }
        "statusd.calendars.sync" => calendar_sync(cx, params).await.map(Some),
        "statusd.dnd.set" => dnd_put(cx, "statusd.dnd.set", params).await.map(Some),
        "statusd.dnd.clear" => dnd_put(cx, "statusd.dnd.clear", params).await.map(Some),
        "listCustomUserStatus" => {
            logged_in(cx, method)?;
            Ok(Some(reads::custom_statuses(&cx.app.model.read())))
        }
        "license:getModules" => Ok(Some(json!([]))),
        // `updatedAt instanceof Date`: anything else reads as no date.
        "public-settings/get" => {
            let since = params.first().and_then(reads::as_date);
            Ok(Some(reads::public_settings(&cx.app.model.read(), since)))
        }
        // `check(updatedAt, Match.Maybe(Date))`.
        "permissions/get" => {
            let since = reads::maybe_date(params.first()).map_err(|_| match_failed())?;
            Ok(Some(reads::permissions(&cx.app.model.read(), since)))
        }
        "getUserRoles" => {
            logged_in(cx, method)?;
            Ok(Some(reads::public_role_users(&cx.app.model.read())))
        }
        other => Err(MeteorError::new(
            404,
            &format!("Method '{other}' not found"),
        )),
    }
}

async fn login(cx: &mut CallCtx<'_>, params: &[Value]) -> Result<Value, MeteorError> {
    let arg = params.first().ok_or_else(match_failed)?;
    let creds = credentials::parse(arg).map_err(meteor_of)?;
    let resume = matches!(creds, Credentials::Resume(_));
    // A password login issues a token: limited per account too, whichever connections
    // ask (a resume issues none, and thousands of a user's tabs may resume at once).
    if let Credentials::Password { login, .. } = &creds {
        let target = {
            let m = cx.app.model.read();
            match login {
                LoginName::Username(u) => m.user_by_username(u),
                LoginName::Email(e) => m.user_by_email(e),
            }
            .map(|u| u.id.clone())
        };
        if let Some(id) = target {
            hit(cx.app, format!("ddp-user:{id}:login"), PER_USER)?;
        }
    }
    let done = log_in(cx.app, creds, cx.ip)
        .await
        .map_err(|e| match (&e, resume) {
            (Error::LoginFailed, true) => MeteorError::new(
                403,
                "You've been logged out by the server. Please log in again.",
            ),
            _ => meteor_of(e),
        })?;
    let expires = cx.app.token_expires(done.token_created);
    let answer = json!({
        "id": done.user.id,
        "token": done.token,
        "tokenExpires": {"$date": expires.timestamp_millis()},
        "type": if done.resumed { "resume" } else { "password" },
    });
    // Over REST the token is the whole answer: no connection to put online.
    if cx.over_rest {
        return Ok(answer);
    }
    // A connection holds one login: switching users drops the previous one first.
    if let Some(old) = cx.login.take() {
        drop_connection(cx.app, &old.user_id, cx.session_id).await;
    }
    let user_id = done.user.id.clone();
    let session = cx.session_id.to_string();
    let before = cx.app.own_conns.set(&session, &user_id, ConnStatus::Online);
    let added = cx
        .app
        .writer
        .run(move |tx| {
            change::connection(tx, &user_id, &session, Some(ConnStatus::Online));
            Ok(())
        })
        .await;
    if let Err(e) = added {
        cx.app.own_conns.restore(cx.session_id, before);
        return Err(meteor_of(e));
    }
    *cx.login = Some(Login {
        user_id: done.user.id.clone(),
        token_hashed: secrets::hash_token(&done.token),
    });
    Ok(answer)
}

/// Removes this connection from the user's presence (logout, close, shutdown).
pub async fn drop_connection(app: &Ctx, user_id: &str, session_id: &str) {
    // Gone whether or not the commit succeeds: a row left behind is repaired later.
    app.own_conns.remove(session_id);
    let (user_id, session_id) = (user_id.to_string(), session_id.to_string());
    if let Err(e) = app
        .writer
        .run(move |tx| {
            change::connection(tx, &user_id, &session_id, None);
            Ok(())
        })
        .await
    {
        tracing::warn!("could not record a closed connection: {e}");
    }
}

async fn logout(cx: &mut CallCtx<'_>) -> Result<(), MeteorError> {
    // Meteor's `logout` ends the connection's login; a REST call has none (its token is
    // not the connection's), so it changes nothing, as in Rocket.Chat. REST clients
    // log out with `POST /api/v1/logout`.
    if cx.over_rest {
        return Ok(());
    }
    let Some(login) = cx.login.take() else {
        return Ok(());
    };
    drop_connection(cx.app, &login.user_id, cx.session_id).await;
    let hashed = login.token_hashed;
    cx.app
        .writer
        .run(move |tx| {
            tokens::revoke(tx, &hashed);
            Ok(())
        })
        .await
        .map_err(meteor_of)
}

fn logged_in<'a>(cx: &'a CallCtx<'_>, method: &str) -> Result<&'a Login, MeteorError> {
    cx.login.as_ref().ok_or_else(|| invalid_user(method))
}

/// `setUserStatus(status, text)`: the REST rules, limited to one call per second per user.
async fn set_user_status(cx: &mut CallCtx<'_>, params: &[Value]) -> Result<(), MeteorError> {
    const METHOD: &str = "setUserStatus";
    let user_id = logged_in(cx, METHOD)?.user_id.clone();
    let status = maybe_str(params, 0)?;
    let text = maybe_str(params, 1)?;
    let app = cx.app;
    if !app.setting(&settings::ALLOW_STATUS_MESSAGE_CHANGE) {
        return Err(meteor_of(
            Error::refused("error-not-allowed", "Change status is not allowed").by(METHOD),
        ));
    }
    let status = rules::check_status(status, app.setting(&settings::ALLOW_INVISIBLE), METHOD)
        .map_err(meteor_of)?;
    let d = app.limiter.hit(
        &format!("ddp-setUserStatus:{user_id}"),
        1,
        Duration::from_secs(1),
        Instant::now(),
    );
    if !d.allowed {
        return Err(meteor_of(Error::TooManyRequests {
            wait_secs: d.reset_in.as_millis().div_ceil(1000) as u64,
        }));
    }
    let change = StatusChange {
        status,
        text: text.map(rules::normalize_text),
        expires_at: None,
        actor: Some(user_id.clone()),
        source: Source::Ddp,
    };
    app.writer
        .run(move |tx| change::set_status(tx, &user_id, change).map(|_| ()))
        .await
        .map_err(meteor_of)
}

/// `statusd.dnd.set(schedule)` / `statusd.dnd.clear()` (statusd's own, the REST
/// routes' rules): the caller's schedule afterwards (`dnd::view_json`).
async fn dnd_put(
    cx: &mut CallCtx<'_>,
    method: &'static str,
    params: &[Value],
) -> Result<Value, MeteorError> {
    let user_id = logged_in(cx, method)?.user_id.clone();
    let schedule = if method == "statusd.dnd.set" {
        let input: dnd::Input = params
            .first()
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .ok_or_else(match_failed)?;
        Some(
            dnd::check(input)
                .map_err(|(code, reason)| meteor_of(Error::refused(code, reason).by(method)))?,
        )
    } else {
        None
    };
    let user = cx
        .app
        .writer
        .run(move |tx| change::dnd_put(tx, &user_id, schedule.as_ref()))
        .await
        .map_err(meteor_of)?;
    Ok(dnd::view_json(user.dnd.as_deref(), Utc::now()))
}

/// `statusd.calendars.sync(calendarId)` (statusd's own, the REST route's rules, on the
/// caller's own calendars) → `{"calendar": {…}, "sync": {…}}`.
async fn calendar_sync(cx: &mut CallCtx<'_>, params: &[Value]) -> Result<Value, MeteorError> {
    const METHOD: &str = "statusd.calendars.sync";
    let user_id = logged_in(cx, METHOD)?.user_id.clone();
    let id = maybe_str(params, 0)?
        .filter(|s| !s.is_empty())
        .ok_or_else(match_failed)?
        .to_string();
    let core = &cx.app.core;
    let by = |e: Error| meteor_of(e.by(METHOD));
    let cal = calsync::find(core, &id, Some(&user_id)).await.map_err(by)?;
    let outcome = calsync::sync(core, &cx.app.calendars, &cal, false)
        .await
        .map_err(by)?;
    let cal = calsync::find(core, &id, Some(&user_id)).await.map_err(by)?;
    Ok(json!({
        "calendar": calsync::view_json(&cal),
        "sync": calsync::outcome_json(&outcome),
    }))
}

/// `UserPresence:setDefaultStatus(status)` → whether anything changed.
async fn set_default_status(cx: &mut CallCtx<'_>, params: &[Value]) -> Result<Value, MeteorError> {
    const METHOD: &str = "UserPresence:setDefaultStatus";
    let user_id = logged_in(cx, METHOD)?.user_id.clone();
    let status = maybe_str(params, 0)?
        .filter(|s| !s.is_empty())
        .ok_or_else(match_failed)?;
    let status = rules::check_status(
        Some(status),
        cx.app.setting(&settings::ALLOW_INVISIBLE),
        METHOD,
    )
    .map_err(meteor_of)?;
    let changed = cx
        .app
        .writer
        .run(move |tx| {
            let before = tx.user(&user_id).ok_or_else(Error::invalid_user)?;
            if Some(before.status_default) == status && before.status_expires_at.is_none() {
                return Ok(false);
            }
            let after = change::set_status(
                tx,
                &user_id,
                StatusChange {
                    status,
                    text: None,
                    expires_at: None,
                    actor: Some(user_id.clone()),
                    source: Source::Ddp,
                },
            )?;
            // Anything published counts (an expiry dropped by a permanent choice too).
            Ok(after.status_default != before.status_default
                || after.status != before.status
                || after.status_text != before.status_text
                || after.status_source != before.status_source
                || after.status_expires_at != before.status_expires_at)
        })
        .await
        .map_err(meteor_of)?;
    Ok(json!(changed))
}

/// `UserPresence:online` / `UserPresence:away`: this connection's own status.
async fn connection_status(cx: &mut CallCtx<'_>, status: ConnStatus) -> Result<Value, MeteorError> {
    let Some(login) = cx.login.as_ref() else {
        return Err(invalid_user("UserPresence"));
    };
    let (user_id, session) = (login.user_id.clone(), cx.session_id.to_string());
    let before = cx.app.own_conns.set(&session, &user_id, status);
    // A repeat changes nothing: no commit, no history, no frame (flapping clients send
    // the same status again and again).
    if before.as_ref() == Some(&(user_id.clone(), status)) {
        return Ok(json!(true));
    }
    let changed = cx
        .app
        .writer
        .run(move |tx| {
            change::connection(tx, &user_id, &session, Some(status));
            Ok(())
        })
        .await;
    if let Err(e) = changed {
        cx.app.own_conns.restore(cx.session_id, before);
        return Err(meteor_of(e));
    }
    Ok(json!(true))
}

/// `saveUserPreferences(preferences)` → `true`: Rocket.Chat's method (its web and desktop
/// clients save preferences with it), with the keys, types and bounds of
/// users.setPreferences (`accounts::preferences`); anything else is `Match failed`.
/// Limited to 10 calls per 10 s per user: each change is a commit.
async fn save_user_preferences(
    cx: &mut CallCtx<'_>,
    params: &[Value],
) -> Result<Value, MeteorError> {
    const METHOD: &str = "saveUserPreferences";
    let user_id = logged_in(cx, METHOD)?.user_id.clone();
    let prefs = crate::accounts::preferences::check(params.first().ok_or_else(match_failed)?)
        .map_err(|_| match_failed())?;
    hit(
        cx.app,
        format!("ddp-saveUserPreferences:{user_id}"),
        PER_CONNECTION,
    )?;
    cx.app
        .writer
        .run(move |tx| crate::accounts::preferences::save(tx, &user_id, prefs).map(|_| ()))
        .await
        .map_err(meteor_of)?;
    Ok(Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_counts_under_its_name_and_made_up_ones_share_one() {
        for m in METHODS {
            assert_eq!(limit_name(m), *m);
        }
        assert_eq!(limit_name("nope"), "?");
        assert_eq!(limit_name(&"x".repeat(60_000)), "?");
    }
}
