//! Status history (issue 6): every committed change of what a user shows or chose is
//! recorded with its actor and source; `GET /api/v1/users.statusHistory` reads it
//! (self, or others with `view-full-other-user-info`), newest first, in Rocket.Chat's
//! list style; connection churn that changes nothing visible is not recorded; entries
//! older than `Status_History_Retention_Days` are pruned.

use crate::common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::ddp::Ddp;
use common::*;

const ROUTE: &str = "users.statusHistory";
/// How long an asynchronously recorded entry (connection events) may take to appear.
const WAIT: Duration = Duration::from_secs(5);

/// Who made a change, as an entry names them.
#[derive(Clone, Copy)]
enum Actor<'a> {
    User(&'a Session),
    System,
}

/// An expected entry, without `_id` and `createdAt` (checked separately).
fn entry(
    target: &Session,
    actor: Actor,
    (prev, status): (&str, &str),
    (prev_text, text): (&str, &str),
    source: &str,
) -> Value {
    let (actor_id, actor_name) = match actor {
        Actor::User(s) => (json!(s.user_id), json!(s.username)),
        Actor::System => (Value::Null, Value::Null),
    };
    json!({
        "userId": target.user_id,
        "username": target.username,
        "actorId": actor_id,
        "actorUsername": actor_name,
        "previousStatus": prev,
        "status": status,
        "previousStatusText": prev_text,
        "statusText": text,
        "source": source,
    })
}

/// Checks `_id` (a 17-character id) and `createdAt` (an ISO time) of an item and
/// returns the item without them, and its time.
fn split_item(item: &Value) -> (Value, DateTime<Utc>) {
    let mut v = item.clone();
    let obj = v.as_object_mut().expect("an item is an object");
    let id = obj.remove("_id").unwrap_or(Value::Null);
    let id = id
        .as_str()
        .unwrap_or_else(|| panic!("item without a string _id: {item}"));
    assert_eq!(
        id.chars().count(),
        17,
        "item _id {id:?} is not a 17-character id"
    );
    let at = obj.remove("createdAt").unwrap_or(Value::Null);
    let at = at
        .as_str()
        .unwrap_or_else(|| panic!("item without a string createdAt: {item}"));
    assert!(
        at.ends_with('Z') && at.len() == "2026-01-01T00:00:00.000Z".len(),
        "createdAt {at:?} is not an ISO string like Rocket.Chat's"
    );
    (v, parse_time(at))
}

/// `GET users.statusHistory?<query>` as `s`; must answer 200 in the list shape.
async fn history(srv: &Server, s: &Session, query: &str) -> Value {
    let path = if query.is_empty() {
        ROUTE.to_string()
    } else {
        format!("{ROUTE}?{query}")
    };
    let (status, _, body) = srv.get(&path, Some(s)).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    let obj = body.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["count", "items", "offset", "success", "total"],
        "GET {path}: unexpected fields: {body}"
    );
    assert_eq!(body["success"], true);
    let n = body["items"].as_array().expect("items is an array").len();
    assert_eq!(
        body["count"], n,
        "GET {path}: count is not the page size: {body}"
    );
    body
}

/// The items of a history answer without `_id`/`createdAt`, checking they are newest first.
fn items(body: &Value) -> Vec<Value> {
    let split: Vec<(Value, DateTime<Utc>)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(split_item)
        .collect();
    for w in split.windows(2) {
        assert!(w[0].1 >= w[1].1, "items are not newest first: {body}");
    }
    split.into_iter().map(|(v, _)| v).collect()
}

