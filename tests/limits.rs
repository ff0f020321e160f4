//! Abuse limits (issue 7), each set low through its variable and hit over a raw
//! socket: a slow header (slowloris), a slow body, an oversized body, an oversized
//! websocket frame, too many subscriptions, too many connections from one address.
//! Every refusal leaves the server answering everyone else.

mod common;

use std::time::{Duration, Instant};

use common::ddp::*;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection or `wait` passes; returns what was
/// read and whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(srv: &Server) -> TcpStream {
    TcpStream::connect(("127.0.0.1", srv.port()))
        .await
        .expect("connect")
}

/// The JSON body of a raw HTTP/1.1 answer (Content-Length or chunked).
fn json_of(answer: &str) -> Value {
    let start = answer.find("\r\n\r\n").expect("end of headers") + 4;
    let payload = &answer[start..];
    let obj = &payload[payload.find('{').expect("a JSON body")..=payload.rfind('}').unwrap()];
    serde_json::from_str(obj).expect("JSON body")
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let srv = Server::start_with(&[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut slow = connect(&srv).await;
    let started = Instant::now();
    slow.write_all(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
        .await
        .expect("write");
    // Keeps dribbling header bytes, as slowloris does: the deadline is for the whole head.
    let mut closed = false;
    for _ in 0..40 {
        if slow.write_all(b"1").await.is_err() {
            closed = true;
            break;
        }
        let (_, gone) = read_until_closed(&mut slow, Duration::from_millis(100)).await;
        if gone {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "a 4 s trickle of header bytes was not cut off");
    assert!(
        took < Duration::from_secs(3),
        "cut off only after {took:?} (limit 1 s)"
    );
    // Everyone else is served meanwhile (on a new connection: the harness's pooled one
    // sat idle past the same 1 s deadline, which also bounds idle keep-alive).
    let mut other = connect(&srv).await;
    other
        .write_all(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (answer, _) = read_until_closed(&mut other, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_with_a_json_error() {
    let srv = Server::start_with(&[("HTTP_BODY_TIMEOUT_SECS", "1")]).await;
    let admin = srv.admin().await;
    let before = srv.status_of(&admin.user_id).await;
    let mut slow = connect(&srv).await;
    let head = format!(
        "POST /api/v1/users.setStatus HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         X-User-Id: {}\r\nX-Auth-Token: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"status\":",
        admin.user_id, admin.token
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let (answer, _) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "no answer within 4 s"
    );
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "want 408, got: {answer}"
    );
    assert!(
        answer
            .to_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    assert_eq!(
        json_of(&answer),
        json!({"success": false, "error": "Request timeout"})
    );
    // Nothing was half-applied.
    assert_eq!(srv.status_of(&admin.user_id).await, before);
}

#[tokio::test]
async fn max_body_bytes_is_configurable() {
    let srv = Server::start_with(&[("MAX_BODY_BYTES", "2000")]).await;
    let admin = srv.admin().await;
    let json_ct = [("Content-Type", "application/json")];
    let body = |n: usize| format!(r#"{{"status":"busy","message":"{}"}}"#, "a".repeat(n));
    let r = srv
        .request(
            Method::POST,
            "users.setStatus",
            Some(&admin),
            &json_ct,
            Some(body(2100).into_bytes()),
        )
        .await;
    assert_eq!(r.0.as_u16(), 413, "{}", r.2);
    assert_eq!(r.2["success"], false, "{}", r.2);
    assert!(r.2["error"].is_string(), "{}", r.2);
    // Under the limit it is read, and judged on its content.
    let r = srv
        .request(
            Method::POST,
            "users.setStatus",
            Some(&admin),
            &json_ct,
            Some(body(100).into_bytes()),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
}

#[tokio::test]
async fn an_oversized_websocket_frame_closes_that_connection_only() {
    let srv = Server::start_with(&[("WS_MAX_FRAME_BYTES", "1024")]).await;
    let admin = srv.admin().await;
    let mut big = Ddp::connect_resume(&srv, &admin.token).await;
    let mut other = Ddp::connect_resume(&srv, &admin.token).await;
    let pad = "x".repeat(2000);
    big.send(
        json!({"msg": "method", "id": "1", "method": "setUserStatus", "params": ["busy", pad]}),
    )
    .await;
    assert!(
        big.wait_closed(Duration::from_secs(5)).await,
        "a 2 KB frame over a 1 KB limit did not close the connection"
    );
    // The status did not change, and the other connection still works.
    assert_ne!(srv.status_of(&admin.user_id).await["status"], "busy");
    assert_eq!(
        other
            .call("UserPresence:setDefaultStatus", json!(["away"]))
            .await,
        Ok(json!(true))
    );
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let srv = Server::start_with(&[("WS_MAX_SUBSCRIPTIONS", "2")]).await;
    let admin = srv.admin().await;
    let mut c = Ddp::connect_resume(&srv, &admin.token).await;
    for id in ["s1", "s2"] {
        let v = c
            .sub(id, "stream-notify-logged", json!(["user-status", false]))
            .await;
        assert_eq!(v, json!({"msg": "ready", "subs": [id]}));
    }
    let v = c
        .sub("s3", "stream-notify-logged", json!(["user-status", false]))
        .await;
    assert_eq!(
        v,
        json!({"msg": "nosub", "id": "s3", "error": meteor_error(
            json!("error-too-many-subscriptions"),
            "Too many subscriptions on this connection",
        )})
    );
    // Freeing one makes room again.
    c.unsub("s1").await;
    let v = c
        .sub("s4", "stream-notify-logged", json!(["user-status", false]))
        .await;
    assert_eq!(v, json!({"msg": "ready", "subs": ["s4"]}));
}

#[tokio::test]
async fn watched_users_per_connection_are_capped() {
    let srv = Server::start_with(&[("WS_MAX_WATCHED_USERS", "2")]).await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &admin.token).await;
    let too_many = |id: &str| {
        json!({"msg": "nosub", "id": id, "error": meteor_error(
            json!("error-too-many-watched-users"),
            "Too many users watched on this connection",
        )})
    };
    // Three users at once: refused, and no subscription is opened.
    let v = c
        .sub(
            "p1",
            "stream-user-presence",
            json!(["", {"added": [alice.user_id, bob.user_id, "u3"]}]),
        )
        .await;
    assert_eq!(v, too_many("p1"));
    let v = c
        .sub(
            "p2",
            "stream-user-presence",
            json!(["", {"added": [alice.user_id]}]),
        )
        .await;
    assert_eq!(v, json!({"msg": "ready", "subs": ["p2"]}));
    // A later sub past the cap changes nothing: alice is still watched, u3 is not.
    let v = c
        .sub(
            "p3",
            "stream-user-presence",
            json!(["", {"added": [bob.user_id, "u3"]}]),
        )
        .await;
    assert_eq!(v, too_many("p3"));
    c.drain_changed(Duration::from_millis(200)).await;
    let set = |who, status| srv.set_status(who, json!({ "status": status }));
    assert_eq!(set(&bob, "busy").await.0, StatusCode::OK);
    c.expect_no_changed(Duration::from_millis(500)).await;
    assert_eq!(set(&alice, "away").await.0, StatusCode::OK);
    let frame: Value = serde_json::from_str(&c.expect_changed(Duration::from_secs(5)).await)
        .expect("a JSON frame");
    assert_eq!(frame["collection"], "stream-user-presence", "{frame}");
    assert_eq!(frame["fields"]["uid"], json!(alice.user_id), "{frame}");
    // Swapping one watched user for another fits.
    let v = c
        .sub(
            "p4",
            "stream-user-presence",
            json!(["", {"added": [bob.user_id, "u3"], "removed": [alice.user_id]}]),
        )
        .await;
    assert_eq!(v, json!({"msg": "nosub", "id": "p4"}));
    assert_eq!(set(&bob, "online").await.0, StatusCode::OK);
    let frame: Value = serde_json::from_str(&c.expect_changed(Duration::from_secs(5)).await)
        .expect("a JSON frame");
    assert_eq!(frame["fields"]["uid"], json!(bob.user_id), "{frame}");
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let srv = Server::start_with(&[("MAX_CONNECTIONS_PER_IP", "3")]).await;
    let admin = srv.admin().await; // the harness's pooled connection: one of the 3
    let mut held = vec![connect(&srv).await];
    let ws = Ddp::connect_resume(&srv, &admin.token).await; // a websocket counts too
                                                            // Let the server account for both before the next one arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = connect(&srv).await;
    let _ = extra
        .write_all(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(
        closed && answer.is_empty(),
        "a 4th connection was served: {answer:?}"
    );
    // Closing the websocket frees its slot.
    ws.close().await;
    let mut ok = false;
    for _ in 0..20 {
        let mut s = connect(&srv).await;
        let req = b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if s.write_all(req).await.is_ok() {
            let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
            if answer.starts_with("HTTP/1.1 200") {
                ok = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "no slot came free after the websocket closed");
    held.push(extra);
    drop(held);
}

/// A limit of 0 means none: many connections from one address are all served.
#[tokio::test]
async fn no_per_address_cap_by_default() {
    let srv = Server::start().await;
    let mut conns = Vec::new();
    for _ in 0..50 {
        conns.push(connect(&srv).await);
    }
    for c in &mut conns {
        c.write_all(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
    }
    for c in &mut conns {
        let (answer, _) = read_until_closed(c, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
