"""`blockserve model list|show|load|unload`: manage the models of a running server over HTTP.

`load` and `unload` use Triton's model repository extension (`POST /v2/repository/models/
NAME/load` with the model config as `parameters.config`, `.../unload`) and need the API token;
`list` and `show` read `GET /models[/NAME]`. Exit codes: 0 done, 1 the server refused (its
error is printed), 2 bad arguments or config file, 3 server unreachable, 4 token missing or
not accepted.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from service.auth import API_TOKEN_ENV
from service.commands import CliError

URL_ENV = "BLOCKSERVE_URL"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 600.0  # a load answers once the model serves: exports can take minutes
SERVER_REFUSED, UNREACHABLE, UNAUTHORIZED = 1, 3, 4
TABLE_COLUMNS = ("name", "version", "state", "arch", "format", "device", "instances")


def register(commands: argparse._SubParsersAction) -> None:
    model = commands.add_parser(
        "model", help="list, show, load or unload a running server's models"
    )
    actions = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every model version with its state")
    listing.set_defaults(handler=list_command)
    show = actions.add_parser("show", help="one model's manifest and serving settings (JSON)")
    show.add_argument("name")
    show.set_defaults(handler=show_command)
    load = actions.add_parser("load", help="load (or reload) a model from a model config")
    load.add_argument("name")
    load.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML or JSON model config: the fields of an entry under `models:` "
        "(absent: reload the model's current config)",
    )
    load.set_defaults(handler=load_command)
    unload = actions.add_parser("unload", help="unload a model (its queued requests are answered)")
    unload.add_argument("name")
    unload.set_defaults(handler=unload_command)
    for parser in (listing, show, load, unload):
        parser.add_argument(
            "--url",
            default=os.environ.get(URL_ENV) or DEFAULT_URL,
            help=f"the server's REST address (default: ${URL_ENV} or {DEFAULT_URL})",
        )
        parser.add_argument(
            "--token",
            default=os.environ.get(API_TOKEN_ENV),
            help=f"bearer token (default: ${API_TOKEN_ENV})",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT_S,
            help=f"seconds to wait for the answer (default: {DEFAULT_TIMEOUT_S:g})",
        )


def list_command(args: argparse.Namespace) -> int:
    listing = request(args, "GET", "/models")
    default = listing.get("default")
    rows = [
        [str(entry.get(column, "")) for column in TABLE_COLUMNS]
        + ["*" if entry.get("name") == default else ""]
        for entry in listing.get("models", [])
    ]
    header = [column.upper() for column in TABLE_COLUMNS] + ["DEFAULT"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def show_command(args: argparse.Namespace) -> int:
    print(json.dumps(request(args, "GET", f"/models/{quote(args.name, safe='')}"), indent=2))
    return 0


def load_command(args: argparse.Namespace) -> int:
    parameters = {} if args.config is None else {"config": json.dumps(read_config(args))}
    path = f"/v2/repository/models/{quote(args.name, safe='')}/load"
    request(args, "POST", path, {"parameters": parameters})
    print(f"model {args.name!r} loaded")
    return 0


def unload_command(args: argparse.Namespace) -> int:
    request(args, "POST", f"/v2/repository/models/{quote(args.name, safe='')}/unload", {})
    print(f"model {args.name!r} unloaded")
    return 0


def read_config(args: argparse.Namespace) -> dict[str, Any]:
    """The model config in `args.config`, named `args.name`."""
    try:
        data = yaml.safe_load(args.config.read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError as error:
        raise CliError(f"cannot read {args.config}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise CliError(f"{args.config} is neither YAML nor JSON: {error}") from None
    if not isinstance(data, dict):
        raise CliError(f"{args.config}: expected a mapping of model config fields")
    if data.setdefault("name", args.name) != args.name:
        raise CliError(f"{args.config} names model {data['name']!r}, not {args.name!r}")
    weights = data.get("weights")
    if isinstance(weights, str):  # as in a config file: relative to the file's directory
        data["weights"] = str((args.config.parent / Path(weights).expanduser()).resolve())
    return data


def request(
    args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """The JSON answer of `method url+path`; `CliError` with the server's error otherwise."""
    url = args.url.rstrip("/") + path
    headers = {"accept": "application/json"}
    if args.token:
        headers["authorization"] = f"Bearer {args.token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    call = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(call, timeout=args.timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise refused(error) from None
    except TimeoutError:
        raise CliError(
            f"no answer from {args.url} within {args.timeout:g} s (a load may still be running)",
            UNREACHABLE,
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CliError(f"cannot reach the server at {args.url}: {reason}", UNREACHABLE) from None
    except json.JSONDecodeError:
        raise CliError(f"{url} did not answer JSON: is {args.url} a blockserve server?") from None


def refused(error: urllib.error.HTTPError) -> CliError:
    """The error to print for an HTTP error answer: the server's `error` text and status."""
    text = error.read().decode("utf-8", "replace")
    try:
        message = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        message = text.strip()[:200] or error.reason
    answer = f"HTTP {error.code}: {message}"
    if error.code in (401, 403):
        hint = f"pass --token or set ${API_TOKEN_ENV} (the server's log says where its token is)"
        return CliError(f"{answer}; {hint}", UNAUTHORIZED)
    return CliError(answer, SERVER_REFUSED)
