//! The black-box tests of the admin commands (`statusd user …`, `statusd token …`)
//! and of the importer (`statusd import`), run against the real binary. One test binary
//! sharing one harness; each former `tests/<name>.rs` is the module `<name>` here
//! (`cargo test --test cli import::`).

#[path = "../cli_support/mod.rs"]
mod cli_support;
#[path = "../common/cluster.rs"]
mod cluster;
#[path = "../common/mod.rs"]
mod common;

mod cli;
mod import;
