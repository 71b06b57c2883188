"""How fast an overloaded server says no: latency per status under more clients than it serves.

    .venv/bin/python -m bench.overload --url http://127.0.0.1:8000/predict?model=resnet18 \\
        --body bench/work/images/rgb451x300/rgb451x300_000.jpg --clients 256

Closed loop on --clients keep-alive connections, or with --rate an open loop (requests start
at that rate whatever the answers, each on an idle keep-alive connection or a new one), on
127.0.0.1 only, bounded by --seconds; prints the count and p50 / p99 latency of each status.
A benchmark, never a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

KEEP_ALIVE_S = 4.0  # under the server's announced Keep-Alive timeout: retire idle ones first


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        """Send one request; its status, and whether the connection may be reused."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return status, b"connection: close" not in head.lower()


async def timed(connection: Connection, request: bytes, latencies: dict[int, list[float]]) -> bool:
    started = time.monotonic()
    status, reusable = await connection.exchange(request)
    latencies[status].append(time.monotonic() - started)
    return reusable


async def closed_loop(
    address: tuple[str, int], request: bytes, until: float, latencies: dict[int, list[float]]
) -> None:
    connection = Connection(*await asyncio.open_connection(*address))
    while time.monotonic() < until:
        if not await timed(connection, request, latencies):
            connection.writer.close()
            connection = Connection(*await asyncio.open_connection(*address))
    connection.writer.close()


async def open_loop(
    address: tuple[str, int],
    request: bytes,
    rate: float,
    until: float,
    latencies: dict[int, list[float]],
) -> None:
    idle: list[Connection] = []

    async def one() -> None:
        while idle and time.monotonic() - idle[-1].idle_since > KEEP_ALIVE_S:
            idle.pop().writer.close()
        connection = idle.pop() if idle else Connection(*await asyncio.open_connection(*address))
        if await timed(connection, request, latencies):
            connection.idle_since = time.monotonic()
            idle.append(connection)
        else:
            connection.writer.close()

    tasks = []
    start = time.monotonic()
    sent = 0
    while (now := time.monotonic()) < until:
        due = int((now - start) * rate) + 1
        tasks += [asyncio.create_task(one()) for _ in range(due - sent)]
        sent = due
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.writer.close()


async def run(
    url: str, body: bytes, content_type: str, clients: int, rate: float | None, seconds: float
) -> None:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("overload only targets this machine")
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body
    latencies: dict[int, list[float]] = defaultdict(list)
    until = time.monotonic() + seconds
    address = (parts.hostname, parts.port or 80)
    if rate is not None:
        await open_loop(address, request, rate, until, latencies)
    else:
        await asyncio.gather(
            *(closed_loop(address, request, until, latencies) for _ in range(clients))
        )
    for status, values in sorted(latencies.items()):
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        p50_ms, p99_ms = statistics.median(values) * 1000, p99 * 1000
        print(f"status {status}: {len(values)} answers, p50 {p50_ms:.1f} ms, p99 {p99_ms:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--content-type", default="image/jpeg")
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--rate", type=float, help="requests per second, open loop")
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    asyncio.run(
        run(options.url, options.body.read_bytes(), options.content_type, options.clients,
            options.rate, options.seconds)
    )  # fmt: skip


if __name__ == "__main__":
    main()
