//! The one path of every status change. REST, DDP, connection events and the expiry
//! timer all end here, inside a writer job: the rules of `status::presence` decide
//! what the user shows, the writer commits it and publishes the event.

use chrono::{DateTime, Utc};

use crate::auth::secrets::new_id;
use crate::error::Error;
use crate::model::{ConnStatus, HistoryEntry, Source, Status, User, UserKind};
use crate::state::Tx;
use crate::status::claims::{self, Claim, ClaimSource, ClaimState, Op, Outcome};
use crate::status::{dnd, presence};

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

/// The claim fields of `user` (`status::claims`).
fn claim_state(user: &User) -> ClaimState {
    ClaimState {
        status_default: user.status_default,
        status_text: user.status_text.clone(),
        source: user.status_source.clone(),
        expires_at: user.status_expires_at,
        id: user.status_id.clone(),
        previous: user.previous_state.clone(),
    }
}

fn put_claim_state(user: &mut User, s: ClaimState) {
    user.status_default = s.status_default;
    user.status_text = s.status_text;
    user.status_source = s.source;
    user.status_expires_at = s.expires_at;
    user.status_id = s.id;
    user.previous_state = s.previous;
}

/// Applies a manual change to the user `target_id`: a manual claim
/// (`status::claims`). Returns the updated user.
pub fn set_status(tx: &mut Tx, target_id: &str, change: StatusChange) -> Result<User, Error> {
    // A manual change during a do-not-disturb window ends the schedule's claim first:
    // the user's choice wins until the next window opens (`status::dnd`).
    if tx
        .user(target_id)
        .is_some_and(|u| u.status_id.as_deref() == Some(dnd::CLAIM_ID))
    {
        claim(
            tx,
            target_id,
            Op::End(Some(dnd::CLAIM_ID.to_string())),
            change.actor.clone(),
            Source::Internal,
        )?;
    }
    let current = tx.user(target_id).ok_or_else(Error::invalid_user)?;
    let mut user = (*current).clone();
    let claim = Claim {
        // A message-only change keeps the chosen status.
        status_default: change.status.unwrap_or(user.status_default),
        source: ClaimSource::Manual,
        text: change.text,
        expires_at: change.expires_at,
        id: None,
    };
    let op = Op::Set(claim);
    let (next, outcome) = claims::resolve(&claim_state(&user), &op, tx.now);
    if !outcome.changed() {
        return Ok(user);
    }
    put_claim_state(&mut user, next);
    user.updated_at = tx.now;
    let conns = tx.connections(target_id);
    recompute(
        &mut user,
        &conns,
        change.status.is_some() && outcome.chosen_changed(),
    );
    record(tx, &current, &user, change.actor, change.source);
    // A manual choice displaces an integration's claim or drops the one waiting.
    tx.put_user_after_claim(user.clone(), claims::ending_reason(&op));
    Ok(user)
}

/// A claim operation of source `internal` or `external` (`statusd.claims.*`) on
/// `target_id`. With no live connection the user shows what Rocket.Chat's engine
/// decides (`claims::displayed_disconnected`). Returns the user and what happened; a
/// refused or unmatched operation writes nothing.
pub fn claim(
    tx: &mut Tx,
    target_id: &str,
    op: Op,
    actor: Option<String>,
    source: Source,
) -> Result<(User, Outcome), Error> {
    let current = tx.user(target_id).ok_or_else(Error::invalid_user)?;
    let mut user = (*current).clone();
    let (next, outcome) = claims::resolve(&claim_state(&user), &op, tx.now);
    if !outcome.changed() {
        return Ok((user, outcome));
    }
    put_claim_state(&mut user, next);
    user.updated_at = tx.now;
    if outcome.chosen_changed() {
        let conns = tx.connections(target_id);
        user.status_connection = presence::connection_status(conns.iter().copied());
        user.status = if conns.is_empty() {
            let service =
                user.kind == UserKind::Bot || user.has_role("bot") || user.has_role("app");
            claims::displayed_disconnected(&op, service, user.status_default)
        } else {
            presence::displayed(user.status_connection, user.status_default)
        };
    }
    record(tx, &current, &user, actor, source);
    tx.put_user_after_claim(user.clone(), claims::ending_reason(&op));
    Ok((user, outcome))
}

/// Stores `schedule` as `user_id`'s do-not-disturb schedule (None removes it, ending
/// the schedule's claim if it is active or waiting). The timer (`dnd_step`) opens and
/// closes the windows. Returns the updated user.
pub fn dnd_put(
    tx: &mut Tx,
    user_id: &str,
    schedule: Option<&dnd::Schedule>,
) -> Result<User, Error> {
    let current = tx.user(user_id).ok_or_else(Error::invalid_user)?;
    let mut user = (*current).clone();
    let applied = current
        .dnd
        .as_deref()
        .and_then(|j| serde_json::from_str::<dnd::Schedule>(j).ok())
        .and_then(|s| s.applied);
    user.dnd = match schedule {
        Some(s) => {
            let mut s = s.clone();
            s.applied = applied;
            Some(serde_json::to_string(&s).map_err(|_| Error::invalid_user())?)
        }
        None => None,
    };
    tx.put_user(user);
    if schedule.is_none() && applied.is_some() {
        claim(
            tx,
            user_id,
            Op::End(Some(dnd::CLAIM_ID.to_string())),
            None,
            Source::Internal,
        )?;
    }
    tx.user(user_id)
        .map(|u| (*u).clone())
        .ok_or_else(Error::invalid_user)
}

