"""Close a listening socket without resetting the connections queued in it.

Closing a listener resets every connection whose handshake the kernel completed but the server
had not accepted yet: its client already sent a request and reads a reset. So before the
listener closes, a socket filter that drops every packet stops new handshakes (their clients
retry the SYN and then find the port closed: connection refused, nothing sent), and the
connections already queued are accepted, to be served like any other.
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
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)  # classic BPF: `ret #0`, keep no byte


def take_queued_connections(listener_fd: int) -> list[socket.socket]:
    """Stop new handshakes on the listener `listener_fd` (Linux; elsewhere the window stays
    open), then accept the connections already queued. The listener itself stays open."""
    with socket.socket(fileno=os.dup(listener_fd)) as listener:
        _drop_new_handshakes(listener)
        listener.setblocking(False)
        accepted = []
        while True:
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return accepted
            connection.setblocking(False)
            accepted.append(connection)


def _drop_new_handshakes(listener: socket.socket) -> None:
    if not sys.platform.startswith("linux"):
        return
    program = ctypes.create_string_buffer(_DROP_ALL)
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog
    try:
        listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as error:
        log.warning("cannot stop new connections before closing the listener: %s", error)
