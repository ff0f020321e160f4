//! The status rules: what a change may be (`rules`), which claim wins (`claims`) and
//! what everybody sees (`presence`).
//! No I/O lives here; the writer in `state` applies these rules.

pub mod claims;
pub mod presence;
pub mod rules;
