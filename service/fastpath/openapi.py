"""The hot routes in the OpenAPI document (FastAPI only describes its own routes)."""

from __future__ import annotations

from typing import Any

from service.fastpath.routes import INFER, MODEL_PREDICT, PREDICT, VERSION_INFER


def _parameter(
    name: str, location: str, schema: dict[str, Any], description: str = ""
) -> dict[str, Any]:
    """An operation parameter; path parameters are required, the others optional."""
    parameter = {"name": name, "in": location, "required": location == "path", "schema": schema}
    return {**parameter, "description": description} if description else parameter


TIMEOUT_PARAMETER = _parameter(
    "X-Request-Timeout-Ms",
    "header",
    {"type": "number", "exclusiveMinimum": 0},
    "Deadline for the request (reading, decoding, queueing, compute); 504 after.",
)
ERRORS = {
    "400": {"description": 'Bad input; the body `{"error": ...}` names the problem.'},
    "404": {"description": "Unknown model or version."},
    "413": {"description": "Body, image, tensor or image count over a configured limit."},
    "503": {"description": "Model not ready or overloaded; see `Retry-After`."},
    "504": {"description": "`X-Request-Timeout-Ms` exceeded."},
}
IMAGE_BODY = {
    "required": True,
    "description": "One or many images: multipart files, one raw image, or base64 JSON.",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
            }
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["images"],
                "properties": {
                    "images": {
                        "type": "array",
                        "items": {"type": "string", "description": "base64 or data: URL"},
                    }
                },
            }
        },
    },
}
TOP_K = _parameter(
    "top_k",
    "query",
    {"type": "integer", "minimum": 1},
    "classes per image (clamped); the model's `top_k` if absent",
)
TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "examples": ["FP32", "UINT8"]},
        "data": {"type": "array", "description": "flat row-major, or nested as `shape`"},
        "parameters": {"type": "object"},
    },
}
INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": {"type": "array", "minItems": 1, "items": TENSOR},
                    "outputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "parameters": {"type": "object"},
                            },
                        },
                    },
                },
            }
        }
    },
}


def _operation(
    summary: str, tag: str, body: dict, parameters: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "post": {
            "tags": [tag],
            "summary": summary,
            "parameters": [*parameters, TIMEOUT_PARAMETER],
            "requestBody": body,
            "responses": {"200": {"description": "Successful Response"}, **ERRORS},
        }
    }


MODEL_QUERY = _parameter(
    "model", "query", {"type": "string"}, "model name; the default model if absent"
)
NAME, VERSION = (_parameter(name, "path", {"type": "string"}) for name in ("name", "version"))
PATHS: dict[str, dict[str, Any]] = {
    PREDICT.path: _operation(
        "Classify the images in the body", "predict", IMAGE_BODY, [MODEL_QUERY, TOP_K]
    ),
    MODEL_PREDICT.path: _operation(
        "Classify the images in the body with model `name`", "predict", IMAGE_BODY, [NAME, TOP_K]
    ),
    INFER.path: _operation("Inference on V2 JSON tensors", "v2", INFER_BODY, [NAME]),
    VERSION_INFER.path: _operation(
        "Inference on V2 JSON tensors, one version", "v2", INFER_BODY, [NAME, VERSION]
    ),
}


def add_fast_routes(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (FastAPI's document) with the hot routes' operations added."""
    schema.setdefault("paths", {}).update(PATHS)
    return schema
