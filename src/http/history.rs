//! `GET users.statusHistory`: who changed a user's status, when, from what to what.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{Caller, Query};
use super::reply::ok;
use super::schema;
use super::status::find_target;
use super::users::paging;
use crate::app::Ctx;
use crate::auth::defaults::Permission;
use crate::error::Error;
use crate::model::{iso, HistoryEntry};
use crate::state::Model;
use crate::status::rules;
use crate::store::HistoryQuery;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(status_history))
}

fn date_param(q: &Query, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
    q.get(name)
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Error::refused(
                        "error-invalid-date",
                        &format!("Invalid {name} date: expected an ISO 8601 time"),
                    )
                    .into()
                })
        })
        .transpose()
}

/// An entry as the route shows it, with the usernames the model knows now.
fn entry_view<'a>(m: &Model, e: &'a HistoryEntry) -> schema::HistoryEntry<'a> {
    let name_of = |id: &str| m.users.get(id).map(|u| u.username.clone());
    schema::HistoryEntry {
        id: &e.id,
        actor_id: e.actor_id.as_deref(),
        actor_username: e.actor_id.as_deref().and_then(name_of),
        created_at: iso(&e.at),
        previous_status: e.old_status,
        previous_status_text: &e.old_text,
        source: e.source.as_str(),
        status: e.new_status,
        status_text: &e.new_text,
        user_id: &e.user_id,
        username: name_of(&e.user_id),
    }
}

/// A user's status changes, newest first: one's own, or others' with
/// `view-full-other-user-info`.
#[utoipa::path(get, path = "/api/v1/users.statusHistory", tag = "status",
    security(("userId" = [], "authToken" = [])),
    params(
        ("userId" = Option<String>, Query),
        ("username" = Option<String>, Query),
        ("offset" = Option<u64>, Query),
        ("count" = Option<u64>, Query),
        ("from" = Option<String>, Query, description = "An RFC 3339 time"),
        ("to" = Option<String>, Query, description = "An RFC 3339 time"),
    ),
    responses(
        (status = 200, description = "A page of changes", body = schema::HistoryBody),
        (status = 400, description = "error-invalid-user, error-invalid-date, or a bad offset or count",
         body = schema::ErrorBody),
        (status = 403, description = "Another user, without view-full-other-user-info", body = schema::ErrorBody),
        (status = 503, description = "The store could not be read", body = schema::ErrorBody),
    ))]
async fn status_history(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    let (id, name) = (q.get("userId"), q.get("username"));
    let target = if rules::names_self(id, name, None, &caller.user.id, &caller.user.username) {
        caller.user.id.clone()
    } else {
        app.require(&caller.user, Permission::ViewFullOtherUserInfo)?;
        let param = rules::target_param(id, name, None).ok_or_else(Error::invalid_user)?;
        find_target(&app, &param)
            .ok_or_else(Error::invalid_user)?
            .id
            .clone()
    };
    let (offset, count) = paging(&app, &q)?;
    let query = HistoryQuery {
        user_id: target,
        from: date_param(&q, "from")?,
        to: date_param(&q, "to")?,
        offset,
        count,
    };
    let store = app.store.clone();
    let (items, total) = tokio::task::spawn_blocking(move || store.history(&query))
        .await
        .map_err(|_| Error::Unavailable("history read failed".into()))?
        .map_err(|e| {
            tracing::error!("reading the status history: {e:#}");
            Error::Unavailable("history read failed".into())
        })?;
    let views: Vec<_> = {
        let m = app.model.read();
        items.iter().map(|e| entry_view(&m, e)).collect()
    };
    Ok(ok(&schema::HistoryBody {
        count: views.len(),
        items: views,
        offset,
        success: true,
        total,
    }))
}
