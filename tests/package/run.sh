#!/usr/bin/env bash
# The Debian package, installed on this machine as an operator would: build it with
# cargo-deb (from the debug binary already built for the tests, stripped: CI has no
# release build; README "Install" has the release command), `dpkg -i`, check the
# files, the statusd user and the permissions, `systemd-analyze verify` the unit,
# compare /etc/statusd/statusd.env with the variables `statusd --help` lists, then
# start the unit's ExecStart as the unit would (no systemd as PID 1 here): as its
# User with its Environment, EnvironmentFile, WorkingDirectory and LimitNOFILE, no new
# privileges, and a read-only root file system except its ReadWritePaths
# (ProtectSystem=strict); log in, set a status, stop it, and purge the package.
# Must run as root. Last line: "package: N passed, M failed".
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
# shellcheck source=../lib/check.sh
source "$root/tests/lib/check.sh"

[[ $(id -u) == 0 ]] || die "must run as root (dpkg -i)"
if dpkg -s statusd >/dev/null 2>&1; then
    die "a statusd package is installed already; this test installs and purges its own"
fi
had_user=0
getent passwd statusd >/dev/null && had_user=1
had_data=0
[[ -e /var/lib/statusd ]] && had_data=1

# cargo-deb, pinned (its options and warnings change between releases).
cargo_deb_version=3.8.0
if [[ "$(cargo deb --version 2>/dev/null || true)" != *"$cargo_deb_version"* ]]; then
    log "cargo install cargo-deb $cargo_deb_version"
    cargo install --quiet --locked cargo-deb --version "$cargo_deb_version"
fi

# STATUSD_BIN set: scripts/test.sh has built target/debug/statusd, which cargo deb takes.
[[ -n "${STATUSD_BIN:-}" ]] || cargo build --quiet --bin statusd
tmp="$(mktemp -d "${TMPDIR:-/tmp}/statusd-package.XXXXXX")"
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
    if dpkg -s statusd >/dev/null 2>&1; then dpkg --purge statusd >/dev/null 2>&1 || true; fi
    # Leave the machine as it was: the user and data directory the package made.
    if ((had_user == 0)) && getent passwd statusd >/dev/null; then userdel statusd 2>/dev/null || true; fi
    if ((had_user == 0)) && getent group statusd >/dev/null; then groupdel statusd 2>/dev/null || true; fi
    if ((had_data == 0)); then rm -rf /var/lib/statusd; fi
    if ((failed)) || [[ -n "${STATUSD_PACKAGE_KEEP_TMP:-}" ]]; then
        echo "  (files kept in $tmp)"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

# --- build and install ------------------------------------------------------
# The dev profile's binary, stripped (--strip), quick compression (--fast). cargo-deb
# warns that it is meant for release builds: this is the CI variant of
# `cargo deb` (README "Install").
cargo deb --quiet --no-build --profile dev --strip --fast -o "$tmp/" 2>"$tmp/cargo-deb.log" ||
    die "cargo deb failed: $(cat "$tmp/cargo-deb.log")"
deb=$(ls "$tmp"/statusd_*.deb)
log "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"
check "dpkg -i installs it" dpkg -i "$deb"

mode_owner() { stat -c '%a %U:%G' "$1"; }
unit=/usr/lib/systemd/system/statusd.service
env_file=/etc/statusd/statusd.env
check "/usr/bin/statusd is 755 root:root" test "$(mode_owner /usr/bin/statusd)" = "755 root:root"
check "statusd --version names the package version" \
    bash -c '[[ "$(/usr/bin/statusd --version)" == "statusd $(dpkg-query -W -f="\${Version}" statusd | cut -d- -f1)" ]]'
check "a statusd system user with no login shell, home /var/lib/statusd" \
    bash -c 'IFS=: read -r _ _ uid _ _ home shell < <(getent passwd statusd) &&
             ((uid < 1000)) && [[ $home == /var/lib/statusd && $shell == */nologin ]]'
check "/var/lib/statusd is 700 statusd:statusd" test "$(mode_owner /var/lib/statusd)" = "700 statusd:statusd"
check "$env_file is 640 root:statusd" test "$(mode_owner $env_file)" = "640 root:statusd"
check "$env_file is a conffile" bash -c 'dpkg-query -W -f="\${Conffiles}" statusd | grep -q " /etc/statusd/statusd.env "'
check "the unit is installed" test -f "$unit"
check "systemd-analyze verify $unit" systemd-analyze verify "$unit"
for directive in "Restart=on-failure" "ProtectSystem=strict" "NoNewPrivileges=yes" \
    "ReadWritePaths=/var/lib/statusd" "User=statusd" "EnvironmentFile=$env_file"; do
    check "the unit has $directive" grep -qx "$directive" "$unit"
done
check "the unit sets LimitNOFILE" grep -q '^LimitNOFILE=[0-9]' "$unit"

# --- the environment file documents every variable, all commented -----------
/usr/bin/statusd --help | grep -o '\[env: [A-Z0-9_]*' | cut -d' ' -f2 | sort -u >"$tmp/help-vars"
grep -o '^#[A-Z0-9_]*=' "$env_file" | tr -d '#=' | grep -v '^OVERWRITE_SETTING_' | sort -u >"$tmp/env-vars"
check "$env_file lists exactly the variables of statusd --help" \
    diff -u "$tmp/help-vars" "$tmp/env-vars"
