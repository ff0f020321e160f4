//! Do-not-disturb schedules (issue 19 item 2, a statusd extension): `statusd.dnd.set` /
//! `get` / `clear`. During a window the user's chosen status is `busy` through an
//! `internal` claim with id `statusd.dnd`; a manual change wins until the next window.
//! Windows here are seconds long (times may carry seconds) in `UTC` on every day.

use crate::common;

use std::time::Duration;

use chrono::{Timelike, Utc};
use common::*;

const SET: &str = "statusd.dnd.set";
const ALL_DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `HH:MM:SS` in UTC, `secs` from now.
fn at(secs: i64) -> String {
    let t = Utc::now() + chrono::Duration::seconds(secs);
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// A range on every day from `from` to `to` seconds from now.
fn window(from: i64, to: i64) -> Value {
    json!({"days": ALL_DAYS, "start": at(from), "end": at(to)})
}

async fn claims(srv: &Server, s: &Session) -> Value {
    let r = srv.get("statusd.claims.get", Some(s)).await;
    assert_status(&r, 200);
    r.2
}

/// Waits (up to `secs`) until the caller's claims satisfy `want`.
async fn until(srv: &Server, s: &Session, secs: u64, what: &str, want: impl Fn(&Value) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let c = claims(srv, s).await;
        if want(&c) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn in_dnd(c: &Value) -> bool {
    c["statusDefault"] == "busy"
        && c["statusId"] == "statusd.dnd"
        && c["statusSource"] == "internal"
}

/// The view without the parts that move with the clock.
fn still(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("endsAt");
        o.remove("nextStart");
    }
    v
}

#[tokio::test]
async fn set_get_clear_with_exact_bodies() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let none = json!({"dnd": null, "success": true});
    assert_reply(
        &srv.get("statusd.dnd.get", Some(&alice)).await,
        200,
        none.clone(),
    );

    let body = json!({
        "timeZone": "Europe/Berlin",
        "ranges": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "18:00", "end": "09:00"},
            {"days": ["sat", "sun"], "start": "00:00", "end": "00:00:00"}
        ],
        "text": "  off work  "
    });
    let want = json!({
        "dnd": {
            "ranges": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "18:00", "end": "09:00"},
                {"days": ["sat", "sun"], "start": "00:00", "end": "00:00"}
            ],
            "text": "off work",
            "timeZone": "Europe/Berlin"
        },
        "success": true
    });
    let r = srv.post_json(SET, Some(&alice), body).await;
    assert_status(&r, 200);
    assert!(r.2["nextStart"].is_string(), "{}", r.2);
    assert_eq!(still(r.2), want);
    let r = srv.get("statusd.dnd.get", Some(&alice)).await;
    assert_status(&r, 200);
    assert_eq!(still(r.2), want);

    // Another user sees only their own.
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    assert_reply(
        &srv.get("statusd.dnd.get", Some(&bob)).await,
        200,
        none.clone(),
    );

    assert_reply(
        &srv.post_json("statusd.dnd.clear", Some(&alice), json!({}))
            .await,
        200,
        none.clone(),
    );
    assert_reply(&srv.get("statusd.dnd.get", Some(&alice)).await, 200, none);
}

