"""Bearer tokens: who may manage models, and (when configured) infer and read.

Management operations (loading, unloading, replacing models) always need the API token:
`$BLOCKSERVE_API_TOKEN`, else the config's `auth.token` / `auth.token_file`, else a token
generated at first start into a file only the service user can read, reused at the next start
(the log says where; no token is ever logged). Inference needs a token when an inference token
is set (`$BLOCKSERVE_INFERENCE_TOKEN` or `auth.inference_token`); reads when
`auth.protect_reads` is true. The API token grants everything; the inference token grants
inference and reads. Tokens are compared in constant time.

Routes declare what they need with the FastAPI dependencies `require_management` and
`require_read`; the hot inference routes and gRPC check through `Authenticator.authorize`.
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from service.config import (
    BEARER_TOKEN_PATTERN,
    AuthConfig,
    ConfigError,
    ServerConfig,
    blockserve_home,
)
from service.errors import PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

API_TOKEN_ENV = "BLOCKSERVE_API_TOKEN"
INFERENCE_TOKEN_ENV = "BLOCKSERVE_INFERENCE_TOKEN"
TOKEN_FILE_NAME = "api-token"
GENERATED_TOKEN_BYTES = 32
BEARER_SCHEME = b"bearer"


class Access(enum.Enum):
    READ = "reads"
    INFER = "inference"
    MANAGE = "management operations"


@dataclass(frozen=True)
class Authenticator:
    """The resolved tokens, and which kinds of access need one."""

    api_token: bytes
    inference_token: bytes | None = None
    protect_reads: bool = False

    def requires_token(self, access: Access) -> bool:
        if access is Access.MANAGE:
            return True
        if access is Access.INFER:
            return self.inference_token is not None
        return self.protect_reads

    def authorize(self, access: Access, authorization: str | bytes | None) -> None:
        """Pass if `access` needs no token or the `Authorization` header value grants it;
        else raise `Unauthenticated` (no or malformed header) or `PermissionDenied`."""
        if not self.requires_token(access):
            return
        presented = bearer_token(authorization)
        granting = [self.api_token]
        if access is not Access.MANAGE and self.inference_token is not None:
            granting.append(self.inference_token)
        # Every candidate is compared, so the time taken does not say which one matched.
        matches = [hmac.compare_digest(presented, token) for token in granting]
        if not any(matches):
            raise PermissionDenied(f"the bearer token does not grant {access.value}")


def bearer_token(authorization: str | bytes | None) -> bytes:
    """The token of an `Authorization: Bearer <token>` header value."""
    if authorization is None:
        raise Unauthenticated("missing bearer token: send `Authorization: Bearer <token>`")
    value = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
    scheme, _, token = value.strip().partition(b" ")
    token = token.strip()
    well_formed = BEARER_TOKEN_PATTERN.fullmatch(token.decode("latin-1"))
    if scheme.lower() != BEARER_SCHEME or not well_formed:
        raise Unauthenticated("malformed Authorization header: expected `Bearer <token>`")
    return token


def resolve_authenticator(server: ServerConfig) -> Authenticator:
    """The tokens `server.auth` and the environment name; generates the API token file when
    neither names an API token."""
    return Authenticator(
        api_token=_api_token(server).encode(),
        inference_token=_inference_token(server.auth),
        protect_reads=server.auth.protect_reads,
    )


def _inference_token(auth: AuthConfig) -> bytes | None:
    if os.environ.get(INFERENCE_TOKEN_ENV):
        return _checked(os.environ[INFERENCE_TOKEN_ENV], INFERENCE_TOKEN_ENV).encode()
    if auth.inference_token is not None:
        return auth.inference_token.get_secret_value().encode()
    return None


def _api_token(server: ServerConfig) -> str:
    auth = server.auth
    if os.environ.get(API_TOKEN_ENV):
        log.info("API token: from $%s", API_TOKEN_ENV)
        return _checked(os.environ[API_TOKEN_ENV], API_TOKEN_ENV)
    if auth.token is not None:
        log.info("API token: from the config (auth.token)")
        return auth.token.get_secret_value()
    if auth.token_file is not None:
        log.info("API token: read from %s (auth.token_file)", auth.token_file)
        return read_token_file(auth.token_file)
    return generated_token(server.state_dir or blockserve_home())


def generated_token(directory: Path) -> str:
    """The token in `directory/api-token`; created (mode 0600) with a new random token when
    absent. Servers starting at once agree: the file appears whole or not at all."""
    path = directory / TOKEN_FILE_NAME
    if path.exists():
        log.info("API token: read from %s", path)
        return read_token_file(path)
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(GENERATED_TOKEN_BYTES)
    # mkstemp opens with O_CREAT | O_EXCL and mode 0600.
    descriptor, draft = tempfile.mkstemp(dir=directory, prefix=f".{TOKEN_FILE_NAME}.")
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(f"{token}\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(draft, path)
    except FileExistsError:  # another server process created it first
        log.info("API token: read from %s", path)
        return read_token_file(path)
    finally:
        os.unlink(draft)
    log.warning(
        "API token: generated into %s (readable by this user only); management requests "
        "must send `Authorization: Bearer <the file's content>`",
        path,
    )
    return token


def read_token_file(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the API token file {path}: {error}") from None
    if mode & 0o077:
        log.warning("API token file %s is readable by other users: chmod 600 it", path)
    return _checked(token, str(path))


def _checked(token: str, source: str) -> str:
    if not BEARER_TOKEN_PATTERN.fullmatch(token):
        raise ConfigError(
            f"{source}: a token must be one or more visible ASCII characters, without spaces"
        )
    return token


def _authenticator(request: Request) -> Authenticator:
    return request.app.state.auth


async def require_management(request: Request) -> None:
    """FastAPI dependency of routes that change what is served: the API token."""
    _authenticator(request).authorize(Access.MANAGE, request.headers.get("authorization"))


async def require_read(request: Request) -> None:
    """FastAPI dependency of read-only routes: a token only with `auth.protect_reads`."""
    _authenticator(request).authorize(Access.READ, request.headers.get("authorization"))
