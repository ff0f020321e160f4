//! Status expiry (CONTRACT §4, end of setStatus; issue 6): a status set with
//! `expiresAt` reverts at that time to the previous `statusDefault` and `statusText`
//! (or `online` with an empty text when there was none), within one second, published
//! like any other change, also across restarts; a later manual change cancels it.

use crate::common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::ddp::{Ddp, Who, AWAY, BUSY, EVENT_WAIT};
use common::*;

const SET: &str = "users.setStatus";
/// How late an expiry may apply (CONTRACT §4: "within a second").
const GRACE: chrono::Duration = chrono::Duration::milliseconds(1000);

/// `setStatus` as `s`; must answer 200 `{"success":true}`.
async fn set_ok(srv: &Server, s: &Session, body: Value) {
    let reply = srv.set_status(s, body.clone()).await;
    assert_reply(&reply, 200, json!({"success": true}));
}

/// A temporary status `secs` seconds from now; returns the `expiresAt` sent (ms precision).
async fn set_temporary(
    srv: &Server,
    s: &Session,
    status: &str,
    text: &str,
    secs: i64,
) -> (String, DateTime<Utc>) {
    let at = iso_from_now(secs);
    set_ok(
        srv,
        s,
        json!({"status": status, "message": text, "expiresAt": at}),
    )
    .await;
    let t = parse_time(&at);
    (at, t)
}

