"""`blockserve model list|show|load|unload` against a real `blockserve serve` on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_run import run

from service.auth import API_TOKEN_ENV

TOKEN = "cli-test-token"
TABLE_HEADER = ["NAME", "VERSION", "STATE", "ARCH", "FORMAT", "DEVICE", "INSTANCES", "DEFAULT"]
SERVER_PROCESS = Path(__file__).parents[1] / "service" / "server_process.py"


@pytest.fixture(scope="module")
def server(load_module, digits_weights, tmp_path_factory):
    """One server for the module: the trained digits model; the API token is `TOKEN`."""
    server_process = load_module(SERVER_PROCESS)
    directory = tmp_path_factory.mktemp("model-cli")
    config = server_process.digits_config(
        directory,
        digits_weights,
        directory / "bundles",
        auth={"token": TOKEN},
        state_dir=str(directory / "state"),
    )
    with server_process.serve(config, directory) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_token_in_environment(monkeypatch) -> None:
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)


def digits_file(directory: Path, weights: Path, **fields) -> Path:
    path = directory / "digits.yaml"
    path.write_text(yaml.safe_dump({"arch": "resnet_digits", "weights": str(weights), **fields}))
    return path


def test_list_prints_a_table_of_the_models(server, capsys):
    code, out, _ = run(capsys, "model", "list", "--url", server.base_url)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == TABLE_HEADER
    assert [row.split() for row in rows] == [
        ["digits", "1", "READY", "resnet_digits", "onnx", "cpu", "1", "*"]
    ]


def test_show_prints_the_models_json(server, capsys):
    code, out, _ = run(capsys, "model", "show", "digits", "--url", server.base_url)
    assert code == 0
    assert yaml.safe_load(out)["serving"]["labels"] == [str(digit) for digit in range(10)]


def test_an_unknown_model_exits_1_with_the_servers_error(server, capsys):
    code, _, err = run(capsys, "model", "show", "nope", "--url", server.base_url)
    assert code == 1
    assert "HTTP 404: unknown model 'nope'; available models: 'digits'" in err


def test_unload_without_a_token_exits_4_saying_how_to_pass_one(server, capsys):
    code, _, err = run(capsys, "model", "unload", "digits", "--url", server.base_url)
    assert code == 4
    assert "HTTP 401: missing bearer token" in err and f"${API_TOKEN_ENV}" in err


def test_unload_with_a_wrong_token_exits_4(server, capsys):
    argv = ("model", "unload", "digits", "--url", server.base_url, "--token", "wrong")
    code, _, err = run(capsys, *argv)
    assert code == 4
    assert "HTTP 403: the bearer token does not grant management operations" in err


def test_a_load_the_server_rejects_exits_1_naming_the_field(server, tmp_path, capsys):
    config = digits_file(tmp_path, Path("unused.safetensors"), instances=0)
    argv = ("model", "load", "digits", "--config", str(config), "--url", server.base_url)
    code, _, err = run(capsys, *argv, "--token", TOKEN)
    assert code == 1
    assert "HTTP 400" in err and "instances" in err


def test_a_config_file_naming_another_model_exits_2(server, tmp_path, capsys):
    config = digits_file(tmp_path, Path("unused.safetensors"), name="other")
    argv = ("model", "load", "digits", "--config", str(config), "--url", server.base_url)
    code, _, err = run(capsys, *argv, "--token", TOKEN)
    assert code == 2
    assert "names model 'other', not 'digits'" in err


def test_unload_then_load_with_the_token_from_the_environment(
    server, digits_weights, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv(API_TOKEN_ENV, TOKEN)
    url = ("--url", server.base_url)
    assert run(capsys, "model", "unload", "digits", *url)[:2] == (0, "model 'digits' unloaded\n")
    code, _, err = run(capsys, "model", "show", "digits", *url)
    assert code == 1 and "HTTP 404" in err
    config = digits_file(tmp_path, digits_weights, version=2)
    code, out, err = run(capsys, "model", "load", "digits", "--config", str(config), *url)
    assert (code, out) == (0, "model 'digits' loaded\n"), err
    _, listing, _ = run(capsys, "model", "list", *url)
    assert listing.splitlines()[1].split()[:3] == ["digits", "2", "READY"]


def test_an_unreachable_server_exits_3(capsys):
    code, _, err = run(capsys, "model", "list", "--url", "http://127.0.0.1:9")
    assert code == 3
    assert "cannot reach the server at http://127.0.0.1:9" in err
