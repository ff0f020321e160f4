//! `setUserStatus` and `UserPresence:*` over DDP (CONTRACT §7): the REST rules and
//! errors, the 1 call/s limit, and `setDefaultStatus`'s changed/unchanged result.

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

const QUIET: Duration = Duration::from_millis(400);
const SECOND: Duration = Duration::from_millis(1100);

/// A business error as a DDP method reports it: the REST reason and code, and
/// `details.method` naming the method when present.
#[track_caller]
fn assert_method_error(got: Result<Value, Value>, code: &str, reason: &str, method: &str) {
    let e = got.expect_err("want an error");
    let mut want = meteor_error(json!(code), reason);
    if e.get("details").is_some() {
        want["details"] = json!({"method": method});
    }
    assert_eq!(e, want);
}

#[tokio::test]
async fn set_user_status_changes_status_and_text() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    let (result, _) = c
        .call_raw_with_id("m1", "setUserStatus", json!(["away", "  lunch  "]))
        .await;
    assert_eq!(
        result, r#"{"msg":"result","id":"m1"}"#,
        "setUserStatus returns nothing"
    );
    // Committed before the reply.
    let s = srv.own_status(&alice).await;
    assert_eq!(s["status"], "away", "{s}");
    assert_eq!(s["statusSource"], "manual", "{s}");
    assert!(s.get("statusExpiresAt").is_none(), "{s}");
    assert_eq!(srv.info_of(&alice.user_id).await["statusText"], "lunch");

    // Only the status (text null): the text stays.
    tokio::time::sleep(SECOND).await;
    c.call("setUserStatus", json!(["busy", null]))
        .await
        .unwrap();
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "busy");
    assert_eq!(srv.info_of(&alice.user_id).await["statusText"], "lunch");
    // Only the text (status null): the status stays; the text is cut to 120 chars.
    tokio::time::sleep(SECOND).await;
    let long = "é".repeat(130);
    c.call("setUserStatus", json!([null, long])).await.unwrap();
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "busy");
    assert_eq!(
        srv.info_of(&alice.user_id).await["statusText"],
        "é".repeat(120)
    );
    // Empty text clears it.
    tokio::time::sleep(SECOND).await;
    c.call("setUserStatus", json!(["online", ""]))
        .await
        .unwrap();
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    assert_eq!(srv.info_of(&alice.user_id).await["statusText"], "");
}

#[tokio::test]
async fn set_user_status_has_the_rest_errors_and_writes_nothing_on_error() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    w.drain_changed(QUIET).await;

    for bad in ["dnd", "Online", "invisible"] {
        assert_method_error(
            c.call("setUserStatus", json!([bad, "x"])).await,
            "error-invalid-status",
            "Valid status types include online, away, offline, and busy.",
            "setUserStatus",
        );
    }
    srv.set_setting("Accounts_AllowInvisibleStatusOption", json!(false))
        .await;
    assert_method_error(
        c.call("setUserStatus", json!(["offline", "x"])).await,
        "error-status-not-allowed",
        "Invisible status is disabled",
        "setUserStatus",
    );
    srv.set_setting("Accounts_AllowInvisibleStatusOption", json!(true))
        .await;
    srv.set_setting("Accounts_AllowUserStatusMessageChange", json!(false))
        .await;
    let e = c
        .call("setUserStatus", json!(["busy", "x"]))
        .await
        .expect_err("not allowed");
    assert_eq!(e["error"], "error-not-allowed", "{e}");
    assert_eq!(e["errorType"], "Meteor.Error", "{e}");
    srv.set_setting("Accounts_AllowUserStatusMessageChange", json!(true))
        .await;

    // None of that wrote or published anything.
    let s = srv.own_status(&alice).await;
    assert_eq!(
        (s["status"].clone(), s.get("statusSource").cloned()),
        (json!("online"), None),
        "{s}"
    );
    assert_eq!(srv.info_of(&alice.user_id).await["statusText"], "");
    w.expect_no_changed(QUIET).await;

    // Not logged in: refused.
    let mut anon = Ddp::connect(&srv).await;
    let e = anon
        .call("setUserStatus", json!(["busy", "x"]))
        .await
        .expect_err("anonymous");
    assert_eq!(e["errorType"], "Meteor.Error", "{e}");
}

