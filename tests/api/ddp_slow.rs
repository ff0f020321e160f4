//! Slow consumers (issue 3): a subscriber that stops reading must not hold up the
//! others, and the server closes it instead of buffering for it without bound.

use crate::common;

use std::time::{Duration, Instant};

use common::ddp::*;
use common::*;
use tokio::task::JoinSet;

/// Users changing status in parallel, and status changes each.
const USERS: usize = 8;
const TOGGLES: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_is_closed_and_does_not_hold_up_others() {
    let srv = Server::start().await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    // Long status texts make every event frame large (~600 bytes).
    let text = "😀".repeat(120);
    let mut users = Vec::new();
    for i in 0..USERS {
        let s = srv
            .create_user(&format!("u{i}"), "user-pass-1", &["user"])
            .await;
        srv.set_status(&s, json!({"message": text})).await;
        users.push(s);
    }
    let ids: Vec<&str> = users.iter().map(|u| u.user_id.as_str()).collect();

    // The slow one: both streams, watching everybody, and it never reads again.
    let mut slow = Ddp::connect_resume(&srv, &carol.token).await;
    slow.sub_user_status("s").await;
    assert_eq!(
        slow.sub("p", "stream-user-presence", json!(["", {"added": ids}]))
            .await,
        json!({"msg": "ready", "subs": ["p"]})
    );
    // The good one reads everything, in a task of its own.
    let mut good = Ddp::connect_resume(&srv, &carol.token).await;
    good.sub_user_status("s").await;
    let mut conns = Vec::new();
    for u in &users {
        let c = Ddp::connect_resume(&srv, &u.token).await;
        conns.push(c);
    }
    good.drain_changed(Duration::from_millis(300)).await;
    let live_before = srv.live_connections().await;
    let total = USERS * TOGGLES;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < total {
            match good.next_changed(Duration::from_secs(20)).await {
                Some(_) => n += 1,
                None => break,
            }
        }
        (n, good)
    });

    // Each user toggles busy/away TOGGLES times, pipelined (no waiting per call).
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for mut c in conns {
        set.spawn(async move {
            for i in 0..TOGGLES {
                let status = if i % 2 == 0 { "busy" } else { "away" };
                c.send(json!({"msg": "method", "id": format!("m{i}"), "method": "UserPresence:setDefaultStatus", "params": [status]}))
                    .await;
            }
            let mut results = 0;
            while results < TOGGLES {
                let f = c.next_json(Duration::from_secs(30)).await.expect("results");
                if f["msg"] == "result" {
                    assert_eq!(f["result"], json!(true), "{f}");
                    results += 1;
                }
            }
            c
        });
    }
    let mut conns = Vec::new();
    while let Some(r) = set.join_next().await {
        conns.push(r.expect("a changing connection failed"));
    }
    let produced = t0.elapsed();
    let (got, _good) = reader.await.unwrap();
    eprintln!("{total} changes made in {produced:?}; the reading subscriber got {got}");
    assert_eq!(got, total, "the reading subscriber missed events");

    // The slow subscriber is gone (closed by the server): once it reads again it finds
    // at most what the buffers held, then the end.
    srv.wait_live_connections(live_before - 1, Duration::from_secs(20))
        .await;
    let mut buffered = 0usize;
    let closed = loop {
        match slow.next_changed(Duration::from_secs(5)).await {
            Some(_) => buffered += 1,
            None => break slow.closed,
        }
    };
    assert!(closed, "the slow subscriber was not closed");
    assert!(
        buffered < 2 * total,
        "all {buffered} frames were kept for the slow subscriber"
    );
    eprintln!(
        "the slow subscriber had {buffered} of {} frames buffered before the close",
        2 * total
    );
}

