"""Export registry models to verified, cached TorchScript / ONNX artifact bundles."""

from typing import TYPE_CHECKING

from models.export.bundle import Bundle, BundleError, load_bundle
from models.export.precision import (
    PRECISIONS,
    Precision,
    PrecisionError,
    ReducedPrecision,
    precision_format_problem,
)
from models.lazy import lazy_attributes

if TYPE_CHECKING:
    from models.export.formats import FORMATS
    from models.export.parity import ParityError
    from models.export.pipeline import export_bundle

# Exporting needs torch (and onnx), imported on first use: reading bundles does not.
__getattr__ = lazy_attributes(
    __name__,
    {
        "FORMATS": "models.export.formats",
        "ParityError": "models.export.parity",
        "export_bundle": "models.export.pipeline",
    },
    first=("models.export.onnx_export", "models.export.torchscript"),  # register the formats
)

__all__ = [
    "FORMATS",
    "PRECISIONS",
    "Bundle",
    "BundleError",
    "ParityError",
    "Precision",
    "PrecisionError",
    "ReducedPrecision",
    "export_bundle",
    "load_bundle",
    "precision_format_problem",
]
