//! Sessions and the REST conventions (CONTRACT §2, §3): every login body form, the
//! identical failure body, failed-login blocking, logout, me, personal access tokens,
//! and the JSON errors for malformed, oversized, unknown and wrong-method requests.

use crate::common;

use common::*;

fn ok() -> Value {
    json!({"success": true})
}

/// Checks a successful login answer and returns its session.
#[track_caller]
fn assert_login_ok(r: &Reply, user_id: &str, username: &str) -> Session {
    assert_status(r, 200);
    let b = &r.2;
    assert_eq!(b["status"], "success", "{b}");
    assert_eq!(b["success"], true, "{b}");
    assert_eq!(b["data"]["userId"], user_id, "{b}");
    let token = b["data"]["authToken"].as_str().expect("authToken");
    assert_eq!(
        token.len(),
        43,
        "a login token is a 43-character secret: {b}"
    );
    let me = &b["data"]["me"];
    assert_eq!(me["_id"], user_id, "{b}");
    assert_eq!(me["username"], username, "{b}");
    session_from_login(b)
}

async fn me_of(srv: &Server, s: &Session) -> Reply {
    srv.get("me", Some(s)).await
}

#[tokio::test]
async fn login_accepts_every_body_form() {
    let srv = Server::start().await;
    let uid = srv
        .create_user_only("Hanna", "hanna-Pass-1", &["user"])
        .await;
    let pass = "hanna-Pass-1";
    let digest = sha256_hex(pass);
    let bodies = [
        json!({"user": "Hanna", "password": pass}),
        json!({"user": "hanna", "password": pass}),
        json!({"user": "hanna@example.com", "password": pass}),
        json!({"user": "HANNA@Example.com", "password": pass}),
        json!({"username": "hanna", "password": pass}),
        json!({"email": "hanna@example.com", "password": pass}),
        json!({"user": "hanna", "password": {"digest": digest, "algorithm": "sha-256"}}),
        json!({"username": "hanna", "password": {"digest": digest.to_uppercase(), "algorithm": "sha-256"}}),
        json!({"email": "hanna@example.com", "password": {"digest": digest, "algorithm": "sha-256"}}),
        json!({"user": {"username": "hanna"}, "password": {"digest": digest, "algorithm": "sha-256"}}),
        json!({"user": {"email": "hanna@example.com"}, "password": pass}),
    ];
    let mut tokens = Vec::new();
    for body in bodies {
        let r = srv.post_json("login", None, body.clone()).await;
        assert_eq!(r.0.as_u16(), 200, "{body}: {}", r.2);
        let s = assert_login_ok(&r, &uid, "Hanna");
        tokens.push(s.token.clone());
        let m = me_of(&srv, &s).await;
        assert_status(&m, 200);
    }
    // Every login gets its own token.
    let mut unique = tokens.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), tokens.len());

    // Form-encoded.
    for form in [
        "user=hanna&password=hanna-Pass-1".to_string(),
        "username=Hanna&password=hanna-Pass-1".to_string(),
        format!("email={}&password=hanna-Pass-1", enc("hanna@example.com")),
    ] {
        let r = srv
            .post_raw(
                "login",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                form.clone(),
            )
            .await;
        assert_eq!(r.0.as_u16(), 200, "{form}: {}", r.2);
        assert_login_ok(&r, &uid, "Hanna");
    }
    let r = srv
        .post_raw(
            "login",
            &[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )],
            "user=hanna&password=wrong",
        )
        .await;
    assert_reply(&r, 401, body_login_failed());

    // Resume with a token.
    let first = Session {
        user_id: uid.clone(),
        token: tokens[0].clone(),
        username: "Hanna".into(),
    };
    let r = srv
        .post_json("login", None, json!({"resume": first.token}))
        .await;
    let resumed = assert_login_ok(&r, &uid, "Hanna");
    assert_status(&me_of(&srv, &resumed).await, 200);
    // lastLogin is recorded.
    let info = srv.info_of(&uid).await;
    assert!(info["lastLogin"].is_string(), "{info}");
}

