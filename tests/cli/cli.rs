//! The admin CLI of the same binary (`statusd user|token|settings …`), black-box: each
//! command runs on the database of a running test server, which must then see the
//! change without a restart, within seconds: on SQLite (the default here, or the
//! database `STATUSD_TEST_DATABASE_URL` names) and, in the last tests, on PostgreSQL
//! with one server (no NATS) and with a cluster of two.

use crate::cli_support;
use crate::cluster;
use crate::common;

use std::time::{Duration, Instant};

use cli_support::*;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Nothing to do: a running server picks up the commands' changes by itself, on
/// SQLite and on PostgreSQL alike (the checks after it wait for them).
async fn sync(_srv: &mut Server) {}

async fn login_status(srv: &Server, user: &str, pass: &str) -> StatusCode {
    srv.post_json("login", None, json!({"user": user, "password": pass}))
        .await
        .0
}

async fn wait_login(srv: &Server, user: &str, pass: &str, want: StatusCode) {
    eventually(&format!("login {user} answers {want}"), || async move {
        match login_status(srv, user, pass).await {
            s if s == want => Ok(()),
            s => Err(format!("got {s}")),
        }
    })
    .await;
}

async fn user_by_name(srv: &Server, username: &str) -> Option<Value> {
    let admin = srv.admin().await;
    let (status, _, body) = srv
        .get(
            &format!("users.info?username={}", enc(username)),
            Some(&admin),
        )
        .await;
    (status == StatusCode::OK).then(|| body["user"].clone())
}

#[tokio::test]
async fn users_are_added_and_changed_while_the_server_runs() {
    let mut srv = Server::start().await;
    let db = srv.database_url().to_string();

    let out = statusd(
        &db,
        &[
            "user",
            "add",
            "erin",
            "--password",
            "Erin-Pass-1",
            "--email",
            "erin@example.com",
            "--name",
            "Erin Example",
        ],
    );
    let line = out.line();
    assert!(line.starts_with("created user erin (id "), "{line}");
    sync(&mut srv).await;
    wait_login(&srv, "erin", "Erin-Pass-1", StatusCode::OK).await;
    let erin = user_by_name(&srv, "erin").await.expect("erin exists");
    assert_eq!(erin["name"], "Erin Example");
    assert_eq!(erin["emails"][0]["address"], "erin@example.com");
    assert_eq!(erin["roles"], json!(["user"]));

    // A new password; the old one stops working. Read from stdin with `-`.
    let out = statusd_stdin(
        &db,
        &["user", "passwd", "ERIN", "--password", "-"],
        Some("Erin-Pass-2\n"),
    );
    assert_eq!(out.line(), "changed the password of erin");
    sync(&mut srv).await;
    wait_login(&srv, "erin", "Erin-Pass-2", StatusCode::OK).await;
    assert_eq!(
        login_status(&srv, "erin", "Erin-Pass-1").await,
        StatusCode::UNAUTHORIZED
    );

    // Roles: the same rules as roles.addUserToRole / removeUserFromRole.
    let out = statusd(&db, &["user", "role", "erin", "--add", "admin"]);
    assert_eq!(out.line(), "added admin to erin: roles now user,admin");
    assert_eq!(
        statusd(&db, &["user", "role", "erin", "--add", "admin"]).error(),
        "User already in role [error-user-already-in-role]"
    );
    assert_eq!(
        statusd(&db, &["user", "role", "erin", "--add", "wizard"]).error(),
        "Role not found [error-role-not-found]"
    );
    sync(&mut srv).await;
    eventually("erin is an admin", || async {
        let roles = user_by_name(&srv, "erin").await.unwrap()["roles"].clone();
        (roles == json!(["user", "admin"]))
            .then_some(())
            .ok_or(format!("{roles}"))
    })
    .await;
    let out = statusd(&db, &["user", "role", "erin", "--remove", "admin"]);
    assert_eq!(out.line(), "removed admin from erin: roles now user");

    // Disabling logs the user out everywhere and refuses new logins.
    let erin = srv.login("erin", "Erin-Pass-2").await;
    let out = statusd(&db, &["user", "disable", "erin"]);
    assert!(out.line().starts_with("disabled erin ("), "{out:?}");
    sync(&mut srv).await;
    eventually("erin's token is revoked", || async {
        match srv.get("me", Some(&erin)).await.0 {
            StatusCode::UNAUTHORIZED => Ok(()),
            s => Err(format!("GET me answers {s}")),
        }
    })
    .await;
    assert_eq!(
        login_status(&srv, "erin", "Erin-Pass-2").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        statusd(&db, &["user", "enable", "erin"]).line(),
        "enabled erin"
    );
    sync(&mut srv).await;
    wait_login(&srv, "erin", "Erin-Pass-2", StatusCode::OK).await;
}

#[tokio::test]
async fn refused_changes_exit_non_zero_with_one_line() {
    let srv = Server::start().await;
    let db = srv.database_url().to_string();
    assert_eq!(
        statusd(&db, &["user", "add", "ROCKET.CAT", "--password", "x"]).error(),
        "ROCKET.CAT is already in use :( [error-field-unavailable]"
    );
    // Reserved names are refused whatever their case (Rocket.Chat's blocked usernames).
    assert_eq!(
        statusd(&db, &["user", "add", "ADMIN", "--password", "x"]).error(),
        "ADMIN is blocked and can't be used! [error-blocked-username]"
    );
    assert_eq!(
        statusd(&db, &["user", "add", "bad name", "--password", "x"]).error(),
        "bad name is not a valid username [error-input-is-not-a-valid-field]"
    );
    assert_eq!(
        statusd(
            &db,
            &["user", "add", "frank", "--password", "x", "--email", "nope"]
        )
        .error(),
        "Invalid email nope [error-invalid-email]"
    );
    assert_eq!(
        statusd(&db, &["user", "add", "frank"]).error(),
        "--password is required (only a bot may go without one)"
    );
    assert_eq!(
        statusd(&db, &["user", "passwd", "nobody", "--password", "x"]).error(),
        "The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]"
    );
    assert_eq!(
        statusd(&db, &["user", "role", ADMIN_USER, "--remove", "admin"]).error(),
        "This is the last admin, the role cannot be removed [error-remove-last-admin]"
    );
    assert_eq!(
        statusd(&db, &["user", "disable", ADMIN_USER]).error(),
        "Leaving the app without admins is not allowed [error-action-not-allowed]"
    );
    assert_eq!(
        statusd(&db, &["settings", "get", "No_Such_Setting"]).error(),
        "unknown setting \"No_Such_Setting\""
    );
    assert_eq!(
        statusd(
            &db,
            &[
                "settings",
                "set",
                "Accounts_AllowInvisibleStatusOption",
                "maybe"
            ]
        )
        .error(),
        "\"maybe\" is not a valid value for Accounts_AllowInvisibleStatusOption (Bool)"
    );
    // Nothing of the above was written.
    let admin = srv.admin().await;
    let (_, _, list) = srv.get("users.list?count=100", Some(&admin)).await;
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![ADMIN_USER, "rocket.cat"], "{list}");
    // A database that cannot be opened is one line too.
    let out = statusd("mysql://nowhere", &["settings", "get", "Site_Name"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.starts_with("statusd: DATABASE_URL: "), "{out:?}");
}

