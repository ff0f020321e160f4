//! The streams a connection can listen to, and the frames they carry: the status
//! streams (`stream-notify-logged` `user-status`, `stream-user-presence`: the hot
//! path, frames encoded once per event and shared), the user's own
//! `stream-notify-user` `<uid>/userData`, and the notices the writer derives from other
//! committed changes (`bus::notice`), matched by stream and event name. Keys clients
//! subscribe to that statusd has nothing to send on are answered `ready` and stay
//! silent, as a Rocket.Chat server without that feature in use would.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use axum::extract::ws::Utf8Bytes;
use serde_json::{json, Value};

use super::frame::{self, MeteorError};
use crate::bus::notice::{self, Obj, NOTIFY_ALL, NOTIFY_USER, PRIVATE_SETTINGS_CHANGED};
use crate::bus::{Published, StatusEvent};
use crate::model::iso;

pub const NOTIFY_LOGGED: &str = "stream-notify-logged";
pub const USER_PRESENCE: &str = "stream-user-presence";
/// `stream-roles` `roles`: statusd's roles are fixed, so it never carries an event.
pub const ROLES: &str = "stream-roles";
/// `stream-room-messages`: statusd has no rooms; `__my_messages__` (which bots
/// subscribe to at start-up) is `ready` and silent, a room id is not allowed.
pub const ROOM_MESSAGES: &str = "stream-room-messages";
pub const MY_MESSAGES: &str = "__my_messages__";
/// `stream-notify-room`: no rooms, so every key is refused as for a room one is not in.
pub const NOTIFY_ROOM: &str = "stream-notify-room";

/// `stream-notify-room-users`: Rocket.Chat reads nothing from it (`allowRead('none')`).
pub const NOTIFY_ROOM_USERS: &str = "stream-notify-room-users";

/// The permissions that let a subscriber see `private-settings-changed` (Rocket.Chat's
/// `notifications.module.ts`).
pub const PRIVATE_SETTINGS_PERMISSIONS: [&str; 3] = [
    "view-privileged-setting",
    "edit-privileged-setting",
    "manage-selected-settings",
];

/// What one connection listens to.
#[derive(Default)]
pub struct Subscriptions {
    /// Subscription ids on `stream-notify-logged` / `user-status`.
    user_status: HashSet<String>,
    /// Subscription ids on the user's own `stream-notify-user` `<uid>/userData`.
    user_data: HashSet<String>,
    /// Subscriptions to a notice (`bus::notice::PRODUCED`): id → (stream, event name).
    keyed: HashMap<String, (&'static str, String)>,
    /// Accepted subscriptions nothing is ever sent on (`__my_messages__`, `stream-roles`,
    /// the `<uid>/…` keys besides `userData`, …): they count against the limit, and
    /// need no events.
    silent: HashSet<String>,
    /// The one `stream-user-presence` subscription and the users it watches.
    presence: Option<String>,
    watched: HashSet<String>,
}

/// Who is subscribing: the logged-in user, and whether they may see private settings
/// (asked only when they subscribe to them).
pub struct Subscriber<'a> {
    pub uid: &'a str,
    pub may_see_private_settings: &'a dyn Fn() -> bool,
}

/// How much one connection may listen to.
#[derive(Clone, Copy, Debug)]
pub struct SubLimits {
    /// Subscriptions held at once.
    pub subscriptions: usize,
    /// Users watched through `stream-user-presence`: later subs only add to the set, so
    /// without a bound one connection could grow it without end.
    pub watched_users: usize,
}

impl SubLimits {
    /// The limits the configuration sets (`WS_MAX_SUBSCRIPTIONS`, `WS_MAX_WATCHED_USERS`).
    pub fn of(cfg: &crate::config::Config) -> SubLimits {
        SubLimits {
            subscriptions: cfg.ws_max_subscriptions,
            watched_users: cfg.ws_max_watched_users,
        }
    }
}

