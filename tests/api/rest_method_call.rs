//! The REST bridge to the DDP methods (issue 16): `POST method.call/:method` and
//! `method.callAnon/:method`, as Rocket.Chat's misc.ts answers them — the result frame
//! as EJSON text in `message`, a method's error inside it with a 200 — driven the way
//! the mobile app does, and what hostile callers get.

use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

/// The body the mobile app sends: `{"message": EJSON.stringify({msg, id, method, params})}`.
fn frame(id: &str, method: &str, params: Value) -> Value {
    json!({"message": json!({"msg": "method", "id": id, "method": method, "params": params}).to_string()})
}

/// Calls `route/method` and returns the result frame, parsed; the answer must be a 200
/// `{"message": "<frame>", "success": true}`.
async fn bridge(
    srv: &Server,
    route: &str,
    s: Option<&Session>,
    id: &str,
    method: &str,
    params: Value,
) -> Value {
    // A name with a `/` (permissions/get) is one path segment only percent-encoded.
    let r = srv
        .post_json(
            &format!("{route}/{}", enc(method)),
            s,
            frame(id, method, params),
        )
        .await;
    assert_status(&r, 200);
    let obj = r.2.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{}", r.2);
    assert_eq!(r.2["success"], true);
    serde_json::from_str(r.2["message"].as_str().expect("message text")).expect("an EJSON frame")
}

#[tokio::test]
async fn the_mobile_apps_login_status_and_custom_statuses() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let alice_id = srv
        .create_user_only("alice", "alice-pass-1", &["user"])
        .await;
    // A watcher on the websocket.
    let mut watcher = Ddp::connect_resume(&srv, &admin.token).await;
    watcher.sub_user_status("s1").await;

    // Login through callAnon, with the digest the app sends.
    let digest = sha256_hex("alice-pass-1");
    let login = bridge(
        &srv,
        "method.callAnon",
        None,
        "42",
        "login",
        json!([{"user": {"username": "alice"}, "password": {"digest": digest, "algorithm": "sha-256"}}]),
    )
    .await;
    let result = &login["result"];
    let expires = result["tokenExpires"]["$date"].as_i64().expect("a $date");
    let token = result["token"].as_str().expect("a token").to_string();
    assert_eq!(
        login,
        json!({"msg": "result", "id": "42", "result": {
            "id": alice_id, "token": token, "tokenExpires": {"$date": expires}, "type": "password"}})
    );
    let alice = Session {
        user_id: alice_id.clone(),
        token,
        username: "alice".into(),
    };
    assert_status(&srv.get("me", Some(&alice)).await, 200);
    // A REST login is no connection: alice is not online for it.
    assert_eq!(srv.status_of(&alice_id).await["status"], "offline");

    // setUserStatus through method.call: no result, and the websocket sees the change.
    let set = bridge(
        &srv,
        "method.call",
        Some(&alice),
        "43",
        "setUserStatus",
        json!(["away", "lunch"]),
    )
    .await;
    assert_eq!(set, json!({"msg": "result", "id": "43"}));
    assert_eq!(srv.status_of(&alice_id).await["status"], "away");
    let mut seen = None;
    for _ in 0..10 {
        let Some(f) = watcher.next_json(Duration::from_secs(2)).await else {
            break;
        };
        if f["fields"]["eventName"] == "user-status" && f["fields"]["args"][0][0] == alice_id {
            seen = Some(f);
            break;
        }
    }
    let seen = seen.expect("the websocket saw alice's change");
    assert_eq!(seen["fields"]["args"][0][2], 2, "{seen}");
    assert_eq!(seen["fields"]["args"][0][3], "lunch", "{seen}");

    // listCustomUserStatus.
    let r = srv
        .post_json(
            "custom-user-status.create",
            Some(&admin),
            json!({"name": "Lunch", "statusType": "away"}),
        )
        .await;
    assert_status(&r, 200);
    let made = &r.2["customUserStatus"];
    let list = bridge(
        &srv,
        "method.call",
        Some(&alice),
        "44",
        "listCustomUserStatus",
        json!([]),
    )
    .await;
    let at = parse_time(made["_updatedAt"].as_str().unwrap()).timestamp_millis();
    assert_eq!(
        list,
        json!({"msg": "result", "id": "44", "result": [
            {"_id": made["_id"], "name": "Lunch", "statusType": "away", "_updatedAt": {"$date": at}}]})
    );
}

