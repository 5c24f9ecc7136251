"""Inventories for placement: GPUs declared in the fleet file or read from NVML, and the
host's CPU cores declared (`cpu: {cores, numa_nodes}`) or read from this machine.

A declared entry names a catalog GPU ("H100" matches H100-SXM and H100-PCIe, which have the
same memory; "A100" is ambiguous and must say A100-40GB or A100-80GB) or gives memory_gib.
Declared GPUs are numbered in file order, as CUDA would number them on one machine.

This machine's cores are those this process may run on (its affinity: a container's cpuset,
a taskset), grouped by NUMA node as /sys/devices/system/node lists them, and within a node by
physical core, so the hyperthreads of one core sit next to each other and a replica of two
cores gets one core's two threads before it gets half of another's. A control group's CPU
quota below that count (a container given 2 CPUs of a 64-core node) keeps that many whole
cores of them, in the same order: threads beyond the quota would only wait for it.
"""

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferplane.config.schema import CpuConfig, GpuInventory
from inferplane.control.cgroup import cpu_quota
from inferplane.planner.gpus import GpuSpec, gpu_catalog

_GIB = 1024**3
# GPUs whose MIG profiles are the 80 GB ones mig.py models.
MIG_CAPABLE = ("A100-80GB", "H100-PCIe", "H100-SXM")


@dataclass(frozen=True)
class GpuDevice:
    """One GPU: its CUDA index, name and memory; `mig` when it is (to be) split into slices."""

    index: int
    name: str
    memory_bytes: int
    mig_capable: bool = False
    mig: bool = False


def catalog_matches(name: str) -> list[GpuSpec]:
    """Catalog GPUs a name means: the exact one, or those it is a family prefix of."""
    lowered = name.lower()
    catalog = gpu_catalog().values()
    exact = [spec for spec in catalog if spec.name.lower() == lowered]
    return exact or [spec for spec in catalog if spec.name.lower().startswith(lowered + "-")]


def gpu_matches(kind: str, device_name: str) -> bool:
    """Whether a pool's `resources.gpu` asks for a device of this name.

    Names match when the words of one are all in the other: H100 matches H100-SXM and
    NVML's "H100 80GB HBM3"; A100-80GB matches "A100-SXM4-80GB"; L4 does not match L40S.
    """
    wanted, offered = _words(kind), _words(device_name)
    return wanted <= offered or offered <= wanted


def _words(name: str) -> set[str]:
    return set(name.lower().replace("-", " ").split())


def is_mig_capable(name: str) -> bool:
    specs = catalog_matches(name)
    return bool(specs) and all(spec.name in MIG_CAPABLE for spec in specs)


def declared_inventory(entries: Sequence[GpuInventory]) -> list[GpuDevice]:
    devices: list[GpuDevice] = []
    for entry in entries:
        memory = _memory_bytes(entry)
        capable = is_mig_capable(entry.gpu)
        if entry.mig and not capable:
            raise ValueError(
                f"inventory GPU {entry.gpu!r} cannot be split with the 80 GB MIG profiles: "
                f"set mig: false, or use one of {', '.join(MIG_CAPABLE)}"
            )
        for _ in range(entry.count):
            devices.append(GpuDevice(len(devices), entry.gpu, memory, capable, entry.mig))
    return devices


def _memory_bytes(entry: GpuInventory) -> int:
    if entry.memory_gib is not None:
        return int(entry.memory_gib * _GIB)
    specs = catalog_matches(entry.gpu)
    sizes = {spec.memory_bytes for spec in specs}
    if len(sizes) == 1:
        return sizes.pop()
    if not specs:
        known = ", ".join(gpu_catalog())
        raise ValueError(f"unknown GPU {entry.gpu!r}: use one of {known}, or give memory_gib")
    names = " or ".join(spec.name for spec in specs)
    raise ValueError(f"GPU {entry.gpu!r} is ambiguous: say {names}, or give memory_gib")


