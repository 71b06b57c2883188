"""`blockserve serve`: the REST (and gRPC) server for a model repository config."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from service.commands import CliError

HOST_ENV, PORT_ENV, THREADS_ENV, GRPC_PORT_ENV, WORKERS_ENV = (
    "BLOCKSERVE_HOST",
    "BLOCKSERVE_PORT",
    "BLOCKSERVE_THREADS",
    "BLOCKSERVE_GRPC_PORT",
    "BLOCKSERVE_WORKERS",
)
DefaultT = TypeVar("DefaultT", bound=int | None)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve the models of a repository config over REST and gRPC",
        description="Serve a model repository: REST (FastAPI/uvicorn) and KServe V2 gRPC. "
        "SIGTERM drains: readiness turns false, new connections are answered for "
        "server.drain_delay_s, then every request already sent is answered (for at most "
        "server.shutdown_timeout_s) and the process exits 0.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="model repository YAML (default: $BLOCKSERVE_CONFIG, else the packaged config)",
    )
    parser.add_argument("--host", help=f"bind address (default: ${HOST_ENV} or 127.0.0.1)")
    parser.add_argument("--port", type=int, help=f"REST port (default: ${PORT_ENV} or 8000)")
    parser.add_argument(
        "--grpc-port", type=int, help=f"gRPC port, 0 disables (default: ${GRPC_PORT_ENV} or config)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help=f"ONNX Runtime threads per model instance (default: ${THREADS_ENV} or config)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help=f"serving processes sharing the port (default: ${WORKERS_ENV} or config)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="load every model once (export bundles into the cache), print their states and "
        "exit without serving; exit 1 if a model FAILED",
    )
    parser.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    from service.config import ConfigError, load_config
    from service.server import prepare, run

    host = args.host or os.environ.get(HOST_ENV) or "127.0.0.1"
    port = _port("--port", args.port, PORT_ENV, 8000)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        raise CliError(str(error)) from None
    server = config.server
    grpc_port = _port("--grpc-port", args.grpc_port, GRPC_PORT_ENV, server.grpc.port)
    threads = _int("--threads", args.threads, THREADS_ENV, server.ort_threads)
    if threads is not None and threads < 1:
        raise CliError(f"--threads must be >= 1, got {threads}")
    workers = _int("--workers", args.workers, WORKERS_ENV, server.workers)
    if workers < 1:
        raise CliError(f"--workers must be >= 1, got {workers}")
    server = server.model_copy(
        update={
            "ort_threads": threads,
            "workers": workers,
            "grpc": server.grpc.model_copy(update={"port": grpc_port}),
        }
    )
    config = config.model_copy(update={"server": server})
    if args.prepare:
        return _report_states(prepare(config))
    try:
        run(config, host, port, log_level=args.log_level)
    except ConfigError as error:
        raise CliError(str(error)) from None
    return 0


def _report_states(states: Mapping[str, tuple[str, str | None]]) -> int:
    for name, (state, reason) in states.items():
        print(f"{name}: {state}" + (f" ({reason})" if reason else ""))
    return 1 if any(state == "FAILED" for state, _ in states.values()) else 0


def _int(flag: str, value: int | None, env: str, default: DefaultT) -> int | DefaultT:
    if value is not None:
        return value
    text = os.environ.get(env)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise CliError(f"${env} must be an integer ({flag}), got {text!r}") from None


def _port(flag: str, value: int | None, env: str, default: int) -> int:
    port = _int(flag, value, env, default)
    if not 0 <= port <= 65535:
        raise CliError(f"{flag} must lie in 0..65535, got {port}")
    return port
