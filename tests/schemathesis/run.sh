#!/usr/bin/env bash
# Schema-based API testing: start a fresh statusd on a free port with a temporary
# SQLite database and run schemathesis (PyPI, pinned in requirements.txt) against the
# OpenAPI description the server serves at /api/v1/openapi.json, as an admin
# (hooks.py). Every generated request, valid or not, must get an answer that is not
# a 5xx and whose status, content type, headers and body match the description;
# routes that need a login must refuse requests without one. Then the server is
# restarted on the same database: what it serves must be what it served before
# (nothing acknowledged was half-written or lost).
#
# Environment knobs (all optional):
#   STATUSD_SCHEMATHESIS_EXAMPLES=N  test cases per operation and phase (default 10,
#                                    the CI size; RELIABILITY.md's long run used 300)
#   STATUSD_SCHEMATHESIS_SEED=N      reproduce a run (its seed is printed)
#   STATUSD_SCHEMATHESIS_KEEP_TMP=1  keep the temp dir (database, server log, reports)
#   STATUSD_BIN=PATH                 test this binary instead of building target/debug/statusd
# `run.sh --deps-only` installs schemathesis and stops (scripts/test.sh runs it in the
# background while Rust compiles).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
here="tests/schemathesis"
examples="${STATUSD_SCHEMATHESIS_EXAMPLES:-10}"
seed="${STATUSD_SCHEMATHESIS_SEED:-$RANDOM$RANDOM}"

log() { printf '  - %s\n' "$*"; }
die() { printf 'tests/schemathesis/run.sh: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 not found"
command -v curl >/dev/null || die "curl not found"

# --- schemathesis (idempotent; skipped when the stamp matches) ----------------
venv="$here/.venv"
stamp_want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)-$(python3 -c 'import sys; print(sys.version.split()[0])')"
if [[ ! -x "$venv/bin/schemathesis" || "$(cat "$venv/.statusd-stamp" 2>/dev/null || true)" != "$stamp_want" ]]; then
    log "installing $here/requirements.txt into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    printf '%s\n' "$stamp_want" >"$venv/.statusd-stamp"
else
    log "schemathesis: up to date"
fi
st="$root/$venv/bin/schemathesis"
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