def nvml_inventory() -> list[GpuDevice]:
    """The GPUs NVML sees on this machine; empty without a driver or without nvidia-ml-py."""
    try:
        import pynvml  # noqa: PLC0415  (optional: only machines with a GPU have a driver)

        nvml: Any = pynvml
        nvml.nvmlInit()
    except Exception:  # ImportError, OSError on load, NVMLError without a driver
        return []
    try:
        return [_nvml_device(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
    finally:
        nvml.nvmlShutdown()


def _nvml_device(nvml: Any, index: int) -> GpuDevice:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = nvml.nvmlDeviceGetName(handle)
    name = name.decode() if isinstance(name, bytes) else str(name)
    memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
        capable, enabled = True, bool(current)
    except nvml.NVMLError:  # boards without MIG say "not supported"
        capable, enabled = False, False
    return GpuDevice(index, name.removeprefix("NVIDIA ").strip(), memory, capable, enabled)


SYSTEM = Path("/sys/devices/system")


@dataclass(frozen=True)
class CpuHost:
    """The logical CPUs replicas may be pinned to, per NUMA node, each in placement order."""

    nodes: tuple[tuple[int, ...], ...]
    source: str = "this host"

    @property
    def cpus(self) -> tuple[int, ...]:
        return tuple(cpu for node in self.nodes for cpu in node)

    def describe(self) -> str:
        """In words: `2 cores`, `32 cores in 2 NUMA nodes`."""
        numa = f" in {len(self.nodes)} NUMA nodes" if len(self.nodes) > 1 else ""
        return f"{len(self.cpus)} cores{numa}"


def declared_cpus(cores: int, numa_nodes: int = 1) -> CpuHost:
    """A declared host: cores 0..N-1 split into `numa_nodes` nodes of consecutive cores."""
    if not 1 <= numa_nodes <= cores:
        raise ValueError(f"a host of {cores} cores cannot have {numa_nodes} NUMA nodes")
    bounds = [cores * index // numa_nodes for index in range(numa_nodes + 1)]
    nodes = tuple(tuple(range(bounds[i], bounds[i + 1])) for i in range(numa_nodes))
    return CpuHost(nodes, "declared")


def fleet_cpus(config: CpuConfig) -> CpuHost:
    """The host a fleet file plans for: its declared cores, else this machine's."""
    if config.cores is None:
        return host_cpus()
    return declared_cpus(config.cores, config.numa_nodes or 1)


def host_cpus(
    system: Path = SYSTEM, allowed: Sequence[int] | None = None, quota: float | None = None
) -> CpuHost:
    """This machine's cores that this process may use, by NUMA node, cut to its control
    group's CPU quota (`system`, `allowed` and `quota` stand in for /sys/devices/system, the
    affinity mask and the quota in tests; the quota is read only for this machine's mask)."""
    mine = set(os.sched_getaffinity(0) if allowed is None else allowed)
    if allowed is None and quota is None:
        quota = cpu_quota()
    nodes = []
    for listed in _numa_nodes(system):
        node = [cpu for cpu in listed if cpu in mine]
        if node:
            nodes.append(node)
    placed = {cpu for node in nodes for cpu in node}
    if mine - placed:  # no NUMA listing (or cores it misses): one node of what is left
        nodes.append(sorted(mine - placed))
    ordered = tuple(tuple(sorted(node, key=lambda cpu: _core_key(system, cpu))) for node in nodes)
    return _within_quota(CpuHost(ordered), quota)


def _within_quota(host: CpuHost, quota: float | None) -> CpuHost:
    """The first whole cores the quota pays for (at least one), when it pays for fewer than
    the host lists."""
    visible = len(host.cpus)
    if quota is None or quota >= visible:
        return host
    keep = set(host.cpus[: max(1, math.floor(quota + 1e-9))])
    nodes = tuple(kept for node in host.nodes if (kept := tuple(c for c in node if c in keep)))
    return CpuHost(nodes, f"this host (a CPU quota of {quota:g} of its {visible} cores)")


def parse_cpu_list(text: str) -> list[int]:
    """The kernel's CPU list format: `0-3,8-11` -> [0, 1, 2, 3, 8, 9, 10, 11]."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def format_cpu_list(cpus: Sequence[int]) -> str:
    """The other way: [0, 1, 2, 5] -> `0-2,5`."""
    ranges: list[str] = []
    ordered = sorted(cpus)
    start = 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or ordered[index] != ordered[index - 1] + 1:
            first, last = ordered[start], ordered[index - 1]
            ranges.append(str(first) if first == last else f"{first}-{last}")
            start = index
    return ",".join(ranges)


def _numa_nodes(system: Path) -> list[list[int]]:
    found = []
    for path in (system / "node").glob("node[0-9]*"):
        try:
            found.append((int(path.name[4:]), parse_cpu_list(_read(path / "cpulist"))))
        except (OSError, ValueError):
            continue
    return [cpus for _, cpus in sorted(found)]


def _core_key(system: Path, cpu: int) -> tuple[int, int, int]:
    """Package, physical core, CPU: a core's hyperthreads sort next to each other."""
    topology = system / "cpu" / f"cpu{cpu}" / "topology"
    try:
        return int(_read(topology / "physical_package_id")), int(_read(topology / "core_id")), cpu
    except (OSError, ValueError):
        return 0, cpu, cpu


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()
