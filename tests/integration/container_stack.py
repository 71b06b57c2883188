"""Drive the docker compose stack that the container integration suite runs against.

`ComposeStack` wraps the compose CLI (`docker compose` v2 or `docker-compose` 1.29) and the
docker CLI for one compose project: build, up, wait for readiness, restart, stop, down. Every
command and every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE = "blockserve"
BUILD_TIMEOUT_S = 1800.0
COMMAND_TIMEOUT_S = 180.0
READY_TIMEOUT_S = float(os.environ.get("BLOCKSERVE_READY_TIMEOUT", "300"))


class StackError(RuntimeError):
    """A compose or docker command failed, or the service never became ready."""


def _run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float) -> str:
    try:
        done = subprocess.run(
            argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise StackError(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-4000:]
        raise StackError(f"`{' '.join(argv)}` exited {done.returncode}:\n{output}")
    return done.stdout


def find_compose() -> list[str] | None:
    """The compose CLI here: `docker compose` (v2) if it answers, else `docker-compose` (v1)."""
    candidates = [["docker", "compose"], ["docker-compose"]]
    if override := os.environ.get("BLOCKSERVE_COMPOSE"):
        candidates = [override.split()]
    for argv in candidates:
        if shutil.which(argv[0]) is None:
            continue
        try:
            _run([*argv, "version"], timeout=30)
        except StackError:
            continue
        return argv
    return None


def docker_unavailable_reason() -> str | None:
    """Why no compose stack can be started here, or None when it can."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        _run(["docker", "info"], timeout=30)
    except StackError as error:
        return f"no Docker engine is reachable ({str(error).splitlines()[-1]})"
    if find_compose() is None:
        return "neither `docker compose` nor `docker-compose` is installed"
    return None


def wait_ready(base_url: str, timeout: float, *, is_alive=lambda: None) -> float:
    """Poll until `/health/ready` answers 200 and every model is READY; return the seconds.

    `is_alive()` is called between polls and raises when the server is gone for good.
    """
    start = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - start < timeout:
        try:
            last = _not_ready_reason(base_url)
            if last is None:
                return time.monotonic() - start
        except httpx.TransportError as error:
            last = f"{type(error).__name__}: {error}"
        is_alive()
        time.sleep(0.25)
    raise StackError(f"{base_url} not ready after {timeout:.0f}s (last: {last})")


def _not_ready_reason(base_url: str) -> str | None:
    ready = httpx.get(f"{base_url}/health/ready", timeout=2.0)
    if ready.status_code != 200:
        return f"/health/ready: HTTP {ready.status_code} {ready.text[:200]}"
    models = httpx.get(f"{base_url}/models", timeout=2.0).json()["models"]
    failed = {m["name"]: m["reason"] for m in models if m["state"] == "FAILED"}
    if failed:
        raise StackError(f"models failed to load: {failed}")
    loading = [m["name"] for m in models if m["state"] != "READY"]
    return f"models not ready yet: {loading}" if loading else None


@dataclass
class ComposeStack:
    """One compose project built from this repository's compose files."""

    compose: list[str]
    files: list[str]
    project: str
    http_port: int
    grpc_port: int
    ci: bool = False
    host: str = "127.0.0.1"
    timings: dict[str, float] = field(default_factory=dict)
    _container: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["BLOCKSERVE_HTTP_PORT"] = str(self.http_port)
        env["BLOCKSERVE_GRPC_PORT"] = str(self.grpc_port)
        if self.ci:
            env.setdefault("DOCKER_BUILDKIT", "0")
        return env

    def _compose(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
        files = [arg for name in self.files for arg in ("-f", name)]
        argv = [*self.compose, *files, "-p", self.project, *args]
        return _run(argv, env=self.env, timeout=timeout)

    def build(self) -> None:
        start = time.monotonic()
        self._compose("build", SERVICE, timeout=BUILD_TIMEOUT_S)
        self.timings["build_s"] = time.monotonic() - start

    def up(self, ready_timeout: float) -> None:
        self._compose("up", "--detach", "--no-build", SERVICE)
        self._container = None
        self.timings["start_to_ready_s"] = self.wait_ready(ready_timeout)

    def down(self) -> None:
        self._compose("down", "--volumes", "--remove-orphans", "--timeout", "30")

    def wait_ready(self, timeout: float) -> float:
        return wait_ready(self.base_url, timeout, is_alive=self._raise_if_exited)

    def container_id(self) -> str:
        if self._container is None:
            ids = self._compose("ps", "--all", "-q", SERVICE).split()
            if not ids:
                raise StackError(f"compose project {self.project} has no {SERVICE} container")
            self._container = ids[0]
        return self._container

    def inspect(self, template: str) -> str:
        return _run(["docker", "inspect", "-f", template, self.container_id()], timeout=30).strip()

    def logs(self, tail: int = 200) -> str:
        try:
            return _run(["docker", "logs", "--tail", str(tail), self.container_id()], timeout=30)
        except StackError as error:
            return f"(no logs: {error})"

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """`docker exec` `argv` in the service container; the caller judges the exit code."""
        try:
            return subprocess.run(
                ["docker", "exec", self.container_id(), *argv],
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"`docker exec {' '.join(argv)}` did not finish") from None

    def image_size_bytes(self) -> int:
        image = self.inspect("{{.Image}}")
        return int(_run(["docker", "image", "inspect", "-f", "{{.Size}}", image], timeout=30))

    def restart(self, ready_timeout: float) -> float:
        _run(["docker", "restart", "--time", "30", self.container_id()], timeout=90)
        return self.wait_ready(ready_timeout)

    def stop(self, grace_s: int = 60) -> int:
        """`docker stop` (SIGTERM, SIGKILL after `grace_s`); returns the exit code."""
        container = self.container_id()
        _run(["docker", "stop", "--time", str(grace_s), container], timeout=grace_s + 60)
        return int(self.inspect("{{.State.ExitCode}}"))

    def start(self, ready_timeout: float) -> float:
        _run(["docker", "start", self.container_id()], timeout=60)
        return self.wait_ready(ready_timeout)

    def _raise_if_exited(self) -> None:
        status = self.inspect("{{.State.Status}}")
        if status in ("exited", "dead"):
            code = self.inspect("{{.State.ExitCode}}")
            raise StackError(f"container {status} with code {code}; logs:\n{self.logs()}")
