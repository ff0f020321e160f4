//! Calendar events (Rocket.Chat's `calendar-events.*`, `server/services/calendar`):
//! the rules of creating, importing (upsert by `externalId`), updating and deleting a
//! user's events, and the timer that makes an event's owner busy from its start to its
//! end when `Calendar_BusyStatus_Enabled` is on.
//!
//! The busy status is an `external` claim (`status::claims`) with the event's subject
//! as text, `calendar:<event id>` as its `statusId` and the end as its expiry. A manual
//! change replaces it (manual outranks external and never stashes), so the end finds
//! nothing to end and leaves the user's choice alone: Rocket.Chat's
//! `cancelUpcomingStatusChanges`. Each event records that its start and its end were
//! handled (`started`, `ended`) in the same transaction as the claim, so a start or an
//! end fires once, survives restarts (an overdue one applies at start-up), and in a
//! cluster only the lease holder fires them (it runs inside the expiry timer,
//! `crate::expiry`, through `run_as_leader`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::change;
use crate::error::Error;
use crate::model::{CalendarEvent, Source, Status};
use crate::settings;
use crate::state::{Core, Tx};
use crate::status::claims::{Claim, ClaimSource, Op};
use crate::status::rules;

/// The most events one user may keep; `create`/`import` of one more is refused.
pub const MAX_EVENTS_PER_USER: usize = 500;
/// The longest subject, in characters.
pub const SUBJECT_MAX: usize = 250;
/// The longest description, in characters.
pub const DESCRIPTION_MAX: usize = 10_000;
/// The longest `meetingUrl` and `externalId`, in characters.
pub const URL_MAX: usize = 2_048;
pub const EXTERNAL_ID_MAX: usize = 200;
/// The longest event, start to end: a week.
pub const LONGEST: chrono::Duration = chrono::Duration::days(7);
/// `reminderMinutesBeforeStart`: 0 to a week; Rocket.Chat's default is 5.
pub const REMINDER_MAX: i64 = 7 * 24 * 60;
pub const REMINDER_DEFAULT: i64 = 5;

/// What a client gives for an event (create, import, update).
#[derive(Clone, Debug, Default)]
pub struct Fields {
    pub start_time: String,
    pub end_time: Option<String>,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub meeting_url: Option<String>,
    pub reminder_minutes_before_start: Option<i64>,
    pub busy: Option<bool>,
}

fn invalid(code: &str, reason: &str) -> Error {
    Error::refused(code, reason)
}

/// An RFC 3339 time (Rocket.Chat's `new Date(string)` accepts more; statusd only this).
fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid("error-invalid-date", &format!("Invalid {what}")))
}

fn capped(s: Option<&str>, max: usize, what: &str) -> Result<Option<String>, Error> {
    match s {
        Some(v) if v.chars().count() > max => Err(invalid(
            "error-invalid-params",
            &format!("{what} must be at most {max} characters"),
        )),
        Some(v) => Ok(Some(v.to_string())),
        None => Ok(None),
    }
}

/// The checked times: start, optional end (after the start, at most [`LONGEST`]).
fn times(f: &Fields) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), Error> {
    let start = parse_time(&f.start_time, "startTime")?;
    let end = match f.end_time.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_time(s, "endTime")?),
        None => None,
    };
    if let Some(end) = end {
        if end <= start || end - start > LONGEST {
            return Err(invalid(
                "error-invalid-date",
                "endTime must be after startTime and at most 7 days later",
            ));
        }
    }
    Ok((start, end))
}

fn reminder(r: Option<i64>) -> Result<Option<i64>, Error> {
    match r {
        Some(m) if !(0..=REMINDER_MAX).contains(&m) => Err(invalid(
            "error-invalid-params",
            "reminderMinutesBeforeStart must be 0 to 10080",
        )),
        other => Ok(other),
    }
}

/// Checks `f` and makes the event it describes (a new id unless `id` is given).
fn build(
    uid: &str,
    id: String,
    external_id: Option<String>,
    f: &Fields,
    now: DateTime<Utc>,
) -> Result<CalendarEvent, Error> {
    let (start_time, end_time) = times(f)?;
    Ok(CalendarEvent {
        id,
        uid: uid.to_string(),
        start_time,
        end_time,
        subject: capped(f.subject.as_deref(), SUBJECT_MAX, "subject")?.unwrap_or_default(),
        description: capped(f.description.as_deref(), DESCRIPTION_MAX, "description")?
            .unwrap_or_default(),
        meeting_url: capped(f.meeting_url.as_deref(), URL_MAX, "meetingUrl")?,
        reminder_minutes_before_start: reminder(f.reminder_minutes_before_start)?
            .unwrap_or(REMINDER_DEFAULT),
        external_id,
        busy: f.busy,
        updated_at: now,
        started: false,
        ended: false,
    })
}