/// Polls `users.getStatus` (as the admin) until `done` holds. Panics when `done` held
/// before `expires` (an early revert) or still does not hold for a request sent after
/// `expires + GRACE`.
async fn wait_for_revert(
    srv: &Server,
    user_id: &str,
    expires: DateTime<Utc>,
    done: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let sent = Utc::now();
        let body = srv.status_of(user_id).await;
        let received = Utc::now();
        if done(&body) {
            assert!(
                received >= expires,
                "reverted before expiresAt {expires} (seen at {received}): {body}"
            );
            return body;
        }
        assert!(
            sent <= expires + GRACE,
            "not reverted within {GRACE} of expiresAt {expires} (request sent at {sent}): {body}"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// Sleeps until `t` (plus `extra`).
async fn sleep_until(t: DateTime<Utc>, extra: Duration) {
    let left = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(left + extra).await;
}

/// `users.info` of `user_id` as `s`.
async fn info_as(srv: &Server, s: &Session, user_id: &str) -> Value {
    let (status, _, body) = srv
        .get(&format!("users.info?userId={}", enc(user_id)), Some(s))
        .await;
    assert_eq!(status, 200, "users.info: {body}");
    body["user"].clone()
}

/// The entry of `user_id` in `users.presence?ids=<id>` as `s` (None when not listed).
async fn presence_entry(srv: &Server, s: &Session, user_id: &str) -> Option<Value> {
    let (status, _, body) = srv
        .get(&format!("users.presence?ids={}", enc(user_id)), Some(s))
        .await;
    assert_eq!(status, 200, "users.presence: {body}");
    body["users"]
        .as_array()
        .expect("users.presence: users")
        .iter()
        .find(|u| u["_id"] == user_id)
        .cloned()
}

/// The pair (`statusSource`, `statusExpiresAt`) of a JSON object, `Null` when absent;
/// also asserts neither is present as an explicit `null`.
fn extras(v: &Value) -> (Value, Value) {
    let obj = v.as_object().expect("an object");
    for k in ["statusSource", "statusExpiresAt"] {
        assert!(
            obj.get(k) != Some(&Value::Null),
            "{k} must be absent rather than null: {v}"
        );
    }
    (
        obj.get("statusSource").cloned().unwrap_or(Value::Null),
        obj.get("statusExpiresAt").cloned().unwrap_or(Value::Null),
    )
}

/// `status`, `statusText` (from users.info) and the extras of getStatus, users.info and
/// users.presence, all seen by the admin, must be exactly these.
async fn assert_shows(
    srv: &Server,
    user_id: &str,
    status: &str,
    text: &str,
    source: Option<&str>,
    expires: Option<&str>,
) {
    let admin = srv.admin().await;
    let want = (json!(source), json!(expires));
    let st = srv.status_of(user_id).await;
    assert_eq!(st["status"], status, "users.getStatus: {st}");
    assert_eq!(extras(&st), want, "users.getStatus extras: {st}");
    let info = srv.info_of(user_id).await;
    assert_eq!(info["status"], status, "users.info: {info}");
    assert_eq!(info["statusText"], text, "users.info: {info}");
    assert_eq!(extras(&info), want, "users.info extras: {info}");
    let listed = presence_entry(srv, &admin, user_id).await;
    if status == "offline" && text.is_empty() {
        // CONTRACT §4: `ids` lists only users not offline or with a status text.
        assert_eq!(
            listed, None,
            "users.presence?ids lists an offline user without text"
        );
        return;
    }
    let p = listed.unwrap_or_else(|| panic!("{user_id} not listed by users.presence?ids"));
    assert_eq!(p["status"], status, "users.presence: {p}");
    // An empty text is left out, as Rocket.Chat's projection leaves out an unset field.
    if text.is_empty() {
        assert!(p.get("statusText").is_none(), "users.presence: {p}");
    } else {
        assert_eq!(p["statusText"], text, "users.presence: {p}");
    }
    assert_eq!(extras(&p), want, "users.presence extras: {p}");
}

// ------------------------------------------------------------------ restore

#[tokio::test]
async fn an_expired_status_restores_the_previous_status_and_text() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    assert_shows(&srv, &alice.user_id, "away", "base", Some("manual"), None).await;

    let (at, t) = set_temporary(&srv, &alice, "busy", "meeting", 2).await;
    assert_shows(
        &srv,
        &alice.user_id,
        "busy",
        "meeting",
        Some("manual"),
        Some(&at),
    )
    .await;

    let body = wait_for_revert(&srv, &alice.user_id, t, |b| b["status"] != "busy").await;
    assert_eq!(body["status"], "away", "{body}");
    assert_shows(&srv, &alice.user_id, "away", "base", None, None).await;
    // The user's own view agrees.
    let own = srv.own_status(&alice).await;
    assert_eq!(
        own,
        json!({"_id": alice.user_id, "status": "away", "connectionStatus": "offline", "success": true})
    );
}

#[tokio::test]
async fn with_no_previous_state_an_expired_status_becomes_online_with_empty_text() {
    let srv = Server::start().await;
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;
    // A fresh user never chose anything.
    assert_shows(&srv, &bob.user_id, "offline", "", None, None).await;
    let (at, t) = set_temporary(&srv, &bob, "busy", "on a call", 2).await;
    assert_shows(
        &srv,
        &bob.user_id,
        "busy",
        "on a call",
        Some("manual"),
        Some(&at),
    )
    .await;
    wait_for_revert(&srv, &bob.user_id, t, |b| b["status"] != "busy").await;
    assert_shows(&srv, &bob.user_id, "online", "", None, None).await;
    let info = srv.info_of(&bob.user_id).await;
    assert_eq!(info["statusDefault"], "online", "{info}");
}

#[tokio::test]
async fn a_temporary_text_alone_expires_back_to_the_previous_text() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "busy", "message": "base"})).await;
    let at = iso_from_now(2);
    set_ok(&srv, &alice, json!({"message": "brb", "expiresAt": at})).await;
    assert_shows(
        &srv,
        &alice.user_id,
        "busy",
        "brb",
        Some("manual"),
        Some(&at),
    )
    .await;
    let t = parse_time(&at);
    wait_for_revert(&srv, &alice.user_id, t, |b| {
        b.get("statusExpiresAt").is_none()
    })
    .await;
    assert_shows(&srv, &alice.user_id, "busy", "base", None, None).await;
}

// ------------------------------------------------------------------- cancel

#[tokio::test]
async fn a_later_manual_set_without_expires_at_cancels_the_pending_expiry() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    let (_, t) = set_temporary(&srv, &alice, "busy", "meeting", 2).await;
    set_ok(
        &srv,
        &alice,
        json!({"status": "online", "message": "lunch"}),
    )
    .await;
    assert_shows(
        &srv,
        &alice.user_id,
        "online",
        "lunch",
        Some("manual"),
        None,
    )
    .await;
    // Nothing happens at the old time, nor a while after it.
    sleep_until(t, Duration::from_millis(1500)).await;
    assert_shows(
        &srv,
        &alice.user_id,
        "online",
        "lunch",
        Some("manual"),
        None,
    )
    .await;
}

#[tokio::test]
async fn an_expires_at_of_null_or_empty_also_cancels_the_pending_expiry() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    set_ok(&srv, &bob, json!({"status": "away", "message": "base"})).await;
    let (_, t) = set_temporary(&srv, &alice, "busy", "meeting", 2).await;
    set_temporary(&srv, &bob, "busy", "meeting", 2).await;
    set_ok(&srv, &alice, json!({"status": "busy", "expiresAt": null})).await;
    set_ok(&srv, &bob, json!({"status": "busy", "expiresAt": ""})).await;
    for s in [&alice, &bob] {
        assert_shows(&srv, &s.user_id, "busy", "meeting", Some("manual"), None).await;
    }
    sleep_until(t, Duration::from_millis(1500)).await;
    for s in [&alice, &bob] {
        assert_shows(&srv, &s.user_id, "busy", "meeting", Some("manual"), None).await;
    }
}

