//! The workspace settings statusd knows, each declared once (`settings!` below): id,
//! type, default and whether anyone may read it through `settings.public`. Values are
//! stored as JSON, checked against the type; the code reads them typed
//! (`model.value(&settings::ALLOW_INVISIBLE)` is a `bool`), falling back to the default.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Bool,
    Int,
    Str,
    /// A string from a fixed list.
    Select(&'static [&'static str]),
}

/// A default value, as a constant can hold it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Default {
    Bool(bool),
    Int(i64),
    Str(&'static str),
}

pub struct Definition {
    pub id: &'static str,
    pub kind: Kind,
    pub public: bool,
    default: Default,
}

impl Definition {
    pub fn default_value(&self) -> Value {
        match self.default {
            Default::Bool(b) => json!(b),
            Default::Int(n) => json!(n),
            Default::Str(s) => json!(s),
        }
    }

    /// Is `value` of this setting's type?
    pub fn accepts(&self, value: &Value) -> bool {
        match self.kind {
            Kind::Bool => value.is_boolean(),
            Kind::Int => value.is_i64() || value.is_u64(),
            Kind::Str => value.is_string(),
            Kind::Select(options) => value.as_str().is_some_and(|s| options.contains(&s)),
        }
    }

    /// Parses the text of an `OVERWRITE_SETTING_<id>` variable (or `statusd settings set`).
    pub fn parse_text(&self, text: &str) -> Option<Value> {
        let v = match self.kind {
            Kind::Bool => match text.trim() {
                "true" => json!(true),
                "false" => json!(false),
                _ => return None,
            },
            Kind::Int => json!(text.trim().parse::<i64>().ok()?),
            Kind::Str | Kind::Select(_) => json!(text),
        };
        self.accepts(&v).then_some(v)
    }
}

/// A setting read as a Rust value.
pub trait Typed {
    type Out;
    fn definition(&self) -> &Definition;
    /// The stored value, or the default when it is missing or of another type.
    fn read(&self, stored: Option<&Value>) -> Self::Out;
}

/// A yes/no setting.
pub struct Flag(Definition);
/// A whole-number setting.
pub struct Number(Definition);
/// A free-text setting.
pub struct Text(Definition);
/// A setting that is one of a fixed list of texts.
pub struct Choice(Definition);

impl Flag {
    const fn new(id: &'static str, public: bool, default: bool) -> Flag {
        Flag(Definition {
            id,
            kind: Kind::Bool,
            public,
            default: Default::Bool(default),
        })
    }
}

impl Number {
    const fn new(id: &'static str, public: bool, default: i64) -> Number {
        Number(Definition {
            id,
            kind: Kind::Int,
            public,
            default: Default::Int(default),
        })
    }
}

impl Text {
    const fn new(id: &'static str, public: bool, default: &'static str) -> Text {
        Text(Definition {
            id,
            kind: Kind::Str,
            public,
            default: Default::Str(default),
        })
    }
}

impl Choice {
    const fn new(
        id: &'static str,
        public: bool,
        default: &'static str,
        options: &'static [&'static str],
    ) -> Choice {
        Choice(Definition {
            id,
            kind: Kind::Select(options),
            public,
            default: Default::Str(default),
        })
    }
}

impl Typed for Flag {
    type Out = bool;
    fn definition(&self) -> &Definition {
        &self.0
    }
    fn read(&self, stored: Option<&Value>) -> bool {
        match (stored.and_then(Value::as_bool), self.0.default) {
            (Some(b), _) | (None, Default::Bool(b)) => b,
            _ => false,
        }
    }
}

impl Typed for Number {
    type Out = i64;
    fn definition(&self) -> &Definition {
        &self.0
    }
    fn read(&self, stored: Option<&Value>) -> i64 {
        match (stored.and_then(Value::as_i64), self.0.default) {
            (Some(n), _) | (None, Default::Int(n)) => n,
            _ => 0,
        }
    }
}

impl Typed for Text {
    type Out = String;
    fn definition(&self) -> &Definition {
        &self.0
    }
    fn read(&self, stored: Option<&Value>) -> String {
        match (stored.and_then(Value::as_str), self.0.default) {
            (Some(s), _) | (None, Default::Str(s)) => s.to_string(),
            _ => String::new(),
        }
    }
}

