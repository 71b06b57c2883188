"""A model repository directory filled by hand, Triton-style (`server.model_repository`).

    <path>/<model>/config.yaml                 the model's config, without `name` or `version`
    <path>/<model>/<N>/weights.safetensors     version N's weights (N = 1, 2, ...)
    <path>/<model>/<N>/config.yaml             optional: fields version N changes

The directory's name is the model's name. A version's config is the model's config.yaml with
its own config.yaml laid over it (mappings merged field by field); a `weights.safetensors` in
the version directory is its weights unless that config.yaml sets `weights`. A model directory
without numbered subdirectories is version 1, its own files being that version's. Relative
paths resolve against the directory of the file that names them. The model's `version_policy`
picks which versions are served (default: the latest). Hidden entries and non-numbered
subdirectories are ignored.

At start the directory's models join the config file's; a name in both is the directory's.
A model directory that cannot be read is shown as a FAILED model whose reason names the file.
With `poll_interval_s > 0` the directory is rescanned and what changed (a config, the size or
modification time of a weights file, a version or model directory added or removed) is
loaded, reloaded or unloaded through the `ModelManager`, without recording it in the run-time
state: the directory keeps it. A reload that fails leaves the served versions serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.config import (
    MODEL_NAME_PATTERN,
    ConfigError,
    ModelConfig,
    ModelRepositoryDir,
    RepositoryConfig,
    expand_path,
    read_yaml,
    validation_problems,
)
from service.errors import ModelNotFound, ModelVersionNotFound
from service.management import ModelManager
from service.repository import ModelState

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "weights.safetensors"
PATH_FIELDS = ("weights", "labels")  # model config fields that may name a file
FIELDS_THE_DIRECTORY_SETS = ("name", "version")


@dataclass(frozen=True)
class DirectoryVersion:
    """One version as the directory defines it; a change of either field reloads it."""

    config: ModelConfig
    weights_stamp: tuple[int, int] | None  # (size, mtime_ns) of the weights file, if any


@dataclass(frozen=True)
class DirectoryModel:
    """A model directory: the versions its policy serves, or why it cannot be read."""

    name: str
    versions: dict[int, DirectoryVersion] = field(default_factory=dict)
    error: str | None = None


def scan(root: Path) -> dict[str, DirectoryModel]:
    """Every model directory under `root`, by name. `ConfigError` when `root` itself
    cannot be listed."""
    try:
        entries = sorted(root.iterdir())
    except OSError as error:
        raise ConfigError(f"{root}: cannot read the model repository: {error.strerror}") from None
    return {
        entry.name: read_model(entry)
        for entry in entries
        if entry.is_dir() and not entry.name.startswith(".")
    }


def read_model(directory: Path) -> DirectoryModel:
    """The model in `directory`; a problem gives a model with `error` naming the file."""
    name = directory.name
    if re.fullmatch(MODEL_NAME_PATTERN, name) is None:
        return DirectoryModel(
            name,
            error=f"{name}: not a model name (letters, digits, '_', '.', '-'; "
            "a letter or digit first)",
        )
    try:
        return DirectoryModel(name, _read_versions(directory))
    except ConfigError as error:
        return DirectoryModel(name, error=str(error))


def _read_versions(directory: Path) -> dict[int, DirectoryVersion]:
    """The versions the model's policy serves (`ConfigError` naming the file)."""
    root = directory.parent
    model_file = directory / CONFIG_FILE
    model_fields = _read_fields(model_file, root)
    numbered = {
        int(entry.name): entry
        for entry in directory.iterdir()
        if entry.is_dir() and entry.name.isdigit() and int(entry.name) > 0
    }
    if numbered:
        versions = {
            number: _read_version(directory.name, number, version_dir, model_fields, root)
            for number, version_dir in sorted(numbered.items())
        }
    else:  # the model directory is version 1: its config.yaml is the version's own
        versions = {1: _read_version(directory.name, 1, directory, {}, root)}
    policy = versions[max(versions)].config.version_policy
    selected = policy.selects(list(versions))
    if not selected:
        versions_found = ", ".join(map(str, versions))
        raise ConfigError(
            f"{model_file.relative_to(root)}: version_policy selects none of the versions "
            f"{versions_found}"
        )
    return {number: versions[number] for number in sorted(selected)}


def _read_version(
    name: str, number: int, version_dir: Path, inherited: dict[str, Any], root: Path
) -> DirectoryVersion:
    """Version `number` from `version_dir`: its config.yaml laid over `inherited`."""
    own_file = version_dir / CONFIG_FILE
    own = _read_fields(own_file, root) if own_file.is_file() else {}
    fields = _merged(inherited, own)
    weights_file = version_dir / WEIGHTS_FILE
    if "weights" not in own and weights_file.is_file():
        fields["weights"] = str(weights_file)
    files = [version_dir.parent / CONFIG_FILE] if inherited else []
    files += [own_file] if own_file.is_file() else []
    try:
        config = ModelConfig.model_validate({**fields, "name": name, "version": number})
    except ValidationError as error:
        where = " + ".join(str(path.relative_to(root)) for path in files)
        problems = "; ".join(validation_problems(error, fields))
        raise ConfigError(f"{where}: {problems}") from None
    return DirectoryVersion(config, _stamp(config.weights))