#[tokio::test]
async fn every_bad_credential_gets_the_same_401() {
    let srv = Server::start().await;
    srv.create_user_only("ivan", "ivan-pass-1", &["user"]).await;
    let id = srv.create_user_only("off", "off-pass-1", &["user"]).await;
    let admin = srv.admin().await;
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": id, "data": {"active": false}}),
        )
        .await;
    assert_status(&r, 200);
    for body in [
        json!({"user": "ivan", "password": "wrong"}),
        json!({"user": "nobody", "password": "wrong"}),
        json!({"user": "nobody@example.com", "password": "ivan-pass-1"}),
        json!({"username": "ivan", "password": "IVAN-PASS-1"}),
        json!({"email": "ivan@example.com", "password": ""}),
        json!({"user": "ivan", "password": {"digest": sha256_hex("wrong"), "algorithm": "sha-256"}}),
        json!({"user": "ivan", "password": {"digest": "not-hex", "algorithm": "sha-256"}}),
        json!({"user": "off", "password": "off-pass-1"}),
        json!({"resume": "no-such-token-no-such-token-no-such-token-x"}),
        json!({"resume": ""}),
        json!({"user": "ivan"}),
    ] {
        let r = srv.post_json("login", None, body.clone()).await;
        assert_eq!((r.0.as_u16(), &r.2), (401, &body_login_failed()), "{body}");
    }
    // The rocket.cat bot has no password: nobody logs in as it.
    let r = srv
        .post_json("login", None, json!({"user": "rocket.cat", "password": ""}))
        .await;
    assert_reply(&r, 401, body_login_failed());
    // Wrong shapes are client errors, never 5xx.
    for body in [json!([]), json!("x"), json!({"user": 5, "password": "x"})] {
        let r = srv.post_json("login", None, body.clone()).await;
        assert!(r.0 == 400 || r.0 == 401, "{body}: {} {}", r.0, r.2);
        assert_eq!(r.2["success"], false, "{body}: {}", r.2);
    }
}

#[tokio::test]
async fn repeated_failures_block_the_username() {
    let srv = Server::start().await;
    srv.create_user_only("judy", "judy-pass-1", &["user"]).await;
    srv.create_user_only("karl", "karl-pass-1", &["user"]).await;
    srv.set_setting(
        "Block_Multiple_Failed_Logins_Attempts_Until_Block_by_User",
        json!(3),
    )
    .await;
    for _ in 0..3 {
        let r = srv
            .post_json("login", None, json!({"user": "judy", "password": "wrong"}))
            .await;
        assert_reply(&r, 401, body_login_failed());
    }
    let blocked = json!({
        "status": "error",
        "error": "error-login-blocked-for-user",
        "details": {"function": "Accounts.validateLoginAttempt"},
        "message": "Login has been temporarily blocked For User",
        "success": false
    });
    // Now even the right password is refused, under any spelling of the name.
    for body in [
        json!({"user": "judy", "password": "judy-pass-1"}),
        json!({"username": "JUDY", "password": "judy-pass-1"}),
        json!({"email": "judy@example.com", "password": "judy-pass-1"}),
        json!({"user": "judy", "password": "wrong"}),
    ] {
        let r = srv.post_json("login", None, body.clone()).await;
        assert_eq!((r.0.as_u16(), &r.2), (401, &blocked), "{body}");
    }
    // Another user is not affected.
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "karl", "password": "karl-pass-1"}),
        )
        .await;
    assert_status(&r, 200);
}

#[tokio::test]
async fn logout_revokes_only_the_calling_token() {
    let srv = Server::start().await;
    let a = srv.create_user("lena", "lena-pass-1", &["user"]).await;
    let b = srv.login("lena", "lena-pass-1").await;
    let c = srv.login("lena", "lena-pass-1").await;
    let bye = json!({"status": "success", "data": {"message": "You've been logged out!"}, "success": true});

    let r = srv.post_json("logout", Some(&a), json!({})).await;
    assert_reply(&r, 200, bye.clone());
    assert_reply(&me_of(&srv, &a).await, 401, body_401());
    let r = srv.post_json("logout", Some(&a), json!({})).await;
    assert_reply(&r, 401, body_401());
    // The other sessions live on.
    assert_status(&me_of(&srv, &b).await, 200);
    // GET works too.
    let r = srv.get("logout", Some(&b)).await;
    assert_reply(&r, 200, bye);
    assert_reply(&me_of(&srv, &b).await, 401, body_401());
    let r = srv.set_status(&b, json!({"status": "busy"})).await;
    assert_reply(&r, 401, body_401());
    assert_status(&me_of(&srv, &c).await, 200);
    // A revoked token cannot be resumed either.
    let r = srv
        .post_json("login", None, json!({"resume": a.token}))
        .await;
    assert_reply(&r, 401, body_login_failed());
    // Logout without a session is a 401.
    let r = srv.post_json("logout", None, json!({})).await;
    assert_reply(&r, 401, body_401());
}

