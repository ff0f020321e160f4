//! `POST /api/v1/users.setStatus` (CONTRACT §4): every numbered step, its exact error
//! body and the order of the checks, against the real binary.

use crate::common;

use common::*;

const SET: &str = "users.setStatus";

fn not_allowed() -> Value {
    body_meteor("error-not-allowed", "Change status is not allowed", SET)
}

fn invalid_user(route: &str) -> Value {
    body_meteor(
        "error-invalid-user",
        "The required \"userId\" or \"username\" param provided does not match any users",
        route,
    )
}

fn invalid_status() -> Value {
    body_meteor(
        "error-invalid-status",
        "Valid status types include online, away, offline, and busy.",
        SET,
    )
}

fn status_not_allowed() -> Value {
    body_meteor(
        "error-status-not-allowed",
        "Invisible status is disabled",
        SET,
    )
}

fn invalid_date() -> Value {
    body_meteor("error-invalid-date", "Invalid expiresAt date string", SET)
}

fn past_date() -> Value {
    body_meteor("error-invalid-date", "expiresAt must be a future date", SET)
}

/// `statusText` of a user, read through users.info as the admin.
async fn text_of(srv: &Server, user_id: &str) -> String {
    srv.info_of(user_id).await["statusText"]
        .as_str()
        .expect("statusText")
        .to_string()
}

// ------------------------------------------------------------- step 1: auth

