"""The image compose builds by default is the slim one: ONNX Runtime without torch or onnx,
within 400 MB. No image carries an API token."""

from __future__ import annotations

import os
import subprocess

import pytest
from container_stack import ComposeStack

SLIM_TARGET = "runtime-slim"
MAX_SLIM_IMAGE_BYTES = 400_000_000  # as `docker image ls` counts: 400 MB


@pytest.fixture(scope="module")
def slim_stack(managed_stack: ComposeStack) -> ComposeStack:
    target = os.environ.get("BLOCKSERVE_TARGET", SLIM_TARGET)
    if target != SLIM_TARGET:
        pytest.skip(f"the stack runs BLOCKSERVE_TARGET={target}, not the slim image")
    return managed_stack


@pytest.mark.parametrize("package", ["torch", "onnx", "onnxscript"])
def test_the_served_image_cannot_import_export_only_packages(slim_stack, package):
    result = slim_stack.exec("python", "-c", f"import {package}")
    assert result.returncode != 0
    assert f"No module named '{package}'" in result.stderr


def test_the_served_image_serves_with_onnxruntime(slim_stack):
    result = slim_stack.exec("python", "-c", "import onnxruntime, service.app")
    assert result.returncode == 0, result.stderr


def test_the_slim_image_is_within_400_mb(slim_stack):
    size = slim_stack.image_size_bytes()
    assert size <= MAX_SLIM_IMAGE_BYTES, f"{size / 1e6:.0f} MB"


def test_the_image_carries_no_api_token(managed_stack: ComposeStack):
    """Each container generates its own token (or takes BLOCKSERVE_API_TOKEN): a token file
    baked in at build time would be one token shared by every container of the image."""
    image = managed_stack.inspect("{{.Image}}")
    argv = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "find", image]
    found = subprocess.run(
        [*argv, "/var/lib/blockserve", "-name", "api-token"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout == ""
