//! The read routes of CONTRACT §4: users.getStatus, users.getPresence, users.presence
//! and users.info, with their exact shapes, against the real binary.

use crate::common;

use std::path::Path;

use common::*;

fn invalid_user(route: &str) -> Value {
    body_meteor(
        "error-invalid-user",
        "The required \"userId\" or \"username\" param provided does not match any users",
        route,
    )
}

fn ok() -> Value {
    json!({"success": true})
}

/// The ids of the `users` array of a users.presence answer, sorted.
fn ids(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = body["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users array: {body}"))
        .iter()
        .map(|u| u["_id"].as_str().expect("_id").to_string())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort();
    v.into_iter().map(str::to_string).collect()
}

// ----------------------------------------------------------- users.getStatus

#[tokio::test]
async fn get_status_of_self_and_of_others() {
    let srv = Server::start().await;
    let amy = srv.create_user("amy", "amy-pass-1", &["user"]).await;
    let ben_id = srv.create_user_only("Ben", "ben-pass-1", &["user"]).await;

    // Self, fresh: status and connectionStatus default to offline; no source/expiry.
    let want_self = json!({"_id": amy.user_id, "status": "offline", "connectionStatus": "offline", "success": true});
    for path in [
        "users.getStatus".to_string(),
        format!("users.getStatus?userId={}", amy.user_id),
        "users.getStatus?username=amy".to_string(),
        "users.getStatus?user=amy".to_string(),
        "users.getStatus?userId=&username=".to_string(),
    ] {
        let r = srv.get(&path, Some(&amy)).await;
        assert_eq!((r.0.as_u16(), &r.2), (200, &want_self), "{path}");
    }

    // Another user: without connectionStatus, by id, by username in any case, by user.
    let want_other = json!({"_id": ben_id, "status": "offline", "success": true});
    for path in [
        format!("users.getStatus?userId={ben_id}"),
        "users.getStatus?username=Ben".to_string(),
        "users.getStatus?username=bEN".to_string(),
        "users.getStatus?user=ben".to_string(),
    ] {
        let r = srv.get(&path, Some(&amy)).await;
        assert_eq!((r.0.as_u16(), &r.2), (200, &want_other), "{path}");
    }

    // After a change: the displayed status, statusSource and statusExpiresAt.
    let admin = srv.admin().await;
    let when = iso_from_now(1800);
    let r = srv
        .set_status(
            &admin,
            json!({"userId": ben_id, "status": "busy", "expiresAt": when}),
        )
        .await;
    assert_reply(&r, 200, ok());
    let r = srv
        .get(&format!("users.getStatus?userId={ben_id}"), Some(&amy))
        .await;
    assert_reply(
        &r,
        200,
        json!({"_id": ben_id, "status": "busy", "statusSource": "manual", "statusExpiresAt": when, "success": true}),
    );

    // The bot exists from the start, with id rocket.cat.
    let r = srv
        .get("users.getStatus?userId=rocket.cat", Some(&amy))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["_id"], "rocket.cat");
    assert!(r.2.get("connectionStatus").is_none(), "{}", r.2);
    let r = srv
        .get("users.getStatus?username=rocket.cat", Some(&amy))
        .await;
    assert_eq!(r.2["_id"], "rocket.cat", "{}", r.2);
}

#[tokio::test]
async fn get_status_errors() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    for path in [
        "users.getStatus?userId=nosuchuserid12345",
        "users.getStatus?username=nobody",
        "users.getStatus?user=nobody",
    ] {
        let r = srv.get(path, Some(&admin)).await;
        assert_eq!(
            (r.0.as_u16(), &r.2),
            (400, &invalid_user("users.getStatus")),
            "{path}"
        );
    }
    let r = srv.get("users.getStatus", None).await;
    assert_reply(&r, 401, body_401());
    let r = srv
        .get("users.getStatus", Some(&admin.with_token("bogus")))
        .await;
    assert_reply(&r, 401, body_401());
}

