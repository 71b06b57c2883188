"""`blockserve export NAME --out DIR`: write a verified artifact bundle (see docs/export.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from models.export import (
    PRECISIONS,
    PrecisionError,
    ReducedPrecision,
    precision_format_problem,
)
from models.export.formats import FORMAT_NAMES
from models.export.precision import CALIBRATION_METHODS
from models.registry import model_default_cfg
from service.calibration import reduced_precision, served_preprocess
from service.commands import CliError, needs_torch
from service.commands.zoo import add_model_arguments, model_input_size, parse_overrides
from service.config import CalibrationConfig, PreprocessConfig
from service.runtimes.base import DeviceUnavailableError

# The config's defaults: `blockserve export` makes what a served model config would.
CALIBRATION_DEFAULTS = CalibrationConfig()


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="export a zoo model to an ONNX or TorchScript bundle",
        description="Export NAME to DIR/<name>-<format>-<hash>/ (model file + manifest.json). "
        "An identical earlier export in DIR is reused.",
    )
    parser.add_argument("name", help="registry model name (see `blockserve models`)")
    parser.add_argument("--format", choices=sorted(FORMAT_NAMES), default="onnx")
    parser.add_argument(
        "--weights", type=Path, metavar="PATH", help=".safetensors or torch checkpoint"
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--max-batch", type=int, default=32, metavar="N", help="largest batch verified (32)"
    )
    parser.add_argument(
        "--sample",
        type=Path,
        metavar="FILE.npy",
        help="real preprocessed float32 batch (N, C, ...)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="int8: quantize the ONNX model statically; fp16, bf16 (torchscript): for a CUDA "
        "GPU, verified there; each verified against fp32",
    )
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="fp16/bf16: the CUDA device to verify on (auto, cuda, cuda:N)",
    )
    parser.add_argument(
        "--calibration-images",
        type=Path,
        metavar="DIR",
        help="reduced precisions: images to verify (int8: and calibrate) on (default for "
        "resnet_digits: its data)",
    )
    parser.add_argument(
        "--calibration-samples",
        type=int,
        default=CALIBRATION_DEFAULTS.samples,
        metavar="N",
        help="int8: (%(default)s)",
    )
    parser.add_argument(
        "--calibration-method", choices=CALIBRATION_METHODS, default=CALIBRATION_DEFAULTS.method
    )
    parser.add_argument(
        "--min-top1-agreement",
        type=float,
        default=CALIBRATION_DEFAULTS.min_top1_agreement,
        metavar="F",
        help="reduced precision of trained weights: refused below this top-1 agreement with "
        "fp32 (%(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="bundle cache directory"
    )
    parser.set_defaults(handler=export_command)


@needs_torch
def export_command(args: argparse.Namespace) -> int:
    from models.export import ParityError, export_bundle
    from models.weights import WeightsMismatchError

    overrides = parse_overrides(args.overrides)
    input_size = args.input or model_input_size(args.name, overrides)
    if args.weights is not None and not args.weights.is_file():
        raise CliError(f"--weights: no such file {args.weights}")
    if args.max_batch < 1:
        raise CliError(f"--max-batch must be >= 1, got {args.max_batch}")
    sample = _load_sample(args.sample) if args.sample else None
    reduced = None if args.precision == "fp32" else _reduced_precision(args, input_size)
    _check_writable(args.out)
    try:
        bundle = export_bundle(
            args.name,
            fmt=args.format,
            weights=args.weights,
            overrides=overrides,
            cache_dir=args.out,
            max_batch=args.max_batch,
            input_size=input_size,
            sample_input=sample,
            reduced=reduced,
            progress=lambda message: print(f"[export] {message}", file=sys.stderr, flush=True),
        )
    except (ValueError, ParityError, PrecisionError) as error:  # WeightsMismatchError too
        kind = "weights do not fit" if isinstance(error, WeightsMismatchError) else "failed"
        raise CliError(f"{args.name} export {kind}: {error}") from None
    print(bundle)
    return 0


_CALIBRATION_FLAGS = {
    "images": "--calibration-images",
    "samples": "--calibration-samples",
    "method": "--calibration-method",
    "min_top1_agreement": "--min-top1-agreement",
}


def _reduced_precision(args: argparse.Namespace, input_size: tuple[int, ...]) -> ReducedPrecision:
    unservable = precision_format_problem(args.precision, args.format)
    if unservable is not None:
        raise CliError(f"--precision: {unservable}")
    try:
        settings = CalibrationConfig(
            images=args.calibration_images,
            samples=args.calibration_samples,
            method=args.calibration_method,
            min_top1_agreement=args.min_top1_agreement,
        )
        preprocess = served_preprocess(PreprocessConfig(), model_default_cfg(args.name), input_size)
        return reduced_precision(
            settings, args.precision, args.name, preprocess, fmt=args.format, device=args.device
        )
    except ValidationError as error:
        problem = error.errors()[0]
        flag = _CALIBRATION_FLAGS[str(problem["loc"][0])]
        raise CliError(f"{flag}: {problem['msg']}") from None
    except DeviceUnavailableError as error:
        raise CliError(f"--device: {error}") from None
    except ValueError as error:
        raise CliError(f"{args.precision} calibration: {error}") from None


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise CliError(f"--out {out} is not a writable directory ({error.strerror})") from None


def _load_sample(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CliError(f"--sample {path}: not a readable .npy array ({error})") from None
