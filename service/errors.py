"""Typed serving errors shared by every protocol.

The repository and the batchers raise these; REST maps them to HTTP status codes (see
`service.routers`) and gRPC to its status codes. `http_status` is the REST mapping.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_NAME_IN_MESSAGE = 64  # characters of a client-supplied name quoted back in an error


class ServingError(Exception):
    """Base of every error a protocol turns into an error response. `message` is meant for
    the client: it never carries paths, library versions or internal exception text."""

    http_status = 500
    retry_after_s: float | None = None  # sent as Retry-After when set

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def quoted(name: str) -> str:
    """`name` as repr, cut to `MAX_NAME_IN_MESSAGE` characters: client input echoed safely."""
    if len(name) <= MAX_NAME_IN_MESSAGE:
        return repr(name)
    return f"{name[:MAX_NAME_IN_MESSAGE]!r}... ({len(name)} characters)"


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


class Unauthenticated(ServingError):
    """No bearer token, or an `Authorization` header that is not `Bearer <token>`."""

    http_status = 401


class PermissionDenied(ServingError):
    """A bearer token that does not grant the operation."""

    http_status = 403


class ManagementUnavailable(ServingError):
    """Models cannot be changed at run time in this server setup."""

    http_status = 409


class ExportUnavailable(ServingError):
    """The model needs something made with torch (an export, a network build, trained weights)
    and torch is not installed: the slim image serves only the bundles its build exported."""

    http_status = 409

    def __init__(self, model: str, needs: str) -> None:
        super().__init__(
            f"model {quoted(model)} needs {needs}, which needs torch: this is the slim image; "
            "use the full image or export in the build"
        )


class ModelNotFound(ServingError):
    http_status = 404

    def __init__(self, name: str, available: Sequence[str]) -> None:
        listed = ", ".join(repr(n) for n in available) or "none"
        super().__init__(f"unknown model {quoted(name)}; available models: {listed}")
        self.name = name
        self.available = list(available)


class ModelVersionNotFound(ModelNotFound):
    def __init__(self, name: str, version: str, versions: Sequence[str]) -> None:
        ServingError.__init__(
            self,
            f"model {name!r} has no version {quoted(version)}; versions: {', '.join(versions)}",
        )
        self.name = name
        self.available = list(versions)


class ModelNotReady(ServingError):
    """The model is LOADING or FAILED, or the server is shutting down."""

    http_status = 503

    def __init__(
        self,
        name: str,
        state: str,
        reason: str | None = None,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"model {name!r} is not ready ({state}){detail}")
        self.name = name
        self.state = state
        self.reason = reason
        self.retry_after_s = retry_after_s


class QueueFull(ServingError):
    http_status = 503

    def __init__(self, name: str, queued: int, limit: int, retry_after_s: float) -> None:
        super().__init__(
            f"model {name!r} is overloaded: {queued} images queued (max_queue {limit}); "
            f"retry after {retry_after_s:g} s"
        )
        self.retry_after_s = retry_after_s


class ServerBusy(ServingError):
    """A server-wide budget (bytes of bodies in flight, the decode backlog) is spent."""

    http_status = 503

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(f"{message}; retry after {retry_after_s:g} s")
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ServingError):
    http_status = 504


class ClientDisconnected(ServingError):
    """The client went away before its answer was ready; nginx's status 499 is recorded."""

    http_status = 499


class InferenceFailed(ServingError):
    """The runtime raised while computing the batch holding this request (the cause is
    logged with its traceback, not sent to the client)."""

    http_status = 500

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"inference failed in model {name!r} (see the server log)")
        self.cause = cause


class InternalError(ServingError):
    """An unexpected exception inside the server; logged, answered without its text."""

    def __init__(self) -> None:
        super().__init__("internal error (see the server log)")


def error_payload(error: ServingError) -> tuple[int, dict[str, object], dict[str, str]]:
    """The REST answer to `error`: status, `{"error": ...}` body, headers."""
    body: dict[str, object] = {"error": error.message}
    headers = {}
    if isinstance(error, ModelNotFound):
        body["available"] = error.available
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
    return error.http_status, body, headers
