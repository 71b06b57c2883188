"""The page's files are self-contained: vendored assets match their recorded checksums and
nothing points at another origin."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "service" / "static"
VENDOR = STATIC / "vendor"
OWN_FILES = ("index.html", "app.js", "style.css")
# Namespaces name a vocabulary; nothing is fetched from them.
NAMESPACES = ("http://www.w3.org/",)
CDN_HOSTS = re.compile(r"cdn\.|unpkg\.com|jsdelivr|googleapis|gstatic|cloudflare", re.I)


def recorded_checksums() -> dict[str, str]:
    lines = (VENDOR / "CHECKSUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def test_every_vendored_file_matches_its_recorded_sha256():
    recorded = recorded_checksums()
    vendored = {path.name for path in VENDOR.iterdir() if path.name != "CHECKSUMS"}
    assert vendored == set(recorded)
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_a_vendored_script_comes_with_its_license():
    scripts = sorted(VENDOR.glob("*.min.js"))
    assert scripts
    for script in scripts:
        assert script.with_name(script.name.removesuffix(".min.js") + ".LICENSE").is_file()


def test_the_page_refers_only_to_its_own_origin():
    for name in OWN_FILES:
        text = (STATIC / name).read_text()
        urls = [u for u in re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", text)
                if not u.startswith(NAMESPACES)]  # fmt: skip
        assert urls == [], name


def test_no_file_under_static_names_a_cdn():
    for path in STATIC.rglob("*"):
        if path.is_file() and path.name != "CHECKSUMS":
            assert not CDN_HOSTS.search(path.read_text(errors="replace")), path
