//! Cluster mode (issue 5): several instances sharing one PostgreSQL database and one
//! NATS. Each test gets a fresh database (dropped at the end), a private nats-server
//! (so killing and restarting it disturbs no other test) and its own subject prefix;
//! see `tests/common/cluster.rs`.
//!
//! Covered: cross-instance delivery of committed changes (with the measured delay),
//! tokens and reads across instances, exactly-once delivery with three instances,
//! presence of a user connected to several instances, reaping the connections of a
//! `kill -9`ed instance within the stated bound, NATS restarted mid-test (delivery
//! resumes; changes made while it was down arrive through the resync), `/api/health`,
//! status expiry and calendar events exactly once cluster-wide, connected calendars
//! fetched by the leader only, and a store that
//! disappears (503 JSON).
//! A hung (SIGSTOPped) leader loses its lease and another instance reaps and expires;
//! an instance paused long enough to be reaped restores its connections when it
//! resumes; instances started at the same moment on an empty database all come up,
//! with one admin. Preferences set through one instance are read through another.
//! `Presence_broadcast_disabled` silences every instance's streams and
//! `presence.enableBroadcast` on any instance turns them back on. Meteor's `activeUsers`
//! publication on one instance follows what another commits. NATS authentication
//! (issue 17): a refused password is logged without it; an nkey file, a credentials file
//! (operator mode, JWTs made here) and TLS with a client certificate (a CA made by
//! openssl) each carry a change across two instances, and an instance without them is
//! refused and says so. A last seen written by a disconnect on one instance is read on
//! another; the reaper sets the last seen of a killed instance's users. A do-not-disturb
//! window opens and closes exactly once with two instances. A denied list (presence
//! privacy) set through one instance redacts the streams of another at once.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use cluster::{
    health, pid_listening_on, settle, signal, status_watcher, wait_health, wait_token_works,
    wait_user_known, Cluster,
};
use common::ddp::{Ddp, Who, AWAY, BUSY, EVENT_WAIT, OFFLINE, ONLINE};
use common::*;

const ALICE_PASS: &str = "alice-pass-1";
/// How long a watcher must stay quiet before a test starts counting frames.
const QUIET: Duration = Duration::from_millis(400);
/// After the expected frame, how long no duplicate may arrive.
const GRACE: Duration = Duration::from_secs(1);
/// How long a change may take to replicate to another instance (tokens, users).
const REPLICATION_WAIT: Duration = Duration::from_secs(3);
/// The reconnect back-off of the NATS client tops out at 4 s; allow a few rounds.
const NATS_RECOVERY_WAIT: Duration = Duration::from_secs(15);
/// The heartbeat period of `src/cluster.rs`.
const HEARTBEAT_SECS: u64 = 5;

/// Creates alice on `c[0]` (logged in there) and waits until every instance accepts
/// her token. Returns her session and how she appears in `user-status` events.
async fn alice_on(c: &Cluster) -> (Session, Who) {
    let alice = c[0].create_user("alice", ALICE_PASS, &["user"]).await;
    for srv in &c.servers[1..] {
        wait_user_known(srv, &alice.user_id, REPLICATION_WAIT).await;
        wait_token_works(srv, &alice, REPLICATION_WAIT).await;
    }
    let who = Who::created(&alice.user_id, "alice", &["user"]);
    (alice, who)
}

/// `setStatus` as `s` on `srv`; must answer 200 `{"success":true}`.
async fn set_ok(srv: &Server, s: &Session, body: Value) {
    let reply = srv.set_status(s, body.clone()).await;
    assert_reply(&reply, 200, json!({"success": true}));
}

