//! statusd-bench: starts the real `statusd` binary and measures the targets of issue 4
//! over real sockets. See bench/README.md.
//!
//! Phases, in order (each server is a separate process, started and stopped here):
//!  A. seed: fresh database, admin login, `users.create` through REST (measured), then
//!     the remaining users from the fixture (or all through REST with `--seed rest`);
//!  B. writes: `GET /api/info` then `users.setStatus` (64 keep-alive clients), then
//!     SIGKILL and a check that every acknowledged write is in the database file;
//!  C. realtime: restart, N logged-in idle websockets (RSS per connection), fan-out of
//!     user-status changes to all of them, then user-presence with 20 watched users each;
//!  D. reads (`users.getStatus`, `users.presence?ids=` with 100 ids) against `/api/info`,
//!     and logins with and without setStatus load;
//!  E. 100,000 users: start-up time and RSS;
//!  F. cluster mode: two instances on PostgreSQL + NATS, cross-instance delivery
//!     latency and setStatus on PostgreSQL (`cluster.rs`);
//!  G. webhooks: delivery latency and throughput to a local receiver (`webhooks.rs`).

mod cluster;
mod fixture;
mod http;
mod scale;
mod server;
mod soak;
mod webhooks;
mod ws;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde_json::json;

use fixture::BenchUser;
use http::{run_load, Auth, Client, LoadResult};
use server::{Server, ServerSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Seed {
    /// users.create + login through REST for every user (bcrypt-bound: slow).
    Rest,
    /// A database fixture written with the server's own schema (fast).
    Fixture,
}

#[derive(Parser, Debug)]
#[command(name = "statusd-bench", about = "Benchmarks statusd (issue 4)")]
struct Args {
    /// The statusd binary to start (a release build).
    #[arg(long, default_value = "target/release/statusd")]
    server: PathBuf,
    /// Where databases and logs go, emptied first (default target/bench-work, or
    /// target/bench-work-smoke with --smoke).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A tiny run (seconds) that keeps the benchmark code alive in CI.
    #[arg(long)]
    smoke: bool,
    /// How users are seeded (default: fixture, or rest with --smoke).
    #[arg(long, value_enum)]
    seed: Option<Seed>,
    /// Users in the database for the write, read and realtime phases.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Users created through users.create to measure it (fixture seeding).
    #[arg(long, default_value_t = 64)]
    create_sample: usize,
    /// Concurrent keep-alive HTTP clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of each read and /api/info measurement.
    #[arg(long, default_value_t = 5)]
    http_secs: u64,
    /// Seconds of the setStatus measurement.
    #[arg(long, default_value_t = 10)]
    write_secs: u64,
    /// Logged-in websocket connections.
    #[arg(long, default_value_t = 10_000)]
    ws: usize,
    /// Status changes per second during the fan-out (default 20), or of the scale
    /// phase (default 500; scale-global: the ladder 10, 20, 40, 80).
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds of user-status fan-out.
    #[arg(long, default_value_t = 60)]
    fanout_secs: u64,
    /// Seconds of user-presence fan-out.
    #[arg(long, default_value_t = 20)]
    presence_secs: u64,
    /// Users each connection watches through stream-user-presence (default 20; 50 in
    /// the scale phase).
    #[arg(long)]
    watch: Option<usize>,
    /// Scale phase: how each connection's watched users are chosen: random (each draws
    /// `watch` distinct users, so an instance's connections watch users everywhere)
    /// or strided (c + k·⌊N/watch⌋ mod N, instance-local when ⌊N/watch⌋ is a multiple
    /// of the instances).
    #[arg(long, value_enum, default_value_t = scale::WatchLayout::Random)]
    watch_layout: scale::WatchLayout,
    /// Scale phases (issue 20): the connections of each step, instead of the ladder
    /// (scale: 10000,50000,100000; scale-global: 5000,10000,15000).
    #[arg(long, value_delimiter = ',')]
    connections: Vec<usize>,
    /// Scale phases: seconds of changes per step (scale: 60, 60, 300; scale-global: 15).
    #[arg(long)]
    duration: Option<u64>,
    /// Scale phase: statusd instances (default ceil(connections / 15,000), at least 2).
    #[arg(long)]
    instances: Option<usize>,
    /// Where the scale phases write their raw figures (JSON and CSV).
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
    /// Internal: run as a load worker of the scale phases (commands on stdin).
    #[arg(long, hide = true)]
    scale_worker: bool,
    /// Concurrent login clients.
    #[arg(long, default_value_t = 4)]
    login_clients: usize,
    /// Seconds of each login measurement.
    #[arg(long, default_value_t = 5)]
    login_secs: u64,
    /// Users in the start-up / memory database.
    #[arg(long, default_value_t = 100_000)]
    big_users: usize,
    /// Run only the soak of issue 7 for this many seconds (see src/soak.rs).
    #[arg(long)]
    soak_secs: Option<u64>,
    /// Soak: long-lived subscribed websockets.
    #[arg(long, default_value_t = 500)]
    soak_watchers: usize,
    /// Soak: workers that connect, log in, set a status and disconnect in a loop.
    #[arg(long, default_value_t = 16)]
    soak_churners: usize,
    /// Soak: keep-alive HTTP clients (setStatus and getStatus).
    #[arg(long, default_value_t = 8)]
    soak_http: usize,
    /// Soak: milliseconds between two cycles of one churn worker.
    #[arg(long, default_value_t = 500)]
    soak_churn_ms: u64,
    /// Soak: milliseconds between two requests of one HTTP client.
    #[arg(long, default_value_t = 50)]
    soak_http_ms: u64,
    /// Soak: seconds between two report lines.
    #[arg(long, default_value_t = 60)]
    soak_interval: u64,
    /// Changes timed one at a time from instance A to a subscriber on B (cluster phase).
    #[arg(long, default_value_t = 500)]
    cluster_samples: usize,
    /// The maintenance database of the PostgreSQL server the cluster phase creates its
    /// database on (and drops it again).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_admin_url: String,
    /// The NATS server of the cluster phase.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Webhooks: users changing their status (each its own keep-alive connection).
    #[arg(long, default_value_t = 20)]
    webhook_users: usize,
    /// Webhooks: changes per user in the paced run (twice as many in the burst).
    #[arg(long, default_value_t = 50)]
    webhook_rounds: usize,
    /// Webhooks: milliseconds between two changes of one user in the paced run.
    #[arg(long, default_value_t = 20)]
    webhook_pause_ms: u64,
    /// cluster-apply: setStatus per second on instance A.
    #[arg(long, default_value_t = 500)]
    apply_rate: u64,
    /// cluster-apply: seconds of load (and as long idle before, for B's idle CPU).
    #[arg(long, default_value_t = 20)]
    apply_secs: u64,
    /// cluster-apply: clients sharing the rate (1: one change per batch and message).
    #[arg(long, default_value_t = 1)]
    apply_clients: usize,
    /// cluster-apply: users in the database.
    #[arg(long, default_value_t = 1_000)]
    apply_users: usize,
    /// Which phases to run (comma list of writes,realtime,reads,logins,big,cluster,
    /// webhooks, and scale, scale-global, cluster-apply, which only run when named); all
    /// the others by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Args {
    fn apply_smoke(&mut self) {
        if !self.smoke {
            return;
        }
        self.users = 24;
        self.create_sample = 0;
        self.clients = 8;
        self.http_secs = 1;
        self.write_secs = 1;
        self.ws = 24;
        self.fanout_secs = 2;
        self.presence_secs = 2;
        self.login_secs = 1;
        self.big_users = 2_000;
        self.cluster_samples = 20;
        self.apply_rate = 50;
        self.apply_secs = 1;
        self.apply_users = 24;
        self.webhook_users = 4;
        self.webhook_rounds = 5;
        // One tiny scale step (2 instances, 2 load processes) keeps that code alive too.
        self.connections = vec![200];
        self.duration = Some(3);
    }

    fn runs(&self, phase: &str) -> bool {
        self.only.iter().any(|p| p == phase)
            || (self.only.is_empty()
                && (!phase.starts_with("scale") || self.smoke && phase == "scale")
                && (phase != "cluster-apply" || self.smoke))
    }

    fn fanout_rate(&self) -> u64 {
        self.rate.unwrap_or(20)
    }

    fn fanout_watch(&self) -> usize {
        self.watch.unwrap_or(20)
    }
}

/// The printed report (markdown-friendly) and the figures as JSON.
struct Report {
    text: String,
    json: serde_json::Map<String, serde_json::Value>,
    errors: u64,
    targets: Vec<(String, String, bool)>,
}

impl Report {
    fn say(&mut self, line: impl AsRef<str>) {
        println!("{}", line.as_ref());
        let _ = writeln!(self.text, "{}", line.as_ref());
    }

    fn fig(&mut self, key: &str, v: serde_json::Value) {
        self.json.insert(key.to_string(), v);
    }

    fn load(&mut self, key: &str, r: &LoadResult) {
        self.say(format!("    {}", r.line()));
        for s in &r.samples {
            self.say(format!("      error: {s}"));
        }
        self.errors += r.errors;
        self.fig(
            key,
            json!({"rps": r.rps(), "p50_ms": r.ms(0.5), "p99_ms": r.ms(0.99),
                   "max_ms": r.hist.max() as f64 / 1000.0, "requests": r.requests,
                   "errors": r.errors, "clients": r.clients, "secs": r.elapsed.as_secs_f64(),
                   "server_cpu_us_per_req": r.cpu_us()}),
        );
    }

    fn errors(&mut self, what: &str, n: u64) {
        if n > 0 {
            self.say(format!("    ERRORS: {n} {what}"));
        }
        self.errors += n;
    }

    fn target(&mut self, name: &str, figure: String, ok: bool) {
        self.say(format!(
            "    target {name}: {figure} -> {}",
            if ok { "MET" } else { "NOT MET" }
        ));
        self.targets.push((name.to_string(), figure, ok));
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .map(|l| l.trim_start_matches("MemTotal:").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}, MemTotal {mem}")
}

/// The 1-minute load average: other work on the machine skews every figure.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    args.apply_smoke();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.scale_worker {
        scale::raise_nofile();
        return rt.block_on(scale::worker_main());
    }
    if let Some(secs) = args.soak_secs {
        let failed = rt.block_on(soak_run(&args, secs))?;
        let verdict = if failed == 0 {
            "1 passed, 0 failed"
        } else {
            "0 passed, 1 failed"
        };
        println!("soak: {verdict}");
        std::process::exit(i32::from(failed != 0));
    }
    let report = rt.block_on(run(&args))?;
    println!("\n== summary ==");
    for (name, fig, ok) in &report.targets {
        println!("{:<6} {name}: {fig}", if *ok { "MET" } else { "NOT" });
    }
    println!(
        "errors (non-2xx answers, transport failures, lost or extra frames, lost writes): {}",
        report.errors
    );
    if let Some(path) = &args.json {
        let mut j = report.json.clone();
        j.insert("errors".into(), json!(report.errors));
        j.insert(
            "targets".into(),
            json!(report
                .targets
                .iter()
                .map(|(n, f, ok)| json!({"target": n, "figure": f, "met": ok}))
                .collect::<Vec<_>>()),
        );
        std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
    }
    // A plain closing line for CI logs: the run as a whole passed or failed.
    if report.errors > 0 {
        eprintln!("statusd-bench: FAILED: {} errors", report.errors);
        println!("bench: 0 passed, 1 failed");
        std::process::exit(1);
    }
    println!("bench: 1 passed, 0 failed");
    Ok(())
}

