"""Bearer tokens: management needs the API token; inference and reads only when configured."""

from __future__ import annotations

import logging
import stat

import numpy as np
import pytest
from service_fakes import fake_loader, in_process, png_bytes, repository_config

from service import auth
from service.auth import API_TOKEN_ENV, INFERENCE_TOKEN_ENV, TOKEN_FILE_NAME, Access
from service.config import ConfigError, ServerConfig, parse_config
from service.errors import PermissionDenied, Unauthenticated

API_TOKEN = "api-token-for-tests"
INFERENCE_TOKEN = "inference-token-for-tests"
UNLOAD = "/v2/repository/models/digits/unload"
PNG = {"content-type": "image/png"}
DIGIT = png_bytes(np.zeros((28, 28), np.uint8))
READS = ("/models", "/v2/models/digits", "/v2", "/metrics")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def _no_tokens_in_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    monkeypatch.delenv(INFERENCE_TOKEN_ENV, raising=False)
    monkeypatch.setenv("BLOCKSERVE_HOME", str(tmp_path / "home"))


def served(tmp_path, **auth_section):
    return repository_config(tmp_path, {}, auth={"token": API_TOKEN, **auth_section})


# --- management --------------------------------------------------------------------------


async def test_management_without_a_token_is_401_with_a_bearer_challenge(tmp_path, runtime):
    async with in_process(served(tmp_path), fake_loader(runtime)) as (client, serving):
        response = await client.post(UNLOAD)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "missing bearer token" in response.json()["error"]
        assert serving.repository.names == ["digits"]  # nothing happened


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer two words", "token"])
async def test_a_malformed_authorization_header_is_401(tmp_path, runtime, header):
    async with in_process(served(tmp_path), fake_loader(runtime)) as (client, _):
        response = await client.post(UNLOAD, headers={"authorization": header})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "malformed Authorization header" in response.json()["error"]


async def test_a_wrong_token_is_403(tmp_path, runtime):
    async with in_process(served(tmp_path), fake_loader(runtime)) as (client, serving):
        response = await client.post(UNLOAD, headers=bearer("not-the-token"))
        assert response.status_code == 403
        assert response.json() == {"error": "the bearer token does not grant management operations"}
        assert "www-authenticate" not in response.headers
        assert serving.repository.names == ["digits"]


async def test_the_api_token_unloads_and_the_scheme_is_case_insensitive(tmp_path, runtime):
    async with in_process(served(tmp_path), fake_loader(runtime)) as (client, _):
        response = await client.post(UNLOAD, headers={"authorization": f"bearer {API_TOKEN}"})
        assert response.status_code == 200, response.text


def test_tokens_are_compared_in_constant_time(monkeypatch):
    compared = []

    def spy(presented: bytes, token: bytes) -> bool:
        compared.append((presented, token))
        return presented == token

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    authenticator = auth.Authenticator(b"right", b"infer")
    authenticator.authorize(Access.INFER, "Bearer right")
    with pytest.raises(PermissionDenied):
        authenticator.authorize(Access.MANAGE, "Bearer infer")
    # Every granting token is compared, even after a match: the time says nothing.
    assert compared == [(b"right", b"right"), (b"right", b"infer"), (b"infer", b"right")]


def test_the_inference_token_does_not_grant_management():
    authenticator = auth.Authenticator(b"api", b"infer")
    authenticator.authorize(Access.MANAGE, "Bearer api")
    with pytest.raises(PermissionDenied):
        authenticator.authorize(Access.MANAGE, "Bearer infer")
    with pytest.raises(Unauthenticated):
        authenticator.authorize(Access.MANAGE, None)


# --- where the API token comes from ------------------------------------------------------


def test_a_generated_token_is_written_0600_and_reused_at_the_next_start(tmp_path):
    server = ServerConfig(state_dir=tmp_path / "state")
    first = auth.resolve_authenticator(server)
    token_file = tmp_path / "state" / TOKEN_FILE_NAME
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip().encode() == first.api_token
    assert len(first.api_token) >= 32
    assert auth.resolve_authenticator(server).api_token == first.api_token
    assert [path.name for path in token_file.parent.iterdir()] == [TOKEN_FILE_NAME]


def test_without_a_state_dir_the_token_file_is_in_blockserve_home(tmp_path):
    token = auth.resolve_authenticator(ServerConfig()).api_token
    assert (tmp_path / "home" / TOKEN_FILE_NAME).read_bytes().strip() == token


