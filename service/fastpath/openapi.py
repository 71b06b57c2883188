"""The hot routes in the OpenAPI document (FastAPI only describes its own routes)."""

from __future__ import annotations

from typing import Any

TIMEOUT_PARAMETER = {
    "name": "X-Request-Timeout-Ms",
    "in": "header",
    "required": False,
    "schema": {"type": "number", "exclusiveMinimum": 0},
    "description": "Deadline for the request (reading, decoding, queueing, compute); 504 after.",
}
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
TOP_K = {
    "name": "top_k",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1},
    "description": "classes per image (clamped); the model's `top_k` if absent",
}
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


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


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


MODEL_QUERY = {
    "name": "model",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "model name; the default model if absent",
}
PATHS: dict[str, dict[str, Any]] = {
    "/predict": _operation(
        "Classify the images in the body", "predict", IMAGE_BODY, [MODEL_QUERY, TOP_K]
    ),
    "/models/{name}/predict": _operation(
        "Classify the images in the body with model `name`",
        "predict",
        IMAGE_BODY,
        [_path_parameter("name"), TOP_K],
    ),
    "/v2/models/{name}/infer": _operation(
        "Inference on V2 JSON tensors", "v2", INFER_BODY, [_path_parameter("name")]
    ),
    "/v2/models/{name}/versions/{version}/infer": _operation(
        "Inference on V2 JSON tensors, one version",
        "v2",
        INFER_BODY,
        [_path_parameter("name"), _path_parameter("version")],
    ),
}


def add_fast_routes(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (FastAPI's document) with the hot routes' operations added."""
    schema.setdefault("paths", {}).update(PATHS)
    return schema
