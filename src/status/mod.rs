//! The status rules: what a change may be (`rules`) and what everybody sees (`presence`).
//! No I/O lives here; the writer in `state` applies these rules.

pub mod presence;
pub mod rules;
