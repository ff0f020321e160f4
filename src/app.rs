//! The server's context, what every request handler and realtime session receives:
//! the core (model, writer, store, bus, metrics; `state::Core`) and the parts only a
//! server has: the configuration, rate limits and failed-login blocking, the bound on
//! concurrent password work, the realtime hub, the NATS link, cluster leadership and
//! this instance's own connections. `App` dereferences to its `Core`.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::accounts::{password, tokens};
use crate::auth::defaults::Permission;
use crate::auth::secrets;
use crate::calsync;
use crate::cluster::Leadership;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::limits::{LoginGuard, RateLimiter};
use crate::metrics::Scrape;
use crate::model::{Status, Token, User};
use crate::own_conns::OwnConns;
use crate::settings::{Typed, Values};
use crate::state::Core;

pub struct App {
    pub core: Core,
    pub cfg: Config,
    pub limiter: RateLimiter,
    pub login_guard: LoginGuard,
    /// Bounds concurrent bcrypt work so logins cannot starve status traffic.
    pub login_slots: Semaphore,
    pub hub: Hub,
    /// The NATS link in cluster mode.
    pub nats: Option<async_nats::Client>,
    /// Does this instance hold the cluster lease for once-only work (expiry, reaping)?
    pub leader: Arc<Leadership>,
    /// The realtime connections this instance holds (cluster repair).
    pub own_conns: Arc<OwnConns>,
    /// Connected calendars: their HTTP client, key and kept copies (`calsync`).
    pub calendars: Arc<calsync::Service>,
}

pub type Ctx = Arc<App>;

impl Deref for App {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl App {
    /// The server parts around a started core.
    pub fn new(core: Core, cfg: Config, nats: Option<async_nats::Client>) -> App {
        let calendars = Arc::new(calsync::Service::new(
            calsync::seal::KeySource::of(cfg.calendar_secret_key.as_deref(), &cfg.database_url),
            cfg.calendar_allow_private,
            std::time::Duration::from_secs(cfg.calendar_sync_secs),
        ));
        App {
            calendars,
            login_slots: Semaphore::new(cfg.login_concurrency),
            core,
            cfg,
            limiter: Default::default(),
            login_guard: Default::default(),
            hub: Default::default(),
            nats,
            leader: Default::default(),
            own_conns: Default::default(),
        }
    }

    /// The user a token authenticates (`accounts::tokens::authenticate`).
    pub fn authenticate(&self, user_id: &str, token: &str) -> Option<(Arc<User>, Arc<Token>)> {
        self.authenticate_hashed(user_id, &secrets::hash_token(token))
    }

    /// As `authenticate`, for a token already hashed (a realtime connection keeps only
    /// the hash of the token it logged in with and re-checks it while it lives).
    pub fn authenticate_hashed(
        &self,
        user_id: &str,
        hashed: &str,
    ) -> Option<(Arc<User>, Arc<Token>)> {
        tokens::authenticate(&self.model.read(), user_id, hashed)
    }

    pub fn has_permission(&self, user: &User, permission: Permission) -> bool {
        self.model.read().has_permission(user, permission.id())
    }

    /// Refuses the caller without `permission`.
    pub fn require(&self, user: &User, permission: Permission) -> Result<()> {
        if self.has_permission(user, permission) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// Refuses the caller without `permission`, for a route that declares it
    /// (Rocket.Chat's `permissionsRequired`): 403 `[error-unauthorized]`.
    pub fn require_declared(&self, user: &User, permission: Permission) -> Result<()> {
        if self.has_permission(user, permission) {
            Ok(())
        } else {
            Err(Error::NotPermitted)
        }
    }

    /// A workspace setting's value now.
    pub fn setting<S: Typed>(&self, setting: &S) -> S::Out {
        self.model.read().value(setting)
    }

    /// When a login token made at `created` expires.
    pub fn token_expires(
        &self,
        created: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        tokens::login_expires(&self.model.read(), created)
    }

    /// Does the store answer a ping within 2 seconds?
    pub async fn store_answers(&self) -> bool {
        let store = self.store.clone();
        let ping = tokio::task::spawn_blocking(move || store.ping().is_ok());
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(2), ping).await,
            Ok(Ok(true))
        )
    }

    /// Is the NATS link up? None when not in cluster mode.
    pub fn nats_connected(&self) -> Option<bool> {
        self.nats
            .as_ref()
            .map(|c| c.connection_state() == async_nats::connection::State::Connected)
    }

    /// The state gauges of `/metrics`, read now: the model under one read lock.
    pub async fn scrape(&self) -> Scrape {
        let store_up = self.store_answers().await;
        let (users_by_status, live_login_tokens) = {
            let m = self.model.read();
            let mut counts = [Status::Online, Status::Away, Status::Busy, Status::Offline]
                .map(|s| (s.as_str(), 0i64));
            for user in m.users.values() {
                if let Some(c) = counts.iter_mut().find(|(s, _)| *s == user.status.as_str()) {
                    c.1 += 1;
                }
            }
            (counts.to_vec(), tokens::live_logins(&m, chrono::Utc::now()))
        };
        Scrape {
            users_by_status,
            live_login_tokens: i64::try_from(live_login_tokens).unwrap_or(i64::MAX),
            store_up,
            nats_up: self.nats_connected().unwrap_or(true),
        }
    }

    /// A turn at password work (bcrypt), waiting while `LOGIN_CONCURRENCY` others run.
    pub async fn login_slot(&self) -> Result<SemaphorePermit<'_>> {
        self.login_slots
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("shutting down".into()))
    }

    /// `accounts::password::hash`, in turn with the logins.
    pub async fn hash_password(&self, plain: &str) -> Result<String> {
        let _slot = self.login_slot().await?;
        password::hash_off_thread(plain).await
    }
}