/// The do-not-disturb timer's step for `user_id` at the transaction's time: opens a
/// window (an `internal` claim `busy` with the schedule's text and id `dnd::CLAIM_ID`)
/// or closes it (ends that claim; what waited comes back). Returns whether anything
/// changed.
pub fn dnd_step(tx: &mut Tx, user_id: &str) -> bool {
    let Some(current) = tx.user(user_id) else {
        return false;
    };
    let Some(mut sched) = current
        .dnd
        .as_deref()
        .and_then(|j| serde_json::from_str::<dnd::Schedule>(j).ok())
    else {
        return false;
    };
    let step = dnd::step(&sched, tx.now);
    let op = match step {
        dnd::Step::Nothing => return false,
        dnd::Step::Start(at) => {
            sched.applied = Some(at);
            Op::Set(Claim {
                status_default: Status::Busy,
                source: ClaimSource::Internal,
                text: Some(sched.text.clone()),
                expires_at: None,
                id: Some(dnd::CLAIM_ID.to_string()),
            })
        }
        dnd::Step::End => {
            sched.applied = None;
            Op::End(Some(dnd::CLAIM_ID.to_string()))
        }
    };
    let mut user = (*current).clone();
    user.dnd = serde_json::to_string(&sched).ok();
    tx.put_user(user);
    // A window that opens again (a new schedule or zone) replaces the old claim rather
    // than stacking on it.
    if matches!(step, dnd::Step::Start(_)) {
        let _ = claim(
            tx,
            user_id,
            Op::End(Some(dnd::CLAIM_ID.to_string())),
            None,
            Source::Internal,
        );
    }
    let _ = claim(tx, user_id, op, None, Source::Internal);
    true
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

/// Restores the status saved before a temporary one (or the claim waiting), if
/// `user_id`'s expiry is due: Rocket.Chat's `endActive` without an id.
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
    // Rocket.Chat's expiry job: end the active claim (no id); what waited comes back.
    let (next, _) = claims::resolve(&claim_state(&user), &Op::End(None), tx.now);
    put_claim_state(&mut user, next);
    user.updated_at = tx.now;
    let conns = tx.connections(user_id);
    recompute(&mut user, &conns, true);
    record(tx, &current, &user, None, Source::Expiry);
    // The claim that ended had expired: `state::outbox` tells it so by its `expiresAt`.
    tx.put_user_after_claim(user, claims::ending_reason(&Op::End(None)));
    true
}

/// How often, at most, a visibly connected user's last seen is written while their
/// connections report activity: a burst of connection events costs one write a minute,
/// not one each. The last connection going away always writes it.
pub const LAST_SEEN_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// The last seen `user` gets from a connection event at `now`, if it is to be written:
/// `visible_before` / `visible_after` are whether the user showed a status other than
/// offline before and after the event, `gone` whether no live connection is left.
/// An invisible user's last seen never moves (it would give them away).
pub fn last_seen_update(
    last_seen: Option<DateTime<Utc>>,
    visible_before: bool,
    visible_after: bool,
    gone: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if gone {
        return visible_before.then_some(now);
    }
    let due = last_seen.is_none_or(|t| now - t >= LAST_SEEN_EVERY || t > now);
    (visible_after && due).then_some(now)
}

/// A realtime connection of `user_id` appeared, changed its own status (online/away),
/// or went away (`None`). Recomputes what the user shows, and their last seen.
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
    let seen = last_seen_update(
        user.last_seen,
        current.status != Status::Offline,
        user.status != Status::Offline,
        conns.is_empty(),
        tx.now,
    );
    if let Some(at) = seen {
        user.last_seen = Some(at);
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
    } else if seen.is_some() {
        tx.put_user(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn the_last_connection_going_away_records_last_seen_unless_invisible() {
        assert_eq!(
            last_seen_update(Some(t(0)), true, false, true, t(5)),
            Some(t(5))
        );
        assert_eq!(last_seen_update(None, false, false, true, t(5)), None);
    }

    #[test]
    fn activity_writes_last_seen_at_most_once_a_minute() {
        assert_eq!(last_seen_update(None, false, true, false, t(0)), Some(t(0)));
        assert_eq!(last_seen_update(Some(t(0)), true, true, false, t(59)), None);
        assert_eq!(
            last_seen_update(Some(t(0)), true, true, false, t(60)),
            Some(t(60))
        );
        // invisible while connected: never moves
        assert_eq!(
            last_seen_update(Some(t(0)), false, false, false, t(600)),
            None
        );
        // a clock that went back does not freeze it
        assert_eq!(
            last_seen_update(Some(t(100)), true, true, false, t(0)),
            Some(t(0))
        );
    }
}
