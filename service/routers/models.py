"""`/models`: what is served (`GET /models`, `GET /models/{name}` with its versions and last load
error, `.../summary`) and the native management API: create or replace a model (`PUT`), change
its instances, batching, top_k or labels (`PATCH`), upload its weights (`PUT .../weights`), make
it the default (`PUT .../default`), unload it (`DELETE`).

Every change goes through `ModelManager` (serialised, persisted) and loads a new version: the
served one keeps serving until the new one is READY. A change answers once the new version is
READY (200, 201 for a new model) or FAILED (400 with the reason; the served versions stay).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from service.api_configs import checked_shapes, model_config, patched, with_weights
from service.auth import require_management
from service.config import ModelConfig, ServerConfig
from service.errors import InvalidInput, PayloadTooLarge
from service.fastpath import openapi
from service.repository import ModelHandle, ModelState
from service.routers.deps import State
from service.routers.responses import OrjsonResponse
from service.serving import Serving
from service.weights_upload import WeightsUpload

router = APIRouter(prefix="/models", tags=["models"])
# Manifest entries not served: the library versions the bundle was built with.
PRIVATE_KEYS = frozenset({"versions"})
# Guards of the routes that change what is served.
MANAGEMENT = [Depends(require_management)]

Version = Annotated[
    str | None, Query(description="a version of the model; default: the served one")
]


@router.get("")
async def list_models(state: State) -> Response:
    """Every version of every model with its state (and failure reason), format, device,
    batching, training."""
    repository = state.repository
    return OrjsonResponse(
        {
            "default": repository.default_name,
            "models": [handle.describe() for handle in repository.handles],
        }
    )


@router.get("/{name}", responses={**openapi.ok("ModelDetail"), **openapi.errors(404)})
async def model_detail(name: str, state: State, version: Version = None) -> Response:
    """The model's `state`, `versions` (each with its state and reason) and `last_error` (of
    its last failed load), and, once the version is loaded, its bundle manifest without
    library versions (weights, input, outputs, parity, files, the preprocess and labels it was
    exported with) plus `serving`: the preprocess and labels in use."""
    repository = state.repository
    model = repository.model(name)
    handle = repository.get(name, version)
    detail: dict[str, Any] = {}
    if handle.state is ModelState.READY and handle.loaded is not None:
        loaded = handle.loaded
        detail = {key: value for key, value in loaded.manifest.items() if key not in PRIVATE_KEYS}
        detail["serving"] = {"preprocess": loaded.preprocess.to_dict(), "labels": loaded.labels}
    return OrjsonResponse(
        {
            **detail,
            "model": name,
            "default": repository.default_name == name,
            **_version_state(handle),
            "versions": [_version_state(each) for each in model.ordered()],
            "last_error": model.last_error,
        }
    )


@router.get("/{name}/summary", responses=openapi.errors(400, 404, 503))
async def model_summary(
    name: str,
    state: State,
    format: Annotated[Literal["text", "json", "mermaid"], Query()] = "text",
) -> Response:
    """The architecture summary the bundle manifest records: torchsummary `text`, `json`, or a
    `mermaid` diagram."""
    handle = state.repository.get(name)
    if format == "json":
        return OrjsonResponse(handle.ready().manifest["summary"])
    summary = handle.summary()
    if format == "mermaid":
        return PlainTextResponse(await asyncio.to_thread(summary.to_mermaid))
    text = await asyncio.to_thread(summary.to_text)
    return PlainTextResponse(f"{text}\nServed precision: {handle.config.precision}\n")


CONFIG_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "A model config: the fields of an entry under `models:` in the "
                "config file (the name is the path's). The network is `arch` (a registry "
                "model) or `spec` (a whole NetworkSpec), either with `overrides`.",
                "additionalProperties": True,
            }
        }
    },
}
AUTH_ERRORS = (401, 403)


@router.put(
    "/{name}",
    dependencies=MANAGEMENT,
    responses={**openapi.ok("ModelChange"), **openapi.errors(*AUTH_ERRORS, 400, 413, 503)},
    openapi_extra={"requestBody": CONFIG_BODY},
)
async def put_model(name: str, request: Request, state: State) -> Response:
    """Create model `name`, or load a new version of it, from a model config. 201 for a new
    model, 200 for a new version; 400 naming the field of an invalid config, or with the
    reason when the load FAILED (the served versions keep serving)."""
    body = await _json_body(request, state.config.server)
    config = model_config(name, body)
    await asyncio.to_thread(checked_shapes, config)
    created = name not in state.repository.names
    return await _load(state, config, created=created)


@router.patch(
    "/{name}",
    dependencies=MANAGEMENT,
    responses={**openapi.ok("ModelChange"), **openapi.errors(*AUTH_ERRORS, 400, 404, 413, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {}}}},
)
async def patch_model(name: str, request: Request, state: State) -> Response:
    """Change the served version's `instances`, `batching` (the fields given), `top_k` or
    `labels`: loaded as a new version."""
    base = state.repository.get(name).config
    config = patched(base, await _json_body(request, state.config.server))
    await asyncio.to_thread(checked_shapes, config)
    return await _load(state, config)


@router.put(
    "/{name}/weights",
    dependencies=MANAGEMENT,
    responses={
        **openapi.ok("ModelChange"),
        **openapi.errors(*AUTH_ERRORS, 400, 404, 413, 415, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_weights(name: str, request: Request, state: State) -> Response:
    """Serve the model with the weights in the body (a safetensors file, at most
    `limits.max_weights_bytes`): checked against the network's tensor names and shapes before
    use, kept under the server's state directory (else its cache directory), loaded as a new
    version."""
    server = state.config.server
    base = state.repository.get(name).config
    expected = await asyncio.to_thread(checked_shapes, base)
    upload = WeightsUpload(_weights_dir(server) / name)
    try:
        declared = request.headers.get("content-length")
        await upload.receive(request.stream(), declared, server.limits.max_weights_bytes)
        await asyncio.to_thread(upload.check, expected, name)
        path = await asyncio.to_thread(upload.keep)
    finally:
        upload.discard()
    return await _load(state, with_weights(base, str(path)))


@router.put(
    "/{name}/default",
    dependencies=MANAGEMENT,
    responses={**openapi.ok("DefaultModel"), **openapi.errors(*AUTH_ERRORS, 404)},
)
async def set_default_model(name: str, state: State) -> Response:
    """Serve model `name` to requests that name no model."""
    await state.manager.set_default(name)
    return OrjsonResponse({"default": name})


@router.delete(
    "/{name}",
    dependencies=MANAGEMENT,
    responses={**openapi.ok("ModelUnloaded"), **openapi.errors(*AUTH_ERRORS, 404)},
)
async def delete_model(name: str, state: State, version: Version = None) -> Response:
    """Unload the model (every version, or `version`): new requests get 404 at once, every
    queued one is answered, then its memory is released."""
    versions = [version] if version else state.repository.version_names(name)
    await state.manager.unload(name, version)
    return OrjsonResponse({"model": name, "unloaded": versions})


async def _load(state: Serving, config: ModelConfig, *, created: bool = False) -> Response:
    handle = await state.manager.load(config)
    answer = {"model": config.name, **_version_state(handle)}
    if handle.state is not ModelState.READY:
        return OrjsonResponse({"error": handle.load_failure, **answer}, status_code=400)
    return OrjsonResponse(answer, status_code=201 if created else 200)


def _version_state(handle: ModelHandle) -> dict[str, Any]:
    return {"version": handle.version, "state": str(handle.state), "reason": handle.reason}


def _weights_dir(server: ServerConfig) -> Path:
    return (server.state_dir or server.cache_dir) / "weights"


async def _json_body(request: Request, server: ServerConfig) -> Any:
    """The request's JSON, at most `limits.max_body_bytes` (413 above)."""
    limit = server.limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds limits.max_body_bytes ({limit})")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"body exceeds limits.max_body_bytes ({limit} bytes)")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"the body is not JSON: {error}") from None
