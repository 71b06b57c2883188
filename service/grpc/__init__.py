"""Triton's gRPC inference service (`inference.GRPCInferenceService`, a superset of the KServe
Open Inference Protocol V2 one), the standard health service and server reflection.

Stubs in `generated/` are produced by `scripts/gen_grpc.py` from the vendored `protos/`.
"""

from service.grpc.server import grpc_enabled, start_grpc_server, stop_grpc_server
from service.grpc.servicer import InferenceServicer

__all__ = [
    "InferenceServicer",
    "grpc_enabled",
    "start_grpc_server",
    "stop_grpc_server",
]
