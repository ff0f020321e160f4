# Shared by the shell test stages (tests/proxy, tests/package, tests/container): `log`,
# `die` naming the calling script, and `check DESCRIPTION COMMAND...`, which counts
# into `passed` / `failed` for the stage's last line "<name>: N passed, M failed".
# Sourced, not run.

die() { printf '%s: %s\n' "${0#"$root"/}" "$*" >&2; exit 1; }
log() { printf '  - %s\n' "$*"; }

passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        log "ok: $what"
    else
        failed=$((failed + 1))
        log "FAILED: $what"
    fi
}
