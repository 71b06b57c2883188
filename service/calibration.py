"""The inputs int8 quantization calibrates on and is verified with, preprocessed exactly as the
server preprocesses requests: a configured image folder, or the digits model's own data
(training images to calibrate, the held-out test split, with its labels, to verify)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.default_cfgs import DefaultCfg
from models.export import Int8Calibration
from models.preprocessing import default_preprocess
from service.config import CalibrationConfig, ModelConfig, PreprocessConfig
from service.imaging import Preprocess
from service.imaging.decode import preprocess_images
from service.network import ModelConfigError, ModelNetwork

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
SHUFFLE_SEED = 0


class CalibrationError(ModelConfigError):
    """The calibration data is missing or too small; the message starts with the field."""


def model_int8_calibration(config: ModelConfig, network: ModelNetwork) -> Int8Calibration | None:
    """The int8 calibration of a served model; None for fp32."""
    if config.precision != "int8":
        return None
    preprocess = served_preprocess(config.preprocess, network.default, network.input_size)
    return int8_calibration(config.calibration, config.arch, preprocess)


def served_preprocess(
    config: PreprocessConfig, default: DefaultCfg, input_size: tuple[int, ...]
) -> Preprocess:
    """The preprocessing the server will apply: the config's fields over the defaults the
    export records in the manifest."""
    return Preprocess.resolve(config, default_preprocess(default, input_size))


def int8_calibration(
    settings: CalibrationConfig, arch: str | None, preprocess: Preprocess
) -> Int8Calibration:
    """Calibration and held-out inputs from `settings.images`, else (for the digits model) from
    its training and test split."""
    if settings.images is not None:
        calibration, held_out, labels = _folder_inputs(settings, preprocess)
    else:
        calibration, held_out, labels = _digits_inputs(settings.samples, arch, preprocess)
    return Int8Calibration(
        calibration=calibration,
        held_out=held_out,
        held_out_labels=labels,
        method=settings.method,
        min_top1_agreement=settings.min_top1_agreement,
        min_cosine_similarity=settings.min_cosine_similarity,
    )


def _folder_inputs(
    settings: CalibrationConfig, preprocess: Preprocess
) -> tuple[np.ndarray, np.ndarray, None]:
    """A fixed shuffle of the folder's images: the first `samples` calibrate, the next
    `held_out` (at least one) verify."""
    folder = settings.images
    assert folder is not None
    if not folder.is_dir():
        raise CalibrationError(f"calibration.images: {folder} is not a directory")
    paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if len(paths) <= settings.samples:
        raise CalibrationError(
            f"calibration.images: {folder} holds {len(paths)} images; {settings.samples} "
            f"calibration samples and at least one held-out image need {settings.samples + 1}"
        )
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(paths))
    chosen = [paths[index] for index in order[: settings.samples + settings.held_out]]
    batch = _load_images(chosen, preprocess)
    return batch[: settings.samples], batch[settings.samples :], None


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
    samples: int, arch: str | None, preprocess: Preprocess
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from models.digits import DIGITS_ARCH, load_digits_split  # training code: only for digits

    if arch != DIGITS_ARCH:
        raise CalibrationError(
            "calibration.images: int8 needs a folder of calibration images (only the digits "
            "model calibrates on its own training data)"
        )
    split = load_digits_split()
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(split.train_images))
    calibration = split.train_images[order[:samples]]
    return (
        _digit_batch(calibration, preprocess),
        _digit_batch(split.test_images, preprocess),
        (split.test_labels),
    )


def _digit_batch(pixels: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    return preprocess_images([Image.fromarray(image, "L") for image in pixels], preprocess)
