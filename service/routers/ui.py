"""The web page and what it reads beyond the serving API: `GET /` (the page), its files under
`/ui/static/`, live figures (`GET /ui/figures`), a model's exported bundle as a download
(`GET /models/{name}/bundle`) and the registry's architectures (`GET /registry`).

The page and its files are the package's own (`service/static`), open to every client: a
browser sends no token when it navigates. What they read is guarded like every other read.
"""

from __future__ import annotations

import asyncio
import gzip
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from models import list_models, model_default_cfg
from models.recipes import recipe_for
from service.fastpath import openapi
from service.metrics import ModelFigures
from service.routers.deps import State
from service.routers.responses import OrjsonResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH = "/ui/static"
PAGE = STATIC_DIR / "index.html"
CHUNK_BYTES = 1 << 20
# Weights barely compress: favour speed over size.
BUNDLE_COMPRESSLEVEL = 1

router = APIRouter(tags=["ui"])
page_router = APIRouter(tags=["ui"])

Version = Annotated[
    str | None, Query(description="a version of the model; default: the served one")
]


class StaticAssets(StaticFiles):
    """The page's files; browsers revalidate them (ETag) so an upgrade is seen at once."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> StaticAssets:
    """The ASGI app serving `service/static` (mounted at `STATIC_PATH`)."""
    return StaticAssets(directory=STATIC_DIR, html=False, check_dir=False)


@page_router.get(
    "/",
    operation_id="ui_page",
    response_class=HTMLResponse,
    responses={"200": {"description": "The web page.", "content": {"text/html": {}}}},
)
async def page() -> Response:
    """The web page: try the models, read their architectures, watch the server."""
    if not PAGE.is_file():
        raise HTTPException(404, "the web page is not installed (service/static/index.html)")
    return FileResponse(PAGE, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/ui/figures", operation_id="ui_figures", responses=openapi.ok("Figures"))
async def figures(state: State) -> Response:
    """Every served version's figures, cumulative since start (but `queue_depth`): the page
    turns two snapshots into rates and latency percentiles."""
    snapshot = state.metrics.snapshot()
    models = []
    for handle in state.repository.handles:
        figures = snapshot.get((handle.name, handle.version)) or ModelFigures()
        models.append(
            {
                "name": handle.name,
                "version": handle.version,
                "state": str(handle.state),
                **figures.to_dict(),
            }
        )
    return OrjsonResponse({"time": time.time(), "models": models})


@router.get(
    "/models/{name}/bundle",
    operation_id="model_bundle",
    response_class=StreamingResponse,
    responses={
        "200": {
            "description": "The bundle directory as a gzipped tar archive.",
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **openapi.errors(404, 503),
    },
)
async def model_bundle(name: str, state: State, version: Version = None) -> Response:
    """The model version's exported bundle (manifest, model file, weights record) as
    `<name>-v<version>.tar.gz`."""
    handle = state.repository.get(name, version)
    bundle_dir = handle.ready().bundle_dir
    if bundle_dir is None or not bundle_dir.is_dir():
        raise HTTPException(404, f"model {name!r} version {handle.version} has no exported bundle")
    stem = f"{name}-v{handle.version}"
    archive = await asyncio.to_thread(_archive, bundle_dir, stem)
    size = archive.seek(0, 2)
    archive.seek(0)
    return StreamingResponse(
        _chunks(archive),
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{stem}.tar.gz"',
            "Content-Length": str(size),
        },
    )


@router.get("/registry", operation_id="registry", responses=openapi.ok("Registry"))
async def registry() -> Response:
    """The architectures a model can be loaded from (`arch` in a model config)."""
    architectures = []
    for name in list_models():
        default = model_default_cfg(name)
        architectures.append(
            {
                "name": name,
                "default_input_size": list(default.input_size),
                "num_classes": default.num_classes,
                "weights_recipe": recipe_for(name),
            }
        )
    return OrjsonResponse({"architectures": architectures})


def _archive(bundle_dir: Path, stem: str) -> IO[bytes]:
    """`bundle_dir` as a tar.gz under the folder `stem`, in an anonymous temporary file (gone
    once closed). The same bundle gives the same bytes: the gzip header carries no time."""
    archive = tempfile.TemporaryFile()  # noqa: SIM115 (the response closes it)
    try:
        with (
            gzip.GzipFile(
                fileobj=archive, mode="wb", compresslevel=BUNDLE_COMPRESSLEVEL, mtime=0
            ) as packed,
            tarfile.open(fileobj=packed, mode="w") as tar,
        ):
            tar.add(bundle_dir, arcname=stem)
    except BaseException:
        archive.close()
        raise
    return archive


def _chunks(archive: IO[bytes]) -> Iterator[bytes]:
    """The archive's bytes (Starlette reads a plain iterator in a worker thread)."""
    with archive:
        while chunk := archive.read(CHUNK_BYTES):
            yield chunk
