//! Calendar events, as Rocket.Chat's `calendar-events.*` (`app/api/server/v1/calendar.ts`):
//! `POST create`, `POST import` (upsert by `externalId`), `GET list?date=`,
//! `GET info?id=`, `POST update`, `POST delete`. With `Calendar_BusyStatus_Enabled` a
//! busy event makes its owner busy from its start to its end (`crate::calendar`).
//!
//! Who may call and what a hostile caller can do: any authenticated user, on their own
//! events only: another user's event answers exactly as a missing one, so ids cannot be
//! probed. Each user keeps at most 500 events; subject (250), description (10 000),
//! `meetingUrl` (2 048) and `externalId` (200 characters) are capped, times are RFC
//! 3339 with the end after the start and at most 7 days later; unknown members are
//! refused. Calls count against the REST rate limit like every route.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, Query};
use super::reply::{json_response, ok};
use super::schema;
use crate::app::Ctx;
use crate::calendar::{self, Fields};
use crate::error::Error;
use crate::model::{iso, CalendarEvent};

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(import))
        .routes(routes!(list))
        .routes(routes!(info))
        .routes(routes!(update))
        .routes(routes!(delete))
}

/// `POST calendar-events.create` and `calendar-events.import`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct CalendarEventRequest {
    /// RFC 3339.
    #[schema(format = DateTime)]
    start_time: String,
    /// RFC 3339, after `startTime`, at most 7 days later. Without one the event
    /// changes no status.
    #[schema(format = DateTime)]
    end_time: Option<String>,
    /// The calendar's own id of the event; `import` updates the caller's event that
    /// has it (required there). At most 200 characters.
    external_id: Option<String>,
    /// At most 250 characters; the busy status's text.
    subject: String,
    /// At most 10 000 characters.
    description: String,
    /// At most 2 048 characters.
    meeting_url: Option<String>,
    /// 0 to 10 080; 5 when absent.
    reminder_minutes_before_start: Option<i64>,
    /// `false`: the event changes no status.
    busy: Option<bool>,
}

/// `POST calendar-events.update`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct UpdateCalendarEventRequest {
    event_id: String,
    #[schema(format = DateTime)]
    start_time: String,
    #[schema(format = DateTime)]
    end_time: Option<String>,
    /// At most 250 characters.
    subject: String,
    /// At most 10 000 characters.
    description: String,
    meeting_url: Option<String>,
    reminder_minutes_before_start: Option<i64>,
    busy: Option<bool>,
}

/// `POST calendar-events.delete`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct DeleteCalendarEventRequest {
    event_id: String,
}

/// An event as Rocket.Chat answers it (`ICalendarEvent`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarEventView {
    #[serde(rename = "_id")]
    #[schema(rename = "_id")]
    id: String,
    uid: String,
    #[schema(format = DateTime)]
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    end_time: Option<String>,
    subject: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    meeting_url: Option<String>,
    reminder_minutes_before_start: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    reminder_time: Option<String>,
    notification_sent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    busy: Option<bool>,
    #[serde(rename = "_updatedAt")]
    #[schema(rename = "_updatedAt", format = DateTime)]
    updated_at: String,
}

fn view(e: &CalendarEvent) -> CalendarEventView {
    let m = e.reminder_minutes_before_start;
    CalendarEventView {
        id: e.id.clone(),
        uid: e.uid.clone(),
        start_time: iso(&e.start_time),
        end_time: e.end_time.as_ref().map(iso),
        subject: e.subject.clone(),
        description: e.description.clone(),
        meeting_url: e.meeting_url.clone(),
        reminder_minutes_before_start: m,
        reminder_time: (m > 0).then(|| iso(&(e.start_time - chrono::Duration::minutes(m)))),
        notification_sent: false,
        external_id: e.external_id.clone(),
        busy: e.busy,
        updated_at: iso(&e.updated_at),
    }
}

/// `{"id": …, "success": true}`.
#[derive(Serialize, ToSchema)]
pub struct CalendarIdBody {
    id: String,
    success: bool,
}

/// `{"data": [events], "success": true}`.
#[derive(Serialize, ToSchema)]
pub struct CalendarListBody {
    data: Vec<CalendarEventView>,
    success: bool,
}

/// `{"event": {…}, "success": true}`.
#[derive(Serialize, ToSchema)]
pub struct CalendarInfoBody {
    event: CalendarEventView,
    success: bool,
}

/// `{"success": true}`.
#[derive(Serialize, ToSchema)]
pub struct CalendarSuccessBody {
    success: bool,
}

fn invalid_params(reason: &str) -> ApiError {
    Error::refused("invalid-params", reason).into()
}

fn fields(r: &CalendarEventRequest) -> Fields {
    Fields {
        start_time: r.start_time.clone(),
        end_time: r.end_time.clone(),
        subject: Some(r.subject.clone()),
        description: Some(r.description.clone()),
        meeting_url: r.meeting_url.clone(),
        reminder_minutes_before_start: r.reminder_minutes_before_start,
        busy: r.busy,
    }
}