#[tokio::test]
async fn me_shows_the_callers_fields() {
    let srv = Server::start_with(&[("ROOT_URL", "https://chat.example.org")]).await;
    let admin = srv.admin().await;
    let r = me_of(&srv, &admin).await;
    assert_status(&r, 200);
    let me = &r.2;
    assert_eq!(me["success"], true);
    assert_eq!(me["_id"], admin.user_id.as_str());
    assert_eq!(me["username"], ADMIN_USER);
    assert!(me["name"].is_string(), "{me}");
    assert_eq!(me["status"], "offline");
    assert_eq!(me["statusConnection"], "offline");
    assert_eq!(me["statusText"], "");
    assert_eq!(me["active"], true);
    assert!(me["utcOffset"].is_number(), "{me}");
    let roles: Vec<&str> = me["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(roles.contains(&"admin"), "{me}");
    assert_eq!(me["emails"][0]["address"], ADMIN_EMAIL, "{me}");
    assert_eq!(me["email"], ADMIN_EMAIL, "{me}");
    // Rocket.Chat's getUserInfo: the Accounts_Default_User_Preferences_* defaults.
    assert_eq!(
        me["settings"],
        json!({"preferences": {"enableAutoAway": true, "idleTimeLimit": 300}}),
        "{me}"
    );
    assert_eq!(
        me["avatarUrl"],
        format!("https://chat.example.org/avatar/{ADMIN_USER}"),
        "{me}"
    );
    // Whether a password is set, never the password (Rocket.Chat's sanitised services).
    assert_eq!(
        me["services"],
        json!({"password": {"exists": true}}),
        "{me}"
    );
    // No secrets.
    let mut rest = me.clone();
    rest.as_object_mut().unwrap().remove("services");
    let text = rest.to_string().to_lowercase();
    assert!(
        !text.contains("password") && !text.contains("bcrypt") && !text.contains("$2"),
        "{me}"
    );
    assert!(!text.contains(&admin.token.to_lowercase()), "{me}");

    // me follows status changes.
    srv.set_status(&admin, json!({"status": "busy", "message": "coding"}))
        .await;
    let me = me_of(&srv, &admin).await.2;
    assert_eq!(me["status"], "busy");
    assert_eq!(me["statusText"], "coding");

    assert_reply(&me_of(&srv, &admin.with_token("x")).await, 401, body_401());
    assert_reply(&srv.get("me", None).await, 401, body_401());
}

#[tokio::test]
async fn personal_access_tokens_lifecycle() {
    let srv = Server::start().await;
    let mo = srv.create_user("mo", "mo-pass-1", &["user"]).await;

    let r = srv.get("users.getPersonalAccessTokens", Some(&mo)).await;
    assert_reply(&r, 200, json!({"tokens": [], "success": true}));

    let r = srv
        .post_json(
            "users.generatePersonalAccessToken",
            Some(&mo),
            json!({"tokenName": "bot"}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2.as_object().unwrap().len(), 2, "{}", r.2);
    assert_eq!(r.2["success"], true);
    let pat = r.2["token"].as_str().expect("token").to_string();
    assert_eq!(pat.len(), 43);

    // Used exactly like a login token.
    let as_pat = mo.with_token(&pat);
    let me = me_of(&srv, &as_pat).await;
    assert_status(&me, 200);
    assert_eq!(me.2["_id"], mo.user_id.as_str());
    let r = srv.set_status(&as_pat, json!({"status": "away"})).await;
    assert_reply(&r, 200, ok());
    // ... but only with its own user id.
    let admin = srv.admin().await;
    let r = me_of(
        &srv,
        &Session {
            user_id: admin.user_id.clone(),
            ..as_pat.clone()
        },
    )
    .await;
    assert_reply(&r, 401, body_401());

    // Listed without the secret.
    let r = srv.get("users.getPersonalAccessTokens", Some(&mo)).await;
    assert_status(&r, 200);
    let tokens = r.2["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{}", r.2);
    assert_eq!(tokens[0]["name"], "bot");
    assert_eq!(tokens[0]["lastTokenPart"], &pat[pat.len() - 6..]);
    assert_eq!(tokens[0]["bypassTwoFactor"], false);
    parse_time(tokens[0]["createdAt"].as_str().expect("createdAt"));
    assert!(!r.2.to_string().contains(&pat), "{}", r.2);

    // The same name twice.
    let r = srv
        .post_json(
            "users.generatePersonalAccessToken",
            Some(&mo),
            json!({"tokenName": "bot"}),
        )
        .await;
    assert_status(&r, 400);
    assert_eq!(r.2["errorType"], "error-token-already-exists", "{}", r.2);
    // No or an empty name.
    for body in [
        json!({}),
        json!({"tokenName": ""}),
        json!({"tokenName": "  "}),
        json!({"tokenName": 5}),
    ] {
        let r = srv
            .post_json("users.generatePersonalAccessToken", Some(&mo), body.clone())
            .await;
        assert_eq!(r.0.as_u16(), 400, "{body}: {}", r.2);
        assert_eq!(r.2["success"], false);
    }

    // Regenerate: a new secret, the old one stops working.
    let r = srv
        .post_json(
            "users.regeneratePersonalAccessToken",
            Some(&mo),
            json!({"tokenName": "bot"}),
        )
        .await;
    assert_status(&r, 200);
    let pat2 = r.2["token"].as_str().expect("token").to_string();
    assert_ne!(pat, pat2);
    assert_reply(&me_of(&srv, &as_pat).await, 401, body_401());
    assert_status(&me_of(&srv, &mo.with_token(&pat2)).await, 200);
    let r = srv
        .post_json(
            "users.regeneratePersonalAccessToken",
            Some(&mo),
            json!({"tokenName": "nope"}),
        )
        .await;
    assert_status(&r, 400);
    assert_eq!(r.2["errorType"], "error-token-does-not-exists", "{}", r.2);

    // Logging out of the login session does not touch the PAT.
    let other = srv.login("mo", "mo-pass-1").await;
    assert_status(&srv.post_json("logout", Some(&other), json!({})).await, 200);
    assert_status(&me_of(&srv, &mo.with_token(&pat2)).await, 200);

    // Remove.
    let r = srv
        .post_json(
            "users.removePersonalAccessToken",
            Some(&mo),
            json!({"tokenName": "bot"}),
        )
        .await;
    assert_reply(&r, 200, ok());
    assert_reply(&me_of(&srv, &mo.with_token(&pat2)).await, 401, body_401());
    let r = srv.get("users.getPersonalAccessTokens", Some(&mo)).await;
    assert_reply(&r, 200, json!({"tokens": [], "success": true}));
    let r = srv
        .post_json(
            "users.removePersonalAccessToken",
            Some(&mo),
            json!({"tokenName": "bot"}),
        )
        .await;
    assert_status(&r, 400);
    assert_eq!(r.2["errorType"], "error-token-does-not-exists", "{}", r.2);

    // Without create-personal-access-tokens: the three token methods refuse with a 400
    // `not-authorized` (Rocket.Chat's methods throw it), the list route declares the
    // permission (403 `[error-unauthorized]`, CONTRACT §2 v2).
    srv.set_permission("create-personal-access-tokens", &["admin"])
        .await;
    for path in [
        "users.generatePersonalAccessToken",
        "users.regeneratePersonalAccessToken",
        "users.removePersonalAccessToken",
    ] {
        let r = srv
            .post_json(path, Some(&mo), json!({"tokenName": "x"}))
            .await;
        assert_reply(
            &r,
            400,
            json!({"success": false, "error": "Not Authorized [not-authorized]",
                   "errorType": "not-authorized", "details": {"method": path}}),
        );
    }
    for (method, path) in [(Method::GET, "users.getPersonalAccessTokens")] {
        let body = (method == Method::POST).then(|| br#"{"tokenName":"x"}"#.to_vec());
        let r = srv
            .request(
                method,
                path,
                Some(&mo),
                &[("Content-Type", "application/json")],
                body,
            )
            .await;
        assert_eq!((r.0.as_u16(), &r.2), (403, &body_403_declared()), "{path}");
    }
}

// ------------------------------------------------------ REST conventions (§2)

#[tokio::test]
async fn malformed_oversized_unknown_and_wrong_method_requests_get_json_errors() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let json_ct = [("Content-Type", "application/json")];

    // Unparsable JSON: 400 JSON error, on public and authenticated routes.
    for raw in [
        &b"{"[..],
        b"{\"user\": \"admin\", \"password\": }",
        b"not json at all",
        b"{\"a\":1}}",
        b"\xff\xfe\x00",
        b"{\"status\": \"busy\", \"message\": \"\xc3\x28\"}",
    ] {
        let r = srv.post_raw("login", &json_ct, raw.to_vec()).await;
        assert_eq!(r.0.as_u16(), 400, "{raw:?}: {}", r.2);
        assert_eq!(r.2["success"], false, "{}", r.2);
        assert!(r.2["error"].is_string(), "{}", r.2);
        let r = srv
            .request(
                Method::POST,
                "users.setStatus",
                Some(&admin),
                &json_ct,
                Some(raw.to_vec()),
            )
            .await;
        assert_eq!(r.0.as_u16(), 400, "{raw:?}: {}", r.2);
        assert_eq!(r.2["success"], false, "{}", r.2);
    }
    // Deeply nested JSON is just a client error.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = srv
        .request(
            Method::POST,
            "users.setStatus",
            Some(&admin),
            &json_ct,
            Some(deep.into_bytes()),
        )
        .await;
    assert_status(&r, 400);

    // Over 1 MiB: 413 JSON.
    let big = format!(
        "{{\"status\":\"busy\",\"message\":\"{}\"}}",
        "a".repeat(1024 * 1024 + 10)
    );
    for (path, session) in [("users.setStatus", Some(&admin)), ("login", None)] {
        let r = srv
            .request(
                Method::POST,
                path,
                session,
                &json_ct,
                Some(big.clone().into_bytes()),
            )
            .await;
        assert_eq!(r.0.as_u16(), 413, "{path}: {}", r.2);
        assert_eq!(r.2["success"], false, "{}", r.2);
        assert!(r.2["error"].is_string(), "{}", r.2);
    }
    // Just under the limit is read (and then judged on its content).
    let fits = format!(
        "{{\"status\":\"busy\",\"message\":\"{}\"}}",
        "b".repeat(1024 * 1024 - 100)
    );
    let r = srv
        .request(
            Method::POST,
            "users.setStatus",
            Some(&admin),
            &json_ct,
            Some(fits.into_bytes()),
        )
        .await;
    assert_reply(&r, 200, ok());
    let info = srv.info_of(&admin.user_id).await;
    assert_eq!(info["statusText"], "b".repeat(120));

    // Unknown API routes: 404 with the exact body, with or without a session. (Paths
    // outside /api belong to the web UI and are not checked here.)
    for path in [
        "/api/v1/nope",
        "/api/v1/users.nothing",
        "/api/v1/",
        "/api/v2/users.getStatus",
        "/api/nope",
        "/api/v1/users.getStatus/extra",
    ] {
        for session in [None, Some(&admin)] {
            let r = srv.get(path, session).await;
            assert_eq!((r.0.as_u16(), &r.2), (404, &body_404()), "GET {path}");
        }
        let r = srv.post_json(path, Some(&admin), json!({})).await;
        assert_eq!((r.0.as_u16(), &r.2), (404, &body_404()), "POST {path}");
    }

    // Wrong method: 405 JSON.
    for (method, path) in [
        (Method::GET, "/api/v1/users.setStatus"),
        (Method::PUT, "/api/v1/users.setStatus"),
        (Method::DELETE, "/api/v1/users.setStatus"),
        (Method::GET, "/api/v1/login"),
        (Method::POST, "/api/v1/users.getStatus"),
        (Method::POST, "/api/v1/me"),
        (Method::POST, "/api/info"),
        (Method::PATCH, "/api/v1/settings.public"),
    ] {
        for session in [None, Some(&admin)] {
            let r = srv
                .request(
                    method.clone(),
                    path,
                    session,
                    &json_ct,
                    Some(b"{}".to_vec()),
                )
                .await;
            assert_eq!(r.0.as_u16(), 405, "{method} {path}: {}", r.2);
            assert_eq!(r.2["success"], false, "{method} {path}: {}", r.2);
            assert!(r.2["error"].is_string(), "{method} {path}: {}", r.2);
        }
    }

    // /api/info answers anybody.
    let r = srv.get("/api/info", None).await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    assert_eq!(r.2["version"], "8.6.0", "{}", r.2);
}

#[tokio::test]
async fn odd_inputs_never_yield_a_5xx() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let json_ct = [("Content-Type", "application/json")];
    // Odd query strings on the read routes (the client asserts no 5xx and JSON).
    for path in [
        "users.getStatus?userId=%ZZ",
        "users.getStatus?userId=%00",
        "users.getStatus?userId[]=a&userId[]=b",
        "users.getPresence?username=%F0%9F%98%80",
        "users.presence?ids=",
        "users.presence?ids[]=",
        "users.presence?from=",
        "users.presence?from=9999-99-99",
        "users.presence?from=2000-01-01T00:00:00Z&ids=",
        "users.info?email=%40",
        "users.list?count=-1",
        "users.list?offset=abc",
        "users.list?count=99999999999999999999999",
        "settings/%2e%2e",
        "settings/",
    ] {
        let r = srv.get(path, Some(&admin)).await;
        assert!(
            r.0.is_success() || r.0.is_client_error(),
            "{path}: {} {}",
            r.0,
            r.2
        );
    }
    // Odd bodies.
    for body in [
        json!({"status": "busy", "message": "\u{0000}nul"}),
        json!({"status": "busy", "message": "a\u{202e}b"}),
        json!({"status": "busy", "message": "x".repeat(100_000)}),
        json!({"status": "busy", "expiresAt": "9999-12-31T23:59:59Z"}),
        json!({"status": "busy", "expiresAt": "+275760-09-13T00:00:00Z"}),
        json!({"status": "busy", "expiresAt": "2030-01-01T00:00:00+99:00"}),
        json!({"status": "busy", "userId": "\u{0000}"}),
        json!({"status": "busy", "message": 1e308}),
        json!({"message": "x", "status": "busy", "userId": "a".repeat(10_000)}),
    ] {
        let r = srv
            .post_json("users.setStatus", Some(&admin), body.clone())
            .await;
        assert!(
            r.0.is_success() || r.0.is_client_error(),
            "{body}: {} {}",
            r.0,
            r.2
        );
    }
    let r = srv
        .post_raw(
            "users.setStatus",
            &json_ct,
            b"{\"status\":\"busy\"}".to_vec(),
        )
        .await;
    assert_reply(&r, 401, body_401());
    // Odd credentials headers.
    for (uid, tok) in [
        ("", ""),
        (admin.user_id.as_str(), " "),
        ("%C3%A9", "%C3%A9"),
        (admin.user_id.as_str(), &"t".repeat(10_000)),
    ] {
        let r = srv
            .request(
                Method::GET,
                "me",
                None,
                &[("X-User-Id", uid), ("X-Auth-Token", tok)],
                None,
            )
            .await;
        assert_reply(&r, 401, body_401());
    }
    // Odd content types on login still get JSON answers.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let r = srv
            .post_raw("login", &[("Content-Type", ct)], "%%%&&&===")
            .await;
        assert!(r.0.is_client_error(), "{ct}: {} {}", r.0, r.2);
    }
}