check "$env_file sets nothing (every line a comment or blank)" \
    bash -c '! grep -vE "^[[:space:]]*(#|$)" "$1"' _ "$env_file"
check "$env_file shows OVERWRITE_SETTING_<id>" grep -q '^#OVERWRITE_SETTING_' "$env_file"

# --- run the unit's ExecStart as the unit would --------------------------------
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin_pass='package-test-Pass-1'
# The operator's edit of the conffile.
cat >>"$env_file" <<ENV

# Added by tests/package/run.sh
PORT=$port
BIND_IP=127.0.0.1
ADMIN_USERNAME=admin
ADMIN_PASS=$admin_pass
ENV
exec_start=$(unit_value ExecStart)
user=$(unit_value User)
group=$(unit_value Group)
workdir=$(unit_value WorkingDirectory)
nofile=$(unit_value LimitNOFILE)
rw_path=$(unit_value ReadWritePaths)
# The unit's LimitNOFILE, or this machine's hard limit when that is lower (raising
# the hard limit needs CAP_SYS_RESOURCE, which a sandbox may not have).
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < nofile)); then
    log "LimitNOFILE=$nofile is above this machine's hard limit $hard: using $hard"
    nofile=$hard
fi
mapfile -t unit_env < <(sed -n 's/^Environment=//p' "$unit")
mapfile -t file_env < <(grep -vE '^[[:space:]]*(#|$)' "$env_file")
log "ExecStart=$exec_start as $user:$group in $workdir, LimitNOFILE=$nofile"
# systemd: Environment= first, EnvironmentFile= after it (it wins). In a mount
# namespace of its own, / is remounted read-only with ReadWritePaths bound writable.
(
    cd "$workdir"
    exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${unit_env[@]}" "${file_env[@]}" \
        prlimit --nofile="$nofile:$nofile" \
        unshare --mount --propagation private \
        sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro / &&
               if touch /usr/lib/.statusd-probe 2>/dev/null; then echo "root is writable"; exit 1; fi &&
               echo "root read-only, $1 writable" &&
               exec setpriv --reuid="$2" --regid="$3" --init-groups --no-new-privs -- $4' \
        _ "$rw_path" "$user" "$group" "$exec_start"
) >"$tmp/statusd.log" 2>&1 &
server_pid=$!
up=0
for _ in $(seq 150); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/api/info"; then up=1; break; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
done
check "the service starts as the unit runs it" test "$up" = 1
((up)) || cat "$tmp/statusd.log" >&2
check "with the root file system read-only but $rw_path (ProtectSystem=strict)" \
    grep -q "^root read-only, $rw_path writable" "$tmp/statusd.log"
# Every step execs the next: the background job is the statusd process itself.
statusd_pid=$server_pid
check "the process is statusd" test "$(ps -o comm= -p "$statusd_pid")" = statusd
check "it runs as $user, with LimitNOFILE and no new privileges" \
    bash -c '[[ $(ps -o user= -p "$1") == "$2" ]] && grep -Eq "^Max open files +$3 +$3 " /proc/$1/limits &&
             grep -Eq "^NoNewPrivs:\s+1" /proc/$1/status' _ "$statusd_pid" "$user" "$nofile"
check "its database is /var/lib/statusd/statusd.db, 600 statusd:statusd" \
    test "$(mode_owner /var/lib/statusd/statusd.db)" = "600 statusd:statusd"

c=(curl -sS --max-time 10)
login=$("${c[@]}" -H 'Content-Type: application/json' \
    -d "{\"user\":\"admin\",\"password\":\"$admin_pass\"}" "http://127.0.0.1:$port/api/v1/login" || true)
user_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["userId"])' <<<"$login" 2>/dev/null || true)
token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["authToken"])' <<<"$login" 2>/dev/null || true)
check "the admin from the environment file logs in" test -n "$token"
check "users.setStatus" bash -c '[[ $("$@") == "{\"success\":true}" ]]' _ "${c[@]}" \
    -H "X-User-Id: $user_id" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
    -d '{"status":"busy","message":"installed from the package"}' "http://127.0.0.1:$port/api/v1/users.setStatus"
check "users.getStatus shows it" bash -c '"$@" | grep -q "\"status\":\"busy\""' _ "${c[@]}" \
    -H "X-User-Id: $user_id" -H "X-Auth-Token: $token" "http://127.0.0.1:$port/api/v1/users.getStatus"
check "statusd healthcheck with the service's environment" \
    env -i "${unit_env[@]}" "${file_env[@]}" /usr/bin/statusd healthcheck

[[ -n "$statusd_pid" ]] && kill -TERM "$statusd_pid" 2>/dev/null || true
stopped=0
for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || { stopped=1; break; }
    sleep 0.2
done
check "SIGTERM stops it" test "$stopped" = 1
wait "$server_pid" 2>/dev/null || true
server_pid=""

# --- purge --------------------------------------------------------------------
check "dpkg --purge removes it" dpkg --purge statusd
check "the binary, unit and configuration are gone" \
    bash -c '! [[ -e /usr/bin/statusd || -e /usr/lib/systemd/system/statusd.service || -e /etc/statusd ||
               -L /etc/systemd/system/multi-user.target.wants/statusd.service ]]'
check "the database is kept" test -f /var/lib/statusd/statusd.db

echo "package: $passed passed, $failed failed"
((failed == 0))
