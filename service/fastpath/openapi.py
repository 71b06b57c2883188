"""The parts of the OpenAPI document FastAPI cannot derive: the hot routes' operations, the V2
bodies as `components/schemas`, and the `{"error": ...}` answers every route documents.

The handlers write their JSON themselves, so the bodies are described here as JSON Schema and
referenced from the operations (`ok`, `errors`) by `#/components/schemas/<name>`.
"""

from __future__ import annotations

from typing import Any

from service.fastpath.routes import INFER, MODEL_PREDICT, PREDICT, VERSION_INFER

SCHEMA_PREFIX = "#/components/schemas/"
Responses = dict[int | str, dict[str, Any]]  # an operation's answers by status, as FastAPI takes
INFERENCE_HEADER = "Inference-Header-Content-Length"


def ref(schema: str) -> dict[str, str]:
    return {"$ref": SCHEMA_PREFIX + schema}


def _object(properties: dict[str, Any], *required: str, **extra: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, **extra}
    return {**schema, "required": list(required)} if required else schema


def _array(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
PARAMETERS = {"type": "object", "additionalProperties": True}
DATATYPE = {**STRING, "examples": ["FP32", "UINT8", "BYTES"]}
SHAPE = _array({**INTEGER, "minimum": 0})
DURATION = _object({"count": INTEGER, "ns": INTEGER}, "count", "ns")

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _object({"error": STRING}, "error"),
    "ServerMetadata": _object(
        {"name": STRING, "version": STRING, "extensions": _array(STRING)},
        "name",
        "version",
        "extensions",
    ),
    "ServerLive": _object({"live": BOOLEAN}, "live"),
    "ServerReady": _object({"ready": BOOLEAN}, "ready"),
    "ModelReady": _object({"name": STRING, "ready": BOOLEAN}, "name", "ready"),
    "TensorMetadata": _object(
        {"name": STRING, "datatype": DATATYPE, "shape": _array({**INTEGER, "minimum": -1})},
        "name",
        "datatype",
        "shape",
    ),
    "ModelMetadata": _object(
        {
            "name": STRING,
            "versions": _array(STRING),
            "platform": STRING,
            "inputs": _array(ref("TensorMetadata")),
            "outputs": _array(ref("TensorMetadata")),
            "parameters": PARAMETERS,
        },
        "name",
        "platform",
        "inputs",
        "outputs",
    ),
    "ModelConfig": _object(
        {
            "name": STRING,
            "platform": STRING,
            "backend": STRING,
            "max_batch_size": INTEGER,
            "input": _array(PARAMETERS),
            "output": _array(PARAMETERS),
            "dynamic_batching": PARAMETERS,
            "instance_group": _array(PARAMETERS),
        },
        "name",
        description="Triton's model configuration (model_config.proto field names).",
        additionalProperties=True,
    ),
    "InferStatistics": _object(
        {
            field: ref("StatisticDuration")
            for field in (
                "success",
                "fail",
                "queue",
                "compute_input",
                "compute_infer",
                "compute_output",
                "cache_hit",
                "cache_miss",
            )
        }
    ),
    "StatisticDuration": DURATION,
    "BatchStatistics": _object(
        {
            "batch_size": INTEGER,
            "compute_input": ref("StatisticDuration"),
            "compute_infer": ref("StatisticDuration"),
            "compute_output": ref("StatisticDuration"),
        },
        "batch_size",
    ),
    "ModelStatistics": _object(
        {
            "name": STRING,
            "version": STRING,
            "last_inference": {**INTEGER, "description": "milliseconds since the epoch"},
            "inference_count": INTEGER,
            "execution_count": INTEGER,
            "inference_stats": ref("InferStatistics"),
            "batch_stats": _array(ref("BatchStatistics")),
            "memory_usage": _array(PARAMETERS),
        },
        "name",
        "version",
    ),
    "ModelStatisticsResponse": _object(
        {"model_stats": _array(ref("ModelStatistics"))}, "model_stats"
    ),
    "RepositoryIndexRequest": _object(
        {"ready": {**BOOLEAN, "description": "list only the models ready for inference"}}
    ),
    "RepositoryLoadRequest": _object(
        {
            "parameters": _object(
                {
                    "config": {
                        **STRING,
                        "description": "A blockserve model config as a JSON string: the "
                        "fields of an entry under `models:` in the config file (`name` is the "
                        "path's). Absent: reload the model's current config.",
                    }
                }
            )
        }
    ),
    "RepositoryUnloadRequest": _object(
        {
            "parameters": _object(
                {
                    "unload_dependents": {
                        **BOOLEAN,
                        "description": "accepted for Triton's clients; models have no dependents",
                    }
                }
            )
        }
    ),
    "RepositoryModelIndex": _object(
        {
            "name": STRING,
            "version": {**STRING, "description": "absent for an unloaded model"},
            "state": {**STRING, "examples": ["READY", "LOADING", "UNLOADING", "UNAVAILABLE"]},
            "reason": STRING,
        },
        "name",
        "state",
        "reason",
    ),
    "RepositoryIndexResponse": _array(ref("RepositoryModelIndex")),
    "RepositoryModelResponse": _object({}, description="Empty: the change took effect."),
    "RequestInput": _object(
        {
            "name": STRING,
            "shape": SHAPE,
            "datatype": DATATYPE,
            "parameters": {
                **PARAMETERS,
                "description": "`binary_data_size`: the tensor is that many bytes of the body "
                "after the JSON header, instead of `data`.",
            },
            "data": _array({}, description="flat row-major, or nested as `shape`"),
        },
        "name",
        "shape",
        "datatype",
    ),
    "RequestOutput": _object(
        {
            "name": STRING,
            "parameters": {
                **PARAMETERS,
                "description": "`binary_data`: answer the tensor as binary; `classification`: "
                "the top N classes as BYTES `score:index[:label]`.",
            },
        },
        "name",
    ),
    "InferenceRequest": _object(
        {
            "id": STRING,
            "parameters": {
                **PARAMETERS,
                "description": "`binary_data_output`: every output as binary.",
            },
            "inputs": _array(ref("RequestInput"), minItems=1),
            "outputs": _array(ref("RequestOutput")),
        },
        "inputs",
    ),
    "ResponseOutput": _object(
        {
            "name": STRING,
            "shape": SHAPE,
            "datatype": DATATYPE,
            "parameters": PARAMETERS,
            "data": _array({}, description="flat row-major; absent for a binary output"),
        },
        "name",
        "shape",
        "datatype",
    ),
    "InferenceResponse": _object(
        {
            "model_name": STRING,
            "model_version": STRING,
            "id": STRING,
            "parameters": PARAMETERS,
            "outputs": _array(ref("ResponseOutput")),
        },
        "model_name",
        "outputs",
    ),
    "ModelVersionState": _object(
        {"version": STRING, "state": STRING, "reason": {"type": ["string", "null"]}},
        "version",
        "state",
    ),
    "ModelChange": _object(
        {
            "model": STRING,
            "version": STRING,
            "state": STRING,
            "reason": {"type": ["string", "null"]},
        },
        "model",
        "version",
        "state",
        description="The version a change loaded (READY; a FAILED load answers 400).",
    ),
    "ModelDetail": _object(
        {
            "model": STRING,
            "default": BOOLEAN,
            "version": STRING,
            "state": STRING,
            "reason": {"type": ["string", "null"]},
            "versions": _array(ref("ModelVersionState")),
            "last_error": {"type": ["string", "null"]},
            "serving": PARAMETERS,
        },
        "model",
        "version",
        "state",
        "versions",
        description="A model's versions and, once loaded, its bundle manifest's fields.",
        additionalProperties=True,
    ),
    "DefaultModel": _object({"default": STRING}, "default"),
    "ModelFigures": _object(
        {
            "name": STRING,
            "version": STRING,
            "state": STRING,
            "requests": {**INTEGER, "description": "requests answered, any status"},
            "errors": {**INTEGER, "description": "requests answered with an error"},
            "latency_buckets": _array(
                _array({"type": ["number", "string"]}, minItems=2, maxItems=2),
                description='[upper bound in seconds (the last "+Inf"), requests at most '
                "that long], over every protocol",
            ),
            "batches": INTEGER,
            "images": {**INTEGER, "description": "in those batches"},
            "queue_depth": {**INTEGER, "description": "images waiting now, every instance"},
        },
        "name",
        "version",
        "state",
        "requests",
        "errors",
        "latency_buckets",
        "batches",
        "images",
        "queue_depth",
    ),
    "Figures": _object(
        {
            "time": {"type": "number", "description": "seconds since the epoch"},
            "models": _array(ref("ModelFigures")),
        },
        "time",
        "models",
        description="Every served version's figures, cumulative since the server started "
        "(but `queue_depth`): rates are differences between two snapshots.",
    ),
    "Architecture": _object(
        {
            "name": STRING,
            "default_input_size": _array(INTEGER, description="(channels, *spatial sizes)"),
            "num_classes": INTEGER,
            "weights_recipe": {
                "type": ["string", "null"],
                "description": "the recipe that trains its weights, if any",
            },
        },
        "name",
        "default_input_size",
        "num_classes",
    ),
    "Registry": _object({"architectures": _array(ref("Architecture"))}, "architectures"),
    "ModelUnloaded": _object({"model": STRING, "unloaded": _array(STRING)}, "model", "unloaded"),
    "Prediction": _object(
        {"index": INTEGER, "label": STRING, "score": {"type": "number"}},
        "index",
        "label",
        "score",
    ),
    "Predictions": _object(
        {
            "model": STRING,
            "predictions": _array(_array(ref("Prediction")), description="one list per image"),
        },
        "model",
        "predictions",
    ),
}

