"""Several serving processes on one port (`server.workers`).

Each worker is a whole server: its own event loop, models, batchers and runtimes. They share
the listening socket (the kernel hands each new connection to one of them) and, for gRPC, the
port (SO_REUSEPORT). Models are not shared between processes: a request's tensors would have to
cross processes, and a shared batcher would be a process of its own in front of the engine,
which costs more per request than the small models that need several workers compute. For
those, the HTTP work per request, not the engine, fills a core; a second worker uses the other.
A large model is better served by one worker whose engine uses every core.

The parent only supervises: it forwards SIGTERM / SIGINT to every worker (each drains as one
server would), starts a new worker in place of one that died unexpectedly, and exits 0 once
every worker has exited 0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from multiprocessing.process import BaseProcess
from types import FrameType

from service.config import RepositoryConfig

log = logging.getLogger(__name__)

RESTART_CHECK_S = 0.5  # how often the parent looks for a dead worker
PR_SET_PDEATHSIG = 1  # Linux prctl option


def serve_workers(config: RepositoryConfig, host: str, port: int, *, log_level: str) -> int:
    """Run `config.server.workers` servers on `host:port` until a signal; their exit status."""
    listener = socket.create_server((host, port), backlog=2048)
    context = multiprocessing.get_context("spawn")

    def start(index: int) -> BaseProcess:
        worker = context.Process(
            target=_serve_one,
            args=(config, listener, host, port, log_level),
            name=f"blockserve-worker-{index}",
        )
        worker.start()
        return worker

    workers = [start(index) for index in range(config.server.workers)]
    stopping = False
    forwarded: set[int] = set()

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        forwarded.add(signum)
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("serving with %d workers on %s:%d", len(workers), host, port)
    while not stopping:
        multiprocessing.connection.wait([w.sentinel for w in workers], RESTART_CHECK_S)
        for index, worker in enumerate(workers):
            if not stopping and not worker.is_alive():
                log.error("worker %d exited with %s; starting another", index, worker.exitcode)
                workers[index] = start(index)
    for worker in workers:
        worker.join()
    listener.close()
    # A worker the forwarded signal ended by its default action had not started serving yet
    # (the server installs its handlers before it listens): nothing was lost.
    clean = {0, *(-signum for signum in forwarded)}
    return 0 if all(worker.exitcode in clean for worker in workers) else 1


def _serve_one(
    config: RepositoryConfig, listener: socket.socket, host: str, port: int, log_level: str
) -> None:
    from service.server import serve_on

    _stop_with_parent()
    if not serve_on(config, host, port, log_level=log_level, sockets=[listener]):
        raise SystemExit(1)


def _stop_with_parent() -> None:
    """SIGTERM this worker if the supervisor dies, so it drains instead of living on (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.util.find_library("c")
    if libc is not None:
        ctypes.CDLL(libc).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
