//! The admin commands of the `statusd` binary: users, personal access tokens, settings
//! and the Rocket.Chat import. Each opens the store `DATABASE_URL` names, loads it,
//! and runs its change as a writer job, with the same rules (and mostly the same
//! functions) as the REST routes, so it commits through the same `Store::commit`.
//! That is safe while a server runs on the same database: the database serialises the
//! writers, and the server notices the commit within a second (`crate::external`): on
//! SQLite by the file's data version, on PostgreSQL by a NOTIFY sent with the commit.
//!
//! Every command prints one line on success and exits 0; on failure it prints one line
//! (`statusd: …`) to stderr and exits 1.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use parking_lot::RwLock;
use serde_json::Value as Json;
use tokio::sync::Semaphore;

use crate::app::{App, Ctx};
use crate::auth::{defaults, secrets};
use crate::bus::Bus;
use crate::config::{Command, Config};
use crate::error::ApiError;
use crate::http::{auth as auth_routes, permissions, users};
use crate::metrics::Metrics;
use crate::model::{Email, User};
use crate::state::{Model, Writer};

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
            eprintln!("statusd: {}", one_line(&e));
            1
        }
    }
}

/// An error as one line: the API's own words for a refused change.
fn one_line(e: &anyhow::Error) -> String {
    let text = match e.downcast_ref::<ApiError>() {
        Some(api) => api_words(api),
        None => format!("{e:#}"),
    };
    text.replace('\n', " ")
}

fn api_words(e: &ApiError) -> String {
    match e.body().get("error").and_then(Json::as_str) {
        Some(words) => words.to_string(),
        None => format!("{e:?}"),
    }
}

fn api(e: ApiError) -> anyhow::Error {
    anyhow!(ApiErrorLine(e))
}

/// Carries an `ApiError` through anyhow with its words as the message.
#[derive(Debug)]
struct ApiErrorLine(ApiError);

impl std::fmt::Display for ApiErrorLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&api_words(&self.0))
    }
}

impl std::error::Error for ApiErrorLine {}

async fn run(cfg: Config, command: Command) -> anyhow::Result<String> {
    let app = open(cfg).await?;
    match command {
        Command::Serve => bail!("serve is not an admin command"),
        Command::User(c) => user(&app, c).await,
        Command::Token(TokenCommand::Create { username, name }) => {
            token_create(&app, &username, &name).await
        }
        Command::Settings(SettingsCommand::Get { id }) => settings_get(&app, &id),
        Command::Settings(SettingsCommand::Set { id, value }) => {
            settings_set(&app, &id, &value).await
        }
        Command::Import(ImportCommand::Rocketchat { file }) => {
            let report = crate::import::rocketchat(&app, &file).await?;
            Ok(report.to_string())
        }
    }
}

/// Opens the store and loads it into a model that a writer of this process changes:
/// the same machinery as the server, without the network.
pub async fn open(cfg: Config) -> anyhow::Result<Ctx> {
    let instance_id = secrets::new_id();
    let url = cfg.database_url.clone();
    let id = instance_id.clone();
    let (store, snapshot) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let store =
            crate::store::open(&url, &id, crate::store::Role::Admin).context("DATABASE_URL")?;
        let snapshot = store.load().context("DATABASE_URL: loading the database")?;
        Ok((store, snapshot))
    })
    .await??;
    let model = Arc::new(RwLock::new(Model::from_snapshot(snapshot)));
    let metrics = Arc::new(Metrics::new());
    let bus = Bus::new(16);
    let writer = Writer::start(
        model.clone(),
        store.clone(),
        bus.clone(),
        metrics.clone(),
        None,
    );
    Ok(Arc::new(App {
        cfg,
        model,
        writer,
        bus,
        metrics,
        limiter: Default::default(),
        login_guard: Default::default(),
        login_slots: Semaphore::new(1),
        hub: Default::default(),
        store,
        nats: None,
        leader: Default::default(),
        own_conns: Default::default(),
        instance_id,
    }))
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
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

/// The method name REST's user administration reports in its errors.
const USER_METHOD: &str = "insertOrUpdateUser";

