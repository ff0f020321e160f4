//! A temporary status (`expiresAt`, CONTRACT §4 / 8.6) expires: the previous status and
//! text come back within a second and the change is published over DDP.

use crate::common;

use std::time::{Duration, Instant};

use common::ddp::*;
use common::*;

#[tokio::test]
async fn an_expiring_rest_status_restores_the_previous_one_and_publishes_it() {
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

    // The status to come back to.
    srv.set_status(&alice, json!({"status": "away", "message": "lunch"}))
        .await;
    w.drain_changed(Duration::from_millis(300)).await;

    let expires = iso_from_now(2);
    let t_exp = Instant::now() + Duration::from_secs(2);
    let r = srv
        .set_status(
            &alice,
            json!({"status": "busy", "message": "meeting", "expiresAt": expires}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let ev = w
        .changed_matching(EVENT_WAIT, |v| v["collection"] == "stream-notify-logged")
        .await
        .expect("the busy event");
    assert_eq!(ev, a.status8(BUSY, "meeting", "manual", Some(&expires)));
    let s = srv.status_of(&alice.user_id).await;
    assert_eq!(
        (s["status"].clone(), s["statusExpiresAt"].clone()),
        (json!("busy"), json!(expires))
    );
    w.drain_changed(Duration::from_millis(100)).await;

    // Nothing before the time; the restore within a second after it.
    let early = t_exp
        .saturating_duration_since(Instant::now())
        .saturating_sub(Duration::from_millis(300));
    w.expect_no_changed(early).await;
    let ev = w
        .changed_matching(Duration::from_secs(4), |v| {
            v["collection"] == "stream-notify-logged"
        })
        .await
        .expect("the restore event");
    let late = Instant::now().saturating_duration_since(t_exp);
    assert!(
        late <= Duration::from_millis(1500),
        "restored {late:?} after expiresAt"
    );
    let v: Value = serde_json::from_str(&ev).unwrap();
    let args = v["fields"]["args"][0].as_array().unwrap().clone();
    assert_eq!(
        &args[..6],
        &[
            json!(alice.user_id),
            json!("alice"),
            json!(AWAY),
            json!("lunch"),
            json!("alice Name"),
            json!(["user"])
        ],
        "{ev}"
    );
    // 6 elements, or 8 with no expiry any more.
    assert!(
        args.len() == 6 || (args.len() == 8 && args[7].is_null()),
        "{ev}"
    );
    if args.len() == 6 {
        assert_eq!(ev, a.status6(AWAY, "lunch"));
    }
    let s = srv.status_of(&alice.user_id).await;
    assert_eq!(s["status"], "away", "{s}");
    assert!(s.get("statusExpiresAt").is_none(), "{s}");
    assert_eq!(srv.info_of(&alice.user_id).await["statusText"], "lunch");
    // The presence stream got it too.
    let p = w
        .changed_matching(EVENT_WAIT, |v| v["collection"] == "stream-user-presence")
        .await;
    assert_eq!(p, Some(a.presence(AWAY, "lunch")));
}

#[tokio::test]
async fn an_expiry_while_connected_goes_back_to_the_connection_status() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;
    let _c = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(w.expect_changed(EVENT_WAIT).await, a.status6(ONLINE, ""));

    let expires = iso_from_now(2);
    srv.set_status(
        &alice,
        json!({"status": "busy", "message": "call", "expiresAt": expires}),
    )
    .await;
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        a.status8(BUSY, "call", "manual", Some(&expires))
    );
    let ev = w.expect_changed(Duration::from_secs(5)).await;
    let v: Value = serde_json::from_str(&ev).unwrap();
    let args = v["fields"]["args"][0].as_array().unwrap().clone();
    assert_eq!(
        &args[..4],
        &[
            json!(alice.user_id),
            json!("alice"),
            json!(ONLINE),
            json!("")
        ],
        "{ev}"
    );
    assert_eq!(srv.own_status(&alice).await["status"], "online");
}
