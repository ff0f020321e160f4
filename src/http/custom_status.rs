//! Custom user statuses, as in Rocket.Chat: named statuses backed by one of the four
//! status types, listed for every client and managed with `manage-user-status`.

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{opt_str_field, str_field, Caller, JsonBody, Query};
use super::users::paging;
use super::{ok, schema};
use crate::app::Ctx;
use crate::auth::secrets::new_id;
use crate::error::{ApiError, ApiResult};
use crate::model::{iso, CustomStatus, Status};
use crate::state::Tx;

const METHOD: &str = "insertOrUpdateUserStatus";

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(create))
        .routes(routes!(update))
        .routes(routes!(delete))
}

pub fn to_json(c: &CustomStatus) -> Value {
    json!({
        "_id": c.id,
        "name": c.name,
        "statusType": c.status_type.as_str(),
        "_updatedAt": iso(&c.updated_at),
    })
}

/// The custom statuses, a page at a time, by name.
#[utoipa::path(get, path = "/api/v1/custom-user-status.list", tag = "custom statuses",
    security(("userId" = [], "authToken" = [])),
    params(("offset" = Option<u64>, Query), ("count" = Option<u64>, Query)),
    responses(
        (status = 200, description = "A page of custom statuses", body = schema::CustomStatusListBody),
        (status = 400, description = "A bad offset or count", body = schema::ErrorBody),
    ))]
async fn list(State(app): State<Ctx>, _caller: Caller, q: Query) -> ApiResult<Response> {
    let (offset, count) = paging(&app, &q)?;
    let mut all: Vec<CustomStatus> = app
        .model
        .read()
        .custom_statuses
        .values()
        .map(|c| (**c).clone())
        .collect();
    all.sort_by_key(|c| c.name.to_lowercase());
    let total = all.len();
    let page: Vec<Value> = all.iter().skip(offset).take(count).map(to_json).collect();
    Ok(ok(json!({
        "statuses": page,
        "count": page.len(),
        "offset": offset,
        "total": total,
    })))
}

fn require_manage(app: &Ctx, caller: &Caller) -> ApiResult<()> {
    if app.has_permission(&caller.user, "manage-user-status") {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// A trimmed, non-empty name without the characters Rocket.Chat refuses (`><&"'`).
fn checked_name(name: &str) -> ApiResult<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(ApiError::meteor(
            "error-the-field-is-required",
            "The field Name is required",
            METHOD,
        ));
    }
    if name.contains(['>', '<', '&', '"', '\'']) {
        return Err(ApiError::meteor(
            "error-input-is-not-a-valid-field",
            &format!("{name} is not a valid name"),
            METHOD,
        ));
    }
    if trimmed.chars().count() > 120 {
        return Err(ApiError::meteor(
            "error-input-is-not-a-valid-field",
            "The name is too long (120 characters at most)",
            METHOD,
        ));
    }
    Ok(trimmed.to_string())
}

fn checked_type(status_type: &str) -> ApiResult<Status> {
    Status::parse(status_type).ok_or_else(|| {
        ApiError::meteor(
            "error-input-is-not-a-valid-field",
            &format!("{status_type} is not a valid status type"),
            METHOD,
        )
    })
}

fn ensure_name_free(tx: &Tx, name: &str, except: Option<&str>) -> ApiResult<()> {
    let lower = name.to_lowercase();
    if tx
        .custom_statuses()
        .iter()
        .any(|c| c.name.to_lowercase() == lower && Some(c.id.as_str()) != except)
    {
        return Err(ApiError::meteor(
            "Custom_User_Status_Error_Name_Already_In_Use",
            "The custom user status name is already in use",
            METHOD,
        ));
    }
    Ok(())
}

