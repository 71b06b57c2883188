"""The committed stubs are current, and the .proto is wire-compatible with KServe's V2 spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from service.grpc.generated import grpc_predict_v2_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "service" / "grpc" / "generated"

# The published KServe grpc_predict_v2.proto: message -> (field, number, type, repeated).
_STR, _BOOL, _I64 = (
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_BOOL,
    FieldDescriptor.TYPE_INT64,
)
_MSG, _BYTES = FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_BYTES
SPEC_MESSAGES: dict[str, list[tuple[str, int, int, bool]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, _BOOL, False)],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, _BOOL, False)],
    "ModelReadyRequest": [("name", 1, _STR, False), ("version", 2, _STR, False)],
    "ModelReadyResponse": [("ready", 1, _BOOL, False)],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, _STR, False),
        ("version", 2, _STR, False),
        ("extensions", 3, _STR, True),
    ],
    "ModelMetadataRequest": [("name", 1, _STR, False), ("version", 2, _STR, False)],
    "ModelMetadataResponse": [
        ("name", 1, _STR, False),
        ("versions", 2, _STR, True),
        ("platform", 3, _STR, False),
        ("inputs", 4, _MSG, True),
        ("outputs", 5, _MSG, True),
    ],
    "ModelMetadataResponse.TensorMetadata": [
        ("name", 1, _STR, False),
        ("datatype", 2, _STR, False),
        ("shape", 3, _I64, True),
    ],
    "ModelInferRequest": [
        ("model_name", 1, _STR, False),
        ("model_version", 2, _STR, False),
        ("id", 3, _STR, False),
        ("parameters", 4, _MSG, True),
        ("inputs", 5, _MSG, True),
        ("outputs", 6, _MSG, True),
        ("raw_input_contents", 7, _BYTES, True),
    ],
    "ModelInferRequest.InferInputTensor": [
        ("name", 1, _STR, False),
        ("datatype", 2, _STR, False),
        ("shape", 3, _I64, True),
        ("parameters", 4, _MSG, True),
        ("contents", 5, _MSG, False),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", 1, _STR, False),
        ("parameters", 2, _MSG, True),
    ],
    "ModelInferResponse": [
        ("model_name", 1, _STR, False),
        ("model_version", 2, _STR, False),
        ("id", 3, _STR, False),
        ("parameters", 4, _MSG, True),
        ("outputs", 5, _MSG, True),
        ("raw_output_contents", 6, _BYTES, True),
    ],
    "ModelInferResponse.InferOutputTensor": [
        ("name", 1, _STR, False),
        ("datatype", 2, _STR, False),
        ("shape", 3, _I64, True),
        ("parameters", 4, _MSG, True),
        ("contents", 5, _MSG, False),
    ],
    "InferParameter": [
        ("bool_param", 1, _BOOL, False),
        ("int64_param", 2, _I64, False),
        ("string_param", 3, _STR, False),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, _BOOL, True),
        ("int_contents", 2, FieldDescriptor.TYPE_INT32, True),
        ("int64_contents", 3, _I64, True),
        ("uint_contents", 4, FieldDescriptor.TYPE_UINT32, True),
        ("uint64_contents", 5, FieldDescriptor.TYPE_UINT64, True),
        ("fp32_contents", 6, FieldDescriptor.TYPE_FLOAT, True),
        ("fp64_contents", 7, FieldDescriptor.TYPE_DOUBLE, True),
        ("bytes_contents", 8, _BYTES, True),
    ],
}
SPEC_RPCS = [
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
]


def test_committed_stubs_equal_a_fresh_regeneration(tmp_path: Path, load_module) -> None:
    generate = load_module(ROOT / "scripts" / "gen_grpc.py").generate
    fresh = {path.name: path.read_bytes() for path in generate(tmp_path)}
    committed = {path.name: path.read_bytes() for path in sorted(GENERATED.glob("*.py*"))}
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale stubs {stale}: run `.venv/bin/python scripts/gen_grpc.py`"


def test_stubs_import_their_messages_relative_to_the_package() -> None:
    source = (GENERATED / "grpc_predict_v2_pb2_grpc.py").read_text()
    assert "from . import grpc_predict_v2_pb2 as" in source


@pytest.mark.parametrize("message", sorted(SPEC_MESSAGES))
def test_message_fields_match_the_published_spec(message: str) -> None:
    descriptor = pb.DESCRIPTOR.message_types_by_name[message.split(".")[0]]
    for nested in message.split(".")[1:]:
        descriptor = descriptor.nested_types_by_name[nested]
    fields = [
        (field.name, field.number, field.type, field.is_repeated) for field in descriptor.fields
    ]
    assert fields == SPEC_MESSAGES[message]


def test_parameter_value_is_a_oneof_named_parameter_choice() -> None:
    oneof = pb.InferParameter.DESCRIPTOR.oneofs_by_name["parameter_choice"]
    assert [field.name for field in oneof.fields] == ["bool_param", "int64_param", "string_param"]


def test_service_is_inference_grpc_inference_service_with_the_six_rpcs() -> None:
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    assert [method.name for method in service.methods] == SPEC_RPCS
    for method in service.methods:
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"
        assert not (method.client_streaming or method.server_streaming)
    top_level = set(pb.DESCRIPTOR.message_types_by_name)
    assert top_level == {name for name in SPEC_MESSAGES if "." not in name}
