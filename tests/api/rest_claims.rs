//! Status claims (issue 18 item 1, Rocket.Chat 8.6's presence engine):
//! `statusd.claims.set` / `end` / `clear` / `get`. A user's own choice
//! (users.setStatus) is the `manual` claim; `external` claims rank below it and wait,
//! `internal` ones rank above it and stash it; exact bodies throughout.

use crate::common;

use std::time::Duration;

use common::ddp::{Ddp, Who, BUSY, EVENT_WAIT, ONLINE};
use common::*;

const SET: &str = "statusd.claims.set";
const END: &str = "statusd.claims.end";

async fn claim(srv: &Server, s: &Session, body: Value) -> Reply {
    srv.post_json(SET, Some(s), body).await
}

async fn end(srv: &Server, s: &Session, body: Value) -> Reply {
    srv.post_json(END, Some(s), body).await
}

async fn claims_of(srv: &Server, s: &Session, user_id: &str) -> Value {
    let r = srv
        .get(
            &format!("statusd.claims.get?userId={}", enc(user_id)),
            Some(s),
        )
        .await;
    assert_status(&r, 200);
    r.2
}

async fn set_ok(srv: &Server, s: &Session, body: Value) {
    let r = srv.set_status(s, body).await;
    assert_reply(&r, 200, json!({"success": true}));
}

#[tokio::test]
async fn an_external_claim_waits_behind_a_manual_choice_or_is_refused() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let id = alice.user_id.clone();
    set_ok(&srv, &alice, json!({"status": "busy", "message": "focus"})).await;

    // Lower than the manual choice, the slot free: it waits.
    let r = claim(
        &srv,
        &alice,
        json!({"status": "busy", "text": "meeting", "statusId": "cal-1"}),
    )
    .await;
    assert_reply(
        &r,
        200,
        json!({"_id": id, "outcome": "waiting",
               "previousState": {"statusDefault": "busy", "statusId": "cal-1",
                                 "statusSource": "external", "statusText": "meeting"},
               "status": "busy", "statusDefault": "busy", "statusSource": "manual",
               "statusText": "focus", "success": true}),
    );
    // Another external claim outranks the waiting one (equal rank): it takes the slot.
    let r = claim(
        &srv,
        &alice,
        json!({"status": "away", "text": "call", "statusId": "cal-2", "source": "external"}),
    )
    .await;
    assert_eq!(r.2["outcome"], "waiting", "{}", r.2);
    assert_eq!(r.2["previousState"]["statusId"], "cal-2", "{}", r.2);

    // An internal claim (the admin, for the server's own uses) replaces the manual
    // choice and stashes it; the waiting external claim is gone.
    let r = claim(
        &srv,
        &admin,
        json!({"userId": id, "status": "away", "text": "on a call", "statusId": "sys-1",
               "source": "internal"}),
    )
    .await;
    assert_reply(
        &r,
        200,
        json!({"_id": id, "outcome": "active",
               "previousState": {"statusDefault": "busy", "statusSource": "manual",
                                 "statusText": "focus"},
               "status": "offline", "statusDefault": "away", "statusId": "sys-1",
               "statusSource": "internal", "statusText": "on a call", "success": true}),
    );
    // Now an external claim is lower than the active one and than what the slot
    // holds: refused, nothing changes.
    let before = claims_of(&srv, &alice, &id).await;
    let r = claim(
        &srv,
        &alice,
        json!({"status": "busy", "text": "meeting", "statusId": "cal-3"}),
    )
    .await;
    let mut want = before.clone();
    want["outcome"] = json!("refused");
    assert_reply(&r, 200, want);
    assert_eq!(claims_of(&srv, &alice, &id).await, before);

    // Ending the internal claim restores the manual choice.
    let r = end(&srv, &admin, json!({"userId": id, "statusId": "sys-1"})).await;
    assert_reply(
        &r,
        200,
        json!({"_id": id, "outcome": "restored", "status": "offline",
               "statusDefault": "busy", "statusSource": "manual", "statusText": "focus",
               "success": true}),
    );
    // Ending it again finds nothing.
    let r = end(&srv, &admin, json!({"userId": id, "statusId": "sys-1"})).await;
    assert_eq!(r.2["outcome"], "notFound", "{}", r.2);
}

