"""V2 JSON infer request parsing: `parse_infer_request` against `orjson.loads` alone and against
the pydantic route it replaced, on the digits body (1x1x8x8 FP32) and on ~30 MiB bodies.

    .venv/bin/python bench/v2_json_request.py [--large-mib 30]

Prints microseconds per parse (best of several repeats) and, for the large bodies, seconds per
parse and the tracemalloc peak of one parse. Asserts nothing.
"""

from __future__ import annotations

import argparse
import timeit
import tracemalloc
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from service.v2 import parse_infer_request, tensor_from_data

LIMIT = 1 << 30


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Input(_Message):
    name: str
    shape: list[StrictInt]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class _Request(_Message):
    """The pydantic envelope the REST router validated with before `parse_infer_request`."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[_Input] = Field(min_length=1)


def pydantic_route(body: bytes) -> list[np.ndarray]:
    payload = _Request.model_validate(orjson.loads(body))
    return [tensor_from_data(t.name, t.datatype, t.shape, t.data) for t in payload.inputs]


def new_route(body: bytes) -> list[np.ndarray]:
    return [t.array for t in parse_infer_request(body, max_tensor_bytes=LIMIT).inputs]


def request_body(shape: list[int], datatype: str, values: list[str], nested: bool) -> bytes:
    if nested:
        width = shape[-1]
        rows = ("[" + ",".join(values[i : i + width]) + "]" for i in range(0, len(values), width))
        data = "[" + ",".join(rows) + "]"
    else:
        data = "[" + ",".join(values) + "]"
    envelope = {"id": "bench", "inputs": [{"name": "input", "shape": shape, "datatype": datatype}]}
    return orjson.dumps(envelope)[:-3] + b',"data":' + data.encode() + b"}]}"


def microseconds(call, body: bytes) -> float:
    number = 2000
    return min(timeit.repeat(lambda: call(body), number=number, repeat=7)) / number * 1e6


def large_run(call, body: bytes) -> tuple[float, int]:
    """Seconds for one parse, then the traced peak of another (tracemalloc slows it down)."""
    seconds = timeit.timeit(lambda: call(body), number=1)
    tracemalloc.start()
    try:
        call(body)
        return seconds, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-mib", type=float, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    digits = request_body([1, 1, 8, 8], "FP32", [f"{v:.6f}" for v in rng.random(64)], False)
    print(f"digits body ({len(digits)} bytes), microseconds per parse:")
    routes = [("orjson.loads", orjson.loads), ("pydantic route", pydantic_route),
              ("parse_infer_request", new_route)]  # fmt: skip
    took = {label: microseconds(call, digits) for label, call in routes}
    for label, micros in took.items():
        print(f"  {label:<20} {micros:7.2f} us  (+{micros - took['orjson.loads']:.2f})")

    size = int(args.large_mib * 2**20)
    cases = [
        ("FP32 flat", "FP32", [f"{v:.9f}" for v in rng.random(size // 12)], False),
        ("FP32 nested", "FP32", [f"{v:.9f}" for v in rng.random(size // 12)], True),
        ("UINT8 flat", "UINT8", [str(v) for v in rng.integers(0, 256, size // 4)], False),
    ]
    print("large bodies: seconds per parse and peak traced memory:")
    for label, datatype, values, nested in cases:
        count = len(values) // 500 * 500
        body = request_body([count // 500, 500], datatype, values[:count], nested)
        del values
        for route, call in [("pydantic route", pydantic_route), ("parse_infer_request", new_route)]:
            seconds, peak = large_run(call, body)
            print(
                f"  {label:<12} {len(body) / 2**20:5.1f} MiB  {route:<20} {seconds:6.2f} s  "
                f"peak {peak / 2**20:7.1f} MiB = {peak / len(body):5.2f} x body"
            )


if __name__ == "__main__":
    main()
