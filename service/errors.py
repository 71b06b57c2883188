"""Typed serving errors shared by every protocol.

The repository and the batchers raise these; REST maps them to HTTP status codes (see
`service.routers`) and gRPC to its status codes. `http_status` is the REST mapping.
"""

from __future__ import annotations

from collections.abc import Sequence


class ServingError(Exception):
    """Base of every error a protocol turns into an error response."""

    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    """The request itself is wrong: bad tensor shape or dtype, bad JSON, bad parameter."""

    http_status = 400


class CorruptImage(InvalidInput):
    """An image payload could not be decoded."""


class PayloadTooLarge(InvalidInput):
    """A body, an image's pixel count or an image count exceeds a configured limit."""

    http_status = 413


class UnsupportedMediaType(InvalidInput):
    """The request's content type (or a multipart part's) is not one the endpoint accepts."""

    http_status = 415


class ModelNotFound(ServingError):
    http_status = 404

    def __init__(self, name: str, available: Sequence[str]) -> None:
        listed = ", ".join(repr(n) for n in available) or "none"
        super().__init__(f"unknown model {name!r}; available models: {listed}")
        self.name = name
        self.available = list(available)


class ModelVersionNotFound(ModelNotFound):
    def __init__(self, name: str, version: str, versions: Sequence[str]) -> None:
        ServingError.__init__(
            self, f"model {name!r} has no version {version!r}; versions: {', '.join(versions)}"
        )
        self.name = name
        self.available = list(versions)


class ModelNotReady(ServingError):
    """The model is LOADING or FAILED, or the server is shutting down."""

    http_status = 503

    def __init__(self, name: str, state: str, reason: str | None = None) -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"model {name!r} is not ready ({state}){detail}")
        self.name = name
        self.state = state
        self.reason = reason


class QueueFull(ServingError):
    http_status = 503

    def __init__(self, name: str, queued: int, limit: int, retry_after_s: float) -> None:
        super().__init__(
            f"model {name!r} is overloaded: {queued} images queued (max_queue {limit}); "
            f"retry after {retry_after_s:g} s"
        )
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ServingError):
    http_status = 504


class ClientDisconnected(ServingError):
    """The client went away before its answer was ready; nginx's status 499 is recorded."""

    http_status = 499


class InferenceFailed(ServingError):
    """The runtime raised while computing the batch holding this request."""

    http_status = 500

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"inference failed in model {name!r}: {type(cause).__name__}: {cause}")
        self.cause = cause
