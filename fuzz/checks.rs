//! What every input must satisfy, shared by the fuzz targets (`fuzz_targets/`) and the
//! corpus regression test (`tests/fuzz_corpus.rs`), which both include this file: the
//! production parsers never panic, and every error they give a client has the
//! contract's shape (a 4xx status, a JSON body with `"success": false` and a string
//! `error`; CONTRACT §2).
#![allow(dead_code)] // each fuzz target uses one of the entry points

use chrono::{TimeZone, Utc};
use serde_json::Value;
use statusd::input::ddp::{self, ClientFrame, FrameError, MeteorError};
use statusd::input::{
    check_expires_at, check_status, names_self, normalize_text, parse_credentials, parse_login,
    parse_set_preferences_body, parse_set_status_body, target_param, ApiError, Credentials, Error,
    SubLimits, SubReply, Subscriber, Subscriptions, TargetParam, MATCH_ERROR, MAX_ITEMS,
    MAX_STORED, MAX_TEXT, STATUS_TEXT_MAX,
};

/// The REST route whose body rules the DDP `login` method shares.
const LOGIN: &str = "login";

/// The largest DDP frame the server accepts by default (`WS_MAX_FRAME_BYTES`).
const MAX_FRAME: usize = 64 * 1024;

/// The content types the `login_body` target picks from with its first byte.
pub const LOGIN_CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("application/x-www-form-urlencoded; charset=UTF-8"),
    Some("text/plain"),
];

/// An error as the REST route `route` answers it (the middleware names the route in a
/// business error's `details`) has the contract's status and body shape.
pub fn assert_contract_error(e: &ApiError, route: &str) {
    let status = e.status_code().as_u16();
    assert!(
        (400..500).contains(&status),
        "client input gave {status}: {e}"
    );
    let body = e.route_body(route);
    assert_eq!(body.get("success"), Some(&Value::Bool(false)), "{body}");
    assert!(body.get("error").is_some_and(Value::is_string), "{body}");
    if let Some(code) = body.get("errorType").and_then(Value::as_str) {
        let text = body["error"].as_str().unwrap_or_default();
        assert!(text.ends_with(&format!(" [{code}]")), "{body}");
        assert_eq!(body["details"]["method"], route, "{body}");
    }
    let wire = serde_json::to_vec(&body).expect("an error body serialises");
    let back: Value = serde_json::from_slice(&wire).expect("an error body is JSON");
    assert_eq!(back, body);
}

fn meteor_code(e: &Error) -> Option<&str> {
    match e {
        Error::Refused { code, .. } => Some(code),
        _ => None,
    }
}

/// `POST users.setStatus`: the raw body through step 3, then the pure steps 5–7 and 9.
pub fn set_status_body(data: &[u8]) {
    const ROUTE: &str = "users.setStatus";
    let req = match parse_set_status_body(data) {
        Ok(req) => req,
        Err(e) => {
            // Step 3 answers only these two (CONTRACT §2, §4; docs/decisions.md).
            assert!(
                e == ApiError::plain(MATCH_ERROR) || e == ApiError::plain("Invalid JSON body"),
                "{e}"
            );
            assert_contract_error(&e, ROUTE);
            return;
        }
    };
    assert!(req.status.is_some() || req.message.is_some());
    // Step 5, for a fixed caller.
    let (id, name, user) = (
        req.user_id.as_deref(),
        req.username.as_deref(),
        req.user.as_deref(),
    );
    let is_self = names_self(id, name, user, "CaLLeRiD234567890", "caller");
    match target_param(id, name, user) {
        Some(TargetParam::Id(s)) => assert!(!s.trim().is_empty()),
        Some(TargetParam::Username(s)) => assert!(!s.is_empty()),
        // Nothing names a target, unless `userId` is blank but not empty: that names a
        // user who cannot exist (400 error-invalid-user), as in Rocket.Chat.
        None => assert!(
            is_self || id.is_some_and(|s| s.trim().is_empty()),
            "no target named, yet not self"
        ),
    }
    // Step 6 under both settings of the invisible option.
    for invisible in [true, false] {
        match check_status(req.status.as_deref(), invisible, ROUTE) {
            Ok(None) => assert!(req.status.as_deref().is_none_or(str::is_empty)),
            Ok(Some(_)) => {}
            Err(e) => {
                assert!(
                    matches!(
                        meteor_code(&e),
                        Some("error-invalid-status" | "error-status-not-allowed")
                    ),
                    "{e}"
                );
                assert_contract_error(&e.into(), ROUTE);
            }
        }
    }
    // Step 7 at a fixed time.
    let now = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .expect("a valid time");
    match check_expires_at(req.expires_at.as_deref(), now, ROUTE) {
        Ok(Some(t)) => assert!(t > now),
        Ok(None) => assert!(req.expires_at.as_deref().is_none_or(str::is_empty)),
        Err(e) => {
            assert_eq!(meteor_code(&e), Some("error-invalid-date"), "{e}");
            assert_contract_error(&e.into(), ROUTE);
        }
    }
    // Step 9: trimmed, then cut to 120 characters.
    if let Some(message) = &req.message {
        let text = normalize_text(message);
        assert!(text.chars().count() <= STATUS_TEXT_MAX);
        assert!(message.trim().starts_with(&text));
        assert_eq!(normalize_text(&text), text.trim());
    }
}

