"""Stock tritonclient 2.73 calls against a running blockserve; runs in the client venv.

Usage: python tritonclient_cases.py FAMILY HTTP_ADDRESS GRPC_ADDRESS INPUTS_NPY TOKEN COPY_CONFIG
FAMILY is one of http, http.aio, grpc, grpc.aio; TOKEN is the server's API token (for loads and
unloads); COPY_CONFIG the JSON config of the served model, loaded under other names by the
repository cases. Prints one JSON object on stdout: case name ->
{"result": ...} or {"error": "..."}; the pytest side (test_tritonclient.py) judges the results.
Every client call is the library's own, unchanged; results are only turned into JSON.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import queue
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from case_outcomes import async_outcome

MODEL = "digits"
VERSION = "1"
UNKNOWN_MODEL = "no-such-model"
COPY = "digits_copy"  # the served model loaded again under this name (and the family's)
INPUT = "input"
OUTPUT = "logits"
CLASS_COUNT = 3
WAIT_S = 30.0
HEADERS = {"x-client-test": "tritonclient"}

Case = Callable[["Family"], Awaitable[Any]]
CASES: dict[str, tuple[Case, frozenset[str]]] = {}
ALL = frozenset({"http", "http.aio", "grpc", "grpc.aio"})
HTTP = frozenset({"http", "http.aio"})
GRPC = frozenset({"grpc", "grpc.aio"})


def case(families: frozenset[str] = ALL) -> Callable[[Case], Case]:
    def register(function: Case) -> Case:
        CASES[function.__name__] = (function, families)
        return function

    return register


@dataclass(frozen=True)
class Management:
    token: str  # the server's API token
    copy_config: str  # JSON: the served model's config, loaded under other names


class Family:
    """One tritonclient flavour: its module, a client, and how its answers read."""

    def __init__(
        self, name: str, addresses: tuple[str, str], images: np.ndarray, management: Management
    ):
        self.name = name
        self.is_http = name.startswith("http")
        self.module = importlib.import_module(f"tritonclient.{name}")
        self.address = addresses[0] if self.is_http else addresses[1]
        self.images = images
        self.management_headers = {"authorization": f"Bearer {management.token}"}
        self.copy_config = management.copy_config
        self.client = self.new_client()

    def new_client(self, **options: Any) -> Any:
        if self.name == "http":
            options = {"concurrency": 2, **options}
        return self.module.InferenceServerClient(self.address, **options)

    async def call(self, method: str, *args: Any, client: Any = None, **kwargs: Any) -> Any:
        result = getattr(client or self.client, method)(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    async def described(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A metadata/config/statistics answer as JSON (gRPC: the message as protobuf JSON)."""
        options = {} if self.is_http else {"as_json": True}
        return await self.call(method, *args, **kwargs, **options)

    async def model_config(self, **kwargs: Any) -> dict[str, Any]:
        """The model configuration (gRPC wraps it in ModelConfigResponse.config)."""
        config = await self.described("get_model_config", MODEL, **kwargs)
        return config if self.is_http else config["config"]

    async def repository_index(self) -> list[dict[str, Any]]:
        """The index entries (gRPC: protobuf JSON, which leaves empty strings out)."""
        index = await self.described("get_model_repository_index")
        return index if self.is_http else index.get("models", [])

    def inputs(self, binary_data: bool = True) -> list[Any]:
        tensor = self.module.InferInput(INPUT, list(self.images.shape), "FP32")
        if self.is_http:
            tensor.set_data_from_numpy(self.images, binary_data=binary_data)
        else:
            tensor.set_data_from_numpy(self.images)
        return [tensor]

    def outputs(self, class_count: int = 0, binary_data: bool = True) -> list[Any]:
        options = {"binary_data": binary_data} if self.is_http else {}
        return [self.module.InferRequestedOutput(OUTPUT, class_count=class_count, **options)]

    async def infer(self, request_id: str, model: str = MODEL, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("inputs", self.inputs())
        client = kwargs.pop("client", None)
        result = await self.call("infer", model, request_id=request_id, client=client, **kwargs)
        return {"sent_id": request_id, **answer(result)}

    async def close(self) -> None:
        await self.call("close")


def answer(result: Any) -> dict[str, Any]:
    """The output tensor and response id of an InferResult."""
    response = result.get_response()
    output = result.get_output(OUTPUT)
    datatype = output["datatype"] if isinstance(output, dict) else output.datatype
    data = result.as_numpy(OUTPUT)
    if data.dtype == object:
        data = np.vectorize(lambda item: item.decode() if isinstance(item, bytes) else item)(data)
    response_id = response["id"] if isinstance(response, dict) else response.id
    return {"id": response_id, "datatype": datatype, "data": data.tolist()}


@case()
async def server_live(family: Family) -> bool:
    return await family.call("is_server_live", headers=HEADERS)


@case()
async def server_ready(family: Family) -> bool:
    return await family.call("is_server_ready", headers=HEADERS)


@case()
async def model_ready(family: Family) -> bool:
    return await family.call("is_model_ready", MODEL, headers=HEADERS)


@case()
async def server_metadata(family: Family) -> dict[str, Any]:
    return await family.described("get_server_metadata")


@case()
async def model_metadata(family: Family) -> dict[str, Any]:
    return await family.described("get_model_metadata", MODEL)


@case()
async def model_config(family: Family) -> dict[str, Any]:
    return await family.model_config()


@case()
async def inference_statistics(family: Family) -> dict[str, Any]:
    """The model's statistics before and after one inference of the whole batch."""
    before = await family.described("get_inference_statistics", MODEL)
    await family.infer("statistics")
    after = await family.described("get_inference_statistics", MODEL)
    return {"before": before, "after": after, "batch": len(family.images)}


@case()
async def infer(family: Family) -> dict[str, Any]:
    return await family.infer("infer-default")


@case(HTTP)
async def infer_json_inputs(family: Family) -> dict[str, Any]:
    return await family.infer("json-inputs", inputs=family.inputs(binary_data=False))


@case(HTTP)
async def infer_json_outputs(family: Family) -> dict[str, Any]:
    return await family.infer("json-outputs", outputs=family.outputs(binary_data=False))


@case(HTTP)
async def infer_json_only(family: Family) -> dict[str, Any]:
    return await family.infer(
        "json-only",
        inputs=family.inputs(binary_data=False),
        outputs=family.outputs(binary_data=False),
    )


@case()
async def infer_requested_output(family: Family) -> dict[str, Any]:
    return await family.infer("requested-output", outputs=family.outputs())


@case()
async def classification(family: Family) -> dict[str, Any]:
    return await family.infer("classification", outputs=family.outputs(class_count=CLASS_COUNT))


@case(HTTP)
async def classification_json(family: Family) -> dict[str, Any]:
    outputs = family.outputs(class_count=CLASS_COUNT, binary_data=False)
    return await family.infer("classification-json", outputs=outputs)


@case()
async def infer_headers(family: Family) -> dict[str, Any]:
    return await family.infer("headers", headers=HEADERS)


@case()
async def infer_server_timeout_parameter(family: Family) -> dict[str, Any]:
    """Triton's per-request `timeout` parameter (microseconds), generous."""
    return await family.infer("server-timeout", timeout=10_000_000)


@case()
async def infer_client_timeout(family: Family) -> dict[str, Any]:
    """Inference within the client's own timeouts (HTTP: the connection's; gRPC: the call's)."""
    if not family.is_http:
        return await family.infer("client-timeout", client_timeout=WAIT_S)
    if family.name == "http":
        client = family.new_client(connection_timeout=WAIT_S, network_timeout=WAIT_S)
    else:
        client = family.new_client(conn_timeout=WAIT_S)
    try:
        return await family.infer("client-timeout", client=client)
    finally:
        await family.call("close", client=client)


@case()
async def every_model_statistics(family: Family) -> dict[str, Any]:
    """Statistics without a model name: every model's."""
    return await family.described("get_inference_statistics")


@case()
async def model_version_one(family: Family) -> dict[str, Any]:
    """The served version named explicitly (the `/versions/1` routes)."""
    version = {"model_version": VERSION}
    return {
        "ready": await family.call("is_model_ready", MODEL, **version),
        "metadata": await family.described("get_model_metadata", MODEL, **version),
        "config": await family.model_config(**version),
        "statistics": await family.described("get_inference_statistics", MODEL, **version),
        "inference": await family.infer("version-1", **version),
    }


@case()
async def unknown_model_error(family: Family) -> dict[str, Any]:
    """Inference on a model the server does not have fails with the server's own message."""
    return await server_error(family, "infer", UNKNOWN_MODEL, family.inputs())


@case()
async def repository_index(family: Family) -> list[dict[str, Any]]:
    return await family.repository_index()


@case()
async def load_and_unload_model(family: Family) -> dict[str, Any]:
    """A copy of the served model loaded from its config under a name of this family's, used,
    then unloaded (the other cases keep the server to themselves)."""
    name = f"{COPY}_{family.name.replace('.', '_')}"
    await family.call(
        "load_model", name, config=family.copy_config, headers=family.management_headers
    )
    try:
        loaded = {
            "ready": await family.call("is_model_ready", name),
            "inference": await family.infer(f"{name}-infer", model=name),
            "index": await family.repository_index(),
        }
    finally:
        await family.call("unload_model", name, headers=family.management_headers)
    return {
        "name": name,
        **loaded,
        "unloaded_index": await family.repository_index(),
        "after_unload": await server_error(family, "infer", name, family.inputs()),
    }


@case()
async def load_invalid_config(family: Family) -> dict[str, Any]:
    """A config that does not validate is refused, naming the field."""
    config = json.dumps({**json.loads(family.copy_config), "batching": {"max_queue": 0}})
    return await server_error(
        family, "load_model", f"{COPY}_invalid", config=config, headers=family.management_headers
    )


async def server_error(family: Family, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The status and message of the error the call raises."""
    try:
        await family.call(method, *args, **kwargs)
    except family.module.InferenceServerException as error:
        return {"status": error.status(), "message": error.message()}
    return {"status": None, "message": None}


def http_compression(direction: str, algorithm: str) -> Case:
    """An inference with the body compressed (`request`) or the answer asked compressed
    (`response`); reports the Content-Encoding asked for and the one the answer came with."""

    async def run(family: Family) -> dict[str, Any]:
        seen: list[str | None] = []
        result_type = family.module.InferResult
        if family.name == "http":
            original_init = result_type.__init__

            def recording_init(self: Any, response: Any, verbose: bool) -> None:
                seen.append(response.get("Content-Encoding"))
                original_init(self, response, verbose)

            result_type.__init__ = recording_init
        else:
            original_from_body = result_type.from_response_body

            def recording_from_body(
                body: bytes, verbose: bool = False, header_length=None, content_encoding=None
            ) -> Any:
                seen.append(content_encoding)
                return original_from_body(body, verbose, header_length, content_encoding)

            result_type.from_response_body = recording_from_body
        try:
            option = {f"{direction}_compression_algorithm": algorithm}
            result = await family.infer(f"{direction}-{algorithm}", **option)
        finally:
            if family.name == "http":
                result_type.__init__ = original_init
            else:
                result_type.from_response_body = original_from_body
        asked = algorithm if direction == "response" else None
        return {**result, "asked_encoding": asked, "content_encoding": seen[0] if seen else None}

    return run


for _direction in ("request", "response"):
    for _algorithm in ("gzip", "deflate"):
        _name = f"{_direction}_compression_{_algorithm}"
        CASES[_name] = (http_compression(_direction, _algorithm), HTTP)


def grpc_compression(algorithm: str) -> Case:
    async def run(family: Family) -> dict[str, Any]:
        return await family.infer(f"grpc-{algorithm}", compression_algorithm=algorithm)

    return run


for _algorithm in ("gzip", "deflate"):
    CASES[f"compression_{_algorithm}"] = (grpc_compression(_algorithm), GRPC)


@case()
async def async_infer(family: Family) -> dict[str, Any]:
    """Two inferences in flight at once, each answered (in any order) with its own id."""
    ids = ["async-0", "async-1"]
    return {"sent_ids": ids, "answers": await in_flight_together(family, ids)}


async def in_flight_together(family: Family, ids: list[str]) -> list[dict[str, Any]]:
    if family.name == "http":
        requests = [
            family.client.async_infer(MODEL, family.inputs(), request_id=request_id)
            for request_id in ids
        ]
        return [answer(request.get_result(timeout=WAIT_S)) for request in requests]
    if family.name == "grpc":
        answers: queue.Queue = queue.Queue()
        for request_id in ids:
            family.client.async_infer(
                MODEL,
                family.inputs(),
                partial(delivered, answers),
                request_id=request_id,
                client_timeout=WAIT_S,
            )
        return [collected(answers.get(timeout=WAIT_S)) for _ in ids]
    return list(await asyncio.gather(*(family.infer(request_id) for request_id in ids)))


def delivered(answers: queue.Queue, result: Any, error: Any) -> None:
    answers.put((result, error))


def collected(delivery: tuple[Any, Any]) -> dict[str, Any]:
    result, error = delivery
    if error is not None:
        raise error
    return answer(result)


STREAM_REQUESTS = 3


@case(GRPC)
async def stream_infer(family: Family) -> dict[str, Any]:
    """Several requests over one ModelStreamInfer stream, each answered (in any order)."""
    ids = [f"stream-{index}" for index in range(STREAM_REQUESTS)]
    return {"sent_ids": ids, "answers": await stream(family, ids, family.outputs())}


@case(GRPC)
async def stream_classification(family: Family) -> dict[str, Any]:
    ids = [f"stream-classification-{index}" for index in range(STREAM_REQUESTS)]
    outputs = family.outputs(class_count=CLASS_COUNT)
    return {"sent_ids": ids, "answers": await stream(family, ids, outputs)}


async def stream(family: Family, ids: list[str], outputs: list[Any]) -> list[dict[str, Any]]:
    if family.name == "grpc":
        answers: queue.Queue = queue.Queue()
        family.client.start_stream(callback=partial(delivered, answers), headers=HEADERS)
        try:
            for request_id in ids:
                family.client.async_stream_infer(
                    MODEL, family.inputs(), outputs=outputs, request_id=request_id
                )
            return [collected(answers.get(timeout=WAIT_S)) for _ in ids]
        finally:
            family.client.stop_stream()

    async def requests():
        for request_id in ids:
            yield {"model_name": MODEL, "inputs": family.inputs(), "outputs": outputs,
                   "request_id": request_id}  # fmt: skip

    results = []
    responses = family.client.stream_infer(requests(), stream_timeout=WAIT_S, headers=HEADERS)
    async for result, error in responses:
        results.append(collected((result, error)))
        if len(results) == len(ids):
            break
    return results


async def run_cases(
    family_name: str, addresses: tuple[str, str], images: np.ndarray, management: Management
) -> dict:
    family = Family(family_name, addresses, images, management)  # aio clients need the loop
    outcomes: dict[str, Any] = {}
    try:
        for name, (function, families) in CASES.items():
            if family.name not in families:
                continue
            outcomes[name] = await async_outcome(partial(function, family))
    finally:
        await family.close()
    return outcomes


def main() -> None:
    family_name, http_address, grpc_address, inputs_path, token, copy_config = sys.argv[1:7]
    images = np.load(inputs_path).astype(np.float32)
    management = Management(token, copy_config)
    addresses = (http_address, grpc_address)
    outcomes = asyncio.run(run_cases(family_name, addresses, images, management))
    print(json.dumps(outcomes, default=str))


if __name__ == "__main__":
    main()
