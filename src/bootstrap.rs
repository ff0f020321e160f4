//! Start-up of the server: open the core (`state::Core`) as the CLI does, with the
//! cluster lease taken before the model is loaded and NATS wired in cluster mode; put
//! the server's parts around it (`app::App`); and make a fresh or upgraded database
//! whole (default settings and permissions, `OVERWRITE_SETTING_*`, the `rocket.cat`
//! bot, a first admin). Every problem is one line naming its cause.

use std::sync::Arc;

use anyhow::anyhow;
use serde_json::Value as Json;

use crate::accounts::{password, users};
use crate::app::App;
use crate::auth::defaults::{self, Permission};
use crate::auth::secrets;
use crate::config::Config;
use crate::model::{Email, Status, UserKind};
use crate::settings;
use crate::state::{Core, Model, Tx};
use crate::store::Role;

/// `OVERWRITE_SETTING_<id>=value` pairs from the environment, checked against the types.
/// A setting statusd does not have is skipped with one warning naming it: operators
/// bring their Rocket.Chat environment file over as it is (it commonly holds
/// `OVERWRITE_SETTING_Show_Setup_Wizard=completed`), and Rocket.Chat itself ignores
/// overwrites of unknown settings. A bad value for a known setting still stops the start.
pub fn overwrites() -> anyhow::Result<Vec<(String, Json)>> {
    let mut out = Vec::new();
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (name, text) in vars {
        let Some(id) = name.strip_prefix("OVERWRITE_SETTING_") else {
            continue;
        };
        let Some(def) = settings::definition(id) else {
            tracing::warn!("{name}: statusd has no setting {id:?}; ignored");
            continue;
        };
        let value = def
            .parse_text(&text)
            .ok_or_else(|| anyhow!("{name}: {text:?} is not a valid value ({:?})", def.kind))?;
        out.push((id.to_string(), value));
    }
    Ok(out)
}

/// The admin to create when the database has no human user yet.
#[derive(Clone)]
struct FirstAdmin {
    username: String,
    name: String,
    email: String,
    password_hash: String,
    /// Set when the password was generated and must be shown once.
    generated: Option<String>,
}

fn first_admin(cfg: &Config) -> anyhow::Result<FirstAdmin> {
    let (username, password, generated) = match (&cfg.admin_username, &cfg.admin_pass) {
        (Some(u), Some(p)) => (u.clone(), p.clone(), None),
        _ => {
            let p = secrets::new_secret()[..20].to_string();
            ("admin".to_string(), p.clone(), Some(p))
        }
    };
    let password_hash = password::hash(&password)?;
    Ok(FirstAdmin {
        email: cfg
            .admin_email
            .clone()
            .unwrap_or_else(|| format!("{username}@localhost")),
        name: cfg.admin_name.clone().unwrap_or_else(|| username.clone()),
        username,
        password_hash,
        generated,
    })
}

/// Does the database still need its first admin (it has no human user)?
fn needs_admin(model: &Model) -> bool {
    !model.users.values().any(|u| u.kind == UserKind::User)
}

/// How often a start-up tries to write the initial state (instances racing on an empty
/// database: see `start`).
const INITIAL_WRITE_ATTEMPTS: u64 = 5;

/// Brings the loaded state up to date; runs as the first writer job.
fn make_whole(
    tx: &mut Tx,
    root_url: &str,
    overwrites: &[(String, Json)],
    admin: Option<FirstAdmin>,
) -> Option<String> {
    for def in settings::DEFINITIONS {
        if tx.setting(def.id).is_none() {
            tx.put_setting(def.id, settings::initial_value(def, root_url));
        }
    }
    for (id, value) in overwrites {
        if tx.setting(id).as_ref() != Some(value) {
            tx.put_setting(id, value.clone());
        }
    }
    // Rocket.Chat's whole catalog, and then any permission statusd checks that it lacks.
    for p in defaults::catalog() {
        if tx.permission_roles(&p.id).is_none() {
            tx.put_permission(&p.id, p.roles.clone());
        }
    }
    for p in Permission::ALL {
        if tx.permission_roles(p.id()).is_none() {
            let roles = p.default_roles().iter().map(|r| r.to_string()).collect();
            tx.put_permission(p.id(), roles);
        }
    }
    if tx.user(users::ROCKET_CAT).is_none() {
        let mut bot = users::new_user(users::ROCKET_CAT, "Rocket.Cat", tx.now);
        bot.id = users::ROCKET_CAT.into();
        bot.roles = vec![defaults::BOT.into()];
        bot.kind = UserKind::Bot;
        bot.status = Status::Online;
        tx.put_user(bot);
    }
    // Decided again here: another instance may have created the admin meanwhile.
    let admin = admin.filter(|_| !tx.has_human_user())?;
    let mut user = users::new_user(&admin.username, &admin.name, tx.now);
    user.emails = vec![Email {
        address: admin.email,
        verified: true,
    }];
    user.password_hash = Some(admin.password_hash);
    user.roles = vec![defaults::ADMIN.into(), defaults::USER.into()];
    tx.put_user(user);
    admin.generated
}

