//! The username, name and email rules: well formed, not reserved, not too long, and
//! not taken by another user. Usernames follow the workspace's
//! `UTF8_User_Names_Validation` pattern (Rocket.Chat's default `[0-9a-zA-Z-_.]+`, so
//! `аdmin` with a Cyrillic `а` is refused), and the reserved names (Rocket.Chat's
//! system list and `all`/`here`, plus `Accounts_BlockedUsernameList`) are refused
//! whatever their case.

use regex::{Regex, RegexBuilder};

use crate::error::{Error, Result};
use crate::model::User;
use crate::settings;
use crate::state::Tx;
use crate::text;

use super::METHOD;

/// Rocket.Chat's default username pattern, also used when the setting's is unusable.
pub const DEFAULT_USERNAME_PATTERN: &str = "[0-9a-zA-Z-_.]+";
/// Names nobody may take: Rocket.Chat's `Accounts_SystemBlockedUsernameList` and the
/// mention keywords `all` and `here`.
pub const RESERVED_USERNAMES: &[&str] =
    &["admin", "administrator", "system", "user", "all", "here"];
/// The longest username, in characters.
pub const USERNAME_MAX: usize = 64;
/// The longest email address (RFC 5321's path limit), in characters.
pub const EMAIL_MAX: usize = 254;
/// The longest name, in characters.
pub const NAME_MAX: usize = 120;
/// The longest bio and nickname (Rocket.Chat's MAX_BIO_LENGTH, MAX_NICKNAME_LENGTH).
pub const BIO_MAX: usize = 260;
pub const NICKNAME_MAX: usize = 120;
/// A workspace pattern longer than this, or compiling to more than `PATTERN_SIZE`
/// bytes, is not used: a hostile setting cannot make every sign-up slow.
const PATTERN_MAX: usize = 1024;
const PATTERN_SIZE: usize = 1 << 20;

/// Which usernames the workspace accepts: its pattern and its blocked list.
pub struct UsernameRules {
    pattern: Regex,
    blocked: Vec<String>,
}

/// The whole-name regular expression of `pattern` (`^(?:pattern)$`), or None when it
/// does not compile within the bounds. The `regex` crate matches in linear time, so
/// no pattern can make a match slow.
fn compile(pattern: &str) -> Option<Regex> {
    if pattern.len() > PATTERN_MAX {
        return None;
    }
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(PATTERN_SIZE)
        .dfa_size_limit(PATTERN_SIZE)
        .build()
        .ok()
}

