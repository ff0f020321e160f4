//! Administration routes (CONTRACT §6): users.create/update/delete/register/list,
//! settings, permissions and roles — happy paths and errors.

use crate::common;

use common::*;

const ID_ALPHABET: &str = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

fn ok() -> Value {
    json!({"success": true})
}

#[track_caller]
fn assert_error_type(r: &Reply, route: &str, code: &str) {
    assert_eq!(r.0.as_u16(), 400, "want 400 {code}; got {}", r.2);
    // CONTRACT §2: a business error names the route in details.method.
    assert_eq!(r.2["details"], json!({ "method": route }), "{}", r.2);
    assert_eq!(r.2["success"], false, "{}", r.2);
    assert_eq!(r.2["errorType"], code, "{}", r.2);
    let error = r.2["error"].as_str().unwrap_or_default();
    assert!(
        error.ends_with(&format!(" [{code}]")),
        "error text must end with [{code}]: {}",
        r.2
    );
}

#[track_caller]
fn assert_plain_400(r: &Reply) {
    assert_eq!(r.0.as_u16(), 400, "want 400; got {}", r.2);
    assert_eq!(r.2["success"], false, "{}", r.2);
    assert!(r.2["error"].is_string(), "{}", r.2);
}

// ---------------------------------------------------------------- users.create

#[tokio::test]
async fn users_create_happy_path_and_errors() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let r = srv
        .post_json(
            "users.create",
            Some(&admin),
            json!({"email": "nina@example.com", "name": "Nina N", "password": "nina-pass-1",
                   "username": "nina", "roles": ["user", "bot"], "active": true,
                   "joinDefaultChannels": false}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    let u = &r.2["user"];
    let id = u["_id"].as_str().expect("_id").to_string();
    assert_eq!(id.len(), 17, "{u}");
    assert!(id.chars().all(|c| ID_ALPHABET.contains(c)), "{u}");
    assert_eq!(u["username"], "nina");
    assert_eq!(u["name"], "Nina N");
    assert_eq!(u["emails"][0]["address"], "nina@example.com");
    assert_eq!(u["roles"], json!(["user", "bot"]));
    assert_eq!(u["active"], true);
    assert_eq!(u["type"], "user");
    assert_eq!(u["status"], "offline");
    let text = u.to_string().to_lowercase();
    assert!(!text.contains("password") && !text.contains("$2"), "{u}");
    // The new user can log in.
    let s = srv.login("nina", "nina-pass-1").await;
    assert_eq!(s.user_id, id);
    // Default roles: ["user"].
    let r = srv
        .post_json(
            "users.create",
            Some(&admin),
            json!({"email": "omar@example.com", "name": "Omar", "password": "p", "username": "omar"}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["roles"], json!(["user"]));

    // Inactive users cannot log in.
    let r = srv
        .post_json(
            "users.create",
            Some(&admin),
            json!({"email": "ina@example.com", "name": "Ina", "password": "ina-pass-1",
                   "username": "ina", "active": false}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["active"], false);
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "ina", "password": "ina-pass-1"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());

    let base = json!({"email": "x@example.com", "name": "X", "password": "x", "username": "x"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    // Taken usernames (any case) and emails.
    for body in [
        with("username", json!("NINA")),
        with("username", json!("rocket.cat")),
        with("email", json!("NINA@example.com")),
        with("email", json!(ADMIN_EMAIL)),
    ] {
        let r = srv
            .post_json("users.create", Some(&admin), body.clone())
            .await;
        assert_error_type(&r, "users.create", "error-field-unavailable");
    }
    for body in [
        with("username", json!("has space")),
        with("username", json!("")),
        with("username", json!("a/b")),
    ] {
        let r = srv
            .post_json("users.create", Some(&admin), body.clone())
            .await;
        assert_error_type(&r, "users.create", "error-input-is-not-a-valid-field");
    }
    for body in [
        with("email", json!("not-an-email")),
        with("email", json!("a@b")),
    ] {
        let r = srv
            .post_json("users.create", Some(&admin), body.clone())
            .await;
        assert_error_type(&r, "users.create", "error-invalid-email");
    }
    let r = srv
        .post_json(
            "users.create",
            Some(&admin),
            with("roles", json!(["wizard"])),
        )
        .await;
    assert_error_type(&r, "users.create", "error-invalid-role");
    // Missing or mistyped fields: a Match error naming the field.
    for field in ["email", "name", "password", "username"] {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(field);
        let r = srv.post_json("users.create", Some(&admin), body).await;
        assert_plain_400(&r);
        assert!(
            r.2["error"].as_str().unwrap().starts_with("Match error"),
            "{}",
            r.2
        );
        assert!(r.2["error"].as_str().unwrap().contains(field), "{}", r.2);
        let r = srv
            .post_json("users.create", Some(&admin), with(field, json!(12)))
            .await;
        assert_plain_400(&r);
        assert!(
            r.2["error"].as_str().unwrap().starts_with("Match error"),
            "{}",
            r.2
        );
    }
    for (k, v) in [
        ("roles", json!("user")),
        ("roles", json!([1])),
        ("active", json!("yes")),
    ] {
        let r = srv
            .post_json("users.create", Some(&admin), with(k, v))
            .await;
        assert_plain_400(&r);
    }
    // Nothing of that was created.
    let r = srv.get("users.info?username=x", Some(&admin)).await;
    assert_reply(
        &r,
        400,
        json!({"success": false, "error": "User not found."}),
    );

    // Without create-user: refused, even with a valid body. Rocket.Chat's users.create
    // declares no permission; its saveUser refuses with a 400.
    let r = srv.post_json("users.create", Some(&s), base.clone()).await;
    assert_error_type(&r, "users.create", "error-action-not-allowed");
    assert_eq!(
        r.2["error"],
        "Adding user is not allowed [error-action-not-allowed]"
    );
    let r = srv.post_json("users.create", None, base.clone()).await;
    assert_reply(&r, 401, body_401());
    // The permission is what counts, not the role.
    srv.set_permission("create-user", &["admin", "bot"]).await;
    let r = srv.post_json("users.create", Some(&s), base).await;
    assert_status(&r, 200);
}

// ---------------------------------------------------------------- users.update

#[tokio::test]
async fn users_update_happy_path_and_errors() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let id = srv.create_user_only("pete", "pete-pass-1", &["user"]).await;

    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": id, "data": {"name": "Peter P", "email": "peter@example.com",
                    "username": "peter", "password": "new-pass-2", "statusText": "  updated  "}}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    let u = &r.2["user"];
    assert_eq!(u["_id"], id.as_str());
    assert_eq!(u["name"], "Peter P");
    assert_eq!(u["username"], "peter");
    assert_eq!(u["emails"][0]["address"], "peter@example.com");
    assert_eq!(u["statusText"], "updated");
    // The new credentials work, the old ones do not.
    let s = srv.login("peter", "new-pass-2").await;
    assert_eq!(s.user_id, id);
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "peter", "password": "pete-pass-1"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "pete", "password": "new-pass-2"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());

    // Roles, and deactivation logs the user out.
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": id, "data": {"roles": ["user", "bot"]}}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["roles"], json!(["user", "bot"]));
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": id, "data": {"active": false}}),
        )
        .await;
    assert_status(&r, 200);
    assert_reply(&srv.get("me", Some(&s)).await, 401, body_401());
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "peter", "password": "new-pass-2"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": id, "data": {"active": true}}),
        )
        .await;
    assert_status(&r, 200);
    let s = srv.login("peter", "new-pass-2").await;

    // A user may update itself, but not others, roles or the active flag: 400s, as
    // Rocket.Chat's saveUser and setUserActiveStatus refuse them.
    let r = srv
        .post_json(
            "users.update",
            Some(&s),
            json!({"userId": id, "data": {"name": "Me"}}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["name"], "Me");
    for (body, code, reason) in [
        (
            json!({"userId": admin.user_id, "data": {"name": "Hacked"}}),
            "error-action-not-allowed",
            "Editing user is not allowed",
        ),
        (
            json!({"userId": id, "data": {"roles": ["admin"]}}),
            "error-action-not-allowed",
            "Assigning admin is not allowed",
        ),
        (
            json!({"userId": id, "data": {"roles": ["user"]}}),
            "error-action-not-allowed",
            "Assign roles is not allowed",
        ),
        (
            json!({"userId": id, "data": {"active": false}}),
            "error-not-allowed",
            "Not allowed",
        ),
        (
            json!({"userId": "nosuchuserid12345", "data": {"name": "x"}}),
            "error-action-not-allowed",
            "Editing user is not allowed",
        ),
    ] {
        let r = srv.post_json("users.update", Some(&s), body.clone()).await;
        assert_error_type(&r, "users.update", code);
        assert_eq!(r.2["error"], format!("{reason} [{code}]"), "{body}");
    }
    assert_eq!(srv.info_of(&admin.user_id).await["name"], ADMIN_USER);

    // Errors.
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": "nosuchuserid12345", "data": {"name": "x"}}),
        )
        .await;
    assert_error_type(&r, "users.update", "error-invalid-user");
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": id, "data": {"username": "ROCKET.CAT"}}),
        )
        .await;
    assert_error_type(&r, "users.update", "error-field-unavailable");
    // `admin` is reserved besides being taken (Rocket.Chat's saveUserIdentity refuses it).
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": id, "data": {"username": "ADMIN"}}),
        )
        .await;
    assert_error_type(&r, "users.update", "error-could-not-save-identity");
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": id, "data": {"email": ADMIN_EMAIL}}),
        )
        .await;
    assert_error_type(&r, "users.update", "error-field-unavailable");
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": id, "data": {"roles": ["nope"]}}),
        )
        .await;
    assert_error_type(&r, "users.update", "error-invalid-role");
    for body in [
        json!({"userId": id}),
        json!({"data": {"name": "x"}}),
        json!({"userId": id, "data": "x"}),
        json!({"userId": id, "data": {"name": 5}}),
        json!({"userId": 5, "data": {}}),
    ] {
        let r = srv
            .post_json("users.update", Some(&admin), body.clone())
            .await;
        assert_plain_400(&r);
    }
    // The last admin cannot lose the role or be deactivated.
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": admin.user_id, "data": {"roles": ["user"]}}),
        )
        .await;
    assert_error_type(&r, "users.update", "error-action-not-allowed");
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": admin.user_id, "data": {"active": false}}),
        )
        .await;
    assert_error_type(&r, "users.update", "error-action-not-allowed");
    assert_status(&srv.get("me", Some(&admin)).await, 200);
}

