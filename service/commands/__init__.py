"""Sub-commands of the `blockserve` CLI.

Each module exposes `register(commands: argparse._SubParsersAction) -> None`, which adds its
parsers and sets `handler=fn(args) -> int | None` on each. Handlers raise `CliError` for bad
arguments; `service.cli.main` prints it and exits non-zero.
"""


class CliError(Exception):
    """A user-facing command-line error: printed without a traceback, exit code `exit_code`
    (2 unless told)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
