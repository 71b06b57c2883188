"""Start a real `blockserve serve` process (uvicorn + uvloop + httptools) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from local_ports import free_port

STARTUP_TIMEOUT_S = 120
EXIT_TIMEOUT_S = 60


def digits_config(
    directory: Path, weights: Path, bundle_cache: Path, *, batching: dict | None = None, **server
) -> Path:
    """A models.yaml serving the trained digits model (gRPC off unless `server` says)."""
    model = {"name": "digits", "arch": "resnet_digits", "weights": str(weights)}
    if batching:
        model["batching"] = batching
    server = {"cache_dir": str(bundle_cache), "grpc": {"enabled": False}, **server}
    path = directory / "models.yaml"
    path.write_text(yaml.safe_dump({"server": server, "models": [model]}))
    return path


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    log_path: Path
    scheme: str = "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_exit(self, timeout: float = EXIT_TIMEOUT_S) -> int:
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def serve(
    config: Path, directory: Path, *, scheme: str = "http", client_options: dict | None = None
) -> Iterator[ServerProcess]:
    """`blockserve serve --config config` on a free port, ready; killed afterwards if alive."""
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--config", str(config),
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]  # fmt: skip
    log_path = directory / f"server-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=Path.cwd())
    server = ServerProcess(process, port, log_path, scheme)
    try:
        wait_ready(server, client_options or {})
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def wait_ready(server: ServerProcess, client_options: dict[str, Any]) -> None:
    give_up = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < give_up:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"blockserve serve exited with {server.process.returncode}:\n{server.log()}"
            )
        try:
            ready = httpx.get(f"{server.base_url}/health/ready", timeout=2, **client_options)
            if ready.status_code == 200:
                return
            if "FAILED" in ready.text:
                raise RuntimeError(f"a model failed to load: {ready.text}")
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"not ready within {STARTUP_TIMEOUT_S} s:\n{server.log()}")