/// Polls the history of `s` (as `s`) until it has `n` entries; returns the answer.
async fn wait_total(srv: &Server, s: &Session, n: u64) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let body = history(srv, s, "").await;
        if body["total"] == n {
            return body;
        }
        if std::time::Instant::now() >= deadline {
            panic!(
                "history of {} has not {n} entries after {WAIT:?}: {body}",
                s.username
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn set_ok(srv: &Server, s: &Session, body: Value) {
    let reply = srv.set_status(s, body).await;
    assert_reply(&reply, 200, json!({"success": true}));
}

// ----------------------------------------------------------------- entries

#[tokio::test]
async fn rest_changes_are_recorded_with_the_caller_as_actor() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let t0 = Utc::now() - chrono::Duration::milliseconds(5);
    assert_eq!(history(&srv, &alice, "").await["total"], 0);

    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    set_ok(
        &srv,
        &admin,
        json!({"userId": alice.user_id, "status": "busy", "message": "set by admin"}),
    )
    .await;
    set_ok(
        &srv,
        &admin,
        json!({"username": "alice", "status": "online"}),
    )
    .await;
    set_ok(&srv, &alice, json!({"message": "  trimmed  "})).await;

    let body = history(&srv, &alice, "").await;
    assert_eq!(
        (&body["total"], &body["offset"]),
        (&json!(4), &json!(0)),
        "{body}"
    );
    assert_eq!(
        items(&body),
        vec![
            entry(
                &alice,
                Actor::User(&alice),
                ("online", "online"),
                ("set by admin", "trimmed"),
                "rest"
            ),
            entry(
                &alice,
                Actor::User(&admin),
                ("busy", "online"),
                ("set by admin", "set by admin"),
                "rest"
            ),
            entry(
                &alice,
                Actor::User(&admin),
                ("away", "busy"),
                ("base", "set by admin"),
                "rest"
            ),
            entry(
                &alice,
                Actor::User(&alice),
                ("offline", "away"),
                ("", "base"),
                "rest"
            ),
        ]
    );
    let t1 = Utc::now() + chrono::Duration::milliseconds(5);
    for item in body["items"].as_array().unwrap() {
        let (_, at) = split_item(item);
        assert!(
            t0 <= at && at <= t1,
            "createdAt {at} not within the test ({t0}..{t1})"
        );
    }
    // The changes were alice's, not the admin's.
    assert_eq!(history(&srv, &admin, "").await["total"], 0);
    // Durable: the same after a restart.
    let mut srv = srv;
    srv.restart().await;
    assert_eq!(history(&srv, &alice, "").await, body);
}

#[tokio::test]
async fn ddp_changes_are_recorded_with_source_ddp_and_connections_with_source_connection() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let me = Actor::User(&alice);

    // A DDP login makes the offline user online.
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    let body = wait_total(&srv, &alice, 1).await;
    assert_eq!(
        items(&body),
        vec![entry(
            &alice,
            me,
            ("offline", "online"),
            ("", ""),
            "connection"
        )]
    );

    let r = c.call("setUserStatus", json!(["busy", "in a call"])).await;
    assert_eq!(r, Ok(Value::Null), "setUserStatus");
    let r = c
        .call("UserPresence:setDefaultStatus", json!(["away"]))
        .await;
    assert_eq!(r, Ok(json!(true)), "UserPresence:setDefaultStatus");
    let body = wait_total(&srv, &alice, 3).await;
    assert_eq!(
        items(&body)[..2],
        [
            entry(
                &alice,
                me,
                ("busy", "away"),
                ("in a call", "in a call"),
                "ddp"
            ),
            entry(&alice, me, ("online", "busy"), ("", "in a call"), "ddp"),
        ]
    );

    // Closing the only connection takes the user offline.
    c.close().await;
    let body = wait_total(&srv, &alice, 4).await;
    assert_eq!(
        items(&body)[0],
        entry(
            &alice,
            me,
            ("away", "offline"),
            ("in a call", "in a call"),
            "connection"
        )
    );
}

#[tokio::test]
async fn an_expiry_is_recorded_with_source_expiry_and_no_actor() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "base"})).await;
    let at = iso_from_now(2);
    set_ok(
        &srv,
        &alice,
        json!({"status": "busy", "message": "meeting", "expiresAt": at}),
    )
    .await;
    // bob's expiry is cancelled by a later manual change: nothing recorded at its time.
    set_ok(
        &srv,
        &bob,
        json!({"status": "busy", "message": "meeting", "expiresAt": at}),
    )
    .await;
    set_ok(&srv, &bob, json!({"status": "online"})).await;

    let body = wait_total(&srv, &alice, 3).await;
    assert_eq!(
        items(&body),
        vec![
            entry(
                &alice,
                Actor::System,
                ("busy", "away"),
                ("meeting", "base"),
                "expiry"
            ),
            entry(
                &alice,
                Actor::User(&alice),
                ("away", "busy"),
                ("base", "meeting"),
                "rest"
            ),
            entry(
                &alice,
                Actor::User(&alice),
                ("offline", "away"),
                ("", "base"),
                "rest"
            ),
        ]
    );
    let (_, expired_at) = split_item(&body["items"][0]);
    let due = parse_time(&at);
    assert!(
        due <= expired_at && expired_at <= due + chrono::Duration::seconds(1),
        "the expiry was recorded at {expired_at}, due {due}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = history(&srv, &bob, "").await;
    assert_eq!(body["total"], 2, "{body}");
    assert_eq!(
        items(&body)[0],
        entry(
            &bob,
            Actor::User(&bob),
            ("busy", "online"),
            ("meeting", "meeting"),
            "rest"
        )
    );
}

