//! Presence privacy applied: the rule of `status::privacy` read against the model (the
//! workspace setting, the viewer's permission), for every read path. REST routes and
//! DDP publications look at users through a [`Lens`]; the status streams ask
//! [`seen_by`] once per published event and session; the writer attaches to each
//! status event whom its user hides from (`state::writer`), so a session pays nothing
//! for a user who hides from nobody (or while the setting is off).

use std::borrow::Cow;

use crate::auth::defaults::Permission;
use crate::bus::Published;
use crate::model::User;
use crate::settings::{self, Values};
use crate::state::Model;
use crate::status::privacy::{self, Viewer};

/// Is presence privacy on in the workspace?
pub fn enabled(m: &Model) -> bool {
    m.value(&settings::STATUS_VISIBILITY)
}

/// Does `viewer_id` hold `view-restricted-user-status`?
pub fn privileged(m: &Model, viewer_id: &str) -> bool {
    m.users
        .get(viewer_id)
        .is_some_and(|v| m.has_permission(v, Permission::ViewRestrictedUserStatus.id()))
}

/// How one viewer sees users: read once per request, applied to each user looked at.
#[derive(Clone, Copy, Debug)]
pub struct Lens<'a> {
    enabled: bool,
    viewer: Viewer<'a>,
}

impl<'a> Lens<'a> {
    /// How the user `viewer_id` sees others now.
    pub fn of(m: &Model, viewer_id: &'a str) -> Lens<'a> {
        let enabled = enabled(m);
        Lens {
            enabled,
            viewer: Viewer {
                id: viewer_id,
                // Only asked when it matters.
                privileged: enabled && privileged(m, viewer_id),
            },
        }
    }

    /// May this viewer see `u`'s real status?
    pub fn sees(&self, u: &User) -> bool {
        privacy::user_visible_to(self.enabled, u, self.viewer)
    }

    /// `u` as this viewer may see them: themselves, or offline with nothing else.
    pub fn show<'u>(&self, u: &'u User) -> Cow<'u, User> {
        if self.sees(u) {
            Cow::Borrowed(u)
        } else {
            Cow::Owned(privacy::redacted(u))
        }
    }
}

/// What the session of a viewer does with a published change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Its frames, as they are.
    Truth,
    /// The status event's redacted frames: the user `offline`, no text. Sent when whom
    /// the user hides from may have changed, so a newly denied viewer learns it at once.
    Offline,
    /// No status frame: the user is hidden from this viewer, who already sees them
    /// offline; a frame would tell when they are active.
    Nothing,
}

/// How the session of `viewer_id` sees this published change. `privileged` (does the
/// viewer hold `view-restricted-user-status`?) is asked only when the event's user
/// hides from this viewer, so the model is read only then.
pub fn seen_by(p: &Published, viewer_id: &str, privileged: impl FnOnce() -> bool) -> Seen {
    let Published::Status(s) = p else {
        return Seen::Truth;
    };
    let Some(h) = &s.hiding else {
        return Seen::Truth;
    };
    let unprivileged = Viewer {
        id: viewer_id,
        privileged: false,
    };
    if privacy::visible_to(true, &s.event.uid, Some(h), unprivileged) || privileged() {
        Seen::Truth
    } else if s.event.privacy_changed {
        Seen::Offline
    } else {
        Seen::Nothing
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use super::*;
    use crate::bus::{StatusEvent, StatusFrames};
    use crate::status::privacy::Hiding;

    fn event(hiding: Option<Hiding>, privacy_changed: bool) -> Published {
        let u = crate::store::fixtures::user("t", "target");
        Published::Status(StatusFrames {
            event: StatusEvent {
                privacy_changed,
                ..StatusEvent::of(&u, chrono::Utc::now())
            },
            user_status_frame: OnceLock::new(),
            user_presence_frame: OnceLock::new(),
            user_data_frame: OnceLock::new(),
            hiding: hiding.map(Arc::new),
            redacted_status_frame: OnceLock::new(),
            redacted_presence_frame: OnceLock::new(),
        })
    }

    /// Truth for whoever may see; for a denied viewer the redacted frames once, when
    /// whom the user hides from changed, and nothing at the user's other changes; the
    /// permission asked only when it matters.
    #[test]
    fn a_session_sees_the_truth_offline_once_or_nothing() {
        let denies_d = Hiding {
            everyone: false,
            denied: vec!["d".into()],
        };
        let never = || -> bool { panic!("the permission was asked needlessly") };
        assert_eq!(seen_by(&event(None, false), "d", never), Seen::Truth);
        let p = event(Some(denies_d.clone()), false);
        assert_eq!(seen_by(&p, "o", never), Seen::Truth);
        assert_eq!(seen_by(&p, "t", never), Seen::Truth);
        assert_eq!(seen_by(&p, "d", || false), Seen::Nothing);
        assert_eq!(seen_by(&p, "d", || true), Seen::Truth);
        let p = event(Some(denies_d), true);
        assert_eq!(seen_by(&p, "d", || false), Seen::Offline);
        assert_eq!(seen_by(&p, "o", never), Seen::Truth);
    }
}
