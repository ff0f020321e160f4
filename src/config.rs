//! Every setting of the process, from environment variables or their flags (CONTRACT §1).
//! A leaf: the command line around it (the admin subcommands) is `cli::Args`.

#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    /// HTTP and websocket port.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Listen address.
    #[arg(long, env = "BIND_IP", default_value = "0.0.0.0")]
    pub bind_ip: std::net::IpAddr,
    /// Public URL, used in links such as avatarUrl.
    #[arg(long, env = "ROOT_URL", default_value = "http://localhost:3000")]
    pub root_url: String,
    /// sqlite://PATH (embedded, the default) or postgres://…
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/statusd.db")]
    pub database_url: String,
    /// When set, instances share presence through NATS (cluster mode).
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// The shared secret that seals every cluster message (HMAC-SHA256); required in
    /// cluster mode, at least 32 characters, the same on every instance.
    #[arg(long, env = "CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// The secret being rotated out: messages sealed with it are still accepted.
    #[arg(long, env = "CLUSTER_SECRET_PREVIOUS", hide_env_values = true)]
    pub cluster_secret_previous: Option<String>,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// When set (`127.0.0.1:9100`), `/metrics` is served on this address only, not on PORT.
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// A NATS credentials file (JWT and NKey seed) to authenticate with.
    #[arg(long, env = "NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
    /// A file holding an NKey seed to authenticate with.
    #[arg(long, env = "NATS_NKEY_FILE")]
    pub nats_nkey_file: Option<std::path::PathBuf>,
    /// CA certificate(s) (PEM) to verify the NATS server with; implies TLS.
    #[arg(long, env = "NATS_TLS_CA")]
    pub nats_tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for NATS TLS client authentication; needs NATS_TLS_KEY.
    #[arg(long, env = "NATS_TLS_CERT")]
    pub nats_tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "NATS_TLS_KEY")]
    pub nats_tls_key: Option<std::path::PathBuf>,
    /// Subject prefix of the cluster's NATS messages (instances sharing a store share it).
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "statusd")]
    pub nats_subject_prefix: String,
    /// An instance that has not sent a heartbeat for this many seconds is dead: its
    /// connections are reaped by the others (cluster mode).
    #[arg(long, env = "INSTANCE_DEAD_SECS", default_value_t = 30)]
    pub instance_dead_secs: u64,
    /// How long a webhook delivery is retried (exponential backoff, from 1 s up to 1 h
    /// apart) before it is given up, in hours (fractions allowed).
    #[arg(long, env = "WEBHOOK_RETRY_HOURS", default_value_t = 24.0)]
    pub webhook_retry_hours: f64,
    /// How long a webhook receiver has to answer one delivery, in seconds.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    pub webhook_timeout_secs: u64,
    /// How often each connected calendar (`statusd.calendars.*`) is fetched, in seconds
    /// (a conditional request: an unchanged calendar costs a 304).
    #[arg(long, env = "CALENDAR_SYNC_SECS", default_value_t = 300)]
    pub calendar_sync_secs: u64,
    /// The key that seals connected calendars' passwords: 32 bytes as 64 hex digits or
    /// base64. Without it, with SQLite, calendar.key beside the database is made and
    /// used; with PostgreSQL it is required to store a password (the same on every
    /// instance).
    #[arg(long, env = "CALENDAR_SECRET_KEY", hide_env_values = true)]
    pub calendar_secret_key: Option<String>,
    /// Let connected calendars' URLs reach private, loopback and link-local addresses
    /// (a CalDAV server on the same network); refused by default (SSRF).
    #[arg(long, env = "CALENDAR_ALLOW_PRIVATE", action = clap::ArgAction::Set,
          default_value_t = false, value_parser = clap::builder::BoolishValueParser::new())]
    pub calendar_allow_private: bool,
    /// On a start with no human user yet, create this admin.
    #[arg(long, env = "ADMIN_USERNAME")]
    pub admin_username: Option<String>,
    #[arg(long, env = "ADMIN_PASS", hide_env_values = true)]
    pub admin_pass: Option<String>,
    /// A file holding the first admin's password, instead of ADMIN_PASS (a trailing
    /// newline is ignored).
    #[arg(long, env = "ADMIN_PASS_FILE")]
    pub admin_pass_file: Option<std::path::PathBuf>,
    #[arg(long, env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    #[arg(long, env = "ADMIN_NAME")]
    pub admin_name: Option<String>,
    /// How many reverse proxies' X-Forwarded-For entries to trust.
    #[arg(long, env = "HTTP_FORWARDED_COUNT", default_value_t = 0)]
    pub http_forwarded_count: usize,
    /// Log filter (tracing EnvFilter syntax). Libraries never log below warn.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
    /// Log lines as text, or as one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log one line per HTTP request: method, route, status, duration, user id
    /// (true/false, also 1/0, yes/no, on/off).
    #[arg(long, env = "ACCESS_LOG", action = clap::ArgAction::Set, default_value_t = false,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub access_log: bool,
    /// A realtime connection with no traffic for this many seconds is stale and reaped.
    #[arg(long, env = "PRESENCE_STALE_SECS", default_value_t = 300)]
    pub presence_stale_secs: u64,
    /// The server pings a realtime connection idle for this many seconds, and closes it
    /// when it stays silent as long again.
    #[arg(long, env = "DDP_PING_SECS", default_value_t = 30)]
    pub ddp_ping_secs: u64,
    /// Seconds a client may take to send a request's headers (slowloris guard).
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,
    /// Seconds a client may take to send a request's body.
    #[arg(long, env = "HTTP_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub http_body_timeout_secs: u64,
    /// Largest request body in bytes (413 above it).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Simultaneous connections (HTTP and websocket) allowed from one client IP; 0 = no
    /// limit. Default: 1000, or no limit behind proxies (HTTP_FORWARDED_COUNT > 0: every
    /// connection then comes from the proxy).
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Largest DDP frame a client may send, in bytes.
    #[arg(long, env = "WS_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_frame_bytes: usize,
    /// Most subscriptions one realtime connection may hold.
    #[arg(long, env = "WS_MAX_SUBSCRIPTIONS", default_value_t = 256)]
    pub ws_max_subscriptions: usize,
    /// Most users one realtime connection may watch through `stream-user-presence`.
    #[arg(long, env = "WS_MAX_WATCHED_USERS", default_value_t = 5000)]
    pub ws_max_watched_users: usize,
    /// Changes queued for one realtime connection before it counts as a slow consumer
    /// and is closed (close code 1013, "slow consumer: …"); the client reconnects and
    /// resynchronises instead of silently missing changes.
    #[arg(long, env = "WS_QUEUE_EVENTS", default_value_t = 4096)]
    pub ws_queue_events: usize,
    /// The most connections × status changes per second this instance sends the global
    /// `user-status` stream (`stream-notify-logged`); past it for 5 seconds the server
    /// turns `Presence_broadcast_disabled` on for the whole workspace and tells the
    /// admins, as Rocket.Chat does past its connection cap; an admin turns it back on
    /// with `presence.enableBroadcast`. 0: no budget.
    #[arg(long, env = "PRESENCE_BROADCAST_BUDGET", default_value_t = DEFAULT_BROADCAST_BUDGET)]
    pub presence_broadcast_budget: u64,
    /// The most concurrent password checks (bcrypt); more logins wait their turn.
    #[arg(long, env = "LOGIN_CONCURRENCY", default_value_t = 2)]
    pub login_concurrency: usize,
    /// The Rocket.Chat version `/api/info` reports (x.y.z): clients switch features on
    /// it. The default is the newest whose status features statusd implements; set an
    /// older one for clients pinned to older servers.
    #[arg(long, env = "RC_COMPAT_VERSION", default_value = DEFAULT_RC_COMPAT_VERSION)]
    pub rc_compat_version: String,
}

