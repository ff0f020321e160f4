//! The rules of a status change (CONTRACT §4, users.setStatus steps 3, 5, 6, 7 and the
//! text normalisation of step 9). Pure: no I/O, no clock reads, unit-tested here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::Error;
use crate::model::Status;

/// The longest status text kept, in characters (Rocket.Chat's STATUS_TEXT_MAX_LENGTH).
pub const STATUS_TEXT_MAX: usize = 120;

/// A setStatus request (CONTRACT §4), as step 3 reads it: at least one of `status` and
/// `message` is a string; `userId`, `username` or `user` names another user. The same
/// type describes the body in the OpenAPI document.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetStatusRequest {
    /// `online`, `away`, `busy` or `offline` (invisible); empty means unchanged.
    #[schema(pattern = r"^(online|away|busy|offline|)$")]
    pub status: Option<String>,
    /// Trimmed and cut to 120 characters.
    pub message: Option<String>,
    /// An RFC 3339 time in the future: the status is temporary.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[serde(default, deserialize_with = "string_if_present")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "string_if_present")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "string_if_present")]
    pub user: Option<String>,
}

/// A member that may be absent, but not null: a string when given.
fn string_if_present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// Step 3: the body is an object; `status`/`message` are strings, null or absent and at
/// least one is a string; `userId`/`username`/`user` strings if present; `expiresAt` a
/// string, null or absent. Other fields are ignored. Anything else is the one Match
/// error the contract names.
pub fn parse_set_status(body: &Value) -> Result<SetStatusRequest, Error> {
    // serde would read a struct from an array too (its members in order).
    if !body.is_object() {
        return Err(Error::match_error());
    }
    let req = SetStatusRequest::deserialize(body).map_err(|_| Error::match_error())?;
    if req.status.is_none() && req.message.is_none() {
        return Err(Error::match_error());
    }
    Ok(req)
}

/// Which user a request names, after empty strings are treated as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetParam {
    Id(String),
    Username(String),
}

/// Step 5: is the caller acting on itself? True when nothing names a target, or
/// `userId` is the caller's id, or `username`/`user` is the caller's username
/// (Rocket.Chat's isUserFromParams: an OR-chain, exact comparison).
pub fn names_self(
    user_id: Option<&str>,
    username: Option<&str>,
    user: Option<&str>,
    caller_id: &str,
    caller_username: &str,
) -> bool {
    fn present(v: Option<&str>) -> Option<&str> {
        v.filter(|s| !s.is_empty())
    }
    let (id, name, u) = (present(user_id), present(username), present(user));
    (id.is_none() && name.is_none() && u.is_none())
        || id == Some(caller_id)
        || name == Some(caller_username)
        || u == Some(caller_username)
}

/// Step 5 with the permission: which parameter identifies the target, in precedence
/// order `userId` (non-blank), `username`, `user`.
pub fn target_param(
    user_id: Option<&str>,
    username: Option<&str>,
    user: Option<&str>,
) -> Option<TargetParam> {
    if let Some(id) = user_id.filter(|s| !s.trim().is_empty()) {
        return Some(TargetParam::Id(id.to_string()));
    }
    username
        .filter(|s| !s.is_empty())
        .or(user.filter(|s| !s.is_empty()))
        .map(|n| TargetParam::Username(n.to_string()))
}

/// Step 6: a non-empty `status` must be one of the four; `offline` needs the invisible
/// option. Returns None when no status was asked for.
pub fn check_status(
    status: Option<&str>,
    invisible_allowed: bool,
    method: &'static str,
) -> Result<Option<Status>, Error> {
    let Some(s) = status.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let st = Status::parse(s).ok_or_else(|| {
        Error::refused(
            "error-invalid-status",
            "Valid status types include online, away, offline, and busy.",
        )
        .by(method)
    })?;
    if st == Status::Offline && !invisible_allowed {
        return Err(
            Error::refused("error-status-not-allowed", "Invisible status is disabled").by(method),
        );
    }
    Ok(Some(st))
}

/// Step 7: a non-empty `expiresAt` must be an RFC 3339 time strictly after `now`.
pub fn check_expires_at(
    expires_at: Option<&str>,
    now: DateTime<Utc>,
    method: &'static str,
) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(s) = expires_at.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let t = DateTime::parse_from_rfc3339(s.trim())
        .map_err(|_| {
            Error::refused("error-invalid-date", "Invalid expiresAt date string").by(method)
        })?
        .with_timezone(&Utc);
    if t <= now {
        return Err(
            Error::refused("error-invalid-date", "expiresAt must be a future date").by(method),
        );
    }
    Ok(Some(t))
}

