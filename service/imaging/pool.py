"""The decode thread pool, run below the engine's priority."""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


def decode_pool(threads: int, niceness: int) -> ThreadPoolExecutor:
    """The decode threads, `niceness` steps below the threads that create them.

    An ONNX Runtime run's threads meet at a barrier after every operator, so a decoder that
    preempts one of them stalls them all; at lower priority, decoding takes the cycles the
    engine leaves instead. Nothing changes while the cores are otherwise idle.
    """
    return ThreadPoolExecutor(
        threads, thread_name_prefix="decode", initializer=_lower_priority, initargs=(niceness,)
    )


def _lower_priority(niceness: int) -> None:
    if not niceness or sys.platform != "linux":  # Linux applies PRIO_PROCESS to one thread id
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + niceness)
    except OSError as error:  # a sandbox that forbids it: decode at the usual priority
        log.warning("decode thread keeps its priority: setpriority failed: %s", error)
