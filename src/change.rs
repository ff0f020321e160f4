//! The one path of every status change. REST, DDP, connection events and the expiry
//! timer all end here, inside a writer job: the rules of `status::presence` decide
//! what the user shows, the writer commits it and publishes the event.

use chrono::{DateTime, Utc};

use crate::auth::secrets::new_id;
use crate::error::Error;
use crate::model::{ConnStatus, HistoryEntry, PreviousState, Source, Status, User};
use crate::state::Tx;
use crate::status::presence;

/// A validated manual status change (users.setStatus, DDP setUserStatus and friends).
#[derive(Debug, Clone, Default)]
pub struct StatusChange {
    /// The new chosen status, if one was asked for.
    pub status: Option<Status>,
    /// The new status text, already normalised; `Some("")` clears it.
    pub text: Option<String>,
    /// When the change reverts to the previous status and text.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who asked for it (recorded in the history).
    pub actor: Option<String>,
    pub source: Source,
}

/// Records `before` → `after` in the status history when what the user shows or chose
/// changed. Connection churn that changes nothing visible is not recorded. Public for
/// the importer, which writes whole users but records their status changes here too.
pub fn record(tx: &mut Tx, before: &User, after: &User, actor: Option<String>, source: Source) {
    if before.status == after.status
        && before.status_text == after.status_text
        && before.status_default == after.status_default
    {
        return;
    }
    tx.record(HistoryEntry {
        id: new_id(),
        user_id: after.id.clone(),
        actor_id: actor,
        old_status: before.status,
        new_status: after.status,
        old_text: before.status_text.clone(),
        new_text: after.status_text.clone(),
        source,
        at: tx.now,
    });
}

/// The displayed status of `user` given its live connections.
fn recompute(user: &mut User, conns: &[ConnStatus], chosen_now: bool) {
    user.status_connection = presence::connection_status(conns.iter().copied());
    user.status = if !conns.is_empty() {
        presence::displayed(user.status_connection, user.status_default)
    } else if chosen_now {
        presence::displayed_without_connections(user.status_default)
    } else {
        user.status
    };
}

/// Applies a manual change to the user `target_id`. Returns the updated user.
pub fn set_status(tx: &mut Tx, target_id: &str, change: StatusChange) -> Result<User, Error> {
    let current = tx.user(target_id).ok_or_else(Error::invalid_user)?;
    let mut user = (*current).clone();
    if let Some(expires) = change.expires_at {
        // Keep the last permanent choice: chaining temporary statuses restores it.
        if user.status_expires_at.is_none() {
            user.previous_state = Some(PreviousState {
                status_default: user.status_default,
                status_text: user.status_text.clone(),
            });
        }
        user.status_expires_at = Some(expires);
    } else {
        user.status_expires_at = None;
        user.previous_state = None;
    }
    if let Some(text) = change.text {
        user.status_text = text;
    }
    if let Some(status) = change.status {
        user.status_default = status;
    }
    user.status_source = Some("manual".into());
    user.updated_at = tx.now;
    let conns = tx.connections(target_id);
    recompute(&mut user, &conns, change.status.is_some());
    record(tx, &current, &user, change.actor, change.source);
    tx.put_user(user.clone());
    Ok(user)
}

/// Sets only the status text of `target_id` (users.update's `statusText`, Rocket.Chat's
/// setStatusText): the chosen status and any expiry stay; recorded and published like
/// every status change. `text` is already normalised.
pub fn set_text(
    tx: &mut Tx,
    target_id: &str,
    text: String,
    actor: Option<String>,
    source: Source,
) -> Result<User, Error> {
    let current = tx.user(target_id).ok_or_else(Error::invalid_user)?;
    let mut user = (*current).clone();
    user.status_text = text;
    user.updated_at = tx.now;
    record(tx, &current, &user, actor, source);
    tx.put_user(user.clone());
    Ok(user)
}

/// Restores the status saved before a temporary one, if `user_id`'s expiry is due.
/// Returns whether anything changed.
pub fn expire(tx: &mut Tx, user_id: &str) -> bool {
    let Some(current) = tx.user(user_id) else {
        return false;
    };
    match current.status_expires_at {
        Some(at) if at <= tx.now => {}
        _ => return false,
    }
    let mut user = (*current).clone();
    let previous = user.previous_state.take().unwrap_or(PreviousState {
        status_default: Status::Online,
        status_text: String::new(),
    });
    user.status_default = previous.status_default;
    user.status_text = previous.status_text;
    user.status_expires_at = None;
    user.status_source = None;
    user.updated_at = tx.now;
    let conns = tx.connections(user_id);
    recompute(&mut user, &conns, true);
    record(tx, &current, &user, None, Source::Expiry);
    tx.put_user(user);
    true
}

/// A realtime connection of `user_id` appeared, changed its own status (online/away),
/// or went away (`None`). Recomputes what the user shows.
pub fn connection(tx: &mut Tx, user_id: &str, conn_id: &str, status: Option<ConnStatus>) {
    tx.put_conn(user_id, conn_id, status);
    let Some(current) = tx.user(user_id) else {
        return;
    };
    let mut user = (*current).clone();
    let conns = tx.connections(user_id);
    recompute(&mut user, &conns, false);
    if conns.is_empty() {
        user.status = Status::Offline;
    }
    if user.status != current.status || user.status_connection != current.status_connection {
        user.updated_at = tx.now;
        if user.status != current.status {
            record(
                tx,
                &current,
                &user,
                Some(user_id.to_string()),
                Source::Connection,
            );
        }
        tx.put_user(user);
    }
}