// --------------------------------------------------------- users.getPresence

#[tokio::test]
async fn get_presence_of_self_and_of_others() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    let cid = srv.create_user("cid", "cid-pass-1", &["user"]).await;
    let after = chrono::Utc::now() + chrono::Duration::seconds(2);

    // Self: presence, connectionStatus, and lastLogin recorded by the login.
    for path in [
        "users.getPresence".to_string(),
        format!("users.getPresence?userId={}", cid.user_id),
        "users.getPresence?username=cid".to_string(),
    ] {
        let r = srv.get(&path, Some(&cid)).await;
        assert_status(&r, 200);
        let body = r.2.as_object().unwrap();
        let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["connectionStatus", "lastLogin", "presence", "success"],
            "{path}: {}",
            r.2
        );
        assert_eq!(r.2["presence"], "offline");
        assert_eq!(r.2["connectionStatus"], "offline");
        assert_eq!(r.2["success"], true);
        let last = parse_time(r.2["lastLogin"].as_str().unwrap());
        assert!(
            before <= last && last <= after,
            "lastLogin {last} not within the login"
        );
    }

    // Another user: only presence.
    let r = srv
        .set_status(&admin, json!({"userId": cid.user_id, "status": "away"}))
        .await;
    assert_reply(&r, 200, ok());
    let r = srv
        .get(
            &format!("users.getPresence?userId={}", cid.user_id),
            Some(&admin),
        )
        .await;
    assert_reply(&r, 200, json!({"presence": "away", "success": true}));
    let r = srv
        .get("users.getPresence?username=CID", Some(&admin))
        .await;
    assert_reply(&r, 200, json!({"presence": "away", "success": true}));
    let r = srv.get("users.getPresence", Some(&cid)).await;
    assert_eq!(r.2["presence"], "away", "{}", r.2);

    // Invisible shows as offline to others.
    srv.set_status(&cid, json!({"status": "offline"})).await;
    let r = srv
        .get(
            &format!("users.getPresence?userId={}", cid.user_id),
            Some(&admin),
        )
        .await;
    assert_reply(&r, 200, json!({"presence": "offline", "success": true}));

    // Unknown users and anonymous callers.
    let r = srv
        .get("users.getPresence?userId=nosuchuserid12345", Some(&cid))
        .await;
    assert_status(&r, 400);
    assert_eq!(r.2["errorType"], "error-invalid-user", "{}", r.2);
    let r = srv.get("users.getPresence", None).await;
    assert_reply(&r, 401, body_401());
}

#[tokio::test]
async fn get_presence_without_login_has_no_last_login() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let id = srv.create_user_only("dee", "dee-pass-1", &["user"]).await;
    // Another user's presence never includes lastLogin, logged in or not.
    let r = srv
        .get(&format!("users.getPresence?userId={id}"), Some(&admin))
        .await;
    assert_reply(&r, 200, json!({"presence": "offline", "success": true}));
}

// ------------------------------------------------------------ users.presence