#[tokio::test]
async fn a_ddp_set_user_status_cancels_the_pending_expiry() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    let (_, t) = set_temporary(&srv, &alice, "busy", "meeting", 2).await;
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    let r = c.call("setUserStatus", json!(["online", "back"])).await;
    assert_eq!(r, Ok(Value::Null), "setUserStatus");
    assert_shows(&srv, &alice.user_id, "online", "back", Some("manual"), None).await;
    sleep_until(t, Duration::from_millis(1500)).await;
    assert_shows(&srv, &alice.user_id, "online", "back", Some("manual"), None).await;
    c.close().await;
}

#[tokio::test]
async fn chained_temporary_statuses_restore_the_last_permanent_one() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    let (_, t1) = set_temporary(&srv, &alice, "busy", "meeting", 2).await;
    let (at2, t2) = set_temporary(&srv, &alice, "online", "quick call", 3).await;
    assert_shows(
        &srv,
        &alice.user_id,
        "online",
        "quick call",
        Some("manual"),
        Some(&at2),
    )
    .await;
    // The first expiry was replaced: nothing happens at its time.
    sleep_until(t1, Duration::from_millis(300)).await;
    assert_shows(
        &srv,
        &alice.user_id,
        "online",
        "quick call",
        Some("manual"),
        Some(&at2),
    )
    .await;
    // At the second one, the permanent status from before both comes back.
    wait_for_revert(&srv, &alice.user_id, t2, |b| {
        b.get("statusExpiresAt").is_none()
    })
    .await;
    assert_shows(&srv, &alice.user_id, "away", "base", None, None).await;
}

#[tokio::test]
async fn a_later_expires_at_for_the_same_status_moves_the_expiry() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    let (_, t1) = set_temporary(&srv, &alice, "busy", "meeting", 2).await;
    // Shorter: the new time wins even when it is earlier.
    let (at2, t2) = set_temporary(&srv, &alice, "busy", "meeting", 1).await;
    assert!(t2 < t1);
    assert_shows(
        &srv,
        &alice.user_id,
        "busy",
        "meeting",
        Some("manual"),
        Some(&at2),
    )
    .await;
    wait_for_revert(&srv, &alice.user_id, t2, |b| b["status"] != "busy").await;
    assert_shows(&srv, &alice.user_id, "away", "base", None, None).await;
    // ... and the old time does nothing any more.
    sleep_until(t1, Duration::from_millis(1200)).await;
    assert_shows(&srv, &alice.user_id, "away", "base", None, None).await;
}

// ------------------------------------------------------------------ restart

#[tokio::test]
async fn an_expiry_that_fell_due_while_the_server_was_stopped_applies_at_start_up() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    let (_, t) = set_temporary(&srv, &alice, "busy", "meeting", 2).await;
    let exit = srv.stop().await;
    assert!(exit.success(), "statusd exited with {exit} after SIGTERM");
    sleep_until(t, Duration::from_millis(500)).await;
    srv.start_again().await;
    // Right after start-up: reverted already.
    assert_shows(&srv, &alice.user_id, "away", "base", None, None).await;
    // It went through the ordinary change path: the history has the expiry.
    let (status, _, body) = srv.get("users.statusHistory?count=1", Some(&alice)).await;
    assert_eq!(status, 200, "{body}");
    let item = &body["items"][0];
    assert_eq!(
        (
            &item["source"],
            &item["actorId"],
            &item["previousStatus"],
            &item["status"],
            &item["previousStatusText"],
            &item["statusText"]
        ),
        (
            &json!("expiry"),
            &Value::Null,
            &json!("busy"),
            &json!("away"),
            &json!("meeting"),
            &json!("base")
        ),
        "{body}"
    );
    // And it stays reverted.
    srv.restart().await;
    assert_shows(&srv, &alice.user_id, "away", "base", None, None).await;
}

