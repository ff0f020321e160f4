//! Calendars connected by URL (issue 18, "Calendars"): a user (or an admin for them)
//! connects an ICS feed or a CalDAV collection, and statusd keeps its events as the
//! user's calendar events (`crate::calendar`), so the busy claim of
//! `Calendar_BusyStatus_Enabled` applies to them unchanged: a busy instance makes its
//! owner busy from its start to its end, a manual change wins, starts and ends fire
//! once per cluster and survive restarts.
//!
//! The sync: every `CALENDAR_SYNC_SECS` the worker (on the cluster leader only, like
//! the webhook worker) fetches each calendar (`fetch`: a conditional GET for a feed,
//! the ctag then a time-range REPORT for CalDAV), expands it over now − 1 day .. now +
//! 14 days (`expand`) and makes the user's events of that calendar match: one event per
//! instance, `externalId` `cal:<calendar>:<start ms>:<UID>`, so an edited instance (a
//! new start) is a new event and the old one is deleted, which ends its claim; a
//! deleted event's instances are deleted the same way. An instance whose start, end
//! and texts did not change is left alone (its start or end is not fired again).
//! Unchanged content (304, same ctag) is still expanded again from the copy kept in
//! memory, so a recurring event's next instances enter the window as time passes; a
//! restart, or a new leader, fetches everything once.
//!
//! Limits: 5 calendars per user, URLs of 2 048 characters, 5 MiB and 15 s per
//! response, 100 instances per calendar (the user's 500 events are the hard cap).
//! Passwords are sealed (`seal`), never answered, never logged.

pub mod expand;
pub mod fetch;
pub mod seal;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::calendar::{self, Fields};
use crate::cluster::Leadership;
use crate::error::{Error, Result};
use crate::model::{iso, CalendarEvent, ConnectedCalendar};
use crate::state::{Core, Tx};

/// The most calendars one user connects.
pub const MAX_PER_USER: usize = 5;
/// The longest URL.
pub const URL_MAX: usize = 2048;
pub const USERNAME_MAX: usize = 256;
pub const PASSWORD_MAX: usize = 1024;
/// The most instances one calendar adds (earliest first).
pub const MAX_INSTANCES: usize = 100;
/// The window expanded: from a day ago (an instance under way) to two weeks ahead.
const BEHIND: chrono::Duration = chrono::Duration::days(1);
const AHEAD: chrono::Duration = chrono::Duration::days(14);
/// Fetched (CalDAV) and expanded over a wider window than is applied, so what is kept
/// serves the moving window for two weeks before a full fetch is due.
const FETCH_AHEAD: chrono::Duration = chrono::Duration::days(28);
/// The most instances kept in memory per calendar, over the wider window.
const KEPT: usize = 4 * MAX_INSTANCES;
/// The most calendars fetched at once.
const PARALLEL: usize = 8;
/// How stale `syncedAt` may get while every sync finds the same.
const STAMP_EVERY: chrono::Duration = chrono::Duration::hours(1);
/// The most of an error kept for the list.
const MAX_ERROR: usize = 300;

fn refused(code: &str, reason: &str) -> Error {
    Error::refused(code, reason)
}

pub fn not_found() -> Error {
    refused("error-calendar-not-found", "No such calendar")
}

/// What the last fetch of a calendar found, kept in memory for the next one: the
/// instances expanded then over a wider window than is applied (not the documents: a
/// feed may be 5 MiB, its instances are bounded), so an unchanged calendar (304, the
/// same ctag) costs no parsing and the window can move on for two weeks.
#[derive(Default)]
struct Cached {
    validators: Option<fetch::Validators>,
    instances: Vec<expand::Instance>,
    /// The instances hold everything up to here: while now + 14 days is before it, a
    /// conditional fetch is enough.
    horizon: Option<DateTime<Utc>>,
    /// The calendar's `updated_at` when fetched: a change of URL, login or options
    /// (`update`, on any instance) drops what is kept.
    fetched_with: Option<DateTime<Utc>>,
}

