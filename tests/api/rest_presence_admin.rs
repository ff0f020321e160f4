//! The admin routes around presence (issue 16), as Rocket.Chat answers them:
//! `users.setActiveStatus`, `users.logout`, `users.listByStatus`,
//! `presence.getConnections` and `presence.enableBroadcast`.

use crate::common;

use common::ddp::*;
use common::*;

#[tokio::test]
async fn set_active_status_deactivates_logs_out_and_keeps_an_admin() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let body = |active: bool| json!({"userId": alice.user_id, "activeStatus": active});

    // Without the permission: the declared 403, and nothing changes.
    assert_reply(
        &srv.post_json("users.setActiveStatus", Some(&bob), body(false))
            .await,
        403,
        body_403_declared(),
    );
    assert_status(&srv.get("me", Some(&alice)).await, 200);

    assert_reply(
        &srv.post_json("users.setActiveStatus", Some(&admin), body(false))
            .await,
        200,
        json!({"user": {"_id": alice.user_id, "active": false}, "success": true}),
    );
    // Deactivated: logged out everywhere, and no new login.
    assert_reply(&srv.get("me", Some(&alice)).await, 401, body_401());
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "alice", "password": "alice-pass-1"}),
        )
        .await;
    assert_status(&r, 401);
    assert_eq!(srv.info_of(&alice.user_id).await["active"], false);

    assert_reply(
        &srv.post_json("users.setActiveStatus", Some(&admin), body(true))
            .await,
        200,
        json!({"user": {"_id": alice.user_id, "active": true}, "success": true}),
    );
    srv.login("alice", "alice-pass-1").await;

    // The last active admin stays active.
    assert_reply(
        &srv.post_json(
            "users.setActiveStatus",
            Some(&admin),
            json!({"userId": admin.user_id, "activeStatus": false}),
        )
        .await,
        400,
        body_meteor(
            "error-action-not-allowed",
            "Leaving the app without admins is not allowed",
            "users.setActiveStatus",
        ),
    );
    assert_status(&srv.get("me", Some(&admin)).await, 200);
    // Nobody by that id; bodies of the wrong shape.
    assert_reply(
        &srv.post_json(
            "users.setActiveStatus",
            Some(&admin),
            json!({"userId": "nobody", "activeStatus": false}),
        )
        .await,
        400,
        json!({"success": false, "error": "User not found"}),
    );
    for (bad, error) in [
        (
            json!({"userId": alice.user_id}),
            json!({"success": false, "error": "Match error: Missing key 'activeStatus'"}),
        ),
        (
            json!({"userId": alice.user_id, "activeStatus": "no"}),
            json!({"success": false, "error": "Match error: Expected boolean in field activeStatus"}),
        ),
        (
            json!({"userId": alice.user_id, "activeStatus": true, "x": 1}),
            body_meteor(
                "invalid-params",
                "must NOT have additional properties",
                "users.setActiveStatus",
            ),
        ),
    ] {
        assert_reply(
            &srv.post_json("users.setActiveStatus", Some(&admin), bad)
                .await,
            400,
            error,
        );
    }
}

#[tokio::test]
async fn users_logout_ends_every_session_of_oneself_or_with_the_permission_anothers() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let alice2 = srv.login("alice", "alice-pass-1").await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut ws = Ddp::connect_resume(&srv, &alice2.token).await;

    // Someone else's, without logout-other-user.
    assert_reply(
        &srv.post_json("users.logout", Some(&bob), json!({"userId": alice.user_id}))
            .await,
        403,
        body_403(),
    );
    assert_status(&srv.get("me", Some(&alice)).await, 200);

    // The admin logs alice out: both her sessions go, and her websocket is closed.
    assert_reply(
        &srv.post_json(
            "users.logout",
            Some(&admin),
            json!({"userId": alice.user_id}),
        )
        .await,
        200,
        json!({"message": format!("User {} has been logged out!", alice.user_id), "success": true}),
    );
    assert_reply(&srv.get("me", Some(&alice)).await, 401, body_401());
    assert_reply(&srv.get("me", Some(&alice2)).await, 401, body_401());
    ws.send(json!({"msg": "ping"})).await;
    let mut closed = false;
    for _ in 0..5 {
        match ws.next_raw(std::time::Duration::from_secs(2)).await {
            None => {
                closed = true;
                break;
            }
            Some(_) => continue,
        }
    }
    assert!(closed, "alice's websocket stays open");
    // Nothing left to log out, or nobody by that id.
    for id in [alice.user_id.as_str(), "nobody"] {
        assert_reply(
            &srv.post_json("users.logout", Some(&admin), json!({"userId": id}))
                .await,
            400,
            body_meteor("error-invalid-user-id", "Invalid user id", "users.logout"),
        );
    }
    // Oneself, without a body.
    assert_reply(
        &srv.post_json("users.logout", Some(&bob), json!({})).await,
        200,
        json!({"message": format!("User {} has been logged out!", bob.user_id), "success": true}),
    );
    assert_reply(&srv.get("me", Some(&bob)).await, 401, body_401());
    assert_reply(
        &srv.post_json("users.logout", Some(&admin), json!({"user": "x"}))
            .await,
        400,
        body_meteor(
            "invalid-params",
            "must NOT have additional properties",
            "users.logout",
        ),
    );
}

