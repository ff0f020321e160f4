//! Issue 19 items 1 and 4, statusd's own extensions: a user's last seen and last login
//! (the `statusd` object of `users.info` and `users.presence`, under the setting
//! `Statusd_LastSeen_Visibility` and the preference `statusdHideLastSeen`), and the last
//! distinct statuses a user set (`GET statusd.recentStatuses`). Exact bodies.

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(400);
const SETTING: &str = "Statusd_LastSeen_Visibility";

/// The `statusd` object of `users.info?userId=<id>` as `viewer` (Null when left out).
async fn statusd_of(srv: &Server, viewer: &Session, id: &str) -> Value {
    let r = srv
        .get(&format!("users.info?userId={}", enc(id)), Some(viewer))
        .await;
    assert_status(&r, 200);
    r.2["user"]["statusd"].clone()
}

/// Connects `s` over DDP, then closes it and waits until the user shows offline;
/// returns the times just before the close and just after the user was offline.
async fn come_and_go(
    srv: &Server,
    s: &Session,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let c = Ddp::connect_resume(srv, &s.token).await;
    srv.wait_status(&s.user_id, "online", WAIT).await;
    let before = chrono::Utc::now() - chrono::Duration::milliseconds(5);
    c.close().await;
    srv.wait_status(&s.user_id, "offline", WAIT).await;
    (
        before,
        chrono::Utc::now() + chrono::Duration::milliseconds(5),
    )
}

fn time_of(v: &Value) -> chrono::DateTime<chrono::Utc> {
    parse_time(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
}

#[tokio::test]
async fn last_seen_appears_when_the_last_connection_closes_and_survives_a_restart() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let login = srv.info_of(&alice.user_id).await["lastLogin"].clone();

    // Never seen: nothing for others (the login alone is not shown to them).
    assert_eq!(statusd_of(&srv, &bob, &alice.user_id).await, Value::Null);

    // Online on two connections: nothing, and still nothing after the first closes.
    let c1 = Ddp::connect_resume(&srv, &alice.token).await;
    let c2 = Ddp::connect_resume(&srv, &alice.token).await;
    srv.wait_status(&alice.user_id, "online", WAIT).await;
    assert_eq!(statusd_of(&srv, &bob, &alice.user_id).await, Value::Null);
    c1.close().await;
    srv.wait_live_connections(1, WAIT).await;
    assert_eq!(statusd_of(&srv, &bob, &alice.user_id).await, Value::Null);

    let before = chrono::Utc::now() - chrono::Duration::milliseconds(5);
    c2.close().await;
    srv.wait_status(&alice.user_id, "offline", WAIT).await;
    let after = chrono::Utc::now() + chrono::Duration::milliseconds(5);
    let seen = statusd_of(&srv, &bob, &alice.user_id).await;
    let last_seen = seen["lastSeen"].clone();
    assert_eq!(seen, json!({"lastLogin": login, "lastSeen": last_seen}));
    let t = time_of(&last_seen);
    assert!(before <= t && t <= after, "{before} <= {t} <= {after}");

    // users.presence with `from` lists her, with the same object.
    let from = enc(&(before - chrono::Duration::seconds(1)).to_rfc3339());
    let r = srv
        .get(&format!("users.presence?from={from}"), Some(&bob))
        .await;
    assert_status(&r, 200);
    let entry = r.2["users"]
        .as_array()
        .and_then(|l| l.iter().find(|u| u["_id"] == alice.user_id.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("alice in {}", r.2));
    assert_eq!(
        entry["statusd"],
        json!({"lastLogin": login, "lastSeen": last_seen})
    );

    // users.list too.
    let r = srv.get("users.list?count=100", Some(&bob)).await;
    assert_status(&r, 200);
    let listed = r.2["users"]
        .as_array()
        .and_then(|l| l.iter().find(|u| u["_id"] == alice.user_id.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("alice in {}", r.2));
    assert_eq!(
        listed["statusd"],
        json!({"lastLogin": login, "lastSeen": last_seen})
    );

    // Kept in the store.
    srv.restart().await;
    let bob = srv.login("bob", "bob-pass-1").await;
    assert_eq!(
        statusd_of(&srv, &bob, &alice.user_id).await["lastSeen"],
        last_seen
    );

    // Back online: nothing again.
    let c = Ddp::connect_resume(&srv, &alice.token).await;
    srv.wait_status(&alice.user_id, "online", WAIT).await;
    assert_eq!(statusd_of(&srv, &bob, &alice.user_id).await, Value::Null);
    c.close().await;
}

#[tokio::test]
async fn the_setting_decides_who_sees_last_seen() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    come_and_go(&srv, &alice).await;

    // The default is `everyone`, and it is public.
    let r = srv.get("settings.public?count=100", None).await;
    assert_status(&r, 200);
    let listed = r.2["settings"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["_id"] == SETTING))
        .cloned();
    assert_eq!(
        listed,
        Some(json!({"_id": SETTING, "value": "everyone"})),
        "{}",
        r.2
    );
    for viewer in [&admin, &alice, &bob] {
        assert!(statusd_of(&srv, viewer, &alice.user_id).await["lastSeen"].is_string());
    }

    srv.set_setting(SETTING, json!("admins")).await;
    assert!(statusd_of(&srv, &admin, &alice.user_id).await["lastSeen"].is_string());
    assert!(statusd_of(&srv, &alice, &alice.user_id).await["lastSeen"].is_string());
    assert_eq!(statusd_of(&srv, &bob, &alice.user_id).await, Value::Null);

    srv.set_setting(SETTING, json!("off")).await;
    for viewer in [&admin, &alice, &bob] {
        assert_eq!(statusd_of(&srv, viewer, &alice.user_id).await, Value::Null);
    }

    // Only the three values.
    let r = srv
        .post_json(
            &format!("settings/{SETTING}"),
            Some(&admin),
            json!({"value": "friends"}),
        )
        .await;
    assert_status(&r, 400);
}

