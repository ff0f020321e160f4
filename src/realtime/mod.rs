//! Realtime: DDP over websocket at `/websocket` (CONTRACT §7; the upgrade route is
//! `http::websocket`). Each connection is one task (`session`); what it may call is in
//! `methods`, what it listens to in `streams`.

pub(crate) mod frame;
pub(crate) mod methods;
mod reads;
mod session;
pub(crate) mod streams;

pub use session::run as serve;
