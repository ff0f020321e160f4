//! Tokens: the login tokens of sessions and the personal access tokens bots log in
//! with. Only the hash of a secret is kept (Meteor's `hashedToken`); a new secret is
//! shown once.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::auth::secrets;
use crate::error::{Error, Result};
use crate::model::{Token, TokenKind, User};
use crate::settings::{self, Values};
use crate::state::{Model, Tx};

/// The Rocket.Chat method personal access token errors name.
pub const PAT_METHOD: &str = "personalAccessTokens";

/// The user a token (its hash) authenticates, if the token exists, belongs to
/// `user_id`, has not expired (login tokens last `Accounts_LoginExpiration` days) and
/// the user is active.
pub fn authenticate(m: &Model, user_id: &str, hashed: &str) -> Option<(Arc<User>, Arc<Token>)> {
    let tok = m.tokens.get(hashed)?;
    if !secrets::secrets_equal(&tok.user_id, user_id) {
        return None;
    }
    if tok.kind == TokenKind::Login && Utc::now() > login_expires(m, tok.created_at) {
        return None;
    }
    let user = m.users.get(user_id)?;
    if !user.active {
        return None;
    }
    Some((user.clone(), tok.clone()))
}

/// When a login token made at `created` expires. `Accounts_LoginExpiration` 0 means
/// Rocket.Chat's default of 90 days (its `getLoginExpirationInDays`), not "already
/// expired". The arithmetic is checked: a date past what chrono holds means never.
pub fn login_expires(m: &Model, created: DateTime<Utc>) -> DateTime<Utc> {
    expires_after_days(created, m.value(&settings::LOGIN_EXPIRATION))
}

/// How many login tokens have not expired at `now` (personal access tokens never do
/// and are not counted).
pub fn live_logins(m: &Model, now: DateTime<Utc>) -> usize {
    let days = m.value(&settings::LOGIN_EXPIRATION);
    m.tokens
        .values()
        .filter(|t| t.kind == TokenKind::Login && now <= expires_after_days(t.created_at, days))
        .count()
}

/// The days a login token lasts when the setting says 0 or less.
pub const DEFAULT_LOGIN_DAYS: i64 = 90;

/// `created` plus `days` (0 or less: the default), saturating at the latest date.
pub fn expires_after_days(created: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    let days = if days > 0 { days } else { DEFAULT_LOGIN_DAYS };
    chrono::TimeDelta::try_days(days)
        .and_then(|d| created.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A token secret made now, and the hash of it that is kept.
fn new_secret() -> (String, String) {
    let secret = secrets::new_secret();
    let hashed = secrets::hash_token(&secret);
    (secret, hashed)
}

/// A new session after a successful login: records the login and issues a login
/// token. Returns the user as it is now, the token's secret (shown once) and when it
/// was made.
pub fn log_in(tx: &mut Tx, user_id: &str) -> Result<(User, String, DateTime<Utc>)> {
    let current = tx.user(user_id).ok_or(Error::LoginFailed)?;
    let mut u = (*current).clone();
    u.last_login = Some(tx.now);
    tx.put_user(u.clone());
    let (secret, hashed) = new_secret();
    tx.put_token(Token {
        hashed,
        user_id: user_id.to_string(),
        kind: TokenKind::Login,
        created_at: tx.now,
    });
    drop_oldest_logins(tx, user_id);
    Ok((u, secret, tx.now))
}

/// The most login tokens a user keeps; a login past it drops the oldest (their sessions
/// end), so a flood of logins cannot pile up tokens that each live for months.
pub const MAX_LOGIN_TOKENS: usize = 50;

fn drop_oldest_logins(tx: &mut Tx, user_id: &str) {
    let mut logins: Vec<Arc<Token>> = tx
        .user_tokens(user_id)
        .into_iter()
        .filter(|t| t.kind == TokenKind::Login)
        .collect();
    if logins.len() <= MAX_LOGIN_TOKENS {
        return;
    }
    logins.sort_by(|a, b| (a.created_at, &a.hashed).cmp(&(b.created_at, &b.hashed)));
    for t in &logins[..logins.len() - MAX_LOGIN_TOKENS] {
        tx.delete_token(&t.hashed);
    }
}

/// Logs a session out: its token goes.
pub fn revoke(tx: &mut Tx, hashed: &str) {
    tx.delete_token(hashed);
}

/// Revokes every token of a user (deactivated or deleted); returns how many.
pub fn revoke_all(tx: &mut Tx, user_id: &str) -> usize {
    let tokens = tx.user_tokens(user_id);
    for t in &tokens {
        tx.delete_token(&t.hashed);
    }
    tokens.len()
}

/// Revokes the login tokens of a user but `keep` (the session that changed the
/// password): a changed password ends every other session, as Meteor's
/// `Accounts.setPassword` does. Personal access tokens stay (a bot's token is not a
/// session; its owner revokes it by name). Returns how many were revoked.
pub fn revoke_other_logins(tx: &mut Tx, user_id: &str, keep: Option<&str>) -> usize {
    let others: Vec<_> = tx
        .user_tokens(user_id)
        .into_iter()
        .filter(|t| t.kind == TokenKind::Login && Some(t.hashed.as_str()) != keep)
        .collect();
    for t in &others {
        tx.delete_token(&t.hashed);
    }
    others.len()
}

/// A personal access token's name: trimmed, and not empty.
pub fn token_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(
            Error::refused("error-token-name-required", "Token name is required").by(PAT_METHOD),
        );
    }
    Ok(name.to_string())
}