async fn soak_run(args: &Args, secs: u64) -> anyhow::Result<u64> {
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench-work-soak"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let work = std::fs::canonicalize(&work)?;
    let spec = ServerSpec::sqlite(
        std::fs::canonicalize(&args.server)
            .with_context(|| format!("no server binary at {}", args.server.display()))?,
        work.join("statusd.db"),
        work.join("server.log"),
    );
    println!("machine: {}; load average: {}", machine(), loadavg());
    let a = soak::SoakArgs {
        secs,
        users: args.users,
        watchers: args.soak_watchers,
        churners: args.soak_churners,
        http: args.soak_http,
        interval_secs: args.soak_interval.clamp(1, secs.max(1)),
        churn_every: Duration::from_millis(args.soak_churn_ms),
        http_every: Duration::from_millis(args.soak_http_ms),
    };
    let failed = soak::run(&a, &spec).await?;
    println!("load average after the soak: {}", loadavg());
    Ok(failed)
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let mut r = Report {
        text: String::new(),
        json: Default::default(),
        errors: 0,
        targets: Vec::new(),
    };
    let seed = args.seed.unwrap_or(if args.smoke {
        Seed::Rest
    } else {
        Seed::Fixture
    });
    let work = args.work.clone().unwrap_or_else(|| {
        PathBuf::from(if args.smoke {
            "target/bench-work-smoke"
        } else {
            "target/bench-work"
        })
    });
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let work = std::fs::canonicalize(&work)?;
    let bin = std::fs::canonicalize(&args.server)
        .with_context(|| format!("no server binary at {}", args.server.display()))?;
    let spec = ServerSpec::sqlite(
        bin.clone(),
        work.join("statusd.db"),
        work.join("server.log"),
    );
    r.say(format!(
        "machine: {}; load average before the run: {}",
        machine(),
        loadavg()
    ));
    r.say(format!(
        "run: users={} seed={seed:?} clients={} ws={} rate={}/s fanout={}s presence={}s big_users={}{}",
        args.users,
        args.clients,
        args.ws,
        args.fanout_rate(),
        args.fanout_secs,
        args.presence_secs,
        args.big_users,
        if args.smoke { " (smoke)" } else { "" }
    ));
    r.fig("machine", json!(machine()));
    if !args.only.is_empty()
        && args
            .only
            .iter()
            .all(|p| p.starts_with("scale") || p == "cluster-apply")
    {
        // These phases seed their own databases.
        if args.runs("cluster-apply") {
            cluster::cluster_apply(args, &bin, &work, &mut r).await?;
        }
        if args.runs("scale") {
            scale::scale(args, &bin, &work, &mut r).await?;
        }
        if args.runs("scale-global") {
            scale::scale_global(args, &bin, &work, &mut r).await?;
        }
        r.say(format!("\nload average after the run: {}", loadavg()));
        return Ok(r);
    }

    // ---- A. seed
    r.say("\n## A. seeding");
    let server = Server::start(&spec).await?;
    r.say(format!(
        "    fresh database start-up: {:.0} ms",
        server.startup.as_secs_f64() * 1000.0
    ));
    let mut c = Client::connect(server.addr).await?;
    let admin = fixture::log_in(&mut c, server::ADMIN_USER, server::ADMIN_PASS).await?;
    if args.create_sample > 0 {
        let (made, took, _) = fixture::rest_users(
            server.addr,
            &admin,
            args.users,
            args.create_sample,
            16,
            false,
        )
        .await?;
        let per_sec = made.len() as f64 / took.as_secs_f64();
        r.say(format!(
            "    users.create through REST: {} users in {:.2} s = {per_sec:.1}/s (bcrypt cost 10, 16 concurrent)",
            made.len(),
            took.as_secs_f64()
        ));
        r.fig("users_create_per_sec", json!(per_sec));
    }
    let users: Vec<BenchUser> = match seed {
        Seed::Rest => {
            let (users, took, login_took) =
                fixture::rest_users(server.addr, &admin, 0, args.users, 16, true).await?;
            r.say(format!(
                "    seeded {} users through REST: users.create {:.2} s ({:.1}/s), login {:.2} s ({:.1}/s)",
                users.len(),
                took.as_secs_f64(),
                users.len() as f64 / took.as_secs_f64(),
                login_took.as_secs_f64(),
                users.len() as f64 / login_took.as_secs_f64()
            ));
            server.stop().await?;
            users
        }
        Seed::Fixture => {
            server.stop().await?;
            let t = Instant::now();
            let users = fixture::write_users(&spec.db, args.users, true)?;
            r.say(format!(
                "    seeded {} users (+1 login token each) from the fixture in {:.2} s",
                users.len(),
                t.elapsed().as_secs_f64()
            ));
            users
        }
    };
    let users = Arc::new(users);

    // ---- B. writes
    if args.runs("writes") {
        writes(args, &spec, &admin, &users, &mut r).await?;
    }
    // ---- C. realtime, D. reads and logins (one server)
    if args.runs("realtime") || args.runs("reads") || args.runs("logins") {
        let server = Server::start(&spec).await?;
        r.say(format!(
            "\n    start-up with {} users: {:.0} ms",
            users.len(),
            server.startup.as_secs_f64() * 1000.0
        ));
        if args.runs("realtime") {
            realtime(args, &server, &admin, &users, &mut r).await?;
        }
        if args.runs("reads") {
            reads(args, &server, &admin, &users, &mut r).await?;
        }
        if args.runs("logins") {
            logins(args, &server, &admin, &users, &mut r).await?;
        }
        server.stop().await?;
    }
    // ---- E. 100k users
    if args.runs("big") {
        big(args, &bin, &work, &mut r).await?;
    }
    // ---- F. cluster mode
    if args.runs("cluster") {
        cluster::cluster(args, &bin, &work, &mut r).await?;
    }
    if args.runs("cluster-apply") {
        cluster::cluster_apply(args, &bin, &work, &mut r).await?;
    }
    // ---- G. webhooks
    if args.runs("webhooks") {
        webhooks::webhooks(args, &spec, &admin, &users, &mut r).await?;
    }
    // ---- issue 20: scale (cluster, 10k -> 100k connections) and the global fan-out
    if args.runs("scale") {
        scale::scale(args, &bin, &work, &mut r).await?;
    }
    if args.runs("scale-global") {
        scale::scale_global(args, &bin, &work, &mut r).await?;
    }
    r.say(format!("\nload average after the run: {}", loadavg()));
    Ok(r)
}

