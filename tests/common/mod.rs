//! Black-box test harness: starts the real `statusd` binary on a free port with its
//! own temporary data directory, and talks to it over HTTP like any client would.
//!
//! Reusable by every integration test (REST now, websocket/DDP later):
//!
//! ```ignore
//! mod common;
//! use common::*;
//!
//! #[tokio::test]
//! async fn example() {
//!     let srv = Server::start().await;
//!     let admin = srv.admin().await;
//!     let (status, _headers, body) = srv.get("users.getStatus", Some(&admin)).await;
//!     assert_eq!(status, 200, "{body}");
//!     let _ws = srv.ws_url(); // ws://127.0.0.1:PORT/websocket
//! }
//! ```
//!
//! Every response that goes through [`Server::request`] (and so `get`, `post_json`,
//! `post_raw`) is checked against CONTRACT §2: the body must be JSON with
//! `Content-Type: application/json` and `Cache-Control: no-store`, and the status
//! must never be a 5xx. Use [`Server::request_text`] for the few non-JSON routes
//! (`/metrics`) or when a test must look at a broken answer itself.
//!
//! Knobs (environment of the test process):
//! - `STATUSD_TEST_DATABASE_URL`: a template for the `DATABASE_URL` each server gets,
//!   instead of the default `sqlite://<tmp>/statusd.db`. `{dir}` is replaced by the
//!   server's temporary directory and `{name}` by a name unique to the server (letters,
//!   digits and `_`), e.g. `postgres://statusd@127.0.0.1/statusd_{name}`. Preparing
//!   such a database (CREATE DATABASE …) is the job of [`prepare_database`]: for
//!   `postgres://` templates it creates `{name}` through the maintenance database
//!   (`STATUSD_TEST_PG_ADMIN_URL`, default: the template's server, database
//!   `postgres`), and the server's drop drops it (`scripts/test.sh` runs the REST and
//!   DDP suites this way with `postgres://postgres@127.0.0.1:5432/{name}`).
//! - `STATUSD_TEST_KEEP_TMP=1`: keep the temporary directories (database, server log),
//!   and PostgreSQL test databases.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use reqwest::header::HeaderMap;
pub use reqwest::{Method, StatusCode};
pub use serde_json::{json, Value};

/// The bootstrap admin every test server is started with.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASS: &str = "Admin-Test-Pass-42";
pub const ADMIN_EMAIL: &str = "admin@example.com";

/// How long a server may take to answer `GET /api/info` after being spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Status, headers and JSON body of one answer.
pub type Reply = (StatusCode, HeaderMap, Value);

/// A logged-in user: what goes into `X-User-Id` / `X-Auth-Token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    pub token: String,
    pub username: String,
}

impl Session {
    /// The same user with another token (a PAT, a revoked or a made-up one).
    pub fn with_token(&self, token: &str) -> Session {
        Session {
            token: token.to_string(),
            ..self.clone()
        }
    }
}

/// Variables of the statusd process that must never leak in from the test's own
/// environment, so every server starts from a known configuration.
const CONTROLLED_VARS: &[&str] = &[
    "PORT",
    "BIND_IP",
    "ROOT_URL",
    "DATABASE_URL",
    "NATS_URL",
    "CLUSTER_SECRET",
    "CLUSTER_SECRET_PREVIOUS",
    "NATS_CREDS",
    "NATS_NKEY_FILE",
    "NATS_TLS_CA",
    "NATS_TLS_CERT",
    "NATS_TLS_KEY",
    "ADMIN_USERNAME",
    "ADMIN_PASS",
    "ADMIN_EMAIL",
    "ADMIN_NAME",
    "HTTP_FORWARDED_COUNT",
    "METRICS_TOKEN",
    "METRICS_BIND",
    "RUST_LOG",
    "PRESENCE_STALE_SECS",
    "DDP_PING_SECS",
    "LOGIN_CONCURRENCY",
    "MAX_CONNECTIONS_PER_IP",
    "ADMIN_PASS_FILE",
    "LOG_FORMAT",
    "ACCESS_LOG",
];

/// How to start a server beyond the defaults (see [`Server::start_opts`]).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra environment variables, applied after the defaults so they win.
    pub env: Vec<(String, String)>,
    /// Default variables to leave out entirely, e.g. `ADMIN_USERNAME` or `DATABASE_URL`.
    pub unset: Vec<String>,
    /// Command-line arguments.
    pub args: Vec<String>,
    /// `RLIMIT_NOFILE` of the process (soft, hard), set before it starts.
    pub nofile: Option<(u64, u64)>,
}

