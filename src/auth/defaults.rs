//! Default roles and permissions, as a fresh Rocket.Chat has them (CONTRACT §6).

/// (permission id, roles holding it by default)
pub const PERMISSIONS: &[(&str, &[&str])] = &[
    ("edit-other-user-info", &["admin"]),
    ("api-bypass-rate-limit", &["admin", "bot", "app"]),
    ("view-full-other-user-info", &["admin"]),
    ("view-other-user-channels", &["admin"]),
    ("create-user", &["admin"]),
    ("delete-user", &["admin"]),
    ("view-privileged-setting", &["admin"]),
    ("edit-privileged-setting", &["admin"]),
    ("access-permissions", &["admin"]),
    ("assign-roles", &["admin"]),
    ("create-personal-access-tokens", &["admin", "user"]),
    ("manage-user-status", &["admin"]),
    ("edit-other-user-active-status", &["admin"]),
    ("view-d-room", &["admin", "user", "bot", "app", "guest"]),
    ("logout-other-user", &["admin"]),
];

/// (role id, description, protected) — Rocket.Chat's default roles.
pub const ROLES: &[(&str, &str, bool)] = &[
    ("admin", "Admin", true),
    ("moderator", "Moderator", true),
    ("leader", "Leader", true),
    ("owner", "Owner", true),
    ("user", "User", true),
    ("bot", "Bot", true),
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