#[tokio::test]
async fn presence_with_ids_in_every_encoding() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let a = srv.create_user_only("pa", "pa-pass-1", &["user"]).await;
    let b = srv.create_user_only("pb", "pb-pass-1", &["user"]).await;
    let c = srv.create_user_only("pc", "pc-pass-1", &["user"]).await;
    let d = srv.create_user_only("pd", "pd-pass-1", &["user"]).await;
    // a busy; b offline with a status text; c untouched (offline, no text);
    // d invisible (offline, no text).
    for body in [
        json!({"userId": a, "status": "busy", "message": "deep work"}),
        json!({"userId": b, "message": "on leave"}),
        json!({"userId": d, "status": "offline"}),
    ] {
        assert_reply(&srv.set_status(&admin, body).await, 200, ok());
    }

    let want = sorted(vec![&a, &b]);
    for query in [
        format!("ids[]={a}&ids[]={b}&ids[]={c}&ids[]={d}"),
        format!("ids%5B%5D={a}&ids%5B%5D={b}&ids%5B%5D={c}&ids%5B%5D={d}"),
        format!("ids%5b%5d={a}&ids%5b%5d={b}&ids%5b%5d={c}&ids%5b%5d={d}"),
        format!("ids={a}&ids={b}&ids={c}&ids={d}"),
        format!("ids={a},{b},{c},{d}"),
        format!("ids={a}%2C{b}%2C{c}%2C{d}"),
        format!("ids={a},{b}&ids[]={c}&ids={d},nosuchuserid12345"),
    ] {
        let r = srv
            .get(&format!("users.presence?{query}"), Some(&admin))
            .await;
        assert_status(&r, 200);
        assert_eq!(r.2["full"], false, "{query}: {}", r.2);
        assert_eq!(r.2["success"], true, "{query}: {}", r.2);
        assert_eq!(ids(&r.2), want, "{query}: {}", r.2);
    }

    // The entries: exactly these fields.
    let r = srv
        .get(&format!("users.presence?ids={a},{b}"), Some(&admin))
        .await;
    let users = r.2["users"].as_array().unwrap();
    let ea = users.iter().find(|u| u["_id"] == a.as_str()).unwrap();
    // utcOffset is a number (0 and 0.0 are the same to a JSON client).
    assert_eq!(ea["utcOffset"].as_f64(), Some(0.0), "{ea}");
    let mut ea = ea.clone();
    ea["utcOffset"] = json!(0);
    assert_eq!(
        ea,
        json!({"_id": a, "username": "pa", "name": "pa Name", "status": "busy",
               "statusText": "deep work", "utcOffset": 0, "statusSource": "manual"}),
    );
    let eb = users.iter().find(|u| u["_id"] == b.as_str()).unwrap();
    assert_eq!(eb["status"], "offline", "{eb}");
    assert_eq!(eb["statusText"], "on leave", "{eb}");

    // Unknown ids only, or none: an empty list.
    let r = srv
        .get("users.presence?ids=nosuchuserid12345", Some(&admin))
        .await;
    assert_reply(
        &r,
        200,
        json!({"users": [], "full": false, "success": true}),
    );
    let r = srv
        .get(&format!("users.presence?ids={c}"), Some(&admin))
        .await;
    assert_reply(
        &r,
        200,
        json!({"users": [], "full": false, "success": true}),
    );

    let r = srv.get("users.presence", None).await;
    assert_reply(&r, 401, body_401());
}

