"""Artifact bundles on disk: a directory with the model file(s) and a `manifest.json` that
records what the artifact is and the sha256 of every file, written atomically and verified on
load."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.export.formats import FORMAT_NAMES
from models.files import file_sha256

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 2
REQUIRED_KEYS = ("name", "arch", "format", "model_file", "input", "outputs", "files")
_PARTIAL_PREFIX = ".partial-"


class BundleError(Exception):
    """A bundle is missing, incomplete, corrupt or tampered with; the message names the problem."""


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    model_file: Path

    @property
    def format(self) -> str:
        return self.manifest["format"]


def describe_files(directory: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under `directory` except the manifest, by relative path."""
    return {
        path.relative_to(directory).as_posix(): {
            "sha256": file_sha256(path),
            "bytes": path.stat().st_size,
        }
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    }


def new_staging_dir(parent: Path) -> Path:
    """A private directory next to the final bundle location; never mistaken for a bundle."""
    staging = parent / f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    return staging


def publish_bundle(staging: Path, manifest: dict[str, Any], destination: Path) -> Path:
    """Hash the staged files, write the manifest last, then rename the directory into place.

    The rename is atomic, so readers see either no bundle or a complete one. When another process
    published the same bundle first, its copy wins and ours is discarded.
    """
    manifest = {**manifest, "files": describe_files(staging)}
    manifest_path = staging / MANIFEST_NAME
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    try:
        os.rename(staging, destination)
    except OSError:
        if not (destination / MANIFEST_NAME).is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def discard_bundle(path: Path) -> None:
    """Remove a (corrupt) bundle without ever exposing a half-deleted directory under its name."""
    doomed = path.with_name(f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}")
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def read_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / MANIFEST_NAME
    if not path.is_dir():
        raise BundleError(f"bundle directory not found: {path}")
    if not manifest_path.is_file():
        raise BundleError(f"bundle {path} has no {MANIFEST_NAME} (incomplete or not a bundle)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"bundle {path}: {MANIFEST_NAME} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"bundle {path}: {MANIFEST_NAME} must hold a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"bundle {path}: {MANIFEST_NAME} lacks required keys {missing}")
    return manifest


def verify_files(path: Path, files: dict[str, dict[str, Any]]) -> None:
    if not isinstance(files, dict):
        raise BundleError(f"bundle {path}: manifest 'files' must map file names to sha256/bytes")
    for relative, expected in files.items():
        if not isinstance(expected, dict) or not {"sha256", "bytes"} <= expected.keys():
            raise BundleError(f"bundle {path}: manifest entry for {relative!r} lacks sha256/bytes")
        file = path / relative
        if not file.resolve().is_relative_to(path.resolve()):
            raise BundleError(f"bundle {path}: file {relative!r} points outside the bundle")
        if not file.is_file():
            raise BundleError(f"bundle {path}: file {relative!r} listed in the manifest is missing")
        size = file.stat().st_size
        if size < expected["bytes"]:
            raise BundleError(
                f"bundle {path}: file {relative!r} is truncated "
                f"({size} of {expected['bytes']} bytes)"
            )
        if size != expected["bytes"]:
            raise BundleError(
                f"bundle {path}: file {relative!r} has {size} bytes, manifest says "
                f"{expected['bytes']}"
            )
        actual = file_sha256(file)
        if actual != expected["sha256"]:
            raise BundleError(
                f"bundle {path}: sha256 mismatch for {relative!r} (manifest {expected['sha256']}, "
                f"file {actual}); the file was modified"
            )


def load_bundle(path: Path | str) -> Bundle:
    """Open a bundle after checking its manifest and the size and sha256 of every listed file."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest["format"] not in FORMAT_NAMES:
        raise BundleError(
            f"bundle {path}: unknown format {manifest['format']!r} (known: {sorted(FORMAT_NAMES)})"
        )
    verify_files(path, manifest["files"])
    model_name = manifest["model_file"]
    if model_name not in manifest["files"]:
        raise BundleError(f"bundle {path}: model file {model_name!r} is not listed in 'files'")
    return Bundle(path=path, manifest=manifest, model_file=path / model_name)
