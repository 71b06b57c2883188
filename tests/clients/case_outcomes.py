"""How the client-venv scripts report one case: {"result": ...} or {"error": "...", ...}."""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from typing import Any


def outcome(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"result": call()}
    except Exception as error:
        return failure(error)


async def async_outcome(call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    try:
        return {"result": await call()}
    except Exception as error:
        return failure(error)


def failure(error: Exception) -> dict[str, Any]:
    return {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