#[tokio::test]
async fn bad_bodies_are_refused() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let ok_range = json!({"days": ["mon"], "start": "18:00", "end": "09:00"});
    let ranges_reason = "each range needs days and start and end as HH:MM or HH:MM:SS";
    let days_reason = "days must be distinct: mon, tue, wed, thu, fri, sat, sun";
    let count_reason = "ranges must hold 1 to 14 ranges";
    let cases = [
        (
            json!({"timeZone": "Mars/Olympus", "ranges": [ok_range]}),
            "error-invalid-time-zone",
            "timeZone must be an IANA time zone name",
        ),
        (
            json!({"timeZone": "UTC", "ranges": []}),
            "error-invalid-ranges",
            count_reason,
        ),
        (
            json!({"timeZone": "UTC", "ranges": vec![ok_range.clone(); 15]}),
            "error-invalid-ranges",
            count_reason,
        ),
        (
            json!({"timeZone": "UTC", "ranges": [{"days": ["mon", "mon"], "start": "18:00", "end": "09:00"}]}),
            "error-invalid-ranges",
            days_reason,
        ),
        (
            json!({"timeZone": "UTC", "ranges": [{"days": ["monday"], "start": "18:00", "end": "09:00"}]}),
            "error-invalid-ranges",
            days_reason,
        ),
        (
            json!({"timeZone": "UTC", "ranges": [{"days": [], "start": "18:00", "end": "09:00"}]}),
            "error-invalid-ranges",
            ranges_reason,
        ),
        (
            json!({"timeZone": "UTC", "ranges": [{"days": ["mon"], "start": "24:00", "end": "09:00"}]}),
            "error-invalid-ranges",
            ranges_reason,
        ),
        (
            json!({"timeZone": "UTC", "ranges": [{"days": ["mon"], "start": "18:00", "end": "9:00"}]}),
            "error-invalid-ranges",
            ranges_reason,
        ),
    ];
    for (body, code, reason) in cases {
        let r = srv.post_json(SET, Some(&alice), body.clone()).await;
        assert_reply(&r, 400, body_meteor(code, reason, SET));
    }
    // Shape: unknown members, missing or mistyped ones.
    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"timeZone": "UTC", "ranges": [ok_range], "x": 1}),
        )
        .await;
    assert_reply(
        &r,
        400,
        body_meteor("invalid-params", "must NOT have additional properties", SET),
    );
    let r = srv
        .post_json(SET, Some(&alice), json!({"ranges": [ok_range]}))
        .await;
    assert_reply(
        &r,
        400,
        json!({"success": false, "error": "Match error: Missing key 'timeZone'"}),
    );
    // The text is trimmed and cut to 120 characters.
    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"timeZone": "UTC", "ranges": [ok_range], "text": "é".repeat(300)}),
        )
        .await;
    assert_eq!(r.2["dnd"]["text"], "é".repeat(120), "{}", r.2);
    // Nothing stored by the refusals before.
    // Anonymous: 401.
    assert_reply(&srv.post_json(SET, None, json!({})).await, 401, body_401());
    assert_reply(&srv.get("statusd.dnd.get", None).await, 401, body_401());
}

#[tokio::test]
async fn busy_during_a_window_then_back_and_a_manual_change_wins() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let r = srv
        .set_status(&alice, json!({"status": "away", "message": "lunch"}))
        .await;
    assert_status(&r, 200);
    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"timeZone": "UTC", "ranges": [window(2, 6), window(12, 15)], "text": "quiet"}),
        )
        .await;
    let set_at = std::time::Instant::now();
    assert_status(&r, 200);
    // Not yet.
    let c = claims(&srv, &alice).await;
    assert_eq!(c["statusDefault"], "away", "{c}");
    until(&srv, &alice, 5, "the first window", |c| {
        in_dnd(c) && c["statusText"] == "quiet" && c["previousState"]["statusText"] == "lunch"
    })
    .await;
    // The user's own change wins at once ...
    let r = srv
        .set_status(&alice, json!({"status": "online", "message": "back early"}))
        .await;
    assert_status(&r, 200);
    let c = claims(&srv, &alice).await;
    assert_eq!(
        (&c["statusDefault"], &c["statusSource"], &c["statusText"]),
        (&json!("online"), &json!("manual"), &json!("back early")),
        "{c}"
    );
    assert!(c.get("previousState").is_none(), "{c}");
    // ... through the end of the window (nothing comes back) ...
    tokio::time::sleep_until((set_at + Duration::from_secs(8)).into()).await;
    let c = claims(&srv, &alice).await;
    assert_eq!(c["statusText"], "back early", "{c}");
    // ... and the next window applies again, then gives the choice back.
    until(&srv, &alice, 8, "the second window", in_dnd).await;
    until(&srv, &alice, 6, "the end of the second window", |c| {
        c["statusDefault"] == "online"
            && c["statusText"] == "back early"
            && c["statusSource"] == "manual"
    })
    .await;
}

#[tokio::test]
async fn a_window_survives_a_restart_and_clear_ends_it() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let r = srv
        .set_status(&alice, json!({"status": "away", "message": "lunch"}))
        .await;
    assert_status(&r, 200);
    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"timeZone": "UTC", "ranges": [window(1, 40)]}),
        )
        .await;
    assert_status(&r, 200);
    until(&srv, &alice, 5, "the window", in_dnd).await;
    let before = claims(&srv, &alice).await;
    srv.restart().await;
    let alice = srv.login("alice", "alice-pass-1").await;
    // Still in the window, applied once: the slot holds the manual choice, not a
    // second copy of the schedule's claim.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = claims(&srv, &alice).await;
    assert_eq!(after, before);
    assert_eq!(after["previousState"]["statusText"], "lunch", "{after}");
    let r = srv.get("statusd.dnd.get", Some(&alice)).await;
    assert!(r.2["endsAt"].is_string(), "{}", r.2);
    // Clearing the schedule ends the window: the choice comes back.
    assert_reply(
        &srv.post_json("statusd.dnd.clear", Some(&alice), json!({}))
            .await,
        200,
        json!({"dnd": null, "success": true}),
    );
    let c = claims(&srv, &alice).await;
    assert_eq!(
        (&c["statusDefault"], &c["statusSource"], &c["statusText"]),
        (&json!("away"), &json!("manual"), &json!("lunch")),
        "{c}"
    );
}