#[tokio::test]
async fn unauthenticated_calls_are_limited_per_client_ip() {
    let srv = Server::start_with(&[("OVERWRITE_SETTING_API_Enable_Rate_Limiter", "true")]).await;
    // Bodies that fail without a password check, so the test stays fast.
    let bad = json!({"user": "nobody"});
    for i in 1..=10 {
        // X-Forwarded-For is not trusted by default (HTTP_FORWARDED_COUNT=0).
        let xff = format!("10.0.0.{i}");
        let r = srv
            .request(
                Method::POST,
                "login",
                None,
                &[
                    ("Content-Type", "application/json"),
                    ("X-Forwarded-For", &xff),
                ],
                Some(serde_json::to_vec(&bad).unwrap()),
            )
            .await;
        assert_reply(&r, 401, body_login_failed());
        assert_eq!(header_i64(&r.1, "x-ratelimit-limit"), 10);
        assert_eq!(header_i64(&r.1, "x-ratelimit-remaining"), 10 - i);
    }
    let r = srv.post_json("login", None, bad.clone()).await;
    assert_too_many(&r, 60);
    assert_eq!(header_i64(&r.1, "x-ratelimit-remaining"), 0);
    // Even the right password waits.
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": ADMIN_USER, "password": ADMIN_PASS}),
        )
        .await;
    assert_too_many(&r, 60);
    // Another public route has its own budget.
    let r = srv.get("settings.public", None).await;
    assert_status(&r, 200);
}

