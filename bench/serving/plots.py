"""Throughput and p99 against concurrency, one line per server (resnet18 at 224²).

Runs with matplotlib from the bench venv (bench/.venv-peers), not the project's:

    bench/.venv-peers/bin/python bench/serving/plots.py RESULTS.json docs/img
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

MODEL = "resnet18"
PANELS = (
    ("throughput", "images / s (2xx only)", "serving-throughput.png"),
    ("p99_ms", "p99 latency (ms, log scale)", "serving-p99.png"),
)


def plot(results: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, ylabel, filename in PANELS:
        figure, axes = plt.subplots(figsize=(7.5, 5.2), dpi=120)
        for name, server in results["servers"].items():
            rows = [
                m for m in results["measurements"] if m["server"] == name and m["model"] == MODEL
            ]
            if not rows:
                continue
            rows.sort(key=lambda m: m["concurrency"])
            style = "--" if server["peer"] else "-"
            axes.plot(
                [m["concurrency"] for m in rows],
                [m[key] for m in rows],
                style,
                marker="o",
                label=server["label"],
            )
        ceiling = results["ceilings"].get(MODEL)
        if key == "throughput" and ceiling:
            axes.axhline(
                ceiling["throughput"],
                color="grey",
                linestyle=":",
                label=f"ceiling (in-process, batch {ceiling['best_batch_size']})",
            )
        if key == "p99_ms":
            axes.set_yscale("log")
        axes.set_xscale("log", base=2)
        concurrencies = results["meta"]["settings"]["concurrency"]
        axes.set_xticks(concurrencies, [str(c) for c in concurrencies])
        axes.set_xlabel("concurrent connections (wrk)")
        axes.set_ylabel(ylabel)
        axes.set_title(f"{MODEL} 224², ONNX on {results['meta']['machine']['cores']} CPU cores")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
        figure.tight_layout()
        path = out_dir / filename
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    for written in plot(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])):
        print(written)
