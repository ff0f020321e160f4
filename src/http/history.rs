//! `GET users.statusHistory`: who changed a user's status, when, from what to what.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
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

fn entry_json(app: &Ctx, e: &HistoryEntry) -> Value {
    let m = app.model.read();
    let name_of = |id: &str| m.users.get(id).map(|u| u.username.clone());
    json!({
        "_id": e.id,
        "userId": e.user_id,
        "username": name_of(&e.user_id),
        "actorId": e.actor_id,
        "actorUsername": e.actor_id.as_deref().and_then(name_of),
        "previousStatus": e.old_status.as_str(),
        "status": e.new_status.as_str(),
        "previousStatusText": e.old_text,
        "statusText": e.new_text,
        "source": e.source.as_str(),
        "createdAt": iso(&e.at),
    })
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
    let items: Vec<Value> = items.iter().map(|e| entry_json(&app, e)).collect();
    Ok(ok(json!({
        "items": items,
        "count": items.len(),
        "offset": offset,
        "total": total,
    })))
}
