"""Server subprocesses: start in their own process group, wait until ready, stop the group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


class ServerFailed(RuntimeError):
    """The server exited or did not become ready; the message ends with its log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port_block(count: int) -> int:
    """A free port whose next `count - 1` ports are free too (TorchServe takes three)."""
    for _ in range(50):
        port = free_port()
        if port + count <= 65535 and all(_is_free(port + i) for i in range(1, count)):
            return port
    raise OSError(f"no block of {count} free ports found on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@contextmanager
def running_server(
    name: str,
    command: list[str],
    *,
    ready_url: str,
    log_path: Path,
    ready_timeout_s: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    ready_body: bytes | None = None,
) -> Iterator[subprocess.Popen]:
    """Run `command` until the block ends; ready when `ready_url` answers 200 (and, if given,
    its body contains `ready_body`). The whole process group is stopped on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: workers are stopped with it
        )
        try:
            wait_ready(name, process, ready_url, ready_body, ready_timeout_s, log_path)
            yield process
        finally:
            _stop_group(process)


def wait_ready(
    name: str,
    process: subprocess.Popen,
    url: str,
    body: bytes | None,
    timeout_s: float,
    log_path: Path,
) -> None:
    """Poll `url` until it answers 200 (with `body` in it, if given) while `process` lives."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise ServerFailed(f"{name} exited with {process.returncode}\n{_tail(log_path)}")
        try:
            status, content = http_get(url, timeout=2.0)
            if status == 200 and (body is None or body in content):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServerFailed(f"{name} not ready at {url} after {timeout_s:.0f} s\n{_tail(log_path)}")


@contextmanager
def paused(*processes: subprocess.Popen) -> Iterator[None]:
    """Stop the process groups of `processes` (SIGSTOP) for the block, then continue them, so an
    idle server that polls (LitServe's workers take ~15 % of a core doing nothing) steals no
    CPU from the one being measured."""
    for process in processes:
        os.killpg(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)


def _stop_group(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; give its group (e.g. TorchServe's Java and Python workers) a
        # moment, then make sure none is left.
        time.sleep(1.0)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(f"    {line}" for line in text[-lines:])
