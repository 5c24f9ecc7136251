"""What one replica asks of a Ray cluster, and why a cluster cannot give it.

A pool's `resources` become one placement-group bundle: its CPUs, its whole GPUs, the GPU type
(Ray's `accelerator_type:TYPE` label, or a custom resource named as the type that the nodes
declare) and its memory. When the bundle has waited for a node, `unplaced_reason` says why in
the words an operator acts on: no node has that much at all, or none has it free now. Pure: the
nodes' resources are passed in as Ray reports them (name -> amount, absent meaning none).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from inferplane.config.schema import Resources

GpuTypeAs = Literal["accelerator_type", "resource"]
ACCELERATOR_PREFIX = "accelerator_type:"
# Ray's accelerator label is 1 per node whatever its GPU count: each replica takes a sliver.
LABEL_SHARE = 0.001
GIB = 1024**3
NodeResources = Mapping[str, Mapping[str, float]]  # node id -> resource name -> amount


@dataclass(frozen=True)
class Bundle:
    """One replica's reservation on one node."""

    cpus: float
    gpus: int = 0
    gpu_type: str | None = None  # None: any GPU (or no GPU at all)
    type_resource: str | None = None  # the resource that names the type
    type_amount: float = 0.0
    memory_bytes: int | None = None

    @property
    def resources(self) -> dict[str, float]:
        """The bundle as Ray takes it in a placement group."""
        wanted: dict[str, float] = {"CPU": self.cpus}
        if self.gpus:
            wanted["GPU"] = float(self.gpus)
        if self.type_resource is not None:
            wanted[self.type_resource] = self.type_amount
        if self.memory_bytes is not None:
            wanted["memory"] = float(self.memory_bytes)
        return wanted

    @property
    def custom(self) -> dict[str, float]:
        """What the replica's actor asks beyond CPUs, GPUs and memory (the type resource)."""
        return {} if self.type_resource is None else {self.type_resource: self.type_amount}

    def describe(self) -> str:
        """In words: `1 x H100, 1 CPU, 8 GiB memory`."""
        parts = []
        if self.gpus:
            parts.append(f"{self.gpus} x {self.gpu_type or 'GPU'}")
        parts.append(f"{self.cpus:g} CPU")
        if self.memory_bytes is not None:
            parts.append(f"{self.memory_bytes / GIB:g} GiB memory")
        return ", ".join(parts)


def bundle_for(resources: Resources, gpu_type_as: GpuTypeAs = "accelerator_type") -> Bundle:
    """A pool's resources as a bundle; ValueError for what Ray cannot reserve (a MIG slice)."""
    if resources.mig is not None:
        raise ValueError(
            f"a MIG slice ({resources.mig}) is not a Ray resource: run this pool with "
            "backend: local, or ask for whole GPUs (resources: {gpu: TYPE, count: N})"
        )
    memory = None if resources.memory_gib is None else int(resources.memory_gib * GIB)
    if resources.gpu == "none":
        return Bundle(resources.cpus, memory_bytes=memory)
    gpu_type = resources.gpu
    if gpu_type_as == "accelerator_type":
        name, amount = f"{ACCELERATOR_PREFIX}{gpu_type}", LABEL_SHARE
    else:
        name, amount = gpu_type, float(resources.count)
    return Bundle(resources.cpus, resources.count, gpu_type, name, amount, memory)


def fits(bundle: Bundle, node: Mapping[str, float]) -> bool:
    """Whether a node with these resources (total or free) can hold the bundle."""
    # A hair of tolerance: Ray reports amounts in fixed point (0.999 of a label after a share).
    return all(node.get(name, 0.0) + 1e-9 >= amount for name, amount in bundle.resources.items())


def unplaced_reason(bundle: Bundle, available: NodeResources, total: NodeResources) -> str:
    """Why no node takes the bundle now, or "" when one could (Ray is placing it)."""
    wanted = bundle.describe()
    if not total:
        return f"no node alive in the Ray cluster for {wanted}"
    if not any(fits(bundle, node) for node in total.values()):
        return f"no node has {wanted} ({len(total)} nodes: {_largest(bundle, total)})"
    if not any(fits(bundle, node) for node in available.values()):
        return f"no node with {wanted} free ({_free(bundle, available, len(total))})"
    return ""


def _largest(bundle: Bundle, nodes: NodeResources) -> str:
    """The most any one node has of what is scarcest (what a node type would need)."""
    if bundle.type_resource is not None and not any(
        bundle.type_resource in n for n in nodes.values()
    ):
        return f"none offers {bundle.gpu_type}"
    name = "GPU" if bundle.gpus else "CPU"
    return f"at most {max(node.get(name, 0.0) for node in nodes.values()):g} {name} on one"


def _free(bundle: Bundle, available: NodeResources, alive: int) -> str:
    name = "GPU" if bundle.gpus else "CPU"
    free = sum(node.get(name, 0.0) for node in available.values())
    return f"{free:g} {name} free across {alive} nodes"
