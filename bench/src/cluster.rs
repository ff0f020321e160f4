//! Phase 6, cluster mode (issue 5): two release-build instances, A and B, on a fresh
//! PostgreSQL database and the NATS at `--nats-url` (a subject prefix of this run's
//! own). Measures
//!
//! * cross-instance delivery: a DDP subscriber on B (`stream-notify-logged`
//!   `user-status`), `users.setStatus` on A, one change at a time; the time from just
//!   before the request is sent to the frame read on B (commit on A, NATS hop, apply on
//!   B, websocket), p50 / p99 / max;
//! * setStatus on PostgreSQL: the closed-loop load of phase 1 (same clients, seconds,
//!   users and requests) against A, then SIGKILL of A and a check that every
//!   acknowledged write is in the database.
//!
//! The users are written into the database by the fixture (as phase 1 does for SQLite)
//! after A created the schema. The database is dropped at the end.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::fixture::{self, BenchUser};
use crate::http::{self, new_hist, Auth, Client, LoadResult};
use crate::server::{self, Server, ServerSpec};
use crate::{set_status_load, ws, Args, Report, STATUSES};

/// A PostgreSQL database of this run, dropped (with its sessions) on drop.
pub struct PgDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

/// Runs `f` with a plain PostgreSQL client on a thread of its own (the synchronous
/// client must not run on a thread of a tokio runtime).
pub async fn with_pg<R: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut postgres::Client) -> anyhow::Result<R> + Send + 'static,
) -> anyhow::Result<R> {
    let url = url.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Not spawn_blocking: its threads belong to the runtime, and the client starts one.
    std::thread::spawn(move || {
        let r = postgres::Client::connect(&url, postgres::NoTls)
            .with_context(|| format!("connecting to {url}"))
            .and_then(|mut c| f(&mut c));
        let _ = tx.send(r);
    });
    rx.await.context("the PostgreSQL thread panicked")?
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    if query.is_empty() {
        format!("{root}/{db}")
    } else {
        format!("{root}/{db}?{query}")
    }
}

impl PgDb {
    /// Creates `statusd_bench_<pid>`, after dropping those of bench runs that died.
    pub async fn create(admin_url: &str) -> anyhow::Result<PgDb> {
        let name = format!("statusd_bench_{}", std::process::id());
        let create = format!("CREATE DATABASE {name}");
        with_pg(admin_url, move |c| {
            let rows = c.query(
                "SELECT datname FROM pg_database WHERE datname ~ '^statusd_bench_[0-9]+$'",
                &[],
            )?;
            for row in rows {
                let old: String = row.try_get(0)?;
                let pid = old.trim_start_matches("statusd_bench_");
                if pid == std::process::id().to_string()
                    || !std::path::Path::new(&format!("/proc/{pid}")).exists()
                {
                    c.batch_execute(&format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)"))?;
                }
            }
            Ok(c.batch_execute(&create)?)
        })
        .await?;
        Ok(PgDb {
            admin_url: admin_url.to_string(),
            url: with_database(admin_url, &name),
            name,
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (url, sql) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = c.batch_execute(&sql);
            }
        })
        .join();
    }
}

