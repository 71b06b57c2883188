"""The hot routes, answered on raw ASGI ahead of FastAPI's routing and middleware.

`match` picks a route from the path with a few string operations; `FastRoute` is also an
ASGI app, registered in FastAPI's router for the same paths, so that other methods get 405
and the routes are listed with the others. Both run the same handler through `respond`,
which turns every error into its status code and counts the request in the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.auth import Access
from service.errors import InternalError, ServingError
from service.fastpath.exchange import Exchange, Receive, Scope, Send
from service.fastpath.infer import infer
from service.fastpath.predict import predict
from service.serving import Serving

log = logging.getLogger(__name__)

PROTOCOL = "rest"
Handler = Callable[[Serving, Exchange, dict[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class FastRoute:
    path: str  # Starlette path syntax, for the router and the OpenAPI document
    handler: Handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        serving = scope["app"].state.serving
        await respond(self.handler, serving, scope, receive, send, scope["path_params"])


PREDICT = FastRoute("/predict", predict)
MODEL_PREDICT = FastRoute("/models/{name}/predict", predict)
INFER = FastRoute("/v2/models/{name}/infer", infer)
VERSION_INFER = FastRoute("/v2/models/{name}/versions/{version}/infer", infer)
FAST_ROUTES = (PREDICT, MODEL_PREDICT, INFER, VERSION_INFER)


def match(path: str) -> tuple[FastRoute, dict[str, str]] | None:
    """The hot route for a POST to `path`, with its path parameters."""
    if path == "/predict":
        return PREDICT, {}
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "models" and parts[3] == "predict" and parts[2]:
        return MODEL_PREDICT, {"name": parts[2]}
    if len(parts) == 5 and parts[1:3] == ["v2", "models"] and parts[4] == "infer" and parts[3]:
        return INFER, {"name": parts[3]}
    if (
        len(parts) == 7
        and parts[1:3] == ["v2", "models"]
        and parts[4] == "versions"
        and parts[6] == "infer"
        and parts[3]
        and parts[5]
    ):
        return VERSION_INFER, {"name": parts[3], "version": parts[5]}
    return None


async def respond(
    handler: Handler,
    serving: Serving,
    scope: Scope,
    receive: Receive,
    send: Send,
    params: dict[str, str],
) -> None:
    """Check the token inference needs, if any; run `handler`; answer any error it raises;
    count the request."""
    exchange = Exchange(scope, receive, send)
    try:
        scope["app"].state.auth.authorize(Access.INFER, exchange.headers.get(b"authorization"))
        await handler(serving, exchange, params)
    except ServingError as error:
        await exchange.send_error(error)
    except Exception:
        log.exception("unhandled error on POST %s", scope["path"])
        await exchange.send_error(InternalError())
    finally:
        seconds = time.monotonic() - exchange.started
        serving.metrics.record_request(
            exchange.model, exchange.version, exchange.status, PROTOCOL, seconds
        )
