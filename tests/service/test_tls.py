"""HTTPS from `server.tls` on a real `blockserve serve`, with a self-signed certificate."""

from __future__ import annotations

import ssl
import subprocess
import sys

import httpx
import pytest
from server_process import digits_config, serve


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and its key (PEM), made by the openssl CLI."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_is_served_with_the_configured_certificate_and_plain_http_is_not(
    certificate, digits_weights, bundle_cache, tmp_path
):
    cert, key = certificate
    tls = {"cert_file": str(cert), "key_file": str(key)}
    config = digits_config(tmp_path, digits_weights, bundle_cache, tls=tls)

    trusting = ssl.create_default_context(cafile=str(cert))
    with serve(config, tmp_path, scheme="https", client_options={"verify": trusting}) as server:
        secure = httpx.get(f"{server.base_url}/health/ready", verify=trusting, timeout=10)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{server.port}/health/ready", timeout=10)

    assert secure.status_code == 200
    assert secure.json()["status"] == "ready"


def test_a_missing_certificate_stops_serve_with_a_message_naming_it(
    digits_weights, bundle_cache, tmp_path
):
    missing = tmp_path / "missing.pem"
    tls = {"cert_file": str(missing), "key_file": str(missing)}
    config = digits_config(tmp_path, digits_weights, bundle_cache, tls=tls)

    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--config", str(config), "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode != 0
    assert f"server.tls: file not found: {missing}" in done.stderr
