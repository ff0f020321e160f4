//! The status rules: what a change may be (`rules`), which claim wins (`claims`), what
//! everybody sees (`presence`), who sees a user's last seen (`last_seen`) and their
//! status at all (`privacy`).
//! No I/O lives here; the writer in `state` applies these rules.

pub mod claims;
pub mod dnd;
pub mod last_seen;
pub mod presence;
pub mod privacy;
pub mod rules;
