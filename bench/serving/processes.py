"""Servers under test as processes: one context manager starts any of them, waits until it is
ready and stops its whole process group, whether the benchmark runs the server itself or a
start script detaches it (the Triton and MLServer scripts in ../shared/peers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path


class ServerFailed(RuntimeError):
    """The server exited or did not become ready; the message ends with its log tail."""


@dataclass(frozen=True)
class Launch:
    """How to start one server.

    Without `stop`, `command` is the server: it runs in its own process group until the block
    ends. With `stop`, `command` is a start script that detaches the server into a process group
    of its own and prints its pid as the last line; `stop` + [pid] stops it.
    """

    command: list[str]
    ready_url: str
    ready_body: bytes | None = None  # expected in the ready answer
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    stop: list[str] | None = None
    prepare: Callable[[], None] | None = None  # one-off step before the start (build, set-up)


@dataclass
class RunningServer:
    name: str
    pid: int  # leader of the server's process group
    log_path: Path
    process: subprocess.Popen | None  # None: detached by its start script

    def exited(self) -> bool:
        if self.process is not None:
            return self.process.poll() is not None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        return False


@contextmanager
def running(
    name: str, launch: Launch, log_path: Path, ready_timeout_s: float
) -> Iterator[RunningServer]:
    """The server runs, ready, for the block; its process group is stopped afterwards."""
    if launch.prepare is not None:
        launch.prepare()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        server = _start(name, launch, log, log_path, ready_timeout_s)
        try:
            wait_ready(server, launch.ready_url, launch.ready_body, ready_timeout_s)
            yield server
        finally:
            if server.process is not None:
                _stop_group(server.process)
            else:
                subprocess.run([*launch.stop, str(server.pid)], stdout=log, stderr=log, timeout=120)


def _start(name: str, launch: Launch, log, log_path: Path, ready_timeout_s: float) -> RunningServer:
    env = {**os.environ, **launch.env}
    if launch.stop is None:
        process = subprocess.Popen(
            launch.command,
            cwd=launch.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: workers are stopped with it
        )
        return RunningServer(name, process.pid, log_path, process)
    try:
        started = subprocess.run(
            launch.command,
            cwd=launch.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            timeout=ready_timeout_s,
            check=True,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        log.flush()
        raise ServerFailed(f"{name}: start script failed ({error})\n{_tail(log_path)}") from None
    pid = int(started.stdout.split()[-1])
    return RunningServer(name, pid, log_path, None)


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


def wait_ready(server: RunningServer, url: str, body: bytes | None, timeout_s: float) -> None:
    """Poll `url` until it answers 200 (with `body` in it, if given) while the server lives."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if server.exited():
            raise ServerFailed(f"{server.name} exited\n{_tail(server.log_path)}")
        try:
            status, content = http_get(url, timeout=2.0)
            if status == 200 and (body is None or body in content):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServerFailed(
        f"{server.name} not ready at {url} after {timeout_s:.0f} s\n{_tail(server.log_path)}"
    )


@contextmanager
def paused(*servers: RunningServer) -> Iterator[None]:
    """Stop the process groups of `servers` (SIGSTOP) for the block, then continue them, so an
    idle server that polls (LitServe's workers take ~15 % of a core doing nothing) steals no
    CPU from the one being measured."""
    for server in servers:
        os.killpg(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for server in servers:
            with suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGCONT)


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
