//! Who sees when a user was last seen and last logged in (statusd's last seen, an
//! extension Rocket.Chat does not have): the workspace setting
//! `Statusd_LastSeen_Visibility` (`off`, `admins`, `everyone`), the user's own
//! preference `statusdHideLastSeen` (then only admins see it), and only for a user who
//! shows `offline`. "Admins" are holders of `view-full-other-user-info`, the permission
//! that already shows them another user's `lastLogin`. Pure rules; the routes apply them.

use chrono::{DateTime, Utc};

use crate::model::{Status, User};

/// The preference key (in the user's preferences map) that hides one's last seen.
pub const HIDE_PREFERENCE: &str = "statusdHideLastSeen";

/// The workspace setting's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    Off,
    Admins,
    Everyone,
}

impl Visibility {
    /// The setting's text; anything unknown is the most private choice but off.
    pub fn parse(s: &str) -> Visibility {
        match s {
            "off" => Visibility::Off,
            "everyone" => Visibility::Everyone,
            _ => Visibility::Admins,
        }
    }
}

/// Who is looking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewer {
    /// Holds `view-full-other-user-info`.
    pub admin: bool,
    /// Is the user looked at.
    pub own: bool,
}

/// What a viewer sees: each time when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub last_seen: Option<DateTime<Utc>>,
    pub last_login: Option<DateTime<Utc>>,
}

/// Whether the user hides their last seen (the preference is `true`).
pub fn hidden(u: &User) -> bool {
    u.preferences.get(HIDE_PREFERENCE) == Some(&serde_json::Value::Bool(true))
}

/// What `viewer` sees of `u`'s last seen and last login, or None. Nothing for a user
/// who shows a status other than offline (they are here), nothing when the setting is
/// `off`. The user and admins see both times. Others see them under `everyone` unless
/// the user hides them; and they see the login time only when it is not after the last
/// seen, so a login made while invisible (or without ever coming online) shows nothing.
pub fn shown(visibility: Visibility, viewer: Viewer, u: &User) -> Option<Seen> {
    if u.status != Status::Offline || visibility == Visibility::Off {
        return None;
    }
    let privileged = viewer.own || viewer.admin;
    if !privileged && (visibility == Visibility::Admins || hidden(u)) {
        return None;
    }
    let last_login = if privileged {
        u.last_login
    } else {
        u.last_login
            .filter(|l| u.last_seen.is_some_and(|seen| *l <= seen))
    };
    if u.last_seen.is_none() && last_login.is_none() {
        return None;
    }
    Some(Seen {
        last_seen: u.last_seen,
        last_login,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    fn user() -> User {
        let mut u = crate::store::fixtures::user("a", "alice");
        u.preferences.clear();
        u.status = Status::Offline;
        u.last_login = Some(t(10));
        u.last_seen = Some(t(20));
        u
    }

    const OTHER: Viewer = Viewer {
        admin: false,
        own: false,
    };
    const ADMIN: Viewer = Viewer {
        admin: true,
        own: false,
    };
    const OWN: Viewer = Viewer {
        admin: false,
        own: true,
    };

    #[test]
    fn the_setting_decides_who_sees_it() {
        let u = user();
        let both = Some(Seen {
            last_seen: Some(t(20)),
            last_login: Some(t(10)),
        });
        for v in [OTHER, ADMIN, OWN] {
            assert_eq!(shown(Visibility::Off, v, &u), None);
            assert_eq!(shown(Visibility::Everyone, v, &u), both);
        }
        assert_eq!(shown(Visibility::Admins, OTHER, &u), None);
        assert_eq!(shown(Visibility::Admins, ADMIN, &u), both);
        assert_eq!(shown(Visibility::Admins, OWN, &u), both);
    }

    #[test]
    fn hiding_leaves_it_to_admins_and_oneself() {
        let mut u = user();
        u.preferences
            .insert(HIDE_PREFERENCE.into(), serde_json::Value::Bool(true));
        assert_eq!(shown(Visibility::Everyone, OTHER, &u), None);
        assert!(shown(Visibility::Everyone, ADMIN, &u).is_some());
        assert!(shown(Visibility::Everyone, OWN, &u).is_some());
    }

    #[test]
    fn nothing_for_a_user_who_is_here_and_no_login_after_the_last_seen() {
        let mut u = user();
        u.status = Status::Away;
        assert_eq!(shown(Visibility::Everyone, ADMIN, &u), None);
        let mut u = user();
        u.last_login = Some(t(30));
        let seen = shown(Visibility::Everyone, OTHER, &u);
        assert_eq!(seen.map(|s| s.last_login), Some(None));
        let seen = shown(Visibility::Everyone, ADMIN, &u);
        assert_eq!(seen.map(|s| s.last_login), Some(Some(t(30))));
        assert_eq!(Visibility::parse("bogus"), Visibility::Admins);
    }
}
