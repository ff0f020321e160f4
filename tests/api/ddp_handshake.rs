//! DDP handshake, ping/pong, server pings and frame ordering (CONTRACT §7), against
//! the real binary.

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

const W: Duration = Duration::from_secs(10);

#[tokio::test]
async fn greeting_then_connected_with_a_session_id_unique_per_connection() {
    let srv = Server::start().await;
    let mut c = Ddp::open(&srv.ws_url()).await;
    assert_eq!(c.next_raw(W).await.as_deref(), Some(r#"{"server_id":"0"}"#));
    c.send_raw(r#"{"msg":"connect","version":"1","support":["1"]}"#)
        .await;
    let raw = c.next_raw(W).await.expect("connected");
    let v: Value = serde_json::from_str(&raw).unwrap();
    let session = v["session"].as_str().expect("session id").to_string();
    assert!(!session.is_empty());
    assert_eq!(
        raw,
        format!(r#"{{"msg":"connected","session":"{session}"}}"#)
    );

    // Another connection gets another session id.
    let d = Ddp::connect(&srv).await;
    assert_ne!(d.session.as_deref(), Some(session.as_str()));
}

#[tokio::test]
async fn an_unsupported_version_is_answered_with_failed_proposing_version_1() {
    let srv = Server::start().await;
    for connect in [
        r#"{"msg":"connect","version":"2","support":["2"]}"#,
        r#"{"msg":"connect","version":"pre1","support":["pre1","pre2"]}"#,
    ] {
        let mut c = Ddp::open(&srv.ws_url()).await;
        assert_eq!(c.next_raw(W).await.as_deref(), Some(r#"{"server_id":"0"}"#));
        c.send_raw(connect).await;
        assert_eq!(
            c.next_raw(W).await.as_deref(),
            Some(r#"{"msg":"failed","version":"1"}"#),
            "answer to {connect}"
        );
    }
}

#[tokio::test]
async fn ping_with_and_without_id_is_answered_with_an_echoing_pong() {
    let srv = Server::start().await;
    let mut c = Ddp::connect(&srv).await;
    c.send_raw(r#"{"msg":"ping"}"#).await;
    assert_eq!(c.next_raw(W).await.as_deref(), Some(r#"{"msg":"pong"}"#));
    c.send_raw(r#"{"msg":"ping","id":"abc-1"}"#).await;
    assert_eq!(
        c.next_raw(W).await.as_deref(),
        Some(r#"{"msg":"pong","id":"abc-1"}"#)
    );
    // Ids needing escapes are echoed faithfully.
    c.send(json!({"msg": "ping", "id": "q\"uote\\é"})).await;
    let v = c.next_json(W).await.expect("pong");
    assert_eq!(v, json!({"msg": "pong", "id": "q\"uote\\é"}));
    // A pong from the client gets no answer; the connection stays usable.
    c.send_raw(r#"{"msg":"pong","id":"x"}"#).await;
    c.send_raw(r#"{"msg":"ping","id":"after"}"#).await;
    assert_eq!(
        c.next_raw(W).await.as_deref(),
        Some(r#"{"msg":"pong","id":"after"}"#)
    );
}

#[tokio::test]
async fn frames_sent_without_waiting_are_answered_in_order() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c = Ddp::open(&srv.ws_url()).await;
    // Everything at once, as real clients do (login before `connected` arrives). The
    // digest login is slow (bcrypt), so anything answered out of order would overtake it.
    let digest = sha256_hex("alice-pass-1");
    let frames = [
        json!({"msg": "connect", "version": "1", "support": ["1"]}),
        json!({"msg": "method", "id": "1", "method": "login", "params": [{
            "user": {"username": "alice"},
            "password": {"digest": digest, "algorithm": "sha-256"}
        }]}),
        json!({"msg": "sub", "id": "s1", "name": "stream-notify-logged", "params": ["user-status", false]}),
        json!({"msg": "ping", "id": "p1"}),
        json!({"msg": "method", "id": "2", "method": "no-such-method", "params": []}),
        json!({"msg": "method", "id": "3", "method": "UserPresence:setDefaultStatus", "params": ["busy"]}),
        json!({"msg": "ping", "id": "p2"}),
    ];
    for f in frames {
        c.send(f).await;
    }
    let mut got = Vec::new();
    while got.len() < 11 {
        match c.next_raw(W).await {
            Some(t) => got.push(t),
            None => break,
        }
    }
    let v = |i: usize| -> Value { serde_json::from_str(&got[i]).unwrap() };
    assert_eq!(got[0], r#"{"server_id":"0"}"#, "{got:#?}");
    assert_eq!(v(1)["msg"], "connected", "{got:#?}");
    assert_eq!(
        (v(2)["msg"].clone(), v(2)["id"].clone()),
        (json!("result"), json!("1")),
        "{got:#?}"
    );
    assert_eq!(v(2)["result"]["id"], json!(alice.user_id), "{got:#?}");
    assert_eq!(got[3], r#"{"msg":"updated","methods":["1"]}"#, "{got:#?}");
    assert_eq!(got[4], r#"{"msg":"ready","subs":["s1"]}"#, "{got:#?}");
    assert_eq!(got[5], r#"{"msg":"pong","id":"p1"}"#, "{got:#?}");
    assert_eq!(v(6)["id"], "2", "{got:#?}");
    assert_eq!(v(6)["error"]["error"], 404, "{got:#?}");
    assert_eq!(got[7], r#"{"msg":"updated","methods":["2"]}"#, "{got:#?}");
    // Then the setDefaultStatus result, its `updated` and the second pong, in that
    // order. The busy change is published to the subscription made earlier on this
    // connection; events are not ordered against replies, so it may come anywhere.
    let who = Who::created(&alice.user_id, "alice", &["user"]);
    let event = who.status8(BUSY, "", "manual", None);
    let mut tail: Vec<String> = got[8..].iter().filter(|t| **t != event).cloned().collect();
    let mut saw_event = got[8..].contains(&event);
    while tail.len() < 3 {
        let t = c.next_raw(W).await.expect("more frames");
        if t == event && !saw_event {
            saw_event = true;
        } else {
            tail.push(t);
        }
    }
    assert_eq!(
        tail,
        [
            r#"{"msg":"result","id":"3","result":true}"#,
            r#"{"msg":"updated","methods":["3"]}"#,
            r#"{"msg":"pong","id":"p2"}"#,
        ],
        "{got:#?}"
    );
    if !saw_event {
        assert_eq!(c.expect_changed(W).await, event);
    }
    c.expect_no_changed(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn the_server_pings_an_idle_connection_and_keeps_it_while_it_answers() {
    let srv = Server::start_with(&[("DDP_PING_SECS", "1"), ("PRESENCE_STALE_SECS", "3")]).await;
    let mut c = Ddp::connect(&srv).await;
    // Answering pings (and sending nothing else) for twice the stale time.
    assert!(
        !c.wait_closed(Duration::from_secs(6)).await,
        "the server closed an answering client"
    );
    assert!(c.pings_seen >= 2, "only {} pings in 6 s", c.pings_seen);
    assert_eq!(c.last_ping.as_deref(), Some(r#"{"msg":"ping"}"#));
    c.send_raw(r#"{"msg":"ping","id":"still-here"}"#).await;
    assert_eq!(
        c.next_raw(W).await.as_deref(),
        Some(r#"{"msg":"pong","id":"still-here"}"#)
    );
}

#[tokio::test]
async fn the_server_closes_a_connection_that_does_not_answer_its_pings() {
    let srv = Server::start_with(&[("DDP_PING_SECS", "1"), ("PRESENCE_STALE_SECS", "2")]).await;
    let mut c = Ddp::connect(&srv).await;
    c.set_answer_pings(false);
    let started = std::time::Instant::now();
    assert!(
        c.wait_closed(Duration::from_secs(8)).await,
        "a silent client was not closed"
    );
    assert!(c.pings_seen >= 1, "closed without a ping first");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after only {:?}",
        started.elapsed()
    );
}

/// Malformed `method` and `sub` frames and binary frames are answered as Meteor's
/// livedata server answers them (issue 15 §9), never ignored; the connection stays usable.
#[tokio::test]
async fn malformed_methods_subs_and_binary_frames_are_answered_as_meteor_does() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c = Ddp::connect(&srv).await;
    c.login_resume(&alice.token).await.unwrap();
    for (bad, reason) in [
        (
            json!({"msg": "method", "id": 1, "method": "UserPresence:away"}),
            "Malformed method invocation",
        ),
        (
            json!({"msg": "method", "id": "m1", "method": "UserPresence:away", "params": null}),
            "Malformed method invocation",
        ),
        (
            json!({"msg": "method", "id": "m1", "method": "UserPresence:away", "params": {"a": 1}}),
            "Malformed method invocation",
        ),
        (
            json!({"msg": "method", "id": "m1", "method": "UserPresence:away", "randomSeed": 7}),
            "Malformed method invocation",
        ),
        (
            json!({"msg": "method", "id": "m1"}),
            "Malformed method invocation",
        ),
        (
            json!({"msg": "sub", "id": 5, "name": "stream-notify-logged"}),
            "Malformed subscription",
        ),
        (
            json!({"msg": "sub", "id": "s1", "name": "stream-notify-logged", "params": "user-status"}),
            "Malformed subscription",
        ),
        (json!({"msg": "sub", "id": "s1"}), "Malformed subscription"),
    ] {
        c.send(bad.clone()).await;
        assert_eq!(
            c.next_json(W).await,
            Some(json!({"msg": "error", "reason": reason, "offendingMessage": bad})),
            "answer to {bad}"
        );
    }
    // A numeric method id was run before: now nothing was done.
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    c.send_binary(br#"{"msg":"ping","id":"b"}"#).await;
    assert_eq!(
        c.next_json(W).await,
        Some(json!({"msg": "error", "reason": "Bad request"}))
    );
    c.send_raw(r#"{"msg":"ping","id":"ok"}"#).await;
    assert_eq!(
        c.next_raw(W).await.as_deref(),
        Some(r#"{"msg":"pong","id":"ok"}"#)
    );
}

#[tokio::test]
async fn malformed_and_unknown_frames_get_an_error_and_the_connection_stays_usable() {
    let srv = Server::start().await;
    let mut c = Ddp::connect(&srv).await;
    for bad in ["not json", "[1,2]", r#"{"id":"1"}"#] {
        c.send_raw(bad).await;
        assert_eq!(
            c.next_json(W).await,
            Some(json!({"msg": "error", "reason": "Bad request"})),
            "answer to {bad}"
        );
    }
    c.send_raw(r#"{"msg":"teleport","id":"1"}"#).await;
    assert_eq!(
        c.next_json(W).await,
        Some(
            json!({"msg": "error", "reason": "Bad request", "offendingMessage": {"msg": "teleport", "id": "1"}})
        )
    );
    c.send_raw(r#"{"msg":"ping","id":"ok"}"#).await;
    assert_eq!(
        c.next_raw(W).await.as_deref(),
        Some(r#"{"msg":"pong","id":"ok"}"#)
    );
    // An oversized frame (over 64 KiB) ends in an error frame or a closed socket; the
    // server itself carries on.
    let big = format!(r#"{{"msg":"ping","id":"{}"}}"#, "x".repeat(70 * 1024));
    c.send_raw(&big).await;
    match c.next_json(W).await {
        None => assert!(c.closed, "neither an answer nor a close"),
        Some(v) => assert_eq!(v["msg"], "error", "{v}"),
    }
    let mut d = Ddp::connect(&srv).await;
    d.send_raw(r#"{"msg":"ping"}"#).await;
    assert_eq!(d.next_raw(W).await.as_deref(), Some(r#"{"msg":"pong"}"#));
}

/// A close the client starts is answered with a close frame, so the client sees a
/// clean 1000 (RFC 6455 §5.5.1); without it, the `@rocket.chat/sdk` driver takes the
/// 1006 for a dropped line and reconnects after `disconnect()`.
#[tokio::test]
async fn a_close_from_the_client_is_answered() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    use tokio_tungstenite::tungstenite::Message;

    let srv = Server::start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(srv.ws_url())
        .await
        .expect("websocket");
    ws.send(Message::Text(
        r#"{"msg":"connect","version":"1","support":["1"]}"#.into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "disconnect".into(),
    })))
    .await
    .unwrap();
    let reply = tokio::time::timeout(W, async {
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(f)) = m {
                return f;
            }
        }
        None
    })
    .await
    .expect("the server's close frame in time");
    assert_eq!(reply.map(|f| f.code), Some(CloseCode::Normal));
}