tmp="$(mktemp -d "${TMPDIR:-/tmp}/statusd-schemathesis.XXXXXX")"
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
cleanup() {
    local rc=$?
    stop_server
    if [[ "${STATUSD_SCHEMATHESIS_KEEP_TMP:-0}" == 1 ]]; then
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

print_server_log() {
    printf '\n----- statusd log (%s) -----\n' "$server_log"
    tail -n 200 "$server_log" || true
    printf -- '----- end of statusd log -----\n'
}

# A clean environment. The settings below keep thousands of requests from one client
# from being refused wholesale, which would test only the 429 and blocked-login
# paths: the REST rate limiter (anonymous routes are limited per IP; the admin is
# exempt anyway) and failed-login blocking (schemathesis tries many bad logins) are
# off. Registration is public so users.register can succeed.
overwritten=(API_Enable_Rate_Limiter Block_Multiple_Failed_Logins_Enabled Accounts_RegistrationForm)
start_server() {
    env -i PATH="$PATH" HOME="${HOME:-/root}" \
        PORT="$port" BIND_IP=127.0.0.1 ROOT_URL="$url" \
        DATABASE_URL="sqlite://$tmp/statusd.db" \
        ADMIN_USERNAME=admin ADMIN_PASS="$admin_pass" ADMIN_EMAIL=admin@example.com \
        OVERWRITE_SETTING_API_Enable_Rate_Limiter=false \
        OVERWRITE_SETTING_Block_Multiple_Failed_Logins_Enabled=false \
        OVERWRITE_SETTING_Accounts_RegistrationForm=Public \
        RUST_LOG="${RUST_LOG:-warn}" RUST_BACKTRACE=1 \
        "$bin" >>"$server_log" 2>&1 &
    server_pid=$!
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

# login USER: prints "USER_ID TOKEN" (every admin here has the same password).
login() {
    curl -fsS --max-time 30 "$url/api/v1/login" -H 'Content-Type: application/json' \
        -d "{\"user\":\"$1\",\"password\":\"$admin_pass\"}" |
        python3 -c 'import json, sys; d = json.load(sys.stdin)["data"]; print(d["userId"], d["authToken"])'
}

# snapshot FILE USER_ID TOKEN: what the server serves of the durable state (users,
# permissions, settings, custom statuses), minus what a restart rightly changes:
# displayed statuses (nobody is connected after a restart; expiry may come due), and
# what start-up makes whole again, as Rocket.Chat does: the `rocket.cat` bot when it
# was deleted, and the settings OVERWRITE_SETTING_* forces.
snapshot() {
    python3 - "$url" "$2" "$3" "${overwritten[@]}" >"$1" <<'EOF'
import json, sys, urllib.request
url, uid, token, *overwritten = sys.argv[1:]
def get(path):
    req = urllib.request.Request(f"{url}/api/v1/{path}", headers={"X-User-Id": uid, "X-Auth-Token": token})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
def pages(route, field):
    items, offset = [], 0
    while True:
        page = get(f"{route}?offset={offset}&count=100")
        items += page[field]
        offset += page["count"]
        if page["count"] == 0 or offset >= page["total"]:
            return items
keep = ("_id", "username", "name", "emails", "roles", "active", "type", "utcOffset", "createdAt")
users = [u for u in pages("users.list", "users") if u["_id"] != "rocket.cat"]
print(json.dumps({
    "users": sorted(({k: u.get(k) for k in keep} for u in users), key=lambda u: u["_id"]),
    # `_updatedAt` is when this process saw a permission change: a restart rightly moves it.
    "permissions": [{"_id": p["_id"], "roles": p["roles"]} for p in get("permissions.listAll")["update"]],
    "settings": [s for s in get("settings.public")["settings"] if s["_id"] not in overwritten],
    "custom": pages("custom-user-status.list", "statuses"),
}, indent=1, sort_keys=True))
EOF
}

start_server
log "statusd pid $server_pid on $url (log: $server_log)"

checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_headers_conformance,response_schema_conformance
checks+=,ignored_auth,missing_required_header,unsupported_method,allow_header_conformance
# Every operation, logout included, as an admin that hooks.py replaces (out of band,
# with the admin CLI) whenever the generated requests log it out, delete, deactivate
# or demote it.
failed=0
printf '\n-- schemathesis: every operation (%s examples per operation, seed %s)\n' "$examples" "$seed"
(cd "$tmp" && STATUSD_URL="$url" STATUSD_BIN="$bin" STATUSD_ADMIN_PASS="$admin_pass" \
    STATUSD_DATABASE_URL="sqlite://$tmp/statusd.db" \
    PYTHONPATH="$root/$here" SCHEMATHESIS_HOOKS=hooks \
    timeout 3600 "$st" run "$url/api/v1/openapi.json" --url "$url" \
    --checks "$checks" --max-examples "$examples" --seed "$seed" --workers 1 \
    --request-timeout 30 --no-color \
    --report junit --report-junit-path "$tmp/junit.xml") || failed=1

# The restart check reads as an admin made now, with the CLI, so nothing generated
# could have touched it.
# The generated requests may have set the username rules (UTF8_User_Names_Validation,
# Accounts_BlockedUsernameList) so that no name passes: put them back first.
for rule in "UTF8_User_Names_Validation=[0-9a-zA-Z-_.]+" "Accounts_BlockedUsernameList="; do
    env -i PATH="$PATH" DATABASE_URL="sqlite://$tmp/statusd.db" RUST_LOG=warn \
        "$bin" settings set "${rule%%=*}" "${rule#*=}" >/dev/null 2>&1
done
auditor="auditor-$RANDOM$RANDOM"
env -i PATH="$PATH" DATABASE_URL="sqlite://$tmp/statusd.db" RUST_LOG=warn \
    "$bin" user add "$auditor" --password "$admin_pass" --email "$auditor@example.com" --role admin >/dev/null
auditor_creds=""
for _ in $(seq 75); do
    auditor_creds="$(login "$auditor" 2>/dev/null)" && break
    sleep 0.2
done
[[ -n "$auditor_creds" ]] || die "the server did not pick up $auditor, made with the CLI"
read -r auditor_id auditor_token <<<"$auditor_creds"

printf '\n-- restart: the state served before and after must be the same\n'
snapshot "$tmp/before.json" "$auditor_id" "$auditor_token"
stop_server
start_server
snapshot "$tmp/after.json" "$auditor_id" "$auditor_token"
if diff -u "$tmp/before.json" "$tmp/after.json" >"$tmp/restart.diff"; then
    log "same state after the restart ($(grep -c '"_id"' "$tmp/after.json") records)"
else
    head -n 60 "$tmp/restart.diff"
    failed=1
fi

if [[ "$failed" != 0 ]]; then
    print_server_log
fi
read -r cases failures < <(python3 - "$tmp/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
cases = failures = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        failures += 1
        continue
    for case in root.iter("testcase"):
        cases += 1
        failures += any(child.tag in ("failure", "error") for child in case)
print(cases, failures)
EOF
)
printf '\nschemathesis: %s operation runs, %s failed (seed %s, %s examples)\n' \
    "$cases" "$failures" "$seed" "$examples"
[[ "$failed" == 0 && "$failures" == 0 ]]
