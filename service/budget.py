"""A server-wide byte budget: how much request body the process holds at once."""

from __future__ import annotations

from service.errors import ServerBusy


class ByteBudget:
    """Counts bytes held by requests in flight against `limit`; `ServerBusy` when full.

    Used on the event loop only, so plain integers suffice."""

    def __init__(self, limit: int, retry_after_s: float) -> None:
        self.limit = limit
        self.held = 0
        self._retry_after_s = retry_after_s

    def reserve(self, size: int) -> None:
        if self.held + size > self.limit:
            raise ServerBusy(
                f"the server holds {self.held} bytes of request bodies and this one needs "
                f"{size} more (limit {self.limit})",
                self._retry_after_s,
            )
        self.held += size

    def release(self, size: int) -> None:
        self.held -= size
