//! Accounts: users, their passwords and roles, their sessions and personal access
//! tokens. Every account rule is defined here once, as functions over the writer's
//! `Tx` (a job validates against the current state and writes, all or nothing), so
//! REST (`http::users`, `http::auth`, `http::permissions`), DDP (`realtime::methods`),
//! the admin CLI and the importer apply the same rules:
//!
//! - usernames and emails are well formed and not taken (`identity`);
//! - a password is required where one is set, and kept as bcrypt of its SHA-256
//!   (`password`), hashed before the job: bcrypt never runs on the writer thread;
//! - the workspace keeps an active admin (`users::leaves_no_admin`);
//! - a deactivated user is logged out everywhere (`users::save`);
//! - personal access tokens are named, one of a name per user, shown once (`tokens`);
//! - a token authenticates while it exists, has not expired and its user is active
//!   (`tokens::authenticate`);
//! - login bodies of every form read the same on REST and DDP (`credentials`);
//! - preferences are Rocket.Chat's known keys of their types, bounded (`preferences`).

pub mod credentials;
pub mod identity;
pub mod password;
pub mod preferences;
pub mod tokens;
pub mod users;

/// The Rocket.Chat method user administration refuses with (`details.method`).
pub const METHOD: &str = "insertOrUpdateUser";