#[tokio::test]
async fn a_user_who_hides_their_last_seen_shows_it_only_to_admins_and_themself() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    come_and_go(&srv, &alice).await;

    let r = srv
        .post_json(
            "users.setPreferences",
            Some(&alice),
            json!({"data": {"statusdHideLastSeen": true}}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(statusd_of(&srv, &bob, &alice.user_id).await, Value::Null);
    assert!(statusd_of(&srv, &admin, &alice.user_id).await["lastSeen"].is_string());
    assert!(statusd_of(&srv, &alice, &alice.user_id).await["lastSeen"].is_string());
    // Admins only sees it too; off hides it from everyone.
    srv.set_setting(SETTING, json!("admins")).await;
    assert!(statusd_of(&srv, &admin, &alice.user_id).await["lastSeen"].is_string());

    // Not a boolean: refused as every preference of the wrong type.
    let r = srv
        .post_json(
            "users.setPreferences",
            Some(&alice),
            json!({"data": {"statusdHideLastSeen": "yes"}}),
        )
        .await;
    assert_status(&r, 400);

    let r = srv
        .post_json(
            "users.setPreferences",
            Some(&alice),
            json!({"data": {"statusdHideLastSeen": false}}),
        )
        .await;
    assert_status(&r, 200);
    srv.set_setting(SETTING, json!("everyone")).await;
    assert!(statusd_of(&srv, &bob, &alice.user_id).await["lastSeen"].is_string());
}

#[tokio::test]
async fn an_invisible_user_is_not_given_away_by_last_seen_or_login() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let (before, after) = come_and_go(&srv, &alice).await;
    let seen = statusd_of(&srv, &bob, &alice.user_id).await["lastSeen"].clone();
    let t = time_of(&seen);
    assert!(before <= t && t <= after);

    // Invisible, connected, then gone: the last seen does not move.
    let r = srv.set_status(&alice, json!({"status": "offline"})).await;
    assert_status(&r, 200);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c = Ddp::connect_resume(&srv, &alice.token).await;
    srv.wait_live_connections(1, WAIT).await;
    assert_eq!(
        statusd_of(&srv, &bob, &alice.user_id).await["lastSeen"],
        seen
    );
    c.close().await;
    srv.wait_live_connections(0, WAIT).await;
    assert_eq!(
        statusd_of(&srv, &bob, &alice.user_id).await["lastSeen"],
        seen
    );

    // A login while invisible: admins see it, others do not.
    let again = srv.login("alice", "alice-pass-1").await;
    let login = srv.info_of(&alice.user_id).await["lastLogin"].clone();
    assert!(time_of(&login) > t);
    assert_eq!(
        statusd_of(&srv, &bob, &alice.user_id).await,
        json!({"lastSeen": seen})
    );
    assert_eq!(
        statusd_of(&srv, &admin, &alice.user_id).await,
        json!({"lastLogin": login, "lastSeen": seen})
    );
    assert_eq!(
        statusd_of(&srv, &again, &alice.user_id).await,
        json!({"lastLogin": login, "lastSeen": seen})
    );
}

