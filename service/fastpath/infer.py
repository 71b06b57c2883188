"""`POST /v2/models/{name}[/versions/{version}]/infer`: Open Inference Protocol V2 tensors,
as JSON or with binary tensor data."""

from __future__ import annotations

import functools

import numpy as np

from service.fastpath.exchange import JSON_CONTENT_TYPE, Exchange
from service.repository import ModelHandle
from service.serving import Serving
from service.v2 import (
    OutputRequest,
    model_input,
    model_outputs,
    requested_outputs,
    response_id,
)
from service.v2.binary import BINARY_CONTENT_TYPE, HEADER_LENGTH, header_length, infer_response
from service.v2.json_request import InferRequest, parse_infer_request


async def infer(serving: Serving, exchange: Exchange, params: dict[str, str]) -> None:
    """Inference on V2 tensors; outputs are flat row-major JSON data or binary data."""
    deadline = exchange.deadline()
    handle = serving.repository.get(params["name"], params.get("version"))
    exchange.model, exchange.version = handle.name, handle.version
    limits = serving.config.server.limits
    with handle.admission(), exchange.held_body(serving.bodies, serving.decoder) as body_reader:
        body = await body_reader.read(limits.max_body_bytes, deadline)
        json_length = header_length(exchange.headers.get(HEADER_LENGTH), len(body))
        work = functools.partial(decode_request, handle, body, limits.max_tensor_bytes, json_length)
        inline_max_bytes = serving.config.server.imaging.inline_max_bytes
        # Binary data costs no parsing: only the JSON part decides where the work runs.
        request, outputs, batch = await serving.decoder.run_unless_small(
            len(body) if json_length is None else json_length, inline_max_bytes, work, deadline
        )
    logits = await exchange.until_answered(handle.submit(batch, deadline))
    tensors = model_outputs(handle, logits, outputs)
    response = infer_response(
        {"model_name": handle.name, "model_version": handle.version, "id": response_id(request.id)},
        tensors,
        [request.output_is_binary(tensor.name) for tensor in tensors],
    )
    if response.header_length is None:
        await exchange.send_body(200, response.content, JSON_CONTENT_TYPE)
    else:
        length_header = (HEADER_LENGTH, str(response.header_length).encode())
        await exchange.send_body(200, response.content, BINARY_CONTENT_TYPE, [length_header])


def decode_request(
    handle: ModelHandle, body: bytes, max_tensor_bytes: int, json_length: int | None
) -> tuple[InferRequest, list[OutputRequest], np.ndarray]:
    """Parse and check an infer request: the request, the outputs to answer with, and the
    model's batch. Blocking (runs in the decode pool unless the body is small)."""
    request = parse_infer_request(
        body, max_tensor_bytes=max_tensor_bytes, header_length=json_length
    )
    outputs = requested_outputs(handle, [output.request for output in request.outputs])
    return request, outputs, model_input(handle, request.inputs)
