//! Many live connections (CONTRACT §7: no cap on the number of connections). Opens
//! `STATUSD_TEST_CONNECTIONS` (default 1000) logged-in connections subscribed to
//! `user-status`, makes one REST change and checks every one of them receives it,
//! byte for byte. Resume logins with one token keep bcrypt out of the way.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ddp::*;
use common::*;
use tokio::task::JoinSet;

fn wanted() -> usize {
    std::env::var("STATUSD_TEST_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_one_of_many_connections_receives_a_rest_change() {
    let n = wanted();
    // All of them come from 127.0.0.1: past the default per-address cap.
    let srv = Server::start_with(&[("MAX_CONNECTIONS_PER_IP", "0")]).await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);

    // Open them, 50 at a time.
    let t0 = Instant::now();
    let url = srv.ws_url();
    let token = Arc::new(bob.token.clone());
    let gate = Arc::new(tokio::sync::Semaphore::new(50));
    let mut set = JoinSet::new();
    for i in 0..n {
        let (gate, token, url) = (gate.clone(), token.clone(), url.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let mut c = Ddp::open(&url).await;
            assert_eq!(c.next_raw(REPLY_WAIT).await.as_deref(), Some(r#"{"server_id":"0"}"#));
            // connect + login + sub in one go, as real clients do.
            let sid = format!("s{i}");
            c.send(json!({"msg": "connect", "version": "1", "support": ["1"]})).await;
            c.send(json!({"msg": "method", "id": "1", "method": "login", "params": [{"resume": *token}]}))
                .await;
            c.send(json!({"msg": "sub", "id": sid, "name": "stream-notify-logged", "params": ["user-status", false]}))
                .await;
            let mut got = Vec::new();
            while got.len() < 4 {
                got.push(c.next_json(REPLY_WAIT).await.expect("handshake frames"));
            }
            assert_eq!(got[0]["msg"], "connected", "{got:?}");
            assert_eq!(got[1]["result"]["type"], "resume", "{got:?}");
            assert_eq!(got[2], json!({"msg": "updated", "methods": ["1"]}));
            assert_eq!(got[3], json!({"msg": "ready", "subs": [sid]}));
            c
        });
    }
    let mut conns = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        conns.push(r.expect("a connection task failed"));
    }
    let opened = t0.elapsed();
    assert_eq!(conns.len(), n);
    srv.wait_live_connections(n as i64, Duration::from_secs(10))
        .await;
    assert_eq!(srv.own_status(&bob).await["status"], "online");
    eprintln!("opened {n} logged-in, subscribed connections in {opened:?}");

    // One REST change; every connection must get exactly it.
    let want = a.status8(BUSY, "all hands", "manual", None);
    let t1 = Instant::now();
    let r = srv
        .set_status(&alice, json!({"status": "busy", "message": "all hands"}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let mut set = JoinSet::new();
    for mut c in conns {
        let want = want.clone();
        set.spawn(async move {
            let got = c.next_changed(Duration::from_secs(20)).await;
            assert_eq!(got.as_deref(), Some(want.as_str()));
            c
        });
    }
    let mut conns = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        conns.push(r.expect("a connection missed the event"));
    }
    let delivered = t1.elapsed();
    eprintln!("{n} connections each received the change within {delivered:?}");
    assert_eq!(
        srv.live_connections().await,
        n as i64,
        "connections were dropped"
    );

    // Closing all of them takes bob offline. (All N are one user's connections, the
    // worst case for the per-user connection bookkeeping: allow time in proportion.)
    let t2 = Instant::now();
    let mut set = JoinSet::new();
    for c in conns {
        set.spawn(c.close());
    }
    while set.join_next().await.is_some() {}
    let allow = Duration::from_secs(20).max(Duration::from_millis(n as u64 * 10));
    srv.wait_status(&bob.user_id, "offline", allow).await;
    srv.wait_live_connections(0, Duration::from_secs(10)).await;
    eprintln!(
        "closed all {n}; the user was offline after {:?}",
        t2.elapsed()
    );
}
