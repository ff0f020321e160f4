//! Start-up (CONTRACT §1): configuration errors, the default database, the first
//! admin, the rocket.cat bot, OVERWRITE_SETTING_* and the command-line flags.

mod common;

use std::time::Duration;

use common::*;

const EXIT_WAIT: Duration = Duration::from_secs(15);

/// Candidate passwords in a log: every run of secret-alphabet characters long
/// enough to be a generated password, on a line that talks about the admin.
fn password_candidates(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in log.lines().filter(|l| l.to_lowercase().contains("admin")) {
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
            if word.len() >= 12 && !out.iter().any(|w| w == word) {
                out.push(word.to_string());
            }
        }
    }
    out
}

/// (variable, bad value, what the message must name)
const BAD_VALUES: &[(&str, &str, &str)] = &[
    ("PORT", "not-a-port", "PORT"),
    ("PORT", "70000", "PORT"),
    ("BIND_IP", "nowhere", "BIND_IP"),
    ("DATABASE_URL", "mysql://localhost/statusd", "DATABASE_URL"),
    ("ROOT_URL", "ftp://example.org", "ROOT_URL"),
    ("HTTP_FORWARDED_COUNT", "-1", "HTTP_FORWARDED_COUNT"),
    ("NATS_URL", "http://localhost:4222", "NATS_URL"),
    (
        "OVERWRITE_SETTING_Accounts_AllowInvisibleStatusOption",
        "maybe",
        "OVERWRITE_SETTING_Accounts_AllowInvisibleStatusOption",
    ),
    (
        "OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Calls_Default",
        "ten",
        "OVERWRITE_SETTING_API_Enable_Rate_Limiter_Limit_Calls_Default",
    ),
    (
        "OVERWRITE_SETTING_No_Such_Setting",
        "1",
        "OVERWRITE_SETTING_No_Such_Setting",
    ),
];

/// Runs every bad value; returns (variable=value, exit status, output).
async fn run_bad_values() -> Vec<(String, Option<std::process::ExitStatus>, String)> {
    let mut out = Vec::new();
    for (var, value, _) in BAD_VALUES {
        let (status, output) =
            Server::run_to_exit(Options::default().env(var, value), EXIT_WAIT).await;
        out.push((format!("{var}={value}"), status, output));
    }
    // ADMIN_USERNAME without ADMIN_PASS.
    let (status, output) =
        Server::run_to_exit(Options::default().unset("ADMIN_PASS"), EXIT_WAIT).await;
    out.push(("ADMIN_USERNAME without ADMIN_PASS".into(), status, output));
    out
}

fn named(i: usize) -> &'static str {
    BAD_VALUES.get(i).map(|b| b.2).unwrap_or("ADMIN_PASS")
}