#[tokio::test]
async fn step1_missing_wrong_mismatched_and_revoked_tokens_get_the_exact_401() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let admin = srv.admin().await;
    let body = || json!({"status": "busy", "message": "nope"});

    // No headers at all.
    let r = srv.post_json(SET, None, body()).await;
    assert_reply(&r, 401, body_401());
    // Only one of the two headers.
    for headers in [
        vec![("X-User-Id", alice.user_id.as_str())],
        vec![("X-Auth-Token", alice.token.as_str())],
    ] {
        let mut h = headers.clone();
        h.push(("Content-Type", "application/json"));
        let r = srv
            .post_raw(SET, &h, serde_json::to_vec(&body()).unwrap())
            .await;
        assert_reply(&r, 401, body_401());
    }
    // A made-up token, an empty one, and a real token under another user's id.
    for s in [
        alice.with_token("not-a-real-token-not-a-real-token-not-a-re"),
        alice.with_token(""),
        Session {
            user_id: admin.user_id.clone(),
            ..alice.clone()
        },
        Session {
            user_id: "nosuchuser".into(),
            ..alice.clone()
        },
    ] {
        let r = srv.post_json(SET, Some(&s), body()).await;
        assert_reply(&r, 401, body_401());
    }
    // A revoked token (logged out).
    let second = srv.login("alice", "alice-pass-1").await;
    let r = srv.post_json("logout", Some(&second), json!({})).await;
    assert_status(&r, 200);
    let r = srv.post_json(SET, Some(&second), body()).await;
    assert_reply(&r, 401, body_401());
    // Nothing of it was applied, and the other session still works.
    assert_eq!(text_of(&srv, &alice.user_id).await, "");
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "offline");
    let r = srv.set_status(&alice, json!({"status": "away"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    // 401 comes before the body is even looked at.
    let r = srv
        .post_raw(SET, &[("Content-Type", "application/json")], "{not json")
        .await;
    assert_reply(&r, 401, body_401());
}

// ------------------------------------------------------- step 2: rate limit

#[tokio::test]
async fn step2_rest_rate_limit_answers_429_with_headers_and_admin_is_exempt() {
    let srv = Server::start_with(&[("OVERWRITE_SETTING_API_Enable_Rate_Limiter", "true")]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let admin = srv.admin().await;

    let before = chrono::Utc::now().timestamp_millis();
    for i in 1..=10i64 {
        // Status-only bodies: the message-change limit (step 8) stays out of the way.
        let status = if i % 2 == 0 { "away" } else { "busy" };
        let r = srv.set_status(&bob, json!({ "status": status })).await;
        assert_reply(&r, 200, json!({"success": true}));
        assert_eq!(header_i64(&r.1, "x-ratelimit-limit"), 10);
        assert_eq!(header_i64(&r.1, "x-ratelimit-remaining"), 10 - i);
        let reset = header_i64(&r.1, "x-ratelimit-reset");
        assert!(
            reset > before && reset <= chrono::Utc::now().timestamp_millis() + 60_000 + 1000,
            "X-RateLimit-Reset {reset} is not an epoch-ms time within the next 60 s"
        );
    }
    // The 11th call: 429, with the headers, and nothing written (step 2 is before 9).
    let r = srv
        .set_status(&bob, json!({"status": "online", "message": "x"}))
        .await;
    assert_too_many(&r, 60);
    assert_eq!(header_i64(&r.1, "x-ratelimit-limit"), 10);
    assert_eq!(header_i64(&r.1, "x-ratelimit-remaining"), 0);
    assert!(header_i64(&r.1, "x-ratelimit-reset") > chrono::Utc::now().timestamp_millis());
    let st = srv.status_of(&bob.user_id).await;
    assert_eq!(st["status"], "away", "{st}");
    assert_eq!(text_of(&srv, &bob.user_id).await, "");
    // The limit comes before the shape check: a bad body is still 429.
    let r = srv.set_status(&bob, json!({})).await;
    assert_too_many(&r, 60);
    // ... but after authentication: a bad token is still 401.
    let r = srv
        .set_status(&bob.with_token("wrong"), json!({"status": "away"}))
        .await;
    assert_reply(&r, 401, body_401());

    // Per user: carol has her own budget.
    let r = srv.set_status(&carol, json!({"status": "busy"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(header_i64(&r.1, "x-ratelimit-remaining"), 9);
    // Per route: bob may still read.
    let r = srv.get("users.getStatus", Some(&bob)).await;
    assert_status(&r, 200);

    // The admin holds api-bypass-rate-limit: never limited.
    for _ in 0..13 {
        let r = srv.set_status(&admin, json!({"status": "busy"})).await;
        assert_reply(&r, 200, json!({"success": true}));
    }
    // Without the permission the admin is limited like anyone else.
    srv.set_permission("api-bypass-rate-limit", &["bot", "app"])
        .await;
    let mut limited = false;
    for _ in 0..11 {
        let r = srv.set_status(&admin, json!({"status": "away"})).await;
        if r.0 == 429 {
            assert_too_many(&r, 60);
            limited = true;
            break;
        }
        assert_status(&r, 200);
    }
    assert!(
        limited,
        "admin without api-bypass-rate-limit was never limited"
    );
}

#[tokio::test]
async fn step2_rate_limit_settings_change_the_budget() {
    let srv = Server::start_with(&[
        ("OVERWRITE_SETTING_API_Enable_Rate_Limiter", "true"),
        (
            "OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Calls_Default",
            "3",
        ),
        (
            "OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Time_Default",
            "2000",
        ),
    ])
    .await;
    let dan = srv.create_user("dan", "dan-pass-1", &["user"]).await;
    for i in 1..=3 {
        let r = srv.set_status(&dan, json!({"status": "busy"})).await;
        assert_status(&r, 200);
        assert_eq!(header_i64(&r.1, "x-ratelimit-limit"), 3);
        assert_eq!(header_i64(&r.1, "x-ratelimit-remaining"), 3 - i);
    }
    let r = srv.set_status(&dan, json!({"status": "busy"})).await;
    assert_too_many(&r, 2);
    // The window is 2 s: time is the subject here.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = srv.set_status(&dan, json!({"status": "away"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    // Switching the limiter off through the settings route lifts it.
    for _ in 0..2 {
        assert_status(&srv.set_status(&dan, json!({"status": "away"})).await, 200);
    }
    assert_too_many(&srv.set_status(&dan, json!({"status": "away"})).await, 2);
    srv.set_setting("API_Enable_Rate_Limiter", json!(false))
        .await;
    for _ in 0..5 {
        assert_status(&srv.set_status(&dan, json!({"status": "away"})).await, 200);
    }
}

// ------------------------------------------------------------ step 3: shape

#[tokio::test]
async fn step3_bodies_of_the_wrong_shape_get_the_match_error() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    srv.set_status(&admin, json!({"status": "busy", "message": "before"}))
        .await;
    let bad = [
        json!({}),
        json!([]),
        json!(["status", "busy"]),
        json!("busy"),
        json!(42),
        json!(true),
        json!(null),
        json!({"message": null}),
        json!({"status": null}),
        json!({"status": null, "message": null}),
        json!({"status": 1}),
        json!({"status": true}),
        json!({"status": ["busy"]}),
        json!({"status": {"value": "busy"}}),
        json!({"message": 5}),
        json!({"message": false}),
        json!({"message": ["a"]}),
        json!({"message": {}}),
        json!({"status": "busy", "message": 1}),
        json!({"status": 1, "message": "x"}),
        json!({"status": "busy", "userId": 5}),
        json!({"status": "busy", "userId": null}),
        json!({"status": "busy", "username": ["admin"]}),
        json!({"status": "busy", "username": null}),
        json!({"status": "busy", "user": {}}),
        json!({"status": "busy", "user": false}),
        json!({"status": "busy", "expiresAt": 1900000000000u64}),
        json!({"status": "busy", "expiresAt": {"$date": 1900000000000u64}}),
        json!({"status": "busy", "expiresAt": true}),
        json!({"userId": "x", "username": "y"}),
        json!({"expiresAt": "2999-01-01T00:00:00Z"}),
    ];
    for body in bad {
        let r = srv.set_status(&admin, body.clone()).await;
        assert_eq!(
            (r.0.as_u16(), &r.2),
            (400, &body_match_error()),
            "body {body}"
        );
    }
    // An empty body reads as {}.
    let r = srv
        .request(
            Method::POST,
            SET,
            Some(&admin),
            &[("Content-Type", "application/json")],
            Some(Vec::new()),
        )
        .await;
    assert_reply(&r, 400, body_match_error());
    // Unparsable JSON is a 400 JSON error too.
    let r = srv
        .request(
            Method::POST,
            SET,
            Some(&admin),
            &[("Content-Type", "application/json")],
            Some(b"{\"status\": \"busy\"".to_vec()),
        )
        .await;
    assert_status(&r, 400);
    assert_eq!(r.2["success"], false, "{}", r.2);
    assert!(r.2["error"].is_string(), "{}", r.2);
    // None of it was applied.
    assert_eq!(text_of(&srv, &admin.user_id).await, "before");
    assert_eq!(srv.status_of(&admin.user_id).await["status"], "busy");

    // Accepted shapes: one of status/message a string, the other null or absent,
    // unknown fields ignored.
    for body in [
        json!({"status": "away", "message": null}),
        json!({"status": null, "message": "after"}),
        json!({"message": "after", "expiresAt": null}),
        json!({"status": "busy", "somethingElse": [1, 2], "statusEmoji": ":)"}),
        json!({"status": "", "message": "after"}),
    ] {
        let r = srv.set_status(&admin, body.clone()).await;
        assert_eq!(
            (r.0.as_u16(), &r.2),
            (200, &json!({"success": true})),
            "body {body}"
        );
    }
    assert_eq!(text_of(&srv, &admin.user_id).await, "after");
    assert_eq!(srv.status_of(&admin.user_id).await["status"], "busy");
}

// ----------------------------------------------------- step 4: the setting

#[tokio::test]
async fn step4_message_change_setting_off_refuses_every_call() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let eve = srv.create_user("eve", "eve-pass-1", &["user"]).await;
    srv.set_status(&eve, json!({"status": "busy", "message": "keep me"}))
        .await;

    srv.set_setting("Accounts_AllowUserStatusMessageChange", json!(false))
        .await;
    let r = srv
        .get(
            "settings/Accounts_AllowUserStatusMessageChange",
            Some(&admin),
        )
        .await;
    assert_reply(
        &r,
        200,
        json!({"_id": "Accounts_AllowUserStatusMessageChange", "value": false, "success": true}),
    );
    let public = srv.get("settings.public", None).await;
    assert!(
        public.2["settings"]
            .as_array()
            .unwrap()
            .contains(&json!({"_id": "Accounts_AllowUserStatusMessageChange", "value": false})),
        "{}",
        public.2
    );

    for (who, body) in [
        (&eve, json!({"status": "away"})),
        (&eve, json!({"message": "new"})),
        (&eve, json!({"message": ""})),
        (&eve, json!({"status": "online", "message": ""})),
        (
            &eve,
            json!({"status": "away", "expiresAt": iso_from_now(3600)}),
        ),
        // Step 4 is before the target check (5) and the value checks (6, 7).
        (&eve, json!({"status": "away", "userId": admin.user_id})),
        (&eve, json!({"status": "bogus"})),
        (&eve, json!({"status": "busy", "expiresAt": "yesterday"})),
        (&admin, json!({"status": "away", "userId": eve.user_id})),
        (
            &admin,
            json!({"status": "away", "userId": "nosuchuserid12345"}),
        ),
        (&admin, json!({"message": "admin too"})),
    ] {
        let r = srv.set_status(who, body.clone()).await;
        assert_eq!(
            (r.0.as_u16(), &r.2),
            (400, &not_allowed()),
            "{} {body}",
            who.username
        );
    }
    // ... but after the shape check (3).
    let r = srv.set_status(&eve, json!({})).await;
    assert_reply(&r, 400, body_match_error());
    // Nothing changed.
    assert_eq!(text_of(&srv, &eve.user_id).await, "keep me");
    assert_eq!(srv.status_of(&eve.user_id).await["status"], "busy");

    // Back on: works again.
    srv.set_setting("Accounts_AllowUserStatusMessageChange", json!(true))
        .await;
    let r = srv
        .set_status(&eve, json!({"status": "away", "message": "back"}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(text_of(&srv, &eve.user_id).await, "back");
    assert_eq!(srv.status_of(&eve.user_id).await["status"], "away");
}

// ------------------------------------------------------------ step 5: target

#[tokio::test]
async fn step5_plain_user_may_name_itself_by_id_username_or_user() {
    let srv = Server::start().await;
    let frank = srv.create_user("frank", "frank-pass-1", &["user"]).await;

    // What KDE Ruqola sends: its own id, a status and an empty message.
    let r = srv
        .set_status(
            &frank,
            json!({"userId": frank.user_id, "status": "online", "message": ""}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&frank.user_id).await["status"], "online");

    for (body, want) in [
        (json!({"username": "frank", "status": "away"}), "away"),
        (json!({"user": "frank", "status": "busy"}), "busy"),
        // Empty strings count as absent.
        (
            json!({"userId": "", "username": "", "user": "", "status": "away"}),
            "away",
        ),
        // The OR-chain: own username wins over a foreign id.
        (
            json!({"userId": "someoneelse123456", "username": "frank", "status": "busy"}),
            "busy",
        ),
    ] {
        let r = srv.set_status(&frank, body.clone()).await;
        assert_eq!(
            (r.0.as_u16(), &r.2),
            (200, &json!({"success": true})),
            "{body}"
        );
        assert_eq!(
            srv.status_of(&frank.user_id).await["status"],
            want,
            "{body}"
        );
    }
}

#[tokio::test]
async fn step5_plain_user_targeting_anyone_else_gets_403() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let gina = srv.create_user("gina", "gina-pass-1", &["user"]).await;
    let hank_id = srv.create_user_only("hank", "hank-pass-1", &["user"]).await;
    srv.set_status(
        &admin,
        json!({"userId": hank_id, "status": "busy", "message": "hank's"}),
    )
    .await;

    for body in [
        json!({"userId": hank_id, "status": "away"}),
        json!({"username": "hank", "message": "hijack"}),
        json!({"user": "hank", "status": "away"}),
        // Own username in another case is not "self" (exact comparison).
        json!({"username": "GINA", "status": "away"}),
        // Nonexistent targets: 403 as well, no existence leak.
        json!({"userId": "nosuchuserid12345", "status": "away"}),
        json!({"username": "nobody-at-all", "status": "away"}),
        json!({"user": "nobody-at-all", "message": "x"}),
        // Step 5 is before the value checks 6 and 7.
        json!({"userId": hank_id, "status": "bogus"}),
        json!({"userId": hank_id, "status": "away", "expiresAt": "garbage"}),
    ] {
        let r = srv.set_status(&gina, body.clone()).await;
        assert_eq!((r.0.as_u16(), &r.2), (403, &body_403()), "{body}");
    }
    assert_eq!(srv.status_of(&hank_id).await["status"], "busy");
    assert_eq!(text_of(&srv, &hank_id).await, "hank's");
    assert_eq!(srv.status_of(&gina.user_id).await["status"], "offline");
}

#[tokio::test]
async fn step5_admin_sets_other_users_by_id_and_username_in_any_case() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let ivy_id = srv
        .create_user_only("Ivy.Lee", "ivy-pass-1", &["user"])
        .await;

    let r = srv
        .set_status(
            &admin,
            json!({"userId": ivy_id, "status": "busy", "message": "by id"}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let st = srv.status_of(&ivy_id).await;
    assert_eq!(st["status"], "busy", "{st}");
    assert_eq!(st["statusSource"], "manual", "{st}");
    assert_eq!(text_of(&srv, &ivy_id).await, "by id");
    // The admin's own status did not move.
    assert_eq!(srv.status_of(&admin.user_id).await["status"], "offline");
    assert_eq!(text_of(&srv, &admin.user_id).await, "");

    let r = srv
        .set_status(
            &admin,
            json!({"username": "ivy.LEE", "status": "away", "message": "by name"}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&ivy_id).await["status"], "away");
    assert_eq!(text_of(&srv, &ivy_id).await, "by name");

    let r = srv
        .set_status(
            &admin,
            json!({"user": "IVY.LEE", "status": "online", "message": "by user"}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&ivy_id).await["status"], "online");
    assert_eq!(text_of(&srv, &ivy_id).await, "by user");

    // Precedence userId > username > user; blank userId falls through to username.
    let r = srv
        .set_status(
            &admin,
            json!({"userId": "   ", "username": "ivy.lee", "user": "nobody", "status": "busy"}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&ivy_id).await["status"], "busy");
    let r = srv
        .set_status(
            &admin,
            json!({"userId": ivy_id, "username": "nobody", "status": "away"}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&ivy_id).await["status"], "away");

    // The admin's own username in another case is not "self", but resolves to the admin.
    let r = srv
        .set_status(&admin, json!({"username": "ADMIN", "status": "busy"}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&admin.user_id).await["status"], "busy");
}

#[tokio::test]
async fn step5_admin_naming_a_missing_user_gets_error_invalid_user() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    srv.set_status(&admin, json!({"status": "away", "message": "mine"}))
        .await;
    for body in [
        json!({"userId": "nosuchuserid12345", "status": "busy"}),
        json!({"username": "nobody", "status": "busy", "message": "x"}),
        json!({"user": "nobody", "message": "x"}),
        json!({"userId": "nosuchuserid12345", "username": "nobody", "status": "busy"}),
        // The target is resolved (5) before the status value is checked (6).
        json!({"userId": "nosuchuserid12345", "status": "bogus"}),
    ] {
        let r = srv.set_status(&admin, body.clone()).await;
        assert_eq!((r.0.as_u16(), &r.2), (400, &invalid_user(SET)), "{body}");
    }
    assert_eq!(text_of(&srv, &admin.user_id).await, "mine");
    assert_eq!(srv.status_of(&admin.user_id).await["status"], "away");
}

#[tokio::test]
async fn step5_edit_other_user_info_removed_via_permissions_update_gives_403() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let jay_id = srv.create_user_only("jay", "jay-pass-1", &["user"]).await;

    srv.set_permission("edit-other-user-info", &[]).await;
    let r = srv.get("permissions.listAll", Some(&admin)).await;
    // (Each permission also carries its `_updatedAt`, as in Rocket.Chat.)
    assert!(
        r.2["update"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["_id"] == "edit-other-user-info" && p["roles"] == json!([])),
        "{}",
        r.2
    );
    for body in [
        json!({"userId": jay_id, "status": "busy", "message": "test"}),
        json!({"username": "jay", "status": "busy"}),
        json!({"userId": "nosuchuserid12345", "status": "busy"}),
    ] {
        let r = srv.set_status(&admin, body.clone()).await;
        assert_eq!((r.0.as_u16(), &r.2), (403, &body_403()), "{body}");
    }
    assert_eq!(srv.status_of(&jay_id).await["status"], "offline");
    // The admin may still set its own status.
    let r = srv.set_status(&admin, json!({"status": "busy"})).await;
    assert_reply(&r, 200, json!({"success": true}));

    // Granting it to "user" lets a plain user set others.
    srv.set_permission("edit-other-user-info", &["user"]).await;
    let kim = srv.create_user("kim", "kim-pass-1", &["user"]).await;
    let r = srv
        .set_status(
            &kim,
            json!({"userId": jay_id, "status": "away", "message": "by kim"}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&jay_id).await["status"], "away");
    // A caller whose roles do not hold it is refused (the admin also has "user").
    let pia = srv.create_user("pia", "pia-pass-1", &["guest"]).await;
    let r = srv
        .set_status(&pia, json!({"userId": jay_id, "status": "busy"}))
        .await;
    assert_reply(&r, 403, body_403());

    srv.set_permission("edit-other-user-info", &["admin"]).await;
    let r = srv
        .set_status(
            &admin,
            json!({"userId": jay_id, "status": "busy", "message": "test"}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&jay_id).await["status"], "busy");
}

// ------------------------------------------------------ step 6: status value

#[tokio::test]
async fn step6_invalid_status_values_and_the_invisible_option() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    srv.set_status(&admin, json!({"status": "away", "message": "orig"}))
        .await;
    for status in [
        "invalid",
        "Busy",
        "ONLINE",
        " online",
        "online ",
        "disabled",
        "invisible",
        "dnd",
        "0",
    ] {
        let r = srv
            .set_status(&admin, json!({"status": status, "message": "new"}))
            .await;
        assert_eq!((r.0.as_u16(), &r.2), (400, &invalid_status()), "{status:?}");
    }
    // Every valid value is accepted; with no connection the choice shows at once (§5).
    for status in ["online", "away", "busy", "offline"] {
        let r = srv.set_status(&admin, json!({ "status": status })).await;
        assert_reply(&r, 200, json!({"success": true}));
        let st = srv.get("users.getStatus", Some(&admin)).await.2;
        assert_eq!(st["status"], status, "{st}");
        assert_eq!(st["connectionStatus"], "offline", "{st}");
    }
    assert_eq!(text_of(&srv, &admin.user_id).await, "orig");

    srv.set_setting("Accounts_AllowInvisibleStatusOption", json!(false))
        .await;
    srv.set_status(&admin, json!({"status": "busy"})).await;
    for body in [
        json!({"status": "offline"}),
        json!({"status": "offline", "message": "hidden"}),
        json!({"status": "offline", "userId": admin.user_id}),
    ] {
        let r = srv.set_status(&admin, body.clone()).await;
        assert_eq!((r.0.as_u16(), &r.2), (400, &status_not_allowed()), "{body}");
    }
    // Step 6 comes before step 7.
    let r = srv
        .set_status(
            &admin,
            json!({"status": "offline", "expiresAt": "nonsense"}),
        )
        .await;
    assert_reply(&r, 400, status_not_allowed());
    let r = srv
        .set_status(&admin, json!({"status": "bogus", "expiresAt": "nonsense"}))
        .await;
    assert_reply(&r, 400, invalid_status());
    // Other values still work.
    let r = srv.set_status(&admin, json!({"status": "away"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&admin.user_id).await["status"], "away");
    assert_eq!(text_of(&srv, &admin.user_id).await, "orig");

    srv.set_setting("Accounts_AllowInvisibleStatusOption", json!(true))
        .await;
    let r = srv.set_status(&admin, json!({"status": "offline"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&admin.user_id).await["status"], "offline");
}

// ---------------------------------------------------------- step 7: expiry

#[tokio::test]
async fn step7_expires_at_malformed_past_and_future() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    srv.set_status(&admin, json!({"status": "away", "message": "orig"}))
        .await;

    for bad in [
        "tomorrow",
        "not a date",
        "2030-13-01T00:00:00Z",
        "2030-02-30T00:00:00Z",
        "2030-01-01T25:00:00Z",
        "2030-01-01 00:00:00 +0000 UTC",
        "1700000000000",
        "T",
    ] {
        let r = srv
            .set_status(
                &admin,
                json!({"status": "busy", "message": "new", "expiresAt": bad}),
            )
            .await;
        assert_eq!((r.0.as_u16(), &r.2), (400, &invalid_date()), "{bad:?}");
    }
    for past in [
        "2020-01-01T00:00:00.000Z".to_string(),
        "1999-12-31T23:59:59Z".to_string(),
        iso_from_now(-5),
    ] {
        let r = srv
            .set_status(
                &admin,
                json!({"status": "busy", "message": "new", "expiresAt": past}),
            )
            .await;
        assert_eq!((r.0.as_u16(), &r.2), (400, &past_date()), "{past:?}");
    }
    assert_eq!(text_of(&srv, &admin.user_id).await, "orig");
    let st = srv.get("users.getStatus", Some(&admin)).await.2;
    assert_eq!(st["status"], "away", "{st}");
    assert!(st.get("statusExpiresAt").is_none(), "{st}");

    // A future time is stored and shown by getStatus (and users.info).
    let when = iso_from_now(3600);
    let r = srv
        .set_status(
            &admin,
            json!({"status": "busy", "message": "focus time", "expiresAt": when}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let st = srv.get("users.getStatus", Some(&admin)).await.2;
    assert_eq!(
        st,
        json!({
            "_id": admin.user_id,
            "status": "busy",
            "connectionStatus": "offline",
            "statusSource": "manual",
            "statusExpiresAt": when,
            "success": true
        })
    );
    let info = srv.info_of(&admin.user_id).await;
    assert_eq!(info["statusExpiresAt"], when.as_str(), "{info}");

    // Other RFC 3339 spellings of the same kind of time are accepted.
    let local = (chrono::Utc::now() + chrono::Duration::hours(2))
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    let spelled = local.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    let r = srv
        .set_status(&admin, json!({"status": "away", "expiresAt": spelled}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let st = srv.get("users.getStatus", Some(&admin)).await.2;
    let stored = parse_time(st["statusExpiresAt"].as_str().expect("statusExpiresAt"));
    assert_eq!(stored, parse_time(&spelled), "{st}");

    // An empty or null expiresAt counts as absent: the expiry is cleared.
    for body in [
        json!({"status": "busy", "expiresAt": ""}),
        json!({"status": "busy", "expiresAt": null}),
        json!({"status": "busy"}),
    ] {
        srv.set_status(
            &admin,
            json!({"status": "away", "expiresAt": iso_from_now(600)}),
        )
        .await;
        let r = srv.set_status(&admin, body.clone()).await;
        assert_reply(&r, 200, json!({"success": true}));
        let st = srv.get("users.getStatus", Some(&admin)).await.2;
        assert!(st.get("statusExpiresAt").is_none(), "{body}: {st}");
        assert_eq!(st["status"], "busy", "{body}: {st}");
    }
}

// ------------------------------------------------ step 8: message-change limit

#[tokio::test]
async fn step8_message_changes_limited_to_5_per_minute_per_target_user() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let lou = srv.create_user("lou", "lou-pass-1", &["user"]).await;
    let max = srv.create_user("max", "max-pass-1", &["user"]).await;

    for i in 1..=5 {
        let r = srv
            .set_status(
                &lou,
                json!({"status": "away", "message": format!("msg {i}")}),
            )
            .await;
        assert_reply(&r, 200, json!({"success": true}));
    }
    // The 6th: 429, and neither status nor text is written.
    let r = srv
        .set_status(&lou, json!({"status": "busy", "message": "msg 6"}))
        .await;
    assert_too_many(&r, 60);
    assert_eq!(text_of(&srv, &lou.user_id).await, "msg 5");
    assert_eq!(srv.status_of(&lou.user_id).await["status"], "away");
    // Clearing is a message change too.
    let r = srv.set_status(&lou, json!({"message": ""})).await;
    assert_too_many(&r, 60);
    // Steps 6 and 7 come before 8.
    let r = srv
        .set_status(&lou, json!({"status": "bogus", "message": "x"}))
        .await;
    assert_reply(&r, 400, invalid_status());
    let r = srv
        .set_status(
            &lou,
            json!({"message": "x", "expiresAt": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_reply(&r, 400, past_date());
    // Status-only changes are not message changes.
    let r = srv.set_status(&lou, json!({"status": "busy"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(srv.status_of(&lou.user_id).await["status"], "busy");
    let r = srv
        .set_status(&lou, json!({"status": "away", "message": null}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));

    // Another user has their own budget.
    let r = srv.set_status(&max, json!({"message": "max 1"})).await;
    assert_reply(&r, 200, json!({"success": true}));

    // A caller holding edit-other-user-info is exempt, also on the limited user.
    let r = srv
        .set_status(
            &admin,
            json!({"userId": lou.user_id, "message": "set by admin"}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(text_of(&srv, &lou.user_id).await, "set by admin");
    for i in 1..=8 {
        let r = srv
            .set_status(&admin, json!({"message": format!("admin {i}")}))
            .await;
        assert_reply(&r, 200, json!({"success": true}));
    }
    assert_eq!(text_of(&srv, &admin.user_id).await, "admin 8");

    // The exemption is the permission itself: granted to "user", lou is exempt too.
    srv.set_permission("edit-other-user-info", &["admin", "user"])
        .await;
    let r = srv.set_status(&lou, json!({"message": "now exempt"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(text_of(&srv, &lou.user_id).await, "now exempt");
}

#[tokio::test]
async fn step8_limit_is_per_user_not_per_session() {
    let srv = Server::start().await;
    let ned = srv.create_user("ned", "ned-pass-1", &["user"]).await;
    let ned2 = srv.login("ned", "ned-pass-1").await;
    assert_ne!(ned.token, ned2.token);
    for i in 1..=5 {
        let who = if i % 2 == 0 { &ned } else { &ned2 };
        let r = srv
            .set_status(who, json!({"message": format!("ned {i}")}))
            .await;
        assert_reply(&r, 200, json!({"success": true}));
    }
    for who in [&ned, &ned2] {
        let r = srv
            .set_status(who, json!({"username": "ned", "message": "ned 6"}))
            .await;
        assert_too_many(&r, 60);
    }
    assert_eq!(text_of(&srv, &ned.user_id).await, "ned 5");
}

// ---------------------------------------------------------- step 9: apply

#[tokio::test]
async fn step9_text_is_trimmed_cut_at_120_characters_and_cleared_by_empty() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let cases: Vec<(String, String)> = vec![
        ("  hello world \t\n".into(), "hello world".into()),
        ("\u{3000}wide space\u{3000}".into(), "wide space".into()),
        ("é".repeat(130), "é".repeat(120)),
        ("😀".repeat(125), "😀".repeat(120)),
        // 119 ASCII + 2 emoji = 121 characters: the cut keeps the first emoji whole.
        (
            format!("{}🎉🎉", "a".repeat(119)),
            format!("{}🎉", "a".repeat(119)),
        ),
        // Characters, not bytes nor UTF-16 units: 120 CJK characters stay.
        ("漢".repeat(120), "漢".repeat(120)),
        ("x".repeat(120), "x".repeat(120)),
        ("y".repeat(121), "y".repeat(120)),
        // Trimmed first, then cut: leading blanks do not count.
        (format!("     {}", "z".repeat(125)), "z".repeat(120)),
        // Cut after trimming: a space at position 120 stays (no second trim).
        (
            format!("{} b", "a".repeat(119)),
            format!("{} ", "a".repeat(119)),
        ),
        ("line1\nline2".into(), "line1\nline2".into()),
        ("   ".into(), "".into()),
    ];
    for (sent, want) in &cases {
        let r = srv.set_status(&admin, json!({ "message": sent })).await;
        assert_reply(&r, 200, json!({"success": true}));
        let got = text_of(&srv, &admin.user_id).await;
        assert_eq!(&got, want, "sent {sent:?}");
        assert!(got.chars().count() <= 120);
    }

    // message "" clears; an absent or null message leaves the text alone.
    srv.set_status(&admin, json!({"message": "something"}))
        .await;
    let r = srv.set_status(&admin, json!({"status": "away"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(text_of(&srv, &admin.user_id).await, "something");
    let r = srv
        .set_status(&admin, json!({"status": "busy", "message": null}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(text_of(&srv, &admin.user_id).await, "something");
    let r = srv.set_status(&admin, json!({"message": ""})).await;
    assert_reply(&r, 200, json!({"success": true}));
    assert_eq!(text_of(&srv, &admin.user_id).await, "");
    // A message-only change keeps the chosen status.
    assert_eq!(srv.status_of(&admin.user_id).await["status"], "busy");
    // users.presence shows the same text.
    srv.set_status(&admin, json!({"message": "é".repeat(130)}))
        .await;
    let p = srv
        .get(
            &format!("users.presence?ids={}", admin.user_id),
            Some(&admin),
        )
        .await;
    assert_eq!(p.2["users"][0]["statusText"], "é".repeat(120), "{}", p.2);
}

#[tokio::test]
async fn step9_failed_requests_write_nothing() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let olga = srv.create_user("olga", "olga-pass-1", &["user"]).await;
    let r = srv
        .set_status(&olga, json!({"status": "busy", "message": "keep"}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let before_info = srv.info_of(&olga.user_id).await;
    let before_status = srv.status_of(&olga.user_id).await;

    srv.set_setting("Accounts_AllowInvisibleStatusOption", json!(false))
        .await;
    let failing = [
        (json!({"status": "bogus", "message": "new"}), 400),
        (json!({"status": "offline", "message": "new"}), 400),
        (
            json!({"status": "away", "message": "new", "expiresAt": "garbage"}),
            400,
        ),
        (
            json!({"status": "away", "message": "new", "expiresAt": "2000-01-01T00:00:00Z"}),
            400,
        ),
        (json!({"status": "away", "message": 7}), 400),
        (
            json!({"userId": admin.user_id, "status": "away", "message": "new"}),
            403,
        ),
    ];
    for (body, code) in failing {
        let r = srv.set_status(&olga, body.clone()).await;
        assert_eq!(r.0.as_u16(), code, "{body}: {}", r.2);
        assert_eq!(srv.info_of(&olga.user_id).await, before_info, "{body}");
        assert_eq!(srv.status_of(&olga.user_id).await, before_status, "{body}");
    }
    // The admin's failing request on olga (step 6) does not touch her either.
    let r = srv
        .set_status(
            &admin,
            json!({"userId": olga.user_id, "status": "nope", "message": "new"}),
        )
        .await;
    assert_reply(&r, 400, invalid_status());
    assert_eq!(srv.info_of(&olga.user_id).await, before_info);
    let admin_info = srv.info_of(&admin.user_id).await;
    assert_eq!(admin_info["statusText"], "");
}

#[tokio::test]
async fn step9_source_and_expiry_bookkeeping() {
    let srv = Server::start().await;
    let pat = srv.create_user("pat", "pat-pass-1", &["user"]).await;
    // A fresh user: no source, no expiry.
    let st = srv.get("users.getStatus", Some(&pat)).await;
    assert_reply(
        &st,
        200,
        json!({"_id": pat.user_id, "status": "offline", "connectionStatus": "offline", "success": true}),
    );
    // A message-only change is a manual change as well.
    let r = srv.set_status(&pat, json!({"message": "hi"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    let st = srv.get("users.getStatus", Some(&pat)).await.2;
    assert_eq!(st["statusSource"], "manual", "{st}");
    // Expiry set, then cleared by a change without expiresAt.
    let when = iso_from_now(7200);
    srv.set_status(&pat, json!({"status": "busy", "expiresAt": when}))
        .await;
    let st = srv.get("users.getStatus", Some(&pat)).await.2;
    assert_eq!(st["statusExpiresAt"], when.as_str(), "{st}");
    assert_eq!(st["status"], "busy");
    let r = srv.set_status(&pat, json!({"message": "still busy"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    let st = srv.get("users.getStatus", Some(&pat)).await.2;
    assert!(st.get("statusExpiresAt").is_none(), "{st}");
    assert_eq!(st["status"], "busy", "{st}");
    assert_eq!(st["statusSource"], "manual", "{st}");
}
