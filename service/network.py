"""The network a model config describes: a registry model (`arch`) or a whole `NetworkSpec` given
as data (`spec`), either with `overrides`; checked before anything is exported or loaded, every
problem named by its config field (`arch`, `overrides`, `spec.stages[0].depth`, `labels`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from models import model_default_cfg, model_spec
from models.default_cfgs import DefaultCfg, spec_default_cfg
from models.preprocessing import check_labels
from models.spec import NetworkSpec, SpecError
from service.config import ModelConfig
from service.errors import ExportUnavailable
from service.imaging.preprocess import export_input_size


class ModelConfigError(ValueError):
    """A model config whose network cannot be made; the message starts with the field."""


@dataclass(frozen=True)
class ModelNetwork:
    spec: NetworkSpec
    default: DefaultCfg  # the defaults preprocessing and labels resolve against
    input_size: tuple[int, int, int]  # (C, H, W) the model is exported and served at


def network_of(config: ModelConfig) -> ModelNetwork:
    """The spec, defaults and input size of `config`'s network (`ModelConfigError` naming the
    field). Component names inside the spec are checked by `parameter_shapes`."""
    if config.spec is not None:
        spec = _given_spec(config.spec)
        try:
            spec = spec.with_overrides(**config.overrides)
        except (TypeError, ValueError) as error:
            raise ModelConfigError(f"overrides: {error}") from None
        default = spec_default_cfg(spec.in_chans, spec.dims, spec.num_classes)
        dims_field = "spec.dims"
    else:
        assert config.arch is not None  # ModelConfig requires arch or spec
        spec = _registry_spec(config.arch, config)
        default = model_default_cfg(config.arch)
        dims_field = "arch"
    if config.labels is not None:
        try:
            check_labels(config.labels, spec.num_classes)
        except ValueError as error:
            raise ModelConfigError(f"labels: {error}") from None
    try:
        input_size = export_input_size(config.preprocess, default, spec.in_chans)
    except ValueError as error:
        raise ModelConfigError(f"{dims_field}: served models take images: {error}") from None
    return ModelNetwork(spec, default, input_size)


def parameter_shapes(config: ModelConfig, spec: NetworkSpec) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in the state dict of `config`'s network `spec`, from a build
    on the meta device (no memory is allocated); `ModelConfigError` for a spec that does not
    build (an unknown block, a bad block argument)."""
    try:
        import torch

        from models.builder import build_network
    except ImportError as error:
        raise ExportUnavailable(config.name, "its network built") from error
    try:
        with torch.device("meta"):
            model = build_network(spec)
    except (TypeError, ValueError) as error:
        field = "spec." if config.spec is not None else "overrides: "
        raise ModelConfigError(f"{field}{error}") from None
    return {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}


def _given_spec(data: dict) -> NetworkSpec:
    try:
        return NetworkSpec.from_dict(copy.deepcopy(data))
    except SpecError as error:
        raise ModelConfigError(f"spec.{error}") from None
    except (TypeError, ValueError) as error:
        raise ModelConfigError(f"spec: {error}") from None


def _registry_spec(arch: str, config: ModelConfig) -> NetworkSpec:
    try:
        return model_spec(arch, **config.overrides)
    except KeyError as error:
        raise ModelConfigError(f"arch: {error.args[0]}") from None
    except (TypeError, ValueError) as error:
        raise ModelConfigError(f"overrides: {error}") from None
