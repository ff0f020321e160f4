//! Subscriptions (`stream-notify-logged` / `user-status`, `stream-user-presence`) and
//! their `changed` frames, compared byte for byte with CONTRACT §7.

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

const QUIET: Duration = Duration::from_millis(400);

#[tokio::test]
async fn user_status_sub_is_ready_in_both_param_forms() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let mut c = Ddp::connect_resume(&srv, &admin.token).await;
    assert_eq!(
        c.sub("a", "stream-notify-logged", json!(["user-status", false]))
            .await,
        json!({"msg": "ready", "subs": ["a"]})
    );
    assert_eq!(
        c.sub(
            "b",
            "stream-notify-logged",
            json!(["user-status", {"useCollection": false, "args": []}])
        )
        .await,
        json!({"msg": "ready", "subs": ["b"]})
    );
}

#[tokio::test]
async fn sub_before_login_and_unknown_streams_get_nosub_with_an_error() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let mut c = Ddp::connect(&srv).await;
    for (name, params) in [
        ("stream-notify-logged", json!(["user-status", false])),
        (
            "stream-user-presence",
            json!(["", {"added": [admin.user_id]}]),
        ),
    ] {
        let v = c.sub("s1", name, params).await;
        assert_eq!(v["msg"], "nosub", "{name} before login: {v}");
        assert_eq!(v["id"], "s1", "{v}");
        let e = &v["error"];
        assert_eq!(e["errorType"], "Meteor.Error", "{name} before login: {v}");
        assert!(e["reason"].is_string() && e["message"].is_string(), "{v}");
        assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    }
    c.login_resume(&admin.token).await.unwrap();
    let v = c.sub("s2", "no-such-stream", json!([])).await;
    assert_eq!(
        v,
        json!({"msg": "nosub", "id": "s2", "error": meteor_error(json!(404), "Subscription 'no-such-stream' not found")})
    );
    // The refused subs left nothing behind: a change produces no event here.
    srv.set_status(&admin, json!({"status": "busy"})).await;
    c.expect_no_changed(QUIET).await;
}

#[tokio::test]
async fn user_status_changed_frames_are_byte_exact_and_unsub_stops_them() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let b = Who::created(&bob.user_id, "bob", &["user"]);

    let mut w1 = Ddp::connect_resume(&srv, &bob.token).await;
    w1.sub_user_status("false-form").await;
    let mut w2 = Ddp::connect_resume(&srv, &bob.token).await;
    assert_eq!(
        w2.sub(
            "collection-form",
            "stream-notify-logged",
            json!(["user-status", {"useCollection": false, "args": []}])
        )
        .await,
        json!({"msg": "ready", "subs": ["collection-form"]})
    );
    // w1 sees w2's login? No: bob was already online through w1.
    w1.expect_no_changed(QUIET).await;

    // A connection-only change of a user who never set a status: exactly 6 elements.
    let mut ac = Ddp::connect(&srv).await;
    ac.login_password("alice", "alice-pass-1").await.unwrap();
    let want = a.status6(ONLINE, "");
    assert_eq!(w1.expect_changed(EVENT_WAIT).await, want);
    assert_eq!(w2.expect_changed(EVENT_WAIT).await, want);

    // A manual change (DDP): statusSource "manual" and statusExpiresAt null appended.
    assert_eq!(
        ac.call("setUserStatus", json!(["busy", "in a call"])).await,
        Ok(Value::Null)
    );
    let want = a.status8(BUSY, "in a call", "manual", None);
    assert_eq!(w1.expect_changed(EVENT_WAIT).await, want);
    assert_eq!(w2.expect_changed(EVENT_WAIT).await, want);
    // The changer's own connection has no subscription, so nothing arrives there.
    ac.expect_no_changed(QUIET).await;

    // Text needing escapes goes through JSON escaping, byte for byte.
    tokio::time::sleep(Duration::from_millis(1100)).await; // 1 call/s for setUserStatus
    let text = "q\"uote\\ & <b> ünï 😀";
    assert_eq!(
        ac.call("setUserStatus", json!(["away", text])).await,
        Ok(Value::Null)
    );
    let want = a.status8(AWAY, text, "manual", None);
    assert_eq!(w1.expect_changed(EVENT_WAIT).await, want);
    assert_eq!(w2.expect_changed(EVENT_WAIT).await, want);

    // Unsubscribe w1: answered with a bare nosub, and no more events there.
    assert_eq!(
        w1.unsub("false-form").await,
        json!({"msg": "nosub", "id": "false-form"})
    );
    // Connection closes keep the manual source (8 elements).
    ac.close().await;
    let want = a.status8(OFFLINE, text, "manual", None);
    assert_eq!(w2.expect_changed(EVENT_WAIT).await, want);
    w1.expect_no_changed(QUIET).await;

    // Bob's own change reaches his own subscribed connection too.
    srv.set_status(&bob, json!({"message": "hello"})).await;
    assert_eq!(
        w2.expect_changed(EVENT_WAIT).await,
        b.status8(ONLINE, "hello", "manual", None)
    );
    w1.expect_no_changed(QUIET).await;
    w2.expect_no_changed(QUIET).await;
}