// ---------------------------------------------------------------- users.delete

#[tokio::test]
async fn users_delete_happy_path_and_errors() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let quinn = srv.create_user("quinn", "quinn-pass-1", &["user"]).await;
    let rita_id = srv.create_user_only("rita", "rita-pass-1", &["user"]).await;

    // Plain users may not delete: users.delete declares delete-user (CONTRACT §2 v2).
    let r = srv
        .post_json("users.delete", Some(&quinn), json!({"userId": rita_id}))
        .await;
    assert_reply(&r, 403, body_403_declared());
    let r = srv
        .post_json(
            "users.delete",
            Some(&quinn),
            json!({"userId": quinn.user_id}),
        )
        .await;
    assert_reply(&r, 403, body_403_declared());

    srv.set_status(&quinn, json!({"status": "busy", "message": "bye"}))
        .await;
    let r = srv
        .post_json(
            "users.delete",
            Some(&admin),
            json!({"userId": quinn.user_id}),
        )
        .await;
    assert_reply(&r, 200, ok());
    // Gone: sessions, lookups, logins; the name is free again.
    assert_reply(&srv.get("me", Some(&quinn)).await, 401, body_401());
    let r = srv
        .get(
            &format!("users.getStatus?userId={}", quinn.user_id),
            Some(&admin),
        )
        .await;
    assert_error_type(&r, "users.getStatus", "error-invalid-user");
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "quinn", "password": "quinn-pass-1"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());
    let r = srv
        .get(
            &format!("users.presence?ids={}", quinn.user_id),
            Some(&admin),
        )
        .await;
    assert_reply(
        &r,
        200,
        json!({"users": [], "full": false, "success": true}),
    );
    srv.create_user_only("quinn", "quinn-pass-2", &["user"])
        .await;

    // By username too.
    let r = srv
        .post_json("users.delete", Some(&admin), json!({"username": "rita"}))
        .await;
    assert_reply(&r, 200, ok());

    // Errors.
    let r = srv
        .post_json("users.delete", Some(&admin), json!({"userId": rita_id}))
        .await;
    assert_error_type(&r, "users.delete", "error-invalid-user");
    for body in [json!({}), json!({"userId": 5})] {
        let r = srv.post_json("users.delete", Some(&admin), body).await;
        assert_plain_400(&r);
    }
    // The last admin stays.
    let r = srv
        .post_json(
            "users.delete",
            Some(&admin),
            json!({"userId": admin.user_id}),
        )
        .await;
    assert_error_type(&r, "users.delete", "error-action-not-allowed");
    assert_status(&srv.get("me", Some(&admin)).await, 200);
    let r = srv
        .post_json("users.delete", None, json!({"userId": rita_id}))
        .await;
    assert_reply(&r, 401, body_401());
}

/// Rocket.Chat never deletes its bot (its deleteUser refuses `rocket.cat`), and
/// neither does statusd: a deleted bot was only made again at the next start.
#[tokio::test]
async fn users_delete_keeps_rocket_cat() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    for body in [
        json!({"userId": "rocket.cat"}),
        json!({"username": "rocket.cat"}),
    ] {
        let r = srv.post_json("users.delete", Some(&admin), body).await;
        assert_error_type(&r, "users.delete", "error-action-not-allowed");
        assert_eq!(
            r.2["error"],
            "Deleting the rocket.cat user is not allowed [error-action-not-allowed]"
        );
    }
    let r = srv
        .get("users.info?username=rocket.cat", Some(&admin))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["_id"], "rocket.cat", "{}", r.2);
}

// -------------------------------------------------------------- users.register

