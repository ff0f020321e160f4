#!/usr/bin/env bash
# statusd behind a TLS proxy, with the shipped examples themselves: nginx
# (docs/examples/nginx.conf) and Caddy (docs/examples/Caddyfile), both from Debian,
# each with a self-signed certificate in front of one statusd
# (HTTP_FORWARDED_COUNT=1): REST over https, the avatarUrl from ROOT_URL, a DDP client
# over wss:// (tests/proxy/wss.mjs), and X-Forwarded-For honoured for the one trusted
# proxy and not forgeable by a client (the anonymous rate limit is per client address:
# clients come from 127.0.0.2 and 127.0.0.3). It also runs the README's presence
# watcher (docs/examples/watch-presence.js) against the statusd behind nginx.
# Installs nginx-light, caddy and openssl when missing. Last line:
# "proxy: N passed, M failed".
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
# shellcheck source=../lib/check.sh
source "$root/tests/lib/check.sh"
# shellcheck source=../lib/nginx.sh
source "$root/tests/lib/nginx.sh"

need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v caddy >/dev/null || need+=(caddy)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    log "apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# The ws package of the real-client tests.
node_dir="tests/clients/node"
if [[ ! -d "$node_dir/node_modules/ws" ]]; then
    log "npm ci in $node_dir"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# STATUSD_BIN: the binary scripts/test.sh built (nothing is compiled again).
if [[ -n "${STATUSD_BIN:-}" ]]; then
    bin="$STATUSD_BIN"
else
    cargo build --quiet --bin statusd
    target_dir="${CARGO_TARGET_DIR:-target}"
    [[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
    bin="$target_dir/debug/statusd"
fi
[[ -x "$bin" ]] || die "$bin was not built"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/statusd-proxy.XXXXXX")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if ((failed)) || [[ -n "${STATUSD_PROXY_KEEP_TMP:-}" ]]; then
        echo "  (logs kept in $tmp)"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # wait_port PORT SECONDS
    for _ in $(seq $(($2 * 5))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

host=status.test
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host" \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

admin=admin
admin_pass='proxy-test-Pass-1'

# One statusd per proxy: each run counts its own rate-limit windows.
start_statusd() { # start_statusd PUBLIC_PORT -> sets sport
    sport=$(free_port)
    PORT=$sport BIND_IP=127.0.0.1 HTTP_FORWARDED_COUNT=1 \
        ROOT_URL="https://$host:$1" DATABASE_URL="sqlite://$tmp/$1/statusd.db" \
        ADMIN_USERNAME=$admin ADMIN_PASS=$admin_pass RUST_LOG=warn \
        "$bin" >"$tmp/statusd-$1.log" 2>&1 &
    pids+=($!)
    wait_port "$sport" 30 || die "statusd did not start: $(cat "$tmp/statusd-$1.log")"
}

# exercise NAME PUBLIC_PORT: the checks through a proxy listening on PUBLIC_PORT.
exercise() {
    local name=$1 port=$2
    local base="https://$host:$port"
    local c=(curl -sS --max-time 10 --cacert "$tmp/cert.pem" --resolve "$host:$port:127.0.0.1")

    check "$name: GET /api/info over https" \
        bash -c '"$@" | grep -q "\"success\":true"' _ "${c[@]}" "$base/api/info"

    local login
    login=$("${c[@]}" -H 'Content-Type: application/json' \
        -d "{\"user\":\"$admin\",\"password\":\"$admin_pass\"}" "$base/api/v1/login")
    local user_id token avatar
    user_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["userId"])' <<<"$login")
    token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["authToken"])' <<<"$login")
    avatar=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["me"]["avatarUrl"])' <<<"$login")
    check "$name: login over https" test -n "$token"
    check "$name: avatarUrl is ROOT_URL/avatar/admin" test "$avatar" = "$base/avatar/$admin"
    check "$name: the avatar loads through the proxy" \
        bash -c '"$@" -o /dev/null -w "%{http_code} %{content_type}" | grep -qx "200 image/svg+xml"' \
        _ "${c[@]}" "$avatar"
    check "$name: users.setStatus over https" \
        bash -c '"$@" | grep -qx "{\"success\":true}"' _ "${c[@]}" \
        -H "X-User-Id: $user_id" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
        -d '{"status":"away","message":"behind a proxy"}' "$base/api/v1/users.setStatus"
    check "$name: users.getStatus shows it" \
        bash -c '"$@" | grep -q "\"status\":\"away\""' _ "${c[@]}" \
        -H "X-User-Id: $user_id" -H "X-Auth-Token: $token" "$base/api/v1/users.getStatus"
    check "$name: DDP over wss://" \
        node tests/proxy/wss.mjs "wss://$host:$port/websocket" "$tmp/cert.pem" "$admin" "$admin_pass"

    # X-Forwarded-For: anonymous calls are limited per client address (10 per route
    # per minute). 127.0.0.2 uses its ten, then is refused, also when it claims to be
    # someone else; 127.0.0.3 is another client and is served.
    local codes=""
    for _ in $(seq 10); do
        codes+=$("${c[@]}" --interface 127.0.0.2 -o /dev/null -w '%{http_code} ' "$base/api/v1/settings.public")
    done
    check "$name: ten anonymous calls from 127.0.0.2 are served" test "$codes" = "$(printf '200 %.0s' $(seq 10))"
    check "$name: the eleventh from 127.0.0.2 is limited" \
        bash -c '[[ $("$@" -o /dev/null -w "%{http_code}") == 429 ]]' _ "${c[@]}" --interface 127.0.0.2 \
        "$base/api/v1/settings.public"
    check "$name: a forged X-Forwarded-For does not escape the limit" \
        bash -c '[[ $("$@" -o /dev/null -w "%{http_code}") == 429 ]]' _ "${c[@]}" --interface 127.0.0.2 \
        -H 'X-Forwarded-For: 203.0.113.9' "$base/api/v1/settings.public"
    check "$name: another client (127.0.0.3) is served" \
        bash -c '[[ $("$@" -o /dev/null -w "%{http_code}") == 200 ]]' _ "${c[@]}" --interface 127.0.0.3 \
        "$base/api/v1/settings.public"
}

