//! DDP `login` (digest password and resume token), its errors, `logout`, and unknown
//! methods (CONTRACT §7), against the real binary.

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

/// Checks a login result's exact shape and returns (token, tokenExpires ms).
#[track_caller]
fn check_login_result(r: &Value, user_id: &str, kind: &str) -> (String, i64) {
    let token = r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {r}"))
        .to_string();
    let expires = r["tokenExpires"]["$date"]
        .as_i64()
        .unwrap_or_else(|| panic!("tokenExpires.$date is not an integer (ms): {r}"));
    assert_eq!(
        r,
        &json!({"id": user_id, "token": token, "tokenExpires": {"$date": expires}, "type": kind}),
        "login result has the wrong shape"
    );
    assert_eq!(token.len(), 43, "a login token is 43 characters: {token}");
    // Accounts_LoginExpiration defaults to 90 days from the token's creation (≈ now).
    let want = chrono::Utc::now().timestamp_millis() + 90 * 24 * 3600 * 1000;
    assert!(
        (expires - want).abs() < 5 * 60 * 1000,
        "tokenExpires {expires} is not ~90 days from now ({want})"
    );
    (token, expires)
}

#[tokio::test]
async fn login_with_a_digest_password_returns_id_token_expiry_and_type() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c = Ddp::connect(&srv).await;
    let r = c
        .login_password("alice", "alice-pass-1")
        .await
        .expect("login");
    let (token, _) = check_login_result(&r, &alice.user_id, "password");
    assert_ne!(token, alice.token, "a password login makes a new token");
    // The new token works for REST.
    let (status, _, me) = srv.get("me", Some(&alice.with_token(&token))).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["_id"], json!(alice.user_id));

    // By email too, and the username ignoring case.
    let mut d = Ddp::connect(&srv).await;
    let r = d
        .call(
            "login",
            json!([{
                "user": {"email": "alice@example.com"},
                "password": {"digest": sha256_hex("alice-pass-1"), "algorithm": "sha-256"},
            }]),
        )
        .await
        .expect("login by email");
    check_login_result(&r, &alice.user_id, "password");
    let mut e = Ddp::connect(&srv).await;
    let r = e
        .login_password("ALICE", "alice-pass-1")
        .await
        .expect("login ignoring case");
    check_login_result(&r, &alice.user_id, "password");
}

#[tokio::test]
async fn login_with_a_resume_token_from_rest_returns_the_same_token() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c = Ddp::connect(&srv).await;
    let r = c.login_resume(&alice.token).await.expect("resume login");
    let (token, _) = check_login_result(&r, &alice.user_id, "resume");
    assert_eq!(token, alice.token);
    // A token from a DDP password login resumes too.
    let mut d = Ddp::connect(&srv).await;
    let ddp_token = d.login_password("alice", "alice-pass-1").await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut e = Ddp::connect(&srv).await;
    let r = e
        .login_resume(&ddp_token)
        .await
        .expect("resume a DDP token");
    check_login_result(&r, &alice.user_id, "resume");
}