fn room_for_one_more(tx: &Tx, uid: &str) -> Result<(), Error> {
    if tx.calendar_events_of(uid).len() >= MAX_EVENTS_PER_USER {
        return Err(invalid(
            "error-too-many-events",
            "At most 500 calendar events per user",
        ));
    }
    Ok(())
}

/// `calendar-events.create`: the new event's id.
pub fn create(
    tx: &mut Tx,
    uid: &str,
    f: &Fields,
    external_id: Option<String>,
) -> Result<String, Error> {
    let external_id = capped(external_id.as_deref(), EXTERNAL_ID_MAX, "externalId")?;
    let event = build(uid, crate::auth::secrets::new_id(), external_id, f, tx.now)?;
    room_for_one_more(tx, uid)?;
    let id = event.id.clone();
    tx.put_calendar_event(&id.clone(), Some(event));
    Ok(id)
}

/// `calendar-events.import`: updates the user's event with this `externalId`, or
/// creates it. The event's id.
pub fn import(tx: &mut Tx, uid: &str, f: &Fields, external_id: &str) -> Result<String, Error> {
    let external_id = capped(Some(external_id), EXTERNAL_ID_MAX, "externalId")?;
    let existing = tx
        .calendar_events_of(uid)
        .into_iter()
        .find(|e| e.external_id == external_id);
    match existing {
        None => create(tx, uid, f, external_id),
        Some(old) => {
            replace(tx, &old, f)?;
            Ok(old.id.clone())
        }
    }
}

/// The user's own event (None when it is missing or another user's: the same answer).
pub fn own(tx: &Tx, uid: &str, id: &str) -> Option<Arc<CalendarEvent>> {
    tx.calendar_event(id).filter(|e| e.uid == uid)
}

/// `calendar-events.update` of the caller's own event.
pub fn update(tx: &mut Tx, uid: &str, id: &str, f: &Fields) -> Result<(), Error> {
    let old = own(tx, uid, id).ok_or_else(|| Error::Invalid("invalid-calendar-event".into()))?;
    replace(tx, &old, f)
}

/// Writes the new fields over `old`; the subject, description, meeting URL and
/// reminder stay when not given. New times reset what the timer did, as Rocket.Chat
/// re-plans the status change; the event's active claim, if any, ends.
fn replace(tx: &mut Tx, old: &CalendarEvent, f: &Fields) -> Result<(), Error> {
    let merged = Fields {
        subject: f.subject.clone().or_else(|| Some(old.subject.clone())),
        description: f
            .description
            .clone()
            .or_else(|| Some(old.description.clone())),
        meeting_url: f.meeting_url.clone().or_else(|| old.meeting_url.clone()),
        reminder_minutes_before_start: f
            .reminder_minutes_before_start
            .or(Some(old.reminder_minutes_before_start)),
        busy: f.busy.or(old.busy),
        ..f.clone()
    };
    let mut event = build(
        &old.uid,
        old.id.clone(),
        old.external_id.clone(),
        &merged,
        tx.now,
    )?;
    let retimed = event.start_time != old.start_time || event.end_time != old.end_time;
    let freed = event.busy == Some(false) && old.busy != Some(false);
    if retimed || freed {
        if old.started && !old.ended {
            end_claim(tx, old);
        }
    } else {
        event.started = old.started;
        event.ended = old.ended;
    }
    tx.put_calendar_event(&event.id.clone(), Some(event));
    Ok(())
}

/// `calendar-events.delete` of the caller's own event; its active claim ends.
pub fn delete(tx: &mut Tx, uid: &str, id: &str) -> Result<(), Error> {
    let old = own(tx, uid, id).ok_or_else(|| Error::Invalid("invalid-calendar-event".into()))?;
    if old.started && !old.ended {
        end_claim(tx, &old);
    }
    tx.put_calendar_event(id, None);
    Ok(())
}

/// Ends the event's claim if it is still there (active or waiting); a manual change
/// that replaced it is left alone.
fn end_claim(tx: &mut Tx, event: &CalendarEvent) {
    let _ = change::claim(
        tx,
        &event.uid,
        Op::End(Some(event.claim_id())),
        None,
        Source::External,
    );
}

/// Does the event make its owner busy (Rocket.Chat: `busy !== false`, with an end)?
fn busy(e: &CalendarEvent) -> bool {
    e.busy != Some(false) && e.end_time.is_some()
}

