"""Triton's model repository extension, shared by REST and gRPC: the index of the served and
unloaded models, and loads and unloads made through the `ModelManager`.

A load takes its config from the `config` parameter (a JSON blockserve model config: the
fields of an entry under `models:`; the model's name is the one the request loads), else
reloads the model's current config (its highest version), else its entry in the config file.
A load that ends FAILED is an error carrying the reason; the versions already served stay.
"""

from __future__ import annotations

import json
from typing import Any

from service.api_configs import model_config
from service.config import ModelConfig
from service.errors import InvalidInput, ModelNotFound
from service.management import ModelManager
from service.repository import ModelHandle, ModelRepository, ModelState

CONFIG_PARAMETER = "config"
UNLOAD_DEPENDENTS = "unload_dependents"  # accepted: blockserve models have no dependents
# Triton's index speaks its own states: a model that failed to load is UNAVAILABLE.
TRITON_STATES = {ModelState.FAILED: ModelState.UNAVAILABLE}


def repository_index(repository: ModelRepository, ready_only: bool) -> list[dict[str, str]]:
    """One entry per served version (`name`, `version`, `state`, `reason`), and one per
    unloaded model (no `version`), ordered by name and version; READY ones only when
    `ready_only`."""
    entries = [
        {
            "name": handle.name,
            "version": handle.version,
            "state": str(TRITON_STATES.get(handle.state, handle.state)),
            "reason": handle.reason or "",
        }
        for handle in repository.handles
    ]
    entries += [
        {"name": name, "state": str(ModelState.UNAVAILABLE), "reason": reason}
        for name, reason in repository.unloaded.items()
    ]
    if ready_only:
        entries = [entry for entry in entries if entry["state"] == ModelState.READY]
    return sorted(entries, key=lambda entry: (entry["name"], int(entry.get("version", 0))))


async def load_model(manager: ModelManager, name: str, config_text: str | None) -> ModelHandle:
    """Load model `name` from `config_text` (None: reload it) and wait until it serves;
    `InvalidInput` with the reason when the load fails."""
    config = _config_to_load(manager.repository, name, config_text)
    handle = await manager.load(config)
    if handle.state is not ModelState.READY:
        raise InvalidInput(handle.load_failure)
    return handle


async def unload_model(manager: ModelManager, name: str) -> None:
    """Stop serving every version of model `name` (`ModelNotFound` when it is not served)."""
    await manager.unload(name)


def _config_to_load(repository: ModelRepository, name: str, config_text: str | None) -> ModelConfig:
    if config_text is not None:
        return _parse_config(name, config_text)
    if name in repository.names:
        return repository.model(name).ordered()[-1].config
    if any(entry.name == name for entry in repository.config.models):
        return repository.config.model(name)
    raise ModelNotFound(name, repository.names)


def _parse_config(name: str, text: str) -> ModelConfig:
    """The model config in `text` (JSON), validated as the `/models` API does (paths taken
    literally; `InvalidInput` naming each bad field)."""
    try:
        data: Any = json.loads(text)
    except ValueError as error:
        raise InvalidInput(f"parameter {CONFIG_PARAMETER!r} is not valid JSON: {error}") from None
    return model_config(name, data)