const STATUSES: [&str; 3] = ["away", "busy", "online"];

/// The setStatus load: worker `w` owns the users `w, w+clients, w+2·clients, …` and
/// cycles through them; the message carries (worker, request number), so every write
/// is a real change and the last acknowledged value of each user is known.
fn set_status_req(
    admin: &Auth,
    users: &[BenchUser],
    clients: usize,
    w: usize,
    i: u64,
) -> http::Req {
    let owned = users.len().saturating_sub(w).div_ceil(clients).max(1) as u64;
    let u = &users[(w + clients * (i % owned) as usize) % users.len()];
    let body = format!(
        r#"{{"userId":"{}","status":"{}","message":"m{w}.{i}"}}"#,
        u.id,
        STATUSES[(i % 3) as usize]
    );
    http::post_raw("/api/v1/users.setStatus", Some(admin), body)
}

async fn info_load(
    args: &Args,
    addr: std::net::SocketAddr,
    name: &str,
) -> anyhow::Result<LoadResult> {
    run_load(
        name,
        addr,
        args.clients,
        Duration::from_secs(args.http_secs),
        |_, _| http::get("/api/info", None),
    )
    .await
}

pub(crate) async fn set_status_load(
    args: &Args,
    addr: std::net::SocketAddr,
    admin: &Auth,
    users: &Arc<Vec<BenchUser>>,
    name: &str,
    secs: u64,
) -> anyhow::Result<LoadResult> {
    let (admin, users2, clients) = (admin.clone(), users.clone(), args.clients);
    run_load(
        name,
        addr,
        clients,
        Duration::from_secs(secs),
        move |w, i| set_status_req(&admin, &users2, clients, w, i),
    )
    .await
}

