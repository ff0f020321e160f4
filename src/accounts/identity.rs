//! The username and email rules: well formed, and not taken by another user.

use crate::error::{Error, Result};
use crate::state::Tx;

use super::METHOD;

/// Letters, digits, `.`, `_` and `-`, at most 64 bytes.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// `local@domain.tld`, without whitespace.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// Checks a username and email are well formed and free (ignoring `except`, the user
/// being changed). Runs inside the writer so two concurrent creations cannot both pass.
pub fn check(
    tx: &Tx,
    username: Option<&str>,
    email: Option<&str>,
    except: Option<&str>,
) -> Result<()> {
    let taken_by_other = |id: &str| Some(id) != except;
    if let Some(name) = username {
        if !valid_username(name) {
            return Err(Error::refused(
                "error-invalid-username",
                &format!("{name} is not a valid username"),
            )
            .by(METHOD));
        }
        if tx
            .user_by_username(name)
            .is_some_and(|u| taken_by_other(&u.id))
        {
            return Err(Error::refused(
                "error-field-unavailable",
                &format!("{name} is already in use :("),
            )
            .by(METHOD));
        }
    }
    if let Some(email) = email {
        if !valid_email(email) {
            return Err(
                Error::refused("error-invalid-email", &format!("Invalid email {email}")).by(METHOD),
            );
        }
        if tx
            .user_by_email(email)
            .is_some_and(|u| taken_by_other(&u.id))
        {
            return Err(Error::refused(
                "error-field-unavailable",
                &format!("{email} is already in use :("),
            )
            .by(METHOD));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["alice", "a.b-c_d", "Ünïcode", &"x".repeat(64)] {
            assert!(valid_username(ok), "{ok}");
        }
        for bad in ["", "bad name", "a/b", "a@b", &"x".repeat(65)] {
            assert!(!valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(valid_email("alice@example.com"));
        for bad in [
            "nope",
            "@example.com",
            "a@example",
            "a@.com",
            "a@com.",
            "a b@c.de",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
