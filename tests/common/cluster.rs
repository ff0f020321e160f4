//! Multi-instance test harness (cluster mode, issue 5): several `statusd` processes
//! sharing one fresh PostgreSQL database and one private NATS server. The NATS server
//! requires a user and password, and every instance gets the cluster secret
//! ([`CLUSTER_SECRET`]), as a production cluster must (docs/cluster.md).
//!
//! ```ignore
//! mod common;
//! #[path = "common/cluster.rs"]
//! mod cluster;
//! use cluster::Cluster;
//!
//! let mut c = Cluster::start(2, &[]).await;   // fresh database + private nats-server
//! let (a, b) = (&c[0], &c[1]);               // each its own port, same DB and NATS
//! c.nats.kill();                              // SIGKILL the private NATS...
//! c.nats.start_again().await;                 // ...and bring it back on the same port
//! c[0].kill9();                               // an instance dies without a goodbye
//! ```
//!
//! Everything is private to one test: the database (`statusd_test_<pid>_cl_<n>`, dropped
//! with `WITH (FORCE)` when the [`Db`] is dropped), the NATS server (its own port, so
//! killing and restarting it never disturbs another test) and the subject prefix.
//! Dropping a [`Cluster`] kills the servers first, then NATS, then drops the database.
//!
//! Knobs (environment of the test process):
//! - `STATUSD_TEST_PG_ADMIN_URL`: where to create and drop the databases, default
//!   `postgres://postgres@127.0.0.1:5432/postgres` (trust auth). Each database's URL is
//!   this one with the database name replaced.
//! - `STATUSD_TEST_NATS_SERVER`: the nats-server binary, default `/usr/sbin/nats-server`
//!   (or the first `nats-server` on `PATH` when that does not exist).

#![allow(dead_code)]

