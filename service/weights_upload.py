"""Weights uploaded through the management API: a safetensors body, size-limited, streamed to a
private file, checked against the model's network, then kept under a name made of its hash.

Only safetensors is accepted (it holds tensors and nothing that executes); any other body is
refused with 415 from its first bytes. The size limit is checked on `Content-Length` before
anything is read and again while reading (413). A file is visible under its final name only once
complete and checked: readers see no file or a whole one.
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from safetensors import safe_open

from service.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType, quoted

# safetensors' own bound on the JSON header, so a body that claims more is not one.
MAX_HEADER_BYTES = 100 * 1024 * 1024
PREFIX_BYTES = 9  # the header length (u64, little-endian), then the JSON header's "{"


class WeightsUpload:
    """An uploaded body in a private file of `directory`, until `keep` or `discard`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.partial = directory / f".upload-{uuid.uuid4().hex}.partial"
        self.sha256 = hashlib.sha256()
        self.size = 0

    async def receive(self, chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> None:
        """Write the body to the private file: `PayloadTooLarge` when `declared` (the
        Content-Length) or the bytes read exceed `limit`, `UnsupportedMediaType` when it does
        not start as a safetensors file."""
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        self.directory.mkdir(parents=True, exist_ok=True)
        prefix = b""
        with open(self.partial, "wb") as file:
            async for chunk in chunks:
                self.size += len(chunk)
                if self.size > limit:
                    raise _too_large(self.size, limit)
                if len(prefix) < PREFIX_BYTES:
                    prefix += chunk[: PREFIX_BYTES - len(prefix)]
                    if len(prefix) == PREFIX_BYTES:
                        check_prefix(prefix)
                self.sha256.update(chunk)
                file.write(chunk)
            if len(prefix) < PREFIX_BYTES:
                check_prefix(prefix)
            file.flush()
            os.fsync(file.fileno())

    def check(self, expected: dict[str, tuple[int, ...]], model: str) -> None:
        """`InvalidInput` (400) naming every tensor whose name or shape is not the model's
        `expected` one, or when the file is not a readable safetensors file. Blocking."""
        from models.weights import WeightsMismatchError, check_shapes  # torch: the full image

        try:
            with safe_open(self.partial, framework="numpy") as weights:
                names = weights.keys()  # a list; the handle itself is not iterable
                found = {key: tuple(weights.get_slice(key).get_shape()) for key in names}
        except Exception as error:  # safetensors raises its own SafetensorError
            raise InvalidInput(f"the weights are not a valid safetensors file: {error}") from None
        try:
            check_shapes(expected, found, strict=True)
        except WeightsMismatchError as error:
            raise InvalidInput(f"model {quoted(model)}: {error}") from None

    def keep(self) -> Path:
        """Move the checked file to its final name (the hash of its bytes) and return it."""
        from models.weights import SAFETENSORS_SUFFIX

        path = self.directory / f"{self.sha256.hexdigest()[:16]}{SAFETENSORS_SUFFIX}"
        os.replace(self.partial, path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself reaches the disk
        finally:
            os.close(directory)
        return path

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)


def check_prefix(prefix: bytes) -> None:
    """`UnsupportedMediaType` unless `prefix` (the body's first bytes) starts a safetensors
    file: a plausible header length, then the header's JSON object."""
    if len(prefix) == PREFIX_BYTES:
        (header_bytes,) = struct.unpack("<Q", prefix[:8])
        if 2 <= header_bytes <= MAX_HEADER_BYTES and prefix[8:9] == b"{":
            return
    raise UnsupportedMediaType(
        "weights must be a safetensors file (an 8-byte header length, then a JSON header); "
        "convert a torch checkpoint with safetensors.torch.save_file"
    )


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"weights of more than limits.max_weights_bytes ({limit} bytes): {size} bytes or more"
    )
