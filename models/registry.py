"""Model registry: `@register_model` zoo functions, looked up by name.

A registered function takes no arguments and returns the model's base `NetworkSpec`; the
decorator returns a wrapper ``fn(**overrides) -> NetworkSpec`` that applies overrides
(`NetworkSpec.with_overrides`). The model name is the function name. Importing the `models`
package registers the zoo (`models.zoo`).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from models.default_cfgs import DEFAULT_CFGS, DefaultCfg
from models.spec import NetworkSpec

if TYPE_CHECKING:
    from torch import nn

__all__ = ["create_model", "list_models", "model_default_cfg", "model_spec", "register_model"]

SpecFn = Callable[..., NetworkSpec]

_MODELS: dict[str, SpecFn] = {}


def register_model(fn: Callable[[], NetworkSpec]) -> SpecFn:
    """Register `fn` (no arguments → base NetworkSpec) under its function name."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")

    @functools.wraps(fn)
    def spec_fn(**overrides: Any) -> NetworkSpec:
        return fn().with_overrides(**overrides)

    _MODELS[name] = spec_fn
    return spec_fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching the fnmatch `pattern`."""
    return sorted(fnmatch.filter(_MODELS, pattern))


def model_spec(name: str, **overrides: Any) -> NetworkSpec:
    """The NetworkSpec of model `name` with `overrides` applied."""
    return _lookup(name)(**overrides)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build model `name`; overrides: `num_classes`, `in_chans`, any spec field (see spec)."""
    from models.builder import build_network  # torch: specs and defaults are read without it

    return build_network(model_spec(name, **overrides))


def model_default_cfg(name: str) -> DefaultCfg:
    """Input size, normalisation, crop and labels model `name` expects."""
    _lookup(name)
    if name not in DEFAULT_CFGS:
        raise KeyError(f"model {name!r} has no entry in models.default_cfgs.DEFAULT_CFGS")
    return DEFAULT_CFGS[name]


def _lookup(name: str) -> SpecFn:
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown model {name!r}{hint} (list_models() shows all)")
    return _MODELS[name]
