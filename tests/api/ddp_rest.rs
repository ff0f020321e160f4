//! REST and DDP see the same changes: a REST `users.setStatus` reaches other users'
//! DDP subscriptions (Rocket.Chat bugs #18587 / #35294 must not exist here), and a DDP
//! change is visible through REST at once.

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

const QUIET: Duration = Duration::from_millis(400);

#[tokio::test]
async fn a_rest_status_change_reaches_another_users_ddp_subscriptions() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let mut w = Ddp::connect_resume(&srv, &bob.token).await;
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

    // Alice has no realtime connection at all: REST only.
    let r = srv
        .set_status(&alice, json!({"status": "busy", "message": "meeting"}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let mut got = vec![
        w.expect_changed(EVENT_WAIT).await,
        w.expect_changed(EVENT_WAIT).await,
    ];
    got.sort();
    let mut want = vec![
        a.status8(BUSY, "meeting", "manual", None),
        a.presence(BUSY, "meeting"),
    ];
    want.sort();
    assert_eq!(got, want);
    w.expect_no_changed(QUIET).await;

    // Alice online over DDP, then a REST change while connected.
    let _ac = Ddp::connect_resume(&srv, &alice.token).await;
    w.expect_no_changed(QUIET).await; // busy stays busy: nothing visible changed
    srv.set_status(&alice, json!({"status": "away"})).await;
    let ev = w
        .changed_matching(EVENT_WAIT, |v| v["collection"] == "stream-notify-logged")
        .await
        .expect("user-status event");
    assert_eq!(ev, a.status8(AWAY, "meeting", "manual", None));
    w.drain_changed(QUIET).await;

    // An admin changing alice's status through REST (edit-other-user-info) too.
    let admin = srv.admin().await;
    let r = srv
        .set_status(
            &admin,
            json!({"userId": alice.user_id, "status": "online", "message": "set by admin"}),
        )
        .await;
    assert_status(&r, 200);
    let ev = w
        .changed_matching(EVENT_WAIT, |v| v["collection"] == "stream-notify-logged")
        .await
        .expect("user-status event");
    assert_eq!(ev, a.status8(ONLINE, "set by admin", "manual", None));
}

#[tokio::test]
async fn a_ddp_change_is_visible_in_rest_at_once() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    c.call("setUserStatus", json!(["busy", "deep work"]))
        .await
        .unwrap();
    // No polling: the change is committed before the method's result.
    let s = srv
        .get(
            &format!("users.getStatus?userId={}", alice.user_id),
            Some(&bob),
        )
        .await;
    assert_reply(
        &s,
        200,
        json!({"_id": alice.user_id, "status": "busy", "statusSource": "manual", "success": true}),
    );
    let s = srv.own_status(&alice).await;
    assert_eq!(
        s,
        json!({"_id": alice.user_id, "status": "busy", "connectionStatus": "online", "statusSource": "manual", "success": true})
    );
    assert_eq!(srv.info_of(&alice.user_id).await["statusText"], "deep work");
    let (st, _, p) = srv
        .get(&format!("users.presence?ids={}", alice.user_id), Some(&bob))
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["users"][0]["status"], "busy", "{p}");
    assert_eq!(p["users"][0]["statusText"], "deep work", "{p}");
}
