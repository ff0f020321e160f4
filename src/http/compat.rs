//! Routes clients switch to by the server's version (`/api/info`, `RC_COMPAT_VERSION`):
//! where the Rocket.Chat mobile app calls a REST route instead of a DDP method once the
//! server is new enough, statusd has that route (docs/decisions.md lists each switch).
//!
//! `GET roles.getUsersInPublicRoles` (Rocket.Chat 7.10+; the app's `getUsersRoles` at
//! login, instead of the method `getUserRoles`): any logged-in user; it reads what
//! `users.list` already shows every logged-in user (ids, usernames, global roles).

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::extract::Caller;
use super::reply::ok;
use crate::app::Ctx;

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(users_in_public_roles))
}

/// Rocket.Chat's public roles: user-scoped roles with a description
/// (`AuthorizationService.getPublicRoles`). Of the default roles, `user`, `bot`, `app`,
/// `guest` and `anonymous` are seeded without one (`upsertPermissions.ts`), and
/// `moderator`, `leader`, `owner` are room roles.
pub const PUBLIC_ROLES: &[&str] = &[
    "admin",
    "livechat-agent",
    "livechat-manager",
    "livechat-monitor",
];

/// A holder of public roles: those roles only.
#[derive(Serialize, ToSchema, PartialEq, Debug)]
pub struct RoleHolder {
    #[serde(rename = "_id")]
    id: String,
    roles: Vec<String>,
    username: String,
}

#[derive(Serialize, ToSchema)]
pub struct UsersInPublicRolesBody {
    success: bool,
    users: Vec<RoleHolder>,
}

/// The holders of public roles among `users`, sorted by username, each with only its
/// public roles (Rocket.Chat's `getUsersFromPublicRoles`). Pure.
pub fn holders<'a>(users: impl Iterator<Item = &'a crate::model::User>) -> Vec<RoleHolder> {
    let mut out: Vec<RoleHolder> = users
        .filter_map(|u| {
            let roles: Vec<String> = u
                .roles
                .iter()
                .filter(|r| PUBLIC_ROLES.contains(&r.as_str()))
                .cloned()
                .collect();
            (!roles.is_empty()).then(|| RoleHolder {
                id: u.id.clone(),
                roles,
                username: u.username.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.username.cmp(&b.username));
    out
}

/// Every user holding a public role (`admin`, the livechat roles), with those roles.
#[utoipa::path(get, path = "/api/v1/roles.getUsersInPublicRoles", tag = "permissions",
    security(("userId" = [], "authToken" = [])),
    responses((status = 200, description = "The holders of public roles",
        body = UsersInPublicRolesBody)))]
async fn users_in_public_roles(State(app): State<Ctx>, _caller: Caller) -> ApiResult<Response> {
    let users = holders(app.model.read().users.values().map(|u| &**u));
    Ok(ok(&UsersInPublicRolesBody {
        success: true,
        users,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_of_public_roles_with_those_roles_only_by_username() {
        let now = chrono::Utc::now();
        let mut zed = crate::accounts::users::new_user("zed", "Z", now);
        zed.roles = vec!["user".into(), "admin".into(), "bot".into()];
        let mut amy = crate::accounts::users::new_user("amy", "A", now);
        amy.roles = vec!["livechat-agent".into(), "user".into()];
        let plain = crate::accounts::users::new_user("bob", "B", now);
        let got = holders([&zed, &plain, &amy].into_iter());
        assert_eq!(
            got,
            vec![
                RoleHolder {
                    id: amy.id.clone(),
                    roles: vec!["livechat-agent".into()],
                    username: "amy".into()
                },
                RoleHolder {
                    id: zed.id.clone(),
                    roles: vec!["admin".into()],
                    username: "zed".into()
                },
            ]
        );
    }
}
