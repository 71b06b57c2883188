"""Print a pyproject's requirements, one per line, for `pip install -r` / `pip download -r`.

    python requirements.py pyproject.toml [--extras cpu,train] [--extras-only] [--build-system]
        [--without-export-only]

The Dockerfile uses it to install the dependencies in a layer of their own (cached until
pyproject.toml changes), before the project's source is copied in. `--without-export-only`
leaves out `[tool.blockserve] export-only` (torch, onnx, ...): the slim runtime image's list.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path


def requirements(
    pyproject: Path,
    extras: list[str],
    *,
    extras_only: bool = False,
    build_system: bool = False,
    without_export_only: bool = False,
) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    optional = project.get("optional-dependencies", {})
    unknown = sorted(set(extras) - set(optional))
    if unknown:
        raise SystemExit(
            f"{pyproject}: unknown extras {unknown}; defined extras: {sorted(optional)}"
        )
    found = [] if extras_only else list(project.get("dependencies", []))
    for extra in extras:
        found += optional[extra]
    if build_system:
        found += data.get("build-system", {}).get("requires", [])
    if without_export_only:
        found = _without(found, data.get("tool", {}).get("blockserve", {}).get("export-only", []))
    return list(dict.fromkeys(found))


def _without(found: list[str], names: list[str]) -> list[str]:
    """`found` without the requirements of the distributions `names` (compared normalized)."""
    dropped = {_normalized(name) for name in names}
    listed = {_normalized(_distribution(requirement)) for requirement in found}
    unlisted = sorted(dropped - listed)
    if unlisted:
        raise SystemExit(f"export-only names no requirement: {unlisted}")
    return [
        requirement
        for requirement in found
        if _normalized(_distribution(requirement)) not in dropped
    ]


def _distribution(requirement: str) -> str:
    """'uvicorn[standard]>=0.29' -> 'uvicorn' (PEP 508: the name comes first)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise SystemExit(f"cannot read a distribution name from requirement {requirement!r}")
    return match.group(1)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extras", default="", help="comma-separated extras to include")
    parser.add_argument("--extras-only", action="store_true", help="leave out the dependencies")
    parser.add_argument("--build-system", action="store_true", help="add build-system.requires")
    parser.add_argument(
        "--without-export-only",
        action="store_true",
        help="leave out [tool.blockserve] export-only (the slim runtime image)",
    )
    args = parser.parse_args()
    extras = [name for name in args.extras.split(",") if name]
    found = requirements(
        args.pyproject,
        extras,
        extras_only=args.extras_only,
        build_system=args.build_system,
        without_export_only=args.without_export_only,
    )
    print("\n".join(found))


if __name__ == "__main__":
    main()