/// What the session answers to a `sub`.
pub enum SubReply {
    Ready,
    /// A `nosub`, with an error or (for a later presence sub) without.
    NoSub(Option<MeteorError>),
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Subscriptions {
    pub fn wants_events(&self) -> bool {
        !self.user_status.is_empty()
            || self.presence.is_some()
            || !self.user_data.is_empty()
            || !self.keyed.is_empty()
    }

    /// Does this connection want every status change (`user-status`)?
    pub fn wants_every_status(&self) -> bool {
        !self.user_status.is_empty()
    }

    /// Does it want notices (a notice's key, or its own `userData`)?
    pub fn wants_notices(&self) -> bool {
        !self.keyed.is_empty() || !self.user_data.is_empty()
    }

    /// Does it want its own user's status changes (`<uid>/userData`)?
    pub fn wants_own(&self) -> bool {
        !self.user_data.is_empty()
    }

    /// The users it watches through `stream-user-presence`.
    pub fn watched(&self) -> impl Iterator<Item = &str> {
        self.watched.iter().map(String::as_str)
    }

    fn count(&self) -> usize {
        self.user_status.len()
            + self.user_data.len()
            + self.keyed.len()
            + self.silent.len()
            + usize::from(self.presence.is_some())
    }

    /// Adds a subscription, refusing it past the limits of this connection.
    pub fn sub(
        &mut self,
        id: &str,
        name: &str,
        params: &[Value],
        limits: SubLimits,
        who: &Subscriber,
    ) -> SubReply {
        let opens = name != USER_PRESENCE || self.presence.is_none();
        if opens && self.count() >= limits.subscriptions {
            return SubReply::NoSub(Some(MeteorError::new(
                "error-too-many-subscriptions",
                "Too many subscriptions on this connection",
            )));
        }
        let key = params.first().and_then(Value::as_str);
        let match_failed = || SubReply::NoSub(Some(MeteorError::new(400, "Match failed")));
        // Rocket.Chat's streamer refuses a read it does not allow with a bare
        // `not-allowed` Meteor error.
        let not_allowed = || SubReply::NoSub(Some(MeteorError::bare("not-allowed")));
        match name {
            NOTIFY_LOGGED => match key {
                Some("user-status") => {
                    self.user_status.insert(id.to_string());
                    SubReply::Ready
                }
                Some(PRIVATE_SETTINGS_CHANGED) if !(who.may_see_private_settings)() => {
                    not_allowed()
                }
                Some(k) => self.keep(id, NOTIFY_LOGGED, k),
                None => match_failed(),
            },
            NOTIFY_USER => match key {
                // Only one's own `<uid>/…` keys (`notifications.module.ts`).
                Some(k) if k.split('/').next() != Some(who.uid) => not_allowed(),
                Some(k) if k.strip_prefix(who.uid) == Some("/userData") => {
                    self.user_data.insert(id.to_string());
                    SubReply::Ready
                }
                Some(k) => self.keep(id, NOTIFY_USER, k),
                None => match_failed(),
            },
            NOTIFY_ALL => match key {
                Some(k) => self.keep(id, NOTIFY_ALL, k),
                None => match_failed(),
            },
            ROLES => match key {
                Some(k) => self.keep(id, ROLES, k),
                None => match_failed(),
            },
            ROOM_MESSAGES => match key {
                Some(MY_MESSAGES) => self.keep(id, ROOM_MESSAGES, MY_MESSAGES),
                Some(_) => not_allowed(),
                None => match_failed(),
            },
            NOTIFY_ROOM | NOTIFY_ROOM_USERS => match key {
                Some(_) => not_allowed(),
                None => match_failed(),
            },
            USER_PRESENCE => {
                let opts = params.get(1);
                let added = strings(opts.and_then(|o| o.get("added")));
                let removed = strings(opts.and_then(|o| o.get("removed")));
                // All or nothing: a sub that would watch too many users changes nothing.
                if self.watched_after(&added, &removed) > limits.watched_users {
                    return SubReply::NoSub(Some(MeteorError::new(
                        "error-too-many-watched-users",
                        "Too many users watched on this connection",
                    )));
                }
                for uid in added {
                    self.watched.insert(uid);
                }
                for uid in &removed {
                    self.watched.remove(uid);
                }
                if self.presence.is_none() {
                    self.presence = Some(id.to_string());
                    SubReply::Ready
                } else {
                    // Later subs only change the watched set (as Rocket.Chat does).
                    SubReply::NoSub(None)
                }
            }
            other => SubReply::NoSub(Some(MeteorError::new(
                404,
                &format!("Subscription '{other}' not found"),
            ))),
        }
    }

    /// How many users would be watched after adding `added`, then removing `removed`.
    fn watched_after(&self, added: &[String], removed: &[String]) -> usize {
        let removed: HashSet<&str> = removed.iter().map(String::as_str).collect();
        let new: HashSet<&str> = added
            .iter()
            .map(String::as_str)
            .filter(|u| !self.watched.contains(*u) && !removed.contains(u))
            .collect();
        let gone = removed
            .iter()
            .filter(|u| self.watched.contains(**u))
            .count();
        self.watched.len() + new.len() - gone
    }

    fn keep(&mut self, id: &str, stream: &'static str, key: &str) -> SubReply {
        if notice::PRODUCED.contains(&(stream, key)) {
            self.keyed.insert(id.to_string(), (stream, key.to_string()));
        } else {
            self.silent.insert(id.to_string());
        }
        SubReply::Ready
    }

    pub fn unsub(&mut self, id: &str) {
        self.user_status.remove(id);
        self.user_data.remove(id);
        self.keyed.remove(id);
        self.silent.remove(id);
        if self.presence.as_deref() == Some(id) {
            self.presence = None;
            self.watched.clear();
        }
    }

    pub fn clear(&mut self) {
        *self = Subscriptions::default();
    }

    /// The frames this connection gets for a published change (each encoded once,
    /// shared). `uid`: the logged-in user (their own `userData`); `hidden`: the status
    /// event's user hides it from them (`crate::privacy`: the redacted frames instead).
    /// This is the one place where a frame is chosen for a connection: the fan-out
    /// (`bus::fanout`) only brings the changes this connection's interest names, and
    /// each arrives once.
    pub fn frames(&self, p: &Published, uid: &str, hidden: bool, out: &mut Vec<Utf8Bytes>) {
        let p = match p {
            Published::Status(p) => p,
            Published::Notice(n) => {
                let wanted = match n.stream {
                    NOTIFY_USER => {
                        !self.user_data.is_empty()
                            && n.event.strip_prefix(uid).is_some_and(|e| e == "/userData")
                    }
                    _ => self
                        .keyed
                        .values()
                        .any(|(s, e)| *s == n.stream && *e == n.event),
                };
                if wanted {
                    out.push(n.frame.clone());
                }
                return;
            }
        };
        if !self.user_data.is_empty() && p.event.uid == uid {
            out.push(
                p.user_data_frame
                    .get_or_init(|| user_data_status(&p.event).frame)
                    .clone(),
            );
        }
        let (status_frame, presence_frame) = if hidden {
            (&p.redacted_status_frame, &p.redacted_presence_frame)
        } else {
            (&p.user_status_frame, &p.user_presence_frame)
        };
        let event = || {
            if hidden {
                Cow::Owned(p.event.redacted())
            } else {
                Cow::Borrowed(&p.event)
            }
        };
        if !self.user_status.is_empty() {
            out.push(
                status_frame
                    .get_or_init(|| frame::user_status_changed(&user_status_args(&event())).into())
                    .clone(),
            );
        }
        if self.presence.is_some() && self.watched.contains(&p.event.uid) {
            out.push(
                presence_frame
                    .get_or_init(|| {
                        let e = event();
                        frame::user_presence_changed(
                            &e.uid,
                            &json!([e.username, e.status.code(), e.status_text]),
                        )
                        .into()
                    })
                    .clone(),
            );
        }
    }
}

/// `<uid>/userData` for a status change, as the `presence.status` listener sends it:
/// `{"type":"updated","id","diff":{"status","statusText"?},"unset":{"statusText":1}?}`.
fn user_data_status(e: &StatusEvent) -> notice::Notice {
    let mut diff = Obj::new().field("status", &e.status.as_str());
    let mut unset = Obj::new();
    if e.status_text.is_empty() {
        unset = unset.field("statusText", &1);
    } else {
        diff = diff.field("statusText", &e.status_text);
    }
    notice::user_data_status(&e.uid, &diff, &unset)
}

/// `[uid, username, code, statusText, name, roles]`, plus Rocket.Chat 8.6's
/// `statusSource` and `statusExpiresAt` when the change has them.
pub fn user_status_args(e: &StatusEvent) -> Value {
    let mut args = vec![
        json!(e.uid),
        json!(e.username),
        json!(e.status.code()),
        json!(e.status_text),
        json!(e.name),
        json!(e.roles),
    ];
    if e.status_source.is_some() || e.status_expires_at.is_some() {
        args.push(json!(e.status_source));
        args.push(json!(e.status_expires_at.as_ref().map(iso)));
    }
    Value::Array(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SubLimits = SubLimits {
        subscriptions: 3,
        watched_users: 3,
    };

    fn never() -> bool {
        false
    }

    const WHO: Subscriber = Subscriber {
        uid: "me",
        may_see_private_settings: &never,
    };

    fn presence_sub(s: &mut Subscriptions, id: &str, added: &[&str], removed: &[&str]) -> SubReply {
        let params = [json!("any"), json!({"added": added, "removed": removed})];
        s.sub(id, USER_PRESENCE, &params, LIMITS, &WHO)
    }

    fn watched(s: &Subscriptions) -> Vec<&str> {
        let mut w: Vec<&str> = s.watched.iter().map(String::as_str).collect();
        w.sort();
        w
    }

    fn refused(reply: &SubReply, code: &str) -> bool {
        matches!(reply, SubReply::NoSub(Some(e)) if e.error == code)
    }

    #[test]
    fn watched_users_are_capped_all_or_nothing() {
        let mut s = Subscriptions::default();
        assert!(matches!(
            presence_sub(&mut s, "p1", &["a", "b"], &[]),
            SubReply::Ready
        ));
        // Duplicates and ids already watched do not count twice.
        assert!(matches!(
            presence_sub(&mut s, "p2", &["a", "b", "c", "c"], &[]),
            SubReply::NoSub(None)
        ));
        assert_eq!(watched(&s), ["a", "b", "c"]);
        // One more would make 4: refused, and nothing changes (not even the removal).
        let r = presence_sub(&mut s, "p3", &["d", "e"], &["a"]);
        assert!(refused(&r, "error-too-many-watched-users"));
        assert_eq!(watched(&s), ["a", "b", "c"]);
        // Removing as many as are added fits; an id both added and removed ends removed.
        let r = presence_sub(&mut s, "p4", &["d", "e"], &["a", "b", "e"]);
        assert!(matches!(r, SubReply::NoSub(None)));
        assert_eq!(watched(&s), ["c", "d"]);
        // A first sub that asks for too many is refused and opens nothing.
        let mut fresh = Subscriptions::default();
        let r = presence_sub(&mut fresh, "p1", &["a", "b", "c", "d"], &[]);
        assert!(refused(&r, "error-too-many-watched-users"));
        assert!(!fresh.wants_events());
    }

    #[test]
    fn own_user_keys_only_and_private_settings_need_a_permission() {
        let mut s = Subscriptions::default();
        let sub = |s: &mut Subscriptions, id: &str, name: &str, key: &str| {
            s.sub(id, name, &[json!(key), json!(false)], LIMITS, &WHO)
        };
        assert!(matches!(
            sub(&mut s, "1", NOTIFY_USER, "me/userData"),
            SubReply::Ready
        ));
        assert!(matches!(
            sub(&mut s, "2", NOTIFY_USER, "me/otr"),
            SubReply::Ready
        ));
        assert!(refused(
            &sub(&mut s, "3", NOTIFY_USER, "other/userData"),
            "not-allowed"
        ));
        assert!(refused(
            &sub(&mut s, "3", NOTIFY_USER, "meme/userData"),
            "not-allowed"
        ));
        assert!(refused(
            &sub(&mut s, "3", NOTIFY_LOGGED, PRIVATE_SETTINGS_CHANGED),
            "not-allowed"
        ));
        assert!(refused(
            &sub(&mut s, "3", ROOM_MESSAGES, "GENERAL"),
            "not-allowed"
        ));
        assert!(matches!(
            sub(&mut s, "3", ROOM_MESSAGES, MY_MESSAGES),
            SubReply::Ready
        ));
        // Keys nothing is sent on need no events; a notice's key does.
        let mut quiet = Subscriptions::default();
        assert!(matches!(
            sub(&mut quiet, "1", ROOM_MESSAGES, MY_MESSAGES),
            SubReply::Ready
        ));
        assert!(matches!(
            sub(&mut quiet, "2", NOTIFY_USER, "me/otr"),
            SubReply::Ready
        ));
        assert!(matches!(
            sub(&mut quiet, "3", ROLES, "roles"),
            SubReply::Ready
        ));
        assert!(!quiet.wants_events());
        quiet.unsub("3");
        assert!(matches!(
            sub(&mut quiet, "4", NOTIFY_LOGGED, "roles-change"),
            SubReply::Ready
        ));
        assert!(quiet.wants_events());
        quiet.unsub("4");
        assert!(!quiet.wants_events());
        // At the limit of 3 now.
        assert!(refused(
            &sub(&mut s, "4", NOTIFY_ALL, "public-settings-changed"),
            "error-too-many-subscriptions"
        ));
    }

    #[test]
    fn a_later_presence_sub_is_not_a_new_subscription() {
        let mut s = Subscriptions::default();
        let logged = [json!("user-status"), json!(false)];
        assert!(matches!(
            presence_sub(&mut s, "p1", &["a"], &[]),
            SubReply::Ready
        ));
        for id in ["s1", "s2"] {
            assert!(matches!(
                s.sub(id, NOTIFY_LOGGED, &logged, LIMITS, &WHO),
                SubReply::Ready
            ));
        }
        // At the limit of 3, changing the watched set still works...
        assert!(matches!(
            presence_sub(&mut s, "p2", &["b"], &[]),
            SubReply::NoSub(None)
        ));
        assert_eq!(watched(&s), ["a", "b"]);
        // ...while a new subscription is refused.
        let r = s.sub("s3", NOTIFY_LOGGED, &logged, LIMITS, &WHO);
        assert!(refused(&r, "error-too-many-subscriptions"));
    }
}
