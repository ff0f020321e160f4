//! Presence privacy (Rocket.Chat 8.8's status visibility): who sees a user's real
//! status. The workspace setting `Accounts_StatusVisibility_Enabled` turns it on; each
//! user then keeps, in their preferences, the users who may not see their status
//! (`statusVisibilityDenied`, Rocket.Chat's key: user ids, set by username) and may hide
//! it from everyone (`statusdHideStatus`, statusd's own). Whoever may not see it sees the
//! user `offline` with no text, as if they were (`redacted`).
//!
//! The rule is Rocket.Chat's pure predicate (`apps/meteor/server/lib/statusVisibility`,
//! `canSeeStatus`): setting off → visible; the viewer is the user → visible; the viewer
//! is denied → hidden; otherwise visible. statusd adds that holders of
//! `view-restricted-user-status` (Rocket.Chat's bypass permission; admins by default)
//! always see the truth. Pure functions; the routes and streams apply them
//! (`crate::privacy`).

use serde_json::Value;

use crate::model::{Status, User};

/// The preference holding the ids of the users denied the status (Rocket.Chat's).
pub const DENIED_PREFERENCE: &str = "statusVisibilityDenied";
/// The preference hiding the status from everyone (statusd's own).
pub const HIDE_ALL_PREFERENCE: &str = "statusdHideStatus";
/// The most users one may deny: the list lives in the preferences and is scanned on
/// each read of the user, so it is bounded.
pub const MAX_DENIED: usize = 1000;

/// Who a user hides their status from, read once from their preferences.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hiding {
    /// From everyone but themselves and the privileged.
    pub everyone: bool,
    /// From these user ids.
    pub denied: Vec<String>,
}

impl Hiding {
    /// Whom `u` hides from, or None when nobody.
    pub fn of(u: &User) -> Option<Hiding> {
        let everyone = hides_from_everyone(u);
        let denied: Vec<String> = denied_ids(u).map(str::to_string).collect();
        (everyone || !denied.is_empty()).then_some(Hiding { everyone, denied })
    }

    /// Is `viewer_id` hidden from (before the exceptions of `visible_to`)?
    pub fn hides_from(&self, viewer_id: &str) -> bool {
        self.everyone || self.denied.iter().any(|d| d == viewer_id)
    }
}

/// Who is looking: their id ("" for no user, such as a webhook endpoint) and whether
/// they hold `view-restricted-user-status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewer<'a> {
    pub id: &'a str,
    pub privileged: bool,
}

/// Does `u` hide their status from everyone?
pub fn hides_from_everyone(u: &User) -> bool {
    u.preferences.get(HIDE_ALL_PREFERENCE) == Some(&Value::Bool(true))
}

/// The ids `u` denies their status to.
pub fn denied_ids(u: &User) -> impl Iterator<Item = &str> {
    u.preferences
        .get(DENIED_PREFERENCE)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Does `u` hide their status from anyone at all?
pub fn hides_from_anyone(u: &User) -> bool {
    hides_from_everyone(u) || denied_ids(u).next().is_some()
}

/// Do `a` and `b` (the same user at two times) hide from different people?
pub fn differs(a: &User, b: &User) -> bool {
    a.preferences.get(HIDE_ALL_PREFERENCE) != b.preferences.get(HIDE_ALL_PREFERENCE)
        || a.preferences.get(DENIED_PREFERENCE) != b.preferences.get(DENIED_PREFERENCE)
}

/// The rule: may `viewer` see the real status of `target_id`, who hides from `hiding`,
/// with the setting `enabled`?
pub fn visible_to(enabled: bool, target_id: &str, hiding: Option<&Hiding>, viewer: Viewer) -> bool {
    !enabled
        || viewer.privileged
        || viewer.id == target_id
        || !hiding.is_some_and(|h| h.hides_from(viewer.id))
}

/// [`visible_to`] read straight from the user (no `Hiding` built).
pub fn user_visible_to(enabled: bool, target: &User, viewer: Viewer) -> bool {
    !enabled
        || viewer.privileged
        || viewer.id == target.id
        || !(hides_from_everyone(target) || denied_ids(target).any(|d| d == viewer.id))
}

/// What a viewer who may not see `u`'s status sees: `u` offline, as a user who is
/// (Rocket.Chat's `redactStatus`): no text, source, expiry, chosen or connection
/// status, schedule or previous state, and no last seen or last login (which would
/// tell when they were last here).
pub fn redacted(u: &User) -> User {
    let mut r = u.clone();
    r.status = Status::Offline;
    r.status_connection = Status::Offline;
    r.status_default = Status::Offline;
    r.status_text.clear();
    r.status_source = None;
    r.status_expires_at = None;
    r.status_id = None;
    r.dnd = None;
    r.previous_state = None;
    r.last_seen = None;
    r.last_login = None;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(prefs: Value) -> User {
        let mut u = crate::store::fixtures::user("t", "target");
        u.preferences = prefs.as_object().cloned().unwrap_or_default();
        u.status = Status::Busy;
        u.status_text = "in a meeting".into();
        u
    }

    fn v(id: &str, privileged: bool) -> Viewer<'_> {
        Viewer { id, privileged }
    }

    /// Every cell: setting × target's choice × viewer (self, denied, other, privileged,
    /// no user), against `visible_to` and `user_visible_to` alike.
    #[test]
    fn every_cell_of_the_truth_table() {
        let nobody = user(json!({}));
        let named = user(json!({ DENIED_PREFERENCE: ["d"] }));
        let all = user(json!({ HIDE_ALL_PREFERENCE: true }));
        let viewers = [
            v("t", false),
            v("d", false),
            v("o", false),
            v("a", true),
            v("", false),
        ];
        // rows: target; columns: the viewers above, with the setting on.
        let table = [
            (&nobody, [true, true, true, true, true]),
            (&named, [true, false, true, true, true]),
            (&all, [true, false, false, true, false]),
        ];
        for (target, row) in table {
            let hiding = Hiding::of(target);
            for (viewer, want) in viewers.into_iter().zip(row) {
                let cell = format!("{:?} {viewer:?}", target.preferences);
                assert_eq!(
                    visible_to(true, "t", hiding.as_ref(), viewer),
                    want,
                    "{cell}"
                );
                assert_eq!(user_visible_to(true, target, viewer), want, "{cell}");
                // The setting off: everyone sees.
                assert!(visible_to(false, "t", hiding.as_ref(), viewer), "{cell}");
                assert!(user_visible_to(false, target, viewer), "{cell}");
            }
        }
        assert_eq!(Hiding::of(&nobody), None);
        assert!(!hides_from_anyone(&nobody));
        assert!(hides_from_anyone(&named) && hides_from_anyone(&all));
        assert!(differs(&nobody, &named) && !differs(&named, &named.clone()));
    }

    #[test]
    fn a_redacted_user_shows_nothing_but_offline() {
        let mut u = user(json!({}));
        u.status_source = Some("manual".into());
        u.status_expires_at = Some(chrono::Utc::now());
        u.last_seen = Some(chrono::Utc::now());
        u.last_login = Some(chrono::Utc::now());
        let r = redacted(&u);
        assert_eq!(
            (r.status, r.status_connection),
            (Status::Offline, Status::Offline)
        );
        assert_eq!(r.status_default, Status::Offline);
        assert!(r.status_text.is_empty() && r.status_source.is_none());
        assert!(r.status_expires_at.is_none() && r.last_seen.is_none() && r.last_login.is_none());
        assert_eq!((r.id, r.username), (u.id, u.username));
    }
}
