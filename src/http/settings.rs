//! Workspace settings (CONTRACT §6): read and change one, list the public ones.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::extract::{Caller, JsonBody};
use super::ok;
use crate::app::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::settings::{self, DEFINITIONS};

pub fn authed_routes() -> Router<Ctx> {
    Router::new().route("/settings/{id}", get(get_one).post(set_one))
}

pub fn public_routes() -> Router<Ctx> {
    Router::new().route("/settings.public", get(public))
}

fn unknown_setting() -> ApiError {
    ApiError::meteor_bare("error-setting-not-found", "Setting not found")
}

async fn get_one(
    State(app): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if !app.has_permission(&caller.user, "view-privileged-setting") {
        return Err(ApiError::Forbidden);
    }
    let value = app
        .model
        .read()
        .setting(&id)
        .cloned()
        .ok_or_else(unknown_setting)?;
    Ok(ok(json!({ "_id": id, "value": value })))
}

async fn set_one(
    State(app): State<Ctx>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if !app.has_permission(&caller.user, "edit-privileged-setting") {
        return Err(ApiError::Forbidden);
    }
    let def = settings::definition(&id).ok_or_else(unknown_setting)?;
    let value = match body.get("value") {
        Some(v) => v.clone(),
        None => return Err(ApiError::Plain("Match error: Missing key 'value'".into())),
    };
    if !def.accepts(&value) {
        return Err(ApiError::meteor_bare(
            "error-invalid-setting-value",
            &format!("Invalid value for setting {id}: expected {:?}", def.kind),
        ));
    }
    app.writer
        .run(move |tx| {
            tx.put_setting(def.id, value);
            Ok(())
        })
        .await?;
    Ok(ok(json!({})))
}

async fn public(State(app): State<Ctx>) -> ApiResult<Response> {
    let m = app.model.read();
    let list: Vec<Value> = DEFINITIONS
        .iter()
        .filter(|d| d.public)
        .map(|d| json!({"_id": d.id, "value": m.setting(d.id).cloned().unwrap_or_else(|| d.default_value())}))
        .collect();
    Ok(ok(json!({
        "settings": list,
        "count": list.len(),
        "offset": 0,
        "total": list.len(),
    })))
}
