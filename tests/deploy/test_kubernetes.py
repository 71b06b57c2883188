"""The Kubernetes and KServe manifests (deploy/kubernetes/): every kustomization renders with
`kubectl kustomize` and validates offline, the built-in kinds against the Kubernetes schemas of
a pinned version, the custom resources against their vendored CRD schemas; and the objects fit
the server they run: probes on routes and ports it serves, a grace period longer than its drain,
an autoscaler metric the Prometheus adapter exposes from a metric the server exports.

Without kubectl these tests skip, unless BLOCKSERVE_CI_DOCKER is set (CI installs it with
scripts/ci/kubectl.sh): then they fail.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from service.app import PROBE_ROUTERS, create_app
from service.config import RepositoryConfig, default_config_path, load_config
from service.grpc.health import SERVER_SERVICES
from service.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
SCHEMAS = DEPLOY / "schemas"
ADAPTER_CONFIG = DEPLOY / "prometheus-adapter" / "config.yaml"
KUBERNETES_VERSION = "1.31.0"
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): (
        "serving.kserve.io_v1beta1_inferenceservice.json"
    ),
}
KUSTOMIZATIONS = sorted(
    path.parent.relative_to(DEPLOY).as_posix() for path in DEPLOY.rglob("kustomization.yaml")
)
OVERLAYS = [name for name in KUSTOMIZATIONS if name.startswith("overlays/")]
KSERVE_CONTAINER = "kserve-container"  # the predictor container KServe runs and routes to

Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("BLOCKSERVE_CI_DOCKER"):
            pytest.fail("kubectl is missing: CI installs it with scripts/ci/kubectl.sh")
        pytest.skip("kubectl is missing (bash scripts/ci/kubectl.sh installs Debian's)")
    return path


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[Manifest]]:
    """Every kustomization's objects, as `kubectl kustomize` renders them."""
    objects = {}
    for name in KUSTOMIZATIONS:
        result = subprocess.run(
            [kubectl, "kustomize", str(DEPLOY / name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"kubectl kustomize {name} failed:\n{result.stderr}"
        objects[name] = [item for item in yaml.safe_load_all(result.stdout) if item]
    return objects


@pytest.fixture(scope="session")
def served_config() -> RepositoryConfig:
    """The config the image serves: the packaged default (the Dockerfile copies it)."""
    return load_config(default_config_path())


@pytest.fixture(scope="session")
def get_routes(served_config: RepositoryConfig) -> set[str]:
    """The paths the app answers GET on, as its OpenAPI document lists them."""
    paths = create_app(served_config).openapi()["paths"]
    return {path for path, operations in paths.items() if "get" in operations}


@pytest.fixture(scope="session")
def open_get_routes() -> set[str]:
    """The GET paths that answer without a token even with `auth.protect_reads`."""
    return {
        route.path for router in PROBE_ROUTERS for route in router.routes if "GET" in route.methods
    }


@pytest.fixture(scope="session")
def image() -> dict[str, str]:
    """What the runtime image sets up: its user id and BLOCKSERVE_HOME."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    return {
        "uid": re.search(r"useradd .*--uid (\d+)", dockerfile)[1],
        "home": re.search(r"BLOCKSERVE_HOME=(\S+)", dockerfile)[1],
    }


def only(objects: list[Manifest], kind: str) -> Manifest:
    (found,) = [item for item in objects if item["kind"] == kind]
    return found


def pod_spec(manifest: Manifest) -> Manifest:
    """The pod a Deployment or a KServe InferenceService runs."""
    if manifest["kind"] == "InferenceService":
        return manifest["spec"]["predictor"]
    return manifest["spec"]["template"]["spec"]


def served_pods(rendered: dict[str, list[Manifest]]) -> list[tuple[str, Manifest]]:
    return [
        (name, pod_spec(item))
        for name, objects in rendered.items()
        for item in objects
        if item["kind"] in ("Deployment", "InferenceService")
    ]


def server_container(pod: Manifest) -> Manifest:
    (container,) = [c for c in pod["containers"] if c["name"] in ("blockserve", KSERVE_CONTAINER)]
    return container


def env_of(container: Manifest) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


def container_port(container: Manifest, port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as the container's number."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return number


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """A CRD's schema, rejecting unknown fields as the API server's strict field validation
    (kubectl's default) does: every object schema that lists properties allows no others."""
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[api_version, kind]).read_text(encoding="utf-8"))

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(manifest: Manifest) -> list[str]:
    key = (manifest["apiVersion"], manifest["kind"])
    where = f"{manifest['kind']}/{manifest['metadata']['name']}"
    if key in CRD_SCHEMAS:
        return [
            f"{where}: {'.'.join(map(str, error.absolute_path))}: {error.message}"
            for error in crd_validator(*key).iter_errors(manifest)
        ]
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{where}: {'.'.join(map(str, error.absolute_path))}: {error.message}"]
    return []


def adapter_exposed_metrics() -> dict[str, Manifest]:
    """The custom metric names the Prometheus adapter rules expose, each with its rule."""
    exposed = {}
    for rule in yaml.safe_load(ADAPTER_CONFIG.read_text(encoding="utf-8"))["rules"]:
        series = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", rule["seriesQuery"])[0]
        naming = rule["name"]
        pattern = re.compile(naming["matches"])
        # The adapter's default name: the first capture group, else the whole match.
        template = naming.get("as") or ("$1" if pattern.groups == 1 else "$0")
        name = pattern.sub(re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", template), series)
        exposed[name] = {**rule, "series": series}
    return exposed


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_kustomization_renders_valid_objects(rendered, name):
    objects = rendered[name]
    assert objects, f"{name} renders nothing"
    errors = [error for manifest in objects for error in schema_errors(manifest)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("manifest", "misspelt"),
    [
        (
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {"name": "typo"},
                "spec": {"selector": {}, "endpoints": [{"port": "http", "pth": "/metrics"}]},
            },
            "pth",
        ),
        (
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": "typo"},
                "spec": {"predictor": {"containers": [{"name": "c", "imag": "blockserve"}]}},
            },
            "imag",
        ),
    ],
)
def test_the_crd_schemas_reject_unknown_fields(manifest, misspelt):
    errors = schema_errors(manifest)
    assert errors and misspelt in errors[0]


def test_probes_point_at_what_the_server_serves(rendered, get_routes, open_get_routes):
    for name, pod in served_pods(rendered):
        container = server_container(pod)
        env = env_of(container)
        assert env["BLOCKSERVE_HOST"] == "0.0.0.0", f"{name}: the kubelet probes the pod's IP"
        http_port, grpc_port = int(env["BLOCKSERVE_PORT"]), int(env["BLOCKSERVE_GRPC_PORT"])
        for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container[probe_name]
            where = f"{name}: {probe_name}"
            if "httpGet" in probe:
                assert probe["httpGet"]["path"] in get_routes, where
                assert probe["httpGet"]["path"] in open_get_routes, f"{where}: needs no token"
                assert container_port(container, probe["httpGet"]["port"]) == http_port, where
            else:
                assert probe["grpc"]["port"] == grpc_port, where
                assert probe["grpc"].get("service", "") in SERVER_SERVICES, where
        # Liveness must not wait for the models: a model that fails to load is no reason to
        # restart the server.
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live", name
        assert container["startupProbe"]["httpGet"]["path"] == "/health/live", name
        assert "grpc" in container["readinessProbe"], f"{name}: readiness over gRPC health"


def test_the_grace_period_outlasts_the_drain(rendered, served_config):
    server = served_config.server
    for name, pod in served_pods(rendered):
        command = server_container(pod)["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep", name
        drain = float(command[1]) + server.drain_delay_s + server.shutdown_timeout_s
        assert pod["terminationGracePeriodSeconds"] > drain, name


def test_the_autoscaler_metric_is_one_the_adapter_exposes_from_the_server(rendered):
    exposed = adapter_exposed_metrics()
    families = {family.name: family.type for family in Metrics().registry.collect()}
    for name in OVERLAYS:
        hpa = only(rendered[name], "HorizontalPodAutoscaler")
        deployment = only(rendered[name], "Deployment")
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"], name
        pod_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if "pods" in m]
        assert pod_metrics, f"{name}: no custom per-pod metric"
        for metric in pod_metrics:
            assert metric in exposed, f"{name}: {metric} is not exposed by {ADAPTER_CONFIG}"
            rule = exposed[metric]
            # A per-pod value, summed as it stands: the series must be a pod-labelled gauge.
            assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
            assert families.get(rule["series"]) == "gauge", rule["series"]


def test_the_objects_of_an_overlay_select_each_other(rendered, get_routes):
    for name in OVERLAYS:
        objects = rendered[name]
        deployment, service = only(objects, "Deployment"), only(objects, "Service")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        container = server_container(pod_spec(deployment))

        def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
            return bool(selector) and selector.items() <= labels.items()

        assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels), name
        assert selects(service["spec"]["selector"], pod_labels), name
        pdb = only(objects, "PodDisruptionBudget")
        assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels), name
        env = env_of(container)
        service_ports = {
            port["name"]: container_port(container, port["targetPort"])
            for port in service["spec"]["ports"]
        }
        assert sorted(service_ports.values()) == sorted(
            [int(env["BLOCKSERVE_PORT"]), int(env["BLOCKSERVE_GRPC_PORT"])]
        ), name
        monitor = only(objects, "ServiceMonitor")
        assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        for endpoint in monitor["spec"]["endpoints"]:
            assert service_ports[endpoint["port"]] == int(env["BLOCKSERVE_PORT"]), name
            assert endpoint["path"] in get_routes, name