/// Asserts that none of `watchers` receives any frame within `wait` (concurrently).
async fn no_more_frames(watchers: &mut [&mut Ddp], wait: Duration) {
    futures_util::future::join_all(watchers.iter_mut().map(|w| w.expect_no_changed(wait))).await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Polls `users.getStatus` on `srv` until `user_id` shows `want`; asserts that happens
/// no later than `deadline`. Returns the body.
async fn status_by(srv: &Server, user_id: &str, want: &str, deadline: Instant) -> Value {
    loop {
        let body = srv.status_of(user_id).await;
        if body["status"] == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{}: status of {user_id} is still not {want} at the deadline: {body}",
            srv.base_url()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------------ two instances

#[tokio::test(flavor = "multi_thread")]
async fn a_change_on_one_instance_reaches_a_subscriber_on_another() {
    let c = Cluster::start(2, &[]).await;
    let (a, b) = (&c[0], &c[1]);

    // A token from a REST login on A works on B (after replication).
    let alice = a.create_user("alice", ALICE_PASS, &["user"]).await;
    let token_lag = wait_token_works(b, &alice, REPLICATION_WAIT).await;
    println!(
        "a login token made on A was accepted by B after {:.1} ms",
        ms(token_lag)
    );
    let who = Who::created(&alice.user_id, "alice", &["user"]);
    let own_b = b.own_status(&alice).await;
    assert_eq!(own_b["_id"], json!(alice.user_id), "{own_b}");

    let mut wa = status_watcher(a).await;
    let mut wb = status_watcher(b).await;
    settle(&mut [&mut wa, &mut wb], QUIET).await;

    // REST setStatus on A → the exact frame on a DDP subscriber of B (and of A).
    let want = who.status8(BUSY, "in a meeting", "manual", None);
    let sent = Instant::now();
    let (reply, (fa, ta), (fb, tb)) = tokio::join!(
        a.set_status(&alice, json!({"status": "busy", "message": "in a meeting"})),
        async { (wa.expect_changed(EVENT_WAIT).await, sent.elapsed()) },
        async { (wb.expect_changed(EVENT_WAIT).await, sent.elapsed()) },
    );
    assert_reply(&reply, 200, json!({"success": true}));
    assert_eq!(fb, want, "the frame on B");
    assert_eq!(fa, want, "the frame on A");
    println!(
        "first change: frame on A after {:.1} ms, on B after {:.1} ms",
        ms(ta),
        ms(tb)
    );

    // users.getStatus on B reflects A's change, exactly as A answers it.
    let on_b = b.status_of(&alice.user_id).await;
    assert_eq!(
        on_b,
        json!({"_id": alice.user_id, "status": "busy", "statusSource": "manual", "success": true})
    );
    assert_eq!(on_b, a.status_of(&alice.user_id).await, "A and B disagree");
    let info_b = b.info_of(&alice.user_id).await;
    assert_eq!(info_b["statusText"], "in a meeting", "{info_b}");
    assert_eq!(info_b, a.info_of(&alice.user_id).await, "A and B disagree");
    assert_eq!(
        b.own_status(&alice).await,
        a.own_status(&alice).await,
        "A and B disagree on alice's own view"
    );

    // The other way round, with A's token used on B.
    let want = who.status8(AWAY, "in a meeting", "manual", None);
    let (reply, fa) = tokio::join!(
        b.set_status(&alice, json!({"status": "away"})),
        wa.expect_changed(EVENT_WAIT)
    );
    assert_reply(&reply, 200, json!({"success": true}));
    assert_eq!(fa, want, "B's change on a subscriber of A");
    assert_eq!(wb.expect_changed(EVENT_WAIT).await, want);
    no_more_frames(&mut [&mut wa, &mut wb], GRACE).await;

    // The delay, measured: request sent on A → frame on B, and B's lag behind A's own
    // subscriber (the cross-instance hop: NATS + remote apply).
    const SAMPLES: usize = 30;
    let mut to_b = Vec::with_capacity(SAMPLES);
    let mut hop = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let (status, code) = if i % 2 == 0 {
            ("busy", BUSY)
        } else {
            ("away", AWAY)
        };
        let want = who.status8(code, "in a meeting", "manual", None);
        let sent = Instant::now();
        let (reply, (fa, ta), (fb, tb)) = tokio::join!(
            a.set_status(&alice, json!({ "status": status })),
            async { (wa.expect_changed(EVENT_WAIT).await, sent.elapsed()) },
            async { (wb.expect_changed(EVENT_WAIT).await, sent.elapsed()) },
        );
        assert_reply(&reply, 200, json!({"success": true}));
        assert_eq!((fa, fb), (want.clone(), want), "sample {i}");
        to_b.push(tb);
        hop.push(tb.saturating_sub(ta));
    }
    to_b.sort();
    hop.sort();
    println!(
        "cross-instance delivery over {SAMPLES} changes: request on A -> frame on B \
         p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms; B behind A's own subscriber \
         p50 {:.1} ms, max {:.1} ms",
        ms(percentile(&to_b, 0.5)),
        ms(percentile(&to_b, 0.9)),
        ms(to_b[SAMPLES - 1]),
        ms(percentile(&hop, 0.5)),
        ms(hop[SAMPLES - 1]),
    );
    no_more_frames(&mut [&mut wa, &mut wb], GRACE).await;
}

// ---------------------------------------------------------------- three instances

#[tokio::test(flavor = "multi_thread")]
async fn with_three_instances_every_change_reaches_every_subscriber_exactly_once() {
    let c = Cluster::start(3, &[]).await;
    let (alice, who) = alice_on(&c).await;
    let mut w0 = status_watcher(&c[0]).await;
    let mut w1 = status_watcher(&c[1]).await;
    let mut w2 = status_watcher(&c[2]).await;
    settle(&mut [&mut w0, &mut w1, &mut w2], QUIET).await;

    let rounds = [
        (0, "busy", BUSY, "from A"),
        (1, "away", AWAY, "from B"),
        (2, "online", ONLINE, "from C"),
        (1, "busy", BUSY, "from B again"),
    ];
    for (origin, status, code, text) in rounds {
        set_ok(
            &c[origin],
            &alice,
            json!({"status": status, "message": text}),
        )
        .await;
        let want = who.status8(code, text, "manual", None);
        for (i, w) in [&mut w0, &mut w1, &mut w2].into_iter().enumerate() {
            let got = w.expect_changed(EVENT_WAIT).await;
            assert_eq!(got, want, "change made on #{origin}, subscriber on #{i}");
        }
        // Exactly once: nothing more on any instance within the grace period.
        no_more_frames(&mut [&mut w0, &mut w1, &mut w2], GRACE).await;
        for srv in &c.servers {
            let info = srv.info_of(&alice.user_id).await;
            assert_eq!(
                (&info["status"], &info["statusText"]),
                (&json!(status), &json!(text)),
                "{}: {info}",
                srv.base_url()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_connected_to_two_instances_stays_online_until_both_connections_close() {
    let c = Cluster::start(3, &[]).await;
    let (alice, who) = alice_on(&c).await;
    let mut watcher = status_watcher(&c[2]).await;
    settle(&mut [&mut watcher], QUIET).await;

    // Logged in over DDP on A: online everywhere, one event.
    let on_a = Ddp::connect_resume(&c[0], &alice.token).await;
    assert_eq!(
        watcher.expect_changed(EVENT_WAIT).await,
        who.status6(ONLINE, "")
    );
    // And on B too: nothing visible changes.
    let on_b = Ddp::connect_resume(&c[1], &alice.token).await;
    watcher.expect_no_changed(GRACE).await;
    for srv in &c.servers {
        let body = srv.status_of(&alice.user_id).await;
        assert_eq!(body["status"], "online", "{}: {body}", srv.base_url());
        let own = srv.own_status(&alice).await;
        assert_eq!(
            own["connectionStatus"],
            "online",
            "{}: {own}",
            srv.base_url()
        );
    }

    // A's connection closes: still online on all three (B's connection holds).
    on_a.close().await;
    c[0].wait_live_connections(0, EVENT_WAIT).await;
    watcher.expect_no_changed(GRACE).await;
    for srv in &c.servers {
        let body = srv.status_of(&alice.user_id).await;
        assert_eq!(
            body["status"],
            "online",
            "{} after A's connection closed: {body}",
            srv.base_url()
        );
        let own = srv.own_status(&alice).await;
        assert_eq!(
            own["connectionStatus"],
            "online",
            "{} after A's connection closed: {own}",
            srv.base_url()
        );
    }

    // B's connection closes too: offline everywhere, one event.
    on_b.close().await;
    assert_eq!(
        watcher.expect_changed(EVENT_WAIT).await,
        who.status6(OFFLINE, "")
    );
    let deadline = Instant::now() + EVENT_WAIT;
    for srv in &c.servers {
        status_by(srv, &alice.user_id, "offline", deadline).await;
        let own = srv.own_status(&alice).await;
        assert_eq!(
            own["connectionStatus"],
            "offline",
            "{}: {own}",
            srv.base_url()
        );
    }
    watcher.expect_no_changed(GRACE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connections_of_a_killed_instance_are_reaped_within_the_bound() {
    const DEAD_SECS: u64 = 4;
    let dead = DEAD_SECS.to_string();
    let mut c = Cluster::start(3, &[("INSTANCE_DEAD_SECS", &dead)]).await;
    let (alice, who) = alice_on(&c).await;
    let mut watcher = status_watcher(&c[1]).await;
    settle(&mut [&mut watcher], QUIET).await;

    let on_a = Ddp::connect_resume(&c[0], &alice.token).await;
    assert_eq!(
        watcher.expect_changed(EVENT_WAIT).await,
        who.status6(ONLINE, "")
    );
    status_by(&c[1], &alice.user_id, "online", Instant::now() + EVENT_WAIT).await;

    // kill -9: no goodbye, the connection row stays behind in the shared store.
    c[0].kill9();
    let killed = Instant::now();
    let bound = Duration::from_secs(DEAD_SECS + 2 * HEARTBEAT_SECS);
    status_by(&c[1], &alice.user_id, "offline", killed + bound).await;
    let took = killed.elapsed();
    println!(
        "a kill -9ed instance's user went offline on B after {:.1} s (bound {} s)",
        took.as_secs_f64(),
        bound.as_secs()
    );
    let frame = watcher.expect_changed(EVENT_WAIT).await;
    assert_eq!(frame, who.status6(OFFLINE, ""), "the offline event on B");
    status_by(
        &c[2],
        &alice.user_id,
        "offline",
        Instant::now() + EVENT_WAIT,
    )
    .await;
    drop(on_a);

    // Only the dead instance's connections go: the live ones (the watcher's, on B)
    // survive several more rounds of the reaper.
    watcher
        .expect_no_changed(Duration::from_secs(DEAD_SECS + 2))
        .await;
    let admin = c[1].admin().await;
    for srv in &c.servers[1..] {
        let body = srv.status_of(&admin.user_id).await;
        assert_eq!(body["status"], "online", "{}: {body}", srv.base_url());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gracefully_stopped_instance_takes_its_users_offline_everywhere_at_once() {
    let mut c = Cluster::start(2, &[]).await;
    let (alice, who) = alice_on(&c).await;
    let mut watcher = status_watcher(&c[1]).await;
    settle(&mut [&mut watcher], QUIET).await;

    let mut on_a = Ddp::connect_resume(&c[0], &alice.token).await;
    assert_eq!(
        watcher.expect_changed(EVENT_WAIT).await,
        who.status6(ONLINE, "")
    );

    // SIGTERM: A closes its connections and publishes the offline change before it
    // exits; B must not wait for the reaper (A's rows are gone, nothing to reap).
    let stopped = Instant::now();
    let exit = c[0].stop().await;
    assert!(exit.success(), "A exited with {exit}");
    assert!(
        on_a.wait_closed(EVENT_WAIT).await,
        "A did not close alice's socket"
    );
    assert_eq!(
        watcher.expect_changed(EVENT_WAIT).await,
        who.status6(OFFLINE, ""),
        "the offline event on B after A stopped"
    );
    println!(
        "after SIGTERM of A, B published alice offline within {:.0} ms",
        ms(stopped.elapsed())
    );
    status_by(
        &c[1],
        &alice.user_id,
        "offline",
        Instant::now() + EVENT_WAIT,
    )
    .await;
    watcher.expect_no_changed(GRACE).await;
}

// A paused process (SIGSTOP) stands for a hung one, a long VM stall or a network
// partition: its sockets stay open while it stops beating.

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_leader_does_not_stop_the_reaping() {
    const DEAD_SECS: u64 = 3;
    let dead = DEAD_SECS.to_string();
    // c[0] starts alone first, so it takes the leader lease.
    let c = Cluster::start(3, &[("INSTANCE_DEAD_SECS", &dead)]).await;
    let (alice, _who) = alice_on(&c).await;
    let _on_a = Ddp::connect_resume(&c[0], &alice.token).await;
    status_by(&c[1], &alice.user_id, "online", Instant::now() + EVENT_WAIT).await;
    // A temporary status of bob's falls due while the leader hangs: the next leader
    // applies it, and the old one, once resumed, must not apply it again.
    let bob = c[1].create_user("bob", "bob-pass-1", &["user"]).await;
    wait_token_works(&c[2], &bob, REPLICATION_WAIT).await;
    let bob_who = Who::created(&bob.user_id, "bob", &["user"]);
    let mut watcher = status_watcher(&c[2]).await;
    settle(&mut [&mut watcher], QUIET).await;
    let at = iso_from_now(2);
    set_ok(
        &c[1],
        &bob,
        json!({"status": "busy", "message": "meeting", "expiresAt": at}),
    )
    .await;
    assert_eq!(
        watcher.expect_changed(EVENT_WAIT).await,
        bob_who.status8(BUSY, "meeting", "manual", Some(&at))
    );

    let pid = pid_listening_on(c[0].port());
    signal(pid, "STOP");
    let paused = Instant::now();
    let bound = Duration::from_secs(DEAD_SECS + 2 * HEARTBEAT_SECS);
    let result = tokio::time::timeout(
        bound,
        status_by(&c[1], &alice.user_id, "offline", paused + 2 * bound),
    )
    .await;
    let took = paused.elapsed();
    let expired = status_by(&c[2], &bob.user_id, "online", paused + bound).await;
    signal(pid, "CONT");
    assert!(
        result.is_ok(),
        "alice, connected to the hung leader, still shows online after {bound:?}"
    );
    println!(
        "with the leader hung, its user went offline on B after {:.1} s (bound {} s)",
        took.as_secs_f64(),
        bound.as_secs()
    );
    assert!(expired.get("statusExpiresAt").is_none(), "{expired}");

    // The old leader resumes; whatever it had pending, bob's status expired once.
    let frames = watcher.drain_changed(Duration::from_secs(3)).await;
    let restored = bob_who.status6(ONLINE, "");
    assert_eq!(
        frames.iter().filter(|f| *f == &restored).count(),
        1,
        "bob's expiry on C's subscriber: {frames:?}"
    );
    let admin = c[2].admin().await;
    let (code, _, body) = c[2]
        .get(
            &format!("users.statusHistory?userId={}&count=50", bob.user_id),
            Some(&admin),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let expiries = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["source"] == "expiry")
        .count();
    assert_eq!(expiries, 1, "exactly one expiry entry: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_reaped_from_a_paused_instance_come_back_when_it_resumes() {
    const DEAD_SECS: u64 = 3;
    let dead = DEAD_SECS.to_string();
    let c = Cluster::start(2, &[("INSTANCE_DEAD_SECS", &dead)]).await;
    let (alice, _who) = alice_on(&c).await;
    // On B, which is not the leader: A reaps B's connections while B is paused.
    let mut on_b = Ddp::connect_resume(&c[1], &alice.token).await;
    status_by(&c[0], &alice.user_id, "online", Instant::now() + EVENT_WAIT).await;
    let pid = pid_listening_on(c[1].port());
    signal(pid, "STOP");
    let bound = Duration::from_secs(DEAD_SECS + 2 * HEARTBEAT_SECS);
    status_by(&c[0], &alice.user_id, "offline", Instant::now() + bound).await;
    signal(pid, "CONT");
    let resumed = Instant::now();

    // B is back and alice's socket on B never closed: she must show online again,
    // without her client having to do anything.
    assert!(!on_b.wait_closed(Duration::from_millis(200)).await);
    let deadline = Instant::now() + bound;
    for srv in &c.servers {
        status_by(srv, &alice.user_id, "online", deadline).await;
    }
    println!(
        "alice showed online everywhere again {:.1} s after B resumed",
        resumed.elapsed().as_secs_f64()
    );
    // And she stays so (B is alive again: nobody reaps her connection anymore).
    tokio::time::sleep(Duration::from_secs(DEAD_SECS + 1)).await;
    for srv in &c.servers {
        let body = srv.status_of(&alice.user_id).await;
        assert_eq!(body["status"], "online", "{}: {body}", srv.base_url());
    }
    // Her connection still works, and closing it takes her offline everywhere.
    on_b.close().await;
    let deadline = Instant::now() + EVENT_WAIT;
    for srv in &c.servers {
        status_by(srv, &alice.user_id, "offline", deadline).await;
    }
}

// ------------------------------------------------------------------- first start

#[tokio::test(flavor = "multi_thread")]
async fn instances_started_together_on_an_empty_database_come_up_with_one_admin() {
    let c = Cluster::start_together(3, &[]).await;
    let mut admin_ids = Vec::new();
    for srv in &c.servers {
        wait_health(srv, "healthy", EVENT_WAIT, |code, _| code == 200).await;
        let admin = srv.admin().await;
        admin_ids.push(admin.user_id.clone());
    }
    assert_eq!(
        c.db.query_i64("SELECT COUNT(*) FROM users WHERE kind = 'user'"),
        1,
        "exactly one human user (the admin) in the database"
    );
    assert_eq!(
        c.db.query_i64("SELECT COUNT(*) FROM users WHERE username_lower = 'admin'"),
        1
    );
    assert!(
        admin_ids.iter().all(|id| *id == admin_ids[0]),
        "every instance knows the same admin: {admin_ids:?}"
    );
    // And they work as a cluster.
    let (alice, who) = alice_on(&c).await;
    let mut w = status_watcher(&c[2]).await;
    settle(&mut [&mut w], QUIET).await;
    set_ok(&c[0], &alice, json!({"status": "away"})).await;
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        who.status8(AWAY, "", "manual", None)
    );
}

// ---------------------------------------------------------------------- NATS gaps

#[tokio::test(flavor = "multi_thread")]
async fn delivery_resumes_after_nats_restarts_and_changes_made_meanwhile_arrive() {
    let mut c = Cluster::start(2, &[]).await;
    let (alice, who) = alice_on(&c).await;
    let mut wb = status_watcher(&c[1]).await;
    settle(&mut [&mut wb], QUIET).await;

    set_ok(
        &c[0],
        &alice,
        json!({"status": "busy", "message": "before"}),
    )
    .await;
    assert_eq!(
        wb.expect_changed(EVENT_WAIT).await,
        who.status8(BUSY, "before", "manual", None)
    );

    // NATS goes away; both instances notice.
    c.nats.kill();
    for srv in &c.servers {
        wait_health(srv, "without NATS", EVENT_WAIT, |code, body| {
            code == 503 && body["nats"] == false
        })
        .await;
    }

    // A change made while NATS is down is committed to PostgreSQL...
    set_ok(
        &c[0],
        &alice,
        json!({"status": "away", "message": "during"}),
    )
    .await;
    // ...and B cannot know of it yet.
    let on_b = c[1].info_of(&alice.user_id).await;
    assert_eq!(
        (&on_b["status"], &on_b["statusText"]),
        (&json!("busy"), &json!("before")),
        "{on_b}"
    );

    // NATS comes back on the same port: B resyncs from the store and publishes.
    c.nats.start_again().await;
    let back = Instant::now();
    let frame = wb
        .next_changed(NATS_RECOVERY_WAIT)
        .await
        .expect("the change made while NATS was down never reached B's subscriber");
    assert_eq!(frame, who.status8(AWAY, "during", "manual", None));
    println!(
        "the change made while NATS was down reached B {:.1} s after NATS returned",
        back.elapsed().as_secs_f64()
    );
    let on_b = c[1].info_of(&alice.user_id).await;
    assert_eq!(on_b["statusText"], "during", "{on_b}");
    assert_eq!(on_b, c[0].info_of(&alice.user_id).await, "A and B disagree");
    for srv in &c.servers {
        wait_health(srv, "healthy again", NATS_RECOVERY_WAIT, |code, _| {
            code == 200
        })
        .await;
    }

    // Delivery resumes: a change made after the restart reaches B, once.
    set_ok(
        &c[0],
        &alice,
        json!({"status": "online", "message": "after"}),
    )
    .await;
    assert_eq!(
        wb.expect_changed(EVENT_WAIT).await,
        who.status8(ONLINE, "after", "manual", None)
    );
    wb.expect_no_changed(GRACE).await;
    // And the other way round.
    let mut wa = status_watcher(&c[0]).await;
    settle(&mut [&mut wa], QUIET).await;
    set_ok(&c[1], &alice, json!({"status": "busy"})).await;
    assert_eq!(
        wa.expect_changed(EVENT_WAIT).await,
        who.status8(BUSY, "after", "manual", None)
    );
    assert_eq!(
        wb.expect_changed(EVENT_WAIT).await,
        who.status8(BUSY, "after", "manual", None)
    );
    no_more_frames(&mut [&mut wa, &mut wb], GRACE).await;
    // Nothing acknowledged got lost on the way: both end up with the last change.
    let on_a = c[0].info_of(&alice.user_id).await;
    assert_eq!(
        (&on_a["status"], &on_a["statusText"]),
        (&json!("busy"), &json!("after")),
        "{on_a}"
    );
    assert_eq!(c[1].info_of(&alice.user_id).await, on_a, "A and B disagree");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_a_lost_nats_and_recovers_with_it() {
    let mut c = Cluster::start(2, &[]).await;
    let mut ids = Vec::new();
    for srv in &c.servers {
        let (code, body) = health(srv).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            (
                &body["status"],
                &body["store"],
                &body["nats"],
                &body["success"]
            ),
            (&json!("ok"), &json!(true), &json!(true), &json!(true)),
            "{body}"
        );
        let id = body["instance"].as_str().unwrap_or_default().to_string();
        assert!(!id.is_empty(), "no instance id: {body}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "two instances share an id");

    c.nats.kill();
    for srv in &c.servers {
        let (code, body, took) =
            wait_health(srv, "503 without NATS", EVENT_WAIT, |code, _| code != 200).await;
        assert_eq!(code, 503, "{body}");
        assert_eq!(
            (
                &body["status"],
                &body["store"],
                &body["nats"],
                &body["success"]
            ),
            (
                &json!("unavailable"),
                &json!(true),
                &json!(false),
                &json!(false)
            ),
            "{body}"
        );
        println!("health went 503 {:.0} ms after NATS died", ms(took));
        assert_eq!(metric(srv, "statusd_nats_up").await, Some(0.0));
        assert_eq!(metric(srv, "statusd_store_up").await, Some(1.0));
    }
    // Still 503 a moment later (no flapping while NATS stays down).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for srv in &c.servers {
        let (code, body) = health(srv).await;
        assert_eq!((code, &body["nats"]), (503, &json!(false)), "{body}");
    }

    c.nats.start_again().await;
    for srv in &c.servers {
        let (_, body, took) = wait_health(
            srv,
            "200 after NATS returned",
            NATS_RECOVERY_WAIT,
            |code, _| code == 200,
        )
        .await;
        assert_eq!(
            (&body["status"], &body["store"], &body["nats"]),
            (&json!("ok"), &json!(true), &json!(true)),
            "{body}"
        );
        println!("health back to 200 {:.0} ms after NATS returned", ms(took));
        assert_eq!(metric(srv, "statusd_nats_up").await, Some(1.0));
    }
}

// ------------------------------------------------------------- once cluster-wide

#[tokio::test(flavor = "multi_thread")]
async fn a_status_expires_exactly_once_with_two_instances() {
    let c = Cluster::start(2, &[]).await;
    let (alice, who) = alice_on(&c).await;
    let mut wa = status_watcher(&c[0]).await;
    let mut wb = status_watcher(&c[1]).await;
    settle(&mut [&mut wa, &mut wb], QUIET).await;

    let at = iso_from_now(2);
    let expires = parse_time(&at);
    set_ok(
        &c[0],
        &alice,
        json!({"status": "busy", "message": "meeting", "expiresAt": at}),
    )
    .await;
    let set = who.status8(BUSY, "meeting", "manual", Some(&at));
    assert_eq!(wa.expect_changed(EVENT_WAIT).await, set);
    assert_eq!(wb.expect_changed(EVENT_WAIT).await, set);

    // One expiry event per subscriber, on both instances, and nothing after it.
    let wait = Duration::from_secs(3) + EVENT_WAIT;
    let restored = who.status6(ONLINE, "");
    assert_eq!(wa.expect_changed(wait).await, restored);
    assert_eq!(wb.expect_changed(wait).await, restored);
    assert!(
        chrono::Utc::now() >= expires,
        "the status reverted before its expiresAt"
    );
    no_more_frames(&mut [&mut wa, &mut wb], Duration::from_millis(1500)).await;

    // Exactly one expiry entry in the (shared) history, as seen from either instance.
    for srv in &c.servers {
        let admin = srv.admin().await;
        let (code, _, body) = srv
            .get(
                &format!("users.statusHistory?userId={}&count=50", alice.user_id),
                Some(&admin),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let items = body["items"].as_array().expect("items");
        let expiries: Vec<&Value> = items.iter().filter(|e| e["source"] == "expiry").collect();
        assert_eq!(
            expiries.len(),
            1,
            "{}: expected exactly one expiry entry: {body}",
            srv.base_url()
        );
        assert_eq!(
            (&expiries[0]["previousStatus"], &expiries[0]["status"]),
            (&json!("busy"), &json!("online")),
            "{body}"
        );
        let st = srv.status_of(&alice.user_id).await;
        assert_eq!(st["status"], "online", "{st}");
        assert!(st.get("statusExpiresAt").is_none(), "{st}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_do_not_disturb_window_opens_and_closes_exactly_once_with_two_instances() {
    let c = Cluster::start(2, &[]).await;
    let (alice, who) = alice_on(&c).await;
    let mut conn = Ddp::connect(&c[0]).await;
    conn.login_resume(&alice.token).await.unwrap();
    let mut wa = status_watcher(&c[0]).await;
    let mut wb = status_watcher(&c[1]).await;
    c[0].wait_status(&alice.user_id, "online", EVENT_WAIT).await;
    settle(&mut [&mut wa, &mut wb], QUIET).await;

    // A window from 2 s to 4 s from now, every day, in UTC.
    let hms = |secs: i64| {
        let t = chrono::Utc::now() + chrono::Duration::seconds(secs);
        t.format("%H:%M:%S").to_string()
    };
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let r = c[1]
        .post_json(
            "statusd.dnd.set",
            Some(&alice),
            json!({"timeZone": "UTC", "text": "quiet",
                   "ranges": [{"days": days, "start": hms(2), "end": hms(4)}]}),
        )
        .await;
    assert_eq!(r.0.as_u16(), 200, "{}", r.2);
    let wait = Duration::from_secs(3) + EVENT_WAIT;
    let opened = who.status8(BUSY, "quiet", "internal", None);
    assert_eq!(wa.expect_changed(wait).await, opened);
    assert_eq!(wb.expect_changed(wait).await, opened);
    let closed = who.status6(ONLINE, "");
    assert_eq!(wa.expect_changed(wait).await, closed);
    assert_eq!(wb.expect_changed(wait).await, closed);
    no_more_frames(&mut [&mut wa, &mut wb], Duration::from_millis(1500)).await;

    // One opening and one closing in the shared history.
    let admin = c[1].admin().await;
    let (code, _, body) = c[1]
        .get(
            &format!("users.statusHistory?userId={}&count=50", alice.user_id),
            Some(&admin),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let internal = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["source"] == "internal")
        .count();
    assert_eq!(internal, 2, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_calendar_event_fires_once_with_two_instances() {
    let c = Cluster::start(2, &[]).await;
    let (alice, _who) = alice_on(&c).await;
    let start = iso_from_now(2);
    let end = iso_from_now(4);
    let (code, _, body) = c[1]
        .post_json(
            "calendar-events.create",
            Some(&alice),
            json!({"startTime": start, "endTime": end, "subject": "Standup", "description": ""}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let claim_id = format!("calendar:{}", body["id"].as_str().expect("id"));

    // Busy on both instances from the start, back after the end.
    let deadline = Instant::now() + Duration::from_secs(4);
    for srv in &c.servers {
        loop {
            let (_, _, cl) = srv.get("statusd.claims.get", Some(&alice)).await;
            if cl["statusId"] == json!(claim_id) {
                assert_eq!(cl["statusDefault"], "busy", "{cl}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never busy on {}: {cl}",
                srv.base_url()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep_until((Instant::now() + Duration::from_secs(3)).into()).await;
    for srv in &c.servers {
        let (_, _, cl) = srv.get("statusd.claims.get", Some(&alice)).await;
        assert_eq!(cl["statusDefault"], "online", "{cl}");
        assert!(cl.get("statusId").is_none(), "{cl}");
    }

    // One claim, one end, in the shared history, whichever instance is asked.
    for srv in &c.servers {
        let admin = srv.admin().await;
        let (code, _, body) = srv
            .get(
                &format!("users.statusHistory?userId={}&count=50", alice.user_id),
                Some(&admin),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let items = body["items"].as_array().expect("items");
        let claims = items.iter().filter(|e| e["source"] == "external").count();
        let ends = items.iter().filter(|e| e["source"] == "expiry").count();
        assert_eq!((claims, ends), (1, 1), "{body}");
    }
}

/// An ICS feed on a free port that counts the requests it answers.
async fn counted_feed(ics: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/team.ics", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (counter, ics) = (counter.clone(), ics.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{ics}",
                    ics.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

/// A connected calendar is fetched by the leader only (each second here, not twice a
/// second), and its event makes its owner busy once cluster-wide.
#[tokio::test(flavor = "multi_thread")]
async fn a_connected_calendar_is_synced_by_the_leader_only() {
    use std::sync::atomic::Ordering;
    let c = Cluster::start(
        2,
        &[
            ("CALENDAR_SYNC_SECS", "1"),
            ("CALENDAR_ALLOW_PRIVATE", "true"),
        ],
    )
    .await;
    let (alice, _who) = alice_on(&c).await;
    let utc = |secs: i64| {
        let t = chrono::Utc::now() + chrono::Duration::seconds(secs);
        t.format("%Y%m%dT%H%M%SZ").to_string()
    };
    let ics = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:c@test\r\nSUMMARY:Sync\r\n\
         DTSTART:{}\r\nDTEND:{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        utc(3),
        utc(5)
    );
    let (url, hits) = counted_feed(ics).await;
    let (code, _, body) = c[1]
        .post_json(
            "statusd.calendars.connect",
            Some(&alice),
            json!({"url": url}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let counted_from = hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let fetched = hits.load(Ordering::SeqCst) - counted_from;
    println!("cluster: {fetched} fetches of a connected calendar in 5 s (sync every second)");
    // One instance, once a second: about 5; both instances would make about 10.
    assert!((2..=7).contains(&fetched), "{fetched} fetches in 5 s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for srv in &c.servers {
        let admin = srv.admin().await;
        let (code, _, body) = srv
            .get(
                &format!("users.statusHistory?userId={}&count=50", alice.user_id),
                Some(&admin),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let items = body["items"].as_array().expect("items");
        let claims = items.iter().filter(|e| e["source"] == "external").count();
        let ends = items.iter().filter(|e| e["source"] == "expiry").count();
        assert_eq!((claims, ends), (1, 1), "{body}");
    }
}

// -------------------------------------------------------------- store unavailable

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_database_yields_503_json_and_unhealthy_never_a_hang() {
    let c = Cluster::start(1, &[]).await;
    let a = &c[0];
    let alice = a.create_user("alice", ALICE_PASS, &["user"]).await;
    set_ok(a, &alice, json!({"status": "busy"})).await;
    let admin = a.admin().await;

    // The database vanishes under the running instance.
    c.db.drop_now();

    let set_body = serde_json::to_vec(&json!({"status": "away"})).unwrap();
    for i in 0..3 {
        let started = Instant::now();
        let (code, headers, text) = tokio::time::timeout(
            Duration::from_secs(15),
            a.request_text(
                Method::POST,
                "users.setStatus",
                Some(&alice),
                &[("Content-Type", "application/json")],
                Some(set_body.clone()),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("setStatus #{i} hung without its database"));
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("setStatus #{i}: not JSON ({e}): {text}"));
        assert_eq!(code.as_u16(), 503, "setStatus #{i}: {body}");
        assert_eq!(body["success"], false, "{body}");
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ct.starts_with("application/json"), "{ct:?}");
        println!(
            "setStatus #{i} without a database: 503 in {:.0} ms: {body}",
            ms(started.elapsed())
        );
    }

    let (code, body, _) = wait_health(a, "503 without its store", EVENT_WAIT, |code, body| {
        code == 503 && body["store"] == false
    })
    .await;
    assert_eq!(
        (&body["status"], &body["nats"], &body["success"]),
        (&json!("unavailable"), &json!(true), &json!(false)),
        "{code} {body}"
    );
    assert_eq!(metric(a, "statusd_store_up").await, Some(0.0));
    assert_eq!(metric(a, "statusd_nats_up").await, Some(1.0));

    // Other routes: JSON, and no 5xx but 503.
    let routes: Vec<(Method, String, Option<Session>, Option<Value>)> = vec![
        (
            Method::GET,
            format!("users.getStatus?userId={}", alice.user_id),
            Some(admin.clone()),
            None,
        ),
        (
            Method::GET,
            format!("users.statusHistory?userId={}", alice.user_id),
            Some(admin.clone()),
            None,
        ),
        (
            Method::POST,
            "login".to_string(),
            None,
            Some(json!({"user": "alice", "password": ALICE_PASS})),
        ),
        (
            Method::POST,
            "users.setStatus".to_string(),
            Some(admin.clone()),
            Some(json!({"message": "no store"})),
        ),
    ];
    for (method, path, session, body) in routes {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        let (code, _, text) = tokio::time::timeout(
            Duration::from_secs(15),
            a.request_text(
                method.clone(),
                &path,
                session.as_ref(),
                &[("Content-Type", "application/json")],
                bytes,
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("{method} {path} hung without its database"));
        assert!(
            !code.is_server_error() || code.as_u16() == 503,
            "{method} {path} -> {code}: {text}"
        );
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("{method} {path} -> {code}: not JSON ({e}): {text}"));
        println!("{method} {path} without a database -> {code}");
    }
}

// ------------------------------------------------------------ a hostile NATS client
//
// Anyone holding the NATS credentials (another application on the same NATS account,
// a leaked password) can subscribe to the cluster's subject and publish on it. They
// must learn no secret there and be able to change nothing.

/// The value of the sample `series` (name and labels as exposed) on `srv`'s /metrics.
async fn metric(srv: &Server, series: &str) -> Option<f64> {
    let (status, _, text) = srv
        .request_text(reqwest::Method::GET, "/metrics", None, &[], None)
        .await;
    assert_eq!(status, 200, "/metrics: {text}");
    text.lines().find_map(|l| {
        let v = l.strip_prefix(series)?.strip_prefix(' ')?;
        Some(v.trim().parse().expect("a sample value"))
    })
}

/// `statusd_cluster_messages_rejected_total{reason}` on `srv` (0 when never counted).
async fn rejected(srv: &Server, reason: &str) -> u64 {
    let (status, _, text) = srv
        .request_text(reqwest::Method::GET, "/metrics", None, &[], None)
        .await;
    assert_eq!(status, 200, "/metrics: {text}");
    let line = format!("statusd_cluster_messages_rejected_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .map(|v| v.trim().parse().expect("a counter value"))
        .unwrap_or(0)
}

/// Polls until `srv` has rejected at least `want` messages for `reason`.
async fn wait_rejected(srv: &Server, reason: &str, want: u64) {
    let deadline = Instant::now() + REPLICATION_WAIT;
    loop {
        let n = rejected(srv, reason).await;
        if n >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {n} messages rejected as {reason}, want {want}",
            srv.base_url()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Meteor's stored form of a login token: base64(sha256(token)).
fn token_hash(token: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(token.as_bytes()))
}

/// A user record as the instances' messages carry one (the model's field names).
fn user_record(id: &str, username: &str, roles: &[&str], status: &str) -> Value {
    json!({
        "id": id, "username": username, "name": username, "emails": [],
        "password_hash": null, "roles": roles, "active": true, "kind": "user",
        "status": status, "status_default": status, "status_connection": "offline",
        "status_text": "", "status_source": null, "status_expires_at": null,
        "previous_state": null, "utc_offset": 0.0,
        "created_at": "2020-01-01T00:00:00Z", "updated_at": "2099-01-01T00:00:00Z",
        "last_login": null
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_or_replayed_cluster_message_changes_nothing_and_is_counted() {
    let c = Cluster::start(2, &[]).await;
    let (alice, _) = alice_on(&c).await;
    let admin = c[0].admin().await;
    let nats = c.nats.client().await;
    let subject = c.subject();

    // A genuine message, captured by a plain subscriber, to be replayed later.
    let mut sub = nats.subscribe(subject.clone()).await.expect("subscribe");
    nats.flush().await.expect("flush");
    set_ok(&c[0], &alice, json!({"status": "busy"})).await;
    status_by(
        &c[1],
        &alice.user_id,
        "busy",
        Instant::now() + REPLICATION_WAIT,
    )
    .await;
    let captured = tokio::time::timeout(REPLICATION_WAIT, sub.next())
        .await
        .expect("a message on the subject")
        .expect("the subscription is open");
    set_ok(&c[0], &alice, json!({"status": "away"})).await;
    status_by(
        &c[1],
        &alice.user_id,
        "away",
        Instant::now() + REPLICATION_WAIT,
    )
    .await;

    // 1. A token record for the admin, as instances used to accept it (unsigned).
    let stolen = "forged-admin-token-0123456789abcdef";
    let hashed = token_hash(stolen);
    let token_record = json!({"origin": "attacker", "changes": [{"Token": [hashed, {
        "hashed": hashed, "user_id": admin.user_id, "kind": "Login",
        "created_at": chrono::Utc::now().to_rfc3339()
    }]}]});
    // 2. Alice made an admin, in today's format, unsigned.
    let now = chrono::Utc::now().timestamp_millis();
    let promote = json!({"origin": "attacker", "seq": 1, "sent_at": now, "changes": [
        {"User": [alice.user_id, user_record(&alice.user_id, "alice", &["user", "admin"], "online")]},
        {"Setting": ["Accounts_AllowUserStatusMessageChange", false]}
    ]});
    // 3. The same with a seal made up (the right format, a key the cluster does not hold).
    let mut forged_seal = vec![1u8];
    forged_seal.extend(token_hash("a guessed key").as_bytes()[..32].iter());
    forged_seal.extend(serde_json::to_vec(&promote).unwrap());
    for payload in [
        serde_json::to_vec(&token_record).unwrap(),
        serde_json::to_vec(&promote).unwrap(),
        forged_seal,
    ] {
        nats.publish(subject.clone(), payload.into())
            .await
            .expect("publish");
    }
    // 4. The genuine message from before, published again.
    nats.publish(subject.clone(), captured.payload.clone())
        .await
        .expect("publish");
    nats.flush().await.expect("flush");

    for srv in &c.servers {
        wait_rejected(srv, "unsealed", 2).await;
        wait_rejected(srv, "bad_seal", 1).await;
    }
    // The replay is one instance's own message to itself, skipped there; the other
    // drops it.
    let deadline = Instant::now() + REPLICATION_WAIT;
    while rejected(&c[0], "replayed").await + rejected(&c[1], "replayed").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the replayed message was not rejected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for srv in &c.servers {
        let (status, _, body) = srv.get("me", Some(&admin.with_token(stolen))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "forged token: {body}");
        let info = srv.info_of(&alice.user_id).await;
        assert_eq!(info["roles"], json!(["user"]), "{info}");
        let status = srv.status_of(&alice.user_id).await;
        assert_eq!(
            status["status"], "away",
            "the replay undid a change: {status}"
        );
        let reply = srv
            .set_status(
                &alice,
                json!({"status": "away", "message": "still allowed"}),
            )
            .await;
        assert_reply(&reply, 200, json!({"success": true}));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_password_or_token_hash_travels_on_the_bus() {
    let c = Cluster::start(2, &[]).await;
    let nats = c.nats.client().await;
    let mut sub = nats
        .subscribe(format!("{}.>", c.prefix))
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");

    // Every kind of credential change, each made on one instance and in force on the
    // other: a user with a password and a login token, a new password, a personal
    // access token, a logout.
    let (alice, _) = alice_on(&c).await;
    let admin = c[0].admin().await;
    let reply = c[0]
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": alice.user_id, "data": {"password": "alice-pass-2"}}),
        )
        .await;
    assert_status(&reply, 200);
    let deadline = Instant::now() + REPLICATION_WAIT;
    let alice2 = loop {
        let (status, _, body) = c[1]
            .post_json(
                "login",
                None,
                json!({"user": "alice", "password": "alice-pass-2"}),
            )
            .await;
        if status == StatusCode::OK {
            break session_from_login(&body);
        }
        assert!(Instant::now() < deadline, "the new password on B: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, _, body) = c[1]
        .post_json(
            "login",
            None,
            json!({"user": "alice", "password": ALICE_PASS}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old password on B: {body}"
    );
    wait_token_works(&c[0], &alice2, REPLICATION_WAIT).await;
    let r = c[1]
        .post_json(
            "users.generatePersonalAccessToken",
            Some(&alice2),
            json!({"tokenName": "ci"}),
        )
        .await;
    assert_status(&r, 200);
    let pat = alice2.with_token(r.2["token"].as_str().expect("a token"));
    wait_token_works(&c[0], &pat, REPLICATION_WAIT).await;
    let hashes_in_store = c.db.query_texts("SELECT password_hash FROM users");
    let token_hashes_in_store = c.db.query_texts("SELECT hashed FROM tokens");
    let (status, _, body) = c[1].post_json("logout", Some(&alice2), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = Instant::now() + REPLICATION_WAIT;
    loop {
        let (status, _, _) = c[0].get("me", Some(&alice2)).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a logout on B is not in force on A"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut payloads = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(GRACE, sub.next()).await {
        payloads.push(String::from_utf8_lossy(&msg.payload).into_owned());
    }
    assert!(
        payloads.iter().any(|p| p.contains("alice")),
        "the subscriber heard the cluster's messages: {payloads:?}"
    );
    let mut secrets: Vec<String> = [&alice, &alice2, &pat]
        .iter()
        .flat_map(|s| [s.token.clone(), token_hash(&s.token)])
        .collect();
    secrets.extend(hashes_in_store);
    secrets.extend(token_hashes_in_store);
    secrets.extend(["$2a$", "$2b$", "$2y$"].map(String::from));
    assert!(secrets.len() > 10, "{secrets:?}");
    for p in &payloads {
        for s in &secrets {
            assert!(!p.contains(s.as_str()), "{s} travelled on the bus: {p}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_mode_refuses_to_start_without_a_good_cluster_secret() {
    let c = Cluster::start(0, &[]).await;
    let base = Options::default()
        .env("DATABASE_URL", &c.db.url)
        .env("NATS_URL", &c.nats.url())
        .env("NATS_SUBJECT_PREFIX", &c.prefix);
    for (opts, want) in [
        (base.clone(), "CLUSTER_SECRET: required in cluster mode"),
        (
            base.clone().env("CLUSTER_SECRET", "short-Secret-42"),
            "CLUSTER_SECRET: must be at least 32 characters",
        ),
        (
            base.clone()
                .env("CLUSTER_SECRET", cluster::CLUSTER_SECRET)
                .env("CLUSTER_SECRET_PREVIOUS", "short-Secret-42"),
            "CLUSTER_SECRET_PREVIOUS: must be at least 32 characters",
        ),
    ] {
        let (status, output) = Server::run_to_exit(opts, Duration::from_secs(15)).await;
        assert!(status.is_some_and(|s| !s.success()), "{status:?}: {output}");
        let line = output
            .lines()
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no line {want:?} in:\n{output}"));
        assert!(line.len() < 200, "one line: {line}");
        assert!(!output.contains("short-Secret-42"), "{output}");
        assert!(!output.contains(c.nats.password()), "{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_accepts_messages_sealed_with_the_previous_one() {
    const NEW: &str = "the-rotated-cluster-secret-0123456789";
    let mut c = Cluster::start(1, &[]).await;
    let rotated = c
        .options()
        .env("CLUSTER_SECRET", NEW)
        .env("CLUSTER_SECRET_PREVIOUS", cluster::CLUSTER_SECRET);
    c.servers.push(Server::start_opts(rotated.clone()).await);
    let (alice, _) = alice_on(&c).await;

    // Sealed with the old secret, accepted by the rotated instance.
    set_ok(&c[0], &alice, json!({"status": "busy"})).await;
    status_by(
        &c[1],
        &alice.user_id,
        "busy",
        Instant::now() + REPLICATION_WAIT,
    )
    .await;
    assert_eq!(rejected(&c[1], "bad_seal").await, 0);

    // The rotated instance seals with the new one, which the old instance does not know
    // yet: it drops the message (and picks the change up from the store when it is
    // restarted with the new secret).
    set_ok(&c[1], &alice, json!({"status": "away"})).await;
    wait_rejected(&c[0], "bad_seal", 1).await;
    assert_eq!(c[0].status_of(&alice.user_id).await["status"], "busy");

    // Rotated too: both ways work again.
    *c[0].options_mut() = rotated;
    c[0].restart().await;
    status_by(
        &c[0],
        &alice.user_id,
        "away",
        Instant::now() + REPLICATION_WAIT,
    )
    .await;
    let alice = c[0].login("alice", ALICE_PASS).await;
    wait_token_works(&c[1], &alice, REPLICATION_WAIT).await;
    set_ok(&c[1], &alice, json!({"status": "busy"})).await;
    status_by(
        &c[0],
        &alice.user_id,
        "busy",
        Instant::now() + REPLICATION_WAIT,
    )
    .await;
    set_ok(&c[0], &alice, json!({"status": "online"})).await;
    status_by(
        &c[1],
        &alice.user_id,
        "online",
        Instant::now() + REPLICATION_WAIT,
    )
    .await;
}

/// Issue 17: an instance whose NATS credentials are refused says so in its log, naming
/// the NATS server without the user or password, once (not at every retry), and
/// reports NATS down in `/api/health`; its wrong password appears nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_nats_password_is_logged_naming_the_server_but_not_the_password() {
    const WRONG: &str = "Wrong-Nats-Pass-5309";
    let c = Cluster::start(0, &[]).await;
    let url = format!("nats://statusd:{WRONG}@{}", c.nats.addr());
    let srv = Server::start_opts(c.options().env("NATS_URL", &url)).await;
    let want = format!(
        "NATS: cannot connect to {}: authorization violation (the server refused the \
         credentials: check the user and password or token in NATS_URL, NATS_CREDS, \
         NATS_NKEY_FILE); retrying",
        c.nats.addr()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !srv.log().contains(&want) {
        assert!(Instant::now() < deadline, "no {want:?} in:\n{}", srv.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = srv
        .log()
        .lines()
        .find(|l| l.contains(&want))
        .unwrap()
        .to_string();
    assert!(line.contains(" WARN "), "{line}");
    wait_health(&srv, "NATS down", EVENT_WAIT, |code, _| code == 503).await;
    // Retries go on (the client backs off) without another warning.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = srv.log();
    assert_eq!(log.matches(&want).count(), 1, "{log}");
    assert!(!log.contains(WRONG), "the password is in the log:\n{log}");
    assert!(!log.contains("statusd:Wrong"), "{log}");
}

/// A cluster of two on `nats` (reached as `env` says): both report NATS up, and a
/// status change made on one shows on the other. Then a third instance with only
/// `without` (the same URL, the credentials left out) is refused, and says so.
async fn status_crosses(nats: cluster::Nats, env: &[(&str, &str)], without: &[(&str, &str)]) {
    let addr = nats.addr();
    let c = Cluster::start_on(nats, 2, env).await;
    for srv in &c.servers {
        wait_health(srv, "NATS up", EVENT_WAIT, |code, body| {
            code == 200 && body["nats"] == true
        })
        .await;
    }
    let (alice, _) = alice_on(&c).await;
    set_ok(
        &c[0],
        &alice,
        json!({"status": "busy", "message": "over NATS"}),
    )
    .await;
    let body = status_by(
        &c[1],
        &alice.user_id,
        "busy",
        Instant::now() + REPLICATION_WAIT,
    )
    .await;
    assert_eq!(body["status"], "busy", "{body}");
    for srv in &c.servers {
        let log = srv.log();
        assert!(!log.contains("cannot connect"), "{log}");
    }
    let mut refused = Options::default()
        .env("DATABASE_URL", &c.db.url)
        .env("NATS_SUBJECT_PREFIX", &c.prefix)
        .env("CLUSTER_SECRET", cluster::CLUSTER_SECRET);
    for (k, v) in without {
        refused = refused.env(k, v);
    }
    let srv = Server::start_opts(refused).await;
    let want = format!("NATS: cannot connect to {addr}: ");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !srv.log().contains(&want) {
        assert!(Instant::now() < deadline, "no {want:?} in:\n{}", srv.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = health(&srv).await;
    assert_eq!((code, &body["nats"]), (503, &json!(false)), "{body}");
}

/// Issue 17: `NATS_NKEY_FILE`: a nats-server that admits one nkey user and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn instances_authenticate_to_nats_with_an_nkey_file() {
    let user = nkeys::KeyPair::new_user();
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("statusd.nk");
    std::fs::write(&seed, format!("{}\n", user.seed().unwrap())).unwrap();
    let nats = cluster::Nats::start_with_config(&format!(
        "authorization {{\n  users: [\n    {{ nkey: \"{}\" }}\n  ]\n}}",
        user.public_key()
    ))
    .await;
    let url = format!("nats://{}", nats.addr());
    status_crosses(
        nats,
        &[
            ("NATS_URL", &url),
            ("NATS_NKEY_FILE", seed.to_str().unwrap()),
        ],
        &[("NATS_URL", &url)],
    )
    .await;
}

/// Issue 17: `NATS_CREDS`: nats-server in operator mode (an operator, an account and a
/// user, their JWTs made and signed here; the account preloaded in a memory resolver),
/// and a credentials file of the user's JWT and seed.
#[tokio::test(flavor = "multi_thread")]
async fn instances_authenticate_to_nats_with_a_credentials_file() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let op_jwt = cluster::nats_jwt(
        &operator,
        &operator.public_key(),
        "statusd-test-operator",
        json!({"type": "operator", "version": 2}),
    );
    let acct_jwt = cluster::nats_jwt(
        &operator,
        &account.public_key(),
        "statusd-test-account",
        json!({
            "limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                       "wildcards": true, "conn": -1, "leaf": -1},
            "default_permissions": {"pub": {}, "sub": {}},
            "type": "account", "version": 2
        }),
    );
    let user_jwt = cluster::nats_jwt(
        &account,
        &user.public_key(),
        "statusd",
        json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
               "type": "user", "version": 2}),
    );
    let dir = tempfile::tempdir().unwrap();
    let op_file = dir.path().join("operator.jwt");
    std::fs::write(&op_file, &op_jwt).unwrap();
    let creds = dir.path().join("statusd.creds");
    std::fs::write(
        &creds,
        cluster::nats_creds(&user_jwt, &user.seed().unwrap()),
    )
    .unwrap();
    let nats = cluster::Nats::start_with_config(&format!(
        "operator: \"{}\"\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{}\"\n}}",
        op_file.display(),
        account.public_key(),
        acct_jwt
    ))
    .await;
    let url = format!("nats://{}", nats.addr());
    status_crosses(
        nats,
        &[("NATS_URL", &url), ("NATS_CREDS", creds.to_str().unwrap())],
        &[("NATS_URL", &url)],
    )
    .await;
}

/// Issue 17: `NATS_TLS_CA`, `NATS_TLS_CERT`, `NATS_TLS_KEY`: a nats-server that speaks
/// only TLS with a certificate of a CA made here by openssl, and requires a client
/// certificate of the same CA (`verify: true`).
#[tokio::test(flavor = "multi_thread")]
async fn instances_reach_nats_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = cluster::TlsFiles::make(dir.path());
    let nats = cluster::Nats::start_with_config(&format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n  timeout: 5\n}}",
        tls.server_cert.display(),
        tls.server_key.display(),
        tls.ca.display()
    ))
    .await;
    let url = format!("tls://{}", nats.addr());
    status_crosses(
        nats,
        &[
            ("NATS_URL", &url),
            ("NATS_TLS_CA", tls.ca.to_str().unwrap()),
            ("NATS_TLS_CERT", tls.client_cert.to_str().unwrap()),
            ("NATS_TLS_KEY", tls.client_key.to_str().unwrap()),
        ],
        // The CA but no client certificate.
        &[
            ("NATS_URL", &url),
            ("NATS_TLS_CA", tls.ca.to_str().unwrap()),
        ],
    )
    .await;
}

// ----------------------------------------------------------- notices (issue 16)

/// Subscribes `c` to `name` / `key`; asserts `ready`.
async fn sub(c: &mut Ddp, id: &str, name: &str, key: String) {
    let v = c.sub(id, name, json!([key, false])).await;
    assert_eq!(v, json!({"msg": "ready", "subs": [id]}), "{name} {key}");
}

/// A custom status created, a user renamed and a user's own record changed on A reach
/// subscribers on B, in the frames Rocket.Chat sends (tests/api/ddp_notify.rs has
/// the upstream files); a change another process commits to the shared database
/// reaches the subscribers of both instances.
#[tokio::test(flavor = "multi_thread")]
async fn notices_made_on_one_instance_reach_subscribers_on_another() {
    let c = Cluster::start(2, &[]).await;
    let (a, b) = (&c[0], &c[1]);
    let admin = a.admin().await;
    let bob = a.create_user("bob", "bob-pass-1", &["user"]).await;
    wait_token_works(b, &bob, REPLICATION_WAIT).await;
    let carol = a.create_user_only("carol", "carol-pass-1", &["user"]).await;
    wait_user_known(b, &carol, REPLICATION_WAIT).await;

    let mut wb = Ddp::connect_resume(b, &bob.token).await;
    sub(
        &mut wb,
        "u",
        "stream-notify-logged",
        "updateCustomUserStatus".into(),
    )
    .await;
    sub(
        &mut wb,
        "n",
        "stream-notify-logged",
        "Users:NameChanged".into(),
    )
    .await;
    sub(
        &mut wb,
        "d",
        "stream-notify-user",
        format!("{}/userData", bob.user_id),
    )
    .await;
    let mut wa = Ddp::connect_resume(a, &bob.token).await;
    sub(
        &mut wa,
        "u",
        "stream-notify-logged",
        "updateCustomUserStatus".into(),
    )
    .await;
    settle(&mut [&mut wa, &mut wb], QUIET).await;

    let r = a
        .post_json(
            "custom-user-status.create",
            Some(&admin),
            json!({"name": "Lunch", "statusType": "away"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let id = r.2["customUserStatus"]["_id"].as_str().unwrap().to_string();
    let created = format!(
        r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"updateCustomUserStatus","args":[{{"userStatusData":{{"name":"Lunch","statusType":"away","_id":"{id}"}}}}]}}}}"#
    );
    assert_eq!(wb.expect_changed(EVENT_WAIT).await, created, "on B");
    assert_eq!(wa.expect_changed(EVENT_WAIT).await, created, "on A");

    let r = a
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": carol, "data": {"username": "carol2"}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(
        wb.expect_changed(EVENT_WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"Users:NameChanged","args":[{{"_id":"{carol}","name":"carol Name","username":"carol2"}}]}}}}"#
        )
    );

    let r = a
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": bob.user_id, "data": {"name": "Bob B"}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(
        wb.expect_changed(EVENT_WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{{"eventName":"{u}/userData","args":[{{"id":"{u}","diff":{{"name":"Bob B"}},"type":"updated"}}]}}}}"#,
            u = bob.user_id
        )
    );

    // Committed by another process (as the admin CLI does): every instance reloads
    // and announces it.
    let (url, sql) = (
        c.db.url.clone(),
        format!(
            "BEGIN; UPDATE custom_statuses SET name = 'Long lunch' WHERE id = '{id}'; \
             SELECT pg_notify('statusd_changed', 'test'); COMMIT"
        ),
    );
    tokio::task::spawn_blocking(move || {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        db.batch_execute(&sql).expect("the outside commit");
    })
    .await
    .unwrap();
    let renamed = format!(
        r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"updateCustomUserStatus","args":[{{"userStatusData":{{"_id":"{id}","name":"Long lunch","statusType":"away","previousName":"Lunch","previousStatusType":"away"}}}}]}}}}"#
    );
    assert_eq!(wa.expect_changed(EVENT_WAIT).await, renamed, "on A");
    assert_eq!(wb.expect_changed(EVENT_WAIT).await, renamed, "on B");
    no_more_frames(&mut [&mut wa, &mut wb], GRACE).await;
}

// -------------------------------------------------------------------- preferences

/// Issue 16.2: preferences set through one instance are read through another (they are
/// part of the user record every instance applies).
#[tokio::test(flavor = "multi_thread")]
async fn preferences_set_on_one_instance_are_read_on_another() {
    let c = Cluster::start(2, &[]).await;
    let (alice, _) = alice_on(&c).await;
    let r = c[0]
        .post_json(
            "users.setPreferences",
            Some(&alice),
            json!({"data": {"enableAutoAway": false, "idleTimeLimit": 42}}),
        )
        .await;
    assert_eq!(r.0.as_u16(), 200, "{}", r.2);
    let want = json!({"enableAutoAway": false, "idleTimeLimit": 42});
    let deadline = Instant::now() + REPLICATION_WAIT;
    loop {
        let r = c[1].get("users.getPreferences", Some(&alice)).await;
        if r.2["preferences"] == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not replicated within {REPLICATION_WAIT:?}: {}",
            r.2
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c[1].get("me", Some(&alice)).await;
    assert_eq!(r.2["settings"]["preferences"], want, "{}", r.2);
}

/// Issue 18.1: a claim set through one instance (its `statusId` and the slot) is read
/// through another, and ended there.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_set_on_one_instance_is_read_and_ended_on_another() {
    let c = Cluster::start(2, &[]).await;
    let (alice, _) = alice_on(&c).await;
    set_ok(&c[0], &alice, json!({"status": "busy", "message": "focus"})).await;
    let r = c[0]
        .post_json(
            "statusd.claims.set",
            Some(&alice),
            json!({"status": "away", "text": "meeting", "statusId": "cal-1"}),
        )
        .await;
    assert_eq!(r.2["outcome"], "waiting", "{}", r.2);
    let deadline = Instant::now() + REPLICATION_WAIT;
    loop {
        let r = c[1].get("statusd.claims.get", Some(&alice)).await;
        if r.2["previousState"]["statusId"] == "cal-1" {
            assert_eq!(r.2["statusSource"], "manual", "{}", r.2);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not replicated within {REPLICATION_WAIT:?}: {}",
            r.2
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c[1]
        .post_json(
            "statusd.claims.end",
            Some(&alice),
            json!({"statusId": "cal-1"}),
        )
        .await;
    assert_eq!(r.2["outcome"], "endedWaiting", "{}", r.2);
}

/// Polls `settings.public` on `srv` until `Presence_broadcast_disabled` reads `want`.
async fn broadcast_disabled_reads(srv: &Server, want: bool) {
    let deadline = Instant::now() + REPLICATION_WAIT;
    loop {
        let (_, _, body) = srv
            .get("settings.public?_id=Presence_broadcast_disabled", None)
            .await;
        if body["settings"][0]["value"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: Presence_broadcast_disabled is still not {want}: {body}",
            srv.base_url()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 16: `Presence_broadcast_disabled` silences the status streams on every
/// instance (each checks its own copy of the setting when it publishes), and
/// `presence.enableBroadcast` on any instance turns them back on everywhere.
#[tokio::test(flavor = "multi_thread")]
async fn presence_broadcast_is_turned_off_and_on_for_the_whole_cluster() {
    let c = Cluster::start(2, &[]).await;
    let (a, b) = (&c[0], &c[1]);
    let (alice, _) = alice_on(&c).await;
    let mut wa = status_watcher(a).await;
    let mut wb = status_watcher(b).await;
    settle(&mut [&mut wa, &mut wb], QUIET).await;

    a.set_setting("Presence_broadcast_disabled", json!(true))
        .await;
    broadcast_disabled_reads(b, true).await;
    // A change made on B is made (and reaches A's model) but broadcast nowhere.
    set_ok(b, &alice, json!({"status": "busy"})).await;
    status_by(a, &alice.user_id, "busy", Instant::now() + REPLICATION_WAIT).await;
    no_more_frames(&mut [&mut wa, &mut wb], GRACE).await;

    let admin_b = b.admin().await;
    assert_reply(
        &b.post_json("presence.enableBroadcast", Some(&admin_b), json!({}))
            .await,
        200,
        json!({"success": true}),
    );
    broadcast_disabled_reads(a, false).await;
    set_ok(a, &alice, json!({"status": "away"})).await;
    for (name, w) in [("A", &mut wa), ("B", &mut wb)] {
        let f: Value = serde_json::from_str(&w.expect_changed(EVENT_WAIT).await).unwrap();
        assert_eq!(
            f["fields"]["args"][0][0],
            json!(alice.user_id),
            "{name}: {f}"
        );
        assert_eq!(f["fields"]["args"][0][2], json!(AWAY), "{name}: {f}");
    }
}

/// Waits for a frame other than `changed` (an `added`, a `removed`) that `pred` accepts.
async fn other_frame(w: &mut Ddp, wait: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(i) = w.others.iter().position(&pred) {
            return Some(w.others.remove(i));
        }
        if Instant::now() >= deadline {
            return None;
        }
        if let Some(t) = w.next_changed(Duration::from_millis(100)).await {
            panic!("unexpected changed frame: {t}");
        }
    }
}

/// Meteor's `activeUsers` publication (issue 16) on one instance follows what another
/// instance commits: a user coming online is `added`, a change is `changed`, going
/// offline is `removed`.
#[tokio::test(flavor = "multi_thread")]
async fn active_users_on_one_instance_follow_changes_made_on_another() {
    let c = Cluster::start(2, &[]).await;
    let (a, b) = (&c[0], &c[1]);
    let (alice, _) = alice_on(&c).await;
    let bob = a.create_user("bob", "bob-pass-1", &["user"]).await;
    wait_user_known(b, &bob.user_id, REPLICATION_WAIT).await;
    let mut w = Ddp::connect_resume(b, &alice.token).await;
    assert_eq!(
        w.sub("u1", "activeUsers", json!([])).await,
        json!({"msg": "ready", "subs": ["u1"]})
    );
    assert!(
        !w.others.iter().any(|f| f["id"] == json!(bob.user_id)),
        "bob is offline: {:?}",
        w.others
    );
    w.others.clear();

    set_ok(a, &bob, json!({"status": "busy", "message": "elsewhere"})).await;
    let added = other_frame(&mut w, EVENT_WAIT, |f| f["id"] == json!(bob.user_id)).await;
    assert_eq!(
        added,
        Some(
            json!({"msg": "added", "collection": "users", "id": bob.user_id, "fields": {
            "name": "bob Name", "status": "busy", "statusText": "elsewhere",
            "username": "bob", "utcOffset": 0}})
        )
    );
    set_ok(a, &bob, json!({"status": "away", "message": ""})).await;
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        format!(
            r#"{{"msg":"changed","collection":"users","id":"{}","fields":{{"status":"away","statusText":""}}}}"#,
            bob.user_id
        )
    );
    set_ok(a, &bob, json!({"status": "offline"})).await;
    let removed = other_frame(&mut w, EVENT_WAIT, |f| f["id"] == json!(bob.user_id)).await;
    assert_eq!(
        removed,
        Some(json!({"msg": "removed", "collection": "users", "id": bob.user_id}))
    );
}

/// `users.info`'s `statusd.lastSeen` of `user_id` as `viewer` on `srv` once it is
/// set, within `REPLICATION_WAIT`.
async fn last_seen_on(srv: &Server, viewer: &Session, user_id: &str) -> Value {
    let deadline = Instant::now() + REPLICATION_WAIT;
    loop {
        let r = srv
            .get(&format!("users.info?userId={user_id}"), Some(viewer))
            .await;
        let seen = r.2["user"]["statusd"]["lastSeen"].clone();
        if seen.is_string() {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no last seen within {REPLICATION_WAIT:?}: {}",
            srv.base_url(),
            r.2
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn last_seen_set_by_a_disconnect_on_one_instance_is_read_on_another() {
    let c = Cluster::start(2, &[]).await;
    let (alice, _) = alice_on(&c).await;
    let bob = c[0].create_user("bob", "bob-pass-1", &["user"]).await;
    wait_token_works(&c[1], &bob, REPLICATION_WAIT).await;

    let on_a = Ddp::connect_resume(&c[0], &alice.token).await;
    status_by(&c[1], &alice.user_id, "online", Instant::now() + EVENT_WAIT).await;
    let before = chrono::Utc::now() - chrono::Duration::milliseconds(5);
    on_a.close().await;
    status_by(
        &c[1],
        &alice.user_id,
        "offline",
        Instant::now() + EVENT_WAIT,
    )
    .await;

    let on_b = last_seen_on(&c[1], &bob, &alice.user_id).await;
    let on_a = last_seen_on(&c[0], &bob, &alice.user_id).await;
    assert_eq!(on_a, on_b);
    let t = parse_time(on_b.as_str().unwrap_or_default());
    assert!(before <= t && t <= chrono::Utc::now(), "{before} <= {t}");
    // The store holds it (a reload from PostgreSQL reads the same).
    assert_eq!(
        c.db.query_i64(&format!(
            "SELECT last_seen FROM users WHERE id = '{}'",
            alice.user_id
        )),
        t.timestamp_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reaper_sets_the_last_seen_of_a_killed_instances_users() {
    const DEAD_SECS: u64 = 4;
    let dead = DEAD_SECS.to_string();
    let mut c = Cluster::start(2, &[("INSTANCE_DEAD_SECS", &dead)]).await;
    let (alice, _) = alice_on(&c).await;
    let bob = c[1].create_user("bob", "bob-pass-1", &["user"]).await;

    let on_a = Ddp::connect_resume(&c[0], &alice.token).await;
    status_by(&c[1], &alice.user_id, "online", Instant::now() + EVENT_WAIT).await;
    let r = c[1]
        .get(&format!("users.info?userId={}", alice.user_id), Some(&bob))
        .await;
    let before = r.2["user"]["statusd"].clone();
    c[0].kill9();
    let killed = chrono::Utc::now();
    let bound = Duration::from_secs(DEAD_SECS + 2 * HEARTBEAT_SECS);
    status_by(&c[1], &alice.user_id, "offline", Instant::now() + bound).await;
    drop(on_a);
    assert_eq!(before, Value::Null, "nothing while she was online");
    let seen = last_seen_on(&c[1], &bob, &alice.user_id).await;
    let t = parse_time(seen.as_str().unwrap_or_default());
    assert!(
        killed <= t && t <= chrono::Utc::now(),
        "reaped at {t}, killed at {killed}"
    );
}

// ------------------------------------------------------------------------ webhooks

/// Webhooks with two instances (issue 18): changes committed on either instance are
/// delivered once each (only the leader sends; each delivery is written once, by the
/// instance that committed the change), with one id each, in order per user.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_deliver_each_change_once_with_two_instances() {
    use common::webhooks::{assert_signed, Receiver};
    let c = Cluster::start(2, &[]).await;
    let rx = Receiver::start().await;
    let admin = c[0].admin().await;
    let (code, _, body) = c[0]
        .post_json(
            "statusd.webhooks.create",
            Some(&admin),
            json!({"url": rx.url(), "events": ["status.changed"]}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let secret = body["secret"].as_str().unwrap().to_string();
    // The endpoint travels to the other instance (without its secret).
    let admin1 = c[1].admin().await;
    let deadline = Instant::now() + REPLICATION_WAIT;
    loop {
        let (_, _, body) = c[1].get("statusd.webhooks.list", Some(&admin1)).await;
        if body["count"] == 1 {
            assert!(!body.to_string().contains(&secret));
            break;
        }
        assert!(Instant::now() < deadline, "c[1] does not list it: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (alice, _) = alice_on(&c).await;
    let bob = c[0].create_user("bob", "bob-pass-12", &["user"]).await;
    wait_token_works(&c[1], &bob, REPLICATION_WAIT).await;
    let mut want: Vec<(String, &str)> = Vec::new();
    for round in 0..10 {
        let status = ["busy", "away"][round % 2];
        set_ok(&c[0], &alice, json!({"status": status})).await;
        set_ok(&c[1], &bob, json!({"status": status})).await;
        want.push((alice.user_id.clone(), status));
        want.push((bob.user_id.clone(), status));
    }
    let got = rx.wait_accepted(20, Duration::from_secs(15)).await;
    tokio::time::sleep(GRACE).await;
    let got_all = rx.got();
    assert_eq!(got_all.len(), 20, "each change delivered once: {got_all:?}");
    for g in &got {
        assert_signed(g, &secret);
    }
    let mut ids: Vec<&str> = got_all.iter().map(|g| g.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    for user in [&alice.user_id, &bob.user_id] {
        let seen: Vec<&str> = got
            .iter()
            .filter(|g| g.body["data"]["userId"] == user.as_str())
            .map(|g| g.body["data"]["status"].as_str().unwrap())
            .collect();
        let sent: Vec<&str> = want
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seen, sent, "order per user");
    }
    // One outbox in the shared database: 20 rows, all delivered.
    assert_eq!(
        c.db.query_i64("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'delivered'"),
        20
    );
}

/// The leader is killed (SIGKILL) while a delivery is being retried: the next leader
/// delivers it, with its id, and no change is lost (issue 18).
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_survive_a_killed_leader() {
    use common::webhooks::Receiver;
    const DEAD_SECS: u64 = 3;
    let dead = DEAD_SECS.to_string();
    // c[0] starts alone first, so it takes the leader lease.
    let mut c = Cluster::start(2, &[("INSTANCE_DEAD_SECS", &dead)]).await;
    let rx = Receiver::start().await;
    rx.answer(500);
    let admin = c[1].admin().await;
    let (code, _, body) = c[1]
        .post_json(
            "statusd.webhooks.create",
            Some(&admin),
            json!({"url": rx.url(), "events": ["status.changed"]}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let bob = c[1].create_user("bob", "bob-pass-12", &["user"]).await;
    set_ok(&c[1], &bob, json!({"status": "busy"})).await;
    set_ok(&c[1], &bob, json!({"status": "away"})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.got().is_empty() {
        assert!(Instant::now() < deadline, "no attempt reached the receiver");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.servers[0].kill9();
    rx.answer(200);
    let killed = Instant::now();
    let got = rx
        .wait_accepted(2, Duration::from_secs(DEAD_SECS + 2 * HEARTBEAT_SECS + 10))
        .await;
    println!(
        "webhooks: the next leader delivered {:.1} s after the leader was killed",
        killed.elapsed().as_secs_f64()
    );
    let statuses: Vec<&str> = got
        .iter()
        .map(|g| g.body["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["busy", "away"]);
    let mut ids: Vec<String> = rx.got().into_iter().map(|g| g.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "two changes, two ids: {:?}", rx.got());
}

/// Issue 20, target 2: what an instance receives about users none of its connections
/// watch, and what it costs there. Each instance keeps the whole model (reads never
/// touch the disk), so it still applies every change (docs/cluster.md, "Interest");
/// what changed is that a change nobody there watches wakes no connection: it is
/// counted in `statusd_cluster_received_unwatched_total` and queued to nobody.
#[tokio::test(flavor = "multi_thread")]
async fn changes_of_users_nobody_on_an_instance_watches_are_counted_and_wake_nobody() {
    let c = Cluster::start(2, &[]).await;
    let (a, b) = (&c[0], &c[1]);
    let (alice, _) = alice_on(&c).await;
    let carol = a.create_user("carol", "carol-pass-1", &["user"]).await;
    let bob = a.create_user("bob", "bob-pass-1", &["user"]).await;
    wait_user_known(b, &carol.user_id, REPLICATION_WAIT).await;
    wait_token_works(b, &bob, REPLICATION_WAIT).await;
    // On B, one connection, watching alice only.
    let mut w = Ddp::connect_resume(b, &bob.token).await;
    assert_eq!(
        w.sub(
            "p",
            "stream-user-presence",
            json!(["", {"added": [alice.user_id]}])
        )
        .await,
        json!({"msg": "ready", "subs": ["p"]})
    );
    settle(&mut [&mut w], QUIET).await;
    let read = || async {
        let mut v = [0f64; 3];
        for (i, series) in [
            "statusd_cluster_received_user_changes_total",
            "statusd_cluster_received_unwatched_total",
            "statusd_fanout_queued_total",
        ]
        .iter()
        .enumerate()
        {
            v[i] = metric(b, series).await.unwrap_or(0.0);
        }
        v
    };
    let before = read().await;
    const UNWATCHED: usize = 20;
    // As the admin (exempt from the rate limits).
    let admin = a.admin().await;
    for i in 0..UNWATCHED {
        let status = ["busy", "away"][i % 2];
        set_ok(
            a,
            &admin,
            json!({"userId": carol.user_id, "status": status}),
        )
        .await;
    }
    set_ok(a, &alice, json!({"status": "busy"})).await;
    let f = w
        .next_json(EVENT_WAIT)
        .await
        .expect("alice's change on B's watcher");
    assert_eq!(f["collection"], "stream-user-presence", "{f}");
    assert_eq!(f["fields"]["args"][0][1], 3, "{f}");
    w.expect_no_changed(GRACE).await;
    let after = read().await;
    let [received, unwatched, queued] = [0, 1, 2].map(|i| after[i] - before[i]);
    println!(
        "instance B received {received} user changes, {unwatched} of them about users none \
         of its connections watch; it queued {queued} change(s) to its connections"
    );
    assert!(unwatched >= UNWATCHED as f64, "{unwatched}");
    assert!(received - unwatched >= 1.0, "alice's change is watched");
    assert_eq!(queued, 1.0, "only alice's change wakes the watcher");
}

/// Issue 19 §3: presence privacy across instances. The setting and a user's denied list,
/// set through one instance, decide what a watcher on another instance hears at once:
/// `offline` when she denies him, the truth again when she lets him see.
#[tokio::test(flavor = "multi_thread")]
async fn a_denied_list_set_on_one_instance_redacts_the_streams_of_another() {
    let c = Cluster::start(2, &[]).await;
    let (a, b) = (&c[0], &c[1]);
    let (alice, who) = alice_on(&c).await;
    let bob = a.create_user("bob", "bob-pass-1", &["user"]).await;
    wait_user_known(b, &bob.user_id, REPLICATION_WAIT).await;
    wait_token_works(b, &bob, REPLICATION_WAIT).await;
    a.set_setting("Accounts_StatusVisibility_Enabled", json!(true))
        .await;
    let deadline = Instant::now() + REPLICATION_WAIT;
    loop {
        let (_, _, body) = b
            .get(
                "settings.public?_id=Accounts_StatusVisibility_Enabled",
                None,
            )
            .await;
        if body["settings"][0]["value"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "setting not replicated: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    set_ok(a, &alice, json!({"status": "busy", "message": "focus"})).await;
    let mut w = Ddp::connect_resume(b, &bob.token).await;
    w.sub_user_status("us").await;
    settle(&mut [&mut w], QUIET).await;

    let deny = |names: Value| json!({"data": {"statusVisibilityDenied": names}});
    let r = a
        .post_json("users.setPreferences", Some(&alice), deny(json!(["bob"])))
        .await;
    assert_eq!(r.0.as_u16(), 200, "{}", r.2);
    assert_eq!(w.expect_changed(EVENT_WAIT).await, who.status6(OFFLINE, ""));
    let r = b
        .get(
            &format!("users.getStatus?userId={}", alice.user_id),
            Some(&bob),
        )
        .await;
    assert_eq!(r.2["status"], "offline", "{}", r.2);
    // Her next change sends him nothing: she is offline to him already.
    set_ok(a, &alice, json!({"status": "away", "message": "lunch"})).await;
    w.expect_no_changed(GRACE).await;

    let r = a
        .post_json("users.setPreferences", Some(&alice), deny(json!([])))
        .await;
    assert_eq!(r.0.as_u16(), 200, "{}", r.2);
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        who.status8(AWAY, "lunch", "manual", None)
    );
    w.expect_no_changed(GRACE).await;
}

/// The cluster messages heard on `sub` within `wait`, opened (the seal is a version
/// byte and a 32-byte tag before the JSON).
async fn envelopes(sub: &mut async_nats::Subscriber, wait: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(wait, sub.next()).await {
        if let Some(json) = msg.payload.get(33..) {
            out.push(serde_json::from_slice(json).expect("a sealed JSON envelope"));
        }
    }
    out
}

/// `payload` sealed as the instances seal (`src/bus/seal.rs`), with the tests' secret.
fn sealed(subject: &str, payload: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(cluster::CLUSTER_SECRET.as_bytes())
        .expect("HMAC takes any key");
    m.update(b"statusd-cluster\0");
    m.update(subject.as_bytes());
    m.update(b"\0");
    m.update(payload);
    let mut out = vec![1u8];
    out.extend(m.finalize().into_bytes());
    out.extend(payload);
    out
}

/// Issue 20: a status change travels as the user's status part only, and reaches B's
/// watcher and B's reads as the whole record did; a rename still travels whole. A part
/// for a user an instance does not know is counted and makes it reload from the store.
#[tokio::test(flavor = "multi_thread")]
async fn a_status_change_travels_as_its_status_part_and_a_rename_whole() {
    let c = Cluster::start(2, &[]).await;
    let (a, b) = (&c[0], &c[1]);
    let (alice, who) = alice_on(&c).await;
    let admin = a.admin().await;
    let nats = c.nats.client().await;
    let mut sub = nats.subscribe(c.subject()).await.expect("subscribe");
    nats.flush().await.expect("flush");
    let mut wb = status_watcher(b).await;
    settle(&mut [&mut wb], QUIET).await;

    set_ok(a, &alice, json!({"status": "busy", "message": "compact"})).await;
    let want = who.status8(BUSY, "compact", "manual", None);
    assert_eq!(wb.expect_changed(EVENT_WAIT).await, want, "the frame on B");
    let got = b.status_of(&alice.user_id).await;
    assert_eq!(got["status"], "busy", "{got}");
    let info = b.info_of(&alice.user_id).await;
    assert_eq!(info["statusText"], "compact", "{info}");
    let heard = envelopes(&mut sub, GRACE).await;
    let changes: Vec<&Value> = heard
        .iter()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
        .filter(|c| c.to_string().contains(&alice.user_id))
        .collect();
    assert_eq!(changes.len(), 1, "{heard:?}");
    let part = &changes[0]["Status"];
    assert_eq!(part[0], json!(alice.user_id), "{heard:?}");
    assert_eq!(part[1]["t"], "compact", "{part}");
    assert!(
        !part.to_string().contains("alice"),
        "no account field: {part}"
    );

    // A rename changes the account part: the whole record, as before.
    let reply = a
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": alice.user_id, "data": {"name": "Alice A."}}),
        )
        .await;
    assert_status(&reply, 200);
    let heard = envelopes(&mut sub, GRACE).await;
    assert!(
        heard
            .iter()
            .any(|e| e["changes"][0]["User"][1]["name"] == "Alice A."),
        "{heard:?}"
    );
    assert_eq!(b.info_of(&alice.user_id).await["name"], "Alice A.");

    // A part for a user neither instance knows yet (written to PostgreSQL behind their
    // back): counted, and the model reloaded, after which the user is known.
    let dave = "dave0000000000001";
    c.db.query_texts(&format!(
        "INSERT INTO users (id, username, username_lower, name, emails, password_hash, roles,
            active, kind, status, status_default, status_connection, status_text,
            status_source, status_expires_at, previous_state, utc_offset, created_at,
            updated_at, last_login)
         VALUES ('{dave}', 'dave', 'dave', 'Dave', '[]', NULL, '[\"user\"]', true, 'user',
            'away', 'away', 'offline', 'from the store', NULL, NULL, NULL, 0, 0, 0, NULL)
         RETURNING id"
    ));
    let (status, _, body) = b
        .get(&format!("users.getStatus?userId={dave}"), Some(&admin))
        .await;
    assert_ne!(status, StatusCode::OK, "dave unknown to B yet: {body}");
    let now = chrono::Utc::now();
    let envelope = json!({"origin": "another-instance", "seq": 1,
        "sent_at": now.timestamp_millis(), "changes": [{"Status": [dave, {
            "s": "away", "d": "away", "c": "offline", "t": "from the store",
            "at": now.to_rfc3339(), "acct": 1}]}]});
    let payload = serde_json::to_vec(&envelope).unwrap();
    nats.publish(c.subject(), sealed(&c.subject(), &payload).into())
        .await
        .expect("publish");
    nats.flush().await.expect("flush");
    let series = "statusd_cluster_parts_unapplied_total{reason=\"unknown_user\"}";
    let deadline = Instant::now() + REPLICATION_WAIT;
    while metric(b, series).await.unwrap_or(0.0) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the unknown user's part is not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_user_known(b, dave, REPLICATION_WAIT).await;
    status_by(b, dave, "away", Instant::now() + REPLICATION_WAIT).await;
    assert_eq!(b.info_of(dave).await["statusText"], "from the store");
    assert_eq!(rejected(b, "unreadable").await, 0);
    for srv in &c.servers {
        let races = "statusd_cluster_parts_unapplied_total{reason=\"account_differs\"}";
        assert_eq!(metric(srv, races).await.unwrap_or(0.0), 0.0, "no race here");
    }
}

/// Every message an instance publishes is numbered: a receiver that finds numbers
/// missing (a publish that failed, a message NATS dropped) reloads its model from the
/// store, as after a NATS reconnect, so what the lost message said is not missed.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_found_missing_by_its_number_reloads_the_model() {
    let c = Cluster::start(2, &[]).await;
    let b = &c[1];
    let nats = c.nats.client().await;
    // A user written to PostgreSQL behind the instances' back: what a lost message
    // would have told them.
    let erin = "erin0000000000001";
    c.db.query_texts(&format!(
        "INSERT INTO users (id, username, username_lower, name, emails, password_hash, roles,
            active, kind, status, status_default, status_connection, status_text,
            status_source, status_expires_at, previous_state, utc_offset, created_at,
            updated_at, last_login)
         VALUES ('{erin}', 'erin', 'erin', 'Erin', '[]', NULL, '[\"user\"]', true, 'user',
            'busy', 'busy', 'offline', 'lost on the way', NULL, NULL, NULL, 0, 0, 0, NULL)
         RETURNING id"
    ));
    let publish = |seq: u64| {
        let envelope = json!({"origin": "a-third-instance", "seq": seq,
            "sent_at": chrono::Utc::now().timestamp_millis(), "changes": []});
        let payload = serde_json::to_vec(&envelope).unwrap();
        sealed(&c.subject(), &payload)
    };
    // 1 and 2 in order: nothing missing, nothing reloaded.
    for seq in [1, 2] {
        nats.publish(c.subject(), publish(seq).into())
            .await
            .expect("publish");
    }
    nats.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metric(b, "statusd_cluster_gaps_total").await, Some(0.0));
    assert_ne!(
        b.get(
            &format!("users.getStatus?userId={erin}"),
            Some(&b.admin().await)
        )
        .await
        .0,
        StatusCode::OK,
        "erin unknown to B yet"
    );
    // 3 and 4 never arrive: 5 shows the gap.
    nats.publish(c.subject(), publish(5).into())
        .await
        .expect("publish");
    nats.flush().await.expect("flush");
    let deadline = Instant::now() + REPLICATION_WAIT;
    while metric(b, "statusd_cluster_gaps_total").await.unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "the gap is not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_user_known(b, erin, REPLICATION_WAIT).await;
    assert_eq!(b.info_of(erin).await["statusText"], "lost on the way");
    assert_eq!(rejected(b, "replayed").await, 0);
}
