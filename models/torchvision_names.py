"""The zoo models with an exact torchvision counterpart (same layout, convertible weights).

Plain data with no imports: `scripts/make_torchvision_fixture.py` loads this file by path in a
torchvision venv, where the rest of `models` (pinned to this project's torch) is not imported.
"""

TORCHVISION_MODELS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "mobilenet_v2",
    "efficientnet_v2_s",
    "convnext_tiny",
)
