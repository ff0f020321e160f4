//! Webhook endpoints over REST, statusd's own routes (`statusd.webhooks.*`: no
//! Rocket.Chat route has that prefix): register, list, change and delete endpoints and
//! read each one's delivery log. Only holders of `manage-outgoing-integrations` (admins
//! by default, Rocket.Chat's permission for outgoing integrations) may call them; the
//! endpoint's secret is answered once, by `create`, and never listed or logged.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, Query};
use super::reply::ok;
use super::schema;
use crate::app::Ctx;
use crate::auth::defaults::Permission;
use crate::model::{iso, Webhook};
use crate::store::DeliveryRecord;
use crate::webhooks::{self, Spec};

/// The most deliveries one log page shows.
const MAX_LOG: usize = 500;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(update))
        .routes(routes!(delete))
        .routes(routes!(deliveries))
}

fn require(app: &Ctx, caller: &Caller) -> ApiResult<()> {
    Ok(app.require_declared(&caller.user, Permission::ManageOutgoingIntegrations)?)
}

/// An endpoint as the API shows it (never its secret).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    #[serde(rename = "_id")]
    #[schema(rename = "_id")]
    id: String,
    url: String,
    /// Some of `status.changed`, `status-text.changed`, `user.created`, `user.deactivated`,
    /// `claim.set`, `claim.ended`.
    events: Vec<String>,
    /// Only about these users; empty: everyone.
    user_ids: Vec<String>,
    /// Only about users with one of these roles; empty: everyone.
    roles: Vec<String>,
    active: bool,
    #[serde(rename = "_createdAt")]
    #[schema(rename = "_createdAt")]
    created_at: String,
    #[serde(rename = "_updatedAt")]
    #[schema(rename = "_updatedAt")]
    updated_at: String,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        WebhookView {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            user_ids: w.user_ids.clone(),
            roles: w.roles.clone(),
            active: w.active,
            created_at: iso(&w.created_at),
            updated_at: iso(&w.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookBody {
    webhook: WebhookView,
    success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedWebhookBody {
    webhook: WebhookView,
    /// The signing secret (`whsec_…`, Standard Webhooks): shown here once, never again.
    secret: String,
    success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookListBody {
    webhooks: Vec<WebhookView>,
    count: usize,
    success: bool,
}

/// One delivery of the log.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// The `webhook-id` header: the same on every attempt.
    id: String,
    user_id: String,
    event: String,
    /// `pending`, `delivered` or `failed` (given up).
    state: String,
    attempts: u32,
    created_at: String,
    /// When a pending delivery is next tried.
    next_attempt_at: Option<String>,
    /// The receiver's last HTTP status, if it answered.
    last_status: Option<u16>,
    last_error: Option<String>,
    finished_at: Option<String>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        DeliveryView {
            next_attempt_at: (d.state == "pending").then(|| iso(&d.next_at)),
            id: d.id,
            user_id: d.user_id,
            event: d.event,
            state: d.state,
            attempts: d.attempts,
            created_at: iso(&d.created_at),
            last_status: d.last_status,
            last_error: d.last_error,
            finished_at: d.finished_at.as_ref().map(iso),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryListBody {
    deliveries: Vec<DeliveryView>,
    count: usize,
    success: bool,
}

/// `POST statusd.webhooks.create`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct CreateWebhookRequest {
    /// http:// or https://, at most 2048 characters, no credentials.
    #[schema(max_length = 2048)]
    url: String,
    /// One or more of `status.changed`, `status-text.changed`, `user.created`,
    /// `user.deactivated`, `claim.set`, `claim.ended`.
    events: Vec<String>,
    /// Only about these users (at most 1000).
    #[serde(default)]
    user_ids: Vec<String>,
    /// Only about users with one of these roles (at most 1000).
    #[serde(default)]
    roles: Vec<String>,
    /// Default true.
    active: Option<bool>,
}

/// Registers a webhook endpoint (`manage-outgoing-integrations`). The answer holds its
/// signing secret, once.
#[utoipa::path(post, path = "/api/v1/statusd.webhooks.create", tag = "webhooks",
    security(("userId" = [], "authToken" = [])),
    request_body = CreateWebhookRequest,
    responses(
        (status = 200, description = "The endpoint and its secret", body = CreatedWebhookBody),
        (status = 400, description = "Match error, a bad URL, events or filter, or too many endpoints",
         body = schema::ErrorBody),
        (status = 403, description = "Without manage-outgoing-integrations", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn create(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<CreateWebhookRequest>,
) -> ApiResult<Response> {
    require(&app, &caller)?;
    let r = body.read()?;
    let spec = Spec::checked(
        &r.url,
        &r.events,
        &r.user_ids,
        &r.roles,
        r.active.unwrap_or(true),
    )?;
    let (webhook, secret) = app.writer.run(move |tx| webhooks::create(tx, spec)).await?;
    // The host only: a receiver's URL may carry its own secret in the path or query.
    let host = reqwest::Url::parse(&webhook.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    tracing::info!(webhook = %webhook.id, host = %host, "webhook registered");
    Ok(ok(&CreatedWebhookBody {
        webhook: (&webhook).into(),
        secret,
        success: true,
    }))
}

/// Every webhook endpoint, oldest first, without secrets (`manage-outgoing-integrations`).
#[utoipa::path(get, path = "/api/v1/statusd.webhooks.list", tag = "webhooks",
    security(("userId" = [], "authToken" = [])),
    responses(
        (status = 200, description = "The endpoints", body = WebhookListBody),
        (status = 403, description = "Without manage-outgoing-integrations", body = schema::ErrorBody),
    ))]
async fn list(State(app): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    require(&app, &caller)?;
    let mut all: Vec<WebhookView> = app
        .model
        .read()
        .webhooks
        .values()
        .map(|w| w.as_ref().into())
        .collect();
    all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(ok(&WebhookListBody {
        count: all.len(),
        webhooks: all,
        success: true,
    }))
}

/// `POST statusd.webhooks.update`: the fields given replace the endpoint's.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct UpdateWebhookRequest {
    webhook_id: String,
    #[schema(max_length = 2048)]
    url: Option<String>,
    events: Option<Vec<String>>,
    user_ids: Option<Vec<String>>,
    roles: Option<Vec<String>>,
    active: Option<bool>,
}

/// Changes a webhook endpoint; its secret stays (`manage-outgoing-integrations`).
#[utoipa::path(post, path = "/api/v1/statusd.webhooks.update", tag = "webhooks",
    security(("userId" = [], "authToken" = [])),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, description = "The changed endpoint", body = WebhookBody),
        (status = 400, description = "Match error, no such endpoint, a bad URL, events or filter",
         body = schema::ErrorBody),
        (status = 403, description = "Without manage-outgoing-integrations", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn update(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<UpdateWebhookRequest>,
) -> ApiResult<Response> {
    require(&app, &caller)?;
    let r = body.read()?;
    let updated = app
        .writer
        .run(move |tx| {
            let current = webhooks::find(tx, &r.webhook_id)?;
            let spec = Spec::checked(
                r.url.as_deref().unwrap_or(&current.url),
                r.events.as_deref().unwrap_or(&current.events),
                r.user_ids.as_deref().unwrap_or(&current.user_ids),
                r.roles.as_deref().unwrap_or(&current.roles),
                r.active.unwrap_or(current.active),
            )?;
            webhooks::update(tx, &r.webhook_id, spec)
        })
        .await?;
    Ok(ok(&WebhookBody {
        webhook: (&updated).into(),
        success: true,
    }))
}

/// `POST statusd.webhooks.delete`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct DeleteWebhookRequest {
    webhook_id: String,
}

/// Deletes a webhook endpoint and its undelivered deliveries
/// (`manage-outgoing-integrations`).
#[utoipa::path(post, path = "/api/v1/statusd.webhooks.delete", tag = "webhooks",
    security(("userId" = [], "authToken" = [])),
    request_body = DeleteWebhookRequest,
    responses(
        (status = 200, description = "Deleted", body = schema::Success),
        (status = 400, description = "Match error, or no such endpoint", body = schema::ErrorBody),
        (status = 403, description = "Without manage-outgoing-integrations", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn delete(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<DeleteWebhookRequest>,
) -> ApiResult<Response> {
    require(&app, &caller)?;
    let id = body.read()?.webhook_id;
    app.writer.run(move |tx| webhooks::delete(tx, &id)).await?;
    Ok(ok(&schema::Success::YES))
}

/// An endpoint's delivery log, newest first (`manage-outgoing-integrations`).
#[utoipa::path(get, path = "/api/v1/statusd.webhooks.deliveries", tag = "webhooks",
    security(("userId" = [], "authToken" = [])),
    params(
        ("webhookId" = String, Query),
        ("count" = Option<u64>, Query, description = "At most 500; default 50"),
    ),
    responses(
        (status = 200, description = "The newest deliveries", body = DeliveryListBody),
        (status = 400, description = "No webhookId, no such endpoint, or a bad count",
         body = schema::ErrorBody),
        (status = 403, description = "Without manage-outgoing-integrations", body = schema::ErrorBody),
        (status = 503, description = "The store could not be read", body = schema::ErrorBody),
    ))]
async fn deliveries(State(app): State<Ctx>, caller: Caller, q: Query) -> ApiResult<Response> {
    require(&app, &caller)?;
    let id = q
        .get("webhookId")
        .ok_or_else(|| ApiError::plain("The \"webhookId\" param is required"))?
        .to_string();
    let count = match q.get("count") {
        None => 50,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|c| (1..=MAX_LOG).contains(c))
            .ok_or_else(|| ApiError::plain("count must be a number from 1 to 500"))?,
    };
    if !app.model.read().webhooks.contains_key(&id) {
        return Err(crate::error::Error::refused(
            "error-webhook-not-found",
            "No webhook with this id",
        )
        .into());
    }
    let store = app.store.clone();
    let log = tokio::task::spawn_blocking(move || store.delivery_log(&id, count))
        .await
        .map_err(|_| crate::error::Error::Unavailable("internal error".into()))?
        .map_err(|e| {
            tracing::warn!("reading a webhook delivery log: {e:#}");
            crate::error::Error::Unavailable("the store could not be read".into())
        })?;
    let deliveries: Vec<DeliveryView> = log.into_iter().map(Into::into).collect();
    Ok(ok(&DeliveryListBody {
        count: deliveries.len(),
        deliveries,
        success: true,
    }))
}