/// Consumers that pause during a burst and then read on: each one either receives
/// every change or is closed (so that its client reconnects and resyncs). None may
/// silently miss changes and carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_falls_behind_gets_everything_or_is_closed_never_a_gap() {
    const CONSUMERS: usize = 12;
    const USERS: usize = 64;
    const TOGGLES: usize = 250;
    let srv = Server::start().await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let text = "😀".repeat(120);
    let mut users = Vec::new();
    for i in 0..USERS {
        let s = srv
            .create_user(&format!("u{i}"), "user-pass-1", &["user"])
            .await;
        srv.set_status(&s, json!({"message": text})).await;
        users.push(s);
    }
    let mut changers = Vec::new();
    for u in &users {
        changers.push(Ddp::connect_resume(&srv, &u.token).await);
    }
    let total = USERS * TOGGLES;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(CONSUMERS + 1));
    let mut consumers = JoinSet::new();
    for k in 0..CONSUMERS {
        let mut c = Ddp::connect_resume(&srv, &carol.token).await;
        c.sub_user_status("s").await;
        let start = start.clone();
        consumers.spawn(async move {
            start.wait().await;
            // Pauses from 0 to ~8 s, then reads on.
            tokio::time::sleep(Duration::from_millis(k as u64 * 700)).await;
            let mut n = 0;
            while n < total {
                match c.next_changed(Duration::from_secs(15)).await {
                    Some(_) => n += 1,
                    None => break,
                }
            }
            (k, n, c.closed)
        });
    }
    start.wait().await;
    let mut set = JoinSet::new();
    for mut c in changers {
        set.spawn(async move {
            for i in 0..TOGGLES {
                let status = if i % 2 == 0 { "busy" } else { "away" };
                c.send(json!({"msg": "method", "id": format!("m{i}"), "method": "UserPresence:setDefaultStatus", "params": [status]}))
                    .await;
            }
            let mut results = 0;
            while results < TOGGLES {
                let f = c.next_json(Duration::from_secs(30)).await.expect("results");
                if f["msg"] == "result" {
                    results += 1;
                }
            }
            c
        });
    }
    let mut keep = Vec::new();
    while let Some(r) = set.join_next().await {
        keep.push(r.expect("a changing connection failed"));
    }
    let (mut complete, mut closed) = (0, 0);
    while let Some(r) = consumers.join_next().await {
        let (k, n, was_closed) = r.unwrap();
        if was_closed {
            closed += 1;
        } else {
            assert_eq!(
                n,
                total,
                "consumer {k} missed {} changes and was not closed",
                total - n
            );
            complete += 1;
        }
    }
    eprintln!("{complete} consumers got all {total} changes, {closed} were closed");
}

/// A connection whose queue of changes overflows (`WS_QUEUE_EVENTS`, tiny here) while
/// its socket is writable is closed with a close frame that says why: code 1013 (try
/// again later) and "slow consumer: …", counted in `statusd_slow_consumers_total`
/// (issue 20). Never a silent drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_queue_closes_with_1013_and_a_reason() {
    const USERS: usize = 8;
    const TOGGLES: usize = 300;
    let srv = Server::start_with(&[("WS_QUEUE_EVENTS", "2")]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        let s = srv
            .create_user(&format!("u{i}"), "user-pass-1", &["user"])
            .await;
        users.push(s);
    }
    let mut consumer = Ddp::connect_resume(&srv, &carol.token).await;
    consumer.sub_user_status("s").await;
    let mut set = JoinSet::new();
    for u in &users {
        let mut c = Ddp::connect_resume(&srv, &u.token).await;
        set.spawn(async move {
            for i in 0..TOGGLES {
                let status = if i % 2 == 0 { "busy" } else { "away" };
                c.send(json!({"msg": "method", "id": format!("m{i}"), "method": "UserPresence:setDefaultStatus", "params": [status]}))
                    .await;
            }
            let mut results = 0;
            while results < TOGGLES {
                let f = c.next_json(Duration::from_secs(30)).await.expect("results");
                if f["msg"] == "result" {
                    results += 1;
                }
            }
            c
        });
    }
    // The consumer reads all the while: it is the server that cannot queue for it.
    let mut got = 0usize;
    while consumer
        .next_changed(Duration::from_secs(10))
        .await
        .is_some()
    {
        got += 1;
    }
    let mut keep = Vec::new();
    while let Some(r) = set.join_next().await {
        keep.push(r.expect("a changing connection failed"));
    }
    assert!(consumer.closed, "never closed after {got} frames");
    let why = consumer.close_reason.clone().unwrap_or_default();
    assert!(
        why.contains("Again") && why.contains("slow consumer: more than 2 events queued"),
        "closed without the slow-consumer close frame: {why}"
    );
    let (status, _, metrics) = srv
        .request_text(Method::GET, "/metrics", None, &[], None)
        .await;
    assert_eq!(status, 200);
    let closed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("statusd_slow_consumers_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("statusd_slow_consumers_total");
    assert!(closed >= 1.0, "{closed}");
    eprintln!("closed after {got} frames: {why}");
}
