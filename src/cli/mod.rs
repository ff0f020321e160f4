//! The admin commands of the `statusd` binary: users, personal access tokens, settings
//! and the Rocket.Chat import. Each opens the same core as the server (`state::Core`:
//! the store `DATABASE_URL` names, loaded into a model with a writer of its own) and
//! runs its change as a writer job with the REST routes' account rules
//! (`crate::accounts`), so it commits through the same `Store::commit`.
//! That is safe while a server runs on the same database: the database serialises the
//! writers, and the server notices the commit within a fraction of a second
//! (`crate::external`): on SQLite by the file's data version, on PostgreSQL by a NOTIFY
//! sent with the commit. A command that changed something returns only once every
//! running server has applied the change (at most 5 s; it says which).
//!
//! Every command prints its answer on stdout (one line, or one line per item for the
//! `list` commands) and exits 0; on failure it prints one line (`statusd: …`, a refusal
//! in the rules' own words) to stderr and exits 1. The database a command used is
//! named on stderr (`statusd: using sqlite:/var/lib/statusd/statusd.db`; host and
//! database only for PostgreSQL, never credentials).
//!
//! A command refuses to create a database: where `DATABASE_URL` names no statusd
//! database (a wrong working directory, a typo) it exits 1 naming the place, unless
//! `--init` is given. The server creates its database on first start by itself.
//! `statusd migrate --check` exits [`MIGRATIONS_PENDING`] when the schema is behind.
//! `statusd backup|restore FILE` copy the SQLite file (`store::sqlite::backup`) without
//! loading it; on PostgreSQL they exit 1 naming `pg_dump`/`pg_restore`.

mod healthcheck;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};

use crate::accounts::identity::Purpose;
use crate::accounts::users::{self, NewAccount};
use crate::accounts::{password, tokens};
use crate::auth::defaults;
use crate::config::Config;
use crate::model::UserKind;
use crate::state::Core;
use crate::store::Role;

