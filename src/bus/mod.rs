//! Publishing committed changes to whoever listens (the realtime sessions): status
//! changes (the hot path: `Published::Status`, frames encoded lazily once and shared)
//! and the rarer notices derived from the other committed changes (`Notice`: custom
//! statuses, settings, permissions, roles, renames, deletions), encoded once by the
//! writer. Each realtime connection listens through a bounded queue of its own, indexed
//! by what it listens to (`fanout.rs`): a change is queued only for the connections it
//! is for, in commit order, and a connection whose queue overflows is closed by its
//! session instead of buffering without bound.

pub mod fanout;
pub mod nats;
pub mod notice;
pub mod replay;
pub mod seal;

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;

use crate::model::{Status, User};
use crate::status::privacy::Hiding;
use chrono::{DateTime, Utc};

/// One committed change of what a user shows to others.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusEvent {
    pub uid: String,
    pub username: String,
    pub name: String,
    pub roles: Vec<String>,
    pub status: Status,
    pub status_text: String,
    pub status_source: Option<String>,
    pub status_expires_at: Option<DateTime<Utc>>,
    /// When the change was committed (for delivery-latency measurements).
    pub committed_at: DateTime<Utc>,
    /// Whom the user hides from may have changed with it (their preference, or the
    /// workspace setting): a viewer it is hidden from then hears `offline` once; at any
    /// other change, nothing (`crate::privacy`).
    pub privacy_changed: bool,
}

impl StatusEvent {
    /// The event as a viewer the user hides from sees it: offline, nothing else.
    pub fn redacted(&self) -> StatusEvent {
        StatusEvent {
            status: Status::Offline,
            status_text: String::new(),
            status_source: None,
            status_expires_at: None,
            ..self.clone()
        }
    }

    pub fn of(user: &User, committed_at: DateTime<Utc>) -> StatusEvent {
        StatusEvent {
            uid: user.id.clone(),
            username: user.username.clone(),
            name: user.name.clone(),
            roles: user.roles.clone(),
            status: user.status,
            status_text: user.status_text.clone(),
            status_source: user.status_source.clone(),
            status_expires_at: user.status_expires_at,
            committed_at,
            privacy_changed: false,
        }
    }
}

/// A status event as published: the encoded frames are built once, by the first
/// subscriber that needs them, and shared by all the others.
#[derive(Debug)]
pub struct StatusFrames {
    pub event: StatusEvent,
    pub user_status_frame: OnceLock<Utf8Bytes>,
    pub user_presence_frame: OnceLock<Utf8Bytes>,
    /// `stream-notify-user` `<uid>/userData`, for the user themself.
    pub user_data_frame: OnceLock<Utf8Bytes>,
    /// Whom the user hides their status from (`crate::privacy`); None for nobody.
    pub hiding: Option<Arc<Hiding>>,
    /// The two status frames as those see them: `offline`, no text (built only when
    /// someone is hidden from).
    pub redacted_status_frame: OnceLock<Utf8Bytes>,
    pub redacted_presence_frame: OnceLock<Utf8Bytes>,
}

/// What goes over the bus. Always behind an `Arc`, so the size difference between
/// the variants costs nothing; boxing the status variant would cost an allocation
/// per status event.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Published {
    Status(StatusFrames),
    Notice(notice::Notice),
}

impl fanout::Routed for Published {
    fn destination(&self) -> fanout::Route<'_> {
        match self {
            Published::Status(s) => fanout::Route::Status(&s.event.uid),
            Published::Notice(_) => fanout::Route::Notice,
        }
    }
}

impl Published {
    /// The user whose record this is about, if it is about one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Published::Status(s) => Some(&s.event.uid),
            Published::Notice(n) => n.about.as_deref(),
        }
    }
}

#[derive(Clone, Default)]
pub struct Bus {
    fanout: Arc<fanout::Fanout<Published>>,
}

impl Bus {
    /// A bus whose fan-out counts into `counts` (the metrics').
    pub fn new(counts: fanout::Counts) -> Bus {
        Bus {
            fanout: Arc::new(fanout::Fanout::new(counts)),
        }
    }

    pub fn publish(&self, event: StatusEvent) {
        self.publish_hiding(event, None);
    }

    /// Publishes a status event of a user who hides it from `hiding`.
    pub fn publish_hiding(&self, event: StatusEvent, hiding: Option<Arc<Hiding>>) {
        self.fanout
            .publish(Arc::new(Published::Status(StatusFrames {
                event,
                user_status_frame: OnceLock::new(),
                user_presence_frame: OnceLock::new(),
                user_data_frame: OnceLock::new(),
                hiding,
                redacted_status_frame: OnceLock::new(),
                redacted_presence_frame: OnceLock::new(),
            })));
    }

    /// Publishes a notice (its frame already encoded).
    pub fn notify(&self, notice: notice::Notice) {
        self.fanout.publish(Arc::new(Published::Notice(notice)));
    }

    /// A new listener (a realtime connection) whose queue holds `capacity` changes.
    pub fn listen(&self, capacity: usize) -> fanout::Listener<Published> {
        self.fanout.listen(capacity)
    }

    /// The index of listeners: who wants what, and the counts.
    pub fn fanout(&self) -> &fanout::Fanout<Published> {
        &self.fanout
    }
}