#[tokio::test]
async fn users_register_only_when_enabled() {
    let srv = Server::start().await;
    let body =
        json!({"username": "sam", "email": "sam@example.com", "pass": "sam-pass-1", "name": "Sam"});
    // Disabled by default.
    let r = srv.post_json("users.register", None, body.clone()).await;
    assert_error_type(&r, "users.register", "error-user-registration-disabled");
    for form in ["Secret URL", "Disabled"] {
        srv.set_setting("Accounts_RegistrationForm", json!(form))
            .await;
        let r = srv.post_json("users.register", None, body.clone()).await;
        assert_error_type(&r, "users.register", "error-user-registration-disabled");
    }

    srv.set_setting("Accounts_RegistrationForm", json!("Public"))
        .await;
    let r = srv.post_json("users.register", None, body.clone()).await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    assert_eq!(r.2["user"]["username"], "sam");
    assert_eq!(r.2["user"]["name"], "Sam");
    let id = r.2["user"]["_id"].as_str().expect("_id").to_string();
    let s = srv.login("sam", "sam-pass-1").await;
    assert_eq!(s.user_id, id);
    // A registered user is a plain user.
    let me = srv.get("me", Some(&s)).await.2;
    assert_eq!(me["roles"], json!(["user"]), "{me}");

    // Taken, malformed, missing: users.register's own texts (Rocket.Chat).
    let r = srv.post_json("users.register", None, body.clone()).await;
    assert_reply(
        &r,
        400,
        json!({"success": false, "error": "Username is already in use"}),
    );
    let r = srv
        .post_json(
            "users.register",
            None,
            json!({"username": "Sam2", "email": "SAM@example.com", "pass": "x"}),
        )
        .await;
    assert_reply(
        &r,
        400,
        json!({"success": false, "error": "Email already exists"}),
    );
    let r = srv
        .post_json(
            "users.register",
            None,
            json!({"username": "tom", "email": "bad", "pass": "x"}),
        )
        .await;
    assert_error_type(&r, "users.register", "error-invalid-email");
    for b in [
        json!({"username": "tom", "email": "tom@example.com"}),
        json!({"email": "tom@example.com", "pass": "x"}),
        json!({"username": "tom", "pass": "x"}),
    ] {
        let r = srv.post_json("users.register", None, b).await;
        assert_plain_400(&r);
    }
    let r = srv
        .post_json(
            "users.register",
            None,
            json!({"username": "tom", "email": "tom@example.com", "pass": ""}),
        )
        .await;
    assert_eq!(r.0.as_u16(), 400, "{}", r.2);
    // Without a name the username is used.
    let r = srv
        .post_json(
            "users.register",
            None,
            json!({"username": "tom", "email": "tom@example.com", "pass": "tom-pass-1"}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["name"], "tom");
}

// ------------------------------------------------------------------ users.list

#[tokio::test]
async fn users_list_pages_and_counts() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    for name in ["u1", "u2", "u3"] {
        srv.create_user_only(name, "pw", &["user"]).await;
    }
    let r = srv.get("users.list", Some(&admin)).await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    // admin, rocket.cat, u1, u2, u3
    assert_eq!(r.2["total"], 5, "{}", r.2);
    assert_eq!(r.2["count"], 5, "{}", r.2);
    assert_eq!(r.2["offset"], 0, "{}", r.2);
    let names: Vec<&str> = r.2["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    for n in ["admin", "rocket.cat", "u1", "u2", "u3"] {
        assert!(names.contains(&n), "{n} missing: {}", r.2);
    }
    let r = srv.get("users.list?offset=1&count=2", Some(&admin)).await;
    assert_status(&r, 200);
    assert_eq!(r.2["total"], 5);
    assert_eq!(r.2["count"], 2);
    assert_eq!(r.2["offset"], 1);
    assert_eq!(r.2["users"].as_array().unwrap().len(), 2);
    let r = srv.get("users.list?offset=10", Some(&admin)).await;
    assert_eq!(r.2["users"], json!([]), "{}", r.2);
    assert_eq!(r.2["total"], 5);
    for q in ["count=abc", "offset=-1", "count=1.5"] {
        let r = srv.get(&format!("users.list?{q}"), Some(&admin)).await;
        assert_plain_400(&r);
    }
    // Plain users may list too (view-d-room) and see the public part of others.
    let s = srv.create_user("viewer", "viewer-pass-1", &["user"]).await;
    let r = srv.get("users.list", Some(&s)).await;
    assert_status(&r, 200);
    for u in r.2["users"].as_array().unwrap() {
        if u["_id"] != s.user_id.as_str() {
            assert!(u.get("emails").is_none(), "{u}");
            assert!(u.get("roles").is_none(), "{u}");
        }
    }
    assert_reply(&srv.get("users.list", None).await, 401, body_401());
}

// -------------------------------------------------------------------- settings

#[tokio::test]
async fn settings_get_set_public_and_type_checks() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let user = srv.create_user("ursula", "ursula-pass-1", &["user"]).await;

    let defaults = [
        ("Accounts_AllowUserStatusMessageChange", json!(true)),
        ("Accounts_AllowInvisibleStatusOption", json!(true)),
        ("API_Enable_Rate_Limiter", json!(false)), // forced by the test harness
        ("API_Enable_Rate_Limiter_Limit_Calls_Default", json!(10)),
        ("API_Enable_Rate_Limiter_Limit_Time_Default", json!(60000)),
        ("Accounts_LoginExpiration", json!(90)),
        ("Accounts_RegistrationForm", json!("Disabled")),
        ("Block_Multiple_Failed_Logins_Enabled", json!(true)),
        (
            "Block_Multiple_Failed_Logins_Attempts_Until_Block_by_User",
            json!(10),
        ),
    ];
    for (id, value) in &defaults {
        let r = srv.get(&format!("settings/{id}"), Some(&admin)).await;
        assert_eq!(
            (r.0.as_u16(), &r.2),
            (200, &json!({"_id": id, "value": value, "success": true})),
            "{id}"
        );
    }

    // Change each type; read back.
    for (id, value) in [
        ("Accounts_AllowInvisibleStatusOption", json!(false)),
        ("API_Enable_Rate_Limiter_Limit_Calls_Default", json!(25)),
        ("Accounts_RegistrationForm", json!("Public")),
        (
            "Block_Multiple_Failed_Logins_Ip_Whitelist",
            json!("127.0.0.1"),
        ),
    ] {
        let r = srv
            .post_json(
                &format!("settings/{id}"),
                Some(&admin),
                json!({ "value": value }),
            )
            .await;
        assert_reply(&r, 200, ok());
        let r = srv.get(&format!("settings/{id}"), Some(&admin)).await;
        assert_eq!(r.2["value"], value, "{id}");
    }

    // A wrong type: 400, unchanged.
    for (id, value) in [
        ("Accounts_AllowInvisibleStatusOption", json!("true")),
        ("Accounts_AllowInvisibleStatusOption", json!(1)),
        ("Accounts_AllowInvisibleStatusOption", json!(null)),
        ("API_Enable_Rate_Limiter_Limit_Calls_Default", json!("10")),
        ("API_Enable_Rate_Limiter_Limit_Calls_Default", json!(2.5)),
        ("API_Enable_Rate_Limiter_Limit_Calls_Default", json!(true)),
        ("Accounts_RegistrationForm", json!("Open")),
        ("Accounts_RegistrationForm", json!(1)),
        (
            "Block_Multiple_Failed_Logins_Ip_Whitelist",
            json!(["127.0.0.1"]),
        ),
    ] {
        let r = srv
            .post_json(
                &format!("settings/{id}"),
                Some(&admin),
                json!({ "value": value }),
            )
            .await;
        assert_eq!(r.0.as_u16(), 400, "{id} = {value}: {}", r.2);
        assert_eq!(r.2["success"], false, "{}", r.2);
    }
    let r = srv
        .get("settings/Accounts_AllowInvisibleStatusOption", Some(&admin))
        .await;
    assert_eq!(r.2["value"], false);
    let r = srv
        .get(
            "settings/API_Enable_Rate_Limiter_Limit_Calls_Default",
            Some(&admin),
        )
        .await;
    assert_eq!(r.2["value"], 25);
    // No value / not an object.
    for body in [json!({}), json!([]), json!({"val": true})] {
        let r = srv
            .post_json(
                "settings/Accounts_AllowInvisibleStatusOption",
                Some(&admin),
                body,
            )
            .await;
        assert_plain_400(&r);
    }
    // Unknown settings.
    let r = srv.get("settings/No_Such_Setting", Some(&admin)).await;
    assert_plain_400(&r);
    let r = srv
        .post_json(
            "settings/No_Such_Setting",
            Some(&admin),
            json!({"value": true}),
        )
        .await;
    assert_plain_400(&r);

    // Only holders of view-/edit-privileged-setting.
    let r = srv
        .get("settings/Accounts_AllowInvisibleStatusOption", Some(&user))
        .await;
    assert_reply(&r, 403, body_403_declared());
    let r = srv
        .post_json(
            "settings/Accounts_AllowInvisibleStatusOption",
            Some(&user),
            json!({"value": true}),
        )
        .await;
    assert_reply(&r, 403, body_403_declared());
    let r = srv
        .get("settings/Accounts_AllowInvisibleStatusOption", None)
        .await;
    assert_reply(&r, 401, body_401());
    srv.set_permission("view-privileged-setting", &["admin", "user"])
        .await;
    let r = srv
        .get("settings/Accounts_AllowInvisibleStatusOption", Some(&user))
        .await;
    assert_status(&r, 200);
    let r = srv
        .post_json(
            "settings/Accounts_AllowInvisibleStatusOption",
            Some(&user),
            json!({"value": true}),
        )
        .await;
    assert_reply(&r, 403, body_403_declared());

    // settings.public: no auth, public settings only, current values.
    let r = srv.get("settings.public", None).await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    let list = r.2["settings"].as_array().expect("settings");
    let find = |id: &str| list.iter().find(|s| s["_id"] == id).cloned();
    assert_eq!(
        find("Accounts_AllowInvisibleStatusOption"),
        Some(json!({"_id": "Accounts_AllowInvisibleStatusOption", "value": false}))
    );
    assert_eq!(
        find("Accounts_AllowUserStatusMessageChange"),
        Some(json!({"_id": "Accounts_AllowUserStatusMessageChange", "value": true}))
    );
    assert!(find("Accounts_RegistrationForm").is_some(), "{}", r.2);
    for private in [
        "API_Enable_Rate_Limiter",
        "Block_Multiple_Failed_Logins_Ip_Whitelist",
        "Block_Multiple_Failed_Logins_Enabled",
    ] {
        assert!(find(private).is_none(), "{private} is not public: {}", r.2);
    }
    assert_eq!(r.2["count"].as_u64(), Some(list.len() as u64), "{}", r.2);
}

