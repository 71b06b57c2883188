"""HTTP content codings for request and response bodies: gzip and deflate (a zlib stream, as
`Content-Encoding: deflate` means and tritonclient sends).

Decoding is bounded: a body that inflates past the limit is refused as soon as it does, so a
small compressed body never becomes an unbounded allocation.
"""

from __future__ import annotations

import zlib

from service.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

IDENTITY = "identity"
# The zlib window bits of each coding.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
CODINGS = tuple(_WBITS)
_COMPRESS_LEVEL = 1  # the fastest; on tensor data about as small as the default level


def request_coding(header: bytes | None) -> str:
    """The coding named by a `Content-Encoding` header: gzip, deflate or identity;
    `UnsupportedMediaType` (415) naming any other (or a list of several)."""
    if header is None:
        return IDENTITY
    coding = header.decode("latin-1").strip().lower()
    if coding in ("", IDENTITY) or coding in _WBITS:
        return coding or IDENTITY
    raise UnsupportedMediaType(
        f"Content-Encoding {coding[:32]!r} is not supported; send gzip, deflate or identity"
    )


def decode(coding: str, body: bytes, limit: int) -> bytes:
    """`body` decoded from `coding`: `PayloadTooLarge` (413) once it exceeds `limit` bytes,
    `InvalidInput` (400) when it is not valid `coding` data or is cut short."""
    if coding == IDENTITY:
        return body
    inflater = zlib.decompressobj(_WBITS[coding])
    try:
        decoded = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise InvalidInput(f"request body is not valid {coding} data: {error}") from None
    if len(decoded) > limit:
        raise PayloadTooLarge(f"request body decompresses past the {limit}-byte limit")
    if not inflater.eof:
        raise InvalidInput(f"request body is not valid {coding} data: the stream is cut short")
    if inflater.unused_data:
        raise InvalidInput(f"request body has data after the end of its {coding} stream")
    return decoded


def response_coding(header: bytes | None) -> str:
    """The coding to answer with, from an `Accept-Encoding` header: the client's preferred
    (highest q) of gzip and deflate, gzip on a tie, else identity."""
    if header is None:
        return IDENTITY
    weights: dict[str, float] = {}
    for item in header.decode("latin-1").lower().split(","):
        name, _, parameters = item.partition(";")
        weights[name.strip()] = _quality(parameters)
    best = max(CODINGS, key=lambda coding: weights.get(coding, weights.get("*", 0.0)))
    return best if weights.get(best, weights.get("*", 0.0)) > 0 else IDENTITY


def _quality(parameters: str) -> float:
    name, _, value = parameters.partition("=")
    if name.strip() != "q":
        return 1.0
    try:
        return float(value)
    except ValueError:
        return 0.0


def encode(coding: str, body: bytes) -> bytes:
    """`body` in `coding` (gzip, deflate or identity)."""
    if coding == IDENTITY:
        return body
    deflater = zlib.compressobj(_COMPRESS_LEVEL, zlib.DEFLATED, _WBITS[coding])
    return deflater.compress(body) + deflater.flush()
