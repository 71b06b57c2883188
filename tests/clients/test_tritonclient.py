"""Stock tritonclient 2.73 (http, http.aio, grpc, grpc.aio) works unmodified against blockserve:
every call the library offers for a served model, with answers equal to ONNX Runtime's.

The calls run in the client venv (tritonclient_cases.py, one process per client flavour); each
case is judged here as its own test."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from client_checks import assert_classification, assert_logits, result_of
from tritonclient_cases import CASES, CLASS_COUNT, COPY, MODEL, UNKNOWN_MODEL, VERSION

pytestmark = pytest.mark.clients

# What a served model's answers must hold for Triton's own tooling (perf_analyzer needs all).
REQUIRED_EXTENSIONS = {"binary_tensor_data", "classification", "model_configuration", "statistics"}


def as_int(value: Any) -> int:
    """protobuf JSON writes 64-bit integers as strings."""
    return int(value)


def check_true(result: Any, reference) -> None:
    assert result is True


def check_server_metadata(result: dict[str, Any], reference) -> None:
    assert result["name"] and result["version"]
    assert set(result.get("extensions", [])) >= REQUIRED_EXTENSIONS


def check_model_metadata(result: dict[str, Any], reference) -> None:
    assert result["name"] == MODEL
    tensors = [
        (t["name"], t["datatype"], [as_int(d) for d in t["shape"]])
        for t in result["inputs"] + result["outputs"]
    ]
    classes = reference.logits.shape[1]
    assert tensors == [
        ("input", "FP32", [-1, *reference.input_shape]),
        ("logits", "FP32", [-1, classes]),
    ]


def check_model_config(result: dict[str, Any], reference) -> None:
    """Triton's model-config schema: dims without the batch dimension, TYPE_* data types."""
    assert result["name"] == MODEL
    assert as_int(result["max_batch_size"]) > 0
    tensors = [
        (t["name"], t["data_type"], [as_int(d) for d in t["dims"]])
        for t in result["input"] + result["output"]
    ]
    classes = reference.logits.shape[1]
    assert tensors == [
        ("input", "TYPE_FP32", list(reference.input_shape)),
        ("logits", "TYPE_FP32", [classes]),
    ]


def model_stats(statistics: dict[str, Any]) -> dict[str, Any]:
    (stats,) = [s for s in statistics["model_stats"] if s["name"] == MODEL]
    return stats


def count(stats: dict[str, Any], *path: str) -> int:
    """A counter; protobuf JSON leaves zero counters out."""
    for key in path:
        stats = stats.get(key, {})
    return as_int(stats or 0)


def check_inference_statistics(result: dict[str, Any], reference) -> None:
    """One request of the batch: counted once as a success, its images as inferences."""
    before, after = model_stats(result["before"]), model_stats(result["after"])

    def grew(*path: str) -> int:
        return count(after, *path) - count(before, *path)

    assert grew("inference_count") == result["batch"]
    assert grew("inference_stats", "success", "count") == 1
    assert grew("execution_count") >= 1
    assert grew("inference_stats", "compute_infer", "count") >= 1
    assert count(after, "inference_stats", "fail", "count") == count(
        before, "inference_stats", "fail", "count"
    )
    assert as_int(after["last_inference"]) > 0


def check_every_model_statistics(result: dict[str, Any], reference) -> None:
    assert model_stats(result)["version"] == VERSION


def check_model_version_one(result: dict[str, Any], reference) -> None:
    assert result["ready"] is True
    check_model_metadata(result["metadata"], reference)
    check_model_config(result["config"], reference)
    assert model_stats(result["statistics"])["version"] == VERSION
    check_inference(result["inference"], reference)


def check_unknown_model_error(result: dict[str, Any], reference) -> None:
    assert result["status"] in ("404", "StatusCode.NOT_FOUND")
    assert UNKNOWN_MODEL in result["message"]


