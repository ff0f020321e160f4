//! Issue 16 items 1 and 2: the Rocket.Chat version `/api/info` reports
//! (`RC_COMPAT_VERSION`), and a user's preferences (`users.setPreferences`,
//! `users.getPreferences`, `settings.preferences` of `me`, the public
//! `Accounts_Default_User_Preferences_*` settings), with exact bodies.

use crate::common;

use common::*;

const SET: &str = "users.setPreferences";

fn invalid_params(reason: &str) -> Value {
    body_meteor("invalid-params", reason, SET)
}

async fn get_prefs(srv: &Server, s: &Session) -> Value {
    let r = srv.get("users.getPreferences", Some(s)).await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true, "{}", r.2);
    r.2["preferences"].clone()
}

// ------------------------------------------------------------------ /api/info

#[tokio::test]
async fn api_info_reports_8_6_0_unless_rc_compat_version_says_otherwise() {
    let srv = Server::start().await;
    let r = srv.get("/api/info", None).await;
    assert_status(&r, 200);
    assert_eq!(r.2["version"], "8.6.0", "{}", r.2);
    assert_eq!(r.2["success"], true);
    let admin = srv.admin().await;
    let r = srv.get("/api/info", Some(&admin)).await;
    assert_eq!(r.2["info"]["version"], "8.6.0", "{}", r.2);

    let old = Server::start_with(&[("RC_COMPAT_VERSION", "6.5.2")]).await;
    let r = old.get("/api/info", None).await;
    assert_status(&r, 200);
    assert_eq!(r.2["version"], "6.5.2", "{}", r.2);
    let admin = old.admin().await;
    let r = old.get("/api/info", Some(&admin)).await;
    assert_eq!(r.2["info"]["version"], "6.5.2", "{}", r.2);
}

#[tokio::test]
async fn a_malformed_rc_compat_version_stops_the_start_naming_the_variable() {
    for bad in ["8.6", "v8.6.0", "8.6.0-rc.1", "latest", ""] {
        let (status, output) = Server::run_to_exit(
            Options::default().env("RC_COMPAT_VERSION", bad),
            std::time::Duration::from_secs(20),
        )
        .await;
        assert!(
            status.is_some_and(|s| !s.success()),
            "{bad:?}: {status:?} {output}"
        );
        assert!(output.contains("RC_COMPAT_VERSION"), "{bad:?}: {output}");
        assert_eq!(
            output.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "{bad:?}: {output}"
        );
    }
}

// -------------------------------------------------------------- preferences

#[tokio::test]
async fn own_preferences_are_set_merged_kept_and_read_over_the_defaults() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;

    // Before any: the workspace defaults (Accounts_Default_User_Preferences_*).
    assert_eq!(
        get_prefs(&srv, &alice).await,
        json!({"enableAutoAway": true, "idleTimeLimit": 300})
    );

    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"data": {"idleTimeLimit": 2, "highlights": ["deploy", "ü"],
                            "alsoSendThreadToChannel": "never"}}),
        )
        .await;
    assert_reply(
        &r,
        200,
        json!({"user": {"_id": alice.user_id, "settings": {"preferences": {
            "idleTimeLimit": 2, "highlights": ["deploy", "ü"], "alsoSendThreadToChannel": "never"}}},
            "success": true}),
    );
    // Merged key by key; `userId` naming oneself needs no permission.
    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"userId": alice.user_id, "data": {"enableAutoAway": false, "idleTimeLimit": 1.5}}),
        )
        .await;
    assert_status(&r, 200);
    let want = json!({"enableAutoAway": false, "idleTimeLimit": 1.5,
                      "highlights": ["deploy", "ü"], "alsoSendThreadToChannel": "never"});
    assert_eq!(r.2["user"]["settings"]["preferences"], want, "{}", r.2);
    assert_eq!(get_prefs(&srv, &alice).await, want);

    // GET me and the login answer carry them as settings.preferences.
    let r = srv.get("me", Some(&alice)).await;
    assert_eq!(r.2["settings"], json!({"preferences": want}), "{}", r.2);
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "alice", "password": "alice-pass-1"}),
        )
        .await;
    assert_eq!(
        r.2["data"]["me"]["settings"],
        json!({"preferences": want}),
        "{}",
        r.2
    );

    // Kept across a restart.
    srv.restart().await;
    assert_eq!(get_prefs(&srv, &alice).await, want);
}