#[tokio::test]
async fn a_bad_digest_is_refused_with_403_incorrect_password() {
    let srv = Server::start().await;
    srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c = Ddp::connect(&srv).await;
    let (result, updated) = c
        .call_raw_with_id(
            "42",
            "login",
            json!([{
                "user": {"username": "alice"},
                "password": {"digest": sha256_hex("wrong-pass"), "algorithm": "sha-256"},
            }]),
        )
        .await;
    let v: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(
        v,
        json!({"msg": "result", "id": "42", "error": meteor_error(json!(403), "Incorrect password")})
    );
    assert_eq!(updated, r#"{"msg":"updated","methods":["42"]}"#);
    // Not logged in afterwards: subscriptions are refused.
    let v = c
        .sub("s1", "stream-notify-logged", json!(["user-status", false]))
        .await;
    assert_eq!(v["msg"], "nosub", "{v}");
    assert!(v["error"].is_object(), "{v}");
    // And a good login on the same connection still works.
    c.login_password("alice", "alice-pass-1")
        .await
        .expect("login after a failure");
}

#[tokio::test]
async fn a_bad_or_revoked_resume_token_is_refused_with_403_logged_out() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let logged_out = meteor_error(
        json!(403),
        "You've been logged out by the server. Please log in again.",
    );
    let mut c = Ddp::connect(&srv).await;
    for token in ["not-a-real-token-not-a-real-token-not-a-re", ""] {
        assert_eq!(
            c.login_resume(token).await,
            Err(logged_out.clone()),
            "token {token:?}"
        );
    }
    // A token revoked by REST logout.
    let (status, _, body) = srv.post_json("logout", Some(&alice), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(c.login_resume(&alice.token).await, Err(logged_out));
}

#[tokio::test]
async fn an_unknown_method_answers_404_then_updated() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let mut c = Ddp::connect(&srv).await;
    for logged_in in [false, true] {
        if logged_in {
            c.login_resume(&admin.token).await.unwrap();
        }
        let (result, updated) = c.call_raw_with_id("m1", "x", json!([])).await;
        let v: Value = serde_json::from_str(&result).unwrap();
        assert_eq!(
            v,
            json!({"msg": "result", "id": "m1", "error": {
                "isClientSafe": true,
                "error": 404,
                "reason": "Method 'x' not found",
                "message": "Method 'x' not found [404]",
                "errorType": "Meteor.Error",
            }}),
            "logged in: {logged_in}"
        );
        assert_eq!(updated, r#"{"msg":"updated","methods":["m1"]}"#);
    }
    // The name is echoed as given.
    assert_eq!(
        c.call("users.setStatus", json!([])).await,
        Err(meteor_error(
            json!(404),
            "Method 'users.setStatus' not found"
        ))
    );
}

#[tokio::test]
async fn logout_over_ddp_revokes_the_token_and_takes_the_connection_offline() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c = Ddp::connect(&srv).await;
    let token = c.login_password("alice", "alice-pass-1").await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    assert_eq!(c.call("logout", json!([])).await, Ok(Value::Null));
    // Committed before the reply: offline at once, the token gone.
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "offline");
    let (status, _, _) = srv.get("me", Some(&alice.with_token(&token))).await;
    assert_eq!(status, 401);
    // The REST token is untouched.
    let (status, _, _) = srv.get("me", Some(&alice)).await;
    assert_eq!(status, 200);
    // Logged out: subscriptions are refused; a login works again.
    let v = c
        .sub("s1", "stream-notify-logged", json!(["user-status", false]))
        .await;
    assert_eq!(v["msg"], "nosub", "{v}");
    c.login_resume(&alice.token).await.expect("login again");
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
}

#[tokio::test]
async fn a_second_login_on_a_connection_switches_users() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect(&srv).await;
    c.login_resume(&alice.token).await.unwrap();
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    c.login_resume(&bob.token).await.unwrap();
    assert_eq!(srv.status_of(&bob.user_id).await["status"], "online");
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "offline");
    c.close().await;
    srv.wait_status(&bob.user_id, "offline", Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn token_expires_follows_accounts_login_expiration() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    srv.set_setting("Accounts_LoginExpiration", json!(2)).await;
    let mut c = Ddp::connect(&srv).await;
    let r = c.login_password("alice", "alice-pass-1").await.unwrap();
    let want = chrono::Utc::now().timestamp_millis() + 2 * 24 * 3600 * 1000;
    let got = r["tokenExpires"]["$date"].as_i64().unwrap();
    assert!(
        (got - want).abs() < 60_000,
        "tokenExpires {got}, want ~{want}: {r}"
    );
    // A resumed token expires relative to its creation, not to the resume.
    let r = c.login_resume(&alice.token).await.unwrap();
    let got = r["tokenExpires"]["$date"].as_i64().unwrap();
    assert!(
        (got - want).abs() < 60_000,
        "tokenExpires {got}, want ~{want}: {r}"
    );
}

