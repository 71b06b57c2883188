"""The servers under test: blockserve (batching on / off) and the peers, one registered
factory each. A factory turns the run's settings into how to launch the server and what to
post to it; `bench/serve.py` starts them one at a time."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from service.config import expand_path

REPO = Path(__file__).resolve().parents[2]
PEERS_DIR = REPO / "bench" / "peers"


@dataclass(frozen=True)
class Settings:
    """What every factory may need; filled once by bench/serve.py."""

    work: Path  # scratch: configs, logs, model store
    peers_python: Path  # bench/.venv-peers/bin/python
    base_config: Path  # blockserve config the variants derive from
    bundle: Path  # resnet18 ONNX bundle blockserve serves (LitServe setup 2 reuses it)
    max_batch_size: int  # peers' batch cap, blockserve resnet18's by default
    peer_batch_delay_ms: float
    # blockserve resnet18's engine setup, mirrored by LitServe setup 2
    ort_allow_spinning: bool
    ort_threads: int | None
    instances: int


@dataclass(frozen=True)
class Workload:
    model: str  # name in blockserve's config; the peers serve resnet18 only
    path: str  # URL path and query
    wire_format: str  # bodies.FORMATS key
    corpus: str  # images.CORPORA key
    ready_path: str | None = None  # polled before its first point: server ready != model ready


@dataclass(frozen=True)
class ServerCase:
    name: str
    label: str  # table and plot legend
    peer: bool
    command: list[str]
    ready_url: str
    workloads: tuple[Workload, ...]
    metrics_path: str | None = None  # blockserve's Prometheus endpoint
    ready_body: bytes | None = None  # expected in the ready answer
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None  # one-off build step (e.g. a model archive)
    notes: str = ""


Factory = Callable[[Settings, int], ServerCase]
SERVERS: dict[str, Factory] = {}


def register_server(factory: Factory) -> Factory:
    SERVERS[factory.__name__.replace("_", "-")] = factory
    return factory


_V2_READY = "/v2/models/%s/ready"


def _blockserve_workloads() -> tuple[Workload, ...]:
    return (
        Workload("resnet18", "/predict?model=resnet18", "jpeg", "rgb224", _V2_READY % "resnet18"),
        Workload("digits", "/predict?model=digits", "jpeg", "gray32", _V2_READY % "digits"),
    )


def _blockserve(settings: Settings, port: int, *, batching: bool) -> ServerCase:
    config = write_blockserve_config(settings.base_config, settings.work, batching=batching)
    return ServerCase(
        name="blockserve" if batching else "blockserve-unbatched",
        label="blockserve" if batching else "blockserve (max_batch_size 1)",
        peer=False,
        command=[
            str(REPO / ".venv" / "bin" / "blockserve"),
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--grpc-port",
            "0",
            "--log-level",
            "warning",
        ],
        ready_url=f"http://127.0.0.1:{port}/health/ready",
        metrics_path="/metrics",
        workloads=_blockserve_workloads(),
        notes=f"config {config.name}, raw JPEG bodies",
    )


@register_server
def blockserve(settings: Settings, port: int) -> ServerCase:
    return _blockserve(settings, port, batching=True)


@register_server
def blockserve_unbatched(settings: Settings, port: int) -> ServerCase:
    return _blockserve(settings, port, batching=False)


@register_server
def litserve_documented(settings: Settings, port: int) -> ServerCase:
    return ServerCase(
        name="litserve-documented",
        label="LitServe (documented: torchvision eager)",
        peer=True,
        command=[
            str(settings.peers_python),
            str(PEERS_DIR / "litserve_documented.py"),
            "--port",
            str(port),
            *_litserve_batching(settings),
        ],
        ready_url=f"http://127.0.0.1:{port}/health",
        ready_body=b"ok",
        workloads=(Workload("resnet18", "/predict", "base64-json", "rgb224"),),
        notes="base64 JSON bodies, torchvision ResNet-18 eager, batching on",
    )


@register_server
def litserve_onnx(settings: Settings, port: int) -> ServerCase:
    return ServerCase(
        name="litserve-onnx",
        label="LitServe (same ONNX + preprocessing)",
        peer=True,
        command=[
            str(settings.peers_python),
            str(PEERS_DIR / "litserve_onnx.py"),
            "--port",
            str(port),
            "--bundle",
            str(settings.bundle),
            "--repo",
            str(REPO),
            "--allow-spinning",
            str(int(settings.ort_allow_spinning)),
            *(["--intra-op-threads", str(settings.ort_threads)] if settings.ort_threads else []),
            "--workers",
            str(settings.instances),
            *_litserve_batching(settings),
        ],
        ready_url=f"http://127.0.0.1:{port}/health",
        ready_body=b"ok",
        workloads=(Workload("resnet18", "/predict", "multipart", "rgb224"),),
        notes=f"multipart upload, {settings.bundle.name}/model.onnx, service.imaging decode, "
        f"{settings.instances} worker(s) x {settings.ort_threads or 'default'} ORT thread(s)",
    )


@register_server
def torchserve(settings: Settings, port: int) -> ServerCase:
    return _torchserve(settings, port, workers=None)


@register_server
def torchserve_1worker(settings: Settings, port: int) -> ServerCase:
    """One worker using both cores, instead of one single-model worker per core."""
    return _torchserve(settings, port, workers=1)


def _torchserve(settings: Settings, port: int, *, workers: int | None) -> ServerCase:
    name = "torchserve" if workers is None else f"torchserve-{workers}worker"
    store = settings.work / name / "model-store"
    config = settings.work / name / "config.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    management, metrics = port + 1, port + 2  # checked free by the caller
    config.write_text(
        f"inference_address=http://127.0.0.1:{port}\n"
        f"management_address=http://127.0.0.1:{management}\n"
        f"metrics_address=http://127.0.0.1:{metrics}\n"
        f"model_store={store}\n"
        "load_models=resnet18.mar\n"
        "disable_token_authorization=true\n"
    )
    bin_dir = settings.peers_python.parent

    def archive() -> None:
        subprocess.run(
            [
                str(settings.peers_python),
                str(PEERS_DIR / "torchserve" / "archive.py"),
                "--store",
                str(store),
                "--max-batch-size",
                str(settings.max_batch_size),
                "--max-batch-delay-ms",
                str(round(settings.peer_batch_delay_ms)),
                *(["--workers", str(workers)] if workers else []),
            ],
            cwd=PEERS_DIR / "torchserve",
            check=True,
            timeout=600,
        )

    return ServerCase(
        name=name,
        label="TorchServe 0.12 (image_classifier)" + (f", {workers} worker" if workers else ""),
        peer=True,
        command=[
            str(bin_dir / "torchserve"),
            "--start",
            "--foreground",
            "--ncs",
            "--ts-config",
            str(config),
            "--disable-token-auth",
        ],
        # /ping turns Healthy before the workers have loaded the model; ask the management API
        ready_url=f"http://127.0.0.1:{management}/models/resnet18",
        ready_body=b'"status": "READY"',
        cwd=config.parent,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        prepare=archive,
        workloads=(Workload("resnet18", "/predictions/resnet18", "jpeg", "rgb224"),),
        notes="raw JPEG bodies, standard image_classifier handler, batching on, "
        + (f"{workers} worker" if workers else "default workers (one per core)"),
    )


def _litserve_batching(settings: Settings) -> list[str]:
    return [
        "--max-batch-size",
        str(settings.max_batch_size),
        "--batch-timeout",
        str(settings.peer_batch_delay_ms / 1000),
    ]


def write_blockserve_config(base_config: Path, work: Path, *, batching: bool) -> Path:
    """The base config with gRPC off; without batching every model gets max_batch_size 1.

    The digits weights come from `blockserve train-digits`; when they are absent the model is
    served random-init (same compute), so the benchmark does not depend on training.
    """
    data = yaml.safe_load(base_config.read_text())
    data.setdefault("server", {})["grpc"] = {"enabled": False}
    base_dir = base_config.parent
    for model in data["models"]:
        for key in ("weights", "labels"):  # file references, made absolute for the new location
            if isinstance(model.get(key), str):
                model[key] = str(expand_path(model[key], base_dir))
        if "weights" in model and not Path(model["weights"]).is_file():
            del model["weights"]
        if not batching:
            model.setdefault("batching", {})["max_batch_size"] = 1
    cache_dir = data["server"].get("cache_dir")
    if cache_dir:
        data["server"]["cache_dir"] = str(expand_path(cache_dir, base_dir))
    path = work / "configs" / f"blockserve-{'batched' if batching else 'unbatched'}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