#[tokio::test]
async fn the_defaults_follow_the_workspace_settings_and_are_public() {
    let srv = Server::start().await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let r = srv
        .get(
            "settings.public?_id=Accounts_Default_User_Preferences_enableAutoAway,Accounts_Default_User_Preferences_idleTimeLimit",
            None,
        )
        .await;
    assert_status(&r, 200);
    let values: Vec<(Value, Value)> = r.2["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["_id"].clone(), s["value"].clone()))
        .collect();
    assert!(values.contains(&(
        json!("Accounts_Default_User_Preferences_enableAutoAway"),
        json!(true)
    )));
    assert!(values.contains(&(
        json!("Accounts_Default_User_Preferences_idleTimeLimit"),
        json!(300)
    )));
    srv.set_setting(
        "Accounts_Default_User_Preferences_idleTimeLimit",
        json!(120),
    )
    .await;
    srv.set_setting(
        "Accounts_Default_User_Preferences_enableAutoAway",
        json!(false),
    )
    .await;
    assert_eq!(
        get_prefs(&srv, &bob).await,
        json!({"enableAutoAway": false, "idleTimeLimit": 120})
    );
    let r = srv.get("me", Some(&bob)).await;
    assert_eq!(
        r.2["settings"]["preferences"],
        json!({"enableAutoAway": false, "idleTimeLimit": 120})
    );
    // A user's own value wins over the default.
    let r = srv
        .post_json(SET, Some(&bob), json!({"data": {"idleTimeLimit": 60}}))
        .await;
    assert_status(&r, 200);
    assert_eq!(
        get_prefs(&srv, &bob).await,
        json!({"enableAutoAway": false, "idleTimeLimit": 60})
    );
}

#[tokio::test]
async fn another_users_preferences_need_edit_other_user_info() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;

    let r = srv
        .post_json(
            SET,
            Some(&bob),
            json!({"userId": alice.user_id, "data": {"enableAutoAway": false}}),
        )
        .await;
    assert_reply(
        &r,
        400,
        body_meteor(
            "error-action-not-allowed",
            "Editing user is not allowed",
            SET,
        ),
    );
    // The same answer whether or not the user exists.
    let r = srv
        .post_json(
            SET,
            Some(&bob),
            json!({"userId": "nobody", "data": {"enableAutoAway": false}}),
        )
        .await;
    assert_reply(
        &r,
        400,
        body_meteor(
            "error-action-not-allowed",
            "Editing user is not allowed",
            SET,
        ),
    );
    assert_eq!(
        get_prefs(&srv, &alice).await,
        json!({"enableAutoAway": true, "idleTimeLimit": 300})
    );

    // The admin holds edit-other-user-info.
    let r = srv
        .post_json(
            SET,
            Some(&admin),
            json!({"userId": alice.user_id, "data": {"enableAutoAway": false}}),
        )
        .await;
    assert_reply(
        &r,
        200,
        json!({"user": {"_id": alice.user_id, "settings": {"preferences": {"enableAutoAway": false}}},
               "success": true}),
    );
    assert_eq!(
        get_prefs(&srv, &alice).await,
        json!({"enableAutoAway": false, "idleTimeLimit": 300})
    );
    let r = srv
        .post_json(
            SET,
            Some(&admin),
            json!({"userId": "nobody", "data": {"enableAutoAway": false}}),
        )
        .await;
    assert_reply(
        &r,
        400,
        body_meteor(
            "error-invalid-user",
            "The optional \"userId\" param provided does not match any users",
            SET,
        ),
    );
    // Given to users, the permission lets bob do it too.
    srv.set_permission("edit-other-user-info", &["admin", "user"])
        .await;
    let r = srv
        .post_json(
            SET,
            Some(&bob),
            json!({"userId": alice.user_id, "data": {"idleTimeLimit": 30}}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(
        get_prefs(&srv, &alice).await,
        json!({"enableAutoAway": false, "idleTimeLimit": 30})
    );
    // Reading is always one's own.
    assert_eq!(
        get_prefs(&srv, &bob).await,
        json!({"enableAutoAway": true, "idleTimeLimit": 300})
    );
}

#[tokio::test]
async fn bad_bodies_get_rocket_chats_invalid_params_and_change_nothing() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let cases = [
        (json!([]), "must be object"),
        (json!("x"), "must be object"),
        (json!({}), "must have required property 'data'"),
        (
            json!({"userId": alice.user_id}),
            "must have required property 'data'",
        ),
        (json!({"data": null}), "must be object"),
        (json!({"data": []}), "must be object"),
        (json!({"data": "enableAutoAway"}), "must be object"),
        (json!({"data": 1}), "must be object"),
        (json!({"data": {}, "userId": 7}), "must be string"),
        (
            json!({"data": {}, "username": "alice"}),
            "must NOT have additional properties",
        ),
        (
            json!({"data": {"myOwnKey": 1}}),
            "must NOT have additional properties",
        ),
        (
            json!({"data": {"enableAutoAway": "false"}}),
            "must be boolean",
        ),
        (json!({"data": {"idleTimeLimit": "300"}}), "must be number"),
        (json!({"data": {"language": ["en"]}}), "must be string"),
        (json!({"data": {"highlights": "a,b"}}), "must be array"),
        (json!({"data": {"highlights": [1, 2]}}), "must be string"),
        (
            json!({"data": {"alsoSendThreadToChannel": "sometimes"}}),
            "must be equal to one of the allowed values",
        ),
        (
            json!({"data": {"dontAskAgainList": [{"action": "a", "label": "b", "x": 1}]}}),
            "must NOT have additional properties",
        ),
        (
            json!({"data": {"featuresPreview": [{"name": "a", "value": "yes"}]}}),
            "must be boolean",
        ),
    ];
    for (body, reason) in cases {
        let r = srv.post_json(SET, Some(&alice), body.clone()).await;
        assert_eq!(r.0.as_u16(), 400, "{body}: {}", r.2);
        assert_eq!(r.2, invalid_params(reason), "{body}");
    }
    // Not JSON at all.
    let r = srv
        .request(
            Method::POST,
            SET,
            Some(&alice),
            &[("Content-Type", "application/json")],
            Some(b"{".to_vec()),
        )
        .await;
    assert_eq!(r.0.as_u16(), 400, "{}", r.2);
    assert_eq!(r.2["success"], false);
    // Not logged in.
    let r = srv
        .post_json(SET, None, json!({"data": {"enableAutoAway": false}}))
        .await;
    assert_reply(&r, 401, body_401());
    let r = srv.get("users.getPreferences", None).await;
    assert_reply(&r, 401, body_401());
    assert_eq!(
        get_prefs(&srv, &alice).await,
        json!({"enableAutoAway": true, "idleTimeLimit": 300})
    );
}

#[tokio::test]
async fn preferences_are_bounded_whatever_the_caller_sends() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let long = "x".repeat(257);
    let many: Vec<String> = (0..101).map(|i| format!("w{i}")).collect();
    for (body, reason) in [
        (
            json!({"data": {"language": long}}),
            "must NOT have more than 256 characters",
        ),
        (
            json!({"data": {"highlights": [long]}}),
            "must NOT have more than 256 characters",
        ),
        (
            json!({"data": {"highlights": many}}),
            "must NOT have more than 100 items",
        ),
    ] {
        let r = srv.post_json(SET, Some(&alice), body.clone()).await;
        assert_eq!(r.2, invalid_params(reason), "{body}");
    }
    // At the bounds each value is kept; together they may not pass 32 KiB.
    let full: Vec<String> = (0..100).map(|_| "é".repeat(100)).collect();
    let r = srv
        .post_json(SET, Some(&alice), json!({"data": {"highlights": full}}))
        .await;
    assert_status(&r, 200);
    let list: Vec<Value> = (0..100)
        .map(|_| json!({"action": "é".repeat(100), "label": "é".repeat(100)}))
        .collect();
    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"data": {"dontAskAgainList": list}}),
        )
        .await;
    assert_eq!(
        r.2,
        invalid_params("must NOT have more than 32768 bytes of preferences")
    );
    let prefs = get_prefs(&srv, &alice).await;
    assert!(prefs.get("dontAskAgainList").is_none(), "{prefs}");
    assert_eq!(prefs["highlights"].as_array().map(Vec::len), Some(100));
}

