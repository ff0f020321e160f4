//! The shapes of the JSON bodies, for the OpenAPI description (`openapi.rs`). The
//! handlers build their bodies with `json!` (key order and optional members as
//! Rocket.Chat sends them); these types only describe them. What keeps the two in step
//! is the schemathesis run (`tests/schemathesis/run.sh`), which checks every answer of
//! the running server against these schemas.
#![allow(dead_code)] // never built: read by the `ToSchema` derives only

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::ToSchema;

use crate::auth::defaults::ROLES;

/// Role ids as the routes accept them: the roles statusd knows (`auth::defaults`).
pub fn role_list() -> ArrayBuilder {
    ArrayBuilder::new().items(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ROLES.iter().map(|(id, _, _)| *id))),
    )
}

pub fn role_name() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ROLES.iter().map(|(id, _, _)| *id)))
}

/// Every error body (CONTRACT §2): `success` is false and `error` says what went wrong.
/// A business error adds `errorType` and `details.method`; the 401 and login errors
/// add `status` and `message`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ErrorBody {
    #[schema(value_type = bool, examples(false))]
    success: bool,
    error: String,
    error_type: Option<String>,
    #[schema(value_type = Option<Value>)]
    details: Option<Value>,
    status: Option<String>,
    message: Option<String>,
}

/// A body with nothing but `"success": true`.
#[derive(ToSchema)]
pub struct Success {
    success: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum StatusName {
    Online,
    Away,
    Busy,
    Offline,
}

#[derive(ToSchema)]
pub struct EmailEntry {
    address: String,
    verified: bool,
}

/// What anyone may see of a user; the user itself and holders of
/// `view-full-other-user-info` see the optional members too.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UserView {
    #[schema(rename = "_id")]
    id: String,
    username: String,
    name: String,
    status: StatusName,
    status_text: String,
    utc_offset: f64,
    active: bool,
    /// `user` or `bot`.
    #[schema(rename = "type")]
    kind: String,
    status_source: Option<String>,
    #[schema(format = DateTime)]
    status_expires_at: Option<String>,
    status_connection: Option<StatusName>,
    status_default: Option<StatusName>,
    roles: Option<Vec<String>>,
    emails: Option<Vec<EmailEntry>>,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(rename = "_updatedAt", format = DateTime)]
    updated_at: Option<String>,
    #[schema(format = DateTime)]
    last_login: Option<String>,
}

#[derive(ToSchema)]
pub struct Preferences {
    #[schema(value_type = Object)]
    preferences: Value,
}

/// `GET me` and the `me` of a login: the caller's full view plus these.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Me {
    #[schema(rename = "_id")]
    id: String,
    username: String,
    name: String,
    status: StatusName,
    status_connection: StatusName,
    status_text: String,
    roles: Vec<String>,
    active: bool,
    emails: Vec<EmailEntry>,
    utc_offset: f64,
    email: Option<String>,
    settings: Preferences,
    avatar_url: String,
}

