#!/usr/bin/env bash
# The container image, built and run with podman: scripts/container-context.sh makes
# the build context from the debug binary (stripped; CI has no release build), podman
# builds the Containerfile FROM scratch (no registry needed), then the checks: the
# image runs as a non-root user with /var/lib/statusd as a volume and a HEALTHCHECK;
# the server answers, `podman healthcheck run` passes, a login and a status change
# survive a restart of the container on its volume, and `podman stop` (SIGTERM) ends
# it with exit status 0. Installs podman when missing. Last line:
# "container: N passed, M failed".
#
# This machine's sandbox lacks CAP_SYS_RESOURCE: podman's default ulimits (raised to
# the maximum) cannot be set there, so the container gets lower ones explicitly.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
# shellcheck source=../lib/check.sh
source "$root/tests/lib/check.sh"

if ! command -v podman >/dev/null; then
    log "apt-get install podman"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null; }
fi
# vfs storage works wherever the machine's file system cannot hold overlays.
podman=(podman --storage-driver vfs)

# STATUSD_BIN: the binary scripts/test.sh built (nothing is compiled again).
if [[ -n "${STATUSD_BIN:-}" ]]; then
    bin="$STATUSD_BIN"
else
    cargo build --quiet --bin statusd
    target_dir="${CARGO_TARGET_DIR:-target}"
    [[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
    bin="$target_dir/debug/statusd"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/statusd-container.XXXXXX")"
tag="localhost/statusd-test:$$"
name="statusd-test-$$"
volume="statusd-test-data-$$"
cleanup() {
    "${podman[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
    "${podman[@]}" volume rm -f "$volume" >/dev/null 2>&1 || true
    "${podman[@]}" rmi -f "$tag" >/dev/null 2>&1 || true
    if ((failed)) || [[ -n "${STATUSD_CONTAINER_KEEP_TMP:-}" ]]; then
        echo "  (files kept in $tmp)"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

scripts/container-context.sh "$bin" "$tmp/context" >/dev/null
"${podman[@]}" build -q --layers=false --format docker -t "$tag" -f Containerfile "$tmp/context" >"$tmp/build.log" 2>&1 ||
    die "podman build failed: $(cat "$tmp/build.log")"
check "podman build of the Containerfile" true

"${podman[@]}" image inspect "$tag" >"$tmp/image.json"
image() { python3 -c "import json,sys; d=json.load(open('$tmp/image.json'))[0]; print($1)"; }
check "the image runs as a non-root user (10001)" test "$(image 'd["Config"].get("User")')" = "10001:10001"
check "/var/lib/statusd is a volume" test "$(image '"/var/lib/statusd" in (d["Config"].get("Volumes") or {})')" = True
check "HEALTHCHECK runs statusd healthcheck" \
    test "$(image '(d.get("Healthcheck") or {}).get("Test")')" = "['CMD', '/usr/bin/statusd', 'healthcheck']"
size=$(image 'd["Size"]')
log "image size: $((size / 1024 / 1024)) MiB"
check "the image is small (under 64 MiB)" test "$size" -lt $((64 * 1024 * 1024))

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin_pass='container-test-Pass-1'
nofile=$(($(ulimit -Hn) / 2))
run_container() {
    # --health-interval disable: podman would schedule the checks with systemd timers,
    # and this machine has no systemd; `podman healthcheck run` runs the check itself.
    "${podman[@]}" run -d --name "$name" --network host \
        --ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096 \
        --health-interval disable \
        -v "$volume:/var/lib/statusd" \
        -e PORT="$port" -e BIND_IP=127.0.0.1 -e ROOT_URL="http://127.0.0.1:$port" \
        -e ADMIN_USERNAME=admin -e ADMIN_PASS="$admin_pass" \
        "$tag" >/dev/null 2>"$tmp/run.log"
}
wait_up() {
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/api/info" && return 0
        sleep 0.2
    done
    "${podman[@]}" logs "$name" >&2 || true
    return 1
}
run_container || die "podman run failed: $(cat "$tmp/run.log")"
check "the container serves /api/info" wait_up
check "statusd runs as the statusd user (uid 10001) in it" \
    bash -c '[[ $("$@" top "$0" user | tail -n 1 | tr -d " ") == statusd ]]' "$name" "${podman[@]}"
check "podman healthcheck run: healthy" "${podman[@]}" healthcheck run "$name"
check "the data directory is private (no mode warning in the log)" \
    bash -c '[[ $("$@" exec "$0" /usr/bin/statusd --version) == statusd* ]] &&
             ! "$@" logs "$0" 2>&1 | grep -q "has mode"' "$name" "${podman[@]}"

c=(curl -sS --max-time 10)
login=$("${c[@]}" -H 'Content-Type: application/json' \
    -d "{\"user\":\"admin\",\"password\":\"$admin_pass\"}" "http://127.0.0.1:$port/api/v1/login" || true)
user_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["userId"])' <<<"$login" 2>/dev/null || true)
token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["authToken"])' <<<"$login" 2>/dev/null || true)
check "the admin logs in" test -n "$token"
check "users.setStatus" bash -c '[[ $("$@") == "{\"success\":true}" ]]' _ "${c[@]}" \
    -H "X-User-Id: $user_id" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
    -d '{"status":"busy","message":"in a container"}' "http://127.0.0.1:$port/api/v1/users.setStatus"

"${podman[@]}" stop -t 15 "$name" >/dev/null 2>>"$tmp/podman.log"
check "podman stop (SIGTERM) ends it gracefully (exit status 0)" \
    test "$("${podman[@]}" inspect "$name" --format '{{.State.ExitCode}}')" = 0
"${podman[@]}" rm "$name" >/dev/null 2>>"$tmp/podman.log"
run_container || die "podman run failed again: $(cat "$tmp/run.log")"
check "a new container on the same volume serves" wait_up
check "the token and the status text survived on the volume" \
    bash -c '"$@" | grep -q "\"statusText\":\"in a container\""' _ "${c[@]}" \
    -H "X-User-Id: $user_id" -H "X-Auth-Token: $token" "http://127.0.0.1:$port/api/v1/users.info?userId=$user_id"

echo "container: $passed passed, $failed failed"
((failed == 0))
