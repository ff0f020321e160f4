//! statusd: start-up only. Configuration, store, writer and server are wired here;
//! everything else lives in the library's modules (`src/lib.rs`), named after what they do.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use statusd::{
    bootstrap, cli, cluster, config, expiry, external, housekeeping, http, logging, server,
    webhooks,
};

fn main() {
    let cli::Args {
        mut cfg,
        command,
        init,
    } = cli::Args::from_env();
    if let Err(e) = cfg.validate() {
        eprintln!("statusd: {e}");
        std::process::exit(2);
    }
    match command {
        None | Some(cli::Command::Serve) => {}
        // The admin commands: one line of answer, an exit code, no server.
        Some(command) => std::process::exit(cli::main(cfg, command, init)),
    }
    // From here on this process is the server: SIGTERM and SIGINT ask it to stop.
    catch_stop_signals();
    if let Err(e) = cfg.read_admin_pass_file() {
        eprintln!("statusd: {e}");
        std::process::exit(2);
    }
    if let Err(e) = logging::init(&cfg.rust_log, cfg.log_format, cfg.access_log) {
        eprintln!("statusd: {e}");
        std::process::exit(2);
    }
    match server::raise_open_file_limit() {
        Ok((before, now, hard)) if before < now => {
            tracing::info!(
                "open files: soft limit raised from {before} to {now} (hard limit {hard})"
            )
        }
        Ok((_, soft, hard)) => tracing::info!("open files: soft limit {soft}, hard limit {hard}"),
        Err(e) => tracing::warn!("open files: cannot raise the soft limit: {e}"),
    }
    if let Some(arenas) = server::limit_malloc_arenas() {
        tracing::debug!("malloc: at most {arenas} arenas (MALLOC_ARENA_MAX overrides)");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("statusd: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(serve(cfg)) {
        eprintln!("statusd: {e:#}");
        std::process::exit(1);
    }
}

async fn serve(cfg: config::Config) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let addr = SocketAddr::new(cfg.bind_ip, cfg.port);
    let app = bootstrap::start(cfg).await?;
    // Expiries that fell due while the server was down apply before anyone can look.
    expiry::catch_up(&app.core, &app.leader).await;
    if STOP_ASKED.load(Ordering::SeqCst) {
        // Asked to stop while starting: never listen, hand the lease back at once.
        cluster::resign(&app.core, &app.leader).await;
        tracing::info!("asked to stop during start-up: not listening");
        tracing::info!("statusd stopped");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("PORT: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    let metrics_listener = match app.cfg.metrics_bind {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| anyhow::anyhow!("METRICS_BIND: cannot listen on {at}: {e}"))?,
        ),
        None => None,
    };
    // What an operator needs to know which server this is, never a credential.
    tracing::info!(
        version = %env!("CARGO_PKG_VERSION"),
        rc_version = %app.cfg.rc_compat_version,
        store = %logging::describe_store(&app.cfg.database_url),
        nats = app
            .cfg
            .nats_url
            .as_deref()
            .map(|u| tracing::field::display(logging::describe_nats(u))),
        instance = %app.instance_id,
        address = %bound,
        "statusd listening on http://{bound}"
    );
    if let Some(l) = metrics_listener {
        let at = l
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        tracing::info!("metrics on http://{at}/metrics only (METRICS_BIND)");
        let limits = server::Limits {
            header_timeout: Duration::from_secs(app.cfg.http_header_timeout_secs),
            max_connections_per_ip: app.cfg.max_connections_per_ip(),
        };
        // Ends with the process: a scrape in flight at shutdown is of no consequence.
        tokio::spawn(server::serve(
            l,
            http::metrics_router(app.clone()),
            limits,
            std::future::pending(),
        ));
    }

    tokio::spawn(housekeeping::run(app.clone()));
    tokio::spawn(statusd::broadcast_budget::run(app.clone()));

    tokio::spawn(expiry::run(app.core.clone(), app.leader.clone()));
    tokio::spawn(webhooks::run(
        app.core.clone(),
        app.leader.clone(),
        webhooks::Options {
            retry_for: Duration::from_secs_f64(app.cfg.webhook_retry_hours.max(0.0) * 3600.0),
            timeout: Duration::from_secs(app.cfg.webhook_timeout_secs.max(1)),
        },
    ));
    tokio::spawn(statusd::calsync::run(
        app.core.clone(),
        app.calendars.clone(),
        app.leader.clone(),
    ));
    tokio::spawn(cluster::run(
        app.core.clone(),
        app.leader.clone(),
        app.own_conns.clone(),
        Duration::from_secs(app.cfg.instance_dead_secs),
    ));
    // Changes the admin CLI or an import commit while the server runs.
    tokio::spawn(external::run(app.core.clone()));

    let router = http::router(app.clone());
    let limits = server::Limits {
        header_timeout: Duration::from_secs(app.cfg.http_header_timeout_secs),
        max_connections_per_ip: app.cfg.max_connections_per_ip(),
    };
    let hub_app = app.clone();
    server::serve(listener, router, limits, async move {
        stop.await;
        // Another instance takes over the once-only work at once.
        cluster::resign(&hub_app.core, &hub_app.leader).await;
        tracing::info!("shutting down: closing realtime connections");
        hub_app.hub.begin_shutdown();
    })
    .await;
    // Each session removes its connection and publishes the resulting offline change.
    app.hub.drained(Duration::from_secs(5)).await;
    // Admin commands stop waiting for this server.
    external::withdraw(&app.core).await;
    tracing::info!("statusd stopped");
    Ok(())
}

/// Set by SIGTERM or SIGINT at any time after [`catch_stop_signals`].
static STOP_ASKED: AtomicBool = AtomicBool::new(false);

/// Catches SIGTERM and SIGINT as soon as the process knows it is the server, before it
/// opens the log, builds the runtime or opens the store: a stop asked for then is
/// recorded in [`STOP_ASKED`] (tokio's own handlers come later, in
/// [`shutdown_signal`]). Without it, a SIGTERM in those first milliseconds (a service
/// manager stopping a server it just started, a test harness) killed the process by
/// the signal instead of stopping it (exit status 143, no "statusd stopped").
fn catch_stop_signals() {
    #[cfg(unix)]
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the action only stores into an atomic, which is async-signal-safe;
        // tokio registers its handlers in the same registry, next to this one.
        let caught = unsafe {
            signal_hook_registry::register(sig, || STOP_ASKED.store(true, Ordering::SeqCst))
        };
        if let Err(e) = caught {
            eprintln!("statusd: cannot catch signal {sig}: {e}");
        }
    }
}

/// SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called, not
/// when the future is first polled, and a stop asked for before (recorded by
/// [`catch_stop_signals`]) makes it ready at once: a signal that arrives while the
/// server starts stops it gracefully instead of killing it or being lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        let wait = |s: Option<Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        async move {
            // Checked after tokio's handlers exist: a signal is either seen here or by them.
            if STOP_ASKED.load(Ordering::SeqCst) {
                return;
            }
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
