"""What the management API changed, kept across restarts: one JSON file, written atomically.

The file holds, per model name changed at run time, the configs of its served versions (or
null: unloaded), and the default model. At start it is laid over the config file's models
(`overlay`): a name it lists is served as the file says, every other name as the config says.
A write goes to a private file that is flushed to disk and then renamed over the old one, so a
crash at any point leaves either the old or the new state, never a torn one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.files import atomic_path
from service.config import ConfigError, ModelConfig, RepositoryConfig

STATE_FILE = "models.json"
SCHEMA = 1


@dataclass
class ManagedState:
    """Run-time changes: `models[name]` is the served versions' configs (JSON), None when the
    model was unloaded; `default` the default model when it was changed."""

    models: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)
    default: str | None = None


class ModelStore:
    """The state file in `directory` (created when first written)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE

    def read(self) -> ManagedState:
        """The stored state; empty when nothing was stored yet. `ConfigError` naming the
        file when it cannot be read as one."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ManagedState()
        except (OSError, ValueError) as error:
            raise ConfigError(f"{self.path}: cannot read the stored model state: {error}") from None
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise ConfigError(f"{self.path}: not a blockserve model state (schema {SCHEMA})")
        return ManagedState(models=document.get("models", {}), default=document.get("default"))

    def write(self, state: ManagedState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(
            {"schema": SCHEMA, "default": state.default, "models": state.models}, indent=2
        )
        with atomic_path(self.path) as partial, open(partial, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself reaches the disk
        finally:
            os.close(directory)


def overlay(config: RepositoryConfig, state: ManagedState) -> RepositoryConfig:
    """`config` with the stored run-time changes applied."""
    changed = set(state.models)
    models = [model for model in config.models if model.name not in changed]
    for versions in state.models.values():
        models += [ModelConfig.model_validate(entry) for entry in versions or []]
    names = {model.name for model in models}
    default = state.default if state.default in names else config.server.default_model
    if default not in names:
        default = None
    server = config.server.model_copy(update={"default_model": default})
    return config.model_copy(update={"models": models, "server": server})


def config_json(config: ModelConfig) -> dict[str, Any]:
    """A model config as stored: JSON values, unset fields left out."""
    return config.model_dump(mode="json", exclude_unset=True) | {"version": config.version}
