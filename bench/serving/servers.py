"""The servers under test, one registered factory each. A factory turns the run's settings and
a free port block into how to launch the server (`processes.Launch`) and which workloads it
answers, at which URL, with which body kinds."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from bench.serving.processes import Launch
from service.config import expand_path, load_config

REPO = Path(__file__).resolve().parents[2]
PEERS_DIR = REPO / "bench" / "peers"
PROJECT_PYTHON = REPO / ".venv" / "bin" / "python"
BASELINE_COMMIT = "b686421"  # blockserve before the request-path work: the ratio targets' "today"


@dataclass(frozen=True)
class Settings:
    """What every factory may need; filled once per run."""

    work: Path  # scratch: configs, logs, model store, baseline tree
    peers_python: Path  # bench/.venv-peers/bin/python (LitServe, TorchServe)
    shared_peers: Path  # ../shared/peers: Triton and MLServer start / stop scripts
    peers2_work: Path  # their venvs, exported models and logs ($PEERS2_WORK)
    base_config: Path  # blockserve config the variants derive from
    bundle: Path | None  # resnet18 ONNX bundle blockserve serves (LitServe setup 2 reuses it)
    max_batch_size: int  # peers' batch cap, blockserve resnet18's by default
    peer_batch_delay_ms: float
    # blockserve resnet18's engine setup, mirrored by LitServe setup 2
    ort_allow_spinning: bool
    ort_threads: int | None
    instances: int

    @property
    def baseline_tree(self) -> Path:
        return self.work / "baseline" / BASELINE_COMMIT


@dataclass(frozen=True)
class Endpoint:
    workload: str  # workloads.WORKLOADS key
    path: str  # URL path and query
    bodies: tuple[str, ...]  # bodies.BODY_KINDS keys; the first is the one the targets use
    ready_path: str | None = None  # polled before its first point: server ready != model ready


@dataclass(frozen=True)
class ServerCase:
    name: str
    label: str  # table and plot legend
    peer: bool
    launch: Launch
    endpoints: tuple[Endpoint, ...]
    metrics_path: str | None = None  # blockserve's Prometheus endpoint
    notes: str = ""
    # Paused (SIGSTOP) while another server is measured head to head. Not Triton: its Python
    # backend stub and the server time out on their shared-memory locks across a stop and the
    # server aborts (boost::interprocess::lock_exception).
    pausable: bool = True

    def endpoint(self, workload: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.workload == workload), None)


Factory = Callable[[Settings, int], ServerCase]
SERVERS: dict[str, Factory] = {}
PORTS_PER_SERVER = 3  # HTTP + up to two more (gRPC / management, metrics)
# V2 tensor bodies, binary first: the one the targets use
TENSOR_BODIES = ("v2-binary", "v2-json")


def register_server(factory: Factory) -> Factory:
    SERVERS[factory.__name__.replace("_", "-")] = factory
    return factory


def _v2_ready(model: str) -> str:
    return f"/v2/models/{model}/ready"


def _blockserve_endpoints(v2_bodies: tuple[str, ...]) -> tuple[Endpoint, ...]:
    resnet18, digits = _v2_ready("resnet18"), _v2_ready("digits")
    return (
        Endpoint("resnet18-224", "/predict?model=resnet18", ("raw",), resnet18),
        Endpoint("resnet18-jpeg", "/predict?model=resnet18", ("raw",), resnet18),
        Endpoint("resnet18-v2", "/v2/models/resnet18/infer", TENSOR_BODIES, resnet18),
        Endpoint("digits-predict", "/predict?model=digits", ("raw",), digits),
        Endpoint("digits-v2", "/v2/models/digits/infer", v2_bodies, digits),
    )


def blockserve_launch(config: Path, port: int, tree: Path, grpc_port: int = 0) -> Launch:
    """blockserve from source `tree` with the project's venv; `tree` first on the path."""
    return Launch(
        command=[
            str(PROJECT_PYTHON), "-m", "service.cli", "serve", "--config", str(config),
            "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port),
            "--log-level", "warning",
        ],
        ready_url=f"http://127.0.0.1:{port}/health/ready",
        cwd=tree,
        env={"PYTHONPATH": str(tree)},
    )  # fmt: skip


