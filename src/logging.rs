//! The server's logs: where they go (stderr), their form (text, coloured only on a
//! terminal, or one JSON object per line), which targets may log at all, the start-up
//! line's description of the store without credentials, and the access log.
//!
//! Secrets never reach the logs. The libraries under statusd log what passes through
//! them below `warn`: tungstenite every websocket frame at trace (DDP logins carry
//! password digests and resume tokens), h2 every frame at debug, async-nats its
//! CONNECT (user, password, token) at trace, tokio-postgres its SQL at debug, axum the
//! body of each rejection at trace. So every target outside this crate is capped at
//! `warn`, whatever `RUST_LOG` asks for: the cap is a filter of its own, applied on top
//! of the user's, so no directive of `RUST_LOG` (however specific) can lift it.

use std::io::IsTerminal;
use std::time::Duration;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The target of the access log's lines (`ACCESS_LOG=true`).
pub const ACCESS_TARGET: &str = "statusd::access";

/// The most any target outside statusd may log (see the module comment).
const LIBRARY_CAP: LevelFilter = LevelFilter::WARN;

/// What may log at all: statusd's own targets up to `most` (the most `RUST_LOG`
/// enables anywhere), every other at `warn` at most. Capping statusd at `most` too
/// keeps the process's overall maximum level at `RUST_LOG`'s, so the `log` records of
/// libraries (tungstenite logs each frame at trace) are dropped by the `log` macros
/// themselves instead of being asked about one by one.
fn caps(most: LevelFilter) -> Targets {
    Targets::new()
        .with_default(most.min(LIBRARY_CAP))
        .with_target("statusd", most)
}

/// Installs the subscriber: `RUST_LOG` (tracing's `EnvFilter` syntax), capped by
/// [`caps`]; the access log's target enabled when asked for, at any `RUST_LOG`.
/// Errors name the variable.
pub fn init(rust_log: &str, format: LogFormat, access_log: bool) -> Result<(), String> {
    let mut filter = EnvFilter::try_new(rust_log).map_err(|e| format!("RUST_LOG: {e}"))?;
    let access = if access_log { "info" } else { "off" };
    filter = filter.add_directive(
        format!("{ACCESS_TARGET}={access}")
            .parse()
            .map_err(|e| format!("ACCESS_LOG: {e}"))?,
    );
    // Colour only for a person at a terminal (and not when NO_COLOR asks otherwise):
    // escape codes in a file or the journal are noise.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let json = format == LogFormat::Json;
    let text_layer = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    let json_layer = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });
    let most = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    tracing_subscriber::registry()
        .with(caps(most))
        .with(filter)
        .with(text_layer)
        .with(json_layer)
        .try_init()
        .map_err(|e| format!("RUST_LOG: {e}"))
}

/// One access log line: the route's pattern (never the URI: a query string may carry
/// a token), the status, how long the answer took and the caller's user id, if any.
pub fn access(method: &str, route: &str, status: u16, took: Duration, user: Option<&str>) {
    tracing::info!(
        target: ACCESS_TARGET,
        method,
        route,
        status,
        duration_ms = took.as_secs_f64() * 1000.0,
        user = user.unwrap_or("-"),
    );
}

/// The authenticated caller of a request, put in the response's extensions by the
/// authentication middleware when the access log is on.
#[derive(Clone)]
pub struct AccessUser(pub String);

/// Where the data lives, for the start-up line: a SQLite file's path, or the hosts,
/// ports and database of a PostgreSQL URL, read by the parser that connects to it.
/// User names, passwords and the query string's parameters are left out.
pub fn describe_store(url: &str) -> String {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        return format!("sqlite:{}", shown.display());
    }
    match url.parse::<postgres::Config>() {
        Ok(config) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .enumerate()
                .map(|(i, host)| {
                    let host = match host {
                        postgres::config::Host::Tcp(h) => h.clone(),
                        #[cfg(unix)]
                        postgres::config::Host::Unix(p) => p.display().to_string(),
                    };
                    match config.get_ports().get(i).or(config.get_ports().first()) {
                        Some(port) => format!("{host}:{port}"),
                        None => host,
                    }
                })
                .collect();
            format!(
                "postgres://{}/{}",
                hosts.join(","),
                config.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "postgres (an unreadable URL)".into(),
    }
}

/// The NATS servers of a `NATS_URL` (comma-separated URLs), as host:port each,
/// without user names, passwords or tokens.
pub fn describe_nats(url: &str) -> String {
    url.split(',')
        .map(|one| match one.trim().parse::<async_nats::ServerAddr>() {
            Ok(addr) => format!("{}:{}", addr.host(), addr.port()),
            Err(_) => "(an unreadable URL)".into(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_descriptions_carry_no_credentials() {
        for (url, want) in [
            (
                "postgres://statusd:s3cret@db.example.net:5433/presence?sslmode=disable",
                "postgres://db.example.net:5433/presence",
            ),
            (
                "postgresql://u:p%40ss@h1:5432,h2:5433/db?password=other",
                "postgres://h1:5432,h2:5433/db",
            ),
            (
                "postgres://postgres@127.0.0.1/statusd",
                "postgres://127.0.0.1:5432/statusd",
            ),
            (
                "postgres://127.0.0.1/db?user=x&password=hunter2",
                "postgres://127.0.0.1:5432/db",
            ),
        ] {
            let got = describe_store(url);
            assert_eq!(got, want, "{url}");
            for secret in ["s3cret", "p%40ss", "other", "hunter2", "statusd:"] {
                assert!(!got.contains(secret), "{url} → {got}");
            }
        }
        assert_eq!(
            describe_store("postgres://user:pw@[::1"),
            "postgres (an unreadable URL)"
        );
        assert_eq!(
            describe_store("sqlite://no/such/dir/x.db"),
            "sqlite:no/such/dir/x.db"
        );
    }

    #[test]
    fn nats_descriptions_carry_no_credentials() {
        assert_eq!(
            describe_nats("nats://alice:s3cret@nats1.example.net:4223,tls://tok3n@nats2:4222"),
            "nats1.example.net:4223,nats2:4222"
        );
        assert_eq!(describe_nats("nats://127.0.0.1:4222"), "127.0.0.1:4222");
        let got = describe_nats("nats://u:p@:::");
        assert!(!got.contains("u:p"), "{got}");
    }

    #[test]
    fn libraries_are_capped_at_warn_and_statusd_is_not() {
        let caps = caps(LevelFilter::TRACE);
        for target in [
            "tungstenite::protocol",
            "tungstenite::protocol::frame",
            "tokio_tungstenite",
            "hyper::proto::h1",
            "h2::codec::framed_write",
            "axum::rejection",
            "async_nats",
            "tokio_postgres::prepare",
        ] {
            assert!(
                !caps.would_enable(target, &tracing::Level::DEBUG),
                "{target} may log at debug"
            );
            assert!(caps.would_enable(target, &tracing::Level::WARN), "{target}");
        }
        assert!(caps.would_enable("statusd::server", &tracing::Level::TRACE));
        assert!(caps.would_enable(ACCESS_TARGET, &tracing::Level::INFO));
        let quiet = super::caps(LevelFilter::ERROR);
        assert!(!quiet.would_enable("hyper", &tracing::Level::WARN));
        assert!(!quiet.would_enable("statusd", &tracing::Level::WARN));
        assert!(quiet.would_enable("statusd", &tracing::Level::ERROR));
    }
}
