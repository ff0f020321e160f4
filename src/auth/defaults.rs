//! Roles and permissions, and the defaults a fresh Rocket.Chat has (CONTRACT §6): the
//! full catalog of permission ids (`permissions.json`, what a database is seeded with)
//! and, below, the few statusd acts on.

use std::sync::OnceLock;

use serde::Deserialize;

/// Declares every permission statusd checks once: its Rocket.Chat id and the roles
/// holding it by default.
macro_rules! permissions {
    ($($name:ident = $id:literal: [$($role:literal),*];)*) => {
        /// A permission statusd checks. The store and the wire keep its Rocket.Chat id.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Permission {
            $($name),*
        }

        impl Permission {
            /// Every permission, in the order a fresh database lists them.
            pub const ALL: &'static [Permission] = &[$(Permission::$name),*];

            /// The Rocket.Chat id, as stored and as `permissions.listAll` shows it.
            pub const fn id(self) -> &'static str {
                match self {
                    $(Permission::$name => $id),*
                }
            }

            /// The roles holding it in a fresh database.
            pub const fn default_roles(self) -> &'static [&'static str] {
                match self {
                    $(Permission::$name => &[$($role),*]),*
                }
            }
        }
    };
}

permissions! {
    EditOtherUserInfo = "edit-other-user-info": ["admin"];
    ApiBypassRateLimit = "api-bypass-rate-limit": ["admin", "bot", "app"];
    ViewFullOtherUserInfo = "view-full-other-user-info": ["admin"];
    ViewOtherUserChannels = "view-other-user-channels": ["admin"];
    CreateUser = "create-user": ["admin"];
    DeleteUser = "delete-user": ["admin"];
    ViewPrivilegedSetting = "view-privileged-setting": ["admin"];
    EditPrivilegedSetting = "edit-privileged-setting": ["admin"];
    AccessPermissions = "access-permissions": ["admin"];
    AssignRoles = "assign-roles": ["admin"];
    CreatePersonalAccessTokens = "create-personal-access-tokens": ["admin", "user"];
    ManageUserStatus = "manage-user-status": ["admin"];
    EditOtherUserActiveStatus = "edit-other-user-active-status": ["admin"];
    ViewDirectRoom = "view-d-room": ["admin", "user", "federated-external", "bot", "app", "guest"];
    LogoutOtherUser = "logout-other-user": ["admin"];
    AssignAdminRole = "assign-admin-role": ["admin"];
    EditOtherUserPassword = "edit-other-user-password": ["admin"];
    GetServerInfo = "get-server-info": ["admin"];
    ManageOutgoingIntegrations = "manage-outgoing-integrations": ["admin"];
    // statusd's own (not in Rocket.Chat's catalog): status claims on other users and
    // `internal` claims (`statusd.claims.*`).
    ManageStatusClaims = "manage-status-claims": ["admin"];
    // Rocket.Chat 8.8's (not in the 8.x catalog statusd seeds from): sees the real
    // status of users who hide it (`status::privacy`).
    ViewRestrictedUserStatus = "view-restricted-user-status": ["admin"];
}

/// The roles the rules name.
pub const ADMIN: &str = "admin";
pub const USER: &str = "user";
pub const BOT: &str = "bot";

/// (role id, description, protected) — Rocket.Chat's default roles.
pub const ROLES: &[(&str, &str, bool)] = &[
    (ADMIN, "Admin", true),
    ("moderator", "Moderator", true),
    ("leader", "Leader", true),
    ("owner", "Owner", true),
    (USER, "User", true),
    (BOT, "Bot", true),
    ("app", "App", true),
    ("guest", "Guest", true),
    ("anonymous", "Anonymous", true),
    ("livechat-agent", "Livechat Agent", true),
    ("livechat-manager", "Livechat Manager", true),
    ("livechat-monitor", "Livechat Monitor", true),
    ("federated-external", "Federated External", true),
];

/// One permission of the catalog and the roles holding it by default.
#[derive(Debug, Deserialize)]
pub struct DefaultPermission {
    #[serde(rename = "_id")]
    pub id: String,
    pub roles: Vec<String>,
}

#[derive(Deserialize)]
struct Catalog {
    permissions: Vec<DefaultPermission>,
}

/// Every permission a fresh Rocket.Chat workspace has (172 ids), by id. Those statusd
/// does not act on are still seeded, listed and updatable, so clients and admin
/// scripts that set them (`message-impersonate`, …) work; changing them changes
/// nothing here.
pub fn catalog() -> &'static [DefaultPermission] {
    static CATALOG: OnceLock<Vec<DefaultPermission>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // Built into the binary and checked by the unit tests below.
        serde_json::from_str::<Catalog>(include_str!("permissions.json"))
            .map(|c| c.permissions)
            .unwrap_or_default()
    })
}

/// Roles scoped to rooms in Rocket.Chat; everything else is a user (global) role.
pub const ROOM_SCOPED_ROLES: &[&str] = &["moderator", "leader", "owner"];

pub fn role_exists(role: &str) -> bool {
    ROLES.iter().any(|(id, _, _)| *id == role)
}

/// The role `id` as statusd knows it: (id, description, protected).
pub fn role(id: &str) -> Option<&'static (&'static str, &'static str, bool)> {
    ROLES.iter().find(|(r, _, _)| *r == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions statusd declares that Rocket.Chat's catalog does not have.
    const STATUSD_OWN: &[&str] = &["manage-status-claims", "view-restricted-user-status"];

    #[test]
    fn permissions_are_declared_once_with_known_roles() {
        let mut seen = std::collections::HashSet::new();
        for p in Permission::ALL {
            assert!(seen.insert(p.id()), "{} declared twice", p.id());
            for r in p.default_roles() {
                assert!(role_exists(r), "{}: unknown role {r}", p.id());
            }
        }
        assert_eq!(Permission::CreateUser.id(), "create-user");
        assert_eq!(Permission::ViewDirectRoom.default_roles().len(), 6);
    }

    #[test]
    fn the_catalog_is_rocket_chats_and_names_known_roles() {
        let all = catalog();
        assert_eq!(all.len(), 172);
        let mut seen = std::collections::HashSet::new();
        for p in all {
            assert!(seen.insert(p.id.as_str()), "{} listed twice", p.id);
            for r in &p.roles {
                assert!(role_exists(r), "{}: unknown role {r}", p.id);
            }
        }
        for id in [
            "message-impersonate",
            "view-outside-room",
            "assign-admin-role",
        ] {
            assert!(seen.contains(id), "{id}");
        }
        // The permissions statusd acts on are in it, with the same default roles.
        for p in Permission::ALL {
            if STATUSD_OWN.contains(&p.id()) {
                assert!(!seen.contains(p.id()), "{} is Rocket.Chat's", p.id());
                continue;
            }
            let listed = all.iter().find(|c| c.id == p.id());
            let listed = listed.unwrap_or_else(|| panic!("{} is not in the catalog", p.id()));
            let mut a: Vec<&str> = listed.roles.iter().map(String::as_str).collect();
            let mut b = p.default_roles().to_vec();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{}", p.id());
        }
    }
}