/// The settings clients and admin scripts read around accounts and status exist with
/// Rocket.Chat's ids, types, defaults and public flags (issue 15 §3); `Site_Url` comes
/// from ROOT_URL and `uniqueID` is made once and kept across restarts.
#[tokio::test]
async fn rocket_chat_settings_exist_with_their_defaults() {
    let mut srv = Server::start_with(&[("ROOT_URL", "https://status.example.org")]).await;
    let admin = srv.admin_pat().await;
    let want = [
        ("Site_Url", json!("https://status.example.org"), true),
        ("Site_Name", json!("statusd"), true),
        ("Accounts_BlockedUsernameList", json!(""), false),
        ("UTF8_User_Names_Validation", json!("[0-9a-zA-Z-_.]+"), true),
        (
            "Accounts_Registration_Users_Default_Roles",
            json!("user"),
            true,
        ),
        (
            "API_Apply_permission_view-outside-room_on_users-list",
            json!(false),
            true,
        ),
        (
            "Accounts_Default_User_Preferences_enableAutoAway",
            json!(true),
            true,
        ),
        (
            "Accounts_Default_User_Preferences_idleTimeLimit",
            json!(300),
            true,
        ),
        ("Presence_broadcast_disabled", json!(false), true),
        ("API_Use_REST_For_DDP_Calls", json!(true), true),
        (
            "Block_Multiple_Failed_Logins_Time_To_Unblock_By_User_In_Minutes",
            json!(5.0),
            false,
        ),
    ];
    let public = srv.get("settings.public?count=100", None).await;
    assert_status(&public, 200);
    let listed = |id: &str| {
        public.2["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["_id"] == id)
            .map(|s| s["value"].clone())
    };
    for (id, value, is_public) in &want {
        let r = srv.get(&format!("settings/{id}"), Some(&admin)).await;
        assert_eq!(
            (r.0.as_u16(), &r.2),
            (200, &json!({"_id": id, "value": value, "success": true})),
            "{id}"
        );
        let expected = is_public.then(|| value.clone());
        assert_eq!(
            listed(id),
            expected,
            "{id} in settings.public: {}",
            public.2
        );
    }
    let r = srv.get("settings/uniqueID", Some(&admin)).await;
    let unique = r.2["value"].as_str().expect("uniqueID").to_string();
    assert_eq!(unique.len(), 36, "a UUID: {unique}");
    assert_eq!(listed("uniqueID"), Some(json!(unique)));
    srv.restart().await;
    let r = srv.get("settings/uniqueID", Some(&admin)).await;
    assert_eq!(r.2["value"], json!(unique), "uniqueID is made once");
}

/// Every numeric setting has a range checked when it is set (issue 14 §9): the values
/// that panicked date arithmetic or expired every token are refused or harmless.
#[tokio::test]
async fn numeric_settings_are_range_checked() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let user = srv.create_user("ranger", "ranger-pass-1", &["user"]).await;
    for (id, value) in [
        ("Accounts_LoginExpiration", json!(i64::MAX)),
        ("Accounts_LoginExpiration", json!(100_000_000)),
        ("Accounts_LoginExpiration", json!(-1)),
        ("API_Enable_Rate_Limiter_Limit_Time_Default", json!(0)),
        ("API_Enable_Rate_Limiter_Limit_Calls_Default", json!(0)),
        ("Status_History_Retention_Days", json!(u64::MAX)),
        ("API_Upper_Count_Limit", json!(-5)),
        (
            "Block_Multiple_Failed_Logins_Time_To_Unblock_By_Ip_In_Minutes",
            json!(1e300),
        ),
        (
            "Block_Multiple_Failed_Logins_Time_To_Unblock_By_Ip_In_Minutes",
            json!(-0.5),
        ),
        ("Accounts_Default_User_Preferences_idleTimeLimit", json!(0)),
    ] {
        let r = srv
            .post_json(
                &format!("settings/{id}"),
                Some(&admin),
                json!({ "value": value }),
            )
            .await;
        assert_eq!(r.0.as_u16(), 400, "{id} = {value}: {}", r.2);
        assert_eq!(r.2["errorType"], "error-invalid-setting-value", "{}", r.2);
    }
    assert_eq!(
        srv.get("settings/Accounts_LoginExpiration", Some(&admin))
            .await
            .2["value"],
        90
    );
    // Everything still works (before: every authenticated call answered 500).
    assert_status(&srv.get("me", Some(&user)).await, 200);

    // 0 days is Rocket.Chat's default of 90, not "every token expired".
    srv.set_setting("Accounts_LoginExpiration", json!(0)).await;
    assert_status(&srv.get("me", Some(&user)).await, 200);
    assert_status(&srv.get("me", Some(&admin)).await, 200);
    let mut c = ddp::Ddp::connect(&srv).await;
    let r = c.login_password("ranger", "ranger-pass-1").await.unwrap();
    let want = chrono::Utc::now().timestamp_millis() + 90 * 86_400_000;
    let got = r["tokenExpires"]["$date"].as_i64().unwrap();
    assert!((got - want).abs() < 60_000, "{r}");
    // The largest value accepted works too.
    srv.set_setting("Accounts_LoginExpiration", json!(36_500))
        .await;
    assert_status(&srv.get("me", Some(&user)).await, 200);
    let r = c.login_password("ranger", "ranger-pass-1").await.unwrap();
    assert!(r["tokenExpires"]["$date"].as_i64().unwrap() > want, "{r}");

    // Fractional minutes, as Rocket.Chat takes them.
    let id = "Block_Multiple_Failed_Logins_Time_To_Unblock_By_User_In_Minutes";
    srv.set_setting(id, json!(0.5)).await;
    let r = srv.get(&format!("settings/{id}"), Some(&admin)).await;
    assert_eq!(r.2["value"], json!(0.5));
}

