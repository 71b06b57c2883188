"""Fixtures of the container integration suite; every test here is marked `container`.

Against a running instance: set BLOCKSERVE_BASE_URL (and BLOCKSERVE_GRPC_TARGET, host:port).
Otherwise the suite builds the compose stack, starts it on free loopback ports, waits for
readiness (at most BLOCKSERVE_READY_TIMEOUT seconds, default 300), runs, and always tears it
down. In CI (CI or BLOCKSERVE_CI_DOCKER set) it adds docker-compose.ci.yml: host networking, the
local base image, the wheelhouse. With no Docker engine the tests skip, unless
BLOCKSERVE_REQUIRE_CONTAINER=1 (set by .ci/run): then that is an error.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from container_stack import (
    BUILD_TIMEOUT_S,
    READY_TIMEOUT_S,
    REPO_ROOT,
    ComposeStack,
    StackError,
    docker_unavailable_reason,
    find_compose,
    wait_ready,
)
from local_ports import free_port

HERE = Path(__file__).resolve().parent
REPORT_PATH = REPO_ROOT / ".cache" / "integration" / "container-timings.json"
_report: dict[str, float] = {}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.container)
            # pytest-timeout counts fixture setup: the first test's includes the image build.
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S + 2 * READY_TIMEOUT_S + 600))


def pytest_terminal_summary(terminalreporter) -> None:
    if _report:
        numbers = ", ".join(f"{name} {value:.1f}" for name, value in _report.items())
        terminalreporter.write_line(f"container stack: {numbers}")


def _unavailable(reason: str) -> None:
    if _flag("BLOCKSERVE_REQUIRE_CONTAINER"):
        pytest.fail(
            f"container tests are required (BLOCKSERVE_REQUIRE_CONTAINER=1) but {reason}",
            pytrace=False,
        )
    pytest.skip(f"container tests need Docker or BLOCKSERVE_BASE_URL: {reason}")


@pytest.fixture(scope="session")
def stack() -> Iterator[ComposeStack | None]:
    """The compose stack this suite started, or None when BLOCKSERVE_BASE_URL is given."""
    if base_url := os.environ.get("BLOCKSERVE_BASE_URL", "").rstrip("/"):
        try:
            wait_ready(base_url, READY_TIMEOUT_S)
        except StackError as error:
            pytest.fail(f"BLOCKSERVE_BASE_URL={base_url}: {error}", pytrace=False)
        yield None
        return
    if reason := docker_unavailable_reason():
        _unavailable(reason)
    ci = _flag("BLOCKSERVE_CI_DOCKER") or _flag("CI")
    override = "docker-compose.ci.yml" if ci else "docker-compose.override.yml"
    compose_stack = ComposeStack(
        compose=find_compose(),
        files=["docker-compose.yml", override],
        project=f"blockserve-it-{os.getpid()}",
        http_port=free_port(),
        grpc_port=free_port(),
        ci=ci,
    )
    try:
        compose_stack.build()
        compose_stack.up(READY_TIMEOUT_S)
        compose_stack.timings["image_size_mb"] = compose_stack.image_size_bytes() / 1e6
        _report.update(compose_stack.timings)
        yield compose_stack
    except StackError as error:
        pytest.fail(f"container stack did not come up: {error}", pytrace=False)
    finally:
        _report.update(compose_stack.timings)
        _write_report()
        try:
            compose_stack.down()
        except StackError as error:
            warnings.warn(f"container stack teardown failed: {error}", stacklevel=1)


def _write_report() -> None:
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(json.dumps(_report, indent=2) + "\n")


@pytest.fixture(scope="session")
def managed_stack(stack: ComposeStack | None) -> ComposeStack:
    """The stack, for tests that restart or stop the container themselves."""
    if stack is None:
        pytest.skip("restart and shutdown tests need the stack this suite starts itself")
    return stack


@pytest.fixture(scope="session")
def base_url(stack: ComposeStack | None) -> str:
    return os.environ.get("BLOCKSERVE_BASE_URL", "").rstrip("/") or stack.base_url


@pytest.fixture(scope="session")
def grpc_target(stack: ComposeStack | None) -> str:
    """host:port of the gRPC endpoint (Open Inference Protocol V2)."""
    if stack is None:
        target = os.environ.get("BLOCKSERVE_GRPC_TARGET")
        if not target:
            pytest.skip("BLOCKSERVE_BASE_URL is set but BLOCKSERVE_GRPC_TARGET is not")
        return target
    return stack.grpc_target


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60.0) as http:
        yield http
