"""Parsing a V2 JSON infer request: the envelope, the declared-size limit, numeric data parsed
in bounded memory from large bodies, non-finite values (NaN, Infinity, -Infinity tokens), and
the requested outputs' parameters."""

from __future__ import annotations

import tracemalloc
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from service.errors import InvalidInput, PayloadTooLarge
from service.v2 import (
    InputTensor,
    OutputRequest,
    RequestedOutput,
    model_input,
    numpy_dtype,
    parse_infer_request,
    tensor_from_data,
    tensor_from_raw,
)
from service.v2.json_request import SCAN_ABOVE_BYTES

LIMIT = 64 * 1024 * 1024
INPUT = {"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.5]}


def parse(body: bytes | dict, limit: int = LIMIT):
    return parse_infer_request(
        body if isinstance(body, bytes) else orjson.dumps(body), max_tensor_bytes=limit
    )


def test_a_request_parses_to_its_fields_ignoring_unknown_keys():
    request = parse(
        {
            "id": "r1",
            "parameters": {"priority": 1},
            "inputs": [INPUT, {**INPUT, "name": "mask", "datatype": "BOOL", "data": [True, False]}],
            "outputs": [{"name": "logits", "parameters": {"top_k": 2}}, {"name": "probs"}],
            "extra": [1, 2, 3],
        }
    )
    assert (request.id, request.parameters) == ("r1", {"priority": 1})
    assert [(t.name, t.datatype) for t in request.inputs] == [("input", "FP32"), ("mask", "BOOL")]
    np.testing.assert_array_equal(request.inputs[0].array, np.array([[0.5, 1.5]], np.float32))
    assert request.inputs[1].array.tolist() == [[True, False]]
    assert request.outputs == [
        RequestedOutput("logits", {"top_k": 2}),
        RequestedOutput("probs", {}),
    ]
    assert [output.request for output in request.outputs] == [
        OutputRequest("logits"),
        OutputRequest("probs"),
    ]
    assert (parse({"inputs": [INPUT]}).id, parse({"inputs": [INPUT]}).outputs) == (None, [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"inputs": [', "body is not valid JSON: "),
        (
            b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [nan]}]}',
            "body is not valid JSON: ",
        ),
        (
            b'{"inputs": [{"name": "input", "shape": [1], "datatype": "INT32", "data": [NaN]}]}',
            "input 'input': INT32 data must be integers, got float64",
        ),
        (b"[1, 2]", "invalid inference request: body: Input should be a valid dictionary"),
        ({"id": "x"}, "invalid inference request: inputs: Field required"),
        ({"inputs": {}}, "inputs: Input should be a valid list"),
        ({"inputs": []}, "inputs: List should have at least 1 item"),
        ({"inputs": [1]}, "inputs[0]: Input should be a valid dictionary"),
        ({"inputs": [INPUT, {"name": "b"}]}, "inputs[1].shape: Field required"),
        ({"inputs": [{**INPUT, "name": 3}]}, "inputs[0].name: Input should be a valid string"),
        ({"inputs": [{**INPUT, "shape": "1x2"}]}, "inputs[0].shape: Input should be a valid list"),
        (
            {"inputs": [{**INPUT, "shape": [1, "2"]}]},
            "inputs[0].shape[1]: Input should be a valid integer",
        ),
        (
            {"inputs": [{**INPUT, "shape": [True, 2]}]},
            "inputs[0].shape[0]: Input should be a valid integer",
        ),
        (
            {"inputs": [{**INPUT, "shape": [-1, 2]}]},
            "input 'input': shape [-1, 2] has a negative dimension",
        ),
        (
            {"inputs": [{**INPUT, "datatype": 32}]},
            "inputs[0].datatype: Input should be a valid string",
        ),
        ({"inputs": [{**INPUT, "datatype": "FP99"}]}, "unknown datatype 'FP99'"),
        ({"inputs": [{**INPUT, "data": 0.5}]}, "inputs[0].data: Input should be a valid list"),
        (
            {"inputs": [{**INPUT, "parameters": []}]},
            "inputs[0].parameters: Input should be a valid dictionary",
        ),
        (
            {"inputs": [{**INPUT, "parameters": {"binary_data_size": 8}}]},
            "input 'input': has both binary_data_size and data",
        ),
        (
            {"inputs": [{"name": "b", "shape": [2], "datatype": "FP32"}]},
            "inputs[0].data: Field required",
        ),
        (
            {"inputs": [{"name": "b", "shape": [2], "datatype": "FP32", "parameters": {}}]},
            "inputs[0].data: Field required",
        ),
        (
            {"inputs": [{**INPUT, "outputs": 1}], "parameters": {"binary_data_output": 1}},
            "parameters.binary_data_output: Input should be a valid boolean",
        ),
        (
            {"inputs": [INPUT], "id": 7},
            "invalid inference request: id: Input should be a valid string",
        ),
        ({"inputs": [INPUT], "parameters": 1}, "parameters: Input should be a valid dictionary"),
        ({"inputs": [INPUT], "outputs": {}}, "outputs: Input should be a valid list"),
        (
            {"inputs": [INPUT], "outputs": ["logits"]},
            "outputs[0]: Input should be a valid dictionary",
        ),
        ({"inputs": [INPUT], "outputs": [{}]}, "outputs[0].name: Field required"),
        (
            {"inputs": [INPUT], "outputs": [{"name": "o", "parameters": {"classification": 0}}]},
            "output 'o': classification must be a positive integer",
        ),
        (
            {"inputs": [INPUT], "outputs": [{"name": "o", "parameters": {"classification": "3"}}]},
            "output 'o': classification must be a positive integer",
        ),
        (
            {"inputs": [INPUT], "outputs": [{"name": "o", "parameters": {"classification": True}}]},
            "output 'o': classification must be a positive integer",
        ),
        (
            {"inputs": [INPUT], "outputs": [{"name": "o", "parameters": {"binary_data": 1}}]},
            "output 'o': binary_data must be true or false, got 1",
        ),
        (
            {"inputs": [{**INPUT, "data": [1]}]},
            "input 'input': shape [1, 2] needs 2 values, data has 1",
        ),
    ],
)
def test_a_bad_envelope_is_invalid_input_naming_the_field(body, message):
    with pytest.raises(InvalidInput) as error:
        parse(body)
    assert type(error.value) is InvalidInput
    assert message in str(error.value)