/// settings.public: `_id` (comma list), `query`, `offset`, `count`, and `total`.
#[tokio::test]
async fn settings_public_filters_and_pages() {
    let srv = Server::start().await;
    let ids = |r: &Reply| -> Vec<String> {
        r.2["settings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["_id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = srv.get("settings.public?count=100", None).await;
    let total = all.2["total"].as_u64().unwrap();
    assert!(total >= 15, "{}", all.2);
    assert_eq!(all.2["count"], total);
    assert_eq!(all.2["offset"], 0);

    let r = srv
        .get(
            "settings.public?_id=Site_Name,%20Accounts_AllowInvisibleStatusOption,API_Enable_Rate_Limiter,Nope",
            None,
        )
        .await;
    assert_status(&r, 200);
    let mut got = ids(&r);
    got.sort();
    assert_eq!(got, ["Accounts_AllowInvisibleStatusOption", "Site_Name"]);
    assert_eq!(
        (r.2["count"].clone(), r.2["total"].clone()),
        (json!(2), json!(2))
    );

    let r = srv.get("settings.public?offset=2&count=3", None).await;
    assert_status(&r, 200);
    assert_eq!(ids(&r), ids(&all)[2..5].to_vec());
    assert_eq!(
        (&r.2["count"], &r.2["offset"], &r.2["total"]),
        (&json!(3), &json!(2), &json!(total))
    );

    let q = enc(r#"{"_id":{"$regex":"^Accounts_Default_User_Preferences_"}}"#);
    let r = srv.get(&format!("settings.public?query={q}"), None).await;
    assert_status(&r, 200);
    let mut got = ids(&r);
    got.sort();
    assert_eq!(
        got,
        [
            "Accounts_Default_User_Preferences_enableAutoAway",
            "Accounts_Default_User_Preferences_idleTimeLimit"
        ]
    );
    let q = enc(r#"{"_id":{"$in":["Site_Name","uniqueID"]},"value":"statusd"}"#);
    let r = srv.get(&format!("settings.public?query={q}"), None).await;
    assert_eq!(ids(&r), ["Site_Name"], "{}", r.2);

    for bad in ["nope", r#"{"_id":{"$where":"1"}}"#, r#"{"type":"int"}"#] {
        let r = srv
            .get(&format!("settings.public?query={}", enc(bad)), None)
            .await;
        assert_eq!(r.0.as_u16(), 400, "{bad}: {}", r.2);
        assert_eq!(r.2["errorType"], "error-invalid-query", "{}", r.2);
    }
    let r = srv.get("settings.public?count=ten", None).await;
    assert_eq!(r.0.as_u16(), 400, "{}", r.2);
}

// ----------------------------------------------------------------- permissions

#[tokio::test]
async fn permissions_list_and_update() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let user = srv.create_user("vera", "vera-pass-1", &["user"]).await;

    let r = srv.get("permissions.listAll", Some(&admin)).await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    let list = r.2["update"].as_array().expect("update").clone();
    let roles_of = |list: &[Value], id: &str| -> Option<Vec<String>> {
        list.iter().find(|p| p["_id"] == id).map(|p| {
            let mut r: Vec<String> = p["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            r.sort();
            r
        })
    };
    for (id, roles) in [
        ("edit-other-user-info", vec!["admin"]),
        ("api-bypass-rate-limit", vec!["admin", "app", "bot"]),
        ("view-full-other-user-info", vec!["admin"]),
        ("create-user", vec!["admin"]),
        ("delete-user", vec!["admin"]),
        ("view-privileged-setting", vec!["admin"]),
        ("edit-privileged-setting", vec!["admin"]),
        ("access-permissions", vec!["admin"]),
        ("create-personal-access-tokens", vec!["admin", "user"]),
        ("manage-user-status", vec!["admin"]),
    ] {
        assert_eq!(
            roles_of(&list, id),
            Some(roles.iter().map(|s| s.to_string()).collect()),
            "default roles of {id}"
        );
    }

    // Update several at once; the answer lists the new state.
    let r = srv
        .post_json(
            "permissions.update",
            Some(&admin),
            json!({"permissions": [
                {"_id": "create-user", "roles": ["admin", "user"]},
                {"_id": "manage-user-status", "roles": []}
            ]}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    let updated = r.2["permissions"].as_array().expect("permissions").clone();
    assert_eq!(
        roles_of(&updated, "create-user"),
        Some(vec!["admin".into(), "user".into()])
    );
    assert_eq!(roles_of(&updated, "manage-user-status"), Some(vec![]));
    let r = srv.get("permissions.listAll", Some(&user)).await;
    let list = r.2["update"].as_array().unwrap().clone();
    assert_eq!(
        roles_of(&list, "create-user"),
        Some(vec!["admin".into(), "user".into()])
    );
    // ... and it takes effect at once.
    let r = srv
        .post_json(
            "users.create",
            Some(&user),
            json!({"email": "w@example.com", "name": "W", "password": "w", "username": "w"}),
        )
        .await;
    assert_status(&r, 200);

    // Errors: unknown permission, unknown role, bad shapes — nothing applied.
    let r = srv
        .post_json(
            "permissions.update",
            Some(&admin),
            json!({"permissions": [
                {"_id": "delete-user", "roles": ["admin", "user"]},
                {"_id": "no-such-permission", "roles": ["admin"]}
            ]}),
        )
        .await;
    assert_error_type(&r, "permissions.update", "error-invalid-permission");
    let r = srv
        .post_json(
            "permissions.update",
            Some(&admin),
            json!({"permissions": [{"_id": "delete-user", "roles": ["wizard"]}]}),
        )
        .await;
    assert_error_type(&r, "permissions.update", "error-invalid-role");
    for body in [
        json!({}),
        json!({"permissions": "x"}),
        json!({"permissions": [{"_id": "delete-user"}]}),
        json!({"permissions": [{"roles": ["admin"]}]}),
        json!({"permissions": [{"_id": "delete-user", "roles": "admin"}]}),
        json!({"permissions": [{"_id": "delete-user", "roles": [1]}]}),
    ] {
        let r = srv
            .post_json("permissions.update", Some(&admin), body.clone())
            .await;
        assert_eq!(r.0.as_u16(), 400, "{body}: {}", r.2);
    }
    let r = srv.get("permissions.listAll", Some(&admin)).await;
    let list = r.2["update"].as_array().unwrap().clone();
    assert_eq!(roles_of(&list, "delete-user"), Some(vec!["admin".into()]));

    // Only holders of access-permissions may update.
    let r = srv
        .post_json(
            "permissions.update",
            Some(&user),
            json!({"permissions": [{"_id": "edit-other-user-info", "roles": ["user"]}]}),
        )
        .await;
    assert_reply(&r, 403, body_403_declared());
    let r = srv.get("permissions.listAll", None).await;
    assert_reply(&r, 401, body_401());
}

/// The whole default Rocket.Chat catalog exists (issue 15 §4): the permissions statusd
/// does not act on are listed with their default roles, updatable, and change nothing;
/// the roles they name exist; unknown permissions and roles are refused in Rocket.Chat's
/// order.
#[tokio::test]
async fn the_full_permission_catalog_is_listed_and_updatable() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let user = srv.create_user("cato", "cato-pass-1", &["user"]).await;
    let r = srv.get("permissions.listAll", Some(&user)).await;
    assert_status(&r, 200);
    let list = r.2["update"].as_array().unwrap().clone();
    assert!(list.len() >= 172, "{} permissions", list.len());
    assert_eq!(r.2["remove"], json!([]));
    let find = |id: &str| list.iter().find(|p| p["_id"] == id).cloned();
    assert_eq!(
        find("message-impersonate").map(|p| p["roles"].clone()),
        Some(json!(["bot", "app"]))
    );
    assert_eq!(
        find("view-outside-room").map(|p| p["roles"].clone()),
        Some(json!([
            "admin",
            "owner",
            "moderator",
            "user",
            "federated-external"
        ]))
    );
    let at = find("access-permissions").unwrap()["_updatedAt"].clone();
    assert!(
        at.as_str().is_some_and(|t| t.ends_with('Z')),
        "an ISO _updatedAt: {at}"
    );
    // Every role the catalog names exists.
    let roles = srv.get("roles.list", Some(&user)).await;
    let role_ids: Vec<Value> = roles.2["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["_id"].clone())
        .collect();
    for p in &list {
        for role in p["roles"].as_array().unwrap() {
            assert!(role_ids.contains(role), "{role} of {}", p["_id"]);
        }
    }

    // The rocketchat-api session fixture's update works; ones statusd does not act on
    // change nothing (users.list still answers a user without view-outside-room).
    let r = srv
        .post_json(
            "permissions.update",
            Some(&admin),
            json!({"permissions": [
                {"_id": "message-impersonate", "roles": ["admin", "bot", "app"]},
                {"_id": "view-outside-room", "roles": ["livechat-monitor"]}
            ]}),
        )
        .await;
    assert_status(&r, 200);
    let updated = r.2["permissions"].as_array().unwrap();
    let roles_of = |id: &str| {
        updated
            .iter()
            .find(|p| p["_id"] == id)
            .map(|p| p["roles"].clone())
    };
    assert_eq!(
        roles_of("message-impersonate"),
        Some(json!(["admin", "bot", "app"]))
    );
    assert_eq!(
        roles_of("view-outside-room"),
        Some(json!(["livechat-monitor"]))
    );
    assert_status(&srv.get("users.list", Some(&user)).await, 200);

    // An unknown permission is named before an unknown role, as Rocket.Chat checks.
    let r = srv
        .post_json(
            "permissions.update",
            Some(&admin),
            json!({"permissions": [
                {"_id": "message-impersonate", "roles": ["wizard"]},
                {"_id": "no-such-permission", "roles": ["admin"]}
            ]}),
        )
        .await;
    assert_error_type(&r, "permissions.update", "error-invalid-permission");
    let r = srv
        .post_json(
            "permissions.update",
            Some(&admin),
            json!({"permissions": [{"_id": "message-impersonate", "roles": ["admin", "wizard"]}]}),
        )
        .await;
    assert_error_type(&r, "permissions.update", "error-invalid-role");
    let r = srv.get("permissions.listAll", Some(&admin)).await;
    let now = r.2["update"].as_array().unwrap();
    let mi = now
        .iter()
        .find(|p| p["_id"] == "message-impersonate")
        .unwrap();
    assert_eq!(
        mi["roles"],
        json!(["admin", "bot", "app"]),
        "nothing applied"
    );
}

/// permissions.listAll?updatedSince= validates the date and answers only what changed
/// since, with `remove` (issue 15 §4).
#[tokio::test]
async fn permissions_list_all_since_a_date() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    for bad in ["yesterday", "2026-13-45", "1e9"] {
        let r = srv
            .get(
                &format!("permissions.listAll?updatedSince={}", enc(bad)),
                Some(&admin),
            )
            .await;
        assert_eq!(r.0.as_u16(), 400, "{bad}: {}", r.2);
        assert_eq!(r.2["errorType"], "error-roomId-param-invalid", "{}", r.2);
        assert_eq!(
            r.2["error"],
            "The \"updatedSince\" query parameter must be a valid date. [error-roomId-param-invalid]"
        );
    }
    // Long ago: everything.
    for old in [
        "2001-01-01",
        "2001-01-01T00:00:00Z",
        "2001-01-01T00:00:00.000",
    ] {
        let r = srv
            .get(
                &format!("permissions.listAll?updatedSince={}", enc(old)),
                Some(&admin),
            )
            .await;
        assert_status(&r, 200);
        assert!(r.2["update"].as_array().unwrap().len() >= 172, "{old}");
        assert_eq!(r.2["remove"], json!([]));
    }
    // Since a moment ago: only what changed after it.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mark = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    srv.set_permission("message-impersonate", &["app"]).await;
    let r = srv
        .get(
            &format!("permissions.listAll?updatedSince={}", enc(&mark)),
            Some(&admin),
        )
        .await;
    assert_status(&r, 200);
    let update = r.2["update"].as_array().unwrap();
    assert_eq!(update.len(), 1, "{}", r.2);
    assert_eq!(update[0]["_id"], "message-impersonate");
    assert_eq!(update[0]["roles"], json!(["app"]));
    assert!(update[0]["_updatedAt"].as_str().unwrap() > mark.as_str());
    assert_eq!(r.2["remove"], json!([]));
}

/// roles.* error types as Rocket.Chat's (issue 15 §4).
#[tokio::test]
async fn roles_errors_are_rocket_chats() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    srv.create_user_only("rolf", "rolf-pass-1", &["user"]).await;
    let r = srv
        .post_json(
            "roles.removeUserFromRole",
            Some(&admin),
            json!({"roleId": "wizard", "username": "rolf"}),
        )
        .await;
    assert_error_type(&r, "roles.removeUserFromRole", "error-invalid-roleId");
    assert_eq!(
        r.2["error"],
        "This role does not exist [error-invalid-roleId]"
    );
    // The user is looked up first.
    let r = srv
        .post_json(
            "roles.removeUserFromRole",
            Some(&admin),
            json!({"roleId": "wizard", "username": "nobody"}),
        )
        .await;
    assert_error_type(&r, "roles.removeUserFromRole", "error-invalid-user");
    assert_eq!(
        r.2["error"],
        "There is no user with this username [error-invalid-user]"
    );
    let r = srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleId": "wizard", "username": "nobody"}),
        )
        .await;
    assert_error_type(&r, "roles.addUserToRole", "error-invalid-user");
    // The roles of the catalog can be given.
    let r = srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleId": "livechat-monitor", "username": "rolf"}),
        )
        .await;
    assert_status(&r, 200);
}

// ----------------------------------------------------------------------- roles

#[tokio::test]
async fn roles_list_add_and_remove() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let wes = srv.create_user("wes", "wes-pass-1", &["user"]).await;

    let r = srv.get("roles.list", Some(&wes)).await;
    assert_status(&r, 200);
    let ids: Vec<&str> = r.2["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["_id"].as_str().unwrap())
        .collect();
    for role in [
        "admin",
        "user",
        "bot",
        "guest",
        "app",
        "moderator",
        "owner",
        "leader",
        "anonymous",
    ] {
        assert!(ids.contains(&role), "{role}: {}", r.2);
    }

    // Without the role wes cannot read a privileged setting.
    let setting = "settings/Accounts_AllowInvisibleStatusOption";
    assert_reply(
        &srv.get(setting, Some(&wes)).await,
        403,
        body_403_declared(),
    );
    let r = srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleId": "admin", "username": "wes"}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["success"], true);
    assert_eq!(r.2["role"]["_id"], "admin", "{}", r.2);
    assert_status(&srv.get(setting, Some(&wes)).await, 200);
    let roles = srv.info_of(&wes.user_id).await["roles"].clone();
    assert!(
        roles.as_array().unwrap().contains(&json!("admin")),
        "{roles}"
    );
    // Already in it.
    let r = srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleName": "admin", "username": "wes"}),
        )
        .await;
    assert_error_type(&r, "roles.addUserToRole", "error-user-already-in-role");

    let r = srv
        .post_json(
            "roles.removeUserFromRole",
            Some(&admin),
            json!({"roleId": "admin", "username": "WES"}),
        )
        .await;
    assert_status(&r, 200);
    assert_reply(
        &srv.get(setting, Some(&wes)).await,
        403,
        body_403_declared(),
    );
    let r = srv
        .post_json(
            "roles.removeUserFromRole",
            Some(&admin),
            json!({"roleId": "admin", "username": "wes"}),
        )
        .await;
    assert_error_type(&r, "roles.removeUserFromRole", "error-user-not-in-role");

    // Errors.
    let r = srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleId": "wizard", "username": "wes"}),
        )
        .await;
    assert_error_type(&r, "roles.addUserToRole", "error-role-not-found");
    let r = srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleId": "bot", "username": "nobody"}),
        )
        .await;
    assert_error_type(&r, "roles.addUserToRole", "error-invalid-user");
    for body in [
        json!({"username": "wes"}),
        json!({"roleId": "bot"}),
        json!({"roleId": 1, "username": "wes"}),
    ] {
        let r = srv
            .post_json("roles.addUserToRole", Some(&admin), body.clone())
            .await;
        assert_plain_400(&r);
    }
    // The last admin keeps the role.
    let r = srv
        .post_json(
            "roles.removeUserFromRole",
            Some(&admin),
            json!({"roleId": "admin", "username": ADMIN_USER}),
        )
        .await;
    assert_error_type(&r, "roles.removeUserFromRole", "error-remove-last-admin");
    // Plain users may not change roles.
    for path in ["roles.addUserToRole", "roles.removeUserFromRole"] {
        let r = srv
            .post_json(
                path,
                Some(&wes),
                json!({"roleId": "admin", "username": "wes"}),
            )
            .await;
        assert_reply(&r, 403, body_403_declared());
        let r = srv
            .post_json(path, None, json!({"roleId": "admin", "username": "wes"}))
            .await;
        assert_reply(&r, 401, body_401());
    }
    let roles = srv.info_of(&wes.user_id).await["roles"].clone();
    assert_eq!(roles, json!(["user"]));
}

