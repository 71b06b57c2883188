"""The binary tensor data extension on REST V2 infer, bodies built byte by byte as the Triton
clients build them: a JSON header, then each binary input's bytes in input order."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from service_fakes import FakeRuntime, fake_loader, in_process, repository_config

INFER = "/v2/models/digits/infer"
PIXELS = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8) / 64


def binary_input(array: np.ndarray, datatype: str = "FP32", name: str = "input") -> dict:
    size = array.nbytes
    return {"name": name, "shape": list(array.shape), "datatype": datatype,
            "parameters": {"binary_data_size": size}}  # fmt: skip


def binary_request(header: dict, *data: bytes) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a request whose JSON `header` is followed by `data`."""
    json_header = orjson.dumps(header)
    headers = {
        "Inference-Header-Content-Length": str(len(json_header)),
        "Content-Type": "application/octet-stream",
    }
    return json_header + b"".join(data), headers


def split_response(response) -> tuple[dict, dict[str, bytes]]:
    """The JSON header and each binary output's bytes, read as tritonclient reads them."""
    length = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:length])
    data, offset = {}, length
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            data[output["name"]] = response.content[offset : offset + size]
            offset += size
    assert offset == len(response.content)
    return header, data


def bytes_elements(raw: bytes) -> list[bytes]:
    elements, offset = [], 0
    while offset < len(raw):
        length = int.from_bytes(raw[offset : offset + 4], "little")
        elements.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return elements


async def test_binary_fp32_input_and_binary_outputs_as_tritonclient_sends_them(config, runtime):
    header = {"inputs": [binary_input(PIXELS)], "parameters": {"binary_data_output": True}}
    body, headers = binary_request(header, PIXELS.tobytes())
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post(INFER, content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    json_header, data = split_response(response)
    (output,) = json_header["outputs"]
    assert output == {
        "name": "logits",
        "datatype": "FP32",
        "shape": [1, 10],
        "parameters": {"binary_data_size": 40},
    }
    logits = np.frombuffer(data["logits"], "<f4")
    assert logits[:2].tolist() == [PIXELS.sum(), 1.0]  # the fake: [sum of inputs, batch size]
    np.testing.assert_array_equal(runtime.seen[0], PIXELS)


async def test_binary_uint8_pixels_give_what_json_pixels_give(config, runtime):
    pixels = np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8)
    body, headers = binary_request({"inputs": [binary_input(pixels, "UINT8")]}, pixels.tobytes())
    as_json = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "UINT8",
                           "data": pixels.ravel().tolist()}]}  # fmt: skip
    async with in_process(config, fake_loader(runtime)) as (client, _):
        binary = await client.post(INFER, content=body, headers=headers)
        json = await client.post(INFER, json=as_json)

    assert binary.status_code == 200 and json.status_code == 200
    assert binary.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in binary.headers
    assert binary.json()["outputs"] == json.json()["outputs"]
    np.testing.assert_array_equal(runtime.seen[0], runtime.seen[1])


@pytest.mark.parametrize(
    ("request_level", "output_level", "binary"),
    [
        (None, None, False),
        (True, None, True),
        (False, None, False),
        (True, False, False),
        (None, True, True),
        (False, True, True),
    ],
)
async def test_each_output_is_binary_as_its_own_or_the_requests_parameter_says(
    config, runtime, request_level, output_level, binary
):
    request: dict = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                 "data": PIXELS.ravel().tolist()}]}  # fmt: skip
    if request_level is not None:
        request["parameters"] = {"binary_data_output": request_level}
    if output_level is not None:
        request["outputs"] = [{"name": "logits", "parameters": {"binary_data": output_level}}]
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post(INFER, json=request)

    assert response.status_code == 200, response.text
    if binary:
        _, data = split_response(response)
        assert np.frombuffer(data["logits"], "<f4")[1] == 1.0
    else:
        assert "inference-header-content-length" not in response.headers
        assert response.json()["outputs"][0]["data"][1] == 1.0


async def test_classification_outputs_are_bytes_in_json_or_binary(config, runtime):
    def classify(binary: bool) -> dict:
        parameters = {"classification": 2, "binary_data": binary}
        return {"inputs": [binary_input(PIXELS)],
                "outputs": [{"name": "logits", "parameters": parameters}]}  # fmt: skip

    async with in_process(config, fake_loader(runtime)) as (client, _):
        as_json = await client.post(INFER, **request_kwargs(classify(False), PIXELS.tobytes()))
        as_binary = await client.post(INFER, **request_kwargs(classify(True), PIXELS.tobytes()))

    score = f"{PIXELS.sum():f}"
    expected = [f"{score}:0:class0", "1.000000:1:class1"]
    (output,) = as_json.json()["outputs"]
    assert (output["datatype"], output["shape"], output["data"]) == ("BYTES", [1, 2], expected)
    json_header, data = split_response(as_binary)
    assert json_header["outputs"][0]["datatype"] == "BYTES"
    assert json_header["outputs"][0]["shape"] == [1, 2]
    assert bytes_elements(data["logits"]) == [entry.encode() for entry in expected]


