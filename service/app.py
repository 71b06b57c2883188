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
from typing import TypedDict

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from service.auth import require_read, resolve_authenticator
from service.budget import ByteBudget
from service.config import RepositoryConfig, blockserve_version, load_config
from service.errors import InternalError, ServingError
from service.fastpath import openapi
from service.fastpath.exchange import Receive, Scope, Send
from service.fastpath.routes import FAST_ROUTES, match, respond
from service.imaging import decode_pool
from service.management import ModelManager, management_refusal
from service.metrics import Metrics
from service.model_directory import ModelDirectory
from service.model_store import ModelStore, overlay
from service.offload import Offloader
from service.repository import Loader, ModelRepository, load_model
from service.routers import health, metrics, models, ui, v2
from service.routers import repository as repository_extension
from service.routers.responses import OrjsonResponse, error_response
from service.serving import Serving

log = logging.getLogger(__name__)

ROUTERS = (
    models.router,
    health.router,
    v2.router,
    repository_extension.router,
    metrics.router,
    ui.router,
    ui.page_router,
)
# Open to every client: load balancers and orchestrators probe these without a token, and a
# browser opening the page sends none.
PROBE_ROUTERS = (health.router, ui.page_router)


class BlockserveApp(FastAPI):
    """FastAPI with the hot routes (`service.fastpath`) answered before its middleware and
    routing: a POST to one of them goes straight to its handler."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = match(scope["path"])
            if route is not None:
                scope["app"] = self
                fast_route, params = route
                await respond(fast_route.handler, self.state.serving, scope, receive, send, params)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict:
        if self.openapi_schema is None:
            self.openapi_schema = openapi.complete(super().openapi())
        return self.openapi_schema


def create_app(
    config: RepositoryConfig | None = None,
    *,
    loader: Loader = load_model,
    grpc_host: str = "127.0.0.1",
    serve_after_loading: bool = False,
) -> FastAPI:
    """The blockserve app for `config` (default: `load_config()`); `loader` builds models.
    With `serve_after_loading` (a worker sharing its ports with others) the lifespan's startup,
    and so listening, waits until the configured models have loaded, so that a replacement
    worker takes no connection it would answer 503 LOADING while the others serve."""
    config = config or load_config()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from service.grpc import start_grpc_server, stop_grpc_server

        registry = Metrics()
        store = ModelStore(config.server.state_dir) if config.server.state_dir else None
        served = overlay(config, store.read()) if store is not None else config
        folder = config.server.model_repository
        directory = ModelDirectory(folder) if folder is not None else None
        if directory is not None:
            served = directory.join(served)
        repository = ModelRepository(served, registry, loader=loader)
        pool = decode_pool(config.server.decode_threads, config.server.decode_niceness)
        server = config.server
        decoder = Offloader(
            pool, server.decode_threads, server.limits.max_decode_backlog, server.retry_after_s
        )
        manager = ModelManager(repository, store, management_refusal(config.server))
        app.state.auth = resolve_authenticator(config.server)
        bodies = ByteBudget(server.limits.max_inflight_body_bytes, server.retry_after_s)
        app.state.serving = Serving(config, repository, registry, decoder, bodies, manager)
        if serve_after_loading:
            repository.start()
            await repository.wait_loaded()
        # Otherwise gRPC binds first: a taken port fails startup before any model loads.
        grpc_server = await start_grpc_server(
            repository, config.server, grpc_host, decoder, manager=manager, auth=app.state.auth
        )
        if not serve_after_loading:
            repository.start()
        if directory is not None:
            directory.start(manager)
        try:
            yield
        finally:
            log.info("shutting down: draining gRPC calls and queued requests")
            if directory is not None:
                await directory.stop()
            await stop_grpc_server(grpc_server, config.server.shutdown_timeout_s)
            await repository.close()
            pool.shutdown(wait=True)

    app = BlockserveApp(
        title="blockserve",
        summary="Dynamic-batching inference for residual-block CNNs",
        version=blockserve_version(),
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        **_docs_urls(config.server.docs_enabled),
    )
    for router in ROUTERS:
        reads = [] if router in PROBE_ROUTERS else [Depends(require_read)]
        app.include_router(router, dependencies=reads)
    app.mount(ui.STATIC_PATH, ui.static_files())
    for route in FAST_ROUTES:
        # Starlette serves an endpoint that is not a function as an ASGI app, as `route` is;
        # `add_route` declares only the request -> response function kind.
        app.router.add_route(
            route.path,
            route,  # type: ignore[arg-type]
            methods=["POST"],
            include_in_schema=False,
        )
    _install_error_handlers(app)
    return app


class _DocsUrls(TypedDict, total=False):
    docs_url: str | None
    redoc_url: str | None
    openapi_url: str | None


def _docs_urls(enabled: bool) -> _DocsUrls:
    """FastAPI's `/docs`, `/redoc` and `/openapi.json`, or none of them."""
    if enabled:
        return {}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


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
        return error_response(InternalError())
