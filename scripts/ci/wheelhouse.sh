#!/usr/bin/env bash
# Download, on the host, every wheel the container build needs, so that it can run with
# `--network none`: the project's dependencies with the given extras (default cpu,train), plus
# the build backend. Wheels target the container, not the host: CPython 3.11, manylinux x86_64.
#   scripts/ci/wheelhouse.sh [DIR]     # default DIR: ./wheelhouse (the build context's)
# torch==2.13.0 resolves to the CPU wheel through pip's configured find-links (/opt/wheels).
set -euo pipefail
# shellcheck source=scripts/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WHEELHOUSE="${1:-$REPO_ROOT/wheelhouse}"
EXTRAS="${BLOCKSERVE_WHEELHOUSE_EXTRAS:-cpu,train}"
PYTHON="${PYTHON:-python3.11}"
# Bookworm has glibc 2.36: accept every manylinux tag up to it (pip does not expand them itself).
GLIBC_MINOR="${BLOCKSERVE_WHEELHOUSE_GLIBC_MINOR:-36}"
platforms=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
for ((minor = GLIBC_MINOR; minor >= 5; minor--)); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done

mkdir -p "$WHEELHOUSE"
requirements="$BLOCKSERVE_CI_STATE/wheelhouse-requirements.txt"
"$PYTHON" "$REPO_ROOT/scripts/ci/requirements.py" "$REPO_ROOT/pyproject.toml" \
    --extras "$EXTRAS" --build-system >"$requirements"

log "pip download into $WHEELHOUSE ($(wc -l <"$requirements") requirements, extras $EXTRAS)"
start=$SECONDS
pip_log="$BLOCKSERVE_CI_STATE/wheelhouse.log"
"$PYTHON" -m pip download --dest "$WHEELHOUSE" --only-binary=:all: \
    "${platforms[@]}" --implementation cp --python-version 3.11 --abi cp311 \
    -r "$requirements" wheel >"$pip_log" 2>&1 \
    || { tail -n 30 "$pip_log" >&2; die "pip download failed: see $pip_log"; }
log "wheelhouse ready in $((SECONDS - start))s: $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels," \
    "$(du -sh "$WHEELHOUSE" | cut -f1)"
