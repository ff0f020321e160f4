//! The login sequence REST `login` and the DDP `login` method share: a resumed token is
//! checked against the model; a password is checked off the async workers (bcrypt),
//! with failed attempts counted per user and per client IP and blocked past the
//! workspace's limits; a success is recorded through `accounts::tokens`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::accounts::credentials::{Credentials, Login};
use crate::accounts::{password, tokens};
use crate::app::App;
use crate::auth::secrets;
use crate::error::{Error, Result};
use crate::model::User;
use crate::settings::{self, Values};

/// A successful login: the user and the (new or resumed) token secret.
pub struct LoggedIn {
    pub user: User,
    pub token: String,
    pub token_created: chrono::DateTime<chrono::Utc>,
    pub resumed: bool,
}

/// The block that repeated failures put on `username` or `ip`, if any.
fn blocked(app: &App, username: &str, ip: IpAddr) -> Option<Error> {
    let m = app.model.read();
    if !m.value(&settings::BLOCK_FAILED_LOGINS) {
        return None;
    }
    let now = Instant::now();
    // Fractions of a minute count (Rocket.Chat takes `0.5`); the setting's range keeps
    // the product finite.
    let minutes = |n: f64| Duration::try_from_secs_f64(n * 60.0).unwrap_or(Duration::ZERO);
    if m.value(&settings::BLOCK_FAILED_LOGINS_BY_USER)
        && app.login_guard.blocked(
            &format!("user:{}", username.to_lowercase()),
            m.value(&settings::BLOCK_USER_AFTER_ATTEMPTS).max(0) as usize,
            minutes(m.value(&settings::BLOCK_USER_FOR_MINUTES)),
            now,
        )
    {
        return Some(Error::LoginBlocked {
            code: "error-login-blocked-for-user".into(),
            reason: "Login has been temporarily blocked For User".into(),
        });
    }
    let whitelisted = m
        .value(&settings::BLOCK_IP_WHITELIST)
        .split(',')
        .any(|s| s.trim() == ip.to_string());
    if m.value(&settings::BLOCK_FAILED_LOGINS_BY_IP)
        && !whitelisted
        && app.login_guard.blocked(
            &format!("ip:{ip}"),
            m.value(&settings::BLOCK_IP_AFTER_ATTEMPTS).max(0) as usize,
            minutes(m.value(&settings::BLOCK_IP_FOR_MINUTES)),
            now,
        )
    {
        return Some(Error::LoginBlocked {
            code: "error-login-blocked-for-ip".into(),
            reason: "Login has been temporarily blocked For IP".into(),
        });
    }
    None
}

/// Checks credentials and records a new login token (or resumes one).
pub async fn log_in(app: &App, creds: Credentials, ip: IpAddr) -> Result<LoggedIn> {
    match creds {
        Credentials::Resume(token) => {
            let hashed = secrets::hash_token(&token);
            let m = app.model.read();
            let user_id = m
                .tokens
                .get(&hashed)
                .ok_or(Error::LoginFailed)?
                .user_id
                .clone();
            let (user, tok) =
                tokens::authenticate(&m, &user_id, &hashed).ok_or(Error::LoginFailed)?;
            Ok(LoggedIn {
                user: (*user).clone(),
                token,
                token_created: tok.created_at,
                resumed: true,
            })
        }
        Credentials::Password { login, digest } => {
            let user = {
                let m = app.model.read();
                match &login {
                    Login::Username(u) => m.user_by_username(u),
                    Login::Email(e) => m.user_by_email(e),
                }
            };
            let login_name = match (&user, &login) {
                (Some(u), _) => u.username.clone(),
                (None, Login::Username(u) | Login::Email(u)) => u.clone(),
            };
            if let Some(e) = blocked(app, &login_name, ip) {
                return Err(e);
            }
            let stored = user
                .as_ref()
                .filter(|u| u.active)
                .and_then(|u| u.password_hash.clone());
            // Verify even for unknown users, so both cost the same time.
            let hash = stored
                .clone()
                .unwrap_or_else(|| secrets::dummy_hash().to_string());
            let _slot = app.login_slot().await?;
            let matches = secrets::off_thread(move || password::verify_digest(&digest, &hash))
                .await
                .unwrap_or(false);
            let (Some(user), true, true) = (user, matches, stored.is_some()) else {
                app.metrics.login_failures.inc();
                let now = Instant::now();
                app.login_guard
                    .fail(&format!("user:{}", login_name.to_lowercase()), now);
                app.login_guard.fail(&format!("ip:{ip}"), now);
                return Err(Error::LoginFailed);
            };
            // Rocket.Chat counts failures since the last successful login, of the user
            // and from the address alike: a success starts both counts again.
            app.login_guard
                .clear(&format!("user:{}", user.username.to_lowercase()));
            app.login_guard.clear(&format!("ip:{ip}"));
            let user_id = user.id.clone();
            let (user, token, created) = app
                .writer
                .run(move |tx| tokens::log_in(tx, &user_id))
                .await?;
            Ok(LoggedIn {
                user,
                token,
                token_created: created,
                resumed: false,
            })
        }
    }
}