#[tokio::test]
async fn connection_churn_that_does_not_change_the_displayed_status_is_not_recorded() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let me = Actor::User(&alice);

    let c1 = Ddp::connect_resume(&srv, &alice.token).await;
    wait_total(&srv, &alice, 1).await;
    // A second connection, one going away while another is online, then closing it.
    let mut c2 = Ddp::connect_resume(&srv, &alice.token).await;
    srv.wait_live_connections(2, WAIT).await;
    let r = c2.call("UserPresence:away", json!([])).await;
    assert_eq!(r, Ok(json!(true)));
    c2.close().await;
    srv.wait_live_connections(1, WAIT).await;
    // A third one, opened and closed.
    let c3 = Ddp::connect_resume(&srv, &alice.token).await;
    srv.wait_live_connections(2, WAIT).await;
    c3.close().await;
    srv.wait_live_connections(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = history(&srv, &alice, "").await;
    assert_eq!(body["total"], 1, "connection churn was recorded: {body}");

    // Closing the last one changes what alice shows.
    c1.close().await;
    let body = wait_total(&srv, &alice, 2).await;
    assert_eq!(
        items(&body),
        vec![
            entry(&alice, me, ("online", "offline"), ("", ""), "connection"),
            entry(&alice, me, ("offline", "online"), ("", ""), "connection"),
        ]
    );
}