#[tokio::test]
async fn set_user_status_is_limited_to_one_call_per_second() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c1 = Ddp::connect_resume(&srv, &alice.token).await;
    let mut c2 = Ddp::connect_resume(&srv, &alice.token).await;
    c1.call("setUserStatus", json!(["away", "one"]))
        .await
        .unwrap();
    // Within the second, on the same or another connection of the same user.
    for c in [&mut c1, &mut c2] {
        let e = c
            .call("setUserStatus", json!(["busy", "two"]))
            .await
            .expect_err("limited");
        assert_eq!(e["error"], "too-many-requests", "{e}");
        assert_eq!(e["errorType"], "Meteor.Error", "{e}");
        let reason = e["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("Error, too many requests. Please slow down. You must wait "),
            "{e}"
        );
        assert_eq!(e["message"], format!("{reason} [too-many-requests]"), "{e}");
        let reset = e["details"]["timeToReset"].as_i64().unwrap_or(-1);
        assert!((0..=1000).contains(&reset), "{e}");
    }
    // Nothing written by the refused calls.
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "away");
    assert_eq!(srv.info_of(&alice.user_id).await["statusText"], "one");
    // Another user is not limited by alice's calls.
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut b = Ddp::connect_resume(&srv, &bob.token).await;
    b.call("setUserStatus", json!(["busy", "bob"]))
        .await
        .unwrap();
    // A second later it works again.
    tokio::time::sleep(SECOND).await;
    c2.call("setUserStatus", json!(["busy", "three"]))
        .await
        .unwrap();
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "busy");
    assert_eq!(srv.info_of(&alice.user_id).await["statusText"], "three");
}

#[tokio::test]
async fn set_default_status_returns_true_when_changed_and_false_when_the_same() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    w.drain_changed(QUIET).await;

    let set = |s: &str| json!([s]);
    assert_eq!(
        c.call("UserPresence:setDefaultStatus", set("busy")).await,
        Ok(json!(true))
    );
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "busy");
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        a.status8(BUSY, "", "manual", None)
    );
    // The same again: false, and nothing published.
    assert_eq!(
        c.call("UserPresence:setDefaultStatus", set("busy")).await,
        Ok(json!(false))
    );
    w.expect_no_changed(QUIET).await;
    // Not rate limited like setUserStatus.
    assert_eq!(
        c.call("UserPresence:setDefaultStatus", set("away")).await,
        Ok(json!(true))
    );
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "away");
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        a.status8(AWAY, "", "manual", None)
    );
    assert_eq!(
        c.call("UserPresence:setDefaultStatus", set("online")).await,
        Ok(json!(true))
    );
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    assert_eq!(
        c.call("UserPresence:setDefaultStatus", set("online")).await,
        Ok(json!(false))
    );
}

#[tokio::test]
async fn set_default_status_over_a_temporary_status_of_the_same_value_reports_a_change() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    // A temporary busy (expires in a minute)…
    let expires = iso_from_now(60);
    srv.set_status(&alice, json!({"status": "busy", "expiresAt": expires}))
        .await;
    w.drain_changed(QUIET).await;
    // …made permanent: the expiry goes, which is a change (published, so `true`).
    assert_eq!(
        c.call("UserPresence:setDefaultStatus", json!(["busy"]))
            .await,
        Ok(json!(true))
    );
    let s = srv.status_of(&alice.user_id).await;
    assert!(s.get("statusExpiresAt").is_none(), "{s}");
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        a.status8(BUSY, "", "manual", None)
    );
    // Now it really is the same.
    assert_eq!(
        c.call("UserPresence:setDefaultStatus", json!(["busy"]))
            .await,
        Ok(json!(false))
    );
    w.expect_no_changed(QUIET).await;
}
