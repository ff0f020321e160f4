//! Issue 19 §3, presence privacy: with `Accounts_StatusVisibility_Enabled` on, a user
//! hides their status from named users (`statusVisibilityDenied`) or from everyone
//! (`statusdHideStatus`). Walks every read path as a denied user (REST getStatus,
//! getPresence, users.presence in its three forms, users.info, users.list,
//! users.listByStatus, the history, recentStatuses, the `user-status` and
//! `stream-user-presence` streams, the `activeUsers` and `fullUserData` publications,
//! webhook deliveries) and finds
//! nothing but `offline`, while an allowed user and an admin see the truth; a change of
//! the preference or the setting reaches live subscriptions at once.

use std::time::Duration;

use crate::common;

use common::ddp::*;
use common::webhooks::Receiver;
use common::*;

const SETTING: &str = "Accounts_StatusVisibility_Enabled";
const QUIET: Duration = Duration::from_millis(400);

/// `users.setPreferences` of `s` with `data`; asserts 200.
async fn set_prefs(srv: &Server, s: &Session, data: Value) {
    let r = srv
        .post_json("users.setPreferences", Some(s), json!({ "data": data }))
        .await;
    assert_status(&r, 200);
}

/// Everything `viewer` can read over REST about `target`, each answer whole.
async fn rest_view(srv: &Server, viewer: &Session, target: &Session) -> Vec<(String, Value)> {
    let id = enc(&target.user_id);
    let mut out = Vec::new();
    for path in [
        format!("users.getStatus?userId={id}"),
        format!("users.getPresence?userId={id}"),
        format!("users.presence?ids[]={id}"),
        "users.presence".to_string(),
        format!("users.presence?from={}", enc(&iso_from_now(-60))),
        format!("users.info?userId={id}"),
        "users.list?count=100".to_string(),
        "users.listByStatus?count=100".to_string(),
    ] {
        let r = srv.get(&path, Some(viewer)).await;
        assert_status(&r, 200);
        out.push((path, r.2));
    }
    out
}

/// The entry of `target` in a list answer (users.presence, users.list), if any.
fn entry<'a>(body: &'a Value, id: &str) -> Option<&'a Value> {
    body["users"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["_id"] == id))
}

/// Asserts that no REST answer tells `status` or `text` of `target`: each shows them
/// offline with no text, source, expiry or last seen, or leaves them out.
fn assert_hidden(view: &[(String, Value)], target: &str, text: &str) {
    for (path, body) in view {
        let s = body.to_string();
        assert!(!s.contains(text), "{path} tells the text: {s}");
        assert!(!s.contains("statusExpiresAt"), "{path}: {s}");
        assert!(!s.contains("lastSeen"), "{path}: {s}");
        let one: Option<&Value> = if path.starts_with("users.getStatus") {
            assert!(body.get("statusSource").is_none(), "{path}: {s}");
            Some(body)
        } else if path.starts_with("users.getPresence") {
            assert_eq!(body["presence"], "offline", "{path}: {s}");
            None
        } else if path.starts_with("users.info") {
            Some(&body["user"])
        } else {
            entry(body, target)
        };
        if let Some(u) = one {
            assert_eq!(u["status"], "offline", "{path}: {s}");
            assert!(u.get("statusSource").is_none(), "{path}: {s}");
            for k in ["statusText", "statusConnection", "statusDefault"] {
                assert!(
                    u.get(k).is_none_or(|v| v == "" || v == "offline"),
                    "{path} {k}: {s}"
                );
            }
        }
        // users.presence lists nobody offline unless asked `from`: a hidden user is
        // not in the list of who is here.
        if path == "users.presence" || path.starts_with("users.presence?ids") {
            assert!(entry(body, target).is_none(), "{path}: {s}");
        }
    }
}

/// Asserts every REST answer shows `target` with `status` and `text`.
fn assert_truth(view: &[(String, Value)], target: &str, status: &str, text: &str) {
    for (path, body) in view {
        let s = body.to_string();
        let one = if path.starts_with("users.getStatus") {
            Some(body)
        } else if path.starts_with("users.getPresence") {
            assert_eq!(body["presence"], status, "{path}: {s}");
            continue;
        } else if path.starts_with("users.info") {
            Some(&body["user"])
        } else {
            entry(body, target)
        };
        let u = one.unwrap_or_else(|| panic!("{path} leaves the user out: {s}"));
        assert_eq!(u["status"], status, "{path}: {s}");
        if !path.starts_with("users.getStatus") {
            assert_eq!(u["statusText"], text, "{path}: {s}");
        }
    }
}