#[tokio::test]
async fn a_manual_change_empties_the_slot_and_wins_over_an_external_claim() {
    let srv = Server::start().await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let id = bob.user_id.clone();
    set_ok(&srv, &bob, json!({"status": "away", "message": "lunch"})).await;
    let r = claim(&srv, &bob, json!({"status": "busy", "statusId": "cal-1"})).await;
    assert_eq!(r.2["outcome"], "waiting", "{}", r.2);
    set_ok(&srv, &bob, json!({"status": "busy", "message": "writing"})).await;
    assert_eq!(
        claims_of(&srv, &bob, &id).await,
        json!({"_id": id, "status": "busy", "statusDefault": "busy",
               "statusSource": "manual", "statusText": "writing", "success": true})
    );
    // The waiting claim went with the slot: ending it finds nothing.
    let r = end(&srv, &bob, json!({"statusId": "cal-1"})).await;
    assert_eq!(r.2["outcome"], "notFound", "{}", r.2);

    // A user with no choice yet: an external claim applies at once, and a manual
    // change replaces it without stashing it.
    let cy = srv.create_user("cy", "cy-pass-1", &["user"]).await;
    let r = claim(
        &srv,
        &cy,
        json!({"status": "busy", "text": "standup", "statusId": "cal-9"}),
    )
    .await;
    assert_eq!(r.2["outcome"], "active", "{}", r.2);
    set_ok(&srv, &cy, json!({"status": "away"})).await;
    assert_eq!(
        claims_of(&srv, &cy, &cy.user_id).await,
        json!({"_id": cy.user_id, "status": "away", "statusDefault": "away",
               "statusSource": "manual", "statusText": "standup", "success": true})
    );
}

#[tokio::test]
async fn ending_claims_restores_what_was_there_before() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let dee = srv.create_user("dee", "dee-pass-1", &["user"]).await;
    let id = dee.user_id.clone();
    // Keep dee connected, so the displayed status follows the claims.
    let c = Ddp::connect_resume(&srv, &dee.token).await;
    srv.wait_status(&id, "online", EVENT_WAIT).await;

    let r = claim(
        &srv,
        &dee,
        json!({"status": "busy", "text": "meeting", "statusId": "cal-1"}),
    )
    .await;
    assert_reply(
        &r,
        200,
        json!({"_id": id, "outcome": "active", "status": "busy", "statusDefault": "busy",
               "statusId": "cal-1", "statusSource": "external", "statusText": "meeting",
               "success": true}),
    );
    let r = claim(
        &srv,
        &admin,
        json!({"username": "dee", "status": "away", "text": "paging", "statusId": "sys-1",
               "source": "internal"}),
    )
    .await;
    assert_eq!(r.2["outcome"], "active", "{}", r.2);
    assert_eq!(r.2["status"], "away", "{}", r.2);
    // The internal claim ends: the external one comes back, whole.
    let r = end(&srv, &admin, json!({"userId": id, "statusId": "sys-1"})).await;
    assert_reply(
        &r,
        200,
        json!({"_id": id, "outcome": "restored", "status": "busy", "statusDefault": "busy",
               "statusId": "cal-1", "statusSource": "external", "statusText": "meeting",
               "success": true}),
    );
    // The external claim ends: online, no text, no source.
    let r = end(&srv, &dee, json!({"statusId": "cal-1"})).await;
    assert_reply(
        &r,
        200,
        json!({"_id": id, "outcome": "reset", "status": "online", "statusDefault": "online",
               "statusText": "", "success": true}),
    );
    let st = srv.status_of(&id).await;
    assert_eq!(st, json!({"_id": id, "status": "online", "success": true}));
    c.close().await;
}

