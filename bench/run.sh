#!/usr/bin/env bash
# Builds statusd and the load tool (release) and runs the benchmark suite of issue 4.
#   bench/run.sh            the full suite (under 5 minutes on the 2-core machine)
#   bench/run.sh --smoke    a tiny run (seconds) that keeps the benchmark code alive
# Any other arguments go to statusd-bench (see `statusd-bench --help`).
# Exits non-zero when any request failed, a frame was lost or a write was not durable.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# 10,000 websockets need more than the usual 1,024 descriptors, in the load tool and
# in the server it starts (each is its own process, limited to the hard limit here).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --quiet -p statusd -p statusd-bench

mkdir -p target/bench
out=target/bench/results.json
if [[ " $* " == *" --smoke "* ]]; then
    out=target/bench/smoke.json
fi
exec target/release/statusd-bench --server target/release/statusd --json "$out" "$@"
