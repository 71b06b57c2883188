"""A client generated from the served OpenAPI document by openapi-python-client (in a venv of
its own, kept in the pytest cache) calls a real `blockserve serve`."""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
from pathlib import Path

import httpx
import pytest
from server_process import digits_config, serve

pytestmark = pytest.mark.slow

GENERATOR = "openapi-python-client==0.29.1"
INSTALL_TIMEOUT_S = 600
GENERATE_TIMEOUT_S = 300
# Runs in the generator's venv, the generated package on its path: the model's metadata,
# then infer on zeros of its input shape (one image), and infer on an unknown model.
CLIENT_SCRIPT = """
import json, sys
from blockserve_client import Client
from blockserve_client.api.v2 import model_infer, model_metadata
from blockserve_client.models import Error, InferenceRequest, RequestInput

client = Client(base_url=sys.argv[1], raise_on_unexpected_status=True)
metadata = model_metadata.sync(name="digits", client=client)
(tensor,) = metadata.inputs
shape = [1, *tensor.shape[1:]]
count = 1
for size in shape:
    count *= size
request = InferenceRequest(
    inputs=[RequestInput(name=tensor.name, shape=shape, datatype="FP32", data=[0.0] * count)]
)
answer = model_infer.sync_detailed(name="digits", client=client, body=request)
unknown = model_infer.sync_detailed(name="nope", client=client, body=request)
assert isinstance(unknown.parsed, Error)
print(json.dumps({
    "status": answer.status_code,
    "response": answer.parsed.to_dict(),
    "unknown": [unknown.status_code, unknown.parsed.error],
}))
"""


@pytest.fixture(scope="session")
def generator_python(request, tmp_path_factory) -> Path:
    """The python of a venv holding openapi-python-client (and so httpx and attrs, which the
    generated client needs), built once and kept in the pytest cache."""
    name = "openapi-python-client-" + GENERATOR.rpartition("==")[2]
    cache = getattr(request.config, "cache", None)
    directory = Path(cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name))
    python = directory / "venv" / "bin" / "python"
    installed = directory / "installed"
    if not installed.exists():
        shutil.rmtree(directory / "venv", ignore_errors=True)
        venv.create(directory / "venv", with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", GENERATOR],
            check=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        installed.touch()
    return python


@pytest.fixture(scope="module")
def server(digits_weights, bundle_cache, tmp_path_factory):
    directory = tmp_path_factory.mktemp("openapi-client-server")
    with serve(digits_config(directory, digits_weights, bundle_cache), directory) as running:
        yield running.base_url


def test_a_generated_client_calls_infer(server, generator_python, tmp_path):
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx.get(f"{server}/openapi.json", timeout=10).content)
    generator = generator_python.parent / "openapi-python-client"
    generated = subprocess.run(
        [str(generator), "generate", "--path", str(document), "--output-path", "client"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT_S,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # The generator warns about what it cannot express (predict's `image/*` bodies); nothing
    # of the V2 protocol may be among it.
    assert "/v2/" not in generated.stdout + generated.stderr

    called = subprocess.run(
        [str(generator_python), "-c", CLIENT_SCRIPT, server],
        cwd=tmp_path / "client",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)

    assert result["status"] == 200
    (output,) = result["response"]["outputs"]
    assert output["name"] == "logits" and output["shape"] == [1, 10]
    assert len(output["data"]) == 10
    assert result["unknown"][0] == 404 and "unknown model 'nope'" in result["unknown"][1]