#[tokio::test]
async fn concurrent_creations_of_one_name_let_exactly_one_through() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let calls = (0..6).map(|i| {
        let srv = &srv;
        let admin = admin.clone();
        async move {
            srv.post_json(
                "users.create",
                Some(&admin),
                json!({"email": format!("twin{i}@example.com"), "name": "Twin",
                       "password": "twin-pass-1", "username": if i % 2 == 0 { "twin" } else { "TWIN" }}),
            )
            .await
        }
    });
    let replies = futures_util::future::join_all(calls).await;
    let ok = replies.iter().filter(|r| r.0 == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        replies.iter().map(|r| &r.2).collect::<Vec<_>>()
    );
    for r in replies.iter().filter(|r| r.0 != 200) {
        assert_error_type(r, "users.create", "error-field-unavailable");
    }
}

// ------------------------------------------------ issue 14/15: account rules

/// A refusal body of users.update (`error-action-not-allowed` and its reason).
#[track_caller]
fn assert_refused(r: &Reply, route: &str, code: &str, reason: &str) {
    assert_error_type(r, route, code);
    assert_eq!(r.2["error"], format!("{reason} [{code}]"), "{}", r.2);
}

/// Issue 14.4: status text through users.update follows the setStatus rules (the
/// setting, the 5-per-minute limit, the history) and the profile settings hold, with
/// admins exempt when editing others as in Rocket.Chat.
#[tokio::test]
async fn users_update_follows_the_status_rules_and_profile_settings() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let kim = srv.create_user("kim", "kim-pass-1", &["user"]).await;
    let update = |s: &Session, data: Value| {
        let body = json!({"userId": kim.user_id, "data": data});
        let s = s.clone();
        let srv = &srv;
        async move { srv.post_json("users.update", Some(&s), body).await }
    };

    // The text change is recorded in the status history like a setStatus.
    let r = update(&kim, json!({"statusText": "  via update  "})).await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["statusText"], "via update");
    let h = srv.get("users.statusHistory", Some(&kim)).await;
    assert_status(&h, 200);
    assert_eq!(h.2["total"], 1, "{}", h.2);
    assert_eq!(h.2["items"][0]["statusText"], "via update", "{}", h.2);
    // The limit it shares with setStatus: 5 text changes per minute.
    for i in 2..=5 {
        let r = update(&kim, json!({"statusText": format!("text {i}")})).await;
        assert_status(&r, 200);
    }
    let r = update(&kim, json!({"statusText": "sixth"})).await;
    assert_too_many(&r, 60);
    assert_eq!(srv.info_of(&kim.user_id).await["statusText"], "text 5");

    // Accounts_AllowUserStatusMessageChange=false: refused for oneself, nothing written.
    srv.set_setting("Accounts_AllowUserStatusMessageChange", json!(false))
        .await;
    let r = update(&kim, json!({"statusText": "sneaky", "name": "Kim K"})).await;
    assert_refused(
        &r,
        "users.update",
        "error-action-not-allowed",
        "Edit user status is not allowed",
    );
    let info = srv.info_of(&kim.user_id).await;
    assert_eq!(
        (&info["statusText"], &info["name"]),
        (&json!("text 5"), &json!("kim Name"))
    );
    // An admin editing someone else is exempt (and not rate limited).
    let r = update(&admin, json!({"statusText": "set by admin"})).await;
    assert_status(&r, 200);
    srv.set_setting("Accounts_AllowUserStatusMessageChange", json!(true))
        .await;

    // The other profile settings.
    for (setting, data, reason) in [
        (
            "Accounts_AllowUsernameChange",
            json!({"username": "kimmy"}),
            "Edit username is not allowed",
        ),
        (
            "Accounts_AllowRealNameChange",
            json!({"name": "Kimberly"}),
            "Edit user real name is not allowed",
        ),
        (
            "Accounts_AllowEmailChange",
            json!({"email": "kim2@example.com"}),
            "Edit user email is not allowed",
        ),
        (
            "Accounts_AllowPasswordChange",
            json!({"password": "kim-pass-2"}),
            "Edit user password is not allowed",
        ),
        (
            "Accounts_AllowUserProfileChange",
            json!({"name": "Kimberly"}),
            "Edit user profile is not allowed",
        ),
    ] {
        srv.set_setting(setting, json!(false)).await;
        let r = update(&kim, data.clone()).await;
        assert_refused(&r, "users.update", "error-action-not-allowed", reason);
        srv.set_setting(setting, json!(true)).await;
    }
    // Unchanged values are no change: allowed whatever the settings.
    srv.set_setting("Accounts_AllowRealNameChange", json!(false))
        .await;
    let r = update(&kim, json!({"name": "kim Name"})).await;
    assert_status(&r, 200);
    assert_eq!(srv.login("kim", "kim-pass-1").await.user_id, kim.user_id);
}

