//! Stale connections are reaped (CONTRACT §5/§7): with PRESENCE_STALE_SECS=2 and
//! DDP_PING_SECS=1, a client that stays completely silent goes offline within a few
//! seconds; one that answers the server's pings stays online.

use crate::common;

use std::time::{Duration, Instant};

use common::ddp::*;
use common::*;

const ENV: &[(&str, &str)] = &[("PRESENCE_STALE_SECS", "2"), ("DDP_PING_SECS", "1")];

#[tokio::test]
async fn a_silent_client_is_reaped_and_the_user_goes_offline() {
    let srv = Server::start_with(ENV).await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let a = Who::created(&alice.user_id, "alice", &["user"]);
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;

    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    c.set_answer_pings(false);
    let t0 = Instant::now();
    assert_eq!(w.expect_changed(EVENT_WAIT).await, a.status6(ONLINE, ""));
    // From now on alice's client reads nothing and sends nothing. The watcher keeps
    // reading (and so answering pings) while it waits for alice's offline event.
    let ev = w.next_changed(Duration::from_secs(8)).await;
    let took = t0.elapsed();
    assert_eq!(
        ev.as_deref(),
        Some(a.status6(OFFLINE, "").as_str()),
        "after {took:?}"
    );
    assert!(took <= Duration::from_secs(6), "reaped only after {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "reaped already after {took:?}"
    );
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "offline");
    assert_eq!(srv.own_status(&alice).await["connectionStatus"], "offline");
    // The server closed alice's socket, after pinging it.
    assert!(
        c.wait_closed(Duration::from_secs(2)).await,
        "the stale socket is still open"
    );
    assert!(c.pings_seen >= 1, "no ping before the close");
    // The watcher, which answered its pings, is still there and still gets events.
    assert!(!w.closed);
    srv.set_status(&alice, json!({"message": "back soon"}))
        .await;
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        a.status8(OFFLINE, "back soon", "manual", None)
    );
}

#[tokio::test]
async fn a_client_answering_pings_stays_online_past_the_stale_time() {
    let srv = Server::start_with(ENV).await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let mut w = Ddp::connect_resume(&srv, &carol.token).await;
    w.sub_user_status("s").await;
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    w.drain_changed(Duration::from_millis(300)).await;

    // Both only answer pings for 3× the stale time.
    let (closed, ()) = tokio::join!(
        c.wait_closed(Duration::from_secs(6)),
        w.expect_no_changed(Duration::from_secs(6)),
    );
    assert!(
        !closed,
        "an answering client was closed: {:?}",
        c.close_reason
    );
    assert!(c.pings_seen >= 2, "only {} pings", c.pings_seen);
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    assert_eq!(srv.own_status(&alice).await["connectionStatus"], "online");
}

#[tokio::test]
async fn one_stale_connection_of_two_leaves_the_user_online() {
    let srv = Server::start_with(ENV).await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut stale = Ddp::connect_resume(&srv, &alice.token).await;
    stale.set_answer_pings(false);
    let mut live = Ddp::connect_resume(&srv, &alice.token).await;
    live.call("UserPresence:away", json!([])).await.unwrap();
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    // `stale` (online) is reaped; `live` (away) answers its pings.
    let closed = live.wait_closed(Duration::from_secs(5)).await;
    assert!(
        !closed,
        "the live connection was closed: {:?}",
        live.close_reason
    );
    assert!(
        stale.wait_closed(Duration::from_secs(1)).await,
        "the stale one is still open"
    );
    assert_eq!(srv.own_status(&alice).await["connectionStatus"], "away");
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "away");
}
