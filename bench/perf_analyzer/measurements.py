"""perf_analyzer's CSV report (`-f FILE`): one row per concurrency level, times in µs."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

SERVER_COLUMNS = {  # server-side averages, present when the server reports statistics
    "queue_us": "Server Queue",
    "compute_input_us": "Server Compute Input",
    "compute_infer_us": "Server Compute Infer",
    "compute_output_us": "Server Compute Output",
}


@dataclass(frozen=True)
class Level:
    """One concurrency level as perf_analyzer measured it."""

    concurrency: int
    infer_per_s: float
    p50_us: int  # client-side latencies
    p99_us: int
    server_us: dict[str, int]  # SERVER_COLUMNS keys present in the report


def parse_csv(text: str) -> list[Level]:
    """The levels of a perf_analyzer CSV report, in its order; a report without the columns
    every run writes is an error."""
    reader = csv.DictReader(io.StringIO(text))
    needed = ("Concurrency", "Inferences/Second", "p50 latency", "p99 latency")
    missing = [name for name in needed if name not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"not a perf_analyzer concurrency report: no column {missing}")
    return [
        Level(
            concurrency=int(row["Concurrency"]),
            infer_per_s=float(row["Inferences/Second"]),
            p50_us=int(row["p50 latency"]),
            p99_us=int(row["p99 latency"]),
            server_us={
                key: int(row[column])
                for key, column in SERVER_COLUMNS.items()
                if row.get(column) not in (None, "")
            },
        )
        for row in reader
    ]
