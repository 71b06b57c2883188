#!/usr/bin/env bash
# The project's test command: ruff lint, ruff format check, mypy, then the whole pytest suite
# (tests/, container tests included: they start the compose stack, see tests/integration/).
# Creates .venv with the cpu, dev and ray extras when it is missing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x .venv/bin/python ]]; then
    "${PYTHON:-python3.11}" -m venv .venv
    .venv/bin/pip install -e '.[cpu,dev,ray]'
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m mypy

# `python -m` puts the repository first on sys.path, ahead of test directories named like
# its packages (tests/models).
status=0
.venv/bin/python -m pytest "$@" || status=$?
if ((status == 5)); then
    echo "pytest: no tests collected"
    status=0
fi
exit "$status"
