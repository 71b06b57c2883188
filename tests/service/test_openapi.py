"""The OpenAPI document: every reference resolves, every V2 operation documents its answers
(200 and the `{"error": ...}` ones it can give), nothing documents FastAPI's unused 422."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from service_fakes import repository_config

from service.app import create_app

ERROR_BODY = {"$ref": "#/components/schemas/Error"}
INFER_ERRORS = {"400", "404", "413", "415", "500", "503", "504"}
# (method, path) -> the error statuses the operation documents; every model route also
# exists for one version (`versioned`).
DOCUMENTED = {
    ("get", "/v2"): set(),
    ("get", "/v2/health/live"): set(),
    ("get", "/v2/health/ready"): {"400"},
    ("get", "/v2/models/stats"): set(),
    ("get", "/v2/models/{name}"): {"404", "503"},
    ("get", "/v2/models/{name}/ready"): {"400", "404"},
    ("get", "/v2/models/{name}/config"): {"404", "503"},
    ("get", "/v2/models/{name}/stats"): {"404"},
    ("post", "/v2/models/{name}/infer"): INFER_ERRORS,
    ("post", "/predict"): INFER_ERRORS,
    ("post", "/models/{name}/predict"): INFER_ERRORS,
}
MODEL_ROUTES = [(method, path) for method, path in DOCUMENTED if path.startswith("/v2/models/{")]


def versioned(path: str) -> str:
    head, _, tail = path.partition("{name}")
    return f"{head}{{name}}/versions/{{version}}{tail}"


CASES = [
    *DOCUMENTED.items(),
    *(((method, versioned(path)), DOCUMENTED[method, path]) for method, path in MODEL_ROUTES),
]


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict[str, Any]:
    return create_app(repository_config(tmp_path_factory.mktemp("openapi"))).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), f"{reference} is not a reference into the document"
    node: Any = document
    for part in reference[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{reference} does not resolve"
        node = node[part]
    return node


def test_every_reference_resolves_inside_the_document(document):
    found = set(references(document))

    assert "#/components/schemas/InferenceRequest" in found
    assert "#/components/schemas/RequestInput" in found
    for reference in found:
        resolve(document, reference)


@pytest.mark.parametrize(("operation", "errors"), CASES, ids=[" ".join(op) for op, _ in CASES])
def test_each_operation_documents_its_200_and_error_answers(document, operation, errors):
    method, path = operation
    responses = document["paths"][path][method]["responses"]

    assert set(responses) == {"200", *errors}
    assert "schema" in responses["200"]["content"]["application/json"]
    for status in errors:
        schema = responses[status]["content"]["application/json"]["schema"]
        if path.endswith("/ready") and status == "400":  # the readiness body, saying false
            assert schema != ERROR_BODY
        else:
            assert schema == ERROR_BODY, status


def test_nothing_documents_fastapis_422_or_its_schemas(document):
    statuses = {
        status for _, _, operation in operations(document) for status in operation["responses"]
    }

    assert "422" not in statuses
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])


def test_version_routes_take_a_required_string_version_and_the_others_none(document):
    for method, path in MODEL_ROUTES:
        latest = document["paths"][path][method]["parameters"]
        (version,) = [
            p
            for p in document["paths"][versioned(path)][method]["parameters"]
            if p["name"] == "version"
        ]

        assert "version" not in {parameter["name"] for parameter in latest}, path
        assert version["in"] == "path" and version["required"] is True
        assert version["schema"]["type"] == "string"


def test_operation_ids_are_unique(document):
    ids = [operation["operationId"] for _, _, operation in operations(document)]

    assert len(ids) == len(set(ids))


def test_infer_documents_binary_bodies_with_the_json_header_length(document):
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        infer = document["paths"][path]["post"]
        headers = {p["name"] for p in infer["parameters"] if p["in"] == "header"}

        assert set(infer["requestBody"]["content"]) == {
            "application/json",
            "application/octet-stream",
        }
        assert "Inference-Header-Content-Length" in headers
        assert set(infer["responses"]["200"]["content"]) == {
            "application/json",
            "application/octet-stream",
        }


def test_the_document_is_valid_openapi(document):
    validator = pytest.importorskip("openapi_spec_validator")

    validator.validate(document)


def test_management_operations_and_only_they_ask_for_the_bearer_token(document):
    guarded = {
        (method, path)
        for method, path, operation in operations(document)
        if "security" in operation
    }

    assert document["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    assert guarded == {
        ("put", "/models/{name}"),
        ("patch", "/models/{name}"),
        ("delete", "/models/{name}"),
        ("put", "/models/{name}/weights"),
        ("put", "/models/{name}/default"),
        ("post", "/v2/repository/models/{name}/load"),
        ("post", "/v2/repository/models/{name}/unload"),
    }