/// The calendars' shared parts: the HTTP client, the key, the kept copies.
pub struct Service {
    key: seal::KeySource,
    pub allow_private: bool,
    pub interval: Duration,
    client: Option<reqwest::Client>,
    cache: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cached>>>>,
    /// Wakes the worker: a calendar was connected or changed.
    wake: tokio::sync::Notify,
}

impl Service {
    pub fn new(key: seal::KeySource, allow_private: bool, interval: Duration) -> Service {
        let client = match fetch::client(allow_private) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("calendars: no HTTP client, nothing will be synced: {e}");
                None
            }
        };
        Service {
            key,
            allow_private,
            interval: interval.max(Duration::from_secs(1)),
            client,
            cache: Default::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn slot(&self, id: &str) -> Arc<tokio::sync::Mutex<Cached>> {
        self.cache.lock().entry(id.to_string()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        self.cache.lock().remove(id);
    }

    /// Has the worker look at the calendars now (on the leader, a new or changed one is
    /// fetched at once; elsewhere within a tick of the leader's list).
    fn nudge(&self) {
        self.wake.notify_one();
    }
}

/// What a client gives to connect or change a calendar.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub kind: Option<String>,
    pub url: Option<String>,
    pub username: Option<String>,
    /// Some(""): remove the password.
    pub password: Option<String>,
    pub include_free: Option<bool>,
    pub include_all_day: Option<bool>,
}

/// `ics` (the default) or `caldav`.
fn check_kind(kind: Option<&str>) -> Result<String> {
    match kind.unwrap_or("ics") {
        k @ ("ics" | "caldav") => Ok(k.to_string()),
        _ => Err(refused(
            "error-invalid-calendar-kind",
            "kind must be ics or caldav",
        )),
    }
}

/// An http(s) URL (`webcal://` is https) with a host, no credentials, at most
/// [`URL_MAX`] characters, and not a private literal address unless allowed.
pub fn check_url(url: &str, allow_private: bool) -> Result<String> {
    let bad = |why: &str| refused("error-invalid-calendar-url", why);
    let url = url.trim();
    if url.is_empty() || url.chars().count() > URL_MAX {
        return Err(bad(&format!("The URL must have 1 to {URL_MAX} characters")));
    }
    let mapped = match url.split_once("://") {
        Some((s, rest))
            if s.eq_ignore_ascii_case("webcal") || s.eq_ignore_ascii_case("webcals") =>
        {
            format!("https://{rest}")
        }
        _ => url.to_string(),
    };
    let parsed = reqwest::Url::parse(&mapped).map_err(|_| bad("The URL is not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("The URL must be http://, https:// or webcal://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("The URL has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "The URL must not hold credentials: give username and password",
        ));
    }
    if fetch::literal_refused(&parsed, allow_private) {
        return Err(bad("The URL names a private address"));
    }
    Ok(parsed.to_string())
}

fn check_login(username: Option<&str>, password: Option<&str>) -> Result<()> {
    if username.is_some_and(|u| u.chars().count() > USERNAME_MAX) {
        return Err(refused(
            "error-invalid-params",
            "username must be at most 256 characters",
        ));
    }
    if password.is_some_and(|p| p.chars().count() > PASSWORD_MAX) {
        return Err(refused(
            "error-invalid-params",
            "password must be at most 1024 characters",
        ));
    }
    Ok(())
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("the store could not be read or written: {e}"))
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    core: &Core,
    f: impl FnOnce(&dyn crate::store::Store) -> anyhow::Result<T> + Send + 'static,
) -> Result<T> {
    let store = core.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(unavailable)?
        .map_err(unavailable)
}

/// The calendars of `uid` (all users' with None).
pub async fn list(core: &Core, uid: Option<&str>) -> Result<Vec<ConnectedCalendar>> {
    let uid = uid.map(str::to_string);
    blocking(core, move |s| s.calendars(uid.as_deref())).await
}

/// One calendar by id, among `owner`'s (all users' with None).
pub async fn find(core: &Core, id: &str, owner: Option<&str>) -> Result<ConnectedCalendar> {
    list(core, owner)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(not_found)
}

