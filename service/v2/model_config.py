"""A served model's configuration in Triton's model-config schema (`inference.ModelConfig`),
as Triton's `GET /v2/models/{m}/config` writes it: protobuf field names, enums by name, int64
as JSON numbers. Tensors stay TYPE_FP32 at every `precision` (int8 models quantize inside the
graph). Derived from what is served, so tools that read it (perf_analyzer,
tritonclient) see the real batch limit, tensors, batching and instances. gRPC's `ModelConfig`
parses the same dict into the message.
"""

from __future__ import annotations

from typing import Any

from service.repository import ModelHandle

# Triton's backend of each platform (`service.repository.PLATFORMS` names them).
BACKENDS = {"onnxruntime_onnx": "onnxruntime", "pytorch_libtorch": "pytorch"}


def model_config(handle: ModelHandle) -> dict[str, Any]:
    """The model's configuration; `ModelNotReady` (503) until it is loaded."""
    loaded = handle.ready()
    config = handle.config
    on_gpu = loaded.device.startswith("cuda")
    return {
        "name": handle.name,
        "platform": handle.platform,
        "backend": BACKENDS[handle.platform],
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": config.batching.max_batch_size,
        "input": [
            {
                "name": loaded.input_name,
                "data_type": "TYPE_FP32",
                "format": "FORMAT_NCHW",
                "dims": list(loaded.input_shape),
            }
        ],
        "output": [
            {"name": loaded.output_name, "data_type": "TYPE_FP32", "dims": [loaded.num_classes]}
        ],
        "dynamic_batching": {
            "preferred_batch_size": [],
            "max_queue_delay_microseconds": round(config.batching.max_delay_ms * 1000),
            "preserve_ordering": False,
            "default_queue_policy": {
                "timeout_action": "REJECT",
                "default_timeout_microseconds": 0,
                "allow_timeout_override": True,
                "max_queue_size": config.batching.max_queue * config.instances,
            },
        },
        "instance_group": [
            {
                "name": handle.name,
                "kind": "KIND_GPU" if on_gpu else "KIND_CPU",
                "count": config.instances,
                "gpus": [int(loaded.device.partition(":")[2] or 0)] if on_gpu else [],
            }
        ],
        "model_transaction_policy": {"decoupled": False},
        "parameters": {
            "arch": {"string_value": config.arch_name},
            "precision": {"string_value": config.precision},
        },
    }
