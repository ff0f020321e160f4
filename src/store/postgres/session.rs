//! One PostgreSQL connection per worker thread, reconnecting on its own.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::{Client, Config, GenericClient, NoTls, Statement};

/// How long a failed connection attempt is remembered: calls within it fail at once
/// instead of each waiting for a connect timeout again.
pub(super) const RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

/// One connection, owned by its worker thread.
pub(super) struct Session {
    config: Config,
    target: String,
    client: Option<Client>,
    /// Prepared statements of this connection, by their SQL.
    stmts: HashMap<&'static str, Statement>,
    /// When and why the last connection attempt failed.
    failed: Option<(Instant, String)>,
    /// Run on every new connection before its first use (session settings, LISTEN).
    setup: String,
    /// How many connections this session has opened so far.
    pub(super) connects: u64,
}

impl Session {
    /// The live connection, connecting first when there is none.
    pub(super) fn client(&mut self) -> anyhow::Result<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.reset();
        }
        if self.client.is_none() {
            if let Some((at, why)) = &self.failed {
                if at.elapsed() < RECONNECT_BACKOFF {
                    anyhow::bail!("{} is unreachable: {why}", self.target);
                }
            }
            let connected = self.config.connect(NoTls).and_then(|mut c| {
                if !self.setup.is_empty() {
                    c.batch_execute(&self.setup)?;
                }
                Ok(c)
            });
            match connected {
                Ok(c) => {
                    self.failed = None;
                    self.client = Some(c);
                    self.connects += 1;
                }
                Err(e) => {
                    let why = e.to_string();
                    self.failed = Some((Instant::now(), why.clone()));
                    anyhow::bail!("cannot connect to {}: {why}", self.target);
                }
            }
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Forgets the connection (and everything tied to it).
    pub(super) fn reset(&mut self) {
        self.client = None;
        self.stmts.clear();
    }

    /// After a failed call: drops the connection if it is broken, so the next call
    /// connects again. Returns whether it did.
    pub(super) fn check(&mut self, e: &anyhow::Error) -> bool {
        let broken = self.client.as_ref().is_none_or(Client::is_closed)
            || e.chain().any(|cause| {
                cause
                    .downcast_ref::<postgres::Error>()
                    .is_some_and(is_connection_error)
            });
        if broken {
            self.reset();
        }
        broken
    }

    /// Runs `f` on the connection; a broken connection is dropped afterwards.
    pub(super) fn run<R>(
        &mut self,
        f: &mut impl FnMut(&mut Client, &mut Stmts) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        self.client()?;
        let Session { client, stmts, .. } = self;
        let client = client.as_mut().expect("connected above");
        let r = f(client, stmts);
        if let Err(e) = &r {
            self.check(e);
        }
        r
    }

    /// Like `run`, for idempotent work: when the connection turns out to be broken it
    /// is retried once on a new one.
    pub(super) fn run_retrying<R>(
        &mut self,
        mut f: impl FnMut(&mut Client, &mut Stmts) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let had_connection = self.client.as_ref().is_some_and(|c| !c.is_closed());
        match self.run(&mut f) {
            Err(_) if had_connection && self.client.is_none() => self.run(&mut f),
            r => r,
        }
    }
}

/// Does this error mean the connection is unusable?
pub(super) fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        // Class 08: connection exception; 57P0x: the server is shutting down or
        // terminated this backend.
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08")
                || *db.code() == SqlState::ADMIN_SHUTDOWN
                || *db.code() == SqlState::CRASH_SHUTDOWN
                || *db.code() == SqlState::CANNOT_CONNECT_NOW
        }
        // I/O errors, protocol errors, timeouts: start over on a fresh connection.
        None => true,
    }
}

pub(super) type Stmts = HashMap<&'static str, Statement>;

/// The prepared statement for `sql` on this connection, preparing it the first time.
pub(super) fn stmt(
    stmts: &mut Stmts,
    c: &mut impl GenericClient,
    sql: &'static str,
) -> Result<Statement, postgres::Error> {
    if let Some(s) = stmts.get(sql) {
        return Ok(s.clone());
    }
    let s = c.prepare(sql)?;
    stmts.insert(sql, s.clone());
    Ok(s)
}

pub(super) type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// A thread owning one connection; runs the jobs it is handed one after another.
pub(super) struct Worker {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Worker {
    /// A worker whose connections run `setup` (SQL, may be empty) when they open.
    pub(super) fn spawn(
        role: &str,
        config: &Config,
        target: &str,
        setup: &str,
    ) -> anyhow::Result<Worker> {
        let mut config = config.clone();
        if config.get_application_name().is_none() {
            config.application_name(&format!("statusd-{role}"));
        }
        let mut session = Session {
            config,
            target: target.to_string(),
            client: None,
            stmts: HashMap::new(),
            failed: None,
            setup: setup.to_string(),
            connects: 0,
        };
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("statusd-pg-{role}"))
            .spawn(move || {
                // Ends when the store is dropped; the connection closes with it.
                for job in rx {
                    job(&mut session);
                }
            })
            .context("starting a PostgreSQL connection thread")?;
        Ok(Worker {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `f` on the worker's thread and waits for its answer.
    pub(super) fn call<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Session) -> anyhow::Result<R> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel::<anyhow::Result<R>>(1);
        let job: Job = Box::new(move |session: &mut Session| {
            let r = match catch_unwind(AssertUnwindSafe(|| f(session))) {
                Ok(r) => r,
                Err(_) => {
                    session.reset();
                    Err(anyhow!("internal error: a PostgreSQL job panicked"))
                }
            };
            let _ = reply.send(r);
        });
        self.jobs
            .lock()
            .send(job)
            .map_err(|_| anyhow!("the PostgreSQL connection thread stopped"))?;
        answer
            .recv()
            .map_err(|_| anyhow!("the PostgreSQL connection thread stopped"))?
    }
}