/// `statusd.calendars.connect` for user `uid`.
pub async fn connect(
    core: &Core,
    svc: &Service,
    uid: &str,
    spec: Spec,
) -> Result<ConnectedCalendar> {
    let kind = check_kind(spec.kind.as_deref())?;
    let url = check_url(spec.url.as_deref().unwrap_or_default(), svc.allow_private)?;
    check_login(spec.username.as_deref(), spec.password.as_deref())?;
    if list(core, Some(uid)).await?.len() >= MAX_PER_USER {
        return Err(refused(
            "error-too-many-calendars",
            "At most 5 calendars per user",
        ));
    }
    let now = Utc::now();
    let id = crate::auth::secrets::new_id();
    let password = match spec.password.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => Some(sealed(svc, &id, p)?),
        None => None,
    };
    let cal = ConnectedCalendar {
        id,
        uid: uid.to_string(),
        kind,
        url,
        username: spec.username.filter(|u| !u.is_empty()),
        password,
        include_free: spec.include_free.unwrap_or(false),
        include_all_day: spec.include_all_day.unwrap_or(false),
        created_at: now,
        updated_at: now,
        synced_at: None,
        last_error: None,
        events: 0,
    };
    let stored = cal.clone();
    blocking(core, move |s| s.put_calendar(&stored)).await?;
    svc.nudge();
    Ok(cal)
}

fn sealed(svc: &Service, id: &str, password: &str) -> Result<String> {
    let key = svc
        .key
        .key()
        .map_err(|why| refused("error-calendar-secret-key", &why))?;
    seal::seal(&key, id, password).map_err(|why| refused("error-calendar-secret-key", &why))
}

/// `statusd.calendars.update`: changes what `spec` gives; the next sync fetches anew.
pub async fn update(
    core: &Core,
    svc: &Service,
    mut cal: ConnectedCalendar,
    spec: Spec,
) -> Result<ConnectedCalendar> {
    if let Some(kind) = spec.kind.as_deref() {
        cal.kind = check_kind(Some(kind))?;
    }
    if let Some(url) = spec.url.as_deref() {
        cal.url = check_url(url, svc.allow_private)?;
    }
    check_login(spec.username.as_deref(), spec.password.as_deref())?;
    if let Some(u) = spec.username {
        cal.username = (!u.is_empty()).then_some(u);
    }
    if let Some(p) = spec.password.as_deref() {
        cal.password = match p {
            "" => None,
            p => Some(sealed(svc, &cal.id, p)?),
        };
    }
    cal.include_free = spec.include_free.unwrap_or(cal.include_free);
    cal.include_all_day = spec.include_all_day.unwrap_or(cal.include_all_day);
    cal.updated_at = Utc::now();
    let stored = cal.clone();
    blocking(core, move |s| s.put_calendar(&stored)).await?;
    svc.forget(&cal.id);
    svc.nudge();
    Ok(cal)
}

/// `statusd.calendars.disconnect`: its events go (their busy claims end), then it.
pub async fn disconnect(core: &Core, svc: &Service, cal: &ConnectedCalendar) -> Result<()> {
    // After a sync under way: it would write the events back.
    let slot = svc.slot(&cal.id);
    let _syncing = slot.lock().await;
    let (id, uid) = (cal.id.clone(), cal.uid.clone());
    core.writer
        .run(move |tx| {
            apply(tx, &id, &uid, &[]);
            Ok(())
        })
        .await?;
    let id = cal.id.clone();
    blocking(core, move |s| s.delete_calendar(&id)).await?;
    svc.forget(&cal.id);
    Ok(())
}

