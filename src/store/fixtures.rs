//! Sample rows shared by the stores' own tests: each store must load back exactly
//! what these commit.

use chrono::{DateTime, TimeZone, Utc};

use crate::model::{Email, HistoryEntry, PreviousState, Source, Status, User};

pub fn t(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn user(id: &str, username: &str) -> User {
    User {
        id: id.into(),
        username: username.into(),
        name: format!("{username} Name"),
        bio: format!("{username} ✓ writes bios"),
        nickname: format!("{username}-nick"),
        preferences:
            serde_json::json!({"enableAutoAway": false, "idleTimeLimit": 90, "highlights": ["✓"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        emails: vec![Email {
            address: format!("{username}@example.com"),
            verified: true,
        }],
        password_hash: Some("$2b$10$hash".into()),
        roles: vec!["user".into(), "admin".into()],
        active: true,
        kind: crate::model::UserKind::User,
        status: Status::Busy,
        status_default: Status::Busy,
        status_connection: Status::Online,
        status_text: "in a meeting ✓".into(),
        status_source: Some("rest".into()),
        status_expires_at: Some(t(1_700_000_123_456)),
        status_id: Some("cal-42".into()),
        dnd: Some(r#"{"timeZone":"Europe/Berlin","ranges":[{"days":[0],"start":64800,"end":32400}],"text":"off"}"#.into()),
        previous_state: Some(PreviousState {
            status_default: Status::Away,
            status_text: "before".into(),
            status_source: Some("manual".into()),
            status_expires_at: Some(t(1_700_000_999_000)),
            status_id: Some("slot-7".into()),
        }),
        utc_offset: 5.5,
        created_at: t(1_600_000_000_001),
        updated_at: t(1_700_000_000_002),
        last_login: Some(t(1_700_000_000_003)),
        last_seen: Some(t(1_700_000_000_004)),
    }
}

pub fn history(id: &str, user: &str, at: i64) -> HistoryEntry {
    HistoryEntry {
        id: id.into(),
        user_id: user.into(),
        actor_id: Some("admin1".into()),
        old_status: Status::Online,
        new_status: Status::Away,
        old_text: "old".into(),
        new_text: format!("new {id}"),
        source: Source::Ddp,
        at: t(at),
    }
}
