"""The KServe 0.21 SDK's inference clients (InferenceRESTClient with protocol v2,
InferenceGRPCClient) work unmodified against blockserve; they run in the client venv
(kserve_cases.py)."""

from __future__ import annotations

from typing import Any

import pytest
from client_checks import assert_logits, result_of

pytestmark = pytest.mark.clients

HEALTH = ["server_live", "server_ready", "model_ready"]
INFERENCES = {
    "rest": ["infer", "infer_binary_outputs", "infer_json"],
    "grpc": ["infer"],
}


def outcomes_of(family: str, run_client_script, blockserve, reference) -> dict[str, Any]:
    return run_client_script(
        "kserve_cases.py",
        family,
        blockserve.http_address,
        blockserve.grpc_address,
        str(reference.images_path),
    )


@pytest.mark.parametrize("case", HEALTH)
@pytest.mark.parametrize("family", ["rest", "grpc"])
def test_health(family: str, case: str, run_client_script, blockserve, reference) -> None:
    outcomes = outcomes_of(family, run_client_script, blockserve, reference)
    assert result_of(outcomes, case) is True


@pytest.mark.parametrize(
    ("family", "case"), [(family, case) for family, cases in INFERENCES.items() for case in cases]
)
def test_infer(family: str, case: str, run_client_script, blockserve, reference) -> None:
    answer = result_of(outcomes_of(family, run_client_script, blockserve, reference), case)
    assert answer["id"]
    assert_logits(answer, reference.logits)


def test_grpc_metadata_through_the_sdk_stub(run_client_script, blockserve, reference) -> None:
    outcomes = outcomes_of("grpc", run_client_script, blockserve, reference)
    server = result_of(outcomes, "server_metadata")
    model = result_of(outcomes, "model_metadata")
    assert server["name"] and server["version"]
    assert model["name"] == "digits"
    assert [tensor["name"] for tensor in model["inputs"] + model["outputs"]] == ["input", "logits"]
