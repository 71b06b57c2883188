"""Responses the routers share: orjson bodies and `{"error": ...}` answers."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

from service.errors import ServingError, error_payload


class OrjsonResponse(JSONResponse):
    """JSON via orjson (numpy arrays and scalars included)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(error: ServingError) -> OrjsonResponse:
    status, body, headers = error_payload(error)
    return OrjsonResponse(body, status_code=status, headers=headers)
