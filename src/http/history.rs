//! `GET users.statusHistory`: who changed a user's status, when, from what to what;
//! `GET statusd.recentStatuses`: the last distinct statuses a user set, derived from it.

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
use crate::app::{App, Ctx};
use crate::auth::defaults::Permission;
use crate::error::Error;
use crate::model::{iso, HistoryEntry, Source, Status};
use crate::state::Model;
use crate::status::rules;
use crate::store::HistoryQuery;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(status_history))
        .routes(routes!(recent_statuses))
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

/// Does `target` hide their status from the caller (`crate::privacy`)? Then their
/// history is an empty page: its rows are the status they hide.
fn hidden_from(app: &App, caller: &Caller, target: &str) -> bool {
    let m = app.model.read();
    m.users
        .get(target)
        .is_some_and(|u| !crate::privacy::Lens::of(&m, &caller.user.id).sees(u))
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
    if hidden_from(&app, &caller, &target) {
        return Ok(ok(&schema::HistoryBody {
            count: 0,
            items: Vec::new(),
            offset,
            success: true,
            total: 0,
        }));
    }
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

/// How many recent statuses are kept for re-use (Mattermost keeps 5).
pub const RECENT_STATUSES: usize = 5;
/// How many history entries, at most, `statusd.recentStatuses` reads to find them, so
/// one call costs a bounded read however long the history is.
const RECENT_SCAN: usize = 500;
/// The page size of that read.
const RECENT_PAGE: usize = 100;

/// The last `RECENT_STATUSES` distinct (status, text) pairs `user_id` set themselves,
/// most recent first, from history `entries` given newest first: manual changes only
/// (REST, DDP), not connection churn, expiry or another user's change for them.
pub fn recent_pairs<'a>(
    user_id: &str,
    entries: impl IntoIterator<Item = &'a HistoryEntry>,
) -> Vec<&'a HistoryEntry> {
    let mut out: Vec<&HistoryEntry> = Vec::new();
    for e in entries {
        if out.len() == RECENT_STATUSES {
            break;
        }
        let manual = matches!(e.source, Source::Rest | Source::Ddp);
        if !manual || e.actor_id.as_deref() != Some(user_id) {
            continue;
        }
        if out
            .iter()
            .any(|o| o.new_status == e.new_status && o.new_text == e.new_text)
        {
            continue;
        }
        out.push(e);
    }
    out
}

/// One recent status.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentStatus<'a> {
    /// When it was last set.
    #[schema(format = DateTime)]
    set_at: String,
    status: Status,
    status_text: &'a str,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RecentStatusesBody<'a> {
    statuses: Vec<RecentStatus<'a>>,
    success: bool,
}

/// The last 5 distinct (status, text) pairs a user set themselves, most recent first,
/// for quick re-use (a statusd extension, derived from the status history, so only as
/// far back as the history is kept). One's own; another user's with
/// `view-full-other-user-info`, as their history.
#[utoipa::path(get, path = "/api/v1/statusd.recentStatuses", tag = "status",
    security(("userId" = [], "authToken" = [])),
    params(
        ("userId" = Option<String>, Query),
        ("username" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "Up to 5 statuses, most recent first", body = RecentStatusesBody),
        (status = 400, description = "error-invalid-user", body = schema::ErrorBody),
        (status = 403, description = "Another user, without view-full-other-user-info", body = schema::ErrorBody),
        (status = 503, description = "The store could not be read", body = schema::ErrorBody),
    ))]
async fn recent_statuses(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
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
    if hidden_from(&app, &caller, &target) {
        return Ok(ok(&RecentStatusesBody {
            statuses: Vec::new(),
            success: true,
        }));
    }
    let store = app.store.clone();
    let who = target.clone();
    let entries = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<HistoryEntry>> {
        let mut all: Vec<HistoryEntry> = Vec::new();
        while all.len() < RECENT_SCAN {
            let (page, _) = store.history(&HistoryQuery {
                user_id: who.clone(),
                from: None,
                to: None,
                offset: all.len(),
                count: RECENT_PAGE,
            })?;
            let last = page.len() < RECENT_PAGE;
            all.extend(page);
            if last || recent_pairs(&who, &all).len() == RECENT_STATUSES {
                break;
            }
        }
        Ok(all)
    })
    .await
    .map_err(|_| Error::Unavailable("history read failed".into()))?
    .map_err(|e| {
        tracing::error!("reading the status history: {e:#}");
        Error::Unavailable("history read failed".into())
    })?;
    let statuses = recent_pairs(&target, &entries)
        .into_iter()
        .map(|e| RecentStatus {
            set_at: iso(&e.at),
            status: e.new_status,
            status_text: &e.new_text,
        })
        .collect();
    Ok(ok(&RecentStatusesBody {
        statuses,
        success: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(n: i64, actor: &str, source: Source, status: Status, text: &str) -> HistoryEntry {
        HistoryEntry {
            id: n.to_string(),
            user_id: "u".into(),
            actor_id: Some(actor.into()),
            old_status: Status::Online,
            new_status: status,
            old_text: String::new(),
            new_text: text.into(),
            source,
            at: Utc
                .timestamp_opt(1_700_000_000 - n, 0)
                .single()
                .unwrap_or_default(),
        }
    }

    #[test]
    fn five_distinct_manual_pairs_newest_first() {
        let newest_first = vec![
            entry(1, "u", Source::Rest, Status::Busy, "meeting"),
            entry(2, "u", Source::Connection, Status::Offline, ""),
            entry(3, "u", Source::Ddp, Status::Busy, "meeting"),
            entry(4, "admin", Source::Rest, Status::Away, "set by admin"),
            entry(5, "u", Source::Rest, Status::Away, "lunch"),
            entry(6, "u", Source::Rest, Status::Busy, ""),
            entry(7, "u", Source::Rest, Status::Online, "a"),
            entry(8, "u", Source::Rest, Status::Online, "b"),
            entry(9, "u", Source::Rest, Status::Online, "c"),
        ];
        let got: Vec<_> = recent_pairs("u", &newest_first)
            .iter()
            .map(|e| (e.new_status, e.new_text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Status::Busy, "meeting"),
                (Status::Away, "lunch"),
                (Status::Busy, ""),
                (Status::Online, "a"),
                (Status::Online, "b"),
            ]
        );
    }
}
