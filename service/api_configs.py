"""Model configs sent to the management API (`/models`): validated as an entry under `models:`
is, each problem named `models.<name>.<field>`, and the configs of new versions derived from a
served one (a PATCH, uploaded weights).

Paths in a request are taken literally: `${VAR}` and `~` are expanded in config files only, so
a request cannot read the server's environment through an error message, and `labels` is a list
(a labels file is read from a config file only).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from service.config import ModelConfig, validation_problems
from service.errors import InvalidInput, quoted
from service.network import ModelConfigError, network_of, parameter_shapes

# What PATCH changes; anything else is a new config (PUT).
PATCHABLE = ("instances", "batching", "top_k", "labels")


def model_config(name: str, data: Any) -> ModelConfig:
    """`data` (a request's JSON) as the config of model `name`; `InvalidInput` naming every
    bad field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"models.{name}: expected a JSON object (a model config), got {data!r}")
    if data.get("name", name) != name:
        raise InvalidInput(f"models.{name}.name: {data['name']!r} is not the name in the path")
    _check_literal(name, data)
    data = {**data, "name": name}
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as error:
        problems = validation_problems(error, data)
        raise InvalidInput("; ".join(_field_named(name, problem) for problem in problems)) from None


def patched(base: ModelConfig, changes: Any) -> ModelConfig:
    """`base` with `changes` (a PATCH body: `PATCHABLE` fields; `batching` merges into the
    current batching) as a new version."""
    name = base.name
    if not isinstance(changes, dict) or not changes:
        raise InvalidInput(f"PATCH takes a JSON object with some of {', '.join(PATCHABLE)}")
    refused = [key for key in changes if key not in PATCHABLE]
    if refused:
        raise InvalidInput(
            f"models.{name}.{refused[0]}: PATCH changes {', '.join(PATCHABLE)} only; "
            f"PUT /models/{name} replaces the whole config"
        )
    data = _as_request(base)
    batching = changes.get("batching")
    if isinstance(batching, dict):
        changes = {**changes, "batching": {**base.batching.model_dump(), **batching}}
    return model_config(name, {**data, **changes})


def with_weights(base: ModelConfig, weights: str) -> ModelConfig:
    """`base` serving the weights file `weights` (no recipe) as a new version."""
    data = {**_as_request(base), "weights": weights}
    data.pop("weights_recipe", None)
    return model_config(base.name, data)


def checked_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Check `config`'s network (arch or spec, overrides, labels, input size) without loading
    anything, and return its parameters' shapes; `InvalidInput` naming the field. Blocking:
    builds the network on the meta device."""
    try:
        network = network_of(config)
        return parameter_shapes(config, network.spec)
    except ModelConfigError as error:
        raise InvalidInput(f"models.{config.name}.{error}") from None


def _field_named(name: str, problem: str) -> str:
    """`batching.max_queue: ...` -> `models.<name>.batching.max_queue: ...` (a problem of the
    whole entry, `<root>: ...`, -> `models.<name>: ...`)."""
    root = "<root>: "
    if problem.startswith(root):
        return f"models.{name}: {problem.removeprefix(root)}"
    return f"models.{name}.{problem}"


def _as_request(config: ModelConfig) -> dict[str, Any]:
    """`config` as a request would send it: JSON values, unset fields and the version left out
    (a derived config is the next version)."""
    data = config.model_dump(mode="json", exclude_unset=True)
    data.pop("version", None)
    return data


def _check_literal(name: str, data: dict[str, Any]) -> None:
    weights = data.get("weights")
    if isinstance(weights, str) and (
        "${" in weights or weights.startswith("~") or not weights.startswith("/")
    ):
        raise InvalidInput(
            f"models.{name}.weights: {quoted(weights)} is not an absolute path on the server "
            f"(${{VAR}} and ~ are expanded in config files only); or upload the file: "
            f"PUT /models/{name}/weights"
        )
    if isinstance(data.get("labels"), str):
        raise InvalidInput(f"models.{name}.labels: give a list of labels (files: config only)")