/// The `added` documents of `collection` users that a sub brought, by id.
fn added(c: &mut Ddp, id: &str) -> Option<Value> {
    c.others
        .iter()
        .rev()
        .find(|v| v["msg"] == "added" && v["collection"] == "users" && v["id"] == id)
        .map(|v| v["fields"].clone())
}

#[tokio::test]
async fn a_denied_user_finds_nothing_on_any_path() {
    let srv = Server::start().await;
    srv.set_setting(SETTING, json!(true)).await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);

    // alice is here, busy with a text and an expiry; she denies bob by username.
    let alice_conn = Ddp::connect_resume(&srv, &alice.token).await;
    srv.wait_status(&alice.user_id, "online", EVENT_WAIT).await;
    let r = srv
        .set_status(
            &alice,
            json!({"status": "busy", "message": "secret meeting", "expiresAt": iso_from_now(3600)}),
        )
        .await;
    assert_status(&r, 200);
    set_prefs(&srv, &alice, json!({"statusVisibilityDenied": ["bob"]})).await;
    // Kept as ids, read back by username (Rocket.Chat's user picker works in names).
    let r = srv.get("users.getPreferences", Some(&alice)).await;
    assert_eq!(r.2["preferences"]["statusVisibilityDenied"], json!(["bob"]));

    // REST: bob sees her offline everywhere; carol and the admin see the truth.
    assert_hidden(
        &rest_view(&srv, &bob, &alice).await,
        &alice.user_id,
        "secret meeting",
    );
    for viewer in [&carol, &admin] {
        let view = rest_view(&srv, viewer, &alice).await;
        assert_truth(&view, &alice.user_id, "busy", "secret meeting");
    }
    // She sees herself as she is.
    let r = srv.get("users.info?username=alice", Some(&alice)).await;
    assert_eq!(r.2["user"]["status"], "busy");

    // Realtime: bob and carol listen on both status streams and both publications.
    let mut conns = Vec::new();
    for s in [&bob, &carol] {
        let mut c = Ddp::connect_resume(&srv, &s.token).await;
        c.sub_user_status("us").await;
        let v = c
            .sub(
                "up",
                "stream-user-presence",
                json!(["", {"added": [alice.user_id]}]),
            )
            .await;
        assert_eq!(v["msg"], "ready");
        assert_eq!(c.sub("au", "activeUsers", json!([])).await["msg"], "ready");
        assert_eq!(
            added(&mut c, &alice.user_id).is_some(),
            s.user_id == carol.user_id
        );
        assert_eq!(
            c.sub("fu", "fullUserData", json!(["alice", 1])).await["msg"],
            "ready"
        );
        let doc = added(&mut c, &alice.user_id).expect("fullUserData's alice");
        if s.user_id == bob.user_id {
            assert_eq!(doc["status"], "offline", "{doc}");
            assert_eq!(doc["statusText"], "", "{doc}");
        } else {
            assert_eq!(doc["status"], "busy", "{doc}");
        }
        c.drain_changed(QUIET).await;
        conns.push(c);
    }
    // alice goes away with a new text: bob hears nothing at all (she is offline to
    // him already; a frame would tell him when she is active), carol the change.
    let r = srv
        .set_status(&alice, json!({"status": "away", "message": "secret lunch"}))
        .await;
    assert_status(&r, 200);
    let (bob_c, carol_c) = conns.split_at_mut(1);
    let (bob_c, carol_c) = (&mut bob_c[0], &mut carol_c[0]);
    let got = carol_c.drain_changed(QUIET * 2).await;
    assert!(got.contains(&a.presence(AWAY, "secret lunch")), "{got:?}");
    assert!(
        got.iter()
            .any(|f| f.contains("stream-notify-logged") && f.contains("secret lunch")),
        "{got:?}"
    );
    // The `users` documents follow as well: carol's shows away, bob's nothing.
    assert!(
        got.iter().any(|f| f.contains(r#""status":"away""#)),
        "{got:?}"
    );
    let about_alice = |frames: Vec<String>| -> Vec<String> {
        frames
            .into_iter()
            .filter(|f| f.contains(&alice.user_id))
            .collect()
    };
    assert_eq!(
        about_alice(bob_c.drain_changed(QUIET).await),
        Vec::<String>::new()
    );
    // Nor when she goes and comes back, changing her connection status.
    alice_conn.close().await;
    srv.wait_status(&alice.user_id, "offline", EVENT_WAIT).await;
    let alice_conn = Ddp::connect_resume(&srv, &alice.token).await;
    srv.wait_status(&alice.user_id, "away", EVENT_WAIT).await;
    assert_eq!(
        about_alice(bob_c.drain_changed(QUIET).await),
        Vec::<String>::new()
    );
    assert!(!about_alice(carol_c.drain_changed(QUIET).await).is_empty());

    // The history: with view-full-other-user-info, bob may read others' history, yet
    // hers is empty to him; carol reads her rows.
    srv.set_permission("view-full-other-user-info", &["admin", "user"])
        .await;
    let hist = format!("users.statusHistory?userId={}", enc(&alice.user_id));
    let recent = format!("statusd.recentStatuses?userId={}", enc(&alice.user_id));
    let r = srv.get(&hist, Some(&bob)).await;
    assert_reply(
        &r,
        200,
        json!({"count": 0, "items": [], "offset": 0, "success": true, "total": 0}),
    );
    let r = srv.get(&recent, Some(&bob)).await;
    assert_reply(&r, 200, json!({"statuses": [], "success": true}));
    let r = srv.get(&hist, Some(&carol)).await;
    assert!(r.2["total"].as_u64().unwrap_or(0) > 0, "{}", r.2);
    let r = srv.get(&recent, Some(&carol)).await;
    assert!(r.2.to_string().contains("secret lunch"), "{}", r.2);
    // With the full views, the chosen and connection statuses are offline too.
    assert_hidden(
        &rest_view(&srv, &bob, &alice).await,
        &alice.user_id,
        "secret lunch",
    );
    drop(conns);
    alice_conn.close().await;
}

#[tokio::test]
async fn a_preference_or_setting_change_reaches_live_subscriptions() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let r = srv
        .set_status(&alice, json!({"status": "busy", "message": "deep work"}))
        .await;
    assert_status(&r, 200);
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    c.sub_user_status("us").await;
    c.sub(
        "up",
        "stream-user-presence",
        json!(["", {"added": [alice.user_id]}]),
    )
    .await;
    c.drain_changed(QUIET).await;

    // The setting is off: denying bob changes nothing he sees.
    set_prefs(
        &srv,
        &alice,
        json!({"statusVisibilityDenied": [bob.user_id]}),
    )
    .await;
    let got = c.drain_changed(QUIET).await;
    assert!(
        !got.iter()
            .any(|f| f.contains("\"offline\"") || f.contains(",0,")),
        "{got:?}"
    );
    let r = srv
        .get(
            &format!("users.getStatus?userId={}", alice.user_id),
            Some(&bob),
        )
        .await;
    assert_eq!(r.2["status"], "busy");

    // The setting goes on: bob hears she is offline, at once.
    srv.set_setting(SETTING, json!(true)).await;
    let got = c.drain_changed(QUIET).await;
    assert_eq!(got, [a.status6(OFFLINE, ""), a.presence(OFFLINE, "")]);

    // She lets him see again: he hears the truth; denies him again: offline.
    set_prefs(&srv, &alice, json!({"statusVisibilityDenied": []})).await;
    let got = c.drain_changed(QUIET).await;
    assert_eq!(
        got,
        [
            a.status8(BUSY, "deep work", "manual", None),
            a.presence(BUSY, "deep work")
        ]
    );
    set_prefs(&srv, &alice, json!({"statusdHideStatus": true})).await;
    let got = c.drain_changed(QUIET).await;
    assert_eq!(got, [a.status6(OFFLINE, ""), a.presence(OFFLINE, "")]);
    // While hidden, her changes send him nothing.
    let r = srv
        .set_status(&alice, json!({"status": "away", "message": "back soon"}))
        .await;
    assert_status(&r, 200);
    c.expect_no_changed(QUIET).await;
    let r = srv
        .set_status(&alice, json!({"status": "busy", "message": "deep work"}))
        .await;
    assert_status(&r, 200);
    c.expect_no_changed(QUIET).await;

    // The setting goes off: the truth again.
    srv.set_setting(SETTING, json!(false)).await;
    let got = c.drain_changed(QUIET).await;
    assert_eq!(
        got,
        [
            a.status8(BUSY, "deep work", "manual", None),
            a.presence(BUSY, "deep work")
        ]
    );
    let r = srv
        .get(
            &format!("users.getStatus?userId={}", alice.user_id),
            Some(&bob),
        )
        .await;
    assert_eq!(r.2["status"], "busy");
}

