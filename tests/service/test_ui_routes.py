"""What the web page reads: the page and its files, live figures, bundle downloads, the
registry."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from service_fakes import fake_loader, in_process, png_bytes, repository_config

from service.config import parse_config
from service.metrics import LATENCY_BUCKETS, Metrics
from service.repository import load_model
from service.routers.ui import STATIC_DIR

DIGIT = png_bytes(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
PNG = {"content-type": "image/png"}
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain",
}


@pytest.fixture
def config(tmp_path):
    return repository_config(tmp_path)


async def test_the_page_is_html(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == (STATIC_DIR / "index.html").read_text(encoding="utf-8")


async def test_static_files_are_served_with_the_type_of_their_suffix(config, runtime):
    files = [path for path in STATIC_DIR.rglob("*") if path.suffix in TYPES]
    async with in_process(config, fake_loader(runtime)) as (client, _):
        responses = {
            path: await client.get(f"/ui/static/{path.relative_to(STATIC_DIR).as_posix()}")
            for path in files
        }

    assert STATIC_DIR / "index.html" in responses
    for path, response in responses.items():
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(TYPES[path.suffix]), path
        assert response.content == path.read_bytes(), path


@pytest.mark.parametrize(
    "path",
    ["/ui/static/%2E%2E/app.py", "/ui/static/%2E%2E/%2E%2E/pyproject.toml", "/ui/static/absent.js"],
)
async def test_nothing_outside_the_static_folder_is_served(config, runtime, path):
    assert (STATIC_DIR / "../app.py").is_file()  # what the first path would reach
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.get(path)

    assert response.status_code == 404
    assert "error" in response.json()


async def test_figures_count_requests_errors_batches_and_latencies(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        before = (await client.get("/ui/figures")).json()
        for _ in range(3):
            assert (await client.post("/predict", content=DIGIT, headers=PNG)).status_code == 200
        for _ in range(2):
            junk = await client.post("/predict", content=b"junk", headers=PNG)
            assert junk.status_code == 400
        after = (await client.get("/ui/figures")).json()

    assert after["time"] >= before["time"] > 0
    (idle,) = before["models"]
    (digits,) = after["models"]
    assert idle["requests"] == idle["batches"] == 0
    assert {key: digits[key] for key in ("name", "version", "state")} == {
        "name": "digits",
        "version": "1",
        "state": "READY",
    }
    assert digits["requests"] == 5
    assert digits["errors"] == 2
    assert digits["batches"] == digits["images"] == 3
    assert digits["queue_depth"] == 0
    bounds = [bound for bound, _ in digits["latency_buckets"]]
    counts = [count for _, count in digits["latency_buckets"]]
    assert bounds == [*LATENCY_BUCKETS, "+Inf"]
    assert counts == sorted(counts) and counts[-1] == 5


def test_snapshot_sums_latencies_over_protocols_and_keeps_versions_apart():
    metrics = Metrics()
    metrics.record_request("digits", "1", 200, "rest", 0.002)
    metrics.record_request("digits", "1", "UNAVAILABLE", "grpc", 0.2)
    metrics.record_request("digits", "2", 200, "rest", 0.002)
    metrics.batch_observer("digits", "1", 0).queue_changed(5)
    metrics.batch_observer("digits", "1", 1).queue_changed(2)

    snapshot = metrics.snapshot()

    first = snapshot["digits", "1"]
    assert (first.requests, first.errors, first.queue_depth) == (2, 1, 7)
    assert first.latency_buckets[0.001] == 0
    assert first.latency_buckets[0.0025] == 1
    assert first.latency_buckets[0.25] == first.latency_buckets[float("inf")] == 2
    assert (snapshot["digits", "2"].requests, snapshot["digits", "2"].errors) == (1, 0)


@pytest.fixture
def digits_config(digits_weights, bundle_cache):
    return parse_config(
        {
            "server": {"grpc": {"enabled": False}, "cache_dir": str(bundle_cache)},
            "models": [{"name": "digits", "arch": "resnet_digits", "weights": str(digits_weights)}],
        }
    )


def gzip_header_time(data: bytes) -> int:
    """MTIME of a gzip member's header (RFC 1952: bytes 4-7, little-endian; 0: none)."""
    return int.from_bytes(data[4:8], "little")


async def test_bundle_downloads_as_a_tar_gz_with_its_manifest(digits_config):
    async with in_process(digits_config, load_model) as (client, serving):
        response = await client.get("/models/digits/bundle")
        versioned = await client.get("/models/digits/bundle?version=1")
        bundle_dir = serving.repository.get("digits").ready().bundle_dir

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    disposition = response.headers["content-disposition"]
    assert disposition == 'attachment; filename="digits-v1.tar.gz"'
    assert int(response.headers["content-length"]) == len(response.content)
    assert versioned.content == response.content
    assert gzip_header_time(response.content) == 0  # so a download an hour later is the same
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("digits-v1/manifest.json"))  # type: ignore[arg-type]
    assert sorted(names) == sorted(
        ["digits-v1", *(f"digits-v1/{p.relative_to(bundle_dir)}" for p in bundle_dir.rglob("*"))]
    )
    assert manifest == json.loads((bundle_dir / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/models/absent/bundle", "absent"),
        ("/models/digits/bundle?version=7", "7"),
        ("/models/digits/bundle", "no exported bundle"),  # the fake loader exports none
    ],
)
async def test_bundle_of_an_unknown_model_or_version_or_none_is_404(config, runtime, path, named):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.get(path)

    assert response.status_code == 404
    assert named in response.json()["error"]


async def test_bundle_of_a_model_not_ready_is_503(config, runtime):
    broken = fake_loader(runtime, failures={"digits": "no weights"})
    async with in_process(config, broken) as (client, _):
        response = await client.get("/models/digits/bundle")

    assert response.status_code == 503
    assert "error" in response.json()


async def test_registry_lists_architectures_with_their_input_size(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.get("/registry")

    architectures = {entry["name"]: entry for entry in response.json()["architectures"]}
    assert architectures["resnet18"]["default_input_size"] == [3, 224, 224]
    assert architectures["resnet18"]["num_classes"] == 1000
    assert architectures["resnet_digits"]["default_input_size"] == [1, 8, 8]


async def test_with_protected_reads_the_page_opens_but_its_data_needs_the_token(tmp_path, runtime):
    token = "api-token-for-tests"
    auth = {"token": token, "protect_reads": True}
    config = repository_config(tmp_path, {}, auth=auth)
    async with in_process(config, fake_loader(runtime)) as (client, _):
        page = await client.get("/")
        asset = await client.get("/ui/static/index.html")
        reads = {path: await client.get(path) for path in ("/ui/figures", "/registry")}
        granted = await client.get("/ui/figures", headers={"authorization": f"Bearer {token}"})

    assert page.status_code == asset.status_code == granted.status_code == 200
    assert {path: response.status_code for path, response in reads.items()} == {
        "/ui/figures": 401,
        "/registry": 401,
    }