#[tokio::test]
async fn forwarded_for_is_trusted_only_from_configured_proxies() {
    let srv = Server::start_with(&[
        ("OVERWRITE_SETTING_API_Enable_Rate_Limiter", "true"),
        (
            "OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Calls_Default",
            "2",
        ),
        ("HTTP_FORWARDED_COUNT", "1"),
    ])
    .await;
    let bad = serde_json::to_vec(&json!({"user": "nobody"})).unwrap();
    let call = |xff: &'static str| {
        let bad = bad.clone();
        let srv = &srv;
        async move {
            srv.request(
                Method::POST,
                "login",
                None,
                &[
                    ("Content-Type", "application/json"),
                    ("X-Forwarded-For", xff),
                ],
                Some(bad),
            )
            .await
        }
    };
    for _ in 0..2 {
        assert_status(&call("203.0.113.1").await, 401);
    }
    assert_too_many(&call("203.0.113.1").await, 60);
    // A different client behind the same proxy has its own budget.
    assert_status(&call("203.0.113.2").await, 401);
    // Only the last entry (added by the one trusted proxy) counts: a forged first
    // entry does not buy a fresh budget.
    assert_too_many(&call("198.51.100.7, 203.0.113.1").await, 60);
}

#[tokio::test]
async fn login_tokens_expire_after_accounts_login_expiration_days() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let yan = srv.create_user("yan", "yan-pass-1", &["user"]).await;
    let gen = |s: Session| {
        let srv = &srv;
        async move {
            let r = srv
                .post_json(
                    "users.generatePersonalAccessToken",
                    Some(&s),
                    json!({"tokenName": "keep"}),
                )
                .await;
            assert_status(&r, 200);
            s.with_token(r.2["token"].as_str().unwrap())
        }
    };
    let yan_pat = gen(yan.clone()).await;
    let admin_pat = gen(admin.clone()).await;

    // 0 days means Rocket.Chat's default of 90, not "expire everything" (issue 14).
    srv.set_setting("Accounts_LoginExpiration", json!(0)).await;
    assert_status(&srv.get("me", Some(&yan)).await, 200);
    assert_status(&srv.get("me", Some(&admin)).await, 200);
    // Login tokens 91 days old are past their expiry.
    srv.age_login_tokens(&yan, 91).await;
    srv.age_login_tokens(&admin, 91).await;
    assert_reply(&srv.get("me", Some(&yan)).await, 401, body_401());
    assert_reply(&srv.get("me", Some(&admin)).await, 401, body_401());
    let r = srv.set_status(&yan, json!({"status": "busy"})).await;
    assert_reply(&r, 401, body_401());
    let r = srv
        .post_json("login", None, json!({"resume": yan.token}))
        .await;
    assert_reply(&r, 401, body_login_failed());
    // Personal access tokens do not expire.
    assert_status(&srv.get("me", Some(&yan_pat)).await, 200);
    let r = srv.set_status(&yan_pat, json!({"status": "away"})).await;
    assert_reply(&r, 200, json!({"success": true}));

    // Back to 90 days (through the admin's PAT): a fresh login works again.
    let r = srv
        .post_json(
            "settings/Accounts_LoginExpiration",
            Some(&admin_pat),
            json!({"value": 90}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let fresh = srv.login("yan", "yan-pass-1").await;
    assert_status(&srv.get("me", Some(&fresh)).await, 200);
}

#[tokio::test]
async fn repeated_failures_block_the_client_ip() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    srv.set_setting(
        "Block_Multiple_Failed_Logins_Attempts_Until_Block_By_Ip",
        json!(3),
    )
    .await;
    for user in ["nobody1", "nobody2", "nobody3"] {
        let r = srv
            .post_json("login", None, json!({"user": user, "password": "wrong"}))
            .await;
        assert_reply(&r, 401, body_login_failed());
    }
    let blocked = json!({
        "status": "error",
        "error": "error-login-blocked-for-ip",
        "details": {"function": "Accounts.validateLoginAttempt"},
        "message": "Login has been temporarily blocked For IP",
        "success": false
    });
    let good = json!({"user": ADMIN_USER, "password": ADMIN_PASS});
    let r = srv.post_json("login", None, good.clone()).await;
    assert_reply(&r, 401, blocked);
    // Existing sessions are unaffected; a whitelisted IP may log in again.
    srv.set_setting(
        "Block_Multiple_Failed_Logins_Ip_Whitelist",
        json!("10.1.1.1,127.0.0.1"),
    )
    .await;
    let r = srv.post_json("login", None, good).await;
    assert_status(&r, 200);
    assert_status(&srv.get("me", Some(&admin)).await, 200);
}

