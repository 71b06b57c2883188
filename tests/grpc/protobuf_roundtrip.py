"""Run by tests/grpc/test_grpc_protobuf_range.py in a venv holding only protobuf and grpcio:

    python protobuf_roundtrip.py GENERATED_DIR EXPECTED_PROTOBUF_VERSION_PREFIX

Imports every generated module (as a standalone package: the service's own imports would need
the whole project) and round-trips the messages the server exchanges; prints "ok".
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def load_generated(directory: Path) -> str:
    spec = importlib.util.spec_from_file_location(
        "generated", directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["generated"] = package
    spec.loader.exec_module(package)
    return "generated"


def main(directory: str, version_prefix: str) -> None:
    import google.protobuf
    from google.protobuf.json_format import MessageToDict, ParseDict

    assert google.protobuf.__version__.startswith(version_prefix), google.protobuf.__version__
    package = load_generated(Path(directory))
    modules = {
        name: importlib.import_module(f"{package}.{name}")
        for stem in ("grpc_service", "model_config", "health", "reflection")
        for name in (f"{stem}_pb2", f"{stem}_pb2_grpc")
    }
    pb = modules["grpc_service_pb2"]

    request = pb.ModelInferRequest(model_name="digits", id="r1")
    request.parameters["scale"].double_param = 0.5
    request.parameters["seed"].uint64_param = 2**63
    request.inputs.add(name="input", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend(
        [1.0, 2.0]
    )
    output = request.outputs.add(name="logits")
    output.parameters["classification"].int64_param = 3
    again = pb.ModelInferRequest.FromString(request.SerializeToString())
    assert again == request
    assert again.parameters["seed"].WhichOneof("parameter_choice") == "uint64_param"

    config = {
        "name": "digits",
        "platform": "onnxruntime_onnx",
        "max_batch_size": 32,
        "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [1, 8, 8]}],
        "dynamic_batching": {"max_queue_delay_microseconds": 2000},
        "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
    }
    message = ParseDict(config, modules["model_config_pb2"].ModelConfig())
    response = pb.ModelConfigResponse.FromString(
        pb.ModelConfigResponse(config=message).SerializeToString()
    )
    assert MessageToDict(response.config, preserving_proto_field_name=True)["input"][0] == {
        "name": "input",
        "data_type": "TYPE_FP32",
        "dims": ["1", "8", "8"],
    }

    stream = pb.ModelStreamInferResponse(error_message="bad", infer_response={"id": "r1"})
    assert pb.ModelStreamInferResponse.FromString(stream.SerializeToString()) == stream
    health = modules["health_pb2"]
    status = health.HealthCheckResponse(status=health.HealthCheckResponse.SERVING)
    assert health.HealthCheckResponse.FromString(status.SerializeToString()) == status
    reflection = modules["reflection_pb2"]
    asked = reflection.ServerReflectionRequest(list_services="*")
    assert reflection.ServerReflectionRequest.FromString(asked.SerializeToString()) == asked
    print("ok")


if __name__ == "__main__":
    main(*sys.argv[1:])