ERRORS = {
    400: 'Bad input; the body `{"error": ...}` names the problem.',
    401: "A bearer token is needed (`Authorization: Bearer <token>`), or it is not valid.",
    403: "The token is valid but does not grant this operation.",
    404: "Unknown model or version.",
    413: "Body, image, tensor or image count over a configured limit.",
    415: "Content-Type not accepted.",
    500: "The model failed on the batch holding this request.",
    503: "Model not ready or overloaded; see `Retry-After`.",
    504: "`X-Request-Timeout-Ms` exceeded.",
}


def json_response(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def ok(schema: str, description: str = "Successful Response") -> Responses:
    """An operation's 200 answer: a JSON `schema` of `SCHEMAS`."""
    return {"200": json_response(schema, description)}


def optional_body(schema: str) -> dict[str, Any]:
    """An operation's optional JSON body (`openapi_extra`), a schema of `SCHEMAS`."""
    return {
        "requestBody": {"required": False, "content": {"application/json": {"schema": ref(schema)}}}
    }


def errors(*statuses: int) -> Responses:
    """An operation's error answers: `{"error": ...}` bodies with these statuses."""
    return {str(status): json_response("Error", ERRORS[status]) for status in statuses}


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
IMAGE_BODY = {
    "required": True,
    "description": "One or many images: multipart files, one raw image, or base64 JSON.",
    "content": {
        "multipart/form-data": {
            "schema": _object({"files": _array({**STRING, "format": "binary"})}, "files")
        },
        "image/*": {"schema": {**STRING, "format": "binary"}},
        "application/json": {
            "schema": _object(
                {"images": _array({**STRING, "description": "base64 or data: URL"})}, "images"
            )
        },
    },
}
TOP_K = _parameter(
    "top_k",
    "query",
    {**INTEGER, "minimum": 1},
    "classes per image (clamped); the model's `top_k` if absent",
)
BINARY_BODY = (
    f"The JSON request (its length in `{INFERENCE_HEADER}`), then the binary tensors in the "
    "order of their `binary_data_size`."
)
INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": ref("InferenceRequest")},
        "application/octet-stream": {
            "schema": {**STRING, "format": "binary", "description": BINARY_BODY}
        },
    },
}
INFER_HEADER = _parameter(
    INFERENCE_HEADER,
    "header",
    {**INTEGER, "minimum": 0},
    "Length of the JSON part of a binary (`application/octet-stream`) body.",
)
INFER_OK = {
    "description": "The outputs: JSON, or the JSON header then binary outputs when any output "
    f"is binary (`{INFERENCE_HEADER}` gives the JSON part's length).",
    "headers": {INFERENCE_HEADER: {"schema": INTEGER}},
    "content": {
        "application/json": {"schema": ref("InferenceResponse")},
        "application/octet-stream": {"schema": {**STRING, "format": "binary"}},
    },
}


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    body: dict[str, Any],
    parameters: list[dict[str, Any]],
    answer: dict[str, Any],
) -> dict[str, Any]:
    return {
        "post": {
            "tags": [tag],
            "summary": summary,
            "operationId": operation_id,
            "parameters": [*parameters, TIMEOUT_PARAMETER],
            "requestBody": body,
            "responses": {"200": answer, **errors(400, 404, 413, 415, 500, 503, 504)},
        }
    }


