//! The response bodies of the REST routes, typed: a handler builds one and serialises
//! it, and the same type describes it in the OpenAPI document (`ToSchema`), so the
//! description cannot drift from what is sent. The user views are in `views`; request
//! bodies next to their handlers. Members are declared in alphabetical order, the
//! order the `serde_json::Value` maps these replaced wrote, so the bytes are the same.

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::ToSchema;

use super::views::UserView;
use crate::auth::defaults::ROLES;
use crate::model::Status;

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
/// add `status` and `message`; a 503 says why in `details`.
#[derive(Serialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[schema(examples(false))]
    pub success: bool,
}

/// A body with nothing but `"success": true`.
#[derive(Serialize, ToSchema)]
pub struct Success {
    pub success: bool,
}

impl Success {
    pub const YES: Success = Success { success: true };
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginData<'a> {
    pub auth_token: String,
    pub me: UserView<'a>,
    pub user_id: &'a str,
}

#[derive(Serialize, ToSchema)]
pub struct LoginBody<'a> {
    pub data: LoginData<'a>,
    /// `success`.
    pub status: &'static str,
    pub success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct LogoutData {
    pub message: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct LogoutBody {
    pub data: LogoutData,
    /// `success`.
    pub status: &'static str,
    pub success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    pub success: bool,
    pub token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalToken<'a> {
    pub bypass_two_factor: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub last_token_part: &'a str,
    pub name: &'a str,
}

#[derive(Serialize, ToSchema)]
pub struct TokenListBody<'a> {
    pub success: bool,
    pub tokens: Vec<PersonalToken<'a>>,
}

#[derive(Serialize, ToSchema)]
pub struct UserBody<'a> {
    pub success: bool,
    pub user: UserView<'a>,
}

/// A page of a list: `count` items from `offset`, of `total`.
#[derive(Serialize, ToSchema)]
pub struct UserListBody<'a> {
    pub count: usize,
    pub offset: usize,
    pub success: bool,
    pub total: usize,
    pub users: Vec<UserView<'a>>,
}

#[derive(Serialize, ToSchema)]
pub struct Setting {
    #[serde(rename = "_id")]
    pub id: &'static str,
    #[schema(value_type = Value)]
    pub value: Value,
}

#[derive(Serialize, ToSchema)]
pub struct SettingBody {
    #[serde(rename = "_id")]
    pub id: String,
    pub success: bool,
    #[schema(value_type = Value)]
    pub value: Value,
}

#[derive(Serialize, ToSchema)]
pub struct SettingListBody {
    pub count: usize,
    pub offset: usize,
    pub settings: Vec<Setting>,
    pub success: bool,
    pub total: usize,
}

#[derive(Serialize, ToSchema)]
pub struct Permission<'a> {
    #[serde(rename = "_id")]
    pub id: &'a str,
    #[schema(schema_with = role_list)]
    pub roles: &'a [String],
    /// When it last changed (an ISO time).
    #[serde(rename = "_updatedAt")]
    #[schema(rename = "_updatedAt")]
    pub updated_at: String,
}

/// A permission that went: its id and when.
#[derive(Serialize, ToSchema)]
pub struct RemovedPermission<'a> {
    #[serde(rename = "_id")]
    pub id: &'a str,
    #[serde(rename = "_deletedAt")]
    #[schema(rename = "_deletedAt")]
    pub deleted_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct PermissionListBody<'a> {
    pub remove: Vec<RemovedPermission<'a>>,
    pub success: bool,
    pub update: Vec<Permission<'a>>,
}

#[derive(Serialize, ToSchema)]
pub struct PermissionsBody<'a> {
    pub permissions: Vec<Permission<'a>>,
    pub success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Role {
    #[serde(rename = "_id")]
    pub id: &'static str,
    pub description: &'static str,
    pub mandatory2fa: bool,
    pub name: &'static str,
    pub protected: bool,
    /// `Users` or `Subscriptions`.
    pub scope: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct RoleListBody {
    pub roles: Vec<Role>,
    pub success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RoleBody {
    pub role: Role,
    pub success: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry<'a> {
    #[serde(rename = "_id")]
    pub id: &'a str,
    #[schema(required = true)]
    pub actor_id: Option<&'a str>,
    #[schema(required = true)]
    pub actor_username: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub previous_status: Status,
    pub previous_status_text: &'a str,
    /// `rest`, `ddp`, `expiry`, `connection` or `import`.
    pub source: &'static str,
    pub status: Status,
    pub status_text: &'a str,
    pub user_id: &'a str,
    /// Null once the user is deleted.
    #[schema(required = true)]
    pub username: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryBody<'a> {
    pub count: usize,
    pub items: Vec<HistoryEntry<'a>>,
    pub offset: usize,
    pub success: bool,
    pub total: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomStatus {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_updatedAt")]
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub name: String,
    pub status_type: Status,
}

impl From<&crate::model::CustomStatus> for CustomStatus {
    fn from(c: &crate::model::CustomStatus) -> CustomStatus {
        CustomStatus {
            id: c.id.clone(),
            updated_at: crate::model::iso(&c.updated_at),
            name: c.name.clone(),
            status_type: c.status_type,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CustomStatusListBody {
    pub count: usize,
    pub offset: usize,
    pub statuses: Vec<CustomStatus>,
    pub success: bool,
    pub total: usize,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomStatusBody {
    pub custom_user_status: CustomStatus,
    pub success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct InfoBody<'a> {
    /// Rocket.Chat's `info`, for a caller holding `get-server-info`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ServerInfo<'a>>,
    /// statusd's own version.
    pub statusd: &'static str,
    pub success: bool,
    /// The Rocket.Chat version statusd answers as (`RC_COMPAT_VERSION`, default 8.6.0).
    pub version: &'a str,
}

/// Rocket.Chat's `Info` object: the version, how this build was made, its commit.
#[derive(Serialize, ToSchema)]
pub struct ServerInfo<'a> {
    pub build: BuildInfo,
    pub commit: CommitInfo,
    pub version: &'a str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub arch: &'static str,
    pub cpus: usize,
    pub platform: &'static str,
    /// statusd's version.
    pub statusd_version: &'static str,
}

/// The commit the build was made from, when the build said (`STATUSD_COMMIT` at
/// build time); statusd does not read `.git` (a build needs none, and a new commit
/// does not rebuild).
#[derive(Serialize, ToSchema)]
pub struct CommitInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthBody<'a> {
    pub connections: usize,
    pub instance: &'a str,
    /// Null outside cluster mode.
    #[schema(required = true)]
    pub nats: Option<bool>,
    /// `ok` or `unavailable`.
    pub status: &'static str,
    pub store: bool,
    pub success: bool,
}