#[tokio::test]
async fn presence_full_and_incremental() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let viewer = srv.create_user("viewer", "viewer-pass-1", &["user"]).await;
    let early = srv
        .create_user_only("early", "early-pass-1", &["user"])
        .await;
    let late = srv.create_user_only("late", "late-pass-1", &["user"]).await;
    let quiet = srv
        .create_user_only("quiet", "quiet-pass-1", &["user"])
        .await;
    assert_reply(
        &srv.set_status(&admin, json!({"userId": early, "status": "away"}))
            .await,
        200,
        ok(),
    );

    // Without `from`: everybody not offline, full.
    let r = srv.get("users.presence", Some(&viewer)).await;
    assert_status(&r, 200);
    assert_eq!(r.2["full"], true, "{}", r.2);
    let all = ids(&r.2);
    assert!(all.contains(&early), "{}", r.2);
    assert!(all.contains(&"rocket.cat".to_string()), "{}", r.2);
    assert!(!all.contains(&late) && !all.contains(&quiet), "{}", r.2);
    assert!(!all.contains(&viewer.user_id), "{}", r.2);

    // `from` a moment ago: only the users changed since then, not the caller itself.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let from = iso_from_now(0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for (who, body) in [
        (
            &admin,
            json!({"userId": late, "status": "busy", "message": "late"}),
        ),
        (&viewer, json!({"status": "away", "message": "me"})),
    ] {
        assert_reply(&srv.set_status(who, body).await, 200, ok());
    }
    let r = srv
        .get(
            &format!("users.presence?from={}", enc(&from)),
            Some(&viewer),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["full"], false, "{}", r.2);
    assert_eq!(ids(&r.2), vec![late.clone()], "{}", r.2);
    let entry = &r.2["users"][0];
    assert_eq!(entry["status"], "busy", "{entry}");
    assert_eq!(entry["statusText"], "late", "{entry}");
    assert_eq!(entry["username"], "late", "{entry}");
    // Seen by the admin, the viewer's change is there (it is not the admin's own).
    let r = srv
        .get(&format!("users.presence?from={}", enc(&from)), Some(&admin))
        .await;
    assert_eq!(ids(&r.2), sorted(vec![&late, &viewer.user_id]), "{}", r.2);

    // `from` longer than 10 minutes ago: the full list again.
    let old = iso_from_now(-11 * 60);
    let r = srv
        .get(&format!("users.presence?from={}", enc(&old)), Some(&viewer))
        .await;
    assert_eq!(r.2["full"], true, "{}", r.2);
    let all = ids(&r.2);
    assert!(all.contains(&early) && all.contains(&late), "{}", r.2);
    assert!(!all.contains(&quiet), "{}", r.2);
    // An unparsable `from` is treated like none.
    let r = srv
        .get("users.presence?from=yesterday", Some(&viewer))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["full"], true, "{}", r.2);
    // `from` within the window, nine minutes ago: incremental.
    let recent = iso_from_now(-9 * 60);
    let r = srv
        .get(
            &format!("users.presence?from={}", enc(&recent)),
            Some(&viewer),
        )
        .await;
    assert_eq!(r.2["full"], false, "{}", r.2);
    assert!(ids(&r.2).contains(&late), "{}", r.2);
}

// ---------------------------------------------------------------- users.info

const PRIVATE_FIELDS: &[&str] = &[
    "statusConnection",
    "roles",
    "emails",
    "lastLogin",
    "createdAt",
];

