"""Bearer tokens over gRPC: `authorization: Bearer <token>` in the call's metadata.

Each RPC of the inference service is a kind of access (`service.auth.Access`): inference,
reads (health, metadata, configuration, statistics, the repository index) or, for every other
RPC, a management operation. A call without the token its kind needs ends UNAUTHENTICATED
(no or malformed metadata) or PERMISSION_DENIED (a token that does not grant it) before the
servicer sees it. `grpc.health.v1` and reflection are separate services and stay open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from service.auth import Access, Authenticator
from service.errors import ServingError
from service.grpc.status import status_code

AUTHORIZATION_KEY = "authorization"
INFER_METHODS = frozenset({"ModelInfer", "ModelStreamInfer"})
READ_METHODS = frozenset(
    {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelConfig",
        "ModelStatistics",
        "RepositoryIndex",
    }
)
Context = grpc.aio.ServicerContext
Behaviour = Callable[[Any, Context], Any]


def method_access(method: str) -> Access:
    """The kind of access an RPC of the inference service is: management unless listed."""
    if method in INFER_METHODS:
        return Access.INFER
    if method in READ_METHODS:
        return Access.READ
    return Access.MANAGE


async def grpc_authorize(context: Context, auth: Authenticator, access: Access) -> None:
    """Abort the call unless its metadata carries a token granting `access`."""
    metadata = context.invocation_metadata() or ()
    authorization = next((value for key, value in metadata if key == AUTHORIZATION_KEY), None)
    try:
        auth.authorize(access, authorization)
    except ServingError as error:
        await context.abort(status_code(error), error.message)


def guarded(
    behaviour: Behaviour, method: str, auth: Authenticator, *, streaming: bool
) -> Behaviour:
    """`behaviour` (a unary or, with `streaming`, a bidirectional streaming RPC) checking the
    token first; `behaviour` itself when its access needs no token."""
    access = method_access(method)
    if not auth.requires_token(access):
        return behaviour
    if streaming:
        return _guarded_stream(behaviour, auth, access)
    return _guarded_unary(behaviour, auth, access)


def _guarded_unary(behaviour: Behaviour, auth: Authenticator, access: Access) -> Behaviour:
    async def checked(request: Any, context: Context) -> Any:
        await grpc_authorize(context, auth, access)
        return await behaviour(request, context)

    return checked


def _guarded_stream(behaviour: Behaviour, auth: Authenticator, access: Access) -> Behaviour:
    async def checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        await grpc_authorize(context, auth, access)
        async for response in behaviour(requests, context):
            yield response

    return checked
