"""FastAPI dependencies of the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.serving import Serving


async def serving(request: Request) -> Serving:
    """The app's serving state."""
    return request.app.state.serving


State = Annotated[Serving, Depends(serving)]
