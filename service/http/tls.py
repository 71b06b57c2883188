"""HTTPS for the REST server from `server.tls` (the same certificate gRPC uses)."""

from __future__ import annotations

import ssl
from typing import TypedDict

from service.config import ConfigError, TlsConfig


def check_tls(tls: TlsConfig) -> None:
    """Load the certificate and key once, so a bad pair fails with a message naming the files
    before the server starts."""
    for path in (tls.cert_file, tls.key_file):
        if not path.is_file():
            raise ConfigError(f"server.tls: file not found: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"server.tls: cannot load certificate {tls.cert_file} with key {tls.key_file}: {error}"
        ) from None


class UvicornTlsOptions(TypedDict, total=False):
    ssl_certfile: str
    ssl_keyfile: str


def uvicorn_tls_options(tls: TlsConfig | None) -> UvicornTlsOptions:
    """`uvicorn.Config` arguments serving HTTPS with `tls`; none for plain HTTP."""
    if tls is None:
        return {}
    check_tls(tls)
    return {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
