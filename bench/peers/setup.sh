#!/usr/bin/env bash
# Create the peers' venv for `python -m bench.serve`: LitServe, TorchServe 0.12 (+ model archiver),
# torch/torchvision for TorchServe's image_classifier handler, matplotlib for the plots.
# These are never project dependencies.
#
#   bash bench/peers/setup.sh                       # installs torch==2.14.1 torchvision==0.29.1
#   PEERS_TORCH_BASE=/path/to/venv bash bench/peers/setup.sh
#       # reuses an existing venv that already has exactly those torch/torchvision versions,
#       # read-only, through a .pth file (saves a ~5.5 GB install)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${PEERS_VENV:-$repo/bench/.venv-peers}"
python="${PEERS_PYTHON:-python3.11}"
torch_pins=(torch==2.14.1 torchvision==0.29.1)

if ! command -v java >/dev/null; then
    echo "setup.sh: TorchServe needs Java 17 (apt-get install -y openjdk-17-jre-headless)" >&2
    exit 1
fi
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"

# torch first, so the requirements (captum needs torch) resolve against it.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ -n "${PEERS_TORCH_BASE:-}" ]]; then
    base_site="$("$PEERS_TORCH_BASE/bin/python" -c \
        'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    versions="$("$PEERS_TORCH_BASE/bin/python" -c \
        'import torch, torchvision; print(torch.__version__.split("+")[0], torchvision.__version__.split("+")[0])')"
    if [[ "$versions" != "2.14.1 0.29.1" ]]; then
        echo "setup.sh: $PEERS_TORCH_BASE has torch/torchvision $versions, need 2.14.1 0.29.1" >&2
        exit 1
    fi
    # Appended after the venv's own site-packages, so its own packages take precedence.
    echo "$base_site" > "$site/peers-torch-base.pth"
else
    rm -f "$site/peers-torch-base.pth"
    "$venv/bin/pip" install --quiet "${torch_pins[@]}"
fi
"$venv/bin/pip" install --quiet -r "$repo/bench/peers/requirements.txt"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
for name in ("litserve", "torchserve", "torch-model-archiver", "torch", "torchvision",
             "captum", "onnxruntime", "matplotlib"):
    print(f"{name:22} {md.version(name)}")
PY
