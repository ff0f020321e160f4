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

    /// Adds a subscription, refusing it past `max_subs` on this connection.
    pub fn sub(&mut self, id: &str, name: &str, params: &[Value], max_subs: usize) -> SubReply {
        if self.count() >= max_subs {
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
                for uid in strings(opts.and_then(|o| o.get("added"))) {
                    self.watched.insert(uid);
                }
                for uid in strings(opts.and_then(|o| o.get("removed"))) {
                    self.watched.remove(&uid);
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
