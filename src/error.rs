//! The domain's one error: why an operation was refused or could not be done, in words
//! a person can read (`Display`). The rules (`accounts`, `status`, `change`), the writer,
//! the admin CLI and the importer all use it; each entry point turns it into its own
//! wire form: `http::error` into the contract's JSON bodies (CONTRACT §2), `realtime`
//! into Meteor errors, the CLI and the importer print its text.

/// The Match error of setStatus (CONTRACT §2, §4): the body has the wrong shape.
pub const MATCH_ERROR: &str =
    "Match error: Failed Match.OneOf, Match.Maybe or Match.Optional validation";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A refusal in Rocket.Chat's words (a Meteor.Error): `<reason> [<code>]`. `method`
    /// names the Rocket.Chat method that refuses, when it says (`details.method`).
    #[error("{reason} [{code}]")]
    Refused {
        code: String,
        reason: String,
        method: Option<&'static str>,
    },
    /// Input of the wrong shape (a `Match error`), or a refusal with a text and no code.
    #[error("{0}")]
    Invalid(String),
    /// The caller lacks the permission the operation needs.
    #[error("not allowed")]
    Forbidden,
    /// The caller lacks a permission that the route declares up front (Rocket.Chat's
    /// `permissionsRequired`): refused before the handler runs, with its own text.
    #[error("{NOT_PERMITTED}")]
    NotPermitted,
    /// Wrong credentials: the same whether or not the user exists.
    #[error("wrong username or password")]
    LoginFailed,
    /// Too many failed logins: blocked for a while.
    #[error("{reason} [{code}]")]
    LoginBlocked { code: String, reason: String },
    /// Over a rate limit: try again after `wait_secs`.
    #[error("too many requests: wait {wait_secs} s")]
    TooManyRequests { wait_secs: u64 },
    /// Not done, and nothing changed: the store could not commit or be read, the
    /// process is stopping, this instance no longer leads the cluster.
    #[error("{0}")]
    Unavailable(String),
}

/// Rocket.Chat's answer when a route's declared permissions are missing.
pub const NOT_PERMITTED: &str =
    "User does not have the permissions required for this action [error-unauthorized]";

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A refusal with Rocket.Chat's error code and reason; `.by(method)` names the method.
    pub fn refused(code: &str, reason: &str) -> Error {
        Error::Refused {
            code: code.into(),
            reason: reason.into(),
            method: None,
        }
    }

    /// The same refusal, naming the Rocket.Chat method that gives it.
    pub fn by(self, method: &'static str) -> Error {
        match self {
            Error::Refused { code, reason, .. } => Error::Refused {
                code,
                reason,
                method: Some(method),
            },
            other => other,
        }
    }

    /// setStatus's Match error (the whole body is of the wrong shape).
    pub fn match_error() -> Error {
        Error::Invalid(MATCH_ERROR.into())
    }

    /// A `Match error` naming the offending field, for routes other than setStatus.
    pub fn match_field(field: &str, expected: &str) -> Error {
        Error::Invalid(format!("Match error: Expected {expected} in field {field}"))
    }

    /// A `Match error` for a required field that is absent.
    pub fn missing_key(field: &str) -> Error {
        Error::Invalid(format!("Match error: Missing key '{field}'"))
    }

    /// Rocket.Chat's getUserFromParams: no user matches the given id or username.
    pub fn invalid_user() -> Error {
        Error::refused(
            "error-invalid-user",
            "The required \"userId\" or \"username\" param provided does not match any users",
        )
    }

    /// The Rocket.Chat error code, if the error has one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Refused { code, .. } | Error::LoginBlocked { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The `details` of a blocked login, as Rocket.Chat's `Accounts.validateLoginAttempt`
/// hook throws it.
pub fn login_blocked_details() -> serde_json::Value {
    serde_json::json!({"function": "Accounts.validateLoginAttempt"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_text() {
        let e =
            Error::refused("error-invalid-role", "Invalid role wizard").by("insertOrUpdateUser");
        assert_eq!(e.to_string(), "Invalid role wizard [error-invalid-role]");
        assert_eq!(e.code(), Some("error-invalid-role"));
        assert_eq!(
            Error::missing_key("name").to_string(),
            "Match error: Missing key 'name'"
        );
        assert_eq!(
            Error::Unavailable("the store could not commit".into()).to_string(),
            "the store could not commit"
        );
    }
}