#[tokio::test]
async fn info_self_sees_everything_others_see_the_public_part() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let eli = srv.create_user("eli", "eli-pass-1", &["user"]).await;
    let fay = srv.create_user("fay", "fay-pass-1", &["user"]).await;
    srv.set_status(&fay, json!({"status": "busy", "message": "fay's text"}))
        .await;

    // Self.
    let r = srv
        .get(&format!("users.info?userId={}", eli.user_id), Some(&eli))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    let me = &r.2["user"];
    assert_eq!(me["_id"], eli.user_id.as_str());
    assert_eq!(me["username"], "eli");
    assert_eq!(me["name"], "eli Name");
    assert_eq!(me["status"], "offline");
    assert_eq!(me["statusText"], "");
    assert_eq!(me["statusConnection"], "offline");
    assert_eq!(me["active"], true);
    assert_eq!(me["type"], "user");
    assert_eq!(me["roles"], json!(["user"]));
    assert_eq!(me["emails"][0]["address"], "eli@example.com", "{me}");
    assert!(me["utcOffset"].is_number(), "{me}");
    assert!(me["lastLogin"].is_string(), "{me}");
    assert!(me["createdAt"].is_string(), "{me}");

    // Another user, seen by a plain user: the public part only.
    for path in [
        format!("users.info?userId={}", fay.user_id),
        "users.info?username=fay".to_string(),
        "users.info?username=FAY".to_string(),
    ] {
        let r = srv.get(&path, Some(&eli)).await;
        assert_status(&r, 200);
        let u = &r.2["user"];
        assert_eq!(u["_id"], fay.user_id.as_str(), "{path}: {u}");
        assert_eq!(u["username"], "fay", "{u}");
        assert_eq!(u["name"], "fay Name", "{u}");
        assert_eq!(u["status"], "busy", "{u}");
        assert_eq!(u["statusText"], "fay's text", "{u}");
        assert_eq!(u["active"], true, "{u}");
        assert_eq!(u["type"], "user", "{u}");
        assert!(u["utcOffset"].is_number(), "{u}");
        for field in PRIVATE_FIELDS {
            assert!(u.get(*field).is_none(), "{path}: {field} leaked: {u}");
        }
        for (k, _) in u.as_object().unwrap() {
            let k = k.to_lowercase();
            assert!(
                !k.contains("password") && !k.contains("service") && !k.contains("token"),
                "{path}: {k} leaked: {u}"
            );
        }
    }

    // Looking another user up by email needs view-full-other-user-info (v2): without
    // it the answer is the one for an address nobody has; one's own email works.
    for email in [
        "fay%40example.com",
        "FAY%40example.com",
        "nobody%40example.com",
    ] {
        let r = srv
            .get(&format!("users.info?email={email}"), Some(&eli))
            .await;
        assert_reply(
            &r,
            400,
            json!({"success": false, "error": "User not found."}),
        );
    }
    let r = srv
        .get("users.info?email=fay%40example.com", Some(&admin))
        .await;
    assert_eq!(r.2["user"]["_id"], fay.user_id.as_str(), "{}", r.2);
    let r = srv
        .get("users.info?email=eli%40example.com", Some(&eli))
        .await;
    assert_eq!(r.2["user"]["_id"], eli.user_id.as_str(), "{}", r.2);
    // Oneself: whether a password is set (never it); others never see it.
    assert_eq!(
        r.2["user"]["services"],
        json!({"password": {"exists": true}}),
        "{}",
        r.2
    );

    // The admin holds view-full-other-user-info.
    let r = srv
        .get(&format!("users.info?userId={}", fay.user_id), Some(&admin))
        .await;
    let u = &r.2["user"];
    for field in PRIVATE_FIELDS {
        assert!(u.get(*field).is_some(), "admin misses {field}: {u}");
    }
    assert_eq!(u["statusConnection"], "offline");
    assert_eq!(u["roles"], json!(["user"]));

    // Granting it to "user" lets eli see fay in full; taking it from admin hides it.
    srv.set_permission("view-full-other-user-info", &["user"])
        .await;
    let r = srv
        .get(&format!("users.info?userId={}", fay.user_id), Some(&eli))
        .await;
    for field in PRIVATE_FIELDS {
        assert!(r.2["user"].get(*field).is_some(), "{field}: {}", r.2);
    }
    let guest = srv.create_user("gus", "gus-pass-1", &["guest"]).await;
    let r = srv
        .get(&format!("users.info?userId={}", fay.user_id), Some(&guest))
        .await;
    for field in PRIVATE_FIELDS {
        assert!(r.2["user"].get(*field).is_none(), "{field}: {}", r.2);
    }
    // Self always sees everything, whatever the permission says.
    let r = srv
        .get(
            &format!("users.info?username={}", guest.username),
            Some(&guest),
        )
        .await;
    for field in PRIVATE_FIELDS {
        assert!(r.2["user"].get(*field).is_some(), "{field}: {}", r.2);
    }
}

#[tokio::test]
async fn info_errors() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    for path in ["users.info", "users.info?userId=", "users.info?foo=bar"] {
        let r = srv.get(path, Some(&admin)).await;
        assert_eq!(
            (r.0.as_u16(), &r.2),
            (
                400,
                &json!({"success": false, "error": "Invalid search query."})
            ),
            "{path}"
        );
    }
    for path in [
        "users.info?userId=nosuchuserid12345",
        "users.info?username=nobody",
        "users.info?email=nobody%40example.com",
    ] {
        let r = srv.get(path, Some(&admin)).await;
        assert_eq!(
            (r.0.as_u16(), &r.2),
            (400, &json!({"success": false, "error": "User not found."})),
            "{path}"
        );
    }
    let r = srv.get("users.info?username=admin", None).await;
    assert_reply(&r, 401, body_401());
}

// ----------------------------------------------------------- /avatar/:username