impl UsernameRules {
    /// The rules for `pattern` and the comma-separated `blocked` list. A pattern that
    /// does not compile falls back to the default, as in Rocket.Chat.
    pub fn new(pattern: &str, blocked: &str) -> UsernameRules {
        let pattern = compile(pattern)
            .or_else(|| compile(DEFAULT_USERNAME_PATTERN))
            .unwrap_or_else(|| Regex::new("^[0-9a-zA-Z_.-]+$").expect("the default pattern"));
        let blocked = blocked
            .split(',')
            .map(|n| n.trim().to_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        UsernameRules { pattern, blocked }
    }

    /// The rules the workspace's settings say now.
    pub fn of(tx: &Tx) -> UsernameRules {
        UsernameRules::new(
            &tx.value(&settings::USERNAME_PATTERN),
            &tx.value(&settings::BLOCKED_USERNAMES),
        )
    }

    /// Not empty, at most `USERNAME_MAX` characters, matching the pattern.
    pub fn well_formed(&self, name: &str) -> bool {
        !name.is_empty() && text::chars(name) <= USERNAME_MAX && self.pattern.is_match(name)
    }

    /// Reserved or on the workspace's blocked list, in any case.
    pub fn blocked(&self, name: &str) -> bool {
        let lower = name.trim().to_lowercase();
        RESERVED_USERNAMES.contains(&lower.as_str()) || self.blocked.contains(&lower)
    }
}

/// `local@domain.tld`, without whitespace, at most `EMAIL_MAX` characters.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    text::chars(email) <= EMAIL_MAX
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// Rocket.Chat's validateNameChars: no `<`, `>`, `\` or `/`, also once URI-decoded.
pub fn valid_name_chars(name: &str) -> bool {
    let bad = |s: &str| s.contains(['<', '>', '\\', '/']);
    if bad(name) {
        return false;
    }
    match percent_encoding::percent_decode_str(name).decode_utf8() {
        Ok(decoded) => !bad(&decoded),
        Err(_) => false,
    }
}

/// A name, nickname or bio as it is kept (invisible characters out, trimmed), or the
/// refusal of one that is too long.
fn capped(value: &str, max: usize, code: &str, what: &str) -> Result<String> {
    let clean = text::clean_name(value);
    if text::chars(&clean) > max {
        return Err(
            Error::refused(code, &format!("{what} size exceeds {max} characters")).by(METHOD),
        );
    }
    Ok(clean)
}

/// A person's name: well formed (`valid_name_chars`), at most `NAME_MAX` characters.
pub fn name(value: &str) -> Result<String> {
    if !valid_name_chars(value) {
        return Err(Error::Invalid("Name contains invalid characters".into()));
    }
    capped(value, NAME_MAX, "error-name-size-exceeded", "Name")
}

/// A bio: at most `BIO_MAX` characters (Rocket.Chat's handleBio).
pub fn bio(value: &str) -> Result<String> {
    capped(value, BIO_MAX, "error-bio-size-exceeded", "Bio")
}

/// A nickname: at most `NICKNAME_MAX` characters (Rocket.Chat's handleNickname).
pub fn nickname(value: &str) -> Result<String> {
    capped(
        value,
        NICKNAME_MAX,
        "error-nickname-size-exceeded",
        "Nickname",
    )
}

/// Which route checks an identity: each refuses in Rocket.Chat's words for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// users.create, `statusd user add`, a new imported user (insertOrUpdateUser).
    Create,
    /// users.register (its own plain texts).
    Register,
    /// users.update of an existing user (saveUserIdentity).
    Change,
}

fn invalid_username(purpose: Purpose, name: &str) -> Error {
    match purpose {
        Purpose::Register => Error::Invalid("The username provided is not valid".into()),
        _ => Error::refused(
            "error-input-is-not-a-valid-field",
            &format!("{name} is not a valid username"),
        )
        .by(METHOD),
    }
}

fn blocked_username(purpose: Purpose, name: &str) -> Error {
    match purpose {
        Purpose::Change => Error::refused(
            "error-could-not-save-identity",
            "Could not save user identity",
        )
        .by("saveUser"),
        _ => Error::refused(
            "error-blocked-username",
            &format!("{name} is blocked and can't be used!"),
        )
        .by("checkUsernameAvailability"),
    }
}

fn taken(purpose: Purpose, value: &str, is_email: bool) -> Error {
    match (purpose, is_email) {
        (Purpose::Register, false) => Error::Invalid("Username is already in use".into()),
        (Purpose::Register, true) => Error::Invalid("Email already exists".into()),
        _ => Error::refused(
            "error-field-unavailable",
            &format!("{value} is already in use :("),
        )
        .by(METHOD),
    }
}