def numbers_body(shape, data, datatype="FP32", **envelope) -> bytes:
    tensor = {"name": "pixels", "shape": shape, "datatype": datatype, "data": data}
    return orjson.dumps({**envelope, "inputs": [tensor]})


def raw_body(shape, data_text: str, datatype="FP32") -> bytes:
    """A request whose `data` is `data_text` verbatim."""
    return numbers_body(shape, "DATA", datatype).replace(b'"DATA"', data_text.encode())


@pytest.mark.parametrize("large", [False, True], ids=["small body", "large body"])
def test_declared_tensor_bytes_are_checked_before_any_data(large):
    data = "[" + ",".join(["1"] * (SCAN_ABOVE_BYTES if large else 3)) + "]"
    body = raw_body([100000, 100000], data)
    with pytest.raises(
        PayloadTooLarge,
        match=r"input 'pixels': shape \[100000, 100000\] of FP32 "
        r"is 40000000000 bytes.*the limit is 1024 bytes",
    ):
        parse(body, limit=1024)


def test_the_size_limit_applies_to_the_sum_of_the_inputs():
    second = {**INPUT, "name": "second", "shape": [64], "data": [0] * 64}
    body = {"inputs": [{**INPUT, "shape": [64], "data": [0] * 64}, second]}
    assert len(parse(body, limit=512).inputs) == 2
    with pytest.raises(
        PayloadTooLarge, match=r"input 'second'.*tensors to 512 bytes; the limit is 511"
    ):
        parse(body, limit=511)


ROWS = {False: 2, True: 800}  # rows of 40 values: a body under / over SCAN_ABOVE_BYTES


def float_rows(large: bool) -> list[list[float]]:
    values = np.random.default_rng(7).random((ROWS[large], 40)).round(9)
    return values.tolist()


def outcome(call):
    """The array a parse gives, or its error: type and message."""
    try:
        return call()
    except InvalidInput as error:
        return type(error), str(error)


def same_outcome(first, second) -> bool:
    if isinstance(first, np.ndarray) and isinstance(second, np.ndarray):
        return first.dtype == second.dtype and np.array_equal(first, second)
    return first == second


DATA_CASES = {
    "flat": lambda rows: ([len(rows), 40], [v for row in rows for v in row]),
    "nested": lambda rows: ([len(rows), 40], rows),
    "nested with a unit axis": lambda rows: ([len(rows), 1, 40], [[row] for row in rows]),
    "too few values": lambda rows: ([len(rows), 41], [v for row in rows for v in row]),
    "nested transposed": lambda rows: ([40, len(rows)], rows),
    "nested deeper than shape": lambda rows: (
        [len(rows), 40],
        [[[v] for v in row] for row in rows],
    ),
    "nested, flat shape": lambda rows: ([len(rows) * 40], rows),
    "ragged row": lambda rows: ([len(rows), 40], [*rows[:-1], rows[-1][:-1]]),
    "ragged depth": lambda rows: ([len(rows), 40], [*rows[:-1], [rows[-1]]]),
    "scalar among rows": lambda rows: ([len(rows), 40], [*rows[:-1], 0.5]),
    "empty rows": lambda rows: ([len(rows), 0], [[] for _ in rows]),
}


