"""`blockserve models [PATTERN]` and `blockserve summary NAME`, plus the model-argument parsing
shared with `blockserve export`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import yaml

from models.registry import list_models, model_default_cfg, model_spec
from models.spec import NetworkSpec
from service.commands import CliError, needs_torch

if TYPE_CHECKING:
    from torch import nn

SUMMARY_FORMATS = ("text", "json", "mermaid")


def register(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("models", help="list the model zoo")
    listing.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet*'")
    listing.set_defaults(handler=list_command)

    summary = commands.add_parser("summary", help="print a model's layer summary")
    summary.add_argument("name", help="registry model name (see `blockserve models`)")
    add_model_arguments(summary)
    summary.add_argument("--format", choices=SUMMARY_FORMATS, default="text")
    summary.set_defaults(handler=summary_command)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        type=parse_shape,
        metavar="C,SPATIAL...",
        help="input size without batch, e.g. 3,224,224 (default: the model's default cfg)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="spec override, repeatable: num_classes=10, in_chans=1, head.dropout=0.1, "
        "stages.0.depth=3 (values parsed as YAML/JSON)",
    )


def list_command(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 1
    for name in names:
        cfg = model_default_cfg(name)
        size = "x".join(map(str, cfg.input_size))
        print(f"{name:<20} input {size:<12} classes {cfg.num_classes}")
    return 0


@needs_torch
def summary_command(args: argparse.Namespace) -> int:
    from models.summary import summarize

    overrides = parse_overrides(args.overrides)
    input_size = args.input or model_input_size(args.name, overrides)
    model = build_model(args.name, overrides)
    try:
        summary = summarize(model, input_size)
    except RuntimeError as error:
        raise CliError(f"{args.name} cannot run on input size {input_size}: {error}") from None
    if args.format == "json":
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print(summary.to_text() if args.format == "text" else summary.to_mermaid())
    return 0


def parse_shape(text: str) -> tuple[int, ...]:
    """'3,224,224' -> (3, 224, 224); argparse turns a bad value into a usage error (exit 2)."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive ints like 3,224,224, got {text!r}"
        ) from None
    if min(shape) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return shape


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """['num_classes=10', 'head.dropout=0.1'] -> {'num_classes': 10, 'head.dropout': 0.1}."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise CliError(f"--set expects KEY=VALUE (e.g. num_classes=10), got {item!r}")
        if key in overrides:
            raise CliError(f"--set {key} given twice")
        try:
            overrides[key] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            problem = str(error).splitlines()[0]
            raise CliError(f"--set {key}: cannot parse value {raw!r} ({problem})") from None
    return overrides


def model_input_size(name: str, overrides: dict[str, Any]) -> tuple[int, ...]:
    """The default cfg's input size, with the channel count of the overridden spec."""
    spec = resolve_spec(name, overrides)
    return (spec.in_chans, *model_default_cfg(name).input_size[1:])


def resolve_spec(name: str, overrides: dict[str, Any]) -> NetworkSpec:
    try:
        return model_spec(name, **overrides)
    except KeyError as error:
        raise CliError(error.args[0]) from None
    except (TypeError, ValueError) as error:
        raise CliError(f"bad --set for {name}: {error}") from None


def build_model(name: str, overrides: dict[str, Any]) -> nn.Module:
    from models.builder import build_network

    return build_network(resolve_spec(name, overrides)).eval()
