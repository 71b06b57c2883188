"""Build TorchServe's model archive: random-init ResNet-18 weights (seed 0, nothing is
downloaded), the standard `image_classifier` handler, and batching from model-config.yaml.

    python archive.py --store DIR --max-batch-size 16 --max-batch-delay-ms 10 [--workers N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from model import ImageClassifier

HERE = Path(__file__).resolve().parent
MODEL_NAME = "resnet18"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="TorchServe model store")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-batch-delay-ms", type=int, default=10)
    parser.add_argument("--workers", type=int, help="workers per model (default: one per core)")
    args = parser.parse_args()
    args.store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / "resnet18.pth"
        torch.manual_seed(0)
        torch.save(ImageClassifier().state_dict(), weights)
        config = Path(scratch) / "model-config.yaml"
        workers = (
            f"minWorkers: {args.workers}\nmaxWorkers: {args.workers}\n" if args.workers else ""
        )
        config.write_text(
            f"batchSize: {args.max_batch_size}\n"
            f"maxBatchDelay: {args.max_batch_delay_ms}\n"
            f"responseTimeout: 120\n{workers}"
        )
        command = [
            str(Path(sys.executable).with_name("torch-model-archiver")),
            "--model-name", MODEL_NAME,
            "--version", "1.0",
            "--model-file", str(HERE / "model.py"),
            "--serialized-file", str(weights),
            "--handler", "image_classifier",
            "--config-file", str(config),
            "--export-path", str(args.store),
            "--force",
        ]  # fmt: skip
        subprocess.run(command, check=True)
    print(args.store / f"{MODEL_NAME}.mar")


if __name__ == "__main__":
    main()
