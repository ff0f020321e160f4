//! Calendars connected by URL (`crate::calsync`), a statusd extension:
//! `POST statusd.calendars.connect`, `GET statusd.calendars.list`,
//! `POST statusd.calendars.update`, `POST statusd.calendars.disconnect`,
//! `POST statusd.calendars.sync` (fetch now and answer what was found). The `statusd.`
//! prefix keeps them apart from every Rocket.Chat route.
//!
//! Who may call and what a hostile caller can do: any authenticated user, on their own
//! calendars; another user's (connecting one for them, listing theirs, changing one)
//! needs `manage-status-claims` (admin by default): naming another user without it is
//! a 403 whether or not the user exists, and another user's calendar id answers as a
//! missing one (`error-calendar-not-found`), so ids cannot be probed. 5 calendars per
//! user, URLs of 2 048 characters (http, https, webcal; no credentials in them; no
//! private addresses unless `CALENDAR_ALLOW_PRIVATE`), username 256 and password 1 024
//! characters; unknown members are refused. The server's fetches are bounded (5 MiB,
//! 15 s, 3 redirects, `calsync::fetch`); a `sync` call waits for one fetch and counts
//! against the REST rate limit like every route. Passwords are never answered
//! (`hasPassword`) nor logged.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{Body, Caller, Query};
use super::reply::ok;
use super::schema;
use super::status::find_target;
use crate::app::{App, Ctx};
use crate::auth::defaults::Permission;
use crate::calsync::{self, Spec};
use crate::error::Error;
use crate::model::{iso, ConnectedCalendar};
use crate::status::rules::{self, TargetParam};

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(connect))
        .routes(routes!(list))
        .routes(routes!(update))
        .routes(routes!(disconnect))
        .routes(routes!(sync))
}

/// `POST statusd.calendars.connect`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct ConnectRequest {
    /// Another user, by id (needs `manage-status-claims`).
    user_id: Option<String>,
    /// Another user, by username (needs `manage-status-claims`).
    username: Option<String>,
    /// `ics` (a feed, the default) or `caldav` (a calendar collection).
    #[schema(pattern = r"^(ics|caldav)$")]
    kind: Option<String>,
    /// http, https or webcal (read as https); no credentials in it.
    url: String,
    /// For HTTP Basic authentication (CalDAV, a private feed).
    login: Option<String>,
    password: Option<String>,
    /// Count free (`TRANSP:TRANSPARENT`) events; default false.
    include_free: Option<bool>,
    /// Count all-day events; default false.
    include_all_day: Option<bool>,
}

/// `POST statusd.calendars.update`: what is given changes.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct UpdateRequest {
    calendar_id: String,
    #[schema(pattern = r"^(ics|caldav)$")]
    kind: Option<String>,
    url: Option<String>,
    /// `""` removes it.
    login: Option<String>,
    /// `""` removes it.
    password: Option<String>,
    include_free: Option<bool>,
    include_all_day: Option<bool>,
}

/// `POST statusd.calendars.disconnect` and `statusd.calendars.sync`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct CalendarIdRequest {
    calendar_id: String,
}

/// A connected calendar, without its password.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarView {
    #[serde(rename = "_id")]
    #[schema(rename = "_id")]
    id: String,
    user_id: String,
    kind: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    login: Option<String>,
    has_password: bool,
    include_free: bool,
    include_all_day: bool,
    #[schema(format = DateTime)]
    created_at: String,
    #[serde(rename = "_updatedAt")]
    #[schema(rename = "_updatedAt", format = DateTime)]
    updated_at: String,
    /// The last sync that reached the calendar (rewritten when what it found changed,
    /// else at most hourly).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    synced_at: Option<String>,
    /// Why the last sync failed (or what it could not add).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// The calendar events it holds now.
    events: usize,
}

fn view(c: &ConnectedCalendar) -> CalendarView {
    CalendarView {
        id: c.id.clone(),
        user_id: c.uid.clone(),
        kind: c.kind.clone(),
        url: c.url.clone(),
        login: c.username.clone(),
        has_password: c.password.is_some(),
        include_free: c.include_free,
        include_all_day: c.include_all_day,
        created_at: iso(&c.created_at),
        updated_at: iso(&c.updated_at),
        synced_at: c.synced_at.as_ref().map(iso),
        last_error: c.last_error.clone(),
        events: c.events,
    }
}

/// `{"calendar": {…}, "success": true}`.
#[derive(Serialize, ToSchema)]
pub struct CalendarBody {
    calendar: CalendarView,
    success: bool,
}

/// `{"calendars": […], "success": true}`.
#[derive(Serialize, ToSchema)]
pub struct ConnectedCalendarsBody {
    calendars: Vec<CalendarView>,
    success: bool,
}