def test_the_environment_wins_over_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv(API_TOKEN_ENV, "from-the-environment")
    monkeypatch.setenv(INFERENCE_TOKEN_ENV, "inference-from-the-environment")
    config = parse_config(
        {
            "server": {"auth": {"token": "from-config", "inference_token": "infer-config"}},
            "models": [{"name": "digits", "arch": "resnet_digits"}],
        }
    )
    authenticator = auth.resolve_authenticator(config.server)
    assert authenticator.api_token == b"from-the-environment"
    assert authenticator.inference_token == b"inference-from-the-environment"


def test_a_configured_token_file_is_read_and_nothing_is_generated(tmp_path):
    (tmp_path / "secret").write_text("from-a-file\n")
    config = parse_config(
        {
            "server": {"auth": {"token_file": "secret"}, "state_dir": str(tmp_path / "state")},
            "models": [{"name": "digits", "arch": "resnet_digits"}],
        },
        source=tmp_path / "models.yaml",
    )
    assert auth.resolve_authenticator(config.server).api_token == b"from-a-file"
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"token": "has a space"}, "visible ASCII"),
        ({"token": "x", "token_file": "secret"}, "set one of token, token_file"),
    ],
)
def test_bad_auth_config_is_rejected_naming_the_field(tmp_path, section, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        repository_config(tmp_path, {}, auth=section)
    assert "server.auth" in str(caught.value)


def test_an_unusable_token_in_the_environment_fails_startup(monkeypatch):
    monkeypatch.setenv(API_TOKEN_ENV, "two words")
    with pytest.raises(ConfigError, match=API_TOKEN_ENV):
        auth.resolve_authenticator(ServerConfig())


async def test_the_log_says_where_the_token_file_is_and_never_the_token(tmp_path, runtime, caplog):
    config = repository_config(tmp_path, {}, state_dir=str(tmp_path / "state"))
    caplog.set_level(logging.DEBUG)
    async with in_process(config, fake_loader(runtime)) as (client, _):
        token = (tmp_path / "state" / TOKEN_FILE_NAME).read_text().strip()
        assert (await client.post(UNLOAD, headers=bearer(token))).status_code == 200
        assert (await client.post(UNLOAD, headers=bearer(token + "x"))).status_code == 403
    assert str(tmp_path / "state" / TOKEN_FILE_NAME) in caplog.text
    assert token not in caplog.text


# --- inference and reads -----------------------------------------------------------------


async def test_inference_is_open_without_an_inference_token(tmp_path, runtime):
    async with in_process(served(tmp_path), fake_loader(runtime)) as (client, _):
        assert (await client.post("/predict", content=DIGIT, headers=PNG)).status_code == 200


async def test_an_inference_token_guards_inference(tmp_path, runtime):
    config = served(tmp_path, inference_token=INFERENCE_TOKEN)
    async with in_process(config, fake_loader(runtime)) as (client, _):
        missing = await client.post("/models/digits/predict", content=DIGIT, headers=PNG)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "missing bearer token" in missing.json()["error"]
        wrong = await client.post("/predict", content=DIGIT, headers={**PNG, **bearer("nope")})
        assert wrong.json() == {"error": "the bearer token does not grant inference"}
        for token in (INFERENCE_TOKEN, API_TOKEN):
            answer = await client.post("/predict", content=DIGIT, headers={**PNG, **bearer(token)})
            assert answer.status_code == 200
        # It grants inference, not management.
        assert (await client.post(UNLOAD, headers=bearer(INFERENCE_TOKEN))).status_code == 403


async def test_reads_are_open_by_default(tmp_path, runtime):
    async with in_process(served(tmp_path), fake_loader(runtime)) as (client, _):
        for path in READS:
            assert (await client.get(path)).status_code == 200, path


async def test_protect_reads_guards_reads_but_not_the_probes(tmp_path, runtime):
    config = served(tmp_path, protect_reads=True, inference_token=INFERENCE_TOKEN)
    async with in_process(config, fake_loader(runtime)) as (client, _):
        for path in READS:
            assert (await client.get(path)).status_code == 401, path
            for token in (API_TOKEN, INFERENCE_TOKEN):
                assert (await client.get(path, headers=bearer(token))).status_code == 200, path
        for probe in ("/health/live", "/health/ready"):
            assert (await client.get(probe)).status_code == 200, probe
