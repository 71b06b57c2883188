#!/usr/bin/env bash
# The browser the web page tests drive (tests/ui/): Debian's chromium and chromium-driver,
# installed when missing (Playwright's and Selenium's own browser downloads are not reachable).
set -euo pipefail
# shellcheck source=scripts/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    log "chromium and chromedriver already installed"
    exit 0
fi
log "apt-get install chromium chromium-driver"
"${AS_ROOT[@]}" apt-get update -qq
"${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
