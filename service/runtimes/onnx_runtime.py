"""ONNX Runtime: the CUDA execution provider when onnxruntime-gpu finds a GPU, else CPU."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from models.export import Bundle
from models.export.formats import CUDA_PROVIDER
from service.runtimes.base import (
    DeviceUnavailableError,
    TensorMeta,
    check_batch,
    checked_precision,
    parse_device,
    warmup_batches,
)

CPU_PROVIDER = "CPUExecutionProvider"


class OnnxRuntime:
    """One `InferenceSession`; ORT sessions are thread-safe, and each call binds its own IO."""

    def __init__(
        self,
        bundle: Bundle,
        device: str = "auto",
        *,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        io_binding: bool | None = None,
        allow_spinning: bool = True,
    ) -> None:
        kind, index = parse_device(device)
        self.input_meta = TensorMeta.from_manifest(bundle.manifest["input"])
        self.output_meta = TensorMeta.from_manifest(bundle.manifest["outputs"][0])
        self.session = _open_session(
            bundle,
            kind,
            index,
            _session_options(intra_op_threads, inter_op_threads, allow_spinning),
        )
        on_gpu = self.session.get_providers()[0] == CUDA_PROVIDER
        if kind == "cuda" and not on_gpu:
            raise DeviceUnavailableError(
                f"device={device!r}: onnxruntime could not initialise {CUDA_PROVIDER} "
                f"(no usable GPU or CUDA/cuDNN libraries); use device='auto' or 'cpu'"
            )
        checked_precision(
            bundle, on_gpu, f"this onnxruntime session runs on the CPU (device={device!r})"
        )
        self.device = f"cuda:{index}" if on_gpu else "cpu"
        self.device_type, self.device_id = ("cuda", index) if on_gpu else ("cpu", 0)
        self.io_binding = on_gpu if io_binding is None else io_binding

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.input_meta)
        if self.io_binding:
            return self._run_bound(batch)
        return self.session.run([self.output_meta.name], {self.input_meta.name: batch})[0]

    def _run_bound(self, batch: np.ndarray) -> np.ndarray:
        # Copy the input to the device once and let ORT allocate the output there, so Run()
        # itself does no host<->device transfers; a fresh binding per call keeps threads apart.
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_meta.name, batch)
        binding.bind_output(self.output_meta.name, self.device_type, self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def warmup(self) -> None:
        for batch in warmup_batches(self.input_meta):
            self.run(batch)


def _open_session(
    bundle: Bundle, kind: str, index: int, options: ort.SessionOptions
) -> ort.InferenceSession:
    providers = _providers(kind, index)
    try:
        return ort.InferenceSession(str(bundle.model_file), options, providers=providers)
    except RuntimeError:
        if kind != "auto" or providers == [CPU_PROVIDER]:
            raise
    return ort.InferenceSession(str(bundle.model_file), options, providers=[CPU_PROVIDER])


def _providers(kind: str, index: int) -> list[str | tuple[str, dict]]:
    available = ort.get_available_providers()
    if kind == "cuda" and CUDA_PROVIDER not in available:
        raise DeviceUnavailableError(
            f"device='cuda' needs onnxruntime-gpu ({CUDA_PROVIDER}); this onnxruntime offers "
            f"{available}. Install blockserve[gpu] or use device='auto' or 'cpu'"
        )
    if kind == "cpu" or CUDA_PROVIDER not in available:
        return [CPU_PROVIDER]
    return [(CUDA_PROVIDER, {"device_id": index}), CPU_PROVIDER]


def _session_options(
    intra_op_threads: int | None, inter_op_threads: int | None, allow_spinning: bool
) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads busy-wait for the next call by default: lowest latency on a dedicated
    # CPU, stolen cycles when other work (preprocessing, another model) shares the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", str(int(allow_spinning)))
    for name, value in (("intra_op", intra_op_threads), ("inter_op", inter_op_threads)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}_threads must be an int >= 0 (0 = ORT default), {value!r}")
            setattr(options, f"{name}_num_threads", value)
    return options