/// Step 9: the status text is trimmed and cut to 120 characters, never inside a character.
/// Bidi overrides and zero-width characters are taken out first (`text::strip_invisible`),
/// as from names, so a status text cannot reorder or hide what is shown around it.
pub fn normalize_text(text: &str) -> String {
    let stripped = crate::text::strip_invisible(text);
    let t = stripped.trim();
    match t.char_indices().nth(STATUS_TEXT_MAX) {
        Some((cut, _)) => t[..cut].to_string(),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const M: &str = "users.setStatus";

    #[test]
    fn shape_accepts_any_non_empty_subset() {
        let r = parse_set_status(&json!({"status": "busy"})).unwrap();
        assert_eq!(r.status.as_deref(), Some("busy"));
        let r = parse_set_status(&json!({"message": ""})).unwrap();
        assert_eq!(r.message.as_deref(), Some(""));
        let r = parse_set_status(&json!({"status": "busy", "message": null, "extra": 1})).unwrap();
        assert_eq!(r.message, None);
    }

    #[test]
    fn shape_rejects_wrong_types_and_empty() {
        for body in [
            json!({}),
            json!([]),
            json!(["busy", "hi"]),
            json!("busy"),
            json!({"message": null}),
            json!({"status": 1}),
            json!({"message": ["a"]}),
            json!({"status": "busy", "userId": 5}),
            json!({"status": "busy", "userId": null}),
            json!({"status": "busy", "expiresAt": 1700000000}),
        ] {
            assert_eq!(parse_set_status(&body), Err(Error::match_error()), "{body}");
        }
    }

    #[test]
    fn self_detection_is_an_or_chain() {
        assert!(names_self(None, None, None, "me", "alice"));
        assert!(names_self(Some(""), Some(""), None, "me", "alice"));
        assert!(names_self(Some("me"), None, None, "me", "alice"));
        assert!(names_self(
            Some("other"),
            Some("alice"),
            None,
            "me",
            "alice"
        ));
        assert!(names_self(None, None, Some("alice"), "me", "alice"));
        assert!(!names_self(None, Some("Alice"), None, "me", "alice"));
        assert!(!names_self(Some("other"), None, None, "me", "alice"));
    }

    #[test]
    fn target_precedence() {
        assert_eq!(
            target_param(Some("id1"), Some("bob"), None),
            Some(TargetParam::Id("id1".into()))
        );
        assert_eq!(
            target_param(Some("  "), Some("bob"), Some("carl")),
            Some(TargetParam::Username("bob".into()))
        );
        assert_eq!(
            target_param(None, None, Some("carl")),
            Some(TargetParam::Username("carl".into()))
        );
        assert_eq!(target_param(None, Some(""), None), None);
    }

    #[test]
    fn status_values() {
        assert_eq!(check_status(None, true, M), Ok(None));
        assert_eq!(check_status(Some(""), false, M), Ok(None));
        assert_eq!(check_status(Some("busy"), true, M), Ok(Some(Status::Busy)));
        assert_eq!(
            check_status(Some("offline"), true, M),
            Ok(Some(Status::Offline))
        );
        let e = check_status(Some("Busy"), true, M).unwrap_err();
        assert_eq!(e.code(), Some("error-invalid-status"));
        let e = check_status(Some("offline"), false, M).unwrap_err();
        assert_eq!(e.code(), Some("error-status-not-allowed"));
        assert_eq!(
            e.to_string(),
            "Invisible status is disabled [error-status-not-allowed]"
        );
    }

    #[test]
    fn expiry_dates() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(check_expires_at(None, now, M), Ok(None));
        assert_eq!(check_expires_at(Some(""), now, M), Ok(None));
        assert!(check_expires_at(Some("2026-01-01T01:00:00.000Z"), now, M)
            .unwrap()
            .is_some());
        assert!(check_expires_at(Some("2026-01-01T02:00:00+02:00"), now, M).is_err());
        let e = check_expires_at(Some("tomorrow"), now, M).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid expiresAt date string [error-invalid-date]"
        );
        let e = check_expires_at(Some("2026-01-01T00:00:00Z"), now, M).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expiresAt must be a future date [error-invalid-date]"
        );
    }

    #[test]
    fn text_is_trimmed_and_cut_on_characters() {
        assert_eq!(normalize_text("  hi  "), "hi");
        let long = "é".repeat(130);
        let cut = normalize_text(&long);
        assert_eq!(cut.chars().count(), 120);
        assert_eq!(cut, "é".repeat(120));
        let emoji = format!("{}🎉🎉", "a".repeat(119));
        assert_eq!(normalize_text(&emoji), format!("{}🎉", "a".repeat(119)));
        assert_eq!(normalize_text(""), "");
    }
}
