"""What the run records about the machine and software, and the peers' venv it may create."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench.serving.results import Machine
from bench.serving.servers import REPO

PEERS_VENV = REPO / "bench" / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
PEERS_VENV_SERVERS = ("litserve", "torchserve")  # name prefixes of servers run from PEERS_VENV


def ensure_peers_venv() -> None:
    if PEERS_PYTHON.exists():
        return
    print(f"creating {PEERS_VENV} (bench/peers/setup.sh)", flush=True)
    subprocess.run(["bash", str(REPO / "bench" / "peers" / "setup.sh")], check=True, timeout=3600)


def machine() -> Machine:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return Machine(
        cpu=cpu,
        cores=os.cpu_count() or 0,
        memory_gib=round(memory_kb / 2**20, 1),
        kernel=platform.release(),
        python=platform.python_version(),
    )


def versions(peers2_work: Path) -> dict:
    found: dict = {}
    for name in ("onnxruntime", "fastapi", "uvicorn", "numpy", "pillow"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    found["wrk"] = (wrk.stdout or wrk.stderr).split("[")[0].strip()
    peers = {}
    for python, packages in (
        (PEERS_PYTHON, ("litserve", "torchserve", "torch", "torchvision", "onnxruntime")),
        (peers2_work / "venv-triton" / "bin" / "python", ("nvidia-pytriton",)),
        (peers2_work / "venv-mlserver" / "bin" / "python", ("mlserver",)),
    ):
        if python.exists():
            peers.update(_venv_versions(python, packages))
    found["peers"] = peers
    return found


def _venv_versions(python: Path, packages: tuple[str, ...]) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run([str(python), "-c", script, *packages], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}
