"""Close a listening socket without resetting the connections queued in it.

Closing a listener resets every connection whose handshake the kernel completed but the server
had not accepted yet, and every handshake still under way: their clients may already have sent
a request, and read a reset. So before the listener closes, a socket filter drops new SYNs
(their clients retry and then find the port closed: connection refused, nothing sent), the
handshakes under way are given a moment to complete, and every queued connection is accepted,
to be served like any other.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import sys

log = logging.getLogger(__name__)

SO_ATTACH_FILTER = 26  # Linux
# Classic BPF over the TCP header: drop a segment whose SYN flag is set without ACK (a new
# handshake), keep everything else (the ACKs completing handshakes under way, data).
_DROP_NEW_SYNS = b"".join(
    struct.pack("HBBI", code, jump_true, jump_false, k)
    for code, jump_true, jump_false, k in (
        (0x30, 0, 0, 13),  # ldb [13]: the TCP flags
        (0x54, 0, 0, 0x12),  # and #(SYN | ACK)
        (0x15, 0, 1, 0x02),  # jeq #SYN: next, else skip one
        (0x06, 0, 0, 0),  # ret #0: drop
        (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep the whole segment
    )
)


def stop_new_handshakes(listener_fd: int) -> None:
    """Refuse new connections on the listener `listener_fd` from now on (Linux; elsewhere the
    reset window stays open). Handshakes under way still complete."""
    if not sys.platform.startswith("linux"):
        return
    with socket.socket(fileno=os.dup(listener_fd)) as listener:
        program = ctypes.create_string_buffer(_DROP_NEW_SYNS)
        fprog = struct.pack("HL", len(_DROP_NEW_SYNS) // 8, ctypes.addressof(program))
        try:
            listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        except OSError as error:
            log.warning("cannot stop new connections before closing the listener: %s", error)


def take_queued_connections(listener_fd: int) -> list[socket.socket]:
    """Accept every connection queued on the listener `listener_fd`; it stays open."""
    with socket.socket(fileno=os.dup(listener_fd)) as listener:
        listener.setblocking(False)
        accepted: list[socket.socket] = []
        while True:
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return accepted
            connection.setblocking(False)
            accepted.append(connection)
