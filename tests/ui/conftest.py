"""A real blockserve serving the trained digits model and a random-init resnet18 (224 px), and
headless Debian Chromium driven by Selenium against it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from selenium import webdriver

PROJECT = Path(__file__).resolve().parents[2]
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MANAGEMENT_TOKEN = "ui-tests-api-token"
WINDOW = (1280, 900)
CHROME_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture(scope="session")
def management_token() -> str:
    return MANAGEMENT_TOKEN


@pytest.fixture(scope="session")
def server_process(load_module):
    return load_module(PROJECT / "tests" / "service" / "server_process.py")


@pytest.fixture(scope="module")
def server(digits_weights, server_process, tmp_path_factory) -> Iterator[str]:
    """The base URL of `blockserve serve` on 127.0.0.1 (management by `MANAGEMENT_TOKEN`)."""
    directory = tmp_path_factory.mktemp("ui-server")
    config = {
        "server": {
            "cache_dir": str(tmp_path_factory.mktemp("ui-bundles")),
            "grpc": {"enabled": False},
            "auth": {"token": MANAGEMENT_TOKEN},
        },
        "models": [
            {"name": "digits", "arch": "resnet_digits", "weights": str(digits_weights)},
            {"name": "resnet18", "arch": "resnet18"},
        ],
    }
    path = directory / "models.yaml"
    path.write_text(yaml.safe_dump(config))
    with server_process.serve(path, directory) as running:
        yield running.base_url


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """Headless Chromium with its console and network (performance) logs readable."""
    if not (shutil.which("chromium") and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    for argument in CHROME_ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    browser.set_window_size(*WINDOW)
    browser.get("about:blank")
    for log in ("browser", "performance"):  # the start page's, not the tests'
        browser.get_log(log)
    try:
        yield browser
    finally:
        browser.quit()
