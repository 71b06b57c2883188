"""Regenerate tests/fixtures/torchvision/*.json from torchvision itself.

Run with a scratch venv that has torchvision (never a project dependency):

    python -m venv /work/tvenv
    /work/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 numpy
    /work/tvenv/bin/python scripts/make_torchvision_fixture.py

For each torchvision model it builds the network with ``weights=None``, overwrites every
state-dict entry with the deterministic rule in tests/fixtures/torchvision/fill_rule.py, runs
the rule's input in eval mode and writes ``<name>.json``: versions, input seed and shape, the
ordered state-dict layout (key, shape, dtype) and the output logits. No weights are stored;
the parity test rebuilds them from the layout with the same rule.

Self-contained: imports only torch, torchvision, numpy and the fill rule, and reads the name
list from models/torchvision_names.py by path: the `models` package (pinned to the project's
torch) is never imported.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision import models

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = ROOT / "tests" / "fixtures" / "torchvision"
sys.path.insert(0, str(FIXTURE_DIR))
from fill_rule import INPUT_SEED, INPUT_SHAPE, fill_tensor, make_input  # noqa: E402

TORCHVISION_MODELS = runpy.run_path(str(ROOT / "models" / "torchvision_names.py"))[
    "TORCHVISION_MODELS"
]


def make_fixture(name: str) -> dict:
    model = getattr(models, name)(weights=None).eval()
    state_dict = model.state_dict()
    layout = [[key, list(tensor.shape), str(tensor.dtype)] for key, tensor in state_dict.items()]
    filled = {
        key: torch.from_numpy(fill_tensor(key, tuple(shape), dtype)) for key, shape, dtype in layout
    }
    model.load_state_dict(filled, strict=True)
    with torch.no_grad():
        logits = model(torch.from_numpy(make_input()))
    return {
        "model": name,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "params": sum(p.numel() for p in model.parameters()),
        "input": {"seed": INPUT_SEED, "shape": list(INPUT_SHAPE), "dtype": "float32"},
        "state_dict": layout,
        "logits": logits.numpy().astype(np.float64).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", default=TORCHVISION_MODELS, help="models (default: all)"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    for name in args.names:
        fixture = make_fixture(name)
        path = FIXTURE_DIR / f"{name}.json"
        path.write_text(json.dumps(fixture, separators=(",", ":")) + "\n", encoding="utf-8")
        logits = np.asarray(fixture["logits"])
        print(f"{name}: {len(fixture['state_dict'])} entries, max|logit| {abs(logits).max():.4g}")


if __name__ == "__main__":
    main()
