//! Realtime: DDP over websocket at `/websocket` (CONTRACT §7; the upgrade route is
//! `http::websocket`), and over Meteor's SockJS framing at
//! `/sockjs/<server>/<session>/websocket` (`sockjs`). Each connection is one task
//! (`session`); what it may call is in `methods`, what it listens to in `streams`, and
//! Meteor's `users` collection (the own record, `activeUsers`, `fullUserData`) in
//! `publications`.

pub(crate) mod frame;
pub(crate) mod methods;
mod publications;
mod reads;
mod session;
pub mod sockjs;
pub(crate) mod streams;

pub use session::run as serve;
pub use sockjs::Transport;