#[tokio::test]
async fn the_expiry_of_a_claim_restores_the_stashed_one() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let eve = srv.create_user("eve", "eve-pass-1", &["user"]).await;
    let id = eve.user_id.clone();
    let r = claim(
        &srv,
        &eve,
        json!({"status": "busy", "text": "meeting", "statusId": "cal-1"}),
    )
    .await;
    assert_eq!(r.2["outcome"], "active", "{}", r.2);
    let at = iso_from_now(2);
    let r = claim(
        &srv,
        &admin,
        json!({"userId": id, "status": "away", "text": "short", "statusId": "sys-1",
               "source": "internal", "expiresAt": at}),
    )
    .await;
    assert_eq!(r.2["statusExpiresAt"], at.as_str(), "{}", r.2);
    assert_eq!(r.2["previousState"]["statusId"], "cal-1", "{}", r.2);
    // Within a second of the expiry, the external claim is back.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let c = claims_of(&srv, &eve, &id).await;
        if c["statusSource"] == "external" {
            assert_eq!(
                c,
                json!({"_id": id, "status": "busy", "statusDefault": "busy",
                       "statusId": "cal-1", "statusSource": "external",
                       "statusText": "meeting", "success": true})
            );
            assert!(chrono::Utc::now() < parse_time(&at) + chrono::Duration::seconds(2));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not restored: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_manual_change_waits_behind_an_internal_claim() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let lou = srv.create_user("lou", "lou-pass-1", &["user"]).await;
    let id = lou.user_id.clone();
    let r = claim(
        &srv,
        &admin,
        json!({"userId": id, "status": "busy", "text": "on call", "statusId": "sys-1",
               "source": "internal"}),
    )
    .await;
    assert_eq!(r.2["outcome"], "active", "{}", r.2);
    // users.setStatus answers as always; the manual choice waits in the slot.
    set_ok(&srv, &lou, json!({"status": "away", "message": "lunch"})).await;
    assert_eq!(
        claims_of(&srv, &lou, &id).await,
        json!({"_id": id,
               "previousState": {"statusDefault": "away", "statusSource": "manual",
                                 "statusText": "lunch"},
               "status": "offline", "statusDefault": "busy", "statusId": "sys-1",
               "statusSource": "internal", "statusText": "on call", "success": true})
    );
    // When the internal claim ends, the choice applies.
    let r = end(&srv, &admin, json!({"userId": id, "statusId": "sys-1"})).await;
    assert_eq!(
        (&r.2["outcome"], &r.2["statusDefault"], &r.2["statusText"]),
        (&json!("restored"), &json!("away"), &json!("lunch")),
        "{}",
        r.2
    );
}

#[tokio::test]
async fn while_invisible_only_manual_claims_apply() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let fay = srv.create_user("fay", "fay-pass-1", &["user"]).await;
    let id = fay.user_id.clone();
    set_ok(&srv, &fay, json!({"status": "offline"})).await;
    let want = json!({"_id": id, "outcome": "refused", "status": "offline",
                      "statusDefault": "offline", "statusSource": "manual", "statusText": "",
                      "success": true});
    let r = claim(&srv, &fay, json!({"status": "busy", "statusId": "cal-1"})).await;
    assert_reply(&r, 200, want.clone());
    let r = claim(
        &srv,
        &admin,
        json!({"userId": id, "status": "busy", "statusId": "sys-1", "source": "internal"}),
    )
    .await;
    assert_reply(&r, 200, want);
    set_ok(&srv, &fay, json!({"status": "busy"})).await;
    assert_eq!(srv.status_of(&id).await["status"], "busy");
}