def request_kwargs(header: dict, *data: bytes) -> dict:
    body, headers = binary_request(header, *data)
    return {"content": body, "headers": headers}


async def test_several_binary_inputs_take_their_bytes_in_input_order(config, runtime):
    """The second input's bytes follow the first's; the model refuses the extra input by
    name, which shows both were cut from the body as declared."""
    mask = np.array([True, False])
    header = {"inputs": [binary_input(PIXELS), binary_input(mask, "BOOL", "mask")]}
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post(
            INFER, **request_kwargs(header, PIXELS.tobytes(), mask.tobytes())
        )

    assert response.status_code == 400
    assert "takes exactly one input 'input', got ['input', 'mask']" in response.json()["error"]


GOOD_HEADER = {"inputs": [binary_input(PIXELS)]}


def with_input(**changes) -> dict:
    return {"inputs": [{**binary_input(PIXELS), **changes}]}


@pytest.mark.parametrize(
    ("header", "data", "header_length", "message"),
    [
        (GOOD_HEADER, PIXELS.tobytes(), "99999", "Inference-Header-Content-Length must be"),
        (GOOD_HEADER, PIXELS.tobytes(), "12x", "got '12x'"),
        (GOOD_HEADER, PIXELS.tobytes(), "0", "from 1 to the body's"),
        (GOOD_HEADER, PIXELS.tobytes(), "-3", "got '-3'"),
        (
            GOOD_HEADER,
            PIXELS.tobytes() + b"\0",
            None,
            "binary data: the inputs declare 256 bytes ('input': 256) but 257 bytes follow",
        ),
        (
            GOOD_HEADER,
            PIXELS.tobytes()[:-4],
            None,
            "the inputs declare 256 bytes ('input': 256) but 252 bytes follow",
        ),
        (
            with_input(parameters={"binary_data_size": 252}),
            PIXELS.tobytes()[:-4],
            None,
            "input 'input': shape [1, 1, 8, 8] of FP32 needs 256 bytes, got 252",
        ),
        (
            with_input(data=[0.0] * 64),
            PIXELS.tobytes(),
            None,
            "input 'input': has both binary_data_size and data",
        ),
        (
            with_input(parameters={"binary_data_size": -256}),
            PIXELS.tobytes(),
            None,
            "input 'input': binary_data_size must be a non-negative integer, got -256",
        ),
        (
            with_input(parameters={"binary_data_size": "256"}),
            PIXELS.tobytes(),
            None,
            "binary_data_size must be a non-negative integer, got '256'",
        ),
        (
            {**GOOD_HEADER, "outputs": [{"name": "logits", "parameters": {"classification": 0}}]},
            PIXELS.tobytes(),
            None,
            "output 'logits': classification must be a positive integer",
        ),
    ],
)
async def test_bad_binary_requests_are_400_naming_the_problem(
    config, runtime, header, data, header_length, message
):
    body, headers = binary_request(header, data)
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = header_length
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post(INFER, content=body, headers=headers)
        after = await client.post(INFER, **request_kwargs(GOOD_HEADER, PIXELS.tobytes()))

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert after.status_code == 200  # the service keeps serving
    assert runtime.batch_sizes == [1]


async def test_binary_data_size_without_a_json_header_length_is_refused(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post(INFER, json=GOOD_HEADER)

    assert response.status_code == 400
    assert (
        "input 'input': binary_data_size needs the binary data after the JSON header"
        in (response.json()["error"])
    )


async def test_declared_binary_tensors_over_the_limit_are_413_before_reading_them(tmp_path):
    config = repository_config(tmp_path, {}, limits={"max_tensor_bytes": 1024})
    huge = {"name": "input", "shape": [100000, 1, 8, 8], "datatype": "FP32",
            "parameters": {"binary_data_size": 4}}  # fmt: skip
    async with in_process(config, fake_loader(FakeRuntime(num_classes=10))) as (client, _):
        response = await client.post(INFER, **request_kwargs({"inputs": [huge]}, b"\0" * 4))

    assert response.status_code == 413
    assert "input 'input': shape [100000, 1, 8, 8] of FP32" in response.json()["error"]


@pytest.mark.parametrize(
    ("value", "token"), [(np.nan, b"NaN"), (np.inf, b"Infinity"), (-np.inf, b"-Infinity")]
)
async def test_non_finite_outputs_are_written_as_json_tokens(config, runtime, value, token):
    pixels = PIXELS.copy()
    pixels[0, 0, 0, 0] = value
    json_tokens = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32",
                               "data": "DATA"}]}  # fmt: skip
    text = orjson.dumps(json_tokens).replace(
        b'"DATA"', b"[" + b",".join([token, *[b"%r" % float(v) for v in pixels.ravel()[1:]]]) + b"]"
    )
    async with in_process(config, fake_loader(runtime)) as (client, _):
        binary = await client.post(INFER, **request_kwargs(GOOD_HEADER, pixels.tobytes()))
        json = await client.post(INFER, content=text)

    for response in (binary, json):
        assert response.status_code == 200, response.text
        assert b'"data":[' + token + b",1.0,0.0," in response.content