/// Opens everything and returns the ready application context.
pub async fn start(cfg: Config) -> anyhow::Result<Arc<App>> {
    let overwrites = overwrites()?;
    let dead_after = std::time::Duration::from_secs(cfg.instance_dead_secs);
    // Opening and loading block (file or database I/O): keep them off the async workers.
    let (loaded, lease) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let mut lease = None;
        // The lease first: a model loaded after taking it holds everything a previous
        // leader committed (see `cluster::run`).
        let loaded = Core::load(&cfg.database_url, Role::Server, |store| {
            if let Some(path) = cfg.database_url.strip_prefix("sqlite://") {
                crate::store::sqlite::warn_if_open_to_others(std::path::Path::new(path));
            }
            lease = Some(crate::cluster::lead_at_start(store, dead_after));
        })?;
        Ok((loaded, lease))
    })?;
    // A user recorded as connected without a live connection in the store was
    // connected to a process that is gone: show them offline.
    let stale_connections: Vec<String> = loaded
        .model
        .users
        .values()
        .filter(|u| u.status_connection != Status::Offline)
        .filter(|u| !loaded.model.conns.contains_key(&u.id))
        .map(|u| u.id.clone())
        .collect();
    let admin = if needs_admin(&loaded.model) {
        Some(tokio::task::block_in_place(|| first_admin(&cfg))?)
    } else {
        None
    };

    // Cluster mode: committed changes also go to NATS for the other instances.
    let (nats, commits) = match &cfg.nats_url {
        Some(url) => {
            let (reconnected_tx, reconnected_rx) = tokio::sync::mpsc::unbounded_channel();
            let client = crate::bus::nats::connect(&cfg, url, reconnected_tx).await?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some((client, rx, reconnected_rx)), Some(tx))
        }
        None => (None, None),
    };

    let core = loaded.start(commits);
    let client = nats.as_ref().map(|(client, _, _)| client.clone());
    let app = Arc::new(App::new(core, cfg, client));
    if let Some((client, commits, reconnected)) = nats {
        // `Config::validate` requires the secret in cluster mode.
        let secret = app
            .cfg
            .cluster_secret
            .as_deref()
            .ok_or_else(|| anyhow!("CLUSTER_SECRET: required in cluster mode"))?;
        let link = crate::bus::nats::Link {
            subject: format!("{}.changes", app.cfg.nats_subject_prefix),
            instance_id: app.instance_id.clone(),
            sealer: crate::bus::seal::Sealer::new(
                secret,
                app.cfg.cluster_secret_previous.as_deref(),
            ),
            metrics: app.metrics.clone(),
            bus: app.bus.clone(),
        };
        crate::bus::nats::start(
            client,
            link,
            commits,
            reconnected,
            app.writer.clone(),
            app.store.clone(),
        )
        .await?;
    }

    if let Some((leads, asked)) = lease {
        app.leader.record(
            leads,
            asked,
            crate::cluster::lease_length(crate::cluster::heartbeat_period(dead_after)),
        );
    }

    // Several instances starting at once on an empty database each find no admin and
    // create one; the store's unique username lets one commit win and refuses the
    // others. A refused instance reloads what the winner committed and tries again,
    // now finding the admin there (and the settings, which it leaves as they are).
    let overwrites = Arc::new(overwrites);
    let stale_connections = Arc::new(stale_connections);
    let mut attempt = 1;
    let generated = loop {
        let (overwrites, stale, admin) =
            (overwrites.clone(), stale_connections.clone(), admin.clone());
        let root_url = app.cfg.root_url.clone();
        let written = app
            .writer
            .run(move |tx| {
                for id in stale.iter() {
                    if let Some(u) = tx.user(id) {
                        let mut u = (*u).clone();
                        u.status_connection = Status::Offline;
                        u.status = Status::Offline;
                        tx.put_user(u);
                    }
                }
                Ok(make_whole(tx, &root_url, &overwrites, admin))
            })
            .await;
        match written {
            Ok(generated) => break generated,
            Err(e) if attempt < INITIAL_WRITE_ATTEMPTS => {
                tracing::info!("writing the initial state (attempt {attempt}): {e}; reloading");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                app.writer.resync(app.store.clone()).await;
            }
            Err(e) => anyhow::bail!("DATABASE_URL: could not write the initial state: {e}"),
        }
    };
    if let Some(password) = generated {
        // Shown once so a new installation can be logged into at all.
        tracing::warn!(
            "created the first admin: username \"admin\", password \"{password}\" (shown once; change it)"
        );
    }
    Ok(app)
}
