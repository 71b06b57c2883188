"""Mean batch size over a run, from the server's Prometheus batch-size histogram."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from bench.serving.processes import http_get

BATCH_HISTOGRAM = "blockserve_batch_size"


@dataclass(frozen=True)
class HistogramTotals:
    count: float
    total: float  # sum of observations


def batch_totals(metrics_url: str, model: str) -> HistogramTotals:
    status, body = http_get(metrics_url)
    if status != 200:
        raise RuntimeError(f"GET {metrics_url} answered {status}")
    count = total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        if family.name != BATCH_HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            if sample.name == f"{BATCH_HISTOGRAM}_count":
                count += sample.value
            elif sample.name == f"{BATCH_HISTOGRAM}_sum":
                total += sample.value
    return HistogramTotals(count, total)


def mean_batch_size(before: HistogramTotals, after: HistogramTotals) -> float | None:
    """Images per dispatched batch between two scrapes; None when no batch ran."""
    batches = after.count - before.count
    return (after.total - before.total) / batches if batches > 0 else None