/// Creates an event of the caller.
#[utoipa::path(post, path = "/api/v1/calendar-events.create", tag = "calendar",
    security(("userId" = [], "authToken" = [])),
    request_body = CalendarEventRequest,
    responses(
        (status = 200, description = "The new event's id", body = CalendarIdBody),
        (status = 400, description = "Match error, invalid-params, error-invalid-date or \
            error-too-many-events", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn create(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<CalendarEventRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let f = fields(&req);
    let uid = caller.user.id.clone();
    let external = req.external_id.clone();
    let id = app
        .writer
        .run(move |tx| calendar::create(tx, &uid, &f, external))
        .await?;
    Ok(ok(&CalendarIdBody { id, success: true }))
}

/// Creates an event of the caller, or updates the one with this `externalId`.
#[utoipa::path(post, path = "/api/v1/calendar-events.import", tag = "calendar",
    security(("userId" = [], "authToken" = [])),
    request_body = CalendarEventRequest,
    responses(
        (status = 200, description = "The event's id", body = CalendarIdBody),
        (status = 400, description = "Match error, invalid-params, error-invalid-date or \
            error-too-many-events", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn import(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<CalendarEventRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let external = req
        .external_id
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid_params("must have required property 'externalId'"))?;
    let f = fields(&req);
    let uid = caller.user.id.clone();
    let id = app
        .writer
        .run(move |tx| calendar::import(tx, &uid, &f, &external))
        .await?;
    Ok(ok(&CalendarIdBody { id, success: true }))
}

/// The start of the UTC day of `date` (RFC 3339 or `YYYY-MM-DD`).
fn day_of(date: &str) -> Option<DateTime<Utc>> {
    let day = match DateTime::parse_from_rfc3339(date) {
        Ok(t) => t.with_timezone(&Utc).date_naive(),
        Err(_) => NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?,
    };
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

/// The caller's events starting on the UTC day of `date`, earliest first.
#[utoipa::path(get, path = "/api/v1/calendar-events.list", tag = "calendar",
    security(("userId" = [], "authToken" = [])),
    params(("date" = String, Query, description = "RFC 3339 or YYYY-MM-DD")),
    responses(
        (status = 200, description = "The events of that day", body = CalendarListBody),
        (status = 400, description = "invalid-params or error-invalid-date", body = schema::ErrorBody),
    ))]
async fn list(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    let date = q
        .get("date")
        .ok_or_else(|| invalid_params("must have required property 'date'"))?;
    let from = day_of(date)
        .ok_or_else(|| ApiError::from(Error::refused("error-invalid-date", "Invalid date")))?;
    let to = from + chrono::Duration::days(1);
    let mut events: Vec<_> = app
        .model
        .read()
        .calendar_events
        .values()
        .filter(|e| e.uid == caller.user.id && e.start_time >= from && e.start_time < to)
        .cloned()
        .collect();
    events.sort_by(|a, b| a.start_time.cmp(&b.start_time).then(a.id.cmp(&b.id)));
    Ok(ok(&CalendarListBody {
        data: events.iter().map(|e| view(e)).collect(),
        success: true,
    }))
}

/// One of the caller's events; another user's answers as a missing one.
#[utoipa::path(get, path = "/api/v1/calendar-events.info", tag = "calendar",
    security(("userId" = [], "authToken" = [])),
    params(("id" = String, Query)),
    responses(
        (status = 200, description = "The event", body = CalendarInfoBody),
        (status = 400, description = "invalid-params, or no such event of the caller \
            (`{\"success\":false}`)", body = schema::ErrorBody),
    ))]
async fn info(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    let id = q
        .get("id")
        .ok_or_else(|| invalid_params("must have required property 'id'"))?;
    let event = app
        .model
        .read()
        .calendar_events
        .get(id)
        .filter(|e| e.uid == caller.user.id)
        .cloned();
    match event {
        Some(e) => Ok(ok(&CalendarInfoBody {
            event: view(&e),
            success: true,
        })),
        // Rocket.Chat answers a bare `API.v1.failure()` here; every statusd error body
        // names its error, so this is update's and delete's `invalid-calendar-event`.
        None => Ok(json_response(
            StatusCode::BAD_REQUEST,
            &json!({"success": false, "error": "invalid-calendar-event"}),
        )),
    }
}

/// Changes one of the caller's events.
#[utoipa::path(post, path = "/api/v1/calendar-events.update", tag = "calendar",
    security(("userId" = [], "authToken" = [])),
    request_body = UpdateCalendarEventRequest,
    responses(
        (status = 200, description = "Changed", body = CalendarSuccessBody),
        (status = 400, description = "Match error, invalid-params, error-invalid-date or \
            invalid-calendar-event (missing or another user's)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn update(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<UpdateCalendarEventRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let f = Fields {
        start_time: req.start_time,
        end_time: req.end_time,
        subject: Some(req.subject),
        description: Some(req.description),
        meeting_url: req.meeting_url,
        reminder_minutes_before_start: req.reminder_minutes_before_start,
        busy: req.busy,
    };
    let uid = caller.user.id.clone();
    let id = req.event_id;
    app.writer
        .run(move |tx| calendar::update(tx, &uid, &id, &f))
        .await?;
    Ok(ok(&CalendarSuccessBody { success: true }))
}

/// Deletes one of the caller's events (its busy status, if active, ends).
#[utoipa::path(post, path = "/api/v1/calendar-events.delete", tag = "calendar",
    security(("userId" = [], "authToken" = [])),
    request_body = DeleteCalendarEventRequest,
    responses(
        (status = 200, description = "Deleted", body = CalendarSuccessBody),
        (status = 400, description = "Match error, invalid-params or invalid-calendar-event \
            (missing or another user's)", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn delete(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<DeleteCalendarEventRequest>,
) -> ApiResult<Response> {
    let req = body.read()?;
    let uid = caller.user.id.clone();
    let id = req.event_id;
    app.writer
        .run(move |tx| calendar::delete(tx, &uid, &id))
        .await?;
    Ok(ok(&CalendarSuccessBody { success: true }))
}