def index_entry(index: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """A model's entry, with the fields protobuf JSON leaves out when empty."""
    (entry,) = [entry for entry in index if entry["name"] == name]
    return {"version": "", "reason": "", **entry}


def check_repository_index(result: list[dict[str, Any]], reference) -> None:
    assert index_entry(result, MODEL) == {
        "name": MODEL,
        "version": VERSION,
        "state": "READY",
        "reason": "",
    }


def check_load_and_unload_model(result: dict[str, Any], reference) -> None:
    """The copy served the served model's answers while loaded, and 404s once unloaded."""
    name = result["name"]
    assert name.startswith(COPY)
    assert result["ready"] is True
    check_inference(result["inference"], reference)
    assert index_entry(result["index"], name)["state"] == "READY"
    unloaded = index_entry(result["unloaded_index"], name)
    assert (unloaded["state"], unloaded["reason"]) == ("UNAVAILABLE", "unloaded")
    assert result["after_unload"]["status"] in ("404", "StatusCode.NOT_FOUND")


def check_load_invalid_config(result: dict[str, Any], reference) -> None:
    assert result["status"] in ("400", "StatusCode.INVALID_ARGUMENT")
    assert "batching.max_queue" in result["message"]


def check_inference(result: dict[str, Any], reference) -> None:
    assert result["id"] == result["sent_id"]
    assert_logits(result, reference.logits)


def check_classification(result: dict[str, Any], reference) -> None:
    assert result["id"] == result["sent_id"]
    assert_classification(result, reference.logits, reference.labels, CLASS_COUNT)


def check_http_compression(result: dict[str, Any], reference) -> None:
    """Asked for, the answer comes compressed that way (aiohttp asks gzip of its own accord)."""
    check_inference(result, reference)
    if result["asked_encoding"]:
        assert result["content_encoding"] == result["asked_encoding"]


def answers_each(check: Callable[[dict[str, Any], Any], None]) -> Callable[..., None]:
    """For cases with several requests in flight: every request answered once, correctly."""

    def check_all(result: dict[str, Any], reference) -> None:
        answers = result["answers"]
        assert sorted(answer["id"] for answer in answers) == sorted(result["sent_ids"])
        for answer in answers:
            check({**answer, "sent_id": answer["id"]}, reference)

    return check_all


CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "server_live": check_true,
    "server_ready": check_true,
    "model_ready": check_true,
    "server_metadata": check_server_metadata,
    "model_metadata": check_model_metadata,
    "model_config": check_model_config,
    "inference_statistics": check_inference_statistics,
    "every_model_statistics": check_every_model_statistics,
    "model_version_one": check_model_version_one,
    "unknown_model_error": check_unknown_model_error,
    "repository_index": check_repository_index,
    "load_and_unload_model": check_load_and_unload_model,
    "load_invalid_config": check_load_invalid_config,
    "infer": check_inference,
    "infer_json_inputs": check_inference,
    "infer_json_outputs": check_inference,
    "infer_json_only": check_inference,
    "infer_requested_output": check_inference,
    "classification": check_classification,
    "classification_json": check_classification,
    "infer_headers": check_inference,
    "infer_server_timeout_parameter": check_inference,
    "infer_client_timeout": check_inference,
    "request_compression_gzip": check_http_compression,
    "request_compression_deflate": check_http_compression,
    "response_compression_gzip": check_http_compression,
    "response_compression_deflate": check_http_compression,
    "compression_gzip": check_inference,
    "compression_deflate": check_inference,
    "async_infer": answers_each(check_inference),
    "stream_infer": answers_each(check_inference),
    "stream_classification": answers_each(check_classification),
}

CASE_PARAMS = [
    pytest.param(family, name, id=f"{family}-{name}")
    for family in ("http", "http.aio", "grpc", "grpc.aio")
    for name, (_, families) in CASES.items()
    if family in families
]


def test_every_case_has_a_check() -> None:
    assert set(CHECKS) == set(CASES)


@pytest.mark.parametrize(("family", "case"), CASE_PARAMS)
def test_tritonclient(
    family: str, case: str, run_client_script, blockserve, reference, serving_config
) -> None:
    (served,) = serving_config["models"]
    copy_config = {key: value for key, value in served.items() if key != "name"}
    outcomes = run_client_script(
        "tritonclient_cases.py",
        family,
        blockserve.http_address,
        blockserve.grpc_address,
        str(reference.images_path),
        serving_config["server"]["auth"]["token"],
        json.dumps(copy_config),
    )
    CHECKS[case](result_of(outcomes, case), reference)


def test_reference_logits_tell_the_classes_apart(reference) -> None:
    """The classification checks mean something only when the top classes are distinct."""
    top = np.sort(reference.logits, axis=1)[:, -CLASS_COUNT - 1 :]
    assert np.all(np.diff(top, axis=1) > 1e-3)
