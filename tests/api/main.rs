//! The black-box tests of the server: REST, DDP, persistence, limits, startup and
//! shutdown, the OpenAPI description, crash durability, logs, custom statuses, expiry
//! and history. One test binary (instead of one per file) so the crate and the harness
//! are compiled and linked once; each former `tests/<name>.rs` is the module `<name>`
//! here, so a test is still selected by its file name: `cargo test --test api rest_`
//! runs the REST tests, `cargo test --test api ddp_login::` one file's.
//!
//! `scripts/test.sh` re-runs the `rest_`, `ddp_`, `crash::` and `calendar_sync::`
//! modules on PostgreSQL (`STATUSD_TEST_DATABASE_URL`) by these name filters.

mod calendar_sync;
#[path = "../common/cluster.rs"]
mod cluster;
#[path = "../common/mod.rs"]
mod common;

mod crash;
mod custom_status;
mod ddp_access;
mod ddp_expiry;
mod ddp_handshake;
mod ddp_login;
mod ddp_login_methods;
mod ddp_many;
mod ddp_methods;
mod ddp_notify;
mod ddp_preferences;
mod ddp_presence;
mod ddp_reaping;
mod ddp_rest;
mod ddp_shutdown;
mod ddp_slow;
mod ddp_sockjs;
mod ddp_streams;
mod expiry;
mod history;
mod limits;
mod logs;
mod openapi;
mod persistence;
mod rest_admin;
mod rest_auth;
mod rest_calendar;
mod rest_claims;
mod rest_dnd;
mod rest_last_seen;
mod rest_method_call;
mod rest_preferences;
mod rest_presence_admin;
mod rest_privacy;
mod rest_reads;
mod rest_roles_matrix;
mod rest_set_status;
mod rest_webhooks;
mod startup;
