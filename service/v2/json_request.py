"""A V2 JSON infer request body -> checked envelope + input arrays, without pydantic.

The envelope is checked by hand; errors name the field (`inputs[0].shape: ...`). Each input's
declared size (shape x datatype) is checked against the limit before any of its data is parsed.

Binary tensor data (Triton's extension): when the body's JSON header is followed by binary
data, inputs with a `binary_data_size` parameter take their bytes from it in input order, as
read-only views of the body (no copy). Requested outputs carry their classification count and
binary choice.

Float data may hold the NaN, Infinity and -Infinity tokens (not JSON, but what Triton and
perf_analyzer send); they are parsed by the standard library only where orjson refuses them.

Small bodies are one `orjson.loads`, then `tensor_from_data`. In large bodies the numeric `data`
lists are first cut out of the text (one regex pass) and the rest is parsed by orjson; each list
is checked for its nesting at the bracket level, then parsed in bounded chunks straight into
the tensor, so a request never holds a Python float per value. Both routes give the same
tensors and the same errors.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson

from service.errors import InvalidInput, PayloadTooLarge
from service.v2.inference import InputTensor, OutputRequest
from service.v2.tensors import (
    cast_values,
    check_layout,
    check_shape,
    numpy_dtype,
    tensor_from_list,
    tensor_from_raw,
)

# Bodies up to this size are parsed in one `orjson.loads`.
SCAN_ABOVE_BYTES = 64 * 1024
# Numeric data is parsed this many bytes of text at a time (cut at a comma).
_CHUNK_BYTES = 256 * 1024

# A `"data"` member whose value holds only numbers and lists. Quotes inside JSON strings are
# escaped, so in valid JSON `"data":` is a key; a match that is not `inputs[i].data` (e.g. in a
# key ending in an escaped quote) is noticed when the cut lists are put back.
_NUMERIC_DATA = re.compile(rb'"data"[ \t\n\r]*:[ \t\n\r]*(\[[-+0-9.eEINafinty, \t\n\r\[\]]*\])')
# The characters of numbers, including the NaN, Infinity and -Infinity tokens.
_NUMBER_CHARS = rb"[-+0-9.eEINafinty]"
_NUMBER = rb"(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|NaN|-?Infinity)"
# In numeric data: a run of number characters that is not a number, two numbers with no
# comma between them, or two commas with nothing between them.
_MALFORMED_NUMBERS = re.compile(
    rb"(?<!" + _NUMBER_CHARS + rb")"
    rb"(?!" + _NUMBER + rb"(?!" + _NUMBER_CHARS + rb"))" + _NUMBER_CHARS + rb"+"
    rb"|" + _NUMBER_CHARS + rb"[ \t\n\r]+" + _NUMBER_CHARS + rb"|,[ \t\n\r]*,"
)
_NON_FINITE = re.compile(rb"NaN|Infinity")
_NOT_JSON = object()  # what `_load_non_finite` gives for text that is not JSON
_NOT_BLANK = re.compile(rb"[^ \t\n\r]")
_VALUE_CHAR = re.compile(rb"[^ \t\n\r,]")
_BRACKETS_TO_SPACES = bytes.maketrans(b"[]", b"  ")
_PLACEHOLDER = "\x00"  # + the list's index: the string left in place of a cut list


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    parameters: dict[str, Any]
    class_count: int = 0  # `parameters.classification`: answer the top classes as BYTES
    binary_data: bool | None = None  # `parameters.binary_data`; None: as the request says

    @property
    def request(self) -> OutputRequest:
        return OutputRequest(self.name, self.class_count)


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: list[InputTensor]
    outputs: list[RequestedOutput]

    def output_is_binary(self, name: str) -> bool:
        """Whether output `name` is answered as binary data: its own `binary_data`
        parameter, else the request's `binary_data_output`."""
        for output in self.outputs:
            if output.name == name and output.binary_data is not None:
                return output.binary_data
        return self.parameters.get("binary_data_output") is True


class _NumericText(NamedTuple):
    """A numeric JSON list cut out of the body: `body[start:end]`, brackets included."""

    start: int
    end: int


class _BinaryData(NamedTuple):
    """An input's binary data: `body[start:end]`, after the JSON header."""

    start: int
    end: int


class _DeclaredInput(NamedTuple):
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list | _NumericText | _BinaryData