@register_server
def blockserve(settings: Settings, port: int) -> ServerCase:
    config = write_blockserve_config(settings.base_config, settings.work, "blockserve")
    return ServerCase(
        name="blockserve",
        label="blockserve",
        peer=False,
        launch=blockserve_launch(config, port, REPO),
        endpoints=_blockserve_endpoints(v2_bodies=("v2-json",)),
        metrics_path="/metrics",
        notes=f"this checkout, config {config.name}, raw image bodies to /predict",
    )


def blockserve_with_grpc(settings: Settings, port: int) -> ServerCase:
    """`blockserve` with its gRPC server on `port` + 1, as Triton's is (perf_analyzer)."""
    config = write_blockserve_config(
        settings.base_config, settings.work, "blockserve-grpc", grpc=True
    )
    case = blockserve(settings, port)
    launch = blockserve_launch(config, port, REPO, grpc_port=port + 1)
    return replace(case, launch=launch, notes=f"this checkout, config {config.name}, gRPC on")


WORKERS = 2


@register_server
def blockserve_workers(settings: Settings, port: int) -> ServerCase:
    config = write_blockserve_config(
        settings.base_config, settings.work, "blockserve-workers", workers=WORKERS
    )
    return ServerCase(
        name="blockserve-workers",
        label=f"blockserve ({WORKERS} workers)",
        peer=False,
        launch=blockserve_launch(config, port, REPO),
        endpoints=tuple(
            e
            for e in _blockserve_endpoints(v2_bodies=("v2-json",))
            if e.workload in ("digits-predict", "digits-v2")
        ),
        metrics_path=None,  # each worker counts its own requests
        notes=f"config {config.name}: server.workers {WORKERS}, one ONNX Runtime thread each",
    )


@register_server
def blockserve_unbatched(settings: Settings, port: int) -> ServerCase:
    config = write_blockserve_config(
        settings.base_config, settings.work, "blockserve-unbatched", batching=False
    )
    return ServerCase(
        name="blockserve-unbatched",
        label="blockserve (max_batch_size 1)",
        peer=False,
        launch=blockserve_launch(config, port, REPO),
        endpoints=tuple(
            e for e in _blockserve_endpoints(()) if e.workload in ("resnet18-224", "digits-predict")
        ),
        metrics_path="/metrics",
        notes=f"config {config.name}: every model max_batch_size 1",
    )


@register_server
def blockserve_baseline(settings: Settings, port: int) -> ServerCase:
    tree = settings.baseline_tree
    config = config_path(settings.work, "blockserve-baseline")

    def extract() -> None:
        extract_baseline(tree)
        base = tree / "service" / "configs" / "default.yaml"
        write_blockserve_config(base, settings.work, "blockserve-baseline")

    return ServerCase(
        name="blockserve-baseline",
        label=f"blockserve {BASELINE_COMMIT} (baseline)",
        peer=False,
        launch=replace(blockserve_launch(config, port, tree), prepare=extract),
        endpoints=tuple(
            e
            for e in _blockserve_endpoints(v2_bodies=("v2-json",))
            if e.workload in ("digits-predict", "digits-v2")
        ),
        metrics_path="/metrics",
        notes=f"git archive {BASELINE_COMMIT} run with the project's venv, its own default config",
    )


def extract_baseline(tree: Path) -> None:
    """`git archive BASELINE_COMMIT` unpacked into `tree` (once; no worktree, no checkout)."""
    if (tree / "service" / "__init__.py").is_file():
        return
    tree.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(
        ["git", "-C", str(REPO), "archive", BASELINE_COMMIT], stdout=subprocess.PIPE
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True, timeout=300)
    if archive.wait(timeout=60) != 0:
        raise RuntimeError(f"git archive {BASELINE_COMMIT} failed")


