"""Print a pyproject's requirements, one per line, for `pip install -r` / `pip download -r`.

    python requirements.py pyproject.toml [--extras cpu,train] [--extras-only] [--build-system]

The Dockerfile uses it to install the dependencies in a layer of their own (cached until
pyproject.toml changes), before the project's source is copied in.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path


def requirements(
    pyproject: Path, extras: list[str], *, extras_only: bool = False, build_system: bool = False
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
    return list(dict.fromkeys(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extras", default="", help="comma-separated extras to include")
    parser.add_argument("--extras-only", action="store_true", help="leave out the dependencies")
    parser.add_argument("--build-system", action="store_true", help="add build-system.requires")
    args = parser.parse_args()
    extras = [name for name in args.extras.split(",") if name]
    found = requirements(
        args.pyproject, extras, extras_only=args.extras_only, build_system=args.build_system
    )
    print("\n".join(found))


if __name__ == "__main__":
    main()
