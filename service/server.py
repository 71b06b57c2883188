"""Run the app under uvicorn (uvloop + httptools) with graceful shutdown.

On SIGTERM / SIGINT uvicorn stops accepting connections and waits for in-flight HTTP
requests (for `server.shutdown_timeout_s`, or as long as they take when unset); the app
lifespan then stops gRPC and drains the batchers, so every accepted request is answered.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from service.app import create_app
from service.config import RepositoryConfig
from service.metrics import Metrics
from service.repository import ModelRepository, ModelState

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def uvicorn_config(
    config: RepositoryConfig, host: str, port: int, *, log_level: str = "info"
) -> uvicorn.Config:
    app = create_app(config, grpc_host=host)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=config.server.shutdown_timeout_s,
    )


def run(config: RepositoryConfig, host: str, port: int, *, log_level: str = "info") -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully."""
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    server = uvicorn.Server(uvicorn_config(config, host, port, log_level=log_level))
    server.run()
    if not server.started:
        raise SystemExit(1)  # startup failed (port taken, lifespan error): uvicorn logged why


def prepare(config: RepositoryConfig) -> dict[str, tuple[ModelState, str | None]]:
    """Load every model once, as serving would (exporting its bundle into the cache), and
    return each model's final state and reason. Lets an image build ship ready bundles."""

    async def load() -> dict[str, tuple[ModelState, str | None]]:
        repository = ModelRepository(config, Metrics())
        repository.start()
        await repository.wait_loaded()
        states = {handle.name: (handle.state, handle.reason) for handle in repository.handles}
        await repository.close()
        return states

    return asyncio.run(load())
