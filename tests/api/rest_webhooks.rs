//! Webhooks (issue 18): admins register endpoints over `statusd.webhooks.*`; every
//! status, status-text, creation or deactivation of a user is delivered to a real local
//! receiver (an axum server in the test), signed per the Standard Webhooks
//! specification, in order per user, retried while the receiver is down or answers 500,
//! across a SIGKILL of statusd, with one stable `webhook-id` per change.

use std::time::{Duration, Instant};

use crate::common;

use common::webhooks::{assert_signed, Got, Receiver};
use common::*;

const CREATE: &str = "statusd.webhooks.create";
const LIST: &str = "statusd.webhooks.list";
const UPDATE: &str = "statusd.webhooks.update";
const DELETE: &str = "statusd.webhooks.delete";
const DELIVERIES: &str = "statusd.webhooks.deliveries";

/// Registers an endpoint as the admin; returns (webhook id, secret).
async fn register(srv: &Server, url: &str, events: &[&str]) -> (String, String) {
    let admin = srv.admin().await;
    let (status, _, body) = srv
        .post_json(CREATE, Some(&admin), json!({"url": url, "events": events}))
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["webhook"]["_id"].as_str().unwrap().to_string();
    let secret = body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (id, secret)
}

async fn deliveries(srv: &Server, id: &str) -> Vec<Value> {
    let admin = srv.admin().await;
    let (status, _, body) = srv
        .get(&format!("{DELIVERIES}?webhookId={id}"), Some(&admin))
        .await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn status_changes_are_delivered_signed_and_in_order() {
    // The most verbose logs, to show the secret is in none of them.
    let srv = Server::start_with(&[("RUST_LOG", "trace"), ("ACCESS_LOG", "true")]).await;
    let rx = Receiver::start().await;
    let (id, secret) = register(
        &srv,
        &rx.url(),
        &[
            "status.changed",
            "status-text.changed",
            "user.created",
            "user.deactivated",
        ],
    )
    .await;
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    for (status, text) in [("busy", ""), ("away", "lunch"), ("online", "lunch")] {
        let r = srv
            .set_status(&alice, json!({"status": status, "message": text}))
            .await;
        assert_status(&r, 200);
    }
    // created, busy, away + text, online.
    let got = rx.wait_accepted(5, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = if rx.accepted().len() > got.len() {
        rx.accepted()
    } else {
        got
    };
    let about_alice: Vec<&Got> = got
        .iter()
        .filter(|g| g.body["data"]["userId"] == alice.user_id.as_str())
        .collect();
    let seen: Vec<(String, String)> = about_alice
        .iter()
        .map(|g| {
            (
                g.body["type"].as_str().unwrap().to_string(),
                g.body["data"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("user.created", "offline"),
        ("status.changed", "busy"),
        ("status.changed", "away"),
        ("status-text.changed", "away"),
        ("status.changed", "online"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, want);
    let busy = &about_alice[1].body;
    assert_eq!(busy["data"]["previousStatus"], "offline");
    assert_eq!(busy["data"]["username"], "alice");
    parse_time(busy["timestamp"].as_str().unwrap());
    let mut ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
    for g in &got {
        assert_signed(g, &secret);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "one id per delivery");

    // The list never shows the secret; the log shows each delivery once, delivered.
    let admin = srv.admin().await;
    let (status, _, body) = srv.get(LIST, Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(body["count"], 1);
    assert_eq!(body["webhooks"][0]["_id"], id.as_str());
    assert_eq!(body["webhooks"][0]["url"], rx.url());
    assert!(!body.to_string().contains(&secret));
    let log = deliveries(&srv, &id).await;
    assert_eq!(log.len(), got.len());
    assert!(log
        .iter()
        .all(|d| d["state"] == "delivered" && d["attempts"] == 1 && d["lastStatus"] == 200));
    assert!(!srv.log().contains(&secret), "the secret was logged");
    // A receiver's URL may hold its own secret: only its host is logged.
    assert!(!srv.log().contains(&rx.url()), "the URL was logged");
    let (_, _, metrics) = srv
        .request_text(Method::GET, "/metrics", None, &[], None)
        .await;
    assert!(
        metrics.contains(&format!("statusd_webhook_delivered_total {}", got.len())),
        "{metrics}"
    );

    // Deactivation is an event of its own; a deleted endpoint hears nothing more.
    let (status, _, body) = srv
        .post_json(
            "users.setActiveStatus",
            Some(&admin),
            json!({"userId": alice.user_id, "activeStatus": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = rx
        .wait_accepted(log.len() + 1, Duration::from_secs(10))
        .await;
    assert!(got
        .iter()
        .any(|g| g.body["type"] == "user.deactivated" && g.body["data"]["active"] == false));
    let (status, _, body) = srv
        .post_json(DELETE, Some(&admin), json!({"webhookId": id}))
        .await;
    assert_reply(
        &(status, Default::default(), body),
        200,
        json!({"success": true}),
    );
    let before = rx.got().len();
    let bob = srv.create_user("bob", "Bob-Pass-12345", &["user"]).await;
    assert_status(&srv.set_status(&bob, json!({"status": "busy"})).await, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.got().len(), before);
}

#[tokio::test]
async fn filters_by_user_and_role() {
    let srv = Server::start().await;
    let rx = Receiver::start().await;
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    let bob = srv
        .create_user("bob", "Bob-Pass-12345", &["user", "bot"])
        .await;
    let admin = srv.admin().await;
    let (status, _, body) = srv
        .post_json(
            CREATE,
            Some(&admin),
            json!({"url": rx.url(), "events": ["status.changed"], "userIds": [alice.user_id]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = srv
        .post_json(
            CREATE,
            Some(&admin),
            json!({"url": rx.url(), "events": ["status.changed"], "roles": ["bot"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_status(
        &srv.set_status(&alice, json!({"status": "busy"})).await,
        200,
    );
    assert_status(&srv.set_status(&bob, json!({"status": "away"})).await, 200);
    let got = rx.wait_accepted(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.got().len(), 2, "{got:?}");
    let mut who: Vec<&str> = got
        .iter()
        .map(|g| g.body["data"]["username"].as_str().unwrap())
        .collect();
    who.sort();
    assert_eq!(who, ["alice", "bob"]);
}

#[tokio::test]
async fn a_receiver_down_or_failing_gets_it_later_with_the_same_id() {
    let srv = Server::start().await;
    let mut rx = Receiver::down();
    let (id, secret) = register(&srv, &rx.url(), &["status.changed"]).await;
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    for status in ["busy", "away", "online"] {
        assert_status(
            &srv.set_status(&alice, json!({"status": status})).await,
            200,
        );
    }
    // Down: attempts fail to connect and are retried.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = deliveries(&srv, &id).await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|d| d["state"] == "pending"), "{log:?}");
    // The oldest was tried; the later ones wait behind it (order per user).
    assert!(log[2]["attempts"].as_u64().unwrap() >= 1, "{log:?}");
    assert_eq!(log[0]["attempts"], 0, "{log:?}");
    assert_eq!(log[2]["lastError"], "could not connect");
    // Up, but failing: 500 is retried.
    rx.answer(500);
    rx.up().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.got().is_empty() {
        assert!(Instant::now() < deadline, "no retry reached the receiver");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rx.answer(200);
    let got = rx.wait_accepted(3, Duration::from_secs(20)).await;
    let statuses: Vec<&str> = got
        .iter()
        .map(|g| g.body["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["busy", "away", "online"]);
    for g in &got {
        assert_signed(g, &secret);
    }
    // Every attempt at the first delivery carried its one id.
    let first = &got[0].id;
    let all = rx.got();
    assert!(all
        .iter()
        .filter(|g| g.body["data"]["status"] == "busy")
        .all(|g| &g.id == first));
    let log = deliveries(&srv, &id).await;
    assert!(log.iter().all(|d| d["state"] == "delivered"), "{log:?}");
    assert!(log[2]["attempts"].as_u64().unwrap() >= 2, "{log:?}");
    let (_, _, metrics) = srv
        .request_text(Method::GET, "/metrics", None, &[], None)
        .await;
    assert!(
        metrics.contains("statusd_webhook_delivered_total 3"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("statusd_webhook_retrying_total 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_sigkill_mid_retry_loses_nothing_and_keeps_the_id() {
    let mut srv = Server::start().await;
    let rx = Receiver::start().await;
    rx.answer(500);
    let (_, secret) = register(&srv, &rx.url(), &["status.changed"]).await;
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    assert_status(
        &srv.set_status(&alice, json!({"status": "busy"})).await,
        200,
    );
    assert_status(
        &srv.set_status(&alice, json!({"status": "away"})).await,
        200,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.got().is_empty() {
        assert!(Instant::now() < deadline, "no attempt reached the receiver");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.kill9();
    rx.answer(200);
    srv.start_again().await;
    let got = rx.wait_accepted(2, Duration::from_secs(20)).await;
    let statuses: Vec<&str> = got
        .iter()
        .map(|g| g.body["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["busy", "away"]);
    for g in &got {
        assert_signed(g, &secret);
    }
    let mut ids: Vec<String> = rx.got().into_iter().map(|g| g.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "two changes, two ids: {:?}", rx.got());
}

#[tokio::test]
async fn a_delivery_is_given_up_when_the_retry_time_runs_out() {
    // 0.0005 h = 1.8 s.
    let srv = Server::start_with(&[("WEBHOOK_RETRY_HOURS", "0.0005")]).await;
    let rx = Receiver::start().await;
    rx.answer(503);
    let (id, _) = register(&srv, &rx.url(), &["status.changed"]).await;
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    assert_status(
        &srv.set_status(&alice, json!({"status": "busy"})).await,
        200,
    );
    assert_status(
        &srv.set_status(&alice, json!({"status": "away"})).await,
        200,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = deliveries(&srv, &id).await;
        if log.iter().all(|d| d["state"] == "failed") {
            assert!(log.iter().all(|d| d["lastStatus"] == 503), "{log:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not given up: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, _, metrics) = srv
        .request_text(Method::GET, "/metrics", None, &[], None)
        .await;
    assert!(
        metrics.contains("statusd_webhook_failed_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn routes_check_their_input_and_caller() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    let refused = |code: &str, reason: &str, route: &str| body_meteor(code, reason, route);
    let r = srv
        .post_json(
            CREATE,
            Some(&alice),
            json!({"url": "http://127.0.0.1:9/", "events": ["status.changed"]}),
        )
        .await;
    assert_reply(&r, 403, body_403_declared());
    assert_reply(&srv.get(LIST, Some(&alice)).await, 403, body_403_declared());
    assert_reply(&srv.get(LIST, None).await, 401, body_401());
    for (url, reason) in [
        ("ftp://example.com/", "The URL must be http:// or https://"),
        ("file:///etc/passwd", "The URL must be http:// or https://"),
        (
            "http://u:p@example.com/",
            "The URL must not hold credentials",
        ),
        ("nonsense", "The URL is not a valid URL"),
    ] {
        let r = srv
            .post_json(
                CREATE,
                Some(&admin),
                json!({"url": url, "events": ["status.changed"]}),
            )
            .await;
        assert_reply(
            &r,
            400,
            refused("error-invalid-webhook-url", reason, CREATE),
        );
    }
    let long = format!("http://example.com/{}", "a".repeat(3000));
    let r = srv
        .post_json(
            CREATE,
            Some(&admin),
            json!({"url": long, "events": ["status.changed"]}),
        )
        .await;
    assert_reply(
        &r,
        400,
        refused(
            "error-invalid-webhook-url",
            "The URL must have 1 to 2048 characters",
            CREATE,
        ),
    );
    let r = srv
        .post_json(
            CREATE,
            Some(&admin),
            json!({"url": "http://example.com/", "events": []}),
        )
        .await;
    assert_status(&r, 400);
    assert_eq!(r.2["errorType"], "error-invalid-webhook-events");
    let r = srv
        .post_json(
            CREATE,
            Some(&admin),
            json!({"url": "http://example.com/", "events": ["claim.changed"]}),
        )
        .await;
    assert_eq!(r.2["errorType"], "error-invalid-webhook-events");
    let r = srv
        .post_json(
            CREATE,
            Some(&admin),
            json!({"url": "http://example.com/", "events": ["status.changed"], "roles": ["x"]}),
        )
        .await;
    assert_eq!(r.2["errorType"], "error-invalid-webhook-filter");
    let r = srv
        .post_json(CREATE, Some(&admin), json!({"url": 5, "events": []}))
        .await;
    assert_status(&r, 400);
    let not_found = refused("error-webhook-not-found", "No webhook with this id", DELETE);
    let r = srv
        .post_json(DELETE, Some(&admin), json!({"webhookId": "nope"}))
        .await;
    assert_reply(&r, 400, not_found);
    let r = srv
        .post_json(UPDATE, Some(&admin), json!({"webhookId": "nope"}))
        .await;
    assert_eq!(r.2["errorType"], "error-webhook-not-found");
    let r = srv.get(DELIVERIES, Some(&admin)).await;
    assert_reply(
        &r,
        400,
        json!({"success": false, "error": "The \"webhookId\" param is required"}),
    );

    // Update keeps the secret and what it is not given; the endpoint count is bounded.
    let (id, secret) = register(&srv, "http://127.0.0.1:9/a", &["status.changed"]).await;
    let r = srv
        .post_json(
            UPDATE,
            Some(&admin),
            json!({"webhookId": id, "active": false, "events": ["user.created"]}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["webhook"]["active"], false);
    assert_eq!(r.2["webhook"]["events"], json!(["user.created"]));
    assert_eq!(r.2["webhook"]["url"], "http://127.0.0.1:9/a");
    assert!(!r.2.to_string().contains(&secret));
    for i in 1..50 {
        register(
            &srv,
            &format!("http://127.0.0.1:9/{i}"),
            &["status.changed"],
        )
        .await;
    }
    let r = srv
        .post_json(
            CREATE,
            Some(&admin),
            json!({"url": "http://127.0.0.1:9/x", "events": ["status.changed"]}),
        )
        .await;
    assert_reply(
        &r,
        400,
        refused("error-too-many-webhooks", "At most 50 webhooks", CREATE),
    );
    assert!(!srv.log().contains(&secret), "the secret was logged");
}

/// A receiver slower than `WEBHOOK_TIMEOUT_SECS` is retried (same id), and holds up
/// no other endpoint meanwhile.
#[tokio::test]
async fn a_slow_receiver_times_out_is_retried_and_holds_up_no_one_else() {
    let srv = Server::start_with(&[("WEBHOOK_TIMEOUT_SECS", "1")]).await;
    let slow = Receiver::start().await;
    slow.delay(Duration::from_secs(5));
    let fast = Receiver::start().await;
    let (slow_id, _) = register(&srv, &slow.url(), &["status.changed"]).await;
    register(&srv, &fast.url(), &["status.changed"]).await;
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    let bob = srv.create_user("bob", "Bob-Pass-12345", &["user"]).await;
    let started = Instant::now();
    assert_status(
        &srv.set_status(&alice, json!({"status": "busy"})).await,
        200,
    );
    assert_status(&srv.set_status(&bob, json!({"status": "busy"})).await, 200);
    fast.wait_accepted(2, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the fast endpoint waited for the slow one: {:?}",
        started.elapsed()
    );
    // The slow one got both at once (one user does not wait for another), timed out.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = deliveries(&srv, &slow_id).await;
        if log.iter().all(|d| d["lastError"] == "timed out") {
            break;
        }
        assert!(Instant::now() < deadline, "{log:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slow.delay(Duration::ZERO);
    let got = slow.wait_accepted(2, Duration::from_secs(10)).await;
    for g in &got {
        let attempts: Vec<_> = slow
            .got()
            .into_iter()
            .filter(|x| x.body["data"]["userId"] == g.body["data"]["userId"])
            .collect();
        assert!(attempts.len() >= 2, "{attempts:?}");
        assert!(
            attempts.iter().all(|x| x.id == g.id),
            "one id: {attempts:?}"
        );
    }
}

/// Changes the server makes by itself are delivered too: an expiring status.
#[tokio::test]
async fn an_expiry_is_delivered() {
    let srv = Server::start().await;
    let rx = Receiver::start().await;
    let (_, secret) = register(&srv, &rx.url(), &["status.changed", "status-text.changed"]).await;
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    let r = srv
        .set_status(
            &alice,
            json!({"status": "busy", "message": "focus", "expiresAt": iso_from_now(1)}),
        )
        .await;
    assert_status(&r, 200);
    let got = rx.wait_accepted(4, Duration::from_secs(10)).await;
    let seen: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|g| {
            (
                g.body["type"].as_str().unwrap(),
                g.body["data"]["status"].as_str().unwrap(),
                g.body["data"]["statusText"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("status.changed", "busy", "focus"),
            ("status-text.changed", "busy", "focus"),
            ("status.changed", "online", ""),
            ("status-text.changed", "online", ""),
        ]
    );
    for g in &got {
        assert_signed(g, &secret);
    }
}

/// (event, statusId, source, reason) of the claim deliveries about `user_id`.
fn claim_rows(got: &[Got], user_id: &str) -> Vec<(String, String, String, String)> {
    got.iter()
        .filter(|g| g.body["data"]["userId"] == user_id)
        .map(|g| {
            let d = &g.body["data"];
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                s(&g.body["type"]),
                s(&d["statusId"]),
                s(&d["source"]),
                s(&d["reason"]),
            )
        })
        .collect()
}

/// Issue 18 §3: claims of the claims engine are delivered as `claim.set` and
/// `claim.ended` (with why it ended), signed, in order, honouring the filters; a claim
/// moving between active and waiting is neither.
#[tokio::test]
async fn claims_are_delivered_as_set_and_ended() {
    let srv = Server::start().await;
    let rx = Receiver::start().await;
    let bots = Receiver::start().await;
    let (_, secret) = register(&srv, &rx.url(), &["claim.set", "claim.ended"]).await;
    let admin = srv.admin().await;
    let (status, _, body) = srv
        .post_json(
            CREATE,
            Some(&admin),
            json!({"url": bots.url(), "events": ["claim.set", "claim.ended"], "roles": ["bot"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    let claim = |body: Value| {
        let (srv, alice) = (&srv, &alice);
        async move {
            let r = srv.post_json("statusd.claims.set", Some(alice), body).await;
            assert_status(&r, 200);
            r.2["outcome"].as_str().unwrap().to_string()
        }
    };
    let end = |id: &'static str| {
        let (srv, alice) = (&srv, &alice);
        async move {
            let r = srv
                .post_json("statusd.claims.end", Some(alice), json!({"statusId": id}))
                .await;
            assert_status(&r, 200);
        }
    };
    let expires = iso_from_now(3600);
    let cal = json!({"status": "busy", "text": "In a meeting", "statusId": "cal-1",
                     "expiresAt": expires});
    assert_eq!(claim(cal).await, "active");
    let first = rx.wait_accepted(1, Duration::from_secs(10)).await;
    assert_signed(&first[0], &secret);
    let mut data = first[0].body["data"].clone();
    assert_eq!(
        parse_time(data["expiresAt"].as_str().unwrap()),
        parse_time(&expires)
    );
    data["expiresAt"] = Value::Null;
    assert_eq!(first[0].body["type"], "claim.set", "{}", first[0].body);
    // Without a live connection a person shows offline (the engine's rule).
    assert_eq!(
        data,
        json!({"userId": alice.user_id, "username": "alice", "source": "external",
               "statusId": "cal-1", "status": "busy", "statusText": "In a meeting",
               "expiresAt": null, "active": true, "userStatus": "offline"})
    );

    // An internal claim over it (set); the calendar's waits, then comes back (no event).
    let r = srv
        .post_json(
            "statusd.claims.set",
            Some(&admin),
            json!({"userId": alice.user_id, "status": "away", "text": "On a call",
                   "statusId": "call-1", "source": "internal"}),
        )
        .await;
    assert_status(&r, 200);
    end("call-1").await;
    // The same source again: the first is replaced. A manual choice replaces that one.
    claim(json!({"status": "away", "statusId": "cal-2"})).await;
    let r = srv.set_status(&alice, json!({"status": "online"})).await;
    assert_status(&r, 200);
    // Lower than the manual choice: it waits, and is still a claim set; then cleared.
    assert_eq!(
        claim(json!({"status": "busy", "statusId": "cal-3"})).await,
        "waiting"
    );
    let r = srv
        .post_json(
            "statusd.claims.clear",
            Some(&admin),
            json!({"userId": alice.user_id}),
        )
        .await;
    assert_status(&r, 200);
    let row = |e: &str, id: &str, src: &str, why: &str| {
        (
            e.to_string(),
            id.to_string(),
            src.to_string(),
            why.to_string(),
        )
    };
    let want = vec![
        row("claim.set", "cal-1", "external", ""),
        row("claim.set", "call-1", "internal", ""),
        row("claim.ended", "call-1", "internal", "ended"),
        row("claim.ended", "cal-1", "external", "replaced"),
        row("claim.set", "cal-2", "external", ""),
        row("claim.ended", "cal-2", "external", "replaced"),
        row("claim.set", "cal-3", "external", ""),
        row("claim.ended", "cal-3", "external", "cleared"),
    ];
    let got = rx.wait_accepted(want.len(), Duration::from_secs(10)).await;
    assert_eq!(claim_rows(&got, &alice.user_id), want);
    for g in &got {
        assert_signed(g, &secret);
    }
    let waiting = got
        .iter()
        .find(|g| g.body["data"]["statusId"] == "cal-3")
        .unwrap();
    assert_eq!(waiting.body["data"]["active"], false, "{}", waiting.body);

    // The do-not-disturb schedule's window is an internal claim of the server's own.
    let now = chrono::Utc::now();
    let hm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M:%S").to_string();
    let r = srv
        .post_json(
            "statusd.dnd.set",
            Some(&alice),
            json!({"timeZone": "UTC", "text": "focus",
                   "ranges": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                               "start": hm(now - chrono::Duration::seconds(60)),
                               "end": hm(now + chrono::Duration::seconds(3600))}]}),
        )
        .await;
    assert_status(&r, 200);
    let got = rx
        .wait_accepted(want.len() + 1, Duration::from_secs(10))
        .await;
    assert_eq!(
        claim_rows(&got[want.len()..], &alice.user_id),
        [row("claim.set", "statusd.dnd", "internal", "")]
    );
    assert_eq!(got[want.len()].body["data"]["statusText"], "focus");
    let r = srv
        .post_json("statusd.dnd.clear", Some(&alice), json!({}))
        .await;
    assert_status(&r, 200);
    let got = rx
        .wait_accepted(want.len() + 2, Duration::from_secs(10))
        .await;
    assert_eq!(
        claim_rows(&got[want.len() + 1..], &alice.user_id),
        [row("claim.ended", "statusd.dnd", "internal", "ended")]
    );
    // The role filter: alice is no bot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bots.got().is_empty(), "{:?}", bots.got());
}

/// Several users changing their status at once: every change is delivered once, each
/// user's in order. Untimed: the delivery latency and throughput are measured by the
/// bench (`bench/run.sh --only webhooks`, BENCHMARKS.md).
#[tokio::test]
async fn concurrent_changes_of_many_users_all_arrive_in_order_per_user() {
    const ROUNDS: usize = 6;
    const STATUSES: [&str; 2] = ["busy", "away"];
    let srv = Server::start().await;
    let rx = Receiver::start().await;
    register(&srv, &rx.url(), &["status.changed"]).await;
    let mut users = Vec::new();
    for i in 0..10 {
        users.push(
            srv.create_user(&format!("user{i}"), "User-Pass-12345", &["user"])
                .await,
        );
    }
    futures_util::future::join_all(users.iter().map(|u| {
        let srv = &srv;
        async move {
            for round in 0..ROUNDS {
                let r = srv
                    .set_status(u, json!({"status": STATUSES[round % 2]}))
                    .await;
                assert_status(&r, 200);
            }
        }
    }))
    .await;
    let want = users.len() * ROUNDS;
    let got = rx.wait_accepted(want, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.accepted().len(), want, "extra deliveries");
    for u in &users {
        let seen: Vec<&str> = got
            .iter()
            .filter(|g| g.body["data"]["userId"] == u.user_id.as_str())
            .map(|g| g.body["data"]["status"].as_str().unwrap())
            .collect();
        let sent: Vec<&str> = (0..ROUNDS).map(|r| STATUSES[r % 2]).collect();
        assert_eq!(seen, sent, "{}", u.username);
    }
}
