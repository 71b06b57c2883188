"""Narrowly scoped warning filters for third-party calls that warn about things users can't fix.

`warnings.catch_warnings` swaps process-global state, so every scope holds one lock: concurrent
exports or loads (the server loads models in threads) never restore each other's filters.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch

WarningRule = tuple[type[Warning], str]  # (category, regex matched against the message start)

TRACING_NOISE: tuple[WarningRule, ...] = (
    (DeprecationWarning, r"`torch\.jit\.\w+` is deprecated"),
    # Tracing freezes data-dependent Python branches; the parity check at several batch sizes
    # catches any that matter.
    (torch.jit.TracerWarning, r""),
)

_FILTERS_LOCK = threading.RLock()


@contextmanager
def ignoring_warnings(*rules: WarningRule) -> Iterator[None]:
    """Silence only the warnings matching `rules` inside the block; everything else still shows."""
    with _FILTERS_LOCK, warnings.catch_warnings():
        for category, message in rules:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
