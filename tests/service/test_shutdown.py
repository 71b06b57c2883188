"""SIGTERM on a real `blockserve serve` under load: readiness turns false, new connections are
answered for the drain delay, every request whose bytes went out is answered, exit status 0;
a client stuck mid-body cannot hold the process past `shutdown_timeout_s`."""

from __future__ import annotations

import asyncio
import io
import signal
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from local_ports import free_port
from PIL import Image
from server_process import ServerProcess, digits_config, serve

CLIENTS = 16
RUNS = 3
DRAIN_DELAY_S = 1.0
KEEP_ALIVE_S = 5.0
GIVE_UP_S = 60.0


def digit_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(buffer, format="PNG")
    return buffer.getvalue()


def post(body: bytes) -> bytes:
    head = (
        "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """One complete response (Content-Length body): its status and lower-case headers."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers


@dataclass
class Outcome:
    statuses: list[int] = field(default_factory=list)
    answered_after_signal: int = 0
    refused: int = 0  # connection refused: nothing was sent
    lost: list[str] = field(default_factory=list)  # request sent, no complete response


async def keep_posting(
    server: ServerProcess, request: bytes, signalled: asyncio.Event, outcome: Outcome
) -> None:
    """Send requests back to back on keep-alive connections until the server refuses one."""
    writer = None
    give_up = time.monotonic() + GIVE_UP_S
    while time.monotonic() < give_up:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(*server.address)
            except ConnectionRefusedError:
                outcome.refused += 1
                return
        try:
            writer.write(request)
            await writer.drain()
            status, headers = await read_response(reader)
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            outcome.lost.append(f"{type(error).__name__}: {error}")
            writer.close()
            return
        outcome.statuses.append(status)
        outcome.answered_after_signal += signalled.is_set()
        if headers.get("connection") == "close":
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def get_status(server: ServerProcess, path: str) -> int:
    reader, writer = await asyncio.open_connection(*server.address)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        return (await read_response(reader))[0]
    finally:
        writer.close()


async def listener_closed(server: ServerProcess) -> None:
    while True:
        try:
            _, writer = await asyncio.open_connection(*server.address)
        except ConnectionRefusedError:
            return
        writer.close()
        await asyncio.sleep(0.05)


@pytest.fixture
def server_config(digits_weights, bundle_cache, tmp_path):
    return tmp_path, digits_config(
        tmp_path,
        digits_weights,
        bundle_cache,
        drain_delay_s=DRAIN_DELAY_S,
        shutdown_timeout_s=30,
        http={"keep_alive_timeout_s": KEEP_ALIVE_S},
        grpc={"enabled": True, "port": free_port()},
    )


@pytest.mark.parametrize("run", range(RUNS))
def test_sigterm_under_load_answers_every_request_sent_and_exits_0(server_config, run):
    directory, config = server_config
    request = post(digit_png())

    async def scenario(server: ServerProcess) -> tuple[Outcome, list[int], tuple[int, dict]]:
        outcome, signalled = Outcome(), asyncio.Event()
        # A keep-alive connection left idle from before the signal, reused after the
        # listener closed: uvicorn alone closes it at shutdown under the client's request.
        idle_reader, idle_writer = await asyncio.open_connection(*server.address)
        idle_writer.write(request)
        await read_response(idle_reader)
        clients = [
            asyncio.create_task(keep_posting(server, request, signalled, outcome))
            for _ in range(CLIENTS)
        ]
        while len(outcome.statuses) < 4 * CLIENTS:  # every client is under way
            await asyncio.sleep(0.01)
        server.process.send_signal(signal.SIGTERM)
        signalled.set()
        readiness = [
            await get_status(server, "/health/ready"),
            await get_status(server, "/v2/health/ready"),
        ]
        await asyncio.wait_for(listener_closed(server), GIVE_UP_S)
        idle_writer.write(request)
        idle_answer = await read_response(idle_reader)
        idle_writer.close()
        await asyncio.wait_for(asyncio.gather(*clients), GIVE_UP_S)
        return outcome, readiness, idle_answer

    with serve(config, directory) as server:
        outcome, readiness, (idle_status, idle_headers) = asyncio.run(scenario(server))
        exit_code = server.wait_exit()

    assert outcome.lost == []
    assert set(outcome.statuses) == {200}
    assert outcome.answered_after_signal > 0
    assert outcome.refused == CLIENTS  # each client ended on a refused connection
    assert readiness[0] == 503 and readiness[1] != 200  # not ready, while still answering
    assert idle_status == 200 and idle_headers["connection"] == "close"
    assert exit_code == 0


def test_a_client_stuck_mid_body_does_not_hold_the_process_past_the_shutdown_timeout(
    digits_weights, bundle_cache, tmp_path
):
    shutdown_timeout_s = 2
    config = digits_config(
        tmp_path,
        digits_weights,
        bundle_cache,
        shutdown_timeout_s=shutdown_timeout_s,
        http={"body_idle_timeout_s": 600},  # only the shutdown timeout can end this request
    )

    async def scenario(server: ServerProcess) -> bytes:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(post(b"\x89PNG" + b"\0" * 1000)[:-500])  # half the body, then nothing
        await writer.drain()
        assert await get_status(server, "/health/live") == 200  # the stuck request is in
        server.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(reader.read(), GIVE_UP_S)
        except ConnectionError:
            return b""

    with serve(config, tmp_path) as server:
        answer = asyncio.run(scenario(server))
        exit_code = server.wait_exit(timeout=shutdown_timeout_s + 20)

    assert exit_code == 0
    assert b"200 OK" not in answer
