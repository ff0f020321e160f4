//! The data the server keeps: users, tokens and their statuses.
//! Field names follow Rocket.Chat's user document so JSON can be built directly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user status as Rocket.Chat names it. `Offline` chosen as a default means "invisible".
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize, Hash, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Online,
    Away,
    Busy,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Away => "away",
            Status::Busy => "busy",
            Status::Offline => "offline",
        }
    }

    /// The numeric code used on the realtime streams (Rocket.Chat's STATUS_MAP).
    pub fn code(self) -> u8 {
        match self {
            Status::Offline => 0,
            Status::Online => 1,
            Status::Away => 2,
            Status::Busy => 3,
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "online" => Some(Status::Online),
            "away" => Some(Status::Away),
            "busy" => Some(Status::Busy),
            "offline" => Some(Status::Offline),
            _ => None,
        }
    }
}

/// What a single realtime connection reports for itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnStatus {
    Online,
    Away,
}

/// Whether an account is a person's or a bot's (Rocket.Chat's `type`). Stored and sent
/// as `user` / `bot`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserKind {
    #[default]
    User,
    Bot,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::User => "user",
            UserKind::Bot => "bot",
        }
    }

    /// The kind a store row or a client names: `bot`, or else a person.
    pub fn parse(s: &str) -> UserKind {
        match s {
            "bot" => UserKind::Bot,
            _ => UserKind::User,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, ToSchema)]
pub struct Email {
    pub address: String,
    pub verified: bool,
}

/// Rocket.Chat's `previousState`, the single slot of `status::claims`: the chosen
/// status saved when a temporary status or a higher claim took over (restored when
/// that ends), or a lower claim waiting for the active one to end. Kept as JSON in
/// the stores; the claim fields are absent in records written before claims.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct PreviousState {
    pub status_default: Status,
    pub status_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_id: Option<String>,
}

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub name: String,
    /// What the user says about themselves (Rocket.Chat's `bio`); empty when unset.
    #[serde(default)]
    pub bio: String,
    /// Rocket.Chat's `nickname`; empty when unset.
    #[serde(default)]
    pub nickname: String,
    /// The user's own preferences (Rocket.Chat's `settings.preferences`) as they were
    /// set, checked and bounded by `accounts::preferences`; empty when none were.
    #[serde(default)]
    pub preferences: serde_json::Map<String, serde_json::Value>,
    pub emails: Vec<Email>,
    /// bcrypt of the lowercase hex SHA-256 of the password; None for bots without a password.
    pub password_hash: Option<String>,
    pub roles: Vec<String>,
    pub active: bool,
    pub kind: UserKind,
    /// The displayed status (computed, see `status::presence`).
    pub status: Status,
    /// The chosen status.
    pub status_default: Status,
    /// The aggregate of the live realtime connections.
    pub status_connection: Status,
    pub status_text: String,
    /// Which claim source set the chosen status (`status::claims`): `internal`,
    /// `manual`, `external`; None before any (or after a reset).
    pub status_source: Option<String>,
    pub status_expires_at: Option<DateTime<Utc>>,
    /// The id the active claim was set with (an integration's own), to end it by.
    #[serde(default)]
    pub status_id: Option<String>,
    pub previous_state: Option<PreviousState>,
    /// The do-not-disturb schedule (a statusd extension, `status::dnd::Schedule` as
    /// JSON); None when the user has none.
    #[serde(default)]
    pub dnd: Option<String>,
    pub utc_offset: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    /// When the user was last seen present (a statusd extension): set when their last
    /// live connection goes away while they showed a status other than offline, and
    /// while they are visibly connected at most once a minute (`change::LAST_SEEN_EVERY`).
    /// Never moved while they are invisible, so it does not give them away.
    #[serde(default)]
    pub last_seen: Option<DateTime<Utc>>,
}