/// Checks a username and email are well formed, allowed and free. `current` is the
/// user being changed: a username or email it already has is not checked again (an
/// old name stays valid when the rules change; a change of case is its own).
/// Runs inside the writer so two concurrent creations cannot both pass.
pub fn check(
    tx: &Tx,
    purpose: Purpose,
    username: Option<&str>,
    email: Option<&str>,
    current: Option<&User>,
) -> Result<()> {
    let except = current.map(|u| u.id.as_str());
    let taken_by_other = |id: &str| Some(id) != except;
    let unchanged_name = |n: &str| current.is_some_and(|u| u.username == n);
    if let Some(name) = username.filter(|n| !unchanged_name(n)) {
        let rules = UsernameRules::of(tx);
        if !rules.well_formed(name) {
            return Err(invalid_username(purpose, name));
        }
        if rules.blocked(name) {
            return Err(blocked_username(purpose, name));
        }
        if tx
            .user_by_username(name)
            .is_some_and(|u| taken_by_other(&u.id))
        {
            return Err(taken(purpose, name, false));
        }
    }
    let unchanged_email = |e: &str| {
        current.is_some_and(|u| u.first_email().is_some_and(|f| f.eq_ignore_ascii_case(e)))
    };
    if let Some(email) = email.filter(|e| !unchanged_email(e)) {
        if !valid_email(email) {
            return Err(
                Error::refused("error-invalid-email", &format!("Invalid email {email}")).by(METHOD),
            );
        }
        if tx
            .user_by_email(email)
            .is_some_and(|u| taken_by_other(&u.id))
        {
            return Err(taken(purpose, email, true));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_workspace_pattern() {
        let rules = UsernameRules::new(DEFAULT_USERNAME_PATTERN, "");
        for ok in ["alice", "a.b-c_d", "Bob42", &"x".repeat(64)] {
            assert!(rules.well_formed(ok), "{ok}");
        }
        // `аdmin` with a Cyrillic а, accents, spaces, separators, too long.
        for bad in [
            "",
            "bad name",
            "a/b",
            "a@b",
            "\u{430}dmin",
            "Ünïcode",
            &"x".repeat(65),
        ] {
            assert!(!rules.well_formed(bad), "{bad}");
        }
        // A wider pattern lets Unicode letters in; a broken one falls back to the default.
        let wide = UsernameRules::new(r"[\p{L}0-9._-]+", "");
        assert!(wide.well_formed("Ünïcode"));
        let broken = UsernameRules::new("([a-z", "");
        assert!(broken.well_formed("alice") && !broken.well_formed("Ünïcode"));
        let huge = UsernameRules::new(&"a".repeat(PATTERN_MAX + 1), "");
        assert!(huge.well_formed("alice"), "an oversized pattern falls back");
        // The pattern must match the whole name.
        let anchored = UsernameRules::new("[a-z]+", "");
        assert!(!anchored.well_formed("abc1"));
    }

    #[test]
    fn reserved_and_blocked_usernames() {
        let rules = UsernameRules::new(DEFAULT_USERNAME_PATTERN, " Boss , ,ceo");
        for name in [
            "admin",
            "ADMIN",
            "Administrator",
            "system",
            "user",
            "all",
            "here",
            "boss",
            "CEO",
        ] {
            assert!(rules.blocked(name), "{name}");
        }
        for name in ["alice", "admins", "bossy"] {
            assert!(!rules.blocked(name), "{name}");
        }
    }

    #[test]
    fn names_bios_and_nicknames() {
        assert_eq!(name(" Ann \u{202E}").unwrap(), "Ann");
        for bad in ["<b>", "a/b", "a\\b", "%3Cscript%3E", "%E0%A4%A"] {
            assert_eq!(
                name(bad),
                Err(Error::Invalid("Name contains invalid characters".into())),
                "{bad}"
            );
        }
        assert!(name(&"n".repeat(NAME_MAX)).is_ok());
        assert_eq!(
            name(&"n".repeat(NAME_MAX + 1)).unwrap_err().code(),
            Some("error-name-size-exceeded")
        );
        assert_eq!(bio(&"b".repeat(BIO_MAX)).unwrap().len(), BIO_MAX);
        assert_eq!(
            bio(&"b".repeat(BIO_MAX + 1)).unwrap_err().to_string(),
            "Bio size exceeds 260 characters [error-bio-size-exceeded]"
        );
        assert_eq!(
            nickname(&"n".repeat(NICKNAME_MAX + 1))
                .unwrap_err()
                .to_string(),
            "Nickname size exceeds 120 characters [error-nickname-size-exceeded]"
        );
    }

    #[test]
    fn emails() {
        assert!(valid_email("alice@example.com"));
        let long = format!("{}@example.com", "a".repeat(EMAIL_MAX));
        for bad in [
            "nope",
            "@example.com",
            "a@example",
            "a@.com",
            "a@com.",
            "a b@c.de",
            long.as_str(),
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