/// The command line: the configuration (every flag has its environment variable) and
/// an optional admin command.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "statusd",
    version,
    about = "A Rocket.Chat-compatible user status and presence server"
)]
pub struct Args {
    #[command(flatten)]
    pub cfg: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Admin commands: create the database when `DATABASE_URL` names none yet (without
    /// it they refuse, so a command run in the wrong directory makes no empty database).
    #[arg(long, global = true)]
    pub init: bool,
}

/// The exit code of `statusd migrate --check` when migrations are pending (0: none;
/// 1: the check itself failed).
pub const MIGRATIONS_PENDING: i32 = 3;

impl Args {
    /// Parses the command line and environment. `--help` and `--version` print and
    /// exit 0; a bad value prints clap's first line (it names the flag and variable,
    /// e.g. `--port <PORT>`) and exits 2, so every start failure is one line.
    pub fn from_env() -> Args {
        match Args::try_parse() {
            Ok(args) => args,
            Err(e) if !e.use_stderr() => e.exit(),
            Err(e) => {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                eprintln!("statusd: {}", first.trim_start_matches("error: "));
                std::process::exit(2);
            }
        }
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage users: add, list, set-password, role, disable, enable, delete.
    #[command(subcommand)]
    User(UserCommand),
    /// Personal access tokens (for bots).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read and change workspace settings.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Webhook endpoints: add, list, delete.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Import users from another server.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Apply the database's pending migrations (the server does so on start), or with
    /// `--check` only report them: exit 0 when none are pending, 3 when some are.
    Migrate {
        /// Report pending migrations without applying them.
        #[arg(long)]
        check: bool,
    },
    /// Copy the SQLite database to FILE while the server may run (SQLite's online
    /// backup API: one consistent snapshot). On PostgreSQL: use pg_dump.
    Backup {
        /// Where the copy goes (replaced atomically if it exists; mode 0600).
        file: std::path::PathBuf,
    },
    /// Replace the SQLite database with FILE, a statusd backup. Stop the server first:
    /// it refuses while a process has the database open. On PostgreSQL: use pg_restore.
    Restore {
        /// The backup to restore.
        file: std::path::PathBuf,
    },
    /// Ask the server at BIND_IP:PORT for /api/health: exit 0 when healthy, 1 if not
    /// (a container's HEALTHCHECK; opens no database).
    Healthcheck,
}

impl Command {
    /// Does the command change the database? Then it waits until the running server
    /// has applied the change, and says so ([`seen_note`]).
    fn writes(&self) -> bool {
        match self {
            Command::Serve | Command::Healthcheck => false,
            Command::Backup { .. } | Command::Restore { .. } => false,
            Command::User(UserCommand::List) => false,
            Command::User(_) => true,
            Command::Token(TokenCommand::List { .. }) => false,
            Command::Token(_) => true,
            Command::Settings(SettingsCommand::Set { .. }) => true,
            Command::Settings(_) => false,
            Command::Webhook(WebhookCommand::List) => false,
            Command::Webhook(_) => true,
            Command::Import(_) => true,
            Command::Migrate { check } => !check,
        }
    }
}

/// Printed to stderr after a change, by what [`crate::external::wait_for_servers`]
/// found: the command returns once every running server has applied its change.
pub fn seen_note(seen: crate::external::Seen) -> String {
    use crate::external::{Seen, WAIT};
    match seen {
        Seen::Applied => "statusd: applied by the running server".into(),
        Seen::NoServer => {
            "statusd: no server is running on this database: it reads the change when it starts"
                .into()
        }
        Seen::NotYet(n) => format!(
            "statusd: {n} running server{} did not confirm this change within {} s: a server \
             applies it when it next reads the database",
            if n == 1 { "" } else { "s" },
            WAIT.as_secs()
        ),
    }
}

/// `statusd user …`
#[derive(Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// Create a user (a bot when the roles include `bot`).
    Add {
        username: String,
        /// The password; `-` reads it from the first line of standard input.
        /// Required unless the user is a bot (bots log in with a personal access token).
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Display name (default: the username).
        #[arg(long)]
        name: Option<String>,
        /// A role; repeat or separate with commas (default: user).
        #[arg(long = "role", value_name = "ROLE", value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Every user, one a line: username, id, kind, active or disabled, roles
    /// (tab-separated, by username).
    List,
    /// Set a user's password; ends every login session of theirs (personal access
    /// tokens stay).
    #[command(name = "set-password", visible_alias = "passwd")]
    Passwd {
        username: String,
        /// The new password; `-` (the default) reads it from the first line of
        /// standard input.
        #[arg(long, default_value = "-")]
        password: String,
    },
    /// Give a user a role, or take one away.
    Role {
        username: String,
        #[arg(
            long,
            value_name = "ROLE",
            conflicts_with = "remove",
            required_unless_present = "remove"
        )]
        add: Option<String>,
        #[arg(long, value_name = "ROLE")]
        remove: Option<String>,
    },
    /// Deactivate a user: they cannot log in and every session of theirs ends.
    Disable { username: String },
    /// Activate a deactivated user again.
    Enable { username: String },
    /// Delete a user and every token of theirs (never rocket.cat nor the last admin).
    Delete { username: String },
}

/// `statusd token …`
#[derive(Subcommand, Debug, Clone)]
pub enum TokenCommand {
    /// Create a personal access token (how a bot logs in) and print it once.
    Create {
        username: String,
        /// The token's name (unique per user).
        #[arg(long)]
        name: String,
    },
    /// A user's personal access tokens, one a line: name, created, the secret's last
    /// characters (tab-separated, oldest first). Never the secrets.
    List { username: String },
    /// Revoke a user's personal access token by its name.
    Revoke { username: String, name: String },
}