#[tokio::test]
async fn hidden_from_everyone_webhooks_see_her_offline_and_admins_the_truth() {
    let srv = Server::start().await;
    srv.set_setting(SETTING, json!(true)).await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let rx = Receiver::start().await;
    let r = srv
        .post_json(
            "statusd.webhooks.create",
            Some(&admin),
            json!({"url": rx.url(), "events": ["status.changed", "status-text.changed"]}),
        )
        .await;
    assert_status(&r, 200);
    let r = srv
        .set_status(&alice, json!({"status": "busy", "message": "x"}))
        .await;
    assert_status(&r, 200);
    rx.wait_accepted(2, EVENT_WAIT).await;

    // Hidden from everyone: the endpoint hears her go offline, then nothing.
    set_prefs(&srv, &alice, json!({"statusdHideStatus": true})).await;
    let got = rx.wait_accepted(4, EVENT_WAIT).await;
    let last: Vec<&Value> = got[2..].iter().map(|g| &g.body["data"]).collect();
    assert_eq!(last[0]["status"], "offline", "{last:?}");
    assert_eq!(last[1]["statusText"], "", "{last:?}");
    let r = srv
        .set_status(&alice, json!({"status": "away", "message": "hidden"}))
        .await;
    assert_status(&r, 200);
    tokio::time::sleep(QUIET * 2).await;
    assert_eq!(
        rx.accepted().len(),
        4,
        "{:?}",
        rx.accepted().iter().map(|g| &g.body).collect::<Vec<_>>()
    );

    // Everyone else sees her offline; the admin (view-restricted-user-status) and she
    // herself see the truth; the setting off, everyone does.
    let path = format!("users.info?userId={}", alice.user_id);
    assert_eq!(
        srv.get(&path, Some(&bob)).await.2["user"]["status"],
        "offline"
    );
    assert_eq!(
        srv.get(&path, Some(&admin)).await.2["user"]["status"],
        "away"
    );
    assert_eq!(
        srv.get(&path, Some(&alice)).await.2["user"]["status"],
        "away"
    );
    srv.set_permission("view-restricted-user-status", &["admin", "user"])
        .await;
    assert_eq!(
        srv.get(&path, Some(&bob)).await.2["user"]["statusText"],
        "hidden"
    );
    srv.set_permission("view-restricted-user-status", &["admin"])
        .await;
    srv.set_setting(SETTING, json!(false)).await;
    assert_eq!(srv.get(&path, Some(&bob)).await.2["user"]["status"], "away");
}

