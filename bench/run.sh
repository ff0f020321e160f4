#!/usr/bin/env bash
# Builds statusd and the load tool (release) and runs the benchmark suite of issue 4.
#   bench/run.sh            the full suite (under 5 minutes on the 2-core machine)
#   bench/run.sh --smoke    a tiny run (seconds, debug builds) that keeps the benchmark code alive
#   bench/run.sh --only scale          issue 20: 10k -> 50k -> 100k websockets on a cluster
#                                      (PostgreSQL + NATS), under 15 minutes; then the plots
#   bench/run.sh --only scale-global   issue 20: the largest global user-status fan-out
#   bench/run.sh --only cluster-apply  issue 20: what an instance spends on another's change
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
if [[ " $* " != *" scale"* && " $* " != *",scale"* ]]; then
    exec "$t/release/statusd-bench" --server "$t/release/statusd" \
        --json "$t/bench/results.json" "$@"
fi
# The scale phases write their raw figures into bench/results/; the growth curves are
# drawn from them (matplotlib, in a virtualenv of its own when the system has none).
status=0
"$t/release/statusd-bench" --server "$t/release/statusd" \
    --json "$t/bench/scale.json" "$@" || status=$?
py=python3
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    if [[ ! -x "$t/bench-venv/bin/python" ]]; then
        python3 -m venv "$t/bench-venv" && "$t/bench-venv/bin/pip" install --quiet matplotlib
    fi
    py="$t/bench-venv/bin/python"
fi
if [[ -f bench/results/scale.csv ]]; then
    "$py" bench/plot_scale.py bench/results docs || status=1
fi
exit "$status"