/// Issue 14.5: a new password ends every other session of the user (the session that
/// changed it stays); another user's password needs edit-other-user-password.
#[tokio::test]
async fn a_password_change_revokes_the_other_sessions() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let lou = srv.create_user("lou", "lou-pass-1", &["user"]).await;
    let stolen = srv.login("lou", "lou-pass-1").await;
    let r = srv
        .post_json(
            "users.generatePersonalAccessToken",
            Some(&lou),
            json!({"tokenName": "bot"}),
        )
        .await;
    assert_status(&r, 200);
    let pat = lou.with_token(r.2["token"].as_str().unwrap());

    let r = srv
        .post_json(
            "users.update",
            Some(&lou),
            json!({"userId": lou.user_id, "data": {"password": "lou-pass-2"}}),
        )
        .await;
    assert_status(&r, 200);
    assert_reply(&srv.get("me", Some(&stolen)).await, 401, body_401());
    assert_status(&srv.get("me", Some(&lou)).await, 200);
    assert_status(&srv.get("me", Some(&pat)).await, 200);
    srv.login("lou", "lou-pass-2").await;

    // Another user's password: only with edit-other-user-password, and then every
    // session of theirs ends.
    let mia = srv.create_user("mia", "mia-pass-1", &["user"]).await;
    srv.set_permission("edit-other-user-password", &[]).await;
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": mia.user_id, "data": {"password": "taken-over"}}),
        )
        .await;
    assert_refused(
        &r,
        "users.update",
        "error-action-not-allowed",
        "Edit user password is not allowed",
    );
    assert_status(&srv.get("me", Some(&mia)).await, 200);
    srv.set_permission("edit-other-user-password", &["admin"])
        .await;
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": mia.user_id, "data": {"password": "reset-by-admin"}}),
        )
        .await;
    assert_status(&r, 200);
    assert_reply(&srv.get("me", Some(&mia)).await, 401, body_401());
    assert_status(&srv.get("me", Some(&admin)).await, 200);
}

/// Issue 14.6: making someone an admin needs assign-admin-role on every path.
#[tokio::test]
async fn making_an_admin_needs_assign_admin_role() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let ned = srv.create_user("ned", "ned-pass-1", &["user"]).await;
    srv.set_permission("assign-admin-role", &[]).await;
    let r = srv
        .post_json(
            "users.create",
            Some(&admin),
            json!({"email": "boss@example.com", "name": "Boss", "password": "boss-pass-1",
                   "username": "boss", "roles": ["admin"]}),
        )
        .await;
    assert_refused(
        &r,
        "users.create",
        "error-action-not-allowed",
        "Assigning admin is not allowed",
    );
    let r = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": ned.user_id, "data": {"roles": ["user", "admin"]}}),
        )
        .await;
    assert_refused(
        &r,
        "users.update",
        "error-action-not-allowed",
        "Assigning admin is not allowed",
    );
    let r = srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleId": "admin", "username": "ned"}),
        )
        .await;
    assert_refused(
        &r,
        "roles.addUserToRole",
        "error-action-not-allowed",
        "Assigning admin is not allowed",
    );
    assert_eq!(srv.info_of(&ned.user_id).await["roles"], json!(["user"]));
    let r = srv.get("users.info?username=boss", Some(&admin)).await;
    assert_reply(
        &r,
        400,
        json!({"success": false, "error": "User not found."}),
    );
    // With it, all three work.
    srv.set_permission("assign-admin-role", &["admin"]).await;
    let r = srv
        .post_json(
            "roles.addUserToRole",
            Some(&admin),
            json!({"roleId": "admin", "username": "ned"}),
        )
        .await;
    assert_status(&r, 200);
}