def _shared_peer(settings: Settings, port: int, peer: str) -> Launch:
    """Started by ../shared/peers/up_PEER.sh (it detaches the server and prints its pid),
    stopped by down.sh; their venv and the exported models are set up first when missing."""
    scripts = settings.shared_peers
    env = {
        "PEERS2_WORK": str(settings.peers2_work),
        "BLOCKSERVE_ROOT": str(REPO),
        "CLIENT_PY": str(PROJECT_PYTHON),  # the up scripts need no smoke-test client
        "PEERS2_MAX_BATCH": str(settings.max_batch_size),
        "PEERS2_R18_DELAY_US": str(round(settings.peer_batch_delay_ms * 1000)),
    }
    venv, setup = {
        "triton_ort": ("venv-triton", "setup_triton.sh"),
        "mlserver": ("venv-mlserver", "setup_mlserver.sh"),
    }[peer]

    def set_up() -> None:
        steps = [] if (settings.peers2_work / venv / "bin" / "python").exists() else [setup]
        if not (settings.peers2_work / "models" / "digits.onnx").exists():
            steps.append("export_models.sh")
        for step in steps:
            print(f"   running {scripts / step}", flush=True)
            subprocess.run(
                ["bash", str(scripts / step)], cwd=REPO, env={**os.environ, **env},
                check=True, timeout=3600,
            )  # fmt: skip

    return Launch(
        command=["bash", str(scripts / f"up_{peer}.sh"), str(port)],
        ready_url=f"http://127.0.0.1:{port}/v2/health/ready",
        cwd=REPO,
        env=env,
        stop=["bash", str(scripts / "down.sh")],
    )


@register_server
def triton(settings: Settings, port: int) -> ServerCase:
    return ServerCase(
        name="triton",
        label="Triton 2.51 (native ONNX Runtime)",
        peer=True,
        launch=_shared_peer(settings, port, "triton_ort"),
        endpoints=(
            Endpoint("digits-v2", "/v2/models/digits/infer", ("v2-binary", "v2-json")),
            Endpoint("resnet18-v2", "/v2/models/resnet18/infer", TENSOR_BODIES),
            Endpoint("resnet18-jpeg", "/v2/models/resnet18_jpeg/infer", ("v2-bytes-binary",)),
        ),
        notes="tritonserver from nvidia-pytriton 0.7.0, onnxruntime backend, dynamic batching; "
        "resnet18_jpeg = Python-backend Pillow preprocess + resnet18 ensemble, BYTES input; "
        "left running (not paused) while others are measured head to head",
        pausable=False,
    )


@register_server
def mlserver(settings: Settings, port: int) -> ServerCase:
    return ServerCase(
        name="mlserver",
        label="MLServer 1.7.1 (ONNX Runtime)",
        peer=True,
        launch=_shared_peer(settings, port, "mlserver"),
        endpoints=(Endpoint("digits-v2", "/v2/models/digits/infer", ("v2-json",)),),
        notes="custom MLModel on ONNX Runtime, adaptive batching, one inference worker",
    )


@register_server
def litserve_documented(settings: Settings, port: int) -> ServerCase:
    return ServerCase(
        name="litserve-documented",
        label="LitServe (documented: torchvision eager)",
        peer=True,
        launch=Launch(
            command=[
                str(settings.peers_python),
                str(PEERS_DIR / "litserve_documented.py"),
                "--port",
                str(port),
                *_litserve_batching(settings),
            ],
            ready_url=f"http://127.0.0.1:{port}/health",
            ready_body=b"ok",
        ),
        endpoints=(Endpoint("resnet18-224", "/predict", ("base64-json",)),),
        notes="base64 JSON bodies, torchvision ResNet-18 eager, batching on",
    )