fn names(r: &Reply) -> Vec<String> {
    r.2["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn list_by_status_filters_sorts_and_pages() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let amy = srv.create_user("amy", "amy-pass-1", &["user"]).await;
    let ben = srv.create_user_only("ben", "ben-pass-1", &["user"]).await;
    srv.create_user_only("cara", "cara-pass-1", &["user", "livechat-agent"])
        .await;
    let r = srv
        .post_json(
            "users.setActiveStatus",
            Some(&admin),
            json!({"userId": ben, "activeStatus": false}),
        )
        .await;
    assert_status(&r, 200);

    let list = |q: &str| {
        let srv = &srv;
        let who = amy.clone();
        let q = q.to_string();
        async move { srv.get(&format!("users.listByStatus{q}"), Some(&who)).await }
    };
    let all = list("").await;
    assert_status(&all, 200);
    assert_eq!(names(&all), ["admin", "amy", "ben", "cara", "rocket.cat"]);
    assert_eq!(
        (
            &all.2["count"],
            &all.2["offset"],
            &all.2["total"],
            &all.2["success"]
        ),
        (&json!(5), &json!(0), &json!(5), &json!(true))
    );
    // Another user's email is not shown to a plain user; their own is.
    let users = all.2["users"].as_array().unwrap();
    assert!(users
        .iter()
        .find(|u| u["username"] == "cara")
        .unwrap()
        .get("emails")
        .is_none());
    assert!(users.iter().find(|u| u["username"] == "amy").unwrap()["emails"].is_array());

    assert_eq!(names(&list("?status=deactivated").await), ["ben"]);
    assert_eq!(
        names(&list("?status=active").await),
        ["admin", "amy", "cara", "rocket.cat"]
    );
    assert_eq!(names(&list("?roles[]=livechat-agent").await), ["cara"]);
    assert_eq!(names(&list("?roles[]=all").await).len(), 5);
    assert_eq!(names(&list("?type=bot").await), ["rocket.cat"]);
    assert_eq!(names(&list("?hasLoggedIn=true").await), ["admin", "amy"]);
    // Case-insensitive, in the username or the name ("<username> Name").
    assert_eq!(names(&list("?searchTerm=AR").await), ["cara"]);
    assert_eq!(
        names(&list("?searchTerm=NAME").await),
        ["amy", "ben", "cara"]
    );
    assert_eq!(names(&list("?searchTerm=be").await), ["ben"]);
    // Emails are searched only for holders of view-full-other-user-info.
    assert!(names(&list("?searchTerm=ben%40example").await).is_empty());
    let r = srv
        .get("users.listByStatus?searchTerm=ben%40example", Some(&admin))
        .await;
    assert_eq!(names(&r), ["ben"]);
    let sorted = list(&format!(
        "?sort={}&count=2&offset=1",
        enc(r#"{"username":-1}"#)
    ))
    .await;
    assert_eq!(names(&sorted), ["cara", "ben"]);
    assert_eq!(
        (&sorted.2["count"], &sorted.2["total"]),
        (&json!(2), &json!(5))
    );

    let invalid = |reason: &str| body_meteor("invalid-params", reason, "users.listByStatus");
    assert_reply(
        &list("?status=sleeping").await,
        400,
        invalid("must be equal to one of the allowed values"),
    );
    assert_reply(
        &list("?hasLoggedIn=maybe").await,
        400,
        invalid("must be boolean"),
    );
    assert_reply(
        &list("?fields=x").await,
        400,
        invalid("must NOT have additional properties"),
    );
    assert_reply(
        &list("?sort=up").await,
        400,
        body_meteor(
            "error-invalid-sort",
            "Invalid sort parameter provided: \"up\"",
            "users.listByStatus",
        ),
    );
}

#[tokio::test]
async fn presence_connections_and_broadcast_need_manage_user_status() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    assert_reply(
        &srv.get("presence.getConnections", Some(&alice)).await,
        403,
        body_403_declared(),
    );
    assert_reply(
        &srv.post_json("presence.enableBroadcast", Some(&alice), json!({}))
            .await,
        403,
        body_403_declared(),
    );
    assert_reply(
        &srv.get("presence.getConnections", Some(&admin)).await,
        200,
        json!({"current": 0, "max": 200, "broadcastDisabled": false, "success": true}),
    );
    let _a = Ddp::connect_resume(&srv, &alice.token).await;
    let _b = Ddp::connect_resume(&srv, &alice.token).await;
    let _c = Ddp::connect_resume(&srv, &admin.token).await;
    assert_reply(
        &srv.get("presence.getConnections", Some(&admin)).await,
        200,
        json!({"current": 3, "max": 200, "broadcastDisabled": false, "success": true}),
    );

    srv.set_setting("Presence_broadcast_disabled", json!(true))
        .await;
    // While it is on, status changes are made but not broadcast, and users.presence
    // shows nobody (as Rocket.Chat).
    let mut watcher = Ddp::connect_resume(&srv, &admin.token).await;
    watcher.sub_user_status("s1").await;
    assert_status(
        &srv.set_status(&alice, json!({"status": "busy"})).await,
        200,
    );
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "busy");
    assert_eq!(
        watcher
            .next_json(std::time::Duration::from_millis(500))
            .await,
        None,
        "a status change was broadcast while broadcasting is off"
    );
    assert_reply(
        &srv.get("users.presence", Some(&admin)).await,
        200,
        json!({"users": [], "full": true, "success": true}),
    );
    assert_reply(
        &srv.post_json("presence.enableBroadcast", Some(&admin), json!({}))
            .await,
        200,
        json!({"success": true}),
    );
    let (_, _, public) = srv
        .get("settings.public?_id=Presence_broadcast_disabled", None)
        .await;
    assert_eq!(
        public["settings"],
        json!([{"_id": "Presence_broadcast_disabled", "value": false}])
    );
    // Broadcasting again.
    assert_status(
        &srv.set_status(&alice, json!({"status": "away"})).await,
        200,
    );
    let f = watcher
        .next_json(std::time::Duration::from_secs(3))
        .await
        .expect("the change is broadcast again");
    assert_eq!(f["fields"]["args"][0][0], alice.user_id, "{f}");
    assert_eq!(f["fields"]["args"][0][2], 2, "{f}");
}