#[tokio::test]
async fn user_presence_watch_set_added_later_subs_and_removed() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let b = Who::created(&bob.user_id, "bob", &["user"]);

    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    assert_eq!(
        w.sub(
            "p1",
            "stream-user-presence",
            json!(["", {"added": [alice.user_id]}])
        )
        .await,
        json!({"msg": "ready", "subs": ["p1"]})
    );

    // Alice's changes arrive, exactly; bob's do not.
    srv.set_status(&alice, json!({"status": "away", "message": "lunch"}))
        .await;
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        a.presence(AWAY, "lunch")
    );
    srv.set_status(&bob, json!({"status": "busy"})).await;
    w.expect_no_changed(QUIET).await;

    // A later sub only changes the watch set: a bare nosub, no second `ready`.
    assert_eq!(
        w.sub(
            "p2",
            "stream-user-presence",
            json!(["", {"added": [bob.user_id]}])
        )
        .await,
        json!({"msg": "nosub", "id": "p2"})
    );
    srv.set_status(&bob, json!({"status": "online", "message": "back"}))
        .await;
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        b.presence(ONLINE, "back")
    );
    srv.set_status(&alice, json!({"status": "busy", "message": ""}))
        .await;
    assert_eq!(w.expect_changed(EVENT_WAIT).await, a.presence(BUSY, ""));

    // `removed` stops alice's events; bob's continue.
    assert_eq!(
        w.sub(
            "p3",
            "stream-user-presence",
            json!(["", {"removed": [alice.user_id]}])
        )
        .await,
        json!({"msg": "nosub", "id": "p3"})
    );
    srv.set_status(&alice, json!({"status": "away"})).await;
    w.expect_no_changed(QUIET).await;
    let mut bc = Ddp::connect_resume(&srv, &bob.token).await;
    // Bob's chosen status is online, so his live connection shows online: no change.
    bc.call("UserPresence:away", json!([])).await.unwrap();
    assert_eq!(w.expect_changed(EVENT_WAIT).await, b.presence(AWAY, "back"));
    w.expect_no_changed(QUIET).await;

    // Unsubscribing the first sub ends the stream.
    assert_eq!(w.unsub("p1").await, json!({"msg": "nosub", "id": "p1"}));
    bc.call("UserPresence:online", json!([])).await.unwrap();
    w.expect_no_changed(QUIET).await;
}

#[tokio::test]
async fn both_streams_on_one_connection_each_get_their_frame() {
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
    srv.set_status(&alice, json!({"status": "busy", "message": "x"}))
        .await;
    let mut got = vec![
        w.expect_changed(EVENT_WAIT).await,
        w.expect_changed(EVENT_WAIT).await,
    ];
    got.sort();
    let mut want = vec![a.status8(BUSY, "x", "manual", None), a.presence(BUSY, "x")];
    want.sort();
    assert_eq!(got, want);
    w.expect_no_changed(QUIET).await;
}
