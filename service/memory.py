"""The allocator settings of a serving process: freed request buffers go back to the OS.

glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so after a few
large requests their buffers come from the heap, whose freed pages mostly stay with the process:
its RSS stays near its peak. A fixed threshold keeps every buffer above it (large request
bodies, tensors) in its own mapping, returned whole when freed. Buffers below it come from the
heap and are reused without page faults: a fresh mapping costs a fault per page, which at
1 MiB is the price of a copy several times over (a 602 KB binary resnet18 request spent half of
its event-loop time faulting in its body buffers with the threshold at 128 KiB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 1024 * 1024  # bodies up to this are reused heap memory


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, or None elsewhere (not Linux, or a libc without mallopt such as musl)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def return_large_buffers_to_the_os() -> bool:
    """Fix glibc's mmap threshold (Linux with glibc; elsewhere nothing). True when set."""
    libc = _glibc()
    if libc is None:
        return False
    if not libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        log.warning("mallopt(M_MMAP_THRESHOLD) refused; freed request memory may stay resident")
        return False
    return True


def release_free_memory() -> None:
    """After a model is unloaded: collect its cycles and give the heap's free pages back to
    the OS (glibc's `malloc_trim`), so the process's RSS falls back."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