/// Rocket.Chat counts an address's failures since the last successful login from it
/// (issue 15 §6): a success starts the count again, by IP and by user.
#[tokio::test]
async fn a_successful_login_restarts_the_failure_counts() {
    let srv = Server::start().await;
    srv.create_user_only("nina", "nina-pass-1", &["user"]).await;
    srv.set_setting(
        "Block_Multiple_Failed_Logins_Attempts_Until_Block_By_Ip",
        json!(3),
    )
    .await;
    srv.set_setting(
        "Block_Multiple_Failed_Logins_Attempts_Until_Block_by_User",
        json!(3),
    )
    .await;
    let fail = || srv.post_json("login", None, json!({"user": "nina", "password": "wrong"}));
    let good = json!({"user": "nina", "password": "nina-pass-1"});
    for _ in 0..3 {
        for _ in 0..2 {
            assert_reply(&fail().await, 401, body_login_failed());
        }
        // Two failures, then a success: never 3 failures since the last success.
        let r = srv.post_json("login", None, good.clone()).await;
        assert_status(&r, 200);
    }
    for _ in 0..3 {
        assert_reply(&fail().await, 401, body_login_failed());
    }
    let r = srv.post_json("login", None, good).await;
    assert_eq!(r.0.as_u16(), 401, "{}", r.2);
    assert_eq!(
        r.2["details"],
        json!({"function": "Accounts.validateLoginAttempt"})
    );
}