/// `statusd webhook …`
#[derive(Subcommand, Debug, Clone)]
pub enum WebhookCommand {
    /// Register an endpoint and print its id and signing secret (shown once).
    Add {
        /// http:// or https:// URL the deliveries are POSTed to.
        url: String,
        /// The events, comma-separated: status.changed, status-text.changed,
        /// user.created, user.deactivated, claim.set, claim.ended.
        #[arg(long, value_delimiter = ',', required = true)]
        event: Vec<String>,
        /// Only about these users (usernames or ids, comma-separated).
        #[arg(long, value_delimiter = ',')]
        user: Vec<String>,
        /// Only about users with one of these roles (comma-separated).
        #[arg(long, value_delimiter = ',')]
        role: Vec<String>,
    },
    /// Every endpoint, one a line: id, url, events, active|inactive (tab-separated,
    /// oldest first). Never the secrets.
    List,
    /// Delete an endpoint by id, with its undelivered deliveries.
    Delete { id: String },
}

/// `statusd settings …`
#[derive(Subcommand, Debug, Clone)]
pub enum SettingsCommand {
    /// Every setting, one a line: `ID = VALUE` (the value as JSON), by id.
    List,
    /// Print a setting's value as JSON.
    Get { id: String },
    /// Change a setting: `true`/`false`, a number or text, as the setting's type needs.
    Set { id: String, value: String },
}

/// `statusd import …`
#[derive(Subcommand, Debug, Clone)]
pub enum ImportCommand {
    /// Import users from a mongoexport of Rocket.Chat's `users` collection (JSON lines
    /// or an array). Running it again updates the users instead of duplicating them.
    Rocketchat {
        /// The export file.
        file: std::path::PathBuf,
        /// Also update users that exist already (matched by `_id` or username); without
        /// it they are skipped. `rocket.cat`'s roles and password are never changed.
        #[arg(long)]
        update_existing: bool,
        /// The largest export read, in bytes.
        #[arg(long, default_value_t = crate::import::MAX_BYTES)]
        max_bytes: u64,
    },
}

/// Runs an admin command; returns the process exit code.
pub fn main(cfg: Config, command: Command, init: bool) -> i32 {
    if let Command::Migrate { check: true } = command {
        return migrate_check(&cfg);
    }
    if let Command::Backup { file } | Command::Restore { file } = &command {
        let restore = matches!(command, Command::Restore { .. });
        return match backup_or_restore(&cfg, file, restore) {
            Ok(line) => {
                println!("{line}");
                0
            }
            Err(e) => {
                eprintln!("statusd: {}", format!("{e:#}").replace('\n', " "));
                1
            }
        };
    }
    if let Command::Healthcheck = command {
        return match healthcheck::check(&cfg) {
            Ok(line) => {
                println!("{line}");
                0
            }
            Err(e) => {
                eprintln!("statusd: {}", format!("{e:#}").replace('\n', " "));
                1
            }
        };
    }
    // Logs go to stderr, quiet unless RUST_LOG asks: stdout is the command's answer.
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) => f,
        Err(_) => "warn".into(),
    };
    // The server's logging: libraries capped at warn, colour only on a terminal.
    if let Err(e) = crate::logging::init(&filter, crate::config::LogFormat::Text, false) {
        eprintln!("statusd: {e}");
        return 2;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("statusd: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(cfg, command, init)) {
        Ok((line, seen)) => {
            println!("{line}");
            match seen {
                Some(Ok(seen)) => eprintln!("{}", seen_note(seen)),
                Some(Err(e)) => eprintln!(
                    "statusd: could not learn whether the running server applied this change: {}",
                    format!("{e:#}").replace('\n', " ")
                ),
                None => {}
            }
            0
        }
        Err(e) => {
            // A refused change reads in the rules' own words (`error::Error`'s text).
            eprintln!("statusd: {}", format!("{e:#}").replace('\n', " "));
            1
        }
    }
}