def test_pods_run_as_the_image_user_on_a_read_only_root(rendered, image):
    for name, pod in served_pods(rendered):
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert str(security["runAsUser"]) == image["uid"], name
        for container in [*pod["initContainers"], *pod["containers"]]:
            where = f"{name}: {container['name']}"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), where
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), where


def test_the_home_volume_is_writable_and_seeded_from_the_image(rendered, image):
    home = image["home"]
    for name, pod in served_pods(rendered):
        server = server_container(pod)
        mounts = {mount["mountPath"]: mount["name"] for mount in server["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for path in (home, "/tmp"):
            assert path in mounts, f"{name}: {path} is not writable"
            assert "emptyDir" in volumes[mounts[path]], f"{name}: {path}"
        seeded = [
            container
            for container in pod["initContainers"]
            for mount in container["volumeMounts"]
            if mount["name"] == mounts[home]
            and f"cp -R {home}/. {mount['mountPath']}/" in " ".join(container["command"])
        ]
        assert seeded, f"{name}: no init container copies the image's {home} into its volume"
        assert seeded[0]["image"] == server["image"], name


def test_the_gpu_overlay_runs_the_gpu_image_on_a_gpu(rendered):
    for name in OVERLAYS:
        pod = pod_spec(only(rendered[name], "Deployment"))
        gpus = server_container(pod)["resources"]["limits"].get("nvidia.com/gpu")
        images = {container["image"] for container in [*pod["initContainers"], *pod["containers"]]}
        if name == "overlays/gpu":
            assert int(gpus) >= 1
            assert images == {"blockserve:gpu"}
        else:
            assert gpus is None, name
            assert not any(image.endswith(":gpu") for image in images), name


def test_kserve_runs_the_deployment_pod_as_a_v2_custom_predictor(rendered):
    service = only(rendered["kserve"], "InferenceService")
    predictor = pod_spec(service)
    (container,) = predictor["containers"]
    assert container["name"] == KSERVE_CONTAINER
    assert env_of(container)["PROTOCOL"] == "v2"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = env_of(container)
    assert list(ports.values()) == [int(env["BLOCKSERVE_PORT"]), int(env["BLOCKSERVE_GRPC_PORT"])]
    assert "grpc" in list(ports)[1], "KServe marks a port as gRPC by its name"
    # Apart from KServe's container name and protocol, the pod of the CPU overlay.
    deployment_pod = copy.deepcopy(pod_spec(only(rendered["overlays/cpu"], "Deployment")))
    (expected,) = deployment_pod.pop("containers")
    expected["name"] = KSERVE_CONTAINER
    expected["env"] = [{"name": "PROTOCOL", "value": "v2"}, *expected["env"]]
    assert container == expected
    for field, value in deployment_pod.items():
        assert predictor[field] == value, field
