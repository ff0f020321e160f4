//! `statusd import rocketchat USERS.json`: users from a mongoexport of Rocket.Chat's
//! `users` collection, as JSON lines (mongoexport's default) or one JSON array
//! (`--jsonArray`), in MongoDB extended JSON (`{"$date": …}`, `{"$oid": …}`,
//! `{"$numberLong": …}`).
//!
//! Kept: `_id`, `username`, `name`, `emails`, `roles` (those statusd knows), `active`,
//! `type` (user or bot), `status`, `statusDefault`, `statusText`, `utcOffset`,
//! `createdAt`, `lastLogin`, `services.password.bcrypt` (Rocket.Chat stores bcrypt of
//! the SHA-256 hex of the password, exactly as statusd does, so people log in with
//! their existing passwords) and the personal access tokens in
//! `services.resume.loginTokens` (stored hashed the same way, so bots keep working), and
//! `settings.preferences` (the keys `users.setPreferences` takes, each as it checks it;
//! the others are left out with a warning).
//! Nobody is connected to statusd yet, so `statusConnection` is imported as offline and
//! a user whom a live Rocket.Chat connection showed as present shows offline until
//! they connect. An entry without status fields keeps the status and text statusd
//! has; every status change is recorded in the history (source `import`) by
//! `change::record`, like every other change.
//!
//! A user is matched by `_id`, then by username ignoring case; a match is updated, not
//! duplicated (it keeps its statusd id, and its username when the export spells it
//! with other case), but only with `--update-existing`: an export
//! must not silently replace the password of an account that is already here (an entry
//! named `ADMIN` would take over the admin). `rocket.cat`'s roles and password are never
//! changed. Every field is checked as the API checks it (username, name, bio, nickname,
//! emails, status text, `utcOffset`); entries without a username, or with a field the
//! API would refuse, are skipped with a warning. The file is read as a stream, at most
//! `--max-bytes` of it.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use crate::accounts::{identity, preferences, tokens, users};
use crate::auth::defaults;
use crate::change;
use crate::error::Error;
use crate::model::{Email, Source, Status, Token, TokenKind, UserKind};
use crate::state::{Core, Tx};
use crate::status::{presence, rules};

/// The largest export read by default: 256 MiB (a mongoexport of 100,000 users with
/// their services is well below it).
pub const MAX_BYTES: u64 = 256 << 20;
/// The UTC offsets that exist, in hours (UTC-12 to UTC+14).
const UTC_OFFSETS: std::ops::RangeInclusive<f64> = -12.0..=14.0;

/// How an import runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Update users that exist already; without it they are skipped.
    pub update_existing: bool,
    /// Refuse an export larger than this many bytes.
    pub max_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            update_existing: false,
            max_bytes: MAX_BYTES,
        }
    }
}

/// Counts what passes through, so a stream cut at the bound can tell it was cut.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// The documents of an export file, parsed as they are read, at most `max_bytes` of
/// it: `/dev/zero` or a runaway file is refused without being held in memory.
fn read_documents(path: &Path, max_bytes: u64) -> anyhow::Result<Vec<Json>> {
    stream_documents(std::fs::File::open(path)?, max_bytes)
}

/// The documents of a mongoexport: JSON lines, concatenated objects, or arrays of them,
/// read from `reader` as they come, at most `max_bytes` of it.
fn stream_documents<R: Read>(reader: R, max_bytes: u64) -> anyhow::Result<Vec<Json>> {
    let mut counted = Counted {
        inner: std::io::BufReader::new(reader).take(max_bytes.saturating_add(1)),
        read: 0,
    };
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_reader(&mut counted).into_iter::<Json>();
    let mut failed = None;
    for (n, value) in stream.enumerate() {
        match value {
            Ok(Json::Array(items)) => out.extend(items),
            Ok(other) => out.push(other),
            Err(e) => {
                failed = Some((n, e));
                break;
            }
        }
    }
    if counted.read > max_bytes {
        bail!("the export is larger than {max_bytes} bytes (--max-bytes)");
    }
    if let Some((n, _)) = failed {
        bail!("document {} is not JSON", n + 1);
    }
    if out.iter().any(|d| !d.is_object()) {
        bail!("expected user documents (JSON objects)");
    }
    Ok(out)
}

