//! The workspace settings statusd knows: id, default, type and whether anyone may read
//! it through `settings.public`. Values are stored as JSON, checked against the type.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Bool,
    Int,
    Str,
    /// A string from a fixed list.
    Select(&'static [&'static str]),
}

pub struct Definition {
    pub id: &'static str,
    pub kind: Kind,
    pub public: bool,
    default: fn() -> Value,
}

impl Definition {
    pub fn default_value(&self) -> Value {
        (self.default)()
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

    /// Parses the text of an `OVERWRITE_SETTING_<id>` variable.
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

macro_rules! def {
    ($id:literal, $kind:expr, $public:expr, $default:expr) => {
        Definition {
            id: $id,
            kind: $kind,
            public: $public,
            default: || json!($default),
        }
    };
}

pub const REGISTRATION_FORMS: &[&str] = &["Public", "Disabled", "Secret URL"];

pub static DEFINITIONS: &[Definition] = &[
    def!("Site_Name", Kind::Str, true, "statusd"),
    def!(
        "Accounts_AllowUserStatusMessageChange",
        Kind::Bool,
        true,
        true
    ),
    def!(
        "Accounts_AllowInvisibleStatusOption",
        Kind::Bool,
        true,
        true
    ),
    def!("Accounts_AllowUserProfileChange", Kind::Bool, true, true),
    def!("Accounts_LoginExpiration", Kind::Int, true, 90),
    def!(
        "Accounts_RegistrationForm",
        Kind::Select(REGISTRATION_FORMS),
        true,
        "Disabled"
    ),
    def!("API_Enable_Rate_Limiter", Kind::Bool, false, true),
    def!(
        "API_Enable_Rate_Limiter_Limit_Calls_Default",
        Kind::Int,
        false,
        10
    ),
    def!(
        "API_Enable_Rate_Limiter_Limit_Time_Default",
        Kind::Int,
        false,
        60000
    ),
    def!("Status_History_Retention_Days", Kind::Int, false, 30),
    def!("API_Default_Count", Kind::Int, false, 50),
    def!("API_Upper_Count_Limit", Kind::Int, false, 100),
    def!(
        "Block_Multiple_Failed_Logins_Enabled",
        Kind::Bool,
        false,
        true
    ),
    def!(
        "Block_Multiple_Failed_Logins_By_User",
        Kind::Bool,
        false,
        true
    ),
    def!(
        "Block_Multiple_Failed_Logins_By_Ip",
        Kind::Bool,
        false,
        true
    ),
    def!(
        "Block_Multiple_Failed_Logins_Attempts_Until_Block_by_User",
        Kind::Int,
        false,
        10
    ),
    def!(
        "Block_Multiple_Failed_Logins_Time_To_Unblock_By_User_In_Minutes",
        Kind::Int,
        false,
        5
    ),
    def!(
        "Block_Multiple_Failed_Logins_Attempts_Until_Block_By_Ip",
        Kind::Int,
        false,
        50
    ),
    def!(
        "Block_Multiple_Failed_Logins_Time_To_Unblock_By_Ip_In_Minutes",
        Kind::Int,
        false,
        5
    ),
    def!(
        "Block_Multiple_Failed_Logins_Ip_Whitelist",
        Kind::Str,
        false,
        ""
    ),
];

pub fn definition(id: &str) -> Option<&'static Definition> {
    DEFINITIONS.iter().find(|d| d.id == id)
}

pub mod ids {
    pub const ALLOW_STATUS_MESSAGE_CHANGE: &str = "Accounts_AllowUserStatusMessageChange";
    pub const ALLOW_INVISIBLE: &str = "Accounts_AllowInvisibleStatusOption";
    pub const LOGIN_EXPIRATION: &str = "Accounts_LoginExpiration";
    pub const REGISTRATION_FORM: &str = "Accounts_RegistrationForm";
    pub const RATE_LIMITER: &str = "API_Enable_Rate_Limiter";
    pub const RATE_LIMIT_CALLS: &str = "API_Enable_Rate_Limiter_Limit_Calls_Default";
    pub const RATE_LIMIT_TIME: &str = "API_Enable_Rate_Limiter_Limit_Time_Default";
    pub const HISTORY_RETENTION_DAYS: &str = "Status_History_Retention_Days";
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
