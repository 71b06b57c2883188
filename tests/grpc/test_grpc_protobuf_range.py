"""The committed stubs run on both ends of the supported protobuf range: the oldest release
tritonclient 2.73 accepts (6.30.0) and the newest 7.x. Each end gets a venv of its own with only
protobuf, grpcio (the version of this venv) and pip, cached under .cache/ (git-ignored) so
that reruns take a second; the first run downloads from the package index."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "service" / "grpc" / "generated"
ROUNDTRIP = Path(__file__).with_name("protobuf_roundtrip.py")
VENVS = ROOT / ".cache" / "protobuf-range"
OLDEST = "6.30.0"
NEWEST_MAJOR = "7"

pytestmark = pytest.mark.slow


def venv_with(protobuf: str) -> Path:
    """The python of a cached venv holding `protobuf` (a pip requirement) and this grpcio."""
    grpcio = importlib.metadata.version("grpcio")
    requirements = [protobuf, f"grpcio=={grpcio}"]
    home = VENVS / "-".join(
        "".join(c if c.isalnum() or c == "." else "_" for c in req) for req in requirements
    )
    python = home / "bin" / "python"
    done = home / "installed"
    if not done.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
        install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*install, *requirements], check=True, timeout=600)
        done.write_text("\n".join(requirements) + "\n")
    return python


@pytest.mark.parametrize(
    ("requirement", "version_prefix"),
    [(f"protobuf=={OLDEST}", OLDEST), (f"protobuf>={NEWEST_MAJOR},<8", f"{NEWEST_MAJOR}.")],
    ids=["oldest", "newest"],
)
def test_stubs_import_and_round_trip_messages(requirement: str, version_prefix: str) -> None:
    python = venv_with(requirement)
    result = subprocess.run(
        [str(python), str(ROUNDTRIP), str(GENERATED), version_prefix],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