/// The DDP methods `statusd.dnd.get|set|clear` follow the REST rules; a window opens and
/// closes with `user-status` events of source `internal`.
#[tokio::test]
async fn ddp_methods_and_the_events_of_a_window() {
    use common::ddp::{meteor_error, Ddp, Who, BUSY, ONLINE};
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect(&srv).await;
    // Not logged in.
    let e = c.call("statusd.dnd.get", json!([])).await.unwrap_err();
    assert_eq!(e["error"], "error-invalid-user", "{e}");
    c.login_resume(&alice.token).await.unwrap();
    assert_eq!(
        c.call("statusd.dnd.get", json!([])).await,
        Ok(json!({"dnd": null}))
    );
    // Bad input: a Match error for the shape, the REST refusal for the rest.
    for bad in [
        json!([]),
        json!([{"timeZone": "UTC"}]),
        json!([{"timeZone": "UTC", "ranges": [], "x": 1}]),
    ] {
        let e = c.call("statusd.dnd.set", bad.clone()).await.unwrap_err();
        assert_eq!(
            (&e["error"], &e["reason"]),
            (&json!(400), &json!("Match failed")),
            "{bad}: {e}"
        );
    }
    let e = c
        .call(
            "statusd.dnd.set",
            json!([{"timeZone": "Nowhere/Land", "ranges": []}]),
        )
        .await
        .unwrap_err();
    let mut want = meteor_error(
        json!("error-invalid-time-zone"),
        "timeZone must be an IANA time zone name",
    );
    want["details"] = json!({"method": "statusd.dnd.set"});
    assert_eq!(e, want);

    let mut watcher = Ddp::connect(&srv).await;
    watcher.login_resume(&bob.token).await.unwrap();
    watcher.sub_user_status("s1").await;
    let v = c
        .call(
            "statusd.dnd.set",
            json!([{"timeZone": "UTC", "ranges": [window(2, 4)], "text": "quiet"}]),
        )
        .await
        .unwrap();
    assert_eq!(v["dnd"]["text"], "quiet", "{v}");
    assert!(v["nextStart"].is_string(), "{v}");
    let who = Who::created(&alice.user_id, "alice", &["user"]);
    let opened = watcher
        .changed_matching(Duration::from_secs(6), |f| {
            f["fields"]["args"][0][2] == BUSY
        })
        .await
        .expect("the window's event");
    assert_eq!(opened, who.status8(BUSY, "quiet", "internal", None));
    let closed = watcher
        .changed_matching(Duration::from_secs(6), |f| {
            f["fields"]["args"][0][2] == ONLINE
        })
        .await
        .expect("the end's event");
    assert_eq!(closed, who.status6(ONLINE, ""));
    assert_eq!(
        c.call("statusd.dnd.clear", json!([])).await,
        Ok(json!({"dnd": null}))
    );
}

/// A new time zone moves the windows: the one open now closes at the next tick.
#[tokio::test]
async fn a_time_zone_change_closes_a_window_that_is_no_longer_open() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let r = srv
        .set_status(&alice, json!({"status": "away", "message": "lunch"}))
        .await;
    assert_status(&r, 200);
    let ranges = json!([window(1, 60)]);
    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"timeZone": "UTC", "ranges": ranges}),
        )
        .await;
    assert_status(&r, 200);
    until(&srv, &alice, 5, "the window", in_dnd).await;
    // The same wall-clock times twelve hours east: not open now.
    let r = srv
        .post_json(
            SET,
            Some(&alice),
            json!({"timeZone": "Etc/GMT-12", "ranges": ranges}),
        )
        .await;
    assert_status(&r, 200);
    assert!(r.2.get("endsAt").is_none(), "{}", r.2);
    until(&srv, &alice, 5, "the end of the window", |c| {
        c["statusDefault"] == "away" && c["statusText"] == "lunch" && c["statusSource"] == "manual"
    })
    .await;
}
