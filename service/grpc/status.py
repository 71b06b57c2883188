"""Serving errors -> gRPC status codes: the gRPC twin of each error's `http_status`."""

from __future__ import annotations

import grpc

from service.errors import (
    ClientDisconnected,
    DeadlineExceeded,
    InferenceFailed,
    InvalidInput,
    ManagementUnavailable,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    PermissionDenied,
    QueueFull,
    ServerBusy,
    ServingError,
    Unauthenticated,
)

# Looked up along the error's MRO, so subclasses inherit their parent's code.
STATUS_CODES: dict[type[ServingError], grpc.StatusCode] = {
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ServerBusy: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelNotReady: grpc.StatusCode.UNAVAILABLE,
    QueueFull: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    ClientDisconnected: grpc.StatusCode.CANCELLED,
    InferenceFailed: grpc.StatusCode.INTERNAL,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ManagementUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
    ServingError: grpc.StatusCode.INTERNAL,
}


def status_code(error: ServingError) -> grpc.StatusCode:
    """The gRPC status code a serving error answers with."""
    return next(STATUS_CODES[cls] for cls in type(error).__mro__ if cls in STATUS_CODES)


def trailing_metadata(error: ServingError) -> tuple[tuple[str, str], ...]:
    """Extra trailers for an error: `retry-after` (seconds) when the error suggests a retry."""
    if error.retry_after_s is not None:
        return (("retry-after", f"{error.retry_after_s:g}"),)
    return ()