#[tokio::test]
async fn the_denied_list_is_bounded_and_names_only_others_who_exist() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let refusal = |reason: &str| body_meteor("invalid-params", reason, "users.setPreferences");
    let many: Vec<String> = (0..=1000).map(|i| format!("u{i}")).collect();
    for (data, reason) in [
        (
            json!({"statusVisibilityDenied": many}),
            "must NOT have more than 1000 items",
        ),
        (json!({"statusVisibilityDenied": "bob"}), "must be array"),
        (json!({"statusVisibilityDenied": [1]}), "must be string"),
        (json!({"statusdHideStatus": "yes"}), "must be boolean"),
    ] {
        let r = srv
            .post_json(
                "users.setPreferences",
                Some(&alice),
                json!({ "data": data }),
            )
            .await;
        assert_reply(&r, 400, refusal(reason));
    }
    // Names of nobody, herself and repeats are left out; an id counts as a name.
    set_prefs(
        &srv,
        &alice,
        json!({"statusVisibilityDenied": ["ghost", "alice", "bob", bob.user_id, "BOB"]}),
    )
    .await;
    let r = srv.get("users.getPreferences", Some(&alice)).await;
    assert_eq!(r.2["preferences"]["statusVisibilityDenied"], json!(["bob"]));
    // Stored as ids: a rename does not lift the denial.
    let admin = srv.admin().await;
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": bob.user_id, "data": {"username": "robert"}}),
        )
        .await;
    assert_status(&r, 200);
    let r = srv.get("users.getPreferences", Some(&alice)).await;
    assert_eq!(
        r.2["preferences"]["statusVisibilityDenied"],
        json!(["robert"])
    );

    // The DDP method `saveUserPreferences` takes the same keys, by the same rules.
    srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    let r = c
        .call(
            "saveUserPreferences",
            json!([{"statusVisibilityDenied": ["carol", "ghost"], "statusdHideStatus": true}]),
        )
        .await;
    assert_eq!(r, Ok(json!(true)));
    let r = srv.get("users.getPreferences", Some(&alice)).await;
    assert_eq!(
        r.2["preferences"]["statusVisibilityDenied"],
        json!(["carol"])
    );
    assert_eq!(r.2["preferences"]["statusdHideStatus"], true);
    let r = c
        .call("saveUserPreferences", json!([{"statusdHideStatus": "yes"}]))
        .await;
    assert!(r.is_err(), "{r:?}");
}
