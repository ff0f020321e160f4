//! Status claims for integrations (`status::claims`, Rocket.Chat 8.6's presence
//! engine): `POST statusd.claims.set`, `POST statusd.claims.end`,
//! `POST statusd.claims.clear`, `GET statusd.claims.get`. The `statusd.` prefix keeps them apart from every
//! Rocket.Chat route. A user's own choice (users.setStatus) is the `manual` claim;
//! these set `external` claims (calendars, other systems) and `internal` ones (the
//! server's own uses), which rank above and below it.
//!
//! Who may call and what a hostile caller can do: any authenticated user may set and
//! end `external` claims on themself and read their own claims (an external claim
//! ranks below their own choice, so it cannot override it). Claims on another user, any
//! `internal` claim (it overrides what the user chose) and reading another user's
//! claims need `manage-status-claims` (admin by default); without it naming another
//! user is a 403 whether or not the user exists. Fields are bounded: `statusId` 1–200
//! characters, the text trimmed and cut to 120 characters, `expiresAt` in the future;
//! unknown members are refused. Calls count against the REST rate limit like every
//! route, and text changes against the per-user status-text limit of users.setStatus
//! (5 per 60 s) unless the caller holds the permission. Each change goes through the
//! writer (committed, published, recorded in the history with its source).

use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{Body, Caller, Query};
use super::reply::ok;
use super::schema;
use super::status::{find_target, limit_text_change};
use crate::app::{App, Ctx};
use crate::auth::defaults::Permission;
use crate::change;
use crate::error::Error;
use crate::model::{iso, PreviousState, Source, Status, User};
use crate::settings;
use crate::status::claims::{Claim, ClaimSource, Op, Outcome};
use crate::status::rules::{self, TargetParam};

/// The longest `statusId`, in characters.
pub const STATUS_ID_MAX: usize = 200;

const SET: &str = "statusd.claims.set";
const END: &str = "statusd.claims.end";

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(set_claim))
        .routes(routes!(end_claim))
        .routes(routes!(clear_claims))
        .routes(routes!(get_claims))
}

/// `POST statusd.claims.set`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct SetClaimRequest {
    /// Another user, by id (needs `manage-status-claims`).
    user_id: Option<String>,
    /// Another user, by username (needs `manage-status-claims`).
    username: Option<String>,
    /// `online`, `away`, `busy` or `offline`.
    #[schema(pattern = r"^(online|away|busy|offline)$")]
    status: String,
    /// Trimmed and cut to 120 characters; absent keeps the current text.
    text: Option<String>,
    /// An RFC 3339 time in the future: the claim ends then.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// The integration's own id for the claim (1–200 characters), to end it by.
    status_id: String,
    /// `external` (the default) or `internal` (needs `manage-status-claims`).
    #[schema(pattern = r"^(external|internal)$")]
    source: Option<String>,
}

/// `POST statusd.claims.end`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct EndClaimRequest {
    /// Another user, by id (needs `manage-status-claims`).
    user_id: Option<String>,
    /// Another user, by username (needs `manage-status-claims`).
    username: Option<String>,
    /// The id the claim was set with: the active claim, or the one waiting.
    status_id: String,
}

/// A waiting (or saved) claim: Rocket.Chat's `previousState`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotView<'a> {
    status_default: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    status_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_source: Option<&'a str>,
    status_text: &'a str,
}

/// A user's claims: what is displayed, the active claim and the one waiting; after a
/// change, what the change did (`outcome`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsView<'a> {
    #[serde(rename = "_id")]
    #[schema(rename = "_id")]
    id: &'a str,
    /// set: `active`, `waiting` or `refused`; end: `restored`, `reset`,
    /// `endedWaiting` or `notFound`.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_state: Option<SlotView<'a>>,
    /// What everybody sees.
    status: Status,
    /// The active claim's status.
    status_default: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    status_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_id: Option<&'a str>,
    /// Which source won: `internal`, `manual` or `external`.
    #[serde(skip_serializing_if = "Option::is_none")]
    status_source: Option<&'a str>,
    status_text: &'a str,
    success: bool,
}

fn slot_view(p: &PreviousState) -> SlotView<'_> {
    SlotView {
        status_default: p.status_default,
        status_expires_at: p.status_expires_at.as_ref().map(iso),
        status_id: p.status_id.as_deref(),
        status_source: p.status_source.as_deref(),
        status_text: &p.status_text,
    }
}