/// `PRESENCE_BROADCAST_BUDGET`'s default: user-status frames per second one instance
/// was measured to deliver with p99 ≤ 250 ms on 2 cores (BENCHMARKS.md, "Scale").
pub const DEFAULT_BROADCAST_BUDGET: u64 = 200_000;

/// The Rocket.Chat version `/api/info` reports unless `RC_COMPAT_VERSION` says
/// otherwise: 8.6 added the status features statusd has (`expiresAt`, `statusSource`,
/// `statusExpiresAt`); see docs/decisions.md.
pub const DEFAULT_RC_COMPAT_VERSION: &str = "8.6.0";

/// Is `v` a version as Rocket.Chat numbers its releases, `major.minor.patch` of digits
/// (at most 4 each)?
pub fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `LOG_FORMAT`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The shortest `CLUSTER_SECRET` accepted (characters): a guessable secret seals
/// nothing.
pub const MIN_SECRET_LEN: usize = 32;

/// `MAX_CONNECTIONS_PER_IP` when it is not set and no proxy is in front.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1000;

impl Config {
    /// The per-address connection cap in force (0 = none).
    pub fn max_connections_per_ip(&self) -> usize {
        match self.max_connections_per_ip {
            Some(n) => n,
            None if self.http_forwarded_count > 0 => 0,
            None => DEFAULT_MAX_CONNECTIONS_PER_IP,
        }
    }