#[tokio::test]
async fn connections_of_invisible_users_are_not_recorded_nor_those_of_busy_users_coming_online() {
    let srv = Server::start().await;
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    // Invisible: the choice is recorded, connections never change what bob shows.
    set_ok(&srv, &bob, json!({"status": "offline"})).await;
    // Busy without a connection shows busy at once; connecting changes nothing shown.
    set_ok(&srv, &carol, json!({"status": "busy"})).await;
    let cb = Ddp::connect_resume(&srv, &bob.token).await;
    let cc = Ddp::connect_resume(&srv, &carol.token).await;
    srv.wait_live_connections(2, WAIT).await;
    let own = srv.own_status(&bob).await;
    assert_eq!(
        (&own["status"], &own["connectionStatus"]),
        (&json!("offline"), &json!("online"))
    );
    cb.close().await;
    srv.wait_live_connections(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = history(&srv, &bob, "").await;
    assert_eq!(
        items(&body),
        vec![entry(
            &bob,
            Actor::User(&bob),
            ("offline", "offline"),
            ("", ""),
            "rest"
        )]
    );
    let body = history(&srv, &carol, "").await;
    assert_eq!(
        items(&body),
        vec![entry(
            &carol,
            Actor::User(&carol),
            ("offline", "busy"),
            ("", ""),
            "rest"
        )]
    );
    // carol's last connection closing does change what she shows.
    cc.close().await;
    let body = wait_total(&srv, &carol, 2).await;
    assert_eq!(
        items(&body)[0],
        entry(
            &carol,
            Actor::User(&carol),
            ("busy", "offline"),
            ("", ""),
            "connection"
        )
    );
}

// ------------------------------------------------------------- permissions

#[tokio::test]
async fn reading_another_users_history_needs_view_full_other_user_info() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;
    set_ok(
        &srv,
        &alice,
        json!({"status": "away", "message": "alice's"}),
    )
    .await;
    set_ok(&srv, &bob, json!({"status": "busy", "message": "bob's"})).await;

    // A plain user reading someone else: refused, whether or not they exist.
    for q in [
        format!("userId={}", enc(&alice.user_id)),
        "username=alice".to_string(),
        "username=ALICE".to_string(),
        "userId=nosuchuserid12345".to_string(),
        "username=nobody".to_string(),
    ] {
        let reply = srv.get(&format!("{ROUTE}?{q}"), Some(&bob)).await;
        assert_reply(&reply, 403, body_403());
    }
    // Their own, however named.
    for q in [
        String::new(),
        format!("userId={}", enc(&bob.user_id)),
        "username=bob".to_string(),
        "userId=".to_string(),
    ] {
        let body = history(&srv, &bob, &q).await;
        assert_eq!(body["total"], 1, "{q}: {body}");
        assert_eq!(
            body["items"][0]["userId"],
            bob.user_id.as_str(),
            "{q}: {body}"
        );
        assert_eq!(body["items"][0]["statusText"], "bob's", "{q}: {body}");
    }
    // Without a session.
    let reply = srv.get(&format!("{ROUTE}?username=alice"), None).await;
    assert_reply(&reply, 401, body_401());

    // The admin reads anyone, by id or by username ignoring case.
    for q in [
        format!("userId={}", enc(&alice.user_id)),
        "username=ALICE".to_string(),
    ] {
        let body = history(&srv, &admin, &q).await;
        assert_eq!(body["total"], 1, "{q}: {body}");
        assert_eq!(
            body["items"][0]["userId"],
            alice.user_id.as_str(),
            "{q}: {body}"
        );
        assert_eq!(body["items"][0]["statusText"], "alice's", "{q}: {body}");
    }
    // ... and an unknown user is a business error.
    let invalid_user = body_meteor(
        "error-invalid-user",
        "The required \"userId\" or \"username\" param provided does not match any users",
        ROUTE,
    );
    for q in ["userId=nosuchuserid12345", "username=nobody"] {
        let reply = srv.get(&format!("{ROUTE}?{q}"), Some(&admin)).await;
        assert_reply(&reply, 400, invalid_user.clone());
    }

    // Granting the permission to the user role lets bob read alice's.
    srv.set_permission("view-full-other-user-info", &["admin", "user"])
        .await;
    let body = history(&srv, &bob, "username=alice").await;
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["items"][0]["userId"], alice.user_id.as_str());
    // Taking it from every role of the admin (admin, user) refuses the admin, and bob.
    srv.set_permission("view-full-other-user-info", &["bot"])
        .await;
    for s in [&admin, &bob] {
        let reply = srv.get(&format!("{ROUTE}?username=alice"), Some(s)).await;
        assert_reply(&reply, 403, body_403());
    }
    // Their own stays readable.
    assert_eq!(history(&srv, &admin, "").await["total"], 0);
}

// ------------------------------------------------------------------ paging

/// Has the admin give alice seven changes with texts t0..t6; returns their times.
async fn seven_changes(srv: &Server, alice: &Session) -> Vec<DateTime<Utc>> {
    let admin = srv.admin().await;
    for i in 0..7 {
        let status = if i % 2 == 0 { "away" } else { "busy" };
        set_ok(
            srv,
            &admin,
            json!({"userId": alice.user_id, "status": status, "message": format!("t{i}")}),
        )
        .await;
        // Distinct millisecond times.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let body = history(srv, alice, "").await;
    assert_eq!(body["total"], 7, "{body}");
    let mut times: Vec<DateTime<Utc>> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| split_item(i).1)
        .collect();
    times.reverse();
    for w in times.windows(2) {
        assert!(w[0] < w[1], "entries share a time: {body}");
    }
    times
}

fn texts(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["statusText"].as_str().unwrap().to_string())
        .collect()
}

