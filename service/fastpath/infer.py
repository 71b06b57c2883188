"""`POST /v2/models/{name}[/versions/{version}]/infer`: Open Inference Protocol V2 tensors."""

from __future__ import annotations

import functools
import itertools
import os

import numpy as np

from service.fastpath.exchange import Exchange
from service.repository import ModelHandle
from service.serving import Serving
from service.v2 import check_version, model_input, model_outputs, requested_outputs, tensor_to_data
from service.v2.json_request import InferRequest, parse_infer_request

# Ids for requests that bring none: unique within this server process, cheap to make.
RESPONSE_IDS = map("{}-{}".format, itertools.repeat(os.urandom(6).hex()), itertools.count(1))


async def infer(serving: Serving, exchange: Exchange, params: dict[str, str]) -> None:
    """Inference on JSON tensors; outputs are flat row-major data."""
    deadline = exchange.deadline()
    handle = serving.repository.get(params["name"])
    exchange.model = handle.name
    check_version(handle, params.get("version"))
    limits = serving.config.server.limits
    with handle.admission(), exchange.held_body(serving.bodies) as body_reader:
        body = await body_reader.read(limits.max_body_bytes, deadline)
        work = functools.partial(decode_request, handle, body, limits.max_tensor_bytes)
        inline_max_bytes = serving.config.server.imaging.inline_max_bytes
        request, output_names, batch = await serving.decoder.run_unless_small(
            len(body), inline_max_bytes, work, deadline
        )
    logits = await exchange.until_answered(handle.submit(batch, deadline))
    outputs = model_outputs(handle, logits, output_names)
    await exchange.send_json(
        200,
        {
            "model_name": handle.name,
            "model_version": handle.version,
            "id": request.id if request.id is not None else next(RESPONSE_IDS),
            "outputs": [
                {
                    "name": tensor.name,
                    "datatype": tensor.datatype,
                    "shape": list(tensor.array.shape),
                    "data": tensor_to_data(tensor.array),
                }
                for tensor in outputs
            ],
        },
    )


def decode_request(
    handle: ModelHandle, body: bytes, max_tensor_bytes: int
) -> tuple[InferRequest, list[str], np.ndarray]:
    """Parse and check an infer request: the request, the output names to answer with, and
    the model's batch. Blocking (runs in the decode pool unless the body is small)."""
    request = parse_infer_request(body, max_tensor_bytes=max_tensor_bytes)
    output_names = requested_outputs(handle, [output.name for output in request.outputs])
    return request, output_names, model_input(handle, request.inputs)