    /// Reads `ADMIN_PASS_FILE` into `admin_pass` (the server does at start, so a
    /// missing, unreadable or empty file stops it with one line naming the variable).
    pub fn read_admin_pass_file(&mut self) -> Result<(), String> {
        let Some(path) = &self.admin_pass_file else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("ADMIN_PASS_FILE: cannot read {}: {e}", path.display()))?;
        let password = text.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            return Err(format!("ADMIN_PASS_FILE: {} is empty", path.display()));
        }
        self.admin_pass = Some(password.to_string());
        Ok(())
    }

    /// The cluster's secrets and NATS options: one line naming the variable.
    fn validate_cluster(&self) -> Result<(), String> {
        let short = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() < MIN_SECRET_LEN);
        if self.nats_url.is_some() && self.cluster_secret.is_none() {
            return Err(format!(
                "CLUSTER_SECRET: required in cluster mode (NATS_URL is set): the same secret \
                 of at least {MIN_SECRET_LEN} characters on every instance"
            ));
        }
        if short(&self.cluster_secret) {
            return Err(format!(
                "CLUSTER_SECRET: must be at least {MIN_SECRET_LEN} characters"
            ));
        }
        if short(&self.cluster_secret_previous) {
            return Err(format!(
                "CLUSTER_SECRET_PREVIOUS: must be at least {MIN_SECRET_LEN} characters"
            ));
        }
        if self.cluster_secret_previous.is_some() && self.cluster_secret.is_none() {
            return Err("CLUSTER_SECRET_PREVIOUS: needs CLUSTER_SECRET".into());
        }
        if self.nats_tls_cert.is_some() != self.nats_tls_key.is_some() {
            return Err("NATS_TLS_CERT and NATS_TLS_KEY: set both or neither".into());
        }
        if self.nats_creds.is_some() && self.nats_nkey_file.is_some() {
            return Err("NATS_CREDS and NATS_NKEY_FILE: set one, not both".into());
        }
        Ok(())
    }

    /// Checks what clap cannot: one line naming the variable on the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.database_url.starts_with("sqlite://")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(format!(
                "DATABASE_URL: expected sqlite://PATH or postgres://…, got {:?}",
                self.database_url
            ));
        }
        if self.database_url == "sqlite://" {
            return Err("DATABASE_URL: sqlite:// needs a path".into());
        }
        if !(self.root_url.starts_with("http://") || self.root_url.starts_with("https://")) {
            return Err(format!(
                "ROOT_URL: expected an http:// or https:// URL, got {:?}",
                self.root_url
            ));
        }
        if let Some(url) = &self.nats_url {
            if !url.starts_with("nats://") && !url.starts_with("tls://") {
                return Err(format!("NATS_URL: expected nats://host:port, got {url:?}"));
            }
        }
        self.validate_cluster()?;
        if let Some(key) = self.calendar_secret_key.as_deref().map(str::trim) {
            use base64::Engine as _;
            let bytes = hex::decode(key)
                .ok()
                .or_else(|| base64::engine::general_purpose::STANDARD.decode(key).ok());
            if !key.is_empty() && bytes.is_none_or(|b| b.len() != 32) {
                return Err(
                    "CALENDAR_SECRET_KEY: expected 32 bytes as 64 hex digits or base64".into(),
                );
            }
        }
        if self.admin_pass.is_some() && self.admin_pass_file.is_some() {
            return Err("ADMIN_PASS and ADMIN_PASS_FILE: set one, not both".into());
        }
        if self.admin_username.is_some()
            != (self.admin_pass.is_some() || self.admin_pass_file.is_some())
        {
            return Err(
                "ADMIN_USERNAME and ADMIN_PASS (or ADMIN_PASS_FILE): set both or neither".into(),
            );
        }
        if self.presence_stale_secs == 0 {
            return Err("PRESENCE_STALE_SECS: must be at least 1".into());
        }
        if self.ddp_ping_secs == 0 {
            return Err("DDP_PING_SECS: must be at least 1".into());
        }
        if self.instance_dead_secs < 2 {
            return Err("INSTANCE_DEAD_SECS: must be at least 2".into());
        }
        if self.nats_subject_prefix.is_empty()
            || self
                .nats_subject_prefix
                .contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
        {
            return Err(format!(
                "NATS_SUBJECT_PREFIX: not a usable subject prefix: {:?}",
                self.nats_subject_prefix
            ));
        }
        for (name, v) in [
            (
                "HTTP_HEADER_TIMEOUT_SECS",
                self.http_header_timeout_secs as usize,
            ),
            (
                "HTTP_BODY_TIMEOUT_SECS",
                self.http_body_timeout_secs as usize,
            ),
            ("MAX_BODY_BYTES", self.max_body_bytes),
            ("WS_MAX_FRAME_BYTES", self.ws_max_frame_bytes),
            ("WS_MAX_SUBSCRIPTIONS", self.ws_max_subscriptions),
            ("WS_MAX_WATCHED_USERS", self.ws_max_watched_users),
            ("WS_QUEUE_EVENTS", self.ws_queue_events),
        ] {
            if v == 0 {
                return Err(format!("{name}: must be at least 1"));
            }
        }
        if !is_version(&self.rc_compat_version) {
            return Err(format!(
                "RC_COMPAT_VERSION: expected a version such as 8.6.0 (major.minor.patch), got {:?}",
                self.rc_compat_version
            ));
        }
        if self.login_concurrency == 0 {
            return Err("LOGIN_CONCURRENCY: must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_major_minor_patch_of_digits() {
        for v in [DEFAULT_RC_COMPAT_VERSION, "7.10.0", "0.0.1", "10.0.12"] {
            assert!(is_version(v), "{v}");
        }
        for v in [
            "",
            "8",
            "8.6",
            "8.6.0.1",
            "v8.6.0",
            "8.6.x",
            "8..0",
            "8.6.0-rc.1",
            " 8.6.0",
            "99999.0.0",
        ] {
            assert!(!is_version(v), "{v}");
        }
    }
}