/// A calendar as the DDP methods answer it: the REST view's members (`http::calendars`),
/// without the password.
pub fn view_json(c: &ConnectedCalendar) -> serde_json::Value {
    let mut v = serde_json::json!({
        "_id": c.id,
        "userId": c.uid,
        "kind": c.kind,
        "url": c.url,
        "hasPassword": c.password.is_some(),
        "includeFree": c.include_free,
        "includeAllDay": c.include_all_day,
        "createdAt": iso(&c.created_at),
        "_updatedAt": iso(&c.updated_at),
        "events": c.events,
    });
    if let Some(o) = v.as_object_mut() {
        if let Some(login) = &c.username {
            o.insert("login".into(), login.clone().into());
        }
        if let Some(at) = &c.synced_at {
            o.insert("syncedAt".into(), iso(at).into());
        }
        if let Some(e) = &c.last_error {
            o.insert("lastError".into(), e.clone().into());
        }
    }
    v
}

/// What a sync did, as the routes and methods answer it.
pub fn outcome_json(o: &Outcome) -> serde_json::Value {
    let mut v = serde_json::json!({"fetch": o.fetch, "events": o.events});
    if let (Some(obj), Some(e)) = (v.as_object_mut(), &o.error) {
        obj.insert("error".into(), e.clone().into());
    }
    v
}