/// Issue 14 §8: successful DDP logins made 346 tokens for one account in 10 s. `login` is
/// limited as Rocket.Chat's DDP rate limiter does (10 calls per connection per 10 s;
/// 20 password logins per account per 10 s, whatever the connection), and a user keeps
/// at most 50 login tokens, the oldest dropped.
#[tokio::test]
async fn ddp_logins_are_rate_limited_and_tokens_capped() {
    let srv = Server::start().await;
    srv.create_user_only("lou", "lou-pass-1", &["user"]).await;
    // One connection: 10 logins, then too-many-requests.
    let mut c = Ddp::connect(&srv).await;
    let mut first = None;
    for i in 0..10 {
        let r = c.login_password("lou", "lou-pass-1").await;
        let r = r.unwrap_or_else(|e| panic!("login {i}: {e}"));
        first.get_or_insert(r["token"].as_str().unwrap().to_string());
    }
    let e = c.login_password("lou", "lou-pass-1").await.unwrap_err();
    assert_eq!(e["error"], "too-many-requests", "{e}");
    assert!(
        e["details"]["timeToReset"].as_u64().unwrap() <= 10_000,
        "{e}"
    );
    // Fresh connections: the account's budget (20 per 10 s) runs out too.
    let mut ok = 10;
    let mut refused = 0;
    for _ in 0..15 {
        let mut d = Ddp::connect(&srv).await;
        match d.login_password("lou", "lou-pass-1").await {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e["error"], "too-many-requests", "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!((ok, refused), (20, 5));
    // Resumes are not counted against the account (many tabs resume at once).
    let token = first.clone().unwrap();
    for _ in 0..25 {
        let mut d = Ddp::connect(&srv).await;
        d.login_resume(&token).await.unwrap();
    }

    // Tokens are capped at 50 per user (REST logins here, past the DDP limit).
    let mut sessions = Vec::new();
    for _ in 0..55 {
        sessions.push(srv.login("lou", "lou-pass-1").await);
    }
    let first = Session {
        token: first.unwrap(),
        ..sessions[0].clone()
    };
    assert_eq!(
        srv.get("me", Some(&first)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        srv.get("me", Some(&sessions[4])).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_status(&srv.get("me", Some(&sessions[5])).await, 200);
    assert_status(&srv.get("me", Some(&sessions[54])).await, 200);
}

/// Issue 14.5: a password change closes the user's other realtime connections (their
/// tokens are revoked) within a ping interval, and their tokens no longer resume.
#[tokio::test]
async fn a_password_change_closes_the_other_connections() {
    let srv = Server::start_with(&[("DDP_PING_SECS", "1")]).await;
    let vic = srv.create_user("vic", "vic-pass-1", &["user"]).await;
    let thief = srv.login("vic", "vic-pass-1").await;
    let mut stolen = Ddp::connect_resume(&srv, &thief.token).await;
    let mut own = Ddp::connect_resume(&srv, &vic.token).await;
    let r = srv
        .post_json(
            "users.update",
            Some(&vic),
            json!({"userId": vic.user_id, "data": {"password": "vic-pass-2"}}),
        )
        .await;
    assert_status(&r, 200);
    assert!(
        stolen.wait_closed(Duration::from_secs(5)).await,
        "a connection with a revoked token stayed open"
    );
    let mut again = Ddp::connect(&srv).await;
    assert_eq!(
        again.login_resume(&thief.token).await,
        Err(meteor_error(
            json!(403),
            "You've been logged out by the server. Please log in again."
        ))
    );
    // The session that changed the password keeps its connection.
    assert_eq!(
        own.call("UserPresence:setDefaultStatus", json!(["away"]))
            .await,
        Ok(json!(true))
    );
}
