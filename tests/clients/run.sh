#!/usr/bin/env bash
# Real-client tests: start a fresh statusd on a free port with a temporary SQLite
# database, then drive it with the published Rocket.Chat clients:
#   python/    rocketchat-api (PyPI) under pytest; webhooks verified with the Standard
#              Webhooks specification's own library (PyPI standardwebhooks)
#   node/      @rocket.chat/ddp-client (npm) under node --test (ddp.test.mjs; autoaway.test.mjs:
#              the idle timer → UserPresence:away → activity → UserPresence:online flow),
#              and the REST bridge to the DDP methods driven as the mobile app drives it
#              (bridge.test.mjs, ejson); sdk.test.mjs: the @rocket.chat/sdk bot driver
#   upstream/  the maintainers' own test suite of rocketchat-api (shipped in its sdist,
#              fixtures unchanged), the tests that concern statusd's routes, against a
#              second fresh server whose admin is the suite's `user1`
#              (upstream/statusd_upstream.py says which tests run and why the others
#              do not, and which are known to fail today)
# Prints "clients: N passed, M failed (K skipped or known to fail)" as its last line;
# exits non-zero on any failure.
#
# `run.sh --deps-only` installs the clients and stops (scripts/test.sh runs it in the
# background while Rust compiles).
#
# Environment knobs (all optional):
#   STATUSD_CLIENTS_KEEP_TMP=1  keep the temp dir (database, server log, junit files)
#   RUST_LOG                    server log filter (default: info)
#   STATUSD_BIN=PATH            test this binary instead of building target/debug/statusd
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
here="tests/clients"

log() { printf '  - %s\n' "$*"; }
die() { printf 'tests/clients/run.sh: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 not found"
command -v node >/dev/null || die "node not found"
command -v npm >/dev/null || die "npm not found"
command -v curl >/dev/null || die "curl not found"

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- client dependencies (idempotent; skipped when the stamp matches) --------
py_dir="$here/python"
venv="$py_dir/.venv"
py_stamp_want="$(hash_of "$py_dir/requirements.txt")-$(python3 -c 'import sys; print(sys.version.split()[0])')"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.statusd-stamp" 2>/dev/null || true)" != "$py_stamp_want" ]]; then
    log "python: installing $py_dir/requirements.txt into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$py_dir/requirements.txt"
    printf '%s\n' "$py_stamp_want" >"$venv/.statusd-stamp"
else
    log "python: dependencies up to date"
fi

# The sdist of the pinned rocketchat-api, for its tests/ (checked against its hash).
upstream_version="$(sed -n 's/^rocketchat-api==\([^ ]*\)$/\1/p' "$py_dir/requirements.txt")"
upstream_sha256=915e7eeeddcdca02601fe06e4fbc596f45a5d366a71c72f3fb48f6103708696c # 3.7.1
upstream_src="$venv/rocketchat_api-$upstream_version"
if [[ ! -f "$upstream_src/tests/conftest.py" ]]; then
    log "python: the sdist of rocketchat-api $upstream_version (for its tests)"
    rm -rf "$venv/sdist" "$upstream_src"
    "$venv/bin/python" -m pip download --quiet --disable-pip-version-check \
        --no-binary :all: --no-deps --dest "$venv/sdist" "rocketchat-api==$upstream_version"
    sdist="$venv/sdist/rocketchat_api-$upstream_version.tar.gz"
    [[ "$(sha256sum "$sdist" | cut -d' ' -f1)" == "$upstream_sha256" ]] ||
        die "$sdist does not have the pinned sha256 (a new version needs a new hash here)"
    tar -xzf "$sdist" -C "$venv"
    [[ -f "$upstream_src/tests/conftest.py" ]] || die "no tests/conftest.py in $sdist"
fi

node_dir="$here/node"
node_stamp_want="$(hash_of "$node_dir/package.json" "$node_dir/package-lock.json")-$(node --version)"
if [[ ! -d "$node_dir/node_modules" || "$(cat "$node_dir/node_modules/.statusd-stamp" 2>/dev/null || true)" != "$node_stamp_want" ]]; then
    log "node: npm ci in $node_dir"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    printf '%s\n' "$node_stamp_want" >"$node_dir/node_modules/.statusd-stamp"
else
    log "node: dependencies up to date"
fi

[[ "${1:-}" == --deps-only ]] && exit 0

# --- server -------------------------------------------------------------------
if [[ -n "${STATUSD_BIN:-}" ]]; then
    bin="$STATUSD_BIN"
