//! statusd as a library: every module of the server, so the binary (`src/main.rs`),
//! the fuzz targets (`fuzz/`) and their corpus regression test share one build of the
//! production code. Only what those need is public.

mod accounts;
mod app;
mod auth;
mod avatar;
pub mod bootstrap;
pub mod broadcast_budget;
mod bus;
mod calendar;
pub mod calsync;
mod change;
pub mod cli;
pub mod cluster;
pub mod config;
mod error;
pub mod expiry;
pub mod external;
pub mod housekeeping;
pub mod http;
mod hub;
mod import;
#[cfg(test)]
mod layering;
mod limits;
pub mod logging;
mod login;
mod metrics;
mod model;
mod own_conns;
mod privacy;
mod procstat;
mod realtime;
mod record;
pub mod server;
mod settings;
mod state;
mod status;
mod store;
mod text;
mod web;
pub mod webhooks;

/// The parsers of untrusted client input, for the fuzz targets and
/// `tests/fuzz_corpus.rs`: the very functions the routes and the DDP session call.
pub mod input {
    pub use crate::accounts::credentials::{parse as parse_credentials, Credentials, Login};
    pub use crate::accounts::preferences::{MAX_ITEMS, MAX_STORED, MAX_TEXT};
    pub use crate::error::{Error, MATCH_ERROR};
    pub use crate::http::auth::parse_login;
    pub use crate::http::error::ApiError;
    pub use crate::http::preferences::parse_set_preferences_body;
    pub use crate::http::status::parse_set_status_body;
    pub use crate::realtime::streams::{SubLimits, SubReply, Subscriber, Subscriptions};
    pub use crate::status::rules::{
        check_expires_at, check_status, names_self, normalize_text, target_param, SetStatusRequest,
        TargetParam, STATUS_TEXT_MAX,
    };

    /// DDP frames: the client frame parser and the server frames a reply is made of.
    pub mod ddp {
        pub use crate::realtime::frame::{
            bad_field_reason, connected, error, failed, nosub, parse, pong, ready, result_empty,
            result_err, updated, ClientFrame, FrameError, MeteorError,
        };
    }
}
