#!/usr/bin/env bash
# Real-client tests: start a fresh statusd on a free port with a temporary SQLite
# database, then drive it with the published Rocket.Chat clients:
#   python/  rocketchat-api (PyPI) under pytest
#   node/    @rocket.chat/ddp-client (npm) under node --test
# Prints "clients: N passed, M failed" as its last line; exits non-zero on any failure.
#
# Environment knobs (all optional):
#   STATUSD_CLIENTS_KEEP_TMP=1  keep the temp dir (database, server log, junit files)
#   RUST_LOG                    server log filter (default: info)
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

node_dir="$here/node"
node_stamp_want="$(hash_of "$node_dir/package.json" "$node_dir/package-lock.json")-$(node --version)"
if [[ ! -d "$node_dir/node_modules" || "$(cat "$node_dir/node_modules/.statusd-stamp" 2>/dev/null || true)" != "$node_stamp_want" ]]; then
    log "node: npm ci in $node_dir"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    printf '%s\n' "$node_stamp_want" >"$node_dir/node_modules/.statusd-stamp"
else
    log "node: dependencies up to date"
fi

# --- server -------------------------------------------------------------------
log "cargo build --bin statusd"
cargo build --quiet --bin statusd
target_dir="${CARGO_TARGET_DIR:-target}"
[[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
bin="$target_dir/debug/statusd"
[[ -x "$bin" ]] || die "$bin was not built"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/statusd-clients.XXXXXX")"
server_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ "${STATUSD_CLIENTS_KEEP_TMP:-0}" == 1 ]]; then
        printf 'kept %s\n' "$tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
admin_pass="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
url="http://127.0.0.1:$port"

server_log="$tmp/server.log"
# A clean environment for the server: no NATS, no inherited settings overrides.
env -i PATH="$PATH" HOME="${HOME:-/root}" \
    PORT="$port" BIND_IP=127.0.0.1 ROOT_URL="$url" \
    DATABASE_URL="sqlite://$tmp/statusd.db" \
    ADMIN_USERNAME=admin ADMIN_PASS="$admin_pass" ADMIN_EMAIL=admin@example.com \
    OVERWRITE_SETTING_API_Enable_Rate_Limiter=false \
    RUST_LOG="${RUST_LOG:-info}" RUST_BACKTRACE=1 \
    "$bin" >"$server_log" 2>&1 &
server_pid=$!
log "statusd pid $server_pid on $url (log: $server_log)"

print_server_log() {
    printf '\n----- statusd log (%s) -----\n' "$server_log"
    tail -n 300 "$server_log" || true
    printf -- '----- end of statusd log -----\n'
}

ready=0
for _ in $(seq 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        print_server_log
        die "statusd exited before answering /api/info"
    fi
    if curl -fsS -o /dev/null --max-time 1 "$url/api/info" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ "$ready" != 1 ]]; then
    print_server_log
    die "statusd did not answer GET /api/info within 30 s"
fi

export STATUSD_URL="$url" STATUSD_ADMIN_USER=admin STATUSD_ADMIN_PASS="$admin_pass"

# --- the clients --------------------------------------------------------------
failed_runner=0

printf '\n-- python: rocketchat-api (pytest)\n'
if ! timeout 300 "$venv/bin/python" -m pytest -q --tb=short -p no:cacheprovider \
    --junitxml="$tmp/python.xml" "$py_dir"; then
    failed_runner=1
fi

printf '\n-- node: @rocket.chat/ddp-client (node --test)\n'
if ! (cd "$node_dir" && timeout 300 node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=junit --test-reporter-destination="$tmp/node.xml" \
    ddp.test.mjs); then
    failed_runner=1
fi

# Count test cases from both junit reports. A missing report counts as a failure.
read -r passed failed < <(python3 - "$tmp/python.xml" "$tmp/node.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

passed = failed = 0
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
        elif "skipped" not in tags:
            passed += 1
print(passed, failed)
EOF
)

if [[ "$failed_runner" != 0 && "$failed" == 0 ]]; then
    failed=1 # a runner failed without a failing test case (crash, timeout, hook)
fi
if [[ "$failed" != 0 ]]; then
    print_server_log
fi
printf '\nclients: %s passed, %s failed\n' "$passed" "$failed"
[[ "$failed" == 0 ]]
