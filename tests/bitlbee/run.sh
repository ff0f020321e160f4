#!/usr/bin/env bash
# A real libpurple client end to end: Debian's purple-rocketchat plugin under BitlBee
# (bitlbee-libpurple), logged in to statusd through nginx with TLS
# (docs/examples/nginx.conf; the plugin speaks only HTTPS/WSS and verifies the
# certificate, so the test makes a local CA and trusts it in the system store while it
# runs). The plugin opens Meteor's SockJS path /sockjs/<n>/pidgin<n>/websocket, logs in
# with a SHA-256 digest, waits for Meteor's record of the logged-in user, subscribes
# activeUsers, fullUserData (for a buddy it adds) and stream-notify-logged user-status,
# and reads /api/v1/users.presence. tests/bitlbee/drive.py drives BitlBee over IRC:
# the account logs in; a status set through REST for a buddy shows in /WHO within a
# second; after `account off`/`account on` statusd sends the buddy's new status at once
# (activeUsers) and the buddy, added again (BitlBee forgot it), shows it at once;
# `/AWAY` makes users.getStatus answer away, `/AWAY` alone online again. Installs bitlbee-libpurple, purple-rocketchat,
# nginx-light and openssl when missing (as root: it also adds its test CA to the system
# store while it runs, and removes it). Last line: "bitlbee: N passed, M failed".
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
# shellcheck source=../lib/check.sh
source "$root/tests/lib/check.sh"
# shellcheck source=../lib/nginx.sh
source "$root/tests/lib/nginx.sh"

((EUID == 0)) || die "needs root (apt-get, and the test CA in the system store)"
need=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
# bitlbee-libpurple is BitlBee built with libpurple (it replaces the bitlbee package).
installed bitlbee-libpurple || need+=(bitlbee-libpurple)
installed purple-rocketchat || need+=(purple-rocketchat)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v openssl >/dev/null || need+=(openssl)
command -v update-ca-certificates >/dev/null || need+=(ca-certificates)
if ((${#need[@]})); then
    log "apt-get install ${need[*]}"
    # Other stages install with apt-get in the background too: wait for the lock.
    apt=(apt-get -o DPkg::Lock::Timeout=600)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        { "${apt[@]}" update -qq && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi
# `run.sh --deps-only` installs and stops (scripts/test.sh runs it in the background
# while Rust compiles).
[[ "${1:-}" == --deps-only ]] && exit 0
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
bitlbee_bin=$(command -v bitlbee || echo /usr/sbin/bitlbee)

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

tmp="$(mktemp -d "${TMPDIR:-/tmp}/statusd-bitlbee.XXXXXX")"
ca_name="statusd-bitlbee-test-$$"
ca_file="/usr/local/share/ca-certificates/$ca_name.crt"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # The test CA leaves the system store with the test.
    if [[ -e "$ca_file" ]]; then
        rm -f "$ca_file"
        # update-ca-certificates rebuilds the bundle but leaves the links behind.
        find /etc/ssl/certs -lname "$ca_name.pem" -delete 2>/dev/null || true
        rm -f "/etc/ssl/certs/$ca_name.pem"
        update-ca-certificates >/dev/null 2>&1 || true
    fi
    if ((failed)) || [[ -n "${STATUSD_BITLBEE_KEEP_TMP:-}" ]]; then
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

# --- a local CA, trusted for the test, and nginx's certificate for localhost -------
host=localhost
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=statusd BitlBee test CA" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" \
    -keyout "$tmp/key.pem" -out "$tmp/req.pem" 2>/dev/null
printf 'subjectAltName=DNS:%s,IP:127.0.0.1\n' "$host" >"$tmp/san.ext"
openssl x509 -req -in "$tmp/req.pem" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 2 -extfile "$tmp/san.ext" -out "$tmp/cert.pem" 2>/dev/null
cp "$tmp/ca.pem" "$ca_file"
update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed"

# --- statusd --------------------------------------------------------------------
admin=admin
admin_pass='bitlbee-test-Pass-1'
nport=$(free_port)
sport=$(free_port)
mkdir -p "$tmp/statusd" "$tmp/nginx" "$tmp/bitlbee"
PORT=$sport BIND_IP=127.0.0.1 HTTP_FORWARDED_COUNT=1 \
    ROOT_URL="https://$host:$nport" DATABASE_URL="sqlite://$tmp/statusd/statusd.db" \
    ADMIN_USERNAME=$admin ADMIN_PASS=$admin_pass RUST_LOG=warn \
    "$bin" >"$tmp/statusd.log" 2>&1 &
pids+=($!)
wait_port "$sport" 30 || die "statusd did not start: $(cat "$tmp/statusd.log")"

# --- nginx: docs/examples/nginx.conf, as an operator would put it in front ----------
start_example_nginx "$sport" "$nport" "$(free_port)"
check "nginx serves /sockjs/info over https with the test CA" \
    bash -c 'curl -sS --max-time 10 "$1" | grep -q "\"websocket\":true"' _ "https://$host:$nport/sockjs/info"

# --- BitlBee: a private configuration and user directory, one free port ------------
# ForkDaemon: libpurple wants one process per IRC client.
iport=$(free_port)
cat >"$tmp/bitlbee/bitlbee.conf" <<CONF
[settings]
RunMode = ForkDaemon
DaemonInterface = 127.0.0.1
DaemonPort = $iport
AuthMode = Open
ConfigDir = $tmp/bitlbee
[defaults]
CONF
# libpurple keeps its files under HOME; the plugin logs what it sends and receives
# with purple's debug output (bitlbee -v).
BITLBEE_DEBUG=1 HOME="$tmp/bitlbee" "$bitlbee_bin" -F -n -v -c "$tmp/bitlbee/bitlbee.conf" -d "$tmp/bitlbee" \
    >"$tmp/bitlbee.log" 2>&1 &
pids+=($!)
wait_port "$iport" 15 || die "bitlbee did not start: $(cat "$tmp/bitlbee.log")"

while IFS= read -r line; do
    case $line in
    "ok: "*) check "${line#ok: }" true ;;
    "FAILED: "*) check "${line#FAILED: }" false ;;
    *) printf '%s\n' "$line" ;;
    esac
done < <(timeout 180 python3 tests/bitlbee/drive.py "$iport" "http://127.0.0.1:$sport" "$host:$nport" \
    "$admin" "$admin_pass" "$tmp/bitlbee.log" 2>&1 || true)

if ((failed)); then
    echo "  --- bitlbee.log (last 60 lines)"
    tail -n 60 "$tmp/bitlbee.log" | sed 's/^/  /'
    echo "  --- statusd.log (last 20 lines)"
    tail -n 20 "$tmp/statusd.log" | sed 's/^/  /'
fi
echo "bitlbee: $passed passed, $failed failed"
((failed == 0))