#[tokio::test]
async fn bad_values_stop_the_start_with_a_message_naming_the_variable() {
    let mut problems = Vec::new();
    for (i, (what, status, output)) in run_bad_values().await.into_iter().enumerate() {
        match status {
            None => problems.push(format!("{what}: the server started anyway")),
            Some(s) if s.success() => problems.push(format!("{what}: exit status 0")),
            Some(_) if !output.contains(named(i)) => problems.push(format!(
                "{what}: the message does not name {}: {output:?}",
                named(i)
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// CONTRACT §1: "a one-line message", also for the values clap rejects (PORT,
/// BIND_IP, HTTP_FORWARDED_COUNT).
#[tokio::test]
async fn bad_values_print_exactly_one_line() {
    let mut problems = Vec::new();
    for (what, _, output) in run_bad_values().await {
        let lines = output.lines().filter(|l| !l.trim().is_empty()).count();
        if lines != 1 {
            problems.push(format!("{what}: {lines} lines, want one: {output:?}"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[tokio::test]
async fn help_lists_a_flag_for_every_variable() {
    let (status, output) = Server::run_to_exit(Options::default().arg("--help"), EXIT_WAIT).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {output}");
    for (flag, var) in [
        ("--port", "PORT"),
        ("--bind-ip", "BIND_IP"),
        ("--root-url", "ROOT_URL"),
        ("--database-url", "DATABASE_URL"),
        ("--nats-url", "NATS_URL"),
        ("--admin-username", "ADMIN_USERNAME"),
        ("--admin-pass", "ADMIN_PASS"),
        ("--admin-email", "ADMIN_EMAIL"),
        ("--admin-name", "ADMIN_NAME"),
        ("--http-forwarded-count", "HTTP_FORWARDED_COUNT"),
        ("--rust-log", "RUST_LOG"),
    ] {
        assert!(output.contains(flag), "--help lacks {flag}:\n{output}");
        assert!(output.contains(var), "--help lacks {var}:\n{output}");
    }
    // The admin password given in the environment is not echoed.
    assert!(!output.contains(ADMIN_PASS), "{output}");
}

#[tokio::test]
async fn flags_work_like_the_variables() {
    let srv = Server::start_opts(
        Options::default()
            .arg("--root-url")
            .arg("https://flags.example.net/")
            .arg("--admin-name")
            .arg("Flag Admin"),
    )
    .await;
    let admin = srv.admin().await;
    let me = srv.get("me", Some(&admin)).await.2;
    assert_eq!(
        me["avatarUrl"],
        format!("https://flags.example.net/avatar/{ADMIN_USER}"),
        "{me}"
    );
    assert_eq!(me["name"], "Flag Admin", "{me}");
}

#[tokio::test]
async fn default_database_lives_in_data_under_the_working_directory() {
    let mut srv = Server::start_opts(Options::default().unset("DATABASE_URL")).await;
    let db = srv.data_dir().join("data").join("statusd.db");
    assert!(db.is_file(), "{} was not created", db.display());
    let admin = srv.admin().await;
    assert_reply(
        &srv.set_status(&admin, json!({"status": "busy", "message": "on disk"}))
            .await,
        200,
        json!({"success": true}),
    );
    srv.restart().await;
    assert_eq!(srv.info_of(&admin.user_id).await["statusText"], "on disk");
}

#[tokio::test]
async fn first_start_without_admin_variables_creates_admin_and_prints_the_password_once() {
    let mut srv = Server::start_opts(
        Options::default()
            .unset("ADMIN_USERNAME")
            .unset("ADMIN_PASS")
            .unset("ADMIN_EMAIL"),
    )
    .await;
    let log = srv.log();
    let mut session = None;
    let mut password = None;
    for candidate in password_candidates(&log) {
        let r = srv
            .post_json(
                "login",
                None,
                json!({"user": "admin", "password": candidate}),
            )
            .await;
        if r.0 == 200 {
            session = Some(session_from_login(&r.2));
            password = Some(candidate);
            break;
        }
    }
    let (session, password) = match (session, password) {
        (Some(s), Some(p)) => (s, p),
        _ => panic!("no working admin password found in the log:\n{log}"),
    };
    let me = srv.get("me", Some(&session)).await.2;
    assert!(
        me["roles"].as_array().unwrap().contains(&json!("admin")),
        "{me}"
    );

    // A later start, with or without ADMIN_*, creates nobody and prints nothing.
    let log_len = log.len();
    srv.options_mut()
        .env
        .push(("ADMIN_USERNAME".into(), "second".into()));
    srv.options_mut()
        .env
        .push(("ADMIN_PASS".into(), "second-pass-1".into()));
    srv.restart().await;
    let later = srv.log()[log_len..].to_string();
    assert!(
        !later.contains(&password),
        "the password was printed again:\n{later}"
    );
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": "second", "password": "second-pass-1"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());
    let s = srv.login("admin", &password).await;
    let r = srv.get("users.list", Some(&s)).await;
    assert_eq!(r.2["total"], 2, "admin and rocket.cat only: {}", r.2);
}

#[tokio::test]
async fn admin_variables_and_the_rocket_cat_bot() {
    let srv = Server::start_opts(Options::default().env("ADMIN_NAME", "The Boss")).await;
    let admin = srv.admin().await;
    let me = srv.get("me", Some(&admin)).await.2;
    assert_eq!(me["username"], ADMIN_USER);
    assert_eq!(me["name"], "The Boss");
    assert_eq!(me["email"], ADMIN_EMAIL);
    assert!(
        me["roles"].as_array().unwrap().contains(&json!("admin")),
        "{me}"
    );
    let cat = srv.info_of("rocket.cat").await;
    assert_eq!(cat["_id"], "rocket.cat");
    assert_eq!(cat["username"], "rocket.cat");
    assert_eq!(cat["roles"], json!(["bot"]), "{cat}");
}

#[tokio::test]
async fn overwrite_setting_is_forced_at_every_start() {
    let mut srv = Server::start_with(&[(
        "OVERWRITE_SETTING_Accounts_AllowInvisibleStatusOption",
        "false",
    )])
    .await;
    let admin = srv.admin().await;
    let get = "settings/Accounts_AllowInvisibleStatusOption";
    assert_eq!(srv.get(get, Some(&admin)).await.2["value"], false);
    srv.set_setting("Accounts_AllowInvisibleStatusOption", json!(true))
        .await;
    assert_eq!(srv.get(get, Some(&admin)).await.2["value"], true);
    srv.restart().await;
    assert_eq!(srv.get(get, Some(&admin)).await.2["value"], false);
    // Without the variable, the stored value stays.
    srv.set_setting("Accounts_AllowInvisibleStatusOption", json!(true))
        .await;
    srv.options_mut()
        .env
        .retain(|(k, _)| k != "OVERWRITE_SETTING_Accounts_AllowInvisibleStatusOption");
    srv.restart().await;
    assert_eq!(srv.get(get, Some(&admin)).await.2["value"], true);
}

#[tokio::test]
async fn real_defaults_without_test_overrides() {
    // The harness turns the REST rate limiter off; here it is left at its default.
    let srv =
        Server::start_opts(Options::default().unset("OVERWRITE_SETTING_API_Enable_Rate_Limiter"))
            .await;
    let admin = srv.admin().await;
    let r = srv
        .get("settings/API_Enable_Rate_Limiter", Some(&admin))
        .await;
    assert_reply(
        &r,
        200,
        json!({"_id": "API_Enable_Rate_Limiter", "value": true, "success": true}),
    );
    let r = srv.get("/api/info", None).await;
    assert_status(&r, 200);
}