@pytest.mark.parametrize("large", [False, True], ids=["small body", "large body"])
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_numeric_data_gives_the_same_tensor_or_error_on_both_routes(case, large):
    shape, data = DATA_CASES[case](float_rows(large))
    body = numbers_body(shape, data, id='"data": [1, 2, 3]')
    assert (len(body) > SCAN_ABOVE_BYTES) is large or case == "empty rows"
    parsed = outcome(lambda: parse(body).inputs[0].array)
    expected = outcome(lambda: tensor_from_data("pixels", "FP32", shape, data))
    assert same_outcome(parsed, expected), (parsed, expected)


@pytest.mark.parametrize("large", [False, True], ids=["small body", "large body"])
@pytest.mark.parametrize(
    ("datatype", "last", "message"),
    [
        ("UINT8", 255, None),
        ("UINT8", 256, "UINT8 values must lie in [0, 255]"),
        ("INT8", -129, "INT8 values must lie in [-128, 127]"),
        ("UINT8", 1.5, "UINT8 data must be integers, got float64"),
        ("BOOL", 1, "BOOL data must be true/false, got int64"),
        ("FP16", 1e5, "input 'pixels': values up to 100000 overflow FP16"),
        ("FP32", 1e300, "input 'pixels': values up to 1e+300 overflow FP32"),
        ("FP64", 1e300, None),
    ],
)
def test_values_are_cast_to_the_datatype_or_refused_on_both_routes(datatype, last, message, large):
    data = [int(v) for v in np.random.default_rng(3).integers(0, 100, ROWS[large] * 40 - 1)]
    body = numbers_body([len(data) + 1], [*data, last], datatype)
    assert (len(body) > SCAN_ABOVE_BYTES) is large
    if message is None:
        array = parse(body).inputs[0].array
        assert array.dtype == numpy_dtype(datatype)
        assert array.tolist() == [*data, last]
    else:
        with pytest.raises(InvalidInput) as error:
            parse(body)
        assert message in str(error.value)


