"""Container lifecycle: a restarted container serves the same answers (stop: see
test_container_shutdown)."""

from __future__ import annotations

import httpx
from container_images import held_out_digits
from container_stack import READY_TIMEOUT_S, ComposeStack

IN_FLIGHT = 8
IMAGES_PER_REQUEST = 8
SEND_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 180.0


def digits_upload(client: httpx.Client) -> list:
    pngs, _ = held_out_digits()
    files = [("files", (f"{i}.png", png, "image/png")) for i, png in enumerate(pngs[:8])]
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_restarted_container_serves_the_same_answers(
    managed_stack: ComposeStack, base_url: str
) -> None:
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        before = digits_upload(client)
    started = managed_stack.inspect("{{.State.StartedAt}}")

    managed_stack.timings["restart_to_ready_s"] = managed_stack.restart(READY_TIMEOUT_S)

    assert managed_stack.inspect("{{.State.StartedAt}}") != started
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        assert digits_upload(client) == before
