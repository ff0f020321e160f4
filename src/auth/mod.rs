//! Who is calling and what they may do: secrets, default roles and permissions.

pub mod defaults;
pub mod secrets;
