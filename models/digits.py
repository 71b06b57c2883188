"""The digits model: `resnet_digits` trained on scikit-learn's bundled 8×8 digits (no download).

Reproducible: the train/test split is fixed (`SPLIT_SEED`) whatever the training seed, so the
held-out images are the same ones every run and every test; the training seed fixes weight
init, shuffling and augmentation. Pixels go through the same path as served images: values
0..16 -> uint8 0..255 (what a PNG holds) -> /255 -> the default cfg's mean/std.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.files import atomic_path, file_sha256
from models.registry import create_model, model_default_cfg
from models.weights import save_weights

DIGITS_ARCH = "resnet_digits"
SPLIT_SEED = 0
TEST_FRACTION = 0.2
DIGITS_MAX_VALUE = 16  # sklearn digits pixels are integers 0..16


@dataclass(frozen=True)
class DigitsSplit:
    train_images: np.ndarray  # (N, 8, 8) uint8 pixels
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray
    test_labels: np.ndarray


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 30
    batch_size: int = 64
    lr: float = 4e-3
    weight_decay: float = 5e-4
    max_shift: int = 1  # augmentation: random translation by up to this many pixels
    threads: int = 1  # a model this small trains fastest on one thread


@dataclass(frozen=True)
class DigitsReport:
    arch: str
    weights: str
    weights_sha256: str
    test_accuracy: float
    train_accuracy: float
    train_size: int
    test_size: int
    split: dict
    train_seconds: float
    config: dict
    torch: str

    def to_dict(self) -> dict:
        return asdict(self)


def digit_pixels(values: np.ndarray) -> np.ndarray:
    """sklearn digit values 0..16 -> uint8 pixels 0..255 (how the images travel as PNG)."""
    return np.rint(np.asarray(values, np.float64) * 255 / DIGITS_MAX_VALUE).astype(np.uint8)


def load_digits_split() -> DigitsSplit:
    """The fixed stratified split: 80 % train, 20 % held out for testing."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(
        digit_pixels(digits.images),
        digits.target.astype(np.int64),
        test_size=TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=digits.target,
    )
    return DigitsSplit(train_x, train_y, test_x, test_y)


def to_model_input(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, 8, 8) pixels -> normalised float32 (N, 1, 8, 8), as the server preprocesses."""
    cfg = model_default_cfg(DIGITS_ARCH)
    scaled = torch.from_numpy(pixels.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 8, 8)
    return (scaled - cfg.mean[0]) / cfg.std[0]


def random_shift(batch: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels, filling with the background value."""
    if max_shift == 0:
        return batch
    size, _, height, width = batch.shape  # (B, 1, H, W)
    background = float(batch.amin())
    padded = F.pad(batch, (max_shift,) * 4, value=background)  # (B, 1, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (size, 2), generator=generator)
    rows = offsets[:, :1] + torch.arange(height)  # (B, H)
    cols = offsets[:, 1:] + torch.arange(width)  # (B, W)
    samples = torch.arange(size)[:, None, None]
    return padded[samples, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)  # (B, 1, H, W)


@torch.inference_mode()
def accuracy(model: nn.Module, inputs: torch.Tensor, labels: np.ndarray) -> float:
    model.eval()
    predicted = model(inputs).argmax(dim=1).numpy()
    return float((predicted == labels).mean())


def train_digits(
    out: Path,
    config: TrainConfig = TrainConfig(),
    progress: Callable[[str], None] | None = None,
) -> DigitsReport:
    """Train `resnet_digits`, write `out` (.safetensors) and `out.with_suffix('.json')`, each
    atomically (a crash leaves no half file)."""
    report = progress or (lambda message: None)
    out = Path(out)
    split = load_digits_split()
    train_x, test_x = to_model_input(split.train_images), to_model_input(split.test_images)
    train_y = torch.from_numpy(split.train_labels)
    started = time.monotonic()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = create_model(DIGITS_ARCH)
            generator = torch.Generator().manual_seed(config.seed)
            _fit(model, train_x, train_y, config, generator, report)
    finally:
        torch.set_num_threads(threads)
    seconds = time.monotonic() - started
    test_accuracy = accuracy(model, test_x, split.test_labels)
    train_accuracy = accuracy(model, train_x, split.train_labels)
    save_weights(model, out)
    result = DigitsReport(
        arch=DIGITS_ARCH,
        weights=out.name,
        weights_sha256=file_sha256(out),
        test_accuracy=round(test_accuracy, 6),
        train_accuracy=round(train_accuracy, 6),
        train_size=len(split.train_labels),
        test_size=len(split.test_labels),
        split={
            "seed": SPLIT_SEED,
            "test_fraction": TEST_FRACTION,
            "stratified": True,
            "test_images_sha256": hashlib.sha256(split.test_images.tobytes()).hexdigest(),
        },
        train_seconds=round(seconds, 2),
        config=asdict(config),
        torch=torch.__version__,
    )
    with atomic_path(out.with_suffix(".json")) as partial:
        partial.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    report(f"test accuracy {test_accuracy:.2%} on {result.test_size} held-out digits")
    return result


def _fit(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    report: Callable[[str], None],
) -> None:
    steps_per_epoch = -(-len(labels) // config.batch_size)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch
    )
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        total_loss = 0.0
        for start in range(0, len(labels), config.batch_size):
            index = order[start : start + config.batch_size]
            batch = random_shift(inputs[index], config.max_shift, generator)  # (B, 1, 8, 8)
            loss = F.cross_entropy(model(batch), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(index)
        if (epoch + 1) % 5 == 0 or epoch + 1 == config.epochs:
            report(f"epoch {epoch + 1}/{config.epochs}: loss {total_loss / len(labels):.4f}")
