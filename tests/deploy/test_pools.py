"""A pool's Deployment: the serve arguments, GPU and MIG requests, node selection, probes, the
preStop drain inside the grace period, CPU requests and limits with the thread count to match;
its headless Service and disruption budget."""

from pathlib import Path
from typing import Any

import yaml

from inferplane.config.loader import load_fleet, parse_fleet
from inferplane.deploy.chart import build_chart, load_raw, render_manifests
from inferplane.deploy.values import default_values

FULL = Path(__file__).parents[2] / "examples" / "full.yaml"


def _pool(name: str, *sets: str) -> list[dict[str, Any]]:
    fleet = load_fleet(FULL)
    chart = build_chart(fleet, load_raw(str(FULL)), default_values(fleet, "k"))
    return render_manifests(chart, sets)[f"pool-{name}"]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_a_gpu_pool() -> None:
    deployment, service, budget = _pool("chat-primary")
    assert "replicas" not in deployment["spec"]  # the controller owns the count
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    args = container["args"]
    assert args[:2] == ["serve", "demo:small"]
    assert args[args.index("--served-model-name") + 1] == "chat-small"
    assert args[-4:] == ["--host", "0.0.0.0", "--port", "8000"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    drain_s = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert drain_s < pod["terminationGracePeriodSeconds"]
    assert pod["volumes"] == [{"emptyDir": {"sizeLimit": "20Gi"}, "name": "model-cache"}]
    assert service["spec"]["clusterIP"] == "None"
    assert budget["spec"]["maxUnavailable"] == 1


def test_a_mig_pool_asks_for_its_slice() -> None:
    deployment = _pool("chat-canary")[0]
    assert _container(deployment)["resources"]["limits"] == {"nvidia.com/mig-3g.40gb": 1}
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {}


def test_a_cpu_pool_and_overrides() -> None:
    sets = ("pools.embeddings.kvCacheMemory=1GiB",
            "pools.embeddings.modelCache={persistentVolumeClaim: {claimName: models}}")  # fmt: skip
    deployment = _pool("embeddings", *sets)[0]
    container = _container(deployment)
    assert "limits" not in container["resources"]
    assert container["args"][container["args"].index("--kv-cache-memory") + 1] == "1GiB"
    volume = deployment["spec"]["template"]["spec"]["volumes"][0]
    assert volume == {"persistentVolumeClaim": {"claimName": "models"}, "name": "model-cache"}


def test_a_pools_cpu_is_its_request_limit_and_thread_count() -> None:
    raw = ("models: {m: {source: demo:tiny}}\n"
           "pools: {p: {model: m, resources: {cpu: 3}}, q: {model: m}}\n")  # fmt: skip
    fleet = parse_fleet(raw)
    chart = build_chart(fleet, yaml.safe_load(raw), default_values(fleet, "k"))
    pinned = _container(render_manifests(chart, ())["pool-p"][0])
    assert pinned["resources"]["requests"]["cpu"] == "3"
    assert pinned["resources"]["limits"] == {"cpu": "3"}  # whole cores: the CPU manager pins
    env = {item["name"]: item.get("value") for item in pinned["env"]}
    assert env["OMP_NUM_THREADS"] == "3" and env["MKL_NUM_THREADS"] == "3"
    default = _container(render_manifests(chart, ())["pool-q"][0])
    assert {item["name"]: item.get("value") for item in default["env"]}["OMP_NUM_THREADS"] == "2"
