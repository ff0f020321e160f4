//! Custom user statuses, as in Rocket.Chat: named statuses backed by one of the four
//! status types, listed for every client and managed with `manage-user-status`.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, Query};
use super::reply::ok;
use super::schema;
use super::users::paging;
use crate::app::Ctx;
use crate::auth::defaults::Permission;
use crate::auth::secrets::new_id;
use crate::error::{Error, Result};
use crate::model::{CustomStatus, Status};
use crate::state::Tx;

const METHOD: &str = "insertOrUpdateUserStatus";

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(create))
        .routes(routes!(update))
        .routes(routes!(delete))
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
    let page: Vec<schema::CustomStatus> = all
        .iter()
        .skip(offset)
        .take(count)
        .map(Into::into)
        .collect();
    Ok(ok(&schema::CustomStatusListBody {
        count: page.len(),
        offset,
        statuses: page,
        success: true,
        total,
    }))
}

fn require_manage(app: &Ctx, caller: &Caller) -> ApiResult<()> {
    Ok(app.require(&caller.user, Permission::ManageUserStatus)?)
}

/// A trimmed, non-empty name without the characters Rocket.Chat refuses (`><&"'`).
fn checked_name(name: &str) -> Result<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(
            Error::refused("error-the-field-is-required", "The field Name is required").by(METHOD),
        );
    }
    if name.contains(['>', '<', '&', '"', '\'']) {
        return Err(Error::refused(
            "error-input-is-not-a-valid-field",
            &format!("{name} is not a valid name"),
        )
        .by(METHOD));
    }
    if trimmed.chars().count() > 120 {
        return Err(Error::refused(
            "error-input-is-not-a-valid-field",
            "The name is too long (120 characters at most)",
        )
        .by(METHOD));
    }
    Ok(trimmed.to_string())
}

fn checked_type(status_type: &str) -> Result<Status> {
    Status::parse(status_type).ok_or_else(|| {
        Error::refused(
            "error-input-is-not-a-valid-field",
            &format!("{status_type} is not a valid status type"),
        )
        .by(METHOD)
    })
}

fn ensure_name_free(tx: &Tx, name: &str, except: Option<&str>) -> Result<()> {
    let lower = name.to_lowercase();
    if tx
        .custom_statuses()
        .iter()
        .any(|c| c.name.to_lowercase() == lower && Some(c.id.as_str()) != except)
    {
        return Err(Error::refused(
            "Custom_User_Status_Error_Name_Already_In_Use",
            "The custom user status name is already in use",
        )
        .by(METHOD));
    }
    Ok(())
}

/// `POST custom-user-status.create`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct CreateCustomStatusRequest {
    /// Not blank, at most 120 characters, none of `<>&"'`.
    #[schema(pattern = r#"^[^<>&"']*[^<>&"'\s][^<>&"']*$"#, max_length = 120)]
    name: String,
    /// Checked against the four status types after the name (Rocket.Chat's order).
    /// Optional, as in Rocket.Chat: without one (or `null`) the status is `online`.
    #[schema(value_type = Option<crate::model::Status>)]
    status_type: Option<String>,
}

/// Creates a custom status (`manage-user-status`).
#[utoipa::path(post, path = "/api/v1/custom-user-status.create", tag = "custom statuses",
    security(("userId" = [], "authToken" = [])),
    request_body = CreateCustomStatusRequest,
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
    body: Body<CreateCustomStatusRequest>,
) -> ApiResult<Response> {
    require_manage(&app, &caller)?;
    let CreateCustomStatusRequest { name, status_type } = body.read()?;
    // Rocket.Chat's order: name, then whether it is free, then the status type.
    let name = checked_name(&name)?;
    let created = app
        .writer
        .run(move |tx| {
            ensure_name_free(tx, &name, None)?;
            let status_type = match status_type.as_deref() {
                None => Status::Online,
                Some(t) => checked_type(t)?,
            };
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
    Ok(ok(&schema::CustomStatusBody {
        custom_user_status: (&created).into(),
        success: true,
    }))
}

/// `custom-user-status.delete` of an unknown id (Rocket.Chat's deleteCustomUserStatus).
fn not_found() -> Error {
    Error::refused(
        "Custom_User_Status_Error_Invalid_User_Status",
        "Invalid user status",
    )
    .by("deleteCustomUserStatus")
}

/// `POST custom-user-status.update`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct UpdateCustomStatusRequest {
    #[serde(rename = "_id")]
    #[schema(rename = "_id")]
    id: String,
    /// Not blank, at most 120 characters, none of `<>&"'`.
    #[schema(pattern = r#"^[^<>&"']*[^<>&"'\s][^<>&"']*$"#, max_length = 120)]
    name: String,
    #[schema(value_type = Option<crate::model::Status>)]
    status_type: Option<String>,
}

/// Renames a custom status or changes its type (`manage-user-status`).
#[utoipa::path(post, path = "/api/v1/custom-user-status.update", tag = "custom statuses",
    security(("userId" = [], "authToken" = [])),
    request_body = UpdateCustomStatusRequest,
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
    body: Body<UpdateCustomStatusRequest>,
) -> ApiResult<Response> {
    require_manage(&app, &caller)?;
    let UpdateCustomStatusRequest {
        id,
        name,
        status_type,
    } = body.read()?;
    let updated = app
        .writer
        .run(move |tx| {
            // Rocket.Chat looks the status up first, then validates as on create.
            let current = tx.custom_status(&id).ok_or_else(|| {
                Error::Invalid(format!(
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
    Ok(ok(&schema::CustomStatusBody {
        custom_user_status: (&updated).into(),
        success: true,
    }))
}

/// `POST custom-user-status.delete`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(rename_all = "camelCase")]
pub struct DeleteCustomStatusRequest {
    custom_user_status_id: Option<String>,
}

/// Deletes a custom status (`manage-user-status`).
#[utoipa::path(post, path = "/api/v1/custom-user-status.delete", tag = "custom statuses",
    security(("userId" = [], "authToken" = [])),
    request_body = DeleteCustomStatusRequest,
    responses(
        (status = 200, description = "Deleted", body = schema::Success),
        (status = 400, description = "No id, or no such status", body = schema::ErrorBody),
        (status = 403, description = "Without manage-user-status", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn delete(
    State(app): State<Ctx>,
    caller: Caller,
    body: Body<DeleteCustomStatusRequest>,
) -> ApiResult<Response> {
    require_manage(&app, &caller)?;
    let id = body.read()?.custom_user_status_id.unwrap_or_default();
    if id.is_empty() {
        return Err(ApiError::plain(
            "The \"customUserStatusId\" params is required!",
        ));
    }
    app.writer
        .run(move |tx| {
            tx.custom_status(&id).ok_or_else(not_found)?;
            tx.put_custom_status(&id, None);
            Ok(())
        })
        .await?;
    Ok(ok(&schema::Success::YES))
}
