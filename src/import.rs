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
//! `services.resume.loginTokens` (stored hashed the same way, so bots keep working).
//! Nobody is connected to statusd yet, so `statusConnection` is imported as offline and
//! a user whom a live Rocket.Chat connection showed as present shows offline until
//! they connect.
//!
//! A user is matched by `_id`, then by username ignoring case; a match is updated, not
//! duplicated (it keeps its statusd id). Entries without a username, or with one that
//! is invalid or taken by another user, are skipped with a warning.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use crate::accounts::{identity, tokens, users};
use crate::auth::defaults;
use crate::error::Error;
use crate::model::{Email, Status, Token, TokenKind, UserKind};
use crate::state::{Core, Tx};
use crate::status::{presence, rules};

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
    /// None when the document has no `emails` (an update then keeps the user's).
    pub emails: Option<Vec<Email>>,
    pub roles: Vec<String>,
    pub active: bool,
    pub kind: UserKind,
    pub status: Status,
    pub status_default: Status,
    pub status_text: String,
    pub utc_offset: f64,
    pub created_at: Option<DateTime<Utc>>,
    pub last_login: Option<DateTime<Utc>>,
    pub password_hash: Option<String>,
    pub tokens: Vec<RcToken>,
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
pub async fn rocketchat(core: &Core, path: &Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs = documents(&text).with_context(|| format!("reading {}", path.display()))?;
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
                    apply(tx, u, &mut part, &mut warnings);
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

/// The documents of a mongoexport: JSON lines, concatenated objects, or arrays of them.
pub fn documents(text: &str) -> anyhow::Result<Vec<Json>> {
    let mut out = Vec::new();
    for (n, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Json>()
        .enumerate()
    {
        let value = value.with_context(|| format!("document {} is not JSON", n + 1))?;
        match value {
            Json::Array(items) => out.extend(items),
            other => out.push(other),
        }
    }
    if out.iter().any(|d| !d.is_object()) {
        bail!("expected user documents (JSON objects)");
    }
    Ok(out)
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
    let status_default = status_of(doc, "statusDefault").unwrap_or(Status::Online);
    // The status a live Rocket.Chat connection produced does not carry over: nobody is
    // connected here yet. A status shown without a connection (chosen over REST) does.
    let connected = status_of(doc, "statusConnection").is_some_and(|s| s != Status::Offline);
    let status = if connected || status_default == Status::Offline {
        Status::Offline
    } else {
        status_of(doc, "status").unwrap_or(Status::Offline)
    };
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
    Ok(RcUser {
        label,
        id,
        username: username.to_string(),
        name: str_of(doc, "name")
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(username)
            .to_string(),
        emails,
        roles,
        active: doc.get("active").and_then(Json::as_bool).unwrap_or(true),
        kind,
        status,
        status_default,
        status_text: rules::normalize_text(str_of(doc, "statusText").unwrap_or("")),
        utc_offset: doc.get("utcOffset").and_then(number_of).unwrap_or(0.0),
        created_at: doc.get("createdAt").and_then(date_of),
        last_login: doc.get("lastLogin").and_then(date_of),
        password_hash,
        tokens,
    })
}

/// Creates or updates one user inside a writer job.
fn apply(tx: &mut Tx, rc: RcUser, report: &mut Report, warnings: &mut Vec<String>) {
    let existing = tx
        .user(&rc.id)
        .or_else(|| tx.user_by_username(&rc.username));
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
    user.username = rc.username;
    user.name = rc.name;
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
    if let Some(h) = rc.password_hash {
        user.password_hash = Some(h);
    }
    user.roles = rc.roles;
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
    if user.status_default != rc.status_default || user.status_text != rc.status_text {
        // A new choice: whatever temporary status statusd had is over.
        user.status_expires_at = None;
        user.previous_state = None;
        user.status_source = None;
    }
    user.status_default = rc.status_default;
    user.status_text = rc.status_text;
    user.status = if user.status_connection != Status::Offline {
        // Connected to statusd right now: the connections decide, as always.
        presence::displayed(user.status_connection, user.status_default)
    } else {
        rc.status
    };
    users::log_out_if_inactive(tx, &user);
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
        assert_eq!(u.status_default, Status::Busy);
        // The Rocket.Chat connection is gone: offline until they connect here.
        assert_eq!(u.status, Status::Offline);
        assert_eq!(u.status_text, "deep work");
        assert_eq!(u.utc_offset, 2.0);
        assert!(u.password_hash.is_some());
        assert_eq!(u.tokens.len(), 1);
        assert_eq!(u.tokens[0].name, "ci");

        let bot = json!({"_id": "b", "username": "helper", "type": "bot", "status": "online"});
        let b = convert(&bot, 2, &mut dropped).unwrap();
        assert_eq!(
            (b.kind, b.roles.clone()),
            (UserKind::Bot, vec!["bot".to_string()])
        );
        assert_eq!(b.status, Status::Online);
        assert!(convert(&json!({"_id": "x"}), 3, &mut dropped).is_err());
    }
}
