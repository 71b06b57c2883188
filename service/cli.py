"""The `blockserve` console script: one sub-command module per concern."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from service.commands import CliError, export, model, serve, train, zoo

COMMAND_MODULES = (zoo, export, serve, train, model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blockserve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except CliError as error:
        print(f"blockserve {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