fn iso_ms(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[tokio::test]
async fn paging_with_offset_count_and_total() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    seven_changes(&srv, &alice).await;

    let all = history(&srv, &alice, "").await;
    assert_eq!(texts(&all), ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]);
    assert_eq!(
        (&all["offset"], &all["count"], &all["total"]),
        (&json!(0), &json!(7), &json!(7))
    );

    let page = history(&srv, &alice, "offset=2&count=3").await;
    assert_eq!(texts(&page), ["t4", "t3", "t2"]);
    assert_eq!(
        (&page["offset"], &page["count"], &page["total"]),
        (&json!(2), &json!(3), &json!(7))
    );
    assert_eq!(
        page["items"].as_array().unwrap()[..],
        all["items"].as_array().unwrap()[2..5]
    );

    let tail = history(&srv, &alice, "offset=5&count=5").await;
    assert_eq!(texts(&tail), ["t1", "t0"]);
    assert_eq!(
        (&tail["offset"], &tail["count"], &tail["total"]),
        (&json!(5), &json!(2), &json!(7))
    );

    let past = history(&srv, &alice, "offset=10").await;
    assert_eq!(texts(&past), Vec::<String>::new());
    assert_eq!(
        (&past["offset"], &past["count"], &past["total"]),
        (&json!(10), &json!(0), &json!(7))
    );

    let first = history(&srv, &alice, "count=1").await;
    assert_eq!(texts(&first), ["t6"]);
    assert_eq!(first["total"], 7);

    // Paging applies to another user's history too.
    let admin = srv.admin().await;
    let q = format!("userId={}&offset=1&count=2", enc(&alice.user_id));
    assert_eq!(texts(&history(&srv, &admin, &q).await), ["t5", "t4"]);

    for q in ["offset=x", "offset=-1", "count=many"] {
        let reply = srv.get(&format!("{ROUTE}?{q}"), Some(&alice)).await;
        assert_eq!(reply.0, 400, "{q}: {}", reply.2);
        assert_eq!(reply.2["success"], false, "{q}: {}", reply.2);
    }
}

#[tokio::test]
async fn from_and_to_filter_by_time_inclusively() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let times = seven_changes(&srv, &alice).await;
    let (t2, t4) = (iso_ms(&times[2]), iso_ms(&times[4]));

    let from = history(&srv, &alice, &format!("from={}", enc(&t2))).await;
    assert_eq!(texts(&from), ["t6", "t5", "t4", "t3", "t2"]);
    assert_eq!(from["total"], 5);

    let to = history(&srv, &alice, &format!("to={}", enc(&t4))).await;
    assert_eq!(texts(&to), ["t4", "t3", "t2", "t1", "t0"]);
    assert_eq!(to["total"], 5);

    let both = history(&srv, &alice, &format!("from={}&to={}", enc(&t2), enc(&t4))).await;
    assert_eq!(texts(&both), ["t4", "t3", "t2"]);
    assert_eq!(both["total"], 3);

    let paged = history(
        &srv,
        &alice,
        &format!("from={}&to={}&offset=1&count=1", enc(&t2), enc(&t4)),
    )
    .await;
    assert_eq!(texts(&paged), ["t3"]);
    assert_eq!(
        (&paged["offset"], &paged["count"], &paged["total"]),
        (&json!(1), &json!(1), &json!(3))
    );

    // The same instant with another offset.
    let t2_plus2 = times[2]
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string();
    let from = history(&srv, &alice, &format!("from={}", enc(&t2_plus2))).await;
    assert_eq!(from["total"], 5, "{t2_plus2}: {from}");

    // Nothing in the future, nothing before the first.
    let future = iso_ms(&(Utc::now() + chrono::Duration::hours(1)));
    assert_eq!(
        history(&srv, &alice, &format!("from={}", enc(&future))).await["total"],
        0
    );
    let before = iso_ms(&(times[0] - chrono::Duration::milliseconds(1)));
    assert_eq!(
        history(&srv, &alice, &format!("to={}", enc(&before))).await["total"],
        0
    );
    // from after to: empty, not an error.
    let body = history(&srv, &alice, &format!("from={}&to={}", enc(&t4), enc(&t2))).await;
    assert_eq!(body["total"], 0);

    // Not a date → 400.
    for (name, bad) in [
        ("from", "yesterday"),
        ("from", "2026-13-01T00:00:00Z"),
        ("to", "1700000000000"),
        ("to", "2026-01-01 10:00"),
    ] {
        let reply = srv
            .get(&format!("{ROUTE}?{name}={}", enc(bad)), Some(&alice))
            .await;
        assert_reply(
            &reply,
            400,
            body_meteor(
                "error-invalid-date",
                &format!("Invalid {name} date: expected an ISO 8601 time"),
                ROUTE,
            ),
        );
    }
}

// ----------------------------------------------------------------- pruning

