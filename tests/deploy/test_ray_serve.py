"""blockserve as a Ray Serve application (`service/ray_serve.py`) on a local Ray cluster of two
nodes (a head and a worker, each a `ray start` process, every port on 127.0.0.1), reached
through Ray's HTTP proxy: the REST API answers as blockserve does, a replica killed under load
is replaced while the other keeps answering, and load above the target adds a replica."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from local_ports import free_port
from PIL import Image

try:
    import ray
    import ray._private.services as ray_services
    from ray import serve
except ImportError:
    if os.environ.get("BLOCKSERVE_CI_DOCKER") == "1":
        pytest.fail("ray is not installed: CI installs the `ray` extra", pytrace=False)
    pytest.skip("needs the `ray` extra: pip install -e '.[ray]'", allow_module_level=True)

from models.digits import load_digits_split, to_model_input
from service.ray_serve import BlockserveArgs, build_app

pytestmark = [pytest.mark.ray, pytest.mark.slow]

APP = "blockserve"
REPLICA_PREFIX = f"SERVE_REPLICA::{APP}#{APP}#"
# `ray start` swaps a loopback address for the machine's external one, and Ray's servers then
# listen on every interface; this `ray start` keeps 127.0.0.1, as Ray's own one-machine
# multi-node test clusters (`ray.cluster_utils`) do.
LOOPBACK_RAY_START = """
import sys
import ray._private.services as services
from ray.scripts.scripts import main
services.resolve_ip_for_localhost = lambda host: host
sys.argv = ["ray", "start", *sys.argv[1:]]
main()
"""
START_TIMEOUT_S = 120
REPLACEMENT_TIMEOUT_S = 120
LOAD_MAX_REQUESTS = 4000
LOAD_MAX_SECONDS = 180
LOAD_CLIENTS = 4
REQUESTS_AFTER_REPLACEMENT = 200


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` (state owned by other processes) until it holds, or fail naming it."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def processes_in_sessions(sessions: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) in sessions:
                    found.append(int(entry))
            except ProcessLookupError:
                pass
    return found


def stop_sessions(sessions: set[int]) -> None:
    """End every process of `sessions`: SIGTERM, then SIGKILL what is left after a while."""
    for signum, grace_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):
        for pid in processes_in_sessions(sessions):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + grace_s
        while processes_in_sessions(sessions) and time.monotonic() < deadline:
            time.sleep(0.1)
    left = processes_in_sessions(sessions)
    assert not left, f"Ray processes still running: {left}"


# /proc/net/tcp{,6} local addresses: 127.0.0.1, ::ffff:127.0.0.1, ::1 (hex, kernel byte order).
LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
TCP_LISTEN = "0A"


def listening_addresses(pids: list[int]) -> set[str]:
    """The local addresses (hex IP:port) of the TCP sockets `pids` listen on."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(FileNotFoundError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == TCP_LISTEN and fields[9] in inodes:
                addresses.add(fields[1])
    return addresses


@dataclass(frozen=True)
class RayCluster:
    address: str
    # Every process of the cluster runs in the session of the `ray start` that made its node:
    # stopping them by session ends this cluster's processes and nobody else's (`ray stop`
    # would end every Ray process of the machine's users).
    sessions: set[int]


def start_node(arguments: list[str], env: dict[str, str], sessions: set[int]) -> None:
    """Run a loopback `ray start` in a new session, added to `sessions` before it starts."""
    command = [sys.executable, "-c", LOOPBACK_RAY_START, *arguments]
    node = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sessions.add(node.pid)
    output, _ = node.communicate(timeout=START_TIMEOUT_S)
    assert node.returncode == 0, f"ray start failed:\n{output}"


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> Iterator[RayCluster]:
    temp_dir = tmp_path_factory.mktemp("ray")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(temp_dir))
    # Replicas and the proxy report ongoing requests to the autoscaler every 0.5 s (Ray: 10).
    env["RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S"] = "0.5"
    env["RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S"] = "0.5"
    port = free_port()
    sessions: set[int] = set()

    def node_options() -> list[str]:
        return [
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp_dir}",
            "--num-cpus=1",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
        ]

    head = ["--head", f"--port={port}", "--include-dashboard=false"]
    head.append(f"--ray-client-server-port={free_port()}")
    try:
        start_node([*head, *node_options()], env, sessions)
        start_node([f"--address=127.0.0.1:{port}", *node_options()], env, sessions)
        yield RayCluster(f"127.0.0.1:{port}", sessions)
    finally:
        stop_sessions(sessions)


