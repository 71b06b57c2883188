# shellcheck shell=bash disable=SC2034
# Shared helpers for the CI container scripts; source it, don't run it.
# BLOCKSERVE_CI_STATE holds logs and the pid of what these scripts started: give each run its
# own (.ci/run does) so that a teardown stops only what that run started.

BLOCKSERVE_CI_STATE="${BLOCKSERVE_CI_STATE:-/var/tmp/blockserve-ci}"
BLOCKSERVE_BASE_IMAGE="${BLOCKSERVE_BASE_IMAGE:-blockserve-base:bookworm}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

mkdir -p "$BLOCKSERVE_CI_STATE"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prefix for commands that need root: empty when we are root, else sudo.
if [[ $(id -u) -eq 0 ]]; then AS_ROOT=(); else AS_ROOT=(sudo); fi

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND once a second until it succeeds.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready after ${seconds}s"
        sleep 1
    done
}
