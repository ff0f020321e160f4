//! The server's logs, read from the real binary's stderr: no colour codes off a
//! terminal, `LOG_FORMAT=json` (one object per line), the start-up line (version, store
//! without credentials, instance, address), `ACCESS_LOG=true`, and no secret in the
//! log whatever `RUST_LOG` asks for (issue 14.11, issue 17 "Logs").

use crate::cluster;
use crate::common;

use std::time::Duration;

use common::ddp::*;
use common::*;

/// Every library that sees frames, headers, SQL or NATS traffic, at its most verbose.
const LOUDEST: &str = "trace,tungstenite=trace,tungstenite::protocol=trace,\
     tungstenite::protocol::frame=trace,tokio_tungstenite=trace,hyper=trace,hyper_util=trace,\
     h2=trace,axum=trace,axum::rejection=trace,tower_http=trace,async_nats=trace,\
     tokio_postgres=trace,postgres=trace";

/// Stops the server (SIGTERM; everything flushed) and returns its log.
async fn stopped_log(mut srv: Server) -> String {
    let exit = srv.stop().await;
    assert!(exit.success(), "exit {exit}:\n{}", srv.log());
    srv.log()
}

/// The log's lines as JSON objects; panics on a line that is not one.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\n{log}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect()
}

#[tokio::test]
async fn no_colour_codes_when_stderr_is_not_a_terminal() {
    let srv = Server::start_with(&[("RUST_LOG", "debug")]).await;
    let admin = srv.admin().await;
    let mut c = Ddp::connect_resume(&srv, &admin.token).await;
    c.sub_user_status("s1").await;
    c.close().await;
    let log = stopped_log(srv).await;
    assert!(log.contains("statusd listening on"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log written to a file:\n{log:?}"
    );
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line_with_the_start_up_fields() {
    let srv = Server::start_with(&[("LOG_FORMAT", "json"), ("RUST_LOG", "debug")]).await;
    let admin = srv.admin().await;
    let (_, _, health) = srv.get("/api/health", None).await;
    let instance = health["instance"].as_str().expect("instance").to_string();
    let c = Ddp::connect_resume(&srv, &admin.token).await;
    c.close().await;
    let port = srv.port();
    let db = std::fs::canonicalize(srv.data_dir().join("statusd.db"));
    let log = stopped_log(srv).await;
    let lines = json_lines(&log);
    for l in &lines {
        for field in ["timestamp", "level", "target"] {
            assert!(l.get(field).is_some(), "no {field}: {l}");
        }
    }
    let start = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("statusd listening on"))
        })
        .unwrap_or_else(|| panic!("no start-up line:\n{log}"));
    assert_eq!(start["level"], "INFO", "{start}");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"), "{start}");
    // The Rocket.Chat version clients are told (RC_COMPAT_VERSION).
    assert_eq!(start["rc_version"], "8.6.0", "{start}");
    assert_eq!(start["instance"], instance.as_str(), "{start}");
    assert_eq!(start["address"], format!("127.0.0.1:{port}"), "{start}");
    if database_is_sqlite() {
        let want = db.expect("the database file");
        assert_eq!(
            start["store"],
            format!("sqlite:{}", want.display()),
            "{start}"
        );
    }
}

fn database_is_sqlite() -> bool {
    std::env::var("STATUSD_TEST_DATABASE_URL").map_or(true, |u| u.trim().is_empty())
}

#[tokio::test]
async fn a_bad_log_format_stops_the_start_naming_the_variable() {
    let (status, output) = Server::run_to_exit(
        Options::default().env("LOG_FORMAT", "xml"),
        Duration::from_secs(15),
    )
    .await;
    assert!(status.is_some_and(|s| !s.success()), "{status:?}: {output}");
    assert!(output.contains("LOG_FORMAT"), "{output}");
    assert_eq!(output.trim().lines().count(), 1, "{output}");
}

/// Issue 14.11: `tungstenite::protocol=trace` was more specific than the directive
/// meant to hide payloads and logged a DDP login frame with the password digest. No
/// directive lifts a library above warn now; the server's own trace output carries no
/// secret either.
#[tokio::test]
async fn no_secret_reaches_the_log_whatever_rust_log_asks_for() {
    let srv = Server::start_with(&[("RUST_LOG", LOUDEST)]).await;
    let password = "Carol-Secret-Pass-77";
    let carol = srv.create_user("carol", password, &["user"]).await;
    // A DDP password login (the digest travels in the frame), a resume login, a
    // method, a close.
    let mut c = Ddp::connect(&srv).await;
    let login = c
        .login_password("carol", password)
        .await
        .unwrap_or_else(|e| panic!("DDP login failed: {e}"));
    let ddp_token = login["token"].as_str().expect("token").to_string();
    c.call("UserPresence:away", json!([])).await.ok();
    c.close().await;
    let mut c = Ddp::connect_resume(&srv, &carol.token).await;
    c.sub_user_status("s1").await;
    c.close().await;
    // REST: the token in headers, a body with the password, a rejected body.
    let (_, _, me) = srv.get("me", Some(&carol)).await;
    assert_eq!(me["username"], "carol", "{me}");
    let r = srv
        .post_raw(
            "login",
            &[("content-type", "application/json")],
            format!("{{\"user\":\"carol\",\"password\":[\"{password}\"]}}"),
        )
        .await;
    assert_ne!(r.0, StatusCode::OK);
    let log = stopped_log(srv).await;
    let digest = sha256_hex(password);
    for (what, secret) in [
        ("the password digest", digest.as_str()),
        ("the password", password),
        ("the REST login token", carol.token.as_str()),
        ("the DDP login token", ddp_token.as_str()),
    ] {
        assert!(!log.contains(secret), "{what} is in the log:\n{log}");
        // tungstenite prints a frame's payload in hex.
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!log.contains(&hex), "{what} is in the log, in hex:\n{log}");
    }
    // No library wrote below warn (a websocket close used to write two DEBUG lines).
    for line in log.lines() {
        let loud = line.contains(" DEBUG ") || line.contains(" TRACE ") || line.contains(" INFO ");
        let ours = line.contains(" statusd");
        assert!(!loud || ours, "a library logged below warn: {line}");
    }
}