/// Issue 17: the `avatarUrl` a login answer hands out is `ROOT_URL` + `/avatar/` +
/// username, and that path answers Rocket.Chat's default avatar: an SVG with the
/// name's first letter on a colour picked by the name's length.
#[tokio::test]
async fn avatar_url_from_root_url_serves_rocket_chat_default_avatar() {
    let srv = Server::start_with(&[("ROOT_URL", "https://status.example.org/")]).await;
    srv.create_user_only("alice", "alice-pass-1", &["user"])
        .await;
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "alice", "password": "alice-pass-1"}),
        )
        .await;
    assert_status(&r, 200);
    let url = r.2["data"]["me"]["avatarUrl"].as_str().expect("avatarUrl");
    assert_eq!(url, "https://status.example.org/avatar/alice");
    let path = url.trim_start_matches("https://status.example.org");

    let (status, headers, body) = srv.request_text(Method::GET, path, None, &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        body,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 200 200\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#6C727A\"/>\n\
         <text x=\"50%\" y=\"50%\" dy=\"0.36em\" text-anchor=\"middle\" pointer-events=\"none\" \
         fill=\"#ffffff\" font-family=\"'Helvetica', 'Arial', 'Lucida Grande', 'sans-serif'\" \
         font-size=\"125\">\nA\n</text>\n</svg>"
    );

    // Another length, another colour; `?size=`, `@name`, an unknown name and odd
    // characters as Rocket.Chat answers them; none of the name's markup gets in.
    for (path, color, letter, size) in [
        ("/avatar/bob", "#E26D0E", "B", 200),
        // A repeated or unreadable `size` (schemathesis sent `size=null&size=null`)
        // never fails an image: the first one counts, unreadable means the default.
        ("/avatar/zed?size=null&size=64", "#E26D0E", "Z", 200),
        ("/avatar/@rocket.cat?size=64", "#10529E", "R", 64),
        ("/avatar/nobody-here?size=5000", "#6C727A", "N", 1024),
        ("/avatar/%3Cb%3E.x?size=1", "#6C727A", "B", 16),
    ] {
        let (status, headers, body) = srv.request_text(Method::GET, path, None, &[], None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(headers["content-type"], "image/svg+xml", "{path}");
        assert!(
            body.contains(&format!("fill=\"{color}\"")),
            "{path}: {body}"
        );
        assert!(
            body.contains(&format!(">\n{letter}\n</text>")),
            "{path}: {body}"
        );
        assert!(
            body.contains(&format!("viewBox=\"0 0 {size} {size}\"")),
            "{path}: {body}"
        );
        assert!(!body.contains("<b>"), "{path}: {body}");
    }
}

/// Issue 14.13: an offset or count out of range is a 400, never a wrapped first page.
#[tokio::test]
async fn out_of_range_paging_is_refused() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    for route in ["users.statusHistory", "users.list"] {
        for q in [
            "offset=18446744073709551615",
            "offset=9223372036854775808",
            "count=4294967296",
            "count=99999999999999999999999",
            "offset=-1",
        ] {
            let r = srv.get(&format!("{route}?{q}"), Some(&admin)).await;
            assert_eq!(r.0.as_u16(), 400, "{route}?{q}: {}", r.2);
            assert_eq!(r.2["success"], false, "{route}?{q}: {}", r.2);
            assert!(
                r.2["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Invalid query parameter"),
                "{route}?{q}: {}",
                r.2
            );
        }
        for q in ["offset=9223372036854775807", "count=4294967295"] {
            let r = srv.get(&format!("{route}?{q}"), Some(&admin)).await;
            assert_status(&r, 200);
        }
    }
}

/// Issue 15.7: users.presence leaves out an empty status text, as Rocket.Chat's
/// projection does.
#[tokio::test]
async fn presence_leaves_out_an_empty_status_text() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let r = srv
        .set_status(&admin, json!({"status": "busy", "message": ""}))
        .await;
    assert_status(&r, 200);
    let r = srv
        .get(
            &format!("users.presence?ids={}", admin.user_id),
            Some(&admin),
        )
        .await;
    assert_status(&r, 200);
    let me = &r.2["users"][0];
    assert_eq!(me["status"], "busy", "{}", r.2);
    assert!(me.get("statusText").is_none(), "{}", r.2);
}