fn not_found() -> Error {
    Error::refused("error-token-does-not-exists", "Token does not exist").by(PAT_METHOD)
}

fn personal(tx: &Tx, user_id: &str, name: &str) -> Option<Arc<Token>> {
    tx.user_tokens(user_id)
        .into_iter()
        .find(|t| matches!(&t.kind, TokenKind::Personal { name: n, .. } if n == name))
}

/// A user's personal access tokens as users.getPersonalAccessTokens and
/// `statusd token list` show them, oldest first: (name, the secret's last characters,
/// bypassTwoFactor, created). Never the secrets or their hashes.
pub fn personal_tokens(m: &Model, user_id: &str) -> Vec<(String, String, bool, DateTime<Utc>)> {
    let mut mine: Vec<_> = m
        .tokens
        .values()
        .filter(|t| t.user_id == user_id)
        .filter_map(|t| match &t.kind {
            TokenKind::Personal {
                name,
                last_part,
                bypass_two_factor,
            } => Some((
                name.clone(),
                last_part.clone(),
                *bypass_two_factor,
                t.created_at,
            )),
            TokenKind::Login => None,
        })
        .collect();
    mine.sort_by_key(|t| t.3);
    mine
}

/// Issues a personal access token named `name` for `user_id`: a new one (the name must
/// be free), or with `replace` a new secret for the one of that name (keeping its
/// `bypassTwoFactor`). Returns the secret, to be shown once.
pub fn issue_personal(
    tx: &mut Tx,
    user_id: &str,
    name: String,
    replace: bool,
    bypass_two_factor: bool,
) -> Result<String> {
    let old = personal(tx, user_id, &name);
    let bypass_two_factor = match (&old, replace) {
        (Some(t), true) => matches!(
            t.kind,
            TokenKind::Personal {
                bypass_two_factor: true,
                ..
            }
        ),
        _ => bypass_two_factor,
    };
    match (old, replace) {
        (Some(_), false) => {
            return Err(Error::refused(
                "error-token-already-exists",
                "A token with this name already exists",
            )
            .by(PAT_METHOD))
        }
        (None, true) => return Err(not_found()),
        (Some(old), true) => tx.delete_token(&old.hashed),
        (None, false) => {}
    }
    let (secret, hashed) = new_secret();
    let last_part = secret[secret.len() - 6..].to_string();
    tx.put_token(Token {
        hashed,
        user_id: user_id.to_string(),
        kind: TokenKind::Personal {
            name,
            last_part,
            bypass_two_factor,
        },
        created_at: tx.now,
    });
    Ok(secret)
}

/// Revokes the personal access token named `name`.
pub fn revoke_personal(tx: &mut Tx, user_id: &str, name: &str) -> Result<()> {
    let old = personal(tx, user_id, name).ok_or_else(not_found)?;
    tx.delete_token(&old.hashed);
    Ok(())
}

/// Keeps a personal access token made elsewhere (an import), unless the user has it
/// already; one of the same name is replaced. Returns whether it was added.
pub fn keep_personal(tx: &mut Tx, token: Token) -> bool {
    let TokenKind::Personal { name, .. } = &token.kind else {
        return false;
    };
    let mine = tx.user_tokens(&token.user_id);
    if mine.iter().any(|m| m.hashed == token.hashed) {
        return false;
    }
    for old in mine
        .iter()
        .filter(|m| matches!(&m.kind, TokenKind::Personal { name: n, .. } if n == name))
    {
        tx.delete_token(&old.hashed);
    }
    tx.put_token(token);
    true
}

#[cfg(test)]
mod tests {
    use parking_lot::RwLock;

    use super::*;
    use crate::accounts::users::new_user;

    fn code<T>(r: Result<T>) -> Option<String> {
        r.err().and_then(|e| e.code().map(str::to_string))
    }

    #[test]
    fn a_user_keeps_at_most_max_login_tokens_the_oldest_dropped() {
        let m = RwLock::new(Model::default());
        let mut tx = Tx::new(&m);
        let mut u = new_user("flood", "Flood", tx.now);
        u.id = "flood-id".into();
        tx.put_user(u);
        issue_personal(&mut tx, "flood-id", "ci".into(), false, false).unwrap();
        let mut first = None;
        for _ in 0..MAX_LOGIN_TOKENS + 5 {
            tx.now += chrono::TimeDelta::milliseconds(1);
            let (_, secret, _) = log_in(&mut tx, "flood-id").unwrap();
            first.get_or_insert(secret);
        }
        let kept = tx.user_tokens("flood-id");
        let logins = kept.iter().filter(|t| t.kind == TokenKind::Login).count();
        assert_eq!(logins, MAX_LOGIN_TOKENS);
        let first = secrets::hash_token(&first.unwrap());
        assert!(!kept.iter().any(|t| t.hashed == first), "the oldest went");
        // The personal access token is not counted and stays.
        assert!(kept.iter().any(|t| t.kind != TokenKind::Login));
    }

