//! Start-up (CONTRACT §1): configuration errors, the default database and its file
//! modes, the first admin (ADMIN_PASS_FILE too), the rocket.cat bot,
//! OVERWRITE_SETTING_*, the command-line flags, the open-file limit and a SIGTERM
//! that arrives while the server starts.

use crate::common;

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
    ("METRICS_BIND", "localhost", "METRICS_BIND"),
    ("RC_COMPAT_VERSION", "8.6", "RC_COMPAT_VERSION"),
    ("CALENDAR_SECRET_KEY", "too-short", "CALENDAR_SECRET_KEY"),
    ("CALENDAR_SYNC_SECS", "often", "CALENDAR_SYNC_SECS"),
    (
        "CALENDAR_ALLOW_PRIVATE",
        "perhaps",
        "CALENDAR_ALLOW_PRIVATE",
    ),
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
        ("--admin-pass-file", "ADMIN_PASS_FILE"),
        ("--log-format", "LOG_FORMAT"),
        ("--access-log", "ACCESS_LOG"),
        ("--max-connections-per-ip", "MAX_CONNECTIONS_PER_IP"),
    ] {
        assert!(output.contains(flag), "--help lacks {flag}:\n{output}");
        assert!(output.contains(var), "--help lacks {var}:\n{output}");
    }
    // The admin password given in the environment is not echoed.
    assert!(!output.contains(ADMIN_PASS), "{output}");
}

/// Issue 17: operators and packages ask the binary which release it is.
#[tokio::test]
async fn version_prints_the_package_version() {
    let (status, output) =
        Server::run_to_exit(Options::default().arg("--version"), EXIT_WAIT).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {output}");
    assert_eq!(
        output.trim(),
        format!("statusd {}", env!("CARGO_PKG_VERSION")),
        "{output}"
    );
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

/// Issue 17: an operator's Rocket.Chat environment file comes over as it is. An
/// overwrite of a setting statusd does not have is ignored with one warning naming it
/// (Rocket.Chat ignores it too); the known ones next to it still apply, and a bad value
/// for a known one still stops the start (`bad_values_stop_the_start…`).
#[tokio::test]
async fn overwrite_of_an_unknown_setting_warns_once_and_starts() {
    let srv = Server::start_with(&[
        ("OVERWRITE_SETTING_Show_Setup_Wizard", "completed"),
        ("OVERWRITE_SETTING_No_Such_Setting", "1"),
        (
            "OVERWRITE_SETTING_Accounts_AllowInvisibleStatusOption",
            "false",
        ),
    ])
    .await;
    let admin = srv.admin().await;
    let r = srv
        .get("settings/Accounts_AllowInvisibleStatusOption", Some(&admin))
        .await;
    assert_eq!(r.2["value"], false, "{:?}", r.2);
    let r = srv.get("settings/Show_Setup_Wizard", Some(&admin)).await;
    assert_status(&r, 400);
    let log = srv.log();
    for name in [
        "OVERWRITE_SETTING_Show_Setup_Wizard",
        "OVERWRITE_SETTING_No_Such_Setting",
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(name)).collect();
        assert_eq!(lines.len(), 1, "{name}: want one line:\n{log}");
        assert!(
            lines[0].contains("WARN"),
            "{name}: not a warning: {}",
            lines[0]
        );
    }
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

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o777
}

/// Issue 14.10: the database holds password and token hashes. Its folder was created
/// 0755 and its files 0644; now 0700 and 0600, the -wal and -shm files included. An
/// existing folder's mode is left alone, with a warning.
#[tokio::test]
async fn the_database_folder_and_files_are_private() {
    let mut srv = Server::start_opts(Options::default().unset("DATABASE_URL")).await;
    let admin = srv.admin().await;
    srv.set_status(&admin, json!({"status": "busy"})).await;
    let data = srv.data_dir().join("data");
    assert_eq!(mode_of(&data), 0o700, "{}", data.display());
    for name in ["statusd.db", "statusd.db-wal", "statusd.db-shm"] {
        let file = data.join(name);
        assert_eq!(mode_of(&file), 0o600, "{}", file.display());
    }
    assert!(!srv.log().contains("mode 7"), "{}", srv.log());
    // An operator's own modes are kept, and named in a warning.
    srv.stop().await;
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o750))
        .expect("chmod");
    let before = srv.log().len();
    srv.start_again().await;
    assert_eq!(mode_of(&data), 0o750);
    let log = srv.log()[before..].to_string();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("mode 750"))
        .unwrap_or_else(|| panic!("no warning about the folder's mode:\n{log}"));
    assert!(warning.contains(&data.display().to_string()), "{warning}");
}

