//! Workspace settings (CONTRACT §6): read and change one, list the public ones.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, Query};
use super::reply::ok;
use super::schema;
use crate::app::Ctx;
use crate::auth::defaults::Permission;
use crate::error::Error;
use crate::settings::{self, Definition, DEFINITIONS};

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
    app.require_declared(&caller.user, Permission::ViewPrivilegedSetting)?;
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
    app.require_declared(&caller.user, Permission::EditPrivilegedSetting)?;
    let def = settings::definition(&id).ok_or_else(unknown_setting)?;
    let value = body.read()?.value;
    if !def.accepts(&value) {
        return Err(Error::refused(
            "error-invalid-setting-value",
            &format!(
                "Invalid value for setting {id}: expected {}",
                def.kind.describe()
            ),
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

/// The settings anyone may read, as Rocket.Chat lists them: `_id` (a comma-separated
/// list of ids), `query` (a JSON condition on `_id` and `value`), then a page of
/// `offset`/`count`, with the `total` that matched.
#[utoipa::path(get, path = "/api/v1/settings.public", tag = "settings",
    params(
        ("_id" = Option<String>, Query, description = "Setting ids, separated by commas"),
        ("query" = Option<String>, Query, description = "A JSON condition on `_id` and `value`: \
            a value, or `$eq`, `$ne`, `$in`, `$nin`, `$regex`"),
        ("offset" = Option<u64>, Query),
        ("count" = Option<u64>, Query, description = "At most API_Upper_Count_Limit"),
    ),
    responses(
        (status = 200, description = "The public settings", body = schema::SettingListBody),
        (status = 400, description = "A bad offset, count or query", body = schema::ErrorBody),
    ))]
async fn public(State(app): State<Ctx>, q: Query) -> ApiResult<Response> {
    let (offset, count) = super::users::paging(&app, &q)?;
    let ids: Option<Vec<&str>> = q
        .get("_id")
        .map(|ids| ids.split(',').map(str::trim).collect());
    let filter = match q.get("query") {
        Some(text) => Some(Filter::parse(text).ok_or_else(|| {
            ApiError::from(Error::refused(
                "error-invalid-query",
                &format!("Invalid query parameter provided: {text:?}"),
            ))
        })?),
        None => None,
    };
    let m = app.model.read();
    let value_of = |d: &Definition| {
        m.setting(d.id)
            .cloned()
            .unwrap_or_else(|| d.default_value())
    };
    let matching: Vec<schema::Setting> = DEFINITIONS
        .iter()
        .filter(|d| d.public)
        .filter(|d| ids.as_ref().is_none_or(|ids| ids.contains(&d.id)))
        .map(|d| schema::Setting {
            id: d.id,
            value: value_of(d),
        })
        .filter(|s| filter.as_ref().is_none_or(|f| f.matches(s.id, &s.value)))
        .collect();
    let total = matching.len();
    let page: Vec<schema::Setting> = matching.into_iter().skip(offset).take(count).collect();
    Ok(ok(&schema::SettingListBody {
        count: page.len(),
        offset,
        total,
        settings: page,
        success: true,
    }))
}

/// One condition of a `query`: Rocket.Chat passes it to MongoDB; statusd understands
/// the operators clients use on settings.
#[derive(Debug)]
enum Condition {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Regex(regex::Regex),
}

impl Condition {
    fn parse(spec: &Value) -> Option<Vec<Condition>> {
        let Value::Object(ops) = spec else {
            return Some(vec![Condition::Eq(spec.clone())]);
        };
        if !ops.keys().any(|k| k.starts_with('$')) {
            return Some(vec![Condition::Eq(spec.clone())]);
        }
        ops.iter()
            .map(|(op, arg)| {
                Some(match (op.as_str(), arg) {
                    ("$eq", v) => Condition::Eq(v.clone()),
                    ("$ne", v) => Condition::Ne(v.clone()),
                    ("$in", Value::Array(a)) => Condition::In(a.clone()),
                    ("$nin", Value::Array(a)) => Condition::Nin(a.clone()),
                    ("$regex", Value::String(r)) => Condition::Regex(
                        regex::RegexBuilder::new(r)
                            .size_limit(1 << 16)
                            .build()
                            .ok()?,
                    ),
                    _ => return None,
                })
            })
            .collect()
    }

    fn matches(&self, v: &Value) -> bool {
        match self {
            Condition::Eq(x) => v == x,
            Condition::Ne(x) => v != x,
            Condition::In(xs) => xs.contains(v),
            Condition::Nin(xs) => !xs.contains(v),
            Condition::Regex(r) => v.as_str().is_some_and(|s| r.is_match(s)),
        }
    }
}

/// A parsed `query`: conditions on `_id` and `value`, all of which must hold.
#[derive(Debug)]
struct Filter {
    id: Vec<Condition>,
    value: Vec<Condition>,
}

impl Filter {
    /// None for text that is not a JSON object of known fields and operators.
    fn parse(text: &str) -> Option<Filter> {
        let Value::Object(fields) = serde_json::from_str::<Value>(text).ok()? else {
            return None;
        };
        let mut f = Filter {
            id: Vec::new(),
            value: Vec::new(),
        };
        for (field, spec) in &fields {
            let conditions = Condition::parse(spec)?;
            match field.as_str() {
                "_id" => f.id.extend(conditions),
                "value" => f.value.extend(conditions),
                _ => return None,
            }
        }
        Some(f)
    }

    fn matches(&self, id: &str, value: &Value) -> bool {
        let id = Value::String(id.to_string());
        self.id.iter().all(|c| c.matches(&id)) && self.value.iter().all(|c| c.matches(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_match_ids_and_values() {
        let f = Filter::parse(r#"{"_id":{"$in":["A","B"]}}"#).unwrap();
        assert!(f.matches("A", &json!(1)));
        assert!(!f.matches("C", &json!(1)));
        let f = Filter::parse(r#"{"_id":{"$regex":"^Accounts_"},"value":true}"#).unwrap();
        assert!(f.matches("Accounts_X", &json!(true)));
        assert!(!f.matches("Accounts_X", &json!(false)));
        assert!(!f.matches("Site_Name", &json!(true)));
        let f = Filter::parse(r#"{"value":{"$ne":"x","$nin":["y"]}}"#).unwrap();
        assert!(f.matches("A", &json!("z")));
        assert!(!f.matches("A", &json!("y")));
        assert!(Filter::parse(r#"{"_id":"Site_Name"}"#)
            .unwrap()
            .matches("Site_Name", &json!(1)));
    }

    #[test]
    fn unknown_fields_operators_and_bad_json_are_refused() {
        for bad in [
            "",
            "nope",
            "[]",
            r#"{"type":"int"}"#,
            r#"{"_id":{"$where":"1"}}"#,
            r#"{"_id":{"$in":"A"}}"#,
            r#"{"_id":{"$regex":"("}}"#,
        ] {
            assert!(Filter::parse(bad).is_none(), "{bad}");
        }
    }
}
