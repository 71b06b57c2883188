"""Connection limits of a real `blockserve serve`, spoken to over raw sockets: what a slow or
hostile client may hold (`server.http`), while every other client is still served."""

from __future__ import annotations

import select
import socket
import threading
import time
from contextlib import closing

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_process import ServerProcess, digits_config, serve

from service.http.protocol import CoalescingWriter

MAX_HEADER_BYTES = 8192
TIMEOUT_S = 1  # header, body-idle and keep-alive timeouts of the server under test
GIVE_UP_S = 15  # a socket read that waits longer than this means the server never acted


@pytest.fixture(scope="module")
def server(digits_weights, bundle_cache, tmp_path_factory):
    directory = tmp_path_factory.mktemp("limits")
    http = {
        "max_header_bytes": MAX_HEADER_BYTES,
        "header_timeout_s": TIMEOUT_S,
        "body_idle_timeout_s": TIMEOUT_S,
        "keep_alive_timeout_s": TIMEOUT_S,
    }
    with serve(digits_config(directory, digits_weights, bundle_cache, http=http), directory) as s:
        yield s


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=GIVE_UP_S)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length: status, headers (lower-case), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a complete response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of a response body")
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (EOF or reset) within GIVE_UP_S."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def get(path: str, *, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\n" + extra + b"\r\n"


def assert_rejected(sock: socket.socket, status: int, words: str) -> None:
    answer, headers, body = read_response(sock)
    assert answer == status, body
    assert headers["connection"] == "close"
    assert words in orjson.loads(body)["error"]
    assert closed_by_server(sock)


def live(server: ServerProcess) -> int:
    with closing(connect(server)) as sock:
        sock.sendall(get("/health/live"))
        return read_response(sock)[0]


def test_headers_up_to_the_limit_are_served_and_beyond_it_get_431_then_close(server):
    request_line = b"GET /health/live HTTP/1.1\r\nHost: test\r\n"
    fitting = request_line + b"X-Pad: " + b"a" * (MAX_HEADER_BYTES - len(request_line) - 11)
    with closing(connect(server)) as sock:
        sock.sendall(fitting + b"\r\n\r\n")  # exactly MAX_HEADER_BYTES
        assert read_response(sock)[0] == 200
    with closing(connect(server)) as sock:
        sock.sendall(request_line + b"X-Pad: " + b"a" * MAX_HEADER_BYTES)
        assert_rejected(sock, 431, f"exceed {MAX_HEADER_BYTES} bytes")


def test_a_huge_header_is_cut_off_without_stalling_other_clients(server):
    header = b"GET /health/live HTTP/1.1\r\nX-Huge: " + b"a" * (64 * 1024 * 1024)
    outcome: dict[str, object] = {}

    def flood() -> None:
        with closing(connect(server)) as sock:
            try:
                sock.sendall(header)
                outcome["sent"] = "all"
            except OSError as error:
                outcome["sent"] = error

    sender = threading.Thread(target=flood)
    sender.start()
    answers = [live(server) for _ in range(20)]
    sender.join(GIVE_UP_S)

    assert answers == [200] * 20
    assert isinstance(outcome["sent"], ConnectionError), "the server read the whole header"


def test_a_connection_that_sends_nothing_gets_408_then_close(server):
    with closing(connect(server)) as sock:
        assert_rejected(sock, 408, f"not received within {TIMEOUT_S} s")


def test_trickled_headers_get_408_while_other_clients_are_served(server):
    with closing(connect(server)) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\n")
        for index in range(GIVE_UP_S * 10):  # one header line per 100 ms until answered
            if select.select([sock], [], [], 0.1)[0]:
                break
            sock.sendall(b"X-Slow-%d: 1\r\n" % index)
            assert live(server) == 200
        assert_rejected(sock, 408, "request line and headers not received")


def test_a_stalled_body_gets_408_and_the_app_is_released(server):
    with closing(connect(server)) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"\x89PNG" + b"\0" * 96
        )
        assert_rejected(sock, 408, f"request body stalled: no data for {TIMEOUT_S} s")
    # The handler, waiting for the rest of the body, was told the client left (499).
    give_up = time.monotonic() + GIVE_UP_S
    while time.monotonic() < give_up:
        with closing(connect(server)) as sock:
            sock.sendall(get("/metrics"))
            _, _, body = read_response(sock)
        if disconnected_requests(body.decode()):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the handler never learned that the client left")


def disconnected_requests(metrics_text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "blockserve_requests_total" and sample.labels["status"] == "499"
    )


def test_keep_alive_is_announced_and_an_idle_connection_is_closed_after_it(server):
    with closing(connect(server)) as sock:
        for _ in range(2):  # the connection is reused
            sock.sendall(get("/health/live"))
            status, headers, _ = read_response(sock)
            assert status == 200
            assert headers["keep-alive"] == f"timeout={TIMEOUT_S}"
            assert "connection" not in headers
        assert closed_by_server(sock)


def test_slow_and_idle_connections_are_all_closed_while_others_are_served(server):
    post_head = (
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    openings = [b""] * 16 + [b"GET /health/live HTTP/1.1\r\nX-A: "] * 16 + [post_head] * 16
    slow = [connect(server) for _ in openings]
    try:
        for sock, opening in zip(slow, openings, strict=True):
            sock.sendall(opening)
        assert live(server) == 200
        assert all(closed_after_408(sock) for sock in slow)
    finally:
        for sock in slow:
            sock.close()


def closed_after_408(sock: socket.socket) -> bool:
    status, _, _ = read_response(sock)
    return status == 408 and closed_by_server(sock)


def test_100_continue_is_sent_before_the_body_arrives(server):
    body = orjson.dumps(
        {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0] * 64}]}
    )
    head = (
        "POST /v2/models/digits/infer HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with closing(connect(server)) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)  # sent before the body: the client waits for it
        sock.sendall(body)
        answer = read_response(sock)

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    status, _, response_body = answer
    assert status == 200
    assert orjson.loads(response_body)["outputs"][0]["shape"] == [1, 10]


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_a_response_head_waits_for_the_first_body_write_and_leaves_with_it():
    transport = RecordingTransport()
    writer = CoalescingWriter(transport)  # type: ignore[arg-type]
    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
    held = list(transport.writes)
    writer.write(b"body")
    writer.write(b"more")
    writer.close()

    assert held == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    assert transport.writes == [held[0], b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]
    assert transport.closed


def test_a_head_without_a_body_is_flushed():
    transport = RecordingTransport()
    writer = CoalescingWriter(transport)  # type: ignore[arg-type]
    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    writer.flush()

    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