#[tokio::test]
async fn errors_travel_inside_the_result_frame() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let err = |id: &str, e: Value| json!({"msg": "result", "id": id, "error": e});
    let invalid_user = |method: &str| {
        let mut e = meteor_error(json!("error-invalid-user"), "Invalid user");
        e["details"] = json!({"method": method});
        e
    };
    // An unknown method.
    assert_eq!(
        bridge(&srv, "method.call", Some(&alice), "1", "nope", json!([])).await,
        err("1", meteor_error(json!(404), "Method 'nope' not found"))
    );
    // A method that needs a login, called anonymously.
    assert_eq!(
        bridge(
            &srv,
            "method.callAnon",
            None,
            "2",
            "setUserStatus",
            json!(["away", ""])
        )
        .await,
        err("2", invalid_user("setUserStatus"))
    );
    assert_eq!(
        bridge(
            &srv,
            "method.callAnon",
            None,
            "3",
            "listCustomUserStatus",
            json!([])
        )
        .await,
        err("3", invalid_user("listCustomUserStatus"))
    );
    // callAnon ignores credentials: it runs anonymously, as upstream.
    assert_eq!(
        bridge(
            &srv,
            "method.callAnon",
            Some(&alice),
            "4",
            "getUserRoles",
            json!([])
        )
        .await,
        err("4", invalid_user("getUserRoles"))
    );
    // A bad parameter.
    assert_eq!(
        bridge(
            &srv,
            "method.call",
            Some(&alice),
            "5",
            "setUserStatus",
            json!(["dancing", ""])
        )
        .await["error"]["error"],
        "error-invalid-status"
    );
    // A wrong password.
    let r = bridge(
        &srv,
        "method.callAnon",
        None,
        "6",
        "login",
        json!([{"user": {"username": "alice"}, "password": "wrong"}]),
    )
    .await;
    assert_eq!(r, err("6", meteor_error(json!(403), "Incorrect password")));
}

#[tokio::test]
async fn connection_methods_change_nothing_over_rest() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut ws = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    // No connection to set: false, as Rocket.Chat (no session changed).
    assert_eq!(
        bridge(
            &srv,
            "method.call",
            Some(&alice),
            "1",
            "UserPresence:away",
            json!([])
        )
        .await,
        json!({"msg": "result", "id": "1", "result": false})
    );
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "online");
    // Anonymously: nothing at all.
    assert_eq!(
        bridge(
            &srv,
            "method.callAnon",
            None,
            "2",
            "UserPresence:online",
            json!([])
        )
        .await,
        json!({"msg": "result", "id": "2"})
    );
    // logout ends no REST session (the token is not the call's connection's).
    assert_eq!(
        bridge(&srv, "method.call", Some(&alice), "3", "logout", json!([])).await,
        json!({"msg": "result", "id": "3"})
    );
    assert_status(&srv.get("me", Some(&alice)).await, 200);
    // The default status works (it needs no connection).
    assert_eq!(
        bridge(
            &srv,
            "method.call",
            Some(&alice),
            "4",
            "UserPresence:setDefaultStatus",
            json!(["busy"])
        )
        .await,
        json!({"msg": "result", "id": "4", "result": true})
    );
    assert_eq!(srv.status_of(&alice.user_id).await["status"], "busy");
    // The websocket connection is still there and still counts.
    assert_eq!(
        ws.call("UserPresence:online", json!([])).await,
        Ok(json!(true))
    );
}

#[tokio::test]
async fn the_frames_method_runs_and_public_methods_work_anonymously() {
    let srv = Server::start().await;
    // The path names one method, the frame another: the frame's runs (as upstream).
    let r = bridge(
        &srv,
        "method.callAnon",
        None,
        "1",
        "license:getModules",
        json!([]),
    )
    .await;
    assert_eq!(r, json!({"msg": "result", "id": "1", "result": []}));
    let body = frame("2", "public-settings/get", json!([]));
    let r = srv
        .post_json("method.callAnon/license:getModules", None, body)
        .await;
    assert_status(&r, 200);
    let f: Value = serde_json::from_str(r.2["message"].as_str().unwrap()).unwrap();
    assert!(f["result"]
        .as_array()
        .unwrap()
        .contains(&json!({"_id": "API_Use_REST_For_DDP_Calls", "value": true})));
    let r = bridge(
        &srv,
        "method.callAnon",
        None,
        "3",
        "permissions/get",
        json!([{"$date": 4_102_444_800_000_i64}]),
    )
    .await;
    assert_eq!(
        r,
        json!({"msg": "result", "id": "3", "result": {"update": [], "remove": []}})
    );
}

