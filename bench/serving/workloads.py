"""What is posted: one workload per (model, request shape), whatever server answers it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    name: str
    model: str  # blockserve's model name (batch metrics, in-process ceiling)
    corpus: str  # images.CORPORA key the bodies are built from
    unit: str  # what one 2xx answer is: "img/s" or "req/s"
    title: str  # the table's heading


WORKLOADS = {
    w.name: w
    for w in (
        Workload("resnet18-224", "resnet18", "rgb224", "img/s", "resnet18, 224² JPEG"),
        Workload(
            "resnet18-jpeg", "resnet18", "rgb451x300", "img/s",
            "resnet18 end to end, 451×300 JPEG in (decode, resize, crop, engine)",
        ),
        Workload(
            "resnet18-v2", "resnet18", "rgb224", "req/s",
            "resnet18 V2 infer (`/v2/models/resnet18/infer`), FP32 1×3×224×224 tensor",
        ),
        Workload(
            "digits-predict", "digits", "gray8", "req/s",
            "digits `/predict`, 8×8 grayscale PNG body",
        ),
        Workload(
            "digits-v2", "digits", "gray8", "req/s",
            "digits V2 infer (`/v2/models/digits/infer`), FP32 1×1×8×8 tensor",
        ),
    )
}  # fmt: skip