/// `POST login`: `user` (an email when it contains `@`), `username` or `email`, with
/// `password` (plain, or `{digest, algorithm: "sha-256"}`); or `resume` with a token.
#[derive(ToSchema)]
pub struct LoginRequest {
    #[schema(value_type = Option<Value>)]
    user: Option<Value>,
    username: Option<String>,
    email: Option<String>,
    #[schema(value_type = Option<Value>)]
    password: Option<Value>,
    resume: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct LoginData {
    user_id: String,
    auth_token: String,
    me: Me,
}

#[derive(ToSchema)]
pub struct LoginBody {
    /// `success`.
    status: String,
    data: LoginData,
    success: bool,
}

#[derive(ToSchema)]
pub struct LogoutData {
    message: String,
}

#[derive(ToSchema)]
pub struct LogoutBody {
    status: String,
    data: LogoutData,
    success: bool,
}

#[derive(ToSchema)]
pub struct TokenBody {
    token: String,
    success: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PersonalToken {
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
    last_token_part: String,
    bypass_two_factor: bool,
}

#[derive(ToSchema)]
pub struct TokenListBody {
    tokens: Vec<PersonalToken>,
    success: bool,
}

/// `POST users.setStatus` (CONTRACT §4): at least one of `status` and `message` is a
/// string; `userId`, `username` or `user` names another user.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct SetStatusRequest {
    /// `online`, `away`, `busy` or `offline` (invisible); empty means unchanged.
    #[schema(pattern = r"^(online|away|busy|offline|)$")]
    status: Option<String>,
    /// Trimmed and cut to 120 characters.
    message: Option<String>,
    /// An RFC 3339 time in the future: the status is temporary.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    user_id: Option<String>,
    username: Option<String>,
    user: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct StatusBody {
    #[schema(rename = "_id")]
    id: String,
    status: StatusName,
    /// Only when reading one's own status.
    connection_status: Option<StatusName>,
    status_source: Option<String>,
    #[schema(format = DateTime)]
    status_expires_at: Option<String>,
    success: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PresenceBody {
    presence: StatusName,
    /// Only when reading one's own presence.
    connection_status: Option<StatusName>,
    #[schema(format = DateTime)]
    last_login: Option<String>,
    success: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PresenceEntry {
    #[schema(rename = "_id")]
    id: String,
    username: String,
    name: String,
    status: StatusName,
    status_text: String,
    utc_offset: f64,
    status_source: Option<String>,
    #[schema(format = DateTime)]
    status_expires_at: Option<String>,
}

#[derive(ToSchema)]
pub struct PresenceListBody {
    users: Vec<PresenceEntry>,
    /// True when the list holds every user who is not offline.
    full: bool,
    success: bool,
}

#[derive(ToSchema)]
pub struct UserBody {
    user: UserView,
    success: bool,
}

#[derive(ToSchema)]
pub struct UserListBody {
    users: Vec<UserView>,
    count: u64,
    offset: u64,
    total: u64,
    success: bool,
}

#[derive(ToSchema)]
pub struct Setting {
    #[schema(rename = "_id")]
    id: String,
    #[schema(value_type = Value)]
    value: Value,
}

#[derive(ToSchema)]
pub struct SettingBody {
    #[schema(rename = "_id")]
    id: String,
    #[schema(value_type = Value)]
    value: Value,
    success: bool,
}

#[derive(ToSchema)]
pub struct SettingListBody {
    settings: Vec<Setting>,
    count: u64,
    offset: u64,
    total: u64,
    success: bool,
}

#[derive(ToSchema)]
pub struct Permission {
    #[schema(rename = "_id")]
    id: String,
    #[schema(schema_with = role_list)]
    roles: Vec<String>,
}

#[derive(ToSchema)]
pub struct PermissionListBody {
    update: Vec<Permission>,
    #[schema(value_type = Vec<Object>)]
    remove: Vec<Value>,
    success: bool,
}

#[derive(ToSchema)]
pub struct PermissionsBody {
    permissions: Vec<Permission>,
    success: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Role {
    #[schema(rename = "_id")]
    id: String,
    name: String,
    description: String,
    protected: bool,
    mandatory2fa: bool,
    /// `Users` or `Subscriptions`.
    scope: String,
}

#[derive(ToSchema)]
pub struct RoleListBody {
    roles: Vec<Role>,
    success: bool,
}

#[derive(ToSchema)]
pub struct RoleBody {
    role: Role,
    success: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct HistoryEntry {
    #[schema(rename = "_id")]
    id: String,
    user_id: String,
    /// Null once the user is deleted.
    #[schema(required = true)]
    username: Option<String>,
    #[schema(required = true)]
    actor_id: Option<String>,
    #[schema(required = true)]
    actor_username: Option<String>,
    previous_status: StatusName,
    status: StatusName,
    previous_status_text: String,
    status_text: String,
    /// `rest`, `ddp`, `expiry` or `connection`.
    source: String,
    #[schema(format = DateTime)]
    created_at: String,
}

#[derive(ToSchema)]
pub struct HistoryBody {
    items: Vec<HistoryEntry>,
    count: u64,
    offset: u64,
    total: u64,
    success: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CustomStatus {
    #[schema(rename = "_id")]
    id: String,
    name: String,
    status_type: StatusName,
    #[schema(rename = "_updatedAt", format = DateTime)]
    updated_at: String,
}

#[derive(ToSchema)]
pub struct CustomStatusListBody {
    statuses: Vec<CustomStatus>,
    count: u64,
    offset: u64,
    total: u64,
    success: bool,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CustomStatusBody {
    custom_user_status: CustomStatus,
    success: bool,
}

#[derive(ToSchema)]
pub struct InfoBody {
    /// The Rocket.Chat version statusd answers as.
    version: String,
    /// statusd's own version.
    statusd: String,
    success: bool,
}

#[derive(ToSchema)]
pub struct HealthBody {
    /// `ok` or `unavailable`.
    status: String,
    store: bool,
    /// Null outside cluster mode.
    #[schema(required = true)]
    nats: Option<bool>,
    instance: String,
    connections: u64,
    success: bool,
}

/// The OpenAPI description itself.
#[derive(ToSchema)]
pub struct OpenApiDocument {
    openapi: String,
    #[schema(value_type = Object)]
    info: Value,
    #[schema(value_type = Object)]
    paths: BTreeMap<String, Value>,
}
