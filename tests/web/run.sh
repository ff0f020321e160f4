#!/usr/bin/env bash
# Browser test of the presence page at `/`: builds statusd, starts it on a free port
# with a temporary SQLite database and a known admin, and drives the page with the
# system's headless Chromium (Debian package `chromium`) through playwright-core
# (npm; no browser download). Saves the page's screenshots to docs/screenshot.png and,
# beside it, docs/screenshot-last-seen.png (the list filtered to offline people),
# docs/screenshot-dnd.png (the whole page during a do-not-disturb window) and
# docs/screenshot-privacy.png (the Privacy form hiding the status from one person).
# The server is stopped whatever happens. Exits non-zero on any failure.
#
# Environment knobs (all optional):
#   STATUSD_WEB_KEEP_TMP=1   keep the temp dir (database, server log, browser profile)
#   STATUSD_SCREENSHOT=PATH  where to save the screenshot (default docs/screenshot.png;
#                            screenshot-last-seen.png, screenshot-dnd.png and
#                            screenshot-privacy.png go into the same directory)
#   RUST_LOG                 server log filter (default: info)
#   STATUSD_BIN=PATH         test this binary instead of building target/debug/statusd
# `run.sh --deps-only` installs the browser and playwright-core and stops
# (scripts/test.sh runs it in the background while Rust compiles).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
here="tests/web"

log() { printf '  - %s\n' "$*"; }
die() { printf 'tests/web/run.sh: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || die "node not found"
command -v npm >/dev/null || die "npm not found"
command -v curl >/dev/null || die "curl not found"

# --- the browser: Debian's Chromium ------------------------------------------
chromium=/usr/bin/chromium
if [[ ! -x "$chromium" ]]; then
    command -v apt-get >/dev/null || die "$chromium is missing and apt-get is not available"
    log "installing Debian's chromium"
    if ! apt-get install -y -q chromium >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q chromium >/dev/null
    fi
    [[ -x "$chromium" ]] || die "$chromium is still missing after apt-get install chromium"
fi
log "browser: $("$chromium" --version 2>/dev/null | head -n 1)"

# --- playwright-core (idempotent; skipped when the stamp matches) -------------
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_want="$(hash_of "$here/package.json" "$here/package-lock.json")-$(node --version)"
if [[ ! -d "$here/node_modules" || "$(cat "$here/node_modules/.statusd-stamp" 2>/dev/null || true)" != "$stamp_want" ]]; then
    log "npm ci in $here"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    printf '%s\n' "$stamp_want" >"$here/node_modules/.statusd-stamp"
else
    log "npm: dependencies up to date"
fi

[[ "${1:-}" == --deps-only ]] && exit 0

# --- the server ---------------------------------------------------------------
if [[ -n "${STATUSD_BIN:-}" ]]; then
    bin="$STATUSD_BIN"
else
    log "cargo build --bin statusd"
    cargo build --quiet --bin statusd
    bin="$root/target/debug/statusd"
fi
[[ -x "$bin" ]] || die "$bin was not built"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/statusd-web.XXXXXX")"
server_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ "${STATUSD_WEB_KEEP_TMP:-0}" == 1 ]]; then
        printf 'kept %s\n' "$tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')"
admin_pass="web-$(node -e 'console.log(require("crypto").randomBytes(12).toString("hex"))')"
url="http://127.0.0.1:$port"
server_log="$tmp/server.log"

# A clean environment: no NATS, no inherited settings overrides. The REST rate
# limiter is off so the test's own REST calls cannot make it flaky.
env -i PATH="$PATH" HOME="${HOME:-/root}" \
    PORT="$port" BIND_IP=127.0.0.1 ROOT_URL="$url" \
    DATABASE_URL="sqlite://$tmp/statusd.db" \
    ADMIN_USERNAME=admin ADMIN_PASS="$admin_pass" ADMIN_EMAIL=admin@example.com ADMIN_NAME="Ada Admin" \
    OVERWRITE_SETTING_API_Enable_Rate_Limiter=false \
    RUST_LOG="${RUST_LOG:-info}" RUST_BACKTRACE=1 \
    "$bin" >"$server_log" 2>&1 &
server_pid=$!
log "statusd pid $server_pid on $url (log: $server_log)"

print_server_log() {
    printf '\n----- statusd log (%s) -----\n' "$server_log"
    tail -n 200 "$server_log" || true
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

# --- the test -----------------------------------------------------------------
export STATUSD_URL="$url" STATUSD_ADMIN_USER=admin STATUSD_ADMIN_PASS="$admin_pass"
export STATUSD_CHROMIUM="$chromium" STATUSD_BROWSER_PROFILE="$tmp/chromium-profile"
export STATUSD_SCREENSHOT="${STATUSD_SCREENSHOT:-$root/docs/screenshot.png}"
export STATUSD_ARTIFACTS="$tmp"

rc=0
(cd "$here" && timeout 300 node --test --test-reporter=spec presence.test.mjs) || rc=$?
if [[ "$rc" != 0 ]]; then
    print_server_log
    die "the browser test failed (exit $rc)"
fi