#[tokio::test]
async fn a_bot_gets_a_personal_access_token() {
    let mut srv = Server::start().await;
    let db = srv.database_url().to_string();
    let out = statusd(
        &db,
        &[
            "user",
            "add",
            "deploy-bot",
            "--role",
            "bot",
            "--name",
            "Deploy Bot",
        ],
    );
    assert!(
        out.line().starts_with("created bot deploy-bot (id "),
        "{out:?}"
    );
    let out = statusd(&db, &["token", "create", "deploy-bot", "--name", "ci"]);
    let line = out.line().to_string();
    assert!(
        line.starts_with("created token \"ci\" for deploy-bot: X-User-Id="),
        "{line}"
    );
    let user_id = line
        .split("X-User-Id=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    let token = line
        .split("X-Auth-Token=")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 43, "{line}");
    sync(&mut srv).await;
    let bot = Session {
        user_id,
        token,
        username: "deploy-bot".into(),
    };
    eventually("the token works", || async {
        let (status, _, body) = srv.get("me", Some(&bot)).await;
        if status != StatusCode::OK {
            return Err(format!("{status} {body}"));
        }
        assert_eq!(body["username"], "deploy-bot");
        assert_eq!(body["roles"], json!(["bot"]));
        Ok(())
    })
    .await;
    // The bot can set its status with it (bots bypass the rate limit).
    let (status, _, body) = srv
        .set_status(&bot, json!({"status": "busy", "message": "deploying"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        statusd(&db, &["token", "create", "deploy-bot", "--name", "ci"]).error(),
        "A token with this name already exists [error-token-already-exists]"
    );
    assert_eq!(
        statusd(&db, &["token", "create", "nobody", "--name", "ci"]).error(),
        "The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]"
    );
}

#[tokio::test]
async fn settings_are_read_and_changed() {
    let mut srv = Server::start().await;
    let db = srv.database_url().to_string();
    let id = "Accounts_AllowInvisibleStatusOption";
    assert_eq!(statusd(&db, &["settings", "get", id]).line(), "true");
    assert_eq!(
        statusd(&db, &["settings", "get", "Accounts_RegistrationForm"]).line(),
        "\"Disabled\""
    );
    assert_eq!(
        statusd(&db, &["settings", "set", id, "false"]).line(),
        format!("{id} = false (was true)")
    );
    assert_eq!(statusd(&db, &["settings", "get", id]).line(), "false");
    sync(&mut srv).await;
    let admin = srv.admin().await;
    eventually("invisible is refused", || async {
        let (status, _, body) = srv.set_status(&admin, json!({"status": "offline"})).await;
        if status == StatusCode::BAD_REQUEST && body["errorType"] == "error-status-not-allowed" {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
    let (_, _, public) = srv.get("settings.public", None).await;
    let value = public["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["_id"] == id)
        .map(|s| s["value"].clone());
    assert_eq!(value, Some(json!(false)));
    // Text and numbers too.
    assert_eq!(
        statusd(&db, &["settings", "set", "Site_Name", "Acme presence"]).line(),
        "Site_Name = \"Acme presence\" (was \"statusd\")"
    );
    assert_eq!(
        statusd(&db, &["settings", "set", "API_Default_Count", "25"]).line(),
        "API_Default_Count = 25 (was 50)"
    );
}

/// A DDP connection logged in with a token; kept open while the value lives.
async fn ddp_connect(
    srv: &Server,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(srv.ws_url())
        .await
        .expect("websocket");
    for frame in [
        json!({"msg": "connect", "version": "1", "support": ["1"]}),
        json!({"msg": "method", "method": "login", "id": "1", "params": [{"resume": token}]}),
        json!({"msg": "sub", "id": "s", "name": "stream-notify-logged", "params": ["user-status", false]}),
    ] {
        ws.send(Message::text(frame.to_string())).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("DDP ready in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let f: Value = serde_json::from_str(&t).unwrap();
            if f["msg"] == "ready" {
                return ws;
            }
            assert!(f["error"].is_null(), "{f}");
        }
    }
}

/// The next `user-status` event for `username` on a DDP stream.
async fn next_status_of(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    username: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no user-status event for {username}"))
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let f: Value = serde_json::from_str(&t).unwrap();
            if f["msg"] == "ping" {
                ws.send(Message::text(json!({"msg": "pong"}).to_string()))
                    .await
                    .unwrap();
            }
            let args = &f["fields"]["args"][0];
            if f["msg"] == "changed" && args[1] == username {
                return args.clone();
            }
        }
    }
}

#[tokio::test]
async fn live_connections_survive_the_reload_and_watchers_hear_of_changes() {
    let srv = Server::start().await;
    let db = srv.database_url().to_string();
    let gina = srv.create_user("gina", "Gina-Pass-1", &["user"]).await;
    let mut ws = ddp_connect(&srv, &gina.token).await;
    eventually("gina is online", || async {
        let st = srv.status_of(&gina.user_id).await;
        (st["status"] == "online")
            .then_some(())
            .ok_or(format!("{st}"))
    })
    .await;

    // A change to gina herself, made by the CLI: the reload keeps her connection, so
    // she stays online rather than looking disconnected.
    let out = statusd(&db, &["user", "role", "gina", "--add", "moderator"]);
    assert!(out.line().ends_with("roles now user,moderator"), "{out:?}");
    eventually("the role is seen", || async {
        let u = srv.info_of(&gina.user_id).await;
        (u["roles"] == json!(["user", "moderator"]))
            .then_some(())
            .ok_or(format!("{u}"))
    })
    .await;
    let st = srv.status_of(&gina.user_id).await;
    assert_eq!(st["status"], "online", "{st}");

    // A visible change made elsewhere reaches the realtime watchers: hank is created
    // offline by the CLI, then gets a status text through an import.
    statusd(&db, &["user", "add", "hank", "--password", "Hank-Pass-1"]).line();
    eventually("hank is known", || async {
        match user_by_name(&srv, "hank").await {
            Some(_) => Ok(()),
            None => Err("not yet".into()),
        }
    })
    .await;
    let file = srv.data_dir().join("hank.json");
    std::fs::write(
        &file,
        r#"{"_id":"x","username":"hank","status":"busy","statusDefault":"busy","statusText":"on call"}"#,
    )
    .unwrap();
    let out = statusd(
        &db,
        &[
            "import",
            "rocketchat",
            "--update-existing",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.line().contains("0 created, 1 updated"), "{out:?}");
    let args = next_status_of(&mut ws, "hank").await;
    assert_eq!(args[2], 3, "busy: {args}");
    assert_eq!(args[3], "on call", "{args}");
    let st = srv.status_of(&gina.user_id).await;
    assert_eq!(st["status"], "online", "{st}");
}

#[tokio::test]
async fn commands_work_on_a_database_no_server_has_opened_yet() {
    let dir = std::env::temp_dir().join(format!("statusd-cli-fresh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = format!("sqlite://{}/statusd.db", dir.display());
    // Without --init a command refuses to make a database (a wrong directory, a typo),
    // names the place it looked, and leaves nothing behind.
    let refused = statusd(&db, &["user", "list"]);
    assert_eq!(
        refused.error(),
        format!(
            "no statusd database at sqlite:{}/statusd.db (check DATABASE_URL; --init creates one)",
            dir.display()
        )
    );
    assert!(!dir.exists(), "the refusal created {}", dir.display());
    // With --init it creates the database, and says which one it used.
    let out = statusd(
        &db,
        &[
            "--init",
            "settings",
            "get",
            "Accounts_AllowUserStatusMessageChange",
        ],
    );
    assert_eq!(out.line(), "true");
    let file = std::fs::canonicalize(dir.join("statusd.db")).expect("the database exists");
    assert_eq!(
        out.stderr,
        format!("statusd: using sqlite:{}\n", file.display())
    );
    // From then on no --init is needed.
    assert_eq!(statusd(&db, &["user", "list"]).line(), "no users");
    let out = statusd(
        &db,
        &[
            "user",
            "add",
            "root",
            "--password",
            "Root-Pass-1",
            "--role",
            "admin,user",
        ],
    );
    assert!(out.line().ends_with("roles admin,user)"), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn users_and_tokens_are_listed_changed_and_removed() {
    let mut srv = Server::start().await;
    let db = srv.database_url().to_string();
    let admin = srv.admin().await;
    let id_of = |out: Run| {
        out.line()
            .split("(id ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap()
            .to_string()
    };
    let erin_id = id_of(statusd(
        &db,
        &[
            "user",
            "add",
            "Erin",
            "--password",
            "Erin-Pass-1",
            "--name",
            "Erin E",
        ],
    ));
    let bot_id = id_of(statusd(&db, &["user", "add", "ci-bot", "--role", "bot"]));

    // Every user, by username, tab-separated; the database used is named on stderr.
    let out = statusd(&db, &["user", "list"]);
    assert_eq!(
        out.stdout,
        format!(
            "{ADMIN_USER}\t{}\tuser\tactive\tadmin,user\n\
             ci-bot\t{bot_id}\tbot\tactive\tbot\n\
             Erin\t{erin_id}\tuser\tactive\tuser\n\
             rocket.cat\trocket.cat\tbot\tactive\tbot\n",
            admin.user_id
        ),
        "{out:?}"
    );
    assert_eq!(out.code, 0);
    assert!(out.stderr.starts_with("statusd: using "), "{out:?}");
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "a read changes nothing: {out:?}"
    );

    // Personal access tokens: listed without their secrets, revoked by name.
    let created = statusd(&db, &["token", "create", "ci-bot", "--name", "deploy"]);
    let token = created
        .line()
        .split("X-Auth-Token=")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        statusd(&db, &["token", "list", "erin"]).line(),
        "Erin has no personal access tokens"
    );
    let line = statusd(&db, &["token", "list", "ci-bot"])
        .line()
        .to_string();
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 3, "{line}");
    assert_eq!(fields[0], "deploy");
    assert!(fields[1].ends_with('Z') && fields[1].len() == 24, "{line}");
    assert_eq!(
        fields[2],
        format!("…{}", &token[token.len() - 6..]),
        "{line}"
    );
    assert!(!line.contains(&token), "{line}");
    let bot = Session {
        user_id: bot_id.clone(),
        token: token.clone(),
        username: "ci-bot".into(),
    };
    sync(&mut srv).await;
    eventually("the bot's token works", || async {
        match srv.get("me", Some(&bot)).await.0 {
            StatusCode::OK => Ok(()),
            s => Err(format!("GET me answers {s}")),
        }
    })
    .await;
    assert_eq!(
        statusd(&db, &["token", "revoke", "ci-bot", "deploy"]).line(),
        "revoked token \"deploy\" of ci-bot"
    );
    assert_eq!(
        statusd(&db, &["token", "revoke", "ci-bot", "deploy"]).error(),
        "Token does not exist [error-token-does-not-exists]"
    );
    assert_eq!(
        statusd(&db, &["token", "list", "nobody"]).error(),
        "The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]"
    );
    sync(&mut srv).await;
    eventually("the revoked token is refused", || async {
        match srv.get("me", Some(&bot)).await.0 {
            StatusCode::UNAUTHORIZED => Ok(()),
            s => Err(format!("GET me answers {s}")),
        }
    })
    .await;

    // set-password reads standard input by default and ends every login session.
    let erin = srv.login("Erin", "Erin-Pass-1").await;
    let out = statusd_stdin(
        &db,
        &["user", "set-password", "erin"],
        Some("Erin-Pass-2\n"),
    );
    assert_eq!(out.line(), "changed the password of Erin");
    sync(&mut srv).await;
    eventually("erin's session ends", || async {
        match srv.get("me", Some(&erin)).await.0 {
            StatusCode::UNAUTHORIZED => Ok(()),
            s => Err(format!("GET me answers {s}")),
        }
    })
    .await;
    wait_login(&srv, "Erin", "Erin-Pass-2", StatusCode::OK).await;
    assert_eq!(
        login_status(&srv, "Erin", "Erin-Pass-1").await,
        StatusCode::UNAUTHORIZED
    );

    // delete: users.delete's rules.
    assert_eq!(
        statusd(&db, &["user", "delete", "rocket.cat"]).error(),
        "Deleting the rocket.cat user is not allowed [error-action-not-allowed]"
    );
    assert_eq!(
        statusd(&db, &["user", "delete", ADMIN_USER]).error(),
        "Leaving the app without admins is not allowed [error-action-not-allowed]"
    );
    assert_eq!(
        statusd(&db, &["user", "delete", "nobody"]).error(),
        "The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]"
    );
    let out = statusd(&db, &["user", "delete", "ERIN"]);
    assert_eq!(out.line(), "deleted Erin");
    // The command returns once the running server has applied it, and says so.
    let done = Instant::now();
    assert!(
        out.stderr
            .ends_with("statusd: applied by the running server\n"),
        "{out:?}"
    );
    sync(&mut srv).await;
    eventually("erin is gone", || async {
        match user_by_name(&srv, "Erin").await {
            None => Ok(()),
            Some(u) => Err(format!("still there: {u}")),
        }
    })
    .await;
    assert!(
        done.elapsed() < Duration::from_secs(3),
        "{:?}",
        done.elapsed()
    );
    assert_eq!(
        login_status(&srv, "Erin", "Erin-Pass-2").await,
        StatusCode::UNAUTHORIZED
    );
    let names: Vec<String> = statusd(&db, &["user", "list"])
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(names, vec![ADMIN_USER, "ci-bot", "rocket.cat"]);
}

#[tokio::test]
async fn settings_are_listed() {
    let srv = Server::start().await;
    let db = srv.database_url().to_string();
    statusd(&db, &["settings", "set", "Site_Name", "Acme"]).line();
    let out = statusd(&db, &["settings", "list"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "by id");
    assert!(lines.contains(&"Site_Name = \"Acme\""), "{out:?}");
    assert!(lines.contains(&"API_Default_Count = 50"), "{out:?}");
    // Each line agrees with `settings get`.
    for line in &lines {
        let (id, value) = line.split_once(" = ").unwrap();
        if id == "Site_Name" || id == "Accounts_AllowInvisibleStatusOption" {
            assert_eq!(statusd(&db, &["settings", "get", id]).line(), value);
        }
    }
}

/// Issue 17: a change made by the CLI is in the running server before the command
/// returns: a login right after `user add` works, a token is refused right after
/// `user disable`, with no waiting in between. Without a running server (stopped, or
/// killed with no goodbye) the command does not wait.
#[tokio::test]
async fn a_change_is_in_the_running_server_before_the_command_returns() {
    let mut srv = Server::start().await;
    let db = srv.database_url().to_string();
    const APPLIED: &str = "statusd: applied by the running server\n";

    for round in 0..3 {
        let name = format!("zed{round}");
        let out = statusd(&db, &["user", "add", &name, "--password", "Zed-Pass-1"]);
        assert!(out.line().starts_with("created user "), "{out:?}");
        assert!(out.stderr.ends_with(APPLIED), "{out:?}");
        assert_eq!(
            login_status(&srv, &name, "Zed-Pass-1").await,
            StatusCode::OK,
            "login right after user add"
        );
        let session = srv.login(&name, "Zed-Pass-1").await;
        let out = statusd(&db, &["user", "disable", &name]);
        assert!(out.line().starts_with("disabled "), "{out:?}");
        assert!(out.stderr.ends_with(APPLIED), "{out:?}");
        assert_eq!(
            srv.get("me", Some(&session)).await.0,
            StatusCode::UNAUTHORIZED,
            "the token right after user disable"
        );
        assert_eq!(
            login_status(&srv, &name, "Zed-Pass-1").await,
            StatusCode::UNAUTHORIZED
        );
    }
    let out = statusd(&db, &["settings", "set", "Site_Name", "Right Now"]);
    assert!(out.stderr.ends_with(APPLIED), "{out:?}");
    let (_, _, info) = srv.get("settings.public", None).await;
    let site = info["settings"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["_id"] == "Site_Name"))
        .map(|s| s["value"].clone());
    assert_eq!(site, Some(json!("Right Now")), "{info}");

    // No server: a command neither waits nor pretends one applied it.
    const NO_SERVER: &str =
        "statusd: no server is running on this database: it reads the change when it starts\n";
    srv.stop().await;
    let started = Instant::now();
    let out = statusd(&db, &["user", "enable", "zed0"]);
    assert!(out.line().starts_with("enabled "), "{out:?}");
    assert!(out.stderr.ends_with(NO_SERVER), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Killed without a goodbye (SQLite: on PostgreSQL a dead instance counts until its
    // heartbeat is INSTANCE_DEAD_SECS old): what it recorded stays, but it holds the
    // database no more, and the command does not wait for it.
    srv.start_again().await;
    if !db.starts_with("sqlite://") {
        return;
    }
    let out = statusd(&db, &["user", "disable", "zed0"]);
    assert!(out.stderr.ends_with(APPLIED), "{out:?}");
    srv.kill9();
    let started = Instant::now();
    let out = statusd(&db, &["user", "enable", "zed0"]);
    assert!(out.stderr.ends_with(NO_SERVER), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The server started again applied what was done while it was down.
    srv.start_again().await;
    assert_eq!(
        login_status(&srv, "zed0", "Zed-Pass-1").await,
        StatusCode::OK
    );
}

/// A SQLite database of schema version 3 (before bio, nickname and bypassTwoFactor,
/// and the admin changes' counter):
/// made by this binary, then taken back to that schema as migration 4 found it.
fn older_schema_database(dir: &std::path::Path) -> String {
    let _ = std::fs::remove_dir_all(dir);
    let db = format!("sqlite://{}/statusd.db", dir.display());
    statusd(
        &db,
        &[
            "--init",
            "user",
            "add",
            "olive",
            "--password",
            "Olive-Pass-1",
        ],
    )
    .line();
    let conn = rusqlite::Connection::open(dir.join("statusd.db")).expect("open");
    conn.execute_batch(
        "DELETE FROM schema_migrations WHERE version >= 4;
         ALTER TABLE users DROP COLUMN bio;
         ALTER TABLE users DROP COLUMN nickname;
         ALTER TABLE tokens DROP COLUMN bypass_two_factor;
         ALTER TABLE users DROP COLUMN preferences;
         ALTER TABLE users DROP COLUMN last_seen;
         DROP TABLE admin_sync;
         ALTER TABLE users DROP COLUMN status_id;
         DROP TABLE webhooks;
         DROP TABLE webhook_deliveries;
         ALTER TABLE users DROP COLUMN dnd;
         DROP TABLE calendar_events;
         DROP TABLE connected_calendars;",
    )
    .expect("back to schema 3");
    db
}

#[tokio::test]
async fn migrate_check_reports_pending_migrations_without_applying_them() {
    // A database the running server made: nothing pending, exit 0.
    let srv = Server::start().await;
    let out = statusd(srv.database_url(), &["migrate", "--check"]);
    let line = out.line().to_string();
    let known: i64 = line
        .strip_prefix("schema at version ")
        .and_then(|s| s.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(known >= 4, "{line}");
    assert_eq!(
        line,
        format!("schema at version {known} of {known}: no migration pending")
    );
    assert!(out.stderr.starts_with("statusd: using "), "{out:?}");

    // An older schema: pending ones listed, exit 3, and nothing applied by the check.
    let dir = std::env::temp_dir().join(format!("statusd-cli-old-{}", std::process::id()));
    let db = older_schema_database(&dir);
    let pending: Vec<String> = (4..=known).map(|v| v.to_string()).collect();
    let want = format!(
        "schema at version 3 of {known}: {} migration{} pending ({})\n",
        pending.len(),
        if pending.len() == 1 { "" } else { "s" },
        pending.join(", ")
    );
    for _ in 0..2 {
        let out = statusd(&db, &["migrate", "--check"]);
        assert_eq!(out.code, 3, "{out:?}");
        assert_eq!(out.stdout, want, "{out:?}");
    }
    // `migrate` applies them; every user survives.
    assert_eq!(
        statusd(&db, &["migrate"]).line(),
        format!("schema at version {known} of {known}: up to date")
    );
    assert_eq!(statusd(&db, &["migrate", "--check"]).code, 0);
    let users = statusd(&db, &["user", "list"]);
    assert!(users.stdout.starts_with("olive\t"), "{users:?}");

    // No database there: exit 1, one line, nothing created.
    let missing = dir.join("nowhere");
    let out = statusd(
        &format!("sqlite://{}/statusd.db", missing.display()),
        &["migrate", "--check"],
    );
    assert_eq!(
        out.error(),
        format!(
            "no statusd database at sqlite:{}/statusd.db (check DATABASE_URL)",
            missing.display()
        )
    );
    assert!(!missing.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------- PostgreSQL

/// How soon every server must show a command's change (it listens for a NOTIFY sent
/// with the commit and reloads within a fraction of a second).
const SEEN_WITHIN: Duration = Duration::from_secs(5);

/// Polls `check` on every server until it holds; asserts that takes under
/// [`SEEN_WITHIN`] for each. Returns the slowest time.
async fn seen_everywhere<'a, F, Fut>(what: &str, servers: &'a [Server], check: F) -> Duration
where
    F: Fn(&'a Server) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    for srv in servers {
        loop {
            match check(srv).await {
                Ok(()) => break,
                Err(why) if started.elapsed() > SEEN_WITHIN => {
                    panic!(
                        "{}: {what} not seen after {SEEN_WITHIN:?}: {why}",
                        srv.base_url()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    let took = started.elapsed();
    println!("{what}: seen by every server after {} ms", took.as_millis());
    took
}

/// Asserts `check` holds on every server at the first try: a command returns only once
/// every running server has applied its change (`src/external.rs`), so no waiting here.
async fn seen_at_once<'a, F, Fut>(what: &str, servers: &'a [Server], check: F)
where
    F: Fn(&'a Server) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for srv in servers {
        if let Err(why) = check(srv).await {
            panic!(
                "{}: {what} not seen right after the command returned: {why}",
                srv.base_url()
            );
        }
    }
}

/// `settings set`, `user disable` and `token create` run against `db` while `servers`
/// (on that database) run; each must see every change as soon as the command returns.
async fn admin_commands_reach(db: &str, servers: &[Server]) {
    // A setting.
    let id = "Accounts_AllowInvisibleStatusOption";
    assert_eq!(
        statusd(db, &["settings", "set", id, "false"]).line(),
        format!("{id} = false (was true)")
    );
    seen_at_once("settings set", servers, |srv| async move {
        let (_, _, public) = srv.get("settings.public", None).await;
        let value = public["settings"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["_id"] == id))
            .map(|s| s["value"].clone());
        (value == Some(json!(false)))
            .then_some(())
            .ok_or(format!("{value:?}"))
    })
    .await;

    // A user made by the command logs in everywhere; disabled, their token stops
    // working everywhere.
    statusd(db, &["user", "add", "erin", "--password", "Erin-Pass-1"]).line();
    seen_at_once("user add", servers, |srv| async move {
        match login_status(srv, "erin", "Erin-Pass-1").await {
            StatusCode::OK => Ok(()),
            s => Err(format!("login answers {s}")),
        }
    })
    .await;
    let erin = servers[0].login("erin", "Erin-Pass-1").await;
    let erin = &erin;
    seen_everywhere("erin's token", servers, |srv| async move {
        match srv.get("me", Some(erin)).await.0 {
            StatusCode::OK => Ok(()),
            s => Err(format!("GET me answers {s}")),
        }
    })
    .await;
    assert!(statusd(db, &["user", "disable", "erin"])
        .line()
        .starts_with("disabled erin ("));
    seen_at_once("user disable", servers, |srv| async move {
        match srv.get("me", Some(erin)).await.0 {
            StatusCode::UNAUTHORIZED => Ok(()),
            s => Err(format!("GET me answers {s}")),
        }
    })
    .await;

    // A personal access token.
    statusd(db, &["user", "add", "deploy-bot", "--role", "bot"]).line();
    let line = statusd(db, &["token", "create", "deploy-bot", "--name", "ci"])
        .line()
        .to_string();
    let field = |name: &str| {
        line.split(name)
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_default()
            .to_string()
    };
    let bot = Session {
        user_id: field("X-User-Id="),
        token: field("X-Auth-Token="),
        username: "deploy-bot".into(),
    };
    let bot = &bot;
    seen_at_once("token create", servers, |srv| async move {
        match srv.get("me", Some(bot)).await {
            (StatusCode::OK, _, body) if body["username"] == "deploy-bot" => Ok(()),
            (s, _, body) => Err(format!("GET me answers {s} {body}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_server_without_nats_sees_admin_commands_within_seconds() {
    let db = cluster::Db::create();
    let srv = Server::start_opts(Options::default().env("DATABASE_URL", &db.url)).await;
    let (_, _, health) = srv.get("/api/health", None).await;
    assert_eq!(health["nats"], Value::Null, "no NATS here: {health}");
    admin_commands_reach(&db.url, std::slice::from_ref(&srv)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_commands_refuse_a_database_without_schema_and_check_migrations() {
    // A PostgreSQL database no statusd has used: no schema is created without --init.
    let db = cluster::Db::create();
    let refused = statusd(&db.url, &["user", "list"]);
    let line = refused.error().to_string();
    assert!(
        line.starts_with("no statusd database at postgres://")
            && line.ends_with(&format!(
                "/{} (check DATABASE_URL; --init creates one)",
                db.name
            )),
        "{line}"
    );
    assert!(!line.contains('@'), "no credentials: {line}");
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0,
        "the refusal created tables"
    );
    assert_eq!(statusd(&db.url, &["migrate", "--check"]).code, 1);

    let out = statusd(&db.url, &["--init", "user", "list"]);
    assert_eq!(out.line(), "no users");
    let using = out.stderr.lines().next().unwrap_or_default().to_string();
    assert!(
        using.starts_with("statusd: using postgres://") && using.ends_with(&db.name),
        "{out:?}"
    );
    assert!(!using.contains('@'), "no credentials: {using}");

    let known = db.query_i64("SELECT MAX(version) FROM schema_migrations");
    let out = statusd(&db.url, &["migrate", "--check"]);
    assert_eq!(
        out.line(),
        format!("schema at version {known} of {known}: no migration pending")
    );
    // The schema record taken back one version: reported, exit 3, nothing applied.
    db.query_i64(&format!(
        "WITH d AS (DELETE FROM schema_migrations WHERE version = {known} RETURNING 1) \
         SELECT count(*) FROM d"
    ));
    let out = statusd(&db.url, &["migrate", "--check"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "schema at version {} of {known}: 1 migration pending ({known})\n",
            known - 1
        )
    );
    assert_eq!(
        db.query_i64("SELECT MAX(version) FROM schema_migrations"),
        known - 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_instance_of_a_cluster_sees_admin_commands_within_seconds() {
    let c = cluster::Cluster::start(2, &[]).await;
    admin_commands_reach(&c.db.url, &c.servers).await;
    // A realtime watcher on the second instance hears of a visible change the command
    // made (an import giving a user a status text).
    let mut ws = ddp_connect(&c[1], &c[1].admin().await.token).await;
    statusd(
        &c.db.url,
        &["user", "add", "hank", "--password", "Hank-Pass-1"],
    )
    .line();
    seen_everywhere("hank", &c.servers, |srv| async move {
        match user_by_name(srv, "hank").await {
            Some(_) => Ok(()),
            None => Err("not yet".into()),
        }
    })
    .await;
    let file = std::env::temp_dir().join(format!("statusd-cli-hank-{}.json", std::process::id()));
    std::fs::write(
        &file,
        r#"{"_id":"x","username":"hank","status":"busy","statusDefault":"busy","statusText":"on call"}"#,
    )
    .unwrap();
    let out = statusd(
        &c.db.url,
        &[
            "import",
            "rocketchat",
            "--update-existing",
            file.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(out.line().contains("1 updated"), "{out:?}");
    let args = next_status_of(&mut ws, "hank").await;
    assert_eq!(args[3], "on call", "{args}");
}

/// Issue 17: `statusd healthcheck` (a `FROM scratch` container's HEALTHCHECK) asks the
/// server at BIND_IP:PORT for /api/health: exit 0 and one line when it answers 200,
/// exit 1 and one `statusd: …` line when nothing listens there. It opens no database:
/// pointed at a database URL that does not exist, it creates nothing.
#[tokio::test]
async fn healthcheck_asks_the_running_server() {
    let srv = Server::start().await;
    let port = srv.port().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let nowhere = format!("sqlite://{}/none/statusd.db", dir.path().display());

    let ok = statusd(&nowhere, &["--port", &port, "healthcheck"]);
    let line = ok.line();
    assert!(line.starts_with("healthy: {"), "{ok:?}");
    assert!(line.contains("\"status\":\"ok\""), "{ok:?}");

    let ok = statusd(
        &nowhere,
        &["--bind-ip", "127.0.0.1", "--port", &port, "healthcheck"],
    );
    ok.line();

    let closed = free_port().to_string();
    let down = statusd(&nowhere, &["--port", &closed, "healthcheck"]);
    let err = down.error();
    assert!(err.contains("cannot connect to 127.0.0.1:"), "{down:?}");
    assert!(
        !dir.path().join("none").exists(),
        "healthcheck created a database"
    );
}

/// The number in a status text `m<N>` (users.info's `statusText`) the load below sets.
fn message_number(user: &Value) -> i64 {
    user["statusText"]
        .as_str()
        .and_then(|m| m.strip_prefix('m'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no m<N> status text in {user}"))
}

#[tokio::test]
async fn a_backup_under_write_load_restores_every_change_acknowledged_before_it() {
    let mut srv = Server::start().await;
    let db = srv.database_url().to_string();
    if is_postgres(&db) {
        // PostgreSQL is backed up with pg_dump; the commands say so.
        let out = statusd(&db, &["backup", "/nonexistent/x.db"]);
        assert!(out.error().contains("pg_dump"), "{out:?}");
        return;
    }
    const USERS: usize = 6;
    let mut sessions = Vec::new();
    for i in 0..USERS {
        sessions.push(
            srv.create_user(&format!("load{i}"), "Load-Pass-1234", &[])
                .await,
        );
    }
    // One writer sets `m<n>` on each user in turn; `acked[u]` is the last n the server
    // acknowledged for user u. The backup starts while it writes; what was acknowledged
    // just before it started must all be in the copy.
    let acked = std::sync::Mutex::new(vec![-1i64; USERS]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let backup_file = srv.data_dir().join("backup.db");
    // The admin sets them (a user's own message changes are rate-limited).
    let admin = srv.admin().await;
    let writer = async {
        let mut n = 0i64;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            for (u, s) in sessions.iter().enumerate() {
                let body =
                    json!({"userId": s.user_id, "status": "away", "message": format!("m{n}")});
                let (status, _, body) = srv.set_status(&admin, body).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                acked.lock().unwrap()[u] = n;
            }
            n += 1;
        }
        n
    };
    let backup = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = acked.lock().unwrap().clone();
        let (d, f) = (db.clone(), backup_file.display().to_string());
        let out = tokio::task::spawn_blocking(move || statusd(&d, &["backup", &f]))
            .await
            .unwrap();
        // Keep writing a little after the copy, then stop.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (before, out)
    };
    let (rounds, (before, out)) = tokio::join!(writer, backup);
    assert!(
        out.line().starts_with("backed up sqlite:"),
        "backup failed: {out:?}"
    );
    assert!(before.iter().all(|&n| n >= 0), "no load before the backup");
    assert!(
        rounds > before[0] + 1,
        "the load did not go on during the backup"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "backup file mode {mode:o}");
    }
    // A change after the backup: the restore must take it away again.
    let body = json!({"userId": sessions[0].user_id, "status": "busy", "message": "after"});
    let (status, _, body) = srv.set_status(&admin, body).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // While the server runs, restore refuses and leaves the database alone.
    let f = backup_file.display().to_string();
    let refused = statusd(&db, &["restore", &f]);
    assert!(
        refused.error().contains("is in use") && refused.error().contains("stop the server"),
        "{refused:?}"
    );
    srv.stop().await;
    let out = statusd(&db, &["restore", &f]);
    assert!(out.line().starts_with("restored "), "{out:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = db.strip_prefix("sqlite://").unwrap();
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "restored database mode {mode:o}");
    }
    // The server starts on it (it runs the integrity-checked open) and has every change
    // acknowledged before the backup began.
    srv.start_again().await;
    for (u, s) in sessions.iter().enumerate() {
        let status = srv.status_of(&s.user_id).await;
        let n = message_number(&srv.info_of(&s.user_id).await);
        assert!(
            n >= before[u],
            "user {u}: restored m{n}, but m{} was acknowledged before the backup",
            before[u]
        );
        assert_eq!(status["status"], "away", "{status}");
    }
    // The same backup restores into a fresh data directory too.
    let fresh = srv.data_dir().join("fresh");
    let fresh_db = format!("sqlite://{}/statusd.db", fresh.display());
    let out = statusd(&fresh_db, &["restore", &f]);
    assert!(out.line().starts_with("restored "), "{out:?}");
    let list = statusd(&fresh_db, &["user", "list"]);
    assert!(list.stdout.contains("load5\t"), "{list:?}");
}

#[tokio::test]
async fn restore_refuses_a_file_that_is_not_a_statusd_database() {
    let srv = Server::start().await;
    let db = srv.database_url().to_string();
    if is_postgres(&db) {
        let out = statusd(&db, &["restore", "/nonexistent/x.db"]);
        assert!(out.error().contains("pg_restore"), "{out:?}");
        return;
    }
    let dir = srv.data_dir();
    // Not SQLite at all.
    let junk = dir.join("junk.db");
    std::fs::write(&junk, "this is not a database\n".repeat(200)).unwrap();
    // SQLite, but another program's database: no statusd schema.
    let alien = dir.join("alien.db");
    rusqlite::Connection::open(&alien)
        .and_then(|c| c.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);"))
        .unwrap();
    for file in [&junk, &alien] {
        let out = statusd(&db, &["restore", &file.display().to_string()]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.error()
                .starts_with(&format!("{} is not a statusd database", file.display())),
            "{out:?}"
        );
    }
    // PostgreSQL has its own tools; the commands say which (and never connect).
    let pg = "postgres://statusd:secret@127.0.0.1:1/statusd";
    assert_eq!(
        statusd(pg, &["backup", "x.db"]).error(),
        "DATABASE_URL is not SQLite: back up a PostgreSQL database with pg_dump (see README, Backup and restore)"
    );
    assert_eq!(
        statusd(pg, &["restore", "x.db"]).error(),
        "DATABASE_URL is not SQLite: restore a PostgreSQL database with pg_restore (see README, Backup and restore)"
    );
    let missing = statusd(&db, &["restore", "/nonexistent/backup.db"]);
    assert_eq!(missing.error(), "/nonexistent/backup.db: no such file");
    // The server's database is untouched and it still serves.
    let admin = srv.admin().await;
    assert_eq!(srv.get("me", Some(&admin)).await.0, StatusCode::OK);
}

/// The fixture of [`upgrade_from_0_1_0_keeps_everything`]: a database statusd 0.1.0
/// wrote through its own API (`tests/fixtures/upgrade-0.1.0/make.sh`).
const FIXTURE_0_1_0: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade-0.1.0");

/// Every value `old` holds is in `new` unchanged: `new` may add object keys, and items
/// to arrays of objects with an `_id` (a later release's new permissions); other arrays
/// keep their length and order. `at` names the place in the failure message.
fn assert_kept(old: &Value, new: &Value, at: &str) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                let nv = n
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}.{k} is gone (was {v})"));
                assert_kept(v, nv, &format!("{at}.{k}"));
            }
        }
        (Value::Array(o), Value::Array(n)) if o.iter().all(|v| v.get("_id").is_some()) => {
            for v in o {
                let id = &v["_id"];
                let nv = n
                    .iter()
                    .find(|x| x.get("_id") == Some(id))
                    .unwrap_or_else(|| panic!("{at}: the item {id} is gone (was {v})"));
                assert_kept(v, nv, &format!("{at}[{id}]"));
            }
        }
        (Value::Array(o), Value::Array(n)) => {
            assert_eq!(o.len(), n.len(), "{at}: {old} became {new}");
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                assert_kept(a, b, &format!("{at}[{i}]"));
            }
        }
        // The same number (`0` and `0.0` alike: utcOffset became a float).
        (Value::Number(o), Value::Number(n)) => assert_eq!(o.as_f64(), n.as_f64(), "{at}"),
        _ => assert_eq!(old, new, "{at}"),
    }
}

#[tokio::test]
async fn upgrade_from_0_1_0_keeps_everything() {
    let fixture = std::path::Path::new(FIXTURE_0_1_0);
    // Always SQLite (the fixture is a SQLite file), whatever STATUSD_TEST_DATABASE_URL says.
    let dir = std::env::temp_dir().join(format!("statusd-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the data directory");
    std::fs::copy(fixture.join("statusd.db"), dir.join("statusd.db")).expect("copy");
    let db = format!("sqlite://{}/statusd.db", dir.display());
    // 0.1.0 stopped at SQLite schema 3.
    upgrade_keeps_everything(fixture, &db, 3).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17: the same on PostgreSQL. The fixture is a `pg_dump` (plain INSERTs) of a
/// database statusd 0.1.0 wrote through its API by the same steps
/// (`tests/fixtures/upgrade-0.1.0-postgres/make.sh`), loaded into a fresh test database.
#[tokio::test(flavor = "multi_thread")]
async fn upgrade_from_0_1_0_on_postgres_keeps_everything() {
    let fixture = std::path::Path::new(FIXTURE_0_1_0_POSTGRES);
    let db = cluster::Db::create();
    let dump = std::fs::read_to_string(fixture.join("dump.sql")).expect("read dump.sql");
    db.exec(&dump);
    assert_eq!(
        db.query_i64("SELECT MAX(version)::bigint FROM schema_migrations"),
        4,
        "0.1.0 stopped at PostgreSQL schema 4"
    );
    upgrade_keeps_everything(fixture, &db.url, 4).await;
}

/// The fixture of [`upgrade_from_0_1_0_on_postgres_keeps_everything`].
const FIXTURE_0_1_0_POSTGRES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/upgrade-0.1.0-postgres"
);

/// `db` holds what 0.1.0 wrote at schema `old` (`fixture`'s `secrets.json` and
/// `before.json` say what it answered): `migrate --check` reports the pending
/// migrations (exit 3), today's server migrates it at start, and every answer 0.1.0 gave
/// comes back unchanged, asked with the tokens 0.1.0 issued; every password still logs in.
async fn upgrade_keeps_everything(fixture: &std::path::Path, db: &str, old: i64) {
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(fixture.join(name)).expect("read the fixture");
        serde_json::from_str(&text).expect("fixture JSON")
    };
    let (secrets, before) = (read("secrets.json"), read("before.json"));
    let db = db.to_string();

    // The check lists what today's binary will apply.
    let out = statusd(&db, &["migrate", "--check"]);
    assert_eq!(out.code, 3, "{out:?}");
    let line = out.stdout.trim_end();
    let known: i64 = line
        .strip_prefix(&format!("schema at version {old} of "))
        .and_then(|s| s.split(':').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    let pending: Vec<String> = (old + 1..=known).map(|v| v.to_string()).collect();
    assert_eq!(
        line,
        format!(
            "schema at version {old} of {known}: {} migration{} pending ({})",
            pending.len(),
            if pending.len() == 1 { "" } else { "s" },
            pending.join(", ")
        )
    );

    // The server migrates by itself at start; nothing is pending afterwards.
    let mut srv = Server::start_opts(Options::default().env("DATABASE_URL", &db)).await;
    assert_eq!(
        statusd(&db, &["migrate", "--check"]).line(),
        format!("schema at version {known} of {known}: no migration pending")
    );

    // Every answer 0.1.0 gave (users, statuses with text and expiry, history, the
    // bot's token, settings, permissions, custom statuses) comes back unchanged, asked
    // with the login tokens and the personal access token 0.1.0 issued.
    let session = |who: &str| {
        let s = &secrets[who];
        let token = s["loginToken"]
            .as_str()
            .or(s["pat"].as_str())
            .expect("token");
        Session {
            user_id: s["userId"].as_str().expect("userId").to_string(),
            token: token.to_string(),
            username: who.to_string(),
        }
    };
    let entries = before.as_array().expect("before.json is a list");
    assert_eq!(entries.len(), 24, "before.json");
    for e in entries {
        let (path, who) = (e["path"].as_str().unwrap(), e["as"].as_str().unwrap());
        assert_eq!(e["body"]["success"], true, "0.1.0 answered {path}: {e}");
        let r = srv.get(path, Some(&session(who))).await;
        assert_eq!(r.0, StatusCode::OK, "{path} as {who}: {}", r.2);
        assert_kept(&e["body"], &r.2, &format!("{path} as {who}"));
    }

    // Spelled out, the things an operator would check first.
    let olive = session("olive");
    let r = srv
        .get(
            &format!("users.getStatus?userId={}", olive.user_id),
            Some(&olive),
        )
        .await;
    assert_eq!(r.2["status"], "busy", "{}", r.2);
    let admin = session("admin");
    let info = srv
        .get(
            &format!("users.info?userId={}", olive.user_id),
            Some(&admin),
        )
        .await;
    assert_eq!(
        info.2["user"]["statusText"], "Writing the fixture",
        "{}",
        info.2
    );
    let bot = session("deploy-bot");
    let me = srv.get("me", Some(&bot)).await;
    assert_eq!(
        (me.0, &me.2["username"]),
        (StatusCode::OK, &json!("deploy-bot"))
    );
    assert_reply(
        &srv.get("me", Some(&bot.with_token("not-the-pat"))).await,
        401,
        body_401(),
    );
    // The password hashes too: each of them still logs in.
    for who in ["admin", "olive", "piet", "deploy-bot"] {
        let s = srv
            .login(who, secrets[who]["password"].as_str().unwrap())
            .await;
        assert_eq!(s.user_id, secrets[who]["userId"], "{who}");
    }
    srv.stop().await;
}

/// `statusd webhook add|list|delete` on a running server's database: the server hears
/// of the endpoint within seconds and puts the deliveries of its next changes in the
/// outbox; the secret is printed once by `add`, never by `list`.
#[tokio::test]
async fn webhooks_are_added_listed_and_deleted() {
    let srv = Server::start().await;
    let db = srv.database_url().to_string();
    let alice = srv.create_user("alice", "Alice-Pass-1234", &["user"]).await;
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    let out = statusd(
        &db,
        &[
            "webhook",
            "add",
            &url,
            "--event",
            "status.changed,status-text.changed",
            "--user",
            "alice",
        ],
    );
    let line = out.line().to_string();
    assert!(line.starts_with("created webhook "), "{line}");
    let id = line.split_whitespace().nth(2).unwrap().to_string();
    let secret = line
        .split("secret ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(secret.starts_with("whsec_"), "{line}");
    let out = statusd(&db, &["webhook", "list"]);
    assert_eq!(
        out.line(),
        format!("{id}\t{url}\tstatus.changed,status-text.changed\tactive")
    );
    assert!(!out.stderr.contains(&secret));
    assert_eq!(
        statusd(
            &db,
            &["webhook", "add", "ftp://x/", "--event", "status.changed"]
        )
        .error(),
        "The URL must be http:// or https:// [error-invalid-webhook-url]"
    );
    assert_eq!(
        statusd(&db, &["webhook", "delete", "nope"]).error(),
        "No webhook with this id [error-webhook-not-found]"
    );
    let admin = srv.admin().await;
    eventually("the server lists the endpoint", || async {
        let (_, _, body) = srv.get("statusd.webhooks.list", Some(&admin)).await;
        if body["count"] != 1 {
            return Err(body.to_string());
        }
        assert_eq!(body["webhooks"][0]["userIds"], json!([alice.user_id]));
        Ok(())
    })
    .await;
    let (status, _, body) = srv.set_status(&alice, json!({"status": "busy"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = srv
        .get(
            &format!("statusd.webhooks.deliveries?webhookId={id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 1, "{body}");
    assert_eq!(body["deliveries"][0]["event"], "status.changed");
    assert_eq!(
        statusd(&db, &["webhook", "delete", &id]).line(),
        format!("deleted webhook {id}")
    );
    assert_eq!(statusd(&db, &["webhook", "list"]).line(), "no webhooks");
    assert!(!srv.log().contains(&secret), "the secret was logged");
}
