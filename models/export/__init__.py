"""Export registry models to verified, cached TorchScript / ONNX artifact bundles."""

from models.export import onnx_export, torchscript  # noqa: F401  (registers the formats)
from models.export.bundle import Bundle, BundleError, load_bundle
from models.export.formats import FORMATS
from models.export.parity import ParityError
from models.export.pipeline import export_bundle
from models.export.quantize import Int8Calibration, QuantizationError

__all__ = [
    "FORMATS",
    "Bundle",
    "BundleError",
    "Int8Calibration",
    "ParityError",
    "QuantizationError",
    "export_bundle",
    "load_bundle",
]