/// Issue 15.7: /api/info adds Rocket.Chat's `info` object for a caller holding
/// get-server-info (Rocket.Chat's getServerInfo); others, and bad credentials, get the
/// versions only.
#[tokio::test]
async fn api_info_adds_the_info_object_for_get_server_info() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let pat = srv.create_user("pat", "pat-pass-1", &["user"]).await;
    let r = srv.get("/api/info", Some(&admin)).await;
    assert_status(&r, 200);
    let info = &r.2["info"];
    assert_eq!(info["version"], r.2["version"], "{}", r.2);
    assert!(info["build"]["arch"].is_string(), "{}", r.2);
    assert!(info["build"]["platform"].is_string(), "{}", r.2);
    assert!(
        info["build"]["cpus"].as_u64().is_some_and(|n| n >= 1),
        "{}",
        r.2
    );
    assert!(info["commit"].is_object(), "{}", r.2);
    for s in [None, Some(&pat), Some(&admin.with_token("bogus"))] {
        let r = srv.get("/api/info", s).await;
        assert_status(&r, 200);
        assert!(r.2.get("info").is_none(), "{}", r.2);
        assert_eq!(r.2["success"], true);
    }
    srv.set_permission("get-server-info", &["admin", "user"])
        .await;
    let r = srv.get("/api/info", Some(&pat)).await;
    assert!(r.2["info"].is_object(), "{}", r.2);
}

// ------------------------------------------------------------------- /metrics

/// `GET /metrics` as anyone (no METRICS_TOKEN): the text.
async fn scrape(srv: &Server) -> String {
    let (status, _, text) = srv
        .request_text(Method::GET, "/metrics", None, &[], None)
        .await;
    assert_eq!(status, 200, "/metrics: {text}");
    text
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(series)?.strip_prefix(' ')?;
        Some(v.trim().parse().expect("a sample value"))
    })
}

/// Is `name` exposed: a sample of that name, or (a family with no child yet, a
/// counter's `_total`, a histogram's series) the `# TYPE` of its base name?
fn exposes(text: &str, name: &str) -> bool {
    let sampled = text.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
    });
    let base = ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    sampled
        || text.lines().any(|l| {
            l.strip_prefix("# TYPE ")
                .and_then(|t| t.strip_prefix(base))
                .is_some_and(|rest| rest.starts_with(' '))
        })
}

