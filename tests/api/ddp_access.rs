//! Access control of every DDP method and subscription (CONTRACT §7) × every kind of
//! caller: not logged in, guest, bot, user, admin, and connections whose login token
//! was revoked or expired while they were open. Table-driven, against the real binary.

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

/// What a call or subscription must get.
#[derive(Clone, Debug)]
enum Want {
    /// `result` with this value (`Null`: a result without a value).
    Result(Value),
    /// `result` with this error object.
    Error(Value),
    /// `ready` for a subscription.
    Ready,
    /// `nosub` with this error.
    NoSub(Value),
}

/// One method call or subscription.
struct Case {
    name: &'static str,
    params: Value,
    sub: bool,
}

fn method(name: &'static str, params: Value) -> Case {
    Case {
        name,
        params,
        sub: false,
    }
}

fn sub(name: &'static str, params: Value) -> Case {
    Case {
        name,
        params,
        sub: true,
    }
}

fn invalid_user(method: &str) -> Value {
    let mut e = meteor_error(json!("error-invalid-user"), "Invalid user");
    e["details"] = json!({ "method": method });
    e
}

/// A date no change comes after (2100-01-01), for the `{update, remove}` answers.
const FAR_FUTURE: i64 = 4_102_444_800_000;

/// Every method and stream, in the order they run on one connection (logout last).
fn cases() -> Vec<Case> {
    vec![
        method("setUserStatus", json!(["away", "from the matrix"])),
        method("UserPresence:setDefaultStatus", json!(["busy"])),
        method("UserPresence:away", json!([])),
        method("UserPresence:online", json!([])),
        method("noSuchMethod", json!([])),
        method("listCustomUserStatus", json!([])),
        method("getUserRoles", json!([])),
        method("license:getModules", json!([])),
        method("public-settings/get", json!([{"$date": FAR_FUTURE}])),
        method("permissions/get", json!([{"$date": FAR_FUTURE}])),
        sub("stream-notify-logged", json!(["user-status", false])),
        sub(
            "stream-user-presence",
            json!(["", {"added": ["someone"], "removed": []}]),
        ),
        sub("no-such-stream", json!([])),
        method("logout", json!([])),
    ]
}

/// What a logged-in caller of any default role gets: the streams and methods are for
/// every logged-in user (there is no per-role permission on them). `admin` is the one
/// holder of a public role (`getUserRoles`).
fn want_logged_in(case: &Case, admin: &str) -> Want {
    match case.name {
        "listCustomUserStatus" | "license:getModules" => Want::Result(json!([])),
        "getUserRoles" => {
            Want::Result(json!([{"_id": admin, "username": "admin", "roles": ["admin"]}]))
        }
        "public-settings/get" | "permissions/get" => {
            Want::Result(json!({"update": [], "remove": []}))
        }
        "setUserStatus" | "logout" => Want::Result(Value::Null),
        "UserPresence:setDefaultStatus" | "UserPresence:away" | "UserPresence:online" => {
            Want::Result(json!(true))
        }
        "noSuchMethod" => Want::Error(meteor_error(json!(404), "Method 'noSuchMethod' not found")),
        "no-such-stream" => Want::NoSub(meteor_error(
            json!(404),
            "Subscription 'no-such-stream' not found",
        )),
        _ => Want::Ready,
    }
}

/// What a connection that never logged in gets.
fn want_anonymous(case: &Case, admin: &str) -> Want {
    match case.name {
        "listCustomUserStatus" => Want::Error(invalid_user("listCustomUserStatus")),
        "getUserRoles" => Want::Error(invalid_user("getUserRoles")),
        "setUserStatus" => Want::Error(invalid_user("setUserStatus")),
        "UserPresence:setDefaultStatus" => {
            Want::Error(invalid_user("UserPresence:setDefaultStatus"))
        }
        "UserPresence:away" | "UserPresence:online" => Want::Error(invalid_user("UserPresence")),
        "logout" => Want::Result(Value::Null),
        "noSuchMethod" | "license:getModules" | "public-settings/get" | "permissions/get" => {
            want_logged_in(case, admin)
        }
        _ => Want::NoSub(meteor_error(
            json!("not-allowed"),
            "You must be logged in to subscribe",
        )),
    }
}

/// Runs one case on `c`; returns a description of the mismatch, if any.
async fn run(c: &mut Ddp, case: &Case, want: &Want, who: &str) -> Option<String> {
    let got = if case.sub {
        let id = c.new_id();
        let v = c.sub(&id, case.name, case.params.clone()).await;
        match v["msg"].as_str() {
            Some("ready") => Want::Ready,
            _ => Want::NoSub(v["error"].clone()),
        }
    } else {
        match c.call(case.name, case.params.clone()).await {
            Ok(v) => Want::Result(v),
            Err(e) => Want::Error(e),
        }
    };
    let same = match (&got, want) {
        (Want::Ready, Want::Ready) => true,
        (Want::Result(a), Want::Result(b)) | (Want::Error(a), Want::Error(b)) => a == b,
        (Want::NoSub(a), Want::NoSub(b)) => a == b,
        _ => false,
    };
    (!same).then(|| format!("{} as {who}: want {want:?}, got {got:?}", case.name))
}

