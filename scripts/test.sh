#!/usr/bin/env bash
# The one command that runs every test of statusd on a fresh clone:
#   services (PostgreSQL, NATS) -> client tool installs (in the background)
#   -> cargo fmt -> one build of every target, linted by clippy as it compiles
#   -> the Rust tests (unit, tests/api, tests/cli, tests/cluster, fuzz corpus)
#   -> the REST, DDP and crash tests again on PostgreSQL -> real-client tests
#   (tests/clients/run.sh) -> schemathesis against the OpenAPI description
#   (tests/schemathesis/run.sh) -> browser test -> TLS proxy -> BitlBee with
#   purple-rocketchat (tests/bitlbee/run.sh) -> packages -> benchmark smoke run
#   -> a table of how long each stage took.
# Any failing stage stops the script with a non-zero exit status.
#
# Why it is shaped this way (CI runs it on a fresh clone on 2 cores, where compiling
# is most of the time):
# - Everything is compiled ONCE. Clippy runs as the compiler of the workspace's own
#   crates during that build (clippy-driver as RUSTC_WORKSPACE_WRAPPER, exactly what
#   `cargo clippy` does, but building instead of only checking), so there is no second
#   compilation of the crates and their dependencies for `cargo clippy`.
# - The test binaries are then run directly (their paths come from cargo's JSON
#   output), and the scripts of the later stages get the built server as STATUSD_BIN:
#   nothing calls cargo again, so nothing can rebuild with other features.
# - The integration tests are a few large binaries (tests/api, tests/cli,
#   tests/cluster.rs, tests/fuzz_corpus.rs; see tests/README.md), linked once each.
# - The tests mostly wait (on servers, sockets, timeouts), so independent test binaries
#   run side by side, and the pip/npm installs of the client tools run while Rust
#   compiles.
#
# Knobs: CARGO_TARGET_DIR as usual; STATUSD_TEST_KEEP_LOGS=1 keeps the stage logs
# (they are in $CARGO_TARGET_DIR/test-logs/ either way until the next run).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

