//! The records statusd keeps and the changes to them: the one vocabulary the in-memory
//! state (`state`) and the durable store (`store`) share, below both of them, so
//! neither imports the other's types. A change names its kind of record in its
//! variant, so a key of one kind can never carry a value of another.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::model::{
    CalendarEvent, ConnStatus, CustomStatus, Delivery, HistoryEntry, Token, User, Webhook,
};

/// Everything the server keeps, as a store loads it.
#[derive(Default)]
pub struct Snapshot {
    pub users: Vec<User>,
    pub tokens: Vec<Token>,
    pub settings: Vec<(String, Json)>,
    pub permissions: Vec<(String, Vec<String>)>,
    pub custom_statuses: Vec<CustomStatus>,
    pub calendar_events: Vec<CalendarEvent>,
    /// Live connections of running instances (user id, connection id, status); an
    /// embedded store keeps none, since connections die with the process.
    pub conns: Vec<(String, String, ConnStatus)>,
    /// Webhook endpoints (without their secrets).
    pub webhooks: Vec<Webhook>,
}

/// One write. Every change in the system is a list of these, committed in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    PutUser(Arc<User>),
    /// By user id.
    DeleteUser(String),
    PutToken(Arc<Token>),
    /// By the token's hash.
    DeleteToken(String),
    PutSetting(String, Json),
    DeleteSetting(String),
    /// A permission and the roles that hold it.
    PutPermission(String, Arc<Vec<String>>),
    DeletePermission(String),
    /// A live realtime connection: user id, connection id, what it reports.
    PutConn(String, String, ConnStatus),
    /// User id, connection id.
    DeleteConn(String, String),
    PutCustomStatus(Arc<CustomStatus>),
    /// By custom status id.
    DeleteCustomStatus(String),
    PutCalendarEvent(Arc<CalendarEvent>),
    /// By event id.
    DeleteCalendarEvent(String),
    /// An appended status-history entry (the store keeps it; the model does not).
    AddHistory(Arc<HistoryEntry>),
    PutWebhook(Arc<Webhook>),
    /// By endpoint id; its pending deliveries go with it.
    DeleteWebhook(String),
    /// An endpoint's signing secret (endpoint id, `whsec_…`): kept by the store only,
    /// never in the model, never on the cluster bus.
    PutWebhookSecret(String, String),
    /// A delivery appended to the outbox (the store keeps it; the model does not),
    /// derived by the writer from the batch it commits with (`state::outbox`).
    AddDelivery(Arc<Delivery>),
}

impl Change {
    /// The user a user or connection change is about.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Change::PutUser(u) => Some(&u.id),
            Change::DeleteUser(id) => Some(id),
            Change::PutConn(user, _, _) | Change::DeleteConn(user, _) => Some(user),
            _ => None,
        }
    }
}