#[tokio::test]
async fn malformed_bodies_get_the_contracts_errors() {
    let srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let json_h = [("Content-Type", "application/json")];
    // Not logged in: method.call is refused before anything else.
    assert_reply(
        &srv.post_json("method.call/login", None, frame("1", "login", json!([])))
            .await,
        401,
        body_401(),
    );
    let post = |body: Vec<u8>| {
        let srv = &srv;
        let alice = &alice;
        async move {
            srv.request(
                Method::POST,
                "method.call/x",
                Some(alice),
                &json_h,
                Some(body),
            )
            .await
        }
    };
    assert_reply(
        &post(b"{".to_vec()).await,
        400,
        json!({"success": false, "error": "Invalid JSON body"}),
    );
    assert_reply(
        &post(b"{}".to_vec()).await,
        400,
        json!({"success": false, "error": "Match error: Missing key 'message'"}),
    );
    assert_reply(
        &post(br#"{"message": 5}"#.to_vec()).await,
        400,
        json!({"success": false, "error": "Match error: Expected string in field message"}),
    );
    assert_reply(
        &post(br#"{"message": "{}", "extra": 1}"#.to_vec()).await,
        400,
        body_meteor(
            "invalid-params",
            "must NOT have additional properties",
            "method.call/x",
        ),
    );
    let invalid = json!({"success": false, "error": "Invalid method call"});
    for message in [
        "not json",
        "[]",
        r#"{"msg":"sub","id":"1","method":"x","params":[]}"#,
        r#"{"msg":"method","id":1,"method":"x","params":[]}"#,
        r#"{"msg":"method","id":"1","method":"x","params":{}}"#,
        r#"{"msg":"method","id":"1","method":"x","params":[],"randomSeed":"s"}"#,
    ] {
        let body = serde_json::to_vec(&json!({"message": message})).unwrap();
        assert_reply(&post(body).await, 400, invalid.clone());
    }
    // Deeply nested params: refused, never a crash.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let message = format!(r#"{{"msg":"method","id":"1","method":"x","params":{deep}}}"#);
    let body = serde_json::to_vec(&json!({"message": message})).unwrap();
    assert_reply(&post(body).await, 400, invalid.clone());
    // A frame over WS_MAX_FRAME_BYTES (64 KiB).
    let big = "x".repeat(70 * 1024);
    let message =
        json!({"msg": "method", "id": "1", "method": "setUserStatus", "params": ["away", big]})
            .to_string();
    let body = serde_json::to_vec(&json!({"message": message})).unwrap();
    assert_reply(
        &post(body).await,
        413,
        json!({"success": false, "error": "Request body too large"}),
    );
    // The server is fine.
    assert_status(&srv.get("me", Some(&alice)).await, 200);
}

#[tokio::test]
async fn logins_through_call_anon_keep_the_login_limits() {
    let srv = Server::start().await;
    srv.create_user_only("alice", "alice-pass-1", &["user"])
        .await;
    let login = json!([{"user": {"username": "alice"}, "password": "alice-pass-1"}]);
    // Rocket.Chat's DDP limiter: 10 calls of a method per 10 s from one caller.
    for i in 0..10 {
        let r = bridge(
            &srv,
            "method.callAnon",
            None,
            &i.to_string(),
            "login",
            login.clone(),
        )
        .await;
        assert!(r["result"]["token"].is_string(), "login {i}: {r}");
    }
    let r = bridge(&srv, "method.callAnon", None, "10", "login", login.clone()).await;
    let e = &r["error"];
    assert_eq!(e["error"], "too-many-requests", "{r}");
    let wait = e["details"]["timeToReset"].as_u64().expect("timeToReset");
    assert!((1..=10_000).contains(&wait), "{r}");
    // Other methods have budgets of their own.
    let r = bridge(
        &srv,
        "method.callAnon",
        None,
        "11",
        "license:getModules",
        json!([]),
    )
    .await;
    assert_eq!(r["result"], json!([]));
}

#[tokio::test]
async fn made_up_method_names_share_one_budget() {
    let srv = Server::start().await;
    // Ten different made-up names from one caller: one budget (10 per 10 s), so the
    // limiter keeps one key for them rather than one per name.
    for i in 0..10 {
        let name = format!("made-up-{i}");
        let r = bridge(&srv, "method.callAnon", None, "1", &name, json!([])).await;
        assert_eq!(r["error"]["error"], 404, "{name}: {r}");
    }
    let r = bridge(&srv, "method.callAnon", None, "2", "yet-another", json!([])).await;
    assert_eq!(r["error"]["error"], "too-many-requests", "{r}");
    // Real methods keep their own budgets.
    let r = bridge(
        &srv,
        "method.callAnon",
        None,
        "3",
        "license:getModules",
        json!([]),
    )
    .await;
    assert_eq!(r["result"], json!([]), "{r}");
}