#[tokio::test]
async fn a_pending_expiry_survives_a_hard_kill_and_fires_on_time_with_an_event() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    let (at, t) = set_temporary(&srv, &alice, "busy", "meeting", 4).await;
    // No chance to flush anything: the due time must already be durable.
    srv.kill9();
    srv.start_again().await;
    assert_shows(
        &srv,
        &alice.user_id,
        "busy",
        "meeting",
        Some("manual"),
        Some(&at),
    )
    .await;
    let admin = srv.admin().await;
    let mut obs = Ddp::connect_resume(&srv, &admin.token).await;
    obs.sub_user_status("s1").await;
    let who = Who::created(&alice.user_id, "alice", &["user"]);
    let alice_frame = |v: &Value| v["fields"]["args"][0][0] == alice.user_id.as_str();
    let frame = obs
        .changed_matching(Duration::from_secs(8), alice_frame)
        .await
        .unwrap_or_else(|| {
            panic!(
                "no user-status event for alice's expiry; others: {:?}",
                obs.others
            )
        });
    let seen = Utc::now();
    assert_eq!(frame, who.status6(AWAY, "base"));
    assert!(seen >= t, "the expiry event arrived before expiresAt");
    assert!(
        seen <= t + GRACE + chrono::Duration::milliseconds(500),
        "the expiry event came at {seen}, expiresAt {t}"
    );
    assert_shows(&srv, &alice.user_id, "away", "base", None, None).await;
    obs.close().await;
}

// --------------------------------------------------------------- validation

#[tokio::test]
async fn past_and_malformed_expires_at_are_rejected_and_nothing_is_written() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    let invalid = body_meteor("error-invalid-date", "Invalid expiresAt date string", SET);
    let past = body_meteor("error-invalid-date", "expiresAt must be a future date", SET);
    for bad in [
        "tomorrow",
        "2030-13-01T00:00:00Z",
        "2030-01-01",
        "2030-01-01 10:00",
        "not a date at all",
        "1700000000000",
    ] {
        let reply = srv
            .set_status(
                &alice,
                json!({"status": "busy", "message": "meeting", "expiresAt": bad}),
            )
            .await;
        assert_reply(&reply, 400, invalid.clone());
    }
    for bad in [
        iso_from_now(-1),
        iso_from_now(-3600),
        "2001-01-01T00:00:00Z".to_string(),
        "1970-01-01T00:00:00.000Z".to_string(),
    ] {
        let reply = srv
            .set_status(
                &alice,
                json!({"status": "busy", "message": "meeting", "expiresAt": bad}),
            )
            .await;
        assert_reply(&reply, 400, past.clone());
    }
    // A number is not even the right shape (step 3).
    let reply = srv
        .set_status(
            &alice,
            json!({"status": "busy", "expiresAt": 4102444800000u64}),
        )
        .await;
    assert_reply(&reply, 400, body_match_error());
    assert_shows(&srv, &alice.user_id, "away", "base", Some("manual"), None).await;
    // An offset other than Z is fine.
    let at = (Utc::now() + chrono::Duration::hours(1))
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string();
    set_ok(&srv, &alice, json!({"status": "busy", "expiresAt": at})).await;
    let st = srv.status_of(&alice.user_id).await;
    assert_eq!(
        parse_time(st["statusExpiresAt"].as_str().expect("statusExpiresAt")),
        parse_time(&at),
        "{st}"
    );
    assert!(
        st["statusExpiresAt"].as_str().unwrap().ends_with('Z'),
        "statusExpiresAt is an ISO string in UTC: {st}"
    );
}

// ------------------------------------------------------------------- fields