fn claims_view(u: &User, outcome: Option<Outcome>) -> ClaimsView<'_> {
    ClaimsView {
        id: &u.id,
        outcome: outcome.map(Outcome::as_str),
        previous_state: u.previous_state.as_ref().map(slot_view),
        status: u.status,
        status_default: u.status_default,
        status_expires_at: u.status_expires_at.as_ref().map(iso),
        status_id: u.status_id.as_deref(),
        status_source: u.status_source.as_deref(),
        status_text: &u.status_text,
        success: true,
    }
}

/// The user a request acts on: the caller, unless `userId`/`username` names someone
/// else; then the caller needs `manage-status-claims` (403 otherwise, whether or not
/// the user exists) and the user must exist (400 `error-invalid-user`).
fn target(
    app: &App,
    caller: &Caller,
    user_id: Option<&str>,
    username: Option<&str>,
    may_manage: bool,
) -> ApiResult<String> {
    if rules::names_self(
        user_id,
        username,
        None,
        &caller.user.id,
        &caller.user.username,
    ) {
        return Ok(caller.user.id.clone());
    }
    if !may_manage {
        return Err(Error::Forbidden.into());
    }
    let param: TargetParam =
        rules::target_param(user_id, username, None).ok_or_else(Error::invalid_user)?;
    Ok(find_target(app, &param)
        .ok_or_else(Error::invalid_user)?
        .id
        .clone())
}

/// `statusId`: 1–200 characters.
fn check_status_id(id: &str, method: &'static str) -> ApiResult<String> {
    let n = id.chars().count();
    if id.trim().is_empty() || n > STATUS_ID_MAX {
        return Err(Error::refused(
            "error-invalid-status-id",
            "statusId must be 1 to 200 characters",
        )
        .by(method)
        .into());
    }
    Ok(id.to_string())
}

