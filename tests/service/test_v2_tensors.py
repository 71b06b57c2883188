"""The V2 tensor codec shared by REST and gRPC."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import InvalidInput
from service.v2 import (
    GRPC_CONTENTS_FIELDS,
    datatype_of,
    numpy_dtype,
    tensor_from_data,
    tensor_from_raw,
    tensor_to_data,
    tensor_to_raw,
)


def test_flat_and_nested_data_decode_to_the_same_tensor():
    flat = tensor_from_data("x", "FP32", [2, 3], [1, 2, 3, 4, 5, 6])
    nested = tensor_from_data("x", "FP32", [2, 3], [[1, 2, 3], [4, 5, 6]])
    assert flat.dtype == np.float32 and flat.shape == (2, 3)
    np.testing.assert_array_equal(flat, nested)


def test_uint8_data_keeps_its_dtype():
    tensor = tensor_from_data("x", "UINT8", [1, 4], [0, 1, 254, 255])
    assert tensor.dtype == np.uint8 and tensor.tolist() == [[0, 1, 254, 255]]


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "message"),
    [
        ("FP32", [2, 3], [1, 2, 3], "input 'pixels': shape [2, 3] needs 6 values, data has 3"),
        (
            "FP32",
            [3, 2],
            [[1, 2, 3], [4, 5, 6]],
            "input 'pixels': nested data has shape [2, 3], not [3, 2]",
        ),
        ("FP32", [2, 2], [[1, 2], [3]], "input 'pixels': nested data is ragged"),
        ("FP32", [-1, 2], [1, 2], "input 'pixels': shape [-1, 2] has a negative dimension"),
        (
            "FP32",
            "2x2",
            [1, 2, 3, 4],
            "input 'pixels': shape must be a list of integers, got '2x2'",
        ),
        ("FP32", [2], ["a", "b"], "input 'pixels': FP32 data must be numbers, got <U1"),
        ("UINT8", [2], [1, 256], "input 'pixels': UINT8 values must lie in [0, 255], got [1, 256]"),
        ("UINT8", [2], [-1, 3], "input 'pixels': UINT8 values must lie in [0, 255], got [-1, 3]"),
        ("UINT8", [2], [1.5, 3], "input 'pixels': UINT8 data must be integers, got float64"),
        ("BOOL", [1], [1], "input 'pixels': BOOL data must be true/false, got int64"),
        (
            "FP31",
            [1],
            [1],
            "unknown datatype 'FP31'; V2 datatypes are BOOL, UINT8, UINT16, UINT32, UINT64, "
            "INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES",
        ),
    ],
)
def test_bad_tensors_raise_invalid_input_naming_the_problem(datatype, shape, data, message):
    with pytest.raises(InvalidInput) as error:
        tensor_from_data("pixels", datatype, shape, data)
    assert str(error.value) == message


def test_raw_bytes_are_little_endian_row_major():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = tensor_to_raw(array)
    assert raw == array.astype("<f4").tobytes()
    np.testing.assert_array_equal(tensor_from_raw("x", "FP32", [2, 3], raw), array)
    with pytest.raises(InvalidInput, match="needs 24 bytes, got 20"):
        tensor_from_raw("x", "FP32", [2, 3], raw[:20])


def test_raw_bytes_views_the_buffer_without_copying():
    body = bytearray(np.arange(4, dtype="<f4").tobytes())
    array = tensor_from_raw("x", "FP32", [1, 4], memoryview(body))
    body[:4] = np.float32(9).tobytes()
    assert array[0, 0] == 9


def bytes_elements(*elements: bytes) -> bytes:
    return b"".join(len(v).to_bytes(4, "little") + v for v in elements)


def test_raw_bytes_tensors_are_length_prefixed_elements_in_row_major_order():
    raw = bytes_elements(b"0.9:3:cat", b"", "é".encode(), b"\x00\xff")
    array = tensor_from_raw("labels", "BYTES", [2, 2], raw)
    assert array.dtype == object and array.shape == (2, 2)
    assert array.tolist() == [[b"0.9:3:cat", b""], ["é".encode(), b"\x00\xff"]]
    assert tensor_to_raw(array) == raw
    assert tensor_to_raw(np.array(["é", "ab"], dtype=object)) == bytes_elements("é".encode(), b"ab")
    assert tensor_from_raw("labels", "BYTES", [0], b"").shape == (0,)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes_elements(b"abcd"), "input 'labels': BYTES data ends before element 1 of 2"),
        (bytes_elements(b"abcd") + b"\x05\x00", "BYTES data ends before element 1 of 2"),
        (b"\0" * 7, "shape [2] of BYTES needs at least 8 bytes (a length per element), got 7"),
        (
            bytes_elements(b"a") + (9).to_bytes(4, "little") + b"abc",
            "input 'labels': BYTES element 1 declares 9 bytes, 3 remain",
        ),
        (
            bytes_elements(b"a", b"b", b"c"),
            "input 'labels': 5 bytes follow the 2 BYTES elements of shape [2]",
        ),
    ],
)
def test_raw_bytes_tensors_that_do_not_fill_the_shape_are_refused(raw, message):
    with pytest.raises(InvalidInput) as error:
        tensor_from_raw("labels", "BYTES", [2], raw)
    assert message in str(error.value)


@pytest.mark.parametrize("datatype", ["FP16", "FP32"])
def test_non_finite_json_values_pass_the_float_range_check(datatype):
    values = [np.nan, np.inf, -np.inf, 1.0]
    array = tensor_from_data("x", datatype, [4], values)
    np.testing.assert_array_equal(array, np.array(values, numpy_dtype(datatype)))
    with pytest.raises(InvalidInput, match=f"values up to 1e\\+300 overflow {datatype}"):
        tensor_from_data("x", datatype, [5], [*values, 1e300])


def test_datatype_names_round_trip_and_map_to_grpc_contents():
    for name in ("BOOL", "UINT8", "INT32", "INT64", "FP32", "FP64"):
        assert datatype_of(np.zeros(1, numpy_dtype(name))) == name
    assert GRPC_CONTENTS_FIELDS["FP32"] == "fp32_contents"
    assert GRPC_CONTENTS_FIELDS["UINT8"] == "uint_contents"
    assert "FP16" not in GRPC_CONTENTS_FIELDS  # raw only


def test_outputs_encode_as_flat_row_major_lists():
    assert tensor_to_data(np.array([[1.5, 2.5], [3.5, 4.5]], np.float32)) == [1.5, 2.5, 3.5, 4.5]
