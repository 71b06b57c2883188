"""KServe Open Inference Protocol (V2) over gRPC: `inference.GRPCInferenceService`.

Stubs in `generated/` are produced by `scripts/gen_grpc.py` from `protos/grpc_predict_v2.proto`.
"""

from service.grpc.server import grpc_enabled, start_grpc_server, stop_grpc_server
from service.grpc.servicer import InferenceServicer

__all__ = [
    "InferenceServicer",
    "grpc_enabled",
    "start_grpc_server",
    "stop_grpc_server",
]
