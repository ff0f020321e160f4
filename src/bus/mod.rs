//! Publishing committed changes to whoever listens (the realtime sessions): status
//! changes (the hot path: `Published::Status`, frames encoded lazily once and shared)
//! and the rarer notices derived from the other committed changes (`Notice`: custom
//! statuses, settings, permissions, roles, renames, deletions), encoded once by the
//! writer. In one process this is a tokio broadcast channel: every receiver sees every
//! event in commit order, and a receiver that falls too far behind learns it lagged
//! (the realtime layer then closes that slow connection instead of buffering without
//! bound).

pub mod nats;
pub mod notice;
pub mod replay;
pub mod seal;

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::model::{Status, User};
use crate::status::privacy::Hiding;

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

impl Published {
    /// The user whose record this is about, if it is about one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Published::Status(s) => Some(&s.event.uid),
            Published::Notice(n) => n.about.as_deref(),
        }
    }
}

#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Published>>,
}

impl Bus {
    /// `capacity` bounds how many events a slow receiver may fall behind before it lags.
    pub fn new(capacity: usize) -> Bus {
        let (tx, _) = broadcast::channel(capacity);
        Bus { tx }
    }

    pub fn publish(&self, event: StatusEvent) {
        self.publish_hiding(event, None);
    }

    /// Publishes a status event of a user who hides it from `hiding`.
    pub fn publish_hiding(&self, event: StatusEvent, hiding: Option<Arc<Hiding>>) {
        // No receivers is fine: nobody is listening.
        let _ = self.tx.send(Arc::new(Published::Status(StatusFrames {
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
        let _ = self.tx.send(Arc::new(Published::Notice(notice)));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }
}