/// Handles what is due of event `id` at `tx.now`: at the start the busy claim (when
/// the setting is on, the event busy and not over), at the end its claim ends. Each
/// at most once: the event records it in the same transaction.
pub fn fire(tx: &mut Tx, id: &str) {
    let Some(old) = tx.calendar_event(id) else {
        return;
    };
    let now = tx.now;
    let mut event = (*old).clone();
    let end = event.end_time;
    if !event.started && event.start_time <= now {
        event.started = true;
        let live = end.is_some_and(|end| now < end);
        if busy(&event) && live && tx.value(&settings::CALENDAR_BUSY_STATUS) {
            let subject = rules::normalize_text(&event.subject);
            let claim = Claim {
                status_default: Status::Busy,
                source: ClaimSource::External,
                text: (!subject.is_empty()).then_some(subject),
                expires_at: end,
                id: Some(event.claim_id()),
            };
            let _ = change::claim(tx, &event.uid, Op::Set(claim), None, Source::External);
        } else {
            // Nothing to end: a free event, one with no end, one already over, or the
            // setting is off (then the event changes no status).
            event.ended = true;
        }
    }
    if event.started && !event.ended && end.is_some_and(|end| end <= now) {
        event.ended = true;
        end_claim(tx, &event);
    }
    if event != *old {
        tx.put_calendar_event(id, Some(event));
    }
}

/// Fires every due event; called by the expiry timer on the lease holder.
pub async fn apply_due(core: &Core) {
    let due = core
        .model
        .read()
        .due_calendar_events(Utc::now().timestamp_millis());
    if due.is_empty() {
        return;
    }
    let result = core
        .writer
        .run_as_leader(move |tx| {
            for id in &due {
                fire(tx, id);
            }
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!("calendar events failed, will retry: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fields(start: &str, end: Option<&str>) -> Fields {
        Fields {
            start_time: start.into(),
            end_time: end.map(Into::into),
            subject: Some("s".into()),
            description: Some(String::new()),
            ..Fields::default()
        }
    }

    #[test]
    fn times_are_rfc3339_the_end_after_the_start_within_a_week() {
        assert!(times(&fields(
            "2030-01-01T10:00:00Z",
            Some("2030-01-01T11:00:00Z")
        ))
        .is_ok());
        assert!(times(&fields("2030-01-01T10:00:00Z", None)).is_ok());
        for (start, end) in [
            ("2030-01-01T10:00:00Z", Some("2030-01-01T10:00:00Z")),
            ("2030-01-01T10:00:00Z", Some("2030-01-01T09:00:00Z")),
            ("2030-01-01T10:00:00Z", Some("2030-01-08T10:00:01Z")),
            ("tomorrow", None),
            ("2030-01-01T10:00:00Z", Some("later")),
        ] {
            let e = times(&fields(start, end)).unwrap_err();
            assert_eq!(e.code(), Some("error-invalid-date"), "{start} {end:?}");
        }
    }

    #[test]
    fn fields_are_capped() {
        let mut f = fields("2030-01-01T10:00:00Z", None);
        f.subject = Some("x".repeat(SUBJECT_MAX));
        assert!(build("u", "e".into(), None, &f, Utc::now()).is_ok());
        f.subject = Some("x".repeat(SUBJECT_MAX + 1));
        assert!(build("u", "e".into(), None, &f, Utc::now()).is_err());
        let mut f = fields("2030-01-01T10:00:00Z", None);
        f.reminder_minutes_before_start = Some(-1);
        assert!(build("u", "e".into(), None, &f, Utc::now()).is_err());
    }

    #[test]
    fn the_model_lists_unhandled_starts_and_ends_only() {
        use crate::record::Change;
        use crate::state::Model;
        let ms = |s: &str| t(s).timestamp_millis();
        let now = t("2030-01-01T10:00:00Z");
        let f = fields("2030-01-01T09:59:00Z", Some("2030-01-01T10:30:00Z"));
        let mut e = build("u", "a".into(), None, &f, now).unwrap();
        let mut m = Model::default();
        m.apply(Change::PutCalendarEvent(Arc::new(e.clone())));
        assert_eq!(m.due_calendar_events(ms("2030-01-01T10:00:00Z")), vec!["a"]);
        e.started = true;
        m.apply(Change::PutCalendarEvent(Arc::new(e.clone())));
        assert!(m.due_calendar_events(ms("2030-01-01T10:00:00Z")).is_empty());
        assert_eq!(m.due_calendar_events(ms("2030-01-01T10:30:00Z")), vec!["a"]);
        e.ended = true;
        m.apply(Change::PutCalendarEvent(Arc::new(e)));
        assert!(m.calendar_due.is_empty(), "handled");
        let later = build(
            "u",
            "b".into(),
            None,
            &fields("2030-01-01T10:00:01Z", None),
            now,
        )
        .unwrap();
        m.apply(Change::PutCalendarEvent(Arc::new(later)));
        assert!(
            m.due_calendar_events(ms("2030-01-01T10:00:00Z")).is_empty(),
            "not yet"
        );
        m.apply(Change::DeleteCalendarEvent("b".into()));
        assert!(m.calendar_due.is_empty(), "deleted");
    }
}
