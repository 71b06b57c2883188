"""Sub-commands of the `blockserve` CLI.

Each module exposes `register(commands: argparse._SubParsersAction) -> None`, which adds its
parsers and sets `handler=fn(args) -> int | None` on each. Handlers raise `CliError` for bad
arguments; `service.cli.main` prints it and exits non-zero.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


class CliError(Exception):
    """A user-facing command-line error: printed without a traceback, exit code `exit_code`
    (2 unless told)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def needs_torch(handler: Callable[[Any], int]) -> Callable[[Any], int]:
    """A handler that builds, exports or trains models: where torch is not installed (the slim
    image), a `CliError` saying so instead of an ImportError. The handler imports what needs
    torch itself, so that the other commands run without it."""

    @functools.wraps(handler)
    def run(args: Any) -> int:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise CliError("needs torch: this is the slim image; use the full image") from None
        return handler(args)

    return run