#[tokio::test]
async fn without_a_connection_a_person_shows_offline_and_a_bot_its_claim() {
    let srv = Server::start().await;
    let gus = srv.create_user("gus", "gus-pass-1", &["user"]).await;
    let bot = srv.create_user("helper", "helper-pass-1", &["bot"]).await;
    for (s, want) in [(&gus, "offline"), (&bot, "busy")] {
        let r = claim(&srv, s, json!({"status": "busy", "statusId": "x"})).await;
        assert_reply(
            &r,
            200,
            json!({"_id": s.user_id, "outcome": "active", "status": want,
                   "statusDefault": "busy", "statusId": "x", "statusSource": "external",
                   "statusText": "", "success": true}),
        );
        assert_eq!(srv.status_of(&s.user_id).await["status"], want);
    }
    // Clearing: online, as Rocket.Chat's clear path shows a disconnected user.
    let r = srv
        .post_json("statusd.claims.clear", Some(&gus), json!({}))
        .await;
    assert_reply(
        &r,
        200,
        json!({"_id": gus.user_id, "outcome": "reset", "status": "online",
               "statusDefault": "online", "statusText": "", "success": true}),
    );
}

#[tokio::test]
async fn who_may_claim_and_what_is_refused() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let hal = srv.create_user("hal", "hal-pass-1", &["user"]).await;
    let ida = srv.create_user("ida", "ida-pass-1", &["user"]).await;
    let busy = json!({"status": "busy", "statusId": "c"});

    // Another user, an internal claim, another user's claims: 403 without the permission.
    let mut other = busy.clone();
    other["userId"] = json!(ida.user_id);
    assert_reply(&claim(&srv, &hal, other.clone()).await, 403, body_403());
    let mut nobody = busy.clone();
    nobody["userId"] = json!("no-such-user");
    assert_reply(&claim(&srv, &hal, nobody.clone()).await, 403, body_403());
    let mut internal = busy.clone();
    internal["source"] = json!("internal");
    assert_reply(&claim(&srv, &hal, internal).await, 403, body_403());
    assert_reply(
        &end(&srv, &hal, json!({"userId": ida.user_id, "statusId": "c"})).await,
        403,
        body_403(),
    );
    let r = srv
        .get(
            &format!("statusd.claims.get?userId={}", ida.user_id),
            Some(&hal),
        )
        .await;
    assert_reply(&r, 403, body_403());
    // With it (the admin): another user works, an unknown one is a 400.
    assert_eq!(claim(&srv, &admin, other).await.2["outcome"], "active");
    assert_reply(
        &claim(&srv, &admin, nobody).await,
        400,
        body_meteor(
            "error-invalid-user",
            "The required \"userId\" or \"username\" param provided does not match any users",
            SET,
        ),
    );
    // The permission can be given to a role.
    srv.set_permission("manage-status-claims", &["admin", "user"])
        .await;
    let r = claim(
        &srv,
        &hal,
        json!({"username": "ida", "status": "away", "statusId": "d"}),
    )
    .await;
    assert_eq!(r.2["outcome"], "active", "{}", r.2);

    // Bounded and checked fields.
    let long = "x".repeat(201);
    for (body, code, reason) in [
        (
            json!({"status": "busy", "statusId": long}),
            "error-invalid-status-id",
            "statusId must be 1 to 200 characters",
        ),
        (
            json!({"status": "busy", "statusId": " "}),
            "error-invalid-status-id",
            "statusId must be 1 to 200 characters",
        ),
        (
            json!({"status": "busy", "statusId": "c", "source": "manual"}),
            "error-invalid-source",
            "source must be external or internal",
        ),
        (
            json!({"status": "dnd", "statusId": "c"}),
            "error-invalid-status",
            "Valid status types include online, away, offline, and busy.",
        ),
        (
            json!({"status": "busy", "statusId": "c", "expiresAt": "2020-01-01T00:00:00Z"}),
            "error-invalid-date",
            "expiresAt must be a future date",
        ),
    ] {
        let r = claim(&srv, &ida, body.clone()).await;
        assert_reply(&r, 400, body_meteor(code, reason, SET));
    }
    assert_reply(
        &end(&srv, &ida, json!({"statusId": "y".repeat(201)})).await,
        400,
        body_meteor(
            "error-invalid-status-id",
            "statusId must be 1 to 200 characters",
            END,
        ),
    );
    // Shape: an unknown member is refused as Rocket.Chat's ajv does; a missing or
    // mistyped one is a Match error naming it.
    let r = claim(
        &srv,
        &ida,
        json!({"status": "busy", "statusId": "c", "emoji": "x"}),
    )
    .await;
    assert_reply(
        &r,
        400,
        body_meteor("invalid-params", "must NOT have additional properties", SET),
    );
    for (body, error) in [
        (
            json!({"status": "busy"}),
            "Match error: Missing key 'statusId'",
        ),
        (
            json!({"statusId": "c"}),
            "Match error: Missing key 'status'",
        ),
        (
            json!({"status": 3, "statusId": "c"}),
            "Match error: Expected string in field status",
        ),
    ] {
        let r = claim(&srv, &ida, body).await;
        assert_reply(&r, 400, json!({"success": false, "error": error}));
    }
    // The text is trimmed and cut to 120 characters.
    let r = claim(
        &srv,
        &ida,
        json!({"status": "busy", "statusId": "t", "text": format!("  {}  ", "é".repeat(300))}),
    )
    .await;
    assert_eq!(r.2["statusText"], "é".repeat(120), "{}", r.2);
    // Anonymous: 401.
    assert_reply(&srv.post_json(SET, None, json!({})).await, 401, body_401());
}