async fn user(app: &Ctx, command: UserCommand) -> anyhow::Result<String> {
    match command {
        UserCommand::Add {
            username,
            password,
            email,
            name,
            roles,
        } => {
            let roles = if roles.is_empty() {
                vec!["user".to_string()]
            } else {
                roles
            };
            users::check_roles(&roles, USER_METHOD).map_err(api)?;
            let bot = roles.iter().any(|r| r == "bot");
            let hash = match password {
                Some(p) => Some(
                    users::hash_password(app, &password_arg(&p)?)
                        .await
                        .map_err(api)?,
                ),
                None if bot => None,
                None => bail!("--password is required (only a bot may go without one)"),
            };
            let username = username.trim().to_string();
            let email = email
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty());
            let name = name.unwrap_or_else(|| username.clone());
            let user = app
                .writer
                .run(move |tx| {
                    users::check_identity(
                        tx,
                        Some(&username),
                        email.as_deref(),
                        None,
                        USER_METHOD,
                    )?;
                    let mut user = crate::bootstrap::new_user(&username, &name, tx.now);
                    user.emails = email
                        .into_iter()
                        .map(|address| Email {
                            address,
                            verified: false,
                        })
                        .collect();
                    user.password_hash = hash;
                    user.roles = roles;
                    if bot {
                        user.kind = "bot".into();
                    }
                    tx.put_user(user.clone());
                    Ok(user)
                })
                .await
                .map_err(api)?;
            Ok(format!(
                "created {} {} (id {}, roles {})",
                user.kind,
                user.username,
                user.id,
                user.roles.join(",")
            ))
        }
        UserCommand::Passwd { username, password } => {
            let hash = users::hash_password(app, &password_arg(&password)?)
                .await
                .map_err(api)?;
            let name = app
                .writer
                .run(move |tx| {
                    let mut u = (*tx
                        .user_by_username(&username)
                        .ok_or_else(ApiError::invalid_user)?)
                    .clone();
                    u.password_hash = Some(hash);
                    u.updated_at = tx.now;
                    tx.put_user(u.clone());
                    Ok(u.username)
                })
                .await
                .map_err(api)?;
            Ok(format!("changed the password of {name}"))
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
            let role_id = defaults::ROLES
                .iter()
                .map(|(id, _, _)| *id)
                .find(|id| *id == role)
                .ok_or_else(|| {
                    api(ApiError::meteor_bare(
                        "error-role-not-found",
                        "Role not found",
                    ))
                })?;
            let user = app
                .writer
                .run(move |tx| {
                    permissions::set_user_role(tx, &username, role_id, adding)?;
                    tx.user_by_username(&username)
                        .ok_or_else(ApiError::invalid_user)
                })
                .await
                .map_err(api)?;
            Ok(format!(
                "{} {role_id} {} {}: roles now {}",
                if adding { "added" } else { "removed" },
                if adding { "to" } else { "from" },
                user.username,
                user.roles.join(",")
            ))
        }
        UserCommand::Disable { username } => set_active(app, username, false).await,
        UserCommand::Enable { username } => set_active(app, username, true).await,
    }
}

/// `users.update {active}`'s rules: the last active admin stays, and a deactivated
/// user is logged out everywhere.
async fn set_active(app: &Ctx, username: String, active: bool) -> anyhow::Result<String> {
    let (user, ended) = app
        .writer
        .run(move |tx| -> crate::error::ApiResult<(User, usize)> {
            let current = tx
                .user_by_username(&username)
                .ok_or_else(ApiError::invalid_user)?;
            if !active && current.has_role("admin") {
                users::ensure_other_admin(tx, &current.id, USER_METHOD)?;
            }
            let mut u = (*current).clone();
            u.active = active;
            u.updated_at = tx.now;
            let mut ended = 0;
            if !active {
                for t in tx.user_tokens(&u.id) {
                    tx.delete_token(&t.hashed);
                    ended += 1;
                }
            }
            tx.put_user(u.clone());
            Ok((u, ended))
        })
        .await
        .map_err(api)?;
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

async fn token_create(app: &Ctx, username: &str, name: &str) -> anyhow::Result<String> {
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(api(ApiError::meteor(
            "error-token-name-required",
            "Token name is required",
            "personalAccessTokens",
        )));
    }
    let user = app
        .model
        .read()
        .user_by_username(username)
        .ok_or_else(|| api(ApiError::invalid_user()))?;
    if !user.active {
        bail!("{} is disabled: enable the user first", user.username);
    }
    let token = auth_routes::issue_pat(app, user.id.clone(), name.clone(), false)
        .await
        .map_err(api)?;
    Ok(format!(
        "created token {name:?} for {}: X-User-Id={} X-Auth-Token={token}",
        user.username, user.id
    ))
}

fn settings_get(app: &Ctx, id: &str) -> anyhow::Result<String> {
    let stored = app.model.read().setting(id).cloned();
    let value = match (stored, crate::settings::definition(id)) {
        (Some(v), _) => v,
        (None, Some(def)) => def.default_value(),
        (None, None) => bail!("unknown setting {id:?}"),
    };
    Ok(value.to_string())
}

async fn settings_set(app: &Ctx, id: &str, text: &str) -> anyhow::Result<String> {
    let def = crate::settings::definition(id).ok_or_else(|| anyhow!("unknown setting {id:?}"))?;
    let value = def
        .parse_text(text)
        .ok_or_else(|| anyhow!("{text:?} is not a valid value for {id} ({:?})", def.kind))?;
    let new = value.clone();
    let old = app
        .writer
        .run(move |tx| {
            let old = tx.setting(def.id);
            tx.put_setting(def.id, new);
            Ok(old)
        })
        .await
        .map_err(api)?;
    let old = old.unwrap_or_else(|| def.default_value());
    Ok(format!("{id} = {value} (was {old})"))
}