@pytest.mark.parametrize("large", [False, True], ids=["small body", "large body"])
@pytest.mark.parametrize(
    "data",
    [
        "[1,,2]",
        "[1,2,]",
        "[,1,2]",
        "[[1,2][3,4]]",
        "[[1,2],,[3,4]]",
        "[[1,2],[3,4],]",
        "[[1,2],[3,4]",
        "[1,2]]",
        "[1,-]",
        "[01,2]",
        "[1e,2]",
        "[[1,2]],[[3,4]]",
        "[[],[1,]]",
    ],
)
def test_malformed_numeric_data_is_not_valid_json_on_both_routes(data, large):
    padding = ",".join(["0"] * (SCAN_ABOVE_BYTES // 2 if large else 1))
    data = data.replace("1", "1," + padding, 1)
    body = raw_body([2, 2], data)
    with pytest.raises(InvalidInput, match="body is not valid JSON"):
        parse(body)


@pytest.mark.parametrize("large", [False, True], ids=["small body", "large body"])
def test_empty_lists_need_commas_between_them_on_both_routes(large):
    padding = {"id": "x" * SCAN_ABOVE_BYTES} if large else {}
    body = numbers_body([2, 0], "DATA", **padding)
    empty = parse(body.replace(b'"DATA"', b"[[], []]")).inputs[0].array
    assert empty.shape == (2, 0) and empty.dtype == np.float32
    with pytest.raises(InvalidInput, match="body is not valid JSON"):
        parse(body.replace(b'"DATA"', b"[[] []]"))


TRICKY = 'x\\" "data": [1, 2, 3] \\\\'


WORDS = {"name": "words", "shape": [3], "datatype": "BYTES", "data": ["[1]", "data", TRICKY]}


@pytest.mark.parametrize(
    ("envelope", "pixels_members", "more_inputs"),
    [
        ({"id": '"data": [1,2,3]'}, {}, []),
        ({"parameters": {"note": TRICKY, "data": [4, 5, 6]}}, {}, []),
        ({}, {'x"data': [7, 8]}, []),
        ({}, {}, [WORDS]),
    ],
    ids=["id", "parameters", "key ending in a quote", "strings"],
)
def test_numeric_lists_in_strings_or_other_members_stay_where_they_are(
    envelope, pixels_members, more_inputs
):
    rows = float_rows(large=True)
    pixels = {"name": "pixels", "shape": [len(rows), 40], "datatype": "FP32", "data": rows}
    body = orjson.dumps({**envelope, "inputs": [{**pixels, **pixels_members}, *more_inputs]})
    assert len(body) > SCAN_ABOVE_BYTES
    request = parse(body)
    assert request.id == envelope.get("id")
    assert request.parameters == envelope.get("parameters", {})
    np.testing.assert_array_equal(request.inputs[0].array, np.array(rows, np.float32))
    assert [tensor.array.tolist() for tensor in request.inputs[1:]] == [
        [b"[1]", b"data", TRICKY.encode()] for _ in more_inputs
    ]


def digits_text(count: int, datatype: str) -> list[str]:
    rng = np.random.default_rng(11)
    if datatype == "UINT8":
        return [str(v) for v in rng.integers(0, 256, count)]
    return [f"{v:.9f}" for v in rng.random(count)]


@pytest.mark.parametrize(
    ("datatype", "nested"), [("FP32", False), ("FP32", True), ("UINT8", False)]
)
def test_a_large_body_is_parsed_within_three_times_its_size(datatype, nested):
    width = 500
    count = (8 << 20) // (11 if datatype == "FP32" else 4) // width * width
    values = digits_text(count, datatype)
    if nested:
        rows = ("[" + ",".join(values[i : i + width]) + "]" for i in range(0, count, width))
        data = "[" + ",".join(rows) + "]"
    else:
        data = "[" + ",".join(values) + "]"
    shape = [count // width, width]
    body = raw_body(shape, data, datatype)
    del values, data
    tracemalloc.start()
    try:
        request = parse(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert request.inputs[0].array.shape == tuple(shape)
    assert peak <= 3 * len(body), f"peak {peak} bytes for a {len(body)}-byte body"


DIGITS = SimpleNamespace(
    name="digits", ready=lambda: SimpleNamespace(input_name="input", input_shape=(1, 2, 2))
)


def test_fp64_values_beyond_float32_are_refused_naming_the_tensor():
    request = parse(numbers_body([1, 1, 2, 2], [0.5, -1e300, 2, 3], "FP64"))
    assert request.inputs[0].array.dtype == np.float64
    tensor = InputTensor("input", "FP64", request.inputs[0].array)
    with pytest.raises(
        InvalidInput, match=r"input 'input': FP64 values up to 1e\+300 overflow the model's float32"
    ):
        model_input(DIGITS, [tensor])


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_raw_nan_and_infinite_values_reach_the_model_as_sent(datatype):
    values = np.array([0.5, np.nan, np.inf, -np.inf], numpy_dtype(datatype))
    array = tensor_from_raw("input", datatype, [1, 1, 2, 2], values.tobytes())
    batch = model_input(DIGITS, [InputTensor("input", datatype, array)])
    np.testing.assert_array_equal(batch.ravel(), values.astype(np.float32))


@pytest.mark.parametrize("large", [False, True], ids=["small body", "large body"])
@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_nan_and_infinity_tokens_are_float_values_on_both_routes(datatype, large):
    width = ROWS[large] * 20
    first = ",".join(["0.5"] * width)
    second = ",".join(["0.5"] * (width - 4) + ["NaN", "Infinity", "-Infinity", "-2"])
    body = raw_body([2, width], f"[[{first}], [{second}]]", datatype)
    assert (len(body) > SCAN_ABOVE_BYTES) is large
    array = parse(body).inputs[0].array
    assert array.dtype == numpy_dtype(datatype) and array.shape == (2, width)
    expected = np.array([0.5, np.nan, np.inf, -np.inf, -2], numpy_dtype(datatype))
    np.testing.assert_array_equal(array[1, -5:], expected)


@pytest.mark.parametrize("large", [False, True], ids=["small body", "large body"])
@pytest.mark.parametrize("token", ["nan", "-NaN", "+Infinity", "Infinit", "NaNNaN", "inf"])
def test_other_spellings_of_non_finite_values_are_not_valid_json(token, large):
    padding = ["0"] * (SCAN_ABOVE_BYTES // 2 if large else 1)
    body = raw_body([len(padding) + 3], f"[{','.join(padding)},{token},1,2]")
    with pytest.raises(InvalidInput, match="body is not valid JSON"):
        parse(body)


def test_nan_tokens_in_a_large_body_outside_numeric_data_are_not_valid_json():
    body = numbers_body([2], [1, 2], id="x" * SCAN_ABOVE_BYTES).replace(b'"x', b'NaN, "x', 1)
    with pytest.raises(InvalidInput, match="body is not valid JSON"):
        parse(body)


def test_finite_float_inputs_become_the_float32_batch():
    array = np.array([0.5, -1e30, 2, 3], np.float64).reshape(1, 1, 2, 2)
    batch = model_input(DIGITS, [InputTensor("input", "FP64", array)])
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, array.astype(np.float32))
