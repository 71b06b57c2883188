"""The FastAPI application factory; its lifespan owns the repository, pools and gRPC server.

Startup starts the gRPC server on the same loop and repository (so a taken port fails before
any model loads), then loads every model in the background (liveness is immediate, readiness
waits for the default model). Shutdown
stops gRPC (in-flight calls finish), then drains every batcher: every accepted request is
answered. uvicorn has already stopped accepting HTTP and finished in-flight HTTP requests by
the time the lifespan shuts down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from service.config import RepositoryConfig, blockserve_version, load_config
from service.errors import ServingError
from service.imaging import decode_pool
from service.metrics import Metrics
from service.repository import Loader, ModelRepository, load_model
from service.routers import health, metrics, models, predict, v2
from service.routers.common import OrjsonResponse, Serving, error_response

log = logging.getLogger(__name__)

ROUTERS = (predict.router, models.router, health.router, v2.router, metrics.router)


def create_app(
    config: RepositoryConfig | None = None,
    *,
    loader: Loader = load_model,
    grpc_host: str = "127.0.0.1",
) -> FastAPI:
    """The blockserve app for `config` (default: `load_config()`); `loader` builds models."""
    config = config or load_config()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from service.grpc import start_grpc_server, stop_grpc_server

        registry = Metrics()
        repository = ModelRepository(config, registry, loader=loader)
        # Bind gRPC first: a taken port fails startup before any model starts loading.
        grpc_server = await start_grpc_server(repository, config.server.grpc, grpc_host)
        pool = decode_pool(config.server.decode_threads, config.server.decode_niceness)
        app.state.serving = Serving(config, repository, registry, pool)
        repository.start()
        try:
            yield
        finally:
            log.info("shutting down: draining gRPC calls and queued requests")
            await stop_grpc_server(grpc_server, config.server.shutdown_timeout_s)
            await repository.close()
            pool.shutdown(wait=True)

    app = FastAPI(
        title="blockserve",
        summary="Dynamic-batching inference for residual-block CNNs",
        version=blockserve_version(),
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    for router in ROUTERS:
        app.include_router(router)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServingError)
    async def serving_error(request: Request, error: ServingError) -> OrjsonResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> OrjsonResponse:
        problems = [
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        ]
        return OrjsonResponse({"error": "; ".join(problems)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> OrjsonResponse:
        return OrjsonResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> OrjsonResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return OrjsonResponse(
            {"error": f"internal error: {type(error).__name__}: {error}"}, status_code=500
        )