/// Creates a custom status (`manage-user-status`).
#[utoipa::path(post, path = "/api/v1/custom-user-status.create", tag = "custom statuses",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::CreateCustomStatusRequest,
    responses(
        (status = 200, description = "The new custom status", body = schema::CustomStatusBody),
        (status = 400, description = "Match error, an invalid or taken name, or an invalid status type",
         body = schema::ErrorBody),
        (status = 403, description = "Without manage-user-status", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn create(
    State(app): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_manage(&app, &caller)?;
    let name = str_field(&body, "name")?;
    let status_type = str_field(&body, "statusType")?.to_string();
    // Rocket.Chat's order: name, then whether it is free, then the status type.
    let name = checked_name(name)?;
    let created = app
        .writer
        .run(move |tx| {
            ensure_name_free(tx, &name, None)?;
            let status_type = checked_type(&status_type)?;
            let c = CustomStatus {
                id: new_id(),
                name,
                status_type,
                updated_at: tx.now,
            };
            tx.put_custom_status(&c.id.clone(), Some(c.clone()));
            Ok(c)
        })
        .await?;
    Ok(ok(json!({ "customUserStatus": to_json(&created) })))
}

/// `custom-user-status.delete` of an unknown id (Rocket.Chat's deleteCustomUserStatus).
fn not_found() -> ApiError {
    ApiError::meteor(
        "Custom_User_Status_Error_Invalid_User_Status",
        "Invalid user status",
        "deleteCustomUserStatus",
    )
}

/// Renames a custom status or changes its type (`manage-user-status`).
#[utoipa::path(post, path = "/api/v1/custom-user-status.update", tag = "custom statuses",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::UpdateCustomStatusRequest,
    responses(
        (status = 200, description = "The changed custom status", body = schema::CustomStatusBody),
        (status = 400, description = "Match error, no such status, an invalid or taken name, or \
            an invalid status type", body = schema::ErrorBody),
        (status = 403, description = "Without manage-user-status", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn update(
    State(app): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_manage(&app, &caller)?;
    let id = str_field(&body, "_id")?.to_string();
    let name = str_field(&body, "name")?.to_string();
    let status_type = opt_str_field(&body, "statusType")?.map(str::to_string);
    let updated = app
        .writer
        .run(move |tx| {
            // Rocket.Chat looks the status up first, then validates as on create.
            let current = tx.custom_status(&id).ok_or_else(|| {
                ApiError::Plain(format!(
                    "No custom user status found with the id of \"{id}\"."
                ))
            })?;
            let name = checked_name(&name)?;
            ensure_name_free(tx, &name, Some(&id))?;
            let status_type = match status_type {
                Some(t) => checked_type(&t)?,
                None => current.status_type,
            };
            let c = CustomStatus {
                id: id.clone(),
                name,
                status_type,
                updated_at: tx.now,
            };
            tx.put_custom_status(&id, Some(c.clone()));
            Ok(c)
        })
        .await?;
    Ok(ok(json!({ "customUserStatus": to_json(&updated) })))
}

/// Deletes a custom status (`manage-user-status`).
#[utoipa::path(post, path = "/api/v1/custom-user-status.delete", tag = "custom statuses",
    security(("userId" = [], "authToken" = [])),
    request_body = schema::DeleteCustomStatusRequest,
    responses(
        (status = 200, description = "Deleted", body = schema::Success),
        (status = 400, description = "No id, or no such status", body = schema::ErrorBody),
        (status = 403, description = "Without manage-user-status", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn delete(
    State(app): State<Ctx>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_manage(&app, &caller)?;
    let id = match body.get("customUserStatusId") {
        None | Some(Value::Null) => String::new(),
        Some(_) => str_field(&body, "customUserStatusId")?.to_string(),
    };
    if id.is_empty() {
        return Err(ApiError::Plain(
            "The \"customUserStatusId\" params is required!".into(),
        ));
    }
    app.writer
        .run(move |tx| {
            tx.custom_status(&id).ok_or_else(not_found)?;
            tx.put_custom_status(&id, None);
            Ok(())
        })
        .await?;
    Ok(ok(json!({})))
}
