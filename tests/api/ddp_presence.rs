//! The presence model (CONTRACT §5) driven by real DDP connections: login makes a user
//! online, per-connection online/away, the truth table, invisible, and a reconnect
//! that must not reset a chosen status.

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

const QUIET: Duration = Duration::from_millis(400);
const WAIT: Duration = Duration::from_secs(5);

/// (status, connectionStatus) as the user sees themself through REST.
async fn own(srv: &Server, s: &Session) -> (String, String) {
    let b = srv.own_status(s).await;
    (
        b["status"].as_str().unwrap_or_default().to_string(),
        b["connectionStatus"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[tokio::test]
async fn a_logged_in_connection_makes_the_user_online() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    assert_eq!(own(&srv, &alice).await, pair("offline", "offline"));
    // Connected but not logged in: nothing changes.
    let mut c = Ddp::connect(&srv).await;
    assert_eq!(own(&srv, &alice).await, pair("offline", "offline"));
    c.login_password("alice", "alice-pass-1").await.unwrap();
    assert_eq!(own(&srv, &alice).await, pair("online", "online"));
    let (status, _, p) = srv.get("users.getPresence", Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (p["presence"].clone(), p["connectionStatus"].clone()),
        (json!("online"), json!("online"))
    );
    c.close().await;
    srv.wait_status(&alice.user_id, "offline", WAIT).await;
    assert_eq!(own(&srv, &alice).await, pair("offline", "offline"));
}

#[tokio::test]
async fn two_connections_online_plus_away_then_both_away_then_closed_one_by_one() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;

    let mut c1 = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(w.expect_changed(WAIT).await, a.status6(ONLINE, ""));
    let mut c2 = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(own(&srv, &alice).await, pair("online", "online"));

    // online + away → online, and nobody is told anything.
    assert_eq!(
        c1.call("UserPresence:away", json!([])).await,
        Ok(json!(true))
    );
    assert_eq!(own(&srv, &alice).await, pair("online", "online"));
    w.expect_no_changed(QUIET).await;

    // away + away → away.
    assert_eq!(
        c2.call("UserPresence:away", json!([])).await,
        Ok(json!(true))
    );
    assert_eq!(own(&srv, &alice).await, pair("away", "away"));
    assert_eq!(w.expect_changed(WAIT).await, a.status6(AWAY, ""));

    // Back online on one → online.
    c2.call("UserPresence:online", json!([])).await.unwrap();
    assert_eq!(own(&srv, &alice).await, pair("online", "online"));
    assert_eq!(w.expect_changed(WAIT).await, a.status6(ONLINE, ""));
    c2.call("UserPresence:away", json!([])).await.unwrap();
    assert_eq!(w.expect_changed(WAIT).await, a.status6(AWAY, ""));

    // Close one: the other (away) still holds the user away.
    c1.close().await;
    srv.wait_live_connections(2, WAIT).await;
    assert_eq!(own(&srv, &alice).await, pair("away", "away"));
    w.expect_no_changed(QUIET).await;

    // Close the other: offline.
    c2.close().await;
    srv.wait_status(&alice.user_id, "offline", WAIT).await;
    assert_eq!(own(&srv, &alice).await, pair("offline", "offline"));
    assert_eq!(w.expect_changed(WAIT).await, a.status6(OFFLINE, ""));
    w.expect_no_changed(QUIET).await;
}

#[tokio::test]
async fn closing_the_online_connection_leaves_the_away_one() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let c1 = Ddp::connect_resume(&srv, &alice.token).await;
    let mut c2 = Ddp::connect_resume(&srv, &alice.token).await;
    c2.call("UserPresence:away", json!([])).await.unwrap();
    assert_eq!(own(&srv, &alice).await, pair("online", "online"));
    c1.close().await;
    srv.wait_status(&alice.user_id, "away", WAIT).await;
    assert_eq!(own(&srv, &alice).await, pair("away", "away"));
    c2.close().await;
    srv.wait_status(&alice.user_id, "offline", WAIT).await;
}

