//! Graceful shutdown with live realtime connections: SIGTERM closes the sockets, the
//! server exits promptly, and users it had online are offline after a restart. Also
//! the crash path (SIGKILL).

use crate::common;

use std::time::{Duration, Instant};

use common::ddp::*;
use common::*;

#[tokio::test]
async fn sigterm_closes_sockets_exits_promptly_and_leaves_users_offline() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut a = Ddp::connect_resume(&srv, &alice.token).await;
    let mut b = Ddp::connect_resume(&srv, &bob.token).await;
    b.sub_user_status("s").await;
    // Some idle extra connections, logged in and not.
    let mut extra = Vec::new();
    for _ in 0..20 {
        extra.push(Ddp::connect_resume(&srv, &alice.token).await);
        extra.push(Ddp::connect(&srv).await);
    }
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");

    let t0 = Instant::now();
    let exit = srv.stop().await;
    let took = t0.elapsed();
    assert!(exit.success(), "exit status {exit}; log:\n{}", srv.log());
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to exit after SIGTERM"
    );
    // The sockets were closed by the server (a close frame or at least an end).
    assert!(
        a.wait_closed(Duration::from_secs(2)).await,
        "alice's socket was not closed"
    );
    assert!(
        b.wait_closed(Duration::from_secs(2)).await,
        "bob's socket was not closed"
    );
    if let Some(r) = &a.close_reason {
        assert!(r.contains("1001") || r.contains("Away"), "close: {r}");
    }

    srv.start_again().await;
    for s in [&alice, &bob] {
        let st = srv.own_status(s).await;
        assert_eq!(
            (st["status"].clone(), st["connectionStatus"].clone()),
            (json!("offline"), json!("offline")),
            "{}",
            s.username
        );
    }
    // And a new connection brings alice back online.
    let _a = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
}

#[tokio::test]
async fn a_chosen_status_survives_a_graceful_restart_while_connected() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut a = Ddp::connect_resume(&srv, &alice.token).await;
    a.call("setUserStatus", json!(["busy", "on a plane"]))
        .await
        .unwrap();
    srv.restart().await;
    // Offline (no connection), but the choice and the text are kept.
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "offline");
    assert_eq!(
        srv.info_of(&alice.user_id).await["statusText"],
        "on a plane"
    );
    let _a = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "busy");
}

#[tokio::test]
async fn after_a_crash_users_that_were_connected_are_offline() {
    // On PostgreSQL the crashed process's connections are reaped once its instance
    // counts as dead (docs/cluster.md: INSTANCE_DEAD_SECS + 2 heartbeat periods); on
    // SQLite (one process owns the data) they are gone as soon as it starts again.
    let mut srv = Server::start_with(&[("INSTANCE_DEAD_SECS", "2")]).await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let _a = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    srv.kill9();
    srv.start_again().await;
    if !srv.database_url().starts_with("sqlite:") {
        srv.wait_status(&alice.user_id, "offline", Duration::from_secs(15))
            .await;
    }
    let st = srv.own_status(&alice).await;
    assert_eq!(
        (st["status"].clone(), st["connectionStatus"].clone()),
        (json!("offline"), json!("offline"))
    );
}