async fn writes(
    args: &Args,
    spec: &ServerSpec,
    admin: &Auth,
    users: &Arc<Vec<BenchUser>>,
    r: &mut Report,
) -> anyhow::Result<()> {
    r.say("\n## 1. setStatus throughput and latency (durable), against GET /api/info");
    let server = Server::start(spec).await?;
    r.say(format!(
        "    start-up with {} users: {:.0} ms",
        users.len(),
        server.startup.as_secs_f64() * 1000.0
    ));
    r.fig(
        "startup_ms_users",
        json!(server.startup.as_secs_f64() * 1000.0),
    );
    // Warm both paths up (connections, allocator, page cache).
    let _ = run_load(
        "warm-up",
        server.addr,
        args.clients,
        Duration::from_millis(500),
        |_, _| http::get("/api/info", None),
    )
    .await?;
    let info = info_load(args, server.addr, "GET /api/info").await?;
    r.load("info_writes", &info);
    // More clients in flight: group commit amortises the fsync over bigger batches.
    let many = args.clients * 8;
    let (admin2, users2) = (admin.clone(), users.clone());
    let wide = run_load(
        &format!("POST users.setStatus ({many} clients)"),
        server.addr,
        many,
        Duration::from_secs(args.http_secs),
        move |w, i| set_status_req(&admin2, &users2, many, w, i),
    )
    .await?;
    r.load("set_status_wide", &wide);
    let m0 = commit_stats(server.addr).await?;
    let cpu0 = server.cpu()?;
    let set = set_status_load(
        args,
        server.addr,
        admin,
        users,
        "POST users.setStatus",
        args.write_secs,
    )
    .await?;
    let cpu1 = server.cpu()?;
    let m1 = commit_stats(server.addr).await?;
    r.load("set_status", &set);
    let ratio = set.rps() / info.rps();
    let (batches, jobs, secs) = (m1.0 - m0.0, m1.1 - m0.1, m1.2 - m0.2);
    r.say(format!(
        "    server CPU during setStatus: {:.0}% of one core; {batches:.0} commits, {:.1} jobs per commit, {:.2} ms per commit (run + fsync)",
        cpu1.percent_since(&cpu0),
        jobs / batches.max(1.0),
        1000.0 * secs / batches.max(1.0)
    ));
    r.fig(
        "commits",
        json!({"commits": batches, "jobs_per_commit": jobs / batches.max(1.0),
               "ms_per_commit": 1000.0 * secs / batches.max(1.0)}),
    );
    r.fig("set_status_ratio", json!(ratio));
    r.target(
        "setStatus/info >= 0.5",
        format!("{ratio:.2} ({:.0} / {:.0} req/s)", set.rps(), info.rps()),
        ratio >= 0.5,
    );
    r.target(
        "setStatus p99 <= 10 ms",
        format!("{:.2} ms", set.ms(0.99)),
        set.ms(0.99) <= 10.0,
    );

    // Durability: kill -9, then every acknowledged write must be in the file.
    server.kill()?;
    if set.errors == 0 {
        let lost = check_durable(&spec.db, users, args.clients, &set)?;
        r.say(format!(
            "    after SIGKILL: {} users checked in the database file, {lost} acknowledged writes missing",
            users.len()
        ));
        r.errors("acknowledged writes missing after SIGKILL", lost);
    }

    // Reference only: the same load with the database on tmpfs, where fsync costs
    // nothing. Not durable; it shows what the disk costs and what the CPU allows.
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        let ref_spec = ServerSpec {
            db: shm.join(format!("statusd-bench-{}.db", std::process::id())),
            ..spec.clone()
        };
        server::remove_db(&ref_spec.db);
        std::fs::copy(&spec.db, &ref_spec.db)?;
        let server = Server::start(&ref_spec).await?;
        let info = info_load(args, server.addr, "GET /api/info (tmpfs server)").await?;
        let set = set_status_load(
            args,
            server.addr,
            admin,
            users,
            "POST users.setStatus (tmpfs, NOT durable)",
            args.http_secs,
        )
        .await?;
        server.stop().await?;
        server::remove_db(&ref_spec.db);
        r.say("    reference, database on tmpfs (fsync free, not durable):");
        r.load("info_tmpfs", &info);
        r.load("set_status_tmpfs", &set);
        r.say(format!(
            "    tmpfs ratio setStatus/info: {:.2}",
            set.rps() / info.rps()
        ));
    }
    Ok(())
}