/// The metric names an expression of the dashboard uses (statusd's and process_*).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("statusd_") || w.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn metrics_expose_what_the_grafana_dashboard_uses_with_sane_values() {
    let before_start = chrono::Utc::now().timestamp() as f64;
    let srv = Server::start().await;
    srv.admin().await;
    let first = scrape(&srv).await;

    // The dashboard shipped in docs/ uses only metrics the server exposes.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the dashboard"))
            .expect("JSON");
    let mut used = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            used.extend(metric_names(target["expr"].as_str().expect("expr")));
        }
    }
    assert!(used.len() >= 15, "the dashboard uses {used:?}");
    for name in &used {
        assert!(
            exposes(&first, name),
            "{name} is not in the scrape:\n{first}"
        );
    }

    // Build info: the version, always 1.
    let build = first
        .lines()
        .find(|l| l.starts_with("statusd_build_info{"))
        .expect("build info");
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build.contains("commit=\"")
            && build.ends_with("} 1"),
        "{build}"
    );

    // Process metrics of the server's process, not of the test.
    let cpu = sample(&first, "process_cpu_seconds_total").expect("cpu");
    let rss = sample(&first, "process_resident_memory_bytes").expect("rss");
    let fds = sample(&first, "process_open_fds").expect("fds");
    let started = sample(&first, "process_start_time_seconds").expect("start time");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(cpu > 0.0 && cpu < 600.0, "cpu {cpu}");
    assert!(rss > 1e6 && rss < 4e9, "rss {rss}");
    assert!((3.0..10_000.0).contains(&fds), "fds {fds}");
    assert!(
        started >= before_start - 120.0 && started <= now + 120.0,
        "started {started}, test started {before_start}, now {now}"
    );
    assert_eq!(sample(&first, "statusd_store_up"), Some(1.0));
    assert_eq!(
        sample(&first, "statusd_nats_up"),
        Some(1.0),
        "not in cluster mode"
    );

    // State gauges follow the model: a new user counts as offline, a login as a live
    // token, a wrong password as a failure.
    let users = |text: &str, status: &str| {
        sample(text, &format!("statusd_users{{status=\"{status}\"}}"))
            .unwrap_or_else(|| panic!("users {status}:\n{text}"))
    };
    let total = |text: &str| {
        ["online", "away", "busy", "offline"]
            .iter()
            .map(|s| users(text, s))
            .sum::<f64>()
    };
    let tokens = |text: &str| sample(text, "statusd_live_login_tokens").expect("tokens");
    let failures = |text: &str| sample(text, "statusd_login_failures_total").expect("failures");
    assert!(total(&first) >= 1.0, "the admin counts");
    assert!(tokens(&first) >= 1.0, "the admin's login");

    srv.create_user("metrics-bob", "bob-password-1", &[]).await;
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "metrics-bob", "password": "wrong"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());
    let second = scrape(&srv).await;
    assert_eq!(total(&second), total(&first) + 1.0);
    assert_eq!(users(&second, "offline"), users(&first, "offline") + 1.0);
    assert_eq!(tokens(&second), tokens(&first) + 1.0, "bob's login");
    assert_eq!(failures(&second), failures(&first) + 1.0);
}

#[tokio::test]
async fn metrics_token_guards_the_metrics() {
    let token = "metrics-token-0123456789abcdef";
    let srv = Server::start_with(&[("METRICS_TOKEN", token)]).await;
    let get = |headers: Vec<(&'static str, String)>| {
        let srv = &srv;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            srv.request_text(Method::GET, "/metrics", None, &h, None)
                .await
        }
    };
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong".to_string())],
        vec![("Authorization", format!("Bearer {token}x"))],
        vec![("Authorization", token.to_string())],
        vec![("Authorization", format!("Basic {token}"))],
    ] {
        let (status, _, text) = get(headers.clone()).await;
        assert_eq!(status, 401, "{headers:?}: {text}");
        let body: Value = serde_json::from_str(&text).expect("a JSON body");
        assert_eq!(body, body_401(), "{headers:?}");
        assert!(!text.contains(token));
    }
    // The contract checks of a JSON error (content type, no-store) hold too.
    let r = srv.request(Method::GET, "/metrics", None, &[], None).await;
    assert_reply(&r, 401, body_401());
    let (status, _, text) = get(vec![("Authorization", format!("Bearer {token}"))]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("statusd_build_info{"), "{text}");
    assert!(!srv.log().contains(token), "the token is never logged");
}

#[tokio::test]
async fn metrics_bind_serves_metrics_there_only() {
    let port = free_port();
    let srv = Server::start_with(&[("METRICS_BIND", &format!("127.0.0.1:{port}"))]).await;
    // Not on PORT: the contract's 404.
    let r = srv.request(Method::GET, "/metrics", None, &[], None).await;
    assert_reply(&r, 404, body_404());
    // On METRICS_BIND: the metrics, and nothing else.
    let other = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let resp = reqwest::get(other("/metrics")).await.expect("METRICS_BIND");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("text");
    assert!(text.contains("statusd_build_info{"), "{text}");
    assert_eq!(sample(&text, "statusd_store_up"), Some(1.0), "{text}");
    for path in ["/api/info", "/api/v1/me", "/"] {
        let resp = reqwest::get(other(path)).await.expect("METRICS_BIND");
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.expect("a JSON body");
        assert_eq!(body, body_404(), "{path}");
    }
}