else
    log "cargo build --bin statusd"
    cargo build --quiet --bin statusd
    target_dir="${CARGO_TARGET_DIR:-target}"
    [[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
    bin="$target_dir/debug/statusd"
fi
[[ -x "$bin" ]] || die "$bin was not built"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/statusd-clients.XXXXXX")"
server_pid=""
cleanup() {
    local rc=$?
    stop_server
    if [[ "${STATUSD_CLIENTS_KEEP_TMP:-0}" == 1 ]]; then
        printf 'kept %s\n' "$tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_server NAME ADMIN_USER ADMIN_PASS ADMIN_EMAIL ADMIN_NAME: a fresh server on a
# free port and its own SQLite database in $tmp/NAME/; sets url, server_pid, server_log.
start_server() {
    local name=$1 port
    port="$(free_port)"
    url="http://127.0.0.1:$port"
    mkdir -p "$tmp/$name"
    server_log="$tmp/$name/server.log"
    # A clean environment for the server: no NATS, no inherited settings overrides.
    env -i PATH="$PATH" HOME="${HOME:-/root}" \
        PORT="$port" BIND_IP=127.0.0.1 ROOT_URL="$url" \
        DATABASE_URL="sqlite://$tmp/$name/statusd.db" \
        ADMIN_USERNAME="$2" ADMIN_PASS="$3" ADMIN_EMAIL="$4" ADMIN_NAME="$5" \
        OVERWRITE_SETTING_API_Enable_Rate_Limiter=false \
        RUST_LOG="${RUST_LOG:-info}" RUST_BACKTRACE=1 \
        "$bin" >"$server_log" 2>&1 &
    server_pid=$!
    log "statusd pid $server_pid on $url (log: $server_log)"
    for _ in $(seq 300); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            print_server_log
            die "statusd exited before answering /api/info"
        fi
        if curl -fsS -o /dev/null --max-time 1 "$url/api/info" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    print_server_log
    die "statusd did not answer GET /api/info within 30 s"
}

stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}

print_server_log() {
    printf '\n----- statusd log (%s) -----\n' "$server_log"
    tail -n 300 "$server_log" || true
    printf -- '----- end of statusd log -----\n'
}

admin_pass="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
start_server clients admin "$admin_pass" admin@example.com Administrator
clients_log="$server_log"

export STATUSD_URL="$url" STATUSD_ADMIN_USER=admin STATUSD_ADMIN_PASS="$admin_pass"

# --- the clients --------------------------------------------------------------
failed_runner=0

printf '\n-- python: rocketchat-api (pytest)\n'
if ! timeout 300 "$venv/bin/python" -m pytest -q --tb=short -p no:cacheprovider \
    --junitxml="$tmp/python.xml" "$py_dir"; then
    failed_runner=1
fi

printf '\n-- node: @rocket.chat/ddp-client, @rocket.chat/sdk (node --test)\n'
if ! (cd "$node_dir" && timeout 300 node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=junit --test-reporter-destination="$tmp/node.xml" \
    ddp.test.mjs autoaway.test.mjs bridge.test.mjs sdk.test.mjs); then
    failed_runner=1
fi

stop_server

# The maintainers' tests of rocketchat-api, with their own fixtures: their admin is
# `user1` (the first user of a fresh Rocket.Chat) with their password and e-mail.
printf '\n-- python: the upstream tests of rocketchat-api %s (pytest)\n' "$upstream_version"
upstream_pass="$(sed -n 's/^ *return "\(.*\)"$/\1/p' "$upstream_src/tests/conftest.py" | head -n 1)"
[[ -n "$upstream_pass" ]] || die "no test password found in $upstream_src/tests/conftest.py"
start_server upstream user1 "$upstream_pass" email@domain.com user1
if ! (cd "$upstream_src" && STATUSD_URL="$url" PYTHONPATH="$root/$here/upstream" \
    timeout 300 "$root/$venv/bin/python" -m pytest -q --tb=short -rfEsxX -p no:cacheprovider \
    -p statusd_upstream --junitxml="$tmp/upstream.xml" tests); then
    failed_runner=1
fi
upstream_log="$server_log"
stop_server

# Count test cases from the junit reports (a test known to fail is counted neither as
# passed nor failed; pytest lists it above). A missing report counts as a failure.
read -r passed failed skipped < <(python3 - "$tmp/python.xml" "$tmp/node.xml" "$tmp/upstream.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        failed += 1
        continue
    for case in root.iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
print(passed, failed, skipped)
EOF
)

if [[ "$failed_runner" != 0 && "$failed" == 0 ]]; then
    failed=1 # a runner failed without a failing test case (crash, timeout, hook)
fi
if [[ "$failed" != 0 ]]; then
    for server_log in "$clients_log" "$upstream_log"; do print_server_log; done
fi
printf '\nclients: %s passed, %s failed (%s skipped or known to fail)\n' "$passed" "$failed" "$skipped"
[[ "$failed" == 0 ]]