/// `POST login`: the first byte picks the content type, the rest is the body.
pub fn login_body(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let content_type = LOGIN_CONTENT_TYPES[usize::from(pick) % LOGIN_CONTENT_TYPES.len()];
    match parse_login(body, content_type) {
        Ok(Credentials::Resume(_)) => {}
        Ok(Credentials::Password { digest, .. }) => {
            // A plain password arrives as its SHA-256; a digest is passed on lowercased.
            assert_eq!(digest, digest.to_lowercase());
        }
        Err(e) => {
            assert!(
                matches!(&e, ApiError::Domain(Error::LoginFailed))
                    || matches!(&e, ApiError::Domain(Error::Invalid(t)) if t.starts_with("Match error")
                        || t == "Invalid JSON body"
                        || t == "Invalid form body"),
                "{e}"
            );
            assert_contract_error(&e, LOGIN);
        }
    }
}

/// `POST users.setPreferences`: the raw body to the target and the keys kept, or
/// `Invalid JSON body` / an `invalid-params` refusal; what is kept is within the bounds.
pub fn set_preferences_body(data: &[u8]) {
    const ROUTE: &str = "users.setPreferences";
    match parse_set_preferences_body(data) {
        Ok((_, prefs)) => {
            for v in prefs.values() {
                let texts: Vec<&str> = match v {
                    Value::String(s) => vec![s],
                    Value::Array(items) => {
                        assert!(items.len() <= MAX_ITEMS, "{v}");
                        items
                            .iter()
                            .flat_map(|i| match i {
                                Value::String(s) => vec![s.as_str()],
                                Value::Object(o) => o.values().filter_map(Value::as_str).collect(),
                                other => panic!("a list item kept: {other}"),
                            })
                            .collect()
                    }
                    Value::Object(_) => panic!("an object kept: {v}"),
                    _ => vec![],
                };
                assert!(texts.iter().all(|t| t.chars().count() <= MAX_TEXT), "{v}");
            }
            // What one call can keep is bounded by the keys, the items and the texts;
            // the whole per user is checked when merged (MAX_STORED).
            let size = serde_json::to_string(&prefs).map_or(0, |s| s.len());
            assert!(size <= 64 * MAX_STORED, "{size}");
        }
        Err(e) => {
            assert!(
                e == ApiError::plain("Invalid JSON body")
                    || matches!(&e, ApiError::Domain(Error::Refused { code, .. }) if code == "invalid-params"),
                "{e}"
            );
            assert_contract_error(&e, ROUTE);
        }
    }
}

/// A server frame must be one JSON object, whatever client text went into it.
fn frame_json(frame: String) -> Value {
    match serde_json::from_str::<Value>(&frame) {
        Ok(v @ Value::Object(_)) => v,
        _ => panic!("the server frame is not a JSON object: {frame}"),
    }
}

/// A DDP text frame: parsed as the session parses it, then every reply the session
/// makes from the frame alone (ids, offending frames and names are echoed back).
pub fn ddp_frame(data: &[u8]) {
    // Websocket text frames are UTF-8 by the time the session sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        matches!(ddp::parse(text, 64), Err(FrameError::TooLarge)),
        text.len() > 64
    );
    let id_of = |v: &Value| v.get("id").and_then(Value::as_str).map(str::to_string);
    match ddp::parse(text, MAX_FRAME) {
        Err(FrameError::Unknown(v)) => {
            let f = frame_json(ddp::error("Bad request", Some(&v)));
            assert_eq!(f["offendingMessage"], v);
        }
        Err(FrameError::BadField(v)) => {
            let f = frame_json(ddp::error(ddp::bad_field_reason(&v), Some(&v)));
            assert_eq!(f["offendingMessage"], v);
        }
        Err(FrameError::Malformed | FrameError::TooLarge) => {
            frame_json(ddp::error("Bad request", None));
        }
        Ok(ClientFrame::Connect { version, .. }) => {
            frame_json(ddp::connected("session"));
            frame_json(ddp::failed(&version));
        }
        Ok(ClientFrame::Ping { id }) => {
            let f = frame_json(ddp::pong(id.as_deref()));
            assert_eq!(id_of(&f), id);
        }
        Ok(ClientFrame::Pong { .. }) => {}
        Ok(ClientFrame::Method { id, method, params }) => {
            let not_found = MeteorError::new(404, &format!("Method '{method}' not found"));
            for f in [ddp::result_empty(&id), ddp::result_err(&id, &not_found)] {
                assert_eq!(id_of(&frame_json(f)).as_deref(), Some(id.as_str()));
            }
            let f = frame_json(ddp::updated(&id));
            assert_eq!(f["methods"][0], id.as_str());
            if method == "login" {
                // The DDP login reads its argument as the REST login reads its body.
                if let Some(Err(e)) = params.first().map(parse_credentials) {
                    assert_contract_error(&e.into(), LOGIN);
                }
            }
        }
        Ok(ClientFrame::Sub { id, name, params }) => {
            let mut subs = Subscriptions::default();
            // The server's defaults (WS_MAX_SUBSCRIPTIONS, WS_MAX_WATCHED_USERS).
            let limits = SubLimits {
                subscriptions: 256,
                watched_users: 5000,
            };
            // A subscriber who may see private settings, so every branch is reached.
            let who = Subscriber {
                uid: "fuzz-user",
                may_see_private_settings: &|| true,
            };
            let reply = match subs.sub(&id, &name, &params, limits, &who) {
                SubReply::Ready => ddp::ready(&id),
                SubReply::NoSub(e) => ddp::nosub(&id, e.as_ref()),
            };
            frame_json(reply);
            subs.unsub(&id);
            assert!(!subs.wants_events());
        }
        Ok(ClientFrame::Unsub { id }) => {
            assert_eq!(
                id_of(&frame_json(ddp::nosub(&id, None))).as_deref(),
                Some(id.as_str())
            );
        }
    }
}
