//! The server under test: the real `statusd` binary as a child process, plus what the
//! bench reads about it from /proc (resident memory, CPU time).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::http::Client;

/// The pid of the server most recently started: the load runner reads its CPU time.
pub static CURRENT_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub const ADMIN_USER: &str = "benchadmin";
pub const ADMIN_PASS: &str = "bench-admin-pass";

/// How to start a server: which binary, which database, which log file.
#[derive(Clone)]
pub struct ServerSpec {
    pub bin: PathBuf,
    /// The SQLite file, unless `url` names another database.
    pub db: PathBuf,
    pub log: PathBuf,
    /// A `DATABASE_URL` instead of `db` (PostgreSQL).
    pub url: Option<String>,
    /// More environment (cluster mode: `NATS_URL`, `NATS_SUBJECT_PREFIX`).
    pub env: Vec<(String, String)>,
}

impl ServerSpec {
    /// A server on the SQLite file `db`.
    pub fn sqlite(bin: PathBuf, db: PathBuf, log: PathBuf) -> ServerSpec {
        ServerSpec {
            bin,
            db,
            log,
            url: None,
            env: Vec::new(),
        }
    }

    /// An instance of a cluster mode run: PostgreSQL database `db_url`, the NATS at
    /// `nats_url` with subjects under the run's own `prefix`, its messages sealed with a
    /// secret of the run's own (cluster mode requires one). `db` is never opened.
    pub fn cluster(
        bin: PathBuf,
        db_url: &str,
        nats_url: &str,
        prefix: &str,
        db: PathBuf,
        log: PathBuf,
    ) -> ServerSpec {
        ServerSpec {
            url: Some(db_url.to_string()),
            env: vec![
                ("NATS_URL".into(), nats_url.to_string()),
                ("NATS_SUBJECT_PREFIX".into(), prefix.to_string()),
                (
                    "CLUSTER_SECRET".into(),
                    format!("bench-cluster-secret-{prefix}"),
                ),
            ],
            ..ServerSpec::sqlite(bin, db, log)
        }
    }
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// From spawn until `GET /api/info` first answered 200.
    pub startup: Duration,
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    /// Starts the binary and waits until it answers `GET /api/info`.
    pub async fn start(spec: &ServerSpec) -> anyhow::Result<Server> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_context(|| format!("opening {}", spec.log.display()))?;
        let started = Instant::now();
        let child = Command::new(&spec.bin)
            .env("PORT", port.to_string())
            .env("BIND_IP", "127.0.0.1")
            .env("ROOT_URL", format!("http://127.0.0.1:{port}"))
            .env(
                "DATABASE_URL",
                spec.url
                    .clone()
                    .unwrap_or_else(|| format!("sqlite://{}", spec.db.display())),
            )
            .env("ADMIN_USERNAME", ADMIN_USER)
            .env("ADMIN_PASS", ADMIN_PASS)
            .env("ADMIN_EMAIL", "benchadmin@bench.local")
            // Logins and seeding come from one IP: the per-IP limit would answer 429.
            // The admin is exempt anyway; the user-facing limits are not what we measure.
            .env("OVERWRITE_SETTING_API_Enable_Rate_Limiter", "false")
            // Every load connection comes from 127.0.0.1: no per-address cap.
            .env("MAX_CONNECTIONS_PER_IP", "0")
            // The fan-out is measured past any budget: the server must not turn presence
            // broadcasting off in the middle of it (a run may set its own in `spec.env`).
            .env("PRESENCE_BROADCAST_BUDGET", "0")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or("info".into()),
            )
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", spec.bin.display()))?;
        let mut server = Server {
            child,
            addr,
            startup: Duration::ZERO,
        };
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{} exited during start-up ({status}); see {}",
                    spec.bin.display(),
                    spec.log.display()
                );
            }
            if let Ok(mut c) = Client::connect(addr).await {
                if let Ok((st, _)) = c.call(crate::http::get("/api/info", None)).await {
                    if st.is_success() {
                        break;
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("the server did not answer within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.startup = started.elapsed();
        CURRENT_PID.store(server.pid(), std::sync::atomic::Ordering::Relaxed);
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_bytes(self.pid())
    }

    pub fn cpu(&self) -> anyhow::Result<CpuTime> {
        cpu_time(self.pid())
    }

    /// SIGTERM and wait for a clean exit (SIGKILL after 15 s).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("the server did not stop within 15 s of SIGTERM")
    }

    /// SIGKILL: what a crash or power cut looks like to the process.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Resident set size of a process (VmRSS).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .context("VmRSS")?;
            return Ok(kb * 1024);
        }
    }
    bail!("no VmRSS in /proc/{pid}/status")
}

/// User + system CPU time of a process, and when it was read.
#[derive(Clone, Copy)]
pub struct CpuTime {
    pub secs: f64,
    pub at: Instant,
}

impl CpuTime {
    /// CPU used since `earlier`, as a percentage of one core.
    pub fn percent_since(&self, earlier: &CpuTime) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        100.0 * (self.secs - earlier.secs) / wall
    }
}

pub fn cpu_time(pid: u32) -> anyhow::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces: fields are counted after its closing ')'.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?))
        .context("/proc/PID/stat utime/stime")?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(CpuTime {
        secs: ticks / hz.max(1.0),
        at: Instant::now(),
    })
}

/// The bench's own process.
pub fn own_cpu() -> anyhow::Result<CpuTime> {
    cpu_time(std::process::id())
}

pub fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}
