#!/bin/sh
# `pip install "$@"` for the Dockerfile's build stages, from the right place:
#   WHEELHOUSE=1      offline: only the wheels in /wheelhouse (`--no-index --find-links`)
#   otherwise         the package index, plus an extra index for torch's build:
#                     TORCH_INDEX_URL when set, else by VARIANT: cpu -> PyTorch's CPU index
#                     (PyPI's torch for Linux is the multi-GB CUDA build), gpu -> none (PyPI)
# No pip cache is written (PIP_NO_CACHE_DIR), so no cache ends up in a layer.
set -eu

CPU_TORCH_INDEX=https://download.pytorch.org/whl/cpu

if [ "${WHEELHOUSE:-0}" = 1 ]; then
    set -- --no-index --find-links /wheelhouse "$@"
else
    if [ -z "${TORCH_INDEX_URL:-}" ] && [ "${VARIANT:-cpu}" = cpu ]; then
        TORCH_INDEX_URL=$CPU_TORCH_INDEX
    fi
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        set -- --extra-index-url "$TORCH_INDEX_URL" "$@"
    fi
fi
exec env PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 python -m pip install "$@"