/// The `externalId` of an instance: the calendar, the start, the UID (hashed when long).
pub fn external_id(calendar_id: &str, i: &expand::Instance) -> String {
    let uid = if i.uid.chars().count() <= 100 {
        i.uid.clone()
    } else {
        hex::encode(&Sha256::digest(i.uid.as_bytes())[..16])
    };
    format!("cal:{calendar_id}:{}:{uid}", i.start.timestamp_millis())
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn fields(i: &expand::Instance) -> Fields {
    Fields {
        start_time: iso(&i.start),
        end_time: Some(iso(&i.end)),
        subject: Some(cut(i.summary.trim(), calendar::SUBJECT_MAX)),
        description: Some(cut(&i.description, calendar::DESCRIPTION_MAX)),
        meeting_url: i
            .url
            .clone()
            .filter(|u| u.chars().count() <= calendar::URL_MAX),
        reminder_minutes_before_start: None,
        busy: None,
    }
}

/// Is `e` already what `f` describes?
fn same(e: &CalendarEvent, f: &Fields) -> bool {
    iso(&e.start_time) == f.start_time
        && e.end_time.as_ref().map(iso) == f.end_time
        && Some(&e.subject) == f.subject.as_ref()
        && Some(&e.description) == f.description.as_ref()
        && e.meeting_url == f.meeting_url
}

/// What to do to make the calendar's events match: (externalId, fields) to write, ids
/// of events to delete.
fn plan(
    existing: &[Arc<CalendarEvent>],
    calendar_id: &str,
    instances: &[expand::Instance],
) -> (Vec<(String, Fields)>, Vec<String>) {
    let prefix = format!("cal:{calendar_id}:");
    let mine: HashMap<&str, &Arc<CalendarEvent>> = existing
        .iter()
        .filter_map(|e| {
            e.external_id
                .as_deref()
                .filter(|x| x.starts_with(&prefix))
                .map(|x| (x, e))
        })
        .collect();
    let mut write = Vec::new();
    let mut wanted = std::collections::HashSet::new();
    for i in instances {
        let ext = external_id(calendar_id, i);
        let f = fields(i);
        if !mine.get(ext.as_str()).is_some_and(|e| same(e, &f)) {
            write.push((ext.clone(), f));
        }
        wanted.insert(ext);
    }
    let delete = mine
        .iter()
        .filter(|(x, _)| !wanted.contains(**x))
        .map(|(_, e)| e.id.clone())
        .collect();
    (write, delete)
}

/// Makes the calendar's events of `uid` the `instances`: (events it holds, the first
/// refusal, e.g. the user's 500 events reached).
fn apply(
    tx: &mut Tx,
    calendar_id: &str,
    uid: &str,
    instances: &[expand::Instance],
) -> (usize, Option<String>) {
    let existing = tx.calendar_events_of(uid);
    let (write, delete) = plan(&existing, calendar_id, instances);
    for id in delete {
        let _ = calendar::delete(tx, uid, &id);
    }
    let mut refusal = None;
    for (ext, f) in write {
        if let Err(e) = calendar::import(tx, uid, &f, &ext) {
            refusal.get_or_insert_with(|| e.to_string());
        }
    }
    let prefix = format!("cal:{calendar_id}:");
    let held = tx
        .calendar_events_of(uid)
        .iter()
        .filter(|e| {
            e.external_id
                .as_deref()
                .is_some_and(|x| x.starts_with(&prefix))
        })
        .count();
    (held, refusal)
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `changed` (new content fetched), `unchanged` (304 or the same ctag) or `failed`.
    pub fetch: &'static str,
    pub events: usize,
    pub error: Option<String>,
}

/// Fetches the calendar: Some(documents) when its content changed (or nothing is kept
/// that a conditional request could stand on), None when it did not.
async fn fetch_docs(
    svc: &Service,
    cal: &ConnectedCalendar,
    cached: &mut Cached,
    now: DateTime<Utc>,
) -> std::result::Result<Option<Vec<String>>, String> {
    let client = svc.client.as_ref().ok_or("no HTTP client")?;
    let password = match cal.password.as_deref() {
        Some(sealed) => Some(seal::open(&svc.key.key()?, &cal.id, sealed)?),
        None => None,
    };
    let login = cal.username.as_deref().map(|u| fetch::Login {
        username: u,
        password: password.as_deref().unwrap_or(""),
    });
    let with = cal.updated_at;
    if cached.fetched_with != Some(with) {
        *cached = Cached::default();
    }
    let fresh_enough = cached.horizon.is_some_and(|h| h >= now + AHEAD);
    let last = cached.validators.as_ref().filter(|_| fresh_enough);
    let fetched = if cal.kind == "caldav" {
        let f = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
        fetch::caldav(
            client,
            &cal.url,
            login.as_ref(),
            last,
            &f(now - BEHIND),
            &f(now + FETCH_AHEAD),
        )
        .await?
    } else {
        fetch::ics(client, &cal.url, login.as_ref(), last).await?
    };
    Ok(match fetched {
        fetch::Fetched::Unchanged => None,
        fetch::Fetched::Changed(docs, validators) => {
            cached.validators = Some(validators);
            cached.fetched_with = Some(with);
            Some(docs)
        }
    })
}

/// Expands fetched documents into the kept instances (off the async workers: a large
/// feed takes a while).
async fn keep(
    cached: &mut Cached,
    docs: Vec<String>,
    options: expand::Options,
    now: DateTime<Utc>,
) -> std::result::Result<(), String> {
    let (from, to) = (now - BEHIND, now + FETCH_AHEAD);
    let expanded =
        tokio::task::spawn_blocking(move || expand::expand(&docs, from, to, options, KEPT))
            .await
            .map_err(|e| e.to_string())??;
    // Cut at the cap: they hold everything only up to the last one kept.
    cached.horizon = Some(match expanded.last() {
        Some(last) if expanded.len() >= KEPT => last.start,
        _ => to,
    });
    cached.instances = expanded;
    Ok(())
}

/// Fetches, expands and applies one calendar; records the outcome on its row.
/// `as_leader`: the worker's writes, refused once this instance no longer leads.
pub async fn sync(
    core: &Core,
    svc: &Service,
    cal: &ConnectedCalendar,
    as_leader: bool,
) -> Result<Outcome> {
    let slot = svc.slot(&cal.id);
    let mut cached = slot.lock().await;
    // As it is now: disconnected or changed while this sync waited for the lock.
    let (id, uid) = (cal.id.clone(), cal.uid.clone());
    let cal = &blocking(core, move |s| s.calendars(Some(&uid)))
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(not_found)?;
    let now = Utc::now();
    let options = expand::Options {
        include_free: cal.include_free,
        include_all_day: cal.include_all_day,
    };
    let fetched = match fetch_docs(svc, cal, &mut cached, now).await {
        Ok(Some(docs)) => keep(&mut cached, docs, options, now)
            .await
            .map(|()| "changed"),
        Ok(None) => Ok("unchanged"),
        Err(e) => Err(e),
    };
    let mut outcome = Outcome {
        fetch: "failed",
        events: cal.events,
        error: None,
    };
    match fetched {
        Err(e) => {
            outcome.error = Some(cut(&e, MAX_ERROR));
            // The events stay as they are; the next sync fetches everything anew.
            *cached = Cached::default();
        }
        Ok(what) => {
            outcome.fetch = what;
            let (from, to) = (now - BEHIND, now + AHEAD);
            let instances: Vec<_> = cached
                .instances
                .iter()
                .filter(|i| i.end > from && i.start < to)
                .take(MAX_INSTANCES)
                .cloned()
                .collect();
            let (events, refusal) = write(core, cal, instances, as_leader).await?;
            outcome.events = events;
            outcome.error = refusal.map(|r| cut(&r, MAX_ERROR));
        }
    }
    record(core, cal, &outcome, now).await?;
    drop(cached);
    Ok(outcome)
}

/// Applies the instances through the writer when anything differs.
async fn write(
    core: &Core,
    cal: &ConnectedCalendar,
    instances: Vec<expand::Instance>,
    as_leader: bool,
) -> Result<(usize, Option<String>)> {
    let (write, delete) = {
        let existing: Vec<_> = core
            .model
            .read()
            .calendar_events
            .values()
            .filter(|e| e.uid == cal.uid)
            .cloned()
            .collect();
        plan(&existing, &cal.id, &instances)
    };
    let (id, uid) = (cal.id.clone(), cal.uid.clone());
    if write.is_empty() && delete.is_empty() {
        let prefix = format!("cal:{id}:");
        let held = core
            .model
            .read()
            .calendar_events
            .values()
            .filter(|e| {
                e.uid == uid
                    && e.external_id
                        .as_deref()
                        .is_some_and(|x| x.starts_with(&prefix))
            })
            .count();
        return Ok((held, None));
    }
    let job = move |tx: &mut Tx| Ok(apply(tx, &id, &uid, &instances));
    if as_leader {
        core.writer.run_as_leader(job).await
    } else {
        core.writer.run(job).await
    }
}

/// Records a sync's outcome on the calendar's row, re-read so a change made meanwhile
/// (`update`) is kept: when what it found changed (events, error), or `syncedAt` is
/// older than [`STAMP_EVERY`].
async fn record(
    core: &Core,
    cal: &ConnectedCalendar,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<()> {
    let (id, uid) = (cal.id.clone(), cal.uid.clone());
    let outcome = outcome.clone();
    blocking(core, move |s| {
        let Some(mut row) = s.calendars(Some(&uid))?.into_iter().find(|c| c.id == id) else {
            return Ok(());
        };
        let reached = outcome.error.is_none() || outcome.fetch != "failed";
        let stale = row.synced_at.is_none_or(|at| now - at >= STAMP_EVERY);
        let found = row.last_error != outcome.error || row.events != outcome.events;
        if !(found || reached && stale) {
            // Nothing new to say: no write (a write per calendar per round would cost
            // a commit each on the writer's connection).
            return Ok(());
        }
        if reached {
            row.synced_at = Some(now);
        }
        row.last_error = outcome.error.clone();
        row.events = outcome.events;
        s.put_calendar(&row)
    })
    .await
}

/// The sync worker: every `interval`, while this instance leads, each calendar whose
/// time has come; at once a calendar just connected or changed here. The list is read
/// from the store every tick (at most every 5 s, at least every interval), so one
/// connected on another instance waits at most that long. Calendars of deleted users
/// are forgotten.
pub async fn run(core: Core, svc: Arc<Service>, leader: Arc<Leadership>) {
    use futures_util::StreamExt as _;
    let tick = svc.interval.min(Duration::from_secs(5));
    // A calendar is due when its time is this close: ticks and syncs do not line up.
    let slack = Duration::from_millis(200);
    let mut next: HashMap<String, tokio::time::Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = svc.wake.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
        if !leader.is_leader() {
            // A new leader starts from nothing; so does this one if it leads again.
            next.clear();
            continue;
        }
        let all = match list(&core, None).await {
            Ok(all) => all,
            Err(e) => {
                tracing::debug!("calendars: {e}");
                continue;
            }
        };
        let now = tokio::time::Instant::now();
        next.retain(|id, _| all.iter().any(|c| &c.id == id));
        let mut due = Vec::new();
        for cal in all {
            if !core.model.read().users.contains_key(&cal.uid) {
                let id = cal.id.clone();
                let _ = blocking(&core, move |s| s.delete_calendar(&id)).await;
                svc.forget(&cal.id);
                continue;
            }
            // A calendar changed since it was planned (update) is due at once.
            let fresh = svc.cache.lock().get(&cal.id).is_none();
            if fresh || next.get(&cal.id).is_none_or(|at| *at <= now + slack) {
                next.insert(cal.id.clone(), now + svc.interval);
                due.push(cal);
            }
        }
        futures_util::stream::iter(due)
            .for_each_concurrent(PARALLEL, |cal| {
                let (core, svc) = (core.clone(), svc.clone());
                async move {
                    match sync(&core, &svc, &cal, true).await {
                        Ok(o) if o.error.is_some() => tracing::debug!(
                            calendar = %cal.id,
                            "calendar sync: {}",
                            o.error.unwrap_or_default()
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::debug!(calendar = %cal.id, "calendar sync: {e}"),
                    }
                }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_without_credentials_and_webcal_is_https() {
        assert_eq!(
            check_url("webcal://example.com/a.ics", false).unwrap(),
            "https://example.com/a.ics"
        );
        assert_eq!(
            check_url(" https://example.com/dav/ ", false).unwrap(),
            "https://example.com/dav/"
        );
        for bad in [
            "",
            "ftp://example.com/a.ics",
            "file:///etc/passwd",
            "https://user:pw@example.com/a.ics",
            "http://127.0.0.1/a.ics",
            "http://[::1]/a.ics",
            "http://169.254.169.254/latest",
            "not a url",
        ] {
            let e = check_url(bad, false).unwrap_err();
            assert_eq!(e.code(), Some("error-invalid-calendar-url"), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:5232/u/c/", true).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(URL_MAX));
        assert!(check_url(&long, false).is_err());
    }

    #[test]
    fn the_plan_writes_what_changed_and_deletes_what_went() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let inst = |uid: &str, start: &str, summary: &str| expand::Instance {
            uid: uid.into(),
            start: t(start),
            end: t(start) + chrono::Duration::minutes(30),
            summary: summary.into(),
            description: String::new(),
            url: None,
        };
        let a = inst("a", "2030-01-01T10:00:00Z", "A");
        let b = inst("b", "2030-01-01T11:00:00Z", "B");
        let event = |i: &expand::Instance, id: &str| {
            let f = fields(i);
            Arc::new(CalendarEvent {
                id: id.into(),
                uid: "u".into(),
                start_time: i.start,
                end_time: Some(i.end),
                subject: f.subject.unwrap(),
                description: String::new(),
                meeting_url: None,
                reminder_minutes_before_start: 5,
                external_id: Some(external_id("C", i)),
                busy: None,
                updated_at: i.start,
                started: false,
                ended: false,
            })
        };
        let existing = vec![event(&a, "ea"), event(&b, "eb")];
        let (write, delete) = plan(&existing, "C", &[a.clone(), b.clone()]);
        assert!(write.is_empty() && delete.is_empty(), "nothing changed");
        let renamed = inst("a", "2030-01-01T10:00:00Z", "A2");
        let moved = inst("b", "2030-01-01T12:00:00Z", "B");
        let (write, delete) = plan(&existing, "C", &[renamed, moved.clone()]);
        assert_eq!(
            write.len(),
            2,
            "the renamed one in place, the moved one anew"
        );
        assert_eq!(write[1].0, external_id("C", &moved));
        assert_eq!(delete, ["eb"]);
        let (_, delete) = plan(&existing, "other", &[]);
        assert!(
            delete.is_empty(),
            "another calendar's events are not touched"
        );
        assert!(external_id("C", &inst(&"x".repeat(500), "2030-01-01T10:00:00Z", "")).len() < 100);
    }
}
