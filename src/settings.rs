//! The workspace settings statusd knows, each declared once (`settings!` below): id,
//! type, default and whether anyone may read it through `settings.public`. Values are
//! stored as JSON, checked against the type; the code reads them typed
//! (`model.value(&settings::ALLOW_INVISIBLE)` is a `bool`), falling back to the default.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Bool,
    /// A whole number within `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number within `min..=max`, fractions allowed (Rocket.Chat's minutes settings
    /// take `0.5`).
    Decimal {
        min: f64,
        max: f64,
    },
    Str,
    /// A string from a fixed list.
    Select(&'static [&'static str]),
}

impl Kind {
    /// What a value must be, in words, for an error message.
    pub fn describe(&self) -> String {
        match self {
            Kind::Bool => "true or false".into(),
            Kind::Int { min, max } => format!("a whole number from {min} to {max}"),
            Kind::Decimal { min, max } => format!("a number from {min} to {max}"),
            Kind::Str => "a string".into(),
            Kind::Select(options) => format!("one of {}", options.join(", ")),
        }
    }
}

/// A default value, as a constant can hold it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Default {
    Bool(bool),
    Int(i64),
    Decimal(f64),
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
            Default::Decimal(n) => json!(n),
            Default::Str(s) => json!(s),
        }
    }

    /// Is `value` of this setting's type and within its range? Every numeric setting
    /// has one: a value out of it (a token lifetime of i64::MAX days, a rate-limit
    /// window of 0 ms) is refused when set, never met later in date arithmetic.
    pub fn accepts(&self, value: &Value) -> bool {
        match self.kind {
            Kind::Bool => value.is_boolean(),
            Kind::Int { min, max } => value.as_i64().is_some_and(|n| (min..=max).contains(&n)),
            Kind::Decimal { min, max } => value
                .as_f64()
                .is_some_and(|n| n.is_finite() && (min..=max).contains(&n)),
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
            Kind::Int { .. } => json!(text.trim().parse::<i64>().ok()?),
            Kind::Decimal { .. } => {
                let t = text.trim();
                match t.parse::<i64>() {
                    Ok(n) => json!(n),
                    Err(_) => json!(t.parse::<f64>().ok().filter(|n| n.is_finite())?),
                }
            }
            Kind::Str | Kind::Select(_) => json!(text),
        };
        self.accepts(&v).then_some(v)
    }
}

/// A setting read as a Rust value.
pub trait Typed {
    type Out;
    fn definition(&self) -> &Definition;
    /// The stored value, or the default when it is missing or not acceptable.
    fn read(&self, stored: Option<&Value>) -> Self::Out;
}

/// A yes/no setting.
pub struct Flag(Definition);
/// A whole-number setting with its range.
pub struct Number(Definition);
/// A number setting that takes fractions, with its range.
pub struct Decimal(Definition);
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
    const fn new(id: &'static str, public: bool, default: i64, min: i64, max: i64) -> Number {
        Number(Definition {
            id,
            kind: Kind::Int { min, max },
            public,
            default: Default::Int(default),
        })
    }
}

