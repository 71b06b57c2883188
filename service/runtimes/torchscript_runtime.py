"""TorchScript runtime: a frozen module on CPU or CUDA under `inference_mode`, cast on CUDA to the
bundle's fp16 or bf16 precision. Loading (and so every `torch.jit` call) lives in
`models.export.torchscript`."""

from __future__ import annotations

import numpy as np
import torch

from models.export import Bundle
from models.export.torchscript import TORCH_DTYPES, load_torchscript
from service.runtimes.base import (
    DeviceUnavailableError,
    TensorMeta,
    check_batch,
    checked_precision,
    parse_device,
    warmup_batches,
)


class TorchScriptRuntime:
    """Frozen TorchScript modules run concurrently from several threads without shared state;
    `inference_mode` is thread-local, so every call enters it."""

    def __init__(self, bundle: Bundle, device: str = "auto") -> None:
        kind, index = parse_device(device)
        cuda = torch.cuda.is_available()
        if kind == "cuda" and not cuda:
            raise DeviceUnavailableError(
                f"device={device!r}: torch {torch.__version__} sees no CUDA GPU; "
                "use device='auto' or 'cpu'"
            )
        self.torch_device = torch.device(f"cuda:{index}" if kind != "cpu" and cuda else "cpu")
        on_gpu = self.torch_device.type == "cuda"
        cpu_reason = f"torch {torch.__version__} sees none (device={device!r})"
        precision = checked_precision(bundle, on_gpu, cpu_reason)
        self.device = str(self.torch_device)
        self.dtype = TORCH_DTYPES[precision]
        self.input_meta = TensorMeta.from_manifest(bundle.manifest["input"])
        self.output_meta = TensorMeta.from_manifest(bundle.manifest["outputs"][0])
        self.module = load_torchscript(bundle.model_file, self.torch_device, dtype=self.dtype)

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.input_meta)
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self.torch_device, self.dtype)  # (B, C, *spatial)
            logits = self.module(inputs)  # (B, num_classes)
            return logits.float().cpu().numpy()

    def warmup(self) -> None:
        # The profiling executor optimises a graph after it has seen a shape twice.
        for batch in warmup_batches(self.input_meta):
            self.run(batch)
            self.run(batch)
