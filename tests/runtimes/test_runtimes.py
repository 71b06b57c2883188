"""Runtimes serve a bundle's logits on CPU through one interface, validate their input and
refuse unusable devices clearly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from models.export import FORMATS, export_bundle, load_bundle
from models.registry import create_model
from service.runtimes import (
    DeviceUnavailableError,
    OnnxRuntime,
    TensorMeta,
    TorchScriptRuntime,
    load_runtime,
)

MODELS = {"resnet_tiny": (3, 32, 32), "mdnc_encoder1d": (1, 256)}
CASES = [(name, fmt) for name in MODELS for fmt in sorted(FORMATS)]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    cache = tmp_path_factory.mktemp("bundles")
    return {
        (name, fmt): load_bundle(
            export_bundle(name, fmt=fmt, cache_dir=cache, input_size=size, max_batch=4)
        )
        for name, size in MODELS.items()
        for fmt in sorted(FORMATS)
    }


def eager_logits(name: str, batch: np.ndarray) -> np.ndarray:
    torch.manual_seed(0)  # bundles without weights are "random-init, seed 0"
    model = create_model(name).eval()
    with torch.inference_mode():
        return model(torch.from_numpy(batch)).numpy()


def random_batch(size: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((size, *shape), dtype=np.float32)


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_runtime_serves_the_eager_logits_at_batch_1_and_7(bundles, name, fmt):
    runtime = load_runtime(bundles[name, fmt])
    runtime.warmup()
    for size in (1, 7):
        batch = random_batch(size, MODELS[name], seed=size)
        expected = eager_logits(name, batch)
        np.testing.assert_allclose(
            runtime.run(batch), expected, rtol=0, atol=1e-4 * np.abs(expected).max()
        )


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_runtime_describes_its_tensors_with_a_dynamic_batch(bundles, name, fmt):
    runtime = load_runtime(bundles[name, fmt], "auto")
    assert runtime.device == "cpu"
    assert runtime.input_meta == TensorMeta("input", (-1, *MODELS[name]), "float32")
    assert runtime.output_meta == TensorMeta("logits", (-1, 10), "float32")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_runtime_is_picked_by_the_bundle_format(bundles, fmt):
    expected = {"onnx": OnnxRuntime, "torchscript": TorchScriptRuntime}[fmt]
    assert isinstance(load_runtime(bundles["resnet_tiny", fmt], "cpu"), expected)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (np.zeros((2, 3, 32, 32), np.float64), "expected a float32 array of shape "
         r"\(B, 3, 32, 32\), got dtype float64"),
        (np.zeros((2, 3, 16, 32), np.float32), r"got shape \(2, 3, 16, 32\)"),
        (np.zeros((3, 32, 32), np.float32), r"got shape \(3, 32, 32\)"),
        (np.zeros((0, 3, 32, 32), np.float32), r"got shape \(0, 3, 32, 32\)"),
        ([[0.0]], "got list"),
    ],
    ids=["dtype", "spatial", "rank", "empty", "not-array"],
)  # fmt: skip
def test_run_rejects_wrong_inputs_naming_expected_and_got(bundles, fmt, batch, message):
    runtime = load_runtime(bundles["resnet_tiny", fmt], "cpu")
    with pytest.raises(ValueError, match=message):
        runtime.run(batch)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_run_accepts_non_contiguous_batches(bundles, fmt):
    runtime = load_runtime(bundles["resnet_tiny", fmt], "cpu")
    batch = random_batch(2, (3, 32, 32))
    strided = np.ascontiguousarray(batch.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    np.testing.assert_allclose(runtime.run(strided), runtime.run(batch), rtol=1e-6)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_concurrent_runs_from_worker_threads_match_serial_runs(bundles, fmt):
    runtime = load_runtime(bundles["resnet_tiny", fmt], "cpu")
    batches = [random_batch(1 + index % 3, (3, 32, 32), seed=index) for index in range(12)]
    serial = [runtime.run(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(runtime.run, batches))
    for got, want in zip(threaded, serial, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_cuda_without_a_gpu_is_refused_clearly_and_auto_falls_back_to_cpu(bundles, fmt):
    bundle = bundles["resnet_tiny", fmt]
    with pytest.raises(DeviceUnavailableError, match="device='cuda'"):
        load_runtime(bundle, "cuda")
    assert load_runtime(bundle, "auto").device == "cpu"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_unknown_devices_and_options_are_rejected(bundles, fmt):
    bundle = bundles["resnet_tiny", fmt]
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        load_runtime(bundle, "tpu")
    with pytest.raises(ValueError, match=f"{fmt} runtime: .*unexpected keyword argument 'turbo'"):
        load_runtime(bundle, "cpu", turbo=True)


def test_onnx_thread_counts_are_configurable_and_graph_optimisation_is_on(bundles):
    runtime = load_runtime(bundles["resnet_tiny", "onnx"], "cpu", intra_op_threads=1,
                           inter_op_threads=1)  # fmt: skip
    options = runtime.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert options.graph_optimization_level.name == "ORT_ENABLE_ALL"
    assert runtime.providers == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="intra_op_threads must be an int >= 0"):
        load_runtime(bundles["resnet_tiny", "onnx"], "cpu", intra_op_threads=-2)


def test_onnx_io_binding_path_gives_the_same_logits_as_plain_run(bundles):
    bundle = bundles["resnet_tiny", "onnx"]
    bound = load_runtime(bundle, "cpu", io_binding=True)
    plain = load_runtime(bundle, "cpu")
    assert (bound.io_binding, plain.io_binding) == (True, False)
    batch = random_batch(3, (3, 32, 32))
    np.testing.assert_array_equal(bound.run(batch), plain.run(batch))
