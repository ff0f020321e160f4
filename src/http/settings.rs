//! Workspace settings (CONTRACT §6): read and change one, list the public ones.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::{Body, Caller};
use super::reply::ok;
use super::schema;
use crate::app::Ctx;
use crate::auth::defaults::Permission;
use crate::error::Error;
use crate::settings::{self, DEFINITIONS};

pub fn authed_routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(get_one, set_one))
}

pub fn public_routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(public))
}

fn unknown_setting() -> Error {
    Error::refused("error-setting-not-found", "Setting not found")
}

/// One setting (`view-privileged-setting`).
#[utoipa::path(get, path = "/api/v1/settings/{id}", tag = "settings",
    security(("userId" = [], "authToken" = [])),
    params(("id" = String, Path, description = "The setting id, e.g. Accounts_AllowInvisibleStatusOption")),
    responses(
        (status = 200, description = "The setting", body = schema::SettingBody),
        (status = 400, description = "error-setting-not-found", body = schema::ErrorBody),
        (status = 403, description = "Without view-privileged-setting", body = schema::ErrorBody),
    ))]
async fn get_one(
    State(app): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    app.require(&caller.user, Permission::ViewPrivilegedSetting)?;
    let value = app
        .model
        .read()
        .setting(&id)
        .cloned()
        .ok_or_else(unknown_setting)?;
    Ok(ok(&schema::SettingBody {
        id,
        success: true,
        value,
    }))
}

/// `POST settings/:id`.
#[derive(Deserialize, ToSchema)]
pub struct SettingValueRequest {
    /// Of the setting's type: boolean, integer or string.
    #[schema(value_type = Value)]
    value: Value,
}

/// Changes a setting (`edit-privileged-setting`).
#[utoipa::path(post, path = "/api/v1/settings/{id}", tag = "settings",
    security(("userId" = [], "authToken" = [])),
    params(("id" = String, Path, description = "The setting id")),
    request_body = SettingValueRequest,
    responses(
        (status = 200, description = "Changed", body = schema::Success),
        (status = 400, description = "error-setting-not-found, a missing value or \
            error-invalid-setting-value", body = schema::ErrorBody),
        (status = 403, description = "Without edit-privileged-setting", body = schema::ErrorBody),
        (status = 503, description = "The change could not be committed", body = schema::ErrorBody),
    ))]
async fn set_one(
    State(app): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body<SettingValueRequest>,
) -> ApiResult<Response> {
    app.require(&caller.user, Permission::EditPrivilegedSetting)?;
    let def = settings::definition(&id).ok_or_else(unknown_setting)?;
    let value = body.read()?.value;
    if !def.accepts(&value) {
        return Err(Error::refused(
            "error-invalid-setting-value",
            &format!("Invalid value for setting {id}: expected {:?}", def.kind),
        )
        .into());
    }
    app.writer
        .run(move |tx| {
            tx.put_setting(def.id, value);
            Ok(())
        })
        .await?;
    Ok(ok(&schema::Success::YES))
}

/// The settings anyone may read.
#[utoipa::path(get, path = "/api/v1/settings.public", tag = "settings",
    responses((status = 200, description = "The public settings", body = schema::SettingListBody)))]
async fn public(State(app): State<Ctx>) -> ApiResult<Response> {
    let m = app.model.read();
    let list: Vec<schema::Setting> = DEFINITIONS
        .iter()
        .filter(|d| d.public)
        .map(|d| schema::Setting {
            id: d.id,
            value: m
                .setting(d.id)
                .cloned()
                .unwrap_or_else(|| d.default_value()),
        })
        .collect();
    Ok(ok(&schema::SettingListBody {
        count: list.len(),
        offset: 0,
        total: list.len(),
        settings: list,
        success: true,
    }))
}
