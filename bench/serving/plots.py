"""Throughput and p99 against concurrency, one line per server and body kind (resnet18-224).

Runs with matplotlib from the bench venv (bench/.venv-peers), not the project's:

    bench/.venv-peers/bin/python bench/serving/plots.py RESULTS.json docs/img

It reads the results JSON as `bench.serving.results.RunResults` writes it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

WORKLOAD = "resnet18-224"
PANELS = (
    ("throughput", "images / s (2xx only)", "serving-throughput.png"),
    ("p99_ms", "p99 latency (ms, log scale)", "serving-p99.png"),
)


def plot(results: dict, out_dir: Path) -> list[Path]:
    """The plots, or none when the run did not measure WORKLOAD."""
    lines: dict[tuple[str, str], list[dict]] = {}
    for point in results["points"]:
        if point["workload"] == WORKLOAD:
            lines.setdefault((point["server"], point["body"]), []).append(point["load"])
    if not lines:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, ylabel, filename in PANELS:
        figure, axes = plt.subplots(figsize=(7.5, 5.2), dpi=120)
        for (name, body), loads in lines.items():
            server = results["servers"][name]
            loads.sort(key=lambda load: load["concurrency"])
            axes.plot(
                [load["concurrency"] for load in loads],
                [_value(load, key) for load in loads],
                "--" if server["peer"] else "-",
                marker="o",
                label=f"{server['label']} [{body}]",
            )
        ceiling = results["ceilings"].get(WORKLOAD)
        if key == "throughput" and ceiling:
            best = max(ceiling["points"], key=lambda p: p["images"] / p["seconds"])
            axes.axhline(
                best["images"] / best["seconds"],
                color="grey",
                linestyle=":",
                label=f"ceiling (in-process, batch {best['batch_size']})",
            )
        if key == "p99_ms":
            axes.set_yscale("log")
        axes.set_xscale("log", base=2)
        concurrencies = results["meta"]["settings"]["concurrency"]
        axes.set_xticks(concurrencies, [str(c) for c in concurrencies])
        axes.set_xlabel("concurrent connections (wrk)")
        axes.set_ylabel(ylabel)
        axes.set_title(f"resnet18 224², ONNX on {results['meta']['machine']['cores']} CPU cores")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
        figure.tight_layout()
        path = out_dir / filename
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


def _value(load: dict, key: str) -> float:
    return load["ok"] / load["seconds"] if key == "throughput" else load[key]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    for written in plot(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])):
        print(written)