@register_server
def litserve_onnx(settings: Settings, port: int) -> ServerCase:
    threads = ["--intra-op-threads", str(settings.ort_threads)] if settings.ort_threads else []
    bundle = settings.bundle or Path("(resnet18 bundle)")
    return ServerCase(
        name="litserve-onnx",
        label="LitServe (same ONNX + preprocessing)",
        peer=True,
        launch=Launch(
            command=[
                str(settings.peers_python),
                str(PEERS_DIR / "litserve_onnx.py"),
                "--port",
                str(port),
                "--bundle",
                str(bundle),
                "--repo",
                str(REPO),
                "--allow-spinning",
                str(int(settings.ort_allow_spinning)),
                *threads,
                "--workers",
                str(settings.instances),
                *_litserve_batching(settings),
            ],
            ready_url=f"http://127.0.0.1:{port}/health",
            ready_body=b"ok",
        ),
        endpoints=(Endpoint("resnet18-224", "/predict", ("multipart",)),),
        notes=f"multipart upload, {bundle.name}/model.onnx, service.imaging decode, "
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
    management, metrics = port + 1, port + 2  # checked free by the caller
    bin_dir = settings.peers_python.parent

    def archive() -> None:
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f"inference_address=http://127.0.0.1:{port}\n"
            f"management_address=http://127.0.0.1:{management}\n"
            f"metrics_address=http://127.0.0.1:{metrics}\n"
            f"model_store={store}\n"
            "load_models=resnet18.mar\n"
            "disable_token_authorization=true\n"
        )
        subprocess.run(
            [
                str(settings.peers_python), str(PEERS_DIR / "torchserve" / "archive.py"),
                "--store", str(store), "--max-batch-size", str(settings.max_batch_size),
                "--max-batch-delay-ms", str(round(settings.peer_batch_delay_ms)),
                *(["--workers", str(workers)] if workers else []),
            ],
            cwd=PEERS_DIR / "torchserve",
            check=True,
            timeout=600,
        )  # fmt: skip

    return ServerCase(
        name=name,
        label="TorchServe 0.12 (image_classifier)" + (f", {workers} worker" if workers else ""),
        peer=True,
        launch=Launch(
            command=[
                str(bin_dir / "torchserve"),
                "--start",
                "--foreground",
                "--ncs",
                "--ts-config",
                str(config),
                "--disable-token-auth",
            ],
            # /ping turns Healthy before the workers have loaded the model; ask management
            ready_url=f"http://127.0.0.1:{management}/models/resnet18",
            ready_body=b'"status": "READY"',
            cwd=config.parent,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
            prepare=archive,
        ),
        endpoints=(Endpoint("resnet18-224", "/predictions/resnet18", ("raw",)),),
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


def write_blockserve_config(
    base_config: Path,
    work: Path,
    name: str,
    *,
    batching: bool = True,
    workers: int = 1,
    grpc: bool = False,
) -> Path:
    """The base config, gRPC off unless `grpc`, as work/configs/NAME.yaml; without batching
    every model gets max_batch_size 1; with several `workers`, every ONNX model one engine
    thread per worker (the processes split the cores instead of each engine taking them all).

    The digits weights come from `blockserve train-digits`; when they are absent the model is
    served random-init (same compute), so the benchmark does not depend on training.
    """
    data = yaml.safe_load(base_config.read_text())
    server = data.setdefault("server", {})
    server["grpc"] = {**server.get("grpc", {}), "enabled": grpc}
    base_dir = base_config.parent
    for model in data["models"]:
        for key in ("weights", "labels"):  # file references, made absolute for the new location
            if isinstance(model.get(key), str):
                model[key] = str(expand_path(model[key], base_dir))
        if "weights" in model and not Path(model["weights"]).is_file():
            del model["weights"]
        if not batching:
            model.setdefault("batching", {})["max_batch_size"] = 1
        if workers > 1 and model.get("format", "onnx") == "onnx":
            model.setdefault("ort", {})["intra_op_threads"] = 1
    if workers > 1:  # the key alone: the baseline's config schema predates it
        data["server"]["workers"] = workers
    cache_dir = data["server"].get("cache_dir")
    if cache_dir:
        data["server"]["cache_dir"] = str(expand_path(cache_dir, base_dir))
    path = config_path(work, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def settings_for(
    base_config: Path,
    work: Path,
    shared_peers: Path,
    peers_python: Path,
    *,
    bundle: Path | None = None,
    peer_batch_delay_ms: float | None = None,
) -> Settings:
    """The run's settings: peers get blockserve resnet18's batch cap and, unless given, its
    batch wait; LitServe setup 2 mirrors its engine setup."""
    batched = load_config(write_blockserve_config(base_config, work, "blockserve"))
    resnet18 = batched.model("resnet18")
    return Settings(
        work=work,
        peers_python=peers_python,
        shared_peers=shared_peers,
        peers2_work=work / "peers2",
        base_config=base_config,
        bundle=bundle,
        max_batch_size=resnet18.batching.max_batch_size,
        peer_batch_delay_ms=(
            resnet18.batching.max_delay_ms if peer_batch_delay_ms is None else peer_batch_delay_ms
        ),
        ort_allow_spinning=resnet18.ort.allow_spinning,
        ort_threads=resnet18.ort.intra_op_threads or batched.server.ort_threads,
        instances=resnet18.instances,
    )


def config_path(work: Path, name: str) -> Path:
    return work / "configs" / f"{name}.yaml"
