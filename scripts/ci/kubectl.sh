#!/usr/bin/env bash
# kubectl for the manifest tests (tests/deploy/): they render deploy/kubernetes with
# `kubectl kustomize`, offline. Debian's kubernetes-client, installed when kubectl is missing.
set -euo pipefail
# shellcheck source=scripts/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if command -v kubectl >/dev/null; then
    log "kubectl already installed: $(kubectl version --client 2>/dev/null | head -n 1)"
    exit 0
fi
log "apt-get install kubernetes-client"
"${AS_ROOT[@]}" apt-get update -qq
"${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
command -v kubectl >/dev/null || die "kubernetes-client installed no kubectl"
log "installed $(kubectl version --client 2>/dev/null | head -n 1)"
