"""py-spy over a run under load: where the server's threads spend the time.

`py-spy record --threads --idle --format raw` samples every thread, waiting ones included, so
per-thread shares add up to 100 %. The summary answers the questions that matter for serving
efficiency: how much of the window the engine was computing (the `infer*` threads inside a
runtime's `run`), how busy the decode pool and the event loop were, and the top stacks.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
from pathlib import Path

# Leaf frames of a thread that waits: an idle pool worker, an idle AnyIO worker, and the event
# loop inside uvloop's C code (epoll, or C-level HTTP parsing: py-spy cannot tell them apart).
WAITING = (
    "_worker (concurrent/futures/thread.py",
    "Condition.wait (threading.py",
    "Runner.run (asyncio/runners.py",
)
ENGINE_FRAME = "Runtime.run (service/runtimes/"


def find_py_spy(peers_python: Path) -> str | None:
    candidate = peers_python.with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def start_recording(py_spy: str, pid: int, seconds: float, out: Path) -> subprocess.Popen:
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", "100", "--threads", "--idle", "--nonblocking",
        "--format", "raw", "--output", str(out),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarize(raw: Path, top: int = 5) -> dict:
    """Per thread group (name without the index): samples, busy share, engine share, top."""
    samples: collections.Counter[str] = collections.Counter()
    busy: collections.Counter[str] = collections.Counter()
    engine: collections.Counter[str] = collections.Counter()
    stacks: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    threads: dict[str, set[str]] = collections.defaultdict(set)
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if len(frames) < 2:  # a native thread without Python frames (e.g. ORT's pool)
            continue
        group = _group(frames[0])
        threads[group].add(frames[0])
        count = int(count_text)
        samples[group] += count
        leaf = frames[-1]
        if not leaf.startswith(WAITING):
            busy[group] += count
            stacks[group][" <- ".join(reversed(frames[-3:]))] += count
        if any(ENGINE_FRAME in frame for frame in frames):
            engine[group] += count
    return {
        group: {
            "samples": total,
            "threads": len(threads[group]),
            "busy": busy[group] / total,
            "engine": engine[group] / total,
            "top": [(stack, n / total) for stack, n in stacks[group].most_common(top)],
        }
        for group, total in samples.most_common()
    }


def _group(thread: str) -> str:
    """`thread (123): decode_1` -> `decode`; `thread (9): MainThread` -> `MainThread`."""
    name = thread.split(": ", 1)[-1]
    base = name.rstrip("0123456789").rstrip("_")
    return base or name


def describe(summary: dict) -> list[str]:
    lines = []
    for group, info in summary.items():
        if group.startswith("AnyIO") or group == "load":
            continue
        lines.append(
            f"{group}: busy {info['busy']:.0%}"
            + (f", in the engine {info['engine']:.0%}" if info["engine"] else "")
        )
        lines += [f"    {share:5.1%}  {stack}" for stack, share in info["top"][:3]]
    anyio = summary.get("AnyIO worker thread")
    if anyio:
        lines.append(
            f"AnyIO worker threads: {anyio['threads']} (FastAPI runs sync dependencies and sync "
            "endpoints there, one thread hop per call)"
        )
    return lines