#[tokio::test]
async fn claims_are_recorded_with_their_source_and_survive_a_restart() {
    let mut srv = Server::start().await;
    let admin = srv.admin().await;
    let jo = srv.create_user("jo", "jo-pass-1", &["user"]).await;
    let id = jo.user_id.clone();
    let r = claim(
        &srv,
        &jo,
        json!({"status": "busy", "text": "meeting", "statusId": "cal-1"}),
    )
    .await;
    assert_eq!(r.2["outcome"], "active", "{}", r.2);
    let at = iso_from_now(3600);
    let r = claim(
        &srv,
        &admin,
        json!({"userId": id, "status": "away", "text": "paging", "statusId": "sys-1",
               "source": "internal", "expiresAt": at}),
    )
    .await;
    assert_eq!(r.2["outcome"], "active", "{}", r.2);
    let before = claims_of(&srv, &jo, &id).await;

    let (_, _, h) = srv.get("users.statusHistory", Some(&jo)).await;
    let sources: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(sources, ["internal", "external"], "{h}");

    srv.kill9();
    srv.start_again().await;
    let jo = srv.login("jo", "jo-pass-1").await;
    assert_eq!(claims_of(&srv, &jo, &id).await, before);
    assert_eq!(before["previousState"]["statusId"], "cal-1", "{before}");
    assert_eq!(before["statusId"], "sys-1", "{before}");
}

#[tokio::test]
async fn the_user_status_frame_names_the_winning_source() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let kim = srv.create_user("kim", "kim-pass-1", &["user"]).await;
    let mut w = Ddp::connect_resume(&srv, &admin.token).await;
    assert_eq!(
        w.sub("s", "stream-notify-logged", json!(["user-status", false]))
            .await,
        json!({"msg": "ready", "subs": ["s"]})
    );
    let k = Ddp::connect_resume(&srv, &kim.token).await;
    let who = Who::created(&kim.user_id, "kim", &["user"]);
    assert_eq!(w.expect_changed(EVENT_WAIT).await, who.status6(ONLINE, ""));

    let r = claim(
        &srv,
        &kim,
        json!({"status": "busy", "text": "meeting", "statusId": "cal-1"}),
    )
    .await;
    assert_eq!(r.2["outcome"], "active", "{}", r.2);
    assert_eq!(
        w.expect_changed(EVENT_WAIT).await,
        who.status8(BUSY, "meeting", "external", None)
    );
    // getStatus says the same.
    let st = srv.status_of(&kim.user_id).await;
    assert_eq!(
        st,
        json!({"_id": kim.user_id, "status": "busy", "statusSource": "external", "success": true})
    );
    k.close().await;
}