/// Runs the command; after a change, waits for the running servers to apply it
/// (`crate::external`) and says what it found.
async fn run(
    cfg: Config,
    command: Command,
    init: bool,
) -> anyhow::Result<(String, Option<anyhow::Result<crate::external::Seen>>)> {
    let core = open(&cfg, init).await?;
    let writes = command.writes();
    let line = run_command(&cfg, &core, command).await?;
    let seen = if writes {
        let alive = std::time::Duration::from_secs(cfg.instance_dead_secs);
        Some(crate::external::wait_for_servers(&core, alive).await)
    } else {
        None
    };
    Ok((line, seen))
}

async fn run_command(cfg: &Config, core: &Core, command: Command) -> anyhow::Result<String> {
    match command {
        Command::Serve
        | Command::Healthcheck
        | Command::Backup { .. }
        | Command::Restore { .. } => {
            bail!("not an admin command")
        }
        Command::Migrate { .. } => {
            // Opening the store applied what was pending.
            let url = cfg.database_url.clone();
            let state =
                tokio::task::spawn_blocking(move || crate::store::schema_state(&url)).await??;
            Ok(format!(
                "schema at version {} of {}: up to date",
                state.version.unwrap_or(0),
                state.known
            ))
        }
        Command::User(c) => user(core, c).await,
        Command::Token(TokenCommand::Create { username, name }) => {
            token_create(core, &username, &name).await
        }
        Command::Token(TokenCommand::List { username }) => token_list(core, &username),
        Command::Token(TokenCommand::Revoke { username, name }) => {
            token_revoke(core, &username, &name).await
        }
        Command::Webhook(c) => webhook(core, c).await,
        Command::Settings(SettingsCommand::List) => Ok(settings_list(core)),
        Command::Settings(SettingsCommand::Get { id }) => settings_get(core, &id),
        Command::Settings(SettingsCommand::Set { id, value }) => {
            settings_set(core, &id, &value).await
        }
        Command::Import(ImportCommand::Rocketchat {
            file,
            update_existing,
            max_bytes,
        }) => {
            let opts = crate::import::Options {
                update_existing,
                max_bytes,
            };
            let report = crate::import::rocketchat(core, &file, opts).await?;
            Ok(report.to_string())
        }
    }
}

/// Where the data lives, for the operator: a SQLite file's absolute path (even before
/// it exists), or a PostgreSQL URL's hosts and database without credentials.
fn describe(url: &str) -> String {
    match url.strip_prefix("sqlite://") {
        Some(path) if !std::path::Path::new(path).exists() => match std::path::absolute(path) {
            Ok(p) => format!("sqlite:{}", p.display()),
            Err(_) => crate::logging::describe_store(url),
        },
        _ => crate::logging::describe_store(url),
    }
}

/// Refuses a `DATABASE_URL` that names no statusd database, unless `init`: an admin
/// command run in the wrong place must not leave an empty database behind.
async fn check_exists(url: &str, init: bool) -> anyhow::Result<()> {
    if init {
        return Ok(());
    }
    let u = url.to_string();
    let state = tokio::task::spawn_blocking(move || crate::store::schema_state(&u))
        .await?
        .context("DATABASE_URL")?;
    if state.version.is_none() {
        bail!(
            "no statusd database at {} (check DATABASE_URL; --init creates one)",
            describe(url)
        );
    }
    Ok(())
}

/// Opens the store and loads it into a model that a writer of this process changes:
/// the same core as the server's, without the server around it.
async fn open(cfg: &Config, init: bool) -> anyhow::Result<Core> {
    check_exists(&cfg.database_url, init).await?;
    let url = cfg.database_url.clone();
    let loaded =
        tokio::task::spawn_blocking(move || Core::load(&url, Role::Admin, |_| {})).await??;
    eprintln!("statusd: using {}", describe(&cfg.database_url));
    Ok(loaded.start(None))
}