MODEL_QUERY = _parameter("model", "query", STRING, "model name; the default model if absent")
NAME = _parameter("name", "path", STRING, "model name")
VERSION = _parameter("version", "path", STRING, "model version (`versions` in its metadata)")
PREDICTIONS = json_response("Predictions", "The top classes of every image.")
PATHS: dict[str, dict[str, Any]] = {
    PREDICT.path: _operation(
        "predict",
        "Classify the images in the body",
        "predict",
        IMAGE_BODY,
        [MODEL_QUERY, TOP_K],
        PREDICTIONS,
    ),
    MODEL_PREDICT.path: _operation(
        "model_predict",
        "Classify the images in the body with model `name`",
        "predict",
        IMAGE_BODY,
        [NAME, TOP_K],
        PREDICTIONS,
    ),
    INFER.path: _operation(
        "model_infer", "Inference on V2 tensors", "v2", INFER_BODY, [NAME, INFER_HEADER], INFER_OK
    ),
    VERSION_INFER.path: _operation(
        "model_version_infer",
        "Inference on V2 tensors, one version",
        "v2",
        INFER_BODY,
        [NAME, VERSION, INFER_HEADER],
        INFER_OK,
    ),
}
# FastAPI documents a 422 (and its schemas) for every route with parameters; this app answers
# request validation errors 400 with an `{"error": ...}` body instead (see `service.app`).
FASTAPI_VALIDATION_STATUS = "422"
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


BEARER = "bearer"  # the API token (`service/auth.py`)


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (FastAPI's document) with the hot routes, the shared schemas, the bearer
    token on the operations that answer 401, and without FastAPI's validation-error
    answers."""
    paths = schema.setdefault("paths", {})
    paths.update(PATHS)
    for operations in paths.values():
        for operation in operations.values():
            operation["responses"].pop(FASTAPI_VALIDATION_STATUS, None)
            if "401" in operation["responses"]:
                operation["security"] = [{BEARER: []}]
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {BEARER: {"type": "http", "scheme": "bearer"}}
    schemas = components.setdefault("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas.update(SCHEMAS)
    return schema