#[tokio::test]
async fn every_method_and_stream_for_every_caller() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let user = srv.create_user("ac-user", "user-pass-1", &["user"]).await;
    let bot = srv.create_user("ac-bot", "bot-pass-1", &["bot"]).await;
    let guest = srv
        .create_user("ac-guest", "guest-pass-1", &["guest"])
        .await;

    let mut failures = Vec::new();
    let mut anon = Ddp::connect(&srv).await;
    for case in cases() {
        let want = want_anonymous(&case, &admin.user_id);
        failures.extend(run(&mut anon, &case, &want, "anonymous").await);
    }
    for (who, s) in [
        ("guest", &guest),
        ("bot", &bot),
        ("user", &user),
        ("admin", &admin),
    ] {
        let mut c = Ddp::connect_resume(&srv, &s.token).await;
        for case in cases() {
            let want = want_logged_in(&case, &admin.user_id);
            failures.extend(run(&mut c, &case, &want, who).await);
        }
        // After `logout` the connection is anonymous again.
        for case in cases() {
            let want = want_anonymous(&case, &admin.user_id);
            failures.extend(run(&mut c, &case, &want, &format!("{who} after logout")).await);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Like Meteor, a connection whose login token stops authenticating (logged out
/// elsewhere, expired, user disabled) is closed: it neither runs methods nor keeps
/// receiving the logged-in streams, and its token cannot be resumed.
#[tokio::test]
async fn connections_whose_token_is_revoked_or_expired_are_closed() {
    // Short pings: an idle connection is re-checked within a ping interval.
    let srv = Server::start_with(&[("DDP_PING_SECS", "1")]).await;
    let admin_pat = srv.admin_pat().await;
    let logged_out = meteor_error(
        json!(403),
        "You've been logged out by the server. Please log in again.",
    );

    // Revoked by a REST logout with the same token: the next frame closes it.
    let rita = srv.create_user("rita", "rita-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &rita.token).await;
    c.sub("s1", "stream-notify-logged", json!(["user-status", false]))
        .await;
    assert_status(&srv.post_json("logout", Some(&rita), json!({})).await, 200);
    c.send(json!({"msg": "method", "id": "m1", "method": "setUserStatus", "params": ["busy", "after logout"]}))
        .await;
    assert!(
        c.wait_closed(Duration::from_secs(5)).await,
        "a revoked connection stayed open"
    );
    assert_ne!(srv.status_of(&rita.user_id).await["status"], "busy");
    let mut again = Ddp::connect(&srv).await;
    assert_eq!(
        again.login_resume(&rita.token).await,
        Err(logged_out.clone())
    );

    // Revoked while idle (the user is disabled): closed within a ping interval.
    let ida = srv.create_user("ida", "ida-pass-1", &["user"]).await;
    let mut idle = Ddp::connect_resume(&srv, &ida.token).await;
    let r = srv
        .post_json(
            "users.update",
            Some(&admin_pat),
            json!({"userId": ida.user_id, "data": {"active": false}}),
        )
        .await;
    assert_status(&r, 200);
    assert!(
        idle.wait_closed(Duration::from_secs(5)).await,
        "an idle connection of a disabled user stayed open"
    );

    // Expired: login tokens past Accounts_LoginExpiration (eve's, made 91 days old).
    let eve = srv.create_user("eve", "eve-pass-1", &["user"]).await;
    let mut e = Ddp::connect_resume(&srv, &eve.token).await;
    srv.age_login_tokens(&eve, 91).await;
    e.send(json!({"msg": "method", "id": "m1", "method": "UserPresence:setDefaultStatus", "params": ["busy"]}))
        .await;
    assert!(
        e.wait_closed(Duration::from_secs(5)).await,
        "a connection with an expired token stayed open"
    );
    let r = srv
        .get(
            &format!("users.getStatus?userId={}", eve.user_id),
            Some(&admin_pat),
        )
        .await;
    assert_status(&r, 200);
    assert_ne!(r.2["status"], "busy", "{}", r.2);
    let mut again = Ddp::connect(&srv).await;
    assert_eq!(again.login_resume(&eve.token).await, Err(logged_out));
    // A personal access token does not expire: a connection logged in with one stays.
    let mut p = Ddp::connect_resume(&srv, &admin_pat.token).await;
    assert_eq!(
        p.call("UserPresence:setDefaultStatus", json!(["away"]))
            .await,
        Ok(json!(true))
    );
}