/// `statusd backup FILE` / `statusd restore FILE` (`store::sqlite::backup`). Neither
/// opens the database as a store: a backup only reads it, a restore replaces the file.
/// PostgreSQL has its own tools, and the command says so.
fn backup_or_restore(
    cfg: &Config,
    file: &std::path::Path,
    restore: bool,
) -> anyhow::Result<String> {
    let url = &cfg.database_url;
    let Some(path) = url.strip_prefix("sqlite://") else {
        if restore {
            bail!("DATABASE_URL is not SQLite: restore a PostgreSQL database with pg_restore (see README, Backup and restore)");
        }
        bail!("DATABASE_URL is not SQLite: back up a PostgreSQL database with pg_dump (see README, Backup and restore)");
    };
    let db = std::path::Path::new(path);
    let shown = describe(url);
    if restore {
        crate::store::sqlite::backup::restore(file, db)?;
        eprintln!("statusd: using {shown}");
        return Ok(format!("restored {} into {shown}", file.display()));
    }
    let state = crate::store::schema_state(url).context("DATABASE_URL")?;
    if state.version.is_none() {
        bail!("no statusd database at {shown} (check DATABASE_URL)");
    }
    eprintln!("statusd: using {shown}");
    let pages = crate::store::sqlite::backup::backup(db, file)?;
    Ok(format!(
        "backed up {shown} to {} ({pages} pages)",
        file.display()
    ))
}

/// `statusd migrate --check`: the schema's version against this binary's, nothing
/// applied. Exit 0 when up to date, [`MIGRATIONS_PENDING`] when behind, 1 when the
/// database cannot be read or is not there.
fn migrate_check(cfg: &Config) -> i32 {
    let shown = describe(&cfg.database_url);
    let state = match crate::store::schema_state(&cfg.database_url) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "statusd: DATABASE_URL: {}",
                format!("{e:#}").replace('\n', " ")
            );
            return 1;
        }
    };
    let Some(version) = state.version else {
        eprintln!("statusd: no statusd database at {shown} (check DATABASE_URL)");
        return 1;
    };
    eprintln!("statusd: using {shown}");
    let pending: Vec<String> = state.pending().map(|v| v.to_string()).collect();
    if pending.is_empty() {
        println!(
            "schema at version {version} of {}: no migration pending",
            state.known
        );
        0
    } else {
        println!(
            "schema at version {version} of {}: {} migration{} pending ({})",
            state.known,
            pending.len(),
            if pending.len() == 1 { "" } else { "s" },
            pending.join(", ")
        );
        MIGRATIONS_PENDING
    }
}

/// A password argument; `-` reads the first line of standard input.
fn password_arg(arg: &str) -> anyhow::Result<String> {
    let password = if arg == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        arg.to_string()
    };
    password::required(&password)?;
    Ok(password)
}

