"""`blockserve train-digits`: train the digits model the default config serves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.commands import CliError, needs_torch
from service.config import expand_path

DEFAULT_WEIGHTS = "${BLOCKSERVE_HOME}/digits/digits.safetensors"  # where default.yaml looks
MIN_ACCURACY = 0.97


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train-digits",
        help="train resnet_digits on scikit-learn's digits (seeded, about a minute on CPU)",
        description="Train resnet_digits on the fixed 80/20 split of scikit-learn's 8x8 digits "
        "and write the weights (.safetensors) plus a JSON report next to them.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="weights file (default: $BLOCKSERVE_HOME/digits/digits.safetensors, "
        "where the default config looks; BLOCKSERVE_HOME defaults to ~/.cache/blockserve)",
    )
    parser.add_argument("--seed", type=int, default=0, help="init/shuffle/augmentation seed")
    parser.add_argument("--epochs", type=int, help="training epochs (default 30)")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=MIN_ACCURACY,
        help=f"exit 1 if the held-out accuracy is below this (default {MIN_ACCURACY})",
    )
    parser.set_defaults(handler=train_command)


@needs_torch
def train_command(args: argparse.Namespace) -> int:
    from models.digits import TrainConfig, train_digits

    out = args.out or expand_path(DEFAULT_WEIGHTS, None)
    if out.suffix != ".safetensors":
        raise CliError(f"--out must be a .safetensors file, got {out}")
    if args.epochs is not None and args.epochs < 1:
        raise CliError(f"--epochs must be >= 1, got {args.epochs}")
    if not 0 <= args.min_accuracy <= 1:
        raise CliError(f"--min-accuracy must lie in [0, 1], got {args.min_accuracy}")
    config = TrainConfig(seed=args.seed)
    if args.epochs is not None:
        config = TrainConfig(seed=args.seed, epochs=args.epochs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"cannot create {out.parent}: {error.strerror}") from None
    report = train_digits(
        out, config, progress=lambda message: print(f"[train-digits] {message}", file=sys.stderr)
    )
    print(out)
    if report.test_accuracy < args.min_accuracy:
        print(
            f"blockserve train-digits: test accuracy {report.test_accuracy:.2%} is below "
            f"--min-accuracy {args.min_accuracy:.2%}",
            file=sys.stderr,
        )
        return 1
    return 0