/// A chunked body (no Content-Length) over 1 MiB is refused like any other.
#[tokio::test]
async fn oversized_chunked_body_gets_413_json() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = Server::start().await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", srv.port()))
        .await
        .expect("connect");
    let head = "POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
                Connection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write head");
    let chunk = vec![b' '; 64 * 1024];
    let mut body = Vec::new();
    for _ in 0..18 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before it read everything.
    let _ = stream.write_all(&body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 413"),
        "want 413, got: {}",
        &text[..text.len().min(500)]
    );
    let lower = text.to_lowercase();
    assert!(lower.contains("content-type: application/json"), "{text}");
    let json_start = text.find("\r\n\r\n").expect("end of headers") + 4;
    let payload = &text[json_start..];
    // The body may itself be chunked; find the JSON object in it.
    let obj = &payload[payload.find('{').expect("a JSON body")..=payload.rfind('}').unwrap()];
    let v: Value = serde_json::from_str(obj).expect("JSON body");
    assert_eq!(v["success"], false, "{v}");
}

/// Issue 15.5: `bypassTwoFactor` is stored and listed as given, and kept by a renewal.
#[tokio::test]
async fn personal_tokens_keep_bypass_two_factor_as_given() {
    let srv = Server::start().await;
    let ray = srv.create_user("ray", "ray-pass-1", &["user"]).await;
    for (name, bypass) in [
        ("with", json!(true)),
        ("without", json!(false)),
        ("unset", Value::Null),
    ] {
        let mut body = json!({"tokenName": name});
        if !bypass.is_null() {
            body["bypassTwoFactor"] = bypass;
        }
        let r = srv
            .post_json("users.generatePersonalAccessToken", Some(&ray), body)
            .await;
        assert_status(&r, 200);
    }
    let r = srv
        .post_json(
            "users.regeneratePersonalAccessToken",
            Some(&ray),
            json!({"tokenName": "with"}),
        )
        .await;
    assert_status(&r, 200);
    let r = srv.get("users.getPersonalAccessTokens", Some(&ray)).await;
    assert_status(&r, 200);
    let mut got: Vec<(String, Value)> = r.2["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["bypassTwoFactor"].clone(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("unset".to_string(), json!(false)),
            ("with".to_string(), json!(true)),
            ("without".to_string(), json!(false)),
        ]
    );
}
