"""The inputs a reduced precision is verified with (and int8 calibrates on), preprocessed exactly
as the server preprocesses requests: a configured image folder, or the digits model's own data
(training images to calibrate, the held-out test split, with its labels, to verify)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.default_cfgs import DefaultCfg
from models.export import ReducedPrecision
from models.export.precision import ReducedPrecisionName
from models.preprocessing import default_preprocess
from service.config import CalibrationConfig, ModelConfig, PreprocessConfig
from service.imaging import Preprocess
from service.imaging.decode import preprocess_images
from service.network import ModelConfigError, ModelNetwork
from service.runtimes.gpu import cuda_device

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
SHUFFLE_SEED = 0


class CalibrationError(ModelConfigError):
    """The calibration data is missing or too small; the message starts with the field."""


def model_reduced_precision(config: ModelConfig, network: ModelNetwork) -> ReducedPrecision | None:
    """What a served model's precision is made and verified with; None for fp32. fp16 and bf16
    are verified on the CUDA device that will serve them (`DeviceUnavailableError` without)."""
    if config.precision == "fp32":
        return None
    preprocess = served_preprocess(config.preprocess, network.default, network.input_size)
    return reduced_precision(
        config.calibration,
        config.precision,
        config.arch,
        preprocess,
        fmt=config.format,
        device=config.device,
    )


def served_preprocess(
    config: PreprocessConfig, default: DefaultCfg, input_size: tuple[int, ...]
) -> Preprocess:
    """The preprocessing the server will apply: the config's fields over the defaults the
    export records in the manifest."""
    return Preprocess.resolve(config, default_preprocess(default, input_size))


def reduced_precision(
    settings: CalibrationConfig,
    precision: ReducedPrecisionName,
    arch: str | None,
    preprocess: Preprocess,
    *,
    fmt: str = "onnx",
    device: str = "auto",
) -> ReducedPrecision:
    """Held-out (and for int8 calibration) inputs from `settings.images`, else (for the digits
    model) from its test (and training) split. fp16 and bf16 are verified on the CUDA device
    that `device` (of a model in format `fmt`) resolves to, int8 on the CPU; no data is read
    before that device is found (`DeviceUnavailableError` without one)."""
    verified_on = "cpu" if precision == "int8" else cuda_device(fmt, device, precision)
    samples = settings.samples if precision == "int8" else 0
    if settings.images is not None:
        calibration, held_out, labels = _folder_inputs(settings, samples, preprocess)
    else:
        calibration, held_out, labels = _digits_inputs(samples, precision, arch, preprocess)
    return ReducedPrecision(
        precision=precision,
        calibration=calibration if precision == "int8" else None,
        held_out=held_out,
        held_out_labels=labels,
        device=verified_on,
        method=settings.method,
        min_top1_agreement=settings.min_top1_agreement,
        min_cosine_similarity=settings.min_cosine_similarity,
    )


def _folder_inputs(
    settings: CalibrationConfig, samples: int, preprocess: Preprocess
) -> tuple[np.ndarray, np.ndarray, None]:
    """A fixed shuffle of the folder's images: the first `samples` calibrate, the next
    `held_out` (at least one) verify."""
    folder = settings.images
    assert folder is not None
    if not folder.is_dir():
        raise CalibrationError(f"calibration.images: {folder} is not a directory")
    paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if len(paths) <= samples:
        raise CalibrationError(
            f"calibration.images: {folder} holds {len(paths)} images; {samples} "
            f"calibration samples and at least one held-out image need {samples + 1}"
        )
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(paths))
    chosen = [paths[index] for index in order[: samples + settings.held_out]]
    batch = _load_images(chosen, preprocess)
    return batch[:samples], batch[samples:], None


def _load_images(paths: list[Path], preprocess: Preprocess) -> np.ndarray:
    images: list[Image.Image] = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                images.append(image)
        except OSError as error:
            raise CalibrationError(f"calibration.images: cannot read {path}: {error}") from None
    return preprocess_images(images, preprocess)


def _digits_inputs(
    samples: int, precision: str, arch: str | None, preprocess: Preprocess
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from models.digits import DIGITS_ARCH, load_digits_split  # training code: only for digits

    if arch != DIGITS_ARCH:
        raise CalibrationError(
            f"calibration.images: {precision} needs a folder of images to verify on (only the "
            f"digits model brings its own data)"
        )
    split = load_digits_split()
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(split.train_images))
    calibration = split.train_images[order[:samples]]
    return (
        _digit_batch(calibration, preprocess) if samples else calibration.astype(np.float32),
        _digit_batch(split.test_images, preprocess),
        split.test_labels,
    )


def _digit_batch(pixels: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    return preprocess_images([Image.fromarray(image, "L") for image in pixels], preprocess)
