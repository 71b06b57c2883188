"""`docker stop` with 40 requests in flight: every accepted request is answered, the server
exits 0.

A request is accepted once its body is written to a connection the kernel has established:
each client's first request is, before the stop is issued, and none of them is answered yet
then (their resnet18 images keep the engine busy for seconds). With host networking (CI) the
clients then keep posting through the drain: a later request must be answered too, or refused
at connect (nothing sent, so not accepted); a reset or a connection closed without an answer is
a lost request. Behind docker's port proxy a refused container connection looks like a dropped
one to the client, so there each client sends its first request only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from container_images import noise_png
from container_stack import READY_TIMEOUT_S, ComposeStack

CLIENTS = 40
# 160 resnet18 images: seconds of work, within the model's queue of 256 (more: 503 QueueFull).
IMAGES_PER_REQUEST = 4
REQUESTS_PER_CLIENT = 20
SEND_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Outcome:
    """One request: its status, or why it got none; and when the client learnt it."""

    status: int | None
    problem: str | None
    finished_at: float

    @property
    def refused(self) -> bool:
        return self.problem == "refused"


def test_docker_stop_with_40_requests_in_flight_loses_none(
    managed_stack: ComposeStack, base_url: str
) -> None:
    files = [
        ("files", (f"{i}.png", noise_png(256, seed=i), "image/png"))
        for i in range(IMAGES_PER_REQUEST)
    ]
    upload = httpx.Request("POST", f"{base_url}/predict?model=resnet18", files=files)
    payload, headers = upload.read(), dict(upload.headers)
    keep_posting = managed_stack.ci
    sending = threading.Barrier(CLIENTS)  # creating a client takes long: start them together
    body_sent = [threading.Event() for _ in range(CLIENTS)]
    finished = threading.Event()  # ends the clients' loops should the stop never come

    def post(http: httpx.Client, content: bytes | Iterator[bytes]) -> Outcome:
        try:
            response = http.post(upload.url, content=content, headers=headers)
        except httpx.ConnectError:
            return Outcome(None, "refused", time.monotonic())
        except httpx.TransportError as error:
            return Outcome(None, f"{type(error).__name__}: {error}", time.monotonic())
        return Outcome(response.status_code, None, time.monotonic())

    def client(index: int) -> list[Outcome]:
        def first_body() -> Iterator[bytes]:
            yield payload
            body_sent[index].set()  # httpx asks for more only once the payload is written

        with httpx.Client(timeout=ANSWER_TIMEOUT_S) as http:
            sending.wait(timeout=SEND_TIMEOUT_S)
            outcomes = [post(http, first_body())]
            while keep_posting and not finished.is_set() and len(outcomes) < REQUESTS_PER_CLIENT:
                outcomes.append(post(http, payload))
                if outcomes[-1].status is None:
                    break
        return outcomes

    with ThreadPoolExecutor(CLIENTS) as pool:
        runs = [pool.submit(client, index) for index in range(CLIENTS)]
        try:
            assert all(sent.wait(SEND_TIMEOUT_S) for sent in body_sent), "requests not sent"
            stop_issued = time.monotonic()
            exit_code = managed_stack.stop(grace_s=60)
            managed_stack.timings["stop_under_load_s"] = time.monotonic() - stop_issued
            results = [run.result(timeout=ANSWER_TIMEOUT_S) for run in runs]
        finally:
            finished.set()
            managed_stack.start(READY_TIMEOUT_S)

    firsts = [outcomes[0] for outcomes in results]
    later = [outcome for outcomes in results for outcome in outcomes[1:]]
    unanswered = [outcome for outcome in firsts if outcome.status != 200]
    assert unanswered == [], f"{len(unanswered)} of {CLIENTS} unanswered: {unanswered[:5]}"
    early = sum(outcome.finished_at <= stop_issued for outcome in firsts)
    assert early == 0, f"{early} of {CLIENTS} requests were answered before the stop was issued"
    lost = [outcome for outcome in later if outcome.status is None and not outcome.refused]
    assert lost == [], f"{len(lost)} requests sent during the drain lost: {lost[:5]}"
    failed = [outcome for outcome in later if outcome.status not in (200, None)]
    assert failed == [], f"{len(failed)} requests sent during the drain failed: {failed[:5]}"
    assert exit_code == 0, "the server did not exit cleanly within the grace period"