@pytest.fixture(scope="module")
def replica_config(tmp_path_factory, digits_weights) -> Path:
    """Only the digits model, one engine and one decode thread per replica."""
    path = tmp_path_factory.mktemp("ray-config") / "digits.yaml"
    config = {
        "server": {"cache_dir": str(path.parent / "bundles"), "decode_threads": 1},
        "models": [
            {
                "name": "digits",
                "arch": "resnet_digits",
                "weights": str(digits_weights),
                "batching": {"max_batch_size": 16, "max_delay_ms": 2, "max_queue": 256},
                "ort": {"intra_op_threads": 1},
                "preprocess": {"channels": "gray", "resize": 8, "crop": 8},
                "labels": [str(digit) for digit in range(10)],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def application_running() -> bool:
    """Whether the application runs (a failed deployment fails the test at once)."""
    application = serve.status().applications.get(APP)
    if application is None:
        return False
    assert application.status != "DEPLOY_FAILED", application.message
    return application.status == "RUNNING"


def deploy(args: dict[str, object]) -> None:
    """Deploy the application with `args` (replicas of half a CPU) and wait until it runs."""
    target = serve.RunTarget(build_app({**args, "num_cpus": 0.5}), name=APP, route_prefix="/")
    serve.run_many([target], wait_for_applications_running=False)
    wait_until(application_running, START_TIMEOUT_S, "the application to run")


@pytest.fixture(scope="module")
def proxy_url(ray_cluster, replica_config) -> Iterator[str]:
    """Two replicas behind Ray's HTTP proxy on the head node; the proxy's base URL."""
    http_port = free_port()

    def replica_grpc_on_loopback() -> None:
        """Serve replicas answer each other over gRPC on every interface (`[::]:0`, fixed in
        Ray's replica.py); in this job's worker processes that server takes 127.0.0.1."""
        from ray._common.tls_utils import add_port_to_grpc_server
        from ray.serve._private import replica

        def on_loopback(server: object, address: str) -> int:
            return add_port_to_grpc_server(server, address.replace("[::]", "127.0.0.1"))

        replica.add_port_to_grpc_server = on_loopback

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray_services, "resolve_ip_for_localhost", lambda host: host)
        ray.init(
            address=ray_cluster.address,
            logging_level="WARNING",
            log_to_driver=False,
            runtime_env={"worker_process_setup_hook": replica_grpc_on_loopback},
        )
    try:
        serve.start(
            http_options={"host": "127.0.0.1", "port": http_port}, proxy_location="HeadOnly"
        )
        deploy({"config_path": replica_config, "min_replicas": 2, "max_replicas": 2})
        yield f"http://127.0.0.1:{http_port}"
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Ten held-out digits (uint8 8x8) and their labels."""
    split = load_digits_split()
    return split.test_images[:10], split.test_labels[:10]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def predict(client: httpx.Client, url: str, pixels: np.ndarray) -> httpx.Response:
    headers = {"Content-Type": "image/png"}
    return client.post(f"{url}/predict?top_k=1", content=png(pixels), headers=headers)


def top_label(response: httpx.Response) -> str:
    return response.json()["predictions"][0][0]["label"]


def replica_ids() -> set[str]:
    names = ray.util.list_named_actors(all_namespaces=True)
    return {
        entry["name"].removeprefix(REPLICA_PREFIX)
        for entry in names
        if entry["name"].startswith(REPLICA_PREFIX)
    }


def replica_pid(replica_id: str) -> int:
    replica = ray.get_actor(REPLICA_PREFIX + replica_id, namespace="serve")
    return ray.get(replica.__ray_call__.remote(lambda _: os.getpid()), timeout=30)


def running_replicas() -> int:
    deployment = serve.status().applications[APP].deployments[APP]
    return deployment.replica_states.get("RUNNING", 0)


def test_rest_api_answers_through_the_ray_proxy(proxy_url, digits):
    images, labels = digits
    with httpx.Client(timeout=30) as client:
        predicted = [
            predict(client, proxy_url, image).json()["predictions"][0][0]["label"]
            for image in images
        ]
        models = client.get(f"{proxy_url}/models").json()["models"]
        ready = client.get(f"{proxy_url}/v2/health/ready")
        tensor = to_model_input(images[:1]).numpy()
        infer = client.post(
            f"{proxy_url}/v2/models/digits/infer",
            json={
                "inputs": [
                    {
                        "name": "input",
                        "shape": list(tensor.shape),
                        "datatype": "FP32",
                        "data": tensor.ravel().tolist(),
                    }
                ]
            },
        )
        not_an_image = client.post(
            f"{proxy_url}/predict", content=b"not an image", headers={"Content-Type": "image/png"}
        )
        unknown_model = client.post(f"{proxy_url}/v2/models/nope/infer", json={"inputs": []})

    assert predicted == [str(label) for label in labels]
    assert [(model["name"], model["state"]) for model in models] == [("digits", "READY")]
    assert ready.status_code == 200
    assert infer.status_code == 200
    logits = infer.json()["outputs"][0]
    assert logits["shape"] == [1, 10]
    assert int(np.argmax(logits["data"])) == labels[0]
    assert not_an_image.status_code == 400
    assert not_an_image.headers["content-type"] == "application/json"
    assert "cannot identify image data" in not_an_image.json()["error"]
    assert unknown_model.status_code == 404
    assert "unknown model 'nope'" in unknown_model.json()["error"]


def test_every_cluster_process_listens_on_loopback_only(ray_cluster, proxy_url):
    addresses = listening_addresses(processes_in_sessions(ray_cluster.sessions))
    proxy_port = f"{int(proxy_url.rsplit(':', 1)[1]):04X}"

    assert any(address.endswith(f":{proxy_port}") for address in addresses)
    assert {address.rsplit(":", 1)[0] for address in addresses} <= LOOPBACK_HEX, addresses


@dataclass(frozen=True)
class Answer:
    started: float
    finished: float
    status: int | None  # None: no HTTP answer
    detail: str


class Load:
    """`LOAD_CLIENTS` clients posting digits in a loop, bounded in count and time."""

    def __init__(self, url: str, image: np.ndarray, label: str) -> None:
        self.url, self.image, self.label = url, image, label
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + LOAD_MAX_SECONDS

    def client(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                with self.lock:
                    if len(self.answers) >= LOAD_MAX_REQUESTS:
                        return
                started = time.monotonic()
                try:
                    response = predict(client, self.url, self.image)
                    status, detail = response.status_code, response.text
                    if (
                        status == 200
                        and response.json()["predictions"][0][0]["label"] != self.label
                    ):
                        status, detail = None, f"wrong label: {detail}"
                except httpx.HTTPError as error:
                    status, detail = None, repr(error)
                with self.lock:
                    self.answers.append(Answer(started, time.monotonic(), status, detail))

    def count(self, condition: Callable[[Answer], bool] = lambda _: True) -> int:
        with self.lock:
            return sum(1 for answer in self.answers if condition(answer))


def test_a_killed_replica_is_replaced_while_requests_keep_succeeding(proxy_url, digits):
    images, labels = digits
    before = replica_ids()
    assert len(before) == 2 and running_replicas() == 2
    victim = sorted(before)[0]
    pid = replica_pid(victim)
    load = Load(proxy_url, images[0], str(labels[0]))

    with ThreadPoolExecutor(LOAD_CLIENTS) as clients:
        for _ in range(LOAD_CLIENTS):
            clients.submit(load.client)
        wait_until(lambda: load.count() >= 50, 60, "50 answers before the kill")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: victim not in replica_ids(), REPLACEMENT_TIMEOUT_S, "the kill noticed")
        noticed_at = time.monotonic()
        wait_until(lambda: len(replica_ids()) == 2, REPLACEMENT_TIMEOUT_S, "a new replica")
        wait_until(lambda: running_replicas() == 2, REPLACEMENT_TIMEOUT_S, "2 RUNNING replicas")
        replaced_at = time.monotonic()
        answered = load.count()
        wait_until(
            lambda: load.count() >= answered + REQUESTS_AFTER_REPLACEMENT,
            60,
            f"{REQUESTS_AFTER_REPLACEMENT} answers after the replacement",
        )
        load.stop.set()

    print(
        f"\nreplica {victim} (pid {pid}) killed: gone from Ray after "
        f"{noticed_at - killed_at:.1f} s; {replica_ids() - before} RUNNING in its place after "
        f"{replaced_at - killed_at:.1f} s; {len(load.answers)} requests"
    )
    in_flight = [a for a in load.answers if a.started < killed_at < a.finished]
    after_kill = [a for a in load.answers if a.started >= killed_at]
    failed_in_flight = [a for a in in_flight if a.status != 200]
    failed_after = [a for a in after_kill if a.status != 200]
    print(f"in flight at the kill: {len(in_flight)}, failed: {failed_in_flight}")
    assert len(replica_ids() - before) == 1
    assert len(after_kill) >= REQUESTS_AFTER_REPLACEMENT
    assert failed_after == []
    # Those the killed replica held: Ray's proxy answers them itself.
    assert all((a.status, a.detail) == (500, "Internal Server Error") for a in failed_in_flight)


def test_ongoing_requests_above_the_target_add_a_replica(proxy_url, replica_config, digits):
    images, labels = digits
    serve.delete(APP)
    deploy(
        {
            "config_path": replica_config,
            "min_replicas": 1,
            "max_replicas": 2,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 0,
        }
    )
    assert running_replicas() == 1
    load = Load(proxy_url, images[0], str(labels[0]))

    with ThreadPoolExecutor(LOAD_CLIENTS) as clients:
        for _ in range(LOAD_CLIENTS):
            clients.submit(load.client)
        started = time.monotonic()
        wait_until(lambda: running_replicas() == 2, REPLACEMENT_TIMEOUT_S, "a second replica")
        scaled_after = time.monotonic() - started
        load.stop.set()

    print(
        f"\n{LOAD_CLIENTS} clients, target 1 ongoing request: 2 replicas after {scaled_after:.1f} s"
    )
    assert [a for a in load.answers if a.status != 200] == []


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas (2) is below min_replicas (3)"),
        ({"replicas": 2}, "replicas\n  Extra inputs are not permitted"),
        ({"target_ongoing_requests": 0}, "greater than 0"),
    ],
)
def test_bad_application_arguments_are_named(args, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        BlockserveArgs.model_validate(args)
