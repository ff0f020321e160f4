//! The shared context every request handler and realtime session receives.

use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::Semaphore;

use crate::bus::Bus;
use crate::config::Config;
use crate::limits::{LoginGuard, RateLimiter};
use crate::metrics::Metrics;
use crate::model::{Token, TokenKind, User};
use crate::settings::ids;
use crate::state::{Model, Writer};

pub struct App {
    pub cfg: Config,
    pub model: Arc<RwLock<Model>>,
    pub writer: Writer,
    pub bus: Bus,
    pub metrics: Arc<Metrics>,
    pub limiter: RateLimiter,
    pub login_guard: LoginGuard,
    /// Bounds concurrent bcrypt work so logins cannot starve status traffic.
    pub login_slots: Semaphore,
    pub hub: crate::realtime::Hub,
    /// The durable store, for the few reads not served from memory (status history).
    pub store: Arc<dyn crate::store::Store>,
    /// The NATS link in cluster mode.
    pub nats: Option<async_nats::Client>,
    /// Does this instance hold the cluster lease for once-only work (expiry, reaping)?
    pub leader: crate::cluster::Leadership,
    /// The realtime connections this instance holds (cluster repair).
    pub own_conns: crate::own_conns::OwnConns,
    /// This process's id among the instances sharing a store.
    pub instance_id: String,
}

pub type Ctx = Arc<App>;

impl App {
    /// The user a token authenticates, if the token exists, belongs to `user_id`,
    /// has not expired and the user is active.
    pub fn authenticate(&self, user_id: &str, token: &str) -> Option<(Arc<User>, Arc<Token>)> {
        self.authenticate_hashed(user_id, &crate::auth::secrets::hash_token(token))
    }

    /// As `authenticate`, for a token already hashed (a realtime connection keeps only
    /// the hash of the token it logged in with and re-checks it while it lives).
    pub fn authenticate_hashed(
        &self,
        user_id: &str,
        hashed: &str,
    ) -> Option<(Arc<User>, Arc<Token>)> {
        let m = self.model.read();
        let tok = m.tokens.get(hashed)?;
        if !crate::auth::secrets::secrets_equal(&tok.user_id, user_id) {
            return None;
        }
        if tok.kind == TokenKind::Login {
            let days = m.setting_i64(ids::LOGIN_EXPIRATION, 90).max(0);
            if chrono::Utc::now() - tok.created_at > chrono::Duration::days(days) {
                return None;
            }
        }
        let user = m.users.get(user_id)?;
        if !user.active {
            return None;
        }
        Some((user.clone(), tok.clone()))
    }

    pub fn has_permission(&self, user: &User, permission: &str) -> bool {
        self.model.read().has_permission(user, permission)
    }

    pub fn setting_bool(&self, id: &str) -> bool {
        self.model.read().setting_bool(id)
    }

    /// When a login token made now expires.
    pub fn token_expires(
        &self,
        created: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        let days = self
            .model
            .read()
            .setting_i64(ids::LOGIN_EXPIRATION, 90)
            .max(0);
        created + chrono::Duration::days(days)
    }
}
