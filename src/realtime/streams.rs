//! The two status streams a connection can listen to, and the frames they carry.

use std::collections::HashSet;

use axum::extract::ws::Utf8Bytes;
use serde_json::{json, Value};

use super::frame::{self, MeteorError};
use crate::bus::{Published, StatusEvent};
use crate::model::iso;

pub const NOTIFY_LOGGED: &str = "stream-notify-logged";
pub const USER_PRESENCE: &str = "stream-user-presence";

/// What one connection listens to.
#[derive(Default)]
pub struct Subscriptions {
    /// Subscription ids on `stream-notify-logged` / `user-status`.
    user_status: HashSet<String>,
    /// Other `stream-notify-logged` events, accepted but never produced here.
    other_logged: HashSet<String>,
    /// The one `stream-user-presence` subscription and the users it watches.
    presence: Option<String>,
    watched: HashSet<String>,
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
        !self.user_status.is_empty() || self.presence.is_some()
    }

    fn count(&self) -> usize {
        self.user_status.len() + self.other_logged.len() + usize::from(self.presence.is_some())
    }

    /// Adds a subscription, refusing it past the limits of this connection.
    pub fn sub(&mut self, id: &str, name: &str, params: &[Value], limits: SubLimits) -> SubReply {
        let opens = name != USER_PRESENCE || self.presence.is_none();
        if opens && self.count() >= limits.subscriptions {
            return SubReply::NoSub(Some(MeteorError::new(
                "error-too-many-subscriptions",
                "Too many subscriptions on this connection",
            )));
        }
        match name {
            NOTIFY_LOGGED => match params.first().and_then(Value::as_str) {
                Some("user-status") => {
                    self.user_status.insert(id.to_string());
                    SubReply::Ready
                }
                Some(_) => {
                    self.other_logged.insert(id.to_string());
                    SubReply::Ready
                }
                None => SubReply::NoSub(Some(MeteorError::new(400, "Match failed"))),
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

    pub fn unsub(&mut self, id: &str) {
        self.user_status.remove(id);
        self.other_logged.remove(id);
        if self.presence.as_deref() == Some(id) {
            self.presence = None;
            self.watched.clear();
        }
    }

    pub fn clear(&mut self) {
        *self = Subscriptions::default();
    }

    /// The frames this connection gets for a published change (each encoded once, shared).
    pub fn frames(&self, p: &Published, out: &mut Vec<Utf8Bytes>) {
        if !self.user_status.is_empty() {
            out.push(
                p.user_status_frame
                    .get_or_init(|| frame::user_status_changed(&user_status_args(&p.event)).into())
                    .clone(),
            );
        }
        if self.presence.is_some() && self.watched.contains(&p.event.uid) {
            out.push(
                p.user_presence_frame
                    .get_or_init(|| {
                        let e = &p.event;
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

    fn presence_sub(s: &mut Subscriptions, id: &str, added: &[&str], removed: &[&str]) -> SubReply {
        let params = [json!("any"), json!({"added": added, "removed": removed})];
        s.sub(id, USER_PRESENCE, &params, LIMITS)
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
    fn a_later_presence_sub_is_not_a_new_subscription() {
        let mut s = Subscriptions::default();
        let logged = [json!("user-status"), json!(false)];
        assert!(matches!(
            presence_sub(&mut s, "p1", &["a"], &[]),
            SubReply::Ready
        ));
        for id in ["s1", "s2"] {
            assert!(matches!(
                s.sub(id, NOTIFY_LOGGED, &logged, LIMITS),
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
        let r = s.sub("s3", NOTIFY_LOGGED, &logged, LIMITS);
        assert!(refused(&r, "error-too-many-subscriptions"));
    }
}