    #[test]
    fn login_expiry_is_checked_arithmetic() {
        let t = Utc::now();
        assert_eq!(expires_after_days(t, 2), t + chrono::TimeDelta::days(2));
        // 0 (or less) is Rocket.Chat's default, never "already expired".
        assert_eq!(expires_after_days(t, 0), t + chrono::TimeDelta::days(90));
        assert_eq!(expires_after_days(t, -5), t + chrono::TimeDelta::days(90));
        // Past what a date holds: never, instead of a panic.
        assert_eq!(expires_after_days(t, i64::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(expires_after_days(t, 100_000_000), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn personal_tokens_are_named_unique_and_kept_hashed() {
        let m = RwLock::new(Model::default());
        let mut tx = Tx::new(&m);
        let mut u = new_user("bot", "Bot", tx.now);
        u.id = "bot-id".into();
        tx.put_user(u);
        assert_eq!(
            code(token_name("  ")),
            Some("error-token-name-required".into())
        );
        assert_eq!(token_name(" ci ").unwrap(), "ci");
        let first = issue_personal(&mut tx, "bot-id", "ci".into(), false, true).unwrap();
        let kept = tx.user_tokens("bot-id");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].hashed, secrets::hash_token(&first));
        assert!(
            matches!(&kept[0].kind, TokenKind::Personal { name, last_part, bypass_two_factor: true } if name == "ci" && first.ends_with(last_part.as_str()))
        );
        assert_eq!(
            code(issue_personal(&mut tx, "bot-id", "ci".into(), false, true)),
            Some("error-token-already-exists".into())
        );
        assert_eq!(
            code(issue_personal(&mut tx, "bot-id", "cd".into(), true, false)),
            Some("error-token-does-not-exists".into())
        );
        let second = issue_personal(&mut tx, "bot-id", "ci".into(), true, false).unwrap();
        let kept = tx.user_tokens("bot-id");
        assert_eq!(kept.len(), 1, "the old secret is gone");
        assert_eq!(kept[0].hashed, secrets::hash_token(&second));
        assert!(
            matches!(
                kept[0].kind,
                TokenKind::Personal {
                    bypass_two_factor: true,
                    ..
                }
            ),
            "a renewed token keeps bypassTwoFactor"
        );
        revoke_personal(&mut tx, "bot-id", "ci").unwrap();
        assert!(tx.user_tokens("bot-id").is_empty());
        assert_eq!(
            code(revoke_personal(&mut tx, "bot-id", "ci")),
            Some("error-token-does-not-exists".into())
        );
    }

    #[test]
    fn a_login_records_itself_and_issues_a_login_token() {
        let m = RwLock::new(Model::default());
        let mut tx = Tx::new(&m);
        assert_eq!(log_in(&mut tx, "nobody").unwrap_err(), Error::LoginFailed);
        let mut u = new_user("ann", "Ann", tx.now);
        u.id = "ann-id".into();
        tx.put_user(u);
        let (user, secret, at) = log_in(&mut tx, "ann-id").unwrap();
        assert_eq!(user.last_login, Some(at));
        let kept = tx.user_tokens("ann-id");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].kind, TokenKind::Login);
        assert_eq!(kept[0].hashed, secrets::hash_token(&secret));
        revoke(&mut tx, &kept[0].hashed);
        assert!(tx.user_tokens("ann-id").is_empty());
    }

    #[test]
    fn a_password_change_ends_every_other_session() {
        let m = RwLock::new(Model::default());
        let mut tx = Tx::new(&m);
        let mut u = new_user("ann", "Ann", tx.now);
        u.id = "ann-id".into();
        tx.put_user(u);
        let (_, mine, _) = log_in(&mut tx, "ann-id").unwrap();
        log_in(&mut tx, "ann-id").unwrap();
        log_in(&mut tx, "ann-id").unwrap();
        issue_personal(&mut tx, "ann-id", "ci".into(), false, false).unwrap();
        let keep = secrets::hash_token(&mine);
        assert_eq!(revoke_other_logins(&mut tx, "ann-id", Some(&keep)), 2);
        let left: Vec<_> = tx.user_tokens("ann-id");
        assert_eq!(
            left.len(),
            2,
            "the caller's session and the personal token stay"
        );
        assert!(left.iter().any(|t| t.hashed == keep));
        assert_eq!(revoke_other_logins(&mut tx, "ann-id", None), 1);
        assert_eq!(tx.user_tokens("ann-id").len(), 1);
    }
}
