"""The allocator settings of a serving process: freed request buffers go back to the OS.

glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so after a few
large requests their buffers come from the heap, whose freed pages mostly stay with the process:
its RSS stays near its peak. A fixed threshold keeps every large buffer (request bodies, tensors)
in its own mapping, returned whole when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value, kept fixed


def return_large_buffers_to_the_os() -> bool:
    """Fix glibc's mmap threshold (Linux with glibc; elsewhere nothing). True when set."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    if not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        log.warning("mallopt(M_MMAP_THRESHOLD) refused; freed request memory may stay resident")
        return False
    return True