#[tokio::test]
async fn invisible_while_connected_shows_offline() {
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
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    w.drain_changed(QUIET).await;

    // Over DDP.
    assert_eq!(
        c.call("UserPresence:setDefaultStatus", json!(["offline"]))
            .await,
        Ok(json!(true))
    );
    assert_eq!(own(&srv, &alice).await, pair("offline", "online"));
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "offline");
    let mut got = vec![w.expect_changed(WAIT).await, w.expect_changed(WAIT).await];
    got.sort();
    let mut want = vec![
        a.status8(OFFLINE, "", "manual", None),
        a.presence(OFFLINE, ""),
    ];
    want.sort();
    assert_eq!(got, want);
    // Away on the connection changes nothing visible.
    c.call("UserPresence:away", json!([])).await.unwrap();
    assert_eq!(own(&srv, &alice).await, pair("offline", "away"));
    w.expect_no_changed(QUIET).await;
    c.call("UserPresence:online", json!([])).await.unwrap();

    // Back to online over REST, then invisible over REST.
    srv.set_status(&alice, json!({"status": "online"})).await;
    assert_eq!(own(&srv, &alice).await, pair("online", "online"));
    w.drain_changed(QUIET).await;
    let r = srv
        .set_status(&alice, json!({"status": "offline", "message": "hidden"}))
        .await;
    assert_status(&r, 200);
    assert_eq!(own(&srv, &alice).await, pair("offline", "online"));
    let ev = w
        .changed_matching(WAIT, |v| v["collection"] == "stream-notify-logged")
        .await
        .expect("user-status event");
    assert_eq!(ev, a.status8(OFFLINE, "hidden", "manual", None));
    // Closing the connection keeps them offline, and reconnecting keeps them invisible.
    c.close().await;
    srv.wait_live_connections(1, WAIT).await;
    assert_eq!(own(&srv, &alice).await, pair("offline", "offline"));
    let _c = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(own(&srv, &alice).await, pair("offline", "online"));
}

#[tokio::test]
async fn busy_and_away_choices_follow_the_truth_table_while_connected() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c1 = Ddp::connect_resume(&srv, &alice.token).await;
    // chosen busy: busy whether the connection is online or away.
    srv.set_status(&alice, json!({"status": "busy"})).await;
    assert_eq!(own(&srv, &alice).await, pair("busy", "online"));
    c1.call("UserPresence:away", json!([])).await.unwrap();
    assert_eq!(own(&srv, &alice).await, pair("busy", "away"));
    // chosen away: away for both.
    srv.set_status(&alice, json!({"status": "away"})).await;
    assert_eq!(own(&srv, &alice).await, pair("away", "away"));
    c1.call("UserPresence:online", json!([])).await.unwrap();
    assert_eq!(own(&srv, &alice).await, pair("away", "online"));
    // chosen online: the connection decides.
    srv.set_status(&alice, json!({"status": "online"})).await;
    assert_eq!(own(&srv, &alice).await, pair("online", "online"));
    c1.call("UserPresence:away", json!([])).await.unwrap();
    assert_eq!(own(&srv, &alice).await, pair("away", "away"));
}

#[tokio::test]
async fn a_reconnect_does_not_reset_a_chosen_status() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;

    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(w.expect_changed(WAIT).await, a.status6(ONLINE, ""));
    c.call("setUserStatus", json!(["busy", "focus"]))
        .await
        .unwrap();
    assert_eq!(
        w.expect_changed(WAIT).await,
        a.status8(BUSY, "focus", "manual", None)
    );

    // The connection drops (network change), then the client reconnects.
    c.close().await;
    srv.wait_status(&alice.user_id, "offline", WAIT).await;
    assert_eq!(
        w.expect_changed(WAIT).await,
        a.status8(OFFLINE, "focus", "manual", None)
    );
    let c = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(own(&srv, &alice).await, pair("busy", "online"));
    assert_eq!(
        w.expect_changed(WAIT).await,
        a.status8(BUSY, "focus", "manual", None)
    );
    let info = srv.info_of(&alice.user_id).await;
    assert_eq!(info["statusText"], "focus");

    // The same with a password login on a brand-new connection.
    c.close().await;
    srv.wait_status(&alice.user_id, "offline", WAIT).await;
    let mut d = Ddp::connect(&srv).await;
    d.login_password("alice", "alice-pass-1").await.unwrap();
    assert_eq!(own(&srv, &alice).await, pair("busy", "online"));
    // And UserPresence:online (what clients send when they become active) does not
    // reset it either.
    d.call("UserPresence:online", json!([])).await.unwrap();
    assert_eq!(own(&srv, &alice).await, pair("busy", "online"));
}