# --- nginx: docs/examples/nginx.conf -----------------------------------------
nport=$(free_port)
nhttp=$(free_port)
mkdir -p "$tmp/$nport" "$tmp/nginx"
start_statusd "$nport"
start_example_nginx "$sport" "$nport" "$nhttp"
check "nginx: http redirects to https" \
    bash -c '[[ $(curl -sS -o /dev/null -w "%{http_code} %{redirect_url}" -H "Host: $1" "http://127.0.0.1:$2/api/info") == "301 https://$1/api/info" ]]' \
    _ "$host" "$nhttp"
exercise nginx "$nport"

# --- the README's watcher, docs/examples/watch-presence.js, on this statusd -----
watch_env=(env NODE_PATH="$root/$node_dir/node_modules" STATUSD_URL="ws://127.0.0.1:$sport/websocket" STATUSD_USER=$admin)
check "watcher: a wrong password prints the login error and exits 1" \
    bash -c 'out=$(timeout 20 "$@" STATUSD_PASS=wrong-password node docs/examples/watch-presence.js 2>&1); rc=$?
             [[ $rc == 1 && $out == *"login failed: "* ]] || { echo "$rc $out" >&2; false; }' _ "${watch_env[@]}"
"${watch_env[@]}" STATUSD_PASS="$admin_pass" node docs/examples/watch-presence.js >"$tmp/watch.log" 2>&1 &
watch_pid=$!
pids+=($watch_pid)
watch_ready() {
    grep -q "^logged in as $admin" "$tmp/watch.log" && grep -q "^watching every status change" "$tmp/watch.log" &&
        grep -q "^$admin is busy: over wss" "$tmp/watch.log"
}
for _ in $(seq 50); do watch_ready && break; sleep 0.2; done
check "watcher: logs in, reads the statuses once (users.presence), subscribes" watch_ready
w_login=$(curl -sS -H 'Content-Type: application/json' -d "{\"user\":\"$admin\",\"password\":\"$admin_pass\"}" \
    "http://127.0.0.1:$sport/api/v1/login")
w_uid=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["userId"])' <<<"$w_login")
w_token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["authToken"])' <<<"$w_login")
curl -sS -o /dev/null -H "X-User-Id: $w_uid" -H "X-Auth-Token: $w_token" -H 'Content-Type: application/json' \
    -d '{"status":"busy","message":"watched live"}' "http://127.0.0.1:$sport/api/v1/users.setStatus"
for _ in $(seq 50); do grep -q "is busy: watched live" "$tmp/watch.log" && break; sleep 0.2; done
check "watcher: prints a change made over REST" grep -q "^$admin ($w_uid) is busy: watched live" "$tmp/watch.log"
kill "$watch_pid" 2>/dev/null || true

# --- Caddy: docs/examples/Caddyfile ------------------------------------------
cport=$(free_port)
chttp=$(free_port)
mkdir -p "$tmp/$cport" "$tmp/caddy"
start_statusd "$cport"
{
    # Test-only global options: no admin API, no ACME, our ports and certificate.
    printf '{\n\tadmin off\n\tskip_install_trust\n\thttp_port %s\n\thttps_port %s\n\tstorage file_system %s\n}\n\n' \
        "$chttp" "$cport" "$tmp/caddy/data"
    sed -e "s|^status.example.org {|$host:$cport {\n\ttls $tmp/cert.pem $tmp/key.pem\n\tbind 127.0.0.1|" \
        -e "s|reverse_proxy 127.0.0.1:3000|reverse_proxy 127.0.0.1:$sport|" \
        docs/examples/Caddyfile
} >"$tmp/caddy/Caddyfile"
grep -q "reverse_proxy 127.0.0.1:$sport" "$tmp/caddy/Caddyfile" || die "the Caddy example's upstream changed"
HOME="$tmp/caddy" XDG_DATA_HOME="$tmp/caddy" XDG_CONFIG_HOME="$tmp/caddy" \
    caddy run --adapter caddyfile --config "$tmp/caddy/Caddyfile" >"$tmp/caddy/caddy.log" 2>&1 &
pids+=($!)
wait_port "$cport" 20 || die "caddy did not start: $(cat "$tmp/caddy/caddy.log")"
exercise caddy "$cport"

echo "proxy: $passed passed, $failed failed"
((failed == 0))