impl User {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn first_email(&self) -> Option<&str> {
        self.emails.first().map(|e| e.address.as_str())
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum TokenKind {
    Login,
    /// A personal access token: named, never expires.
    Personal {
        name: String,
        last_part: String,
        /// Stored and shown as given (Rocket.Chat's `bypassTwoFactor`); statusd has no
        /// two-factor step for it to bypass.
        #[serde(default)]
        bypass_two_factor: bool,
    },
}

/// A login or personal access token. Only the hash of the secret is ever kept.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Token {
    /// base64(sha256(secret)), Meteor's `hashedToken`.
    pub hashed: String,
    pub user_id: String,
    pub kind: TokenKind,
    pub created_at: DateTime<Utc>,
}

/// Formats a time as Rocket.Chat does in JSON (`2024-01-02T03:04:05.678Z`).
pub fn iso(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Where a status change came from (recorded in the status history).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Rest,
    Ddp,
    Expiry,
    Connection,
    /// `statusd import rocketchat`.
    Import,
    /// A claim of source `external` (`statusd.claims.*`).
    External,
    /// A claim of source `internal` (the server's own uses).
    Internal,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rest => "rest",
            Source::Ddp => "ddp",
            Source::Expiry => "expiry",
            Source::Connection => "connection",
            Source::Import => "import",
            Source::External => "external",
            Source::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Source {
        match s {
            "ddp" => Source::Ddp,
            "expiry" => Source::Expiry,
            "connection" => Source::Connection,
            "import" => Source::Import,
            "external" => Source::External,
            "internal" => Source::Internal,
            _ => Source::Rest,
        }
    }
}

/// One committed status change, as the status history keeps it.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: String,
    pub user_id: String,
    /// Who made the change; None for the system (expiry).
    pub actor_id: Option<String>,
    pub old_status: Status,
    pub new_status: Status,
    pub old_text: String,
    pub new_text: String,
    pub source: Source,
    pub at: DateTime<Utc>,
}

/// A workspace-defined status (Rocket.Chat's custom user statuses): a name shown to
/// users, backed by one of the four status types.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CustomStatus {
    pub id: String,
    pub name: String,
    pub status_type: Status,
    pub updated_at: DateTime<Utc>,
}

/// The events a webhook endpoint can ask for (`state::outbox` derives them).
pub const WEBHOOK_EVENTS: &[&str] = &[
    "status.changed",
    "status-text.changed",
    "user.created",
    "user.deactivated",
    "claim.set",
    "claim.ended",
];

/// A webhook endpoint an admin registered: where to send which events about whom. Its
/// signing secret is not here: it is written once (`Change::PutWebhookSecret`), kept
/// only by the store, and read back only by the delivery worker.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Some of `WEBHOOK_EVENTS`.
    pub events: Vec<String>,
    /// Only about these users (ids); empty: everyone.
    pub user_ids: Vec<String>,
    /// Only about users holding one of these roles; empty: everyone.
    pub roles: Vec<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One delivery in the outbox: committed with the change it tells of, sent (and
/// retried) by the delivery worker. `id` is the stable `webhook-id`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub user_id: String,
    pub event: String,
    /// The JSON body sent, exactly as signed.
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

/// A calendar event (Rocket.Chat's `ICalendarEvent`, `calendar-events.*`): its owner
/// (`uid`) is busy from `start_time` to `end_time` when it is busy and the setting
/// `Calendar_BusyStatus_Enabled` is on. The store keeps it as one JSON body.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CalendarEvent {
    pub id: String,
    pub uid: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub subject: String,
    pub description: String,
    pub meeting_url: Option<String>,
    pub reminder_minutes_before_start: i64,
    pub external_id: Option<String>,
    /// Absent: busy (Rocket.Chat treats only `false` as free).
    pub busy: Option<bool>,
    pub updated_at: DateTime<Utc>,
    /// The start has been handled (the busy claim set, or skipped): at most once.
    #[serde(default)]
    pub started: bool,
    /// The end has been handled (the claim ended if it was still the event's).
    #[serde(default)]
    pub ended: bool,
}

impl CalendarEvent {
    /// When the timer next has something to do with this event (milliseconds): its
    /// start until that is handled, then its end (an event without one ends with its
    /// start); None once both are.
    pub fn next_due_ms(&self) -> Option<i64> {
        if !self.started {
            Some(self.start_time.timestamp_millis())
        } else if !self.ended {
            Some(self.end_time.unwrap_or(self.start_time).timestamp_millis())
        } else {
            None
        }
    }

    /// The `statusId` of the claim this event sets.
    pub fn claim_id(&self) -> String {
        format!("calendar:{}", self.id)
    }
}

/// A calendar a user connected by URL (`statusd.calendars.*`, `crate::calsync`): an ICS
/// feed or a CalDAV collection whose events statusd keeps as the user's calendar events.
/// The password, if any, is sealed (`calsync::seal`) and never leaves the server. The
/// store keeps it as one JSON body, outside the model: only the sync worker and the
/// routes read it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ConnectedCalendar {
    pub id: String,
    /// The owner (the user whose events these are).
    pub uid: String,
    /// `ics` or `caldav`.
    pub kind: String,
    pub url: String,
    pub username: Option<String>,
    /// The sealed password.
    pub password: Option<String>,
    pub include_free: bool,
    pub include_all_day: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The last sync that reached the calendar, and what it found.
    pub synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The events it holds now.
    #[serde(default)]
    pub events: usize,
}