async fn user(core: &Core, command: UserCommand) -> anyhow::Result<String> {
    match command {
        UserCommand::Add {
            username,
            password,
            email,
            name,
            roles,
        } => {
            let roles = if roles.is_empty() {
                vec![defaults::USER.to_string()]
            } else {
                roles
            };
            users::check_roles(&roles)?;
            let bot = roles.iter().any(|r| r == defaults::BOT);
            let password_hash = match password {
                Some(p) => Some(password::hash_off_thread(&password_arg(&p)?).await?),
                None if bot => None,
                None => bail!("--password is required (only a bot may go without one)"),
            };
            let username = username.trim().to_string();
            let email = email
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty());
            let acct = NewAccount {
                password_hash,
                roles,
                kind: if bot { UserKind::Bot } else { UserKind::User },
                ..NewAccount::person(&username, &name.unwrap_or_else(|| username.clone()), email)
            };
            let user = core
                .writer
                .run(move |tx| users::create(tx, acct, Purpose::Create))
                .await?;
            Ok(format!(
                "created {} {} (id {}, roles {})",
                user.kind.as_str(),
                user.username,
                user.id,
                user.roles.join(",")
            ))
        }
        UserCommand::Passwd { username, password } => {
            let hash = password::hash_off_thread(&password_arg(&password)?).await?;
            let user = core
                .writer
                .run(move |tx| users::set_password(tx, &username, hash))
                .await?;
            Ok(format!("changed the password of {}", user.username))
        }
        UserCommand::Role {
            username,
            add,
            remove,
        } => {
            let (role, adding) = match (add, remove) {
                (Some(r), None) => (r, true),
                (None, Some(r)) => (r, false),
                _ => bail!("give one of --add ROLE or --remove ROLE"),
            };
            let (role_id, _, _) = defaults::role(&role).ok_or_else(|| {
                crate::error::Error::refused("error-role-not-found", "Role not found")
            })?;
            let user = core
                .writer
                .run(move |tx| {
                    if adding {
                        users::add_role(tx, &username, role_id)
                    } else {
                        users::remove_role(tx, &username, role_id)
                    }
                })
                .await?;
            Ok(format!(
                "{} {role_id} {} {}: roles now {}",
                if adding { "added" } else { "removed" },
                if adding { "to" } else { "from" },
                user.username,
                user.roles.join(",")
            ))
        }
        UserCommand::Disable { username } => set_active(core, username, false).await,
        UserCommand::Enable { username } => set_active(core, username, true).await,
        UserCommand::List => Ok(user_list(core)),
        UserCommand::Delete { username } => {
            let shown = core
                .model
                .read()
                .user_by_username(&username)
                .map(|u| u.username.clone())
                .unwrap_or_else(|| username.clone());
            core.writer
                .run(move |tx| users::delete(tx, users::Named::Username(&username)))
                .await?;
            Ok(format!("deleted {shown}"))
        }
    }
}

