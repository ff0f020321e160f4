//! Start-up: open the store, load the model, and make a fresh or upgraded database
//! whole (default settings and permissions, `OVERWRITE_SETTING_*`, the `rocket.cat`
//! bot, a first admin). Every problem is one line naming its cause.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use parking_lot::RwLock;
use serde_json::Value as Json;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::auth::{defaults, secrets};
use crate::bus::Bus;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{Email, Status, User};
use crate::settings;
use crate::state::{Model, Tx, Writer};

/// `OVERWRITE_SETTING_<id>=value` pairs from the environment, checked against the types.
pub fn overwrites() -> anyhow::Result<Vec<(String, Json)>> {
    let mut out = Vec::new();
    for (name, text) in std::env::vars() {
        let Some(id) = name.strip_prefix("OVERWRITE_SETTING_") else {
            continue;
        };
        let def =
            settings::definition(id).ok_or_else(|| anyhow!("{name}: unknown setting {id:?}"))?;
        let value = def
            .parse_text(&text)
            .ok_or_else(|| anyhow!("{name}: {text:?} is not a valid value ({:?})", def.kind))?;
        out.push((id.to_string(), value));
    }
    Ok(out)
}

/// The admin to create when the database has no human user yet.
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
    let password_hash = secrets::hash_password_digest(&secrets::sha256_hex(&password))?;
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

pub fn new_user(username: &str, name: &str, now: chrono::DateTime<chrono::Utc>) -> User {
    User {
        id: secrets::new_id(),
        username: username.to_string(),
        name: name.to_string(),
        emails: Vec::new(),
        password_hash: None,
        roles: vec!["user".into()],
        active: true,
        kind: "user".into(),
        status: Status::Offline,
        status_default: Status::Online,
        status_connection: Status::Offline,
        status_text: String::new(),
        status_source: None,
        status_expires_at: None,
        previous_state: None,
        utc_offset: 0.0,
        created_at: now,
        updated_at: now,
        last_login: None,
    }
}

/// Brings the loaded state up to date; runs as the first writer job.
fn make_whole(
    tx: &mut Tx,
    overwrites: &[(String, Json)],
    admin: Option<FirstAdmin>,
) -> Option<String> {
    for def in settings::DEFINITIONS {
        if tx.setting(def.id).is_none() {
            tx.put_setting(def.id, def.default_value());
        }
    }
    for (id, value) in overwrites {
        if tx.setting(id).as_ref() != Some(value) {
            tx.put_setting(id, value.clone());
        }
    }
    for (id, roles) in defaults::PERMISSIONS {
        if tx.permission_roles(id).is_none() {
            tx.put_permission(id, roles.iter().map(|r| r.to_string()).collect());
        }
    }
    if tx.user("rocket.cat").is_none() {
        let mut bot = new_user("rocket.cat", "Rocket.Cat", tx.now);
        bot.id = "rocket.cat".into();
        bot.roles = vec!["bot".into()];
        bot.kind = "bot".into();
        bot.status = Status::Online;
        tx.put_user(bot);
    }
    let admin = admin?;
    let mut user = new_user(&admin.username, &admin.name, tx.now);
    user.emails = vec![Email {
        address: admin.email,
        verified: true,
    }];
    user.password_hash = Some(admin.password_hash);
    user.roles = vec!["admin".into(), "user".into()];
    tx.put_user(user);
    admin.generated
}

/// Opens everything and returns the ready application context.
pub async fn start(cfg: Config) -> anyhow::Result<Arc<App>> {
    let overwrites = overwrites()?;
    let instance_id = secrets::new_id();
    // Opening and loading block (file or database I/O): keep them off the async workers.
    let (store, snapshot) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let store = crate::store::open(&cfg.database_url, &instance_id).context("DATABASE_URL")?;
        let snapshot = store.load().context("DATABASE_URL: loading the database")?;
        Ok((store, snapshot))
    })?;
    // A user recorded as connected without a live connection in the store was
    // connected to a process that is gone: show them offline.
    let stale_connections: Vec<String> = snapshot
        .users
        .iter()
        .filter(|u| u.status_connection != Status::Offline)
        .filter(|u| !snapshot.conns.iter().any(|(uid, _, _)| *uid == u.id))
        .map(|u| u.id.clone())
        .collect();
    let model = Model::from_snapshot(snapshot);
    let needs_admin = !model.users.values().any(|u| u.kind == "user");
    let admin = if needs_admin {
        Some(tokio::task::block_in_place(|| first_admin(&cfg))?)
    } else {
        None
    };

    // Cluster mode: committed changes also go to NATS for the other instances.
    let (nats, commits) = match &cfg.nats_url {
        Some(url) => {
            let (reconnected_tx, reconnected_rx) = tokio::sync::mpsc::unbounded_channel();
            let client = crate::bus::nats::connect(url, reconnected_tx).await?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some((client, rx, reconnected_rx)), Some(tx))
        }
        None => (None, None),
    };

    let model = Arc::new(RwLock::new(model));
    let metrics = Arc::new(Metrics::new());
    let bus = Bus::new(4096);
    let writer = Writer::start(
        model.clone(),
        store.clone(),
        bus.clone(),
        metrics.clone(),
        commits,
    );
    // Until the first heartbeat round, only the holder of the cluster lock leads.
    let leader = tokio::task::block_in_place(|| store.is_leader());
    let app = Arc::new(App {
        login_slots: Semaphore::new(cfg.login_concurrency),
        model,
        writer,
        bus,
        metrics,
        limiter: Default::default(),
        login_guard: Default::default(),
        hub: Default::default(),
        store,
        nats: nats.as_ref().map(|(client, _, _)| client.clone()),
        leader: AtomicBool::new(leader),
        instance_id: instance_id.clone(),
        cfg,
    });
    if let Some((client, commits, reconnected)) = nats {
        let subject = format!("{}.changes", app.cfg.nats_subject_prefix);
        crate::bus::nats::start(
            client,
            subject,
            instance_id,
            commits,
            reconnected,
            app.writer.clone(),
            app.store.clone(),
        )
        .await?;
    }

    let generated = app
        .writer
        .run(move |tx| {
            for id in &stale_connections {
                if let Some(u) = tx.user(id) {
                    let mut u = (*u).clone();
                    u.status_connection = Status::Offline;
                    u.status = Status::Offline;
                    tx.put_user(u);
                }
            }
            Ok(make_whole(tx, &overwrites, admin))
        })
        .await
        .map_err(|e| anyhow!("DATABASE_URL: could not write the initial state: {e}"))?;
    if let Some(password) = generated {
        // Shown once so a new installation can be logged into at all.
        tracing::warn!(
            "created the first admin: username \"admin\", password \"{password}\" (shown once; change it)"
        );
    }
    Ok(app)
}
