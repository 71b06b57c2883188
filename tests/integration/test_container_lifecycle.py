"""Container lifecycle: a restart keeps serving; `docker stop` answers every accepted request."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from container_images import held_out_digits, noise_png
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


def test_docker_stop_answers_every_request_in_flight(
    managed_stack: ComposeStack, base_url: str
) -> None:
    files = [
        ("files", (f"{i}.png", noise_png(256, seed=i), "image/png"))
        for i in range(IMAGES_PER_REQUEST)
    ]
    upload = httpx.Request("POST", f"{base_url}/predict?model=resnet18", files=files)
    payload, headers = upload.read(), dict(upload.headers)
    body_sent = [threading.Event() for _ in range(IN_FLIGHT)]

    def post(index: int) -> tuple[int, dict, float]:
        def body():
            yield payload
            body_sent[index].set()  # httpx asks for more only once the payload is written

        # One connection per request: no idle keep-alive connection for shutdown to close.
        with httpx.Client(timeout=ANSWER_TIMEOUT_S) as client:
            response = client.post(upload.url, content=body(), headers=headers)
        return response.status_code, response.json(), time.monotonic()

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        answers = [pool.submit(post, index) for index in range(IN_FLIGHT)]
        try:
            assert all(sent.wait(SEND_TIMEOUT_S) for sent in body_sent), "requests not sent"
            # The accept queue is FIFO: once a later connection is answered, the server has
            # accepted every request above, whose bodies were already complete.
            assert httpx.get(f"{base_url}/health/live", timeout=30.0).status_code == 200
            stop_issued = time.monotonic()
            exit_code = managed_stack.stop(grace_s=60)
            results = [answer.result(timeout=ANSWER_TIMEOUT_S) for answer in answers]
        finally:
            managed_stack.start(READY_TIMEOUT_S)

    assert exit_code == 0, "the server did not exit cleanly within the grace period"
    failed = [(status, body) for status, body, _ in results if status != 200]
    assert not failed, f"{len(failed)} of {IN_FLIGHT} accepted requests failed: {failed}"
    assert all(len(body["predictions"]) == IMAGES_PER_REQUEST for _, body, _ in results)
    assert any(done > stop_issued for _, _, done in results), "nothing was in flight at the stop"
