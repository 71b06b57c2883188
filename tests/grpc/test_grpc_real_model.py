"""End to end through a real exported bundle: gRPC ModelInfer agrees with the eager network."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import torch
from local_ports import free_port

from models import create_model
from service.config import GrpcConfig, ServerConfig, parse_config
from service.grpc import start_grpc_server, stop_grpc_server
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated.grpc_service_pb2_grpc import GRPCInferenceServiceStub
from service.metrics import Metrics
from service.offload import Offloader
from service.repository import ModelRepository, ModelState


async def test_raw_and_typed_inference_match_the_eager_model(tmp_path: Path) -> None:
    config = parse_config(
        {
            "server": {"cache_dir": str(tmp_path)},
            "models": [{"name": "digits", "arch": "resnet_digits", "format": "onnx"}],
        }
    )
    repository = ModelRepository(config, Metrics())
    repository.start()
    await repository.wait_loaded()
    handle = repository.get("digits")
    assert handle.state is ModelState.READY, handle.reason
    port = free_port()
    pool = ThreadPoolExecutor(1)
    decoder = Offloader(pool, threads=1, max_backlog=1, retry_after_s=1)
    server_config = ServerConfig(grpc=GrpcConfig(port=port))
    server = await start_grpc_server(repository, server_config, "127.0.0.1", decoder)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = GRPCInferenceServiceStub(channel)
            metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name="digits"))
            shape = [3, *metadata.inputs[0].shape[1:]]  # (3, 1, 8, 8)
            images = np.random.default_rng(0).normal(size=shape).astype(np.float32)

            raw = pb.ModelInferRequest(model_name="digits")
            raw.inputs.add(name=metadata.inputs[0].name, datatype="FP32", shape=shape)
            raw.raw_input_contents.append(images.astype("<f4").tobytes())
            typed = pb.ModelInferRequest(model_name="digits")
            tensor = typed.inputs.add(name=metadata.inputs[0].name, datatype="FP32", shape=shape)
            tensor.contents.fp32_contents.extend(images.ravel().tolist())

            raw_response = await stub.ModelInfer(raw)
            typed_response = await stub.ModelInfer(typed)
    finally:
        await stop_grpc_server(server, 5.0)
        await repository.close()
        pool.shutdown(wait=True)

    # The eager twin of the bundle: the same random init the manifest records.
    assert handle.loaded.manifest["weights"]["source"] == "random-init, seed 0"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = create_model("resnet_digits").eval()
    with torch.no_grad():
        expected = network(torch.from_numpy(images)).numpy()  # (3, 10)
    raw_logits = np.frombuffer(raw_response.raw_output_contents[0], "<f4").reshape(3, 10)
    typed_output = typed_response.outputs[0]
    typed_logits = np.asarray(typed_output.contents.fp32_contents).reshape(typed_output.shape)
    np.testing.assert_allclose(raw_logits, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(typed_logits, raw_logits)
