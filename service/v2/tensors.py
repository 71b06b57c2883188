"""V2 tensors <-> numpy: datatype names, shape checks, flat or nested JSON data, raw bytes.

Every error is an `InvalidInput` naming the tensor (REST 400, gRPC INVALID_ARGUMENT).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from service.errors import InvalidInput

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
# The `InferTensorContents` field carrying each datatype in gRPC (FP16 travels raw only).
GRPC_CONTENTS_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}
_LENGTH = struct.Struct("<I")  # the length before each BYTES element in raw data


def numpy_dtype(datatype: str) -> np.dtype:
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(
            f"unknown datatype {datatype!r}; V2 datatypes are {', '.join(DATATYPES)}"
        )
    return dtype


def datatype_of(array: np.ndarray) -> str:
    name = _NAMES.get(array.dtype)
    if name is None:
        raise InvalidInput(f"dtype {array.dtype} has no V2 datatype")
    return name


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """A concrete tensor shape: a list of non-negative integers."""
    if not isinstance(shape, list | tuple) or not all(type(dim) is int for dim in shape):
        raise InvalidInput(f"input {name!r}: shape must be a list of integers, got {shape!r}")
    if min(shape, default=0) < 0:
        raise InvalidInput(f"input {name!r}: shape {list(shape)} has a negative dimension")
    return tuple(shape)


def tensor_from_data(name: str, datatype: str, shape: Any, data: Any) -> np.ndarray:
    """A JSON tensor: `data` flat in row-major order, or nested exactly as `shape`."""
    numpy_dtype(datatype)  # an unknown datatype is the first problem reported
    shape = check_shape(name, shape)
    if not isinstance(data, list):
        raise InvalidInput(f"input {name!r}: data must be a (flat or nested) list")
    return tensor_from_list(name, datatype, shape, data)


def tensor_from_list(name: str, datatype: str, shape: tuple[int, ...], data: list) -> np.ndarray:
    """`tensor_from_data` for a caller that has checked the datatype and the shape."""
    try:
        values = np.array(data, dtype=object if datatype == "BYTES" else None)
    except ValueError:  # ragged
        values = None
    check_layout(name, shape, None if values is None else values.shape)
    assert values is not None  # check_layout rejects ragged data
    return cast_values(name, datatype, values).reshape(shape)


def check_layout(name: str, shape: tuple[int, ...], data_shape: tuple[int, ...] | None) -> None:
    """`InvalidInput` unless JSON data laid out as `data_shape` (None: ragged nesting) fills
    `shape`: flat data needs the right number of values, nested data exactly `shape`."""
    if data_shape is None:
        raise InvalidInput(f"input {name!r}: nested data is ragged")
    if len(data_shape) > 1 and data_shape != shape:
        raise InvalidInput(
            f"input {name!r}: nested data has shape {list(data_shape)}, not {list(shape)}"
        )
    if math.prod(data_shape) != math.prod(shape):
        raise InvalidInput(
            f"input {name!r}: shape {list(shape)} needs {math.prod(shape)} values, "
            f"data has {math.prod(data_shape)}"
        )


def cast_values(name: str, datatype: str, values: np.ndarray) -> np.ndarray:
    """JSON `values` (as numpy infers them) in `datatype`: `InvalidInput` for the wrong kind of
    value, integers out of range, or numbers too large for a float datatype."""
    dtype = numpy_dtype(datatype)
    if datatype == "BYTES":
        if not all(isinstance(v, str | bytes) for v in values.flat):
            raise InvalidInput(f"input {name!r}: BYTES data must be strings")
        return np.array([v.encode() if isinstance(v, str) else v for v in values.flat], object)
    kind = values.dtype.kind
    if values.size and datatype == "BOOL" and kind != "b":
        raise InvalidInput(f"input {name!r}: BOOL data must be true/false, got {values.dtype}")
    if values.size and dtype.kind in "ui" and kind not in "iub":
        raise InvalidInput(f"input {name!r}: {datatype} data must be integers, got {values.dtype}")
    if values.size and dtype.kind == "f" and kind not in "iuf":
        raise InvalidInput(f"input {name!r}: {datatype} data must be numbers, got {values.dtype}")
    check_int_range(name, datatype, values)
    check_float_range(name, datatype, values)
    return values.astype(dtype, copy=False)


def check_int_range(name: str, datatype: str, values: np.ndarray) -> None:
    """`InvalidInput` unless integer `values` (decoded in a wider type, e.g. from JSON or a
    uint32 gRPC field) all fit the integer `datatype`; other datatypes pass."""
    dtype = numpy_dtype(datatype)
    if not values.size or dtype.kind not in "iu":
        return
    info = np.iinfo(dtype)
    low, high = values.min(), values.max()
    if low < info.min or high > info.max:
        raise InvalidInput(
            f"input {name!r}: {datatype} values must lie in [{info.min}, {info.max}], "
            f"got [{low}, {high}]"
        )


def check_float_range(name: str, datatype: str, values: np.ndarray) -> None:
    """`InvalidInput` unless finite `values` (decoded in a wider type, e.g. from JSON) stay
    finite in the float `datatype`; NaN and infinities pass as they are, as do other
    datatypes."""
    dtype = numpy_dtype(datatype)
    if not values.size or dtype.kind != "f" or dtype.itemsize >= values.dtype.itemsize:
        return
    magnitudes = np.abs(values)
    peak = magnitudes[np.isfinite(magnitudes)].max(initial=0)
    largest = np.finfo(dtype).max
    if peak > largest:
        raise InvalidInput(
            f"input {name!r}: values up to {peak:g} overflow {datatype} (largest {largest:g})"
        )


def tensor_from_raw(name: str, datatype: str, shape: Any, raw: bytes | memoryview) -> np.ndarray:
    """A binary tensor (gRPC raw contents, REST binary data): little-endian, row-major; a
    BYTES element is its length as a 4-byte little-endian unsigned integer, then its bytes."""
    dtype = numpy_dtype(datatype)
    shape = check_shape(name, shape)
    if datatype == "BYTES":
        return _bytes_from_raw(name, shape, raw)
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"input {name!r}: shape {list(shape)} of {datatype} needs {expected} bytes, "
            f"got {len(raw)}"
        )
    # A read-only view of the request's bytes on little-endian hosts; converted only if needed.
    return (
        np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)
    )


def _bytes_from_raw(name: str, shape: tuple[int, ...], raw: bytes | memoryview) -> np.ndarray:
    count = math.prod(shape)
    view, offset = memoryview(raw), 0
    if count * _LENGTH.size > len(view):  # checked before allocating `count` elements
        raise InvalidInput(
            f"input {name!r}: shape {list(shape)} of BYTES needs at least {count * _LENGTH.size} "
            f"bytes (a length per element), got {len(view)}"
        )
    elements = np.empty(count, dtype=object)
    for index in range(count):
        if offset + _LENGTH.size > len(view):
            raise InvalidInput(
                f"input {name!r}: BYTES data ends before element {index} of {count} "
                f"(shape {list(shape)})"
            )
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(view):
            raise InvalidInput(
                f"input {name!r}: BYTES element {index} declares {length} bytes, "
                f"{len(view) - offset} remain"
            )
        elements[index] = bytes(view[offset : offset + length])
        offset += length
    if offset != len(view):
        raise InvalidInput(
            f"input {name!r}: {len(view) - offset} bytes follow the {count} BYTES elements of "
            f"shape {list(shape)}"
        )
    return elements.reshape(shape)


def tensor_to_data(array: np.ndarray) -> list:
    """Row-major flat JSON data."""
    if array.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.flat]
    return array.reshape(-1).tolist()


def tensor_to_raw(array: np.ndarray) -> bytes:
    """Little-endian row-major bytes; BYTES (object) elements each as a 4-byte little-endian
    length, then the bytes (str encoded as UTF-8)."""
    if array.dtype == object:
        elements = [v.encode() if isinstance(v, str) else v for v in array.flat]
        return b"".join(part for v in elements for part in (_LENGTH.pack(len(v)), v))
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
