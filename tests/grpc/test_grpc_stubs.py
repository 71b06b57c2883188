"""The committed stubs are current; the protos register the very descriptors of tritonclient
and grpcio (so that they share a process) and stay wire-compatible with KServe's V2 spec."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated import health_pb2, model_config_pb2, reflection_pb2

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
# SHA-256 of the serialized file descriptors in tritonclient 2.73.0 (service_pb2,
# model_config_pb2) and in grpcio-health-checking / grpcio-reflection 1.85.1.
UPSTREAM_DESCRIPTORS = {
    "grpc_service.proto": "b834308ff4da47f2370465e4d93ebc48c2d58488813c5bf8aa46531006df1097",
    "model_config.proto": "d9cbaa1bf0cda450d16dcb115abab2f87a9105ccc90cf3d10520d15594791e5e",
    "grpc_health/v1/health.proto": (
        "0b43fcdfdabc010b2a6ce91961a05ae5f127c8f99d68231a3248aa24b0eb6ebb"
    ),
    "grpc_reflection/v1alpha/reflection.proto": (
        "e0ff93152fdc7352582b2bf7840e7793070398152ece9b4839d0eb86a6781ceb"
    ),
}


def test_committed_stubs_equal_a_fresh_regeneration(tmp_path: Path, load_module) -> None:
    generate = load_module(ROOT / "scripts" / "gen_grpc.py").generate
    fresh = {path.name: path.read_bytes() for path in generate(tmp_path)}
    committed = {path.name: path.read_bytes() for path in sorted(GENERATED.glob("*.py*"))}
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale stubs {stale}: run `.venv/bin/python scripts/gen_grpc.py`"


def test_stubs_import_their_messages_relative_to_the_package() -> None:
    source = (GENERATED / "grpc_service_pb2_grpc.py").read_text()
    assert "from . import grpc_service_pb2 as" in source


@pytest.mark.parametrize("module", [pb, model_config_pb2, health_pb2, reflection_pb2])
def test_descriptors_are_those_of_tritonclient_and_grpcio(module) -> None:
    """Same file name and bytes: importing both into one process does not clash."""
    serialized = module.DESCRIPTOR.serialized_pb
    assert hashlib.sha256(serialized).hexdigest() == UPSTREAM_DESCRIPTORS[module.DESCRIPTOR.name]


@pytest.mark.parametrize("message", sorted(SPEC_MESSAGES))
def test_message_fields_extend_the_published_kserve_spec(message: str) -> None:
    descriptor = pb.DESCRIPTOR.message_types_by_name[message.split(".")[0]]
    for nested in message.split(".")[1:]:
        descriptor = descriptor.nested_types_by_name[nested]
    fields = [
        (field.name, field.number, field.type, field.is_repeated) for field in descriptor.fields
    ]
    assert fields[: len(SPEC_MESSAGES[message])] == SPEC_MESSAGES[message]


def test_parameter_value_is_a_oneof_with_triton_double_and_uint64() -> None:
    oneof = pb.InferParameter.DESCRIPTOR.oneofs_by_name["parameter_choice"]
    assert [field.name for field in oneof.fields] == [
        "bool_param",
        "int64_param",
        "string_param",
        "double_param",
        "uint64_param",
    ]


def test_service_is_inference_grpc_inference_service_with_the_kserve_rpcs_first() -> None:
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    methods = list(service.methods)
    assert [method.name for method in methods[: len(SPEC_RPCS)]] == SPEC_RPCS
    for method in methods[: len(SPEC_RPCS)]:
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"
        assert not (method.client_streaming or method.server_streaming)
    stream = service.methods_by_name["ModelStreamInfer"]
    assert stream.client_streaming and stream.server_streaming
    assert stream.output_type.name == "ModelStreamInferResponse"


def test_generated_modules_accept_the_oldest_supported_protobuf() -> None:
    for module in ("grpc_service_pb2", "model_config_pb2", "health_pb2", "reflection_pb2"):
        source = (GENERATED / f"{module}.py").read_text()
        assert "Domain.PUBLIC,\n    6,\n    30,\n    0,\n" in source, module