/// Issue 14 §3: one ordinary user alternating `UserPresence:away` / `UserPresence:online`
/// as fast as the socket takes them for 10 s used to make 31,755 history rows and as
/// many frames to every watcher. The presence methods are now limited per connection
/// (Rocket.Chat's DDP limiter: 10 calls of a method per 10 s) and repeats change nothing,
/// so history and watchers see a few changes per second at most.
#[tokio::test]
async fn a_presence_flood_is_rate_limited_and_coalesced() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let flo = srv.create_user("flo", "flo-pass-1", &["user"]).await;
    let watcher = srv.create_user("wat", "wat-pass-1", &["user"]).await;
    let mut w = Ddp::connect_resume(&srv, &watcher.token).await;
    w.sub_user_status("s").await;
    let mut c = Ddp::connect_resume(&srv, &flo.token).await;
    let start = std::time::Instant::now();
    let (mut sent, mut limited, mut n) = (0, 0, 0u64);
    while start.elapsed() < Duration::from_secs(10) {
        // A burst, pipelined, then its answers.
        for _ in 0..100 {
            n += 1;
            let method = if n % 2 == 0 {
                "UserPresence:online"
            } else {
                "UserPresence:away"
            };
            c.send(json!({"msg": "method", "id": format!("f{n}"), "method": method, "params": []}))
                .await;
            sent += 1;
        }
        let mut answered = 0;
        while answered < 100 {
            let f = c.next_json(WAIT).await.expect("an answer");
            if f["msg"] == "result" {
                answered += 1;
                if f["error"]["error"] == "too-many-requests" {
                    limited += 1;
                }
            }
        }
    }
    assert!(sent >= 1000, "only {sent} calls sent");
    assert!(limited >= sent - 60, "{limited} of {sent} calls limited");
    // The watcher saw a few changes per second at most.
    let mut frames = 0;
    while w.next_changed(QUIET).await.is_some() {
        frames += 1;
    }
    assert!(frames <= 60, "{frames} frames to a watcher in 10 s");
    let r = srv
        .get(
            &format!("users.statusHistory?userId={}&count=100", flo.user_id),
            Some(&admin),
        )
        .await;
    assert_status(&r, 200);
    let rows = r.2["total"].as_u64().unwrap();
    assert!(rows <= 60, "{rows} history rows in 10 s");
    // The connection still works and the limit lifts.
    c.send_raw(r#"{"msg":"ping","id":"p"}"#).await;
    let mut got_pong = false;
    for _ in 0..5 {
        if c.next_json(WAIT).await == Some(json!({"msg":"pong","id":"p"})) {
            got_pong = true;
            break;
        }
    }
    assert!(got_pong);
}

/// Issue 20's "duplicate frames" (5,021 at 100,000 connections): one frame per stream
/// and visible change, even on a connection that both subscribes to `user-status` and
/// watches the user (the fan-out queues each change once per connection). What the
/// load tool counted twice were two changes with the same status text: a watched
/// user's own connection closed (a slow consumer), so the user went offline and every
/// watcher got `[username, 0, <the same text>]`, a new frame Rocket.Chat sends too.
#[tokio::test]
async fn one_frame_per_stream_and_change_and_an_offline_repeats_the_text() {
    let srv = Server::start().await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let alice_ws = Ddp::connect_resume(&srv, &alice.token).await;
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;
    // Watching alice twice over (added twice, in two subs): still one frame.
    let watch = json!(["", {"added": [alice.user_id, alice.user_id]}]);
    assert_eq!(
        w.sub("p", "stream-user-presence", watch.clone()).await,
        json!({"msg": "ready", "subs": ["p"]})
    );
    w.send(json!({"msg": "sub", "id": "p2", "name": "stream-user-presence", "params": watch}))
        .await;
    w.drain_changed(QUIET).await;

    assert_status(
        &srv.set_status(&alice, json!({"status": "busy", "message": "bp|1|0"}))
            .await,
        200,
    );
    let frames = w.drain_changed(QUIET).await;
    let of = |stream: &str| -> Vec<Value> {
        frames
            .iter()
            .map(|t| serde_json::from_str::<Value>(t).expect("JSON"))
            .filter(|f| f["collection"] == stream)
            .map(|f| f["fields"]["args"][0].clone())
            .collect()
    };
    assert_eq!(
        of("stream-user-presence"),
        [json!(["alice", 3, "bp|1|0"])],
        "{frames:?}"
    );
    assert_eq!(of("stream-notify-logged").len(), 1, "{frames:?}");

    // Alice's only connection closes: offline, with the text she still has.
    alice_ws.close().await;
    let frames = w.drain_changed(Duration::from_secs(2)).await;
    let presence: Vec<Value> = frames
        .iter()
        .map(|t| serde_json::from_str::<Value>(t).expect("JSON"))
        .filter(|f| f["collection"] == "stream-user-presence")
        .map(|f| f["fields"]["args"][0].clone())
        .collect();
    assert_eq!(presence, [json!(["alice", 0, "bp|1|0"])], "{frames:?}");
}
