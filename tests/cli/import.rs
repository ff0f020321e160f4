//! `statusd import rocketchat USERS.json`, black-box, with a fixture shaped like a real
//! mongoexport of Rocket.Chat's `users` collection (tests/fixtures/README.md).

use crate::cli_support;
use crate::common;

use cli_support::*;
use common::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rocketchat-users.json"
);

fn counts(line: &str) -> (usize, usize, usize, usize) {
    // "imported Rocket.Chat users: C created, U updated, N unchanged, S skipped; T personal access tokens"
    let num = |word: &str| -> usize {
        let before = line
            .split(&format!(" {word}"))
            .next()
            .unwrap_or_else(|| panic!("no {word} in {line}"));
        before
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count before {word} in {line}"))
    };
    (
        num("created"),
        num("updated"),
        num("unchanged"),
        num("skipped"),
    )
}

async fn all_users(srv: &Server) -> Vec<Value> {
    let admin = srv.admin().await;
    let (status, _, body) = srv.get("users.list?count=100", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["users"].as_array().unwrap().clone()
}

/// users.info as the admin, or `null` while the user is unknown.
async fn info(srv: &Server, user_id: &str) -> Value {
    let admin = srv.admin().await;
    let (_, _, body) = srv
        .get(&format!("users.info?userId={}", enc(user_id)), Some(&admin))
        .await;
    body["user"].clone()
}

async fn by_username(srv: &Server, username: &str) -> Value {
    let found: Vec<Value> = all_users(srv)
        .await
        .into_iter()
        .filter(|u| {
            u["username"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(username)
        })
        .collect();
    assert_eq!(found.len(), 1, "exactly one {username}: {found:?}");
    found[0].clone()
}

#[tokio::test]
async fn a_rocketchat_export_is_imported_and_people_log_in_with_their_passwords() {
    let mut srv = Server::start().await;
    let db = srv.database_url().to_string();
    srv.stop().await;

    let out = statusd(&db, &["import", "rocketchat", FIXTURE]);
    let line = out.line().to_string();
    // alice, bob, carol, dave, deploy-bot created; rocket.cat (already there) skipped
    // without --update-existing; the entry without a username skipped.
    assert_eq!(counts(&line), (5, 0, 0, 2), "{line}\n{}", out.stderr);
    assert!(
        out.stderr
            .contains("entry 1 (rocket.cat): rocket.cat exists already: skipped"),
        "{}",
        out.stderr
    );
    assert!(line.ends_with("1 personal access tokens"), "{line}");
    assert!(
        out.stderr
            .contains("entry 7 (nOuSeRnAmE1234567) has no username: skipped"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("support-lead"), "{}", out.stderr);

    srv.start_again().await;

    // Existing Rocket.Chat passwords work: a $2b$ hash (alice) and a $2a$ one (bob).
    let alice = srv.login("alice", "Wonderland-1865").await;
    assert_eq!(
        alice.user_id, "aLiCe2x7Q9pR4sT6v",
        "Rocket.Chat's _id is kept"
    );
    let bob = srv.login("bob@example.org", "Looking-Glass-1871").await;
    assert_eq!(bob.user_id, "b0bHx4Ke8Wm3Nq5Yr");
    // A digest login (what DDP clients send) verifies against the same hash.
    let (status, _, body) = srv
        .post_json(
            "login",
            None,
            json!({"user": "alice", "password": {"digest": sha256_hex("Wonderland-1865"), "algorithm": "sha-256"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // carol is inactive: her right password is refused.
    let (status, _, _) = srv
        .post_json(
            "login",
            None,
            json!({"user": "carol", "password": "Wonderland-1865"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // alice is an admin of statusd now, with what she had in Rocket.Chat.
    let (status, _, me) = srv.get("me", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "Alice Liddell");
    assert_eq!(me["roles"], json!(["user", "admin"]));
    assert_eq!(
        me["emails"],
        json!([{"address": "alice@wonderland.example", "verified": true}])
    );
    assert_eq!(me["utcOffset"], json!(1.0));
    assert_eq!(me["createdAt"], "2021-06-02T09:15:00.000Z");
    // Her preferences: the keys statusd knows (extended JSON numbers read as numbers);
    // the others left out with a warning.
    assert_eq!(
        me["settings"]["preferences"],
        json!({"language": "en", "enableAutoAway": false, "idleTimeLimit": 900}),
        "{me}"
    );
    assert!(
        out.stderr.contains(
            "entry 2 (alice): preferences left out (unknown to statusd or refused): sidebarHideAvatar"
        ),
        "{}",
        out.stderr
    );
    let (status, _, _) = srv.get("users.list", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);

    // Statuses as imported.
    let st = srv.status_of("aLiCe2x7Q9pR4sT6v").await;
    assert_eq!(st["status"], "busy", "{st}");
    let a = srv.info_of("aLiCe2x7Q9pR4sT6v").await;
    assert_eq!(a["statusText"], "Down the rabbit hole");
    assert_eq!(a["statusDefault"], "busy");
    assert_eq!(a["statusConnection"], "offline");
    // bob was connected to Rocket.Chat: that connection does not carry over.
    let b = srv.info_of("b0bHx4Ke8Wm3Nq5Yr").await;
    assert_eq!(
        (
            b["status"].as_str(),
            b["statusDefault"].as_str(),
            b["statusConnection"].as_str()
        ),
        (Some("offline"), Some("online"), Some("offline")),
        "{b}"
    );
    assert_eq!(b["utcOffset"], json!(-5.0));
    assert_eq!(b["createdAt"], "2021-06-03T09:05:00.000Z");
    let d = by_username(&srv, "dave").await;
    assert_eq!(
        (d["status"].as_str(), d["statusText"].as_str()),
        (Some("away"), Some("Reviewing pull requests"))
    );
    assert_eq!(d["roles"], json!(["user"]), "the unknown role is left out");
    let c = by_username(&srv, "carol").await;
    assert_eq!(c["active"], false);
    let bot = by_username(&srv, "deploy-bot").await;
    assert_eq!(
        (bot["type"].as_str(), bot["roles"].clone()),
        (Some("bot"), json!(["bot"]))
    );
    let cat = by_username(&srv, "rocket.cat").await;
    assert_eq!(cat["_id"], "rocket.cat");
    assert_eq!(
        all_users(&srv).await.len(),
        7,
        "admin, rocket.cat and the five imported"
    );

    // The bot's personal access token from Rocket.Chat still works.
    let bot_session = Session {
        user_id: "dEpLoYbOt7Gh2Jk4L".into(),
        token: "deploy-bot-pat-0123456789abcdefghijklmnopqrstuv".into(),
        username: "deploy-bot".into(),
    };
    let (status, _, body) = srv.get("me", Some(&bot_session)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "deploy-bot");
}

#[tokio::test]
async fn importing_again_updates_instead_of_duplicating() {
    let mut srv = Server::start().await;
    let db = srv.database_url().to_string();
    let update = ["import", "rocketchat", "--update-existing", FIXTURE];
    let first = statusd(&db, &update);
    assert_eq!(counts(first.line()).0, 5, "{first:?}");
    if is_postgres(&db) {
        srv.restart().await;
    }
    eventually("bob is imported", || async {
        let b = info(&srv, "b0bHx4Ke8Wm3Nq5Yr").await;
        (b["lastLogin"] == "2024-05-01T10:00:00.000Z")
            .then_some(())
            .ok_or(format!("{b}"))
    })
    .await;

    // The same file again: nothing new, nothing changed.
    let again = statusd(&db, &update);
    assert_eq!(counts(again.line()), (0, 0, 6, 1), "{again:?}");
    assert!(
        again.line().ends_with("0 personal access tokens"),
        "{again:?}"
    );

    // A later export, as a JSON array (mongoexport --jsonArray): alice changed her
    // status and name; "BOB" arrives with another _id and is matched by username
    // (ignoring case); erin is new.
    let later = srv.data_dir().join("later.json");
    std::fs::write(
        &later,
        json!([
            {"_id": "aLiCe2x7Q9pR4sT6v", "username": "alice", "name": "Alice L.",
             "emails": [{"address": "alice@wonderland.example", "verified": true}],
             "roles": ["user", "admin"], "type": "user", "active": true,
             "status": "away", "statusDefault": "away", "statusText": "Through the looking glass",
             "statusConnection": "offline", "utcOffset": 1,
             "services": {"password": {"bcrypt": "$2b$10$p6Y8iZ9Bt.KlAQ7tBKOKDeOSgG6uf.b3j11RY/qWd/MJ42AgkLcdq"}}},
            {"_id": {"$oid": "65f0c0ffee0000000000b0b0"}, "username": "BOB", "name": "Robert Tables",
             "type": "user", "active": true, "roles": ["user"], "status": "offline",
             "statusDefault": "busy", "statusText": "heads down"},
            {"_id": "eRiN4Fg6Hj8Kl2Zx3", "username": "erin", "name": "Erin",
             "type": "user", "active": true, "roles": ["user"],
             "createdAt": {"$date": 1714557600000i64}, "status": "online", "statusDefault": "online",
             "statusConnection": "offline"}
        ])
        .to_string(),
    )
    .unwrap();
    // The server is running: it picks the changes up by itself (SQLite).
    let out = statusd(
        &db,
        &[
            "import",
            "rocketchat",
            "--update-existing",
            later.to_str().unwrap(),
        ],
    );
    assert_eq!(counts(out.line()), (1, 2, 0, 0), "{out:?}");
    if is_postgres(&db) {
        srv.restart().await;
    }
    eventually("alice's new status", || async {
        let a = info(&srv, "aLiCe2x7Q9pR4sT6v").await;
        if a["statusText"] == "Through the looking glass"
            && a["status"] == "away"
            && a["name"] == "Alice L."
        {
            Ok(())
        } else {
            Err(format!("{a}"))
        }
    })
    .await;
    let bob = by_username(&srv, "bob").await;
    assert_eq!(bob["_id"], "b0bHx4Ke8Wm3Nq5Yr", "bob keeps his id");
    // Issue 17: a case-only difference is the same name, not a rename.
    assert_eq!(bob["username"], "bob");
    assert_eq!(bob["name"], "Robert Tables");
    assert_eq!(bob["statusText"], "heads down");
    assert_eq!(bob["status"], "offline");
    // Not in the later export: bob's password and email stay as they were.
    srv.login("bob@example.org", "Looking-Glass-1871").await;
    let erin = by_username(&srv, "erin").await;
    assert_eq!(erin["_id"], "eRiN4Fg6Hj8Kl2Zx3");
    assert_eq!(erin["createdAt"], "2024-05-01T10:00:00.000Z");
    assert_eq!(all_users(&srv).await.len(), 8, "no duplicates");
}

#[tokio::test]
async fn an_unreadable_export_changes_nothing() {
    let srv = Server::start().await;
    let db = srv.database_url().to_string();
    let bad = srv.data_dir().join("bad.json");
    std::fs::write(&bad, "{\"_id\": \"a\", \"username\": \"x\"}\n{not json").unwrap();
    let err = statusd(&db, &["import", "rocketchat", bad.to_str().unwrap()])
        .error()
        .to_string();
    assert!(
        err.starts_with("reading ") && err.contains("document 2 is not JSON"),
        "{err}"
    );
    let missing = statusd(&db, &["import", "rocketchat", "/nonexistent/users.json"]);
    assert!(
        missing
            .error()
            .starts_with("reading /nonexistent/users.json"),
        "{missing:?}"
    );
    assert_eq!(all_users(&srv).await.len(), 2);
}

/// Issue 14.12: an export cannot take over existing accounts, give rocket.cat the admin
/// role or a password, smuggle in fields the API refuses, or exhaust memory.
#[tokio::test]
async fn an_export_cannot_take_over_accounts_or_exhaust_memory() {
    let srv = Server::start().await;
    let db = srv.database_url().to_string();
    let admin_before = srv.info_of(&srv.admin().await.user_id).await;
    let evil = srv.data_dir().join("evil.json");
    // bob's password hash from the fixture ("Looking-Glass-1871").
    let hash = "$2a$10$muo6Wz/Fzk7Cje34F9dcheK.LJ8ZcRM6AhG0o7j1iQH8hluTygvtK";
    let lines = [
        json!({"_id": "evil1", "username": "ADMIN", "name": "Owned", "roles": ["admin", "user"],
               "emails": [{"address": "evil@example.com", "verified": true}],
               "services": {"password": {"bcrypt": hash},
                            "resume": {"loginTokens": [{"type": "personalAccessToken", "name": "x",
                                        "hashedToken": "AAAA", "lastTokenPart": "aaaaaa"}]}}}),
        json!({"_id": "rocket.cat", "username": "rocket.cat", "roles": ["admin", "bot"],
               "type": "bot", "services": {"password": {"bcrypt": hash}}}),
        json!({"_id": "big1", "username": "big", "name": "n".repeat(2_000_000)}),
        json!({"_id": "tz1", "username": "tz", "utcOffset": 1e308}),
        json!({"_id": "bad1", "username": "\u{430}dmin"}),
        json!({"_id": "ok1", "username": "fine", "name": "Fine \u{202E}One", "bio": "Hi"}),
    ];
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&evil, text.join("\n")).unwrap();

    // Without --update-existing: ADMIN and rocket.cat are skipped; the bad fields skip
    // their entries; only "fine" is created.
    let out = statusd(&db, &["import", "rocketchat", evil.to_str().unwrap()]);
    assert_eq!(counts(out.line()), (1, 0, 0, 5), "{out:?}");
    for why in [
        "entry 1 (ADMIN): admin exists already: skipped",
        "entry 3 (big): name: Name size exceeds 120 characters [error-name-size-exceeded]: skipped",
        "entry 4 (tz): utcOffset: not an offset from -12 to 14 hours: skipped",
        "entry 5 (\u{430}dmin): \u{430}dmin is not a valid username [error-input-is-not-a-valid-field]: skipped",
    ] {
        assert!(out.stderr.contains(why), "{why}\n{}", out.stderr);
    }
    let admin_after = srv.info_of(&srv.admin().await.user_id).await;
    assert_eq!(admin_after["emails"], admin_before["emails"]);
    assert_eq!(admin_after["name"], admin_before["name"]);
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "admin", "password": "Looking-Glass-1871"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());
    eventually("fine is imported", || async {
        let fine = info(&srv, "ok1").await;
        (fine["name"] == "Fine One" && fine["bio"] == "Hi")
            .then_some(())
            .ok_or(format!("{fine}"))
    })
    .await;

    // With it, rocket.cat still gets neither the admin role nor a password.
    let out = statusd(
        &db,
        &[
            "import",
            "rocketchat",
            "--update-existing",
            evil.to_str().unwrap(),
        ],
    );
    assert!(
        out.stderr
            .contains("entry 2 (rocket.cat): rocket.cat keeps its roles and password"),
        "{}",
        out.stderr
    );
    let cat = srv.info_of("rocket.cat").await;
    assert_eq!(cat["roles"], json!(["bot"]), "{cat}");
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "rocket.cat", "password": "Looking-Glass-1871"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());

    // A bounded, streamed read: an endless stream and an oversized file are refused.
    let zero = statusd(&db, &["import", "rocketchat", "/dev/zero"]);
    assert!(zero.error().contains("document 1 is not JSON"), "{zero:?}");
    let small = statusd(
        &db,
        &["import", "rocketchat", "--max-bytes", "100", FIXTURE],
    );
    assert!(
        small
            .error()
            .contains("the export is larger than 100 bytes"),
        "{small:?}"
    );
}

/// Issue 17: alice exists in statusd, busy with "focus time" set over REST.
async fn busy_alice(srv: &Server) -> Session {
    let alice = srv.create_user("alice", "Wonderland-1865", &["user"]).await;
    let (status, _, body) = srv
        .set_status(&alice, json!({"status": "busy", "message": "focus time"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    alice
}

/// Writes `docs` as a JSON-lines export and imports it with `--update-existing`;
/// returns the summary line.
async fn import_update(srv: &mut Server, name: &str, docs: &[Value]) -> String {
    let db = srv.database_url().to_string();
    let path = srv.data_dir().join(name);
    let text: Vec<String> = docs.iter().map(Value::to_string).collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    let out = statusd(
        &db,
        &[
            "import",
            "rocketchat",
            "--update-existing",
            path.to_str().unwrap(),
        ],
    );
    if is_postgres(&db) {
        srv.restart().await;
    }
    out.line().to_string()
}

/// `users.statusHistory` of `user_id` as the admin: (total, items without `_id` and
/// `createdAt`, newest first).
async fn status_history(srv: &Server, user_id: &str) -> (u64, Vec<Value>) {
    let admin = srv.admin().await;
    let (status, _, body) = srv
        .get(
            &format!("users.statusHistory?userId={}&count=50", enc(user_id)),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let mut i = i.clone();
            let o = i.as_object_mut().unwrap();
            o.remove("_id");
            o.remove("createdAt");
            i
        })
        .collect();
    (body["total"].as_u64().unwrap(), items)
}

#[tokio::test]
async fn an_export_without_status_fields_keeps_the_status_statusd_has() {
    let mut srv = Server::start().await;
    let alice = busy_alice(&srv).await;
    assert_eq!(status_history(&srv, &alice.user_id).await.0, 1);
    let line = import_update(
        &mut srv,
        "no-status.json",
        &[
            json!({"_id": "aLiCe2x7Q9pR4sT6v", "username": "alice", "name": "Alice Liddell",
                 "type": "user", "active": true, "roles": ["user"]}),
        ],
    )
    .await;
    assert_eq!(counts(&line), (0, 1, 0, 0), "{line}");
    eventually("alice's new name", || async {
        let a = info(&srv, &alice.user_id).await;
        (a["name"] == "Alice Liddell")
            .then_some(())
            .ok_or(format!("{a}"))
    })
    .await;
    let a = info(&srv, &alice.user_id).await;
    assert_eq!(
        a["_id"],
        json!(alice.user_id),
        "matched by username, id kept"
    );
    assert_eq!(a["status"], "busy", "{a}");
    assert_eq!(a["statusText"], "focus time", "{a}");
    let st = srv.status_of(&alice.user_id).await;
    assert_eq!(st["status"], "busy", "{st}");
    // No status change, so nothing new in the history.
    assert_eq!(status_history(&srv, &alice.user_id).await.0, 1);
}

#[tokio::test]
async fn a_case_only_username_difference_does_not_rename() {
    let mut srv = Server::start().await;
    let alice = busy_alice(&srv).await;
    let line = import_update(
        &mut srv,
        "capital.json",
        &[
            json!({"_id": "aLiCe2x7Q9pR4sT6v", "username": "Alice", "name": "Alice L.",
                 "type": "user", "active": true, "roles": ["user"]}),
        ],
    )
    .await;
    assert_eq!(counts(&line), (0, 1, 0, 0), "{line}");
    eventually("alice's new name", || async {
        let a = info(&srv, &alice.user_id).await;
        (a["name"] == "Alice L.")
            .then_some(())
            .ok_or(format!("{a}"))
    })
    .await;
    let a = by_username(&srv, "alice").await;
    assert_eq!(a["_id"], json!(alice.user_id));
    assert_eq!(a["username"], "alice");
    // She still logs in under the name she has.
    srv.login("alice", "Wonderland-1865").await;
    // The same export again changes nothing.
    let again = import_update(
        &mut srv,
        "capital.json",
        &[
            json!({"_id": "aLiCe2x7Q9pR4sT6v", "username": "Alice", "name": "Alice L.",
                 "type": "user", "active": true, "roles": ["user"]}),
        ],
    )
    .await;
    assert_eq!(counts(&again), (0, 0, 1, 0), "{again}");
}

#[tokio::test]
async fn every_status_change_of_an_import_is_in_the_history_with_source_import() {
    let mut srv = Server::start().await;
    let alice = busy_alice(&srv).await;
    let export = [
        json!({"_id": "aLiCe2x7Q9pR4sT6v", "username": "alice", "name": "alice",
               "type": "user", "active": true, "roles": ["user"],
               "status": "away", "statusDefault": "away", "statusText": "lunch",
               "statusConnection": "offline"}),
        json!({"_id": "eRiN4Fg6Hj8Kl2Zx3", "username": "erin", "name": "Erin",
               "type": "user", "active": true, "roles": ["user"],
               "status": "busy", "statusDefault": "busy", "statusText": "on call",
               "statusConnection": "offline"}),
    ];
    let line = import_update(&mut srv, "changes.json", &export).await;
    assert_eq!(counts(&line), (1, 1, 0, 0), "{line}");
    eventually("alice's imported status", || async {
        let a = info(&srv, &alice.user_id).await;
        (a["status"] == "away" && a["statusText"] == "lunch")
            .then_some(())
            .ok_or(format!("{a}"))
    })
    .await;
    let (total, items) = status_history(&srv, &alice.user_id).await;
    assert_eq!(total, 2, "{items:?}");
    assert_eq!(
        items[0],
        json!({"userId": alice.user_id, "username": "alice",
               "actorId": null, "actorUsername": null,
               "previousStatus": "busy", "status": "away",
               "previousStatusText": "focus time", "statusText": "lunch",
               "source": "import"})
    );
    // A new user's imported status is a change from how a new user starts.
    let (total, items) = status_history(&srv, "eRiN4Fg6Hj8Kl2Zx3").await;
    assert_eq!(total, 1, "{items:?}");
    assert_eq!(
        items[0],
        json!({"userId": "eRiN4Fg6Hj8Kl2Zx3", "username": "erin",
               "actorId": null, "actorUsername": null,
               "previousStatus": "offline", "status": "busy",
               "previousStatusText": "", "statusText": "on call",
               "source": "import"})
    );
    // The same export again: no change, no entry.
    let again = import_update(&mut srv, "changes.json", &export).await;
    assert_eq!(counts(&again), (0, 0, 2, 0), "{again}");
    assert_eq!(status_history(&srv, &alice.user_id).await.0, 2);
    assert_eq!(status_history(&srv, "eRiN4Fg6Hj8Kl2Zx3").await.0, 1);
}
