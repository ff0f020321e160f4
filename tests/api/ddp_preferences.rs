//! The DDP method `saveUserPreferences` (Rocket.Chat's web and desktop clients save
//! preferences with it): the keys and bounds of users.setPreferences, read back over REST.

use crate::common;

use common::ddp::*;
use common::*;

#[tokio::test]
async fn save_user_preferences_sets_the_callers_preferences() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c = Ddp::connect(&srv).await;
    // Not logged in: Rocket.Chat's error-invalid-user.
    let e = c
        .call("saveUserPreferences", json!([{"enableAutoAway": false}]))
        .await
        .unwrap_err();
    assert_eq!(e["error"], "error-invalid-user", "{e}");
    assert_eq!(
        e["details"],
        json!({"method": "saveUserPreferences"}),
        "{e}"
    );

    c.login_resume(&alice.token).await.unwrap();
    assert_eq!(
        c.call(
            "saveUserPreferences",
            json!([{"enableAutoAway": false, "idleTimeLimit": 2}])
        )
        .await,
        Ok(json!(true))
    );
    let r = srv.get("users.getPreferences", Some(&alice)).await;
    assert_reply(
        &r,
        200,
        json!({"preferences": {"enableAutoAway": false, "idleTimeLimit": 2}, "success": true}),
    );
    // An unknown key, a value of another type, no argument: Match failed, nothing kept.
    for params in [
        json!([{"mine": 1}]),
        json!([{"enableAutoAway": "no"}]),
        json!([{"language": "x".repeat(257)}]),
        json!(["enableAutoAway"]),
        json!([]),
    ] {
        let e = c
            .call("saveUserPreferences", params.clone())
            .await
            .unwrap_err();
        assert_eq!(e, meteor_error(json!(400), "Match failed"), "{params}");
    }
    let r = srv.get("users.getPreferences", Some(&alice)).await;
    assert_eq!(
        r.2["preferences"],
        json!({"enableAutoAway": false, "idleTimeLimit": 2})
    );
}
