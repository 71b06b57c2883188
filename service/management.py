"""Run-time changes to what is served: load, unload, the default model; each one persisted
(`service.model_store`) once it took effect. Both management APIs (Triton's repository
extension and `/models`) go through here."""

from __future__ import annotations

import asyncio

from service.config import ModelConfig, ServerConfig
from service.errors import ManagementUnavailable
from service.model_store import ManagedState, ModelStore, config_json
from service.repository import ModelHandle, ModelRepository, ModelState


class ModelManager:
    """Changes `repository` one at a time and records them in `store` (None: not kept).
    `refusal`: why changes asked through an API are refused (`ManagementUnavailable`, 409),
    e.g. several worker processes, each with models of its own, where such a change would reach
    one of them only (changes of a model repository directory reach every worker)."""

    def __init__(
        self, repository: ModelRepository, store: ModelStore | None, refusal: str | None = None
    ) -> None:
        self.repository = repository
        self.store = store
        self.refusal = refusal
        self._state = store.read() if store is not None else ManagedState()
        self._lock = asyncio.Lock()

    async def load(self, config: ModelConfig, *, record: bool = True) -> ModelHandle:
        """Load a version of `config.name` (see `ModelRepository.load`); a READY one is
        recorded with the model's other served versions (`record` false: not recorded, for
        changes whose source keeps them, such as a model repository directory)."""
        if record:
            self._check_allowed()
        async with self._lock:
            handle = await self.repository.load(config)
            if record and handle.state is ModelState.READY:
                self._record_model(config.name)
            return handle

    async def unload(self, name: str, version: str | None = None, *, record: bool = True) -> None:
        if record:
            self._check_allowed()
        async with self._lock:
            await self.repository.unload(name, version)
            if record:
                self._record_model(name)

    async def set_default(self, name: str) -> None:
        self._check_allowed()
        async with self._lock:
            self.repository.set_default(name)
            self._state.default = name
            self._save()

    def _check_allowed(self) -> None:
        if self.refusal is not None:
            raise ManagementUnavailable(self.refusal)

    def _record_model(self, name: str) -> None:
        if name in self.repository.names:
            served = self.repository.model(name).ordered()
            self._state.models[name] = [
                config_json(handle.config) for handle in served if handle.state is ModelState.READY
            ]
        else:
            self._state.models[name] = None
        self._save()

    def _save(self) -> None:
        if self.store is not None:
            self.store.write(self._state)


def management_refusal(server: ServerConfig) -> str | None:
    """Why this server setup cannot take model changes through an API, or None."""
    if server.workers > 1:
        return (
            f"models cannot be changed through the API with server.workers: {server.workers} "
            "(each worker process serves models of its own); run one worker, or use a model "
            "repository directory with poll_interval_s"
        )
    return None
