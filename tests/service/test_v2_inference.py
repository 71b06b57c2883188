"""Model-level V2 logic shared by REST and gRPC: classification, model configuration, response
ids, non-finite inputs."""

from __future__ import annotations

import numpy as np
import pytest
from service_fakes import FakeRuntime, batching, fake_loader, in_process, repository_config

from service.errors import InvalidInput
from service.v2 import (
    InputTensor,
    OutputRequest,
    classify,
    model_input,
    model_outputs,
    requested_outputs,
    response_id,
)
from service.v2.model_config import model_config


def test_classification_gives_the_top_classes_as_triton_formats_them():
    scores = np.array([[0.5, 3.25, -1.0], [2.0, 2.0, 7.0]], np.float32)

    classes = classify(scores, 2, ["cat", "", "dog"])

    assert classes.shape == (2, 2) and classes.dtype == object
    assert classes.tolist() == [
        [b"3.250000:1", b"0.500000:0:cat"],  # an empty label is left out
        [b"7.000000:2:dog", b"2.000000:0:cat"],  # a tie goes to the lower index
    ]


def test_classification_asks_at_most_every_class():
    assert classify(np.array([[1.0, 2.0]], np.float32), 5, []).shape == (1, 2)


def test_response_id_echoes_the_request_id_else_makes_a_unique_one():
    made = {response_id(None) for _ in range(100)}

    assert response_id("abc") == "abc" and response_id("") == ""
    assert len(made) == 100 and all(made)


@pytest.fixture
async def digits(tmp_path):
    config = repository_config(
        tmp_path, {"instances": 2, "batching": batching(max_delay_ms=1.5).model_dump()}
    )
    async with in_process(config, fake_loader(FakeRuntime(num_classes=10))) as (_, serving):
        yield serving.repository.get("digits")


async def test_requested_outputs_default_to_every_output_and_check_names(digits):
    assert requested_outputs(digits, []) == [OutputRequest("logits")]
    assert requested_outputs(digits, [OutputRequest("logits", 3)]) == [OutputRequest("logits", 3)]
    with pytest.raises(InvalidInput, match="no output 'probs'; outputs: \\['logits'\\]"):
        requested_outputs(digits, [OutputRequest("probs")])
    with pytest.raises(InvalidInput, match="output 'logits': classification needs a class"):
        requested_outputs(digits, [OutputRequest("logits", -1)])


async def test_model_outputs_answer_logits_or_classes_per_request(digits):
    logits = np.arange(20, dtype=np.float32).reshape(2, 10)

    tensors = model_outputs(digits, logits, [OutputRequest("logits", 1), OutputRequest("logits")])

    assert [(t.name, t.datatype) for t in tensors] == [("logits", "BYTES"), ("logits", "FP32")]
    assert tensors[0].array.tolist() == [[b"9.000000:9:class9"], [b"19.000000:9:class9"]]
    np.testing.assert_array_equal(tensors[1].array, logits)


async def test_non_finite_float_inputs_reach_the_model_as_sent(digits):
    values = np.zeros((1, 1, 8, 8), np.float32)
    values[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]

    batch = model_input(digits, [InputTensor("input", "FP32", values)])

    np.testing.assert_array_equal(batch, values)


async def test_finite_fp64_inputs_that_overflow_float32_are_refused(digits):
    values = np.zeros((1, 1, 8, 8), np.float64)
    values[0, 0, 0, :2] = [np.inf, 1e300]

    with pytest.raises(InvalidInput, match="FP64 values up to 1e\\+300 overflow"):
        model_input(digits, [InputTensor("input", "FP64", values)])


async def test_model_config_describes_what_is_served_in_tritons_schema(digits):
    config = model_config(digits)

    assert config["name"] == "digits"
    assert (config["platform"], config["backend"]) == ("onnxruntime_onnx", "onnxruntime")
    assert config["max_batch_size"] == 8
    assert config["input"] == [
        {"name": "input", "data_type": "TYPE_FP32", "format": "FORMAT_NCHW", "dims": [1, 8, 8]}
    ]
    assert config["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [10]}]
    batching_config = config["dynamic_batching"]
    assert batching_config["max_queue_delay_microseconds"] == 1500
    assert batching_config["default_queue_policy"]["max_queue_size"] == 2 * 64
    assert config["instance_group"] == [
        {"name": "digits", "kind": "KIND_CPU", "count": 2, "gpus": []}
    ]