// ------------------------------------------- the mobile app's version switches

/// What the Rocket.Chat mobile app calls once `/api/info` says 8.6.0 (its
/// `compareServerVersion` switches around status, presence, login and settings; the list
/// is in docs/decisions.md): each of these answers as Rocket.Chat does.
#[tokio::test]
async fn the_mobile_apps_version_switched_paths_work() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv
        .create_user("bob", "bob-pass-1", &["user", "livechat-agent"])
        .await;

    // >= 7.10: getUsersRoles reads roles.getUsersInPublicRoles (not the method).
    let r = srv.get("roles.getUsersInPublicRoles", Some(&alice)).await;
    assert_reply(
        &r,
        200,
        json!({"success": true, "users": [
            {"_id": admin.user_id, "roles": ["admin"], "username": admin.username},
            {"_id": bob.user_id, "roles": ["livechat-agent"], "username": "bob"},
        ]}),
    );

    // >= 7.0: settings.public?_id=a,b (login settings, uniqueID for the cloud check),
    // paged with offset and total.
    let r = srv.get("settings.public?_id=uniqueID", None).await;
    assert_status(&r, 200);
    assert!(r.2["settings"][0]["value"].is_string(), "{}", r.2);
    let r = srv
        .get(
            "settings.public?_id=Site_Name,Accounts_AllowInvisibleStatusOption,Presence_broadcast_disabled&offset=0",
            None,
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["total"], 3, "{}", r.2);

    // >= 0.73: permissions.listAll with updatedSince.
    let r = srv
        .get(
            "permissions.listAll?updatedSince=2020-01-01T00:00:00.000Z",
            Some(&alice),
        )
        .await;
    assert_status(&r, 200);
    assert!(r.2["update"].is_array(), "{}", r.2);

    // >= 3.0 / 4.1: users.presence?ids=a,b (then stream-user-presence, the DDP tests').
    let r = srv
        .get(
            &format!("users.presence?ids={},{}", alice.user_id, bob.user_id),
            Some(&alice),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["full"], false, "{}", r.2);

    // >= 5.0 / 6.10: the preferences view saves with users.setPreferences {data}; the
    // login (>= 3.9: {user, password}) then reads them from me.settings.preferences.
    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"data": {"alsoSendThreadToChannel": "always", "enableMobileRinging": true,
                            "convertAsciiEmoji": false}}),
        )
        .await;
    assert_status(&r, 200);
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "alice", "password": "alice-pass-1"}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(
        r.2["data"]["me"]["settings"]["preferences"],
        json!({"alsoSendThreadToChannel": "always", "enableMobileRinging": true,
               "convertAsciiEmoji": false, "enableAutoAway": true, "idleTimeLimit": 300}),
        "{}",
        r.2
    );
}