/// Writes `count` users (no tokens: the admin sets their statuses) into the PostgreSQL
/// database of stopped servers, with the columns of `src/store/postgres/schema.rs`.
async fn write_users(url: &str, count: usize) -> anyhow::Result<Vec<BenchUser>> {
    let hash = bcrypt::hash(fixture::sha256_hex(fixture::USER_PASS), 10)?;
    with_pg(url, move |c| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let mut tx = c.transaction()?;
        let ins = tx
            .prepare(
                "INSERT INTO users (id, username, username_lower, name, emails, password_hash,
                    roles, active, kind, status, status_default, status_connection, status_text,
                    status_source, status_expires_at, previous_state, utc_offset, created_at,
                    updated_at, last_login)
                 VALUES ($1, $2, $2, $3, $4, $5, '[\"user\"]', true, 'user', 'offline', 'online',
                    'offline', '', NULL, NULL, NULL, 0, $6, $6, NULL)",
            )
            .context("the users table no longer has the columns the fixture writes")?;
        let mut users = Vec::with_capacity(count);
        for i in 0..count {
            let u = BenchUser {
                id: fixture::fixture_id(i),
                username: fixture::username(i),
                token: String::new(),
            };
            let emails = format!(
                r#"[{{"address":"{}@bench.local","verified":false}}]"#,
                u.username
            );
            let name = format!("Bench User {i}");
            tx.execute(&ins, &[&u.id, &u.username, &name, &emails, &hash, &now])?;
            users.push(u);
        }
        tx.commit()?;
        Ok(users)
    })
    .await
}

/// Is something listening at `url`'s host:port (`nats://host:port`)?
pub async fn reachable(url: &str) -> bool {
    let hostport = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_string();
    tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(hostport),
    )
    .await
    .is_ok_and(|c| c.is_ok())
}

