"""`docker stop` under load: 40 clients posting, none loses a request, the server exits 0.

With host networking (CI) the clients keep posting through the stop: each request is answered
or refused before it is sent. Behind docker's port proxy a refused container connection looks
like a dropped one to the client, so there each client sends one request, in flight at the
stop.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from container_images import noise_png
from container_stack import READY_TIMEOUT_S, ComposeStack

CLIENTS = 40
ANSWER_TIMEOUT_S = 180.0


def test_docker_stop_with_40_clients_loses_no_request(
    managed_stack: ComposeStack, base_url: str
) -> None:
    files = [("files", ("noise.png", noise_png(256, seed=0), "image/png"))]
    upload = httpx.Request("POST", f"{base_url}/predict?model=resnet18", files=files)
    payload, headers = upload.read(), dict(upload.headers)
    keep_posting = managed_stack.ci
    sending = threading.Barrier(CLIENTS + 1)

    def client(_: int) -> tuple[list[int], list[str]]:
        statuses: list[int] = []
        with httpx.Client(timeout=ANSWER_TIMEOUT_S) as http:
            sending.wait()
            while True:
                try:
                    response = http.post(upload.url, content=payload, headers=headers)
                except httpx.ConnectError:
                    return statuses, []  # refused before anything was sent
                except httpx.TransportError as error:
                    return statuses, [f"{type(error).__name__}: {error}"]
                statuses.append(response.status_code)
                if not keep_posting:
                    return statuses, []

    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = [pool.submit(client, index) for index in range(CLIENTS)]
        try:
            sending.wait(timeout=60)
            exit_code = managed_stack.stop(grace_s=60)
            results = [outcome.result(timeout=ANSWER_TIMEOUT_S) for outcome in outcomes]
        finally:
            managed_stack.start(READY_TIMEOUT_S)

    lost = [problem for _, problems in results for problem in problems]
    statuses = [status for answered, _ in results for status in answered]
    assert lost == [], f"{len(lost)} requests lost: {lost[:5]}"
    assert statuses and set(statuses) == {200}
    assert exit_code == 0
