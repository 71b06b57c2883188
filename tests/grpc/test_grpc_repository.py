"""Triton's model repository extension over gRPC (RepositoryIndex, RepositoryModelLoad,
RepositoryModelUnload) on a real channel, over the fake runtime of the harness."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc_harness import BROKEN_ARCH, Serving, call_error, expected_logits, images, infer_request
from grpc_harness import output_array as logits_of

from service.grpc.generated import grpc_service_pb2 as pb

FAILED_REASON = "RuntimeError while loading (see the server log)"
Parameter = pb.ModelRepositoryParameter


def load_request(model: str, **config) -> pb.RepositoryModelLoadRequest:
    parameters = {"config": Parameter(string_param=json.dumps(config))} if config else {}
    return pb.RepositoryModelLoadRequest(model_name=model, parameters=parameters)


async def index(serving: Serving, ready: bool = False) -> list[tuple[str, str, str, str]]:
    response = await serving.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=ready))
    return [(entry.name, entry.version, entry.state, entry.reason) for entry in response.models]


async def test_index_lists_each_version_its_state_and_a_failed_load_as_unavailable(
    serving: Serving,
) -> None:
    everything = await index(serving)
    ready = await index(serving, ready=True)

    assert everything == [
        ("broken", "1", "UNAVAILABLE", FAILED_REASON),
        ("tiny", "1", "READY", ""),
    ]
    assert ready == [("tiny", "1", "READY", "")]


async def test_load_serves_a_new_model_from_its_config(serving: Serving) -> None:
    await serving.stub.RepositoryModelLoad(load_request("tiny_copy", arch="fake", top_k=2))
    batch = images(1, 2)
    answer = await serving.stub.ModelInfer(infer_request(batch, raw=True, model="tiny_copy"))

    assert answer.model_name == "tiny_copy"
    assert logits_of(answer).tolist() == expected_logits(batch).tolist()
    assert ("tiny_copy", "1", "READY", "") in await index(serving)
    assert serving.repository.get("tiny_copy").config.top_k == 2


async def test_load_without_a_config_reloads_the_current_one(serving: Serving) -> None:
    before = serving.repository.get("tiny")

    await serving.stub.RepositoryModelLoad(load_request("tiny"))

    after = serving.repository.get("tiny")
    assert after is not before and after.config == before.config and after.version == "1"
    assert await serving.stub.ModelInfer(infer_request(images(0), raw=True))


@pytest.mark.parametrize(
    ("request_message", "code", "message"),
    [
        (load_request("nope"), grpc.StatusCode.NOT_FOUND, "unknown model 'nope'"),
        (
            load_request("nope", arch="fake", batching={"max_queue": 0}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "models.nope.batching.max_queue",
        ),
        (
            load_request("nope", name="other", arch="fake"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "is not the name in the path",
        ),
        (
            pb.RepositoryModelLoadRequest(
                model_name="nope", parameters={"config": Parameter(bool_param=True)}
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "parameter 'config' must be a string_param, got bool_param",
        ),
        (
            pb.RepositoryModelLoadRequest(
                model_name="nope", parameters={"file:1/model.onnx": Parameter(bytes_param=b"x")}
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unsupported parameter 'file:1/model.onnx'; accepted: config",
        ),
    ],
    ids=["unknown-model", "bad-field", "other-name", "config-not-a-string", "files"],
)
async def test_a_bad_load_is_refused_naming_the_problem(
    serving: Serving, request_message, code, message
) -> None:
    error = await call_error(serving.stub.RepositoryModelLoad, request_message)

    assert error.code() is code and message in error.details()
    assert serving.repository.names == ["tiny", "broken"]


async def test_a_failing_load_answers_its_reason_and_every_other_model_still_serves(
    serving: Serving,
) -> None:
    error = await call_error(
        serving.stub.RepositoryModelLoad, load_request("bad", arch=BROKEN_ARCH)
    )
    answer = await serving.stub.ModelInfer(infer_request(images(0), raw=True))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"failed to load model 'bad' version 1: {FAILED_REASON}"
    assert answer.model_name == "tiny"
    assert ("bad", "1", "UNAVAILABLE", FAILED_REASON) in await index(serving)


async def test_unload_stops_serving_and_the_index_shows_it_unavailable(serving: Serving) -> None:
    dependents = {"unload_dependents": Parameter(bool_param=True)}

    await serving.stub.RepositoryModelUnload(
        pb.RepositoryModelUnloadRequest(model_name="tiny", parameters=dependents)
    )
    gone = await call_error(serving.stub.ModelInfer, infer_request(images(0), raw=True))
    again = await call_error(
        serving.stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="tiny")
    )

    assert gone.code() is grpc.StatusCode.NOT_FOUND
    assert ("tiny", "", "UNAVAILABLE", "unloaded") in await index(serving)
    assert again.code() is grpc.StatusCode.NOT_FOUND and "unknown model 'tiny'" in again.details()