def parse_infer_request(
    body: bytes, *, max_tensor_bytes: int, header_length: int | None = None
) -> InferRequest:
    """The checked request; `InvalidInput` (400) naming the bad field or tensor, or
    `PayloadTooLarge` (413) when the declared tensors exceed `max_tensor_bytes` in total.
    With `header_length` (the Inference-Header-Content-Length), the JSON header is
    `body[:header_length]` and the binary data of the inputs follows it."""
    document = _load(body if header_length is None else body[:header_length])
    if not isinstance(document, dict):
        raise _invalid("body", "Input should be a valid dictionary")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _invalid("id", "Input should be a valid string")
    parameters = _optional_object(document, "parameters", "parameters")
    if not isinstance(parameters.get("binary_data_output", False), bool):
        raise _invalid("parameters.binary_data_output", "Input should be a valid boolean")
    declared = _placed_binary_data(_declared_inputs(document), len(body), header_length)
    outputs = _requested_outputs(document)
    _check_tensor_bytes(declared, max_tensor_bytes)
    inputs = [InputTensor(item.name, item.datatype, _tensor(item, body)) for item in declared]
    return InferRequest(request_id, parameters, inputs, outputs)


def _load(body: bytes) -> Any:
    """The parsed body; in a large body, numeric `data` lists are left as `_NumericText`."""
    try:
        if len(body) > SCAN_ABOVE_BYTES:
            document = _load_cutting_numeric_data(body)
            if document is not None:
                return document
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if len(body) <= SCAN_ABOVE_BYTES and _NON_FINITE.search(body):
            document = _load_non_finite(body)
            if document is not _NOT_JSON:
                return document
        raise InvalidInput(f"body is not valid JSON: {error}") from None