/// Writes history rows for `user_id` straight into the (stopped) server's database,
/// `ages` old; texts `old-<i>` where `i` counts on from `first`.
fn insert_old_entries(srv: &Server, user_id: &str, first: usize, ages: &[chrono::Duration]) {
    const SQL: &str = "INSERT INTO status_history (id, user_id, actor_id, old_status, new_status,
            old_text, new_text, source, at)
         VALUES ($1, $2, $2, 'online', 'away', '', $3, 'rest', $4)";
    let rows: Vec<(String, String, i64)> = ages
        .iter()
        .enumerate()
        .map(|(i, age)| {
            let i = first + i;
            (
                format!("oldEntry{i:09}"),
                format!("old-{i}"),
                (Utc::now() - *age).timestamp_millis(),
            )
        })
        .collect();
    let url = srv.database_url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
        for (id, text, at) in &rows {
            conn.execute(SQL, rusqlite::params![id, user_id, text, at])
                .expect("insert a history row");
        }
    } else {
        // The synchronous client runs its own runtime: not on the test's runtime thread.
        let (url, user_id) = (url.to_string(), user_id.to_string());
        std::thread::spawn(move || {
            let mut client =
                postgres::Client::connect(&url, postgres::NoTls).expect("connect to PostgreSQL");
            for (id, text, at) in &rows {
                client
                    .execute(SQL, &[id, &user_id, text, at])
                    .expect("insert a history row");
            }
        })
        .join()
        .expect("the PostgreSQL insert thread");
    }
}

/// Polls the history of `s` until its texts are `want` (newest first).
async fn wait_texts(srv: &Server, s: &Session, want: &[&str]) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let body = history(srv, s, "").await;
        if texts(&body) == want {
            assert_eq!(body["total"], want.len(), "{body}");
            return;
        }
        if std::time::Instant::now() >= deadline {
            panic!("history texts are not {want:?} after {WAIT:?}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn entries_older_than_the_retention_are_pruned_at_start_up() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    set_ok(&srv, &alice, json!({"status": "away", "message": "recent"})).await;
    let days = chrono::Duration::days;
    let exit = srv.stop().await;
    assert!(exit.success());
    // Newest first once read back: old-3 (1 h), old-2 (2 d), old-1 (10 d), old-0 (40 d).
    insert_old_entries(
        &srv,
        &alice.user_id,
        0,
        &[days(40), days(10), days(2), chrono::Duration::hours(1)],
    );
    // Default retention: 30 days.
    srv.start_again().await;
    wait_texts(&srv, &alice, &["recent", "old-3", "old-2", "old-1"]).await;

    // Retention 1 day, applied at the next start-up.
    srv.set_setting("Status_History_Retention_Days", json!(1))
        .await;
    srv.restart().await;
    wait_texts(&srv, &alice, &["recent", "old-3"]).await;

    // 0 keeps everything.
    srv.set_setting("Status_History_Retention_Days", json!(0))
        .await;
    let exit = srv.stop().await;
    assert!(exit.success());
    insert_old_entries(&srv, &alice.user_id, 4, &[days(400)]);
    srv.start_again().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = history(&srv, &alice, "").await;
    assert_eq!(texts(&body), ["recent", "old-3", "old-4"], "{body}");
}

#[tokio::test]
async fn the_retention_setting_is_an_integer_setting_for_admins() {
    let srv = Server::start_with(&[("OVERWRITE_SETTING_Status_History_Retention_Days", "7")]).await;
    let admin = srv.admin().await;
    let (status, _, body) = srv
        .get("settings/Status_History_Retention_Days", Some(&admin))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"_id": "Status_History_Retention_Days", "value": 7, "success": true})
    );
    let reply = srv
        .post_json(
            "settings/Status_History_Retention_Days",
            Some(&admin),
            json!({"value": "7"}),
        )
        .await;
    assert_eq!(reply.0, 400, "{}", reply.2);
    srv.set_setting("Status_History_Retention_Days", json!(30))
        .await;
    let (_, _, body) = srv
        .get("settings/Status_History_Retention_Days", Some(&admin))
        .await;
    assert_eq!(body["value"], 30);
    let bob = srv.create_user("bob", "bob-pass-12", &["user"]).await;
    let reply = srv
        .post_json(
            "settings/Status_History_Retention_Days",
            Some(&bob),
            json!({"value": 1}),
        )
        .await;
    // settings/:_id declares its permission: Rocket.Chat's declared-permission 403.
    assert_reply(&reply, 403, body_403_declared());
}
