//! Replays the kept fuzz corpus (`fuzz/corpus/<target>/`, minimized with `cargo fuzz
//! cmin`) through the checks the fuzz targets run (`fuzz/checks.rs`): the production
//! parsers of DDP frames and of the login and setStatus bodies never panic on them, and
//! every error they give has the contract's shape. An input that once crashed a target
//! is kept in the corpus with its fix, so this stays a regression test on stable Rust.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading the corpus {}: {e}", dir.display()));
    let mut inputs = 0;
    let mut failed = Vec::new();
    for entry in entries {
        let path = entry.expect("a corpus entry").path();
        let data =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        inputs += 1;
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(inputs > 0, "the corpus {} is empty", dir.display());
    assert!(
        failed.is_empty(),
        "{} of {inputs} inputs of {target} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn ddp_frame_corpus() {
    replay("ddp_frame", checks::ddp_frame);
}

#[test]
fn set_status_body_corpus() {
    replay("set_status_body", checks::set_status_body);
}

#[test]
fn login_body_corpus() {
    replay("login_body", checks::login_body);
}

#[test]
fn set_preferences_body_corpus() {
    replay("set_preferences_body", checks::set_preferences_body);
}
