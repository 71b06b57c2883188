#!/usr/bin/env bash
# Vendor the web page's third-party assets at pinned versions, verified against the npm
# registry's sha512 integrity, into service/static/vendor/ with a CHECKSUMS file (sha256).
# Usage: scripts/vendor_ui_assets.sh   (needs npm, node, tar, sha256sum; re-run to refresh)
set -euo pipefail

MERMAID_VERSION="12.3.0"
MERMAID_INTEGRITY="sha512-4113TdXeLAsMruJ79OpFL5O8+LTFXhQqZ260rF3tgUmiNAtRm4Uume04I+65PRN6yZ69J4f8rVYWW8zRk65UYw=="

root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/service/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

registry_integrity="$(npm view "mermaid@$MERMAID_VERSION" dist.integrity)"
if [[ "$registry_integrity" != "$MERMAID_INTEGRITY" ]]; then
    echo "mermaid@$MERMAID_VERSION: registry integrity $registry_integrity != pinned" >&2
    exit 1
fi
(cd "$work" && npm pack --silent "mermaid@$MERMAID_VERSION" >/dev/null)
tarball="$work/mermaid-$MERMAID_VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$actual" != "$MERMAID_INTEGRITY" ]]; then
    echo "mermaid-$MERMAID_VERSION.tgz: sha512 $actual != $MERMAID_INTEGRITY" >&2
    exit 1
fi
tar -xzf "$tarball" -C "$work" package/dist/mermaid.min.js package/LICENSE

mkdir -p "$vendor"
rm -f "$vendor"/mermaid-*.min.js "$vendor"/mermaid-*.LICENSE
cp "$work/package/dist/mermaid.min.js" "$vendor/mermaid-$MERMAID_VERSION.min.js"
cp "$work/package/LICENSE" "$vendor/mermaid-$MERMAID_VERSION.LICENSE"
(cd "$vendor" && sha256sum mermaid-*.min.js mermaid-*.LICENSE > CHECKSUMS)
echo "vendored mermaid $MERMAID_VERSION ($MERMAID_INTEGRITY) into $vendor"
