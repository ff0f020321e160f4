//! The methods clients call at login, over DDP (issue 16): `listCustomUserStatus`,
//! `license:getModules`, `public-settings/get`, `permissions/get` and `getUserRoles`,
//! with the answers and errors Rocket.Chat's methods give (dates as EJSON `$date`).

use crate::common;

use common::ddp::*;
use common::*;

fn invalid_user(method: &str) -> Value {
    let mut e = meteor_error(json!("error-invalid-user"), "Invalid user");
    e["details"] = json!({"method": method});
    e
}

fn ms_of(iso: &Value) -> i64 {
    parse_time(iso.as_str().expect("an ISO time")).timestamp_millis()
}

#[tokio::test]
async fn license_modules_and_public_settings_need_no_login() {
    let srv = Server::start().await;
    let mut c = Ddp::connect(&srv).await;
    assert_eq!(c.call("license:getModules", json!([])).await, Ok(json!([])));

    let all = c.call("public-settings/get", json!([])).await.unwrap();
    let all = all.as_array().expect("an array");
    // Exactly the public settings, `{_id, value}` each, as settings.public lists them.
    let (_, _, listed) = srv.get("settings.public?count=100", None).await;
    let want: Vec<Value> = listed["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!({"_id": s["_id"], "value": s["value"]}))
        .collect();
    assert_eq!(all, &want);
    assert!(all.contains(&json!({"_id": "API_Use_REST_For_DDP_Calls", "value": true})));
    assert!(!all.iter().any(|s| s["_id"] == "API_Enable_Rate_Limiter"));

    // With a date: `{update, remove}`, only what changed after it.
    let now = chrono::Utc::now().timestamp_millis();
    let none = c
        .call("public-settings/get", json!([{"$date": now + 60_000}]))
        .await;
    assert_eq!(none, Ok(json!({"update": [], "remove": []})));
    srv.set_setting("Site_Name", json!("Acme")).await;
    let changed = c
        .call("public-settings/get", json!([{"$date": now - 1}]))
        .await
        .unwrap();
    let update = changed["update"].as_array().unwrap();
    assert_eq!(update.len(), 1, "{changed}");
    assert_eq!(update[0]["_id"], "Site_Name");
    assert_eq!(update[0]["value"], "Acme");
    assert!(update[0]["_updatedAt"]["$date"].as_i64().unwrap() >= now);
    assert_eq!(changed["remove"], json!([]));
    // Not a date: read as none (upstream's `instanceof Date`).
    let plain = c
        .call("public-settings/get", json!(["2020-01-01"]))
        .await
        .unwrap();
    assert!(plain.is_array(), "{plain}");
}

#[tokio::test]
async fn permissions_get_answers_every_permission_and_the_changed_ones() {
    let srv = Server::start().await;
    let mut c = Ddp::connect(&srv).await;
    let all = c.call("permissions/get", json!([])).await.unwrap();
    let all = all.as_array().expect("an array");
    let (_, _, rest) = srv
        .get("permissions.listAll", Some(&srv.admin().await))
        .await;
    assert_eq!(all.len(), rest["update"].as_array().unwrap().len());
    let manage = all
        .iter()
        .find(|p| p["_id"] == "manage-user-status")
        .expect("manage-user-status");
    let at = manage["_updatedAt"]["$date"].as_i64().expect("a $date");
    assert_eq!(
        manage,
        &json!({"_id": "manage-user-status", "roles": ["admin"], "_updatedAt": {"$date": at}})
    );

    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(
        c.call("permissions/get", json!([{"$date": now + 60_000}]))
            .await,
        Ok(json!({"update": [], "remove": []}))
    );
    srv.set_permission("manage-user-status", &["admin", "user"])
        .await;
    let changed = c
        .call("permissions/get", json!([{"$date": now - 1}]))
        .await
        .unwrap();
    let update = changed["update"].as_array().unwrap();
    assert_eq!(update.len(), 1, "{changed}");
    assert_eq!(update[0]["_id"], "manage-user-status");
    assert_eq!(update[0]["roles"], json!(["admin", "user"]));
    assert_eq!(changed["remove"], json!([]));
    // null is Match.Maybe's "none"; anything else but a date is refused.
    assert!(c
        .call("permissions/get", json!([null]))
        .await
        .unwrap()
        .is_array());
    for bad in [json!("2020-01-01"), json!(5), json!({"$date": "x"})] {
        assert_eq!(
            c.call("permissions/get", json!([bad])).await,
            Err(meteor_error(json!(400), "Match failed")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn list_custom_user_status_needs_a_login_and_lists_them_all() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let mut anon = Ddp::connect(&srv).await;
    assert_eq!(
        anon.call("listCustomUserStatus", json!([])).await,
        Err(invalid_user("listCustomUserStatus"))
    );
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &alice.token).await;
    assert_eq!(
        c.call("listCustomUserStatus", json!([])).await,
        Ok(json!([]))
    );

    let mut made = Vec::new();
    for (name, kind) in [("Lunch", "away"), ("In a meeting", "busy")] {
        let r = srv
            .post_json(
                "custom-user-status.create",
                Some(&admin),
                json!({"name": name, "statusType": kind}),
            )
            .await;
        assert_status(&r, 200);
        made.push(r.2["customUserStatus"].clone());
    }
    // By name: "In a meeting" before "Lunch".
    let want: Vec<Value> = made
        .iter()
        .rev()
        .map(|s| {
            json!({
                "_id": s["_id"],
                "name": s["name"],
                "statusType": s["statusType"],
                "_updatedAt": {"$date": ms_of(&s["_updatedAt"])},
            })
        })
        .collect();
    assert_eq!(
        c.call("listCustomUserStatus", json!([])).await,
        Ok(json!(want))
    );
}

#[tokio::test]
async fn get_user_roles_lists_the_holders_of_public_roles() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let mut anon = Ddp::connect(&srv).await;
    assert_eq!(
        anon.call("getUserRoles", json!([])).await,
        Err(invalid_user("getUserRoles"))
    );
    let agent = srv
        .create_user_only("agent", "agent-pass-1", &["user", "livechat-agent"])
        .await;
    srv.create_user_only("plain", "plain-pass-1", &["user"])
        .await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let mut c = Ddp::connect_resume(&srv, &bob.token).await;
    // Only the public roles (admin, livechat-*), by username; `user`, `bot` are not.
    assert_eq!(
        c.call("getUserRoles", json!([])).await,
        Ok(json!([
            {"_id": admin.user_id, "username": "admin", "roles": ["admin"]},
            {"_id": agent, "username": "agent", "roles": ["livechat-agent"]},
        ]))
    );
}