impl Decimal {
    const fn new(id: &'static str, public: bool, default: f64, min: f64, max: f64) -> Decimal {
        Decimal(Definition {
            id,
            kind: Kind::Decimal { min, max },
            public,
            default: Default::Decimal(default),
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
    /// A value out of range (stored before ranges were checked, or written to the
    /// database by hand) reads as the default.
    fn read(&self, stored: Option<&Value>) -> i64 {
        match (stored.filter(|v| self.0.accepts(v)), self.0.default) {
            (Some(v), _) => v.as_i64().unwrap_or_default(),
            (None, Default::Int(n)) => n,
            _ => 0,
        }
    }
}

impl Typed for Decimal {
    type Out = f64;
    fn definition(&self) -> &Definition {
        &self.0
    }
    fn read(&self, stored: Option<&Value>) -> f64 {
        match (stored.filter(|v| self.0.accepts(v)), self.0.default) {
            (Some(v), _) => v.as_f64().unwrap_or_default(),
            (None, Default::Decimal(n)) => n,
            _ => 0.0,
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
        $name:ident: $ty:ident = ($id:literal, $public:expr, $default:expr $(, $extra:expr)*);
    )*) => {
        $(
            $(#[$doc])*
            pub const $name: $ty = $ty::new($id, $public, $default $(, $extra)*);
        )*

        /// Every setting statusd knows.
        pub static DEFINITIONS: &[Definition] = &[$($name.0),*];
    };
}

const PUBLIC: bool = true;
const PRIVATE: bool = false;

pub const REGISTRATION_FORMS: &[&str] = &["Public", "Disabled", "Secret URL"];
/// Who sees when an offline user was last seen (statusd's last seen, `status::last_seen`).
pub const LAST_SEEN_VISIBILITIES: &[&str] = &["off", "admins", "everyone"];

/// The longest a day count may be: 100 years, far inside what date arithmetic holds.
const MAX_DAYS: i64 = 36_500;
/// The longest a minutes count may be: one year.
const MAX_MINUTES: f64 = 525_600.0;
/// The largest count of attempts or calls a limit may name.
const MAX_COUNT: i64 = 1_000_000;

settings! {
    /// The workspace's public URL; a fresh database takes it from `ROOT_URL` (see
    /// `initial_value`).
    SITE_URL: Text = ("Site_Url", PUBLIC, "");
    SITE_NAME: Text = ("Site_Name", PUBLIC, "statusd");
    /// This installation's id, made once on the first start and kept (see `initial_value`).
    UNIQUE_ID: Text = ("uniqueID", PUBLIC, "");
    /// May users change their status and status text at all (setStatus step 4)?
    ALLOW_STATUS_MESSAGE_CHANGE: Flag = ("Accounts_AllowUserStatusMessageChange", PUBLIC, true);
    /// May users choose `offline` (invisible)?
    ALLOW_INVISIBLE: Flag = ("Accounts_AllowInvisibleStatusOption", PUBLIC, true);
    /// Does a busy calendar event make its owner busy from its start to its end
    /// (`calendar-events.*`)?
    CALENDAR_BUSY_STATUS: Flag = ("Calendar_BusyStatus_Enabled", PUBLIC, true);
    ALLOW_USER_PROFILE_CHANGE: Flag = ("Accounts_AllowUserProfileChange", PUBLIC, true);
    /// Usernames nobody may take, separated by commas (beside the reserved ones).
    BLOCKED_USERNAMES: Text = ("Accounts_BlockedUsernameList", PRIVATE, "");
    /// The pattern every username must match.
    USERNAME_PATTERN: Text = ("UTF8_User_Names_Validation", PUBLIC, "[0-9a-zA-Z-_.]+");
    /// The roles a new user gets, separated by commas.
    DEFAULT_ROLES: Text = ("Accounts_Registration_Users_Default_Roles", PUBLIC, "user");
    /// Does users.list require `view-outside-room`? (stored for clients; statusd lists
    /// users to every logged-in caller, as Rocket.Chat does with the default `false`)
    USERS_LIST_NEEDS_VIEW_OUTSIDE_ROOM: Flag =
        ("API_Apply_permission_view-outside-room_on_users-list", PUBLIC, false);
    /// Clients' own idle detection: do they set `away` after `idleTimeLimit` seconds?
    DEFAULT_ENABLE_AUTO_AWAY: Flag =
        ("Accounts_Default_User_Preferences_enableAutoAway", PUBLIC, true);
    DEFAULT_IDLE_TIME_LIMIT: Number =
        ("Accounts_Default_User_Preferences_idleTimeLimit", PUBLIC, 300, 1, 86_400 * 365);
    /// While true, status changes are not broadcast on the realtime streams and
    /// users.presence lists nobody, as in Rocket.Chat (`presence.enableBroadcast` sets it
    /// back to false).
    PRESENCE_BROADCAST_DISABLED: Flag = ("Presence_broadcast_disabled", PUBLIC, false);
    /// Tells clients they may call methods through REST instead of the websocket.
    USE_REST_FOR_DDP_CALLS: Flag = ("API_Use_REST_For_DDP_Calls", PUBLIC, true);
    /// Days a login token lasts; 0 means Rocket.Chat's default of 90.
    LOGIN_EXPIRATION: Number = ("Accounts_LoginExpiration", PUBLIC, 90, 0, MAX_DAYS);
    /// `Public` lets anyone sign up through users.register.
    REGISTRATION_FORM: Choice = ("Accounts_RegistrationForm", PUBLIC, "Disabled", REGISTRATION_FORMS);
    RATE_LIMITER: Flag = ("API_Enable_Rate_Limiter", PRIVATE, true);
    RATE_LIMIT_CALLS: Number =
        ("API_Enable_Rate_Limiter_Limit_Calls_Default", PRIVATE, 10, 1, MAX_COUNT);
    /// The rate limit's window, in milliseconds (at most a day).
    RATE_LIMIT_TIME: Number =
        ("API_Enable_Rate_Limiter_Limit_Time_Default", PRIVATE, 60000, 1, 86_400_000);
    /// Status history older than this many days is pruned; 0 keeps everything.
    HISTORY_RETENTION_DAYS: Number = ("Status_History_Retention_Days", PRIVATE, 30, 0, MAX_DAYS);
    /// The page size of the list routes when none is asked for.
    DEFAULT_COUNT: Number = ("API_Default_Count", PRIVATE, 50, 1, MAX_COUNT);
    /// The largest page the list routes give.
    UPPER_COUNT_LIMIT: Number = ("API_Upper_Count_Limit", PRIVATE, 100, 1, MAX_COUNT);
    BLOCK_FAILED_LOGINS: Flag = ("Block_Multiple_Failed_Logins_Enabled", PRIVATE, true);
    BLOCK_FAILED_LOGINS_BY_USER: Flag = ("Block_Multiple_Failed_Logins_By_User", PRIVATE, true);
    BLOCK_FAILED_LOGINS_BY_IP: Flag = ("Block_Multiple_Failed_Logins_By_Ip", PRIVATE, true);
    BLOCK_USER_AFTER_ATTEMPTS: Number =
        ("Block_Multiple_Failed_Logins_Attempts_Until_Block_by_User", PRIVATE, 10, 0, MAX_COUNT);
    /// Minutes; fractions allowed, as in Rocket.Chat.
    BLOCK_USER_FOR_MINUTES: Decimal =
        ("Block_Multiple_Failed_Logins_Time_To_Unblock_By_User_In_Minutes", PRIVATE, 5.0, 0.0, MAX_MINUTES);
    BLOCK_IP_AFTER_ATTEMPTS: Number =
        ("Block_Multiple_Failed_Logins_Attempts_Until_Block_By_Ip", PRIVATE, 50, 0, MAX_COUNT);
    /// Minutes; fractions allowed, as in Rocket.Chat.
    BLOCK_IP_FOR_MINUTES: Decimal =
        ("Block_Multiple_Failed_Logins_Time_To_Unblock_By_Ip_In_Minutes", PRIVATE, 5.0, 0.0, MAX_MINUTES);
    /// Client IPs never blocked, separated by commas.
    BLOCK_IP_WHITELIST: Text = ("Block_Multiple_Failed_Logins_Ip_Whitelist", PRIVATE, "");
    // Accounts: what users may change about themselves (users.update, Rocket.Chat's
    // validateUserEditing).
    ALLOW_USERNAME_CHANGE: Flag = ("Accounts_AllowUsernameChange", PUBLIC, true);
    ALLOW_REAL_NAME_CHANGE: Flag = ("Accounts_AllowRealNameChange", PUBLIC, true);
    ALLOW_EMAIL_CHANGE: Flag = ("Accounts_AllowEmailChange", PUBLIC, true);
    ALLOW_PASSWORD_CHANGE: Flag = ("Accounts_AllowPasswordChange", PUBLIC, true);
    /// statusd's last seen: `off`, `admins` (holders of view-full-other-user-info) or
    /// `everyone` (except users who hide theirs). Public, so a client knows whether to
    /// expect it.
    LAST_SEEN_VISIBILITY: Choice =
        ("Statusd_LastSeen_Visibility", PUBLIC, "everyone", LAST_SEEN_VISIBILITIES);
    /// Presence privacy (`status::privacy`, Rocket.Chat 8.8's status visibility): users
    /// may hide their status from everyone or from named users. Off by default, as in
    /// Rocket.Chat; public, so a client knows whether to offer the choice.
    STATUS_VISIBILITY: Flag = ("Accounts_StatusVisibility_Enabled", PUBLIC, false);
}

/// The value a setting starts with in a fresh database: its default, except `Site_Url`
/// (the configured `ROOT_URL`, as Rocket.Chat takes it) and `uniqueID` (a new UUID,
/// kept from then on).
pub fn initial_value(def: &Definition, root_url: &str) -> Value {
    if def.id == SITE_URL.0.id {
        json!(root_url)
    } else if def.id == UNIQUE_ID.0.id {
        json!(new_unique_id())
    } else {
        def.default_value()
    }
}

/// A random (version 4) UUID, as Rocket.Chat makes its `uniqueID`.
fn new_unique_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
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
        assert_eq!(DEFINITIONS.len(), 37);
    }

    #[test]
    fn numbers_are_checked_against_their_range() {
        let d = definition("Accounts_LoginExpiration").unwrap();
        for bad in [
            json!(i64::MAX),
            json!(100_000_000),
            json!(-1),
            json!(1.5),
            json!(1e300),
        ] {
            assert!(!d.accepts(&bad), "{bad}");
        }
        assert!(d.accepts(&json!(0)) && d.accepts(&json!(36_500)));
        assert_eq!(d.parse_text("100000000"), None);
        let d = definition("API_Enable_Rate_Limiter_Limit_Time_Default").unwrap();
        assert!(!d.accepts(&json!(0)), "a window of 0 ms");
        // The minutes settings take fractions, as Rocket.Chat's do.
        let d =
            definition("Block_Multiple_Failed_Logins_Time_To_Unblock_By_Ip_In_Minutes").unwrap();
        assert!(d.accepts(&json!(0.5)) && d.accepts(&json!(5)));
        for bad in [json!(-0.5), json!(1e12), json!("5"), json!(null)] {
            assert!(!d.accepts(&bad), "{bad}");
        }
        assert_eq!(d.parse_text("0.25"), Some(json!(0.25)));
        assert_eq!(d.parse_text("7"), Some(json!(7)));
        assert_eq!(d.parse_text("NaN"), None);
        assert_eq!(d.parse_text("inf"), None);
        assert!(
            d.kind.describe().contains("525600"),
            "{}",
            d.kind.describe()
        );
    }

    #[test]
    fn site_url_and_unique_id_start_from_the_installation() {
        let url = definition("Site_Url").unwrap();
        assert_eq!(
            initial_value(url, "https://x.example"),
            json!("https://x.example")
        );
        let id = definition("uniqueID").unwrap();
        let (a, b) = (initial_value(id, ""), initial_value(id, ""));
        assert_ne!(a, b);
        let a = a.as_str().unwrap();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4', "a version 4 UUID: {a}");
        let name = definition("Site_Name").unwrap();
        assert_eq!(initial_value(name, "https://x.example"), json!("statusd"));
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
        s.0.insert(BLOCK_IP_FOR_MINUTES.0.id.into(), json!(0.5));
        assert!(!s.value(&ALLOW_INVISIBLE));
        assert_eq!(s.value(&LOGIN_EXPIRATION), 7);
        assert_eq!(s.value(&REGISTRATION_FORM), "Public");
        assert_eq!(
            s.value(&SITE_NAME),
            "statusd",
            "a value of another type reads as the default"
        );
        assert_eq!(s.value(&BLOCK_IP_FOR_MINUTES), 0.5);
        // Stored before ranges were checked: read as the default.
        s.0.insert(LOGIN_EXPIRATION.0.id.into(), json!(i64::MAX));
        assert_eq!(s.value(&LOGIN_EXPIRATION), 90);
    }
}
