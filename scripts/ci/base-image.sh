#!/usr/bin/env bash
# Build the local base image for air-gapped container builds, unless it already exists:
# a debootstrapped Debian bookworm (python3 3.11, python3-venv, ca-certificates) imported
# as $BLOCKSERVE_BASE_IMAGE (default blockserve-base:bookworm). Needs root and Debian's mirror.
set -euo pipefail
# shellcheck source=scripts/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MIRROR="${BLOCKSERVE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$BLOCKSERVE_BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BLOCKSERVE_BASE_IMAGE exists: reusing it"
    exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap not installed (run scripts/ci/docker-env.sh)"

rootfs="$(mktemp -d "$BLOCKSERVE_CI_STATE/rootfs.XXXXXX")"
trap '"${AS_ROOT[@]}" rm -rf "$rootfs"' EXIT
log "debootstrap bookworm into $rootfs"
start=$SECONDS
"${AS_ROOT[@]}" debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >"$BLOCKSERVE_CI_STATE/debootstrap.log" 2>&1 \
    || die "debootstrap failed: see $BLOCKSERVE_CI_STATE/debootstrap.log"
# Downloaded .debs and package lists are dead weight in every image built on top.
"${AS_ROOT[@]}" rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
"${AS_ROOT[@]}" tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$BLOCKSERVE_BASE_IMAGE" >/dev/null
log "imported $BLOCKSERVE_BASE_IMAGE in $((SECONDS - start))s:" \
    "$(docker image inspect -f '{{.Size}}' "$BLOCKSERVE_BASE_IMAGE" | numfmt --to=iec) "