stage() { printf '\n==> %s\n' "$*"; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

target_dir="${CARGO_TARGET_DIR:-target}"
[[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
logs="$target_dir/test-logs"
rm -rf "$logs"
mkdir -p "$logs"

# --- timing: one row per stage, printed at the end whatever happens --------------
script_start=$(date +%s)
timings=()
current=""
current_start=0
# begin NAME: a stage of the table starts (and the previous one ends).
begin() {
    end_stage
    current=$1
    current_start=$(date +%s)
    stage "$1"
}
end_stage() {
    if [[ -n "$current" ]]; then
        timings+=("$current|$(($(date +%s) - current_start))")
        current=""
    fi
}
print_timings() {
    local rc=$?
    end_stage
    # Jobs of this script still running (a failure stopped it early) are stopped.
    local pid
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
    printf '\n==> time per stage (wall clock, seconds)\n'
    local row
    for row in "${timings[@]}"; do
        printf '  %6s  %s\n' "${row##*|}" "${row%|*}"
    done
    printf '  %6s  %s\n' "$(($(date +%s) - script_start))" "total"
    if ((rc != 0)); then
        printf 'scripts/test.sh: FAILED (exit %s); stage logs are in %s\n' "$rc" "$logs" >&2
    fi
    exit "$rc"
}
trap print_timings EXIT

# --- background jobs whose output is shown when they are waited for --------------
# spawn NAME COMMAND...: runs COMMAND in the background, output to $logs/<NAME>.log
# (NAME with every run of other characters than letters and digits made one `-`).
declare -A job_pid job_start job_log
spawn() {
    local name=$1
    shift
    job_start[$name]=$(date +%s)
    job_log[$name]="$logs/$(printf '%s' "$name" | tr -cs 'A-Za-z0-9' '-').log"
    (
        rc=0
        "$@" || rc=$?
        date +%s >"${job_log[$name]}.end"
        exit "$rc"
    ) >"${job_log[$name]}" 2>&1 &
    job_pid[$name]=$!
}
# reap NAME: waits for it, prints its output, adds a row with its own duration to the
# table and fails the script if it failed.
reap() {
    local name=$1 rc=0
    wait "${job_pid[$name]}" || rc=$?
    printf '\n--- %s (output of a background job)\n' "$name"
    cat "${job_log[$name]}"
    local end
    end="$(cat "${job_log[$name]}.end" 2>/dev/null || date +%s)"
    timings+=("  $name (in parallel)|$((end - job_start[$name]))")
    ((rc == 0)) || die "$name failed (exit $rc)"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local tries=$((secs * 5))
    for _ in $(seq "$tries"); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    die "$what is not up after ${secs} s"
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }

begin "services: PostgreSQL and NATS"
if pg_up; then
    echo "PostgreSQL: already running"
else
    command -v pg_ctlcluster >/dev/null || die "PostgreSQL is not running and pg_ctlcluster is missing"
    for version in $(ls /etc/postgresql); do
        # Tolerates a cluster that is already running (exit 2) or starting.
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_for 60 "PostgreSQL" pg_up
    echo "PostgreSQL: started"
fi
if nats_up; then
    echo "NATS: already running"
else
    [[ -x /usr/sbin/nats-server ]] || die "NATS is not running and /usr/sbin/nats-server is missing"
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_for 30 "NATS" nats_up
    echo "NATS: started"
fi

# The client tools (pip, npm, Debian's chromium) download while Rust compiles; each
# script's --deps-only does only its idempotent install step.
echo "installing the client tools in the background (logs in $logs)"
spawn "install: tests/clients" tests/clients/run.sh --deps-only
spawn "install: tests/schemathesis" tests/schemathesis/run.sh --deps-only
spawn "install: tests/web" tests/web/run.sh --deps-only
spawn "install: tests/bitlbee" tests/bitlbee/run.sh --deps-only

begin "cargo fmt --all -- --check"
cargo fmt --all -- --check
echo "formatting ok"

begin "build every target, with clippy -D warnings"
# What `cargo clippy --workspace --all-targets -- -D warnings` does (CLIPPY_ARGS is how
# cargo-clippy hands its arguments to clippy-driver), with `cargo build`: the same
# lints on the same code, and the build is the one the tests run.
clippy_driver="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)" ||
    die "clippy-driver not found (rustup component add clippy)"
RUSTC_WORKSPACE_WRAPPER="$clippy_driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
    cargo build --workspace --all-targets --message-format=json-render-diagnostics >"$logs/build.json"
echo "build and clippy ok"

# The executables: every test harness (unit tests of each crate, each integration test
# binary), the server and the load tool.
read_artifacts() {
    python3 - "$logs/build.json" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    msg = json.loads(line)
    exe = msg.get("executable") if msg.get("reason") == "compiler-artifact" else None
    if exe:
        kind = "test" if msg["profile"]["test"] else "bin"
        crate_dir = msg["manifest_path"].rsplit("/", 1)[0]
        print(kind, msg["target"]["name"], "/".join(msg["target"]["kind"]), crate_dir, exe, sep="\t")
EOF
}
declare -A tests_exe tests_dir
server_bin="" bench_bin=""
while IFS=$'\t' read -r kind name tkind crate_dir exe; do
    case "$kind/$name" in
        bin/statusd) server_bin=$exe ;;
        bin/statusd-bench) bench_bin=$exe ;;
        test/*)
            tests_exe["$name ($tkind)"]=$exe
            tests_dir["$name ($tkind)"]=$crate_dir
            ;;
    esac
done < <(read_artifacts)
[[ -x "$server_bin" ]] || die "the build did not report the statusd binary"
[[ -x "$bench_bin" ]] || die "the build did not report the statusd-bench binary"
for want in "api (test)" "cli (test)" "cluster (test)" "fuzz_corpus (test)" "statusd (lib)"; do
    [[ -n "${tests_exe[$want]:-}" ]] || die "the build did not report the test binary $want"
done
export STATUSD_BIN="$server_bin" STATUSD_BENCH_BIN="$bench_bin"

# run_tests NAME... [-- ARGS]: runs those test binaries one after the other (from the
# crate's directory, as cargo test does), each with ARGS; all of them even when one
# fails (as cargo test --no-fail-fast), and fails if any failed.
run_tests() {
    local names=() name rc=0
    while (($#)) && [[ $1 != -- ]]; do
        names+=("$1")
        shift
    done
    (($#)) && shift
    for name in "${names[@]}"; do
        printf '\n     Running %s (%s)\n' "$name" "${tests_exe[$name]}"
        (cd "${tests_dir[$name]}" && "${tests_exe[$name]}" "$@") || rc=1
    done
    return "$rc"
}

# The client tools' Python packages hold Radicale, the CalDAV server of
# tests/api/calendar_sync.rs: installed before the Rust tests, which find it here.
reap "install: tests/clients"
export STATUSD_RADICALE="$PWD/tests/clients/python/.venv/bin/radicale"
[[ -x $STATUSD_RADICALE ]] || die "tests/clients/run.sh --deps-only did not install radicale"

begin "Rust tests: unit, tests/api, tests/cli, tests/cluster.rs, tests/fuzz_corpus.rs"
# Two lanes side by side: the big tests/api binary alone, and everything else.
other_tests=()
for name in "${!tests_exe[@]}"; do
    [[ $name == "api (test)" ]] || other_tests+=("$name")
done
mapfile -t other_tests < <(printf '%s\n' "${other_tests[@]}" | sort)
spawn "tests: api" run_tests "api (test)"
spawn "tests: unit, cli, cluster, fuzz corpus" run_tests "${other_tests[@]}"
reap "tests: unit, cli, cluster, fuzz corpus"
reap "tests: api"

begin "REST, DDP and crash tests on PostgreSQL"
# The same tests again, each server on a fresh database of its own named
# statusd_test_<pid of the test process>_<n>_<ns> (created by tests/common's
# prepare_database, dropped when the server is). Databases left behind by test
# processes that no longer run (a crash, an interrupted run) are dropped first and last.
pg_psql() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
pg_drop_leftovers() {
    local db pid
    for db in $(pg_psql -c "SELECT datname FROM pg_database WHERE datname ~ '^statusd_test_[0-9]+_'"); do
        pid=${db#statusd_test_}
        pid=${pid%%_*}
        if ! kill -0 "$pid" 2>/dev/null; then
            pg_psql -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
        fi
    done
}
# The REST and DDP modules of the `api` test binary (tests/api/rest_*.rs, ddp_*.rs),
# selected by module name, and crash durability (kill -9 under load).
pg_filters=()
for f in tests/api/rest_*.rs tests/api/ddp_*.rs; do
    [[ -e $f ]] && pg_filters+=("$(basename "$f" .rs)::")
done
((${#pg_filters[@]})) || die "no REST or DDP test modules found in tests/api/"
# Connected calendars keep their rows in the store (tests/api/calendar_sync.rs).
pg_filters+=("crash::" "calendar_sync::")
pg_drop_leftovers
STATUSD_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/{name}' \
    run_tests "api (test)" -- "${pg_filters[@]}"
pg_drop_leftovers

begin "real-client tests (tests/clients/run.sh)"
# Its last line is the summary "clients: N passed, M failed (K skipped or known to fail)".
tests/clients/run.sh

begin "schema-based API tests (tests/schemathesis/run.sh)"
reap "install: tests/schemathesis"
# schemathesis (PyPI, pinned; installed by the script into tests/schemathesis/.venv)
# generates requests for every operation of /api/v1/openapi.json, valid and invalid:
# no 5xx, status, content type, headers and body as described, no route that skips
# authentication; then a restart must serve the same state. Bounded (10 examples per
# operation); its last line is "schemathesis: N operation runs, M failed".
tests/schemathesis/run.sh

begin "browser test of the presence page (tests/web/run.sh)"
reap "install: tests/web"
# Debian's headless Chromium driven by playwright-core: sign in, set a status, see a
# change made over REST arrive live, the disabled controls' reasons. Installs chromium
# when it is missing; saves docs/screenshot.png and the screenshots beside it.
tests/web/run.sh

begin "behind a TLS proxy (tests/proxy/run.sh)"
# The shipped nginx and Caddy examples with a self-signed certificate: https, wss://,
# X-Forwarded-For with HTTP_FORWARDED_COUNT=1. Last line "proxy: N passed, M failed".
tests/proxy/run.sh

begin "BitlBee with purple-rocketchat (tests/bitlbee/run.sh)"
reap "install: tests/bitlbee"
# Debian's libpurple plugin under BitlBee, through nginx with TLS (a local CA trusted
# for the test): Meteor's SockJS transport, the users record, activeUsers and
# fullUserData, a REST status change live in /WHO, a reconnect, /AWAY. Last line
# "bitlbee: N passed, M failed".
tests/bitlbee/run.sh

begin "Debian package (tests/package/run.sh)"
# cargo deb from the debug binary, dpkg -i, files/user/modes, systemd-analyze verify,
# the unit's ExecStart as its user, login and setStatus, purge. Needs root.
tests/package/run.sh

begin "container image (tests/container/run.sh)"
# The Containerfile FROM scratch built and run with podman: non-root, volume,
# HEALTHCHECK, login and setStatus surviving a restart, graceful stop.
tests/container/run.sh

begin "benchmark smoke run (bench/run.sh --smoke)"
# Keeps the load tool (bench/, issue 4) alive: a tiny run of every benchmark phase
# against the debug binary; fails on any error answer, lost frame or lost write.
bench/run.sh --smoke
