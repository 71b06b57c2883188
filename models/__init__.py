"""blockserve models: blocks, specs, the zoo, weights and architecture summaries."""

from models import zoo  # noqa: F401  (registers the zoo's models)
from models.builder import build_network
from models.default_cfgs import DefaultCfg
from models.registry import create_model, list_models, model_default_cfg, model_spec, register_model
from models.spec import NetworkSpec
from models.summary import summarize
from models.weights import WeightsMismatchError, load_weights, save_weights

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