impl Options {
    pub fn env(mut self, key: &str, value: &str) -> Options {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn unset(mut self, key: &str) -> Options {
        self.unset.push(key.to_string());
        self
    }

    pub fn arg(mut self, arg: &str) -> Options {
        self.args.push(arg.to_string());
        self
    }

    /// Starts the process with this open-file limit (soft, hard).
    pub fn nofile(mut self, soft: u64, hard: u64) -> Options {
        self.nofile = Some((soft, hard));
        self
    }
}

/// A running statusd. Killed (and its temporary directory removed) on drop.
pub struct Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    database_url: String,
    opts: Options,
    http: reqwest::Client,
    admin: tokio::sync::OnceCell<Session>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A port nobody listens on right now (bind port 0, read it, let it go).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "statusd_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos
    )
}

/// The `DATABASE_URL` for a server whose data lives in `dir`.
fn database_url(dir: &Path, name: &str) -> String {
    match std::env::var("STATUSD_TEST_DATABASE_URL") {
        Ok(template) if !template.trim().is_empty() => template
            .replace("{dir}", &dir.display().to_string())
            .replace("{name}", name),
        _ => format!("sqlite://{}/statusd.db", dir.display()),
    }
}

/// Hook for non-SQLite backends: make `url` usable before the first start. SQLite
/// needs nothing (statusd creates the file); for `postgres://` URLs this creates the
/// (empty) database the URL names, and [`Server`]'s drop drops it again.
pub fn prepare_database(url: &str) {
    if let Some((admin, name)) = postgres_parts(url) {
        postgres_admin(&admin, &format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
    }
}

/// Drops the database [`prepare_database`] created (and whoever is still connected).
fn drop_database(url: &str) {
    if let Some((admin, name)) = postgres_parts(url) {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if let Err(e) = postgres_admin(&admin, &sql) {
            eprintln!("warning: could not drop the test database {name}: {e}");
        }
    }
}

/// For a `postgres://` URL: the maintenance database's URL (`STATUSD_TEST_PG_ADMIN_URL`,
/// or the same server's `postgres` database) and the database name.
fn postgres_parts(url: &str) -> Option<(String, String)> {
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        return None;
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3)?;
    let slash = base[scheme_end..].find('/').map(|i| scheme_end + i)?;
    let name = base[slash + 1..].to_string();
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "STATUSD_TEST_DATABASE_URL must name a database of letters, digits and _: {url}"
    );
    let admin = match std::env::var("STATUSD_TEST_PG_ADMIN_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => match query {
            Some(q) => format!("{}/postgres?{q}", &base[..slash]),
            None => format!("{}/postgres", &base[..slash]),
        },
    };
    Some((admin, name))
}

