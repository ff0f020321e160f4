//! Calendar events (issue 18 item 2, Rocket.Chat's `calendar-events.*`): create,
//! import by `externalId`, list by day, info, update, delete, exact bodies; and
//! `Calendar_BusyStatus_Enabled`: a busy event makes its owner busy (an `external`
//! claim with the subject as text) from its start to its end, within a second; a
//! manual change wins; the setting off changes nothing; a restart keeps it all.

use crate::common;

use std::time::{Duration, Instant};

use common::*;

async fn create(srv: &Server, s: &Session, body: Value) -> String {
    let r = srv.post_json("calendar-events.create", Some(s), body).await;
    assert_status(&r, 200);
    let id = r.2["id"].as_str().expect("an id").to_string();
    assert_reply(&r, 200, json!({"id": id, "success": true}));
    id
}

async fn info(srv: &Server, s: &Session, id: &str) -> Reply {
    srv.get(&format!("calendar-events.info?id={}", enc(id)), Some(s))
        .await
}

/// The reply with `_updatedAt` checked to be a time and taken out.
fn without_updated_at(mut v: Value) -> Value {
    fn strip(e: &mut Value) {
        if let Some(o) = e.as_object_mut() {
            let at = o.remove("_updatedAt").expect("_updatedAt");
            parse_time(at.as_str().expect("_updatedAt is a string"));
        }
    }
    if let Some(e) = v.get_mut("event") {
        strip(e);
    }
    if let Some(list) = v.get_mut("data").and_then(Value::as_array_mut) {
        list.iter_mut().for_each(strip);
    }
    v
}

async fn claims(srv: &Server, s: &Session) -> Value {
    let r = srv.get("statusd.claims.get", Some(s)).await;
    assert_status(&r, 200);
    r.2
}

/// Polls the caller's claims until `pred` holds; the moment it did.
async fn wait_claims(
    srv: &Server,
    s: &Session,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let c = claims(srv, s).await;
        if pred(&c) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "claims never matched: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_busy(c: &Value) -> bool {
    c["statusSource"] == "external" && c["statusDefault"] == "busy"
}

fn is_back(c: &Value) -> bool {
    c.get("statusSource").is_none() && c["statusDefault"] == "online"
}

/// Whole milliseconds, so the times round-trip exactly.
fn at(from_now_ms: i64) -> (String, Instant) {
    let t = chrono::Utc::now() + chrono::Duration::milliseconds(from_now_ms);
    (
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Instant::now() + Duration::from_millis(from_now_ms as u64),
    )
}

