"""HTTP compression on the hot routes: gzip and deflate request bodies (bounded when
decoded), and compressed answers when Accept-Encoding asks, as tritonclient reads them."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import numpy as np
import orjson
import pytest
from service_fakes import fake_loader, in_process, png_bytes, repository_config

from service.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from service.http import compression

INFER = "/v2/models/digits/infer"
REQUEST = {
    "inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.25] * 64}]
}
COMPRESS = {"gzip": gzip.compress, "deflate": zlib.compress}  # as tritonclient compresses
DECOMPRESS = {"gzip": gzip.decompress, "deflate": zlib.decompress}  # as tritonclient reads


@pytest.mark.parametrize(
    ("header", "coding"),
    [(None, "identity"), (b"gzip", "gzip"), (b" GZip ", "gzip"), (b"deflate", "deflate"),
     (b"identity", "identity"), (b"", "identity")],
)  # fmt: skip
def test_request_codings_are_gzip_deflate_or_identity(header, coding):
    assert compression.request_coding(header) == coding


@pytest.mark.parametrize("header", [b"br", b"gzip, deflate", b"x-gzip"])
def test_other_request_codings_are_unsupported_media_types_naming_them(header):
    with pytest.raises(UnsupportedMediaType, match=f"Content-Encoding {header.decode()!r}"):
        compression.request_coding(header)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_bodies_decode_within_the_limit(coding):
    body = orjson.dumps(REQUEST)
    assert compression.decode(coding, COMPRESS[coding](body), len(body)) == body
    bomb = COMPRESS[coding](b"\0" * 100_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match="decompresses past the 1000000-byte limit"):
            compression.decode(coding, bomb, 1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000  # never the whole 100 MB


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_broken_compressed_bodies_are_invalid_input(coding):
    compressed = COMPRESS[coding](orjson.dumps(REQUEST))
    with pytest.raises(InvalidInput, match=f"not valid {coding} data: the stream is cut short"):
        compression.decode(coding, compressed[:-8], 1 << 20)
    with pytest.raises(InvalidInput, match=f"not valid {coding} data"):
        compression.decode(coding, b"not compressed at all", 1 << 20)
    with pytest.raises(InvalidInput, match=f"data after the end of its {coding} stream"):
        compression.decode(coding, compressed + b"extra", 1 << 20)


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        (None, "identity"),
        (b"gzip", "gzip"),
        (b"deflate", "deflate"),
        (b"gzip, deflate", "gzip"),
        (b"deflate, gzip", "gzip"),
        (b"gzip;q=0.5, deflate", "deflate"),
        (b"gzip; q=0, deflate; q=0", "identity"),
        (b"*", "gzip"),
        (b"*;q=0, deflate", "deflate"),
        (b"br", "identity"),
        (b"identity", "identity"),
    ],
)
def test_the_answer_takes_the_clients_preferred_coding(header, coding):
    assert compression.response_coding(header) == coding


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_compressed_requests_are_answered_as_plain_ones(config, runtime, coding):
    body = orjson.dumps(REQUEST)
    png = png_bytes(np.full((8, 8), 64, np.uint8))
    async with in_process(config, fake_loader(runtime)) as (client, _):
        plain = await client.post(INFER, content=body)
        compressed = await client.post(
            INFER, content=COMPRESS[coding](body), headers={"Content-Encoding": coding}
        )
        predict = await client.post(
            "/predict",
            content=COMPRESS[coding](png),
            headers={"Content-Encoding": coding, "Content-Type": "image/png"},
        )

    assert compressed.status_code == 200, compressed.text
    assert compressed.json()["outputs"] == plain.json()["outputs"]
    assert predict.status_code == 200, predict.text
    np.testing.assert_array_equal(runtime.seen[0], runtime.seen[1])


async def test_a_compressed_binary_request_splits_after_decompression(config, runtime):
    pixels = np.full((1, 1, 8, 8), 0.25, np.float32)
    header = orjson.dumps(
        {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32",
                     "parameters": {"binary_data_size": pixels.nbytes}}]}
    )  # fmt: skip
    headers = {"Content-Encoding": "gzip", "Inference-Header-Content-Length": str(len(header))}
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post(
            INFER, content=gzip.compress(header + pixels.tobytes()), headers=headers
        )

    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"][:2] == [16.0, 1.0]


async def test_a_zip_bomb_is_413_and_the_service_keeps_serving(tmp_path, runtime):
    config = repository_config(tmp_path, {}, limits={"max_body_bytes": 64 * 1024})
    bomb = gzip.compress(b" " * 50_000_000)
    async with in_process(config, fake_loader(runtime)) as (client, serving):
        response = await client.post(INFER, content=bomb, headers={"Content-Encoding": "gzip"})
        after = await client.post(INFER, json=REQUEST)
        held = serving.bodies.held

    assert response.status_code == 413
    assert "decompresses past the 65536-byte limit" in response.json()["error"]
    assert after.status_code == 200
    assert held == 0  # nothing stays reserved


async def test_decoded_bodies_count_against_the_in_flight_body_budget(tmp_path, runtime):
    config = repository_config(tmp_path, {}, limits={"max_inflight_body_bytes": 16 * 1024})
    padded = orjson.dumps({**REQUEST, "id": "x" * 20_000})
    async with in_process(config, fake_loader(runtime)) as (client, serving):
        response = await client.post(
            INFER, content=gzip.compress(padded), headers={"Content-Encoding": "gzip"}
        )
        held = serving.bodies.held

    assert response.status_code == 503
    assert f"needs {len(padded)} more (limit 16384)" in response.json()["error"]
    assert held == 0


async def test_an_unknown_content_encoding_is_415_naming_it(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post(
            INFER, content=orjson.dumps(REQUEST), headers={"Content-Encoding": "br"}
        )

    assert response.status_code == 415
    assert "Content-Encoding 'br' is not supported" in response.json()["error"]


async def raw_post(client, path: str, **kwargs):
    """The response and its body exactly as sent (httpx does not decompress it)."""
    async with client.stream("POST", path, **kwargs) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, raw


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_answers_are_compressed_as_accept_encoding_asks(config, runtime, coding):
    binary = {**REQUEST, "parameters": {"binary_data_output": True}}
    async with in_process(config, fake_loader(runtime)) as (client, _):
        as_json, json_raw = await raw_post(
            client, INFER, json=REQUEST, headers={"Accept-Encoding": coding}
        )
        as_binary, binary_raw = await raw_post(
            client, INFER, json=binary, headers={"Accept-Encoding": coding}
        )

    for response in (as_json, as_binary):
        assert response.status_code == 200
        assert response.headers["content-encoding"] == coding
        assert response.headers["vary"] == "Accept-Encoding"
    assert orjson.loads(DECOMPRESS[coding](json_raw))["outputs"][0]["data"][:2] == [16.0, 1.0]
    body = DECOMPRESS[coding](binary_raw)
    length = int(as_binary.headers["inference-header-content-length"])
    assert orjson.loads(body[:length])["outputs"][0]["parameters"] == {"binary_data_size": 40}
    assert np.frombuffer(body[length:], "<f4")[:2].tolist() == [16.0, 1.0]


async def test_errors_and_unasked_answers_are_not_compressed(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        plain, plain_raw = await raw_post(
            client, INFER, json=REQUEST, headers={"Accept-Encoding": "identity"}
        )
        error, error_raw = await raw_post(
            client, "/v2/models/nope/infer", json=REQUEST, headers={"Accept-Encoding": "gzip"}
        )

    assert "content-encoding" not in plain.headers and plain.status_code == 200
    assert orjson.loads(plain_raw)["outputs"][0]["data"][:2] == [16.0, 1.0]
    assert "content-encoding" not in error.headers and error.status_code == 404
    assert "unknown model 'nope'" in orjson.loads(error_raw)["error"]