def _read_fields(path: Path, root: Path) -> dict[str, Any]:
    """A config.yaml's fields, with the paths it names made absolute against its directory."""
    where = path.relative_to(root)
    if not path.exists():
        raise ConfigError(f"{where}: missing (every model directory has one)")
    data = read_yaml(path, where)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of model config fields")
    for name in FIELDS_THE_DIRECTORY_SETS:
        if name in data:
            raise ConfigError(f"{where}: {name}: leave it out, the directory sets it")
    for name in PATH_FIELDS:
        if isinstance(data.get(name), str):
            try:
                data[name] = str(expand_path(data[name], path.parent))
            except ValueError as error:
                raise ConfigError(f"{where}: {name}: {error}") from None
    return data


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` laid over `base`; mappings in both are merged the same way."""
    merged = dict(base)
    for key, value in over.items():
        below = base.get(key)
        both_mappings = isinstance(value, dict) and isinstance(below, dict)
        merged[key] = _merged(below, value) if both_mappings else value  # type: ignore[arg-type]
    return merged


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        status = path.stat() if path is not None else None
    except OSError:
        return None
    return (status.st_size, status.st_mtime_ns) if status is not None else None


def join(config: RepositoryConfig, models: dict[str, DirectoryModel]) -> RepositoryConfig:
    """`config` serving the directory's `models` too; a name in both is the directory's
    (unless its directory cannot be read). `ConfigError` when nothing is left to serve."""
    readable = {name for name, model in models.items() if model.error is None}
    replaced = sorted({entry.name for entry in config.models} & readable)
    if replaced:
        log.warning("model repository directory replaces config file models: %s", replaced)
    served = [entry for entry in config.models if entry.name not in readable]
    for model in models.values():
        served += [version.config for version in model.versions.values()]
    names = list(dict.fromkeys(entry.name for entry in served))
    names += [name for name, model in models.items() if name not in readable | set(names)]
    if not names:
        raise ConfigError("no models: none in the config file nor in the model repository")
    default = config.server.default_model or next((m.name for m in config.models), names[0])
    if default not in names:
        raise ConfigError(f"server.default_model {default!r} is not one of the models {names}")
    server = config.server.model_copy(update={"default_model": default})
    return config.model_copy(update={"models": served, "server": server})


class ModelDirectory:
    """The model repository directory of `settings`: read at start (`join`), then shown
    (`start`) and, in poll mode, followed until `stop`."""

    def __init__(self, settings: ModelRepositoryDir) -> None:
        self.settings = settings
        self._seen: dict[str, DirectoryModel] = {}
        self._polling: asyncio.Task[None] | None = None

    @property
    def root(self) -> Path:
        return self.settings.path

    def join(self, config: RepositoryConfig) -> RepositoryConfig:
        """`config` with the directory's models (none when the directory cannot be read:
        logged, and picked up by polling once it can)."""
        try:
            self._seen = scan(self.root)
        except ConfigError as error:
            log.error("%s", error)
        return join(config, self._seen)

    def start(self, manager: ModelManager) -> None:
        """Show the unreadable model directories as FAILED; poll when configured."""
        for model in self._seen.values():
            if model.error is not None:
                self._report(manager, model)
        if self.settings.poll_interval_s > 0:
            self._polling = asyncio.get_running_loop().create_task(
                self._poll(manager), name="model-directory-poll"
            )

    async def stop(self) -> None:
        if self._polling is not None:
            self._polling.cancel()
            await asyncio.gather(self._polling, return_exceptions=True)
            self._polling = None

    async def _poll(self, manager: ModelManager) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.step(manager)
            except ConfigError as error:
                log.error("%s", error)
            except Exception:
                log.exception("model repository %s: applying its changes failed", self.root)

    async def step(self, manager: ModelManager) -> None:
        """Rescan once and apply what changed since the last scan."""
        models = await asyncio.to_thread(scan, self.root)
        for name in [name for name in self._seen if name not in models]:
            await self._remove(manager, name)
        for name, model in models.items():
            if self._seen.get(name) != model:
                await self._apply(manager, model)
            self._seen[name] = model

    async def _apply(self, manager: ModelManager, model: DirectoryModel) -> None:
        if model.error is not None:
            self._report(manager, model)
            return
        before = self._seen.get(model.name)
        for number, version in model.versions.items():
            if before is None or before.versions.get(number) != version:
                log.info("model repository: loading %s version %d", model.name, number)
                handle = await manager.load(version.config, record=False)
                if handle.state is not ModelState.READY:
                    log.warning("model %s version %d: %s", model.name, number, handle.reason)
        await self._retire_other_versions(manager, model)

    async def _retire_other_versions(self, manager: ModelManager, model: DirectoryModel) -> None:
        """Unload the served versions the directory no longer lists, once one it lists is
        READY (so a failed reload leaves the old ones serving)."""
        repository = manager.repository
        if model.name not in repository.names:
            return
        served = repository.model(model.name).versions
        listed = {str(number) for number in model.versions}
        if not any(served[v].state is ModelState.READY for v in listed if v in served):
            return
        for version in [version for version in served if version not in listed]:
            await self._unload(manager, model.name, version)

    async def _remove(self, manager: ModelManager, name: str) -> None:
        del self._seen[name]
        log.info("model repository: %s was removed, unloading it", name)
        await self._unload(manager, name, None)

    @staticmethod
    async def _unload(manager: ModelManager, name: str, version: str | None) -> None:
        with contextlib.suppress(ModelNotFound, ModelVersionNotFound):  # unloaded meanwhile
            await manager.unload(name, version, record=False)

    @staticmethod
    def _report(manager: ModelManager, model: DirectoryModel) -> None:
        """A model directory that cannot be read: FAILED with its reason when not served,
        else its served versions stay and the reason is its last error."""
        log.error("model repository: %s", model.error)
        repository = manager.repository
        if model.name in repository.names:
            repository.model(model.name).last_error = model.error
        else:
            repository.add_failed(model.name, model.error or "")
