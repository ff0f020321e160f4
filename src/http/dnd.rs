//! Do-not-disturb schedules (`status::dnd`, a statusd extension): `POST statusd.dnd.set`,
//! `GET statusd.dnd.get`, `POST statusd.dnd.clear`. The `statusd.` prefix keeps them
//! apart from every Rocket.Chat route. During a window the user shows `busy` through an
//! `internal` claim with id `statusd.dnd`; a manual change ends that claim (the user
//! wins) and the next window applies again.
//!
//! Who may call and what a hostile caller can do: any authenticated user, on their own
//! schedule only (no route names another user, so nobody reads or sets someone else's).
//! Bodies are bounded: unknown members are refused, at most 14 ranges, each with 1–7
//! distinct days, the text trimmed and cut to 120 characters, the zone an IANA name
//! known to the server. Calls count against the REST rate limit like every route; a
//! schedule costs the timer one evaluation a second, no write until a window opens or
//! closes. Writes go through the writer (committed, then published).

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{Body, Caller};
use super::reply::ok;
use super::schema;
use crate::app::Ctx;
use crate::change;
use crate::error::Error;
use crate::model::{iso, User};
use crate::status::dnd::{self, Schedule};

const SET: &str = "statusd.dnd.set";

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(set_dnd))
        .routes(routes!(get_dnd))
        .routes(routes!(clear_dnd))
}

/// One weekly range.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeBody {
    /// 1–7 distinct days: `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`.
    days: Vec<String>,
    /// Local time `HH:MM` or `HH:MM:SS`.
    #[schema(pattern = r"^\d\d:\d\d(:\d\d)?$")]
    start: String,
    /// Local time `HH:MM` or `HH:MM:SS`; not after `start` means the next day (equal:
    /// the whole 24 hours).
    #[schema(pattern = r"^\d\d:\d\d(:\d\d)?$")]
    end: String,
}

/// `POST statusd.dnd.set`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(rename_all = "camelCase")]
pub struct SetDndRequest {
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    time_zone: String,
    /// 1–14 ranges.
    ranges: Vec<RangeBody>,
    /// Shown as the status text during a window; trimmed, cut to 120 characters.
    text: Option<String>,
}

/// A schedule as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    ranges: Vec<RangeBody>,
    text: String,
    time_zone: String,
}

/// A user's schedule and where it stands now.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DndView {
    /// The schedule; null when there is none.
    dnd: Option<ScheduleView>,
    /// When the window the server is in now ends (absent outside a window).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    ends_at: Option<String>,
    /// The next window's start within a week (absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    next_start: Option<String>,
    success: bool,
}

fn view(u: &User) -> DndView {
    let sched = u
        .dnd
        .as_deref()
        .and_then(|j| serde_json::from_str::<Schedule>(j).ok());
    let now = Utc::now();
    let Some(s) = sched else {
        return DndView {
            dnd: None,
            ends_at: None,
            next_start: None,
            success: true,
        };
    };
    DndView {
        ends_at: dnd::window_at(&s, now).map(|w| iso(&w.1)),
        next_start: dnd::next_start(&s, now).map(|t| iso(&t)),
        dnd: Some(ScheduleView {
            ranges: dnd::output_ranges(&s)
                .into_iter()
                .map(|r| RangeBody {
                    days: r.days,
                    start: r.start,
                    end: r.end,
                })
                .collect(),
            text: s.text,
            time_zone: s.time_zone,
        }),
        success: true,
    }
}

fn refused(code: &str, reason: &str) -> Error {
    Error::refused(code, reason).by(SET)
}

/// Checks a request into a schedule (`dnd::check`).
fn check(req: SetDndRequest) -> Result<Schedule, Error> {
    dnd::check(dnd::Input {
        time_zone: req.time_zone,
        ranges: req
            .ranges
            .into_iter()
            .map(|r| dnd::InputRange {
                days: r.days,
                start: r.start,
                end: r.end,
            })
            .collect(),
        text: req.text,
    })
    .map_err(|(code, reason)| refused(code, reason))
}

/// Sets the caller's do-not-disturb schedule (replacing any). A window the schedule is
/// in now applies within a second.
#[utoipa::path(post, path = "/api/v1/statusd.dnd.set", tag = "dnd",
    security(("userId" = [], "authToken" = [])),
    request_body = SetDndRequest,
    responses(
        (status = 200, description = "The schedule as stored", body = DndView),
        (status = 400, description = "Match error, error-invalid-time-zone or error-invalid-ranges",
         body = schema::ErrorBody),
        (status = 401, description = "Not logged in", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn set_dnd(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<SetDndRequest>,
) -> ApiResult<Response> {
    let schedule = check(body.read()?)?;
    let id = caller.user.id.clone();
    let user = app
        .writer
        .run(move |tx| change::dnd_put(tx, &id, Some(&schedule)))
        .await?;
    Ok(ok(&view(&user)))
}

/// The caller's do-not-disturb schedule (`dnd` null when none).
#[utoipa::path(get, path = "/api/v1/statusd.dnd.get", tag = "dnd",
    security(("userId" = [], "authToken" = [])),
    responses(
        (status = 200, description = "The schedule", body = DndView),
        (status = 401, description = "Not logged in", body = schema::ErrorBody),
    ))]
async fn get_dnd(caller: Caller) -> ApiResult<Response> {
    Ok(ok(&view(&caller.user)))
}

/// `POST statusd.dnd.clear` (an empty object).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearDndRequest {}

/// Removes the caller's schedule; a window open now ends (what waited comes back).
#[utoipa::path(post, path = "/api/v1/statusd.dnd.clear", tag = "dnd",
    security(("userId" = [], "authToken" = [])),
    request_body = ClearDndRequest,
    responses(
        (status = 200, description = "No schedule (`dnd` null)", body = DndView),
        (status = 400, description = "Match error", body = schema::ErrorBody),
        (status = 401, description = "Not logged in", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn clear_dnd(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<ClearDndRequest>,
) -> ApiResult<Response> {
    body.read()?;
    let id = caller.user.id.clone();
    let user = app
        .writer
        .run(move |tx| change::dnd_put(tx, &id, None))
        .await?;
    Ok(ok(&view(&user)))
}