/// Past `PRESENCE_BROADCAST_BUDGET` (user-status subscribers × status changes per
/// second) the server turns `Presence_broadcast_disabled` on by itself and says so;
/// it stays on until an admin calls `presence.enableBroadcast` (issue 20).
#[tokio::test]
async fn past_the_broadcast_budget_broadcasting_turns_itself_off_until_an_admin_says() {
    let srv = Server::start_with(&[("PRESENCE_BROADCAST_BUDGET", "1")]).await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let connections = || async {
        let (status, _, body) = srv.get("presence.getConnections", Some(&admin)).await;
        assert_eq!(status, 200, "{body}");
        body
    };
    assert_eq!(connections().await["broadcastDisabled"], false);
    // Two subscribers of user-status and a few changes a second: over 1.
    let mut watchers = Vec::new();
    for id in ["s1", "s2"] {
        let mut w = Ddp::connect_resume(&srv, &admin.token).await;
        w.sub_user_status(id).await;
        watchers.push(w);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut i = 0;
    while connections().await["broadcastDisabled"] == false {
        assert!(
            std::time::Instant::now() < deadline,
            "broadcasting never turned itself off"
        );
        let status = if i % 2 == 0 { "busy" } else { "away" };
        assert_status(
            &srv.set_status(&alice, json!({"status": status})).await,
            200,
        );
        i += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, _, public) = srv
        .get("settings.public?_id=Presence_broadcast_disabled", None)
        .await;
    assert_eq!(
        public["settings"],
        json!([{"_id": "Presence_broadcast_disabled", "value": true}])
    );
    let (status, _, metrics) = srv
        .request_text(Method::GET, "/metrics", None, &[], None)
        .await;
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l == "statusd_presence_broadcast_auto_disabled_total 1"),
        "{metrics}"
    );
    // Off: changes are made, not broadcast; and it stays off with no load at all.
    for w in &mut watchers {
        w.drain_changed(std::time::Duration::from_millis(300)).await;
    }
    assert_status(
        &srv.set_status(&alice, json!({"status": "online"})).await,
        200,
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(connections().await["broadcastDisabled"], true);
    assert_eq!(
        watchers[0]
            .next_json(std::time::Duration::from_millis(300))
            .await,
        None,
        "a change was broadcast while broadcasting is off"
    );
    // The admin turns it back on: changes are broadcast again.
    assert_reply(
        &srv.post_json("presence.enableBroadcast", Some(&admin), json!({}))
            .await,
        200,
        json!({"success": true}),
    );
    assert_eq!(connections().await["broadcastDisabled"], false);
    assert_status(
        &srv.set_status(&alice, json!({"status": "busy"})).await,
        200,
    );
    let f = watchers[0]
        .next_json(std::time::Duration::from_secs(3))
        .await
        .expect("the change is broadcast again");
    assert_eq!(f["fields"]["args"][0][0], alice.user_id, "{f}");
}
