"""KServe 0.21 SDK clients against a running blockserve; runs in the client venv.

Usage: python kserve_cases.py FAMILY HTTP_ADDRESS GRPC_ADDRESS INPUTS_NPY
FAMILY is rest (InferenceRESTClient, protocol v2) or grpc (InferenceGRPCClient). Prints one JSON
object: case name -> {"result": ...} or {"error": "..."} (kserve and tritonclient.grpc register
the same protobuf names, so they never share a process).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np
from case_outcomes import async_outcome
from google.protobuf.json_format import MessageToDict
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import RequestedOutput

MODEL = "digits"
INPUT = "input"
OUTPUT = "logits"
WAIT_S = 30.0


class Rest:
    def __init__(self, http_address: str, images: np.ndarray):
        self.base_url = f"http://{http_address}"
        self.images = images
        self.client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=WAIT_S, retries=0))

    async def server_live(self) -> bool:
        return await self.client.is_server_live(self.base_url)

    async def server_ready(self) -> bool:
        return await self.client.is_server_ready(self.base_url)

    async def model_ready(self) -> bool:
        return await self.client.is_model_ready(self.base_url, MODEL)

    async def infer(self) -> dict[str, Any]:
        """`set_data_from_numpy`'s default: binary input data, JSON outputs."""
        return await self.inferred("rest-binary-input", binary_input=True)

    async def infer_binary_outputs(self) -> dict[str, Any]:
        outputs = [RequestedOutput(OUTPUT, parameters={"binary_data": True})]
        return await self.inferred("rest-binary-outputs", binary_input=True, outputs=outputs)

    async def infer_json(self) -> dict[str, Any]:
        return await self.inferred("rest-json", binary_input=False)

    async def inferred(
        self, request_id: str, binary_input: bool, outputs: list[RequestedOutput] | None = None
    ) -> dict[str, Any]:
        tensor = InferInput(INPUT, list(self.images.shape), "FP32")
        tensor.set_data_from_numpy(self.images, binary_data=binary_input)
        request = InferRequest(MODEL, [tensor], request_id=request_id, request_outputs=outputs)
        return answer(await self.client.infer(self.base_url, request, model_name=MODEL))

    async def close(self) -> None:
        await self.client.close()


class Grpc:
    def __init__(self, grpc_address: str, images: np.ndarray):
        self.images = images
        self.client = InferenceGRPCClient(grpc_address, timeout=WAIT_S)

    async def server_live(self) -> bool:
        return await self.client.is_server_live()

    async def server_ready(self) -> bool:
        return await self.client.is_server_ready()

    async def model_ready(self) -> bool:
        return await self.client.is_model_ready(MODEL)

    async def server_metadata(self) -> dict[str, Any]:
        """Through the SDK's own generated stub (the client has no metadata method)."""
        stub = self.client._client_stub
        return MessageToDict(await stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=WAIT_S))

    async def model_metadata(self) -> dict[str, Any]:
        request = pb.ModelMetadataRequest(name=MODEL)
        return MessageToDict(await self.client._client_stub.ModelMetadata(request, timeout=WAIT_S))

    async def infer(self) -> dict[str, Any]:
        tensor = InferInput(INPUT, list(self.images.shape), "FP32")
        tensor.set_data_from_numpy(self.images)
        return answer(await self.client.infer(InferRequest(MODEL, [tensor], request_id="grpc")))

    async def close(self) -> None:
        await self.client.close()


def answer(response: Any) -> dict[str, Any]:
    output = next(output for output in response.outputs if output.name == OUTPUT)
    return {"id": response.id, "datatype": output.datatype, "data": output.as_numpy().tolist()}


CASES = {
    "rest": ["server_live", "server_ready", "model_ready", "infer", "infer_binary_outputs",
             "infer_json"],
    "grpc": ["server_live", "server_ready", "model_ready", "server_metadata", "model_metadata",
             "infer"],
}  # fmt: skip


async def run_cases(family: str, http_address: str, grpc_address: str, images: np.ndarray) -> dict:
    client = Rest(http_address, images) if family == "rest" else Grpc(grpc_address, images)
    outcomes: dict[str, Any] = {}
    try:
        for name in CASES[family]:
            outcomes[name] = await async_outcome(getattr(client, name))
    finally:
        await client.close()
    return outcomes


def main() -> None:
    family, http_address, grpc_address, inputs_path = sys.argv[1:5]
    images = np.load(inputs_path).astype(np.float32)
    outcomes = asyncio.run(run_cases(family, http_address, grpc_address, images))
    print(json.dumps(outcomes, default=str))


if __name__ == "__main__":
    main()
