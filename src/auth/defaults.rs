//! Roles and permissions, and the defaults a fresh Rocket.Chat has (CONTRACT §6).

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
    ViewDirectRoom = "view-d-room": ["admin", "user", "bot", "app", "guest"];
    LogoutOtherUser = "logout-other-user": ["admin"];
    AssignAdminRole = "assign-admin-role": ["admin"];
    EditOtherUserPassword = "edit-other-user-password": ["admin"];
    GetServerInfo = "get-server-info": ["admin"];
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
];

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
        assert_eq!(Permission::ViewDirectRoom.default_roles().len(), 5);
    }
}