/// Sets a claim of source `external` (or, with `manage-status-claims`, `internal`):
/// it becomes active, waits for the active one to end, or is refused, by the rules of
/// Rocket.Chat 8.6's presence engine.
#[utoipa::path(post, path = "/api/v1/statusd.claims.set", tag = "claims",
    security(("userId" = [], "authToken" = [])),
    request_body = SetClaimRequest,
    responses(
        (status = 200, description = "The claims after the change and its outcome", body = ClaimsView),
        (status = 400, description = "Match error, error-invalid-source, error-invalid-status, \
            error-status-not-allowed, error-invalid-date, error-invalid-status-id or \
            error-invalid-user", body = schema::ErrorBody),
        (status = 403, description = "Another user or an internal claim, without \
            manage-status-claims", body = schema::ErrorBody),
        (status = 429, description = "Over the rate limit, or the status text changed 5 times in 60 s",
         body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn set_claim(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<SetClaimRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let may_manage = app.has_permission(&caller.user, Permission::ManageStatusClaims);
    let source = match req.source.as_deref().unwrap_or("external") {
        "external" => ClaimSource::External,
        "internal" => ClaimSource::Internal,
        _ => {
            return Err(Error::refused(
                "error-invalid-source",
                "source must be external or internal",
            )
            .by(SET)
            .into())
        }
    };
    let target_id = target(
        &app,
        &caller,
        req.user_id.as_deref(),
        req.username.as_deref(),
        may_manage,
    )?;
    if source == ClaimSource::Internal && !may_manage {
        return Err(Error::Forbidden.into());
    }
    let status = rules::check_status(
        Some(&req.status),
        app.setting(&settings::ALLOW_INVISIBLE),
        SET,
    )?
    .ok_or_else(|| {
        Error::refused(
            "error-invalid-status",
            "Valid status types include online, away, offline, and busy.",
        )
        .by(SET)
    })?;
    let expires_at = rules::check_expires_at(req.expires_at.as_deref(), Utc::now(), SET)?;
    let status_id = check_status_id(&req.status_id, SET)?;
    if req.text.is_some() {
        limit_text_change(&app, &target_id, may_manage)?;
    }
    let claim = Claim {
        status_default: status,
        source,
        text: req.text.as_deref().map(rules::normalize_text),
        expires_at,
        id: Some(status_id),
    };
    let history = match source {
        ClaimSource::Internal => Source::Internal,
        _ => Source::External,
    };
    let actor = Some(caller.user.id.clone());
    let started = Instant::now();
    let (user, outcome) = app
        .writer
        .run(move |tx| change::claim(tx, &target_id, Op::Set(claim), actor, history))
        .await?;
    app.metrics
        .set_status_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(ok(&claims_view(&user, Some(outcome))))
}

/// Ends a claim by its `statusId`: the active one (what waited comes back, else the
/// user is `online` with no text) or the one waiting (dropped). Ending a claim that
/// is not there changes nothing (`notFound`), so an integration may repeat it.
#[utoipa::path(post, path = "/api/v1/statusd.claims.end", tag = "claims",
    security(("userId" = [], "authToken" = [])),
    request_body = EndClaimRequest,
    responses(
        (status = 200, description = "The claims after the change and its outcome", body = ClaimsView),
        (status = 400, description = "Match error, error-invalid-status-id or error-invalid-user",
         body = schema::ErrorBody),
        (status = 403, description = "Another user, without manage-status-claims", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn end_claim(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<EndClaimRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let may_manage = app.has_permission(&caller.user, Permission::ManageStatusClaims);
    let target_id = target(
        &app,
        &caller,
        req.user_id.as_deref(),
        req.username.as_deref(),
        may_manage,
    )?;
    let status_id = check_status_id(&req.status_id, END)?;
    let actor = Some(caller.user.id.clone());
    let (user, outcome) = app
        .writer
        .run(move |tx| {
            // Recorded with the source of the claim that ends.
            let internal = tx
                .user(&target_id)
                .is_some_and(|u| u.status_source.as_deref() == Some("internal"));
            let history = if internal {
                Source::Internal
            } else {
                Source::External
            };
            change::claim(tx, &target_id, Op::End(Some(status_id)), actor, history)
        })
        .await?;
    Ok(ok(&claims_view(&user, Some(outcome))))
}

/// `POST statusd.claims.clear`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct ClearClaimsRequest {
    /// Another user, by id (needs `manage-status-claims`).
    user_id: Option<String>,
    /// Another user, by username (needs `manage-status-claims`).
    username: Option<String>,
}

/// Clears every claim of a user (Rocket.Chat's `clearActive`): `online`, no text, no
/// source, nothing waiting.
#[utoipa::path(post, path = "/api/v1/statusd.claims.clear", tag = "claims",
    security(("userId" = [], "authToken" = [])),
    request_body = ClearClaimsRequest,
    responses(
        (status = 200, description = "The claims after the change (`outcome` `reset`)", body = ClaimsView),
        (status = 400, description = "Match error or error-invalid-user", body = schema::ErrorBody),
        (status = 403, description = "Another user, without manage-status-claims", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn clear_claims(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<ClearClaimsRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let may_manage = app.has_permission(&caller.user, Permission::ManageStatusClaims);
    let target_id = target(
        &app,
        &caller,
        req.user_id.as_deref(),
        req.username.as_deref(),
        may_manage,
    )?;
    let actor = Some(caller.user.id.clone());
    let (user, outcome) = app
        .writer
        .run(move |tx| change::claim(tx, &target_id, Op::Clear, actor, Source::Rest))
        .await?;
    Ok(ok(&claims_view(&user, Some(outcome))))
}

/// A user's claims: the caller's own, or (with `manage-status-claims`) another user's.
#[utoipa::path(get, path = "/api/v1/statusd.claims.get", tag = "claims",
    security(("userId" = [], "authToken" = [])),
    params(
        ("userId" = Option<String>, Query, description = "Another user, by id"),
        ("username" = Option<String>, Query, description = "Another user, by username"),
    ),
    responses(
        (status = 200, description = "The claims", body = ClaimsView),
        (status = 400, description = "error-invalid-user", body = schema::ErrorBody),
        (status = 403, description = "Another user, without manage-status-claims", body = schema::ErrorBody),
    ))]
async fn get_claims(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    let may_manage = app.has_permission(&caller.user, Permission::ManageStatusClaims);
    let target_id = target(
        &app,
        &caller,
        q.get("userId"),
        q.get("username"),
        may_manage,
    )?;
    let user = app
        .model
        .read()
        .users
        .get(&target_id)
        .cloned()
        .ok_or_else(Error::invalid_user)?;
    Ok(ok(&claims_view(&user, None)))
}