#[tokio::test]
async fn get_status_users_info_and_presence_show_status_source_and_expires_at() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;
    let at = iso_from_now(3600);
    set_ok(
        &srv,
        &alice,
        json!({"status": "busy", "message": "offsite", "expiresAt": at}),
    )
    .await;
    let want = (json!("manual"), json!(at));
    // Self.
    let own = srv.own_status(&alice).await;
    assert_eq!(
        own,
        json!({"_id": alice.user_id, "status": "busy", "connectionStatus": "offline",
               "statusSource": "manual", "statusExpiresAt": at, "success": true})
    );
    let me = info_as(&srv, &alice, &alice.user_id).await;
    assert_eq!(extras(&me), want, "{me}");
    // Another plain user.
    let (status, _, other) = srv
        .get(
            &format!("users.getStatus?userId={}", enc(&alice.user_id)),
            Some(&bob),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        other,
        json!({"_id": alice.user_id, "status": "busy",
               "statusSource": "manual", "statusExpiresAt": at, "success": true})
    );
    let info = info_as(&srv, &bob, &alice.user_id).await;
    assert_eq!(extras(&info), want, "{info}");
    let p = presence_entry(&srv, &bob, &alice.user_id)
        .await
        .expect("alice in users.presence");
    assert_eq!(extras(&p), want, "{p}");
    // The full list too.
    let (status, _, all) = srv.get("users.presence", Some(&bob)).await;
    assert_eq!(status, 200);
    let entry = all["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["_id"] == alice.user_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("alice not in users.presence: {all}"));
    assert_eq!(extras(&entry), want, "{entry}");
    // A user who never set a status has neither field.
    let (_, _, b) = srv
        .get(
            &format!("users.getStatus?userId={}", enc(&bob.user_id)),
            Some(&alice),
        )
        .await;
    assert_eq!(
        b,
        json!({"_id": bob.user_id, "status": "offline", "success": true})
    );
    assert_eq!(
        extras(&info_as(&srv, &alice, &bob.user_id).await),
        (Value::Null, Value::Null)
    );
    // A permanent manual status has a source but no expiry.
    set_ok(&srv, &bob, json!({"status": "away"})).await;
    let (_, _, b) = srv
        .get(
            &format!("users.getStatus?userId={}", enc(&bob.user_id)),
            Some(&alice),
        )
        .await;
    assert_eq!(
        b,
        json!({"_id": bob.user_id, "status": "away", "statusSource": "manual", "success": true})
    );
}

// ----------------------------------------------------------------- realtime

#[tokio::test]
async fn expiry_is_published_on_both_streams_like_any_change() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let who = Who::created(&alice.user_id, "alice", &["user"]);
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;

    let mut obs = Ddp::connect_resume(&srv, &admin.token).await;
    obs.sub_user_status("s1").await;
    let v = obs
        .sub(
            "p1",
            "stream-user-presence",
            json!(["", {"added": [alice.user_id]}]),
        )
        .await;
    assert_eq!(v, json!({"msg": "ready", "subs": ["p1"]}));
    // The admin's own connection may have produced events; start clean.
    obs.drain_changed(Duration::from_millis(300)).await;

    let (at, t) = set_temporary(&srv, &alice, "busy", "meeting", 2).await;
    // The temporary status: the 8-element (8.6) args.
    assert_eq!(
        obs.expect_changed(EVENT_WAIT).await,
        who.status8(BUSY, "meeting", "manual", Some(&at))
    );
    assert_eq!(
        obs.expect_changed(EVENT_WAIT).await,
        who.presence(BUSY, "meeting")
    );
    // The expiry: nothing before the time, then the restored status.
    let early = (t - Utc::now() - chrono::Duration::milliseconds(100))
        .to_std()
        .unwrap_or(Duration::ZERO);
    obs.expect_no_changed(early).await;
    let wait = (t + GRACE + chrono::Duration::milliseconds(300) - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    let frame = obs.next_changed(wait).await.unwrap_or_else(|| {
        panic!(
            "no user-status event within a second of expiresAt; others: {:?}",
            obs.others
        )
    });
    assert_eq!(frame, who.status6(AWAY, "base"));
    assert_eq!(
        obs.expect_changed(EVENT_WAIT).await,
        who.presence(AWAY, "base")
    );
    obs.expect_no_changed(Duration::from_millis(500)).await;
    obs.close().await;
}

#[tokio::test]
async fn an_expiry_of_a_connected_user_follows_the_presence_table() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let c = Ddp::connect_resume(&srv, &alice.token).await;
    srv.wait_status(&alice.user_id, "online", Duration::from_secs(5))
        .await;
    // Previous choice: away while connected online → away.
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    let (_, t) = set_temporary(&srv, &alice, "busy", "meeting", 2).await;
    let own = srv.own_status(&alice).await;
    assert_eq!(
        (&own["status"], &own["connectionStatus"]),
        (&json!("busy"), &json!("online"))
    );
    wait_for_revert(&srv, &alice.user_id, t, |b| b["status"] != "busy").await;
    let own = srv.own_status(&alice).await;
    assert_eq!(
        own,
        json!({"_id": alice.user_id, "status": "away", "connectionStatus": "online", "success": true})
    );
    // With no previous state and a live connection, the expiry shows online.
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;
    let cb = Ddp::connect_resume(&srv, &bob.token).await;
    srv.wait_status(&bob.user_id, "online", Duration::from_secs(5))
        .await;
    let (_, t) = set_temporary(&srv, &bob, "busy", "x", 2).await;
    wait_for_revert(&srv, &bob.user_id, t, |b| b["status"] != "busy").await;
    assert_shows(&srv, &bob.user_id, "online", "", None, None).await;
    c.close().await;
    cb.close().await;
}