impl Typed for Choice {
    type Out = String;
    fn definition(&self) -> &Definition {
        &self.0
    }
    fn read(&self, stored: Option<&Value>) -> String {
        match (stored.and_then(Value::as_str), self.0.default) {
            (Some(s), _) if self.0.accepts(&json!(s)) => s.to_string(),
            (_, Default::Str(s)) => s.to_string(),
            _ => String::new(),
        }
    }
}

/// Where setting values are kept (the in-memory model): typed reads of them.
pub trait Values {
    /// The stored JSON value of the setting `id`.
    fn stored(&self, id: &str) -> Option<&Value>;

    /// The value of `setting`, typed.
    fn value<S: Typed>(&self, setting: &S) -> S::Out {
        setting.read(self.stored(setting.definition().id))
    }
}

/// Declares every setting once: a typed constant each, and `DEFINITIONS`, the list of
/// them all (what a fresh database is filled with and what `settings/:id` accepts).
macro_rules! settings {
    ($(
        $(#[$doc:meta])*
        $name:ident: $ty:ident = ($id:literal, $public:expr, $default:expr $(, $options:expr)?);
    )*) => {
        $(
            $(#[$doc])*
            pub const $name: $ty = $ty::new($id, $public, $default $(, $options)?);
        )*

        /// Every setting statusd knows.
        pub static DEFINITIONS: &[Definition] = &[$($name.0),*];
    };
}

const PUBLIC: bool = true;
const PRIVATE: bool = false;

pub const REGISTRATION_FORMS: &[&str] = &["Public", "Disabled", "Secret URL"];

settings! {
    SITE_NAME: Text = ("Site_Name", PUBLIC, "statusd");
    /// May users change their status and status text at all (setStatus step 4)?
    ALLOW_STATUS_MESSAGE_CHANGE: Flag = ("Accounts_AllowUserStatusMessageChange", PUBLIC, true);
    /// May users choose `offline` (invisible)?
    ALLOW_INVISIBLE: Flag = ("Accounts_AllowInvisibleStatusOption", PUBLIC, true);
    ALLOW_USER_PROFILE_CHANGE: Flag = ("Accounts_AllowUserProfileChange", PUBLIC, true);
    /// Days a login token lasts.
    LOGIN_EXPIRATION: Number = ("Accounts_LoginExpiration", PUBLIC, 90);
    /// `Public` lets anyone sign up through users.register.
    REGISTRATION_FORM: Choice = ("Accounts_RegistrationForm", PUBLIC, "Disabled", REGISTRATION_FORMS);
    RATE_LIMITER: Flag = ("API_Enable_Rate_Limiter", PRIVATE, true);
    RATE_LIMIT_CALLS: Number = ("API_Enable_Rate_Limiter_Limit_Calls_Default", PRIVATE, 10);
    /// The rate limit's window, in milliseconds.
    RATE_LIMIT_TIME: Number = ("API_Enable_Rate_Limiter_Limit_Time_Default", PRIVATE, 60000);
    /// Status history older than this many days is pruned; 0 keeps everything.
    HISTORY_RETENTION_DAYS: Number = ("Status_History_Retention_Days", PRIVATE, 30);
    /// The page size of the list routes when none is asked for.
    DEFAULT_COUNT: Number = ("API_Default_Count", PRIVATE, 50);
    /// The largest page the list routes give.
    UPPER_COUNT_LIMIT: Number = ("API_Upper_Count_Limit", PRIVATE, 100);
    BLOCK_FAILED_LOGINS: Flag = ("Block_Multiple_Failed_Logins_Enabled", PRIVATE, true);
    BLOCK_FAILED_LOGINS_BY_USER: Flag = ("Block_Multiple_Failed_Logins_By_User", PRIVATE, true);
    BLOCK_FAILED_LOGINS_BY_IP: Flag = ("Block_Multiple_Failed_Logins_By_Ip", PRIVATE, true);
    BLOCK_USER_AFTER_ATTEMPTS: Number =
        ("Block_Multiple_Failed_Logins_Attempts_Until_Block_by_User", PRIVATE, 10);
    BLOCK_USER_FOR_MINUTES: Number =
        ("Block_Multiple_Failed_Logins_Time_To_Unblock_By_User_In_Minutes", PRIVATE, 5);
    BLOCK_IP_AFTER_ATTEMPTS: Number =
        ("Block_Multiple_Failed_Logins_Attempts_Until_Block_By_Ip", PRIVATE, 50);
    BLOCK_IP_FOR_MINUTES: Number =
        ("Block_Multiple_Failed_Logins_Time_To_Unblock_By_Ip_In_Minutes", PRIVATE, 5);
    /// Client IPs never blocked, separated by commas.
    BLOCK_IP_WHITELIST: Text = ("Block_Multiple_Failed_Logins_Ip_Whitelist", PRIVATE, "");
    // Accounts: what users may change about themselves (users.update, Rocket.Chat's
    // validateUserEditing) and which usernames anyone may take (accounts::identity).
    ALLOW_USERNAME_CHANGE: Flag = ("Accounts_AllowUsernameChange", PUBLIC, true);
    ALLOW_REAL_NAME_CHANGE: Flag = ("Accounts_AllowRealNameChange", PUBLIC, true);
    ALLOW_EMAIL_CHANGE: Flag = ("Accounts_AllowEmailChange", PUBLIC, true);
    ALLOW_PASSWORD_CHANGE: Flag = ("Accounts_AllowPasswordChange", PUBLIC, true);
    /// Usernames nobody may take, separated by commas (besides the reserved ones).
    BLOCKED_USERNAMES: Text = ("Accounts_BlockedUsernameList", PRIVATE, "");
    /// The pattern a whole username must match (a regular expression).
    USERNAME_PATTERN: Text = ("UTF8_User_Names_Validation", PUBLIC, "[0-9a-zA-Z-_.]+");
}

pub fn definition(id: &str) -> Option<&'static Definition> {
    DEFINITIONS.iter().find(|d| d.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn types_are_checked() {
        let d = definition("Accounts_AllowInvisibleStatusOption").unwrap();
        assert!(d.accepts(&json!(false)));
        assert!(!d.accepts(&json!("false")));
        assert_eq!(d.parse_text("false"), Some(json!(false)));
        assert_eq!(d.parse_text("nope"), None);
        let d = definition("API_Enable_Rate_Limiter_Limit_Calls_Default").unwrap();
        assert!(d.accepts(&json!(5)));
        assert!(!d.accepts(&json!(5.5)));
        assert_eq!(d.parse_text(" 7 "), Some(json!(7)));
        let d = definition("Accounts_RegistrationForm").unwrap();
        assert!(d.accepts(&json!("Public")));
        assert!(!d.accepts(&json!("Open")));
    }

    #[test]
    fn ids_are_unique_and_defaults_of_their_type() {
        let mut seen = std::collections::HashSet::new();
        for d in DEFINITIONS {
            assert!(seen.insert(d.id), "{} declared twice", d.id);
            assert!(d.accepts(&d.default_value()), "{}", d.id);
        }
        assert_eq!(DEFINITIONS.len(), 26);
    }

    struct Stored(HashMap<String, Value>);
    impl Values for Stored {
        fn stored(&self, id: &str) -> Option<&Value> {
            self.0.get(id)
        }
    }

    #[test]
    fn typed_reads_fall_back_to_the_default() {
        let mut s = Stored(HashMap::new());
        assert!(s.value(&ALLOW_INVISIBLE));
        assert_eq!(s.value(&LOGIN_EXPIRATION), 90);
        assert_eq!(s.value(&REGISTRATION_FORM), "Disabled");
        s.0.insert(ALLOW_INVISIBLE.0.id.into(), json!(false));
        s.0.insert(LOGIN_EXPIRATION.0.id.into(), json!(7));
        s.0.insert(REGISTRATION_FORM.0.id.into(), json!("Public"));
        s.0.insert(SITE_NAME.0.id.into(), json!(3));
        assert!(!s.value(&ALLOW_INVISIBLE));
        assert_eq!(s.value(&LOGIN_EXPIRATION), 7);
        assert_eq!(s.value(&REGISTRATION_FORM), "Public");
        assert_eq!(
            s.value(&SITE_NAME),
            "statusd",
            "a value of another type reads as the default"
        );
    }
}