/// Issue 14.10: `ADMIN_PASS_FILE` gives the first admin's password from a file (a
/// trailing newline is not part of it), so it is neither in the environment nor in
/// the log.
#[tokio::test]
async fn admin_pass_file_gives_the_first_admins_password() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("admin-pass");
    std::fs::write(&file, "File-Pass-From-Disk-9\n").expect("write the password file");
    let srv = Server::start_opts(
        Options::default()
            .unset("ADMIN_PASS")
            .env("ADMIN_PASS_FILE", &file.display().to_string())
            .env("RUST_LOG", "info"),
    )
    .await;
    let s = srv.login(ADMIN_USER, "File-Pass-From-Disk-9").await;
    let me = srv.get("me", Some(&s)).await.2;
    assert!(
        me["roles"].as_array().unwrap().contains(&json!("admin")),
        "{me}"
    );
    let r = srv
        .post_json(
            "login",
            None,
            json!({"user": ADMIN_USER, "password": "File-Pass-From-Disk-9\n"}),
        )
        .await;
    assert_reply(&r, 401, body_login_failed());
    assert!(
        !srv.log().contains("File-Pass-From-Disk-9"),
        "{}",
        srv.log()
    );
}

/// A missing or empty password file, or both ADMIN_PASS and ADMIN_PASS_FILE, stop the
/// start with one line naming the variable.
#[tokio::test]
async fn a_bad_admin_pass_file_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let missing = dir.path().join("missing");
    for (what, opts) in [
        (
            "a missing file",
            Options::default()
                .unset("ADMIN_PASS")
                .env("ADMIN_PASS_FILE", &missing.display().to_string()),
        ),
        (
            "an empty file",
            Options::default()
                .unset("ADMIN_PASS")
                .env("ADMIN_PASS_FILE", &empty.display().to_string()),
        ),
        (
            "both variables",
            Options::default().env("ADMIN_PASS_FILE", &empty.display().to_string()),
        ),
        (
            "a file without ADMIN_USERNAME",
            Options::default()
                .unset("ADMIN_USERNAME")
                .unset("ADMIN_PASS")
                .env("ADMIN_PASS_FILE", &empty.display().to_string()),
        ),
    ] {
        let (status, output) = Server::run_to_exit(opts, EXIT_WAIT).await;
        assert!(
            status.is_some_and(|s| !s.success()),
            "{what}: {status:?} {output}"
        );
        assert!(output.contains("ADMIN_PASS_FILE"), "{what}: {output}");
        assert_eq!(output.trim().lines().count(), 1, "{what}: {output}");
    }
}

/// Issue 14.2: the soft open-file limit (often 1024) capped the connections long
/// before the hard one; the server raises it to the hard limit and logs both.
#[tokio::test]
async fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut own) }, 0);
    let hard = own.rlim_max.min(8192);
    assert!(hard > 256, "the open-file hard limit is only {hard}");
    let srv =
        Server::start_opts(Options::default().nofile(256, hard).env("RUST_LOG", "info")).await;
    let pid = srv.pid().expect("running");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers, vec![hard, hard], "{line}");
    let log = srv.log();
    let logged = log
        .lines()
        .find(|l| l.contains("open files"))
        .unwrap_or_else(|| panic!("no open-file line:\n{log}"));
    assert!(
        logged.contains("256") && logged.contains(&hard.to_string()),
        "{logged}"
    );
}

/// A SIGTERM at any moment of the start-up stops the server gracefully (exit 0,
/// "statusd stopped"), never kills it half-started; one that arrives before the
/// listener is bound means it never listens. Only a signal that lands before the
/// process ran any code of its own (it printed nothing) may still end it by the
/// signal's default action. Before the fix, a SIGTERM after the first log line but
/// before the runtime existed killed it (exit by signal 15).
#[tokio::test]
async fn sigterm_during_start_up_stops_gracefully() {
    use std::os::unix::process::ExitStatusExt;

    let opts = || Options::default().env("RUST_LOG", "info");
    let mut runs = Vec::new();
    for ms in [0u64, 1, 2, 3, 5, 8, 12, 20, 35, 60] {
        let (exit, log) =
            Server::term_during_start(opts(), Duration::from_millis(ms), false, EXIT_WAIT).await;
        runs.push((format!("SIGTERM {ms} ms after the spawn"), exit, log));
    }
    // As soon as the first line is out, every time: the signal is caught by then.
    for _ in 0..3 {
        let (exit, log) = Server::term_during_start(opts(), Duration::ZERO, true, EXIT_WAIT).await;
        assert!(!log.is_empty(), "it printed nothing within {EXIT_WAIT:?}");
        runs.push(("SIGTERM after its first log line".into(), exit, log));
    }
    for (when, exit, log) in &runs {
        let exit =
            exit.unwrap_or_else(|| panic!("{when}: still running after {EXIT_WAIT:?}:\n{log}"));
        if exit.signal() == Some(libc::SIGTERM) && log.is_empty() {
            continue; // ended before its own code ran: nothing to stop gracefully
        }
        assert!(exit.success(), "{when}: exited with {exit}:\n{log}");
        assert!(
            log.contains("statusd stopped"),
            "{when}: no goodbye:\n{log}"
        );
        if log.contains("not listening") {
            assert!(
                !log.contains("statusd listening"),
                "{when}: listened:\n{log}"
            );
        }
    }
}