/// Users written per writer job (one transaction each): keeps every job short and the
/// per-job lookups cheap on large exports. Re-running after a failure is safe.
const CHUNK: usize = 500;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub tokens: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "imported Rocket.Chat users: {} created, {} updated, {} unchanged, {} skipped; {} personal access tokens",
            self.created, self.updated, self.unchanged, self.skipped, self.tokens
        )
    }
}

/// One user of the export, as statusd keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct RcUser {
    /// Where it came from, for warnings: `entry 3 (alice)`.
    pub label: String,
    pub id: String,
    pub username: String,
    pub name: String,
    pub bio: String,
    pub nickname: String,
    /// None when the document has no `emails` (an update then keeps the user's).
    pub emails: Option<Vec<Email>>,
    pub roles: Vec<String>,
    pub active: bool,
    pub kind: UserKind,
    /// The status fields; None when the document has none (an update then keeps the
    /// user's status and text, a new user gets statusd's defaults).
    pub status: Option<Status>,
    pub status_default: Option<Status>,
    pub status_text: Option<String>,
    pub utc_offset: f64,
    pub created_at: Option<DateTime<Utc>>,
    pub last_login: Option<DateTime<Utc>>,
    pub password_hash: Option<String>,
    pub tokens: Vec<RcToken>,
    /// `settings.preferences`; None when the document has none (an update then keeps the
    /// user's).
    pub preferences: Option<serde_json::Map<String, Json>>,
    /// The preference keys left out (unknown to statusd, or refused).
    pub dropped_preferences: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RcToken {
    pub hashed: String,
    pub name: String,
    pub last_part: String,
    pub created_at: Option<DateTime<Utc>>,
    pub bypass_two_factor: bool,
}

fn warn(text: &str) {
    eprintln!("statusd: warning: {text}");
}

/// Reads an export file and imports it.
pub async fn rocketchat(core: &Core, path: &Path, opts: Options) -> anyhow::Result<Report> {
    let docs = read_documents(path, opts.max_bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut report = Report::default();
    let mut dropped_roles = BTreeSet::new();
    let mut users = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        match convert(doc, i + 1, &mut dropped_roles) {
            Ok(u) => users.push(u),
            Err(why) => {
                warn(&why);
                report.skipped += 1;
            }
        }
    }
    if !dropped_roles.is_empty() {
        let list: Vec<_> = dropped_roles.into_iter().collect();
        warn(&format!(
            "roles statusd does not know were left out: {}",
            list.join(", ")
        ));
    }
    for chunk in users.chunks(CHUNK) {
        let chunk = chunk.to_vec();
        let (part, warnings) = core
            .writer
            .run(move |tx| {
                let mut part = Report::default();
                let mut warnings = Vec::new();
                for u in chunk {
                    apply(tx, u, opts, &mut part, &mut warnings);
                }
                Ok::<_, Error>((part, warnings))
            })
            .await
            .map_err(|e| anyhow::anyhow!("the import could not be committed: {e}"))?;
        for w in warnings {
            warn(&w);
        }
        report.created += part.created;
        report.updated += part.updated;
        report.unchanged += part.unchanged;
        report.skipped += part.skipped;
        report.tokens += part.tokens;
    }
    Ok(report)
}

/// The documents of an export held in memory.
#[cfg(test)]
fn documents(text: &str) -> anyhow::Result<Vec<Json>> {
    stream_documents(text.as_bytes(), u64::MAX)
}

/// `"abc"` or `{"$oid": "abc"}`.
fn id_of(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("$oid").and_then(Json::as_str).map(str::to_string),
        _ => None,
    }
}

/// A number, or `{"$numberLong"|"$numberInt"|"$numberDouble": "…"}`.
fn number_of(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::Object(o) => [
            "$numberLong",
            "$numberInt",
            "$numberDouble",
            "$numberDecimal",
        ]
        .iter()
        .find_map(|k| o.get(*k))
        .and_then(|n| match n {
            Json::String(s) => s.parse().ok(),
            other => other.as_f64(),
        }),
        _ => None,
    }
}