#[tokio::test]
async fn create_info_list_update_import_and_delete_with_exact_bodies() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let uid = alice.user_id.clone();

    let id = create(
        &srv,
        &alice,
        json!({"startTime": "2030-01-02T10:00:00.000Z", "endTime": "2030-01-02T11:00:00.000Z",
               "subject": "Planning", "description": "Q1", "busy": true}),
    )
    .await;
    let event = json!({"_id": id, "uid": uid, "startTime": "2030-01-02T10:00:00.000Z",
        "endTime": "2030-01-02T11:00:00.000Z", "subject": "Planning", "description": "Q1",
        "reminderMinutesBeforeStart": 5, "reminderTime": "2030-01-02T09:55:00.000Z",
        "notificationSent": false, "busy": true});
    let r = info(&srv, &alice, &id).await;
    assert_status(&r, 200);
    assert_eq!(
        without_updated_at(r.2),
        json!({"event": event, "success": true})
    );
    let r = srv
        .get("calendar-events.list?date=2030-01-02", Some(&alice))
        .await;
    assert_status(&r, 200);
    assert_eq!(
        without_updated_at(r.2),
        json!({"data": [event], "success": true})
    );
    let r = srv
        .get(
            "calendar-events.list?date=2030-01-03T08:00:00Z",
            Some(&alice),
        )
        .await;
    assert_reply(&r, 200, json!({"data": [], "success": true}));

    // Update: new subject and end; what is not given stays.
    let r = srv
        .post_json(
            "calendar-events.update",
            Some(&alice),
            json!({"eventId": id, "startTime": "2030-01-02T10:00:00.000Z",
                   "endTime": "2030-01-02T10:30:00.000Z", "subject": "Planning (short)",
                   "description": "Q1"}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let r = info(&srv, &alice, &id).await;
    assert_eq!(r.2["event"]["subject"], "Planning (short)");
    assert_eq!(r.2["event"]["endTime"], "2030-01-02T10:30:00.000Z");
    assert_eq!(r.2["event"]["description"], "Q1");

    // Import: by externalId, a second import updates the same event.
    let body = |subject: &str| {
        json!({"startTime": "2030-01-02T14:00:00.000Z", "endTime": "2030-01-02T15:00:00.000Z",
               "externalId": "ext-1", "subject": subject, "description": "",
               "meetingUrl": "https://meet.example/x", "reminderMinutesBeforeStart": 0})
    };
    let r = srv
        .post_json("calendar-events.import", Some(&alice), body("Sync"))
        .await;
    assert_status(&r, 200);
    let imported = r.2["id"].as_str().unwrap().to_string();
    assert_reply(&r, 200, json!({"id": imported, "success": true}));
    assert_ne!(imported, id);
    let r = srv
        .post_json("calendar-events.import", Some(&alice), body("Sync v2"))
        .await;
    assert_reply(&r, 200, json!({"id": imported, "success": true}));
    let r = info(&srv, &alice, &imported).await;
    assert_eq!(
        without_updated_at(r.2),
        json!({"event": {"_id": imported, "uid": uid, "startTime": "2030-01-02T14:00:00.000Z",
            "endTime": "2030-01-02T15:00:00.000Z", "subject": "Sync v2", "description": "",
            "meetingUrl": "https://meet.example/x", "reminderMinutesBeforeStart": 0,
            "notificationSent": false, "externalId": "ext-1"}, "success": true})
    );
    // Bob's import with the same externalId is his own event.
    let r = srv
        .post_json("calendar-events.import", Some(&bob), body("Bob's"))
        .await;
    assert_status(&r, 200);
    assert_ne!(r.2["id"], json!(imported));
    let r = srv
        .get("calendar-events.list?date=2030-01-02", Some(&alice))
        .await;
    let ids: Vec<&str> = r.2["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str(), imported.as_str()]);

    // Another user's event answers as a missing one.
    assert_reply(
        &info(&srv, &bob, &id).await,
        400,
        json!({"success": false, "error": "invalid-calendar-event"}),
    );
    let invalid = json!({"success": false, "error": "invalid-calendar-event"});
    let r = srv
        .post_json(
            "calendar-events.update",
            Some(&bob),
            json!({"eventId": id, "startTime": "2030-01-02T10:00:00.000Z", "subject": "mine", "description": ""}),
        )
        .await;
    assert_reply(&r, 400, invalid.clone());
    let r = srv
        .post_json("calendar-events.delete", Some(&bob), json!({"eventId": id}))
        .await;
    assert_reply(&r, 400, invalid.clone());
    assert_eq!(
        info(&srv, &alice, &id).await.2["event"]["subject"],
        "Planning (short)"
    );

    // Delete.
    let r = srv
        .post_json(
            "calendar-events.delete",
            Some(&alice),
            json!({"eventId": id}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_reply(
        &info(&srv, &alice, &id).await,
        400,
        json!({"success": false, "error": "invalid-calendar-event"}),
    );
    let r = srv
        .post_json(
            "calendar-events.delete",
            Some(&alice),
            json!({"eventId": id}),
        )
        .await;
    assert_reply(&r, 400, invalid);
}

#[tokio::test]
async fn bad_input_is_refused_with_rocket_chat_errors() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let refused_by = |route: &str, code: &str, reason: &str| {
        json!({"success": false, "error": format!("{reason} [{code}]"), "errorType": code,
               "details": {"method": route}})
    };
    let refused = |code: &str, reason: &str| refused_by("calendar-events.create", code, reason);
    let post = |body: Value| {
        let srv = &srv;
        let alice = &alice;
        async move {
            srv.post_json("calendar-events.create", Some(alice), body)
                .await
        }
    };
    let r = post(
        json!({"startTime": "2030-01-02T10:00:00Z", "endTime": "2030-01-02T09:00:00Z",
                        "subject": "s", "description": ""}),
    )
    .await;
    assert_reply(
        &r,
        400,
        refused(
            "error-invalid-date",
            "endTime must be after startTime and at most 7 days later",
        ),
    );
    let r = post(json!({"startTime": "tomorrow", "subject": "s", "description": ""})).await;
    assert_reply(&r, 400, refused("error-invalid-date", "Invalid startTime"));
    let r = post(
        json!({"startTime": "2030-01-02T10:00:00Z", "subject": "x".repeat(251),
                        "description": ""}),
    )
    .await;
    assert_reply(
        &r,
        400,
        refused(
            "error-invalid-params",
            "subject must be at most 250 characters",
        ),
    );
    let r = post(
        json!({"startTime": "2030-01-02T10:00:00Z", "subject": "s", "description": "",
                        "color": "red"}),
    )
    .await;
    assert_reply(
        &r,
        400,
        refused("invalid-params", "must NOT have additional properties"),
    );
    let r = srv
        .post_json(
            "calendar-events.import",
            Some(&alice),
            json!({"startTime": "2030-01-02T10:00:00Z", "subject": "s", "description": ""}),
        )
        .await;
    assert_reply(
        &r,
        400,
        refused_by(
            "calendar-events.import",
            "invalid-params",
            "must have required property 'externalId'",
        ),
    );
    let r = srv.get("calendar-events.list", Some(&alice)).await;
    assert_reply(
        &r,
        400,
        refused_by(
            "calendar-events.list",
            "invalid-params",
            "must have required property 'date'",
        ),
    );
    let r = srv
        .get("calendar-events.list?date=soon", Some(&alice))
        .await;
    assert_reply(
        &r,
        400,
        refused_by("calendar-events.list", "error-invalid-date", "Invalid date"),
    );
    let r = srv.get("calendar-events.info", Some(&alice)).await;
    assert_reply(
        &r,
        400,
        refused_by(
            "calendar-events.info",
            "invalid-params",
            "must have required property 'id'",
        ),
    );
}

#[tokio::test]
async fn a_busy_event_makes_its_owner_busy_from_start_to_end() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let (start, start_at) = at(1500);
    let (end, end_at) = at(3500);
    let id = create(
        &srv,
        &alice,
        json!({"startTime": start, "endTime": end, "subject": "Standup", "description": ""}),
    )
    .await;
    let busy_at = wait_claims(&srv, &alice, Duration::from_secs(5), is_busy).await;
    assert!(
        busy_at >= start_at && busy_at - start_at < Duration::from_secs(1),
        "busy {:?} after the start",
        busy_at.saturating_duration_since(start_at)
    );
    println!(
        "calendar start to busy: {} ms",
        (busy_at - start_at).as_millis()
    );
    let c = claims(&srv, &alice).await;
    assert_eq!(c["statusText"], "Standup", "{c}");
    assert_eq!(c["statusId"], format!("calendar:{id}"), "{c}");
    assert_eq!(c["statusExpiresAt"], json!(end), "{c}");
    let back_at = wait_claims(&srv, &alice, Duration::from_secs(5), is_back).await;
    assert!(
        back_at >= end_at && back_at - end_at < Duration::from_secs(1),
        "back {:?} after the end",
        back_at.saturating_duration_since(end_at)
    );
    println!(
        "calendar end to back: {} ms",
        (back_at - end_at).as_millis()
    );
    assert_eq!(claims(&srv, &alice).await["statusText"], "");
}

#[tokio::test]
async fn a_manual_change_during_the_event_wins_and_the_end_leaves_it() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let (start, _) = at(1000);
    let (end, end_at) = at(3000);
    create(
        &srv,
        &alice,
        json!({"startTime": start, "endTime": end, "subject": "Review", "description": ""}),
    )
    .await;
    wait_claims(&srv, &alice, Duration::from_secs(4), is_busy).await;
    let r = srv
        .set_status(&alice, json!({"status": "away", "message": "lunch"}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    tokio::time::sleep_until((end_at + Duration::from_millis(1500)).into()).await;
    let c = claims(&srv, &alice).await;
    assert_eq!(
        (&c["statusDefault"], &c["statusSource"], &c["statusText"]),
        (&json!("away"), &json!("manual"), &json!("lunch")),
        "{c}"
    );
}

#[tokio::test]
async fn with_the_setting_off_an_event_changes_no_status() {
    let srv = Server::start().await;
    srv.set_setting("Calendar_BusyStatus_Enabled", json!(false))
        .await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let before = claims(&srv, &alice).await;
    let (start, start_at) = at(800);
    let (end, end_at) = at(2500);
    create(
        &srv,
        &alice,
        json!({"startTime": start, "endTime": end, "subject": "Hidden", "description": ""}),
    )
    .await;
    tokio::time::sleep_until((start_at + Duration::from_millis(1000)).into()).await;
    assert_eq!(claims(&srv, &alice).await, before);
    tokio::time::sleep_until((end_at + Duration::from_millis(700)).into()).await;
    assert_eq!(claims(&srv, &alice).await, before);
}

#[tokio::test]
async fn events_survive_restarts_and_fire_once() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    // A start that falls due while the server is down applies at start-up.
    let (start, start_at) = at(1000);
    let (end, end_at) = at(6000);
    let id = create(
        &srv,
        &alice,
        json!({"startTime": start, "endTime": end, "subject": "Offsite", "description": ""}),
    )
    .await;
    srv.stop().await;
    tokio::time::sleep_until((start_at + Duration::from_millis(500)).into()).await;
    srv.start_again().await;
    let alice = srv.login("alice", "alice-pass-1").await;
    assert!(is_busy(&claims(&srv, &alice).await));
    // A restart during the event keeps it, and the end still comes.
    srv.restart().await;
    let alice = srv.login("alice", "alice-pass-1").await;
    let c = claims(&srv, &alice).await;
    assert!(is_busy(&c), "{c}");
    let back_at = wait_claims(&srv, &alice, Duration::from_secs(8), is_back).await;
    assert!(back_at - end_at < Duration::from_secs(1));
    // Fired once: after another restart nothing comes back.
    srv.restart().await;
    let alice = srv.login("alice", "alice-pass-1").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(is_back(&claims(&srv, &alice).await));
    assert_status(&info(&srv, &alice, &id).await, 200);
}

#[tokio::test]
async fn a_deleted_users_events_go_with_them() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    create(
        &srv,
        &alice,
        json!({"startTime": "2030-01-02T10:00:00Z", "subject": "s", "description": ""}),
    )
    .await;
    let r = srv
        .post_json(
            "users.delete",
            Some(&admin),
            json!({"userId": alice.user_id}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(stored_events(&srv), 0);
}

/// How many calendar events the store holds, read as another process would.
fn stored_events(srv: &Server) -> i64 {
    let url = srv.database_url().to_string();
    let sql = "SELECT COUNT(*) FROM calendar_events";
    std::thread::spawn(move || -> i64 {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let c = rusqlite::Connection::open(path).expect("open the store");
            c.query_row(sql, [], |r| r.get(0)).expect("count")
        } else {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            c.query_one(sql, &[]).expect("count").get(0)
        }
    })
    .join()
    .expect("the store thread panicked")
}

#[tokio::test]
async fn deleting_or_moving_an_event_during_it_ends_its_busy_status() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let (start, _) = at(800);
    let (end, _) = at(20_000);
    let id = create(
        &srv,
        &alice,
        json!({"startTime": start, "endTime": end, "subject": "Long", "description": ""}),
    )
    .await;
    wait_claims(&srv, &alice, Duration::from_secs(3), is_busy).await;
    // Moved later: the claim ends now and comes again at the new start.
    let (start2, start2_at) = at(1500);
    let r = srv
        .post_json(
            "calendar-events.update",
            Some(&alice),
            json!({"eventId": id, "startTime": start2, "endTime": end, "subject": "Long",
                   "description": ""}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert!(is_back(&claims(&srv, &alice).await));
    let busy_at = wait_claims(&srv, &alice, Duration::from_secs(4), is_busy).await;
    assert!(busy_at >= start2_at && busy_at - start2_at < Duration::from_secs(1));
    // Deleted: the claim ends at once.
    let r = srv
        .post_json(
            "calendar-events.delete",
            Some(&alice),
            json!({"eventId": id}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let c = claims(&srv, &alice).await;
    assert!(is_back(&c), "{c}");
}
