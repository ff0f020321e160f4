//! Running the admin commands of the real binary against a test server's database,
//! and waiting for the running server to notice what they changed.

#![allow(dead_code)]

use std::future::Future;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics unless it exited 0 with exactly one line on stdout; returns that line.
    pub fn line(&self) -> &str {
        assert_eq!(self.code, 0, "the command failed: {self:?}");
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "want one line of output: {self:?}");
        lines[0]
    }

    /// Panics unless it exited 1 with one `statusd: …` line on stderr; returns the text.
    pub fn error(&self) -> &str {
        assert_eq!(self.code, 1, "the command should have failed: {self:?}");
        assert_eq!(
            self.stdout, "",
            "no answer on stdout when failing: {self:?}"
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            // The warnings, and the line naming the database used, are not the error.
            .filter(|l| !l.starts_with("statusd: warning:") && !l.starts_with("statusd: using "))
            .filter(|l| !l.starts_with("statusd: a running server applies this change"))
            .collect();
        assert_eq!(lines.len(), 1, "want one line of error: {self:?}");
        lines[0]
            .strip_prefix("statusd: ")
            .unwrap_or_else(|| panic!("error line without the statusd: prefix: {self:?}"))
    }
}

/// Runs `statusd ARGS…` on the database `database_url`, with nothing else from the
/// test's environment that could change its behaviour.
pub fn statusd(database_url: &str, args: &[&str]) -> Run {
    statusd_stdin(database_url, args, None)
}

pub fn statusd_stdin(database_url: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_statusd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OVERWRITE_SETTING_")
            || k.starts_with("ADMIN_")
            || ["PORT", "NATS_URL", "RUST_LOG", "DATABASE_URL"].contains(&k.as_str())
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("DATABASE_URL", database_url)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn statusd");
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for statusd");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Does this database live in PostgreSQL? (A running server hears of the CLI's changes
/// through a NOTIFY there, through SQLite's data version otherwise.)
pub fn is_postgres(database_url: &str) -> bool {
    database_url.starts_with("postgres")
}

/// Retries `check` until it returns Ok, for at most 10 s (the server polls every second).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) if Instant::now() >= deadline => panic!("{what}: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
