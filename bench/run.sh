#!/usr/bin/env bash
# Builds statusd and the load tool (release) and runs the benchmark suite of issue 4.
#   bench/run.sh            the full suite (under 5 minutes on the 2-core machine)
#   bench/run.sh --smoke    a tiny run (seconds, debug builds) that keeps the benchmark code alive
# Any other arguments go to statusd-bench (see `statusd-bench --help`).
# Exits non-zero when any request failed, a frame was lost or a write was not durable.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# 10,000 websockets need more than the usual 1,024 descriptors, in the load tool and
# in the server it starts (each is its own process, limited to the hard limit here).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

t="${CARGO_TARGET_DIR:-target}"
mkdir -p "$t/bench"
if [[ " $* " == *" --smoke "* ]]; then
    # The smoke run measures nothing, it keeps the code alive: debug builds (the test
    # stage already built the server) spare CI a release build of everything.
    # scripts/test.sh passes the binaries it built (STATUSD_BIN, STATUSD_BENCH_BIN).
    if [[ -z "${STATUSD_BIN:-}" || -z "${STATUSD_BENCH_BIN:-}" ]]; then
        cargo build --quiet -p statusd -p statusd-bench
    fi
    exec "${STATUSD_BENCH_BIN:-$t/debug/statusd-bench}" --server "${STATUSD_BIN:-$t/debug/statusd}" \
        --json "$t/bench/smoke.json" "$@"
fi
cargo build --release --quiet -p statusd -p statusd-bench
exec "$t/release/statusd-bench" --server "$t/release/statusd" \
    --json "$t/bench/results.json" "$@"
