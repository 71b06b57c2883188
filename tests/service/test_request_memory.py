"""Memory of a real `blockserve serve` process under large V2 JSON bodies: bounded while they
are served, and given back afterwards."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_process import digits_config, serve

MIB = 1024 * 1024
BODY_MIB = 16
CONCURRENT = 4
ALLOWED_PER_BODY = 3  # peak memory a request may cost, in multiples of its body


def v2_body(size: int) -> bytes:
    """A digits V2 request of about `size` bytes: FP32 values written like typical floats."""
    values_per_image = 64
    text_per_image = values_per_image * len("0.12345678,")
    images = size // text_per_image
    rng = np.random.default_rng(0)
    data = ",".join(f"{v:.8f}" for v in rng.uniform(0, 1, 2000))  # a repeated block of text
    repeated = (data + ",") * (images * values_per_image // 2000 + 1)
    values = repeated.split(",", images * values_per_image)[:-1]
    shape = f"[{images},1,8,8]"
    head = f'{{"inputs":[{{"name":"input","shape":{shape},"datatype":"FP32","data":['
    return (head + ",".join(values) + "]}]}").encode()


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


@pytest.fixture(scope="module")
def server(digits_weights, bundle_cache, tmp_path_factory):
    directory = tmp_path_factory.mktemp("memory")
    batching = {"max_batch_size": 64, "max_queue": 100_000}
    config = digits_config(directory, digits_weights, bundle_cache, batching=batching)
    with serve(config, directory) as running:
        yield running


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_large_v2_bodies_cost_at_most_three_times_their_size_and_memory_is_returned(server):
    body = v2_body(BODY_MIB * MIB)
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.base_url, timeout=300) as client:
        warm = client.post("/v2/models/digits/infer", content=body, headers=headers)
        assert warm.status_code == 200, warm.text
        baseline = memory_kib(server.process.pid)["VmRSS"]
        # VmHWM only grows: compare the peak of the concurrent round with the RSS before it
        with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
            answers = list(
                pool.map(
                    lambda _: client.post("/v2/models/digits/infer", content=body, headers=headers),
                    range(CONCURRENT),
                )
            )
        after = memory_kib(server.process.pid)

    assert [answer.status_code for answer in answers] == [200] * CONCURRENT
    bodies_kib = CONCURRENT * len(body) // 1024
    assert after["VmHWM"] - baseline <= ALLOWED_PER_BODY * bodies_kib
    assert after["VmRSS"] - baseline <= len(body) // 1024  # the round's buffers went back
