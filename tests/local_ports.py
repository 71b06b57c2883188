"""Ports for servers that tests start on 127.0.0.1 (importable from every test directory:
tests/conftest.py puts this directory on the path)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
