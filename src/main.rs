//! statusd: start-up only. Configuration, store, writer and server are wired here;
//! everything else lives in the library's modules (`src/lib.rs`), named after what they do.

use std::net::SocketAddr;
use std::time::Duration;

use statusd::{bootstrap, cli, cluster, expiry, external, housekeeping, http, server};
use tracing_subscriber::EnvFilter;

/// Caps the crate that logs websocket payloads below its payload-logging level.
const NO_PAYLOAD_LOGS: &str = "tungstenite=debug";

fn main() {
    let cli::Args { cfg, command } = cli::Args::from_env();
    if let Err(e) = cfg.validate() {
        eprintln!("statusd: {e}");
        std::process::exit(2);
    }
    match command {
        None | Some(cli::Command::Serve) => {}
        // The admin commands: one line of answer, an exit code, no server.
        Some(command) => std::process::exit(cli::main(cfg, command)),
    }
    let filter = match EnvFilter::try_new(&cfg.rust_log) {
        // tungstenite logs every websocket payload at trace level, and DDP payloads
        // carry passwords (digests) and resume tokens: its trace output is never let
        // through, whatever RUST_LOG asks for (issue 7: no secrets in logs).
        Ok(f) => f.add_directive(NO_PAYLOAD_LOGS.parse().expect("a valid directive")),
        Err(e) => {
            eprintln!("statusd: RUST_LOG: {e}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
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

async fn serve(cfg: statusd::config::Config) -> anyhow::Result<()> {
    let addr = SocketAddr::new(cfg.bind_ip, cfg.port);
    let app = bootstrap::start(cfg).await?;
    // Expiries that fell due while the server was down apply before anyone can look.
    expiry::catch_up(&app.core, &app.leader).await;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("PORT: cannot listen on {addr}: {e}"))?;
    tracing::info!("statusd listening on http://{addr}");

    tokio::spawn(housekeeping::run(app.clone()));

    tokio::spawn(expiry::run(app.core.clone(), app.leader.clone()));
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
        max_connections_per_ip: app.cfg.max_connections_per_ip,
    };
    let hub_app = app.clone();
    server::serve(listener, router, limits, async move {
        shutdown_signal().await;
        // Another instance takes over the once-only work at once.
        cluster::resign(&hub_app.core, &hub_app.leader).await;
        tracing::info!("shutting down: closing realtime connections");
        hub_app.hub.begin_shutdown();
    })
    .await;
    // Each session removes its connection and publishes the resulting offline change.
    app.hub.drained(Duration::from_secs(5)).await;
    tracing::info!("statusd stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