/// Polls until `auth` works on `addr` (a login token made on another instance).
async fn wait_token(addr: std::net::SocketAddr, auth: &Auth) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut c = Client::connect(addr).await?;
    loop {
        let (st, _) = c.call(http::get("/api/v1/me", Some(auth))).await?;
        if st.is_success() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("the admin's token made on A is not accepted by B after 10 s: {st}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn cluster(
    args: &Args,
    bin: &std::path::Path,
    work: &std::path::Path,
    r: &mut Report,
) -> anyhow::Result<()> {
    r.say(format!(
        "\n## 6. cluster: two instances on PostgreSQL + NATS ({})",
        args.nats_url
    ));
    let services_up = reachable(&args.pg_admin_url).await && reachable(&args.nats_url).await;
    // The smoke run (CI, where scripts/test.sh starts both) fails instead.
    if !services_up && !args.smoke {
        r.say("    SKIPPED: PostgreSQL or NATS is not reachable (--pg-admin-url, --nats-url)");
        r.fig("cluster", json!("skipped"));
        return Ok(());
    }
    let db = PgDb::create(&args.pg_admin_url).await?;
    let prefix = format!("statusd_bench_{}_{}", std::process::id(), ws::now_micros());
    let spec = |name: &str| {
        ServerSpec::cluster(
            bin.to_path_buf(),
            &db.url,
            &args.nats_url,
            &prefix,
            work.join("unused.db"),
            work.join(format!("server-cluster-{name}.log")),
        )
    };
    let (spec_a, spec_b) = (spec("a"), spec("b"));

    // The schema and the admin, then the users, then both instances.
    Server::start(&spec_a).await?.stop().await?;
    let t = Instant::now();
    let users = std::sync::Arc::new(write_users(&db.url, args.users).await?);
    r.say(format!(
        "    database {} with {} users (fixture, {:.2} s)",
        db.name,
        users.len(),
        t.elapsed().as_secs_f64()
    ));
    let (a, b) = tokio::try_join!(Server::start(&spec_a), Server::start(&spec_b))?;
    r.say(format!(
        "    start-up: A {:.0} ms, B {:.0} ms",
        a.startup.as_secs_f64() * 1000.0,
        b.startup.as_secs_f64() * 1000.0
    ));
    let mut ca = Client::connect(a.addr).await?;
    let admin = fixture::log_in(&mut ca, server::ADMIN_USER, server::ADMIN_PASS).await?;
    let token_lag = wait_token(b.addr, &admin).await?;
    r.say(format!(
        "    a login token made on A worked on B after {:.1} ms",
        token_lag.as_secs_f64() * 1000.0
    ));

    // ---- cross-instance delivery
    let mut sub = ws::connect_login(b.addr, &admin.token).await?;
    sub.send(Message::text(
        json!({"msg": "sub", "id": "s", "name": "stream-notify-logged",
               "params": ["user-status", false]})
        .to_string(),
    ))
    .await?;
    ws::read_until(&mut sub, r#""msg":"ready""#).await?;
    let samples = args.cluster_samples;
    let mut hist = new_hist();
    let mut errors = 0u64;
    for i in 0..samples {
        let user = &users[i % users.len()];
        let mark = format!("cl|{i}|");
        let body = format!(
            r#"{{"userId":"{}","status":"{}","message":"{mark}"}}"#,
            user.id,
            STATUSES[i % 3]
        );
        let sent = Instant::now();
        let (answer, frame) = tokio::join!(
            ca.call(http::post_raw(
                "/api/v1/users.setStatus",
                Some(&admin),
                body
            )),
            async {
                ws::read_until(&mut sub, &mark).await?;
                anyhow::Ok(sent.elapsed())
            }
        );
        match answer {
            Ok((st, _)) if st.is_success() => {}
            Ok((st, b)) => bail!("setStatus on A: {st} {}", String::from_utf8_lossy(&b)),
            Err(e) => bail!("setStatus on A: {e:#}"),
        }
        match frame {
            Ok(took) => {
                hist.record(took.as_micros().max(1) as u64)?;
            }
            Err(e) => {
                errors += 1;
                r.say(format!("      error: change {i} did not reach B: {e:#}"));
                break;
            }
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    r.say(format!(
        "    delivery, setStatus on A -> frame on B's subscriber, {} changes one at a time: \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        hist.len(),
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0
    ));
    r.fig(
        "cluster_delivery",
        json!({"samples": hist.len(), "p50_ms": ms(0.5), "p99_ms": ms(0.99),
               "max_ms": hist.max() as f64 / 1000.0}),
    );
    r.errors("changes that did not reach B", errors);
    drop(sub);

    // ---- setStatus throughput on PostgreSQL, as in phase 1
    // The load runner reads the CPU time of this server (both started at once).
    server::CURRENT_PID.store(a.pid(), std::sync::atomic::Ordering::Relaxed);
    let set: LoadResult = set_status_load(
        args,
        a.addr,
        &admin,
        &users,
        "POST users.setStatus (PostgreSQL, instance A of 2)",
        args.write_secs,
    )
    .await?;
    r.load("cluster_set_status", &set);
    a.kill()?;
    if set.errors == 0 {
        let lost = check_durable(&db.url, &users, args.clients, &set).await?;
        r.say(format!(
            "    after SIGKILL of A: {} users checked in PostgreSQL, {lost} acknowledged writes missing",
            users.len()
        ));
        r.errors("acknowledged writes missing after SIGKILL", lost);
    }
    b.stop().await?;
    Ok(())
}

/// Each user's last acknowledged setStatus (see `crate::check_durable`) in PostgreSQL.
async fn check_durable(
    url: &str,
    users: &std::sync::Arc<Vec<BenchUser>>,
    clients: usize,
    set: &LoadResult,
) -> anyhow::Result<u64> {
    let (users, per_worker) = (users.clone(), set.per_worker.clone());
    with_pg(url, move |c| {
        let stmt = c.prepare("SELECT status_text, status_default FROM users WHERE id = $1")?;
        let mut lost = 0;
        for (w, &sent) in per_worker.iter().enumerate() {
            let owned = users.len().saturating_sub(w).div_ceil(clients).max(1) as u64;
            for i in sent.saturating_sub(owned)..sent {
                let u = &users[(w + clients * (i % owned) as usize) % users.len()];
                let row = c.query_one(&stmt, &[&u.id])?;
                let (text, status): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                if text != format!("m{w}.{i}") || status != STATUSES[(i % 3) as usize] {
                    lost += 1;
                }
            }
        }
        Ok(lost)
    })
    .await
}

/// Gives the fixture's users records like real ones: three roles, a bio and a nickname,
/// some preferences (what a user record carries besides its status).
async fn realistic_records(url: &str) -> anyhow::Result<()> {
    with_pg(url, |c| {
        c.batch_execute(
            r#"UPDATE users SET
                roles = '["user","bench-team","bench-oncall"]',
                bio = 'Works on the bench team; ask about load tests.',
                nickname = 'bench',
                preferences = '{"language":"en","enableAutoAway":true,"idleTimeLimit":300,
                    "desktopNotifications":"mentions","emailNotificationMode":"mentions",
                    "highlights":["bench","statusd"],"useEmojis":true,"sidebarViewMode":"medium"}'
              WHERE roles NOT LIKE '%"admin"%'"#,
        )?;
        Ok(())
    })
    .await
}

/// What a plain NATS subscriber to the run's subject heard: messages, their bytes as
/// published (sealed), and the changes of users in them by form.
#[derive(Default)]
struct Tap {
    messages: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    whole: std::sync::atomic::AtomicU64,
    parts: std::sync::atomic::AtomicU64,
}

impl Tap {
    fn read(&self) -> [u64; 4] {
        use std::sync::atomic::Ordering::Relaxed;
        [
            self.messages.load(Relaxed),
            self.bytes.load(Relaxed),
            self.whole.load(Relaxed),
            self.parts.load(Relaxed),
        ]
    }
}

/// Subscribes to `subject` on the NATS server at `url` with the plain text protocol (no
/// client library: `INFO`, `CONNECT`, `SUB`, `MSG`, `PING`/`PONG`) and counts into the
/// returned `Tap` until the bench ends.
async fn nats_tap(url: &str, subject: &str) -> anyhow::Result<std::sync::Arc<Tap>> {
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let hostport = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let stream = tokio::net::TcpStream::connect(&hostport)
        .await
        .with_context(|| format!("NATS at {hostport}"))?;
    let (read, mut write) = stream.into_split();
    let mut read = tokio::io::BufReader::new(read);
    let mut line = String::new();
    read.read_line(&mut line).await?;
    if !line.starts_with("INFO") {
        bail!("NATS said {line:?} first");
    }
    write
        .write_all(
            format!(
                "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {subject} 1\r\nPING\r\n"
            )
            .as_bytes(),
        )
        .await?;
    line.clear();
    read.read_line(&mut line).await?;
    if !line.starts_with("PONG") {
        bail!("NATS answered {line:?} to CONNECT/SUB/PING");
    }
    let tap = std::sync::Arc::new(Tap::default());
    let counts = tap.clone();
    tokio::spawn(async move {
        let count = |hay: &[u8], needle: &[u8]| {
            hay.windows(needle.len()).filter(|w| *w == needle).count() as u64
        };
        loop {
            let mut line = String::new();
            match read.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line.starts_with("PING") {
                if write.write_all(b"PONG\r\n").await.is_err() {
                    return;
                }
                continue;
            }
            let Some(len) = line
                .strip_prefix("MSG ")
                .and_then(|m| m.split_whitespace().last())
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let mut payload = vec![0u8; len + 2];
            if read.read_exact(&mut payload).await.is_err() {
                return;
            }
            payload.truncate(len);
            counts.messages.fetch_add(1, Relaxed);
            counts.bytes.fetch_add(len as u64, Relaxed);
            counts
                .whole
                .fetch_add(count(&payload, br#"{"User":["#), Relaxed);
            counts
                .parts
                .fetch_add(count(&payload, br#"{"Status":["#), Relaxed);
        }
    });
    Ok(tap)
}

/// The sample `series` (no labels) on `addr`'s /metrics.
async fn metric(addr: std::net::SocketAddr, series: &str) -> anyhow::Result<f64> {
    let mut c = Client::connect(addr).await?;
    let (_, body) = c.call(http::get("/metrics", None)).await?;
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .with_context(|| format!("{series} not in /metrics"))
}

/// Phase `cluster-apply` (issue 20, the coefficient c_apply of docs/scaling.md): what
/// an instance spends on a change another instance made. Two instances on PostgreSQL +
/// NATS; B has no connection at all; A takes `users.setStatus` at `--apply-rate` per
/// second for `--apply-secs` (open loop, users with realistic records, each change a
/// real one). Reported: B's CPU (utime + stime from /proc) per change it received, its
/// idle CPU over as long subtracted; and what a plain subscriber to the run's subject
/// heard: bytes per message and per change, whole records against status parts.
pub async fn cluster_apply(
    args: &Args,
    bin: &std::path::Path,
    work: &std::path::Path,
    r: &mut Report,
) -> anyhow::Result<()> {
    let (rate, secs) = (args.apply_rate.max(1), args.apply_secs.max(1));
    r.say(format!(
        "\n## cluster-apply: what instance B spends on changes made on A ({rate}/s for {secs} s, {})",
        bin.display()
    ));
    if !(reachable(&args.pg_admin_url).await && reachable(&args.nats_url).await) {
        if args.smoke {
            bail!("PostgreSQL or NATS is not reachable");
        }
        r.say("    SKIPPED: PostgreSQL or NATS is not reachable (--pg-admin-url, --nats-url)");
        r.fig("cluster_apply", json!("skipped"));
        return Ok(());
    }
    let db = PgDb::create(&args.pg_admin_url).await?;
    let prefix = format!("statusd_bench_{}_{}", std::process::id(), ws::now_micros());
    let spec = |name: &str| {
        ServerSpec::cluster(
            bin.to_path_buf(),
            &db.url,
            &args.nats_url,
            &prefix,
            work.join("unused.db"),
            work.join(format!("server-cluster-apply-{name}.log")),
        )
    };
    let (spec_a, spec_b) = (spec("a"), spec("b"));
    Server::start(&spec_a).await?.stop().await?;
    let users = write_users(&db.url, args.apply_users.max(1)).await?;
    realistic_records(&db.url).await?;
    let tap = nats_tap(&args.nats_url, &format!("{prefix}.changes")).await?;
    let (a, b) = tokio::try_join!(Server::start(&spec_a), Server::start(&spec_b))?;
    let mut ca = Client::connect(a.addr).await?;
    let admin = fixture::log_in(&mut ca, server::ADMIN_USER, server::ADMIN_PASS).await?;
    wait_token(b.addr, &admin).await?;
    const RECEIVED: &str = "statusd_cluster_received_user_changes_total";

    // B idle, as long as the load will run: what it spends on nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle0 = b.cpu()?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let idle1 = b.cpu()?;
    let idle_per_sec = (idle1.secs - idle0.secs) / idle1.at.duration_since(idle0.at).as_secs_f64();

    let tap0 = tap.read();
    let got0 = metric(b.addr, RECEIVED).await?;
    let (b0, a0) = (b.cpu()?, a.cpu()?);
    // Paced: `clients` connections, each at its share of the rate. With one (the
    // default) a batch holds one change and so does each message, whatever the load: the
    // two wire forms are compared at the same batching (with more clients, how many
    // changes share a message depends on how busy the machine is, and the per-message
    // cost B pays, a large part of the total, with it).
    let clients = args.apply_clients.clamp(1, rate as usize);
    let per_client = Duration::from_secs_f64(clients as f64 / rate as f64);
    let total = rate * secs;
    let users = std::sync::Arc::new(users);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..clients {
        let (users, admin, addr) = (users.clone(), admin.clone(), a.addr);
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut next = started + per_client.mul_f64(w as f64 / clients as f64);
            let (mut sent, mut failed) = (0u64, 0u64);
            let mut i = w as u64;
            while i < total {
                tokio::time::sleep_until(next.into()).await;
                next += per_client;
                let u = &users[(i as usize) % users.len()];
                let body = format!(
                    r#"{{"userId":"{}","status":"{}","message":"apply {i}"}}"#,
                    u.id,
                    STATUSES[(i % 3) as usize]
                );
                match c
                    .call(http::post_raw(
                        "/api/v1/users.setStatus",
                        Some(&admin),
                        body,
                    ))
                    .await
                {
                    Ok((st, _)) if st.is_success() => sent += 1,
                    other => {
                        if failed == 0 {
                            let why = match other {
                                Ok((st, b)) => format!("{st} {}", String::from_utf8_lossy(&b)),
                                Err(e) => format!("{e:#}"),
                            };
                            eprintln!("cluster-apply: setStatus on A failed: {why}");
                        }
                        failed += 1
                    }
                }
                i += clients as u64;
            }
            anyhow::Ok((sent, failed))
        }));
    }
    let (mut sent, mut failed) = (0u64, 0u64);
    for t in tasks {
        let (s, f) = t.await??;
        sent += s;
        failed += f;
    }
    let wall = started.elapsed().as_secs_f64();
    // Until B has applied what it will receive (its count stops moving).
    let mut last = metric(b.addr, RECEIVED).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = metric(b.addr, RECEIVED).await?;
        if now == last {
            break;
        }
        last = now;
    }
    let (b1, a1) = (b.cpu()?, a.cpu()?);
    let tap1 = tap.read();
    // Parts B could not apply (each reloads its model); absent before the status part.
    let mut unapplied = 0.0;
    for reason in ["unknown_user", "account_differs"] {
        let series = format!("statusd_cluster_parts_unapplied_total{{reason=\"{reason}\"}}");
        unapplied += metric(b.addr, &series).await.unwrap_or(0.0);
    }
    let received = last - got0;
    let span = b1.at.duration_since(b0.at).as_secs_f64();
    let b_cpu = b1.secs - b0.secs;
    let b_net = b_cpu - idle_per_sec * span;
    let per_change_us = |cpu: f64| 1e6 * cpu / received.max(1.0);
    let [msgs, bytes, whole, parts] = [0, 1, 2, 3].map(|i| tap1[i] - tap0[i]);
    r.say(format!(
        "    {} users (3 roles, an email, a bio, 8 preferences); {sent} changes made on A in {wall:.1} s \
         by {clients} client(s) ({:.0}/s, {failed} failed); B received {received} user changes",
        users.len(),
        sent as f64 / wall
    ));
    r.say(format!(
        "    B's CPU: {:.3} s over {span:.1} s ({:.3} s idle over as long), {:.1} us per received \
         change, {:.1} us net of idle ({:.1} us per message); A's CPU {:.1} us per change",
        b_cpu,
        idle_per_sec * span,
        per_change_us(b_cpu),
        per_change_us(b_net),
        1e6 * b_net / msgs.max(1) as f64,
        1e6 * (a1.secs - a0.secs) / sent.max(1) as f64
    ));
    r.say(format!(
        "    on the subject: {msgs} messages, {bytes} bytes: {:.0} bytes per message, {:.0} per \
         user change; {whole} whole records, {parts} status parts; B could not apply \
         {unapplied} parts",
        bytes as f64 / msgs.max(1) as f64,
        bytes as f64 / (whole + parts).max(1) as f64
    ));
    r.fig(
        "cluster_apply",
        json!({"rate": rate, "secs": secs, "clients": clients, "sent": sent, "failed": failed,
               "received": received, "b_cpu_s": b_cpu, "b_idle_cpu_s": idle_per_sec * span,
               "b_us_per_change": per_change_us(b_cpu), "b_net_us_per_change": per_change_us(b_net),
               "messages": msgs, "bytes": bytes, "whole_records": whole, "status_parts": parts,
               "unapplied_parts": unapplied,
               "bytes_per_message": bytes as f64 / msgs.max(1) as f64}),
    );
    r.errors("setStatus on A that failed", failed);
    a.stop().await?;
    b.stop().await?;
    Ok(())
}
