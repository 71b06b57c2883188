#!/usr/bin/env bash
# Prepare this machine for the container tests, idempotently (each step reuses what exists):
#   1. docker.io, docker-compose (1.29) and debootstrap from Debian's packages
#   2. a Docker engine (scripts/ci/docker-engine.sh: reuses a running one)
#   3. the local base image (scripts/ci/base-image.sh: debootstrapped bookworm)
#   4. ./wheelhouse with every wheel the image needs (scripts/ci/wheelhouse.sh)
# `scripts/ci/docker-env.sh teardown` stops what step 2 started, and nothing else.
set -euo pipefail
# shellcheck source=scripts/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ci="$REPO_ROOT/scripts/ci"

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
        || missing+=(docker-compose)
    if ((${#missing[@]} == 0)); then
        log "docker.io, docker-compose and debootstrap already installed"
        return
    fi
    log "apt-get install ${missing[*]}"
    "${AS_ROOT[@]}" apt-get update -qq
    "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

case "${1:-up}" in
    up)
        install_packages
        bash "$ci/docker-engine.sh" start
        bash "$ci/base-image.sh"
        bash "$ci/wheelhouse.sh"
        ;;
    teardown) bash "$ci/docker-engine.sh" stop ;;
    *) die "usage: $0 [up|teardown]" ;;
esac
