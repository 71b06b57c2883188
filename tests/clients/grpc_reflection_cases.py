"""gRPC server reflection as grpcurl and Postman use it, through grpcio-reflection's client
(`ProtoReflectionDescriptorDatabase`, v1alpha); runs in the client venv.

Usage: python grpc_reflection_cases.py GRPC_ADDRESS
Prints {"services": ..., "inference_methods": ..., "infer_request_fields": ...} outcomes: what a
client learns from the server alone, with no .proto file of its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import grpc
from case_outcomes import outcome
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

INFERENCE_SERVICE = "inference.GRPCInferenceService"
INFER_REQUEST = "inference.ModelInferRequest"


def cases(database: ProtoReflectionDescriptorDatabase) -> dict[str, Callable[[], Any]]:
    pool = DescriptorPool(database)
    return {
        "services": lambda: sorted(database.get_services()),
        "inference_methods": lambda: sorted(
            method.name for method in pool.FindServiceByName(INFERENCE_SERVICE).methods
        ),
        "infer_request_fields": lambda: sorted(
            field.name for field in pool.FindMessageTypeByName(INFER_REQUEST).fields
        ),
    }


def main() -> None:
    with grpc.insecure_channel(sys.argv[1]) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        outcomes = {name: outcome(call) for name, call in cases(database).items()}
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()