/// `{"$date": "ISO"}`, `{"$date": ms}`, `{"$date": {"$numberLong": "ms"}}`, or a bare
/// ISO string or milliseconds.
fn date_of(v: &Json) -> Option<DateTime<Utc>> {
    match v {
        Json::Object(o) if o.contains_key("$date") => date_of(&o["$date"]),
        Json::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        other => number_of(other).and_then(|ms| DateTime::from_timestamp_millis(ms as i64)),
    }
}

fn str_of<'a>(doc: &'a Json, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Json::as_str)
}

fn status_of(doc: &Json, key: &str) -> Option<Status> {
    str_of(doc, key).and_then(Status::parse)
}

fn looks_like_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| hash.starts_with(p))
        && hash.len() == 60
}

/// One export document as a user, or why it is skipped.
pub fn convert(
    doc: &Json,
    n: usize,
    dropped_roles: &mut BTreeSet<String>,
) -> Result<RcUser, String> {
    let username = str_of(doc, "username").map(str::trim).unwrap_or("");
    let id = doc.get("_id").and_then(id_of).unwrap_or_default();
    if username.is_empty() {
        let id = if id.is_empty() { "no _id" } else { &id };
        return Err(format!("entry {n} ({id}) has no username: skipped"));
    }
    let label = format!("entry {n} ({username})");
    let id = if id.is_empty() {
        crate::auth::secrets::new_id()
    } else {
        id
    };
    let emails = doc.get("emails").and_then(Json::as_array).map(|list| {
        list.iter()
            .filter_map(|e| {
                let address = e.get("address").and_then(Json::as_str)?.trim();
                (!address.is_empty()).then(|| Email {
                    address: address.to_string(),
                    verified: e.get("verified").and_then(Json::as_bool).unwrap_or(false),
                })
            })
            .collect()
    });
    let kind = match str_of(doc, "type") {
        Some("bot") | Some("app") => UserKind::Bot,
        _ => UserKind::User,
    };
    let mut roles: Vec<String> = Vec::new();
    for r in doc
        .get("roles")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
    {
        if !defaults::role_exists(r) {
            dropped_roles.insert(r.to_string());
        } else if !roles.iter().any(|x| x == r) {
            roles.push(r.to_string());
        }
    }
    if roles.is_empty() {
        roles.push(match kind {
            UserKind::Bot => defaults::BOT.to_string(),
            UserKind::User => defaults::USER.to_string(),
        });
    }
    // Every field as the API checks it: a value the API refuses skips the entry.
    let refused = |what: &str, e: &dyn fmt::Display| format!("{label}: {what}: {e}: skipped");
    let name = str_of(doc, "name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(username);
    let name = identity::name(name).map_err(|e| refused("name", &e))?;
    let bio = identity::bio(str_of(doc, "bio").unwrap_or("")).map_err(|e| refused("bio", &e))?;
    let nickname = identity::nickname(str_of(doc, "nickname").unwrap_or(""))
        .map_err(|e| refused("nickname", &e))?;
    let utc_offset = match doc.get("utcOffset") {
        None | Some(Json::Null) => 0.0,
        Some(v) => number_of(v)
            .filter(|o| o.is_finite() && UTC_OFFSETS.contains(o))
            .ok_or_else(|| refused("utcOffset", &"not an offset from -12 to 14 hours"))?,
    };
    // An export without any status field says nothing about the status: keep it.
    let has_status = ["status", "statusDefault", "statusConnection"]
        .iter()
        .any(|k| doc.get(*k).is_some_and(|v| !v.is_null()));
    let status_default =
        has_status.then(|| status_of(doc, "statusDefault").unwrap_or(Status::Online));
    // The status a live Rocket.Chat connection produced does not carry over: nobody is
    // connected here yet. A status shown without a connection (chosen over REST) does.
    let connected = status_of(doc, "statusConnection").is_some_and(|s| s != Status::Offline);
    let status = status_default.map(|default| {
        if connected || default == Status::Offline {
            Status::Offline
        } else {
            status_of(doc, "status").unwrap_or(Status::Offline)
        }
    });
    let password_hash = doc
        .pointer("/services/password/bcrypt")
        .and_then(Json::as_str)
        .filter(|h| looks_like_bcrypt(h))
        .map(str::to_string);
    let tokens = doc
        .pointer("/services/resume/loginTokens")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter(|t| str_of(t, "type") == Some("personalAccessToken"))
        .filter_map(|t| {
            Some(RcToken {
                hashed: str_of(t, "hashedToken")?.to_string(),
                name: str_of(t, "name")?.to_string(),
                last_part: str_of(t, "lastTokenPart").unwrap_or("").to_string(),
                created_at: t.get("createdAt").and_then(date_of),
                bypass_two_factor: t
                    .get("bypassTwoFactor")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
            })
        })
        .collect();
    // Extended JSON numbers (`{"$numberInt": "300"}`) read as plain numbers.
    let exported_preferences = doc.pointer("/settings/preferences").map(|p| match p {
        Json::Object(o) => Json::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = match (v, number_of(v)) {
                        (Json::Object(_), Some(n)) if n.fract() == 0.0 && n.abs() < 9e15 => {
                            Json::from(n as i64)
                        }
                        (Json::Object(_), Some(n)) => Json::from(n),
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    });
    let (preferences, dropped_preferences) = match exported_preferences {
        Some(p) => {
            let (kept, dropped) = preferences::from_export(&p);
            (Some(kept), dropped)
        }
        None => (None, Vec::new()),
    };
    Ok(RcUser {
        preferences,
        dropped_preferences,
        label,
        id,
        username: username.to_string(),
        name,
        bio,
        nickname,
        emails,
        roles,
        active: doc.get("active").and_then(Json::as_bool).unwrap_or(true),
        kind,
        status,
        status_default,
        status_text: str_of(doc, "statusText").map(rules::normalize_text),
        utc_offset,
        created_at: doc.get("createdAt").and_then(date_of),
        last_login: doc.get("lastLogin").and_then(date_of),
        password_hash,
        tokens,
    })
}

/// Creates or updates one user inside a writer job.
fn apply(tx: &mut Tx, rc: RcUser, opts: Options, report: &mut Report, warnings: &mut Vec<String>) {
    let existing = tx
        .user(&rc.id)
        .or_else(|| tx.user_by_username(&rc.username));
    if let (Some(u), false) = (&existing, opts.update_existing) {
        warnings.push(format!(
            "{}: {} exists already: skipped (--update-existing updates it)",
            rc.label, u.username
        ));
        report.skipped += 1;
        return;
    }
    let current = existing.as_deref();
    let purpose = match current {
        Some(_) => identity::Purpose::Change,
        None => identity::Purpose::Create,
    };
    // The same username rules as users.create, and not taken by someone else.
    if let Err(e) = identity::check(tx, purpose, Some(&rc.username), None, current) {
        warnings.push(format!("{}: {e}: skipped", rc.label));
        report.skipped += 1;
        return;
    }
    let mut emails = Vec::new();
    let keep_emails = rc.emails.is_none();
    for e in rc.emails.unwrap_or_default() {
        let taken_here = emails
            .iter()
            .any(|x: &Email| x.address.eq_ignore_ascii_case(&e.address));
        match identity::check(tx, purpose, None, Some(&e.address), current) {
            Ok(()) if !taken_here => emails.push(e),
            Ok(()) => {}
            Err(err) => warnings.push(format!("{}: email left out: {err}", rc.label)),
        }
    }
    let now = tx.now;
    let mut user = match &existing {
        Some(u) => (**u).clone(),
        None => {
            let mut u = users::new_user(&rc.username, &rc.name, now);
            u.id = rc.id.clone();
            u
        }
    };
    let before = existing.as_ref().map(|u| (**u).clone());
    // What the history compares with: the user as it was, or as a new user starts.
    let baseline = before.clone().unwrap_or_else(|| user.clone());
    // A case-only difference is the same name (usernames match ignoring case): the
    // user keeps the spelling statusd has.
    if !user.username.eq_ignore_ascii_case(&rc.username) {
        user.username = rc.username;
    }
    user.name = rc.name;
    user.bio = rc.bio;
    user.nickname = rc.nickname;
    if let Some(p) = rc.preferences {
        user.preferences = p;
    }
    if !rc.dropped_preferences.is_empty() {
        warnings.push(format!(
            "{}: preferences left out (unknown to statusd or refused): {}",
            rc.label,
            rc.dropped_preferences.join(", ")
        ));
    }
    if !keep_emails {
        user.emails = emails;
    }
    user.kind = rc.kind;
    user.utc_offset = rc.utc_offset;
    if let Some(t) = rc.created_at {
        user.created_at = t;
    }
    if let Some(t) = rc.last_login {
        if user.last_login.is_none_or(|old| old < t) {
            user.last_login = Some(t);
        }
    }
    // rocket.cat is this workspace's bot: an export never gives it roles or a password.
    let cat = user.id == users::ROCKET_CAT;
    if cat && (rc.password_hash.is_some() || user.roles != rc.roles) {
        warnings.push(format!(
            "{}: rocket.cat keeps its roles and password",
            rc.label
        ));
    }
    if let Some(h) = rc.password_hash.filter(|_| !cat) {
        user.password_hash = Some(h);
    }
    if !cat {
        user.roles = rc.roles;
    }
    user.active = rc.active;
    // The last active admin stays one (the rule of users.update): not refused here, as
    // the rest of the import should go ahead, but kept as an active admin.
    if before
        .as_ref()
        .is_some_and(|b| users::leaves_no_admin(tx, b, Some(&user)))
    {
        warnings.push(format!(
            "{}: the last active admin keeps the admin role and stays active",
            rc.label
        ));
        if !user.has_role(defaults::ADMIN) {
            user.roles.push(defaults::ADMIN.into());
        }
        user.active = true;
    }
    // Status fields the export lacks keep what statusd has.
    let status_default = rc.status_default.unwrap_or(user.status_default);
    let status_text = rc.status_text.unwrap_or_else(|| user.status_text.clone());
    if user.status_default != status_default || user.status_text != status_text {
        // A new choice: whatever temporary status statusd had is over.
        user.status_expires_at = None;
        user.previous_state = None;
        user.status_source = None;
        user.status_id = None;
    }
    user.status_default = status_default;
    user.status_text = status_text;
    user.status = if user.status_connection != Status::Offline {
        // Connected to statusd right now: the connections decide, as always.
        presence::displayed(user.status_connection, user.status_default)
    } else {
        rc.status.unwrap_or(user.status)
    };
    users::log_out_if_inactive(tx, &user);
    // Recorded as every status change is (nothing when the status stayed the same).
    change::record(tx, &baseline, &user, None, Source::Import);
    match &before {
        Some(b) if *b == user => report.unchanged += 1,
        Some(_) => {
            user.updated_at = now;
            report.updated += 1;
            tx.put_user(user.clone());
        }
        None => {
            report.created += 1;
            tx.put_user(user.clone());
        }
    }
    if user.active {
        report.tokens += import_tokens(tx, &user.id, rc.tokens, now);
    }
}

/// Adds the personal access tokens the user does not have yet (a token of the same
/// name is replaced). Returns how many were added.
fn import_tokens(tx: &mut Tx, user_id: &str, imported: Vec<RcToken>, now: DateTime<Utc>) -> usize {
    let mut added = 0;
    for t in imported {
        let token = Token {
            hashed: t.hashed,
            user_id: user_id.to_string(),
            kind: TokenKind::Personal {
                name: t.name,
                last_part: t.last_part,
                bypass_two_factor: t.bypass_two_factor,
            },
            created_at: t.created_at.unwrap_or(now),
        };
        if tokens::keep_personal(tx, token) {
            added += 1;
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extended_json_dates_ids_and_numbers() {
        assert_eq!(id_of(&json!({"$oid": "abc"})).as_deref(), Some("abc"));
        assert_eq!(id_of(&json!("xyz")).as_deref(), Some("xyz"));
        let t = DateTime::parse_from_rfc3339("2024-03-01T10:00:00.5Z").unwrap();
        assert_eq!(
            date_of(&json!({"$date": "2024-03-01T10:00:00.500Z"})),
            Some(t.into())
        );
        assert_eq!(date_of(&json!({"$date": 1709287200500i64})), Some(t.into()));
        assert_eq!(
            date_of(&json!({"$date": {"$numberLong": "1709287200500"}})),
            Some(t.into())
        );
        assert_eq!(number_of(&json!({"$numberInt": "2"})), Some(2.0));
        assert_eq!(number_of(&json!(-3.5)), Some(-3.5));
    }

    #[test]
    fn lines_arrays_and_pretty_objects() {
        let lines = "{\"a\":1}\n{\"a\":2}\n";
        assert_eq!(documents(lines).unwrap().len(), 2);
        assert_eq!(documents("[{\"a\":1},\n {\"a\":2}]").unwrap().len(), 2);
        assert_eq!(
            documents("{\n \"a\": 1\n}\n{\n \"a\": 2\n}").unwrap().len(),
            2
        );
        assert!(documents("{\"a\":1}\n{oops").is_err());
        assert!(documents("[1, 2]").is_err());
    }

    #[test]
    fn a_user_document() {
        let doc = json!({
            "_id": "u1", "username": " alice ", "name": "Alice",
            "emails": [{"address": "alice@example.com", "verified": true}],
            "roles": ["user", "custom-auditor", "user"], "active": true, "type": "user",
            "status": "online", "statusDefault": "busy", "statusText": "  deep work ",
            "statusConnection": "online", "utcOffset": {"$numberInt": "2"},
            "createdAt": {"$date": "2023-01-01T00:00:00Z"},
            "services": {"password": {"bcrypt": format!("$2b$10${}", "x".repeat(53))},
                "resume": {"loginTokens": [
                    {"when": {"$date": 1}, "hashedToken": "login"},
                    {"type": "personalAccessToken", "hashedToken": "pat", "name": "ci",
                     "lastTokenPart": "abc123", "createdAt": {"$date": 2}}]}}
        });
        let mut dropped = BTreeSet::new();
        let u = convert(&doc, 1, &mut dropped).unwrap();
        assert_eq!(u.username, "alice");
        assert_eq!(u.roles, vec!["user"]);
        assert!(dropped.contains("custom-auditor"));
        assert_eq!(u.status_default, Some(Status::Busy));
        // The Rocket.Chat connection is gone: offline until they connect here.
        assert_eq!(u.status, Some(Status::Offline));
        assert_eq!(u.status_text.as_deref(), Some("deep work"));
        assert_eq!(u.utc_offset, 2.0);
        assert!(u.password_hash.is_some());
        assert_eq!(u.tokens.len(), 1);
        assert_eq!(u.tokens[0].name, "ci");
        assert_eq!(u.preferences, None);
        let with = json!({"_id": "w", "username": "wanda", "settings": {"preferences": {
            "enableAutoAway": true, "idleTimeLimit": {"$numberInt": "600"}, "oldKey": 1}}});
        let w = convert(&with, 4, &mut dropped).unwrap();
        assert_eq!(
            w.preferences.map(Json::Object),
            Some(json!({"enableAutoAway": true, "idleTimeLimit": 600}))
        );
        assert_eq!(w.dropped_preferences, vec!["oldKey"]);

        let bot = json!({"_id": "b", "username": "helper", "type": "bot", "status": "online"});
        let b = convert(&bot, 2, &mut dropped).unwrap();
        assert_eq!(
            (b.kind, b.roles.clone()),
            (UserKind::Bot, vec!["bot".to_string()])
        );
        assert_eq!(b.status, Some(Status::Online));
        // No status fields at all: nothing to say about the status.
        let plain = convert(&json!({"_id": "p", "username": "plain"}), 3, &mut dropped).unwrap();
        assert_eq!(
            (plain.status, plain.status_default, plain.status_text),
            (None, None, None)
        );
        assert!(convert(&json!({"_id": "x"}), 3, &mut dropped).is_err());
    }
}
