#!/usr/bin/env bash
# The stock client tools the client tests run (tritonclient, KServe SDK:
# tests/clients/requirements.txt) in a venv of their own, .cache/client-venv (or
# $BLOCKSERVE_CLIENT_VENV): they pin protobuf differently from blockserve. Idempotent and quick
# when done: a stamp holding the requirements' hash skips the install. Prints the venv's python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

requirements=tests/clients/requirements.txt
venv=${BLOCKSERVE_CLIENT_VENV:-.cache/client-venv}
stamp="$venv/.requirements.sha256"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9  # one maker at a time; the others then find it made
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    rm -rf "$venv"
    "${PYTHON:-python3.11}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$wanted" >"$stamp"
fi
(cd "$venv/bin" && echo "$PWD/python")