def _load_non_finite(text: bytes) -> Any:
    """`text` parsed by the standard library, which reads NaN, Infinity and -Infinity too;
    `_NOT_JSON` if it is not valid even so."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _load_cutting_numeric_data(body: bytes) -> Any:
    """The body parsed with its numeric `data` lists cut out and put back as `_NumericText`
    in `inputs[i].data`, or None when a cut list sits elsewhere (parse the body whole)."""
    pieces: list[bytes] = []
    cuts: list[_NumericText] = []
    copied = 0
    for match in _NUMERIC_DATA.finditer(body):
        pieces += [body[copied : match.start(1)], orjson.dumps(f"{_PLACEHOLDER}{len(cuts)}")]
        cuts.append(_NumericText(match.start(1), match.end(1)))
        copied = match.end(1)
    if not cuts:
        return None
    pieces.append(body[copied:])
    try:
        document = orjson.loads(b"".join(pieces))
    except orjson.JSONDecodeError:
        return None  # parsed whole, for an error message that points into the body
    inputs = document.get("inputs") if isinstance(document, dict) else None
    placed: set[int] = set()
    for item in inputs if isinstance(inputs, list) else ():
        data = item.get("data") if isinstance(item, dict) else None
        if isinstance(data, str) and data.startswith(_PLACEHOLDER) and data[1:].isdigit():
            index = int(data[1:])
            if index >= len(cuts) or index in placed:
                return None
            item["data"] = cuts[index]
            placed.add(index)
    return document if len(placed) == len(cuts) else None


def _declared_inputs(document: dict[str, Any]) -> list[_DeclaredInput]:
    if "inputs" not in document:
        raise _invalid("inputs", "Field required")
    inputs = document["inputs"]
    if not isinstance(inputs, list):
        raise _invalid("inputs", "Input should be a valid list")
    if not inputs:
        raise _invalid("inputs", "List should have at least 1 item")
    return [_declared_input(item, f"inputs[{index}]") for index, item in enumerate(inputs)]


def _declared_input(item: Any, where: str) -> _DeclaredInput:
    if not isinstance(item, dict):
        raise _invalid(where, "Input should be a valid dictionary")
    try:
        name, shape, datatype = item["name"], item["shape"], item["datatype"]
    except KeyError as missing:
        raise _invalid(f"{where}.{missing.args[0]}", "Field required") from None
    if not isinstance(name, str):
        raise _invalid(f"{where}.name", "Input should be a valid string")
    if not isinstance(shape, list):
        raise _invalid(f"{where}.shape", "Input should be a valid list")
    if not all(type(dim) is int for dim in shape):
        index, dim = next((i, d) for i, d in enumerate(shape) if type(d) is not int)
        raise _invalid(f"{where}.shape[{index}]", f"Input should be a valid integer, got {dim!r}")
    if not isinstance(datatype, str):
        raise _invalid(f"{where}.datatype", "Input should be a valid string")
    parameters = _optional_object(item, "parameters", f"{where}.parameters")
    data = _input_data(item, name, where, parameters)
    numpy_dtype(datatype)
    return _DeclaredInput(name, datatype, check_shape(name, shape), data)


def _input_data(
    item: dict[str, Any], name: str, where: str, parameters: dict[str, Any]
) -> list | _NumericText | _BinaryData:
    """The input's `data`, or its binary data's size (placed in the body later)."""
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if type(size) is not int or size < 0:
            raise InvalidInput(
                f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}"
            )
        if "data" in item:
            raise InvalidInput(
                f"input {name!r}: has both binary_data_size and data; send one of them"
            )
        return _BinaryData(0, size)
    if "data" not in item:
        raise _invalid(f"{where}.data", "Field required")
    data = item["data"]
    if not isinstance(data, list | _NumericText):
        raise _invalid(f"{where}.data", "Input should be a valid list")
    return data


def _placed_binary_data(
    declared: list[_DeclaredInput], body_size: int, header_length: int | None
) -> list[_DeclaredInput]:
    """`declared` with each binary input's data placed after the JSON header, in input order;
    `InvalidInput` unless their sizes add up to exactly the bytes that follow the header."""
    binary = [(item.name, item.data) for item in declared if isinstance(item.data, _BinaryData)]
    if header_length is None:
        if binary:
            raise InvalidInput(
                f"input {binary[0][0]!r}: binary_data_size needs the binary data after the "
                "JSON header, whose length the Inference-Header-Content-Length header gives"
            )
        return declared
    placed, start = [], header_length
    for item in declared:
        if isinstance(item.data, _BinaryData):
            end = start + item.data.end
            item, start = item._replace(data=_BinaryData(start, end)), end
        placed.append(item)
    if start != body_size:
        sizes = ", ".join(f"{name!r}: {data.end}" for name, data in binary)
        raise InvalidInput(
            f"binary data: the inputs declare {start - header_length} bytes ({sizes or 'none'}) "
            f"but {body_size - header_length} bytes follow the {header_length}-byte JSON header"
        )
    return placed


def _requested_outputs(document: dict[str, Any]) -> list[RequestedOutput]:
    outputs = document.get("outputs")
    if outputs is None:
        return []
    if not isinstance(outputs, list):
        raise _invalid("outputs", "Input should be a valid list")
    requested = []
    for index, item in enumerate(outputs):
        where = f"outputs[{index}]"
        if not isinstance(item, dict):
            raise _invalid(where, "Input should be a valid dictionary")
        name = item.get("name")
        if not isinstance(name, str):
            problem = "Field required" if "name" not in item else "Input should be a valid string"
            raise _invalid(f"{where}.name", problem)
        parameters = _optional_object(item, "parameters", f"{where}.parameters")
        class_count = parameters.get("classification", 0)
        if "classification" in parameters and (type(class_count) is not int or class_count < 1):
            raise InvalidInput(
                f"output {name!r}: classification must be a positive integer (the number of "
                f"classes to answer), got {class_count!r}"
            )
        binary_data = parameters.get("binary_data")
        if binary_data is not None and not isinstance(binary_data, bool):
            raise InvalidInput(
                f"output {name!r}: binary_data must be true or false, got {binary_data!r}"
            )
        requested.append(RequestedOutput(name, parameters, class_count, binary_data))
    return requested


def _optional_object(holder: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = holder.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(where, "Input should be a valid dictionary")
    return value


def _check_tensor_bytes(declared: list[_DeclaredInput], limit: int) -> None:
    """Declared sizes, summed over the inputs (a BYTES element counts as one pointer)."""
    total = 0
    for item in declared:
        size = math.prod(item.shape) * numpy_dtype(item.datatype).itemsize
        total += size
        if total > limit:
            raise PayloadTooLarge(
                f"input {item.name!r}: shape {list(item.shape)} of {item.datatype} is {size} "
                f"bytes, bringing the request's tensors to {total} bytes; the limit is "
                f"{limit} bytes"
            )


def _invalid(where: str, problem: str) -> InvalidInput:
    return InvalidInput(f"invalid inference request: {where}: {problem}")


def _tensor(item: _DeclaredInput, body: bytes) -> np.ndarray:
    if isinstance(item.data, list):
        return tensor_from_list(item.name, item.datatype, item.shape, item.data)
    if isinstance(item.data, _BinaryData):
        raw = memoryview(body)[item.data.start : item.data.end]
        return tensor_from_raw(item.name, item.datatype, item.shape, raw)
    try:
        check_layout(item.name, item.shape, _nested_shape(item.name, body, item.data))
    except InvalidInput:
        # As when parsed whole, a malformed number is the first problem reported.
        if malformed := _MALFORMED_NUMBERS.search(body, item.data.start, item.data.end):
            raise _invalid_data(item.name, f"malformed numbers {malformed[0][:40]!r}") from None
        raise
    tensor = np.empty(math.prod(item.shape), numpy_dtype(item.datatype))
    if tensor.size:  # else the text is empty lists, which `_numbers` cannot read
        filled = 0
        for values in _numbers(item.name, item.data, body):
            tensor[filled : filled + values.size] = cast_values(item.name, item.datatype, values)
            filled += values.size
    return tensor.reshape(item.shape)


def _numbers(name: str, text: _NumericText, body: bytes) -> Iterator[np.ndarray]:
    """The numbers of input `name`'s `text`, whose nesting fills the tensor, a chunk at a time:
    with no empty list in it, the text with its brackets blanked is comma-separated numbers."""
    for chunk in _chunks(body, text.start + 1, text.end - 1):
        numbers = b"[%b]" % chunk.translate(_BRACKETS_TO_SPACES)
        try:
            yield np.array(orjson.loads(numbers))
        except orjson.JSONDecodeError as error:
            values = _load_non_finite(numbers) if _NON_FINITE.search(numbers) else _NOT_JSON
            if values is _NOT_JSON:
                raise _invalid_data(name, error.msg) from None
            yield np.array(values)


def _chunks(body: bytes, start: int, end: int) -> Iterator[bytes]:
    while start < end:
        cut = body.find(b",", min(start + _CHUNK_BYTES, end), end)
        cut = end if cut < 0 else cut
        yield body[start:cut]
        start = cut + 1


def _nested_shape(name: str, body: bytes, text: _NumericText) -> tuple[int, ...] | None:
    """The shape of the nested list `text` as numpy would infer it, or None when ragged.
    Checks the JSON syntax around brackets; the numbers are checked when parsed."""
    lengths: dict[int, int] = {}  # per depth: the length every list there has
    holds_lists: dict[int, bool] = {}  # per depth: lists of lists, or lists of values
    open_lengths: list[int] = []  # elements so far in each open list
    ragged = False
    previous, gap_start = b"", text.start
    for bracket, gap_end in _brackets(body, text.start, text.end):
        if previous == b"]" and not open_lengths:
            raise _invalid_data(name, "text after the end of the list")
        values = _values_between(name, body, gap_start, gap_end, previous, bracket)
        if values:
            open_lengths[-1] += values
            ragged |= _agree(holds_lists, len(open_lengths) - 1, False)
        if bracket == b"[":
            if open_lengths:
                open_lengths[-1] += 1
                ragged |= _agree(holds_lists, len(open_lengths) - 1, True)
            open_lengths.append(0)
        elif not open_lengths:
            raise _invalid_data(name, "unbalanced brackets")
        else:
            ragged |= _agree(lengths, len(open_lengths) - 1, open_lengths.pop())
        previous, gap_start = bracket, gap_end + 1
    if open_lengths:
        raise _invalid_data(name, "unbalanced brackets")
    if ragged:
        return None
    depth = next((d + 1 for d, lists in holds_lists.items() if not lists), len(lengths))
    return tuple(lengths[d] for d in range(depth))


def _brackets(body: bytes, start: int, end: int) -> Iterator[tuple[bytes, int]]:
    """Each bracket of `body[start:end]` (which ends with one) and its position, in order."""
    next_open, next_close = body.find(b"[", start, end), body.find(b"]", start, end)
    while next_close >= 0:
        if 0 <= next_open < next_close:
            yield b"[", next_open
            next_open = body.find(b"[", next_open + 1, end)
        else:
            yield b"]", next_close
            next_close = body.find(b"]", next_close + 1, end)


def _values_between(
    name: str, body: bytes, start: int, end: int, previous: bytes, bracket: bytes
) -> int:
    """How many values lie between two brackets, checking the commas around them."""
    commas = body.count(b",", start, end)
    if _VALUE_CHAR.search(body, start, end) is None:
        expected = 1 if (previous, bracket) == (b"]", b"[") else 0
        if commas != expected:
            raise _invalid_data(name, "a comma is missing or misplaced between lists")
        return 0
    first = _NOT_BLANK.search(body, start, end)  # found: a value lies in between
    leading = first is not None and first[0] == b","
    last_comma = body.rfind(b",", start, end)
    trailing = last_comma >= 0 and _NOT_BLANK.search(body, last_comma + 1, end) is None
    if leading != (previous == b"]") or trailing != (bracket == b"["):
        raise _invalid_data(name, "a comma is missing or misplaced")
    return commas + 1 - leading - trailing


def _agree(seen: dict[int, Any], depth: int, value: Any) -> bool:
    """Record `value` for `depth`; True when it differs from the one recorded there."""
    return seen.setdefault(depth, value) != value


def _invalid_data(name: str, problem: str) -> InvalidInput:
    return InvalidInput(f"body is not valid JSON: data of input {name!r}: {problem}")