/// What one sync did.
#[derive(Serialize, ToSchema)]
pub struct SyncView {
    /// `changed`, `unchanged` (304, the same ctag) or `failed`.
    fetch: &'static str,
    events: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `{"calendar": {…}, "sync": {…}, "success": true}`.
#[derive(Serialize, ToSchema)]
pub struct SyncBody {
    calendar: CalendarView,
    sync: SyncView,
    success: bool,
}

/// `{"success": true}`.
#[derive(Serialize, ToSchema)]
pub struct SuccessBody {
    success: bool,
}

fn may_manage(app: &App, caller: &Caller) -> bool {
    app.has_permission(&caller.user, Permission::ManageStatusClaims)
}

/// The user a request names: the caller, or another with the permission.
fn target(
    app: &App,
    caller: &Caller,
    user_id: Option<&str>,
    username: Option<&str>,
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
    if !may_manage(app, caller) {
        return Err(Error::Forbidden.into());
    }
    let param: TargetParam =
        rules::target_param(user_id, username, None).ok_or_else(Error::invalid_user)?;
    Ok(find_target(app, &param)
        .ok_or_else(Error::invalid_user)?
        .id
        .clone())
}

/// A calendar the caller may act on: their own, or any with the permission; another
/// user's answers as a missing one.
async fn reachable(app: &App, caller: &Caller, id: &str) -> ApiResult<ConnectedCalendar> {
    let owner = (!may_manage(app, caller)).then_some(caller.user.id.as_str());
    Ok(calsync::find(&app.core, id, owner).await?)
}

/// Connects a calendar of the caller (or, with the permission, of another user).
#[utoipa::path(post, path = "/api/v1/statusd.calendars.connect", tag = "calendars",
    security(("userId" = [], "authToken" = [])),
    request_body = ConnectRequest,
    responses(
        (status = 200, description = "The calendar, synced every CALENDAR_SYNC_SECS", body = CalendarBody),
        (status = 400, description = "Match error, error-invalid-calendar-url, \
            error-invalid-calendar-kind, error-invalid-params, error-too-many-calendars, \
            error-calendar-secret-key or error-invalid-user", body = schema::ErrorBody),
        (status = 403, description = "Another user, without manage-status-claims", body = schema::ErrorBody),
        (status = 503, description = "The store could not be written", body = schema::ErrorBody),
    ))]
async fn connect(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<ConnectRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let uid = target(
        &app,
        &caller,
        req.user_id.as_deref(),
        req.username.as_deref(),
    )?;
    let spec = Spec {
        kind: req.kind,
        url: Some(req.url),
        username: req.login,
        password: req.password,
        include_free: req.include_free,
        include_all_day: req.include_all_day,
    };
    let cal = calsync::connect(&app.core, &app.calendars, &uid, spec).await?;
    Ok(ok(&CalendarBody {
        calendar: view(&cal),
        success: true,
    }))
}

/// The caller's calendars (or, with the permission, another user's).
#[utoipa::path(get, path = "/api/v1/statusd.calendars.list", tag = "calendars",
    security(("userId" = [], "authToken" = [])),
    params(
        ("userId" = Option<String>, Query, description = "Another user (needs manage-status-claims)"),
        ("username" = Option<String>, Query, description = "Another user (needs manage-status-claims)"),
    ),
    responses(
        (status = 200, description = "The calendars, without passwords", body = ConnectedCalendarsBody),
        (status = 400, description = "error-invalid-user", body = schema::ErrorBody),
        (status = 403, description = "Another user, without manage-status-claims", body = schema::ErrorBody),
        (status = 503, description = "The store could not be read", body = schema::ErrorBody),
    ))]
async fn list(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    let uid = target(&app, &caller, q.get("userId"), q.get("username"))?;
    let all = calsync::list(&app.core, Some(&uid)).await?;
    Ok(ok(&ConnectedCalendarsBody {
        calendars: all.iter().map(view).collect(),
        success: true,
    }))
}

/// Changes a calendar; the next sync fetches it anew.
#[utoipa::path(post, path = "/api/v1/statusd.calendars.update", tag = "calendars",
    security(("userId" = [], "authToken" = [])),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The calendar", body = CalendarBody),
        (status = 400, description = "Match error, error-calendar-not-found (missing or \
            another user's), error-invalid-calendar-url, error-invalid-calendar-kind, \
            error-invalid-params or error-calendar-secret-key", body = schema::ErrorBody),
        (status = 503, description = "The store could not be written", body = schema::ErrorBody),
    ))]
async fn update(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<UpdateRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let cal = reachable(&app, &caller, &req.calendar_id).await?;
    let spec = Spec {
        kind: req.kind,
        url: req.url,
        username: req.login,
        password: req.password,
        include_free: req.include_free,
        include_all_day: req.include_all_day,
    };
    let cal = calsync::update(&app.core, &app.calendars, cal, spec).await?;
    Ok(ok(&CalendarBody {
        calendar: view(&cal),
        success: true,
    }))
}

/// Disconnects a calendar: its events are deleted (their busy statuses end).
#[utoipa::path(post, path = "/api/v1/statusd.calendars.disconnect", tag = "calendars",
    security(("userId" = [], "authToken" = [])),
    request_body = CalendarIdRequest,
    responses(
        (status = 200, description = "Disconnected", body = SuccessBody),
        (status = 400, description = "Match error or error-calendar-not-found (missing or \
            another user's)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn disconnect(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<CalendarIdRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let cal = reachable(&app, &caller, &req.calendar_id).await?;
    calsync::disconnect(&app.core, &app.calendars, &cal).await?;
    Ok(ok(&SuccessBody { success: true }))
}

/// Fetches a calendar now and applies it; answers what the sync found.
#[utoipa::path(post, path = "/api/v1/statusd.calendars.sync", tag = "calendars",
    security(("userId" = [], "authToken" = [])),
    request_body = CalendarIdRequest,
    responses(
        (status = 200, description = "The calendar after the sync, and what it did \
            (a failed fetch is `sync.fetch: failed` with its `error`)", body = SyncBody),
        (status = 400, description = "Match error or error-calendar-not-found (missing or \
            another user's)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn sync(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<CalendarIdRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let cal = reachable(&app, &caller, &req.calendar_id).await?;
    let outcome = calsync::sync(&app.core, &app.calendars, &cal, false).await?;
    let cal = calsync::find(&app.core, &cal.id, Some(&cal.uid)).await?;
    Ok(ok(&SyncBody {
        calendar: view(&cal),
        sync: SyncView {
            fetch: outcome.fetch,
            events: outcome.events,
            error: outcome.error,
        },
        success: true,
    }))
}