/// Runs `sql` on the maintenance database, on a thread of its own (the synchronous
/// client must not run on a tokio worker).
fn postgres_admin(admin_url: &str, sql: &str) -> Result<(), String> {
    let (admin_url, sql) = (admin_url.to_string(), sql.to_string());
    std::thread::spawn(move || -> Result<(), String> {
        let mut c = postgres::Client::connect(&admin_url, postgres::NoTls)
            .map_err(|e| format!("connecting to {admin_url}: {e}"))?;
        c.batch_execute(&sql).map_err(|e| format!("{sql}: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the PostgreSQL admin thread panicked".into()))
}

fn new_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the HTTP client")
}

fn read_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::from("(no log file)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

impl Server {
    /// A fresh server with the default test configuration (REST rate limiter off).
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// A fresh server with extra environment variables, applied after the defaults so
    /// they win: e.g. `("OVERWRITE_SETTING_API_Enable_Rate_Limiter", "true")` turns the
    /// REST rate limiter back on (it is off by default so tests do not flake).
    pub async fn start_with(env: &[(&str, &str)]) -> Server {
        let mut opts = Options::default();
        for (k, v) in env {
            opts = opts.env(k, v);
        }
        Server::start_opts(opts).await
    }

    /// A fresh server with extra environment, default variables left out and
    /// command-line arguments (see [`Options`]).
    pub async fn start_opts(opts: Options) -> Server {
        let mut srv = Server::prepare(opts);
        srv.start_again().await;
        srv
    }

    /// A server that is set up (temporary directory, port, database) but not spawned.
    fn prepare(opts: Options) -> Server {
        let name = unique_name();
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        let database_url = database_url(&dir, &name);
        prepare_database(&database_url);
        Server {
            child: None,
            port: free_port(),
            log_path: dir.join("statusd.log"),
            dir,
            database_url,
            opts,
            http: new_http_client(),
            admin: tokio::sync::OnceCell::new(),
        }
    }

    /// Runs the binary with these options until it exits by itself (a start that must
    /// fail, `--help`), at most `timeout`. Returns the exit status (None: it was still
    /// running and got killed) and everything it printed.
    pub async fn run_to_exit(opts: Options, timeout: Duration) -> (Option<ExitStatus>, String) {
        let srv = Server::prepare(opts);
        let mut child = srv.spawn();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(exit) = child.try_wait().expect("wait for statusd") {
                break Some(exit);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        (status, srv.log())
    }

    /// Spawns the binary with these options and sends it SIGTERM without waiting for it
    /// to answer: `after` the spawn, or (`after_output`) as soon as it has printed
    /// something. Then waits at most `timeout` for it to exit; returns the exit status
    /// (None: it was still running and got killed) and everything it printed.
    pub async fn term_during_start(
        opts: Options,
        after: Duration,
        after_output: bool,
        timeout: Duration,
    ) -> (Option<ExitStatus>, String) {
        let srv = Server::prepare(opts);
        let mut child = srv.spawn();
        let sent_at = Instant::now() + after;
        let deadline = Instant::now() + timeout;
        while Instant::now() < sent_at
            || (after_output && srv.log().is_empty() && Instant::now() < deadline)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        // Directly, not through `kill(1)`: spawning it would take milliseconds.
        // SAFETY: kill(2) with the pid of our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = loop {
            if let Some(exit) = child.try_wait().expect("wait for statusd") {
                break Some(exit);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        (status, srv.log())
    }

    /// The options the next `start_again` uses (change env for a restart).
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.opts
    }

    /// Spawns the binary again on the same data directory (after `stop` or `kill9`),
    /// on the same port when it is still free, and waits until it answers.
    pub async fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "start_again: the server is still running"
        );
        let mut last_log = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                // The port was taken meanwhile (another test, a client socket).
                self.port = free_port();
            }
            let child = self.spawn();
            self.child = Some(child);
            match self.wait_ready().await {
                Ok(()) => return,
                Err(log) => {
                    if let Some(mut c) = self.child.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    let port_problem = log.contains("cannot listen");
                    last_log = log;
                    if !port_problem {
                        break;
                    }
                }
            }
        }
        panic!(
            "statusd did not start (log {}):\n{last_log}",
            self.log_path.display()
        );
    }

    fn spawn(&self) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the server log");
        let err = log.try_clone().expect("clone the log handle");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_statusd"));
        for var in CONTROLLED_VARS {
            cmd.env_remove(var);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("OVERWRITE_SETTING_") {
                cmd.env_remove(k);
            }
        }
        let port = self.port.to_string();
        let defaults = [
            ("PORT", port.as_str()),
            ("BIND_IP", "127.0.0.1"),
            ("DATABASE_URL", self.database_url.as_str()),
            ("ADMIN_USERNAME", ADMIN_USER),
            ("ADMIN_PASS", ADMIN_PASS),
            ("ADMIN_EMAIL", ADMIN_EMAIL),
            ("RUST_LOG", "warn"),
            ("OVERWRITE_SETTING_API_Enable_Rate_Limiter", "false"),
        ];
        for (k, v) in defaults {
            if !self.opts.unset.iter().any(|u| u == k) {
                cmd.env(k, v);
            }
        }
        cmd.current_dir(&self.dir)
            .envs(self.opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(&self.opts.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        if let Some((soft, hard)) = self.opts.nofile {
            use std::os::unix::process::CommandExt;
            let lim = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: setrlimit is async-signal-safe and touches only this struct.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        cmd.spawn().expect("spawn the statusd binary")
    }

    /// Polls `GET /api/info` until it answers 200. On failure returns the log.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = format!("{}/api/info", self.base_url());
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(exit)) = child.try_wait() {
                    return Err(format!(
                        "statusd exited during start-up ({exit}):\n{}",
                        read_tail(&self.log_path, 64 * 1024)
                    ));
                }
            }
            if let Ok(resp) = self.http.get(&url).send().await {
                if resp.status() == StatusCode::OK {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "GET /api/info did not answer 200 within {START_TIMEOUT:?}:\n{}",
                    read_tail(&self.log_path, 64 * 1024)
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub async fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("stop: the server is not running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(exit) = child.try_wait().expect("wait for statusd") {
                self.http = new_http_client();
                return exit;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "statusd did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: the process dies at once, with no chance to flush anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: the server is not running");
        child.kill().expect("SIGKILL statusd");
        let _ = child.wait();
        self.http = new_http_client();
    }

    /// Graceful stop (SIGTERM, must exit 0) and start again on the same data.
    pub async fn restart(&mut self) {
        let exit = self.stop().await;
        assert!(
            exit.success(),
            "statusd exited with {exit} after SIGTERM; log:\n{}",
            self.log()
        );
        self.start_again().await;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/websocket", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Everything the server(s) logged so far.
    pub fn log(&self) -> String {
        read_tail(&self.log_path, u64::MAX)
    }

    /// `/api/...` paths are used as given; anything else is a route under `/api/v1/`.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{}", self.base_url(), path)
        } else {
            format!("{}/api/v1/{}", self.base_url(), path)
        }
    }

    // ---------------------------------------------------------------- client

    /// Sends a request and returns status, headers and the raw body, unchecked.
    pub async fn request_text(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(s) = session {
            req = req
                .header("X-User-Id", &s.user_id)
                .header("X-Auth-Token", &s.token);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body failed: {e}"));
        (status, headers, text)
    }

    /// Sends a request and checks the answer is contract-shaped JSON (see module doc).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let (status, headers, text) = self
            .request_text(method.clone(), path, session, headers, body)
            .await;
        let what = format!("{method} {path} -> {status}");
        assert!(
            !status.is_server_error(),
            "{what}: client input must never yield a 5xx; body: {text}"
        );
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {text:?}"));
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "{what}: Content-Type is {ct:?}, want application/json; body: {text}"
        );
        let cc = headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            cc.contains("no-store"),
            "{what}: Cache-Control is {cc:?}, want no-store; body: {text}"
        );
        (status, headers, body)
    }

    pub async fn get(&self, path: &str, session: Option<&Session>) -> Reply {
        self.request(Method::GET, path, session, &[], None).await
    }

    pub async fn post_json(&self, path: &str, session: Option<&Session>, body: Value) -> Reply {
        let bytes = serde_json::to_vec(&body).expect("serialise the body");
        self.request(
            Method::POST,
            path,
            session,
            &[("Content-Type", "application/json")],
            Some(bytes),
        )
        .await
    }

    /// A POST with exactly these headers and body bytes (no session headers added).
    pub async fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        self.request(Method::POST, path, None, headers, Some(body.into()))
            .await
    }

    // --------------------------------------------------------------- helpers

    /// `POST /api/v1/login {user, password}`; panics unless it answers 200.
    pub async fn login(&self, user: &str, pass: &str) -> Session {
        let (status, _, body) = self
            .post_json("login", None, json!({"user": user, "password": pass}))
            .await;
        assert_eq!(status, StatusCode::OK, "login as {user}: {body}");
        session_from_login(&body)
    }

    /// The bootstrap admin's session (logged in once per server, then reused).
    pub async fn admin(&self) -> Session {
        self.admin
            .get_or_init(|| self.login(ADMIN_USER, ADMIN_PASS))
            .await
            .clone()
    }

    /// The admin with a fresh personal access token instead of its login token (a PAT
    /// never expires, so tests of expiry and revocation use it to act meanwhile).
    pub async fn admin_pat(&self) -> Session {
        let admin = self.admin().await;
        let r = self
            .post_json(
                "users.generatePersonalAccessToken",
                Some(&admin),
                json!({"tokenName": "ops"}),
            )
            .await;
        assert_status(&r, 200);
        admin.with_token(r.2["token"].as_str().expect("a token"))
    }

    /// Creates a user through `users.create` (as the admin) without logging in;
    /// returns the new user's id. Email is `<username>@example.com`.
    pub async fn create_user_only(&self, username: &str, password: &str, roles: &[&str]) -> String {
        let admin = self.admin().await;
        let (status, _, body) = self
            .post_json(
                "users.create",
                Some(&admin),
                json!({
                    "username": username,
                    "name": format!("{username} Name"),
                    "email": format!("{username}@example.com"),
                    "password": password,
                    "roles": roles,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "users.create {username}: {body}");
        body["user"]["_id"]
            .as_str()
            .unwrap_or_else(|| panic!("users.create {username}: no user._id in {body}"))
            .to_string()
    }

    /// Creates a user with these roles and logs in as it.
    pub async fn create_user(&self, username: &str, password: &str, roles: &[&str]) -> Session {
        let id = self.create_user_only(username, password, roles).await;
        let s = self.login(username, password).await;
        assert_eq!(s.user_id, id, "login as {username} returned another user");
        s
    }

    /// `POST /api/v1/settings/<id> {"value": …}` as the admin; must answer 200.
    pub async fn set_setting(&self, id: &str, value: Value) {
        let admin = self.admin().await;
        let (status, _, body) = self
            .post_json(
                &format!("settings/{id}"),
                Some(&admin),
                json!({ "value": value }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "set setting {id}: {body}");
    }

    /// Runs `sql` on the server's store as another process would (an operator's tool,
    /// the admin CLI): the running server takes in outside changes within a fraction of a second
    /// (`src/external.rs`); on PostgreSQL the change is announced the way the admin
    /// commands announce theirs.
    pub fn edit_store(&self, sql: &str) {
        let (url, sql) = (self.database_url().to_string(), sql.to_string());
        std::thread::spawn(move || -> Result<(), String> {
            if let Some(path) = url.strip_prefix("sqlite://") {
                let c = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
                c.busy_timeout(Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                c.execute_batch(&sql).map_err(|e| e.to_string())
            } else {
                let mut c =
                    postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
                // The running servers LISTEN for admin commands' commits on this channel.
                c.batch_execute(&format!(
                    "BEGIN; {sql}; SELECT pg_notify('statusd_changed', 'test'); COMMIT"
                ))
                .map_err(|e| e.to_string())
            }
        })
        .join()
        .expect("the store thread panicked")
        .unwrap_or_else(|e| panic!("editing the store: {e}"));
    }

    /// Makes the login tokens of `session`'s user `days` older (`edit_store`) and waits
    /// until `session` is refused. How tests get a login token past
    /// `Accounts_LoginExpiration` without waiting for days.
    pub async fn age_login_tokens(&self, session: &Session, days: i64) {
        self.edit_store(&format!(
            "UPDATE tokens SET created_at = created_at - {} WHERE user_id = '{}' AND kind = 'login'",
            days * 86_400_000,
            session.user_id.replace('\'', "''")
        ));
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.get("me", Some(session)).await.0 != StatusCode::UNAUTHORIZED {
            assert!(
                Instant::now() < deadline,
                "the server did not take in the aged tokens"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /api/v1/permissions.update` for one permission as the admin; must answer 200.
    pub async fn set_permission(&self, id: &str, roles: &[&str]) {
        let admin = self.admin().await;
        let (status, _, body) = self
            .post_json(
                "permissions.update",
                Some(&admin),
                json!({"permissions": [{"_id": id, "roles": roles}]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "update permission {id}: {body}");
    }

    /// `POST users.setStatus` with `body` as `session`; returns the reply.
    pub async fn set_status(&self, session: &Session, body: Value) -> Reply {
        self.post_json("users.setStatus", Some(session), body).await
    }

    /// `GET users.getStatus?userId=<id>` as the admin; must answer 200.
    pub async fn status_of(&self, user_id: &str) -> Value {
        let admin = self.admin().await;
        let (status, _, body) = self
            .get(
                &format!("users.getStatus?userId={}", enc(user_id)),
                Some(&admin),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "users.getStatus {user_id}: {body}");
        body
    }

    /// The `user` object of `GET users.info?userId=<id>` as the admin (full view).
    pub async fn info_of(&self, user_id: &str) -> Value {
        let admin = self.admin().await;
        let (status, _, body) = self
            .get(&format!("users.info?userId={}", enc(user_id)), Some(&admin))
            .await;
        assert_eq!(status, StatusCode::OK, "users.info {user_id}: {body}");
        body["user"].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- statusd log ({}), last 16 KiB ----\n{}\n---- end of statusd log ----",
                self.log_path.display(),
                read_tail(&self.log_path, 16 * 1024)
            );
        }
        if std::env::var_os("STATUSD_TEST_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
            drop_database(&self.database_url);
        }
    }
}

/// The session in a `POST /api/v1/login` answer.
pub fn session_from_login(body: &Value) -> Session {
    let data = &body["data"];
    Session {
        user_id: data["userId"].as_str().expect("data.userId").to_string(),
        token: data["authToken"]
            .as_str()
            .expect("data.authToken")
            .to_string(),
        username: data["me"]["username"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Percent-encodes a query-string value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The lowercase hex SHA-256 of `s` (what a digest login sends as the password).
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// An RFC 3339 time `secs` seconds from now (negative: in the past), millisecond
/// precision, `Z` suffix, as clients send it.
pub fn iso_from_now(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn parse_time(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?} is not an RFC 3339 time: {e}"))
        .with_timezone(&chrono::Utc)
}

// ---------------------------------------------------------- contract bodies

/// CONTRACT §2: the 401 body for missing, unknown, expired or mismatched credentials.
pub fn body_401() -> Value {
    json!({
        "success": false,
        "error": "You must be logged in to do this.",
        "status": "error",
        "message": "You must be logged in to do this."
    })
}

/// CONTRACT §2: a refused permission.
pub fn body_403() -> Value {
    json!({"success": false, "error": "unauthorized"})
}

/// CONTRACT §2 (issue-15 correction): a route that declares its permission refused.
pub fn body_403_declared() -> Value {
    json!({"success": false, "error": "User does not have the permissions required for this action [error-unauthorized]"})
}

/// CONTRACT §2: a body of the wrong shape for users.setStatus.
pub fn body_match_error() -> Value {
    json!({
        "success": false,
        "error": "Match error: Failed Match.OneOf, Match.Maybe or Match.Optional validation"
    })
}

/// CONTRACT §2: a business error of `route`.
pub fn body_meteor(code: &str, reason: &str, route: &str) -> Value {
    json!({
        "success": false,
        "error": format!("{reason} [{code}]"),
        "errorType": code,
        "details": {"method": route}
    })
}

/// CONTRACT §2: an unknown route.
pub fn body_404() -> Value {
    json!({"success": false, "error": "Resource not found"})
}

/// CONTRACT §3: any bad credential at login.
pub fn body_login_failed() -> Value {
    json!({"status": "error", "error": "Unauthorized", "message": "Unauthorized", "success": false})
}

/// Asserts an answer's status code and exact JSON body, printing both on mismatch.
#[track_caller]
pub fn assert_reply(reply: &Reply, status: u16, body: Value) {
    assert_eq!(
        (reply.0.as_u16(), &reply.2),
        (status, &body),
        "unexpected answer (left: got, right: want)"
    );
}

/// Asserts only the status code, printing the body on mismatch.
#[track_caller]
pub fn assert_status(reply: &Reply, status: u16) {
    assert_eq!(
        reply.0.as_u16(),
        status,
        "unexpected status; body: {}",
        reply.2
    );
}

/// Asserts a 429 from the rate limiter: the exact contract body with some wait
/// 1..=`max_wait` seconds. Returns the wait.
#[track_caller]
pub fn assert_too_many(reply: &Reply, max_wait: u64) -> u64 {
    assert_eq!(reply.0.as_u16(), 429, "want 429; body: {}", reply.2);
    let error = reply.2["error"].as_str().unwrap_or_default();
    let prefix = "Error, too many requests. Please slow down. You must wait ";
    let suffix = " seconds before trying this endpoint again. [error-too-many-requests]";
    let n: u64 = error
        .strip_prefix(prefix)
        .and_then(|r| r.strip_suffix(suffix))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected 429 body: {}", reply.2));
    assert!(
        (1..=max_wait).contains(&n),
        "wait of {n} s out of range: {}",
        reply.2
    );
    assert_eq!(
        reply.2,
        json!({"success": false, "error": format!("{prefix}{n}{suffix}")}),
        "the 429 body has extra fields"
    );
    n
}

/// A header as an integer.
#[track_caller]
pub fn header_i64(headers: &HeaderMap, name: &str) -> i64 {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}: {headers:?}"))
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("header {name} is not an integer: {headers:?}"))
}

// ================================================================ websocket / DDP
//
// Added for the realtime tests (tests/ddp_*.rs): a small DDP client and helpers live
// in `ddp.rs`; nothing above depends on them.

pub mod ddp;
pub mod webhooks;
