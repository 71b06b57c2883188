"""Per-model data: expected input size, normalisation, resize/crop and class labels.

Kept apart from the architecture code (`models.zoo`); `models.model_default_cfg(name)` reads it.
ImageNet entries follow torchvision's IMAGENET1K_V1 eval transforms
(crop_pct = crop_size / resize_size).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

__all__ = ["DEFAULT_CFGS", "DefaultCfg", "imagenet_labels", "spec_default_cfg"]


@dataclass(frozen=True)
class DefaultCfg:
    input_size: tuple[int, ...]  # (C, *spatial)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float
    interpolation: str
    num_classes: int
    labels: list[str] | None

    def __post_init__(self) -> None:
        channels = self.input_size[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"mean/std need {channels} values for input_size {self.input_size}")
        if self.labels is not None and len(self.labels) != self.num_classes:
            raise ValueError(f"{len(self.labels)} labels for {self.num_classes} classes")


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names, in class-index order."""
    text = resources.files("models").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return text.splitlines()


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_LABELS = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
DIGIT_LABELS = [str(digit) for digit in range(10)]


def _imagenet(size: int = 224, crop_pct: float = 0.875) -> DefaultCfg:
    return DefaultCfg(
        (3, size, size), IMAGENET_MEAN, IMAGENET_STD, crop_pct, "bilinear", 1000, imagenet_labels()
    )


_IMAGENET_224 = _imagenet()

DEFAULT_CFGS: dict[str, DefaultCfg] = {
    "resnet18": _IMAGENET_224,
    "resnet34": _IMAGENET_224,
    "resnet50": _IMAGENET_224,
    "resnet101": _IMAGENET_224,
    "resnet152": _IMAGENET_224,
    "resnext50_32x4d": _IMAGENET_224,
    "wide_resnet50_2": _IMAGENET_224,
    "preact_resnet18": _IMAGENET_224,
    "preact_resnet50": _IMAGENET_224,
    "mobilenet_v2": _IMAGENET_224,
    "efficientnet_v2_s": _imagenet(384, crop_pct=1.0),
    "convnext_tiny": _imagenet(224, crop_pct=224 / 236),
    # MDNC encoders: standardised signals / images, no fixed label set.
    "mdnc_encoder1d": DefaultCfg((1, 256), (0.0,), (1.0,), 1.0, "linear", 10, None),
    "mdnc_encoder2d": DefaultCfg((3, 64, 64), (0.5,) * 3, (0.5,) * 3, 1.0, "bilinear", 10, None),
    # CIFAR-10 statistics.
    "resnet_tiny": DefaultCfg(
        (3, 32, 32),
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        1.0,
        "bilinear",
        10,
        CIFAR10_LABELS,
    ),
    # sklearn digits: 8×8 images with values 0..16, scaled to [0, 1] then normalised.
    "resnet_digits": DefaultCfg((1, 8, 8), (0.5,), (0.5,), 1.0, "bilinear", 10, DIGIT_LABELS),
    # MNIST statistics.
    "resnet_mnist": DefaultCfg(
        (1, 28, 28), (0.1307,), (0.3081,), 1.0, "bilinear", 10, DIGIT_LABELS
    ),
}


# Inputs of a network given as a spec (no registry entry): spatial size per dimension count.
SPEC_INPUT_SPATIAL = {1: (256,), 2: (224, 224), 3: (16, 112, 112)}


def spec_default_cfg(in_chans: int, dims: int, num_classes: int) -> DefaultCfg:
    """The defaults of a network defined by its spec alone: pixels scaled to [-1, 1]
    (mean = std = 0.5), no crop margin, no labels; the input size is meant to be configured."""
    return DefaultCfg(
        (in_chans, *SPEC_INPUT_SPATIAL[dims]),
        (0.5,) * in_chans,
        (0.5,) * in_chans,
        1.0,
        "bilinear",
        num_classes,
        None,
    )