#[tokio::test]
async fn the_presence_events_keep_their_shape_when_a_user_is_last_seen() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;
    assert_eq!(
        w.sub(
            "p",
            "stream-user-presence",
            json!(["", {"added": [alice.user_id]}])
        )
        .await,
        json!({"msg": "ready", "subs": ["p"]})
    );
    let c = Ddp::connect_resume(&srv, &alice.token).await;
    let mut got = vec![w.expect_changed(WAIT).await, w.expect_changed(WAIT).await];
    got.sort();
    let mut want = vec![a.status6(1, ""), a.presence(1, "")];
    want.sort();
    assert_eq!(got, want);
    c.close().await;
    // Exactly Rocket.Chat's frames: no element added for the last seen.
    let mut got = vec![w.expect_changed(WAIT).await, w.expect_changed(WAIT).await];
    got.sort();
    let mut want = vec![a.status6(0, ""), a.presence(0, "")];
    want.sort();
    assert_eq!(got, want);
    w.expect_no_changed(QUIET).await;
    assert!(statusd_of(&srv, &carol, &alice.user_id).await["lastSeen"].is_string());
}

// ------------------------------------------------------------ recent statuses

async fn recent(srv: &Server, s: &Session, query: &str) -> Reply {
    srv.get(&format!("statusd.recentStatuses{query}"), Some(s))
        .await
}

fn pairs(body: &Value) -> Vec<(String, String)> {
    body["statuses"]
        .as_array()
        .unwrap_or_else(|| panic!("statuses in {body}"))
        .iter()
        .map(|s| {
            assert!(s["setAt"].is_string(), "{s}");
            (
                s["status"].as_str().unwrap_or_default().to_string(),
                s["statusText"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn p(status: &str, text: &str) -> (String, String) {
    (status.to_string(), text.to_string())
}

#[tokio::test]
async fn recent_statuses_are_the_last_five_distinct_most_recent_first() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;

    let r = recent(&srv, &alice, "").await;
    assert_reply(&r, 200, json!({"statuses": [], "success": true}));

    // Five text changes (the most a minute allows), then status-only changes that
    // keep the text.
    let changes = [
        json!({"status": "busy", "message": "In a meeting"}),
        json!({"status": "away", "message": "Lunch"}),
        json!({"status": "online", "message": "a"}),
        json!({"status": "online", "message": "b"}),
        json!({"status": "busy", "message": "In a meeting"}),
        json!({"status": "away"}),
        json!({"status": "busy"}),
        json!({"status": "online"}),
    ];
    for change in changes {
        let r = srv.set_status(&alice, change).await;
        assert_status(&r, 200);
    }
    // A change made for her by an admin is not one she set.
    let r = srv
        .set_status(
            &admin,
            json!({"userId": alice.user_id, "status": "away", "message": "by admin"}),
        )
        .await;
    assert_status(&r, 200);

    // (away, Lunch) is the sixth distinct pair; the first (busy, In a meeting) collapsed
    // into its later repeat.
    let want = vec![
        p("online", "In a meeting"),
        p("busy", "In a meeting"),
        p("away", "In a meeting"),
        p("online", "b"),
        p("online", "a"),
    ];
    let r = recent(&srv, &alice, "").await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    assert_eq!(pairs(&r.2), want);
    let r = recent(&srv, &alice, "?username=alice").await;
    assert_eq!(pairs(&r.2), want);

    // Another user's: with view-full-other-user-info only.
    let r = recent(&srv, &bob, &format!("?userId={}", alice.user_id)).await;
    assert_reply(&r, 403, body_403());
    let r = recent(&srv, &admin, &format!("?userId={}", alice.user_id)).await;
    assert_status(&r, 200);
    assert_eq!(pairs(&r.2), want);
    let r = recent(&srv, &admin, "?userId=nobody").await;
    assert_status(&r, 400);
    assert_eq!(r.2["errorType"], "error-invalid-user", "{}", r.2);

    // No login, no answer.
    let r = srv.get("statusd.recentStatuses", None).await;
    assert_reply(&r, 401, body_401());
}
