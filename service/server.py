"""Run the app under uvicorn (uvloop + httptools) with connection limits and a draining shutdown.

On SIGTERM / SIGINT: readiness turns false at once and every response carries
`Connection: close`; new connections are still accepted and answered for
`server.drain_delay_s` (so load balancers notice); then the listener closes and every request
whose bytes arrived is answered, for at most `server.shutdown_timeout_s`; the app lifespan then
stops gRPC and drains the batchers. The process exits 0. A second signal ends the drain delay
at once; a second SIGINT after it stops waiting for requests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import socket
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.config import RepositoryConfig
from service.http.listener import stop_new_handshakes, take_queued_connections
from service.http.protocol import ConnectionPolicy, LimitedHttpToolsProtocol
from service.http.tls import uvicorn_tls_options
from service.memory import return_large_buffers_to_the_os
from service.metrics import Metrics
from service.repository import ModelRepository, ModelState

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# How long the handshakes under way at shutdown get to complete (their clients' ACKs are at
# most a round trip away) before the queued connections are taken and the listener closes.
HANDSHAKE_GRACE_S = 0.2
log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining for a while before it closes the listener on a signal, and
    exiting normally afterwards (uvicorn re-raises a handled signal once shut down)."""

    def __init__(
        self, config: uvicorn.Config, app: FastAPI, policy: ConnectionPolicy, drain_delay_s: float
    ) -> None:
        super().__init__(config)
        self.app = app
        self.policy = policy
        self.drain_delay_s = drain_delay_s
        self.drain_started: float | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_started is None:
            self.drain_started = time.monotonic()
            # uvicorn calls this from a signal handler, between any two bytecodes of the loop's
            # thread: the connections are changed from the loop, between two callbacks.
            if self.loop is None:  # not serving yet: no connection to change
                self.begin_drain()
            else:
                self.loop.call_soon_threadsafe(self.begin_drain)
        elif self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    def begin_drain(self) -> None:
        log.info("draining: not ready; closing the listener in %g s", self.drain_delay_s)
        self.policy.draining = True
        serving = getattr(self.app.state, "serving", None)  # absent while the lifespan starts
        if serving is not None:
            serving.repository.drain()
        for connection in self.server_state.connections:
            if isinstance(connection, LimitedHttpToolsProtocol):
                connection.retire()

    async def shutdown(self, sockets: list | None = None) -> None:
        await self.adopt_queued_connections()
        await super().shutdown(sockets)

    async def adopt_queued_connections(self) -> None:
        """Serve the connections waiting in the listeners' queues, which closing them would
        reset (see `service.http.listener`)."""
        loop = asyncio.get_running_loop()
        listeners = [listener.fileno() for server in self.servers for listener in server.sockets]
        for listener in listeners:
            stop_new_handshakes(listener)
        await asyncio.sleep(HANDSHAKE_GRACE_S)
        queued = [
            connection for listener in listeners for connection in take_queued_connections(listener)
        ]
        if queued:
            log.info("serving %d connection(s) queued at the listener", len(queued))
        for connection in queued:
            await loop.connect_accepted_socket(self.new_protocol, connection, ssl=self.config.ssl)

    def new_protocol(self) -> asyncio.Protocol:
        # uvicorn types the class as a bare asyncio.Protocol; its HTTP protocols take these.
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )

    async def on_tick(self, counter: int) -> bool:
        if self.drain_started is not None:
            self.should_exit |= time.monotonic() - self.drain_started >= self.drain_delay_s
        return await super().on_tick(counter)


def build_server(
    config: RepositoryConfig,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    serve_after_loading: bool = False,
) -> DrainingServer:
    """The REST server (and, through the app lifespan, gRPC) for `config` on `host:port`;
    `serve_after_loading`: listen only once the models have loaded (`create_app`)."""
    server = config.server
    app = create_app(config, grpc_host=host, serve_after_loading=serve_after_loading)
    policy = ConnectionPolicy.from_config(server.http)
    # uvicorn's annotations are narrower than what it runs with: `http` may be any protocol
    # factory, and both timeouts only reach asyncio, which takes float seconds.
    uvicorn_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=functools.partial(LimitedHttpToolsProtocol, policy=policy),  # type: ignore[arg-type]
        lifespan="on",
        log_level=log_level,
        access_log=False,
        proxy_headers=False,  # nothing reads the client address; saves a layer per request
        timeout_keep_alive=server.http.keep_alive_timeout_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=server.shutdown_timeout_s,  # type: ignore[arg-type]
        **uvicorn_tls_options(server.tls),
    )
    return DrainingServer(uvicorn_config, app, policy, server.drain_delay_s)


def run(config: RepositoryConfig, host: str, port: int, *, log_level: str = "info") -> None:
    """Serve until SIGTERM/SIGINT, then drain and shut down (see the module docstring); with
    `server.workers` > 1, as that many processes on one port (`service.workers`)."""
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    if config.server.workers > 1:
        from service.workers import serve_workers

        status = serve_workers(config, host, port, log_level=log_level)
    else:
        status = 0 if serve_on(config, host, port, log_level=log_level) else 1
    if status:
        raise SystemExit(status)  # startup failed (port taken, lifespan error): the log says why


def serve_on(
    config: RepositoryConfig,
    host: str,
    port: int,
    *,
    log_level: str,
    sockets: list[socket.socket] | None = None,
) -> bool:
    """One server on `host:port` (or, as one of several workers, on the shared listening
    `sockets`, taken up once its models have loaded) until a signal; whether it started."""
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    return_large_buffers_to_the_os()
    worker = sockets is not None
    server = build_server(config, host, port, log_level=log_level, serve_after_loading=worker)
    server.run(sockets=sockets)
    return server.started


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
