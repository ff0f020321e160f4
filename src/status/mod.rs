//! The status rules: what a change may be (`rules`), what everybody sees (`presence`),
//! who sees a user's last seen (`last_seen`).
//! No I/O lives here; the writer in `state` applies these rules.

pub mod last_seen;
pub mod presence;
pub mod rules;