/// At the default level the libraries are quiet: a websocket's life leaves no line.
#[tokio::test]
async fn the_default_level_is_quiet() {
    let srv = Server::start_opts(Options::default().unset("RUST_LOG")).await;
    let admin = srv.admin().await;
    for _ in 0..3 {
        let c = Ddp::connect_resume(&srv, &admin.token).await;
        c.close().await;
    }
    let log = stopped_log(srv).await;
    for line in log.lines() {
        assert!(
            !line.contains("tungstenite") && !line.contains("DEBUG") && !line.contains("TRACE"),
            "noise at the default level: {line}\n{log}"
        );
    }
}

/// `ACCESS_LOG=true`: one line per request with the route's pattern (never the query
/// string), the status, the duration and the caller's id; never a token.
#[tokio::test]
async fn the_access_log_names_route_status_duration_and_user_never_tokens() {
    let srv = Server::start_with(&[
        ("ACCESS_LOG", "true"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "warn"),
    ])
    .await;
    let admin = srv.admin().await;
    let query_secret = "QuerySecret-123456";
    let path = format!(
        "users.getStatus?userId={}&authToken={query_secret}",
        admin.user_id
    );
    let (status, _, body) = srv.get(&path, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = srv.get("/api/v1/no.such.route?token=x", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = srv.get("me", Some(&admin.with_token("wrong-token"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let log = stopped_log(srv).await;
    assert!(!log.contains(query_secret), "{log}");
    assert!(!log.contains(&admin.token), "{log}");
    assert!(!log.contains("wrong-token"), "{log}");
    let access: Vec<Value> = json_lines(&log)
        .into_iter()
        .filter(|l| l["target"] == "statusd::access")
        .collect();
    let find = |route: &str, status: u16| {
        access
            .iter()
            .find(|l| l["route"] == route && l["status"] == status)
            .unwrap_or_else(|| panic!("no access line for {route} {status}:\n{log}"))
            .clone()
    };
    let get = find("/api/v1/users.getStatus", 200);
    assert_eq!(get["method"], "GET", "{get}");
    assert_eq!(get["user"], admin.user_id.as_str(), "{get}");
    assert!(
        get["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{get}"
    );
    let login = find("/api/v1/login", 200);
    assert_eq!(login["method"], "POST", "{login}");
    assert_eq!(login["user"], "-", "{login}");
    assert_eq!(find("unmatched", 404)["user"], "-");
    assert_eq!(find("/api/v1/me", 401)["user"], "-");
}

#[tokio::test]
async fn no_access_log_by_default() {
    let srv = Server::start_with(&[("RUST_LOG", "trace")]).await;
    let admin = srv.admin().await;
    srv.get("me", Some(&admin)).await;
    let log = stopped_log(srv).await;
    assert!(!log.contains("statusd::access"), "{log}");
}

/// The start-up line names the PostgreSQL host and database and the NATS server, but
/// not the user names and passwords in their URLs.
#[tokio::test]
async fn the_start_up_line_names_the_stores_without_credentials() {
    let db = cluster::Db::create();
    let nats = cluster::Nats::start().await;
    // Trust authentication: the password is not checked, only carried.
    let url = db
        .url
        .replacen("://postgres@", "://postgres:Pg-Url-Secret@", 1);
    assert!(url.contains("Pg-Url-Secret"), "{url}");
    let nats_url = nats.url();
    assert!(nats_url.contains(nats.password()), "{nats_url}");
    let srv = Server::start_opts(
        Options::default()
            .env("DATABASE_URL", &url)
            .env("NATS_URL", &nats_url)
            .env(
                "NATS_SUBJECT_PREFIX",
                &format!("logs_{}", std::process::id()),
            )
            .env("CLUSTER_SECRET", cluster::CLUSTER_SECRET)
            .env("RUST_LOG", "info"),
    )
    .await;
    let log = stopped_log(srv).await;
    for secret in [
        "Pg-Url-Secret",
        nats.password(),
        cluster::NATS_USER,
        cluster::CLUSTER_SECRET,
    ] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
    let start = log
        .lines()
        .find(|l| l.contains("statusd listening on"))
        .unwrap_or_else(|| panic!("no start-up line:\n{log}"));
    let nats_addr = nats.addr();
    assert!(
        start.contains(&format!("store=postgres://127.0.0.1:5432/{}", db.name)),
        "{start}"
    );
    assert!(start.contains(&format!("nats={nats_addr}")), "{start}");
}