/// (commits, jobs committed, seconds spent committing) from the server's /metrics.
async fn commit_stats(addr: std::net::SocketAddr) -> anyhow::Result<(f64, f64, f64)> {
    let mut c = Client::connect(addr).await?;
    let (_, body) = c.call(http::get("/metrics", None)).await?;
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    Ok((
        value("statusd_commit_batch_size_count "),
        value("statusd_commit_batch_size_sum "),
        value("statusd_commit_seconds_sum "),
    ))
}

/// Compares each user's last acknowledged setStatus with the database file.
fn check_durable(
    db: &std::path::Path,
    users: &[BenchUser],
    clients: usize,
    set: &LoadResult,
) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open(db)?;
    let mut stmt = conn.prepare("SELECT status_text, status_default FROM users WHERE id = ?1")?;
    let mut lost = 0;
    for (w, &sent) in set.per_worker.iter().enumerate() {
        let owned = users.len().saturating_sub(w).div_ceil(clients).max(1) as u64;
        // The last `owned` requests of the worker are the last write of each of its users.
        for i in sent.saturating_sub(owned)..sent {
            let u = &users[(w + clients * (i % owned) as usize) % users.len()];
            let (text, status): (String, String) =
                stmt.query_row([&u.id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            if text != format!("m{w}.{i}") || status != STATUSES[(i % 3) as usize] {
                lost += 1;
            }
        }
    }
    Ok(lost)
}

/// Sends `rate` setStatus changes per second for `secs`, open loop (each change on its
/// own task, over a pool of keep-alive connections, whether or not earlier answers
/// came back), targets cycling through `targets`, the text carrying the sequence
/// number and the send time. Returns (sent, errors, error samples, seconds taken).
async fn drive(
    addr: std::net::SocketAddr,
    admin: &Auth,
    targets: &[String],
    rate: u64,
    secs: u64,
    mark: &str,
) -> anyhow::Result<(u64, u64, Vec<String>, f64)> {
    let total = rate * secs;
    let idle: Arc<std::sync::Mutex<Vec<Client>>> = Arc::default();
    let failures: Arc<std::sync::Mutex<(u64, Vec<String>)>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for seq in 0..total {
        tick.tick().await;
        let body = format!(
            r#"{{"userId":"{}","status":"{}","message":"{mark}{seq}|{}"}}"#,
            targets[(seq as usize) % targets.len()],
            STATUSES[(seq % 3) as usize],
            ws::now_micros()
        );
        let (idle, failures, admin) = (idle.clone(), failures.clone(), admin.clone());
        tasks.spawn(async move {
            // Idle connections the server has closed meanwhile are dropped, not used.
            let pooled = {
                let mut idle = idle.lock().expect("pool");
                std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
            };
            let mut c = match pooled {
                Some(c) => c,
                None => match Client::connect(addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        let mut f = failures.lock().expect("failures");
                        f.0 += 1;
                        f.1.push(format!("connect: {e:#}"));
                        return;
                    }
                },
            };
            let res = c
                .call(http::post_raw(
                    "/api/v1/users.setStatus",
                    Some(&admin),
                    body,
                ))
                .await;
            let failed = match res {
                Ok((st, _)) if st.is_success() => None,
                Ok((st, b)) => Some(format!("{st} {}", String::from_utf8_lossy(&b))),
                Err(e) => Some(format!("{e:#}")),
            };
            match failed {
                None => idle.lock().expect("pool").push(c),
                Some(why) => {
                    let mut f = failures.lock().expect("failures");
                    f.0 += 1;
                    if f.1.len() < 3 {
                        f.1.push(why);
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let took = started.elapsed().as_secs_f64();
    let (errors, samples) = failures.lock().expect("failures").clone();
    Ok((total, errors, samples, took))
}

async fn realtime(
    args: &Args,
    server: &Server,
    admin: &Auth,
    users: &Arc<Vec<BenchUser>>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let n = args.ws.min(users.len());
    r.say(format!(
        "\n## 4a. memory per idle logged-in websocket ({n} connections)"
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = server.rss_bytes()?;
    let pool_ids: Vec<String> = users
        .iter()
        .take(200.min(users.len()))
        .map(|u| u.id.clone())
        .collect();
    let t = Instant::now();
    let pool = ws::open_pool(
        server.addr,
        &users[..n],
        &pool_ids,
        args.fanout_watch(),
        128,
    )
    .await?;
    let opened = t.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = server.rss_bytes()?;
    let per_conn = rss1.saturating_sub(rss0) as f64 / pool.len() as f64;
    r.say(format!(
        "    {} connections opened and logged in (resume) in {:.2} s ({:.0}/s); server RSS {:.1} MiB -> {:.1} MiB",
        pool.len(),
        opened.as_secs_f64(),
        pool.len() as f64 / opened.as_secs_f64(),
        mib(rss0),
        mib(rss1)
    ));
    r.fig("rss_per_ws_bytes", json!(per_conn));
    r.target(
        "RSS per idle logged-in websocket <= 16 KiB",
        format!("{:.1} KiB ((RSS after - before) / {n})", per_conn / 1024.0),
        per_conn <= 16.0 * 1024.0,
    );

    r.say(format!(
        "\n## 3. fan-out: {n} subscribers of user-status, {} changes/s for {} s",
        args.fanout_rate(),
        args.fanout_secs
    ));
    pool.set_phase(ws::Phase::Status);
    if !ws::Pool::wait_for(&pool.shared.status_ready, n as u64, Duration::from_secs(60)).await {
        r.errors("user-status subscriptions never ready", 1);
    }
    let (cpu0, own0) = (server.cpu()?, server::own_cpu()?);
    let (sent, derr, dsamples, dsecs) = drive(
        server.addr,
        admin,
        &pool_ids,
        args.fanout_rate(),
        args.fanout_secs,
        ws::STATUS_MARK,
    )
    .await?;
    let want = sent * n as u64;
    let complete =
        ws::Pool::wait_for(&pool.shared.status_frames, want, Duration::from_secs(30)).await;
    let (cpu1, own1) = (server.cpu()?, server::own_cpu()?);
    let got = pool.shared.status_frames.load(Ordering::Relaxed);
    let hist = ws::Shared::merged(&pool.shared.status_hist);
    let (p50, p99, max) = (
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
    );
    r.say(format!(
        "    {sent} changes sent in {dsecs:.1} s (driver errors {derr}); frames expected {want}, received {got}{}",
        if complete { "" } else { " (timed out waiting)" }
    ));
    for s in dsamples {
        r.say(format!("      driver error: {s}"));
    }
    r.say(format!(
        "    delivery latency (setStatus sent -> frame received): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    ));
    r.say(format!(
        "    CPU: server {:.0}% of one core, load tool {:.0}% ({:.0} frames/s delivered)",
        cpu1.percent_since(&cpu0),
        own1.percent_since(&own0),
        got as f64 / cpu1.at.duration_since(cpu0.at).as_secs_f64()
    ));
    r.errors("setStatus errors while driving the fan-out", derr);
    r.errors("user-status frames lost", want.saturating_sub(got));
    r.fig(
        "fanout_status",
        json!({"subscribers": n, "changes": sent, "expected": want, "received": got,
               "p50_ms": p50, "p99_ms": p99, "max_ms": max,
               "server_cpu_pct": cpu1.percent_since(&cpu0), "bench_cpu_pct": own1.percent_since(&own0)}),
    );
    r.target(
        "fan-out p99 <= 250 ms, zero lost",
        format!("p99 {p99:.1} ms, lost {}", want.saturating_sub(got)),
        p99 <= 250.0 && got >= want,
    );

    r.say(format!(
        "\n## 3b. fan-out: {n} connections each watching {} users through stream-user-presence, {} changes/s for {} s",
        args.fanout_watch(), args.fanout_rate(), args.presence_secs
    ));
    pool.set_phase(ws::Phase::Presence);
    if !ws::Pool::wait_for(
        &pool.shared.presence_ready,
        n as u64,
        Duration::from_secs(60),
    )
    .await
    {
        r.errors("user-presence subscriptions never ready", 1);
    }
    let (cpu0, own0) = (server.cpu()?, server::own_cpu()?);
    let (psent, perr, psamples, psecs) = drive(
        server.addr,
        admin,
        &pool_ids,
        args.fanout_rate(),
        args.presence_secs,
        ws::PRESENCE_MARK,
    )
    .await?;
    // Connection i watches pool slots (i·watch + k) mod pool; change s targets slot s mod pool.
    let pool_len = pool_ids.len();
    let watchers_of = |slot: usize| -> u64 {
        (0..n)
            .filter(|&i| {
                (0..args.fanout_watch().min(pool_len))
                    .any(|k| (i * args.fanout_watch() + k) % pool_len == slot)
            })
            .count() as u64
    };
    let per_slot: Vec<u64> = (0..pool_len).map(watchers_of).collect();
    let pwant: u64 = (0..psent).map(|s| per_slot[(s as usize) % pool_len]).sum();
    let complete =
        ws::Pool::wait_for(&pool.shared.presence_frames, pwant, Duration::from_secs(30)).await;
    let (cpu1, own1) = (server.cpu()?, server::own_cpu()?);
    let pgot = pool.shared.presence_frames.load(Ordering::Relaxed);
    let hist = ws::Shared::merged(&pool.shared.presence_hist);
    let (pp50, pp99) = (
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    );
    r.say(format!(
        "    {psent} changes sent in {psecs:.1} s (driver errors {perr}); frames expected {pwant}, received {pgot}{}",
        if complete { "" } else { " (timed out waiting)" }
    ));
    for s in psamples {
        r.say(format!("      driver error: {s}"));
    }
    r.say(format!(
        "    delivery latency: p50 {pp50:.1} ms, p99 {pp99:.1} ms; CPU: server {:.0}%, load tool {:.0}%",
        cpu1.percent_since(&cpu0),
        own1.percent_since(&own0)
    ));
    r.errors("setStatus errors while driving the presence fan-out", perr);
    r.fig(
        "fanout_presence",
        json!({"connections": n, "watch": args.fanout_watch(), "changes": psent, "expected": pwant,
               "received": pgot, "p50_ms": pp50, "p99_ms": pp99,
               "server_cpu_pct": cpu1.percent_since(&cpu0)}),
    );

    // Per-connection check: every change, and nothing a connection did not ask for.
    let shared = pool.shared.clone();
    let reports = pool.stop().await?;
    let (mut missing, mut extra) = (0u64, 0u64);
    for rep in &reports {
        missing += sent.saturating_sub(ws::count_bits(&rep.status_seen));
        for s in 0..psent {
            let watched = rep.watched.contains(&((s as usize) % pool_len));
            let seen = ws::has_bit(&rep.presence_seen, s);
            if watched && !seen {
                missing += 1;
            } else if !watched && seen {
                extra += 1;
            }
        }
    }
    r.errors(
        "frames missing (per-connection check, both streams)",
        missing,
    );
    r.errors(
        "presence frames for users a connection does not watch",
        extra,
    );
    r.errors(
        "duplicate frames",
        shared.duplicates.load(Ordering::Relaxed),
    );
    r.say(format!(
        "    status transitions repeating a change's text (a watched user went offline): {}",
        shared.transitions.load(Ordering::Relaxed)
    ));
    r.errors("websocket errors", shared.errors.load(Ordering::Relaxed));
    let samples = shared.samples.lock().expect("samples").clone();
    for s in samples {
        r.say(format!("      websocket error: {s}"));
    }
    r.target(
        "user-presence fan-out zero lost (p99 <= 250 ms)",
        format!("p99 {pp99:.1} ms, lost {}", pwant.saturating_sub(pgot)),
        pp99 <= 250.0 && pgot >= pwant,
    );
    Ok(())
}

async fn reads(
    args: &Args,
    server: &Server,
    admin: &Auth,
    users: &Arc<Vec<BenchUser>>,
    r: &mut Report,
) -> anyhow::Result<()> {
    r.say(
        "\n## 2. reads: users.getStatus and users.presence?ids= (100 ids), against GET /api/info",
    );
    let _ = run_load(
        "warm-up",
        server.addr,
        args.clients,
        Duration::from_millis(500),
        |_, _| http::get("/api/info", None),
    )
    .await?;
    // /api/info and getStatus alternate in ROUNDS short windows, so both see the same
    // moments of whatever else runs on the machine: measured one after the other, the
    // /api/info figure alone moved by 20–30 % from one 5-second window to the next.
    const ROUNDS: u32 = 5;
    let window = Duration::from_secs(args.http_secs) / ROUNDS;
    let io0 = disk_io(server.pid());
    let mut info: Option<LoadResult> = None;
    let mut get: Option<LoadResult> = None;
    for _ in 0..ROUNDS {
        let one = run_load(
            "GET /api/info (interleaved)",
            server.addr,
            args.clients,
            window,
            |_, _| http::get("/api/info", None),
        )
        .await?;
        merge_into(&mut info, one);
        let (a, u) = (admin.clone(), users.clone());
        let one = run_load(
            "GET users.getStatus?userId=",
            server.addr,
            args.clients,
            window,
            move |w, i| {
                let user = &u[(w * 7919 + i as usize * 31) % u.len()];
                http::get(
                    &format!("/api/v1/users.getStatus?userId={}", user.id),
                    Some(&a),
                )
            },
        )
        .await?;
        merge_into(&mut get, one);
    }
    let (info, get) = (
        info.ok_or_else(|| anyhow::anyhow!("no rounds"))?,
        get.ok_or_else(|| anyhow::anyhow!("no rounds"))?,
    );
    r.load("info_reads", &info);
    r.load("get_status", &get);
    let (a, u) = (admin.clone(), users.clone());
    let presence = run_load(
        "GET users.presence?ids= (100 ids)",
        server.addr,
        args.clients,
        Duration::from_secs(args.http_secs),
        move |w, i| {
            let start = (w * 131 + i as usize * 100) % u.len();
            let ids: Vec<&str> = (0..100.min(u.len()))
                .map(|k| u[(start + k) % u.len()].id.as_str())
                .collect();
            http::get(
                &format!("/api/v1/users.presence?ids={}", ids.join(",")),
                Some(&a),
            )
        },
    )
    .await?;
    r.load("presence_100", &presence);
    let io1 = disk_io(server.pid());
    if let (Some(a), Some(b)) = (io0, io1) {
        r.say(format!(
            "    disk during the reads: {} bytes read, {} bytes written",
            b.0 - a.0,
            b.1 - a.1
        ));
        r.fig("read_phase_disk_bytes", json!([b.0 - a.0, b.1 - a.1]));
    }
    let ratio = get.rps() / info.rps();
    r.fig("get_status_ratio", json!(ratio));
    r.fig("presence_ratio", json!(presence.rps() / info.rps()));
    r.target(
        "getStatus/info >= 0.8",
        format!(
            "{ratio:.2} ({:.0} / {:.0} req/s, {ROUNDS} interleaved windows each)",
            get.rps(),
            info.rps()
        ),
        ratio >= 0.8,
    );
    r.say(format!(
        "    users.presence (100 ids) / info: {:.2}; server CPU per request, getStatus / info: {:.2}",
        presence.rps() / info.rps(),
        get.cpu_us() / info.cpu_us().max(1e-9)
    ));
    Ok(())
}

/// (read_bytes, write_bytes) of a process from /proc/PID/io.
fn disk_io(pid: u32) -> Option<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| -> Option<u64> {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("read_bytes:")?, field("write_bytes:")?))
}

async fn logins(
    args: &Args,
    server: &Server,
    admin: &Auth,
    users: &Arc<Vec<BenchUser>>,
    r: &mut Report,
) -> anyhow::Result<()> {
    r.say(format!(
        "\n## 5. logins ({} concurrent clients, bcrypt cost 10) and setStatus under login load",
        args.login_clients
    ));
    let login_load = |name: &'static str, length: Duration| {
        let u = users.clone();
        let lc = args.login_clients;
        run_load(name, server.addr, lc, length, move |w, i| {
            let user = &u[(w + lc * i as usize) % u.len()];
            http::post(
                "/api/v1/login",
                None,
                &json!({"user": user.username, "password": fixture::USER_PASS}),
            )
        })
    };
    let alone = login_load("POST login (alone)", Duration::from_secs(args.login_secs)).await?;
    r.load("login_alone", &alone);
    // setStatus alone and setStatus with logins alternate in ROUNDS windows, so both
    // see the same moments of a host whose speed drifts (as /api/info and getStatus
    // in phase 2). Each window's messages are its own, so every write is a change.
    const ROUNDS: u32 = 5;
    let window = Duration::from_secs(args.login_secs) / ROUNDS;
    let status_load = |name: &'static str, window_no: u64| {
        let (a, u, clients) = (admin.clone(), users.clone(), args.clients);
        run_load(name, server.addr, clients, window, move |w, i| {
            set_status_req(&a, &u, clients, w, (window_no << 32) + i)
        })
    };
    let (mut base, mut with, mut during) = (None, None, None);
    for round in 0..u64::from(ROUNDS) {
        let alone = status_load("POST users.setStatus (no logins)", 2 * round).await?;
        merge_into(&mut base, alone);
        let (w, d) = tokio::join!(
            status_load("POST users.setStatus (with logins)", 2 * round + 1),
            login_load("POST login (during setStatus)", window)
        );
        merge_into(&mut with, w?);
        merge_into(&mut during, d?);
    }
    let none = || anyhow::anyhow!("no rounds");
    let (base, with, during) = (
        base.ok_or_else(none)?,
        with.ok_or_else(none)?,
        during.ok_or_else(none)?,
    );
    r.load("set_status_no_logins", &base);
    r.load("set_status_with_logins", &with);
    r.load("login_during_set_status", &during);
    r.fig("logins_per_sec", json!(alone.rps()));
    // Starving would show as a collapse of setStatus throughput or a jump of its p99;
    // setStatus itself is bound by the disk (see phase 1), so the bar is relative.
    let ok = with.rps() >= 0.8 * base.rps() && with.ms(0.99) <= 1.5 * base.ms(0.99);
    r.target(
        "logins do not starve setStatus (with logins: >= 0.8x req/s, <= 1.5x p99)",
        format!(
            "{:.0} vs {:.0} req/s ({:.2}x), p99 {:.2} vs {:.2} ms ({:.2}x); {:.1} logins/s alone, {:.1} during",
            with.rps(),
            base.rps(),
            with.rps() / base.rps().max(1e-9),
            with.ms(0.99),
            base.ms(0.99),
            with.ms(0.99) / base.ms(0.99).max(1e-9),
            alone.rps(),
            during.rps()
        ),
        ok,
    );
    Ok(())
}

/// Adds one window of an interleaved measurement to the ones before it.
fn merge_into(all: &mut Option<LoadResult>, one: LoadResult) {
    match all.as_mut() {
        Some(all) => all.merge(one),
        None => *all = Some(one),
    }
}

/// Starts the server `times` times on `spec`: sorted start-up times (ms) and the largest
/// RSS seen half a second after the first answer.
async fn starts(spec: &ServerSpec, times: usize) -> anyhow::Result<(Vec<f64>, u64)> {
    let mut startups = Vec::new();
    let mut rss = 0u64;
    for _ in 0..times {
        let s = Server::start(spec).await?;
        startups.push(s.startup.as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss = rss.max(s.rss_bytes()?);
        s.stop().await?;
    }
    startups.sort_by(|a, b| a.total_cmp(b));
    Ok((startups, rss))
}

async fn big(
    args: &Args,
    bin: &std::path::Path,
    work: &std::path::Path,
    r: &mut Report,
) -> anyhow::Result<()> {
    let n = args.big_users;
    r.say(format!("\n## 4b. {n} users: start-up time and RSS"));
    let spec = ServerSpec::sqlite(
        bin.to_path_buf(),
        work.join("big.db"),
        work.join("server-big.log"),
    );
    server::remove_db(&spec.db);
    // The server makes the schema (its migrations), the fixture fills it.
    Server::start(&spec).await?.stop().await?;
    let t = Instant::now();
    fixture::write_users(&spec.db, n, false)?;
    r.say(format!(
        "    fixture: {n} users written in {:.1} s, database {:.1} MiB",
        t.elapsed().as_secs_f64(),
        mib(std::fs::metadata(&spec.db)?.len())
    ));
    let (startups, rss) = starts(&spec, 3).await?;
    let median = startups[startups.len() / 2];
    r.say(format!(
        "    start-up (spawn -> first 200 from /api/info), 3 starts: {}; RSS {:.1} MiB",
        startups
            .iter()
            .map(|s| format!("{s:.0} ms"))
            .collect::<Vec<_>>()
            .join(", "),
        mib(rss)
    ));
    r.fig("big_startup_ms", json!(startups));
    r.fig("big_rss_bytes", json!(rss));
    r.target(
        &format!("start-up with {n} users <= 1 s"),
        format!("median {median:.0} ms"),
        median <= 1000.0,
    );
    r.target(
        &format!("RSS with {n} users <= 150 MB"),
        format!("{:.1} MiB ({:.1} MB)", mib(rss), rss as f64 / 1e6),
        rss as f64 <= 150e6,
    );
    // The same users, each also holding one login token (as after everybody logged in).
    fixture::write_tokens(&spec.db, n)?;
    let (startups, rss) = starts(&spec, 1).await?;
    r.say(format!(
        "    with one login token per user as well: start-up {:.0} ms, RSS {:.1} MiB ({:.1} MB)",
        startups[0],
        mib(rss),
        rss as f64 / 1e6
    ));
    r.fig(
        "big_with_tokens",
        json!({"startup_ms": startups[0], "rss_bytes": rss}),
    );
    Ok(())
}