/// `statusd user list`: one tab-separated line per user, by username.
fn user_list(core: &Core) -> String {
    let m = core.model.read();
    let mut all: Vec<_> = m.users.values().cloned().collect();
    all.sort_by_key(|u| u.username.to_lowercase());
    if all.is_empty() {
        return "no users".into();
    }
    all.iter()
        .map(|u| {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                u.username,
                u.id,
                u.kind.as_str(),
                if u.active { "active" } else { "disabled" },
                u.roles.join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `statusd user disable|enable`: users.update's rules (`accounts::users::set_active`).
async fn set_active(core: &Core, username: String, active: bool) -> anyhow::Result<String> {
    let (user, ended) = core
        .writer
        .run(move |tx| users::set_active(tx, &username, active))
        .await?;
    Ok(if active {
        format!("enabled {}", user.username)
    } else {
        format!(
            "disabled {} ({ended} token{} revoked)",
            user.username,
            if ended == 1 { "" } else { "s" }
        )
    })
}

async fn token_create(core: &Core, username: &str, name: &str) -> anyhow::Result<String> {
    let name = tokens::token_name(name)?;
    let user = core
        .model
        .read()
        .user_by_username(username)
        .ok_or_else(crate::error::Error::invalid_user)?;
    if !user.active {
        bail!("{} is disabled: enable the user first", user.username);
    }
    let (user_id, token_name) = (user.id.clone(), name.clone());
    let token = core
        .writer
        .run(move |tx| tokens::issue_personal(tx, &user_id, token_name, false, false))
        .await?;
    Ok(format!(
        "created token {name:?} for {}: X-User-Id={} X-Auth-Token={token}",
        user.username, user.id
    ))
}

/// The user named `username` as the model has them.
fn named_user(core: &Core, username: &str) -> anyhow::Result<std::sync::Arc<crate::model::User>> {
    Ok(core
        .model
        .read()
        .user_by_username(username)
        .ok_or_else(crate::error::Error::invalid_user)?)
}

/// `statusd token list`: what users.getPersonalAccessTokens shows, one token a line.
fn token_list(core: &Core, username: &str) -> anyhow::Result<String> {
    let user = named_user(core, username)?;
    let m = core.model.read();
    let lines: Vec<String> = tokens::personal_tokens(&m, &user.id)
        .into_iter()
        .map(|(name, last_part, _, created)| {
            format!("{name}\t{}\t…{last_part}", crate::model::iso(&created))
        })
        .collect();
    Ok(if lines.is_empty() {
        format!("{} has no personal access tokens", user.username)
    } else {
        lines.join("\n")
    })
}

/// `statusd token revoke`: users.removePersonalAccessToken for the named user.
async fn token_revoke(core: &Core, username: &str, name: &str) -> anyhow::Result<String> {
    let name = tokens::token_name(name)?;
    let user = named_user(core, username)?;
    let (user_id, token_name) = (user.id.clone(), name.clone());
    core.writer
        .run(move |tx| tokens::revoke_personal(tx, &user_id, &token_name))
        .await?;
    Ok(format!("revoked token {name:?} of {}", user.username))
}

/// `statusd settings list`: every setting statusd knows, `ID = VALUE`, by id.
fn settings_list(core: &Core) -> String {
    let m = core.model.read();
    let mut defs: Vec<_> = crate::settings::DEFINITIONS.iter().collect();
    defs.sort_by_key(|d| d.id);
    defs.iter()
        .map(|d| {
            let value = m
                .setting(d.id)
                .cloned()
                .unwrap_or_else(|| d.default_value());
            format!("{} = {value}", d.id)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn settings_get(core: &Core, id: &str) -> anyhow::Result<String> {
    let stored = core.model.read().setting(id).cloned();
    let value = match (stored, crate::settings::definition(id)) {
        (Some(v), _) => v,
        (None, Some(def)) => def.default_value(),
        (None, None) => bail!("unknown setting {id:?}"),
    };
    Ok(value.to_string())
}

async fn settings_set(core: &Core, id: &str, text: &str) -> anyhow::Result<String> {
    let def = crate::settings::definition(id).ok_or_else(|| anyhow!("unknown setting {id:?}"))?;
    let value = def
        .parse_text(text)
        .ok_or_else(|| anyhow!("{text:?} is not a valid value for {id} ({:?})", def.kind))?;
    let new = value.clone();
    let old = core
        .writer
        .run(move |tx| {
            let old = tx.setting(def.id);
            tx.put_setting(def.id, new);
            Ok(old)
        })
        .await?;
    let old = old.unwrap_or_else(|| def.default_value());
    Ok(format!("{id} = {value} (was {old})"))
}

/// `statusd webhook …`: the rules of `statusd.webhooks.*`.
async fn webhook(core: &Core, command: WebhookCommand) -> anyhow::Result<String> {
    match command {
        WebhookCommand::Add {
            url,
            event,
            user,
            role,
        } => {
            let user_ids: Vec<String> = {
                let m = core.model.read();
                user.iter()
                    .map(|u| match m.user_by_username(u) {
                        Some(found) => Ok(found.id.clone()),
                        None if m.users.contains_key(u) => Ok(u.clone()),
                        None => Err(anyhow::anyhow!("no user {u:?}")),
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let spec = crate::webhooks::Spec::checked(&url, &event, &user_ids, &role, true)?;
            let (w, secret) = core
                .writer
                .run(move |tx| crate::webhooks::create(tx, spec))
                .await?;
            Ok(format!(
                "created webhook {} for {} (events {}); secret {secret} (shown once)",
                w.id,
                w.url,
                w.events.join(",")
            ))
        }
        WebhookCommand::List => {
            let m = core.model.read();
            let mut all: Vec<_> = m.webhooks.values().cloned().collect();
            all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            if all.is_empty() {
                return Ok("no webhooks".into());
            }
            Ok(all
                .iter()
                .map(|w| {
                    format!(
                        "{}\t{}\t{}\t{}",
                        w.id,
                        w.url,
                        w.events.join(","),
                        if w.active { "active" } else { "inactive" }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        WebhookCommand::Delete { id } => {
            let gone = id.clone();
            core.writer
                .run(move |tx| crate::webhooks::delete(tx, &gone))
                .await?;
            Ok(format!("deleted webhook {id}"))
        }
    }
}
