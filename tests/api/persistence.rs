//! Durability (issue 2, CONTRACT §4 step 9): what a 200 reported survives a graceful
//! restart and a `kill -9`.

use crate::common;

use common::*;

/// Everything a client can read about a user's status, as the admin sees it.
async fn snapshot(srv: &Server, ids: &[String]) -> Vec<(Value, Value, Value)> {
    let admin = srv.admin().await;
    let mut out = Vec::new();
    for id in ids {
        let status = srv.status_of(id).await;
        let info = srv.info_of(id).await;
        let presence = srv
            .get(&format!("users.getPresence?userId={id}"), Some(&admin))
            .await
            .2;
        out.push((status, info, presence));
    }
    out
}

#[tokio::test]
async fn statuses_survive_a_graceful_restart() {
    let mut srv = Server::start().await;
    let admin = srv.admin().await;
    let uma = srv.create_user("uma", "uma-pass-1", &["user"]).await;
    let vic = srv.create_user_only("vic", "vic-pass-1", &["user"]).await;
    let wen = srv.create_user_only("wen", "wen-pass-1", &["user"]).await;
    let xia = srv.create_user_only("xia", "xia-pass-1", &["bot"]).await;
    let until = iso_from_now(3 * 3600);

    for (who, body) in [
        (
            &uma,
            json!({"status": "busy", "message": "in a meeting 📅"}),
        ),
        (
            &admin,
            json!({"userId": vic, "status": "away", "message": "brb", "expiresAt": until}),
        ),
        (&admin, json!({"userId": wen, "status": "offline"})),
        (&admin, json!({"userId": xia, "message": "é".repeat(130)})),
        (
            &admin,
            json!({"status": "online", "message": "  admin here  "}),
        ),
    ] {
        let r = srv.set_status(who, body.clone()).await;
        assert_reply(&r, 200, json!({"success": true}));
    }
    srv.set_setting("Accounts_AllowInvisibleStatusOption", json!(false))
        .await;
    srv.set_permission("view-full-other-user-info", &["admin", "user"])
        .await;
    let pat = srv
        .post_json(
            "users.generatePersonalAccessToken",
            Some(&uma),
            json!({"tokenName": "ci"}),
        )
        .await
        .2["token"]
        .as_str()
        .expect("token")
        .to_string();

    let ids = vec![
        uma.user_id.clone(),
        vic.clone(),
        wen.clone(),
        xia.clone(),
        admin.user_id.clone(),
        "rocket.cat".to_string(),
    ];
    let before = snapshot(&srv, &ids).await;
    assert_eq!(before[0].0["status"], "busy");
    assert_eq!(before[1].0["statusExpiresAt"], until.as_str());
    assert_eq!(before[2].0["status"], "offline");
    assert_eq!(before[3].1["statusText"], "é".repeat(120));
    assert_eq!(before[4].1["statusText"], "admin here");

    srv.restart().await;

    let after = snapshot(&srv, &ids).await;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(b, a, "user {} changed across the restart", ids[i]);
    }
    // Sessions, PATs, settings and permissions came back too.
    assert_status(&srv.get("me", Some(&uma)).await, 200);
    assert_status(&srv.get("me", Some(&uma.with_token(&pat))).await, 200);
    let r = srv
        .get("settings/Accounts_AllowInvisibleStatusOption", Some(&admin))
        .await;
    assert_eq!(r.2["value"], false, "{}", r.2);
    let r = srv
        .get(&format!("users.info?userId={vic}"), Some(&uma))
        .await;
    assert!(r.2["user"].get("emails").is_some(), "{}", r.2);
    // A fresh start on the old data keeps working as usual.
    let r = srv.set_status(&uma, json!({"status": "away"})).await;
    assert_reply(&r, 200, json!({"success": true}));
    let r = srv.set_status(&uma, json!({"status": "offline"})).await;
    assert_status(&r, 400);
    // The bootstrap admin was not created a second time.
    let r = srv.get("users.list", Some(&admin)).await;
    assert_eq!(r.2["total"], 6, "{}", r.2);
}

