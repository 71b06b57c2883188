"""blockserve models: blocks, specs, the zoo, weights and architecture summaries."""

from typing import TYPE_CHECKING

from models import zoo  # noqa: F401  (registers the zoo's models)
from models.default_cfgs import DefaultCfg
from models.lazy import lazy_attributes
from models.registry import create_model, list_models, model_default_cfg, model_spec, register_model
from models.spec import NetworkSpec

if TYPE_CHECKING:
    from models.builder import build_network
    from models.summary import summarize
    from models.weights import WeightsMismatchError, load_weights, save_weights

# These need torch, imported on first use.
__getattr__ = lazy_attributes(
    __name__,
    {
        "build_network": "models.builder",
        "summarize": "models.summary",
        "WeightsMismatchError": "models.weights",
        "load_weights": "models.weights",
        "save_weights": "models.weights",
    },
)

__all__ = [
    "DefaultCfg",
    "NetworkSpec",
    "WeightsMismatchError",
    "build_network",
    "create_model",
    "list_models",
    "load_weights",
    "model_default_cfg",
    "model_spec",
    "register_model",
    "save_weights",
    "summarize",
]
