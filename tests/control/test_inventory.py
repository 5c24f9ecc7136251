import os
from pathlib import Path

import pytest

from inferplane.config.schema import CpuConfig, GpuInventory
from inferplane.control.inventory import (
    declared_cpus,
    declared_inventory,
    fleet_cpus,
    format_cpu_list,
    gpu_matches,
    host_cpus,
    is_mig_capable,
    nvml_inventory,
    parse_cpu_list,
)


def test_declared_inventory_numbers_gpus_in_order() -> None:
    devices = declared_inventory(
        [GpuInventory(gpu="H100", count=2, mig=True), GpuInventory(gpu="L4")]
    )
    assert [(d.index, d.name, d.mig) for d in devices] == [
        (0, "H100", True), (1, "H100", True), (2, "L4", False)]  # fmt: skip
    assert devices[0].memory_bytes == 81559 * 1024**2
    assert devices[0].mig_capable and not devices[2].mig_capable


def test_memory_override_and_unknown_gpus() -> None:
    devices = declared_inventory([GpuInventory(gpu="RTX-4090", memory_gib=24)])
    assert devices[0].memory_bytes == 24 * 1024**3
    with pytest.raises(ValueError, match="unknown GPU 'RTX-4090'"):
        declared_inventory([GpuInventory(gpu="RTX-4090")])


def test_ambiguous_family_needs_a_full_name() -> None:
    with pytest.raises(ValueError, match="A100-40GB or A100-80GB"):
        declared_inventory([GpuInventory(gpu="A100")])


def test_mig_only_on_80gb_class_gpus() -> None:
    assert is_mig_capable("H100") and is_mig_capable("A100-80GB")
    assert not is_mig_capable("A100-40GB") and not is_mig_capable("L4")
    with pytest.raises(ValueError, match="cannot be split"):
        declared_inventory([GpuInventory(gpu="L4", mig=True)])


@pytest.mark.parametrize(
    ("kind", "name", "matches"),
    [("H100", "H100-SXM", True), ("H100-SXM", "H100", True), ("H100", "H100 80GB HBM3", True),
     ("A100-80GB", "A100-SXM4-80GB", True), ("L4", "L40S", False),
     ("H100-SXM", "H100-PCIe", False), ("h100", "H100", True)],
)  # fmt: skip
def test_gpu_matches(kind: str, name: str, matches: bool) -> None:
    assert gpu_matches(kind, name) is matches


def test_nvml_inventory_is_a_list_even_without_a_driver() -> None:
    devices = nvml_inventory()
    assert all(device.memory_bytes > 0 for device in devices)


def _sys_tree(root: Path, nodes: dict[int, str], cores: dict[int, tuple[int, int]]) -> Path:
    """A stand-in for /sys/devices/system: NUMA nodes' cpu lists, each CPU's package and core."""
    for node, cpulist in nodes.items():
        (root / "node" / f"node{node}").mkdir(parents=True)
        (root / "node" / f"node{node}" / "cpulist").write_text(cpulist + "\n")
    for cpu, (package, core) in cores.items():
        topology = root / "cpu" / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    return root


def test_this_hosts_cores_by_numa_node_with_hyperthreads_together(tmp_path: Path) -> None:
    # Two sockets of two cores with two threads each: cpu N and N+4 are one core's threads.
    cores = {cpu: (cpu // 2 % 2, cpu % 2) for cpu in range(8)}
    system = _sys_tree(tmp_path, {0: "0-1,4-5", 1: "2-3,6-7"}, cores)
    host = host_cpus(system, allowed=range(8))
    assert host.nodes == ((0, 4, 1, 5), (2, 6, 3, 7))
    assert host.describe() == "8 cores in 2 NUMA nodes" and host.source == "this host"
    # A cpuset (a container, a taskset) narrows it; an emptied node disappears.
    assert host_cpus(system, allowed=[0, 1, 4]).nodes == ((0, 4, 1),)


def test_without_a_numa_listing_the_allowed_cores_are_one_node(tmp_path: Path) -> None:
    assert host_cpus(tmp_path, allowed=[3, 1, 2]).nodes == ((1, 2, 3),)
    assert set(host_cpus().cpus) == os.sched_getaffinity(0)  # this machine, as it is


def test_declared_cores_split_into_numa_nodes() -> None:
    assert declared_cpus(4).nodes == ((0, 1, 2, 3),)
    host = declared_cpus(10, 3)
    assert host.nodes == ((0, 1, 2), (3, 4, 5), (6, 7, 8, 9)) and host.source == "declared"
    assert fleet_cpus(CpuConfig(cores=8, numa_nodes=2)).nodes == ((0, 1, 2, 3), (4, 5, 6, 7))
    with pytest.raises(ValueError, match="NUMA"):
        declared_cpus(2, 3)


def test_cpu_lists_in_the_kernels_format() -> None:
    assert parse_cpu_list("0-3,8-9,12\n") == [0, 1, 2, 3, 8, 9, 12]
    assert format_cpu_list([5, 0, 1, 2, 8, 9]) == "0-2,5,8-9"
    assert format_cpu_list([]) == ""


def test_a_cpu_quota_below_the_visible_cores_keeps_that_many_whole_cores(tmp_path: Path) -> None:
    system = _sys_tree(
        tmp_path, {0: "0-1,4-5", 1: "2-3,6-7"}, {c: (c // 2 % 2, c % 2) for c in range(8)}
    )
    host = host_cpus(system, allowed=range(8), quota=2.5)
    assert host.nodes == ((0, 4),)  # one core's two threads, in placement order
    assert host.source == "this host (a CPU quota of 2.5 of its 8 cores)"
    assert host_cpus(system, allowed=range(8), quota=0.5).cpus == (0,)  # at least one
    assert host_cpus(system, allowed=range(8), quota=5.0).nodes == ((0, 4, 1, 5), (2,))
    assert host_cpus(system, allowed=range(8), quota=8.0).source == "this host"
