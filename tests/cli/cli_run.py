"""Runs the `blockserve` console script in-process, as a user would run it."""

from __future__ import annotations

from service.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`blockserve *argv`: its exit code, stdout and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
