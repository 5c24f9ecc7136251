"""Kubernetes names and labels of a fleet's objects, and how a pool's GPUs are asked for.

Object names are the Kubernetes actuator's (it looks the Deployments up by them).
GPUs are requested as `nvidia.com/gpu` (whole GPUs) or `nvidia.com/mig-<profile>` (one MIG
slice, the mixed strategy of NVIDIA's device plugin); nodes are chosen by the product label
that GPU feature discovery sets.
"""

from inferplane.config.schema import FleetConfig, PoolSpec, Resources
from inferplane.control.actuators.kubernetes_pods import (
    POOL_LABEL,
    PREFIX,
    SERVE_PORT,
    dns_label,
    pool_object,
)
from inferplane.control.rollout_runtime import with_rollout_pools

CONTROL_PLANE = f"{PREFIX}-control-plane"
FLEET_MOUNT = "/etc/inferplane"
CACHE_MOUNT = "/cache"
__all__ = [
    "CACHE_MOUNT", "CONTROL_PLANE", "FLEET_MOUNT", "GPU_PRODUCTS", "POOL_LABEL", "PREFIX",
    "SERVE_PORT", "control_plane_labels", "dns_label", "gpu_product", "gpu_resource",
    "managed_pools", "pool_labels", "pool_object",
]  # fmt: skip

# nvidia.com/gpu.product values of GPU feature discovery for the planner's catalog names.
GPU_PRODUCTS = {
    "T4": "Tesla-T4",
    "L4": "NVIDIA-L4",
    "A10G": "NVIDIA-A10G",
    "A100-40GB": "NVIDIA-A100-SXM4-40GB",
    "A100-80GB": "NVIDIA-A100-SXM4-80GB",
    "L40S": "NVIDIA-L40S",
    "H100": "NVIDIA-H100-80GB-HBM3",
    "H100-SXM": "NVIDIA-H100-80GB-HBM3",
    "H100-PCIe": "NVIDIA-H100-PCIe",
    "H200": "NVIDIA-H200",
}


def managed_pools(fleet: FleetConfig) -> dict[str, PoolSpec]:
    """Pools the controller runs (external ones are fronted by URL), each with the rollout
    pool `inferplane up` adds beside it: both need a Deployment."""
    pools = with_rollout_pools(fleet).pools
    return {name: spec for name, spec in pools.items() if not spec.is_external}


def pool_labels(pool: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": PREFIX,
        "app.kubernetes.io/component": "model-pool",
        POOL_LABEL: dns_label(pool),
    }


def control_plane_labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": PREFIX, "app.kubernetes.io/component": "control-plane"}


def gpu_resource(resources: Resources) -> tuple[str, int] | None:
    """The extended resource and count a replica asks for; None for a CPU pool."""
    if resources.mig is not None:
        return f"nvidia.com/mig-{resources.mig}", 1
    if resources.gpu != "none":
        return "nvidia.com/gpu", resources.count
    return None


def gpu_product(resources: Resources) -> str | None:
    """The node label value for the pool's GPU type; None for MIG (the resource name picks the
    node) and for GPU names the table does not know (set nodeSelector in values)."""
    if resources.mig is not None:
        return None
    return GPU_PRODUCTS.get(resources.gpu)