use std::fs::OpenOptions;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::ddp::Ddp;
use crate::common::{free_port, Options, Server, Session, StatusCode, Value};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The `CLUSTER_SECRET` of every test cluster (override it through `Cluster::start`'s
/// environment).
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef";

/// The NATS user every test NATS server requires.
pub const NATS_USER: &str = "nats-user-7f3a";

/// A name unique to this test process and call (letters, digits, `_`).
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

// ------------------------------------------------------------------- PostgreSQL

/// The maintenance database URL used to create and drop test databases.
pub fn pg_admin_url() -> String {
    match std::env::var("STATUSD_TEST_PG_ADMIN_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => "postgres://postgres@127.0.0.1:5432/postgres".to_string(),
    }
}

/// `url` with its database name replaced by `db` (query string kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// Runs `sql` on the maintenance database. The synchronous `postgres` client must not
/// run on a tokio worker thread, so this uses a thread of its own.
pub fn pg_admin_exec(sql: &str) -> Result<(), String> {
    let sql = sql.to_string();
    std::thread::spawn(move || -> Result<(), String> {
        let url = pg_admin_url();
        let mut c = postgres::Client::connect(&url, postgres::NoTls)
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        c.batch_execute(&sql).map_err(|e| format!("{sql}: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the PostgreSQL admin thread panicked".into()))
}

/// A fresh, empty PostgreSQL database, dropped (`WITH (FORCE)`) when this is dropped.
pub struct Db {
    pub name: String,
    pub url: String,
}

impl Db {
    pub fn create() -> Db {
        // `statusd_test_<pid>_…`: scripts/test.sh drops leftovers of dead test processes.
        let name = format!(
            "statusd_test_{}_cl_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        pg_admin_exec(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create the test database: {e}"));
        Db {
            url: with_database(&pg_admin_url(), &name),
            name,
        }
    }

    /// Runs `sql` (any number of statements, e.g. a `pg_dump` of INSERTs) on this
    /// database.
    pub fn exec(&self, sql: &str) {
        let (url, sql) = (self.url.clone(), sql.to_string());
        std::thread::spawn(move || -> Result<(), String> {
            let mut c = postgres::Client::connect(&url, postgres::NoTls)
                .map_err(|e| format!("connecting to {url}: {e}"))?;
            c.batch_execute(&sql).map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("the PostgreSQL thread panicked".into()))
        .unwrap_or_else(|e| panic!("running SQL on {}: {e}", self.name))
    }

    /// The first column of the first row of `sql` on this database, as a number.
    pub fn query_i64(&self, sql: &str) -> i64 {
        let (url, sql) = (self.url.clone(), sql.to_string());
        std::thread::spawn(move || -> Result<i64, String> {
            let mut c = postgres::Client::connect(&url, postgres::NoTls)
                .map_err(|e| format!("connecting to {url}: {e}"))?;
            let row = c.query_one(&sql, &[]).map_err(|e| format!("{sql}: {e}"))?;
            row.try_get(0).map_err(|e| format!("{sql}: {e}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the PostgreSQL thread panicked".into()))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The first column of every row of `sql` on this database, as text (NULLs left out).
    pub fn query_texts(&self, sql: &str) -> Vec<String> {
        let (url, sql) = (self.url.clone(), sql.to_string());
        std::thread::spawn(move || -> Result<Vec<String>, String> {
            let mut c = postgres::Client::connect(&url, postgres::NoTls)
                .map_err(|e| format!("connecting to {url}: {e}"))?;
            let rows = c.query(&sql, &[]).map_err(|e| format!("{sql}: {e}"))?;
            rows.iter()
                .map(|r| r.try_get::<_, Option<String>>(0))
                .filter_map(|v| v.transpose())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{sql}: {e}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the PostgreSQL thread panicked".into()))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Drops the database now, terminating every session on it (the servers using it
    /// keep running and must cope).
    pub fn drop_now(&self) {
        pg_admin_exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .unwrap_or_else(|e| panic!("cannot drop the test database: {e}"));
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = pg_admin_exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )) {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

// ------------------------------------------------------------------------- NATS

fn nats_binary() -> PathBuf {
    if let Ok(p) = std::env::var("STATUSD_TEST_NATS_SERVER") {
        if !p.trim().is_empty() {
            return PathBuf::from(p);
        }
    }
    let default = PathBuf::from("/usr/sbin/nats-server");
    if default.exists() {
        return default;
    }
    PathBuf::from("nats-server")
}

/// How long a nats-server may take to accept connections.
const NATS_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A private nats-server (a child process on a port of its own) that requires a user
/// and password, killed on drop.
pub struct Nats {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    password: String,
    /// The configuration after the `listen` line, when not the default user and
    /// password ([`Nats::start_with_config`]).
    config: Option<String>,
}

impl Nats {
    /// Starts a nats-server on a free port and waits until it accepts connections.
    pub async fn start() -> Nats {
        Nats::start_inner(None).await
    }

    /// Starts a nats-server whose configuration is `config` after the `listen` line
    /// this harness writes (e.g. an nkey user, operator mode, TLS), instead of the
    /// default user and password: [`Nats::url`] and [`Nats::client`] then do not apply.
    pub async fn start_with_config(config: &str) -> Nats {
        Nats::start_inner(Some(config.to_string())).await
    }

    async fn start_inner(config: Option<String>) -> Nats {
        let dir = std::env::temp_dir().join(unique("statusd_nats"));
        std::fs::create_dir_all(&dir).expect("create the NATS temporary directory");
        let mut nats = Nats {
            child: None,
            port: 0,
            dir,
            password: unique("Nats_Pass"),
            config,
        };
        let mut last = String::new();
        for _ in 0..3 {
            nats.port = free_port();
            match nats.spawn_and_wait().await {
                Ok(()) => return nats,
                Err(e) => last = e,
            }
        }
        panic!("could not start a private nats-server: {last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL with the user and password.
    pub fn url(&self) -> String {
        format!(
            "nats://{NATS_USER}:{}@127.0.0.1:{}",
            self.password, self.port
        )
    }

    /// `127.0.0.1:port`, without credentials.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// A client of this server, as any other program holding the NATS credentials (but
    /// not the cluster secret) could connect.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::ConnectOptions::with_user_and_password(
            NATS_USER.to_string(),
            self.password.clone(),
        )
        .connect(self.addr())
        .await
        .expect("connect to the test nats-server")
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// Everything the server logged so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL: the server vanishes at once; clients see their connection drop.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("nats: not running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same port (after [`Nats::kill`]).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "nats: still running");
        let deadline = Instant::now() + NATS_START_TIMEOUT;
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                // The port may linger for a moment; it is ours, so try again.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("nats-server restart on port {}: {e}; retrying", self.port);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("could not restart nats-server on port {}: {e}", self.port),
            }
        }
    }

    /// The server's configuration: this port, and a user and password required (or
    /// the configuration given to [`Nats::start_with_config`]).
    fn write_config(&self) -> PathBuf {
        let path = self.dir.join("nats-server.conf");
        let conf = match &self.config {
            Some(c) => format!("listen: 127.0.0.1:{}\n{c}\n", self.port),
            None => format!(
                "listen: 127.0.0.1:{}\nauthorization {{\n  user: {NATS_USER}\n  password: \"{}\"\n}}\n",
                self.port, self.password
            ),
        };
        std::fs::write(&path, conf).expect("write the NATS configuration");
        path
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let conf = self.write_config();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the NATS log");
        let err = log.try_clone().expect("clone the NATS log handle");
        let bin = nats_binary();
        let mut child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let deadline = Instant::now() + NATS_START_TIMEOUT;
        loop {
            if let Ok(Some(exit)) = child.try_wait() {
                return Err(format!("nats-server exited ({exit}):\n{}", self.log()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "nats-server did not listen within {NATS_START_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- nats-server log ----\n{}\n---- end of nats-server log ----",
                self.log()
            );
        }
        if std::env::var_os("STATUSD_TEST_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// PEM files of a throw-away certificate authority, a server certificate for
/// 127.0.0.1 and a client certificate, all made by `openssl` in `dir`.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    pub fn make(dir: &std::path::Path) -> TlsFiles {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec![
            "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
        ];
        ca.extend(ec);
        ca.extend([
            "-subj",
            "/CN=statusd test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca);
        for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let pem = format!("{name}.pem");
            let ext = format!("{name}.ext");
            std::fs::write(
                dir.join(&ext),
                format!(
                    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
                     keyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
                ),
            )
            .expect("write the extensions");
            let mut req = vec!["req", "-keyout", &key, "-out", &csr, "-subj"];
            let subj = format!("/CN=statusd test {name}");
            req.push(&subj);
            req.extend(ec);
            openssl(&req);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext,
            ]);
        }
        TlsFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

/// A NATS JWT (`alg: ed25519-nkey`) with these claims, signed by `issuer`.
pub fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": unique("jti").to_uppercase(),
        "iat": chrono::Utc::now().timestamp(),
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let claims = b64(claims.to_string().as_bytes());
    let signed = format!("{header}.{claims}");
    let sig = issuer.sign(signed.as_bytes()).expect("sign the JWT");
    format!("{signed}.{}", b64(&sig))
}

/// The text of a NATS credentials file (`NATS_CREDS`): a user JWT and its seed.
pub fn nats_creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

// ---------------------------------------------------------------------- cluster

/// N instances on one database and one NATS. Fields drop in order: servers, NATS,
/// database.
pub struct Cluster {
    pub servers: Vec<Server>,
    pub nats: Nats,
    pub db: Db,
    /// This cluster's `NATS_SUBJECT_PREFIX`.
    pub prefix: String,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts `n` instances with these extra environment variables (after the cluster's
    /// own: `NATS_URL` with credentials, `CLUSTER_SECRET`, …, so they win). The first starts
    /// alone (it creates the schema and the first admin), the others together. With
    /// `n` = 0 only the database and NATS are made (see `add`, `start_together`).
    pub async fn start(n: usize, env: &[(&str, &str)]) -> Cluster {
        Cluster::start_on(Nats::start().await, n, env).await
    }

    /// [`Cluster::start`] on a nats-server the test started (e.g. with
    /// [`Nats::start_with_config`]); `env` then names how to reach it (`NATS_URL`, …).
    pub async fn start_on(nats: Nats, n: usize, env: &[(&str, &str)]) -> Cluster {
        let db = Db::create();
        let mut c = Cluster {
            servers: Vec::new(),
            prefix: unique("statusd_test"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nats,
            db,
        };
        if n == 0 {
            return c;
        }
        let first = Server::start_opts(c.options()).await;
        c.servers.push(first);
        let rest =
            futures_util::future::join_all((1..n).map(|_| Server::start_opts(c.options()))).await;
        c.servers.extend(rest);
        c
    }

    /// Starts `n` instances at the same moment on the fresh database (nobody creates
    /// the schema or the first admin first).
    pub async fn start_together(n: usize, env: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster::start(0, env).await;
        let all = futures_util::future::join_all((0..n).map(|_| Server::start_opts(c.options())));
        c.servers.extend(all.await);
        c
    }

    /// The options of one more instance of this cluster.
    pub fn options(&self) -> Options {
        let mut o = Options::default()
            .env("DATABASE_URL", &self.db.url)
            .env("NATS_URL", &self.nats.url())
            .env("NATS_SUBJECT_PREFIX", &self.prefix)
            .env("CLUSTER_SECRET", CLUSTER_SECRET);
        for (k, v) in &self.env {
            o = o.env(k, v);
        }
        o
    }

    /// The subject the instances exchange their changes on.
    pub fn subject(&self) -> String {
        format!("{}.changes", self.prefix)
    }

    /// Starts one more instance; returns its index.
    pub async fn add(&mut self) -> usize {
        let s = Server::start_opts(self.options()).await;
        self.servers.push(s);
        self.servers.len() - 1
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }
}

impl std::ops::Index<usize> for Cluster {
    type Output = Server;
    fn index(&self, i: usize) -> &Server {
        &self.servers[i]
    }
}

impl std::ops::IndexMut<usize> for Cluster {
    fn index_mut(&mut self, i: usize) -> &mut Server {
        &mut self.servers[i]
    }
}

// ---------------------------------------------------------------------- helpers

/// The pid of the process listening on 127.0.0.1:`port` (via `ss`), e.g. a server to
/// pause with [`signal`].
pub fn pid_listening_on(port: u16) -> u32 {
    let out = Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .expect("run ss (iproute2) to find a listening process");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("pid=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no process listens on port {port}: {text:?}"))
}

/// Sends a signal (`"STOP"`, `"CONT"`, …) to `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// `GET /api/health`: status code and JSON body (a 503 is a legitimate answer here).
pub async fn health(srv: &Server) -> (u16, Value) {
    let (status, headers, text) = srv
        .request_text(reqwest::Method::GET, "/api/health", None, &[], None)
        .await;
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "/api/health -> {status}: Content-Type {ct:?}; body {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("/api/health -> {status}: not JSON ({e}): {text}"));
    (status.as_u16(), body)
}

/// Polls `/api/health` until `pred(code, body)` holds; returns the answer and how long
/// it took. Panics after `wait`.
pub async fn wait_health(
    srv: &Server,
    what: &str,
    wait: Duration,
    pred: impl Fn(u16, &Value) -> bool,
) -> (u16, Value, Duration) {
    let started = Instant::now();
    loop {
        let (code, body) = health(srv).await;
        if pred(code, &body) {
            return (code, body, started.elapsed());
        }
        if started.elapsed() >= wait {
            panic!("/api/health: not {what} after {wait:?}; last: {code} {body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `session`'s token is accepted by `srv` (`GET /api/v1/me` answers 200),
/// e.g. a token made on another instance; returns how long that took. Panics after
/// `wait`.
pub async fn wait_token_works(srv: &Server, session: &Session, wait: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _, body) = srv.get("me", Some(session)).await;
        if status == StatusCode::OK {
            return started.elapsed();
        }
        if started.elapsed() >= wait {
            panic!(
                "the token of {} is not accepted by {} after {wait:?}: {status} {body}",
                session.username,
                srv.base_url()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls until `srv` knows the user `user_id` (`users.getStatus` as the admin answers
/// 200), e.g. a user created on another instance. Panics after `wait`.
pub async fn wait_user_known(srv: &Server, user_id: &str, wait: Duration) -> Duration {
    let admin = srv.admin().await;
    let started = Instant::now();
    loop {
        let (status, _, body) = srv
            .get(
                &format!("users.getStatus?userId={}", crate::common::enc(user_id)),
                Some(&admin),
            )
            .await;
        if status == StatusCode::OK {
            return started.elapsed();
        }
        if started.elapsed() >= wait {
            panic!(
                "{} does not know user {user_id} after {wait:?}: {status} {body}",
                srv.base_url()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A DDP connection on `srv` logged in as the admin (resume token) and subscribed to
/// `stream-notify-logged` / `user-status` (sub id `s1`).
pub async fn status_watcher(srv: &Server) -> Ddp {
    let admin = srv.admin().await;
    let mut c = Ddp::connect_resume(srv, &admin.token).await;
    c.sub_user_status("s1").await;
    c
}

/// Drains every watcher until none of them has received anything for `quiet`.
pub async fn settle(watchers: &mut [&mut Ddp], quiet: Duration) {
    loop {
        let mut any = false;
        for w in watchers.iter_mut() {
            if !w.drain_changed(quiet).await.is_empty() {
                any = true;
            }
        }
        if !any {
            return;
        }
    }
}
