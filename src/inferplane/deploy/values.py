"""The chart's values: what an operator may change at install time, with defaults drawn from
the fleet file, and the JSON schema Helm checks them against (values.schema.json).

Values are pydantic models that reject unknown keys, so `--set` in manifests mode and
`helm install --set` refuse the same mistakes. Free-form Kubernetes fragments (resources,
nodeSelector, tolerations, the model cache volume) stay maps: Kubernetes validates those.
"""

import secrets
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferplane import __version__
from inferplane.config.schema import FleetConfig, PoolSpec
from inferplane.deploy.names import gpu_product, gpu_resource, managed_pools

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
CPU_POOL_CPUS = 2  # a CPU pool's request when its `resources.cpu` is unset


class Values(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Image(Values):
    repository: str = Field(default="inferplane", min_length=1)
    tag: str = Field(default=__version__, min_length=1)
    pullPolicy: PullPolicy = "IfNotPresent"


class Admin(Values):
    """The admin key replicas accept; with `key` empty the chart expects the Secret to exist."""

    secretName: str = Field(default="inferplane-admin", min_length=1)
    key: str = ""


class ControlPlane(Values):
    serviceType: ServiceType = "ClusterIP"
    port: int = Field(default=8080, ge=1, le=65535)
    holdTimeoutSeconds: float = Field(default=120, gt=0)
    resources: dict[str, Any] = {"requests": {"cpu": "1", "memory": "1Gi"}}
    nodeSelector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []


class Pool(Values):
    kvCacheMemory: str = Field(default="256MiB", pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$")
    terminationGracePeriodSeconds: int = Field(default=180, ge=1)
    drainTimeoutSeconds: int = Field(default=150, ge=0)
    maxUnavailable: int = Field(default=1, ge=0)
    resources: dict[str, Any] = {}
    nodeSelector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    modelCache: dict[str, Any] = {"emptyDir": {"sizeLimit": "20Gi"}}

    @model_validator(mode="after")
    def _drain_fits(self) -> Self:
        if self.drainTimeoutSeconds >= self.terminationGracePeriodSeconds:
            raise ValueError("drainTimeoutSeconds must be below terminationGracePeriodSeconds: "
                             "the pod is killed when the grace period ends")  # fmt: skip
        return self


class ServiceMonitor(Values):
    enabled: bool = True
    interval: str = Field(default="15s", pattern=r"^\d+(ms|s|m|h)$")


class Toggle(Values):
    enabled: bool = True


class Monitoring(Values):
    labels: dict[str, str] = {}  # what the Prometheus operator selects by, e.g. release
    serviceMonitor: ServiceMonitor = ServiceMonitor()
    prometheusRule: Toggle = Toggle()
    dashboard: Toggle = Toggle()


class Keda(Values):
    enabled: bool = False
    prometheusUrl: str = Field(default="http://prometheus-operated.monitoring.svc:9090")


class ChartValues(Values):
    image: Image = Image()
    admin: Admin = Admin()
    controlPlane: ControlPlane = ControlPlane()
    pools: dict[str, Pool] = {}
    monitoring: Monitoring = Monitoring()
    keda: Keda = Keda()


def pool_defaults(spec: PoolSpec) -> Pool:
    """Requests, GPU limits, node selection and tolerations for one pool. A pool's `cpu` is
    its CPU request and limit (whole cores: the kubelet's static CPU manager pins them)."""
    gpu = gpu_resource(spec.resources)
    cpu = spec.resources.cpu
    limits: dict[str, Any] = {} if cpu is None else {"cpu": cpu_quantity(cpu)}
    if gpu is None:
        request = cpu_quantity(cpu or CPU_POOL_CPUS)
        resources = {"requests": {"cpu": request, "memory": "4Gi"}}
        return Pool(resources={**resources, "limits": limits} if limits else resources)
    name, count = gpu
    product = gpu_product(spec.resources)
    request = "4" if cpu is None else cpu_quantity(cpu)
    return Pool(
        resources={
            "requests": {"cpu": request, "memory": "32Gi"},
            "limits": {**limits, name: count},
        },
        nodeSelector={} if product is None else {"nvidia.com/gpu.product": product},
        tolerations=[GPU_TOLERATION],
    )


def cpu_quantity(cpu: float) -> str:
    """Kubernetes' CPU quantity: `2` for whole cores, `500m` for a part of one."""
    return str(int(cpu)) if float(cpu).is_integer() else f"{round(cpu * 1000)}m"


def default_values(fleet: FleetConfig, admin_key: str | None = None) -> ChartValues:
    """The values a fleet's chart ships with; a fresh random admin key unless one is given."""
    key = secrets.token_urlsafe(24) if admin_key is None else admin_key
    pools = {name: pool_defaults(spec) for name, spec in managed_pools(fleet).items()}
    return ChartValues(admin=Admin(key=key), pools=pools)


def values_schema(fleet: FleetConfig) -> dict[str, Any]:
    """values.schema.json: references inlined (any JSON schema draft reads it), and `pools`
    closed to the fleet's pool names."""
    schema = ChartValues.model_json_schema()
    definitions = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline(schema, definitions)
    names = list(managed_pools(fleet))
    pools = inlined["properties"]["pools"]
    pool_schema = pools.pop("additionalProperties")
    pools["properties"] = {name: pool_schema for name in names}
    pools["additionalProperties"] = False
    return inlined


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return _inline(definitions[ref.rsplit("/", 1)[-1]], definitions)
        return {k: _inline(val, definitions) for k, val in node.items() if k != "default"}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node
