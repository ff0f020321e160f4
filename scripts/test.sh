#!/usr/bin/env bash
# The one command that runs every test of statusd on a fresh clone:
#   services (PostgreSQL, NATS) -> cargo fmt -> cargo clippy -> cargo test
#   -> REST and DDP black-box tests again on PostgreSQL -> real-client tests
#   (tests/clients/run.sh) -> schemathesis against the OpenAPI description
#   (tests/schemathesis/run.sh) -> browser test -> benchmark smoke run.
# Any failing stage stops the script with a non-zero exit status.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

stage() { printf '\n==> %s\n' "$*"; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

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

stage "services: PostgreSQL and NATS"
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

stage "cargo fmt --all -- --check"
cargo fmt --all -- --check
echo "formatting ok"

stage "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --quiet --workspace --all-targets -- -D warnings
echo "clippy ok"

stage "cargo test --all-targets"
cargo test --all-targets

stage "REST and DDP black-box tests on PostgreSQL"
# The same suites again, each server on a fresh database of its own named
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
# selected by module name, and crash durability (kill -9 under load) on PostgreSQL too.
pg_filters=()
for f in tests/api/rest_*.rs tests/api/ddp_*.rs; do
    [[ -e $f ]] && pg_filters+=("$(basename "$f" .rs)::")
done
((${#pg_filters[@]})) || die "no REST or DDP test modules found in tests/api/"
pg_filters+=("crash::")
pg_drop_leftovers
STATUSD_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/{name}' cargo test --test api -- "${pg_filters[@]}"
pg_drop_leftovers

stage "real-client tests (tests/clients/run.sh)"
# Its last line is the summary "clients: N passed, M failed".
tests/clients/run.sh

stage "schema-based API tests (tests/schemathesis/run.sh)"
# schemathesis (PyPI, pinned; installed by the script into tests/schemathesis/.venv)
# generates requests for every operation of /api/v1/openapi.json, valid and invalid:
# no 5xx, status, content type, headers and body as described, no route that skips
# authentication; then a restart must serve the same state. Bounded (10 examples per
# operation); its last line is "schemathesis: N operation runs, M failed".
tests/schemathesis/run.sh

stage "browser test of the presence page (tests/web/run.sh)"
# Debian's headless Chromium driven by playwright-core: sign in, set a status, see a
# change made over REST arrive live, the disabled controls' reasons. Installs chromium
# when it is missing; saves docs/screenshot.png.
tests/web/run.sh

stage "behind a TLS proxy (tests/proxy/run.sh)"
# The shipped nginx and Caddy examples with a self-signed certificate: https, wss://,
# X-Forwarded-For with HTTP_FORWARDED_COUNT=1. Last line "proxy: N passed, M failed".
tests/proxy/run.sh

stage "Debian package (tests/package/run.sh)"
# cargo deb from the debug binary, dpkg -i, files/user/modes, systemd-analyze verify,
# the unit's ExecStart as its user, login and setStatus, purge. Needs root.
tests/package/run.sh

stage "container image (tests/container/run.sh)"
# The Containerfile FROM scratch built and run with podman: non-root, volume,
# HEALTHCHECK, login and setStatus surviving a restart, graceful stop.
tests/container/run.sh

stage "benchmark smoke run (bench/run.sh --smoke)"
# Keeps the load tool (bench/, issue 4) alive: a tiny run of every benchmark phase
# against the debug binary; fails on any error answer, lost frame or lost write.
bench/run.sh --smoke