#[tokio::test]
async fn a_200_survives_kill_9() {
    let mut srv = Server::start().await;
    let admin = srv.admin().await;
    let mut ids = Vec::new();
    for name in ["k1", "k2", "k3", "k4", "k5", "k6"] {
        ids.push(srv.create_user_only(name, "pw-1", &["user"]).await);
    }
    // Many changes at once (the writer commits them together), then kill -9 right
    // after the last 200.
    let statuses = ["online", "away", "busy", "offline"];
    let futures = ids.iter().enumerate().map(|(i, id)| {
        let body = json!({
            "userId": id,
            "status": statuses[i % 4],
            "message": format!("message {i}"),
        });
        let admin = admin.clone();
        let srv = &srv;
        async move { srv.set_status(&admin, body).await }
    });
    for r in futures_util::future::join_all(futures).await {
        assert_reply(&r, 200, json!({"success": true}));
    }
    let r = srv
        .set_status(&admin, json!({"status": "busy", "message": "last words"}))
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    srv.kill9();

    srv.start_again().await;
    for (i, id) in ids.iter().enumerate() {
        let st = srv.status_of(id).await;
        assert_eq!(st["status"], statuses[i % 4], "{id}: {st}");
        assert_eq!(st["statusSource"], "manual", "{id}: {st}");
        assert_eq!(srv.info_of(id).await["statusText"], format!("message {i}"));
    }
    assert_eq!(srv.status_of(&admin.user_id).await["status"], "busy");
    assert_eq!(
        srv.info_of(&admin.user_id).await["statusText"],
        "last words"
    );

    // Twice in a row, with a settings change as the last write.
    srv.set_setting("Accounts_AllowUserStatusMessageChange", json!(false))
        .await;
    srv.kill9();
    srv.start_again().await;
    let r = srv.set_status(&admin, json!({"status": "away"})).await;
    assert_eq!(r.2["errorType"], "error-not-allowed", "{}", r.2);
}

/// CONTRACT §3: only hashes of tokens and passwords reach the disk.
#[tokio::test]
async fn secrets_are_stored_only_as_hashes() {
    if std::env::var_os("STATUSD_TEST_DATABASE_URL").is_some() {
        return; // the files checked below are SQLite's
    }
    let srv = Server::start().await;
    let password = "Zq-very-distinct-password-81";
    let s = srv.create_user("zed", password, &["user"]).await;
    let r = srv
        .post_json(
            "users.generatePersonalAccessToken",
            Some(&s),
            json!({"tokenName": "disk"}),
        )
        .await;
    let pat = r.2["token"].as_str().expect("token").to_string();
    let admin = srv.admin().await;
    // Something written after, so the secrets are surely committed.
    srv.set_status(&s, json!({"status": "busy"})).await;

    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(srv.data_dir()).expect("read the data dir") {
        let path = entry.expect("dir entry").path();
        if path.is_file() && !path.to_string_lossy().ends_with(".log") {
            bytes.extend(std::fs::read(&path).expect("read a data file"));
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("zed"), "the user is not in the data files?");
    for (what, secret) in [
        ("a login token", s.token.as_str()),
        ("the admin's login token", admin.token.as_str()),
        ("a personal access token", pat.as_str()),
        ("a password", password),
        ("the bootstrap admin password", ADMIN_PASS),
        ("a password's SHA-256", &sha256_hex(password)),
    ] {
        assert!(!text.contains(secret), "{what} is stored in clear");
    }
}

/// Issue 7: tokens and passwords never appear in the server's log, even at the most
/// verbose level, through REST and DDP logins, failed logins and token creation.
/// Libraries never log below warn (issue 14.11: their trace output carried frames), so
/// the access log is on to give the trace log its bulk.
#[tokio::test]
async fn secrets_never_reach_the_log() {
    let srv = Server::start_with(&[("RUST_LOG", "trace"), ("ACCESS_LOG", "true")]).await;
    let password = "Log-distinct-password-93";
    let s = srv.create_user("logan", password, &["user"]).await;
    let r = srv
        .post_json(
            "users.generatePersonalAccessToken",
            Some(&s),
            json!({"tokenName": "log"}),
        )
        .await;
    let pat = r.2["token"].as_str().expect("token").to_string();
    let wrong = "Log-wrong-password-57";
    let r = srv
        .post_json("login", None, json!({"user": "logan", "password": wrong}))
        .await;
    assert_status(&r, 401);
    let mut c = common::ddp::Ddp::connect_resume(&srv, &pat).await;
    c.login_password("logan", password)
        .await
        .expect("DDP login");
    srv.set_status(&s.with_token(&pat), json!({"status": "busy"}))
        .await;
    let log = srv.log();
    assert!(log.len() > 1000, "the trace log is nearly empty: {log}");
    for (what, secret) in [
        ("login token", s.token.as_str()),
        ("personal access token", pat.as_str()),
        ("password", password),
        ("wrong password", wrong),
        ("password digest", &sha256_hex(password)),
        ("admin password", ADMIN_PASS),
    ] {
        assert!(!log.contains(secret), "the {what} is in the server log");
    }
}
