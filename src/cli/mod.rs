//! The admin commands of the `statusd` binary: users, personal access tokens, settings
//! and the Rocket.Chat import. Each opens the same core as the server (`state::Core`:
//! the store `DATABASE_URL` names, loaded into a model with a writer of its own) and
//! runs its change as a writer job with the REST routes' account rules
//! (`crate::accounts`), so it commits through the same `Store::commit`.
//! That is safe while a server runs on the same database: the database serialises the
//! writers, and the server notices the commit within a second (`crate::external`): on
//! SQLite by the file's data version, on PostgreSQL by a NOTIFY sent with the commit.
//!
//! Every command prints one line on success and exits 0; on failure it prints one line
//! (`statusd: …`, a refusal in the rules' own words) to stderr and exits 1.

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
}

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
    /// Manage users: add, passwd, role, disable, enable.
    #[command(subcommand)]
    User(UserCommand),
    /// Personal access tokens (for bots).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read and change workspace settings.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Import users from another server.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Ask the server at BIND_IP:PORT for /api/health: exit 0 when healthy, 1 if not
    /// (a container's HEALTHCHECK; opens no database).
    Healthcheck,
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
    /// Set a user's password.
    Passwd {
        username: String,
        /// The new password; `-` reads it from the first line of standard input.
        #[arg(long)]
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
}

/// `statusd settings …`
#[derive(Subcommand, Debug, Clone)]
pub enum SettingsCommand {
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
    },
}

/// Runs an admin command; returns the process exit code.
pub fn main(cfg: Config, command: Command) -> i32 {
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
    match runtime.block_on(run(cfg, command)) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            // A refused change reads in the rules' own words (`error::Error`'s text).
            eprintln!("statusd: {}", format!("{e:#}").replace('\n', " "));
            1
        }
    }
}

async fn run(cfg: Config, command: Command) -> anyhow::Result<String> {
    let core = open(&cfg).await?;
    match command {
        Command::Serve | Command::Healthcheck => bail!("not an admin command"),
        Command::User(c) => user(&core, c).await,
        Command::Token(TokenCommand::Create { username, name }) => {
            token_create(&core, &username, &name).await
        }
        Command::Settings(SettingsCommand::Get { id }) => settings_get(&core, &id),
        Command::Settings(SettingsCommand::Set { id, value }) => {
            settings_set(&core, &id, &value).await
        }
        Command::Import(ImportCommand::Rocketchat { file }) => {
            let report = crate::import::rocketchat(&core, &file).await?;
            Ok(report.to_string())
        }
    }
}

/// Opens the store and loads it into a model that a writer of this process changes:
/// the same core as the server's, without the server around it.
async fn open(cfg: &Config) -> anyhow::Result<Core> {
    let url = cfg.database_url.clone();
    let loaded =
        tokio::task::spawn_blocking(move || Core::load(&url, Role::Admin, |_| {})).await??;
    Ok(loaded.start(16, None))
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
    }
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