/// Issues 14.7, 15.1: usernames follow UTF8_User_Names_Validation; reserved and
/// blocked names are refused on create, register and rename; invisible characters
/// leave names and status texts.
#[tokio::test]
async fn usernames_reserved_names_and_invisible_characters() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    srv.set_setting("Accounts_RegistrationForm", json!("Public"))
        .await;
    let create = |username: &str| {
        json!({"email": format!("{}@example.com", username.len()), "name": "N",
               "password": "p-1", "username": username})
    };
    // The Cyrillic look-alike and other characters outside the default pattern.
    for name in ["\u{430}dmin", "Zoë", "a b"] {
        let r = srv
            .post_json("users.create", Some(&admin), create(name))
            .await;
        assert_refused(
            &r,
            "users.create",
            "error-input-is-not-a-valid-field",
            &format!("{name} is not a valid username"),
        );
    }
    // Reserved names in any case, and the workspace's own list.
    srv.set_setting("Accounts_BlockedUsernameList", json!("ceo, Boss"))
        .await;
    for name in [
        "admin",
        "Administrator",
        "SYSTEM",
        "user",
        "all",
        "here",
        "boss",
        "CEO",
    ] {
        let r = srv
            .post_json("users.create", Some(&admin), create(name))
            .await;
        assert_refused(
            &r,
            "users.create",
            "error-blocked-username",
            &format!("{name} is blocked and can't be used!"),
        );
        let r = srv
            .post_json(
                "users.register",
                None,
                json!({"username": name, "email": "reg@example.com", "pass": "p-1"}),
            )
            .await;
        assert_refused(
            &r,
            "users.register",
            "error-blocked-username",
            &format!("{name} is blocked and can't be used!"),
        );
    }
    let r = srv
        .post_json(
            "users.register",
            None,
            json!({"username": "no way", "email": "reg@example.com", "pass": "p-1"}),
        )
        .await;
    assert_reply(
        &r,
        400,
        json!({"success": false, "error": "The username provided is not valid"}),
    );
    let olga = srv.create_user("olga", "olga-pass-1", &["user"]).await;
    let r = srv
        .post_json(
            "users.update",
            Some(&olga),
            json!({"userId": olga.user_id, "data": {"username": "Here"}}),
        )
        .await;
    assert_refused(
        &r,
        "users.update",
        "error-could-not-save-identity",
        "Could not save user identity",
    );
    // A wider workspace pattern lets accented names in.
    srv.set_setting("UTF8_User_Names_Validation", json!(r"[\p{L}0-9._-]+"))
        .await;
    let r = srv
        .post_json("users.create", Some(&admin), create("Zoë"))
        .await;
    assert_status(&r, 200);
    // A broken pattern falls back to the default.
    srv.set_setting("UTF8_User_Names_Validation", json!("([a-z"))
        .await;
    let r = srv
        .post_json("users.create", Some(&admin), create("Zoé"))
        .await;
    assert_error_type(&r, "users.create", "error-input-is-not-a-valid-field");

    // Names Rocket.Chat refuses, and invisible characters taken out.
    for body in [
        json!({"userId": olga.user_id, "data": {"name": "<b>Olga</b>"}}),
        json!({"userId": olga.user_id, "data": {"name": "a%2Fb"}}),
    ] {
        let r = srv.post_json("users.update", Some(&olga), body).await;
        assert_reply(
            &r,
            400,
            json!({"success": false, "error": "Name contains invalid characters"}),
        );
    }
    let r = srv
        .post_json(
            "users.update",
            Some(&olga),
            json!({"userId": olga.user_id, "data": {"name": "Ol\u{200B}ga \u{202E}X"}}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["name"], "Olga X");
    let r = srv
        .set_status(
            &olga,
            json!({"message": "\u{2066}gone\u{2069} \u{200D}fishing"}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(
        srv.info_of(&olga.user_id).await["statusText"],
        "gone fishing"
    );
}

/// Issues 14.3, 15.2: the profile fields Rocket.Chat accepts, with its limits, and
/// nothing else.
#[tokio::test]
async fn profile_fields_are_capped_stored_and_unknown_members_refused() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    let r = srv
        .post_json(
            "users.create",
            Some(&admin),
            json!({"email": "pia@example.com", "name": "Pia", "password": "pia-pass-1",
                   "username": "pia", "bio": "Writes Rust.", "nickname": "P",
                   "verified": true, "requirePasswordChange": false,
                   "sendWelcomeEmail": false, "joinDefaultChannels": false}),
        )
        .await;
    assert_status(&r, 200);
    let id = r.2["user"]["_id"].as_str().unwrap().to_string();
    let info = srv.info_of(&id).await;
    assert_eq!(info["bio"], "Writes Rust.", "{info}");
    assert_eq!(info["nickname"], "P", "{info}");
    assert_eq!(info["emails"][0]["verified"], true, "{info}");
    let pia = srv.login("pia", "pia-pass-1").await;
    // Oneself may not verify one's own email.
    let r = srv
        .post_json(
            "users.update",
            Some(&pia),
            json!({"userId": id, "data": {"verified": true}}),
        )
        .await;
    assert_refused(
        &r,
        "users.update",
        "error-action-not-allowed",
        "Editing email verification is not allowed",
    );
    let r = srv
        .post_json(
            "users.update",
            Some(&pia),
            json!({"userId": id, "data": {"bio": "New bio", "nickname": ""}}),
        )
        .await;
    assert_status(&r, 200);
    let info = srv.info_of(&id).await;
    assert_eq!(info["bio"], "New bio", "{info}");
    assert!(info.get("nickname").is_none(), "{info}");

    // The caps, in characters.
    let long = |n: usize| "é".repeat(n);
    for (data, code, reason) in [
        (
            json!({"bio": long(261)}),
            "error-bio-size-exceeded",
            "Bio size exceeds 260 characters",
        ),
        (
            json!({"nickname": long(121)}),
            "error-nickname-size-exceeded",
            "Nickname size exceeds 120 characters",
        ),
        (
            json!({"name": long(121)}),
            "error-name-size-exceeded",
            "Name size exceeds 120 characters",
        ),
        (
            json!({"username": "u".repeat(65)}),
            "error-input-is-not-a-valid-field",
            &format!("{} is not a valid username", "u".repeat(65)),
        ),
        (
            json!({"email": format!("{}@example.com", "e".repeat(250))}),
            "error-invalid-email",
            &format!("Invalid email {}@example.com", "e".repeat(250)),
        ),
    ] {
        let r = srv
            .post_json(
                "users.update",
                Some(&pia),
                json!({"userId": id, "data": data}),
            )
            .await;
        assert_refused(&r, "users.update", code, reason);
    }
    let r = srv
        .post_json(
            "users.update",
            Some(&pia),
            json!({"userId": id, "data": {"bio": long(260), "name": long(120), "statusText": long(500)}}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.2["user"]["statusText"], long(120));
    // A million-character name never gets in.
    let r = srv
        .post_json(
            "users.create",
            Some(&admin),
            json!({"email": "big@example.com", "name": "n".repeat(1_000_000 - 200),
                   "password": "p", "username": "big"}),
        )
        .await;
    assert_error_type(&r, "users.create", "error-name-size-exceeded");

    // Members Rocket.Chat's schemas do not allow, and missing or empty ids.
    let unknown = json!({"success": false, "error": "must NOT have additional properties [invalid-params]",
                         "errorType": "invalid-params"});
    for (route, body) in [
        (
            "users.update",
            json!({"userId": id, "data": {"isAdmin": true}}),
        ),
        (
            "users.update",
            json!({"userId": id, "data": {}, "extra": 1}),
        ),
        (
            "users.create",
            json!({"email": "x@example.com", "name": "X", "password": "p",
                                "username": "xx", "roles": ["user"], "type": "bot"}),
        ),
        ("users.delete", json!({"userId": id, "force": true})),
    ] {
        let r = srv.post_json(route, Some(&admin), body.clone()).await;
        assert_eq!(r.0.as_u16(), 400, "{route} {body}: {}", r.2);
        let mut got = r.2.clone();
        got.as_object_mut().unwrap().remove("details");
        assert_eq!(got, unknown, "{route} {body}");
    }
    for (route, body, reason) in [
        (
            "users.update",
            json!({"data": {"name": "x"}}),
            "must have required property 'userId'",
        ),
        (
            "users.update",
            json!({"userId": "", "data": {"name": "x"}}),
            "must NOT have fewer than 1 characters",
        ),
        (
            "users.delete",
            json!({}),
            "must have required property 'userId'",
        ),
        (
            "users.delete",
            json!({"userId": " "}),
            "must have required property 'userId'",
        ),
    ] {
        let r = srv.post_json(route, Some(&admin), body.clone()).await;
        assert_refused(&r, route, "invalid-params", reason);
    }
}
