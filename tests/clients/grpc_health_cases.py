"""The standard gRPC health check (`grpc.health.v1.Health/Check`), as Kubernetes' gRPC probes and
grpc_health_probe make it, with plain grpcio; runs in the client venv.

Usage: python grpc_health_cases.py GRPC_ADDRESS
Prints {"server": {"result": STATUS}} where STATUS is the HealthCheckResponse status number
(1: SERVING) for the whole server (service "").
"""

from __future__ import annotations

import json
import sys

import grpc
from case_outcomes import outcome

CHECK = "/grpc.health.v1.Health/Check"
WAIT_S = 30.0


def health_request(service: str) -> bytes:
    """HealthCheckRequest{service = 1}, encoded by hand: plain grpcio ships no health stubs."""
    name = service.encode()
    return b"\x0a" + bytes([len(name)]) + name if name else b""


def health_status(response: bytes) -> int:
    """HealthCheckResponse{status = 1}: a varint field; absent means UNKNOWN (0)."""
    if not response:
        return 0
    if response[0] != 0x08 or len(response) != 2:
        raise ValueError(f"not a HealthCheckResponse: {response!r}")
    return response[1]


def check(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            CHECK, request_serializer=health_request, response_deserializer=health_status
        )
        return call(service, timeout=WAIT_S)


def main() -> None:
    address = sys.argv[1]
    print(json.dumps({"server": outcome(lambda: check(address, ""))}))


if __name__ == "__main__":
    main()
